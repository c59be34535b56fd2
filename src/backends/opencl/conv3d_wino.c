/* Winograd F(2x2x2, 3x3x3) convolution on OpenCL (cl/winograd.cl).
 *
 * A 3x3x3 convolution does 216 multiply-adds per 2x2x2 output tile and
 * channel pair; Winograd's minimal filtering does 64, plus transforms of
 * the input tiles and of the products that are additions only. On a CPU
 * the direct kernels reach about half of the FMA peak, so the 3.4x fewer
 * FLOPs are worth the transforms from a few channels on (tuning
 * "winograd" "from_cin"). The weights are transformed on every forward
 * call (one short launch); with a weights_version from the caller (a
 * training step) the forward keeps its transform in the backend's weight
 * cache and the data gradient of the same version reads it, flipped (see
 * wino_gemm_fu), instead of transforming the weights again (256 -> 512
 * channels: 5.6 of the data gradient's 26 ms). The tiles are processed in
 * chunks whose transformed inputs and products fit the scratch budget
 * ("chunk_kb"), so a large volume needs no more memory than the direct
 * path's slabs. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/conv3d_wino.h"
#include "backends/opencl/conv_bucket.h"

#define PROG "winograd"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static int tune(const u3d_cl *cl, const char *tpass, const char *bucket,
                const char *param, int fallback)
{
    return u3d_cl_tune_at(cl, PROG, tpass, bucket, param, fallback);
}

u3d_status u3d_cl_wino_use(const u3d_cl *cl, const char *tpass, int cin,
                           int cout, const int k[3], int *use,
                           u3d_error *err)
{
    *use = 0;
    const char *env = getenv("UNET3D_WINOGRAD");
    if (env && env[0] && strcmp(env, "on") && strcmp(env, "off"))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "UNET3D_WINOGRAD='%s': use 'on' or 'off' (or "
                          "unset it)", env);
    if (k[0] != 3 || k[1] != 3 || k[2] != 3)
        return U3D_OK;
    if (env && env[0]) {
        *use = !strcmp(env, "on");
        return U3D_OK;
    }
    const char *b = u3d_cl_conv_bucket(cin, cout);
    int gpu = (cl->type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) ||
              cl->is_oclgrind;
    /* a floor under the tuned "use" of the bucket: the small bucket is
     * tuned on 32 -> 64 channels, and the first layer's 1-3 input
     * channels leave the GEMMs nothing to do (3 -> 32: 2.7x slower than
     * the direct kernels, PoCL AVX2; its data gradient, 32 -> 3, too).
     * 8 for the gradients (the small preset's iteration 1.14 s against
     * 1.30 with 16, AVX2 kernels of session 11; AVX-512 devices ship 16,
     * data/tuning/pocl.tsv), 16 forward (its inference 0.27 s against
     * 0.29) */
    int from = tune(cl, tpass, b, "from_cin", strcmp(tpass, "fwd") ? 8 : 16);
    *use = (cin < cout ? cin : cout) >= from &&
           tune(cl, tpass, b, "use", !gpu);
    return U3D_OK;
}

/* Blocking of one pass: the GEMM's XB = vw * nv tiles by cob channels. */
typedef struct wino_plan {
    int vw, nv, cob, ncb;
    int gemm_lws; /* the GEMM's work-items along the tile blocks */
    int lws;      /* transforms' work-group size */
    size_t chunk; /* tiles per chunk, a multiple of vw * nv */
    int fused;    /* one wino_fused launch instead of chunks */
} wino_plan;

static wino_plan plan_of(const u3d_cl *cl, const char *tpass, int cin,
                         int cout)
{
    const char *b = u3d_cl_conv_bucket(cin, cout);
    wino_plan p;
    /* defaults: the best of a search on PoCL, 2-core EPYC with AVX2
     * (16 ymm registers: 12 accumulators; 16-float vectors spilled) */
    p.vw = tune(cl, tpass, b, "vw", 8);
    p.nv = tune(cl, tpass, b, "nv", 2);
    p.cob = tune(cl, tpass, b, "cob", 6);
    if (p.vw != 1 && p.vw != 2 && p.vw != 4 && p.vw != 8 && p.vw != 16)
        p.vw = 8;
    p.nv = p.nv < 1 ? 1 : p.nv > 8 ? 8 : p.nv;
    p.cob = p.cob < 1 ? 1 : p.cob > 32 ? 32 : p.cob;
    /* fewest blocks, as even as possible (cout 3: one block of 3) */
    p.ncb = ceil_div(cout, p.cob);
    p.cob = ceil_div(cout, p.ncb);
    p.gemm_lws = tune(cl, tpass, b, "gemm_lws", 1);
    p.lws = tune(cl, tpass, b, "lws", 64);
    if (p.gemm_lws < 1)
        p.gemm_lws = 1;
    if (p.lws < 1)
        p.lws = 1;
    size_t xb = (size_t)p.vw * p.nv;
    /* per tile: 64 transformed inputs of cin channels and 64 products of
     * ncb * cob channels */
    size_t per = 64 * ((size_t)cin + (size_t)p.ncb * p.cob) * sizeof(float);
    size_t budget = (size_t)tune(cl, tpass, b, "chunk_kb", 4096) * 1024;
    /* at least min_tiles: each chunk reads all of U, which for deep
     * layers (16 MB at 256 -> 256 channels) outweighs V and M */
    size_t least = (size_t)tune(cl, tpass, b, "min_tiles", 256);
    size_t n = budget / per;
    n = n < least ? least : n;
    n = n / xb * xb;
    p.chunk = n < xb ? xb : n;
    /* fused: the block's V and M in the core's cache (fused_kb) and U
     * small enough to be read by every block (fused_u_kb: deep layers
     * have few tiles and a large U, the chunks read it once each) */
    size_t ub = 64 * (size_t)cin * p.ncb * p.cob * sizeof(float);
    p.fused = 0;
    /* one vector of tiles per block where nv's do not fit */
    for (int nv = p.nv; nv >= 1 && !p.fused; nv = nv > 1 ? 1 : 0) {
        size_t fxb = (size_t)p.vw * nv;
        size_t vm = 64 * (fxb * ((size_t)cin + (size_t)p.cob) + 32) *
                    sizeof(float); /* as fused_run allocates */
        p.fused =
            vm <= (size_t)tune(cl, tpass, b, "fused_kb", 1024) * 1024 &&
            vm <= cl->local_mem &&
            ub <= (size_t)tune(cl, tpass, b, "fused_u_kb", 4096) * 1024;
        if (p.fused)
            p.nv = nv;
    }
    return p;
}

