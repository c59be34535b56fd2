/* Softmax + weighted cross-entropy on OpenCL (cl/softmax_ce.cl). Four
 * launches over chunks of voxels, partials in per-device scratch buffers,
 * one blocking read of the 4-int result at the end. */
#include <string.h>
#include "backends/opencl/opencl.h"
#include "backends/opencl/reduce.h"

#define PROG "softmax_ce"
#define FINAL_LWS 256

typedef struct ce_geo {
    cl_uint S, C, N, nch, G;
    cl_int ignore;
    u3d_chunk_cfg cfg;
    size_t L; /* stage-2 work-group */
} ce_geo;

/* Scratch: float partials (2G), int partials (2G), the 4-int result. */
typedef struct ce_bufs {
    cl_mem pf, pi, res;
} ce_bufs;

static u3d_status bufs_get(u3d_cl *cl, const ce_geo *g, ce_bufs *b,
                           u3d_error *err)
{
    size_t n = 2 * (size_t)g->G;
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_CE_PART, n * sizeof(float), &b->pf,
                           err));
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_CE_IPART, n * sizeof(cl_int),
                           &b->pi, err));
    return u3d_cl_scratch(cl, U3D_SCRATCH_CE_RES, 4 * sizeof(cl_int), &b->res,
                          err);
}

static u3d_status local_arg(cl_kernel k, cl_uint i, size_t bytes,
                            u3d_error *err)
{
    return u3d_cl_check(clSetKernelArg(k, i, bytes, NULL),
                        "clSetKernelArg(local)", err);
}

/* Launches a chunked kernel over (nch * lws, N). */
static u3d_status launch_chunks(u3d_cl *cl, cl_kernel k, const char *label,
                                const ce_geo *g, size_t lws, u3d_error *err)
{
    size_t gws[2] = {(size_t)g->nch * lws, g->N}, l[2] = {lws, 1};
    return u3d_cl_launch(cl, k, label, 2, gws, l, err);
}

/* Pass A: weight sum and invalid labels into res[1..3]. */
static u3d_status pass_weights(u3d_cl *cl, const ce_geo *g, cten *labels,
                               cten *w, const ce_bufs *b, u3d_error *err)
{
    u3d_chunk_cfg cfg = g->cfg;
    cl_kernel k1, k2;
    U3D_TRY(u3d_chunk_kernel(cl, PROG, "ce_weight_partial", &cfg, &k1, err));
    U3D_TRY(u3d_chunk_kernel_any(cl, PROG, "ce_weight_final", &g->cfg, &k2,
                                 err));
    cl_mem lm = u3d_cl_mem(labels), wm = u3d_cl_mem(w);
    U3D_ARG(k1, 0, lm, err);
    U3D_ARG(k1, 1, wm, err);
    U3D_ARG(k1, 2, g->ignore, err);
    U3D_ARG(k1, 3, g->S, err);
    U3D_ARG(k1, 4, g->C, err);
    U3D_ARG(k1, 5, g->N, err);
    U3D_ARG(k1, 6, g->cfg.chunk, err);
    U3D_ARG(k1, 7, g->nch, err);
    U3D_ARG(k1, 8, b->pf, err);
    U3D_ARG(k1, 9, b->pi, err);
    U3D_TRY(local_arg(k1, 10, cfg.lws * sizeof(float), err));
    U3D_TRY(local_arg(k1, 11, cfg.lws * sizeof(cl_uint), err));
    U3D_TRY(local_arg(k1, 12, cfg.lws * sizeof(cl_uint), err));
    U3D_TRY(local_arg(k1, 13, cfg.lws * sizeof(cl_int), err));
    U3D_TRY(launch_chunks(cl, k1, "ce_weight_partial", g, cfg.lws, err));

    size_t L = g->L;
    U3D_ARG(k2, 0, b->pf, err);
    U3D_ARG(k2, 1, b->pi, err);
    U3D_ARG(k2, 2, g->G, err);
    U3D_ARG(k2, 3, b->res, err);
    U3D_TRY(local_arg(k2, 4, L * sizeof(float), err));
    U3D_TRY(local_arg(k2, 5, L * sizeof(cl_uint), err));
    U3D_TRY(local_arg(k2, 6, L * sizeof(cl_uint), err));
    return u3d_cl_launch(cl, k2, "ce_weight_final", 1, &L, &L, err);
}

