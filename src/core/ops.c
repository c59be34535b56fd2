/* Shape validation and dispatch of every operation to its backend. */
#include <math.h>
#include <string.h>
#include "core/backend_impl.h"

#define SB 96

/* Common checks: tensors present, allocated, same backend, dtype. */
static u3d_status check_tensor(const char *op, const char *name,
                               const u3d_tensor *t, u3d_backend *be,
                               u3d_dtype dt, u3d_error *err)
{
    if (!t || !t->buf)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "%s: tensor %s is missing",
                          op, name);
    if (be && t->be != be)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: tensor %s lives on another backend", op, name);
    if (t->dtype != dt)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: tensor %s must be %s", op, name,
                          dt == U3D_F32 ? "float32" : "int32");
    return U3D_OK;
}

static u3d_status want_shape(const char *op, const char *name,
                             const u3d_tensor *t, u3d_shape want,
                             u3d_error *err)
{
    char a[SB], b[SB];
    if (!u3d_shape_eq(t->shape, want))
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s: tensor %s has shape %s, expected %s", op, name,
                          u3d_shape_str(t->shape, a, SB),
                          u3d_shape_str(want, b, SB));
    return U3D_OK;
}

static const char *const op_names[U3D_OP_COUNT] = {
#define U3D_X(E, name, params) [U3D_OP_##E] = #name,
    U3D_OPS(U3D_X)
#undef U3D_X
};

const char *u3d_op_name(u3d_op op)
{
    return (int)op >= 0 && op < U3D_OP_COUNT ? op_names[op] : NULL;
}

/* A float32 tensor of be with shape s; OPT: the same unless t is NULL. */
static u3d_status arg(const char *op, const char *name, const u3d_tensor *t,
                      u3d_backend *be, u3d_shape s, u3d_error *err)
{
    U3D_TRY(check_tensor(op, name, t, be, U3D_F32, err));
    return want_shape(op, name, t, s, err);
}

#define F32(name, t) U3D_TRY(check_tensor(OP, name, t, be, U3D_F32, err))
#define ARG(name, t, s) U3D_TRY(arg(OP, name, t, be, s, err))
#define OPT(name, t, s)                                                        \
    do {                                                                       \
        if (t)                                                                 \
            ARG(name, t, s);                                                   \
    } while (0)
/* every backend's table is complete (generated from the op list) */
#define DISPATCH(fn, ...) be->ops->fn(be, __VA_ARGS__)

static u3d_shape chan_shape(int c) { return u3d_shape5(1, c, 1, 1, 1); }

void u3d_conv3d_axes(const u3d_conv3d_params *p, int k[3], int pad[3])
{
    int per_axis = p->kernel3[0] || p->kernel3[1] || p->kernel3[2];
    for (int a = 0; a < 3; a++) {
        k[a] = per_axis ? p->kernel3[a] : p->kernel;
        pad[a] = per_axis ? p->pad3[a] : p->pad;
    }
}

u3d_conv3d_params u3d_conv3d_params3(const int k[3], const int pad[3],
                                     int relu)
{
    u3d_conv3d_params p = {.relu = relu};
    for (int a = 0; a < 3; a++) {
        p.kernel3[a] = k[a];
        p.pad3[a] = pad[a];
    }
    return p;
}

int u3d_conv3d_out_size_axis(int in, const u3d_conv3d_params *p, int axis)
{
    int k[3], pad[3];
    u3d_conv3d_axes(p, k, pad);
    return in + 2 * pad[axis] - k[axis] + 1;
}

int u3d_conv3d_out_size(int in, const u3d_conv3d_params *p)
{
    return u3d_conv3d_out_size_axis(in, p, 2);
}

/* fwd: the forward pass, the only one that may fuse ReLU. */
static u3d_status conv_params(const char *OP, const u3d_conv3d_params *p,
                              int fwd, u3d_error *err)
{
    if (!p)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "%s: no parameters", OP);
    int k[3], pad[3];
    u3d_conv3d_axes(p, k, pad);
    for (int a = 0; a < 3; a++)
        if (k[a] < 1 || pad[a] < 0 || pad[a] >= k[a])
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "%s: kernel must be >= 1 and 0 <= pad < kernel "
                              "(axis %c: kernel %d, pad %d)",
                              OP, "DHW"[a], k[a], pad[a]);
    if (p->relu && (!fwd || p->relu != 1))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: relu is 0 or 1, and only the forward pass "
                          "fuses it", OP);
    return U3D_OK;
}

