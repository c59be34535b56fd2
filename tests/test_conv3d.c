/* conv3d: device vs reference (forward, backward-data, backward-weight) on
 * random shapes and several kernel blockings, finite-difference checks of
 * the backward ops, determinism, and bad inputs. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

/* Tolerances, normwise relative to max(max|ref|, 1). The reference sums in
 * double; the device sums Cin*k^3 float products per output (forward and
 * data gradient), and up to N*D*H*W products per weight gradient, in
 * float, hence the larger tolerance for the long reductions. */
#define TOL_FWD 1e-5
#define TOL_DATA 1e-5
#define TOL_WEIGHT 1e-4

typedef struct conv_shape {
    int n, cin, cout, d, h, w, k, pad, bias;
} conv_shape;

static u3d_shape out_shape(const conv_shape *c)
{
    u3d_conv3d_params p = {c->k, c->pad};
    return u3d_shape5(c->n, c->cout, u3d_conv3d_out_size(c->d, &p),
                      u3d_conv3d_out_size(c->h, &p),
                      u3d_conv3d_out_size(c->w, &p));
}

/* Runs all three ops on both backends and compares. */
static void check_case(t_env *e, const conv_shape *c)
{
    u3d_conv3d_params p = {c->k, c->pad};
    u3d_shape xs = u3d_shape5(c->n, c->cin, c->d, c->h, c->w);
    u3d_shape ws = u3d_shape5(c->cout, c->cin, c->k, c->k, c->k);
    u3d_shape bs = u3d_shape5(1, c->cout, 1, 1, 1);
    u3d_shape ys = out_shape(c);
    float *x = t_rand_array(&e->seed, u3d_shape_count(xs), -1, 1);
    float *w = t_rand_array(&e->seed, u3d_shape_count(ws), -1, 1);
    float *b = t_rand_array(&e->seed, u3d_shape_count(bs), -1, 1);
    float *dy = t_rand_array(&e->seed, u3d_shape_count(ys), -1, 1);
    u3d_backend *bes[2] = {e->cl, e->ref};
    u3d_tensor t[2][8];
    u3d_error err = {0};
    char what[160];
    snprintf(what, sizeof what, "N%d %d->%d %dx%dx%d k%d pad%d bias%d", c->n,
             c->cin, c->cout, c->d, c->h, c->w, c->k, c->pad, c->bias);
    for (int i = 0; i < 2; i++) {
        u3d_tensor *T = t[i];
        T[0] = t_tensor(bes[i], xs, x);
        T[1] = t_tensor(bes[i], ws, w);
        T[2] = t_tensor(bes[i], bs, b);
        T[3] = t_tensor(bes[i], ys, dy);
        T[4] = t_tensor(bes[i], ys, NULL);
        T[5] = t_tensor(bes[i], xs, NULL);
        T[6] = t_tensor(bes[i], ws, NULL);
        T[7] = t_tensor(bes[i], bs, NULL);
        /* outputs must be overwritten, not accumulated: start from junk */
        t_ok(u3d_tensor_fill(&T[4], 7.0f, &err), &err, "fill");
        t_ok(u3d_tensor_fill(&T[5], 7.0f, &err), &err, "fill");
        t_ok(u3d_tensor_fill(&T[6], 7.0f, &err), &err, "fill");
        t_ok(u3d_tensor_fill(&T[7], 7.0f, &err), &err, "fill");
        t_ok(u3d_conv3d_forward(&p, &T[0], &T[1], c->bias ? &T[2] : NULL,
                                &T[4], &err),
             &err, what);
        t_ok(u3d_conv3d_backward_data(&p, &T[3], &T[1], &T[5], &err), &err,
             what);
        t_ok(u3d_conv3d_backward_weight(&p, &T[0], &T[3], &T[6],
                                        c->bias ? &T[7] : NULL, &err),
             &err, what);
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s: y", what);
    t_assert_tensors_close(&t[0][4], &t[1][4], TOL_FWD, msg);
    snprintf(msg, sizeof msg, "%s: dx", what);
    t_assert_tensors_close(&t[0][5], &t[1][5], TOL_DATA, msg);
    snprintf(msg, sizeof msg, "%s: dw", what);
    t_assert_tensors_close(&t[0][6], &t[1][6], TOL_WEIGHT, msg);
    if (c->bias) {
        snprintf(msg, sizeof msg, "%s: db", what);
        t_assert_tensors_close(&t[0][7], &t[1][7], TOL_WEIGHT, msg);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 8; j++)
            u3d_tensor_release(&t[i][j]);
    free(x);
    free(w);
    free(b);
    free(dy);
}

static conv_shape random_case(uint64_t *seed, int small)
{
    conv_shape c;
    int kinds[][2] = {{3, 0}, {3, 1}, {1, 0}, {2, 1}, {4, 2}, {3, 2}};
    int ki = t_randi(seed, 0, 5);
    c.k = kinds[ki][0];
    c.pad = kinds[ki][1];
    int m = small ? 4 : 9; /* largest extra extent */
    c.n = t_randi(seed, 1, small ? 2 : 3);
    c.cin = t_randi(seed, 1, small ? 4 : 13);
    c.cout = t_randi(seed, 1, small ? 5 : 19);
    int lo = c.k - 2 * c.pad > 1 ? c.k - 2 * c.pad : 1;
    c.d = t_randi(seed, lo, lo + m);
    c.h = t_randi(seed, lo, lo + m);
    c.w = t_randi(seed, lo, lo + m + (small ? 2 : 12));
    c.bias = t_randi(seed, 0, 1);
    return c;
}

static void conv3d_matches_reference(void **state)
{
    t_env *e = *state;
    /* fixed cases first: odd sizes, N > 1, channel counts off the block
     * sizes, the U-Net kernels, and tiny volumes (fewer positions than a
     * tile) */
    conv_shape fixed[] = {
        {2, 3, 5, 5, 7, 9, 3, 0, 1},  {2, 5, 3, 5, 6, 7, 3, 1, 1},
        {3, 4, 7, 3, 5, 11, 1, 0, 1}, {2, 2, 3, 3, 3, 3, 3, 0, 0},
        {1, 1, 1, 1, 1, 1, 1, 0, 1},  {2, 3, 2, 2, 2, 2, 3, 1, 1},
        {2, 3, 9, 6, 5, 20, 3, 0, 0}, {1, 2, 3, 4, 4, 4, 2, 0, 1},
    };
    int nfixed = sizeof fixed / sizeof fixed[0];
    for (int i = 0; i < nfixed; i++)
        check_case(e, &fixed[i]);
    int reps = t_small() ? 3 : 8;
    for (int r = 0; r < reps; r++) {
        conv_shape c = random_case(&e->seed, t_small());
        check_case(e, &c);
    }
}

/* Other blockings than this device's tuned ones, through the environment
 * overrides the host code reads (UNET3D_CONV3D_<PARAM>), so the kernel
 * variants other devices use are tested here too. */
static void conv3d_other_blockings(void **state)
{
    t_env *e = *state;
    const char *cfgs[][2] = {
        {"VW=1 NV=1 COB=1 ACC=1 TAPOUT_CIN=1", "BW_VW=1 BW_COB=1"},
        {"VW=4 NV=2 COB=3 ACC=6 TAPOUT_CIN=100000", "BW_VW=2 BW_COB=3"},
        {"VW=8 NV=1 COB=8 ACC=8 TAPOUT_CIN=1", "BW_VW=8 BW_COB=5"},
        {"VW=16 NV=3 COB=4 ACC=12", "BW_VW=16 BW_COB=8"},
        {"VW=2 NV=4 COB=16 ACC=32", "BW_VW=4 BW_COB=2"},
    };
    /* chunked weight gradient (many chunks, partial last vectors) and
     * one-plane slabs */
    const char *chunk =
        "BW_ITEMS=100000 BW_CHUNK=5 BW_MAXCHUNK=37 LWS=7 SLAB_KB=1";
    conv_shape cases[] = {
        {2, 3, 5, 5, 6, 13, 3, 0, 1},
        {2, 2, 7, 4, 5, 9, 3, 1, 1},
        {3, 5, 2, 3, 4, 6, 1, 0, 0},
    };
    int ncfg = sizeof cfgs / sizeof cfgs[0];
    for (int i = 0; i < ncfg; i++) {
        if (t_small() && i % 2) /* the simulator is slow */
            continue;
        char buf[200];
        snprintf(buf, sizeof buf, "%s %s %s", cfgs[i][0], cfgs[i][1], chunk);
        char *names[16];
        int nn = 0;
        for (char *tok = strtok(buf, " "); tok && nn < 16;
             tok = strtok(NULL, " ")) {
            char *eq = strchr(tok, '=');
            char name[64];
            *eq = 0;
            snprintf(name, sizeof name, "UNET3D_CONV3D_%s", tok);
            setenv(name, eq + 1, 1);
            names[nn++] = tok;
        }
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++)
            check_case(e, &cases[j]);
        for (int j = 0; j < nn; j++) {
            char name[64];
            snprintf(name, sizeof name, "UNET3D_CONV3D_%s", names[j]);
            unsetenv(name);
        }
    }
}

