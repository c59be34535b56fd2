/* The cuDNN backend's own kernels (kernels.cu) behind the op contracts:
 * ReLU, max-pool (PyTorch's first-maximum tie rule, which cuDNN's pooling
 * does not promise), crop+concat, softmax cross-entropy, SGD and axpy.
 * Argument arrays must match the kernels' parameter types exactly. */
#ifdef U3D_HAVE_CUDNN
#include "backends/cudnn/cudnn_internal.h"

static long long count(const u3d_tensor *t)
{
    return (long long)u3d_shape_count(t->shape);
}

u3d_status u3d_cudnn_relu_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                                  u3d_error *err)
{
    long long n = count(x);
    const float *a = u3d_cudnn_f(x);
    float *b = u3d_cudnn_f(y);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, a);
    U3D_KARG(k, b);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_RELU_FWD, "relu forward",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

u3d_status u3d_cudnn_relu_backward(u3d_backend *be, cten *y, cten *dy,
                                   u3d_tensor *dx, u3d_error *err)
{
    long long n = count(y);
    const float *a = u3d_cudnn_f(y), *g = u3d_cudnn_f(dy);
    float *o = u3d_cudnn_f(dx);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, a);
    U3D_KARG(k, g);
    U3D_KARG(k, o);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_RELU_BWD, "relu backward",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

u3d_status u3d_cudnn_maxpool3d_forward(u3d_backend *be, cten *x,
                                       u3d_tensor *y, u3d_error *err)
{
    u3d_shape s = x->shape, o = y->shape;
    long long total = count(y);
    const float *a = u3d_cudnn_f(x);
    float *b = u3d_cudnn_f(y);
    u3d_kargs k = {0};
    U3D_KARG(k, a);
    U3D_KARG(k, b);
    U3D_KARG(k, s.d);
    U3D_KARG(k, s.h);
    U3D_KARG(k, s.w);
    U3D_KARG(k, o.d);
    U3D_KARG(k, o.h);
    U3D_KARG(k, o.w);
    U3D_KARG(k, total);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_MAXPOOL_FWD,
                            "maxpool forward", u3d_cudnn_blocks(total), 1, &k,
                            err);
}

u3d_status u3d_cudnn_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy,
                                        u3d_tensor *dx, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_shape s = x->shape, o = dy->shape;
    long long total = count(dy);
    const float *a = u3d_cudnn_f(x), *g = u3d_cudnn_f(dy);
    float *d = u3d_cudnn_f(dx);
    /* zero first: non-maxima and dropped trailing voxels stay 0 */
    U3D_CUDNN_TRY(u3d_cudnn_fill(cx, d, (size_t)count(dx), 0.0f, err));
    u3d_kargs k = {0};
    U3D_KARG(k, a);
    U3D_KARG(k, g);
    U3D_KARG(k, d);
    U3D_KARG(k, s.d);
    U3D_KARG(k, s.h);
    U3D_KARG(k, s.w);
    U3D_KARG(k, o.d);
    U3D_KARG(k, o.h);
    U3D_KARG(k, o.w);
    U3D_KARG(k, total);
    return u3d_cudnn_launch(cx, K_MAXPOOL_BWD, "maxpool backward",
                            u3d_cudnn_blocks(total), 1, &k, err);
}

u3d_status u3d_cudnn_crop_concat_forward(u3d_backend *be, cten *skip,
                                         cten *up, u3d_tensor *y,
                                         u3d_error *err)
{
    u3d_shape k = skip->shape, u = up->shape;
    int oz = (k.d - u.d) / 2, oy = (k.h - u.h) / 2, ox = (k.w - u.w) / 2;
    const float *ks = u3d_cudnn_f(skip), *us = u3d_cudnn_f(up);
    float *ys = u3d_cudnn_f(y);
    u3d_kargs a = {0};
    U3D_KARG(a, ks);
    U3D_KARG(a, us);
    U3D_KARG(a, ys);
    U3D_KARG(a, u.n);
    U3D_KARG(a, k.c);
    U3D_KARG(a, k.d);
    U3D_KARG(a, k.h);
    U3D_KARG(a, k.w);
    U3D_KARG(a, u.c);
    U3D_KARG(a, u.d);
    U3D_KARG(a, u.h);
    U3D_KARG(a, u.w);
    U3D_KARG(a, oz);
    U3D_KARG(a, oy);
    U3D_KARG(a, ox);
    long long total = count(y);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_CROP_FWD,
                            "crop-concat forward", u3d_cudnn_blocks(total), 1,
                            &a, err);
}