static void options(const u3d_cl *cl, const wino_plan *p, int relu, char *o,
                    size_t n)
{
    snprintf(o, n, "-DVW=%d -DNV=%d -DCOB=%d -DRELU=%d -DSPLIT_SHUFFLE=%d",
             p->vw, p->nv, p->cob, relu, !cl->is_oclgrind);
}

static size_t lws_of(const u3d_cl *cl, int want, size_t work)
{
    size_t l = want > 0 ? (size_t)want : 1;
    if (cl->max_wg > 0 && l > cl->max_wg)
        l = cl->max_wg;
    if (work > 0 && l > work)
        l = work;
    return l;
}

static u3d_status set_ints(cl_kernel k, cl_uint first, const int *v, int n,
                           u3d_error *err)
{
    for (int i = 0; i < n; i++) {
        cl_int a = v[i];
        U3D_TRY(u3d_cl_check(clSetKernelArg(k, first + (cl_uint)i, sizeof a,
                                            &a),
                             "clSetKernelArg", err));
    }
    return U3D_OK;
}

static u3d_status set_mem(cl_kernel k, cl_uint i, cl_mem m, u3d_error *err)
{
    return u3d_cl_check(clSetKernelArg(k, i, sizeof m, &m), "clSetKernelArg",
                        err);
}

/* Tiles per work-item of the transforms (TVW in cl/winograd.cl). */
static int tvw(const wino_plan *p)
{
    int xb = p->vw * p->nv;
    return xb % 8 == 0 ? 8 : xb % 4 == 0 ? 4 : xb % 2 == 0 ? 2 : 1;
}

/* Scratch floats of U, V and M for a plan. */
static void sizes(const wino_plan *p, int cin, int tiles, size_t f[3])
{
    size_t chunk = (size_t)tiles < p->chunk
                       ? (size_t)ceil_div(tiles, p->vw * p->nv) * p->vw * p->nv
                       : p->chunk;
    size_t co = (size_t)p->ncb * p->cob;
    /* 64 planes, each one cache line longer (XIPAD in cl/winograd.cl),
     * and so is each channel block of U (U_CBS); the fused kernel keeps V
     * and M in local memory */
    f[0] = 64 * ((size_t)p->ncb * ((size_t)cin * p->cob + 16) + 16);
    f[1] = p->fused ? 0 : 64 * (chunk * (size_t)cin + 16);
    f[2] = p->fused ? 0 : 64 * (chunk * co + 16);
}

static u3d_status weights(u3d_cl *cl, const wino_plan *p, const char *opts,
                          cl_mem w, int flip, int cin, int cout, cl_mem u,
                          u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_weights", opts, &k, err));
    int a[] = {cout, cin, p->ncb, flip};
    U3D_TRY(set_mem(k, 0, w, err));
    U3D_TRY(set_mem(k, 1, u, err));
    U3D_TRY(set_ints(k, 2, a, 4, err));
    size_t g = (size_t)p->ncb * (size_t)cin;
    size_t l = lws_of(cl, p->lws, g);
    return u3d_cl_launch(cl, k, "winograd weights", 1, &g, &l, err);
}

/* The three launches of one chunk of tc tiles from t0 on, sample n.
 * fncb > 0: u is the forward's (the weight cache's), of fncb blocks of
 * fcob output channels: the data gradient's GEMM is wino_gemm_fu. */
typedef struct wino_chunk {
    cl_mem x, u, v, m, bias, y;
    int n, t0, tc;
    int fncb;
} wino_chunk;

/* V of one chunk (c->v) from the input c->x (sample c->n), padded by
 * pad: the input transform, shared by the forward passes and the weight
 * gradient (whose build lays V out channel-major). */
static u3d_status input_run(u3d_cl *cl, const wino_plan *p, const char *opts,
                            const wino_chunk *c, u3d_shape xs,
                            const int pad[3], int th, int tw, u3d_error *err)
{
    int xb = p->vw * p->nv, ntb = ceil_div(c->tc, xb);
    cl_kernel ki;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_input", opts, &ki, err));
    int xoff = (int)((size_t)c->n * xs.c * xs.d * xs.h * xs.w);
    int ai[] = {xs.c, xoff, xs.d, xs.h, xs.w, pad[0], pad[1], pad[2],
                th,   tw,   c->t0, c->tc, ntb};
    U3D_TRY(set_mem(ki, 0, c->x, err));
    U3D_TRY(set_mem(ki, 1, c->v, err));
    U3D_TRY(set_ints(ki, 2, ai, 13, err));
    size_t gi[2] = {(size_t)ntb * xb / tvw(p), (size_t)xs.c};
    size_t li[2] = {lws_of(cl, p->lws, gi[0]), 1};
    return u3d_cl_launch(cl, ki, "winograd input", 2, gi, li, err);
}

