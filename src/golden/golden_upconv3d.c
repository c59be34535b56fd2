/* Golden case: conv_transpose3d, kernel = stride = 2 or 1 per axis
 * (2x2x2, 1x2x2) (x, w, b when bias 1,
 * dy; checks y, dx, dw and db). Shapes come from the files: any N, channel
 * counts and sizes. */
#include <string.h>
#include "golden/golden.h"

typedef struct up_case {
    int bias, f[3]; /* factor per axis */
    u3d_tensor x, w, b, dy, y, dx, dw, db;
} up_case;

static void up_case_release(up_case *t)
{
    u3d_tensor *all[] = {&t->x, &t->w,  &t->b,  &t->dy,
                         &t->y, &t->dx, &t->dw, &t->db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        u3d_tensor_release(all[i]);
}

static u3d_status read_params(const golden_case *c, up_case *t, u3d_error *err)
{
    U3D_TRY(golden_window(c, "the transposed convolution", t->f, err));
    return golden_int(c, "bias", &t->bias, err);
}

/* Loads the inputs, checks their shapes agree, creates the outputs. */
static u3d_status setup(u3d_backend *be, const golden_case *c, up_case *t,
                        u3d_error *err)
{
    U3D_TRY(golden_tensor(be, c, "x", &t->x, err));
    U3D_TRY(golden_tensor(be, c, "w", &t->w, err));
    u3d_shape xs = t->x.shape, ws = t->w.shape;
    const int *f = t->f;
    U3D_TRY(golden_want_shape(c, "w", ws,
                              u3d_shape5(xs.c, ws.c, f[0], f[1], f[2]), err));
    u3d_shape ys =
        u3d_shape5(xs.n, ws.c, f[0] * xs.d, f[1] * xs.h, f[2] * xs.w);
    U3D_TRY(golden_load(be, c, "dy", U3D_F32, &ys, &t->dy, err));
    if (t->bias) {
        u3d_shape bs = u3d_shape5(1, ws.c, 1, 1, 1);
        U3D_TRY(golden_load(be, c, "b", U3D_F32, &bs, &t->b, err));
        U3D_TRY(u3d_tensor_create(be, bs, U3D_F32, &t->db, err));
    }
    U3D_TRY(u3d_tensor_create(be, ys, U3D_F32, &t->y, err));
    U3D_TRY(u3d_tensor_create(be, xs, U3D_F32, &t->dx, err));
    U3D_TRY(u3d_tensor_create(be, ws, U3D_F32, &t->dw, err));
    return U3D_OK;
}

static u3d_status run_and_check(const golden_case *c, golden_report *rep,
                                up_case *t, u3d_error *err)
{
    u3d_tensor *b = t->bias ? &t->b : NULL, *db = t->bias ? &t->db : NULL;
    u3d_status st = u3d_upconv3d_forward(&t->x, &t->w, b, &t->y, err);
    if (!st)
        st = u3d_upconv3d_backward_data(&t->dy, &t->w, &t->dx, err);
    if (!st)
        st = u3d_upconv3d_backward_weight(&t->x, &t->dy, &t->dw, db, err);
    if (st)
        return u3d_errprefix(err, "%s: ", c->dir);
    const golden_expect rows[] = {{"y", &t->y, U3D_GOLDEN_TOL_FWD},
                                  {"dx", &t->dx, U3D_GOLDEN_TOL_GRAD},
                                  {"dw", &t->dw, U3D_GOLDEN_TOL_GRAD},
                                  {"db", db, U3D_GOLDEN_TOL_GRAD}};
    return golden_check_all(c, rep, rows, sizeof rows / sizeof rows[0], err);
}

u3d_status golden_upconv3d(u3d_backend *be, const golden_case *c,
                           golden_report *rep, u3d_error *err)
{
    up_case t;
    memset(&t, 0, sizeof t);
    u3d_status st = read_params(c, &t, err);
    if (!st)
        st = setup(be, c, &t, err);
    if (!st)
        st = run_and_check(c, rep, &t, err);
    up_case_release(&t);
    return st;
}