u3d_status u3d_cudnn_crop_concat_backward(u3d_backend *be, cten *dy,
                                          u3d_tensor *dskip, u3d_tensor *dup,
                                          int accumulate_skip, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_shape k = dskip->shape, u = dup->shape;
    int oz = (k.d - u.d) / 2, oy = (k.h - u.h) / 2, ox = (k.w - u.w) / 2;
    int acc = accumulate_skip != 0;
    const float *g = u3d_cudnn_f(dy);
    float *ds = u3d_cudnn_f(dskip), *du = u3d_cudnn_f(dup);
    u3d_kargs a1 = {0}, a2 = {0};
    U3D_KARG(a1, g);
    U3D_KARG(a1, ds);
    U3D_KARG(a1, u.n);
    U3D_KARG(a1, k.c);
    U3D_KARG(a1, k.d);
    U3D_KARG(a1, k.h);
    U3D_KARG(a1, k.w);
    U3D_KARG(a1, u.c);
    U3D_KARG(a1, u.d);
    U3D_KARG(a1, u.h);
    U3D_KARG(a1, u.w);
    U3D_KARG(a1, oz);
    U3D_KARG(a1, oy);
    U3D_KARG(a1, ox);
    U3D_KARG(a1, acc);
    U3D_CUDNN_TRY(u3d_cudnn_launch(cx, K_CROP_BWD_SKIP,
                                   "crop-concat backward (skip)",
                                   u3d_cudnn_blocks(count(dskip)), 1, &a1,
                                   err));
    long long P = (long long)u3d_shape_spatial(u);
    U3D_KARG(a2, g);
    U3D_KARG(a2, du);
    U3D_KARG(a2, u.n);
    U3D_KARG(a2, k.c);
    U3D_KARG(a2, u.c);
    U3D_KARG(a2, P);
    return u3d_cudnn_launch(cx, K_CROP_BWD_UP, "crop-concat backward (up)",
                            u3d_cudnn_blocks(count(dup)), 1, &a2, err);
}

/* Device scratch of the loss: G partials of four kinds, then results. */
typedef struct ce_scratch {
    double *sw, *loss, *dres;
    long long *bad, *first, *ires;
} ce_scratch;

static u3d_status ce_alloc(u3d_cudnn *cx, int G, ce_scratch *s,
                           u3d_error *err)
{
    void *base;
    size_t g = (size_t)G;
    U3D_CUDNN_TRY(u3d_cudnn_scratch(cx, (4 * g + 8) * sizeof(double), &base,
                                    err));
    double *d = base; /* doubles and long longs are both 8 bytes */
    s->sw = d;
    s->loss = d + g;
    s->bad = (long long *)(d + 2 * g);
    s->first = (long long *)(d + 3 * g);
    s->dres = d + 4 * g; /* [0] sum of weights, [1] loss sum */
    s->ires = (long long *)(d + 4 * g + 2); /* [0..2], see kernels.cu */
    return U3D_OK;
}

/* Passes 1-2: sum of weights and label validation, checked on the host
 * before anything is written (as the reference does). */
static u3d_status ce_weights(u3d_cudnn *cx, cten *labels, int C, int ignore,
                             cten *cw, int G, ce_scratch *s, double *sw,
                             u3d_error *err)
{
    long long V = count(labels), ires[3];
    const int *lab = (const int *)labels->buf;
    const float *w = u3d_cudnn_f(cw);
    u3d_kargs a1 = {0}, a2 = {0};
    U3D_KARG(a1, lab);
    U3D_KARG(a1, V);
    U3D_KARG(a1, C);
    U3D_KARG(a1, ignore);
    U3D_KARG(a1, w);
    U3D_KARG(a1, s->sw);
    U3D_KARG(a1, s->bad);
    U3D_KARG(a1, s->first);
    U3D_CUDNN_TRY(u3d_cudnn_launch(cx, K_CE_WEIGHTS, "softmax-ce weights",
                                   (unsigned)G, 1, &a1, err));
    U3D_KARG(a2, s->sw);
    U3D_KARG(a2, s->bad);
    U3D_KARG(a2, s->first);
    U3D_KARG(a2, G);
    U3D_KARG(a2, lab);
    U3D_KARG(a2, V);
    U3D_KARG(a2, s->dres);
    U3D_KARG(a2, s->ires);
    U3D_CUDNN_TRY(u3d_cudnn_launch(cx, K_CE_WEIGHTS_FINAL,
                                   "softmax-ce weights final", 1, 1, &a2, err));
    U3D_CUDNN_TRY(u3d_cudnn_download(cx, ires, s->ires, sizeof ires, err));
    U3D_CUDNN_TRY(u3d_cudnn_download(cx, sw, s->dres, sizeof *sw, err));
    if (ires[0])
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "softmax cross-entropy: label %lld found (%lld "
                          "invalid voxel labels): labels must be >= 0 and < "
                          "classes (%d), or the ignore label %d",
                          ires[2], ires[0], C, ignore);
    return U3D_OK;
}

