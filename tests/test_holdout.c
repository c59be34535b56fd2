/* densify's held-out slices (u3d_holdout_split): the annotation is
 * partitioned between training and scoring, held-out slices leave
 * training, no axis loses all its slices, the same seed gives the same
 * split, fraction 0 changes nothing. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_3_5_5),
        cmocka_unit_test(nothing_to_hold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
