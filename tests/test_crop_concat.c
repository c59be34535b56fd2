/* Crop + concat: device vs reference on random shapes (odd crop
 * differences, N > 1), hand-made examples of the crop offset and of both
 * backward modes, a finite-difference check of the reference, bad shapes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

typedef struct cc_io {
    u3d_shape ss, us, ys;
    float *skip, *up, *dy, *dskip0;   /* inputs; dskip0 = dskip before an
                                         accumulating backward */
    float *y, *ds_over, *ds_acc, *du; /* outputs of run_cc */
} cc_io;

static void cc_free_outputs(cc_io *io)
{
    free(io->y);
    free(io->ds_over);
    free(io->ds_acc);
    free(io->du);
    io->y = io->ds_over = io->ds_acc = io->du = NULL;
}

/* Forward, backward overwriting dskip (pre-filled with garbage) and
 * backward accumulating into dskip0. */
static void run_cc(u3d_backend *be, cc_io *io)
{
    u3d_error err = {0};
    u3d_tensor s = t_tensor(be, io->ss, io->skip),
               u = t_tensor(be, io->us, io->up);
    u3d_tensor y = t_tensor(be, io->ys, NULL),
               dy = t_tensor(be, io->ys, io->dy);
    u3d_tensor ds = t_tensor(be, io->ss, NULL), du = t_tensor(be, io->us, NULL);
    t_ok(u3d_crop_concat_forward(&s, &u, &y, &err), &err,
         "crop-concat forward");
    t_ok(u3d_tensor_fill(&ds, 5.0f, &err), &err, "fill");
    t_ok(u3d_tensor_fill(&du, 5.0f, &err), &err, "fill");
    t_ok(u3d_crop_concat_backward(&dy, &ds, &du, 0, &err), &err,
         "crop-concat backward (overwrite)");
    cc_free_outputs(io);
    io->y = t_read(&y);
    io->ds_over = t_read(&ds);
    io->du = t_read(&du);
    t_ok(u3d_tensor_write(&ds, io->dskip0, &err), &err, "write");
    t_ok(u3d_crop_concat_backward(&dy, &ds, &du, 1, &err), &err,
         "crop-concat backward (accumulate)");
    io->ds_acc = t_read(&ds);
    float *du2 = t_read(&du); /* dup does not depend on the mode */
    t_assert_close(du2, io->du, u3d_shape_count(io->us), 0.0,
                   "dup (accumulate)");
    free(du2);
    u3d_tensor *all[] = {&s, &u, &y, &dy, &ds, &du};
    for (int i = 0; i < 6; i++)
        u3d_tensor_release(all[i]);
}

static cc_io cc_make(uint64_t *seed, u3d_shape ss, u3d_shape us)
{
    cc_io io;
    memset(&io, 0, sizeof io);
    io.ss = ss;
    io.us = us;
    io.ys = us;
    io.ys.c = ss.c + us.c;
    io.skip = t_rand_array(seed, u3d_shape_count(ss), -1, 1);
    io.up = t_rand_array(seed, u3d_shape_count(us), -1, 1);
    io.dy = t_rand_array(seed, u3d_shape_count(io.ys), -1, 1);
    io.dskip0 = t_rand_array(seed, u3d_shape_count(ss), -1, 1);
    return io;
}

static void cc_free(cc_io *io)
{
    cc_free_outputs(io);
    free(io->skip);
    free(io->up);
    free(io->dy);
    free(io->dskip0);
}

static void crop_concat_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 3 : 10, hi = t_small() ? 5 : 12;
    for (int r = 0; r < reps; r++) {
        int n = t_randi(&e->seed, 1, 3);
        u3d_shape us =
            u3d_shape5(n, t_randi(&e->seed, 1, 4), t_randi(&e->seed, 1, hi),
                       t_randi(&e->seed, 1, hi), t_randi(&e->seed, 1, hi));
        /* differences 0..5 per axis: odd ones crop one more at the end */
        u3d_shape ss = u3d_shape5(
            n, t_randi(&e->seed, 1, 4), us.d + t_randi(&e->seed, 0, 5),
            us.h + t_randi(&e->seed, 0, 5), us.w + t_randi(&e->seed, 0, 5));
        if (r == 0) { /* wide rows: whole vectors inside, outside and
                         across the crop window's edges */
            us = u3d_shape5(2, 2, 2, 3, 37);
            ss = u3d_shape5(2, 3, 4, 4, 42);
        }
        cc_io dev = cc_make(&e->seed, ss, us), ref = dev;
        run_cc(e->cl, &dev);
        ref.y = ref.ds_over = ref.ds_acc = ref.du = NULL;
        run_cc(e->ref, &ref);
        t_assert_close(dev.y, ref.y, u3d_shape_count(dev.ys), 0.0, "y");
        t_assert_close(dev.ds_over, ref.ds_over, u3d_shape_count(ss), 0.0,
                       "dskip (overwrite)");
        /* one float addition per voxel, same operands: exact */
        t_assert_close(dev.ds_acc, ref.ds_acc, u3d_shape_count(ss), 0.0,
                       "dskip (accumulate)");
        t_assert_close(dev.du, ref.du, u3d_shape_count(us), 0.0, "dup");
        cc_free_outputs(&ref);
        cc_free(&dev);
    }
}

