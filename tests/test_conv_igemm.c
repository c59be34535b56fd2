/* The implicit-GEMM convolution of the OpenCL backend (conv3d_igemm.c)
 * beyond the op-test table (which runs it through test_ops_igemm_*):
 * anisotropic kernels and padding per axis (1x3x3 and others, which the
 * public op cannot express yet) against a double-precision host
 * convolution, for the three passes, bias and fused ReLU; the tile
 * parameters' validity check the tuner relies on; the path choice. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/conv3d_igemm.h"
#include "test_util.h"

/* The same tolerances as test_opencl_ops.c: float sums of Cin*taps
 * products (forward, data gradient), of N*D*H*W products (weights). */
#define TOL_FWD 1e-5
#define TOL_DATA 1e-5
#define TOL_WEIGHT 1e-4

typedef struct aniso_case {
    int n, cin, cout, d, h, w;
    int k[3], pad[3];
} aniso_case;

typedef struct host_conv {
    float *x, *w, *b, *dy;            /* inputs */
    double *y, *dx, *dw, *db;         /* reference outputs */
    u3d_shape xs, ws, bs, ys;
} host_conv;

static int out_len(int in, int k, int pad) { return in + 2 * pad - k + 1; }

/* Flat index of voxel v of channel c of sample n in a (N, C, d) volume. */
static size_t vox(int n, int c, int nc, const int d[3], const int v[3])
{
    return ((((size_t)n * nc + c) * d[0] + v[0]) * d[1] + v[1]) * d[2] + v[2];
}

/* Output voxel o of (n, co) with dy value g: returns its conv sum and adds
 * g's terms to dx and dw. */
static double out_voxel(const aniso_case *c, host_conv *h, int n, int co,
                        const int o[3], double g)
{
    const int in[3] = {c->d, c->h, c->w};
    double s = 0;
    for (int ci = 0; ci < c->cin; ci++)
        for (int t = 0; t < c->k[0] * c->k[1] * c->k[2]; t++) {
            int tap[3] = {t / (c->k[1] * c->k[2]), t / c->k[2] % c->k[1],
                          t % c->k[2]},
                v[3], inside = 1;
            for (int a = 0; a < 3; a++) {
                v[a] = o[a] + tap[a] - c->pad[a];
                inside &= v[a] >= 0 && v[a] < in[a];
            }
            if (!inside)
                continue;
            size_t xi = vox(n, ci, c->cin, in, v);
            size_t wi = ((size_t)co * c->cin + ci) * (size_t)(c->k[0] *
                        c->k[1] * c->k[2]) + (size_t)t;
            s += (double)h->w[wi] * h->x[xi];
            h->dx[xi] += g * h->w[wi];
            h->dw[wi] += g * h->x[xi];
        }
    return s;
}

/* y = conv(x, w) + b, dx, dw and db for dy, in double, by definition. */
static void host_reference(const aniso_case *c, host_conv *h)
{
    const int od[3] = {(int)h->ys.d, (int)h->ys.h, (int)h->ys.w};
    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->cout; co++)
            for (int i = 0; i < od[0] * od[1] * od[2]; i++) {
                int o[3] = {i / (od[1] * od[2]), i / od[2] % od[1],
                            i % od[2]};
                size_t yi = vox(n, co, c->cout, od, o);
                double g = h->dy[yi];
                h->db[co] += g;
                h->y[yi] = h->b[co] + out_voxel(c, h, n, co, o, g);
            }
}

static float *to_float(const double *v, size_t n, int relu)
{
    float *f = malloc(n * sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)(relu && v[i] < 0 ? 0 : v[i]);
    return f;
}