/* The output shape a conv of x with weight w produces, or an error. */
static u3d_status conv_out_shape(const char *OP, const u3d_conv3d_params *p,
                                 u3d_shape x, u3d_shape w, u3d_shape *y,
                                 u3d_error *err)
{
    char a[SB], b[SB];
    int k[3], pad[3];
    u3d_conv3d_axes(p, k, pad);
    if (w.c != x.c || w.d != k[0] || w.h != k[1] || w.w != k[2])
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s: weight %s does not fit input %s with kernel "
                          "%dx%dx%d (want Cout x %d x %d x %d x %d)",
                          OP, u3d_shape_str(w, a, SB), u3d_shape_str(x, b, SB),
                          k[0], k[1], k[2], x.c, k[0], k[1], k[2]);
    *y = u3d_shape5(x.n, w.n, u3d_conv3d_out_size_axis(x.d, p, 0),
                    u3d_conv3d_out_size_axis(x.h, p, 1),
                    u3d_conv3d_out_size_axis(x.w, p, 2));
    if (y->d < 1 || y->h < 1 || y->w < 1)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s: input %s is smaller than the %dx%dx%d kernel",
                          OP, u3d_shape_str(x, a, SB), k[0], k[1], k[2]);
    return U3D_OK;
}

u3d_status u3d_conv3d_forward(const u3d_conv3d_params *p, const u3d_tensor *x,
                              const u3d_tensor *w, const u3d_tensor *b,
                              u3d_tensor *y, u3d_error *err)
{
    const char *OP = "conv3d forward";
    U3D_TRY(conv_params(OP, p, 1, err));
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    F32("w", w);
    u3d_shape ys;
    U3D_TRY(conv_out_shape(OP, p, x->shape, w->shape, &ys, err));
    OPT("b", b, chan_shape(w->shape.n));
    ARG("y", y, ys);
    return DISPATCH(conv3d_forward, p, x, w, b, y, err);
}

u3d_status u3d_conv3d_backward_data(const u3d_conv3d_params *p,
                                    const u3d_tensor *dy, const u3d_tensor *w,
                                    u3d_tensor *dx, u3d_error *err)
{
    const char *OP = "conv3d backward-data";
    U3D_TRY(conv_params(OP, p, 0, err));
    U3D_TRY(check_tensor(OP, "dy", dy, NULL, U3D_F32, err));
    u3d_backend *be = dy->be;
    F32("w", w);
    F32("dx", dx);
    u3d_shape ys;
    U3D_TRY(conv_out_shape(OP, p, dx->shape, w->shape, &ys, err));
    ARG("dy", dy, ys);
    return DISPATCH(conv3d_backward_data, p, dy, w, dx, err);
}

u3d_status u3d_conv3d_backward_weight(const u3d_conv3d_params *p,
                                      const u3d_tensor *x, const u3d_tensor *dy,
                                      u3d_tensor *dw, u3d_tensor *db,
                                      u3d_error *err)
{
    const char *OP = "conv3d backward-weight";
    U3D_TRY(conv_params(OP, p, 0, err));
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    F32("dw", dw);
    u3d_shape ys;
    U3D_TRY(conv_out_shape(OP, p, x->shape, dw->shape, &ys, err));
    ARG("dy", dy, ys);
    OPT("db", db, chan_shape(dw->shape.n));
    return DISPATCH(conv3d_backward_weight, p, x, dy, dw, db, err);
}

/* The factor (kernel = stride) per axis is the weight's spatial size. */
static u3d_status upconv_check(const char *OP, u3d_shape x, u3d_shape w,
                               u3d_shape *y, u3d_error *err)
{
    char a[SB], b[SB];
    int f12 = w.d >= 1 && w.d <= 2 && w.h >= 1 && w.h <= 2 && w.w >= 1 &&
              w.w <= 2;
    if (w.n != x.c || !f12)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s: weight %s does not fit input %s (want %d x Cout "
                          "x 2 x 2 x 2, or 1 instead of 2 along an axis: "
                          "1 x 2 x 2)",
                          OP, u3d_shape_str(w, a, SB), u3d_shape_str(x, b, SB),
                          x.c);
    *y = u3d_shape5(x.n, w.c, w.d * x.d, w.h * x.h, w.w * x.w);
    return U3D_OK;
}