static u3d_status chunk_run(u3d_cl *cl, const wino_plan *p, const char *opts,
                            const wino_chunk *c, u3d_shape xs,
                            const int pad[3], u3d_shape ys, int th, int tw,
                            u3d_error *err)
{
    int xb = p->vw * p->nv, ntb = ceil_div(c->tc, xb);
    cl_kernel kg, ko;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, c->fncb ? "wino_gemm_fu" : "wino_gemm",
                              opts, &kg, err));
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_output", opts, &ko, err));
    U3D_TRY(input_run(cl, p, opts, c, xs, pad, th, tw, err));

    int ag[] = {xs.c, ntb, p->ncb, ys.c, c->fncb};
    U3D_TRY(set_mem(kg, 0, c->v, err));
    U3D_TRY(set_mem(kg, 1, c->u, err));
    U3D_TRY(set_mem(kg, 2, c->m, err));
    U3D_TRY(set_ints(kg, 3, ag, c->fncb ? 5 : 3, err));
    size_t gg[3] = {(size_t)ntb, (size_t)p->ncb, 64};
    size_t lg[3] = {lws_of(cl, p->gemm_lws, gg[0]), 1, 1};
    U3D_TRY(u3d_cl_launch(cl, kg, "winograd gemm", 3, gg, lg, err));

    int yoff = (int)((size_t)c->n * ys.c * ys.d * ys.h * ys.w);
    int ao[] = {ys.c, yoff, ys.d, ys.h, ys.w, th, tw,
                c->t0, c->tc, ntb, p->ncb, c->bias != NULL};
    U3D_TRY(set_mem(ko, 0, c->m, err));
    /* without bias any valid buffer: never read */
    U3D_TRY(set_mem(ko, 1, c->bias ? c->bias : c->m, err));
    U3D_TRY(set_mem(ko, 2, c->y, err));
    U3D_TRY(set_ints(ko, 3, ao, 12, err));
    size_t go[2] = {(size_t)ceil_div(c->tc, tvw(p)), (size_t)ys.c};
    size_t lo[2] = {lws_of(cl, p->lws, go[0]), 1};
    return u3d_cl_launch(cl, ko, "winograd output", 2, go, lo, err);
}

/* The fused kernel over all tiles of every sample: one work-group of one
 * work-item per block of vw * nv tiles, V and M in local memory. */
static u3d_status fused_run(u3d_cl *cl, const wino_plan *p, const char *opts,
                            wino_chunk *c, u3d_shape xs, const int pad[3],
                            u3d_shape ys, int th, int tw, int tiles,
                            u3d_error *err)
{
    int xb = p->vw * p->nv;
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_fused", opts, &k, err));
    size_t vb = (64 * ((size_t)xs.c * xb + 16)) * sizeof(float);
    size_t mb = (64 * ((size_t)p->cob * xb + 16)) * sizeof(float);
    U3D_TRY(set_mem(k, 0, c->x, err));
    U3D_TRY(set_mem(k, 1, c->u, err));
    /* without bias any valid buffer: never read */
    U3D_TRY(set_mem(k, 2, c->bias ? c->bias : c->u, err));
    U3D_TRY(set_mem(k, 3, c->y, err));
    U3D_TRY(u3d_cl_check(clSetKernelArg(k, 4, vb, NULL), "clSetKernelArg",
                         err));
    U3D_TRY(u3d_cl_check(clSetKernelArg(k, 5, mb, NULL), "clSetKernelArg",
                         err));
    size_t g = (size_t)ceil_div(tiles, xb), l = 1;
    for (c->n = 0; c->n < xs.n; c->n++) {
        int xoff = (int)((size_t)c->n * xs.c * xs.d * xs.h * xs.w);
        int yoff = (int)((size_t)c->n * ys.c * ys.d * ys.h * ys.w);
        int a[] = {xs.c,   ys.c,   xoff,   yoff, xs.d, xs.h, xs.w, ys.d,
                   ys.h,   ys.w,   pad[0], pad[1], pad[2], th, tw, tiles,
                   p->ncb, c->bias != NULL};
        U3D_TRY(set_ints(k, 6, a, 18, err));
        U3D_TRY(u3d_cl_launch(cl, k, "winograd fused", 1, &g, &l, err));
    }
    return U3D_OK;
}

static u3d_status check_int(const char *what, size_t n, u3d_error *err)
{
    if (n > (size_t)INT_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "conv3d (Winograd): %s of %zu elements exceeds the "
                          "2^31 limit of the OpenCL kernels; use a smaller "
                          "patch or UNET3D_WINOGRAD=off",
                          what, n);
    return U3D_OK;
}

/* wino_bw_fused's transposition buffer: 64 planes of 8 channels by 8
 * tiles (BW_TRANSPOSE in cl/winograd.cl). */
#define BW_TL (64 * 8 * 8)

/* The weight gradient's blocking: the reduction GEMM's work-item holds
 * cob x cib vectors of vw tile lanes; chunks of at least min_tiles tiles
 * (each chunk adds into all of dU). */
typedef struct wino_bw_plan {
    wino_plan t; /* vw, nv (the transforms' tiles), cob (output block) */
    int cib, nib;
    int groups; /* fused: the persistent work-groups, else 0 */
    /* tile-major (few tiles): nvo vectors of output channels per
     * work-item, cout padded to coutp; else 0 */
    int nvo, coutp;
} wino_bw_plan;