static void host_make(const aniso_case *c, uint64_t *seed, host_conv *h)
{
    h->xs = u3d_shape5(c->n, c->cin, c->d, c->h, c->w);
    h->ws = u3d_shape5(c->cout, c->cin, c->k[0], c->k[1], c->k[2]);
    h->bs = u3d_shape5(1, c->cout, 1, 1, 1);
    h->ys = u3d_shape5(c->n, c->cout, out_len(c->d, c->k[0], c->pad[0]),
                       out_len(c->h, c->k[1], c->pad[1]),
                       out_len(c->w, c->k[2], c->pad[2]));
    h->x = t_rand_array(seed, u3d_shape_count(h->xs), -1, 1);
    h->w = t_rand_array(seed, u3d_shape_count(h->ws), -1, 1);
    h->b = t_rand_array(seed, u3d_shape_count(h->bs), -1, 1);
    h->dy = t_rand_array(seed, u3d_shape_count(h->ys), -1, 1);
    h->y = calloc(u3d_shape_count(h->ys), sizeof(double));
    h->dx = calloc(u3d_shape_count(h->xs), sizeof(double));
    h->dw = calloc(u3d_shape_count(h->ws), sizeof(double));
    h->db = calloc((size_t)c->cout, sizeof(double));
    assert_true(h->y && h->dx && h->dw && h->db);
    host_reference(c, h);
}

static void host_free(host_conv *h)
{
    void *p[] = {h->x, h->w, h->b, h->dy, h->y, h->dx, h->dw, h->db};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++)
        free(p[i]);
}

/* got (a device tensor) against the reference values want. */
static void expect(const u3d_tensor *got, const double *want, int relu,
                   double tol, const char *what)
{
    size_t n = u3d_shape_count(got->shape);
    float *g = t_read(got), *w = to_float(want, n, relu);
    t_assert_close(g, w, n, tol, what);
    free(g);
    free(w);
}