u3d_status u3d_upconv3d_forward(const u3d_tensor *x, const u3d_tensor *w,
                                const u3d_tensor *b, u3d_tensor *y,
                                u3d_error *err)
{
    const char *OP = "upconv3d forward";
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    F32("w", w);
    u3d_shape ys;
    U3D_TRY(upconv_check(OP, x->shape, w->shape, &ys, err));
    OPT("b", b, chan_shape(w->shape.c));
    ARG("y", y, ys);
    return DISPATCH(upconv3d_forward, x, w, b, y, err);
}

u3d_status u3d_upconv3d_backward_data(const u3d_tensor *dy,
                                      const u3d_tensor *w, u3d_tensor *dx,
                                      u3d_error *err)
{
    const char *OP = "upconv3d backward-data";
    U3D_TRY(check_tensor(OP, "dy", dy, NULL, U3D_F32, err));
    u3d_backend *be = dy->be;
    F32("w", w);
    F32("dx", dx);
    u3d_shape ys;
    U3D_TRY(upconv_check(OP, dx->shape, w->shape, &ys, err));
    ARG("dy", dy, ys);
    return DISPATCH(upconv3d_backward_data, dy, w, dx, err);
}

u3d_status u3d_upconv3d_backward_weight(const u3d_tensor *x,
                                        const u3d_tensor *dy, u3d_tensor *dw,
                                        u3d_tensor *db, u3d_error *err)
{
    const char *OP = "upconv3d backward-weight";
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    F32("dw", dw);
    u3d_shape ys;
    U3D_TRY(upconv_check(OP, x->shape, dw->shape, &ys, err));
    ARG("dy", dy, ys);
    OPT("db", db, chan_shape(dw->shape.c));
    return DISPATCH(upconv3d_backward_weight, x, dy, dw, db, err);
}

/* The window per axis from y's shape: 1 where y keeps x's size, else 2
 * (y = x / 2, floor). Unambiguous: x / 2 == x only for empty axes. */
static u3d_status pool_shape(const char *OP, const char *yname, u3d_shape x,
                             u3d_shape y, u3d_error *err)
{
    char a[SB], b[SB], c[SB];
    int xs[3] = {x.d, x.h, x.w}, ys[3] = {y.d, y.h, y.w};
    int ok = y.n == x.n && y.c == x.c;
    for (int i = 0; i < 3 && ok; i++)
        ok = ys[i] == xs[i] || (xs[i] >= 2 && ys[i] == xs[i] / 2);
    if (ok)
        return U3D_OK;
    u3d_shape half = u3d_shape5(x.n, x.c, x.d / 2, x.h / 2, x.w / 2);
    return u3d_seterr(err, U3D_ERR_SHAPE,
                      "%s: tensor %s has shape %s, expected %s (x %s pooled "
                      "2x2x2), or x's size along the axes with window 1 "
                      "(1x2x2 pooling)",
                      OP, yname, u3d_shape_str(y, a, SB),
                      u3d_shape_str(half, b, SB), u3d_shape_str(x, c, SB));
}

u3d_status u3d_maxpool3d_forward(const u3d_tensor *x, u3d_tensor *y,
                                 u3d_error *err)
{
    const char *OP = "maxpool3d forward";
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    F32("y", y);
    U3D_TRY(pool_shape(OP, "y", x->shape, y->shape, err));
    return DISPATCH(maxpool3d_forward, x, y, err);
}

u3d_status u3d_maxpool3d_backward(const u3d_tensor *x, const u3d_tensor *dy,
                                  u3d_tensor *dx, u3d_error *err)
{
    const char *OP = "maxpool3d backward";
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    F32("dy", dy);
    U3D_TRY(pool_shape(OP, "dy", x->shape, dy->shape, err));
    ARG("dx", dx, x->shape);
    return DISPATCH(maxpool3d_backward, x, dy, dx, err);
}

u3d_status u3d_relu_forward(const u3d_tensor *x, u3d_tensor *y, u3d_error *err)
{
    const char *OP = "relu forward";
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    ARG("y", y, x->shape);
    return DISPATCH(relu_forward, x, y, err);
}

u3d_status u3d_relu_backward(const u3d_tensor *y, const u3d_tensor *dy,
                             u3d_tensor *dx, u3d_error *err)
{
    const char *OP = "relu backward";
    U3D_TRY(check_tensor(OP, "y", y, NULL, U3D_F32, err));
    u3d_backend *be = y->be;
    ARG("dy", dy, y->shape);
    ARG("dx", dx, y->shape);
    return DISPATCH(relu_backward, y, dy, dx, err);
}

