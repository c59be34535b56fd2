/* densify's held-out slices (u3d_holdout_split): the annotation is
 * partitioned between training and scoring, held-out slices leave
 * training, no axis loses all its slices, the same seed gives the same
 * split, fraction 0 changes nothing. And the decision calibrated on them
 * (u3d_calibrate_bias, u3d_labels_from_probs). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

enum { D = 12, H = 20, W = 24, IGN = 255 };

/* Dense 0/1 labels sparsified to k z, y and x slices. */
static void sparse_labels(const int k[3], u3d_labels *l)
{
    u3d_error err = {0};
    t_ok(u3d_labels_alloc(D, H, W, l, &err), &err, "alloc");
    for (size_t i = 0; i < (size_t)D * H * W; i++)
        l->data[i] = (uint16_t)((i * 7 / 5) % 2);
    t_ok(u3d_labels_sparsify(l, k, 0, 1, IGN, NULL, &err), &err, "sparsify");
}

static int on_slice(const u3d_holdout *h, int z, int y, int x)
{
    for (int i = 0; i < h->nheld; i++) {
        const u3d_slice_score *s = &h->slices[i];
        int at = s->axis == 'z' ? z : s->axis == 'y' ? y : x;
        if (at == s->index)
            return 1;
    }
    return 0;
}

/* Every annotated voxel in exactly one of train and held; held voxels on
 * held-out slices only; returns the held voxels. */
static size_t check_partition(const u3d_labels *sp, const u3d_holdout *h)
{
    size_t held = 0;
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)z * H + y) * W + x;
                int t = h->train.data[i] != IGN, v = h->held.data[i] != IGN;
                assert_int_equal(t + v, sp->data[i] != IGN);
                if (t)
                    assert_int_equal(h->train.data[i], sp->data[i]);
                if (v) {
                    assert_int_equal(h->held.data[i], sp->data[i]);
                    assert_true(on_slice(h, z, y, x));
                    held++;
                }
            }
    return held;
}

static void split_3_5_5(void **state)
{
    (void)state;
    const int k[3] = {3, 5, 5};
    u3d_labels sp;
    u3d_holdout a, b;
    u3d_error err = {0};
    sparse_labels(k, &sp);
    t_ok(u3d_holdout_split(&sp, IGN, 0.125, 42, &a, &err), &err, "split");
    assert_int_equal(a.nheld, 2); /* round(13 / 8) */
    int per[3] = {0};
    for (int i = 0; i < a.nheld; i++)
        per[strchr("zyx", a.slices[i].axis) - "zyx"]++;
    for (int ax = 0; ax < 3; ax++)
        assert_true(per[ax] < k[ax]);
    /* a held-out z slice's voxels off the kept y/x slices: ignore in
     * training, each of them scored */
    size_t held = check_partition(&sp, &a);
    assert_true(held > 0);
    t_ok(u3d_holdout_split(&sp, IGN, 0.125, 42, &b, &err), &err, "again");
    assert_int_equal(b.nheld, a.nheld);
    assert_memory_equal(b.train.data, a.train.data,
                        (size_t)D * H * W * sizeof *a.train.data);
    u3d_holdout_free(&b);
    /* a larger share: still one slice per axis left */
    t_ok(u3d_holdout_split(&sp, IGN, 0.5, 3, &b, &err), &err, "half");
    assert_int_equal(b.nheld, 7);
    check_partition(&sp, &b);
    u3d_holdout_free(&a);
    u3d_holdout_free(&b);
    u3d_labels_free(&sp);
}

static void nothing_to_hold(void **state)
{
    (void)state;
    const int one[3] = {1, 1, 1}, some[3] = {2, 2, 2};
    u3d_labels sp;
    u3d_holdout h;
    u3d_error err = {0};
    sparse_labels(one, &sp); /* each axis keeps its only slice */
    t_ok(u3d_holdout_split(&sp, IGN, 0.5, 1, &h, &err), &err, "split");
    assert_int_equal(h.nheld, 0);
    assert_memory_equal(h.train.data, sp.data,
                        (size_t)D * H * W * sizeof *sp.data);
    u3d_holdout_free(&h);
    u3d_labels_free(&sp);
    sparse_labels(some, &sp);
    t_ok(u3d_holdout_split(&sp, IGN, 0, 1, &h, &err), &err, "fraction 0");
    assert_int_equal(h.nheld, 0);
    assert_memory_equal(h.train.data, sp.data,
                        (size_t)D * H * W * sizeof *sp.data);
    u3d_holdout_free(&h);
    u3d_labels_free(&sp);
}

/* probs (K classes over n voxels along W) and labels: foreground exactly
 * where p1 > thr (binary), the rest annotated background; every third
 * voxel unannotated. */
