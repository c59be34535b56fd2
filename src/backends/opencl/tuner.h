/* `unet3d tune` on an OpenCL device (internal): every family, pass and
 * shape bucket of tuner.c's table is searched (tune_search.h), each
 * candidate checked against the reference backend before it is timed,
 * and the winners written atomically into the user's tuned file
 * (tuning.h). */
#ifndef UNET3D_TUNER_H
#define UNET3D_TUNER_H
#include <stdint.h>
#include <stdio.h>
#include "unet3d/unet3d.h"

typedef struct u3d_tuner_opts {
    double minutes;   /* whole budget */
    uint64_t seed;    /* of the random stage */
    const char *only; /* "family" or "family/pass"; NULL: all */
    const char *out;  /* the tuned file; NULL: the cache folder's */
} u3d_tuner_opts;

/* Tunes be (the opencl backend), progress on log; the file written goes
 * to path (n bytes). */
u3d_status u3d_tuner_run(u3d_backend *be, const u3d_tuner_opts *o,
                         FILE *log, char *path, size_t n, u3d_error *err);

struct u3d_tune_space;
/* The parameter space tuned for family and pass (tests check its fixed
 * candidates on the device); NULL when the table has none. */
const struct u3d_tune_space *u3d_tuner_space(const char *family,
                                             const char *pass);

#endif
