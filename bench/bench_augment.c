/* Augmentation benchmark: one paper-sized patch (132x132x116 WxHxD, 3
 * channels, with its 44x44x28 label patch) augmented with the paper preset
 * on the device and by the plain-C host implementation, and its share of a
 * paper-net training iteration on the same device. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench.h"


static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

u3d_status u3d_bench_augment(u3d_backend *be, int quick, int with_train,
                             int json, FILE *out, u3d_error *err)
{
    /* source a bit larger than the patch, like a training volume */
    int C = 3, S[3] = {150, 170, 170}, P[3] = {116, 132, 132}, L[3] = {28, 44, 44};
    if (quick) {
        S[0] = S[1] = S[2] = 24;
        P[0] = P[1] = P[2] = 20;
        L[0] = L[1] = L[2] = 8;
    }
    u3d_shape ss = u3d_shape5(1, C, S[0], S[1], S[2]);
    u3d_shape ls = u3d_shape5(1, 1, S[0], S[1], S[2]);
    u3d_shape ps = u3d_shape5(1, C, P[0], P[1], P[2]);
    u3d_shape pl = u3d_shape5(1, 1, L[0], L[1], L[2]);
    size_t ns = u3d_shape_count(ss), nl = u3d_shape_count(ls);
    float *src = malloc(ns * sizeof *src), *hout = malloc(u3d_shape_count(ps) * 4);
    int32_t *lab = malloc(nl * sizeof *lab), *hlab = malloc(u3d_shape_count(pl) * 4);
    u3d_tensor ti = {0}, tl = {0}, oi = {0}, ol = {0};
    u3d_status st = U3D_OK;
    if (!src || !hout || !lab || !hlab)
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (size_t i = 0; !st && i < ns; i++)
        src[i] = (float)(0.5 + 0.5 * sin(0.01 * (double)i));
    for (size_t i = 0; !st && i < nl; i++)
        lab[i] = (int32_t)(i % 3);
    if (!st) st = u3d_tensor_create(be, ss, U3D_F32, &ti, err);
    if (!st) st = u3d_tensor_write(&ti, src, err);
    if (!st) st = u3d_tensor_create(be, ls, U3D_I32, &tl, err);
    if (!st) st = u3d_tensor_write(&tl, lab, err);
    if (!st) st = u3d_tensor_create(be, ps, U3D_F32, &oi, err);
    if (!st) st = u3d_tensor_create(be, pl, U3D_I32, &ol, err);
    u3d_augment_params p;
    u3d_augment_params_paper(&p);
    for (int a = 0; a < 3; a++)
        p.mirror[a] = 1;
    float origin[3] = {S[0] / 2.0f, S[1] / 2.0f, S[2] / 2.0f};
    double dev = INFINITY, host = INFINITY;
    int reps = quick ? 1 : 5;
    for (int r = 0; !st && r <= reps; r++) { /* r == 0: warm-up */
        double t0 = now_s();
        st = u3d_augment_sample(be, &p, 1, (uint64_t)r, &ti, &tl, origin, &oi,
                                &ol, err);
        if (!st)
            st = u3d_backend_finish(be, err);
        double t = now_s() - t0;
        if (r && t < dev)
            dev = t;
    }
    for (int r = 0; !st && r < (quick ? 1 : 3); r++) {
        double t0 = now_s();
        st = u3d_augment_sample_host(&p, 1, (uint64_t)r, ss, src, lab, origin,
                                     ps, hout, pl, hlab, err);
        double t = now_s() - t0;
        if (t < host)
            host = t;
    }
    double iter = 0;
    if (!st && with_train) {
        /* a paper-net iteration, timed the way bench --train does */
        FILE *null = fopen("/dev/null", "w");
        int in_dhw[3] = {P[0], P[1], P[2]};
        int tiny[3] = {44, 44, 44};
        st = u3d_bench_train(be, quick ? "tiny" : "paper", quick ? tiny : in_dhw,
                             1, 0, null ? null : stderr, &iter, err);
        if (null)
            fclose(null);
    }
    if (!st) {
        if (json)
            fprintf(out,
                    "{\"device\": \"%s\", \"patch_whd\": [%d, %d, %d], "
                    "\"channels\": %d, \"device_ms\": %.3f, \"host_ms\": %.3f, "
                    "\"host_over_device\": %.3f, \"train_iteration_s\": %.3f, "
                    "\"share_of_iteration\": %.5f}\n",
                    u3d_backend_device(be), P[2], P[1], P[0], C, dev * 1e3, host * 1e3,
                    host / dev, iter, iter > 0 ? dev / iter : -1.0);
        else {
            fprintf(out, "augmentation (paper preset + mirroring) of one %dx%dx%d "
                         "(WxHxD) %d-channel patch with its %dx%dx%d labels\n",
                    P[2], P[1], P[0], C, L[2], L[1], L[0]);
            fprintf(out, "device: %s\n", u3d_backend_device(be));
            fprintf(out, "  on the device:       %9.1f ms (best of %d)\n",
                    dev * 1e3, reps);
            fprintf(out, "  plain C on the host: %9.1f ms (1 thread) = %.2fx the device time\n",
                    host * 1e3, host / dev);
            if (iter > 0)
                fprintf(out, "  share of one %s training iteration (%.2f s): %.2f%%\n",
                        quick ? "tiny" : "paper-net", iter, 100.0 * dev / iter);
        }
    }
    u3d_tensor_release(&ti);
    u3d_tensor_release(&tl);
    u3d_tensor_release(&oi);
    u3d_tensor_release(&ol);
    free(src);
    free(hout);
    free(lab);
    free(hlab);
    return st;
}