/* loss(y) = sum(y * r) in double, y from the reference forward. */
static double loss_of(t_env *e, const conv_shape *c, const float *x,
                      const float *w, const float *b, const float *r)
{
    u3d_conv3d_params p = {c->k, c->pad};
    u3d_error err = {0};
    u3d_shape ys = out_shape(c);
    u3d_shape xs = u3d_shape5(c->n, c->cin, c->d, c->h, c->w);
    u3d_shape ws = u3d_shape5(c->cout, c->cin, c->k, c->k, c->k);
    u3d_tensor X = t_tensor(e->ref, xs, x), W = t_tensor(e->ref, ws, w);
    u3d_tensor B = t_tensor(e->ref, u3d_shape5(1, c->cout, 1, 1, 1), b);
    u3d_tensor Y = t_tensor(e->ref, ys, NULL);
    t_ok(u3d_conv3d_forward(&p, &X, &W, &B, &Y, &err), &err, "ref forward");
    float *y = t_read(&Y);
    double l = t_dot(y, r, u3d_shape_count(ys));
    free(y);
    u3d_tensor_release(&X);
    u3d_tensor_release(&W);
    u3d_tensor_release(&B);
    u3d_tensor_release(&Y);
    return l;
}

/* Central differences of loss over every element of a[0..n). The loss is
 * linear in each of x, w, b, so the difference quotient is exact up to
 * rounding: with eps 0.25 and a loss of a few hundred float products the
 * error is ~1e-5 of the gradient's scale; tolerance 1e-3. */
