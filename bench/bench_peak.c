/* Device FMA peak and copy bandwidth (cl/bench.cl), OpenCL backends only. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"
#include "backends/opencl/runtime.h"

/* Vector width x accumulators tried; the best wins. 16 float16 accumulators
 * fill half of AVX-512's registers; GPUs prefer fewer, narrower ones. */
static const struct {
    int vw, nacc;
} peak_variants[] = {{4, 8}, {4, 16}, {8, 8}, {8, 16}, {16, 8}, {16, 16}};
#define NVARIANTS ((int)(sizeof peak_variants / sizeof peak_variants[0]))
#define PEAK_UNROLL 8

typedef struct peak_launch {
    cl_kernel k;
    u3d_tensor out;
    cl_uint n;
    size_t gws, lws;
    double flops_per_iter; /* all work-items, one loop iteration */
    int iters;             /* calibrated loop count */
    double best;           /* best time of one launch, seconds */
} peak_launch;

static int is_opencl(const u3d_backend *be)
{
    return strcmp(u3d_backend_name(be), "opencl") == 0;
}

/* One launch of `iters` iterations, waited for; *sec its wall time. */
static u3d_status peak_once(u3d_backend *be, peak_launch *pl, int iters,
                            double *sec, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_mem m = u3d_cl_mem(&pl->out);
    float a = 0.999f, b = 1e-3f; /* fixed point b/(1-a) = 1: no overflow */
    U3D_ARG(pl->k, 0, m, err);
    U3D_ARG(pl->k, 1, pl->n, err);
    U3D_ARG(pl->k, 2, iters, err);
    U3D_ARG(pl->k, 3, a, err);
    U3D_ARG(pl->k, 4, b, err);
    double t0 = u3d_bench_now();
    U3D_TRY(u3d_cl_launch(cl, pl->k, "bench_fma_peak", 1, &pl->gws, &pl->lws,
                          err));
    U3D_TRY(u3d_backend_finish(be, err));
    *sec = u3d_bench_now() - t0;
    return U3D_OK;
}

/* Grows iters until one launch takes about `target` seconds. */
static u3d_status peak_calibrate(u3d_backend *be, peak_launch *pl,
                                 double target, int *iters, u3d_error *err)
{
    int it = 1;
    double t = 0;
    for (;;) {
        U3D_TRY(peak_once(be, pl, it, &t, err));
        if (t >= target / 4 || it >= (1 << 24))
            break;
        it = t > 1e-6 && t * 64 > target / 4 ? it * 4 : it * 64;
    }
    double scale = t > 0 ? target / t : 1.0;
    double want = it * (scale > 1 ? scale : 1.0);
    *iters = want > (1 << 26) ? (1 << 26) : (int)want;
    return U3D_OK;
}

/* Work-group size and count: enough groups for every compute unit to stay
 * busy; CPUs run a group per thread, GPUs need many resident threads. */
static void peak_geometry(const u3d_cl *cl, size_t *gws, size_t *lws)
{
    size_t l = cl->is_cpu ? 16 : 256;
    if (l > cl->max_wg)
        l = cl->max_wg;
    size_t groups = (size_t)(cl->compute_units ? cl->compute_units : 1) *
                    (cl->is_cpu ? 8 : 16);
    if (cl->is_oclgrind)
        groups = 2; /* the simulator runs ~1000x slower */
    *lws = l;
    *gws = groups * l;
}

/* Builds variant i's kernel, its output buffer, and calibrates iters. */
static u3d_status peak_prepare(u3d_backend *be, const u3d_bench_opts *o,
                               int i, peak_launch *pl, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    int vw = peak_variants[i].vw, nacc = peak_variants[i].nacc;
    char opts[96];
    snprintf(opts, sizeof opts, "-DVW=%d -DNACC=%d -DUNROLL=%d", vw, nacc,
             PEAK_UNROLL);
    U3D_TRY(u3d_cl_kernel_get(cl, "bench", "fma_peak", opts, &pl->k, err));
    peak_geometry(cl, &pl->gws, &pl->lws);
    pl->n = (cl_uint)pl->gws;
    pl->flops_per_iter = 2.0 * PEAK_UNROLL * nacc * vw * (double)pl->gws;
    pl->iters = 1;
    U3D_TRY(u3d_tensor_create(be, u3d_shape5(1, 1, 1, vw, (int)pl->gws),
                              U3D_F32, &pl->out, err));
    if (cl->is_oclgrind)
        return U3D_OK; /* one iteration is plenty for the simulator */
    /* launches of 0.1 s (quick: 5 ms) dwarf the launch overhead */
    return peak_calibrate(be, pl, o->quick ? 0.005 : 0.1, &pl->iters, err);
}

