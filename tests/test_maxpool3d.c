/* Max-pool 2x2x2 stride 2: device vs reference on random shapes, the
 * routing rule of the backward pass (ties, NaN, dropped voxels), a
 * finite-difference check of the reference gradient, and a bad shape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

/* Runs forward + backward on be; returns y and dx (malloc'd). dx is
 * pre-filled with garbage to check that every voxel is written. */
static void run_pool(u3d_backend *be, u3d_shape s, const float *x,
                     const float *dy, float **y, float **dx)
{
    u3d_error err = {0};
    u3d_shape os = u3d_shape5(s.n, s.c, s.d / 2, s.h / 2, s.w / 2);
    u3d_tensor xt = t_tensor(be, s, x), yt = t_tensor(be, os, NULL);
    u3d_tensor gt = t_tensor(be, os, dy), dt = t_tensor(be, s, NULL);
    t_ok(u3d_tensor_fill(&dt, 7.0f, &err), &err, "fill dx");
    t_ok(u3d_maxpool3d_forward(&xt, &yt, &err), &err, "maxpool forward");
    t_ok(u3d_maxpool3d_backward(&xt, &gt, &dt, &err), &err, "maxpool backward");
    *y = t_read(&yt);
    *dx = t_read(&dt);
    u3d_tensor_release(&xt);
    u3d_tensor_release(&yt);
    u3d_tensor_release(&gt);
    u3d_tensor_release(&dt);
}

static void maxpool_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 3 : 8, hi = t_small() ? 7 : 13;
    for (int r = 0; r < reps; r++) {
        u3d_shape s =
            u3d_shape5(t_randi(&e->seed, 1, 3), t_randi(&e->seed, 1, 4),
                       t_randi(&e->seed, 2, hi), t_randi(&e->seed, 2, hi),
                       t_randi(&e->seed, 2, hi));
        if (r == 0) /* odd in every axis, N > 1 */
            s = u3d_shape5(2, 3, 5, 7, 9);
        if (r == 1) /* wide rows: vector groups of windows and a partial one */
            s = u3d_shape5(1, 2, 4, 5, 35);
        u3d_shape os = u3d_shape5(s.n, s.c, s.d / 2, s.h / 2, s.w / 2);
        size_t n = u3d_shape_count(s), no = u3d_shape_count(os);
        float *x = t_rand_array(&e->seed, n, -1, 1);
        float *dy = t_rand_array(&e->seed, no, -1, 1);
        /* quantized values make ties frequent */
        if (r % 2)
            for (size_t i = 0; i < n; i++)
                x[i] = floorf(x[i] * 2.0f);
        float *yc, *dxc, *yr, *dxr;
        run_pool(e->cl, s, x, dy, &yc, &dxc);
        run_pool(e->ref, s, x, dy, &yr, &dxr);
        t_assert_close(yc, yr, no, 0.0, "maxpool y");
        t_assert_close(dxc, dxr, n, 0.0, "maxpool dx");
        free(x);
        free(dy);
        free(yc);
        free(dxc);
        free(yr);
        free(dxr);
    }
}

/* One hand-made 2x2x2 window (win in d,h,w scan order) with a dropped
 * trailing plane and column: checks y, which voxel receives dy, and zeros
 * everywhere else, on both backends. */
static void check_window(t_env *e, const float win[8], int want_idx,
                         float want_y, const char *what)
{
    /* shape 1x1x3x2x3: the window is voxels (0..1, 0..1, 0..1); the
     * trailing plane z=2 and column x=2 are dropped and must get zero */
    u3d_shape s = u3d_shape5(1, 1, 3, 2, 3);
    float x[18];
    for (int i = 0; i < 18; i++)
        x[i] = 100.0f + i; /* dropped voxels larger than the window */
    for (int dz = 0; dz < 2; dz++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++)
                x[(dz * 2 + dy) * 3 + dx] = win[dz * 4 + dy * 2 + dx];
    float g = 0.75f;
    u3d_backend *bes[2] = {e->cl, e->ref};
    for (int b = 0; b < 2; b++) {
        float *y, *dxv;
        run_pool(bes[b], s, x, &g, &y, &dxv);
        if (isnan(want_y))
            assert_true(isnan(y[0]));
        else
            assert_true(y[0] == want_y);
        for (int i = 0; i < 18; i++) {
            int dz = i / 6, dy = (i / 3) % 2, dx = i % 3;
            int in_win = dz < 2 && dx < 2;
            float want = in_win && dz * 4 + dy * 2 + dx == want_idx ? g : 0.0f;
            if (dxv[i] != want)
                fail_msg("%s (%s): dx[%d] = %g, want %g", what,
                         b ? "ref" : "device", i, dxv[i], want);
        }
        free(y);
        free(dxv);
    }
}

static void maxpool_routing_rules(void **state)
{
    t_env *e = *state;
    const float nan = NAN, inf = INFINITY;
    float all_eq[8] = {2, 2, 2, 2, 2, 2, 2, 2};
    check_window(e, all_eq, 0, 2, "all equal: first voxel");
    float tie[8] = {0, 1, 0, 5, 0, 5, 5, 0};
    check_window(e, tie, 3, 5, "tie: first maximum in d,h,w scan order");
    float tie_d[8] = {0, 1, 0, 0, 3, 0, 0, 3};
    check_window(e, tie_d, 4, 3, "tie across planes");
    float neg_inf[8] = {-inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf};
    check_window(e, neg_inf, 0, -inf, "all -inf: first voxel");
    float one_nan[8] = {1, 9, 2, nan, 3, 4, 5, 6};
    check_window(e, one_nan, 3, nan, "a NaN is the maximum");
    /* PyTorch updates on every NaN, so the last NaN of the scan wins */
    float two_nan[8] = {nan, 9, 2, 1, nan, 4, 5, 6};
    check_window(e, two_nan, 4, nan, "two NaNs: the last one");
}

