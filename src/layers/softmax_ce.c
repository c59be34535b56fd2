/* Softmax + weighted cross-entropy on OpenCL (cl/softmax_ce.cl). Four
 * launches, one blocking read of the 4-int result at the end. */
#include <string.h>
#include "layers/layers.h"
#include "layers/reduce.h"

#define PART_LWS 64
#define MIN_PER_ITEM 32
#define FINAL_LWS 256

typedef struct ce_geo {
    cl_uint S, C, N, G;
    cl_int ignore;
    size_t part_lws, L;
} ce_geo;

/* Scratch: partial weights, bad counts, bad values, partial losses (G
 * each), then the 4-int result. */
typedef struct ce_bufs {
    u3d_tensor pw, pbad, pval, pl, res;
} ce_bufs;

static void release(ce_bufs *b)
{
    u3d_tensor_release(&b->pw);
    u3d_tensor_release(&b->pbad);
    u3d_tensor_release(&b->pval);
    u3d_tensor_release(&b->pl);
    u3d_tensor_release(&b->res);
}

static u3d_status alloc(u3d_backend *be, cl_uint G, ce_bufs *b, u3d_error *err)
{
    u3d_shape s = u3d_shape5(1, 1, 1, 1, (int)G);
    memset(b, 0, sizeof *b);
    u3d_status st = u3d_tensor_create(be, s, U3D_F32, &b->pw, err);
    if (!st)
        st = u3d_tensor_create(be, s, U3D_I32, &b->pbad, err);
    if (!st)
        st = u3d_tensor_create(be, s, U3D_I32, &b->pval, err);
    if (!st)
        st = u3d_tensor_create(be, s, U3D_F32, &b->pl, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, 1, 1, 1, 4), U3D_I32,
                               &b->res, err);
    if (st)
        release(b);
    return st;
}

/* Pass A: weight sum and invalid labels into res[1..3]. */
static u3d_status pass_weights(u3d_cl *cl, const ce_geo *g, cten *labels,
                               cten *w, ce_bufs *b, u3d_error *err)
{
    cl_kernel k1, k2;
    U3D_TRY(u3d_cl_kernel_get(cl, "softmax_ce", "ce_weight_partial", NULL, &k1,
                              err));
    U3D_TRY(u3d_cl_kernel_get(cl, "softmax_ce", "ce_weight_final", NULL, &k2,
                              err));
    cl_mem lm = u3d_cl_mem(labels), wm = u3d_cl_mem(w);
    cl_mem pw = u3d_cl_mem(&b->pw), pbad = u3d_cl_mem(&b->pbad);
    cl_mem pval = u3d_cl_mem(&b->pval), res = u3d_cl_mem(&b->res);
    U3D_ARG(k1, 0, lm, err);
    U3D_ARG(k1, 1, wm, err);
    U3D_ARG(k1, 2, g->ignore, err);
    U3D_ARG(k1, 3, g->S, err);
    U3D_ARG(k1, 4, g->C, err);
    U3D_ARG(k1, 5, g->N, err);
    U3D_ARG(k1, 6, g->G, err);
    U3D_ARG(k1, 7, pw, err);
    U3D_ARG(k1, 8, pbad, err);
    U3D_ARG(k1, 9, pval, err);
    size_t gws = g->G, lws = g->part_lws;
    U3D_TRY(u3d_cl_launch(cl, k1, "ce_weight_partial", 1, &gws, &lws, err));

    size_t L;
    U3D_TRY(u3d_cl_pow2_lws(cl, k2, FINAL_LWS, &L, err));
    U3D_ARG(k2, 0, pw, err);
    U3D_ARG(k2, 1, pbad, err);
    U3D_ARG(k2, 2, pval, err);
    U3D_ARG(k2, 3, g->G, err);
    U3D_ARG(k2, 4, res, err);
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 5, L * sizeof(float), NULL),
                         "clSetKernelArg(local weights)", err));
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 6, L * sizeof(cl_uint), NULL),
                         "clSetKernelArg(local counts)", err));
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 7, L * sizeof(cl_uint), NULL),
                         "clSetKernelArg(local first)", err));
    return u3d_cl_launch(cl, k2, "ce_weight_final", 1, &L, &L, err);
}

