/* Golden case: conv3d (x, w, b when bias 1, y, dy, dx, dw, db). Runs the
 * forward and both backward ops and checks y, dx, dw and db. */
#include "golden/golden.h"

typedef struct conv_case {
    u3d_conv3d_params p;
    int bias;
    u3d_tensor x, w, b, dy, y, dx, dw, db;
} conv_case;

static void conv_case_release(conv_case *t)
{
    u3d_tensor *all[] = {&t->x, &t->w, &t->b, &t->dy,
                         &t->y, &t->dx, &t->dw, &t->db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        u3d_tensor_release(all[i]);
}

static u3d_status read_params(const golden_case *c, conv_case *t,
                              u3d_error *err)
{
    int stride = 1, k[3], pad[3];
    /* "3" or per axis "1,3,3" (anisotropic) */
    U3D_TRY(golden_int3(c, "kernel", k, err));
    U3D_TRY(golden_int3(c, "padding", pad, err));
    U3D_TRY(golden_int(c, "bias", &t->bias, err));
    if (golden_get(c, "stride"))
        U3D_TRY(golden_int(c, "stride", &stride, err));
    if (stride != 1)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s/case.txt: stride %d; conv3d supports stride 1",
                          c->dir, stride);
    for (int a = 0; a < 3; a++)
        if (k[a] < 1 || pad[a] < 0 || pad[a] >= k[a])
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s/case.txt: kernel %d, padding %d along %c: "
                              "want kernel >= 1 and 0 <= padding < kernel",
                              c->dir, k[a], pad[a], "DHW"[a]);
    if (k[0] == k[1] && k[1] == k[2] && pad[0] == pad[1] && pad[1] == pad[2]) {
        t->p.kernel = k[0]; /* cubic: the parameters as before */
        t->p.pad = pad[0];
    } else {
        t->p = u3d_conv3d_params3(k, pad, 0);
    }
    return U3D_OK;
}

/* Loads the inputs and creates the outputs with the shapes they imply. */
static u3d_status setup(u3d_backend *be, const golden_case *c, conv_case *t,
                        u3d_error *err)
{
    U3D_TRY(golden_tensor(be, c, "x", &t->x, err));
    U3D_TRY(golden_tensor(be, c, "w", &t->w, err));
    U3D_TRY(golden_tensor(be, c, "dy", &t->dy, err));
    if (t->bias)
        U3D_TRY(golden_tensor(be, c, "b", &t->b, err));
    u3d_shape xs = t->x.shape, ws = t->w.shape;
    u3d_shape ys =
        u3d_shape5(xs.n, ws.n, u3d_conv3d_out_size_axis(xs.d, &t->p, 0),
                   u3d_conv3d_out_size_axis(xs.h, &t->p, 1),
                   u3d_conv3d_out_size_axis(xs.w, &t->p, 2));
    if (ys.d < 1 || ys.h < 1 || ys.w < 1)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s/x.npy is smaller than the kernel", c->dir);
    U3D_TRY(u3d_tensor_create(be, ys, U3D_F32, &t->y, err));
    U3D_TRY(u3d_tensor_create(be, xs, U3D_F32, &t->dx, err));
    U3D_TRY(u3d_tensor_create(be, ws, U3D_F32, &t->dw, err));
    if (t->bias)
        U3D_TRY(u3d_tensor_create(be, t->b.shape, U3D_F32, &t->db, err));
    return U3D_OK;
}

static u3d_status run_and_check(const golden_case *c, golden_report *rep,
                                conv_case *t, u3d_error *err)
{
    u3d_tensor *b = t->bias ? &t->b : NULL, *db = t->bias ? &t->db : NULL;
    u3d_status st = u3d_conv3d_forward(&t->p, &t->x, &t->w, b, &t->y, err);
    if (!st)
        st = u3d_conv3d_backward_data(&t->p, &t->dy, &t->w, &t->dx, err);
    if (!st)
        st = u3d_conv3d_backward_weight(&t->p, &t->x, &t->dy, &t->dw, db, err);
    if (st) { /* shape errors name the shapes; say which case they came from */
        u3d_errprefix(err, "%s (x.npy, w.npy, b.npy, dy.npy): ", c->dir);
        return st;
    }
    const golden_expect rows[] = {{"y", &t->y, U3D_GOLDEN_TOL_FWD},
                                  {"dx", &t->dx, U3D_GOLDEN_TOL_GRAD},
                                  {"dw", &t->dw, U3D_GOLDEN_TOL_GRAD},
                                  {"db", db, U3D_GOLDEN_TOL_GRAD}};
    return golden_check_all(c, rep, rows, sizeof rows / sizeof rows[0], err);
}

u3d_status golden_conv3d(u3d_backend *be, const golden_case *c,
                         golden_report *rep, u3d_error *err)
{
    conv_case t = {0};
    u3d_status st = read_params(c, &t, err);
    if (!st)
        st = setup(be, c, &t, err);
    if (!st)
        st = run_and_check(c, rep, &t, err);
    conv_case_release(&t);
    return st;
}
