/* Golden case: maxpool3d, kernel 2, stride 2, floor mode (x, dy; checks y
 * and dx). Shapes come from the files. */
#include <string.h>
#include "golden/golden.h"

#define SB 96

typedef struct pool_case {
    u3d_tensor x, dy, y, dx;
} pool_case;

static u3d_status read_params(const golden_case *c, u3d_error *err)
{
    int kernel, stride;
    U3D_TRY(golden_int(c, "kernel", &kernel, err));
    U3D_TRY(golden_int(c, "stride", &stride, err));
    if (kernel != 2 || stride != 2)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s/case.txt: kernel %d stride %d; max-pooling "
                          "supports kernel 2 stride 2 only",
                          c->dir, kernel, stride);
    return U3D_OK;
}

static u3d_status setup(u3d_backend *be, const golden_case *c, pool_case *t,
                        u3d_error *err)
{
    char a[SB], b[SB];
    U3D_TRY(golden_tensor(be, c, "x", &t->x, err));
    U3D_TRY(golden_tensor(be, c, "dy", &t->dy, err));
    u3d_shape xs = t->x.shape;
    if (xs.d < 2 || xs.h < 2 || xs.w < 2)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s/x.npy has shape %s, smaller than the 2x2x2 "
                          "window",
                          c->dir, u3d_shape_str(xs, a, SB));
    u3d_shape ys = u3d_shape5(xs.n, xs.c, xs.d / 2, xs.h / 2, xs.w / 2);
    if (!u3d_shape_eq(t->dy.shape, ys))
        return u3d_seterr(
            err, U3D_ERR_SHAPE, "%s/dy.npy has shape %s, expected %s", c->dir,
            u3d_shape_str(t->dy.shape, a, SB), u3d_shape_str(ys, b, SB));
    U3D_TRY(u3d_tensor_create(be, ys, U3D_F32, &t->y, err));
    U3D_TRY(u3d_tensor_create(be, xs, U3D_F32, &t->dx, err));
    return U3D_OK;
}

static u3d_status run_and_check(const golden_case *c, golden_report *rep,
                                pool_case *t, u3d_error *err)
{
    u3d_status st = u3d_maxpool3d_forward(&t->x, &t->y, err);
    if (!st)
        st = u3d_maxpool3d_backward(&t->x, &t->dy, &t->dx, err);
    if (st)
        return u3d_errprefix(err, "%s: ", c->dir);
    U3D_TRY(golden_check(c, rep, "y", &t->y, U3D_GOLDEN_TOL_FWD, err));
    U3D_TRY(golden_check(c, rep, "dx", &t->dx, U3D_GOLDEN_TOL_GRAD, err));
    return U3D_OK;
}

u3d_status golden_maxpool3d(u3d_backend *be, const golden_case *c,
                            golden_report *rep, u3d_error *err)
{
    pool_case t;
    memset(&t, 0, sizeof t);
    u3d_status st = read_params(c, err);
    if (!st)
        st = setup(be, c, &t, err);
    if (!st)
        st = run_and_check(c, rep, &t, err);
    u3d_tensor_release(&t.x);
    u3d_tensor_release(&t.dy);
    u3d_tensor_release(&t.y);
    u3d_tensor_release(&t.dx);
    return st;
}
