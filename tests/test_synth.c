/* The development set's volumes: synthetic tubules and membranes
 * (deterministic, the structure they promise) and thin boundaries derived
 * from instance labels. Needs no device. */
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

/* Fraction of label-1 voxels. */
static double fraction(const u3d_labels *l)
{
    size_t n = (size_t)l->d * l->h * l->w, on = 0;
    for (size_t i = 0; i < n; i++)
        on += l->data[i] == 1;
    return (double)on / (double)n;
}

static void membranes_are_thin_walls(void **state)
{
    (void)state;
    u3d_membrane_params p;
    u3d_membrane_params_default(&p);
    p.d = 16, p.h = 48, p.w = 48, p.ncells = 20;
    u3d_volume a, b;
    u3d_labels la, lb;
    u3d_error err = {0};
    t_ok(u3d_synth_membranes(&p, 5, &a, &la, &err), &err, "membranes");
    t_ok(u3d_synth_membranes(&p, 5, &b, &lb, &err), &err, "again");
    size_t n = (size_t)p.d * p.h * p.w;
    assert_memory_equal(a.data, b.data, n * sizeof(float));
    assert_memory_equal(la.data, lb.data, n * sizeof(uint16_t));
    double f = fraction(&la);
    assert_true(f > 0.03 && f < 0.4);
    /* thin: most runs of wall voxels along x are 1..3 voxels (longer
     * ones only where a wall runs along x) */
    size_t runs = 0, short_runs = 0;
    for (size_t row = 0; row < (size_t)p.d * p.h; row++) {
        int len = 0;
        for (int x = 0; x <= p.w; x++) {
            int on = x < p.w && la.data[row * p.w + x];
            if (on) {
                len++;
            } else if (len) {
                runs++;
                short_runs += len <= 3;
                len = 0;
            }
        }
    }
    assert_true(runs > 0 && short_runs * 2 > runs);
    /* walls are brighter than cell interiors on average */
    double won = 0, woff = 0;
    size_t non = 0, noff = 0;
    for (size_t i = 0; i < n; i++)
        if (la.data[i])
            won += a.data[i], non++;
        else
            woff += a.data[i], noff++;
    assert_true(won / (double)non > woff / (double)noff + 10);
    assert_true(a.spacing[0] > 1.5 && a.spacing[1] == 1.0);
    u3d_volume_free(&a);
    u3d_volume_free(&b);
    u3d_labels_free(&la);
    u3d_labels_free(&lb);
    p.ncells = 1;
    assert_int_equal(u3d_synth_membranes(&p, 5, &a, &la, &err),
                     U3D_ERR_INVALID_ARG);
}

static void tubules_unchanged(void **state)
{
    (void)state;
    u3d_synth_params p;
    u3d_synth_params_default(&p);
    p.d = 16, p.h = 32, p.w = 32;
    u3d_volume v;
    u3d_labels l;
    u3d_error err = {0};
    t_ok(u3d_synth_tubules(&p, 1, &v, &l, &err), &err, "tubules");
    double f = fraction(&l);
    assert_true(f > 0.01 && f < 0.6);
    u3d_volume_free(&v);
    u3d_labels_free(&l);
}

/* Two touching boxes and a lone voxel: the walls between and around them,
 * one voxel on each side. */
static void boundaries_of_instances(void **state)
{
    (void)state;
    u3d_labels in, b;
    u3d_error err = {0};
    t_ok(u3d_labels_alloc(6, 6, 8, &in, &err), &err, "alloc");
    for (int z = 1; z < 5; z++)
        for (int y = 1; y < 5; y++)
            for (int x = 1; x < 7; x++)
                in.data[(z * 6 + y) * 8 + x] = x < 4 ? 1 : 2;
    t_ok(u3d_labels_boundaries(&in, &b, &err), &err, "boundaries");
    /* the wall between objects 1 and 2: x = 3 and x = 4, both sides */
    assert_int_equal(b.data[(2 * 6 + 2) * 8 + 3], 1);
    assert_int_equal(b.data[(2 * 6 + 2) * 8 + 4], 1);
    /* inside object 1 away from every wall */
    assert_int_equal(b.data[(2 * 6 + 2) * 8 + 2], 0);
    /* outside, next to object 1: background side of the wall */
    assert_int_equal(b.data[(0 * 6 + 2) * 8 + 2], 1);
    /* background far from everything */
    assert_int_equal(b.data[(0 * 6 + 0) * 8 + 0], 0);
    /* an object's corner voxel touches background: on the wall */
    assert_int_equal(b.data[(1 * 6 + 1) * 8 + 1], 1);
    u3d_labels_free(&in);
    u3d_labels_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(membranes_are_thin_walls),
        cmocka_unit_test(tubules_unchanged),
        cmocka_unit_test(boundaries_of_instances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
