/* Golden case: conv_transpose3d, kernel 2, stride 2 (x, w, b when bias 1,
 * dy; checks y, dx, dw and db). Shapes come from the files: any N, channel
 * counts and sizes. */
#include <string.h>
#include "golden/golden.h"

#define SB 96

typedef struct up_case {
    int bias;
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
    int kernel, stride;
    U3D_TRY(golden_int(c, "kernel", &kernel, err));
    U3D_TRY(golden_int(c, "stride", &stride, err));
    U3D_TRY(golden_int(c, "bias", &t->bias, err));
    if (kernel != 2 || stride != 2)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s/case.txt: kernel %d stride %d; the transposed "
                          "convolution supports kernel 2 stride 2 only",
                          c->dir, kernel, stride);
    return U3D_OK;
}

/* A tensor file whose shape differs from what the others imply. */
static u3d_status want(const golden_case *c, const char *name,
                       const u3d_tensor *t, u3d_shape s, u3d_error *err)
{
    char a[SB], b[SB];
    if (!u3d_shape_eq(t->shape, s))
        return u3d_seterr(
            err, U3D_ERR_SHAPE, "%s/%s.npy has shape %s, expected %s", c->dir,
            name, u3d_shape_str(t->shape, a, SB), u3d_shape_str(s, b, SB));
    return U3D_OK;
}

/* Loads the inputs, checks their shapes agree, creates the outputs. */
static u3d_status setup(u3d_backend *be, const golden_case *c, up_case *t,
                        u3d_error *err)
{
    U3D_TRY(golden_tensor(be, c, "x", &t->x, err));
    U3D_TRY(golden_tensor(be, c, "w", &t->w, err));
    U3D_TRY(golden_tensor(be, c, "dy", &t->dy, err));
    u3d_shape xs = t->x.shape, ws = t->w.shape;
    U3D_TRY(want(c, "w", &t->w, u3d_shape5(xs.c, ws.c, 2, 2, 2), err));
    u3d_shape ys = u3d_shape5(xs.n, ws.c, 2 * xs.d, 2 * xs.h, 2 * xs.w);
    U3D_TRY(want(c, "dy", &t->dy, ys, err));
    if (t->bias) {
        U3D_TRY(golden_tensor(be, c, "b", &t->b, err));
        U3D_TRY(want(c, "b", &t->b, u3d_shape5(1, ws.c, 1, 1, 1), err));
        U3D_TRY(u3d_tensor_create(be, t->b.shape, U3D_F32, &t->db, err));
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
    U3D_TRY(golden_check(c, rep, "y", &t->y, U3D_GOLDEN_TOL_FWD, err));
    U3D_TRY(golden_check(c, rep, "dx", &t->dx, U3D_GOLDEN_TOL_GRAD, err));
    U3D_TRY(golden_check(c, rep, "dw", &t->dw, U3D_GOLDEN_TOL_GRAD, err));
    if (t->bias)
        U3D_TRY(golden_check(c, rep, "db", &t->db, U3D_GOLDEN_TOL_GRAD, err));
    return U3D_OK;
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