static u3d_status bn_params(const char *OP, const u3d_bn_params *p,
                            u3d_error *err)
{
    if (!p || !(p->eps > 0.0f) || !(p->momentum >= 0.0f) || p->momentum > 1.0f)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: eps must be > 0 and momentum in [0,1]", OP);
    return U3D_OK;
}

u3d_status u3d_batchnorm3d_forward_train(
    const u3d_bn_params *p, const u3d_tensor *x, const u3d_tensor *gamma,
    const u3d_tensor *beta, u3d_tensor *running_mean, u3d_tensor *running_var,
    u3d_tensor *y, u3d_tensor *save_mean, u3d_tensor *save_invstd,
    u3d_error *err)
{
    const char *OP = "batchnorm3d forward (training)";
    U3D_TRY(bn_params(OP, p, err));
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    u3d_shape cs = chan_shape(x->shape.c);
    OPT("gamma", gamma, cs);
    OPT("beta", beta, cs);
    if ((running_mean == NULL) != (running_var == NULL))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: give both running statistics or neither", OP);
    OPT("running_mean", running_mean, cs);
    OPT("running_var", running_var, cs);
    ARG("y", y, x->shape);
    ARG("save_mean", save_mean, cs);
    ARG("save_invstd", save_invstd, cs);
    return DISPATCH(batchnorm3d_forward_train, p, x, gamma, beta, running_mean,
                    running_var, y, save_mean, save_invstd, err);
}

u3d_status u3d_batchnorm3d_forward_infer(
    const u3d_bn_params *p, const u3d_tensor *x, const u3d_tensor *gamma,
    const u3d_tensor *beta, const u3d_tensor *running_mean,
    const u3d_tensor *running_var, u3d_tensor *y, u3d_error *err)
{
    const char *OP = "batchnorm3d forward (inference)";
    U3D_TRY(bn_params(OP, p, err));
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    u3d_shape cs = chan_shape(x->shape.c);
    OPT("gamma", gamma, cs);
    OPT("beta", beta, cs);
    ARG("running_mean", running_mean, cs);
    ARG("running_var", running_var, cs);
    ARG("y", y, x->shape);
    return DISPATCH(batchnorm3d_forward_infer, p, x, gamma, beta, running_mean,
                    running_var, y, err);
}

u3d_status u3d_batchnorm3d_backward(
    const u3d_tensor *x, const u3d_tensor *dy, const u3d_tensor *gamma,
    const u3d_tensor *save_mean, const u3d_tensor *save_invstd,
    u3d_tensor *dx, u3d_tensor *dgamma, u3d_tensor *dbeta, u3d_error *err)
{
    const char *OP = "batchnorm3d backward";
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    u3d_shape cs = chan_shape(x->shape.c);
    ARG("dy", dy, x->shape);
    OPT("gamma", gamma, cs);
    ARG("save_mean", save_mean, cs);
    ARG("save_invstd", save_invstd, cs);
    ARG("dx", dx, x->shape);
    OPT("dgamma", dgamma, cs);
    OPT("dbeta", dbeta, cs);
    return DISPATCH(batchnorm3d_backward, x, dy, gamma, save_mean, save_invstd,
                    dx, dgamma, dbeta, err);
}

static u3d_status crop_check(const char *OP, u3d_shape skip, u3d_shape up,
                             u3d_error *err)
{
    char a[SB], b[SB];
    if (skip.n != up.n || skip.d < up.d || skip.h < up.h || skip.w < up.w)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s: skip features %s cannot be cropped to %s", OP,
                          u3d_shape_str(skip, a, SB), u3d_shape_str(up, b, SB));
    return U3D_OK;
}

/* The concat's shape: up's, with both channel counts. */
static u3d_shape cat_shape(u3d_shape skip, u3d_shape up)
{
    up.c += skip.c;
    return up;
}

u3d_status u3d_crop_concat_forward(const u3d_tensor *skip,
                                   const u3d_tensor *up, u3d_tensor *y,
                                   u3d_error *err)
{
    const char *OP = "crop-concat forward";
    U3D_TRY(check_tensor(OP, "skip", skip, NULL, U3D_F32, err));
    u3d_backend *be = skip->be;
    F32("up", up);
    U3D_TRY(crop_check(OP, skip->shape, up->shape, err));
    ARG("y", y, cat_shape(skip->shape, up->shape));
    return DISPATCH(crop_concat_forward, skip, up, y, err);
}

