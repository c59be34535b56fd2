/* Device FMA peak and copy bandwidth (cl/bench.cl), OpenCL backends only. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"
#include "backends/opencl/runtime.h"

/* The variants searched: vector width x accumulators x work-group size.
 * Enough independent accumulators hide the FMA latency (4-cycle latency x
 * 2 pipes = 8 on x86); PoCL's CPU device may instead vectorise across
 * work-items, which one work-item per group rules out, and GPUs want many
 * resident threads. The best wins. */
static const int peak_vw[] = {4, 8, 16};
static const int peak_nacc[] = {4, 8, 12, 16};
#define NVW ((int)(sizeof peak_vw / sizeof *peak_vw))
#define NNACC ((int)(sizeof peak_nacc / sizeof *peak_nacc))
#define NLWS 2
#define NVARIANTS (NVW * NNACC * NLWS)
#define PEAK_UNROLL 8
#define PEAK_MAX_ROUNDS 10

typedef struct peak_launch {
    int vw, nacc;
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

/* Work-group size (choice 0 or 1) and count: enough groups for every
 * compute unit to stay busy. CPUs: 1 or 16 work-items per group; GPUs:
 * 64 or 256. */
static void peak_geometry(const u3d_cl *cl, int choice, size_t *gws,
                          size_t *lws)
{
    size_t l = cl->is_cpu ? (choice ? 16 : 1) : (choice ? 256 : 64);
    if (l > cl->max_wg)
        l = cl->max_wg;
    size_t groups = (size_t)(cl->compute_units ? cl->compute_units : 1) *
                    (cl->is_cpu ? (l == 1 ? 4 : 8) : 16);
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
    pl->vw = peak_vw[i / (NNACC * NLWS)];
    pl->nacc = peak_nacc[i / NLWS % NNACC];
    char opts[96];
    snprintf(opts, sizeof opts, "-DVW=%d -DNACC=%d -DUNROLL=%d", pl->vw,
             pl->nacc, PEAK_UNROLL);
    U3D_TRY(u3d_cl_kernel_get(cl, "bench", "fma_peak", opts, &pl->k, err));
    peak_geometry(cl, i % NLWS, &pl->gws, &pl->lws);
    pl->n = (cl_uint)pl->gws;
    pl->flops_per_iter =
        2.0 * PEAK_UNROLL * pl->nacc * pl->vw * (double)pl->gws;
    pl->iters = 1;
    U3D_TRY(u3d_tensor_create(be, u3d_shape5(1, 1, 1, pl->vw, (int)pl->gws),
                              U3D_F32, &pl->out, err));
    if (cl->is_oclgrind)
        return U3D_OK; /* one iteration is plenty for the simulator */
    /* launches of 0.1 s (quick: 5 ms) dwarf the launch overhead */
    return peak_calibrate(be, pl, o->quick ? 0.005 : 0.1, &pl->iters, err);
}

/* One value of the output: proves the kernel ran and stayed finite. */
static u3d_status peak_check(u3d_backend *be, peak_launch *pl,
                             u3d_error *err)
{
    float v = 0;
    U3D_TRY(be->ops->buffer_read(be, pl->out.buf, 0, sizeof v, &v, err));
    if (!isfinite(v) || pl->best <= 0)
        return u3d_seterr(err, U3D_ERR_NUMERIC,
                          "the FMA peak kernel (float%d x %d) produced %g in "
                          "%g s",
                          pl->vw, pl->nacc, (double)v, pl->best);
    return U3D_OK;
}

static double peak_rate(const peak_launch *pl)
{
    return pl->best > 0 ? pl->flops_per_iter * pl->iters / pl->best * 1e-9
                        : 0;
}

/* Rounds over all variants, best time each (a burst of load from other
 * processes then spoils one sample of every variant, not all of one),
 * until the best rate stops rising: at least 3 rounds (quick: 1), then
 * until a round improves it by less than 1 %. */
static u3d_status peak_rounds(u3d_backend *be, const u3d_bench_opts *o,
                              peak_launch *pl, int first, int last,
                              int min_rounds, u3d_error *err)
{
    double best = 0;
    for (int r = 0; r < PEAK_MAX_ROUNDS; r++) {
        for (int i = first; i < last; i++) {
            double t = 0;
            U3D_TRY(peak_once(be, &pl[i], pl[i].iters, &t, err));
            if (t > 0 && (pl[i].best == 0 || t < pl[i].best))
                pl[i].best = t;
        }
        double now = 0;
        for (int i = first; i < last; i++)
            now = peak_rate(&pl[i]) > now ? peak_rate(&pl[i]) : now;
        int stable = now < best * 1.01;
        best = now > best ? now : best;
        if (o->quick || u3d_cl_of(be)->is_oclgrind ||
            (r + 1 >= min_rounds && stable))
            break;
    }
    return U3D_OK;
}

/* The best variant's rate and description. */
static double peak_best(const peak_launch *pl, int first, int last,
                        int verbose, char *config, size_t config_len)
{
    double g = 0;
    for (int i = first; i < last; i++) {
        double r = peak_rate(&pl[i]);
        if (verbose)
            fprintf(stderr, "peak: float%d x %d accumulators, work-groups of "
                            "%zu: %.1f GFLOP/s\n",
                    pl[i].vw, pl[i].nacc, pl[i].lws, r);
        if (r > g) {
            g = r;
            if (config)
                snprintf(config, config_len,
                         "float%d x %d accumulators, work-groups of %zu",
                         pl[i].vw, pl[i].nacc, pl[i].lws);
        }
    }
    return g;
}

u3d_status u3d_bench_peak_ex(u3d_backend *be, const u3d_bench_opts *o,
                             int min_rounds, double *gflops, char *config,
                             size_t config_len, u3d_error *err)
{
    *gflops = 0;
    if (!is_opencl(be))
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "the FMA peak needs the OpenCL backend, not %s",
                          u3d_backend_name(be));
    /* quick (and the simulator): one mid-sized variant shows it works */
    int few = o->quick || u3d_cl_of(be)->is_oclgrind;
    int first = few ? (1 * NNACC + 1) * NLWS + 1 : 0;
    int last = few ? first + 1 : NVARIANTS;
    peak_launch pl[NVARIANTS];
    memset(pl, 0, sizeof pl);
    u3d_status st = U3D_OK;
    for (int i = first; i < last && !st; i++)
        st = peak_prepare(be, o, i, &pl[i], err);
    if (!st)
        st = peak_rounds(be, o, pl, first, last, min_rounds, err);
    for (int i = first; i < last && !st; i++)
        st = peak_check(be, &pl[i], err);
    if (!st)
        *gflops = peak_best(pl, first, last, o->verbose, config, config_len);
    for (int i = 0; i < NVARIANTS; i++)
        u3d_tensor_release(&pl[i].out);
    return st;
}

u3d_status u3d_bench_peak(u3d_backend *be, const u3d_bench_opts *o,
                          double *gflops, char *config, size_t config_len,
                          u3d_error *err)
{
    return u3d_bench_peak_ex(be, o, 3, gflops, config, config_len, err);
}

double u3d_bench_theoretical(u3d_backend *be, char *how, size_t n)
{
    if (!is_opencl(be))
        return 0;
    u3d_cl *cl = u3d_cl_of(be);
    cl_uint mhz = 0, lanes = 0;
    clGetDeviceInfo(cl->device, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof mhz,
                    &mhz, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT,
                    sizeof lanes, &lanes, NULL);
    /* a GPU's compute unit holds many lanes it does not report */
    if (!cl->is_cpu || !mhz || !lanes || !cl->compute_units)
        return 0;
    double g = mhz * 1e-3 * cl->compute_units * lanes * 2.0;
    snprintf(how, n, "%u MHz x %u units x %u lanes x 2 flops per FMA, per "
             "FMA pipe (x86 cores have 1 or 2)", mhz, cl->compute_units,
             lanes);
    return g;
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
