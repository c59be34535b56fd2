#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

int t_small(void)
{
    const char *s = getenv("UNET3D_TEST_SMALL");
    if (s && s[0] == '1')
        return 1;
    /* oclgrind's runtime sets this in the processes it wraps */
    return getenv("OCLGRIND_COMPILER_OPTIONS") != NULL ||
           getenv("OCLGRIND_LIBRARY") != NULL;
}

int t_setup(void **state)
{
    t_env *e = calloc(1, sizeof *e);
    u3d_error err = {0};
    u3d_backend_config cfg = {0};
    if (!e)
        return -1;
    cfg.backend = "opencl";
    if (u3d_backend_create(&cfg, &e->cl, &err)) {
        fprintf(stderr, "cannot create the OpenCL backend: %s\n", err.msg);
        free(e);
        return -1;
    }
    if (u3d_backend_ref_create(&e->ref, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    e->seed = 12345;
    *state = e;
    return 0;
}

int t_backends(const char *prog, u3d_backend *out[T_MAX_BACKENDS])
{
    /* every backend u3d_backend_create knows besides "ref" */
    static const char *const names[] = {"opencl", "cudnn"};
    int n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        u3d_backend_config cfg = {0};
        u3d_error err = {0};
        cfg.backend = names[i];
        if (n == T_MAX_BACKENDS)
            break;
        if (u3d_backend_create(&cfg, &out[n], &err)) {
            out[n] = NULL;
            fprintf(stderr, "%s: %s backend skipped: %s\n", prog, names[i],
                    err.msg);
            continue;
        }
        n++;
    }
    return n;
}

int t_teardown(void **state)
{
    t_env *e = *state;
    if (e) {
        u3d_backend_destroy(e->cl);
        u3d_backend_destroy(e->ref);
        free(e);
    }
    return 0;
}

static uint64_t next(uint64_t *s)
{
    /* splitmix64: tiny, good enough for test data */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float t_randf(uint64_t *seed, float lo, float hi)
{
    return lo + (hi - lo) * (float)((next(seed) >> 40) * (1.0 / 16777216.0));
}

int t_randi(uint64_t *seed, int lo, int hi_incl)
{
    return lo + (int)(next(seed) % (uint64_t)(hi_incl - lo + 1));
}

float *t_rand_array(uint64_t *seed, size_t n, float lo, float hi)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = t_randf(seed, lo, hi);
    return a;
}

void t_ok(u3d_status st, const u3d_error *err, const char *what)
{
    if (st != U3D_OK)
        fail_msg("%s failed: %s", what, err ? err->msg : "?");
}

u3d_tensor t_tensor(u3d_backend *be, u3d_shape s, const float *host)
{
    u3d_tensor t;
    u3d_error err = {0};
    t_ok(u3d_tensor_create(be, s, U3D_F32, &t, &err), &err, "tensor create");
    if (host)
        t_ok(u3d_tensor_write(&t, host, &err), &err, "tensor write");
    return t;
}

u3d_tensor t_tensor_i32(u3d_backend *be, u3d_shape s, const int32_t *host)
{
    u3d_tensor t;
    u3d_error err = {0};
    t_ok(u3d_tensor_create(be, s, U3D_I32, &t, &err), &err, "tensor create");
    if (host)
        t_ok(u3d_tensor_write(&t, host, &err), &err, "tensor write");
    return t;
}

float *t_read(const u3d_tensor *t)
{
    u3d_error err = {0};
    float *h = malloc(u3d_tensor_bytes(t));
    assert_non_null(h);
    t_ok(u3d_tensor_read(t, h, &err), &err, "tensor read");
    return h;
}

void t_assert_close(const float *got, const float *want, size_t n, double tol,
                    const char *what)
{
    double amax = 1.0, emax = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > amax)
            amax = fabs(want[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= emax)) { /* also catches NaN */
            emax = isnan(e) ? INFINITY : e;
            worst = i;
        }
    }
    if (!(emax <= tol * amax))
        fail_msg("%s: max error %.3g at index %zu (got %.7g, want %.7g), "
                 "tolerance %.3g x %.3g",
                 what, emax, worst, got[worst], want[worst], tol, amax);
}

void t_assert_tensors_close(const u3d_tensor *got, const u3d_tensor *want,
                            double tol, const char *what)
{
    assert_int_equal(u3d_shape_count(got->shape), u3d_shape_count(want->shape));
    float *a = t_read(got), *b = t_read(want);
    t_assert_close(a, b, u3d_shape_count(got->shape), tol, what);
    free(a);
    free(b);
}

double t_dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

void t_mkdtemp(char *dir, size_t n, const char *tag)
{
    snprintf(dir, n, "/tmp/u3d_%s_%d", tag, (int)getpid());
    mkdir(dir, 0755);
}

int t_rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

const char *t_join(const char *dir, const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

void t_blobs(int S, u3d_volume *v, u3d_labels *l)
{
    u3d_error err = {0};
    uint64_t s = 9;
    t_ok(u3d_volume_alloc(1, S, S, S, v, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(S, S, S, l, &err), &err, "alloc");
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t i = ((size_t)z * S + y) * S + x;
                int in = ((x / 6 + y / 6 + z / 6) % 3) == 0;
                v->data[i] = 100.0f * in + t_randf(&s, 0, 30);
                l->data[i] = (uint16_t)(z % 4 == 0 ? in : 255);
            }
}

int t_run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

void t_slurp(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
}
