/* Golden-fixture runner: PyTorch cases (case.txt + .npy) against a backend.
 * Format: ../shared/golden/README.md. Each op family has a handler in
 * src/golden/golden_FAMILY.c (internal header). */
#ifndef UNET3D_GOLDEN_H
#define UNET3D_GOLDEN_H
#include <stdio.h>
#include "unet3d/unet3d.h"
#include "golden/npy.h"

/* Documented tolerances (README): normwise relative error
 * max|got-want| / max(max|want|, tiny). */
#define U3D_GOLDEN_TOL_FWD 1e-4
#define U3D_GOLDEN_TOL_GRAD 1e-3

typedef struct golden_kv {
    char key[64];
    char *value;
} golden_kv;

typedef struct golden_case {
    char dir[1024];
    char name[256];
    int nkv;
    golden_kv kv[64];
} golden_case;

typedef struct golden_report {
    int checked;
    int failed;
    double max_abs;     /* worst over compared tensors */
    double max_rel;
    char first_fail[256]; /* name and numbers of the first failing tensor */
} golden_report;

/* Value of key in case.txt, or NULL. */
const char *golden_get(const golden_case *c, const char *key);
/* Integer/float key with a clear error if missing or unparsable. */
u3d_status golden_int(const golden_case *c, const char *key, int *out,
                      u3d_error *err);
u3d_status golden_float(const golden_case *c, const char *key, float *out,
                        u3d_error *err);
u3d_status golden_double(const golden_case *c, const char *key, double *out,
                         u3d_error *err);
/* Loads NAME.npy of the case. */
u3d_status golden_npy(const golden_case *c, const char *name, u3d_npy *out,
                      u3d_error *err);
/* Shape of an array as N,C,D,H,W: 5-d as is, 4-d labels (N,D,H,W) as
 * (N,1,D,H,W), 1-d vectors (C) as (1,C,1,1,1). */
u3d_status golden_shape(const golden_case *c, const char *name,
                        const u3d_npy *a, u3d_shape *out, u3d_error *err);
/* Loads NAME.npy into a new tensor on be (dtype from the file). */
u3d_status golden_tensor(u3d_backend *be, const golden_case *c,
                         const char *name, u3d_tensor *out, u3d_error *err);
/* golden_tensor, then requires dtype dt and, unless s is NULL, shape *s. */
u3d_status golden_load(u3d_backend *be, const golden_case *c, const char *name,
                       u3d_dtype dt, const u3d_shape *s, u3d_tensor *out,
                       u3d_error *err);
/* U3D_ERR_SHAPE naming NAME.npy unless its shape `have` is `want`. */
u3d_status golden_want_shape(const golden_case *c, const char *name,
                             u3d_shape have, u3d_shape want, u3d_error *err);
/* An integer per axis (D, H, W): "3" for all three or "1,3,3". */
u3d_status golden_int3(const golden_case *c, const char *key, int out[3],
                       u3d_error *err);
/* The keys kernel and stride, equal per axis and each 2 or 1 ("2", or
 * "1,2,2" for anisotropic levels), into f (`op` names the operation in
 * the message). */
u3d_status golden_window(const golden_case *c, const char *op, int f[3],
                         u3d_error *err);
/* Compares a device tensor with NAME.npy under tol; records in rep. */
u3d_status golden_check(const golden_case *c, golden_report *rep,
                        const char *name, const u3d_tensor *got, double tol,
                        u3d_error *err);
/* Compares host floats with NAME.npy. */
u3d_status golden_check_host(const golden_case *c, golden_report *rep,
                             const char *name, const float *got, size_t n,
                             double tol, u3d_error *err);
/* One row of golden_check_all: got against NAME.npy under tol; a row with
 * got NULL (an output the case does not have) is skipped. */
typedef struct golden_expect {
    const char *name;
    const u3d_tensor *got;
    double tol;
} golden_expect;
/* golden_check of each row in order; stops at the first error. */
u3d_status golden_check_all(const golden_case *c, golden_report *rep,
                            const golden_expect *rows, size_t n,
                            u3d_error *err);

typedef u3d_status (*golden_handler)(u3d_backend *be, const golden_case *c,
                                     golden_report *rep, u3d_error *err);

u3d_status golden_relu(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_conv3d(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_upconv3d(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_maxpool3d(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_batchnorm3d(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_softmax_ce(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_sgd(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_adam(u3d_backend *, const golden_case *, golden_report *, u3d_error *);
u3d_status golden_unet3d(u3d_backend *, const golden_case *, golden_report *, u3d_error *);

/* Runs every case under the given folders (a folder with case.txt is one
 * case; otherwise its subfolders are scanned). Prints one line per case.
 * *failed counts failing, erroring and unsupported cases. */
u3d_status u3d_golden_run(u3d_backend *be, char **paths, int npaths,
                          FILE *out, int *passed, int *failed, u3d_error *err);

#endif
