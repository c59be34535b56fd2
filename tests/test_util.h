/* Shared helpers of the cmocka tests: both backends, random data,
 * comparisons. Include after <setjmp.h>/<cmocka.h> prerequisites. */
#ifndef UNET3D_TEST_UTIL_H
#define UNET3D_TEST_UTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "unet3d/unet3d.h"

typedef struct t_env {
    u3d_backend *cl;  /* device under test (OpenCL, $UNET3D_DEVICE) */
    u3d_backend *ref; /* host reference */
    uint64_t seed;
} t_env;

/* cmocka group setup/teardown: state is a t_env*. */
int t_setup(void **state);
int t_teardown(void **state);

/* The backends every op test runs on (all but "ref", the oracle): the one
 * list of names lives in test_util.c, so a new backend added there runs
 * every case of test_ops.c. Each name u3d_backend_create can make here is
 * created into out[]; each it cannot make prints
 * "<prog>: <name> backend skipped: <error>" once. Returns the count; the
 * caller destroys them. */
#define T_MAX_BACKENDS 8
int t_backends(const char *prog, u3d_backend *out[T_MAX_BACKENDS]);

/* 1 when running under oclgrind (or UNET3D_TEST_SMALL=1): use small shapes,
 * the simulator is ~1000x slower. */
int t_small(void);

/* Deterministic uniform random numbers in [lo, hi). */
float t_randf(uint64_t *seed, float lo, float hi);
int t_randi(uint64_t *seed, int lo, int hi_incl);
float *t_rand_array(uint64_t *seed, size_t n, float lo, float hi);

/* New tensor on be with host data (NULL: zeros); fails the test on error. */
u3d_tensor t_tensor(u3d_backend *be, u3d_shape s, const float *host);
u3d_tensor t_tensor_i32(u3d_backend *be, u3d_shape s, const int32_t *host);
/* Reads a tensor into a new malloc'd array. */
float *t_read(const u3d_tensor *t);
/* Fails the test with the message unless st is U3D_OK. */
void t_ok(u3d_status st, const u3d_error *err, const char *what);

/* Asserts max|got-want| <= tol * max(max|want|, 1) elementwise-normwise;
 * prints the worst index on failure. */
void t_assert_close(const float *got, const float *want, size_t n, double tol,
                    const char *what);
/* Same, comparing two tensors (e.g. device vs reference). */
void t_assert_tensors_close(const u3d_tensor *got, const u3d_tensor *want,
                            double tol, const char *what);
/* An S^3 image of blocks (100 inside, 0 outside, plus noise) and its
 * labels, annotated on every 4th z slice (255 elsewhere). */
void t_blobs(int S, u3d_volume *v, u3d_labels *l);
/* Runs a shell command: its exit status (128 when it did not exit). */
int t_run(const char *cmd);
/* The text of a file (at most n - 1 bytes, NUL-terminated). */
void t_slurp(const char *path, char *buf, size_t n);
/* A fresh folder /tmp/u3d_TAG_PID for a test's files, into dir. */
void t_mkdtemp(char *dir, size_t n, const char *tag);
/* Removes the folder and everything in it; 0 on success (a teardown's
 * status). */
int t_rmtree(const char *dir);
/* dir/name, in one of 8 rotating buffers. */
const char *t_join(const char *dir, const char *name);

/* Sum of a[i]*b[i] in double, the scalar loss of gradient checks. */
double t_dot(const float *a, const float *b, size_t n);

#endif