/* One value of the output: proves the kernel ran and stayed finite. */
static u3d_status peak_check(u3d_backend *be, peak_launch *pl, int i,
                             u3d_error *err)
{
    float v = 0;
    U3D_TRY(be->ops->buffer_read(be, pl->out.buf, 0, sizeof v, &v, err));
    if (!isfinite(v) || pl->best <= 0)
        return u3d_seterr(err, U3D_ERR_NUMERIC,
                          "the FMA peak kernel (float%d x %d) produced %g in "
                          "%g s",
                          peak_variants[i].vw, peak_variants[i].nacc,
                          (double)v, pl->best);
    return U3D_OK;
}

/* Rounds over all variants, best time each: a burst of load from other
 * processes then spoils one sample of every variant, not all of one. */
static u3d_status peak_measure(u3d_backend *be, const u3d_bench_opts *o,
                               peak_launch *pl, int first, int last,
                               u3d_error *err)
{
    for (int i = first; i < last; i++)
        U3D_TRY(peak_prepare(be, o, i, &pl[i], err));
    for (int r = 0; r < (o->quick ? 1 : 4); r++) {
        for (int i = first; i < last; i++) {
            double t = 0;
            U3D_TRY(peak_once(be, &pl[i], pl[i].iters, &t, err));
            if (t > 0 && (pl[i].best == 0 || t < pl[i].best))
                pl[i].best = t;
        }
    }
    for (int i = first; i < last; i++)
        U3D_TRY(peak_check(be, &pl[i], i, err));
    return U3D_OK;
}

u3d_status u3d_bench_peak(u3d_backend *be, const u3d_bench_opts *o,
                          double *gflops, char *config, size_t config_len,
                          u3d_error *err)
{
    *gflops = 0;
    if (!is_opencl(be))
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "the FMA peak needs the OpenCL backend, not %s",
                          u3d_backend_name(be));
    /* quick: one mid-sized variant, enough to show the kernel works */
    int first = o->quick ? 2 : 0, last = o->quick ? 3 : NVARIANTS;
    peak_launch pl[NVARIANTS];
    memset(pl, 0, sizeof pl);
    u3d_status st = peak_measure(be, o, pl, first, last, err);
    for (int i = first; i < last && !st; i++) {
        double g = pl[i].flops_per_iter * pl[i].iters / pl[i].best * 1e-9;
        int vw = peak_variants[i].vw, nacc = peak_variants[i].nacc;
        if (o->verbose)
            fprintf(stderr, "peak: float%d x %d accumulators: %.1f GFLOP/s\n",
                    vw, nacc, g);
        if (g > *gflops) {
            *gflops = g;
            if (config)
                snprintf(config, config_len, "float%d x %d accumulators", vw,
                         nacc);
        }
    }
    for (int i = 0; i < NVARIANTS; i++)
        u3d_tensor_release(&pl[i].out);
    return st;
}

u3d_status u3d_bench_bandwidth(u3d_backend *be, const u3d_bench_opts *o,
                               double *gbs, u3d_error *err)
{
    *gbs = 0;
    if (!is_opencl(be))
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "the copy bandwidth needs the OpenCL backend, not %s",
                          u3d_backend_name(be));
    u3d_cl *cl = u3d_cl_of(be);
    int quick = o->quick || cl->is_oclgrind;
    /* 64 MiB per buffer: far beyond any cache */
    int n4 = quick ? 1024 : 4 << 20;
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "bench", "stream_copy", NULL, &k, err));
    u3d_tensor x = {0}, y = {0};
    u3d_shape s = u3d_shape5(1, 1, 1, 4, n4);
    u3d_status st = u3d_tensor_create(be, s, U3D_F32, &x, err);
    if (!st)
        st = u3d_tensor_create(be, s, U3D_F32, &y, err);
    cl_mem xm = u3d_cl_mem(&x), ym = u3d_cl_mem(&y);
    cl_uint n = (cl_uint)n4;
    size_t g = (size_t)n4, l = 64;
    double best = 0;
    for (int r = 0; st == U3D_OK && r < (quick ? 2 : 6); r++) {
        st = u3d_cl_check(clSetKernelArg(k, 0, sizeof xm, &xm),
                          "clSetKernelArg(x)", err);
        if (!st)
            st = u3d_cl_check(clSetKernelArg(k, 1, sizeof ym, &ym),
                              "clSetKernelArg(y)", err);
        if (!st)
            st = u3d_cl_check(clSetKernelArg(k, 2, sizeof n, &n),
                              "clSetKernelArg(n)", err);
        double t0 = u3d_bench_now();
        if (!st)
            st = u3d_cl_launch(cl, k, "bench_stream_copy", 1, &g, &l, err);
        if (!st)
            st = u3d_backend_finish(be, err);
        double t = u3d_bench_now() - t0;
        if (!st && r > 0 && (best == 0 || t < best)) /* r 0 warms up */
            best = t;
    }
    u3d_tensor_release(&x);
    u3d_tensor_release(&y);
    if (st)
        return st;
    *gbs = best > 0 ? 2.0 * 16.0 * n4 / best * 1e-9 : 0;
    return U3D_OK;
}
