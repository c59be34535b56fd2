/* Training-iteration benchmark: one full iteration (forward, loss,
 * backward, SGD) of a preset network, its time, voxels per second and the
 * share of device time per layer type (from per-kernel profiling). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench.h"
#include "backends/opencl/runtime.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Layer type of a kernel label (labels are set by the layers' host code). */
static const char *layer_type(const char *label)
{
    static const struct {
        const char *prefix, *type;
    } map[] = {{"upconv3d", "upconv"},   {"conv3d", "conv"},
               {"winograd", "conv"},
               {"bn_", "batchnorm"},      {"relu", "relu"},
               {"maxpool", "maxpool"},    {"crop_concat", "crop+concat"},
               {"ce_", "softmax-CE"},     {"softmax", "softmax-CE"},
               {"sgd", "sgd"},            {"axpy", "sgd"},
               {"aug", "augment"},        {"fill", "fill"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strncmp(label, map[i].prefix, strlen(map[i].prefix)))
            return map[i].type;
    return "other";
}

typedef struct share {
    const char *type;
    double ms;
} share;

static u3d_status one_iteration(u3d_net *net, const u3d_tensor *x,
                                const u3d_tensor *lab, const u3d_tensor *cw,
                                u3d_tensor *dl, u3d_error *err)
{
    const u3d_tensor *logits;
    float loss, ws;
    u3d_sgd_params sp = {0.001f, 0.99f, 0.0f};
    U3D_TRY(u3d_net_forward(net, x, U3D_NET_TRAIN, &logits, err));
    U3D_TRY(u3d_softmax_ce(logits, lab, cw, 255, NULL, dl, &loss, &ws, err));
    U3D_TRY(u3d_net_backward(net, dl, err));
    U3D_TRY(u3d_net_sgd_step(net, &sp, err));
    return u3d_backend_finish(u3d_net_backend(net), err);
}

u3d_status u3d_bench_train(u3d_backend *be, const char *preset,
                           const int in[3], int iters, int json, FILE *out,
                           double *best_s, u3d_error *err)
{
    u3d_net_config cfg;
    U3D_TRY(u3d_net_preset(preset, &cfg, err));
    int o[3];
    U3D_TRY(u3d_net_output_size(&cfg, in, o, err));
    u3d_net *net = NULL;
    u3d_tensor x = {0}, lab = {0}, cw = {0}, dl = {0};
    u3d_status st = u3d_net_create(be, &cfg, &net, err);
    if (!st)
        st = u3d_net_init(net, 1, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, cfg.in_channels, in[0], in[1], in[2]),
                               U3D_F32, &x, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, 1, o[0], o[1], o[2]), U3D_I32,
                               &lab, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, cfg.classes, o[0], o[1], o[2]),
                               U3D_F32, &dl, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, cfg.classes, 1, 1, 1),
                               U3D_F32, &cw, err);
    if (!st) {
        size_t n = u3d_shape_count(x.shape);
        float *h = malloc(n * sizeof *h);
        if (!h)
            st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        for (size_t i = 0; !st && i < n; i++)
            h[i] = (float)sin(0.001 * (double)i);
        if (!st)
            st = u3d_tensor_write(&x, h, err);
        free(h);
        if (!st)
            st = u3d_tensor_fill(&cw, 1.0f, err);
    }
    if (!st)
        st = u3d_net_prepare_training(net, err);
    if (!st) /* warm-up: kernel builds, activation allocation */
        st = one_iteration(net, &x, &lab, &cw, &dl, err);
    u3d_cl *cl = strcmp(u3d_backend_name(be), "opencl") ? NULL : u3d_cl_of(be);
    double best = INFINITY;
    for (int i = 0; !st && i < iters; i++) {
        double t0 = now_s();
        st = one_iteration(net, &x, &lab, &cw, &dl, err);
        double t = now_s() - t0;
        if (t < best)
            best = t;
    }
    /* one more, profiled, for the shares (profiling serializes launches) */
    share sh[16];
    int nsh = 0;
    double total = 0;
    /* --profile: the per-kernel table of this iteration is printed when
     * the backend closes, so leave it on and the entries in place */
    int keep = cl && cl->profile;
    if (!st && cl) {
        u3d_cl_profile_reset(cl);
        st = u3d_cl_set_profiling(cl, 1, err);
        if (!st)
            st = one_iteration(net, &x, &lab, &cw, &dl, err);
        const char *label;
        double ms;
        long calls;
        for (int i = 0; !st && u3d_cl_profile_entry(cl, i, &label, &ms, &calls); i++) {
            const char *ty = layer_type(label);
            int k = 0;
            while (k < nsh && strcmp(sh[k].type, ty))
                k++;
            if (k == nsh && nsh < 16)
                sh[nsh++] = (share){ty, 0};
            if (k < nsh)
                sh[k].ms += ms;
            total += ms;
        }
        if (!keep) {
            u3d_cl_set_profiling(cl, 0, NULL);
            u3d_cl_profile_reset(cl);
        }
    }
    if (!st && best_s)
        *best_s = best;
    if (!st) {
        double vin = (double)in[0] * in[1] * in[2], vout = (double)o[0] * o[1] * o[2];
        char cs[200];
        u3d_net_config_str(&cfg, cs, sizeof cs);
        if (json) {
            fprintf(out, "{\"device\": \"%s\", \"preset\": \"%s\", \"input_dhw\": [%d, %d, %d], "
                         "\"output_dhw\": [%d, %d, %d], \"seconds_per_iteration\": %.4f, "
                         "\"input_voxels_per_s\": %.1f, \"output_voxels_per_s\": %.1f, \"share\": {",
                    u3d_backend_device(be), preset, in[0], in[1], in[2], o[0], o[1], o[2], best,
                    vin / best, vout / best);
            for (int k = 0; k < nsh; k++)
                fprintf(out, "%s\"%s\": %.4f", k ? ", " : "", sh[k].type,
                        total > 0 ? sh[k].ms / total : 0.0);
            fprintf(out, "}}\n");
        } else {
            fprintf(out, "training iteration, %s preset (%s)\n", preset, cs);
            fprintf(out, "device: %s\n", u3d_backend_device(be));
            fprintf(out, "input %dx%dx%d -> output %dx%dx%d (DxHxW), batch 1\n",
                    in[0], in[1], in[2], o[0], o[1], o[2]);
            fprintf(out, "time per iteration: %.3f s (best of %d)\n", best, iters);
            fprintf(out, "voxels/s: %.0f input, %.0f output\n", vin / best, vout / best);
            if (nsh) {
                fprintf(out, "share of device time (profiled iteration, %.0f ms):\n", total);
                for (int k = 0; k < nsh; k++)
                    fprintf(out, "  %-12s %6.1f%%  %9.1f ms\n", sh[k].type,
                            100.0 * sh[k].ms / total, sh[k].ms);
            }
        }
    }
    u3d_tensor_release(&x);
    u3d_tensor_release(&lab);
    u3d_tensor_release(&cw);
    u3d_tensor_release(&dl);
    u3d_net_destroy(net);
    return st;
}