static wino_bw_plan bw_plan_of(const u3d_cl *cl, int cin, int cout,
                               size_t tiles)
{
    const char *b = u3d_cl_conv_bucket(cin, cout);
    wino_bw_plan q;
    wino_plan *p = &q.t;
    /* the default: a 3x3 block of 8-float vectors, 9 accumulators and 6
     * loads in 16 ymm registers (PoCL AVX2) */
    p->vw = tune(cl, "weight", b, "vw", 8);
    p->nv = tune(cl, "weight", b, "nv", 2);
    p->cob = tune(cl, "weight", b, "cob", 3);
    q.cib = tune(cl, "weight", b, "cib", 3);
    if (p->vw != 1 && p->vw != 2 && p->vw != 4 && p->vw != 8 && p->vw != 16)
        p->vw = 8;
    p->nv = p->nv < 1 ? 1 : p->nv > 8 ? 8 : p->nv;
    p->cob = p->cob < 1 ? 1 : p->cob > 8 ? 8 : p->cob;
    q.cib = q.cib < 1 ? 1 : q.cib > 8 ? 8 : q.cib;
    p->ncb = ceil_div(cout, p->cob);
    q.nib = ceil_div(cin, q.cib);
    p->gemm_lws = tune(cl, "weight", b, "gemm_lws", 1);
    p->lws = tune(cl, "weight", b, "lws", 64);
    p->gemm_lws = p->gemm_lws < 1 ? 1 : p->gemm_lws;
    p->lws = p->lws < 1 ? 1 : p->lws;
    size_t xb = (size_t)p->vw * p->nv;
    size_t per = 64 * ((size_t)cin + (size_t)cout) * sizeof(float);
    size_t budget = (size_t)tune(cl, "weight", b, "chunk_kb", 16384) * 1024;
    size_t least = (size_t)tune(cl, "weight", b, "min_tiles", 1024);
    size_t n = budget / per;
    n = n < least ? least : n;
    n = n / xb * xb;
    p->chunk = n < xb ? xb : n;
    /* fused (wino_bw_fused): a block's V and D, the group's dU and db in
     * local memory within fused_kb; cob output channels per block of the
     * accumulators (fused_cob), vectors of vw input channels */
    int fcob = tune(cl, "weight", b, "fused_cob", 8);
    fcob = fcob < 1 ? 1 : fcob > 16 ? 16 : fcob;
    size_t cinp = (size_t)ceil_div(cin, p->vw) * p->vw;
    size_t coutp = (size_t)ceil_div(cout, fcob) * fcob;
    q.groups = q.nvo = q.coutp = 0;
    /* blocks of one vector of tiles (nv 1) where nv's do not fit: 32 -> 64
     * channels in PoCL's 1 MiB local memory (a 1 MiB L2), 0.79 s against
     * the chunked path's 1.29 (2-core EPYC, AVX-512) */
    for (int nv = p->nv; nv >= 1; nv = nv > 1 ? 1 : 0) {
        size_t fxb = (size_t)p->vw * nv;
        size_t fl = (64 * (fxb * cinp + 16) + 64 * (coutp * fxb + 16) +
                     64 * (coutp * cinp + 16) + coutp + BW_TL) *
                    sizeof(float);
        if (fl <= (size_t)tune(cl, "weight", b, "fused_kb", 1536) * 1024 &&
            fl <= cl->local_mem) {
            int cu = cl->compute_units ? (int)cl->compute_units : 1;
            q.groups = tune(cl, "weight", b, "fused_groups", 4 * cu);
            p->nv = nv;
            p->cob = fcob;
            p->ncb = (int)(coutp / (size_t)fcob);
            return q;
        }
    }
    /* tile-major up to t_tiles tiles per sample: t_cib x t_nvo vector
     * accumulators (AVX2's 16 ymm: 4 x 3) */
    if (tiles <= (size_t)tune(cl, "weight", b, "t_tiles", 4096)) {
        q.cib = tune(cl, "weight", b, "t_cib", 4);
        q.cib = q.cib < 1 ? 1 : q.cib > 8 ? 8 : q.cib;
        q.nib = ceil_div(cin, q.cib);
        int nvo = tune(cl, "weight", b, "t_nvo", 3);
        int most = ceil_div(cout, p->vw);
        nvo = nvo < 1 ? 1 : nvo > 8 ? 8 : nvo;
        q.nvo = nvo < most ? nvo : most;
        q.coutp = ceil_div(cout, p->vw * q.nvo) * p->vw * q.nvo;
    }
    return q;
}

static void bw_options(const u3d_cl *cl, const wino_bw_plan *q, char *o,
                       size_t n)
{
    snprintf(o, n,
             "-DVW=%d -DNV=%d -DCOB=%d -DCIB=%d -DNVO=%d -DRELU=0 "
             "-DSPLIT_SHUFFLE=%d -DCMAJOR=1",
             q->t.vw, q->t.nv, q->t.cob, q->cib, q->nvo > 0 ? q->nvo : 1,
             !cl->is_oclgrind);
}

/* One chunk of the tile-major weight gradient (see wino_bw_gemm_t). */
static u3d_status bw_chunk_t(u3d_cl *cl, const wino_bw_plan *q,
                             const char *opts, const wino_chunk *c,
                             cl_mem dd, cl_mem du, cl_mem db, int first,
                             u3d_shape xs, const int pad[3], u3d_shape ys,
                             int th, int tw, u3d_error *err)
{
    const wino_plan *p = &q->t;
    int xb = p->vw * p->nv, ntb = ceil_div(c->tc, xb);
    cl_kernel kd, kg, kb;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_dy_t", opts, &kd, err));
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_gemm_t", opts, &kg, err));
    U3D_TRY(input_run(cl, p, opts, c, xs, pad, th, tw, err));

    int yoff = (int)((size_t)c->n * ys.c * ys.d * ys.h * ys.w);
    int ad[] = {ys.c, q->coutp, yoff, ys.d, ys.h, ys.w, th, tw, c->t0, c->tc};
    U3D_TRY(set_mem(kd, 0, c->y, err));
    U3D_TRY(set_mem(kd, 1, dd, err));
    U3D_TRY(set_ints(kd, 2, ad, 10, err));
    size_t gd[2] = {(size_t)c->tc, (size_t)(q->coutp / p->vw)};
    size_t ld[2] = {lws_of(cl, p->lws, gd[0]), 1};
    U3D_TRY(u3d_cl_launch(cl, kd, "winograd dy", 2, gd, ld, err));

    int ag[] = {xs.c, q->coutp, ntb * xb, c->tc, q->nib, first, 0};
    U3D_TRY(set_mem(kg, 0, c->v, err));
    U3D_TRY(set_mem(kg, 1, dd, err));
    U3D_TRY(set_mem(kg, 2, du, err));
    U3D_TRY(set_ints(kg, 3, ag, 7, err));
    size_t gg[3] = {(size_t)q->nib, (size_t)(q->coutp / (p->vw * q->nvo)),
                    64};
    size_t lg[3] = {lws_of(cl, p->gemm_lws, gg[0]), 1, 1};
    U3D_TRY(u3d_cl_launch(cl, kg, "winograd weight gemm", 3, gg, lg, err));
    if (!db)
        return U3D_OK;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_bias_t", opts, &kb, err));
    int ab[] = {ys.c, q->coutp, c->tc, first};
    U3D_TRY(set_mem(kb, 0, dd, err));
    U3D_TRY(set_mem(kb, 1, db, err));
    U3D_TRY(set_ints(kb, 2, ab, 4, err));
    size_t gb = (size_t)ys.c, lb = lws_of(cl, 1, gb);
    return u3d_cl_launch(cl, kb, "winograd bias", 1, &gb, &lb, err);
}

/* The launches of one chunk of the weight gradient: V from x, D from dy,
 * dU (+)= D' V, db (+)= the sum of dy. */
