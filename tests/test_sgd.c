/* SGD step and axpy: device vs reference, the reference vs the PyTorch
 * formula in double, bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

static void sgd_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 3 : 8;
    for (int r = 0; r < reps; r++) {
        u3d_shape s = u3d_shape5(t_randi(&e->seed, 1, 7), t_randi(&e->seed, 1, 5),
                                 t_randi(&e->seed, 1, 3), t_randi(&e->seed, 1, 3),
                                 t_randi(&e->seed, 1, 9));
        size_t n = u3d_shape_count(s);
        float *p = t_rand_array(&e->seed, n, -1, 1);
        float *b = t_rand_array(&e->seed, n, -0.1f, 0.1f);
        u3d_sgd_params sp = {t_randf(&e->seed, 0.001f, 0.1f),
                             r % 3 ? 0.99f : 0.0f, r % 2 ? 1e-4f : 0.0f};
        u3d_tensor pc = t_tensor(e->cl, s, p), bc = t_tensor(e->cl, s, b);
        u3d_tensor pr = t_tensor(e->ref, s, p), br = t_tensor(e->ref, s, b);
        u3d_error err = {0};
        double *pd = malloc(n * sizeof *pd), *bd = malloc(n * sizeof *bd);
        assert_true(pd && bd);
        for (size_t i = 0; i < n; i++) {
            pd[i] = p[i];
            bd[i] = b[i];
        }
        for (int step = 0; step < 3; step++) { /* the buffer carries over */
            float *g = t_rand_array(&e->seed, n, -1, 1);
            u3d_tensor gc = t_tensor(e->cl, s, g), gr = t_tensor(e->ref, s, g);
            t_ok(u3d_sgd_step(&sp, &pc, &gc, &bc, &err), &err, "sgd");
            t_ok(u3d_sgd_step(&sp, &pr, &gr, &br, &err), &err, "ref sgd");
            for (size_t i = 0; i < n; i++) {
                bd[i] = sp.momentum * bd[i] + g[i] + sp.weight_decay * pd[i];
                pd[i] -= sp.lr * bd[i];
            }
            u3d_tensor_release(&gc);
            u3d_tensor_release(&gr);
            free(g);
        }
        t_assert_tensors_close(&pc, &pr, 1e-6, "sgd param");
        t_assert_tensors_close(&bc, &br, 1e-6, "sgd buf");
        float *ph = t_read(&pr), *bh = t_read(&br);
        for (size_t i = 0; i < n; i++) { /* float rounding of 3 steps */
            assert_true(fabs(ph[i] - pd[i]) <= 1e-6 * fmax(fabs(pd[i]), 1));
            assert_true(fabs(bh[i] - bd[i]) <= 1e-6 * fmax(fabs(bd[i]), 1));
        }
        free(ph);
        free(bh);
        u3d_tensor *all[] = {&pc, &bc, &pr, &br};
        for (int i = 0; i < 4; i++)
            u3d_tensor_release(all[i]);
        free(p);
        free(b);
        free(pd);
        free(bd);
    }
}

static void axpy_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 2 : 5;
    for (int r = 0; r < reps; r++) {
        u3d_shape s = u3d_shape5(t_randi(&e->seed, 1, 3), t_randi(&e->seed, 1, 9),
                                 t_randi(&e->seed, 1, 9), t_randi(&e->seed, 1, 9),
                                 t_randi(&e->seed, 1, 9));
        size_t n = u3d_shape_count(s);
        float *x = t_rand_array(&e->seed, n, -1, 1);
        float *y = t_rand_array(&e->seed, n, -1, 1);
        float alpha = t_randf(&e->seed, -2, 2);
        u3d_tensor xc = t_tensor(e->cl, s, x), yc = t_tensor(e->cl, s, y);
        u3d_tensor xr = t_tensor(e->ref, s, x), yr = t_tensor(e->ref, s, y);
        u3d_error err = {0};
        t_ok(u3d_axpy(alpha, &xc, &yc, &err), &err, "axpy");
        t_ok(u3d_axpy(alpha, &xr, &yr, &err), &err, "ref axpy");
        t_assert_tensors_close(&yc, &yr, 1e-6, "axpy y");
        float *got = t_read(&yr), *want = malloc(n * sizeof *want);
        assert_non_null(want);
        for (size_t i = 0; i < n; i++)
            want[i] = (float)(y[i] + (double)alpha * x[i]);
        t_assert_close(got, want, n, 1e-6, "ref axpy vs formula");
        free(got);
        free(want);
        u3d_tensor *all[] = {&xc, &yc, &xr, &yr};
        for (int i = 0; i < 4; i++)
            u3d_tensor_release(all[i]);
        free(x);
        free(y);
    }
}

static void sgd_rejects_bad_input(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_tensor p = t_tensor(e->cl, u3d_shape5(1, 2, 3, 3, 3), NULL);
    u3d_tensor g = t_tensor(e->cl, u3d_shape5(1, 2, 3, 3, 4), NULL);
    u3d_tensor b = t_tensor(e->cl, u3d_shape5(1, 2, 3, 3, 3), NULL);
    u3d_sgd_params sp = {0.01f, 0.9f, 0.0f};
    assert_int_equal(u3d_sgd_step(&sp, &p, &g, &b, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x2x3x3x4"));
    assert_non_null(strstr(err.msg, "1x2x3x3x3"));
    sp.lr = -1.0f;
    assert_int_equal(u3d_sgd_step(&sp, &p, &b, &b, &err), U3D_ERR_INVALID_ARG);
    assert_int_equal(u3d_axpy(1.0f, &p, &g, &err), U3D_ERR_SHAPE);
    u3d_tensor_release(&p);
    u3d_tensor_release(&g);
    u3d_tensor_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sgd_matches_reference),
        cmocka_unit_test(axpy_matches_reference),
        cmocka_unit_test(sgd_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
