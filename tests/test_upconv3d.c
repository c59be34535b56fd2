/* Transposed conv 2x2x2 stride 2: device vs reference on random shapes
 * (odd sizes, N > 1, channel counts that do not fill the register tiles),
 * a hand-computed case, finite-difference checks of the reference
 * gradients, reproducibility of the backward-weight reduction, bad shapes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

typedef struct up_io {
    u3d_shape xs, ws, ys;
    int bias;
    float *x, *w, *b, *dy;   /* inputs */
    float *y, *dx, *dw, *db; /* outputs, filled by run_up */
} up_io;

static up_io up_make(uint64_t *seed, int n, int cin, int cout, int d, int h,
                     int w, int bias)
{
    up_io io;
    memset(&io, 0, sizeof io);
    io.xs = u3d_shape5(n, cin, d, h, w);
    io.ws = u3d_shape5(cin, cout, 2, 2, 2);
    io.ys = u3d_shape5(n, cout, 2 * d, 2 * h, 2 * w);
    io.bias = bias;
    io.x = t_rand_array(seed, u3d_shape_count(io.xs), -1, 1);
    io.w = t_rand_array(seed, u3d_shape_count(io.ws), -1, 1);
    io.b = t_rand_array(seed, (size_t)cout, -1, 1);
    io.dy = t_rand_array(seed, u3d_shape_count(io.ys), -1, 1);
    return io;
}

static void up_free_outputs(up_io *io)
{
    free(io->y);
    free(io->dx);
    free(io->dw);
    free(io->db);
    io->y = io->dx = io->dw = io->db = NULL;
}

static void up_free(up_io *io)
{
    up_free_outputs(io);
    free(io->x);
    free(io->w);
    free(io->b);
    free(io->dy);
}

/* Forward, backward-data and backward-weight on be. */
static void run_up(u3d_backend *be, up_io *io)
{
    u3d_error err = {0};
    u3d_shape bs = u3d_shape5(1, io->ws.c, 1, 1, 1);
    u3d_tensor x = t_tensor(be, io->xs, io->x), w = t_tensor(be, io->ws, io->w);
    u3d_tensor b = t_tensor(be, bs, io->b), dy = t_tensor(be, io->ys, io->dy);
    u3d_tensor y = t_tensor(be, io->ys, NULL), dx = t_tensor(be, io->xs, NULL);
    u3d_tensor dw = t_tensor(be, io->ws, NULL), db = t_tensor(be, bs, NULL);
    /* garbage in the outputs: every element must be overwritten */
    t_ok(u3d_tensor_fill(&dx, 3.0f, &err), &err, "fill");
    t_ok(u3d_tensor_fill(&dw, 3.0f, &err), &err, "fill");
    t_ok(u3d_tensor_fill(&db, 3.0f, &err), &err, "fill");
    t_ok(u3d_upconv3d_forward(&x, &w, io->bias ? &b : NULL, &y, &err), &err,
         "upconv forward");
    t_ok(u3d_upconv3d_backward_data(&dy, &w, &dx, &err), &err,
         "upconv backward-data");
    t_ok(
        u3d_upconv3d_backward_weight(&x, &dy, &dw, io->bias ? &db : NULL, &err),
        &err, "upconv backward-weight");
    up_free_outputs(io);
    io->y = t_read(&y);
    io->dx = t_read(&dx);
    io->dw = t_read(&dw);
    io->db = t_read(&db);
    u3d_tensor *all[] = {&x, &w, &b, &dy, &y, &dx, &dw, &db};
    for (int i = 0; i < 8; i++)
        u3d_tensor_release(all[i]);
}

/* Device vs reference for one configuration. Forward and backward-data sum
 * Cin resp. 8*Cout products (1e-5); backward-weight sums N*D*H*W products
 * in a different order (1e-4). */
static void compare(t_env *e, up_io *io, const char *what)
{
    up_io ref = *io;
    ref.y = ref.dx = ref.dw = ref.db = NULL;
    run_up(e->ref, &ref);
    run_up(e->cl, io);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: y", what);
    t_assert_close(io->y, ref.y, u3d_shape_count(io->ys), 1e-5, msg);
    snprintf(msg, sizeof msg, "%s: dx", what);
    t_assert_close(io->dx, ref.dx, u3d_shape_count(io->xs), 1e-5, msg);
    snprintf(msg, sizeof msg, "%s: dw", what);
    t_assert_close(io->dw, ref.dw, u3d_shape_count(io->ws), 1e-4, msg);
    if (io->bias) {
        snprintf(msg, sizeof msg, "%s: db", what);
        t_assert_close(io->db, ref.db, (size_t)io->ws.c, 1e-4, msg);
    } else { /* db not requested: left untouched */
        for (int i = 0; i < io->ws.c; i++)
            assert_true(io->db[i] == 3.0f);
    }
    up_free_outputs(&ref);
}