/* The rules of check_window on 17 windows side by side along W (the
 * device handles several windows per work-item with vector loads), in a
 * 1x1x3x3x35 volume: the trailing plane, row and column are dropped. */
static void maxpool_routing_rules_wide(void **state)
{
    t_env *e = *state;
    const float nan = NAN, inf = INFINITY;
    enum { NP = 6, NW = 17, D = 3, H = 3, W = 2 * NW + 1 };
    const float pat[NP][8] = {{2, 2, 2, 2, 2, 2, 2, 2},
                              {0, 1, 0, 5, 0, 5, 5, 0},
                              {0, 1, 0, 0, 3, 0, 0, 3},
                              {-inf, -inf, -inf, -inf, -inf, -inf, -inf, -inf},
                              {1, 9, 2, nan, 3, 4, 5, 6},
                              {nan, 9, 2, 1, nan, 4, 5, 6}};
    const int want_idx[NP] = {0, 3, 4, 0, 3, 4};
    const float want_y[NP] = {2, 5, 3, -inf, nan, nan};
    u3d_shape s = u3d_shape5(1, 1, D, H, W);
    float x[D * H * W], g[NW];
    for (int i = 0; i < D * H * W; i++)
        x[i] = 100.0f + i; /* dropped voxels larger than any window */
    for (int k = 0; k < NW; k++) {
        g[k] = 0.5f + k;
        for (int j = 0; j < 8; j++)
            x[((j >> 2) * H + ((j >> 1) & 1)) * W + 2 * k + (j & 1)] =
                pat[(k * 5) % NP][j]; /* patterns at varying lanes */
    }
    u3d_backend *bes[2] = {e->cl, e->ref};
    for (int b = 0; b < 2; b++) {
        float *y, *dxv;
        run_pool(bes[b], s, x, g, &y, &dxv);
        for (int k = 0; k < NW; k++) {
            int p = (k * 5) % NP;
            if (isnan(want_y[p]) ? !isnan(y[k]) : y[k] != want_y[p])
                fail_msg("wide window %d (%s): y = %g, want %g", k,
                         b ? "ref" : "device", y[k], want_y[p]);
        }
        for (int i = 0; i < D * H * W; i++) {
            int z = i / (H * W), yy = (i / W) % H, xx = i % W, k = xx / 2;
            int j = z * 4 + yy * 2 + xx % 2;
            int in_win = z < 2 && yy < 2 && k < NW;
            float want = in_win && j == want_idx[(k * 5) % NP] ? g[k] : 0.0f;
            if (dxv[i] != want)
                fail_msg("wide window %d (%s): dx[%d] = %g, want %g", k,
                         b ? "ref" : "device", i, dxv[i], want);
        }
        free(y);
        free(dxv);
    }
}

/* Finite differences of loss = sum(y * r) for the reference, on values
 * with gaps of at least 0.01 (no ties) and eps 1e-3 (far below half a gap,
 * so no perturbation changes a window's maximum). Tolerance: the loss is
 * computed in double from float y (values <= ~1.3, rounding ~1e-7), so the
 * central difference is exact to ~1e-4 absolute. */
static void maxpool_gradient_check(void **state)
{
    t_env *e = *state;
    u3d_shape s = u3d_shape5(2, 2, 3, 4, 5);
    u3d_shape os = u3d_shape5(2, 2, 1, 2, 2);
    size_t n = u3d_shape_count(s), no = u3d_shape_count(os);
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) /* a shuffled ramp: distinct values */
        x[i] = 0.01f * (float)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)t_randi(&e->seed, 0, (int)i);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    float *r = t_rand_array(&e->seed, no, -1, 1);
    float *y, *dx;
    run_pool(e->ref, s, x, r, &y, &dx);
    free(y);
    const float eps = 1e-3f;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i], *yp, *ym, *junk;
        x[i] = keep + eps;
        run_pool(e->ref, s, x, r, &yp, &junk);
        free(junk);
        x[i] = keep - eps;
        run_pool(e->ref, s, x, r, &ym, &junk);
        free(junk);
        x[i] = keep;
        double fd = (t_dot(yp, r, no) - t_dot(ym, r, no)) / (2.0 * eps);
        if (fabs(fd - dx[i]) > 1e-3)
            fail_msg("maxpool dx[%zu]: analytic %g, finite difference %g", i,
                     dx[i], fd);
        free(yp);
        free(ym);
    }
    free(x);
    free(r);
    free(dx);
}

static void maxpool_rejects_bad_shapes(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_tensor x = t_tensor(e->cl, u3d_shape5(1, 2, 5, 6, 7), NULL);
    u3d_tensor y = t_tensor(e->cl, u3d_shape5(1, 2, 3, 3, 3), NULL);
    assert_int_equal(u3d_maxpool3d_forward(&x, &y, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x2x3x3x3"));
    assert_non_null(strstr(err.msg, "1x2x2x3x3"));
    u3d_tensor tiny = t_tensor(e->cl, u3d_shape5(1, 1, 1, 4, 4), NULL);
    assert_int_equal(u3d_maxpool3d_forward(&tiny, &y, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x1x1x4x4"));
    u3d_tensor_release(&x);
    u3d_tensor_release(&y);
    u3d_tensor_release(&tiny);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maxpool_matches_reference),
        cmocka_unit_test(maxpool_routing_rules),
        cmocka_unit_test(maxpool_routing_rules_wide),
        cmocka_unit_test(maxpool_gradient_check),
        cmocka_unit_test(maxpool_rejects_bad_shapes),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
