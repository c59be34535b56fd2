/* 3D convolution on OpenCL (cl/conv3d.cl), kernel and padding per axis
 * (cubic, or 1x3x3 for anisotropic levels: -DKD -DKH -DKW).
 *
 * Forward: the weights are rearranged on the device into the order the
 * register-blocked kernel reads them, then conv3d_fwd computes tiles of COB
 * output channels x VW*NV positions per work-item (see the layout note in
 * cl/conv3d.cl). With pad > 0 the input is zero-padded slab by slab (a few
 * output planes at a time) into a scratch buffer, which bounds its size.
 * Backward-data is the same kernel on dy padded by k-1-pad, with the
 * weights flipped and Cin/Cout swapped; the kernel skips the tap rows that
 * read only padding, which is nearly half of them on small volumes. Backward-weight embeds dy (and pads
 * x) slab by slab, computes partial sums per chunk of positions and reduces
 * them in chunk order (deterministic, no atomics).
 *
 * Scratch buffers are allocated per call and released at its end (the
 * runtime defers the release until the queued kernels are done). */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/conv3d_igemm.h"
#include "backends/opencl/conv3d_wino.h"
#include "backends/opencl/conv_bucket.h"
#include "backends/opencl/opencl.h"

#define PROG "conv3d"

/* geometry of one kernel launch: a slab of output planes and the padded
 * input planes it reads */
typedef struct conv_geom {
    int n, cin, cout;
    int k[3];             /* kernel per axis (D, H, W) */
    int dp, hp, wp;       /* padded input */
    int dout, hout, wout; /* output */
} conv_geom;

/* Tuning value of this pass ("fwd", "data", "weight"; U3D_TUNE_ANY for
 * what all share) and shape bucket (u3d_cl_conv_bucket): see tuning.h for where
 * it comes from (UNET3D_TUNE_CONV3D_<PARAM> overrides it). */
static int tune_at(const u3d_cl *cl, const char *pass, const char *bucket,
                   const char *param, int fallback)
{
    return u3d_cl_tune_at(cl, "conv3d", pass, bucket, param, fallback);
}