static void upconv_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 3 : 10, hi = t_small() ? 4 : 9;
    int chi = t_small() ? 6 : 13;
    for (int r = 0; r < reps; r++) {
        up_io io = up_make(&e->seed, t_randi(&e->seed, 1, 3),
                           t_randi(&e->seed, 1, chi), t_randi(&e->seed, 1, chi),
                           t_randi(&e->seed, 1, hi), t_randi(&e->seed, 1, hi),
                           t_randi(&e->seed, 1, hi), r % 2);
        char what[96];
        snprintf(what, sizeof what, "random case %d (Cin %d Cout %d)", r,
                 io.xs.c, io.ws.c);
        compare(e, &io, what);
        up_free(&io);
    }
}

/* Channel counts of the network's levels (tiles full and partial), on a
 * small volume; larger than the random cases. */
static void upconv_wide_channels(void **state)
{
    t_env *e = *state;
    up_io io = t_small() ? up_make(&e->seed, 2, 9, 10, 2, 3, 3, 1)
                         : up_make(&e->seed, 2, 64, 67, 3, 5, 7, 1);
    compare(e, &io, "wide channels");
    up_free(&io);
    if (t_small())
        return;
    up_io big = up_make(&e->seed, 1, 128, 128, 5, 6, 7, 0);
    compare(e, &big, "128 -> 128");
    up_free(&big);
}

/* Rows longer than a work-group (the weight gradient then strides lanes
 * along W) and rows of one voxel. */
static void upconv_row_lengths(void **state)
{
    t_env *e = *state;
    up_io io = up_make(&e->seed, 2, 3, 2, 1, 2, 70, 1);
    compare(e, &io, "long rows");
    up_free(&io);
    up_io one = up_make(&e->seed, 3, 2, 3, 3, 2, 1, 1);
    compare(e, &one, "rows of one voxel");
    up_free(&one);
}

/* y = x * w + b for a single input voxel and channel: the 8 taps land in
 * the 2x2x2 block in (a, b, c) order. */
static void upconv_hand_example(void **state)
{
    t_env *e = *state;
    up_io io = up_make(&e->seed, 1, 1, 2, 1, 1, 1, 1);
    io.x[0] = 2.0f;
    for (int i = 0; i < 16; i++)
        io.w[i] = (float)(i + 1);
    io.b[0] = 0.5f;
    io.b[1] = -1.0f;
    u3d_backend *bes[2] = {e->cl, e->ref};
    for (int k = 0; k < 2; k++) {
        run_up(bes[k], &io);
        for (int co = 0; co < 2; co++)
            for (int t = 0; t < 8; t++) {
                int a = t >> 2, b = (t >> 1) & 1, c = t & 1;
                float got = io.y[co * 8 + (a * 2 + b) * 2 + c];
                float want = 2.0f * io.w[co * 8 + t] + io.b[co];
                if (got != want)
                    fail_msg("%s: y[%d, %d,%d,%d] = %g, want %g",
                             k ? "ref" : "device", co, a, b, c, got, want);
            }
        /* dx = sum dy*w, db = sum dy, dw = x*dy */
        double sx = 0, sb = 0;
        for (int i = 0; i < 16; i++) {
            sx += (double)io.dy[i] * io.w[i];
            if (fabsf(io.dw[i] - 2.0f * io.dy[i]) > 1e-6f)
                fail_msg("dw[%d] = %g, want %g", i, io.dw[i], 2.0f * io.dy[i]);
        }
        assert_true(fabs(io.dx[0] - sx) < 1e-5);
        for (int i = 0; i < 8; i++)
            sb += io.dy[i];
        assert_true(fabs(io.db[0] - sb) < 1e-5);
    }
    up_free(&io);
}

/* loss = sum(y * r) on the reference, in double from float outputs. */
static double up_loss(t_env *e, up_io *io, const float *r)
{
    run_up(e->ref, io);
    return t_dot(io->y, r, u3d_shape_count(io->ys));
}