static void binary_case_n(int N, double thr, u3d_volume *p, u3d_labels *l)
{
    u3d_error err = {0};
    t_ok(u3d_volume_alloc(2, 1, 1, N, p, &err), &err, "probs");
    t_ok(u3d_labels_alloc(1, 1, N, l, &err), &err, "labels");
    for (int i = 0; i < N; i++) {
        float p1 = (float)(i + 0.5) / N;
        p->data[i] = 1.0f - p1;
        p->data[N + i] = p1;
        l->data[i] = i % 3 == 2 ? IGN : p1 > thr;
    }
}

static void binary_case(double thr, u3d_volume *p, u3d_labels *l)
{
    binary_case_n(400, thr, p, l);
}

/* The truth is "p1 > 0.8": the offset found puts the threshold at the
 * grid's nearest, 1 / (1 + e^b) in (0.75, 0.85) (b = -1.5: 0.818), IoU
 * above 0.9 where the plain argmax (0.5) scored below 0.7. */
static void calibration_finds_threshold(void **state)
{
    (void)state;
    u3d_volume p;
    u3d_labels l, out;
    u3d_calibration c;
    u3d_error err = {0};
    binary_case(0.8, &p, &l);
    t_ok(u3d_calibrate_bias(&p, &l, IGN, &c, &err), &err, "calibrate");
    assert_true(c.changed);
    assert_true(c.bias[0] == 0.0f);
    double t = 1.0 / (1.0 + exp(c.bias[1]));
    if (!(t > 0.75 && t < 0.85))
        fail_msg("threshold %g from offset %g", t, (double)c.bias[1]);
    assert_true(c.after.mean_fg > 0.9);
    assert_true(c.before.mean_fg < 0.7);
    assert_int_equal(c.after.voxels, 267);
    /* the relabeling follows the offsets, unannotated voxels included */
    t_ok(u3d_labels_from_probs(&p, c.bias, &out, &err), &err, "relabel");
    for (int i = 0; i < 400; i++)
        assert_int_equal(out.data[i], (i + 0.5) / 400 > t);
    u3d_labels_free(&out);
    /* no offset: the argmax, the lowest class on ties */
    t_ok(u3d_labels_from_probs(&p, NULL, &out, &err), &err, "argmax");
    for (int i = 0; i < 400; i++)
        assert_int_equal(out.data[i], i >= 200);
    u3d_labels_free(&out);
    u3d_volume_free(&p);
    u3d_labels_free(&l);
    /* 800k annotated voxels: the search strides over them, the same
     * offset comes out and the report counts them all */
    float b1 = c.bias[1];
    binary_case_n(1200000, 0.8, &p, &l);
    t_ok(u3d_calibrate_bias(&p, &l, IGN, &c, &err), &err, "calibrate big");
    assert_true(c.changed && c.bias[1] == b1);
    assert_int_equal(c.after.voxels, 800000);
    u3d_volume_free(&p);
    u3d_labels_free(&l);
}

/* Two held-out rows (y slices) of N voxels, p1 rising along each; row r's
 * foreground exactly where p1 > thr[r]. */
static void two_rows(int N, const double thr[2], u3d_volume *p, u3d_labels *l)
{
    u3d_error err = {0};
    t_ok(u3d_volume_alloc(2, 1, 2, N, p, &err), &err, "probs");
    t_ok(u3d_labels_alloc(1, 2, N, l, &err), &err, "labels");
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < N; i++) {
            float p1 = (float)(i + 0.5) / N;
            p->data[r * N + i] = 1.0f - p1;
            p->data[2 * N + r * N + i] = p1;
            l->data[r * N + i] = p1 > thr[r];
        }
}

/* The cross-fitted estimate scores each slice with the offsets the other
 * slice gives: where both slices agree (truth p1 > 0.8) it stays near the
 * in-sample score; where they disagree (0.8 and 0.2) the in-sample score
 * flatters and the cross-fitted one says so; one slice: no estimate. */