static u3d_status bw_chunk(u3d_cl *cl, const wino_bw_plan *q,
                           const char *opts, const wino_chunk *c, cl_mem dd,
                           cl_mem du, cl_mem db, int first, u3d_shape xs,
                           const int pad[3], u3d_shape ys, int th, int tw,
                           u3d_error *err)
{
    const wino_plan *p = &q->t;
    int xb = p->vw * p->nv, ntb = ceil_div(c->tc, xb), tv = tvw(p);
    cl_kernel kd, kg, kb;
    if (q->nvo)
        return bw_chunk_t(cl, q, opts, c, dd, du, db, first, xs, pad, ys, th,
                          tw, err);
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_dy", opts, &kd, err));
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_gemm", opts, &kg, err));
    U3D_TRY(input_run(cl, p, opts, c, xs, pad, th, tw, err));

    int yoff = (int)((size_t)c->n * ys.c * ys.d * ys.h * ys.w);
    int ad[] = {ys.c, yoff, ys.d, ys.h, ys.w, th, tw, c->t0, c->tc, ntb};
    U3D_TRY(set_mem(kd, 0, c->y, err));
    U3D_TRY(set_mem(kd, 1, dd, err));
    U3D_TRY(set_ints(kd, 2, ad, 10, err));
    size_t gd[2] = {(size_t)ntb * xb / tv, (size_t)ys.c};
    size_t ld[2] = {lws_of(cl, p->lws, gd[0]), 1};
    U3D_TRY(u3d_cl_launch(cl, kd, "winograd dy", 2, gd, ld, err));

    int ag[] = {xs.c, ys.c, ntb, q->nib, p->ncb, first};
    U3D_TRY(set_mem(kg, 0, c->v, err));
    U3D_TRY(set_mem(kg, 1, dd, err));
    U3D_TRY(set_mem(kg, 2, du, err));
    U3D_TRY(set_ints(kg, 3, ag, 6, err));
    size_t gg[3] = {(size_t)q->nib, (size_t)p->ncb, 64};
    size_t lg[3] = {lws_of(cl, p->gemm_lws, gg[0]), 1, 1};
    U3D_TRY(u3d_cl_launch(cl, kg, "winograd weight gemm", 3, gg, lg, err));
    if (!db)
        return U3D_OK;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_bias", opts, &kb, err));
    int ab[] = {ys.c, ntb, first};
    U3D_TRY(set_mem(kb, 0, dd, err));
    U3D_TRY(set_mem(kb, 1, db, err));
    U3D_TRY(set_ints(kb, 2, ab, 3, err));
    size_t gb = (size_t)ys.c, lb = lws_of(cl, 1, gb);
    return u3d_cl_launch(cl, kb, "winograd bias", 1, &gb, &lb, err);
}

/* dw (and db) from the fused kernel's partials, or from the chunked
 * path's dU (one partial). */
static u3d_status bw_finish(u3d_cl *cl, const wino_bw_plan *q,
                            const char *opts, cl_mem du, int parts,
                            size_t pstride, u3d_tensor *dw, u3d_tensor *db,
                            int cout, int cin, u3d_error *err)
{
    cl_kernel kw;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_weights", opts, &kw, err));
    int aw[] = {cout, cin, parts, (int)pstride, q->coutp};
    U3D_TRY(set_mem(kw, 0, du, err));
    U3D_TRY(set_mem(kw, 1, u3d_cl_mem(dw), err));
    U3D_TRY(set_ints(kw, 2, aw, 5, err));
    size_t gw = (size_t)cout * cin, lw = lws_of(cl, q->t.lws, gw);
    U3D_TRY(u3d_cl_launch(cl, kw, "winograd weight out", 1, &gw, &lw, err));
    if (!db || !q->groups)
        return U3D_OK; /* the chunked path's db: wino_bw_bias */
    cl_kernel kb;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_bias_sum", opts, &kb, err));
    int ab[] = {cout, cin, parts};
    U3D_TRY(set_mem(kb, 0, du, err));
    U3D_TRY(set_mem(kb, 1, u3d_cl_mem(db), err));
    U3D_TRY(set_ints(kb, 2, ab, 3, err));
    size_t gb = (size_t)cout, lb = lws_of(cl, 1, gb);
    return u3d_cl_launch(cl, kb, "winograd bias", 1, &gb, &lb, err);
}

/* The fused weight gradient: q->groups work-groups of one work-item,
 * each over its share of the tile blocks of every sample, then the
 * partials added in order. */
static u3d_status bw_fused_run(u3d_cl *cl, const wino_bw_plan *q,
                               const char *opts, cten *x, const int pad[3],
                               cten *dy, u3d_tensor *dw, u3d_tensor *db,
                               int th, int tw, int tiles, u3d_error *err)
{
    u3d_shape xs = x->shape, ys = dy->shape;
    const wino_plan *p = &q->t;
    size_t xb = (size_t)p->vw * p->nv;
    size_t cinp = (size_t)ceil_div(xs.c, p->vw) * p->vw;
    size_t coutp = (size_t)p->ncb * p->cob;
    size_t pstride = 64 * ((size_t)ys.c * xs.c + 16) + (size_t)ys.c;
    U3D_TRY(check_int("the partial weight gradients",
                      pstride * (size_t)q->groups, err));
    cl_mem part;
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_WINO_U,
                           pstride * (size_t)q->groups * sizeof(float), &part,
                           err));
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_fused", opts, &k, err));
    size_t lb[5] = {64 * (xb * cinp + 16) * sizeof(float),
                    64 * (coutp * xb + 16) * sizeof(float),
                    64 * (coutp * cinp + 16) * sizeof(float),
                    coutp * sizeof(float), BW_TL * sizeof(float)};
    U3D_TRY(set_mem(k, 0, u3d_cl_mem(x), err));
    U3D_TRY(set_mem(k, 1, u3d_cl_mem(dy), err));
    U3D_TRY(set_mem(k, 2, part, err));
    for (cl_uint i = 0; i < 5; i++)
        U3D_TRY(u3d_cl_check(clSetKernelArg(k, 3 + i, lb[i], NULL),
                             "clSetKernelArg", err));
    int a[] = {xs.c, ys.c,   xs.n,   xs.d,   xs.h, xs.w, ys.d, ys.h, ys.w,
               pad[0], pad[1], pad[2], th,   tw,   tiles, q->groups};
    U3D_TRY(set_ints(k, 8, a, 16, err));
    size_t g = (size_t)q->groups, l = 1;
    U3D_TRY(u3d_cl_launch(cl, k, "winograd weight fused", 1, &g, &l, err));
    return bw_finish(cl, q, opts, part, q->groups, pstride, dw, db, ys.c,
                     xs.c, err);
}