/* Central difference of up_loss with respect to a[i]. */
static double fd(t_env *e, up_io *io, const float *r, float *a, size_t i,
                 float eps)
{
    float keep = a[i];
    a[i] = keep + eps;
    double lp = up_loss(e, io, r);
    a[i] = keep - eps;
    double lm = up_loss(e, io, r);
    a[i] = keep;
    return (lp - lm) / (2.0 * eps);
}

/* Finite-difference check of dx, dw and db of the reference (the device is
 * compared against it above). With dy = r the analytic gradients of
 * loss = sum(y*r) are exactly dx, dw, db. The op is linear, so the central
 * difference has no truncation error and eps can be large (0.1, 10% of the
 * values); what remains is the float rounding of the outputs that the
 * perturbed value touches (at most 192 here, |y| < 4, each rounded by
 * <= 2.4e-7): <= 192 * 2 * 2.4e-7 / (2 * 0.1) ~ 5e-4 absolute, so the
 * tolerance is 1e-3 against gradients of size ~1..10. */
static void upconv_gradient_check(void **state)
{
    t_env *e = *state;
    up_io io = up_make(&e->seed, 2, 3, 2, 2, 3, 2, 1);
    const float *r = io.dy;
    run_up(e->ref, &io);
    float *dx = io.dx, *dw = io.dw, *db = io.db;
    io.dx = io.dw = io.db = NULL;
    const float eps = 0.1f;
    const double tol = 1e-3;
    for (size_t i = 0; i < u3d_shape_count(io.xs); i++) {
        double g = fd(e, &io, r, io.x, i, eps);
        if (fabs(g - dx[i]) > tol)
            fail_msg("dx[%zu]: analytic %g, finite difference %g", i, dx[i], g);
    }
    for (size_t i = 0; i < u3d_shape_count(io.ws); i++) {
        double g = fd(e, &io, r, io.w, i, eps);
        if (fabs(g - dw[i]) > tol)
            fail_msg("dw[%zu]: analytic %g, finite difference %g", i, dw[i], g);
    }
    for (size_t i = 0; i < (size_t)io.ws.c; i++) {
        double g = fd(e, &io, r, io.b, i, eps);
        if (fabs(g - db[i]) > tol)
            fail_msg("db[%zu]: analytic %g, finite difference %g", i, db[i], g);
    }
    free(dx);
    free(dw);
    free(db);
    up_free(&io);
}

/* The split-K weight gradient has no atomics: two runs agree bit for bit. */
static void upconv_weight_grad_reproducible(void **state)
{
    t_env *e = *state;
    up_io io = t_small() ? up_make(&e->seed, 2, 5, 3, 3, 4, 5, 1)
                         : up_make(&e->seed, 3, 6, 5, 9, 10, 11, 1);
    run_up(e->cl, &io);
    float *dw = io.dw, *db = io.db;
    io.dw = io.db = NULL;
    run_up(e->cl, &io);
    assert_memory_equal(dw, io.dw, u3d_shape_count(io.ws) * sizeof *dw);
    assert_memory_equal(db, io.db, (size_t)io.ws.c * sizeof *db);
    free(dw);
    free(db);
    up_free(&io);
}

static void upconv_rejects_bad_shapes(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_tensor x = t_tensor(e->cl, u3d_shape5(1, 4, 2, 3, 3), NULL);
    u3d_tensor w = t_tensor(e->cl, u3d_shape5(5, 6, 2, 2, 2), NULL);
    u3d_tensor y = t_tensor(e->cl, u3d_shape5(1, 6, 4, 6, 6), NULL);
    assert_int_equal(u3d_upconv3d_forward(&x, &w, NULL, &y, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "5x6x2x2x2"));
    assert_non_null(strstr(err.msg, "1x4x2x3x3"));
    u3d_tensor w2 = t_tensor(e->cl, u3d_shape5(4, 6, 2, 2, 2), NULL);
    u3d_tensor y2 = t_tensor(e->cl, u3d_shape5(1, 6, 4, 6, 5), NULL);
    assert_int_equal(u3d_upconv3d_forward(&x, &w2, NULL, &y2, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x6x4x6x5"));
    u3d_tensor *all[] = {&x, &w, &y, &w2, &y2};
    for (int i = 0; i < 5; i++)
        u3d_tensor_release(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(upconv_matches_reference),
        cmocka_unit_test(upconv_wide_channels),
        cmocka_unit_test(upconv_row_lengths),
        cmocka_unit_test(upconv_hand_example),
        cmocka_unit_test(upconv_gradient_check),
        cmocka_unit_test(upconv_weight_grad_reproducible),
        cmocka_unit_test(upconv_rejects_bad_shapes),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
