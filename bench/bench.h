/* Benchmarks of `unet3d bench` (internal): device FMA peak, memory
 * bandwidth, CLBlast SGEMM and the layer operations of ops.h on the paper's
 * shapes. The command (bench.c) parses options and prints; the rest fills a
 * u3d_bench_report that tests can inspect. */
#ifndef UNET3D_BENCH_H
#define UNET3D_BENCH_H

#include <stdio.h>
#include "unet3d/unet3d.h"
#include "core/backend_impl.h" /* bench reads buffers at offsets */

#define U3D_BENCH_MAX_SGEMM 4
#define U3D_BENCH_MAX_OPS 48

typedef struct u3d_bench_opts {
    int quick;        /* tiny sizes, 1 repetition (tests, smoke runs) */
    int reps;         /* timed repetitions per entry; 0: adaptive */
    const char *only; /* comma-separated entry names; NULL: everything */
    int verbose;      /* progress and peak variants on stderr */
} u3d_bench_opts;

typedef enum u3d_bench_state {
    U3D_BENCH_OK = 0,
    U3D_BENCH_UNSUPPORTED, /* the backend lacks the op (not an error) */
    U3D_BENCH_SKIPPED,     /* not applicable here (e.g. SGEMM off OpenCL) */
    U3D_BENCH_FAILED       /* out of memory or another error: see note */
} u3d_bench_state;

/* One measured entry. Rates are of the median time. */
typedef struct u3d_bench_row {
    char name[48];
    char shape[96];
    u3d_bench_state state;
    int is_flops;    /* 1: rate in GFLOP/s, 0: in GB/s */
    double work;     /* flops, or bytes read + written once, of one run */
    double work_done; /* flops the kernels execute when they differ from
                         work (a Winograd convolution), else 0: rate is of
                         work, pct_peak of work_done */
    double ms;       /* median time of the timed runs */
    double rate;     /* GFLOP/s or GB/s */
    double pct_peak; /* % of the FMA peak (flops) or of the copy bandwidth
                        (bytes); < 0 when unknown */
    double vs_sgemm; /* rate / best CLBlast SGEMM rate; < 0 when unknown */
    int reps;
    char note[256]; /* why unsupported, skipped or failed */
    char config[160]; /* the kernel configuration it ran (OpenCL conv) */
} u3d_bench_row;

typedef struct u3d_bench_report {
    char device[256];
    char backend[32];
    double peak_gflops; /* 0 when not measured */
    char peak_config[64];
    double peak_gbs; /* copy bandwidth; 0 when not measured */
    char peak_note[256];
    /* clock x units x lanes x 2 where the device reports them (CPUs); 0
     * otherwise */
    double peak_theoretical;
    char peak_theoretical_how[160];
    /* rows above the peak made the bench measure it again (longer); the
     * rows still above it after that, if any */
    int peak_remeasured;
    char above_peak[256];
    u3d_bench_row sgemm[U3D_BENCH_MAX_SGEMM];
    int nsgemm;
    double sgemm_best; /* best SGEMM GFLOP/s; 0 when none ran */
    u3d_bench_row ops[U3D_BENCH_MAX_OPS];
    int nops;
} u3d_bench_report;

/* FMA throughput of the device in GFLOP/s (2 flops per FMA per lane); the
 * best of several vector widths, accumulator counts and work-group sizes,
 * in rounds until it stops rising. config (may be NULL) receives a
 * description of the winning variant. OpenCL only: U3D_ERR_UNSUPPORTED on
 * another backend. */
u3d_status u3d_bench_peak(u3d_backend *be, const u3d_bench_opts *o,
                          double *gflops, char *config, size_t config_len,
                          u3d_error *err);
/* The same with at least min_rounds rounds (a re-measurement). */
u3d_status u3d_bench_peak_ex(u3d_backend *be, const u3d_bench_opts *o,
                             int min_rounds, double *gflops, char *config,
                             size_t config_len, u3d_error *err);
/* The device's reported clock x compute units x native float lanes x 2,
 * for CPUs (GPUs do not report their lanes); how says so. 0: unknown. */
double u3d_bench_theoretical(u3d_backend *be, char *how, size_t n);