u3d_status u3d_cudnn_softmax_ce(u3d_backend *be, cten *logits, cten *labels,
                                cten *class_weights, int ignore_label,
                                u3d_tensor *probs, u3d_tensor *dlogits,
                                float *loss, float *weight_sum,
                                u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_shape s = logits->shape;
    int N = s.n, C = s.c, G = u3d_cudnn_reduce_blocks(count(labels));
    long long S = (long long)u3d_shape_spatial(s);
    ce_scratch sc;
    double sw, sl;
    U3D_CUDNN_TRY(ce_alloc(cx, G, &sc, err));
    U3D_CUDNN_TRY(ce_weights(cx, labels, C, ignore_label, class_weights, G,
                             &sc, &sw, err));
    const float *z = u3d_cudnn_f(logits), *w = u3d_cudnn_f(class_weights);
    const int *lab = (const int *)labels->buf;
    float *pr = probs ? u3d_cudnn_f(probs) : NULL;
    float *dl = dlogits ? u3d_cudnn_f(dlogits) : NULL;
    double *lres = sc.dres + 1;
    u3d_kargs a3 = {0}, a4 = {0};
    U3D_KARG(a3, z);
    U3D_KARG(a3, lab);
    U3D_KARG(a3, w);
    U3D_KARG(a3, N);
    U3D_KARG(a3, C);
    U3D_KARG(a3, S);
    U3D_KARG(a3, ignore_label);
    U3D_KARG(a3, sc.dres);
    U3D_KARG(a3, pr);
    U3D_KARG(a3, dl);
    U3D_KARG(a3, sc.loss);
    U3D_CUDNN_TRY(u3d_cudnn_launch(cx, K_CE_SOFTMAX, "softmax-ce", (unsigned)G,
                                   1, &a3, err));
    U3D_KARG(a4, sc.loss);
    U3D_KARG(a4, G);
    U3D_KARG(a4, lres);
    U3D_CUDNN_TRY(u3d_cudnn_launch(cx, K_SUM_FINAL, "softmax-ce loss final", 1,
                                   1, &a4, err));
    U3D_CUDNN_TRY(u3d_cudnn_download(cx, &sl, lres, sizeof sl, err));
    *loss = (float)(sw != 0 ? sl / sw : 0.0);
    if (weight_sum)
        *weight_sum = (float)sw;
    return U3D_OK;
}

u3d_status u3d_cudnn_sgd_step(u3d_backend *be, const u3d_sgd_params *p,
                              u3d_tensor *param, cten *grad, u3d_tensor *buf,
                              u3d_error *err)
{
    long long n = count(param);
    float lr = p->lr, m = p->momentum, wd = p->weight_decay;
    float *w = u3d_cudnn_f(param), *b = u3d_cudnn_f(buf);
    const float *g = u3d_cudnn_f(grad);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, lr);
    U3D_KARG(k, m);
    U3D_KARG(k, wd);
    U3D_KARG(k, w);
    U3D_KARG(k, g);
    U3D_KARG(k, b);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_SGD, "sgd step",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

u3d_status u3d_cudnn_axpy(u3d_backend *be, float alpha, cten *x, u3d_tensor *y,
                          u3d_error *err)
{
    long long n = count(x);
    const float *a = u3d_cudnn_f(x);
    float *b = u3d_cudnn_f(y);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, alpha);
    U3D_KARG(k, a);
    U3D_KARG(k, b);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_AXPY, "axpy",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

#else
typedef int u3d_cudnn_ops_unused;
#endif
