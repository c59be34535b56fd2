/* Slices to annotate next (u3d_suggest_slices): the most uncertain
 * unannotated slice first, annotated slices and their neighbours passed
 * over, picks spread out. Needs no device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

enum { D = 12, H = 10, W = 8 };

/* Two-class probabilities: certain background everywhere but on the
 * planes z = zu (p = 0.5) and x = xu (p = 0.8 background). */
static void make(u3d_volume *p, u3d_labels *s, int zu, int xu)
{
    u3d_error err = {0};
    t_ok(u3d_volume_alloc(2, D, H, W, p, &err), &err, "probs");
    t_ok(u3d_labels_alloc(D, H, W, s, &err), &err, "labels");
    size_t vox = (size_t)D * H * W;
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)z * H + y) * W + x;
                float p0 = z == zu ? 0.5f : x == xu ? 0.8f : 1.0f;
                p->data[i] = p0;
                p->data[vox + i] = 1.0f - p0;
                s->data[i] = 255;
            }
}

static void most_uncertain_first(void **state)
{
    (void)state;
    u3d_volume p;
    u3d_labels s;
    make(&p, &s, 5, 2);
    u3d_suggest_opts o;
    u3d_suggest_opts_default(&o);
    o.count = 3;
    u3d_slice_score r[3];
    int n = 0;
    u3d_error err = {0};
    t_ok(u3d_suggest_slices(&p, &s, &o, r, &n, &err), &err, "suggest");
    assert_int_equal(n, 3);
    assert_int_equal(r[0].axis, 'z');
    assert_int_equal(r[0].index, 5);
    assert_int_equal(r[1].axis, 'x');
    assert_int_equal(r[1].index, 2);
    assert_true(r[0].score > r[1].score && r[1].score > r[2].score);
    /* the third is no neighbour of the first two on their axes */
    if (r[2].axis == 'z')
        assert_true(abs(r[2].index - 5) > 1);
    if (r[2].axis == 'x')
        assert_true(abs(r[2].index - 2) > 1);
    u3d_volume_free(&p);
    u3d_labels_free(&s);
}

/* The uncertain plane is annotated already: it and its neighbours are not
 * suggested. */
static void annotated_slices_passed_over(void **state)
{
    (void)state;
    u3d_volume p;
    u3d_labels s;
    make(&p, &s, 5, 2);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            s.data[((size_t)5 * H + y) * W + x] = 1;
    u3d_suggest_opts o;
    u3d_suggest_opts_default(&o);
    o.count = 2;
    u3d_slice_score r[2];
    int n = 0;
    u3d_error err = {0};
    t_ok(u3d_suggest_slices(&p, &s, &o, r, &n, &err), &err, "suggest");
    assert_true(n >= 1);
    assert_int_equal(r[0].axis, 'x');
    assert_int_equal(r[0].index, 2);
    for (int i = 0; i < n; i++)
        if (r[i].axis == 'z')
            assert_true(abs(r[i].index - 5) > 1);
    u3d_labels bad;
    t_ok(u3d_labels_alloc(D, H, W + 1, &bad, &err), &err, "labels");
    assert_int_equal(u3d_suggest_slices(&p, &bad, &o, r, &n, &err),
                     U3D_ERR_SHAPE);
    u3d_labels_free(&bad);
    u3d_volume_free(&p);
    u3d_labels_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(most_uncertain_first),
        cmocka_unit_test(annotated_slices_passed_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
