/* Golden case: maxpool3d, kernel = stride = 2 or 1 per axis (2x2x2,
 * 1x2x2), floor mode (x, dy; checks y
 * and dx). Shapes come from the files. */
#include <string.h>
#include "golden/golden.h"

#define SB 96

typedef struct pool_case {
    int f[3]; /* window per axis */
    u3d_tensor x, dy, y, dx;
} pool_case;

static u3d_status setup(u3d_backend *be, const golden_case *c, pool_case *t,
                        u3d_error *err)
{
    char a[SB];
    U3D_TRY(golden_tensor(be, c, "x", &t->x, err));
    u3d_shape xs = t->x.shape;
    const int *f = t->f;
    if (xs.d < f[0] || xs.h < f[1] || xs.w < f[2])
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s/x.npy has shape %s, smaller than the %dx%dx%d "
                          "window",
                          c->dir, u3d_shape_str(xs, a, SB), f[0], f[1], f[2]);
    u3d_shape ys =
        u3d_shape5(xs.n, xs.c, xs.d / f[0], xs.h / f[1], xs.w / f[2]);
    U3D_TRY(golden_load(be, c, "dy", U3D_F32, &ys, &t->dy, err));
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
    const golden_expect rows[] = {{"y", &t->y, U3D_GOLDEN_TOL_FWD},
                                  {"dx", &t->dx, U3D_GOLDEN_TOL_GRAD}};
    return golden_check_all(c, rep, rows, 2, err);
}

u3d_status golden_maxpool3d(u3d_backend *be, const golden_case *c,
                            golden_report *rep, u3d_error *err)
{
    pool_case t;
    memset(&t, 0, sizeof t);
    u3d_status st = golden_window(c, "max-pooling", t.f, err);
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
