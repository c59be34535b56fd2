/* Batch norm on OpenCL (cl/batchnorm3d.cl): two-level deterministic
 * per-channel reductions over chunks of each plane, then chunked
 * elementwise kernels. Partials live in per-device scratch buffers. */
#include "backends/opencl/opencl.h"
#include "backends/opencl/reduce.h"

#define PROG "batchnorm3d"
#define FINAL_LWS 256 /* cap of the stage-2 work-group */

/* Geometry of one call: S voxels per plane, C channels, N images, nch
 * chunks per plane. */
typedef struct bn_geo {
    cl_uint S, C, N, nch;
    u3d_chunk_cfg cfg;
} bn_geo;

static u3d_status geometry(u3d_cl *cl, cten *x, bn_geo *g, u3d_error *err)
{
    if (u3d_shape_count(x->shape) > U3D_CHUNK_MAX_COUNT)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "batchnorm3d: tensors of more than 2^32 - 2^25 "
                          "elements are not supported; use a smaller patch");
    g->S = (cl_uint)u3d_shape_spatial(x->shape);
    g->C = (cl_uint)x->shape.c;
    g->N = (cl_uint)x->shape.n;
    /* GPU defaults: 128 items x float4, 8 vectors per item and chunk */
    g->cfg = u3d_chunk_tune(cl, "batchnorm", 4, 128, 4096);
    g->nch = (g->S + g->cfg.chunk - 1) / g->cfg.chunk;
    return U3D_OK;
}

/* The stage-1 partials: two arrays of C*N*nch floats. */
static u3d_status partials(u3d_cl *cl, const bn_geo *g, cl_mem *a, cl_mem *b,
                           u3d_error *err)
{
    size_t bytes = (size_t)g->C * g->N * g->nch * sizeof(float);
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_BN_PART_A, bytes, a, err));
    return u3d_cl_scratch(cl, U3D_SCRATCH_BN_PART_B, bytes, b, err);
}

static u3d_status need_two_values(const bn_geo *g, u3d_error *err)
{
    if ((size_t)g->S * g->N < 2)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "batchnorm3d (training): each channel needs more "
                          "than one value (N*D*H*W = 1); use a larger batch "
                          "or patch, or inference mode");
    return U3D_OK;
}

/* Launches a chunked kernel over (nch * lws, N*C). */
static u3d_status launch_chunks(u3d_cl *cl, cl_kernel k, const char *label,
                                const bn_geo *g, size_t lws, u3d_error *err)
{
    size_t gws[2] = {(size_t)g->nch * lws, (size_t)g->N * g->C};
    size_t l[2] = {lws, 1};
    return u3d_cl_launch(cl, k, label, 2, gws, l, err);
}

/* Sets local-memory argument i to n elements of size sz. */
static u3d_status local_arg(cl_kernel k, cl_uint i, size_t n, size_t sz,
                            u3d_error *err)
{
    return u3d_cl_check(clSetKernelArg(k, i, n * sz, NULL),
                        "clSetKernelArg(local)", err);
}

/* Launches bn_apply. */
static u3d_status launch_apply(u3d_cl *cl, const bn_geo *g, cten *x,
                               u3d_tensor *y, cl_mem mean, cl_mem stat,
                               cl_int stat_is_var, float eps, cten *gamma,
                               cten *beta, u3d_error *err)
{
    u3d_chunk_cfg cfg = g->cfg;
    cl_kernel k;
    U3D_TRY(u3d_chunk_kernel(cl, PROG, "bn_apply", &cfg, &k, err));
    cl_mem xm = u3d_cl_mem(x), ym = u3d_cl_mem(y);
    cl_mem gm = gamma ? u3d_cl_mem(gamma) : mean; /* dummy when absent */
    cl_mem bm = beta ? u3d_cl_mem(beta) : mean;
    cl_int hg = gamma != NULL, hb = beta != NULL;
    cl_uint nc = g->N * g->C;
    U3D_ARG(k, 0, xm, err);
    U3D_ARG(k, 1, ym, err);
    U3D_ARG(k, 2, mean, err);
    U3D_ARG(k, 3, stat, err);
    U3D_ARG(k, 4, stat_is_var, err);
    U3D_ARG(k, 5, eps, err);
    U3D_ARG(k, 6, gm, err);
    U3D_ARG(k, 7, hg, err);
    U3D_ARG(k, 8, bm, err);
    U3D_ARG(k, 9, hb, err);
    U3D_ARG(k, 10, g->S, err);
    U3D_ARG(k, 11, g->C, err);
    U3D_ARG(k, 12, nc, err);
    U3D_ARG(k, 13, g->cfg.chunk, err);
    return launch_chunks(cl, k, "bn_apply", g, cfg.lws, err);
}

