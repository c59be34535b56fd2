/* The cuDNN backend's softmax + weighted cross-entropy (partial sums per block, reduced in
 * a fixed order so the loss is deterministic): CUDA kernels of kernels.cu.
 * Argument arrays must match the kernels' parameter types exactly. */
#ifdef U3D_HAVE_CUDNN
#include "backends/cudnn/cudnn_internal.h"

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
    U3D_TRY(u3d_cudnn_scratch(cx, (4 * g + 8) * sizeof(double), &base, err));
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
    long long V = u3d_cudnn_count(labels), ires[3];
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
    U3D_TRY(u3d_cudnn_launch(cx, K_CE_WEIGHTS, "softmax-ce weights",
                             (unsigned)G, 1, &a1, err));
    U3D_KARG(a2, s->sw);
    U3D_KARG(a2, s->bad);
    U3D_KARG(a2, s->first);
    U3D_KARG(a2, G);
    U3D_KARG(a2, lab);
    U3D_KARG(a2, V);
    U3D_KARG(a2, s->dres);
    U3D_KARG(a2, s->ires);
    U3D_TRY(u3d_cudnn_launch(cx, K_CE_WEIGHTS_FINAL, "softmax-ce weights final",
                             1, 1, &a2, err));
    U3D_TRY(u3d_cudnn_download(cx, ires, s->ires, sizeof ires, err));
    U3D_TRY(u3d_cudnn_download(cx, sw, s->dres, sizeof *sw, err));
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
    int N = s.n, C = s.c, G = u3d_cudnn_reduce_blocks(u3d_cudnn_count(labels));
    long long S = (long long)u3d_shape_spatial(s);
    ce_scratch sc;
    double sw, sl;
    U3D_TRY(ce_alloc(cx, G, &sc, err));
    U3D_TRY(ce_weights(cx, labels, C, ignore_label, class_weights, G, &sc, &sw,
                       err));
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
    U3D_TRY(u3d_cudnn_launch(cx, K_CE_SOFTMAX, "softmax-ce", (unsigned)G, 1,
                             &a3, err));
    U3D_KARG(a4, sc.loss);
    U3D_KARG(a4, G);
    U3D_KARG(a4, lres);
    U3D_TRY(u3d_cudnn_launch(cx, K_SUM_FINAL, "softmax-ce loss final", 1, 1,
                             &a4, err));
    U3D_TRY(u3d_cudnn_download(cx, &sl, lres, sizeof sl, err));
    *loss = (float)(sw != 0 ? sl / sw : 0.0);
    if (weight_sum)
        *weight_sum = (float)sw;
    return U3D_OK;
}

#else
typedef int u3d_cudnn_softmax_ce_unused;
#endif