static int tune(const u3d_cl *cl, const char *param, int fallback)
{
    return tune_at(cl, U3D_TUNE_ANY, U3D_TUNE_ANY, param, fallback);
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Flat length of the computed positions, see cl/conv3d.cl. */
static int conv_lq(const conv_geom *g)
{
    return ((g->dout - 1) * g->hp + g->hout - 1) * g->wp + g->wout;
}

/* Scratch buffers are per-device slots kept between calls (the queue is
 * in order, so a later call may reuse them): no allocation, no page
 * faults of fresh memory on every convolution. */
static u3d_status scratch(u3d_backend *be, int slot, size_t floats,
                          cl_mem *out, u3d_error *err)
{
    *out = NULL;
    return u3d_cl_scratch(u3d_cl_of(be), slot,
                          (floats ? floats : 1) * sizeof(float), out, err);
}

static void scratch_free(u3d_backend *be, cl_mem m)
{
    (void)be; /* slots belong to the device context */
    (void)m;
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

/* A kernel compiled for work-groups of l (reqd_work_group_size) must be
 * launched with l: refuse a device that cannot run that many. */
static u3d_status fixed_wg(const u3d_cl *cl, cl_kernel k, const char *name,
                           const char *param, size_t l, u3d_error *err)
{
    size_t kmax = 0;
    if (clGetKernelWorkGroupInfo(k, cl->device, CL_KERNEL_WORK_GROUP_SIZE,
                                 sizeof kmax, &kmax, NULL) != CL_SUCCESS ||
        kmax == 0 || l <= kmax)
        return U3D_OK;
    return u3d_seterr(err, U3D_ERR_DEVICE,
                      "%s: work-groups of %zu exceed this device's limit "
                      "for the kernel (%zu); set UNET3D_TUNE_CONV3D_%s=%zu "
                      "or run 'unet3d tune'",
                      name, l, kmax, param, kmax);
}

/* Largest power of 2 <= v (>= 1). */
static int pow2_floor(size_t v)
{
    int p = 1;
    while ((size_t)p * 2 <= v && p < (1 << 20))
        p *= 2;
    return p;
}

/* dst (n, cd, dd, hd, wd) voxel (z, y, x) = src (n, cs, d, h, w) voxel
 * (z + zoff - off[0], y - off[1], x - off[2]), zero outside src. */
u3d_status u3d_cl_conv_embed(u3d_cl *cl, cl_mem src, cl_mem dst, int n,
                             int cs, int cd, int d, int h, int w, int dd,
                             int hd, int wd, const int off[3], int zoff,
                             u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_embed", NULL, &k, err));
    /* elements per work-item: 1 (coalesced, a GPU's) up to whole rows
     * (the row arithmetic once per row, CPUs) */
    int per = tune(cl, "embed_per", 1);
    per = per < 1 ? 1 : per > wd ? wd : per;
    int rows = n * cd * dd * hd, nx = ceil_div(wd, per);
    int a[] = {cs,     cd,     d,      h,    w,    dd,  hd, wd,
               off[0], off[1], off[2], zoff, rows, per, nx};
    U3D_TRY(arg_mem(k, 0, src, err));
    U3D_TRY(arg_mem(k, 1, dst, err));
    U3D_TRY(arg_ints(k, 2, a, 15, err));
    /* rows * nx <= the elements of dst, which fit an int (check_size) */
    size_t g = (size_t)rows * (size_t)nx;
    size_t l = wg0(cl, k, tune(cl, "lws_small", 64), g);
    return u3d_cl_launch(cl, k, "conv3d_embed", 1, &g, &l, err);
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

/* Output planes per slab: what fits the scratch budget (tuning slab_kb)
 * with `extra` more input planes than output planes, balanced so the last
 * slab is not much thinner than the others. */
static int slab_planes(const u3d_cl *cl, size_t plane_floats, int extra,
                       int dout)
{
    size_t budget = (size_t)tune(cl, "slab_kb", 1 << 18) * 1024 / 4;
    size_t fit = plane_floats ? budget / plane_floats : (size_t)dout;
    int s = fit > (size_t)extra + (size_t)dout ? dout : (int)fit - extra;
    /* thinner slabs would copy each padded plane more than 1.5 times */
    if (s < 2 * extra)
        s = 2 * extra;
    if (s < 1)
        s = 1;
    int ns = ceil_div(dout, s);
    return ceil_div(dout, ns);
}

/* Blocking of the forward kernel for this shape. */
typedef struct fwd_plan {
    int vw, nv, cob, ncb;
    int lws;    /* work-group size */
    int reqd;   /* lws compiled in (reqd_work_group_size) */
    int tapout; /* loop order, see TAPOUT in cl/conv3d.cl */
    int relu;   /* ReLU fused into the store (RELU in cl/conv3d.cl) */
} fwd_plan;

static fwd_plan fwd_choose(const u3d_cl *cl, const char *pass,
                           const conv_geom *g)
{
    fwd_plan p;
    const char *b = u3d_cl_conv_bucket(g->cin, g->cout);
    int cobmax = tune_at(cl, pass, b, "cob", 8);
    int accmax = tune_at(cl, pass, b, "acc", 8);
    int nvmax = tune_at(cl, pass, b, "nv", 4);
    if (cobmax < 1)
        cobmax = 1;
    p.vw = tune_at(cl, pass, b, "vw", 4);
    /* compiled into the kernel (reqd_work_group_size): the device's
     * limit, not the work of one call, caps it */
    p.lws = tune_at(cl, pass, b, "lws", 64);
    if (p.lws < 1)
        p.lws = 1;
    if (cl->max_wg > 0 && (size_t)p.lws > cl->max_wg)
        p.lws = (int)cl->max_wg;
    /* lws_runtime 1: the local size chosen per launch instead (capped by
     * the work), for a device where the compiled-in size turns out
     * slower (on PoCL the two measured alike, within noise) */
    p.reqd = tune(cl, "lws_runtime", 0) == 0;
    /* fewest channel blocks, then as even as possible: Cout 3 gets one
     * block of 3 rather than a block of 8 with 5 wasted rows */
    p.ncb = ceil_div(g->cout, cobmax);
    p.cob = ceil_div(g->cout, p.ncb);
    p.nv = accmax / p.cob;
    if (p.nv > nvmax)
        p.nv = nvmax;
    if (p.nv < 1)
        p.nv = 1;
    /* a tile must fit in the computed range (the last one shifts back) */
    int lq = conv_lq(g);
    while (p.vw > 1 && p.vw > lq)
        p.vw /= 2;
    while (p.nv > 1 && p.vw * p.nv > lq)
        p.nv--;
    /* tap rows outside the channel loop skip zero padding rows but make
     * the inner loop short: worth it from tapout_cin channels on */
    p.tapout = g->cin >= tune_at(cl, pass, b, "tapout_cin", 16);
    p.relu = 0;
    return p;
}

/* The kernel size options: -DKS for a cubic kernel (the programs as
 * before per-axis kernels), else -DKD -DKH -DKW. */
static void kernel_options(const conv_geom *g, char *opts, size_t n)
{
    if (g->k[0] == g->k[1] && g->k[1] == g->k[2])
        snprintf(opts, n, "-DKS=%d", g->k[0]);
    else
        snprintf(opts, n, "-DKD=%d -DKH=%d -DKW=%d", g->k[0], g->k[1],
                 g->k[2]);
}

static void fwd_options(const conv_geom *g, const fwd_plan *p, char *opts,
                        size_t n)
{
    kernel_options(g, opts, n);
    size_t k0 = strlen(opts);
    snprintf(opts + k0, n - k0, " -DVW=%d -DNV=%d -DCOB=%d -DTAPOUT=%d",
             p->vw, p->nv, p->cob, p->tapout);
    if (p->reqd) {
        size_t used = strlen(opts);
        snprintf(opts + used, n - used, " -DLWS=%d", p->lws);
    }
}

/* Floats of the rearranged weights: output channels padded to whole
 * channel blocks. */
static size_t fwd_weights_count(const conv_geom *g, const fwd_plan *p)
{
    return (size_t)p->ncb * p->cob * g->cin * g->k[0] * g->k[1] * g->k[2];
}

/* Rearranged weights for the forward kernel into a new scratch *wt.
 * flip != 0: w is a forward weight (g->cin, g->cout, kd, kh, kw) used for the
 * data gradient (channels swapped, taps reversed). */
static u3d_status fwd_weights(u3d_backend *be, const conv_geom *g,
                              const fwd_plan *p, cl_mem w, int flip,
                              cl_mem *wt, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    char opts[128];
    fwd_options(g, p, opts, sizeof opts);
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_weights", opts, &k, err));
    U3D_TRY(scratch(be, U3D_SCRATCH_CONV_W, fwd_weights_count(g, p), wt,
                    err));
    int items = p->ncb * g->cin; /* one per (channel block, input channel) */
    int a[] = {g->cout, g->cin, items, flip};
    size_t gs = (size_t)items;
    size_t l = wg0(cl, k, tune(cl, "lws_small", 64), gs);
    u3d_status st = arg_mem(k, 0, w, err);
    if (!st)
        st = arg_mem(k, 1, *wt, err);
    if (!st)
        st = arg_ints(k, 2, a, 4, err);
    if (!st)
        st = u3d_cl_launch(cl, k, "conv3d_weights", 1, &gs, &l, err);
    if (st) {
        scratch_free(be, *wt);
        *wt = NULL;
    }
    return st;
}

/* 1 when a convolution reads zero padding along some axis. */
static int padded(const int pad[3]) { return pad[0] || pad[1] || pad[2]; }

/* Geometry of a convolution of src, read with zero padding pad (per axis)
 * to out. Without padding src is read in place. The padded copy keeps a
 * single gap of pad[2] zeros between neighbouring rows, serving as the
 * right border of one and the left border of the next (reads past a row's
 * end wrap into it), and likewise pad[1] zero rows between planes: Hp = H +
 * pad[1], Wp = W + pad[2], so fewer computed positions go unused than with
 * Wp = W + 2 pad. A spare zero plane at the end takes the reads that wrap
 * past the last row. */
static conv_geom conv_full(u3d_shape s, const int pad[3], const int k[3],
                           u3d_shape out)
{
    conv_geom g = {s.n,
                   s.c,
                   out.c,
                   {k[0], k[1], k[2]},
                   s.d + 2 * pad[0] + padded(pad),
                   s.h + pad[1],
                   s.w + pad[2],
                   out.d,
                   out.h,
                   out.w};
    return g;
}

/* Geometry of the slab of output planes [z0, z0 + S) (clipped). */
static conv_geom slab_geom(const conv_geom *full, int z0, int S)
{
    conv_geom g = *full;
    g.dout = full->dout - z0 < S ? full->dout - z0 : S;
    g.dp = g.dout + (full->dp - full->dout);
    return g;
}

/* Where a launch reads its input and writes its output. */
typedef struct conv_io {
    cl_mem x;
    int xstride, xoff; /* channel stride and first element of the input */
    cl_mem y;
    int ystride, yoff; /* the same for the output */
    int pz0, pz1, py0, py1; /* input planes and rows that can be nonzero */
} conv_io;

static u3d_status fwd_launch(u3d_cl *cl, const conv_geom *g,
                             const fwd_plan *p, const conv_io *io, cl_mem wt,
                             cl_mem bias, u3d_error *err)
{
    char opts[144];
    fwd_options(g, p, opts, sizeof opts);
    if (p->relu) { /* a program of its own; without, the same as before */
        size_t used = strlen(opts);
        snprintf(opts + used, sizeof opts - used, " -DRELU=1");
    }
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_fwd", opts, &k, err));
    int lq = conv_lq(g), ntiles = ceil_div(lq, p->vw * p->nv);
    int a[] = {g->cin,   g->cout, g->hp,   g->wp,  io->xstride,
               io->xoff, g->dout, g->hout, g->wout, io->ystride,
               io->yoff, lq,      ntiles,  p->ncb,  bias != NULL,
               io->pz0,  io->pz1, io->py0, io->py1};
    U3D_TRY(arg_mem(k, 0, io->x, err));
    U3D_TRY(arg_mem(k, 1, wt, err));
    /* without bias any valid buffer: never read */
    U3D_TRY(arg_mem(k, 2, bias ? bias : wt, err));
    U3D_TRY(arg_mem(k, 3, io->y, err));
    U3D_TRY(arg_ints(k, 4, a, 19, err));
    size_t gs[3] = {(size_t)ntiles, (size_t)p->ncb, (size_t)g->n};
    size_t l[3] = {p->reqd ? (size_t)p->lws : wg0(cl, k, p->lws, gs[0]), 1,
                   1};
    if (p->reqd)
        U3D_TRY(fixed_wg(cl, k, "conv3d_fwd", "LWS", l[0], err));
    return u3d_cl_launch(cl, k, "conv3d_fwd", 3, gs, l, err);
}

/* Floats of the zero-padded input slab of S output planes (pad > 0). */
static size_t fwd_pad_count(const conv_geom *full, int S)
{
    size_t plane = (size_t)full->n * full->cin * full->hp * full->wp;
    return plane * (size_t)(S + full->dp - full->dout);
}

/* The launches of one convolution once the weights are arranged, a slab
 * of output planes at a time so that the input planes a slab reads stay in
 * cache while all output channel blocks use them; with pad > 0 each slab
 * is first copied, zero-padded, into a scratch buffer. */
static u3d_status fwd_slabs(u3d_backend *be, const conv_geom *full,
                            const fwd_plan *p, int S, cten *src,
                            const int pad[3], cl_mem wt, cl_mem bias,
                            cl_mem y, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    u3d_shape s = src->shape;
    int ohw = full->hout * full->wout;
    cl_mem xp = NULL;
    if (padded(pad)) {
        U3D_TRY(check_size("conv3d padding", fwd_pad_count(full, S), err));
        U3D_TRY(scratch(be, U3D_SCRATCH_CONV_X, fwd_pad_count(full, S), &xp,
                        err));
    }
    u3d_status st = U3D_OK;
    for (int z0 = 0; z0 < full->dout && !st; z0 += S) {
        conv_geom g = slab_geom(full, z0, S);
        conv_io io = {u3d_cl_mem(src), s.d * s.h * s.w, z0 * s.h * s.w,
                      y, full->dout * ohw, z0 * ohw,
                      0, INT_MAX, 0, INT_MAX};
        if (padded(pad)) {
            /* the copy's plane z is src plane z + z0 - pad[0], row y src
             * row y - pad[1]: the rest is zero padding, see conv3d_embed */
            io.pz0 = pad[0] - z0;
            io.pz1 = s.d + pad[0] - z0;
            io.py0 = pad[1];
            io.py1 = s.h + pad[1];
            st = u3d_cl_conv_embed(cl, u3d_cl_mem(src), xp, s.n, s.c, s.c,
                                   s.d, s.h, s.w, g.dp, g.hp, g.wp, pad, z0,
                                   err);
            io.x = xp;
            io.xstride = g.dp * g.hp * g.wp;
            io.xoff = 0;
        }
        if (!st)
            st = fwd_launch(cl, &g, p, &io, wt, bias, err);
    }
    scratch_free(be, xp);
    return st;
}

/* Geometry, slab height S and blocking of a convolution of input shape s
 * zero-padded by pad to output shape ys. */
static void fwd_setup(const u3d_cl *cl, const char *pass, u3d_shape s,
                      const int pad[3], const int k[3], u3d_shape ys,
                      conv_geom *full, int *S, fwd_plan *p)
{
    *full = conv_full(s, pad, k, ys);
    size_t plane = (size_t)s.n * s.c * full->hp * full->wp;
    *S = slab_planes(cl, plane, full->dp - ys.d, ys.d);
    /* the blocking must fit the thinnest slab, the last */
    conv_geom thin = slab_geom(full, (ceil_div(ys.d, *S) - 1) * *S, *S);
    *p = fwd_choose(cl, pass, &thin);
}

/* y (shape ys) = conv(src zero-padded by pad, w) (+ bias); flip: see
 * fwd_weights. */
static u3d_status conv_run(u3d_backend *be, cten *src, const int pad[3],
                           const int k[3], cl_mem w, int flip, cl_mem bias,
                           int relu, cl_mem y, u3d_shape ys, u3d_error *err)
{
    conv_geom full;
    fwd_plan p;
    int S;
    fwd_setup(u3d_cl_of(be), flip ? "data" : "fwd", src->shape, pad, k, ys,
              &full, &S, &p);
    p.relu = relu;
    cl_mem wt;
    U3D_TRY(fwd_weights(be, &full, &p, w, flip, &wt, err));
    u3d_status st = fwd_slabs(be, &full, &p, S, src, pad, wt, bias, y, err);
    scratch_free(be, wt);
    return st;
}

u3d_status u3d_cl_conv3d_forward(u3d_backend *be, const u3d_conv3d_params *p,
                                 cten *x, cten *w, cten *b, u3d_tensor *y,
                                 u3d_error *err)
{
    if (u3d_cl_conv_path_at(u3d_cl_of(be), "fwd", x->shape.c, y->shape.c) ==
        U3D_CL_CONV_IGEMM)
        return u3d_cl_igemm_forward(be, p, x, w, b, y, err);
    int k[3], pad[3], wino;
    u3d_conv3d_axes(p, k, pad);
    U3D_TRY(u3d_cl_wino_use(u3d_cl_of(be), "fwd", x->shape.c, y->shape.c, k,
                            &wino, err));
    if (wino)
        return u3d_cl_wino_conv(be, "fwd", x, pad, u3d_cl_mem(w), 0,
                                p->weights_version, b ? u3d_cl_mem(b) : NULL,
                                p->relu,
                                u3d_cl_mem(y), y->shape, err);
    U3D_TRY(check_size("conv3d forward", u3d_shape_count(x->shape), err));
    U3D_TRY(check_size("conv3d forward", u3d_shape_count(y->shape), err));
    return conv_run(be, x, pad, k, u3d_cl_mem(w), 0,
                    b ? u3d_cl_mem(b) : NULL, p->relu, u3d_cl_mem(y), y->shape,
                    err);
}

/* A forward convolution holds two scratch slots: the rearranged weights
 * (output channels padded to whole channel blocks) and, with pad > 0, the
 * zero-padded input slab. The slots are shared by all convolutions, so
 * each grows to its largest request, doubled: a slot grows geometrically,
 * to less than twice the request (u3d_cl_scratch). (The smaller buffer it
 * replaces lives on until the kernels queued on it are done, a transient
 * the backend's scratch_bytes does not count either.) */
size_t u3d_cl_conv3d_scratch_bytes(u3d_backend *be, int n,
                                   const u3d_conv3d_params *p,
                                   const u3d_shape *x, const u3d_shape *w)
{
    const u3d_cl *cl = u3d_cl_of(be);
    /* each layer's forward runs the path its tuning picks ("use"); the
     * slots are shared, so with both paths in use each path's need over
     * all layers, added, bounds them */
    int nig = 0;
    for (int i = 0; i < n; i++)
        nig += u3d_cl_conv_path_at(cl, "fwd", x[i].c, w[i].n) ==
               U3D_CL_CONV_IGEMM;
    size_t igemm = nig ? u3d_cl_igemm_scratch_bytes(be, n, p, x, w) : 0;
    if (nig == n)
        return igemm;
    size_t wmax = 0, xmax = 0, wino[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        int k[3], pad[3];
        u3d_conv3d_axes(&p[i], k, pad);
        u3d_shape ys = u3d_shape5(x[i].n, w[i].n,
                                  x[i].d + 2 * pad[0] - k[0] + 1,
                                  x[i].h + 2 * pad[1] - k[1] + 1,
                                  x[i].w + 2 * pad[2] - k[2] + 1);
        if (ys.d < 1 || ys.h < 1 || ys.w < 1)
            continue;
        size_t wb[3];
        if (u3d_cl_wino_scratch_bytes(cl, "fwd", x[i], ys, k, wb)) {
            /* the Winograd path's slots, not the direct ones */
            for (int j = 0; j < 3; j++)
                wino[j] = wb[j] > wino[j] ? wb[j] : wino[j];
            continue;
        }
        conv_geom full;
        fwd_plan fp;
        int S;
        fwd_setup(cl, "fwd", x[i], pad, k, ys, &full, &S, &fp);
        size_t wt = fwd_weights_count(&full, &fp);
        size_t xp = padded(pad) ? fwd_pad_count(&full, S) : 0;
        wmax = wt > wmax ? wt : wmax;
        xmax = xp > xmax ? xp : xmax;
    }
    return igemm + 2 * (wino[0] + wino[1] + wino[2]) +
           2 * sizeof(float) * (wmax + xmax);
}

u3d_status u3d_cl_conv3d_backward_data(u3d_backend *be,
                                       const u3d_conv3d_params *p, cten *dy,
                                       cten *w, u3d_tensor *dx, u3d_error *err)
{
    if (u3d_cl_conv_path_at(u3d_cl_of(be), "data", dx->shape.c,
                            dy->shape.c) == U3D_CL_CONV_IGEMM)
        return u3d_cl_igemm_backward_data(be, p, dy, w, dx, err);
    int k[3], pad[3], wino;
    u3d_conv3d_axes(p, k, pad);
    for (int a = 0; a < 3; a++)
        pad[a] = k[a] - 1 - pad[a]; /* the full correlation's */
    U3D_TRY(u3d_cl_wino_use(u3d_cl_of(be), "data", dy->shape.c, dx->shape.c,
                            k, &wino, err));
    if (wino)
        return u3d_cl_wino_conv(be, "data", dy, pad, u3d_cl_mem(w), 1,
                                p->weights_version, NULL, 0, u3d_cl_mem(dx),
                                dx->shape, err);
    U3D_TRY(check_size("conv3d backward-data", u3d_shape_count(dx->shape),
                       err));
    U3D_TRY(check_size("conv3d backward-data", u3d_shape_count(dy->shape),
                       err));
    /* dx = full correlation of dy with the flipped kernel */
    return conv_run(be, dy, pad, k, u3d_cl_mem(w), 1, NULL, 0, u3d_cl_mem(dx),
                    dx->shape, err);
}

/* Blocking and chunking of the weight gradient for one slab. */
typedef struct bww_plan {
    int vw, cob, ncb, coutp, lws, reqd;
    int nq, qchunk, nch; /* chunks per sample, their length, total */
} bww_plan;

static bww_plan bww_choose(const u3d_cl *cl, const conv_geom *g)
{
    bww_plan p;
    int lq = conv_lq(g);
    const char *b = u3d_cl_conv_bucket(g->cin, g->cout);
    p.vw = tune_at(cl, "weight", b, "bw_vw", 4);
    p.lws = tune_at(cl, "weight", b, "bw_lws", 64);
    if (p.lws < 1)
        p.lws = 1;
    if (cl->max_wg > 0 && (size_t)p.lws > cl->max_wg)
        p.lws = (int)cl->max_wg;
    p.reqd = tune(cl, "lws_runtime", 0) == 0; /* see fwd_choose */
    int cobmax = tune_at(cl, "weight", b, "bw_cob", 4);
    p.ncb = ceil_div(g->cout, cobmax < 1 ? 1 : cobmax);
    p.cob = ceil_div(g->cout, p.ncb);
    p.coutp = p.ncb * p.cob;
    /* split positions until there are enough work-items and a chunk's dy
     * stays in cache, but keep chunks long enough that the partial sums
     * stay few */
    long base = (long)g->cin * g->k[0] * g->k[1] * p.ncb * g->n;
    /* enough work-items to fill a GPU (~100k in flight); CPU rows lower */
    long want = tune_at(cl, "weight", b, "bw_items", 65536);
    int minchunk = tune_at(cl, "weight", b, "bw_chunk", 4096);
    int maxchunk = tune_at(cl, "weight", b, "bw_maxchunk", 1 << 16);
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

/* Buffers of the weight gradient. */
typedef struct bww_bufs {
    cl_mem x, dyq;
    int xstride, xoff; /* input channel stride, first element */
    cl_mem part;       /* partial sums of dw, per chunk */
    cl_mem bpart;      /* and of db, from element boff of each chunk */
    int pstride, boff; /* floats per chunk */
    int ch0;           /* first chunk of this slab */
} bww_bufs;

static u3d_status bww_launch(u3d_cl *cl, const conv_geom *g,
                             const bww_plan *p, const bww_bufs *b,
                             int with_bias, u3d_error *err)
{
    char opts[128];
    kernel_options(g, opts, sizeof opts);
    size_t k0 = strlen(opts);
    snprintf(opts + k0, sizeof opts - k0, " -DBVW=%d -DBCOB=%d", p->vw,
             p->cob);
    if (p->reqd) {
        size_t used = strlen(opts);
        snprintf(opts + used, sizeof opts - used, " -DBLWS=%d", p->lws);
    }
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_bwd_weight", opts, &k, err));
    int lq = conv_lq(g), sq = g->dout * g->hp * g->wp;
    int a[] = {g->cin,     g->cout, p->coutp, g->hp,      g->wp,
               b->xstride, b->xoff, sq,       lq,         p->nq,
               p->qchunk,  p->nch,  p->ncb,   b->pstride, b->ch0};
    U3D_TRY(arg_mem(k, 0, b->x, err));
    U3D_TRY(arg_mem(k, 1, b->dyq, err));
    U3D_TRY(arg_mem(k, 2, b->part, err));
    U3D_TRY(arg_ints(k, 3, a, 15, err));
    size_t gs[3] = {(size_t)g->cin * g->k[0] * g->k[1], (size_t)p->ncb,
                    (size_t)p->nch};
    size_t l[3] = {p->reqd ? (size_t)p->lws : wg0(cl, k, p->lws, gs[0]), 1,
                   1};
    if (p->reqd)
        U3D_TRY(fixed_wg(cl, k, "conv3d_bwd_weight", "BW_LWS", l[0], err));
    U3D_TRY(u3d_cl_launch(cl, k, "conv3d_bwd_weight", 3, gs, l, err));
    if (!with_bias)
        return U3D_OK;
    /* a work-group of bl (a power of 2) per channel and chunk */
    int bl = tune_at(cl, "weight", u3d_cl_conv_bucket(g->cin, g->cout),
                     "bias_lws", 64);
    size_t blmax = cl->max_wg > 0 ? cl->max_wg : 64;
    bl = pow2_floor(bl < 1 ? 1 : (size_t)bl < blmax ? (size_t)bl : blmax);
    char bopts[32];
    snprintf(bopts, sizeof bopts, "-DBL=%d", bl);
    /* BL=64 is the source's default: the program of the other kernels */
    U3D_TRY(get_kernel(cl, "conv3d_bwd_bias", bl == 64 ? NULL : bopts, &k,
                       err));
    U3D_TRY(fixed_wg(cl, k, "conv3d_bwd_bias", "BIAS_LWS", (size_t)bl, err));
    int c[] = {g->cout, p->coutp,   sq,      lq,    p->nq, p->qchunk,
               p->nch,  b->pstride, b->boff, b->ch0};
    U3D_TRY(arg_mem(k, 0, b->dyq, err));
    U3D_TRY(arg_mem(k, 1, b->bpart, err));
    U3D_TRY(arg_ints(k, 2, c, 10, err));
    size_t gb[2] = {(size_t)g->cout * (size_t)bl, (size_t)p->nch};
    size_t lb[2] = {(size_t)bl, 1};
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

/* One weight-gradient slab: pads x (when pad > 0) and embeds dy, then the
 * partial sums of its chunks. */
static u3d_status bww_slab(u3d_cl *cl, const conv_geom *g, int z0,
                           const int pad[3], cten *x, cten *dy,
                           const bww_plan *p, cl_mem xp, bww_bufs *b,
                           int with_bias, u3d_error *err)
{
    static const int none[3] = {0, 0, 0};
    u3d_shape xs = x->shape, ys = dy->shape;
    if (padded(pad)) {
        U3D_TRY(u3d_cl_conv_embed(cl, u3d_cl_mem(x), xp, xs.n, xs.c, xs.c,
                                  xs.d, xs.h, xs.w, g->dp, g->hp, g->wp, pad,
                                  z0, err));
        b->x = xp;
        b->xstride = g->dp * g->hp * g->wp;
        b->xoff = 0;
    } else {
        b->x = u3d_cl_mem(x);
        b->xstride = xs.d * xs.h * xs.w;
        b->xoff = z0 * xs.h * xs.w;
    }
    /* dy in the padded geometry, zero at unused positions and channels */
    U3D_TRY(u3d_cl_conv_embed(cl, u3d_cl_mem(dy), b->dyq, ys.n, ys.c,
                              p->coutp, ys.d, ys.h, ys.w, g->dout, g->hp,
                              g->wp, none, z0, err));
    return bww_launch(cl, g, p, b, with_bias, err);
}

u3d_status u3d_cl_conv3d_backward_weight(u3d_backend *be,
                                         const u3d_conv3d_params *p, cten *x,
                                         cten *dy, u3d_tensor *dw,
                                         u3d_tensor *db, u3d_error *err)
{
    if (u3d_cl_conv_path_at(u3d_cl_of(be), "weight", x->shape.c,
                            dy->shape.c) == U3D_CL_CONV_IGEMM)
        return u3d_cl_igemm_backward_weight(be, p, x, dy, dw, db, err);
    u3d_cl *cl = u3d_cl_of(be);
    u3d_shape xs = x->shape, ys = dy->shape;
    int k[3], pad[3], wino;
    u3d_conv3d_axes(p, k, pad);
    U3D_TRY(u3d_cl_wino_use(cl, "weight", xs.c, ys.c, k, &wino, err));
    if (wino)
        return u3d_cl_wino_backward_weight(be, x, pad, dy, dw, db, err);
    U3D_TRY(check_size("conv3d backward-weight", u3d_shape_count(xs), err));
    U3D_TRY(check_size("conv3d backward-weight", u3d_shape_count(ys), err));
    conv_geom full = conv_full(xs, pad, k, ys);
    int coutp = bww_choose(cl, &full).coutp;
    size_t xplane =
        padded(pad) ? (size_t)xs.n * xs.c * full.hp * full.wp : 0;
    size_t qplane = (size_t)xs.n * coutp * full.hp * full.wp;
    int extra = xplane ? full.dp - ys.d : 0; /* more x than dy planes */
    int S = slab_planes(cl, xplane + qplane, extra, ys.d);
    int nw = ys.c * xs.c * k[0] * k[1] * k[2], ne = nw + (db ? ys.c : 0);
    int nch = 0; /* chunks over all slabs */
    for (int z0 = 0; z0 < ys.d; z0 += S) {
        conv_geom g = slab_geom(&full, z0, S);
        nch += bww_choose(cl, &g).nch;
    }
    size_t xcount = xplane * (size_t)(S + extra), qcount = qplane * S;
    u3d_status st = check_size("conv3d backward-weight", xcount, err);
    if (!st)
        st = check_size("conv3d backward-weight", qcount, err);
    if (!st)
        st = check_size("conv3d backward-weight", (size_t)nch * ne, err);
    cl_mem xp = NULL, part = NULL;
    bww_bufs b = {0};
    if (!st && xcount)
        st = scratch(be, U3D_SCRATCH_CONV_X, xcount, &xp, err);
    if (!st)
        st = scratch(be, U3D_SCRATCH_CONV_DY, qcount, &b.dyq, err);
    if (nch == 1) { /* a single chunk: the sums go straight to dw, db */
        b.part = u3d_cl_mem(dw);
        b.bpart = db ? u3d_cl_mem(db) : NULL;
    } else {
        if (!st)
            st = scratch(be, U3D_SCRATCH_CONV_PART, (size_t)nch * ne, &part,
                         err);
        b.part = b.bpart = part;
        b.pstride = ne;
        b.boff = nw;
    }
    for (int z0 = 0; z0 < ys.d && !st; z0 += S) {
        conv_geom g = slab_geom(&full, z0, S);
        bww_plan pl = bww_choose(cl, &g);
        st = bww_slab(cl, &g, z0, pad, x, dy, &pl, xp, &b, db != NULL, err);
        b.ch0 += pl.nch;
    }
    if (!st && part)
        st = reduce(cl, part, u3d_cl_mem(dw), db ? u3d_cl_mem(db) : NULL,
                    nw, ne, nch, ne, err);
    scratch_free(be, part);
    scratch_free(be, b.dyq);
    scratch_free(be, xp);
    return st;
}

/* 1 when pass ("fwd", "data", "weight") of the layer x -> ys runs on the
 * Winograd path (an invalid UNET3D_WINOGRAD counts as no: the pass itself
 * refuses it). */
static int wino_of(const u3d_cl *cl, const char *pass, u3d_shape x,
                   u3d_shape ys, const int k[3])
{
    int use = 0;
    u3d_error e;
    if (u3d_cl_conv_path_at(cl, pass, x.c, ys.c) == U3D_CL_CONV_IGEMM)
        return 0;
    int data = !strcmp(pass, "data");
    if (u3d_cl_wino_use(cl, pass, data ? ys.c : x.c, data ? x.c : ys.c, k,
                        &use, &e))
        return 0;
    return use;
}

/* The output shape of a convolution of x to cout channels (k, pad from
 * p's axes). */
static u3d_shape out_shape(const u3d_conv3d_params *p, u3d_shape x, int cout,
                           int k[3], int pad[3])
{
    u3d_conv3d_axes(p, k, pad);
    return u3d_shape5(x.n, cout, x.d + 2 * pad[0] - k[0] + 1,
                      x.h + 2 * pad[1] - k[1] + 1,
                      x.w + 2 * pad[2] - k[2] + 1);
}

double u3d_cl_conv3d_flops_done(u3d_backend *be, const char *pass,
                                const u3d_conv3d_params *p, u3d_shape x,
                                int cout)
{
    const u3d_cl *cl = u3d_cl_of(be);
    int k[3], pad[3];
    u3d_shape ys = out_shape(p, x, cout, k, pad);
    if (!wino_of(cl, pass, x, ys, k))
        return 0;
    char buf[160];
    return !strcmp(pass, "data") ? u3d_cl_wino_describe(cl, pass, ys, x, buf,
                                                        sizeof buf)
                                 : u3d_cl_wino_describe(cl, pass, x, ys, buf,
                                                        sizeof buf);
}

/* What u3d_cl_conv3d_config describes: the path and blocking this pass
 * chooses for the layer, e.g. "direct vw16 cob8 nv2 acc16 lws64" or
 * "igemm 64x64x16 items8x16 vw4/4 lpad1" (and where the values came
 * from: user/shipped/default/env/tuner). */
void u3d_cl_conv3d_config(u3d_backend *be, const char *pass,
                          const u3d_conv3d_params *p, u3d_shape x,
                          int cout, char *out, size_t n)
{
    const u3d_cl *cl = u3d_cl_of(be);
    int k[3], pad[3];
    u3d_shape ys = out_shape(p, x, cout, k, pad);
    const char *src;
    const char *b = u3d_cl_conv_bucket(x.c, cout);
    if (u3d_cl_conv_path_at(cl, pass, x.c, cout) == U3D_CL_CONV_IGEMM) {
        int wt = !strcmp(pass, "weight");
        u3d_igemm_cfg c = u3d_cl_igemm_config_at(
            cl, wt ? U3D_IGEMM_BWW : U3D_IGEMM_FWD, pass, b);
        const char *usrc; /* where the path choice came from */
        u3d_tuning_get(&cl->tuning, "conv3d_igemm", pass, b, "use", 0, &usrc);
        u3d_tuning_get(&cl->tuning, "conv3d_igemm", pass, b,
                       wt ? "bw_mwg" : "mwg", 0, &src);
        const char *env = getenv("UNET3D_CONV_PATH");
        snprintf(out, n,
                 "igemm %dx%dx%d items%dx%d vw%d/%d lpad%d (%s, %s; path "
                 "%s)",
                 c.mwg, c.nwg, c.kwg, c.mdimc, c.ndimc, c.vwm, c.vwn, c.lpad,
                 b, src, env && env[0] ? "env" : usrc);
        return;
    }
    if (wino_of(cl, pass, x, ys, k)) {
        if (!strcmp(pass, "data"))
            u3d_cl_wino_describe(cl, pass, ys, x, out, n);
        else
            u3d_cl_wino_describe(cl, pass, x, ys, out, n);
        return;
    }
    if (!strcmp(pass, "weight")) {
        conv_geom full = conv_full(x, pad, k, ys);
        bww_plan w = bww_choose(cl, &full);
        u3d_tuning_get(&cl->tuning, "conv3d", "weight", b, "bw_vw", 0, &src);
        snprintf(out, n, "direct bw_vw%d bw_cob%d chunk%d x%d lws%d (%s, %s)",
                 w.vw, w.cob, w.qchunk, w.nch, w.lws, b, src);
        return;
    }
    int data = !strcmp(pass, "data");
    if (data) { /* the forward kernel on dy, padded by k-1-pad */
        u3d_shape dy = ys;
        ys = x;
        x = dy;
        for (int a = 0; a < 3; a++)
            pad[a] = k[a] - 1 - pad[a];
    }
    conv_geom full;
    fwd_plan fp;
    int S;
    fwd_setup(cl, pass, x, pad, k, ys, &full, &S, &fp);
    u3d_tuning_get(&cl->tuning, "conv3d", pass, b, "vw", 0, &src);
    snprintf(out, n, "direct vw%d cob%d nv%d acc%d lws%d%s (%s, %s)", fp.vw,
             fp.cob,
             fp.nv, fp.cob * fp.nv, fp.lws, fp.tapout ? " tapout" : "", b,
             src);
}
