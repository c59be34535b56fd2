/* 3D convolution on OpenCL (cl/conv3d.cl).
 *
 * Forward: the input is zero-padded into a scratch copy when pad > 0, the
 * weights are rearranged on the device into the order the register-blocked
 * kernel reads them, then conv3d_fwd computes tiles of COB output channels
 * x VW*NV positions per work-item (see the layout note in cl/conv3d.cl).
 * Backward-data is the same kernel on dy padded by k-1-pad, with the
 * weights flipped and Cin/Cout swapped. Backward-weight embeds dy in the
 * input's padded geometry, computes partial sums per chunk of positions and
 * reduces them in chunk order (deterministic, no atomics).
 *
 * Scratch buffers are allocated per call and released at its end (the
 * runtime defers the release until the queued kernels are done). */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include "layers/layers.h"

#define PROG "conv3d"

/* geometry of one convolution over an already padded input */
typedef struct conv_geom {
    int n, cin, cout, k;
    int dp, hp, wp;       /* padded input */
    int dout, hout, wout; /* output */
} conv_geom;

/* Tuning value: env UNET3D_CONV3D_<PARAM> (for tuning a new device), else
 * the table of src/runtime/tuning.c, else fallback. */
static int tune(const u3d_cl *cl, const char *param, int fallback)
{
    char name[64];
    snprintf(name, sizeof name, "UNET3D_CONV3D_%s", param);
    for (char *c = name; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    const char *env = getenv(name);
    if (env && atoi(env) > 0)
        return atoi(env);
    return u3d_cl_tune(cl, "conv3d", param, fallback);
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Flat length of the computed positions, see cl/conv3d.cl. */
static int conv_lq(const conv_geom *g)
{
    return ((g->dout - 1) * g->hp + g->hout - 1) * g->wp + g->wout;
}

static u3d_status scratch(u3d_backend *be, size_t floats, cl_mem *out,
                          u3d_error *err)
{
    void *b = NULL;
    *out = NULL;
    U3D_TRY(be->ops->buffer_alloc(be, (floats ? floats : 1) * sizeof(float),
                                  &b, err));
    *out = (cl_mem)b;
    return U3D_OK;
}

static void scratch_free(u3d_backend *be, cl_mem m)
{
    if (m)
        be->ops->buffer_free(be, m);
}

static u3d_status arg_mem(cl_kernel k, cl_uint i, cl_mem m, u3d_error *err)
{
    return u3d_cl_check(clSetKernelArg(k, i, sizeof m, &m), "clSetKernelArg",
                        err);
}

/* Sets kernel arguments first.. from a list of ints. */
static u3d_status arg_ints(cl_kernel k, cl_uint first, const int *v, int nv,
                           u3d_error *err)
{
    for (int i = 0; i < nv; i++) {
        cl_int a = v[i];
        U3D_TRY(u3d_cl_check(clSetKernelArg(k, first + (cl_uint)i, sizeof a,
                                            &a),
                             "clSetKernelArg", err));
    }
    return U3D_OK;
}

/* Work-group size along dim 0: the tuned value, capped by the kernel's and
 * the device's limits and by the work available. */
static size_t wg0(const u3d_cl *cl, cl_kernel k, int want, size_t work)
{
    size_t kmax = 0;
    size_t l = want > 0 ? (size_t)want : 1;
    if (clGetKernelWorkGroupInfo(k, cl->device, CL_KERNEL_WORK_GROUP_SIZE,
                                 sizeof kmax, &kmax, NULL) == CL_SUCCESS &&
        kmax > 0 && l > kmax)
        l = kmax;
    if (cl->max_wg > 0 && l > cl->max_wg)
        l = cl->max_wg;
    if (work > 0 && l > work)
        l = work;
    return l;
}

static u3d_status get_kernel(u3d_cl *cl, const char *name, const char *opts,
                             cl_kernel *k, u3d_error *err)
{
    return u3d_cl_kernel_get(cl, PROG, name, opts, k, err);
}

/* dst (n, cd, dd, hd, wd) = src (n, cs, d, h, w) shifted by off, zero
 * elsewhere. */
static u3d_status embed(u3d_cl *cl, cl_mem src, cl_mem dst, int n, int cs,
                        int cd, int d, int h, int w, int dd, int hd, int wd,
                        int off, u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_embed", NULL, &k, err));
    int rows = n * cd * dd * hd;
    int a[] = {cs, cd, d, h, w, dd, hd, wd, off, rows};
    U3D_TRY(arg_mem(k, 0, src, err));
    U3D_TRY(arg_mem(k, 1, dst, err));
    U3D_TRY(arg_ints(k, 2, a, 10, err));
    size_t g = (size_t)rows, l = wg0(cl, k, tune(cl, "lws_small", 64), g);
    return u3d_cl_launch(cl, k, "conv3d_embed", 1, &g, &l, err);
}

/* Blocking of the forward kernel for this shape. */
typedef struct fwd_plan {
    int vw, nv, cob, zb;
    int lp; /* positions per tile row: the volume (zb 1) or a plane */
} fwd_plan;

static fwd_plan fwd_choose(const u3d_cl *cl, const conv_geom *g)
{
    fwd_plan p;
    int cobmax = tune(cl, "cob", 8), accmax = tune(cl, "acc", 8);
    int nvmax = tune(cl, "nv", 4);
    if (cobmax < 1)
        cobmax = 1;
    p.vw = tune(cl, "vw", 4);
    /* fewest channel blocks, then as even as possible: Cout 3 gets one
     * block of 3 rather than a block of 8 with 5 wasted rows */
    int nb = ceil_div(g->cout, cobmax);
    p.cob = ceil_div(g->cout, nb);
    /* few output channels load many inputs per FMA: compute several
     * output planes per work-item so each input plane serves up to k */
    p.zb = 1;
    if (2 * p.cob <= cobmax && g->k > 1)
        p.zb = tune(cl, "zb", 4);
    if (p.zb > g->dout)
        p.zb = g->dout;
    p.nv = accmax / (p.cob * p.zb);
    if (p.nv > nvmax)
        p.nv = nvmax;
    if (p.nv < 1)
        p.nv = 1;
    p.lp = p.zb == 1 ? conv_lq(g) : (g->hout - 1) * g->wp + g->wout;
    /* a tile must fit in its row (the last one shifts back) */
    while (p.vw > 1 && p.vw > p.lp)
        p.vw /= 2;
    while (p.nv > 1 && p.vw * p.nv > p.lp)
        p.nv--;
    return p;
}

/* y = conv(xin, w) (+ bias) for an input already padded to g->dp, hp, wp.
 * flip != 0: w is a forward weight (g->cin, g->cout, k^3) used for the data
 * gradient (channels swapped, taps reversed). */
static u3d_status conv_core(u3d_backend *be, const conv_geom *g, cl_mem xin,
                            cl_mem w, int flip, cl_mem bias, cl_mem y,
                            u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    fwd_plan p = fwd_choose(cl, g);
    char opts[128];
    snprintf(opts, sizeof opts, "-DKS=%d -DVW=%d -DNV=%d -DCOB=%d -DZB=%d",
             g->k, p.vw, p.nv, p.cob, p.zb);
    cl_kernel kw, kf;
    U3D_TRY(get_kernel(cl, "conv3d_weights", opts, &kw, err));
    U3D_TRY(get_kernel(cl, "conv3d_fwd", opts, &kf, err));

    int k3 = g->k * g->k * g->k, ncb = ceil_div(g->cout, p.cob);
    int wtotal = ncb * p.cob * g->cin * k3;
    cl_mem wt;
    U3D_TRY(scratch(be, (size_t)wtotal, &wt, err));
    u3d_status st;
    {
        int a[] = {g->cout, g->cin, wtotal, flip};
        size_t gs = (size_t)wtotal;
        size_t l = wg0(cl, kw, tune(cl, "lws_small", 64), gs);
        st = arg_mem(kw, 0, w, err);
        if (!st)
            st = arg_mem(kw, 1, wt, err);
        if (!st)
            st = arg_ints(kw, 2, a, 4, err);
        if (!st)
            st = u3d_cl_launch(cl, kw, "conv3d_weights", 1, &gs, &l, err);
    }
    int ntiles = ceil_div(p.lp, p.vw * p.nv);
    int nbands = p.zb > 1 ? ceil_div(g->dout, p.zb) : 1;
    if (!st) {
        int a[] = {g->cin,  g->cout, g->hp,   g->wp,   g->dp * g->hp * g->wp,
                   g->dout, g->hout, g->wout, p.lp,    ntiles,
                   ncb,     nbands,  bias != NULL};
        st = arg_mem(kf, 0, xin, err);
        if (!st)
            st = arg_mem(kf, 1, wt, err);
        if (!st) /* without bias any valid buffer: never read */
            st = arg_mem(kf, 2, bias ? bias : wt, err);
        if (!st)
            st = arg_mem(kf, 3, y, err);
        if (!st)
            st = arg_ints(kf, 4, a, 13, err);
        size_t gs[3] = {(size_t)ntiles, (size_t)ncb, (size_t)g->n * nbands};
        size_t l[3] = {wg0(cl, kf, tune(cl, "lws", 64), gs[0]), 1, 1};
        if (!st)
            st = u3d_cl_launch(cl, kf, "conv3d_fwd", 3, gs, l, err);
    }
    scratch_free(be, wt);
    return st;
}

/* Element counts must fit the kernels' int indices. */
static u3d_status check_size(const char *op, size_t count, u3d_error *err)
{
    if (count > (size_t)INT_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: a tensor of %zu elements exceeds the 2^31 "
                          "limit of the OpenCL kernels; use a smaller patch",
                          op, count);
    return U3D_OK;
}

/* Zero-padded copy of t (or t itself when pad is 0) and its geometry. */
static u3d_status padded(u3d_backend *be, cten *t, int pad, cl_mem *out,
                         cl_mem *owned, int *dp, int *hp, int *wp,
                         u3d_error *err)
{
    u3d_shape s = t->shape;
    *dp = s.d + 2 * pad;
    *hp = s.h + 2 * pad;
    *wp = s.w + 2 * pad;
    *owned = NULL;
    *out = u3d_cl_mem(t);
    if (pad == 0)
        return U3D_OK;
    size_t count = (size_t)s.n * s.c * *dp * *hp * *wp;
    U3D_TRY(check_size("conv3d padding", count, err));
    U3D_TRY(scratch(be, count, owned, err));
    *out = *owned;
    u3d_status st = embed(u3d_cl_of(be), u3d_cl_mem(t), *owned, s.n, s.c, s.c,
                          s.d, s.h, s.w, *dp, *hp, *wp, pad, err);
    if (st) {
        scratch_free(be, *owned);
        *owned = NULL;
    }
    return st;
}

u3d_status u3d_cl_conv3d_forward(u3d_backend *be, const u3d_conv3d_params *p,
                                 cten *x, cten *w, cten *b, u3d_tensor *y,
                                 u3d_error *err)
{
    U3D_TRY(check_size("conv3d forward", u3d_shape_count(x->shape), err));
    U3D_TRY(check_size("conv3d forward", u3d_shape_count(y->shape), err));
    conv_geom g = {x->shape.n, x->shape.c, y->shape.c, p->kernel, 0, 0, 0,
                   y->shape.d, y->shape.h, y->shape.w};
    cl_mem xin, xp;
    U3D_TRY(padded(be, x, p->pad, &xin, &xp, &g.dp, &g.hp, &g.wp, err));
    u3d_status st = conv_core(be, &g, xin, u3d_cl_mem(w), 0,
                              b ? u3d_cl_mem(b) : NULL, u3d_cl_mem(y), err);
    scratch_free(be, xp);
    return st;
}

u3d_status u3d_cl_conv3d_backward_data(u3d_backend *be,
                                       const u3d_conv3d_params *p, cten *dy,
                                       cten *w, u3d_tensor *dx, u3d_error *err)
{
    U3D_TRY(check_size("conv3d backward-data", u3d_shape_count(dx->shape),
                       err));
    U3D_TRY(check_size("conv3d backward-data", u3d_shape_count(dy->shape),
                       err));
    /* dx = full correlation of dy with the flipped kernel */
    int pp = p->kernel - 1 - p->pad;
    conv_geom g = {dy->shape.n, dy->shape.c, dx->shape.c, p->kernel, 0, 0, 0,
                   dx->shape.d, dx->shape.h, dx->shape.w};
    cl_mem din, dp;
    U3D_TRY(padded(be, dy, pp, &din, &dp, &g.dp, &g.hp, &g.wp, err));
    u3d_status st =
        conv_core(be, &g, din, u3d_cl_mem(w), 1, NULL, u3d_cl_mem(dx), err);
    scratch_free(be, dp);
    return st;
}

/* Blocking and chunking of the weight gradient. */
typedef struct bww_plan {
    int vw, cob, ncb, coutp;
    int nq, qchunk, nch; /* chunks per sample, their length, total */
} bww_plan;

static bww_plan bww_choose(const u3d_cl *cl, const conv_geom *g, int lq)
{
    bww_plan p;
    p.vw = tune(cl, "bw_vw", 4);
    int cobmax = tune(cl, "bw_cob", 4);
    p.ncb = ceil_div(g->cout, cobmax < 1 ? 1 : cobmax);
    p.cob = ceil_div(g->cout, p.ncb);
    p.coutp = p.ncb * p.cob;
    /* split positions until there are enough work-items, but keep chunks
     * long enough that the partial sums stay small */
    long base = (long)g->cin * g->k * g->k * p.ncb * g->n;
    long want = tune(cl, "bw_items", 4096);
    int minchunk = tune(cl, "bw_chunk", 4096);
    int maxchunk = tune(cl, "bw_maxchunk", 1 << 16); /* cache reuse */
    int nq = (int)((want + base - 1) / base);
    if (nq < ceil_div(lq, maxchunk))
        nq = ceil_div(lq, maxchunk);
    int nqmax = ceil_div(lq, minchunk < 1 ? 1 : minchunk);
    if (nq > nqmax)
        nq = nqmax;
    if (nq < 1)
        nq = 1;
    p.qchunk = ceil_div(ceil_div(lq, nq), p.vw) * p.vw;
    p.nq = ceil_div(lq, p.qchunk);
    p.nch = p.nq * g->n;
    return p;
}

static u3d_status bww_launch(u3d_cl *cl, const conv_geom *g,
                             const bww_plan *p, cl_mem xin, cl_mem dyq,
                             cl_mem part, int lq, int sq, int pstride,
                             int with_bias, u3d_error *err)
{
    char opts[128];
    snprintf(opts, sizeof opts, "-DKS=%d -DBVW=%d -DBCOB=%d", g->k, p->vw,
             p->cob);
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_bwd_weight", opts, &k, err));
    int a[] = {g->cin, g->cout, p->coutp, g->hp,   g->wp,  g->dp * g->hp * g->wp,
               sq,     lq,      p->nq,    p->qchunk, p->nch, p->ncb, pstride};
    U3D_TRY(arg_mem(k, 0, xin, err));
    U3D_TRY(arg_mem(k, 1, dyq, err));
    U3D_TRY(arg_mem(k, 2, part, err));
    U3D_TRY(arg_ints(k, 3, a, 13, err));
    size_t gs[3] = {(size_t)g->cin * g->k * g->k, (size_t)p->ncb,
                    (size_t)p->nch};
    size_t l[3] = {wg0(cl, k, tune(cl, "bw_lws", 64), gs[0]), 1, 1};
    U3D_TRY(u3d_cl_launch(cl, k, "conv3d_bwd_weight", 3, gs, l, err));
    if (!with_bias)
        return U3D_OK;
    U3D_TRY(get_kernel(cl, "conv3d_bwd_bias", NULL, &k, err));
    int b[] = {g->cout, p->coutp, sq,     lq,      p->nq,
               p->qchunk, p->nch, pstride, g->cout * g->cin * g->k * g->k * g->k};
    U3D_TRY(arg_mem(k, 0, dyq, err));
    U3D_TRY(arg_mem(k, 1, part, err));
    U3D_TRY(arg_ints(k, 2, b, 9, err));
    size_t gb[2] = {(size_t)g->cout, (size_t)p->nch};
    size_t lb[2] = {wg0(cl, k, tune(cl, "lws_small", 64), gb[0]), 1};
    return u3d_cl_launch(cl, k, "conv3d_bwd_bias", 2, gb, lb, err);
}

static u3d_status reduce(u3d_cl *cl, cl_mem part, cl_mem dw, cl_mem db,
                         int nw, int ne, int nch, int pstride, u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_reduce", NULL, &k, err));
    int a[] = {nw, ne, nch, pstride};
    U3D_TRY(arg_mem(k, 0, part, err));
    U3D_TRY(arg_mem(k, 1, dw, err));
    U3D_TRY(arg_mem(k, 2, db ? db : dw, err)); /* unused without bias */
    U3D_TRY(arg_ints(k, 3, a, 4, err));
    size_t g = (size_t)ne, l = wg0(cl, k, tune(cl, "lws_small", 64), g);
    return u3d_cl_launch(cl, k, "conv3d_reduce", 1, &g, &l, err);
}

u3d_status u3d_cl_conv3d_backward_weight(u3d_backend *be,
                                         const u3d_conv3d_params *p, cten *x,
                                         cten *dy, u3d_tensor *dw,
                                         u3d_tensor *db, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    U3D_TRY(check_size("conv3d backward-weight", u3d_shape_count(x->shape),
                       err));
    conv_geom g = {x->shape.n, x->shape.c, dy->shape.c, p->kernel, 0, 0, 0,
                   dy->shape.d, dy->shape.h, dy->shape.w};
    cl_mem xin, xp;
    U3D_TRY(padded(be, x, p->pad, &xin, &xp, &g.dp, &g.hp, &g.wp, err));
    int lq = conv_lq(&g);
    bww_plan pl = bww_choose(cl, &g, lq);
    int sq = g.dout * g.hp * g.wp;
    int nw = g.cout * g.cin * g.k * g.k * g.k;
    int ne = nw + (db ? g.cout : 0);
    cl_mem dyq = NULL, part = NULL;
    size_t qcount = (size_t)g.n * pl.coutp * sq;
    u3d_status st = check_size("conv3d backward-weight", qcount, err);
    if (!st)
        st = check_size("conv3d backward-weight", (size_t)pl.nch * ne, err);
    if (!st)
        st = scratch(be, qcount, &dyq, err);
    if (!st)
        st = scratch(be, (size_t)pl.nch * ne, &part, err);
    if (!st) /* dy in the padded geometry, zero at unused positions */
        st = embed(cl, u3d_cl_mem(dy), dyq, g.n, g.cout, pl.coutp, g.dout,
                   g.hout, g.wout, g.dout, g.hp, g.wp, 0, err);
    if (!st)
        st = bww_launch(cl, &g, &pl, xin, dyq, part, lq, sq, ne, db != NULL,
                        err);
    if (!st)
        st = reduce(cl, part, u3d_cl_mem(dw), db ? u3d_cl_mem(db) : NULL, nw,
                    ne, pl.nch, ne, err);
    scratch_free(be, part);
    scratch_free(be, dyq);
    scratch_free(be, xp);
    return st;
}