u3d_status u3d_crop_concat_backward(const u3d_tensor *dy, u3d_tensor *dskip,
                                    u3d_tensor *dup, int accumulate_skip,
                                    u3d_error *err)
{
    const char *OP = "crop-concat backward";
    U3D_TRY(check_tensor(OP, "dy", dy, NULL, U3D_F32, err));
    u3d_backend *be = dy->be;
    F32("dskip", dskip);
    F32("dup", dup);
    U3D_TRY(crop_check(OP, dskip->shape, dup->shape, err));
    ARG("dy", dy, cat_shape(dskip->shape, dup->shape));
    return DISPATCH(crop_concat_backward, dy, dskip, dup, accumulate_skip, err);
}

u3d_status u3d_softmax_ce(const u3d_tensor *logits, const u3d_tensor *labels,
                          const u3d_tensor *class_weights, int ignore_label,
                          u3d_tensor *probs, u3d_tensor *dlogits, float *loss,
                          float *weight_sum, u3d_error *err)
{
    const char *OP = "softmax cross-entropy";
    U3D_TRY(check_tensor(OP, "logits", logits, NULL, U3D_F32, err));
    u3d_backend *be = logits->be;
    U3D_TRY(check_tensor(OP, "labels", labels, be, U3D_I32, err));
    if (!loss)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "%s: loss pointer is NULL",
                          OP);
    u3d_shape ls = logits->shape;
    ls.c = 1;
    U3D_TRY(want_shape(OP, "labels", labels, ls, err));
    ARG("class_weights", class_weights, chan_shape(logits->shape.c));
    OPT("probs", probs, logits->shape);
    OPT("dlogits", dlogits, logits->shape);
    return DISPATCH(softmax_ce, logits, labels, class_weights, ignore_label,
                    probs, dlogits, loss, weight_sum, err);
}

u3d_status u3d_sgd_step(const u3d_sgd_params *p, u3d_tensor *param,
                        const u3d_tensor *grad, u3d_tensor *buf,
                        u3d_error *err)
{
    const char *OP = "sgd step";
    U3D_TRY(check_tensor(OP, "param", param, NULL, U3D_F32, err));
    u3d_backend *be = param->be;
    if (!p || !(p->lr >= 0.0f) || !(p->momentum >= 0.0f) ||
        !(p->weight_decay >= 0.0f))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: lr, momentum and weight decay must be >= 0", OP);
    ARG("grad", grad, param->shape);
    ARG("momentum buffer", buf, param->shape);
    return DISPATCH(sgd_step, p, param, grad, buf, err);
}

u3d_status u3d_adam_step(const u3d_adam_params *p, u3d_tensor *param,
                         const u3d_tensor *grad, u3d_tensor *m, u3d_tensor *v,
                         u3d_error *err)
{
    const char *OP = "adam step";
    U3D_TRY(check_tensor(OP, "param", param, NULL, U3D_F32, err));
    u3d_backend *be = param->be;
    if (!p || !(p->lr >= 0.0f) || !(p->weight_decay >= 0.0f) ||
        !(p->beta1 >= 0.0 && p->beta1 < 1.0) ||
        !(p->beta2 >= 0.0 && p->beta2 < 1.0) || !(p->eps > 0.0f) ||
        !isfinite(p->lr) || !isfinite(p->weight_decay) || !isfinite(p->eps) ||
        p->step < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: needs lr, weight decay >= 0, betas in [0,1), "
                          "eps > 0 and step >= 1",
                          OP);
    ARG("grad", grad, param->shape);
    ARG("first moment", m, param->shape);
    ARG("second moment", v, param->shape);
    return DISPATCH(adam_step, p, param, grad, m, v, err);
}

void u3d_adam_corrections(const u3d_adam_params *p, float *step_size,
                          float *bc2_sqrt)
{
    /* in double: 1 - 0.999^t loses most digits in float for small t */
    double b1t = pow(p->beta1, (double)p->step);
    double b2t = pow(p->beta2, (double)p->step);
    *step_size = (float)((double)p->lr / (1.0 - b1t));
    *bc2_sqrt = (float)sqrt(1.0 - b2t);
}

u3d_status u3d_axpy(float alpha, const u3d_tensor *x, u3d_tensor *y,
                    u3d_error *err)
{
    const char *OP = "axpy";
    U3D_TRY(check_tensor(OP, "x", x, NULL, U3D_F32, err));
    u3d_backend *be = x->be;
    F32("y", y);
    if (u3d_shape_count(x->shape) != u3d_shape_count(y->shape))
        return u3d_seterr(err, U3D_ERR_SHAPE, "%s: x and y differ in size", OP);
    return DISPATCH(axpy, alpha, x, y, err);
}
