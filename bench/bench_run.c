/* The benchmark driver: peak, bandwidth, SGEMM, ops, then the ratios. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench.h"

double u3d_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double u3d_bench_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void u3d_bench_row_error(u3d_bench_row *row, u3d_status st,
                         const u3d_error *err)
{
    row->state =
        st == U3D_ERR_UNSUPPORTED ? U3D_BENCH_UNSUPPORTED : U3D_BENCH_FAILED;
    snprintf(row->note, sizeof row->note, "%s%s%s",
             st == U3D_ERR_UNSUPPORTED ? "" : u3d_status_name(st),
             st == U3D_ERR_UNSUPPORTED ? "" : ": ", err->msg);
}

/* One run and its wait; *sec the wall time of both. */
static u3d_status timed_run(u3d_backend *be, u3d_bench_fn fn, void *ctx,
                            double *sec, u3d_error *err)
{
    double t0 = u3d_bench_now();
    u3d_status st = fn(ctx, err);
    if (!st)
        st = u3d_backend_finish(be, err);
    *sec = u3d_bench_now() - t0;
    return st;
}

#define BENCH_BUDGET_S 1.0
#define BENCH_MAX_REPS 20

void u3d_bench_time(u3d_backend *be, const u3d_bench_opts *o, u3d_bench_fn fn,
                    void *ctx, u3d_bench_row *row)
{
    u3d_error e = {0};
    double warm = 0, t[BENCH_MAX_REPS];
    u3d_status st = timed_run(be, fn, ctx, &warm, &e); /* builds kernels */
    if (st) {
        u3d_bench_row_error(row, st, &e);
        return;
    }
    int reps = o->reps > 0 ? o->reps : o->quick ? 1
                                     : (int)(BENCH_BUDGET_S / (warm + 1e-9));
    reps = reps < 1 ? 1 : reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : reps;
    for (int i = 0; i < reps; i++) {
        st = timed_run(be, fn, ctx, &t[i], &e);
        if (st) {
            u3d_bench_row_error(row, st, &e);
            return;
        }
    }
    row->reps = reps;
    row->ms = 1e3 * u3d_bench_median(t, reps);
    row->rate = row->ms > 0 ? row->work / (row->ms * 1e-3) * 1e-9 : 0;
    row->state = U3D_BENCH_OK;
}

/* Whether `name` is one of the comma-separated words of list. */
static int in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && !strncmp(p, name, n))
            return 1;
        p += n + (e ? 1 : 0);
    }
    return 0;
}

int u3d_bench_selected(const u3d_bench_opts *o, const char *name)
{
    return !o->only || !o->only[0] || in_list(o->only, name);
}

static int known_name(const char *w, size_t n)
{
    const char *names[U3D_BENCH_MAX_OPS + U3D_BENCH_MAX_SGEMM + 1];
    int k = u3d_bench_op_names(names, U3D_BENCH_MAX_OPS);
    for (int i = 0; u3d_bench_sgemm_names[i]; i++)
        names[k++] = u3d_bench_sgemm_names[i];
    names[k++] = "peak";
    for (int i = 0; i < k; i++)
        if (strlen(names[i]) == n && !strncmp(names[i], w, n))
            return 1;
    return 0;
}

u3d_status u3d_bench_check_only(const u3d_bench_opts *o, u3d_error *err)
{
    if (!o->only)
        return U3D_OK;
    for (const char *p = o->only; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!known_name(p, n))
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "unknown bench entry '%.*s'; 'unet3d bench "
                              "--list' names them",
                              (int)n, p);
        p += n + (e ? 1 : 0);
    }
    return U3D_OK;
}