/* Stage 2 local size and the launch of a (L, C) reduction kernel. */
static u3d_status launch_final(u3d_cl *cl, cl_kernel k, const char *label,
                               cl_uint C, size_t L, u3d_error *err)
{
    size_t gws[2] = {L, C}, lws[2] = {L, 1};
    return u3d_cl_launch(cl, k, label, 2, gws, lws, err);
}

/* Stage 2 work-group: a power of two, no larger than the partials per
 * channel need. */
static u3d_status final_lws(u3d_cl *cl, cl_kernel k, const bn_geo *g,
                            size_t *L, u3d_error *err)
{
    size_t cap;
    U3D_TRY(u3d_cl_pow2_lws(cl, k, FINAL_LWS, &cap, err));
    *L = u3d_pow2_at_least((size_t)g->N * g->nch, cap);
    return U3D_OK;
}

static u3d_status stats_partial(u3d_cl *cl, const bn_geo *g, cten *x,
                                cl_mem pa, cl_mem pb, u3d_error *err)
{
    u3d_chunk_cfg cfg = g->cfg;
    cl_kernel k;
    U3D_TRY(u3d_chunk_kernel(cl, PROG, "bn_stats_partial", &cfg, &k, err));
    cl_mem xm = u3d_cl_mem(x);
    U3D_ARG(k, 0, xm, err);
    U3D_ARG(k, 1, pa, err);
    U3D_ARG(k, 2, pb, err);
    U3D_ARG(k, 3, g->S, err);
    U3D_ARG(k, 4, g->C, err);
    U3D_ARG(k, 5, g->N, err);
    U3D_ARG(k, 6, g->cfg.chunk, err);
    U3D_ARG(k, 7, g->nch, err);
    U3D_TRY(local_arg(k, 8, cfg.lws, sizeof(float), err));
    U3D_TRY(local_arg(k, 9, cfg.lws, sizeof(float), err));
    U3D_TRY(local_arg(k, 10, cfg.lws, sizeof(cl_uint), err));
    return launch_chunks(cl, k, "bn_stats_partial", g, cfg.lws, err);
}

static u3d_status stats(u3d_cl *cl, const bn_geo *g, const u3d_bn_params *p,
                        cten *x, u3d_tensor *rm, u3d_tensor *rv,
                        u3d_tensor *save_mean, u3d_tensor *save_invstd,
                        u3d_error *err)
{
    cl_mem pa, pb;
    U3D_TRY(partials(cl, g, &pa, &pb, err));
    U3D_TRY(stats_partial(cl, g, x, pa, pb, err));
    cl_kernel k;
    size_t L;
    U3D_TRY(u3d_chunk_kernel_any(cl, PROG, "bn_stats_final", &g->cfg, &k,
                                 err));
    U3D_TRY(final_lws(cl, k, g, &L, err));
    cl_mem smm = u3d_cl_mem(save_mean), sim = u3d_cl_mem(save_invstd);
    cl_mem rmm = rm ? u3d_cl_mem(rm) : smm, rvm = rv ? u3d_cl_mem(rv) : sim;
    cl_int update = rm != NULL;
    U3D_ARG(k, 0, pa, err);
    U3D_ARG(k, 1, pb, err);
    U3D_ARG(k, 2, g->S, err);
    U3D_ARG(k, 3, g->C, err);
    U3D_ARG(k, 4, g->N, err);
    U3D_ARG(k, 5, g->cfg.chunk, err);
    U3D_ARG(k, 6, g->nch, err);
    U3D_ARG(k, 7, p->eps, err);
    U3D_ARG(k, 8, p->momentum, err);
    U3D_ARG(k, 9, update, err);
    U3D_ARG(k, 10, smm, err);
    U3D_ARG(k, 11, sim, err);
    U3D_ARG(k, 12, rmm, err);
    U3D_ARG(k, 13, rvm, err);
    U3D_TRY(local_arg(k, 14, L, sizeof(float), err));
    U3D_TRY(local_arg(k, 15, L, sizeof(float), err));
    U3D_TRY(local_arg(k, 16, L, sizeof(cl_uint), err));
    return launch_final(cl, k, "bn_stats_final", g->C, L, err);
}