static void run_aniso(t_env *e, const aniso_case *c)
{
    host_conv h;
    host_make(c, &e->seed, &h);
    char what[160];
    snprintf(what, sizeof what, "k %dx%dx%d pad %d,%d,%d N%d %d->%d", c->k[0],
             c->k[1], c->k[2], c->pad[0], c->pad[1], c->pad[2], c->n, c->cin,
             c->cout);
    u3d_backend *be = e->cl;
    u3d_tensor x = t_tensor(be, h.xs, h.x), w = t_tensor(be, h.ws, h.w),
               b = t_tensor(be, h.bs, h.b), dy = t_tensor(be, h.ys, h.dy),
               y = t_tensor(be, h.ys, NULL), dx = t_tensor(be, h.xs, NULL),
               dw = t_tensor(be, h.ws, NULL), db = t_tensor(be, h.bs, NULL);
    u3d_igemm_conv cv = {{c->k[0], c->k[1], c->k[2]},
                         {c->pad[0], c->pad[1], c->pad[2]},
                         0};
    u3d_error err = {0};
    for (int relu = 0; relu < 2; relu++) {
        cv.relu = relu;
        t_ok(u3d_cl_igemm_conv_forward(e->cl, &cv, &x, &w, &b, &y, &err),
             &err, what);
        expect(&y, h.y, relu, TOL_FWD, what);
    }
    cv.relu = 0;
    t_ok(u3d_cl_igemm_conv_backward_data(e->cl, &cv, &dy, &w, &dx, &err),
         &err, what);
    expect(&dx, h.dx, 0, TOL_DATA, what);
    t_ok(u3d_cl_igemm_conv_backward_weight(e->cl, &cv, &x, &dy, &dw, &db,
                                           &err),
         &err, what);
    expect(&dw, h.dw, 0, TOL_WEIGHT, what);
    expect(&db, h.db, 0, TOL_WEIGHT, what);
    u3d_tensor *all[] = {&x, &w, &b, &dy, &y, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        u3d_tensor_release(all[i]);
    host_free(&h);
}

/* 1x3x3 "same" (the experiments issue's kernel), and kernels and padding
 * that differ on every axis, valid and padded, one output plane. */
static void igemm_anisotropic(void **state)
{
    static const aniso_case cs[] = {
        {2, 3, 5, 4, 5, 7, {1, 3, 3}, {0, 1, 1}},
        {1, 4, 3, 5, 4, 6, {3, 1, 2}, {1, 0, 0}},
        {2, 2, 6, 3, 6, 5, {2, 3, 1}, {1, 2, 0}},
        {1, 3, 2, 1, 6, 9, {1, 3, 3}, {0, 0, 0}},
        {1, 5, 4, 3, 3, 4, {3, 3, 1}, {0, 1, 0}},
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
        run_aniso(*state, &cs[i]);
}

static u3d_cl *cl_of(t_env *e) { return u3d_cl_of(e->cl); }

/* The defaults run on this device; each broken limit is refused with its
 * reason (what the tuner's candidates are filtered by). */
static void igemm_validity(void **state)
{
    u3d_cl *cl = cl_of(*state);
    char why[160];
    for (int pass = 0; pass < 2; pass++) {
        u3d_igemm_cfg c = u3d_cl_igemm_config(cl, (u3d_igemm_pass)pass);
        assert_true(u3d_cl_igemm_valid(cl, (u3d_igemm_pass)pass, &c, 27, why,
                                       sizeof why));
    }
    static const struct {
        u3d_igemm_cfg c;
        const char *why;
    } bad[] = {
        {{30, 64, 16, 8, 16, 2, 4, 1}, "MDIMC"},          /* 30 % 8 */
        {{64, 64, 16, 8, 16, 3, 4, 1}, "VWM"},            /* width 3 */
        {{64, 64, 16, 8, 16, 16, 4, 1}, "multiples"},     /* 64 vectors */
        {{16, 16, 1 << 16, 4, 4, 1, 1, 0}, "local memory"},
        {{128, 128, 128, 128, 128, 1, 1, 0}, "work-group"},
        {{64, 64, 16, 8, 16, 4, 4, -1}, "positive"},
        {{128, 128, 16, 4, 4, 4, 4, 0}, "register tile"}, /* 32x32 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = 0;
        assert_false(u3d_cl_igemm_valid(cl, U3D_IGEMM_FWD, &bad[i].c, 27, why,
                                        sizeof why));
        if (!strstr(why, bad[i].why))
            fail_msg("bad set %zu: reason '%s' lacks '%s'", i, why,
                     bad[i].why);
    }
    /* the weight gradient loads along K: KWG must hold whole vectors */
    u3d_igemm_cfg c = {32, 64, 6, 8, 16, 4, 4, 1};
    assert_false(u3d_cl_igemm_valid(cl, U3D_IGEMM_BWW, &c, 27, NULL, 0));
}

/* UNET3D_CONV_PATH overrides; without it CPUs (and oclgrind) take the
 * direct kernels, GPUs and accelerators the implicit GEMM. */
static void igemm_path_choice(void **state)
{
    u3d_cl *cl = cl_of(*state);
    const char *old = getenv("UNET3D_CONV_PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("UNET3D_CONV_PATH", "igemm", 1);
    assert_int_equal(u3d_cl_conv_path(cl), U3D_CL_CONV_IGEMM);
    setenv("UNET3D_CONV_PATH", "direct", 1);
    assert_int_equal(u3d_cl_conv_path(cl), U3D_CL_CONV_DIRECT);
    unsetenv("UNET3D_CONV_PATH");
    int gpu = (cl->type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) &&
              !cl->is_oclgrind;
    if (u3d_cl_tune(cl, "conv3d", "path", 0) == 0)
        assert_int_equal(u3d_cl_conv_path(cl),
                         gpu ? U3D_CL_CONV_IGEMM : U3D_CL_CONV_DIRECT);
    if (saved) {
        setenv("UNET3D_CONV_PATH", saved, 1);
        free(saved);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(igemm_anisotropic),
        cmocka_unit_test(igemm_validity),
        cmocka_unit_test(igemm_path_choice),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