void u3d_bench_fill_ratios(u3d_bench_report *r)
{
    for (int i = 0; i < r->nops; i++) {
        u3d_bench_row *w = &r->ops[i];
        w->pct_peak = w->vs_sgemm = -1;
        if (w->state != U3D_BENCH_OK)
            continue;
        double peak = w->is_flops ? r->peak_gflops : r->peak_gbs;
        double done = w->work_done > 0 && w->work > 0
                          ? w->rate * w->work_done / w->work
                          : w->rate;
        if (peak > 0)
            w->pct_peak = 100.0 * done / peak;
        if (w->is_flops && r->sgemm_best > 0)
            w->vs_sgemm = w->rate / r->sgemm_best;
    }
    for (int i = 0; i < r->nsgemm; i++) {
        u3d_bench_row *w = &r->sgemm[i];
        w->pct_peak = w->vs_sgemm = -1;
        if (w->state != U3D_BENCH_OK)
            continue;
        if (r->peak_gflops > 0)
            w->pct_peak = 100.0 * w->rate / r->peak_gflops;
        if (r->sgemm_best > 0)
            w->vs_sgemm = w->rate / r->sgemm_best;
    }
}

/* Peak and bandwidth; failures go to peak_note, the bench goes on. */
static void run_peaks(u3d_backend *be, const u3d_bench_opts *o,
                      u3d_bench_report *r)
{
    u3d_error e = {0};
    if (u3d_bench_peak(be, o, &r->peak_gflops, r->peak_config,
                       sizeof r->peak_config, &e)) {
        snprintf(r->peak_note, sizeof r->peak_note, "FMA peak: %s", e.msg);
        return;
    }
    if (u3d_bench_bandwidth(be, o, &r->peak_gbs, &e))
        snprintf(r->peak_note, sizeof r->peak_note, "bandwidth: %s", e.msg);
}

/* The rows above the FMA peak, "name (x %)" separated by commas, in buf;
 * their count. */
static int rows_above(const u3d_bench_report *r, char *buf, size_t n)
{
    int k = 0;
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < r->nops; i++) {
        const u3d_bench_row *w = &r->ops[i];
        if (w->state != U3D_BENCH_OK || !w->is_flops || w->pct_peak <= 100.0)
            continue;
        if (used < n)
            used += (size_t)snprintf(buf + used, n - used, "%s%s (%.0f%%)",
                                     k ? ", " : "", w->name, w->pct_peak);
        k++;
    }
    return k;
}

/* No row may stand above the peak: a row above it makes the bench measure
 * the peak again, longer, and what stays above is reported. */
static void recheck_peak(u3d_backend *be, const u3d_bench_opts *o,
                         u3d_bench_report *r)
{
    char buf[256];
    if (r->peak_gflops <= 0 || !rows_above(r, buf, sizeof buf))
        return;
    double g = 0;
    char cfg[64];
    u3d_error e = {0};
    if (u3d_bench_peak_ex(be, o, 6, &g, cfg, sizeof cfg, &e) == U3D_OK &&
        g > r->peak_gflops) {
        r->peak_gflops = g;
        snprintf(r->peak_config, sizeof r->peak_config, "%s", cfg);
    }
    r->peak_remeasured = 1;
    u3d_bench_fill_ratios(r);
    rows_above(r, r->above_peak, sizeof r->above_peak);
}

u3d_status u3d_bench_run(u3d_backend *be, const u3d_bench_opts *o,
                         u3d_bench_report *r, u3d_error *err)
{
    memset(r, 0, sizeof *r);
    u3d_status st = u3d_bench_check_only(o, err);
    if (st)
        return st;
    snprintf(r->device, sizeof r->device, "%s", u3d_backend_device(be));
    snprintf(r->backend, sizeof r->backend, "%s", u3d_backend_name(be));
    /* the peak is always measured: every percentage needs it */
    if (o->verbose)
        fprintf(stderr, "bench: FMA peak and bandwidth...\n");
    run_peaks(be, o, r);
    r->peak_theoretical = u3d_bench_theoretical(be, r->peak_theoretical_how,
                                                sizeof r->peak_theoretical_how);
    u3d_bench_sgemm_all(be, o, r);
    u3d_bench_ops_all(be, o, r);
    u3d_bench_fill_ratios(r);
    if (!o->quick)
        recheck_peak(be, o, r);
    return U3D_OK;
}
