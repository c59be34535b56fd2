/* Batch norm on OpenCL (cl/batchnorm3d.cl): two-level deterministic
 * per-channel reductions, then elementwise kernels. */
#include "layers/layers.h"
#include "layers/reduce.h"

#define PART_LWS 64     /* stage-1 local size; G is a multiple of it */
#define MIN_PER_ITEM 32 /* voxels per stage-1 item before G grows */
#define FINAL_LWS 256   /* cap of the stage-2 work-group */
#define APPLY_LWS 256

/* Geometry of one call: S voxels per image, C channels, N images. */
typedef struct bn_geo {
    cl_uint S, C, N, G;
    size_t part_lws;
} bn_geo;

static u3d_status geometry(u3d_cl *cl, cten *x, cl_kernel part_k, bn_geo *g,
                           u3d_error *err)
{
    g->S = (cl_uint)u3d_shape_spatial(x->shape);
    g->C = (cl_uint)x->shape.c;
    g->N = (cl_uint)x->shape.n;
    U3D_TRY(u3d_cl_pow2_lws(cl, part_k, PART_LWS, &g->part_lws, err));
    /* enough items to fill the device, few enough that stage 2 is cheap */
    size_t m = (size_t)g->S * g->N;
    size_t gmax = (size_t)u3d_cl_tune(cl, "batchnorm", "partials", 1024);
    size_t G = (m + MIN_PER_ITEM - 1) / MIN_PER_ITEM;
    if (G > gmax)
        G = gmax;
    g->G = (cl_uint)u3d_round_up(G ? G : 1, PART_LWS);
    return U3D_OK;
}

/* A zero-filled float scratch buffer of n elements on be. */
static u3d_status scratch(u3d_backend *be, size_t n, u3d_tensor *t,
                          u3d_error *err)
{
    return u3d_tensor_create(be, u3d_shape5(1, 1, 1, 1, (int)n), U3D_F32, t,
                             err);
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

/* Launches bn_apply over (S, C, N). */
static u3d_status launch_apply(u3d_cl *cl, const bn_geo *g, cten *x,
                               u3d_tensor *y, cl_mem mean, cl_mem stat,
                               cl_int stat_is_var, float eps, cten *gamma,
                               cten *beta, u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_apply", NULL, &k, err));
    cl_mem xm = u3d_cl_mem(x), ym = u3d_cl_mem(y);
    cl_mem gm = gamma ? u3d_cl_mem(gamma) : mean; /* dummy when absent */
    cl_mem bm = beta ? u3d_cl_mem(beta) : mean;
    cl_int hg = gamma != NULL, hb = beta != NULL;
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
    size_t cap;
    U3D_TRY(u3d_cl_pow2_lws(cl, k, APPLY_LWS, &cap, err));
    size_t gws[3] = {g->S, g->C, g->N};
    size_t lws[3] = {u3d_pow2_at_least(g->S, cap), 1, 1};
    return u3d_cl_launch(cl, k, "bn_apply", 3, gws, lws, err);
}

/* Stage 2 local size and the launch of a (L, C) reduction kernel. */
static u3d_status launch_final(u3d_cl *cl, cl_kernel k, const char *label,
                               cl_uint C, size_t L, u3d_error *err)
{
    size_t gws[2] = {L, C}, lws[2] = {L, 1};
    return u3d_cl_launch(cl, k, label, 2, gws, lws, err);
}

static u3d_status stats(u3d_cl *cl, const bn_geo *g, const u3d_bn_params *p,
                        cten *x, cl_mem part, u3d_tensor *rm, u3d_tensor *rv,
                        u3d_tensor *save_mean, u3d_tensor *save_invstd,
                        u3d_error *err)
{
    cl_kernel k1, k2;
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_stats_partial", NULL, &k1,
                              err));
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_stats_final", NULL, &k2,
                              err));
    cl_mem xm = u3d_cl_mem(x);
    U3D_ARG(k1, 0, xm, err);
    U3D_ARG(k1, 1, part, err);
    U3D_ARG(k1, 2, g->S, err);
    U3D_ARG(k1, 3, g->C, err);
    U3D_ARG(k1, 4, g->N, err);
    U3D_ARG(k1, 5, g->G, err);
    size_t gws[2] = {g->G, g->C}, lws[2] = {g->part_lws, 1};
    U3D_TRY(u3d_cl_launch(cl, k1, "bn_stats_partial", 2, gws, lws, err));

    size_t L;
    U3D_TRY(u3d_cl_pow2_lws(cl, k2, FINAL_LWS, &L, err));
    cl_mem smm = u3d_cl_mem(save_mean), sim = u3d_cl_mem(save_invstd);
    cl_mem rmm = rm ? u3d_cl_mem(rm) : smm, rvm = rv ? u3d_cl_mem(rv) : sim;
    cl_int update = rm != NULL;
    U3D_ARG(k2, 0, part, err);
    U3D_ARG(k2, 1, g->S, err);
    U3D_ARG(k2, 2, g->C, err);
    U3D_ARG(k2, 3, g->N, err);
    U3D_ARG(k2, 4, g->G, err);
    U3D_ARG(k2, 5, p->eps, err);
    U3D_ARG(k2, 6, p->momentum, err);
    U3D_ARG(k2, 7, update, err);
    U3D_ARG(k2, 8, smm, err);
    U3D_ARG(k2, 9, sim, err);
    U3D_ARG(k2, 10, rmm, err);
    U3D_ARG(k2, 11, rvm, err);
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 12, L * sizeof(float), NULL),
                         "clSetKernelArg(local mean)", err));
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 13, L * sizeof(float), NULL),
                         "clSetKernelArg(local m2)", err));
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 14, L * sizeof(cl_uint), NULL),
                         "clSetKernelArg(local count)", err));
    return launch_final(cl, k2, "bn_stats_final", g->C, L, err);
}

