/* ReLU: device vs reference on random shapes, and its backward rule. */
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

static void relu_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 2 : 6;
    for (int r = 0; r < reps; r++) {
        u3d_shape s = u3d_shape5(t_randi(&e->seed, 1, 3), t_randi(&e->seed, 1, 5),
                                 t_randi(&e->seed, 1, 9), t_randi(&e->seed, 1, 9),
                                 t_randi(&e->seed, 1, 9));
        size_t n = u3d_shape_count(s);
        float *x = t_rand_array(&e->seed, n, -1, 1);
        float *dy = t_rand_array(&e->seed, n, -1, 1);
        u3d_error err = {0};
        u3d_tensor xc = t_tensor(e->cl, s, x), yc = t_tensor(e->cl, s, NULL);
        u3d_tensor dyc = t_tensor(e->cl, s, dy), dxc = t_tensor(e->cl, s, NULL);
        u3d_tensor xr = t_tensor(e->ref, s, x), yr = t_tensor(e->ref, s, NULL);
        u3d_tensor dyr = t_tensor(e->ref, s, dy), dxr = t_tensor(e->ref, s, NULL);
        t_ok(u3d_relu_forward(&xc, &yc, &err), &err, "relu forward");
        t_ok(u3d_relu_backward(&yc, &dyc, &dxc, &err), &err, "relu backward");
        t_ok(u3d_relu_forward(&xr, &yr, &err), &err, "ref relu forward");
        t_ok(u3d_relu_backward(&yr, &dyr, &dxr, &err), &err, "ref relu backward");
        t_assert_tensors_close(&yc, &yr, 0.0, "relu y");
        t_assert_tensors_close(&dxc, &dxr, 0.0, "relu dx");
        /* the reference itself: y = max(x,0) */
        float *y = t_read(&yr);
        for (size_t i = 0; i < n; i++)
            assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
        free(y);
        u3d_tensor *all[] = {&xc, &yc, &dyc, &dxc, &xr, &yr, &dyr, &dxr};
        for (int i = 0; i < 8; i++)
            u3d_tensor_release(all[i]);
        free(x);
        free(dy);
    }
}

static void relu_in_place(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    float x[6] = {-2, -0.5f, 0, 0.5f, 2, -1};
    u3d_tensor t = t_tensor(e->cl, u3d_shape5(1, 1, 1, 2, 3), x);
    t_ok(u3d_relu_forward(&t, &t, &err), &err, "in-place relu");
    float *y = t_read(&t);
    float want[6] = {0, 0, 0, 0.5f, 2, 0};
    t_assert_close(y, want, 6, 0.0, "in-place relu");
    free(y);
    u3d_tensor_release(&t);
}

static void relu_rejects_shape_mismatch(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_tensor a = t_tensor(e->cl, u3d_shape5(1, 2, 3, 4, 5), NULL);
    u3d_tensor b = t_tensor(e->cl, u3d_shape5(1, 2, 3, 4, 6), NULL);
    assert_int_equal(u3d_relu_forward(&a, &b, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x2x3x4x6"));
    u3d_tensor_release(&a);
    u3d_tensor_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relu_matches_reference),
        cmocka_unit_test(relu_in_place),
        cmocka_unit_test(relu_rejects_shape_mismatch),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