static void fd_check(t_env *e, const conv_shape *c, float *x, float *w,
                     float *b, const float *r, float *a, size_t n,
                     const float *grad, const char *what)
{
    const float eps = 0.25f;
    float *fd = malloc(n * sizeof *fd);
    assert_non_null(fd);
    for (size_t i = 0; i < n; i++) {
        float keep = a[i];
        a[i] = keep + eps;
        double lp = loss_of(e, c, x, w, b, r);
        a[i] = keep - eps;
        double lm = loss_of(e, c, x, w, b, r);
        a[i] = keep;
        fd[i] = (float)((lp - lm) / (2.0 * eps));
    }
    t_assert_close(grad, fd, n, 1e-3, what);
    free(fd);
}

static void conv3d_gradients_match_finite_differences(void **state)
{
    t_env *e = *state;
    conv_shape cases[] = {
        {2, 2, 3, 3, 4, 5, 3, 1, 1},
        {2, 2, 2, 4, 3, 5, 3, 0, 1},
        {2, 3, 2, 3, 3, 4, 2, 1, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const conv_shape *c = &cases[ci];
        u3d_conv3d_params p = {c->k, c->pad};
        u3d_shape xs = u3d_shape5(c->n, c->cin, c->d, c->h, c->w);
        u3d_shape ws = u3d_shape5(c->cout, c->cin, c->k, c->k, c->k);
        u3d_shape bs = u3d_shape5(1, c->cout, 1, 1, 1);
        u3d_shape ys = out_shape(c);
        size_t nx = u3d_shape_count(xs), nw = u3d_shape_count(ws);
        float *x = t_rand_array(&e->seed, nx, -1, 1);
        float *w = t_rand_array(&e->seed, nw, -1, 1);
        float *b = t_rand_array(&e->seed, (size_t)c->cout, -1, 1);
        float *r = t_rand_array(&e->seed, u3d_shape_count(ys), -1, 1);
        u3d_error err = {0};
        /* gradients from the device (matched to the reference elsewhere) */
        u3d_tensor X = t_tensor(e->cl, xs, x), W = t_tensor(e->cl, ws, w);
        u3d_tensor R = t_tensor(e->cl, ys, r), DX = t_tensor(e->cl, xs, NULL);
        u3d_tensor DW = t_tensor(e->cl, ws, NULL);
        u3d_tensor DB = t_tensor(e->cl, bs, NULL);
        t_ok(u3d_conv3d_backward_data(&p, &R, &W, &DX, &err), &err, "bwd data");
        t_ok(u3d_conv3d_backward_weight(&p, &X, &R, &DW, &DB, &err), &err,
             "bwd weight");
        float *dx = t_read(&DX), *dw = t_read(&DW), *db = t_read(&DB);
        fd_check(e, c, x, w, b, r, x, nx, dx, "dx vs finite differences");
        fd_check(e, c, x, w, b, r, w, nw, dw, "dw vs finite differences");
        fd_check(e, c, x, w, b, r, b, (size_t)c->cout, db,
                 "db vs finite differences");
        u3d_tensor *all[] = {&X, &W, &R, &DX, &DW, &DB};
        for (int i = 0; i < 6; i++)
            u3d_tensor_release(all[i]);
        free(dx);
        free(dw);
        free(db);
        free(x);
        free(w);
        free(b);
        free(r);
    }
}

/* The weight gradient reduces partial sums in a fixed order: two runs give
 * the same bits. */
static void conv3d_weight_gradient_is_deterministic(void **state)
{
    t_env *e = *state;
    conv_shape c = {2, 3, 4, 5, 6, 17, 3, 1, 1};
    if (!t_small())
        c.d = 12, c.h = 20, c.w = 23;
    u3d_conv3d_params p = {c.k, c.pad};
    u3d_shape xs = u3d_shape5(c.n, c.cin, c.d, c.h, c.w);
    u3d_shape ws = u3d_shape5(c.cout, c.cin, c.k, c.k, c.k);
    u3d_shape ys = out_shape(&c);
    float *x = t_rand_array(&e->seed, u3d_shape_count(xs), -1, 1);
    float *dy = t_rand_array(&e->seed, u3d_shape_count(ys), -1, 1);
    u3d_error err = {0};
    setenv("UNET3D_CONV3D_BW_MAXCHUNK", "64", 1); /* many partial sums */
    u3d_tensor X = t_tensor(e->cl, xs, x), DY = t_tensor(e->cl, ys, dy);
    u3d_tensor DW[2], DB[2];
    float *dw[2], *db[2];
    for (int i = 0; i < 2; i++) {
        DW[i] = t_tensor(e->cl, ws, NULL);
        DB[i] = t_tensor(e->cl, u3d_shape5(1, c.cout, 1, 1, 1), NULL);
        t_ok(u3d_conv3d_backward_weight(&p, &X, &DY, &DW[i], &DB[i], &err),
             &err, "bwd weight");
        dw[i] = t_read(&DW[i]);
        db[i] = t_read(&DB[i]);
    }
    unsetenv("UNET3D_CONV3D_BW_MAXCHUNK");
    assert_memory_equal(dw[0], dw[1], u3d_shape_count(ws) * sizeof(float));
    assert_memory_equal(db[0], db[1], (size_t)c.cout * sizeof(float));
    for (int i = 0; i < 2; i++) {
        u3d_tensor_release(&DW[i]);
        u3d_tensor_release(&DB[i]);
        free(dw[i]);
        free(db[i]);
    }
    u3d_tensor_release(&X);
    u3d_tensor_release(&DY);
    free(x);
    free(dy);
}

static void conv3d_rejects_bad_input(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_conv3d_params p = {3, 0};
    u3d_tensor x = t_tensor(e->cl, u3d_shape5(1, 2, 5, 5, 5), NULL);
    u3d_tensor w = t_tensor(e->cl, u3d_shape5(4, 3, 3, 3, 3), NULL);
    u3d_tensor y = t_tensor(e->cl, u3d_shape5(1, 4, 3, 3, 3), NULL);
    /* weight with 3 input channels for a 2-channel input */
    assert_int_equal(u3d_conv3d_forward(&p, &x, &w, NULL, &y, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "4x3x3x3x3"));
    assert_non_null(strstr(err.msg, "1x2x5x5x5"));
    /* padding must be smaller than the kernel */
    u3d_conv3d_params bad = {3, 3};
    u3d_tensor w2 = t_tensor(e->cl, u3d_shape5(4, 2, 3, 3, 3), NULL);
    assert_int_equal(u3d_conv3d_forward(&bad, &x, &w2, NULL, &y, &err),
                     U3D_ERR_INVALID_ARG);
    /* dy of the wrong size for the data gradient */
    u3d_tensor dy = t_tensor(e->cl, u3d_shape5(1, 4, 3, 3, 4), NULL);
    assert_int_equal(u3d_conv3d_backward_data(&p, &dy, &w2, &x, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x4x3x3x4"));
    u3d_tensor *all[] = {&x, &w, &y, &w2, &dy};
    for (int i = 0; i < 5; i++)
        u3d_tensor_release(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv3d_matches_reference),
        cmocka_unit_test(conv3d_other_blockings),
        cmocka_unit_test(conv3d_gradients_match_finite_differences),
        cmocka_unit_test(conv3d_weight_gradient_is_deterministic),
        cmocka_unit_test(conv3d_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