u3d_status u3d_cl_wino_backward_weight(u3d_backend *be, cten *x,
                                       const int pad[3], cten *dy,
                                       u3d_tensor *dw, u3d_tensor *db,
                                       u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    u3d_shape xs = x->shape, ys = dy->shape;
    for (int a = 0; a < 3; a++)
        if (pad[a] < 0 || pad[a] > 2)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "conv3d (Winograd): padding %d outside 0..2",
                              pad[a]);
    int th = ceil_div(ys.h, 2), tw = ceil_div(ys.w, 2);
    size_t tiles = (size_t)ceil_div(ys.d, 2) * th * tw;
    U3D_TRY(check_int("an input", u3d_shape_count(xs), err));
    U3D_TRY(check_int("an output", u3d_shape_count(ys), err));
    U3D_TRY(check_int("a tile count", tiles * 2, err));
    wino_bw_plan q = bw_plan_of(cl, xs.c, ys.c, tiles);
    char opts[160];
    bw_options(cl, &q, opts, sizeof opts);
    if (q.groups)
        return bw_fused_run(cl, &q, opts, x, pad, dy, dw, db, th, tw,
                            (int)tiles, err);
    size_t xb = (size_t)q.t.vw * q.t.nv;
    size_t chunk = tiles < q.t.chunk ? (tiles + xb - 1) / xb * xb : q.t.chunk;
    /* 64 planes each, one cache line apart (XIPAD) */
    /* tile-major: dU and D with coutp channels */
    size_t co = q.nvo ? (size_t)q.coutp : (size_t)ys.c;
    size_t f[3] = {64 * (co * xs.c + 16), 64 * (chunk * (size_t)xs.c + 16),
                   64 * (chunk * co + 16)};
    for (int i = 0; i < 3; i++)
        U3D_TRY(check_int("a scratch buffer", f[i], err));
    cl_mem du, dd;
    wino_chunk c = {u3d_cl_mem(x), NULL, NULL, NULL, NULL, u3d_cl_mem(dy),
                    0, 0, 0, 0};
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_WINO_U, f[0] * sizeof(float), &du,
                           err));
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_WINO_V, f[1] * sizeof(float),
                           &c.v, err));
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_WINO_M, f[2] * sizeof(float), &dd,
                           err));
    int first = 1;
    for (c.n = 0; c.n < xs.n; c.n++)
        for (size_t t0 = 0; t0 < tiles; t0 += chunk, first = 0) {
            c.t0 = (int)t0;
            c.tc = (int)(tiles - t0 < chunk ? tiles - t0 : chunk);
            U3D_TRY(bw_chunk(cl, &q, opts, &c, dd, du,
                             db ? u3d_cl_mem(db) : NULL, first, xs, pad, ys,
                             th, tw, err));
        }
    return bw_finish(cl, &q, opts, du, 1, 0, dw, db, ys.c, xs.c, err);
}

/* A padded input goes through a zero-padded copy (the tiles' whole
 * extent, 2 * tiles + 2 per axis) when it is small (pad_copy_kb: the
 * deep layers' data gradient, padding 2): every tile's input then lies
 * inside and loads its rows as vectors (256 -> 512 channels' data
 * gradient: input transform 5.6-6.9 -> 4.7-5.4 ms, the copy 0.6). Returns
 * the copy's floats, 0 for none. */
static size_t pad_copy(const u3d_cl *cl, const char *tpass,
                       const wino_plan *p, u3d_shape xs, u3d_shape ys,
                       const int pad[3], int dims[3])
{
    if (p->fused || (!pad[0] && !pad[1] && !pad[2]))
        return 0;
    dims[0] = 2 * ceil_div(ys.d, 2) + 2;
    dims[1] = 2 * ceil_div(ys.h, 2) + 2;
    dims[2] = 2 * ceil_div(ys.w, 2) + 2;
    size_t n = (size_t)xs.n * xs.c * dims[0] * dims[1] * dims[2];
    const char *b = u3d_cl_conv_bucket(xs.c, ys.c);
    size_t most = (size_t)tune(cl, tpass, b, "pad_copy_kb", 8192) * 1024;
    return n * sizeof(float) <= most ? n : 0;
}

/* The weight cache's entry for a training step's forward (flip 0) or
 * data gradient (flip 1) of the layer cin_f -> cout_f channels (the
 * forward's), *e NULL for none: only where the data gradient runs the
 * chunked path (the fused one reads its own U from local blocks; small
 * weights' transforms are cheap). fp: the forward's plan (U's layout). */
static u3d_status wcache_of(u3d_cl *cl, cl_mem w, unsigned long long version,
                            int cin_f, int cout_f, wino_plan *fp,
                            u3d_cl_wcache **e, u3d_error *err)
{
    *e = NULL;
    int use = 0, k3[3] = {3, 3, 3};
    u3d_error ign;
    if (!version || u3d_cl_wino_use(cl, "data", cout_f, cin_f, k3, &use,
                                    &ign) || !use ||
        plan_of(cl, "data", cout_f, cin_f).fused)
        return U3D_OK;
    *fp = plan_of(cl, "fwd", cin_f, cout_f);
    size_t f[3];
    sizes(fp, cin_f, fp->vw * fp->nv, f);
    int key[4] = {fp->cob, fp->ncb, cin_f, cout_f};
    return u3d_cl_wcache_get(cl, w, key, f[0] * sizeof(float), e, err);
}

