/* Gradient allreduce benchmark (unet3d bench --allreduce, under mpirun):
 * the time to sum the gradients of the paper network (19,069,955 floats)
 * and of the small preset over the ranks, as one call and in the trainer's
 * 8 MiB non-blocking buckets, and the communication share of a training
 * iteration of the small preset at this number of ranks. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench.h"
#include "dist/dist.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds of one allreduce of n floats (slowest rank), bucketed or not. */
static u3d_status time_allreduce(float *buf, size_t n, size_t bucket,
                                 double *s, u3d_error *err)
{
    U3D_TRY(u3d_dist_barrier(err));
    double t0 = now_s();
    if (!bucket) {
        U3D_TRY(u3d_dist_sum_f32(buf, n, err));
    } else {
        size_t nb = (n + bucket - 1) / bucket;
        u3d_dist_req **req = calloc(nb, sizeof *req);
        if (!req)
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        u3d_status st = U3D_OK;
        for (size_t i = 0; i < nb && !st; i++) {
            size_t k = n - i * bucket < bucket ? n - i * bucket : bucket;
            st = u3d_dist_isum_f32(buf + i * bucket, k, &req[i], err);
        }
        for (size_t i = 0; i < nb; i++) {
            u3d_status w = u3d_dist_wait(req[i], err);
            st = st ? st : w;
        }
        free(req);
        U3D_TRY(st);
    }
    *s = now_s() - t0;
    return u3d_dist_max_f64(s, 1, err);
}

typedef struct ar_result {
    const char *preset;
    size_t floats;
    double one_med, one_min, bucket_med, bucket_min;
} ar_result;

static u3d_status measure(const char *preset, int reps, ar_result *r,
                          u3d_error *err)
{
    u3d_net_config cfg;
    U3D_TRY(u3d_net_preset(preset, &cfg, err));
    memset(r, 0, sizeof *r);
    r->preset = preset;
    r->floats = u3d_net_param_count(&cfg, cfg.bn == U3D_BN_AFFINE);
    float *buf = malloc(r->floats * sizeof *buf);
    double *t1 = calloc((size_t)reps, sizeof *t1);
    double *t2 = calloc((size_t)reps, sizeof *t2);
    u3d_status st = buf && t1 && t2 ? U3D_OK
                                    : u3d_seterr(err, U3D_ERR_OOM,
                                                 "out of host memory");
    for (size_t i = 0; !st && i < r->floats; i++)
        buf[i] = 1e-3f * (float)(i % 1000);
    double warm;
    if (!st)
        st = time_allreduce(buf, r->floats, 0, &warm, err);
    for (int k = 0; k < reps && !st; k++) {
        st = time_allreduce(buf, r->floats, 0, &t1[k], err);
        if (!st)
            st = time_allreduce(buf, r->floats, (size_t)8 << 18, &t2[k], err);
    }
    if (!st) {
        qsort(t1, (size_t)reps, sizeof *t1, cmp_d);
        qsort(t2, (size_t)reps, sizeof *t2, cmp_d);
        r->one_min = t1[0];
        r->one_med = t1[reps / 2];
        r->bucket_min = t2[0];
        r->bucket_med = t2[reps / 2];
    }
    free(buf);
    free(t1);
    free(t2);
    return st;
}

u3d_status u3d_bench_allreduce(u3d_backend *be, int quick, int json,
                               FILE *out, u3d_error *err)
{
    int n = u3d_dist_active() ? u3d_dist_size() : 1, lead = u3d_dist_rank() == 0;
    int reps = quick ? 2 : 7;
    ar_result r[2];
    U3D_TRY(measure("paper", reps, &r[0], err));
    U3D_TRY(measure("small", reps, &r[1], err));
    /* a training iteration of the small preset on every rank at once (the
     * ranks share the host when they share a node) */
    int whd[3] = {quick ? 44 : 96, quick ? 44 : 96, quick ? 44 : 96};
    FILE *null = fopen("/dev/null", "w");
    if (!null)
        return u3d_seterr(err, U3D_ERR_IO, "/dev/null: cannot open");
    double it = 0;
    u3d_status st = u3d_dist_barrier(err);
    if (!st)
        st = u3d_bench_train(be, "small", whd, quick ? 1 : 2, 0, null, &it,
                             err);
    fclose(null);
    if (!st)
        st = u3d_dist_max_f64(&it, 1, err);
    if (st || !lead)
        return st;
    double share = r[1].bucket_med / (it + r[1].bucket_med);
    if (json) {
        fprintf(out, "{\"ranks\": %d, \"allreduce\": [", n);
        for (int i = 0; i < 2; i++)
            fprintf(out,
                    "%s{\"preset\": \"%s\", \"floats\": %zu, "
                    "\"seconds_one_call\": %.6f, \"seconds_buckets\": %.6f, "
                    "\"bus_gbit_s\": %.3f}",
                    i ? ", " : "", r[i].preset, r[i].floats, r[i].one_med,
                    r[i].bucket_med,
                    n > 1 ? 8e-9 * 2.0 * (n - 1) / n * 4.0 *
                                (double)r[i].floats / r[i].one_med
                          : 0.0);
        fprintf(out, "], \"small_iteration_s\": %.4f, \"small_input\": %d, "
                     "\"communication_share\": %.4f}\n",
                it, whd[0], share);
        return U3D_OK;
    }
    fprintf(out, "gradient allreduce (sum of float32) over %d rank%s, %s\n",
            n, n == 1 ? " (no MPI: nothing to exchange)" : "s",
            u3d_dist_host());
    fprintf(out, "  %-6s %10s %9s  %-22s %-22s %s\n", "net", "floats", "MiB",
            "one call (median/min)", "8 MiB buckets", "bus bandwidth");
    for (int i = 0; i < 2; i++) {
        /* ring allreduce moves 2(N-1)/N of the buffer through each link */
        double bus = n > 1 ? 8e-9 * 2.0 * (n - 1) / n * 4.0 *
                                 (double)r[i].floats / r[i].one_med
                           : 0.0;
        fprintf(out, "  %-6s %10zu %9.1f  %8.2f / %8.2f ms  %8.2f / %8.2f ms"
                     "  %.2f Gbit/s\n",
                r[i].preset, r[i].floats,
                4.0 * (double)r[i].floats / 1048576.0, 1e3 * r[i].one_med,
                1e3 * r[i].one_min, 1e3 * r[i].bucket_med,
                1e3 * r[i].bucket_min, bus);
    }
    fprintf(out,
            "training iteration, small preset %dx%dx%d, batch 1 per rank "
            "(slowest rank): %.3f s\n"
            "communication share of an iteration at %d rank%s (buckets, no "
            "overlap counted): %.2f%%\n",
            whd[0], whd[1], whd[2], it, n, n == 1 ? "" : "s", 100.0 * share);
    return U3D_OK;
}
