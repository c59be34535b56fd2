/* Inference benchmark: one tile of a preset network, as predict runs it
 * (running batch-norm statistics, the inference plan), warm; seconds per
 * tile and the GFLOP/s of its convolutions. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include "bench.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static u3d_status one_tile(u3d_net *net, const u3d_tensor *x, u3d_error *err)
{
    const u3d_tensor *logits;
    U3D_TRY(u3d_net_forward(net, x, U3D_NET_EVAL, &logits, err));
    return u3d_backend_finish(u3d_net_backend(net), err);
}

/* A smooth input, so no kernel sees only zeros. */
static u3d_status fill_input(u3d_tensor *x, u3d_error *err)
{
    size_t n = u3d_shape_count(x->shape);
    float *h = malloc(n * sizeof *h);
    if (!h)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (size_t i = 0; i < n; i++)
        h[i] = (float)sin(0.001 * (double)i);
    u3d_status st = u3d_tensor_write(x, h, err);
    free(h);
    return st;
}

static void report(u3d_backend *be, const char *preset, const int in[3],
                   const int o[3], double best, int iters, double flops,
                   int json, FILE *out)
{
    double gflops = flops / best * 1e-9;
    if (json) {
        fprintf(out,
                "{\"device\": \"%s\", \"preset\": \"%s\", \"input_dhw\": "
                "[%d, %d, %d], \"output_dhw\": [%d, %d, %d], "
                "\"seconds_per_tile\": %.4f, \"gflop_per_tile\": %.2f, "
                "\"gflops\": %.1f}\n",
                u3d_backend_device(be), preset, in[0], in[1], in[2], o[0],
                o[1], o[2], best, flops * 1e-9, gflops);
        return;
    }
    fprintf(out, "inference tile, %s preset\n", preset);
    fprintf(out, "device: %s\n", u3d_backend_device(be));
    fprintf(out, "input %dx%dx%d -> output %dx%dx%d (DxHxW), batch 1\n",
            in[0], in[1], in[2], o[0], o[1], o[2]);
    fprintf(out, "seconds per tile: %.3f (best of %d, warm)\n", best, iters);
    fprintf(out, "GFLOP/s: %.1f (%.1f GFLOP of convolutions per tile)\n",
            gflops, flops * 1e-9);
}

u3d_status u3d_bench_infer(u3d_backend *be, const char *preset,
                           const int in[3], int iters, int json, FILE *out,
                           double *best_s, u3d_error *err)
{
    u3d_net_config cfg;
    U3D_TRY(u3d_net_preset(preset, &cfg, err));
    int o[3];
    U3D_TRY(u3d_net_output_size(&cfg, in, o, err));
    u3d_net *net = NULL;
    u3d_tensor x = {0};
    u3d_status st = u3d_net_create(be, &cfg, &net, err);
    if (!st)
        st = u3d_net_init(net, 1, err);
    if (!st) /* as predict does with running statistics */
        st = u3d_net_fold_batchnorm(net, err);
    if (!st)
        st = u3d_tensor_create(
            be, u3d_shape5(1, cfg.in_channels, in[0], in[1], in[2]), U3D_F32,
            &x, err);
    if (!st)
        st = fill_input(&x, err);
    if (!st) /* warm-up: kernel builds, activation allocation */
        st = one_tile(net, &x, err);
    double best = INFINITY;
    for (int i = 0; !st && i < iters; i++) {
        double t0 = now_s();
        st = one_tile(net, &x, err);
        double t = now_s() - t0;
        if (t < best)
            best = t;
    }
    if (!st) {
        if (best_s)
            *best_s = best;
        report(be, preset, in, o, best, iters, u3d_net_forward_flops(&cfg, in),
               json, out);
    }
    u3d_tensor_release(&x);
    u3d_net_destroy(net);
    return st;
}