u3d_status u3d_cl_wino_conv(u3d_backend *be, const char *tpass, cten *src,
                            const int pad[3], cl_mem w, int flip,
                            unsigned long long version, cl_mem bias,
                            int relu, cl_mem y, u3d_shape ys, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    u3d_shape xs = src->shape;
    for (int a = 0; a < 3; a++)
        if (pad[a] < 0 || pad[a] > 2)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "conv3d (Winograd): padding %d outside 0..2",
                              pad[a]);
    int th = ceil_div(ys.h, 2), tw = ceil_div(ys.w, 2);
    size_t tiles = (size_t)ceil_div(ys.d, 2) * th * tw;
    U3D_TRY(check_int("an input", u3d_shape_count(xs), err));
    U3D_TRY(check_int("an output", u3d_shape_count(ys), err));
    U3D_TRY(check_int("a tile count", tiles * 2, err));
    wino_plan p = plan_of(cl, tpass, xs.c, ys.c);
    size_t f[3];
    sizes(&p, xs.c, (int)tiles, f);
    for (int i = 0; i < 3; i++)
        U3D_TRY(check_int("a scratch buffer", f[i], err));
    char opts[160];
    options(cl, &p, relu, opts, sizeof opts);
    wino_chunk c = {u3d_cl_mem(src), NULL, NULL, NULL, bias, y, 0, 0, 0, 0};
    wino_plan fp;
    u3d_cl_wcache *wc;
    U3D_TRY(wcache_of(cl, w, version, flip ? ys.c : xs.c, flip ? xs.c : ys.c,
                      &fp, &wc, err));
    int dims[3], pad0[3] = {0, 0, 0};
    size_t pc = pad_copy(cl, tpass, &p, xs, ys, pad, dims);
    if (pc) {
        U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_CONV_X, pc * sizeof(float),
                               &c.x, err));
        U3D_TRY(u3d_cl_conv_embed(cl, u3d_cl_mem(src), c.x, xs.n, xs.c, xs.c,
                                  xs.d, xs.h, xs.w, dims[0], dims[1], dims[2],
                                  pad, 0, err));
        xs.d = dims[0];
        xs.h = dims[1];
        xs.w = dims[2];
        pad = pad0;
    }
    if (wc && flip) {
        /* the forward's U, flipped by wino_gemm_fu; transformed here
         * when the forward of this version did not (another path) */
        if (wc->version != version) {
            char fo[128];
            options(cl, &fp, 0, fo, sizeof fo);
            wc->version = 0;
            U3D_TRY(weights(cl, &fp, fo, w, 0, ys.c, xs.c, wc->u, err));
            wc->version = version;
        }
        c.u = wc->u;
        c.fncb = fp.ncb;
        size_t l = strlen(opts);
        snprintf(opts + l, sizeof opts - l, " -DFCOB=%d", fp.cob);
    } else if (wc) {
        c.u = wc->u;
        wc->version = 0;
        U3D_TRY(weights(cl, &p, opts, w, 0, xs.c, ys.c, c.u, err));
        wc->version = version;
    } else {
        U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_WINO_U, f[0] * sizeof(float),
                               &c.u, err));
        U3D_TRY(weights(cl, &p, opts, w, flip, xs.c, ys.c, c.u, err));
    }
    if (p.fused)
        return fused_run(cl, &p, opts, &c, xs, pad, ys, th, tw, (int)tiles,
                         err);
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_WINO_V, f[1] * sizeof(float),
                           &c.v, err));
    U3D_TRY(u3d_cl_scratch(cl, U3D_SCRATCH_WINO_M, f[2] * sizeof(float),
                           &c.m, err));
    for (c.n = 0; c.n < xs.n; c.n++)
        for (size_t t0 = 0; t0 < tiles; t0 += p.chunk) {
            c.t0 = (int)t0;
            c.tc = (int)(tiles - t0 < p.chunk ? tiles - t0 : p.chunk);
            U3D_TRY(chunk_run(cl, &p, opts, &c, xs, pad, ys, th, tw, err));
        }
    return U3D_OK;
}

int u3d_cl_wino_scratch_bytes(const u3d_cl *cl, const char *tpass,
                              u3d_shape x, u3d_shape y, const int k[3],
                              size_t bytes[3])
{
    int use = 0;
    u3d_error e;
    bytes[0] = bytes[1] = bytes[2] = 0;
    if (u3d_cl_wino_use(cl, tpass, x.c, y.c, k, &use, &e) || !use)
        return 0;
    wino_plan p = plan_of(cl, tpass, x.c, y.c);
    size_t tiles = (size_t)ceil_div(y.d, 2) * ceil_div(y.h, 2) *
                   ceil_div(y.w, 2);
    size_t f[3];
    sizes(&p, x.c, tiles > INT_MAX ? INT_MAX : (int)tiles, f);
    /* the padded copy of a small input counted with V */
    int dims[3], pad[3] = {(y.d - x.d + 2) / 2, (y.h - x.h + 2) / 2,
                           (y.w - x.w + 2) / 2};
    f[1] += pad_copy(cl, tpass, &p, x, y, pad, dims);
    for (int i = 0; i < 3; i++)
        bytes[i] = f[i] * sizeof(float);
    return 1;
}