static void calibration_crossfit(void **state)
{
    (void)state;
    u3d_volume p;
    u3d_labels l;
    u3d_calibration c;
    u3d_val_score est;
    u3d_error err = {0};
    u3d_slice_score rows[2] = {{'y', 0, 0}, {'y', 1, 0}};
    const double agree[2] = {0.8, 0.8}, disagree[2] = {0.8, 0.2};
    two_rows(400, agree, &p, &l);
    t_ok(u3d_calibrate_bias(&p, &l, IGN, &c, &err), &err, "calibrate");
    t_ok(u3d_calibrate_crossfit(&p, &l, IGN, rows, 2, &est, &err), &err,
         "crossfit");
    assert_int_equal(est.voxels, 800);
    assert_true(c.changed && est.mean_fg > 0.9);
    assert_true(fabs(est.mean_fg - c.after.mean_fg) < 0.02);
    u3d_volume_free(&p);
    u3d_labels_free(&l);
    two_rows(400, disagree, &p, &l);
    t_ok(u3d_calibrate_bias(&p, &l, IGN, &c, &err), &err, "calibrate");
    t_ok(u3d_calibrate_crossfit(&p, &l, IGN, rows, 2, &est, &err), &err,
         "crossfit");
    if (!(est.mean_fg < c.after.mean_fg - 0.05))
        fail_msg("cross-fitted %g, in-sample %g: want it clearly lower",
                 est.mean_fg, c.after.mean_fg);
    t_ok(u3d_calibrate_crossfit(&p, &l, IGN, rows, 1, &est, &err), &err,
         "one slice");
    assert_int_equal(est.voxels, 0);
    u3d_volume_free(&p);
    u3d_labels_free(&l);
}

/* Truth at 0.5: nothing to gain, offsets stay 0; so does a truth the
 * offsets improve by less than U3D_CALIB_MIN_GAIN. */
static void calibration_keeps_plain_argmax(void **state)
{
    (void)state;
    u3d_volume p;
    u3d_labels l;
    u3d_calibration c;
    u3d_error err = {0};
    binary_case(0.5, &p, &l);
    t_ok(u3d_calibrate_bias(&p, &l, IGN, &c, &err), &err, "calibrate");
    assert_false(c.changed);
    assert_true(c.bias[1] == 0.0f && c.after.mean_fg == 1.0);
    u3d_volume_free(&p);
    u3d_labels_free(&l);
    binary_case(0.505, &p, &l); /* one voxel of ~130 foreground */
    t_ok(u3d_calibrate_bias(&p, &l, IGN, &c, &err), &err, "calibrate");
    assert_false(c.changed);
    assert_true(c.bias[1] == 0.0f);
    assert_true(c.after.mean_fg == c.before.mean_fg);
    u3d_volume_free(&p);
    u3d_labels_free(&l);
}

/* Three classes: the truth is the argmax after offsets (0, -1, +0.5); the
 * search recovers a decision with IoU 1 on every class. Mismatched sizes
 * and one class are refused. */
static void calibration_three_classes(void **state)
{
    (void)state;
    enum { N = 3000 };
    u3d_volume p;
    u3d_labels l;
    u3d_calibration c;
    u3d_error err = {0};
    t_ok(u3d_volume_alloc(3, 1, 1, N, &p, &err), &err, "probs");
    t_ok(u3d_labels_alloc(1, 1, N, &l, &err), &err, "labels");
    uint64_t seed = 15;
    const float want[3] = {0.0f, -1.0f, 0.5f};
    for (int i = 0; i < N; i++) {
        float e[3], s = 0;
        for (int k = 0; k < 3; k++)
            s += e[k] = expf(t_randf(&seed, -2.0f, 2.0f));
        int best = 0;
        for (int k = 0; k < 3; k++) {
            p.data[k * N + i] = e[k] / s;
            if (logf(e[k] / s) + want[k] > logf(p.data[best * N + i]) +
                                               want[best])
                best = k;
        }
        l.data[i] = (uint16_t)best;
    }
    t_ok(u3d_calibrate_bias(&p, &l, IGN, &c, &err), &err, "calibrate");
    assert_true(c.changed);
    if (!(c.after.iou[0] > 0.97 && c.after.iou[1] > 0.97 &&
          c.after.iou[2] > 0.97))
        fail_msg("IoU %g %g %g with offsets %g %g", c.after.iou[0],
                 c.after.iou[1], c.after.iou[2], (double)c.bias[1],
                 (double)c.bias[2]);
    assert_true(c.after.mean_fg > c.before.mean_fg);
    l.w = N - 1; /* sizes differ */
    assert_int_equal(u3d_calibrate_bias(&p, &l, IGN, &c, &err),
                     U3D_ERR_SHAPE);
    l.w = N;
    p.c = 1;
    assert_int_equal(u3d_calibrate_bias(&p, &l, IGN, &c, &err),
                     U3D_ERR_SHAPE);
    p.c = 3;
    u3d_volume_free(&p);
    u3d_labels_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_3_5_5),
        cmocka_unit_test(nothing_to_hold),
        cmocka_unit_test(calibration_finds_threshold),
        cmocka_unit_test(calibration_keeps_plain_argmax),
        cmocka_unit_test(calibration_three_classes),
        cmocka_unit_test(calibration_crossfit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