u3d_status u3d_cl_batchnorm3d_forward_train(
    u3d_backend *be, const u3d_bn_params *p, cten *x, cten *gamma, cten *beta,
    u3d_tensor *running_mean, u3d_tensor *running_var, u3d_tensor *y,
    u3d_tensor *save_mean, u3d_tensor *save_invstd, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    bn_geo g;
    U3D_TRY(geometry(cl, x, &g, err));
    U3D_TRY(need_two_values(&g, err));
    U3D_TRY(stats(cl, &g, p, x, running_mean, running_var, save_mean,
                  save_invstd, err));
    return launch_apply(cl, &g, x, y, u3d_cl_mem(save_mean),
                        u3d_cl_mem(save_invstd), 0, p->eps, gamma, beta, err);
}

u3d_status u3d_cl_batchnorm3d_forward_infer(u3d_backend *be,
                                            const u3d_bn_params *p, cten *x,
                                            cten *gamma, cten *beta,
                                            cten *running_mean,
                                            cten *running_var, u3d_tensor *y,
                                            u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    bn_geo g;
    U3D_TRY(geometry(cl, x, &g, err));
    return launch_apply(cl, &g, x, y, u3d_cl_mem(running_mean),
                        u3d_cl_mem(running_var), 1, p->eps, gamma, beta, err);
}

static u3d_status bwd_partial(u3d_cl *cl, const bn_geo *g, cten *x, cten *dy,
                              cten *save_mean, cl_mem pa, cl_mem pb,
                              u3d_error *err)
{
    u3d_chunk_cfg cfg = g->cfg;
    cl_kernel k;
    U3D_TRY(u3d_chunk_kernel(cl, PROG, "bn_bwd_partial", &cfg, &k, err));
    cl_mem xm = u3d_cl_mem(x), dym = u3d_cl_mem(dy);
    cl_mem mm = u3d_cl_mem(save_mean);
    U3D_ARG(k, 0, xm, err);
    U3D_ARG(k, 1, dym, err);
    U3D_ARG(k, 2, mm, err);
    U3D_ARG(k, 3, pa, err);
    U3D_ARG(k, 4, pb, err);
    U3D_ARG(k, 5, g->S, err);
    U3D_ARG(k, 6, g->C, err);
    U3D_ARG(k, 7, g->N, err);
    U3D_ARG(k, 8, g->cfg.chunk, err);
    U3D_ARG(k, 9, g->nch, err);
    U3D_TRY(local_arg(k, 10, cfg.lws, sizeof(float), err));
    U3D_TRY(local_arg(k, 11, cfg.lws, sizeof(float), err));
    return launch_chunks(cl, k, "bn_bwd_partial", g, cfg.lws, err);
}