double u3d_cl_wino_describe(const u3d_cl *cl, const char *tpass, u3d_shape x,
                            u3d_shape y, char *out, size_t n)
{
    if (!strcmp(tpass, "weight")) {
        double tiles = (double)ceil_div(y.d, 2) * ceil_div(y.h, 2) *
                       ceil_div(y.w, 2);
        wino_bw_plan q = bw_plan_of(cl, x.c, y.c, (size_t)tiles);
        const char *src;
        u3d_tuning_get(&cl->tuning, PROG, tpass,
                       u3d_cl_conv_bucket(x.c, y.c), "vw", 0, &src);
        double xb = q.t.vw * q.t.nv;
        if (q.groups) {
            snprintf(out, n,
                     "winograd F(2,3) fused vw%d nv%d cob%d groups%d (%s, %s)",
                     q.t.vw, q.t.nv, q.t.cob, q.groups,
                     u3d_cl_conv_bucket(x.c, y.c), src);
            double padded = xb * (double)(long long)((tiles + xb - 1) / xb);
            double cinp = (double)ceil_div(x.c, q.t.vw) * q.t.vw;
            /* the GEMMs over padded channels; the transforms as below */
            return (double)x.n * (128.0 * padded * cinp * q.t.ncb * q.t.cob +
                                  192.0 * padded * x.c + 96.0 * padded * y.c) +
                   256.0 * x.c * y.c;
        }
        if (q.nvo) {
            snprintf(out, n,
                     "winograd F(2,3) tile-major vw%d cib%d nvo%d chunk%zu "
                     "(%s, %s)",
                     q.t.vw, q.cib, q.nvo, q.t.chunk,
                     u3d_cl_conv_bucket(x.c, y.c), src);
            /* the GEMM over the live tiles, padded channels; the
             * transforms as below */
            double cinp = (double)q.nib * q.cib;
            return (double)x.n * (128.0 * tiles * cinp * q.coutp +
                                  192.0 * tiles * x.c + 96.0 * tiles * y.c) +
                   256.0 * x.c * y.c;
        }
        snprintf(out, n,
                 "winograd F(2,3) vw%d nv%d cob%d cib%d chunk%zu (%s, %s)",
                 q.t.vw, q.t.nv, q.t.cob, q.cib, q.t.chunk,
                 u3d_cl_conv_bucket(x.c, y.c), src);
        double padded = 0;
        for (double t0 = 0; t0 < tiles; t0 += (double)q.t.chunk) {
            double tc =
                tiles - t0 < (double)q.t.chunk ? tiles - t0 : (double)q.t.chunk;
            padded += xb * (double)(long long)((tc + xb - 1) / xb);
        }
        /* the GEMMs over padded channel blocks; 192 additions per input
         * tile and channel, about 96 per dy tile and channel, 256 per
         * weight (dU's transform) */
        return (double)x.n * (128.0 * padded * (double)q.nib * q.cib *
                                  (double)q.t.ncb * q.t.cob +
                              192.0 * padded * x.c + 96.0 * padded * y.c) +
               256.0 * x.c * y.c;
    }
    wino_plan p = plan_of(cl, tpass, x.c, y.c);
    const char *src;
    u3d_tuning_get(&cl->tuning, PROG, tpass, u3d_cl_conv_bucket(x.c, y.c),
                   "vw", 0, &src);
    double tiles = (double)ceil_div(y.d, 2) * ceil_div(y.h, 2) *
                   ceil_div(y.w, 2);
    if (p.fused)
        snprintf(out, n, "winograd F(2,3) fused vw%d nv%d cob%d (%s, %s)",
                 p.vw, p.nv, p.cob, u3d_cl_conv_bucket(x.c, y.c), src);
    else
        snprintf(out, n, "winograd F(2,3) vw%d nv%d cob%d chunk%zu (%s, %s)",
                 p.vw, p.nv, p.cob, p.chunk, u3d_cl_conv_bucket(x.c, y.c),
                 src);
    double xb = p.vw * p.nv;
    /* one chunk of all tiles when fused */
    double step = p.fused ? tiles : (double)p.chunk;
    double padded = 0; /* tiles rounded up to blocks, chunk by chunk */
    for (double t0 = 0; t0 < tiles; t0 += step) {
        double tc = tiles - t0 < step ? tiles - t0 : step;
        padded += xb * (double)(long long)((tc + xb - 1) / xb);
    }
    double co = (double)p.ncb * p.cob;
    /* 3 passes of 64 additions per input tile and channel; about 136
     * additions (bias included) per output tile and channel */
    return (double)x.n * (128.0 * padded * x.c * co + 192.0 * padded * x.c +
                          136.0 * tiles * y.c);
}

/* The tile-major GEMM's blocking as a plain GEMM of n columns: vw and
 * the most t_nvo vectors that divide n (0: n is no multiple of vw). */
static int rows_nvo(const u3d_cl *cl, int n, int *vw, int *cib)
{
    const char *b = "large";
    *vw = tune(cl, "weight", b, "vw", 8);
    if (*vw != 1 && *vw != 2 && *vw != 4 && *vw != 8 && *vw != 16)
        *vw = 8;
    *cib = tune(cl, "weight", b, "t_cib", 4);
    *cib = *cib < 1 ? 1 : *cib > 8 ? 8 : *cib;
    int nvo = tune(cl, "weight", b, "t_nvo", 3);
    nvo = nvo < 1 ? 1 : nvo > 8 ? 8 : nvo;
    if (n % *vw)
        return 0;
    while (nvo > 1 && n % (*vw * nvo))
        nvo--;
    return nvo;
}

int u3d_cl_gemm_rows_ok(const u3d_cl *cl, int n)
{
    int vw, cib;
    return rows_nvo(cl, n, &vw, &cib) > 0;
}

u3d_status u3d_cl_gemm_rows(u3d_cl *cl, cl_mem a, int aoff, int m, int k,
                            cl_mem b, int n, cl_mem c, int first,
                            u3d_error *err)
{
    int vw, cib, nvo = rows_nvo(cl, n, &vw, &cib);
    if (!nvo)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "GEMM of %d columns: not a multiple of the vector "
                          "width %d",
                          n, vw);
    char opts[160];
    snprintf(opts, sizeof opts,
             "-DVW=%d -DNV=1 -DCOB=1 -DCIB=%d -DNVO=%d -DRELU=0 "
             "-DSPLIT_SHUFFLE=%d -DCMAJOR=1",
             vw, cib, nvo, !cl->is_oclgrind);
    cl_kernel kg;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, "wino_bw_gemm_t", opts, &kg, err));
    int nib = ceil_div(m, cib);
    int ag[] = {m, n, k, k, nib, first, aoff};
    U3D_TRY(set_mem(kg, 0, a, err));
    U3D_TRY(set_mem(kg, 1, b, err));
    U3D_TRY(set_mem(kg, 2, c, err));
    U3D_TRY(set_ints(kg, 3, ag, 7, err));
    size_t gg[3] = {(size_t)nib, (size_t)(n / (vw * nvo)), 1};
    size_t lg[3] = {1, 1, 1};
    return u3d_cl_launch(cl, kg, "gemm rows", 3, gg, lg, err);
}