u3d_status u3d_cl_batchnorm3d_forward_train(
    u3d_backend *be, const u3d_bn_params *p, cten *x, cten *gamma, cten *beta,
    u3d_tensor *running_mean, u3d_tensor *running_var, u3d_tensor *y,
    u3d_tensor *save_mean, u3d_tensor *save_invstd, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k1;
    bn_geo g;
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_stats_partial", NULL, &k1,
                              err));
    U3D_TRY(geometry(cl, x, k1, &g, err));
    U3D_TRY(need_two_values(&g, err));
    u3d_tensor part;
    U3D_TRY(scratch(be, 2 * (size_t)g.G * g.C, &part, err));
    u3d_status st = stats(cl, &g, p, x, u3d_cl_mem(&part), running_mean,
                          running_var, save_mean, save_invstd, err);
    if (!st)
        st = launch_apply(cl, &g, x, y, u3d_cl_mem(save_mean),
                          u3d_cl_mem(save_invstd), 0, p->eps, gamma, beta,
                          err);
    u3d_tensor_release(&part);
    return st;
}

u3d_status u3d_cl_batchnorm3d_forward_infer(u3d_backend *be,
                                            const u3d_bn_params *p, cten *x,
                                            cten *gamma, cten *beta,
                                            cten *running_mean,
                                            cten *running_var, u3d_tensor *y,
                                            u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    bn_geo g = {(cl_uint)u3d_shape_spatial(x->shape), (cl_uint)x->shape.c,
                (cl_uint)x->shape.n, 0, 0};
    return launch_apply(cl, &g, x, y, u3d_cl_mem(running_mean),
                        u3d_cl_mem(running_var), 1, p->eps, gamma, beta, err);
}

