/* The tuner's search (internal), apart from any device: a parameter space,
 * a two-stage search (the fixed candidates, then a seeded random sample)
 * within a time budget, driven by a measure callback. `unet3d tune`
 * measures on OpenCL (tuner.c); tests drive it with a fake timer. */
#ifndef UNET3D_TUNE_SEARCH_H
#define UNET3D_TUNE_SEARCH_H
#include <stddef.h>
#include <stdint.h>
#include "unet3d/error.h"

#define U3D_TUNE_MAX_PARAMS 12 /* conv3d_igemm weight: 8 tile, 3 split-K, use */
#define U3D_TUNE_MAX_VALUES 12
#define U3D_TUNE_MAX_FIXED 8

/* What bounds a candidate on the device. */
typedef struct u3d_tune_limits {
    size_t max_wg;    /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    size_t local_mem; /* CL_DEVICE_LOCAL_MEM_SIZE, bytes */
    int is_cpu;
    /* the device for validity functions that ask it themselves (tuner.c
     * passes its u3d_cl); NULL in tests without a device */
    const void *dev;
} u3d_tune_limits;

/* One kernel family and pass: the parameters and their values. A new
 * family is one more entry of this kind (tuner.c's table). */
typedef struct u3d_tune_space {
    const char *family; /* the tuning family the values are stored for */
    const char *pass;   /* "fwd", "data", "weight", ... */
    int nparams;
    const char *params[U3D_TUNE_MAX_PARAMS];
    /* the values of each parameter, 0-terminated; a list may start with
     * the value 0 (switches {0, 1}, padding {0, 1, 2}) */
    int values[U3D_TUNE_MAX_PARAMS][U3D_TUNE_MAX_VALUES];
    /* stage 1: hand-picked candidates (after the one in use) */
    int nfixed;
    int fixed[U3D_TUNE_MAX_FIXED][U3D_TUNE_MAX_PARAMS];
    /* 1 when v fits the device (registers, local memory, work-group
     * limits); NULL: all do */
    int (*valid)(const int *v, const u3d_tune_limits *lim);
} u3d_tune_space;

/* Runs candidate v; 0 and *seconds on success, nonzero when it failed
 * (did not compile, or disagreed with the reference). */
typedef int (*u3d_tune_measure_fn)(void *ctx, const int *v, double *seconds);
/* Monotonic seconds (a fake clock in tests). */
typedef double (*u3d_tune_clock_fn)(void *ctx);

typedef struct u3d_tune_search_opts {
    double budget_s;     /* no candidate starts after this much time */
    uint64_t seed;       /* of the random stage */
    int max_random;      /* most random candidates; 0: 1000 */
    const int *baseline; /* the values in use, measured first; may be NULL */
    /* confirmation (with a baseline): the winner and the baseline are
     * measured again, alternately, `confirm` times each; the winner is
     * kept only when its best time beats the baseline's by `margin`
     * (0.03: 3 %), so a busy machine during the baseline's first run
     * does not crown a slower candidate. 0: no confirmation. */
    int confirm;
    double margin;
} u3d_tune_search_opts;

typedef struct u3d_tune_outcome {
    int found;                       /* a candidate ran and passed */
    int best[U3D_TUNE_MAX_PARAMS];   /* the fastest of them */
    double best_s;
    double baseline_s;               /* < 0: no baseline or it failed */
    int tried, failed, invalid;      /* measured, failed, rejected unrun */
    int out_of_time;                 /* stopped by the budget */
    int confirmed;                   /* 1: the winner beat the baseline
                                        again; 0: not confirmed (the
                                        baseline is kept) or no check */
} u3d_tune_outcome;

/* Measures the baseline, the fixed candidates, then random ones until the
 * budget or max_random is spent; skips invalid and repeated candidates
 * and counts failing ones. Ties keep the earlier candidate. Then the
 * confirmation (see u3d_tune_search_opts), which may run past the
 * budget by 2 * confirm measurements. */
u3d_status u3d_tune_search(const u3d_tune_space *sp,
                           const u3d_tune_limits *lim,
                           const u3d_tune_search_opts *o,
                           u3d_tune_measure_fn measure,
                           u3d_tune_clock_fn clock, void *ctx,
                           u3d_tune_outcome *out, u3d_error *err);

/* "vw16 cob8 acc16" from a candidate. */
void u3d_tune_format(const u3d_tune_space *sp, const int *v, char *out,
                     size_t n);

#endif
