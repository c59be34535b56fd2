/* CLBlast SGEMM on the backend's own context and queue: what a tuned GEMM
 * library reaches on this device, the yardstick of the conv entries.
 * CLBlast is opened with dlopen when the bench runs: linked, its C++
 * static initializers (the tuning databases) would cost every unet3d
 * process 4 MiB of resident memory, a laptop's predict included. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"
#include "backends/opencl/runtime.h" /* first: fixes the OpenCL target version */
#include <clblast_c.h>

const char *const u3d_bench_sgemm_names[] = {"sgemm_1024", "sgemm_2048",
                                             "sgemm_implicit", NULL};

/* Row-major C(MxN) = A(MxK) B(KxN); quick sizes for smoke tests. The
 * implicit-GEMM shape is the 32->64 conv of the paper as one GEMM per
 * 4 output slices: M = Cout, N = 4*130*130 voxels, K = Cin*27. */
static const struct {
    size_t m, n, k, qm, qn, qk;
} sgemm_sizes[] = {{1024, 1024, 1024, 64, 64, 64},
                   {2048, 2048, 2048, 128, 128, 128},
                   {64, 130 * 130 * 4, 864, 16, 256, 32}};

typedef __typeof__(CLBlastSgemm) sgemm_fn;

typedef struct sgemm_ctx {
    sgemm_fn *sgemm;
    u3d_cl *cl;
    size_t m, n, k;
    u3d_tensor a, b, c;
} sgemm_ctx;

static const char *clblast_name(CLBlastStatusCode s)
{
    if (s > -100)
        return u3d_cl_errname((cl_int)s); /* shared with OpenCL */
    switch (s) {
    case CLBlastNotImplemented: return "not implemented";
    case CLBlastInvalidLocalMemUsage: return "not enough local memory";
    case CLBlastInsufficientMemoryTemp: return "temporary buffer too small";
    case CLBlastInvalidDimension: return "invalid dimension";
    default: return "CLBlast error (see clblast_c.h)";
    }
}

static u3d_status sgemm_run(void *vctx, u3d_error *err)
{
    sgemm_ctx *s = vctx;
    cl_command_queue q = s->cl->queue;
    CLBlastStatusCode rc = s->sgemm(
        CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, s->m,
        s->n, s->k, 1.0f, u3d_cl_mem(&s->a), 0, s->k, u3d_cl_mem(&s->b), 0,
        s->n, 0.0f, u3d_cl_mem(&s->c), 0, s->n, &q, NULL);
    if (rc == CLBlastSuccess)
        return U3D_OK;
    u3d_status st = rc == CLBlastTempBufferAllocFailure ||
                            rc == CLBlastOpenCLOutOfResources ||
                            rc == CLBlastOpenCLOutOfHostMemory
                        ? U3D_ERR_OOM
                        : U3D_ERR_DEVICE;
    return u3d_seterr(err, st, "CLBlastSgemm(%zux%zux%zu) failed: %s (%d)",
                      s->m, s->n, s->k, clblast_name(rc), (int)rc);
}

static u3d_status sgemm_alloc(u3d_backend *be, sgemm_ctx *s, u3d_error *err)
{
    /* shapes as 1x1x1xRxC: only the element counts matter */
    u3d_status st = u3d_tensor_create(be, u3d_shape5(1, 1, 1, (int)s->m,
                                                     (int)s->k),
                                      U3D_F32, &s->a, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, 1, 1, (int)s->k, (int)s->n),
                               U3D_F32, &s->b, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, 1, 1, (int)s->m, (int)s->n),
                               U3D_F32, &s->c, err);
    /* non-zero inputs; zeros would do too, no denormals either way */
    if (!st)
        st = u3d_tensor_fill(&s->a, 0.5f, err);
    if (!st)
        st = u3d_tensor_fill(&s->b, 0.25f, err);
    return st;
}

/* CLBlastSgemm from the library (soname first, then the file the build
 * found); NULL with the loader's message in why. The library stays loaded:
 * CLBlast keeps compiled kernels per context in static caches. */
static sgemm_fn *load_sgemm(char *why, size_t len)
{
    static const char *const names[] = {"libclblast.so.1", U3D_CLBLAST_LIB};
    void *h = NULL;
    for (int i = 0; i < 2 && !h; i++)
        if (!(h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL)) && i == 0)
            snprintf(why, len, "cannot load CLBlast: %s", dlerror());
    if (!h)
        return NULL;
    void *p = dlsym(h, "CLBlastSgemm");
    if (!p) {
        snprintf(why, len, "CLBlast has no CLBlastSgemm");
        return NULL;
    }
    sgemm_fn *f;
    memcpy(&f, &p, sizeof f); /* POSIX: object and function pointers convert */
    return f;
}

static void sgemm_one(u3d_backend *be, const u3d_bench_opts *o, int i,
                      sgemm_fn *sgemm, u3d_bench_row *row)
{
    sgemm_ctx s = {0};
    s.sgemm = sgemm;
    s.cl = u3d_cl_of(be);
    s.m = o->quick ? sgemm_sizes[i].qm : sgemm_sizes[i].m;
    s.n = o->quick ? sgemm_sizes[i].qn : sgemm_sizes[i].n;
    s.k = o->quick ? sgemm_sizes[i].qk : sgemm_sizes[i].k;
    row->work = 2.0 * (double)s.m * (double)s.n * (double)s.k;
    u3d_error e = {0};
    u3d_status st = sgemm_alloc(be, &s, &e);
    if (st)
        u3d_bench_row_error(row, st, &e);
    else
        u3d_bench_time(be, o, sgemm_run, &s, row);
    u3d_tensor_release(&s.a);
    u3d_tensor_release(&s.b);
    u3d_tensor_release(&s.c);
}

void u3d_bench_sgemm_all(u3d_backend *be, const u3d_bench_opts *o,
                         u3d_bench_report *r)
{
    int opencl = strcmp(u3d_backend_name(be), "opencl") == 0;
    char why[300] = "";
    sgemm_fn *sgemm = NULL;
    for (int i = 0; u3d_bench_sgemm_names[i]; i++) {
        if (!u3d_bench_selected(o, u3d_bench_sgemm_names[i]) ||
            r->nsgemm >= U3D_BENCH_MAX_SGEMM)
            continue;
        u3d_bench_row *row = &r->sgemm[r->nsgemm++];
        snprintf(row->name, sizeof row->name, "%s", u3d_bench_sgemm_names[i]);
        row->is_flops = 1;
        snprintf(row->shape, sizeof row->shape, "M=%zu N=%zu K=%zu",
                 o->quick ? sgemm_sizes[i].qm : sgemm_sizes[i].m,
                 o->quick ? sgemm_sizes[i].qn : sgemm_sizes[i].n,
                 o->quick ? sgemm_sizes[i].qk : sgemm_sizes[i].k);
        if (o->verbose)
            fprintf(stderr, "bench: %s...\n", row->name);
        if (!opencl) {
            row->state = U3D_BENCH_SKIPPED;
            snprintf(row->note, sizeof row->note,
                     "CLBlast needs the OpenCL backend, not %s", u3d_backend_name(be));
            continue;
        }
        if (!sgemm && !why[0])
            sgemm = load_sgemm(why, sizeof why);
        if (!sgemm) {
            row->state = U3D_BENCH_SKIPPED;
            snprintf(row->note, sizeof row->note, "%s", why);
            continue;
        }
        sgemm_one(be, o, i, sgemm, row);
        if (row->state == U3D_BENCH_OK && row->rate > r->sgemm_best)
            r->sgemm_best = row->rate;
    }
}