/* Stages 1 and 2 of backward: sums (2C) <- sum dy, sum dy*xhat. */
static u3d_status bwd_sums(u3d_cl *cl, const bn_geo *g, cten *x, cten *dy,
                           cten *save_mean, cten *save_invstd, cl_mem part,
                           cl_mem sums, u3d_tensor *dgamma, u3d_tensor *dbeta,
                           u3d_error *err)
{
    cl_kernel k1, k2;
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_bwd_partial", NULL, &k1,
                              err));
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_bwd_final", NULL, &k2,
                              err));
    cl_mem xm = u3d_cl_mem(x), dym = u3d_cl_mem(dy);
    cl_mem mm = u3d_cl_mem(save_mean), im = u3d_cl_mem(save_invstd);
    U3D_ARG(k1, 0, xm, err);
    U3D_ARG(k1, 1, dym, err);
    U3D_ARG(k1, 2, mm, err);
    U3D_ARG(k1, 3, part, err);
    U3D_ARG(k1, 4, g->S, err);
    U3D_ARG(k1, 5, g->C, err);
    U3D_ARG(k1, 6, g->N, err);
    U3D_ARG(k1, 7, g->G, err);
    size_t gws[2] = {g->G, g->C}, lws[2] = {g->part_lws, 1};
    U3D_TRY(u3d_cl_launch(cl, k1, "bn_bwd_partial", 2, gws, lws, err));

    size_t L;
    U3D_TRY(u3d_cl_pow2_lws(cl, k2, FINAL_LWS, &L, err));
    cl_mem dgm = dgamma ? u3d_cl_mem(dgamma) : sums; /* dummy when absent */
    cl_mem dbm = dbeta ? u3d_cl_mem(dbeta) : sums;
    cl_int hdg = dgamma != NULL, hdb = dbeta != NULL;
    U3D_ARG(k2, 0, part, err);
    U3D_ARG(k2, 1, im, err);
    U3D_ARG(k2, 2, g->C, err);
    U3D_ARG(k2, 3, g->G, err);
    U3D_ARG(k2, 4, sums, err);
    U3D_ARG(k2, 5, dgm, err);
    U3D_ARG(k2, 6, hdg, err);
    U3D_ARG(k2, 7, dbm, err);
    U3D_ARG(k2, 8, hdb, err);
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 9, L * sizeof(float), NULL),
                         "clSetKernelArg(local a)", err));
    U3D_TRY(u3d_cl_check(clSetKernelArg(k2, 10, L * sizeof(float), NULL),
                         "clSetKernelArg(local b)", err));
    return launch_final(cl, k2, "bn_bwd_final", g->C, L, err);
}

static u3d_status bwd_apply(u3d_cl *cl, const bn_geo *g, cten *x, cten *dy,
                            cten *gamma, cten *save_mean, cten *save_invstd,
                            cl_mem sums, u3d_tensor *dx, u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_bwd_apply", NULL, &k,
                              err));
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
    size_t cap;
    U3D_TRY(u3d_cl_pow2_lws(cl, k, APPLY_LWS, &cap, err));
    size_t gws[3] = {g->S, g->C, g->N};
    size_t lws[3] = {u3d_pow2_at_least(g->S, cap), 1, 1};
    return u3d_cl_launch(cl, k, "bn_bwd_apply", 3, gws, lws, err);
}

u3d_status u3d_cl_batchnorm3d_backward(u3d_backend *be, cten *x, cten *dy,
                                       cten *gamma, cten *save_mean,
                                       cten *save_invstd, u3d_tensor *dx,
                                       u3d_tensor *dgamma, u3d_tensor *dbeta,
                                       u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k1;
    bn_geo g;
    U3D_TRY(u3d_cl_kernel_get(cl, "batchnorm3d", "bn_bwd_partial", NULL, &k1,
                              err));
    U3D_TRY(geometry(cl, x, k1, &g, err));
    u3d_tensor part, sums = {0};
    U3D_TRY(scratch(be, 2 * (size_t)g.G * g.C, &part, err));
    u3d_status st = scratch(be, 2 * (size_t)g.C, &sums, err);
    if (!st)
        st = bwd_sums(cl, &g, x, dy, save_mean, save_invstd,
                      u3d_cl_mem(&part), u3d_cl_mem(&sums), dgamma, dbeta,
                      err);
    if (!st)
        st = bwd_apply(cl, &g, x, dy, gamma, save_mean, save_invstd,
                       u3d_cl_mem(&sums), dx, err);
    u3d_tensor_release(&part);
    u3d_tensor_release(&sums);
    return st;
}