/* Pass B: probs, dlogits, and the loss into res[0]. */
static u3d_status pass_loss(u3d_cl *cl, const ce_geo *g, cten *logits,
                            cten *labels, cten *w, u3d_tensor *probs,
                            u3d_tensor *dlogits, ce_bufs *b, u3d_error *err)
{
    cl_kernel k1, k2;
    U3D_TRY(u3d_cl_kernel_get(cl, "softmax_ce", "ce_loss_partial", NULL, &k1,
                              err));
    U3D_TRY(u3d_cl_kernel_get(cl, "softmax_ce", "ce_loss_final", NULL, &k2,
                              err));
    cl_mem zm = u3d_cl_mem(logits), lm = u3d_cl_mem(labels);
    cl_mem wm = u3d_cl_mem(w), res = u3d_cl_mem(&b->res);
    cl_mem pl = u3d_cl_mem(&b->pl);
    /* absent outputs: a dummy buffer the kernel never touches */
    cl_mem pm = probs ? u3d_cl_mem(probs) : pl;
    cl_mem dm = dlogits ? u3d_cl_mem(dlogits) : pl;
    cl_int hp = probs != NULL, hd = dlogits != NULL;
    U3D_ARG(k1, 0, zm, err);
    U3D_ARG(k1, 1, lm, err);
    U3D_ARG(k1, 2, wm, err);
    U3D_ARG(k1, 3, g->ignore, err);
    U3D_ARG(k1, 4, g->S, err);
    U3D_ARG(k1, 5, g->C, err);
    U3D_ARG(k1, 6, g->N, err);
    U3D_ARG(k1, 7, g->G, err);
    U3D_ARG(k1, 8, res, err);
    U3D_ARG(k1, 9, pm, err);
    U3D_ARG(k1, 10, hp, err);
    U3D_ARG(k1, 11, dm, err);
    U3D_ARG(k1, 12, hd, err);
    U3D_ARG(k1, 13, pl, err);
    size_t gws = g->G, lws = g->part_lws;
    U3D_TRY(u3d_cl_launch(cl, k1, "ce_loss_partial", 1, &gws, &lws, err));

    size_t L;
    U3D_TRY(u3d_cl_pow2_lws(cl, k2, FINAL_LWS, &L, err));
    U3D_ARG(k2, 0, pl, err);
    U3D_ARG(k2, 1, g->G, err);
    U3D_ARG(k2, 2, res, err);
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 3, L * sizeof(float), NULL),
                         "clSetKernelArg(local loss)", err));
    return u3d_cl_launch(cl, k2, "ce_loss_final", 1, &L, &L, err);
}

static u3d_status geometry(u3d_cl *cl, cten *logits, int ignore, ce_geo *g,
                           u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "softmax_ce", "ce_loss_partial", NULL, &k,
                              err));
    U3D_TRY(u3d_cl_pow2_lws(cl, k, PART_LWS, &g->part_lws, err));
    g->S = (cl_uint)u3d_shape_spatial(logits->shape);
    g->C = (cl_uint)logits->shape.c;
    g->N = (cl_uint)logits->shape.n;
    g->ignore = ignore;
    size_t v = (size_t)g->S * g->N;
    size_t gmax = (size_t)u3d_cl_tune(cl, "softmax_ce", "partials", 4096);
    size_t G = (v + MIN_PER_ITEM - 1) / MIN_PER_ITEM;
    if (G > gmax)
        G = gmax;
    g->G = (cl_uint)u3d_round_up(G ? G : 1, PART_LWS);
    return U3D_OK;
}

u3d_status u3d_cl_softmax_ce(u3d_backend *be, cten *logits, cten *labels,
                             cten *class_weights, int ignore_label,
                             u3d_tensor *probs, u3d_tensor *dlogits,
                             float *loss, float *weight_sum, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    ce_geo g;
    ce_bufs b;
    U3D_TRY(geometry(cl, logits, ignore_label, &g, err));
    U3D_TRY(alloc(be, g.G, &b, err));
    cl_int res[4] = {0, 0, 0, 0};
    u3d_status st = pass_weights(cl, &g, labels, class_weights, &b, err);
    if (!st)
        st = pass_loss(cl, &g, logits, labels, class_weights, probs, dlogits,
                       &b, err);
    if (!st)
        st = u3d_tensor_read(&b.res, res, err);
    release(&b);
    if (st)
        return st;
    if (res[2] != 0)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "softmax cross-entropy: label %d found (%d invalid "
                          "voxel labels): labels must be >= 0 and < classes "
                          "(%u), or the ignore label %d",
                          (int)res[3], (int)res[2], g.C, ignore_label);
    memcpy(loss, &res[0], sizeof *loss);
    if (weight_sum)
        memcpy(weight_sum, &res[1], sizeof *weight_sum);
    return U3D_OK;
}