/* Pass B: probs, dlogits, and the loss into res[0]. */
static u3d_status pass_loss(u3d_cl *cl, const ce_geo *g, cten *logits,
                            cten *labels, cten *w, u3d_tensor *probs,
                            u3d_tensor *dlogits, const ce_bufs *b,
                            u3d_error *err)
{
    u3d_chunk_cfg cfg = g->cfg;
    cl_kernel k1, k2;
    U3D_TRY(u3d_chunk_kernel(cl, PROG, "ce_loss_partial", &cfg, &k1, err));
    U3D_TRY(u3d_chunk_kernel_any(cl, PROG, "ce_loss_final", &g->cfg, &k2,
                                 err));
    cl_mem zm = u3d_cl_mem(logits), lm = u3d_cl_mem(labels);
    cl_mem wm = u3d_cl_mem(w);
    /* absent outputs: a dummy buffer the kernel never touches */
    cl_mem pm = probs ? u3d_cl_mem(probs) : b->pf;
    cl_mem dm = dlogits ? u3d_cl_mem(dlogits) : b->pf;
    cl_int hp = probs != NULL, hd = dlogits != NULL;
    U3D_ARG(k1, 0, zm, err);
    U3D_ARG(k1, 1, lm, err);
    U3D_ARG(k1, 2, wm, err);
    U3D_ARG(k1, 3, g->ignore, err);
    U3D_ARG(k1, 4, g->S, err);
    U3D_ARG(k1, 5, g->C, err);
    U3D_ARG(k1, 6, g->N, err);
    U3D_ARG(k1, 7, g->cfg.chunk, err);
    U3D_ARG(k1, 8, g->nch, err);
    U3D_ARG(k1, 9, b->res, err);
    U3D_ARG(k1, 10, pm, err);
    U3D_ARG(k1, 11, hp, err);
    U3D_ARG(k1, 12, dm, err);
    U3D_ARG(k1, 13, hd, err);
    U3D_ARG(k1, 14, b->pf, err);
    U3D_TRY(local_arg(k1, 15, cfg.lws * sizeof(float), err));
    U3D_TRY(launch_chunks(cl, k1, "ce_loss_partial", g, cfg.lws, err));

    size_t L = g->L;
    U3D_ARG(k2, 0, b->pf, err);
    U3D_ARG(k2, 1, g->G, err);
    U3D_ARG(k2, 2, b->res, err);
    U3D_TRY(local_arg(k2, 3, L * sizeof(float), err));
    return u3d_cl_launch(cl, k2, "ce_loss_final", 1, &L, &L, err);
}

static u3d_status geometry(u3d_cl *cl, cten *logits, int ignore, ce_geo *g,
                           u3d_error *err)
{
    if (u3d_shape_count(logits->shape) > U3D_CHUNK_MAX_COUNT)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "softmax cross-entropy: tensors of more than "
                          "2^32 - 2^25 elements are not supported; use a "
                          "smaller patch");
    g->S = (cl_uint)u3d_shape_spatial(logits->shape);
    g->C = (cl_uint)logits->shape.c;
    g->N = (cl_uint)logits->shape.n;
    g->ignore = ignore;
    /* GPU defaults: 64 items x 4 voxels, 8 groups per item and chunk */
    g->cfg = u3d_chunk_tune(cl, "softmax_ce", 4, 64, 2048);
    g->nch = (g->S + g->cfg.chunk - 1) / g->cfg.chunk;
    g->G = g->N * g->nch;
    /* stage 2: one work-group that both final kernels accept */
    cl_kernel k;
    size_t a, b;
    U3D_TRY(u3d_chunk_kernel_any(cl, PROG, "ce_weight_final", &g->cfg, &k,
                                 err));
    U3D_TRY(u3d_cl_pow2_lws(cl, k, FINAL_LWS, &a, err));
    U3D_TRY(u3d_chunk_kernel_any(cl, PROG, "ce_loss_final", &g->cfg, &k, err));
    U3D_TRY(u3d_cl_pow2_lws(cl, k, FINAL_LWS, &b, err));
    g->L = u3d_pow2_at_least(g->G, a < b ? a : b);
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
    U3D_TRY(bufs_get(cl, &g, &b, err));
    U3D_TRY(pass_weights(cl, &g, labels, class_weights, &b, err));
    U3D_TRY(pass_loss(cl, &g, logits, labels, class_weights, probs, dlogits,
                      &b, err));
    cl_int res[4] = {0, 0, 0, 0};
    U3D_TRY(u3d_cl_check(clEnqueueReadBuffer(cl->queue, b.res, CL_TRUE, 0,
                                             sizeof res, res, 0, NULL, NULL),
                         "clEnqueueReadBuffer(softmax-ce result)", err));
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