/* Device memory bandwidth of a float4 copy in GB/s (read + write). */
u3d_status u3d_bench_bandwidth(u3d_backend *be, const u3d_bench_opts *o,
                               double *gbs, u3d_error *err);

/* Runs everything o selects into r. Entry failures are recorded in their
 * rows; the return is an error only for bad options (unknown --only name). */
u3d_status u3d_bench_run(u3d_backend *be, const u3d_bench_opts *o,
                         u3d_bench_report *r, u3d_error *err);

void u3d_bench_print_table(const u3d_bench_report *r, FILE *out);
/* One JSON object: {device, backend, peak_gflops, peak_gbs, sgemm_gflops:
 * {name: GFLOP/s}, ops: [{name, shape, status, ms, gflops|gbs, pct_peak,
 * vs_sgemm}]}; unknown numbers are null. */
void u3d_bench_print_json(const u3d_bench_report *r, FILE *out);

/* Internal to bench/: SGEMM and op entries, helpers. */
void u3d_bench_sgemm_all(u3d_backend *be, const u3d_bench_opts *o,
                         u3d_bench_report *r);
void u3d_bench_ops_all(u3d_backend *be, const u3d_bench_opts *o,
                       u3d_bench_report *r);
/* Whether entry `name` is selected by o->only. */
int u3d_bench_selected(const u3d_bench_opts *o, const char *name);
/* Validates o->only against the known entry names. */
u3d_status u3d_bench_check_only(const u3d_bench_opts *o, u3d_error *err);
double u3d_bench_now(void); /* monotonic seconds */
/* One run of an entry; the bench waits with u3d_backend_finish after it. */
typedef u3d_status (*u3d_bench_fn)(void *ctx, u3d_error *err);
/* Warm-up run, then timed runs (o->reps, 1 when quick, else as many as fit
 * about a second, 1..20): fills row ms (median), rate, reps and state;
 * U3D_ERR_UNSUPPORTED marks the row unsupported, other errors failed. */
void u3d_bench_time(u3d_backend *be, const u3d_bench_opts *o, u3d_bench_fn fn,
                    void *ctx, u3d_bench_row *row);
/* Marks row failed (or unsupported) with the message of err. */
void u3d_bench_row_error(u3d_bench_row *row, u3d_status st,
                         const u3d_error *err);
double u3d_bench_median(double *v, int n); /* sorts v */
/* Rows' SGEMM and peak ratios, once peak and SGEMM are known. */
void u3d_bench_fill_ratios(u3d_bench_report *r);
/* Entry names, for --only validation and usage; NULL-terminated. */
extern const char *const u3d_bench_sgemm_names[];
int u3d_bench_op_names(const char **names, int max);

/* One training iteration of a preset network at input in (D,H,W): best
 * time over iters runs after a warm-up, voxels/s, and the share of device
 * time per layer type (OpenCL: from a profiled extra iteration). */
u3d_status u3d_bench_train(u3d_backend *be, const char *preset,
                           const int in[3], int iters, int json, FILE *out,
                           double *best_s, u3d_error *err);
/* One inference tile of a preset network at input in (D,H,W), as predict
 * runs it (running batch-norm statistics, the inference plan), warm: best
 * time over iters runs, and GFLOP/s of its convolutions. */
u3d_status u3d_bench_infer(u3d_backend *be, const char *preset,
                           const int in[3], int iters, int json, FILE *out,
                           double *best_s, u3d_error *err);

/* Gradient allreduce over the MPI ranks (bench_allreduce.c): the paper
 * network's and the small preset's gradients, one call and 8 MiB buckets,
 * and the communication share of a small-preset iteration. Collective:
 * every rank calls it; rank 0 prints. */
u3d_status u3d_bench_allreduce(u3d_backend *be, int quick, int json,
                               FILE *out, u3d_error *err);

/* Augmentation of one paper-sized 3-channel patch with labels: device
 * time, the plain-C host implementation's time, and (with_train) its share
 * of a paper-net training iteration on the same device. */
u3d_status u3d_bench_augment(u3d_backend *be, int quick, int with_train,
                             int json, FILE *out, u3d_error *err);

#endif