/* Hand-made: N=2, skip 2 channels of 1x3x6 (offsets 0, 1, 2: differences
 * 0, 3, 4 along D, H, W) cropped to up 1x1x2. */
static void crop_concat_hand_example(void **state)
{
    t_env *e = *state;
    u3d_shape ss = u3d_shape5(2, 2, 1, 3, 6), us = u3d_shape5(2, 1, 1, 1, 2);
    cc_io io = cc_make(&e->seed, ss, us);
    for (int i = 0; i < 72; i++)
        io.skip[i] = (float)i; /* skip[n,c,0,h,w] = 36n + 18c + 6h + w */
    for (int i = 0; i < 4; i++)
        io.up[i] = 100.0f + i;
    for (int i = 0; i < 12; i++)
        io.dy[i] = 1000.0f + i;
    for (int i = 0; i < 72; i++)
        io.dskip0[i] = 0.5f;
    /* crop window: h = 1 ((3-1)/2), w = 2..3 ((6-2)/2) */
    float want_y[12] = {8,  9,  26, 27, 100, 101,  /* n = 0: c0, c1, up */
                        44, 45, 62, 63, 102, 103}; /* n = 1 */
    u3d_backend *bes[2] = {e->cl, e->ref};
    for (int b = 0; b < 2; b++) {
        run_cc(bes[b], &io);
        t_assert_close(io.y, want_y, 12, 0.0, "hand example y");
        float want_du[4] = {1004, 1005, 1010, 1011};
        t_assert_close(io.du, want_du, 4, 0.0, "hand example dup");
        for (int i = 0; i < 72; i++) {
            int n = i / 36, c = (i / 18) % 2, h = (i / 6) % 3, w = i % 6;
            int in = h == 1 && (w == 2 || w == 3);
            float g = in ? 1000.0f + n * 6 + c * 2 + (w - 2) : 0.0f;
            if (io.ds_over[i] != g || io.ds_acc[i] != 0.5f + g)
                fail_msg("%s: dskip[%d] = %g / %g (overwrite / accumulate), "
                         "want %g / %g",
                         b ? "ref" : "device", i, io.ds_over[i], io.ds_acc[i],
                         g, 0.5f + g);
        }
    }
    cc_free(&io);
}

/* Finite differences of loss = sum(y * r) for the reference: the op copies
 * values, so the central difference with eps = 0.1 is exact up to the
 * rounding of y (< 1e-7 relative); tolerance 1e-5. */
static void crop_concat_gradient_check(void **state)
{
    t_env *e = *state;
    u3d_shape ss = u3d_shape5(2, 2, 4, 3, 5), us = u3d_shape5(2, 1, 1, 2, 2);
    cc_io io = cc_make(&e->seed, ss, us);
    run_cc(e->ref, &io);
    float *ds = io.ds_over, *du = io.du;
    io.ds_over = io.du = NULL;
    size_t ny = u3d_shape_count(io.ys);
    const float eps = 0.1f;
    float *arrays[2] = {io.skip, io.up}, *grads[2] = {ds, du};
    size_t counts[2] = {u3d_shape_count(ss), u3d_shape_count(us)};
    for (int a = 0; a < 2; a++)
        for (size_t i = 0; i < counts[a]; i++) {
            float keep = arrays[a][i];
            arrays[a][i] = keep + eps;
            run_cc(e->ref, &io);
            double lp = t_dot(io.y, io.dy, ny);
            arrays[a][i] = keep - eps;
            run_cc(e->ref, &io);
            double lm = t_dot(io.y, io.dy, ny);
            arrays[a][i] = keep;
            double g = (lp - lm) / (2.0 * eps);
            if (fabs(g - grads[a][i]) > 1e-5)
                fail_msg("%s[%zu]: analytic %g, finite difference %g",
                         a ? "dup" : "dskip", i, grads[a][i], g);
        }
    free(ds);
    free(du);
    cc_free(&io);
}

static void crop_concat_rejects_bad_shapes(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    /* skip smaller than up along W */
    u3d_tensor s = t_tensor(e->cl, u3d_shape5(1, 2, 5, 5, 3), NULL);
    u3d_tensor u = t_tensor(e->cl, u3d_shape5(1, 3, 4, 4, 4), NULL);
    u3d_tensor y = t_tensor(e->cl, u3d_shape5(1, 5, 4, 4, 4), NULL);
    assert_int_equal(u3d_crop_concat_forward(&s, &u, &y, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x2x5x5x3"));
    assert_non_null(strstr(err.msg, "1x3x4x4x4"));
    /* wrong channel count of y */
    u3d_tensor s2 = t_tensor(e->cl, u3d_shape5(1, 2, 5, 5, 5), NULL);
    u3d_tensor y2 = t_tensor(e->cl, u3d_shape5(1, 4, 4, 4, 4), NULL);
    assert_int_equal(u3d_crop_concat_forward(&s2, &u, &y2, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x4x4x4x4"));
    u3d_tensor *all[] = {&s, &u, &y, &s2, &y2};
    for (int i = 0; i < 5; i++)
        u3d_tensor_release(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crop_concat_matches_reference),
        cmocka_unit_test(crop_concat_hand_example),
        cmocka_unit_test(crop_concat_gradient_check),
        cmocka_unit_test(crop_concat_rejects_bad_shapes),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