/* Stages 1 and 2 of backward: sums (2C) <- sum dy, sum dy*xhat. */
static u3d_status bwd_sums(u3d_cl *cl, const bn_geo *g, cten *x, cten *dy,
                           cten *save_mean, cten *save_invstd, cl_mem pa,
                           cl_mem pb, cl_mem sums, u3d_tensor *dgamma,
                           u3d_tensor *dbeta, u3d_error *err)
{
    U3D_TRY(bwd_partial(cl, g, x, dy, save_mean, pa, pb, err));
    cl_kernel k;
    size_t L;
    U3D_TRY(u3d_chunk_kernel_any(cl, PROG, "bn_bwd_final", &g->cfg, &k, err));
    U3D_TRY(final_lws(cl, k, g, &L, err));
    cl_mem im = u3d_cl_mem(save_invstd);
    cl_mem dgm = dgamma ? u3d_cl_mem(dgamma) : sums; /* dummy when absent */
    cl_mem dbm = dbeta ? u3d_cl_mem(dbeta) : sums;
    cl_int hdg = dgamma != NULL, hdb = dbeta != NULL;
    cl_uint P = g->N * g->nch;
    U3D_ARG(k, 0, pa, err);
    U3D_ARG(k, 1, pb, err);
    U3D_ARG(k, 2, im, err);
    U3D_ARG(k, 3, g->C, err);
    U3D_ARG(k, 4, P, err);
    U3D_ARG(k, 5, sums, err);
    U3D_ARG(k, 6, dgm, err);
    U3D_ARG(k, 7, hdg, err);
    U3D_ARG(k, 8, dbm, err);
    U3D_ARG(k, 9, hdb, err);
    U3D_TRY(local_arg(k, 10, L, sizeof(float), err));
    U3D_TRY(local_arg(k, 11, L, sizeof(float), err));
    return launch_final(cl, k, "bn_bwd_final", g->C, L, err);
}

static u3d_status bwd_apply(u3d_cl *cl, const bn_geo *g, cten *x, cten *dy,
                            cten *gamma, cten *save_mean, cten *save_invstd,
                            cl_mem sums, u3d_tensor *dx, u3d_error *err)
{
    u3d_chunk_cfg cfg = g->cfg;
    cl_kernel k;
    U3D_TRY(u3d_chunk_kernel(cl, PROG, "bn_bwd_apply", &cfg, &k, err));
    cl_mem xm = u3d_cl_mem(x), dym = u3d_cl_mem(dy), dxm = u3d_cl_mem(dx);
    cl_mem mm = u3d_cl_mem(save_mean), im = u3d_cl_mem(save_invstd);
    cl_mem gm = gamma ? u3d_cl_mem(gamma) : mm; /* dummy when absent */
    cl_int hg = gamma != NULL;
    U3D_ARG(k, 0, xm, err);
    U3D_ARG(k, 1, dym, err);
    U3D_ARG(k, 2, dxm, err);
    U3D_ARG(k, 3, mm, err);
    U3D_ARG(k, 4, im, err);
    U3D_ARG(k, 5, sums, err);
    U3D_ARG(k, 6, gm, err);
    U3D_ARG(k, 7, hg, err);
    U3D_ARG(k, 8, g->S, err);
    U3D_ARG(k, 9, g->C, err);
    U3D_ARG(k, 10, g->N, err);
    U3D_ARG(k, 11, g->cfg.chunk, err);
    return launch_chunks(cl, k, "bn_bwd_apply", g, cfg.lws, err);
}

u3d_status u3d_cl_batchnorm3d_backward(u3d_backend *be, cten *x, cten *dy,
                                       cten *gamma, cten *save_mean,
                                       cten *save_invstd, u3d_tensor *dx,
                                       u3d_tensor *dgamma, u3d_tensor *dbeta,
                                       u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    bn_geo g;
    U3D_TRY(geometry(cl, x, &g, err));
    cl_mem pa, pb, sums;
    U3D_TRY(partials(cl, &g, &pa, &pb, err));
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_BN_SUMS,
                           2 * (size_t)g.C * sizeof(float), &sums, err));
    U3D_TRY(bwd_sums(cl, &g, x, dy, save_mean, save_invstd, pa, pb, sums,
                     dgamma, dbeta, err));
    return bwd_apply(cl, &g, x, dy, gamma, save_mean, save_invstd, sums, dx,
                     err);
}
