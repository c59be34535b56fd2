/* Implicit-GEMM 3D convolution for GPUs (cl/conv3d_igemm.cl).
 *
 * Forward: M = Cout, N = output positions of a slab (the padded flat
 * positions of cl/conv3d.cl), K = Cin * taps; the weights are rearranged
 * K-major (zero padded to whole tiles) and the input operand is gathered
 * as x[q + off[t]]. Data gradient: the same kernel on dy padded by
 * k-1-pad, weights flipped and Cin/Cout swapped; K tiles whose taps read
 * only zero rows of the padding (for the group's positions) are skipped.
 * Weight gradient: M = Cout, N = Cin * taps, K = positions, split into
 * chunks (split-K) whose partial sums go to scratch and are added in chunk
 * order by conv3d_reduce of cl/conv3d.cl (deterministic, no atomics); the
 * bias sum is fused in. Large volumes run as slabs of output planes, as in
 * conv3d.c; the padded copies are made one work-item per element. Kernel
 * sizes and padding are per axis (u3d_igemm_conv: 1x3x3 fits), though the
 * public op's kernels are mostly cubic.
 *
 * Build parameters (u3d_igemm_cfg; -D options of the kernel). Each is read
 * from env UNET3D_CONV3D_IGEMM_<PARAM> (weight gradient: ..._BW_<PARAM>),
 * else u3d_cl_tune_at(cl, "conv3d_igemm", pass, bucket, "<param>" or
 * "bw_<param>") with the pass (fwd, data, weight) and the shape bucket of
 * conv_bucket.h, else the default:
 *   MWG, NWG   work-group tile along M and N          fwd 64x64, bw 32x64
 *   KWG        K step staged in local memory            16
 *   MDIMC      work-items along M (local dim 1)         8
 *   NDIMC      work-items along N (local dim 0)         16
 *   VWM, VWN   vector widths of the global loads of A, B   4, 4
 *   LPAD       floats of padding per local row          1
 * Constraints (u3d_cl_igemm_valid):
 *   - MWG % MDIMC == 0, NWG % NDIMC == 0; the register tile TM x TN =
 *     MWG/MDIMC x NWG/NDIMC at most 256 floats;
 *   - VWM, VWN in {1, 2, 4, 8, 16}; forward MWG % VWM == 0, NWG % VWN ==
 *     0; weight gradient (its loads run along positions = K) KWG % VWM ==
 *     0, KWG % VWN == 0;
 *   - the vectors of one tile load a multiple of MDIMC * NDIMC (forward
 *     KWG*MWG/VWM and KWG*NWG/VWN, weight gradient MWG*KWG/VWM and
 *     NWG*KWG/VWN): every work-item loads in every round;
 *   - MDIMC * NDIMC <= the device's work-group limit (and the compiled
 *     kernel's, checked at launch), NDIMC and MDIMC <= its item sizes;
 *   - local memory 4 * (KWG * (MWG + LPAD) + KWG * (NWG + LPAD) + 2 * taps)
 *     bytes <= CL_DEVICE_LOCAL_MEM_SIZE.
 * Sizes need not be multiples of the tiles (edge tiles are guarded).
 * Split-K of the weight gradient ("bw_groups" work-groups wanted, default
 * 256; chunks of at least "bw_minchunk" positions, 4096; at most
 * "bw_maxsplit" chunks per sample, 64) are read the same way, "slab_kb"
 * (the padded-slab budget) for all passes; any value is valid for them.
 * "use" (per pass and bucket, u3d_cl_conv_path_at) picks this path or the
 * direct kernels; `unet3d tune` searches all of these (tuner.c).
 *
 * Not done: the rearranged weights are rebuilt on every call (one cheap
 * launch). Caching them per weight buffer would need a version bumped by
 * every writer of weights (SGD, tensor writes, model loading, batch-norm
 * folding), which the backend interface does not carry. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/conv3d_igemm.h"
#include "backends/opencl/conv_bucket.h"

#define PROG "conv3d_igemm"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

int u3d_cl_conv_path(const u3d_cl *cl)
{
    static int warned;
    const char *env = getenv("UNET3D_CONV_PATH");
    if (env && !strcmp(env, "igemm"))
        return U3D_CL_CONV_IGEMM;
    if (env && !strcmp(env, "direct"))
        return U3D_CL_CONV_DIRECT;
    if (env && env[0] && !warned) {
        warned = 1; /* once: it is read on every convolution */
        fprintf(stderr, "unet3d: UNET3D_CONV_PATH='%s' is neither 'igemm' "
                        "nor 'direct'; ignored\n", env);
    }
    int t = u3d_cl_tune(cl, "conv3d", "path", 0);
    if (t == U3D_CL_CONV_DIRECT || t == U3D_CL_CONV_IGEMM)
        return t;
    /* oclgrind calls itself a GPU: it keeps checking the direct kernels
     * unless told otherwise (tests *_igemm_*_oclgrind force this path) */
    if (cl->is_oclgrind)
        return U3D_CL_CONV_DIRECT;
    return (cl->type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR))
               ? U3D_CL_CONV_IGEMM
               : U3D_CL_CONV_DIRECT;
}

/* Tuning value `param` of pass tpass ("fwd", "data", "weight") and shape
 * bucket (conv_bucket.h): env UNET3D_CONV3D_IGEMM_<PARAM> (a whole
 * non-negative number), else the tuning rows of that pass and bucket
 * (u3d_cl_tune_at), else fallback. */
static int tune(const u3d_cl *cl, const char *tpass, const char *bucket,
                const char *param, int fallback)
{
    char name[64];
    snprintf(name, sizeof name, "UNET3D_CONV3D_IGEMM_%s", param);
    for (char *c = name; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    const char *env = getenv(name);
    if (env && env[0]) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (!*end && !errno && v >= 0 && v <= INT_MAX)
            return (int)v;
    }
    return u3d_cl_tune_at(cl, PROG, tpass, bucket, param, fallback);
}

int u3d_cl_conv_path_at(const u3d_cl *cl, const char *tpass, int cin,
                        int cout)
{
    int dev = u3d_cl_conv_path(cl);
    const char *env = getenv("UNET3D_CONV_PATH");
    int t = u3d_cl_tune(cl, "conv3d", "path", 0);
    if ((env && (!strcmp(env, "igemm") || !strcmp(env, "direct"))) ||
        t == U3D_CL_CONV_DIRECT || t == U3D_CL_CONV_IGEMM)
        return dev; /* a device-wide choice overrides the rows */
    return u3d_cl_tune_at(cl, PROG, tpass, u3d_cl_conv_bucket(cin, cout),
                          "use", dev == U3D_CL_CONV_IGEMM)
               ? U3D_CL_CONV_IGEMM
               : U3D_CL_CONV_DIRECT;
}

static const char *const PARAMS[8] = {"mwg",   "nwg", "kwg", "mdimc",
                                      "ndimc", "vwm", "vwn", "lpad"};

u3d_igemm_cfg u3d_cl_igemm_config_at(const u3d_cl *cl, u3d_igemm_pass pass,
                                     const char *tpass, const char *bucket)
{
    static const int def[2][8] = {{64, 64, 16, 8, 16, 4, 4, 1},
                                  {32, 64, 16, 8, 16, 4, 4, 1}};
    int v[8];
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%s", pass == U3D_IGEMM_BWW ? "bw_" : "",
                 PARAMS[i]);
        v[i] = tune(cl, tpass, bucket, name, def[pass][i]);
    }
    u3d_igemm_cfg c = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    return c;
}

u3d_igemm_cfg u3d_cl_igemm_config(const u3d_cl *cl, u3d_igemm_pass pass)
{
    return u3d_cl_igemm_config_at(cl, pass, U3D_TUNE_ANY, U3D_TUNE_ANY);
}

static int is_width(int v)
{
    return v == 1 || v == 2 || v == 4 || v == 8 || v == 16;
}

/* The device's limits for valid(): work-group size, item sizes, local
 * memory. */
static void device_limits(const u3d_cl *cl, size_t item[3], cl_ulong *lmem)
{
    item[0] = item[1] = item[2] = cl->max_wg;
    *lmem = 0;
    clGetDeviceInfo(cl->device, CL_DEVICE_MAX_WORK_ITEM_SIZES,
                    3 * sizeof(size_t), item, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof *lmem, lmem,
                    NULL);
}

int u3d_cl_igemm_valid(const u3d_cl *cl, u3d_igemm_pass pass,
                       const u3d_igemm_cfg *c, int taps, char *why,
                       size_t nwhy)
{
    char tmp[8];
    if (!why) {
        why = tmp;
        nwhy = sizeof tmp;
    }
    if (c->mwg < 1 || c->nwg < 1 || c->kwg < 1 || c->mdimc < 1 ||
        c->ndimc < 1 || c->lpad < 0 || taps < 1)
        return snprintf(why, nwhy, "sizes must be positive"), 0;
    if (c->mwg % c->mdimc || c->nwg % c->ndimc)
        return snprintf(why, nwhy, "MWG %% MDIMC and NWG %% NDIMC must be 0"),
               0;
    if ((c->mwg / c->mdimc) * (c->nwg / c->ndimc) > 256)
        return snprintf(why, nwhy, "register tile over 256 floats"), 0;
    if (!is_width(c->vwm) || !is_width(c->vwn))
        return snprintf(why, nwhy, "VWM, VWN must be 1, 2, 4, 8 or 16"), 0;
    int dm = pass == U3D_IGEMM_FWD ? c->mwg : c->kwg;
    int dn = pass == U3D_IGEMM_FWD ? c->nwg : c->kwg;
    if (dm % c->vwm || dn % c->vwn)
        return snprintf(why, nwhy, "%s must be a multiple of VWM and %s of "
                        "VWN", pass == U3D_IGEMM_FWD ? "MWG" : "KWG",
                        pass == U3D_IGEMM_FWD ? "NWG" : "KWG"), 0;
    /* vectors staged per K step: every work-item loads in every round */
    int wgs = c->mdimc * c->ndimc;
    int la = pass == U3D_IGEMM_FWD ? c->kwg * (c->mwg / c->vwm)
                                   : c->mwg * (c->kwg / c->vwm);
    int lb = pass == U3D_IGEMM_FWD ? c->kwg * (c->nwg / c->vwn)
                                   : c->nwg * (c->kwg / c->vwn);
    if (la % wgs || lb % wgs)
        return snprintf(why, nwhy, "the vectors of a tile load (%d of A, %d "
                        "of B) must be multiples of MDIMC*NDIMC = %d", la, lb,
                        wgs), 0;
    size_t item[3];
    cl_ulong lmem;
    device_limits(cl, item, &lmem);
    size_t wg = (size_t)c->mdimc * (size_t)c->ndimc;
    if ((cl->max_wg && wg > cl->max_wg) || (size_t)c->ndimc > item[0] ||
        (size_t)c->mdimc > item[1])
        return snprintf(why, nwhy, "work-group %dx%d over the device's "
                        "limit %zu", c->ndimc, c->mdimc, cl->max_wg), 0;
    double need = 4.0 * ((double)c->kwg * (c->mwg + c->lpad) +
                         (double)c->kwg * (c->nwg + c->lpad) + 2.0 * taps);
    if (need > (double)lmem)
        return snprintf(why, nwhy, "%.0f bytes of local memory, the device "
                        "has %llu", need, (unsigned long long)lmem), 0;
    return 1;
}

/* The configuration of a pass, checked; the error names the variables. */
static u3d_status config(const u3d_cl *cl, u3d_igemm_pass pass,
                         const char *tpass, const char *bucket, int taps,
                         u3d_igemm_cfg *c, u3d_error *err)
{
    char why[160];
    *c = u3d_cl_igemm_config_at(cl, pass, tpass, bucket);
    if (!u3d_cl_igemm_valid(cl, pass, c, taps, why, sizeof why))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "conv3d igemm: the %s tile parameters (MWG %d NWG "
                          "%d KWG %d MDIMC %d NDIMC %d VWM %d VWN %d LPAD "
                          "%d) are not valid on %s: %s; fix the "
                          "UNET3D_CONV3D_IGEMM_%s* variables or the tuning",
                          pass == U3D_IGEMM_FWD ? "forward"
                                                : "weight-gradient",
                          c->mwg, c->nwg, c->kwg, c->mdimc, c->ndimc, c->vwm,
                          c->vwn, c->lpad, cl->device_name, why,
                          pass == U3D_IGEMM_FWD ? "" : "BW_");
    return U3D_OK;
}

/* geometry of one launch: a slab of output planes and the padded input
 * planes it reads (see conv_geom in conv3d.c) */
typedef struct ig_geom {
    int n, cin, cout, kd, kh, kw;
    int pd, ph, pw;       /* zero padding of the input */
    int dp, hp, wp;       /* padded input */
    int dout, hout, wout; /* output */
} ig_geom;

static int taps_of(const ig_geom *g) { return g->kd * g->kh * g->kw; }
static int padded(const ig_geom *g) { return g->pd || g->ph || g->pw; }

static int geom_lq(const ig_geom *g)
{
    return ((g->dout - 1) * g->hp + g->hout - 1) * g->wp + g->wout;
}

/* src read with zero padding pad[] (Hp = H + ph, Wp = W + pw: one border
 * shared between rows and between planes, and a spare plane for the reads
 * that wrap past the last row: conv_full in conv3d.c, per axis). */
static ig_geom geom_full(u3d_shape s, const int k[3], const int pad[3],
                         u3d_shape out)
{
    int spare = pad[1] > 0 || pad[2] > 0;
    ig_geom g = {s.n,    s.c,    out.c,  k[0],  k[1],  k[2],
                 pad[0], pad[1], pad[2], s.d + 2 * pad[0] + spare,
                 s.h + pad[1], s.w + pad[2], out.d, out.h, out.w};
    return g;
}

static ig_geom geom_slab(const ig_geom *full, int z0, int S)
{
    ig_geom g = *full;
    g.dout = full->dout - z0 < S ? full->dout - z0 : S;
    g.dp = g.dout + (full->dp - full->dout);
    return g;
}

/* Output planes per slab within the "slab_kb" budget, balanced (as
 * slab_planes in conv3d.c). */
static int slab_planes(const u3d_cl *cl, size_t plane_floats, int extra,
                       int dout)
{
    size_t budget =
        (size_t)tune(cl, U3D_TUNE_ANY, U3D_TUNE_ANY, "slab_kb", 1 << 18) *
        1024 / 4;
    size_t fit = plane_floats ? budget / plane_floats : (size_t)dout;
    int s = fit > (size_t)extra + (size_t)dout ? dout : (int)fit - extra;
    if (s < 2 * extra)
        s = 2 * extra;
    if (s < 1)
        s = 1;
    return ceil_div(dout, ceil_div(dout, s));
}

static u3d_status check_size(const char *op, size_t count, u3d_error *err)
{
    if (count > (size_t)INT_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: a tensor of %zu elements exceeds the 2^31 "
                          "limit of the OpenCL kernels; use a smaller patch",
                          op, count);
    return U3D_OK;
}

static u3d_status scratch(u3d_backend *be, int slot, size_t floats,
                          cl_mem *out, u3d_error *err)
{
    *out = NULL;
    return u3d_cl_scratch(u3d_cl_of(be), slot,
                          (floats ? floats : 1) * sizeof(float), out, err);
}

static u3d_status set_mems(cl_kernel k, const cl_mem *m, int nm,
                           u3d_error *err)
{
    for (int i = 0; i < nm; i++)
        U3D_TRY(u3d_cl_check(clSetKernelArg(k, (cl_uint)i, sizeof m[i],
                                            &m[i]),
                             "clSetKernelArg", err));
    return U3D_OK;
}

static u3d_status set_ints(cl_kernel k, cl_uint first, const int *v, int nv,
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

static void build_options(const ig_geom *g, const u3d_igemm_cfg *c, int relu,
                          char *opts, size_t n)
{
    snprintf(opts, n,
             "-DKD=%d -DKH=%d -DKW=%d -DMWG=%d -DNWG=%d -DKWG=%d -DMDIMC=%d "
             "-DNDIMC=%d -DVWM=%d -DVWN=%d -DLPAD=%d -DRELU=%d",
             g->kd, g->kh, g->kw, c->mwg, c->nwg, c->kwg, c->mdimc, c->ndimc,
             c->vwm, c->vwn, c->lpad, relu);
}

/* Kernel `name` of the igemm program for this geometry and tiles. */
static u3d_status get_kernel(u3d_cl *cl, const char *name, const ig_geom *g,
                             const u3d_igemm_cfg *c, int relu, cl_kernel *k,
                             u3d_error *err)
{
    char opts[256];
    build_options(g, c, relu, opts, sizeof opts);
    return u3d_cl_kernel_get(cl, PROG, name, opts, k, err);
}

/* A GEMM kernel: refuses tiles larger than what the compiled kernel can
 * run (its register use may lower the device's work-group limit). */
static u3d_status get_gemm(u3d_cl *cl, const char *name, const ig_geom *g,
                           const u3d_igemm_cfg *c, int relu, cl_kernel *k,
                           u3d_error *err)
{
    U3D_TRY(get_kernel(cl, name, g, c, relu, k, err));
    size_t kmax = 0;
    if (clGetKernelWorkGroupInfo(*k, cl->device, CL_KERNEL_WORK_GROUP_SIZE,
                                 sizeof kmax, &kmax, NULL) == CL_SUCCESS &&
        kmax > 0 && (size_t)c->mdimc * c->ndimc > kmax)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "conv3d igemm: %s runs at most %zu work-items per "
                          "group on %s, the tiles ask for %d; lower MDIMC or "
                          "NDIMC (UNET3D_CONV3D_IGEMM_*)",
                          name, kmax, cl->device_name, c->mdimc * c->ndimc);
    return U3D_OK;
}

/* Work-group size of the simple element-wise launches. */
static size_t small_lws(const u3d_cl *cl, size_t work)
{
    size_t l = 64;
    if (cl->max_wg > 0 && l > cl->max_wg)
        l = cl->max_wg;
    return work > 0 && l > work ? work : l;
}

/* dst (n, cd, g's slab) = src (n, cs, d, h, w) shifted by g's padding and
 * by zoff planes, zero outside src and for channels >= cs: one work-item
 * per element (conv3d_igemm_embed). */
static u3d_status embed(u3d_cl *cl, const ig_geom *g, const u3d_igemm_cfg *c,
                        cl_mem src, cl_mem dst, u3d_shape s, int cd, int dd,
                        int zoff, int shift, u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(get_kernel(cl, "conv3d_igemm_embed", g, c, 0, &k, err));
    size_t total = (size_t)s.n * cd * dd * g->hp * g->wp;
    U3D_TRY(check_size("conv3d padding", total, err));
    int a[] = {s.c,  cd,   s.d,  s.h,  s.w,  dd,    g->hp,
               g->wp, shift ? g->pd : 0, shift ? g->ph : 0,
               shift ? g->pw : 0, zoff, (int)total};
    cl_mem m[] = {src, dst};
    U3D_TRY(set_mems(k, m, 2, err));
    U3D_TRY(set_ints(k, 2, a, 13, err));
    size_t l = small_lws(cl, total);
    return u3d_cl_launch(cl, k, "conv3d_igemm_embed", 1, &total, &l, err);
}

/* ---- forward and data gradient ------------------------------------- */

/* Rearranged weights: K (Cin * taps) and M (Cout) padded to whole tiles. */
static void wa_dims(const ig_geom *g, const u3d_igemm_cfg *c, int *kp,
                    int *mp)
{
    *kp = ceil_div(g->cin * taps_of(g), c->kwg) * c->kwg;
    *mp = ceil_div(g->cout, c->mwg) * c->mwg;
}

static u3d_status fwd_weights(u3d_backend *be, const ig_geom *g,
                              const u3d_igemm_cfg *c, int relu, cl_mem w,
                              int flip, cl_mem *wa, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    int kp, mp;
    wa_dims(g, c, &kp, &mp);
    U3D_TRY(check_size("conv3d weights", (size_t)kp * mp, err));
    cl_kernel k;
    /* relu: from the GEMM's program, not one more build */
    U3D_TRY(get_kernel(cl, "conv3d_igemm_weights", g, c, relu, &k, err));
    U3D_TRY(scratch(be, U3D_SCRATCH_CONV_W, (size_t)kp * mp, wa, err));
    int a[] = {g->cout, g->cin, kp, mp, flip};
    cl_mem m[] = {w, *wa};
    U3D_TRY(set_mems(k, m, 2, err));
    U3D_TRY(set_ints(k, 2, a, 5, err));
    size_t gs = (size_t)kp * mp, l = small_lws(cl, gs);
    return u3d_cl_launch(cl, k, "conv3d_igemm_weights", 1, &gs, &l, err);
}

/* Where a slab's launch reads and writes (conv_io in conv3d.c). */
typedef struct ig_io {
    cl_mem x;
    int xstride, xoff;
    cl_mem y;
    int ystride, yoff;
    int skip, pz0, pz1, py0, py1; /* nonzero input planes, rows */
} ig_io;

static u3d_status fwd_launch(u3d_cl *cl, const ig_geom *g,
                             const u3d_igemm_cfg *c, int relu,
                             const ig_io *io, cl_mem wa, cl_mem bias,
                             u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(get_gemm(cl, "conv3d_igemm_fwd", g, c, relu, &k, err));
    int kp, mp, lq = geom_lq(g);
    wa_dims(g, c, &kp, &mp);
    int a[] = {g->cin,     g->cout,  mp,      g->hp,       g->wp,
               io->xstride, io->xoff, g->hout, g->wout,     io->ystride,
               io->yoff,   lq,       bias != NULL, io->skip, io->pz0,
               io->pz1,    io->py0,  io->py1};
    cl_mem m[] = {io->x, wa, bias ? bias : wa, io->y}; /* bias: unread */
    U3D_TRY(set_mems(k, m, 4, err));
    U3D_TRY(set_ints(k, 4, a, 18, err));
    size_t gs[3] = {(size_t)ceil_div(lq, c->nwg) * c->ndimc,
                    (size_t)(mp / c->mwg) * c->mdimc, (size_t)g->n};
    size_t l[3] = {(size_t)c->ndimc, (size_t)c->mdimc, 1};
    return u3d_cl_launch(cl, k, "conv3d_igemm_fwd", 3, gs, l, err);
}

/* Floats of the zero-padded input slab of S output planes (padded). */
static size_t pad_count(const ig_geom *full, int S)
{
    size_t plane = (size_t)full->n * full->cin * full->hp * full->wp;
    return plane * (size_t)(S + full->dp - full->dout);
}

/* One slab's launch: pads src into xp first when the geometry does. */
static u3d_status fwd_slab(u3d_cl *cl, const ig_geom *full,
                           const u3d_igemm_cfg *c, int relu, cten *src,
                           int z0, int S, cl_mem xp, cl_mem wa, cl_mem bias,
                           cl_mem y, u3d_error *err)
{
    u3d_shape s = src->shape;
    ig_geom g = geom_slab(full, z0, S);
    int ohw = full->hout * full->wout;
    ig_io io = {u3d_cl_mem(src), s.d * s.h * s.w, z0 * s.h * s.w,
                y, full->dout * ohw, z0 * ohw, 0, 0, INT_MAX, 0, INT_MAX};
    if (padded(&g)) {
        /* copy plane z is src plane z + z0 - pd, row y src row y - ph */
        U3D_TRY(embed(cl, &g, c, u3d_cl_mem(src), xp, s, s.c, g.dp, z0, 1,
                      err));
        io.x = xp;
        io.xstride = g.dp * g.hp * g.wp;
        io.xoff = 0;
        io.skip = 1;
        io.pz0 = g.pd - z0;
        io.pz1 = s.d + g.pd - z0;
        io.py0 = g.ph;
        io.py1 = s.h + g.ph;
    }
    return fwd_launch(cl, &g, c, relu, &io, wa, bias, err);
}

/* y (shape ys) = conv(src zero-padded by pad, w) (+ bias), slab by slab;
 * flip: w is a forward weight used for the data gradient. */
static u3d_status conv_run(u3d_backend *be, cten *src, const int k[3],
                           const int pad[3], cl_mem w, int flip, cl_mem bias,
                           int relu, cl_mem y, u3d_shape ys, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    u3d_shape s = src->shape;
    ig_geom full = geom_full(s, k, pad, ys);
    u3d_igemm_cfg c;
    U3D_TRY(config(cl, U3D_IGEMM_FWD, flip ? "data" : "fwd",
                   u3d_cl_conv_bucket(full.cin, full.cout), taps_of(&full),
                   &c, err));
    size_t plane = (size_t)s.n * s.c * full.hp * full.wp;
    int S = slab_planes(cl, plane, full.dp - ys.d, ys.d);
    cl_mem wa, xp = NULL;
    U3D_TRY(fwd_weights(be, &full, &c, relu, w, flip, &wa, err));
    if (padded(&full)) {
        U3D_TRY(check_size("conv3d padding", pad_count(&full, S), err));
        U3D_TRY(scratch(be, U3D_SCRATCH_CONV_X, pad_count(&full, S), &xp,
                        err));
    }
    for (int z0 = 0; z0 < ys.d; z0 += S)
        U3D_TRY(fwd_slab(cl, &full, &c, relu, src, z0, S, xp, wa, bias, y,
                         err));
    return U3D_OK;
}

/* The convolution's output size along an axis. */
static int out_size(int in, int k, int pad) { return in + 2 * pad - k + 1; }

u3d_status u3d_cl_igemm_conv_forward(u3d_backend *be, const u3d_igemm_conv *cv,
                                     cten *x, cten *w, cten *b, u3d_tensor *y,
                                     u3d_error *err)
{
    U3D_TRY(check_size("conv3d forward", u3d_shape_count(x->shape), err));
    U3D_TRY(check_size("conv3d forward", u3d_shape_count(y->shape), err));
    return conv_run(be, x, cv->k, cv->pad, u3d_cl_mem(w), 0,
                    b ? u3d_cl_mem(b) : NULL, cv->relu, u3d_cl_mem(y),
                    y->shape, err);
}

u3d_status u3d_cl_igemm_conv_backward_data(u3d_backend *be,
                                           const u3d_igemm_conv *cv,
                                           cten *dy, cten *w, u3d_tensor *dx,
                                           u3d_error *err)
{
    U3D_TRY(check_size("conv3d backward-data", u3d_shape_count(dx->shape),
                       err));
    U3D_TRY(check_size("conv3d backward-data", u3d_shape_count(dy->shape),
                       err));
    /* dx = full correlation of dy with the flipped kernel */
    int pad[3];
    for (int a = 0; a < 3; a++)
        pad[a] = cv->k[a] - 1 - cv->pad[a];
    return conv_run(be, dy, cv->k, pad, u3d_cl_mem(w), 1, NULL, 0,
                    u3d_cl_mem(dx), dx->shape, err);
}

/* The public op's parameters per axis (cubic or kernel3). */
static u3d_igemm_conv cubic(const u3d_conv3d_params *p)
{
    u3d_igemm_conv cv = {{0}, {0}, p->relu};
    u3d_conv3d_axes(p, cv.k, cv.pad);
    return cv;
}

u3d_status u3d_cl_igemm_forward(u3d_backend *be, const u3d_conv3d_params *p,
                                cten *x, cten *w, cten *b, u3d_tensor *y,
                                u3d_error *err)
{
    u3d_igemm_conv cv = cubic(p);
    return u3d_cl_igemm_conv_forward(be, &cv, x, w, b, y, err);
}

u3d_status u3d_cl_igemm_backward_data(u3d_backend *be,
                                      const u3d_conv3d_params *p, cten *dy,
                                      cten *w, u3d_tensor *dx, u3d_error *err)
{
    u3d_igemm_conv cv = cubic(p);
    return u3d_cl_igemm_conv_backward_data(be, &cv, dy, w, dx, err);
}

/* The forward scratch (what the inference plan holds): rearranged weights
 * and padded input slab, each slot grown to under twice its largest
 * request (see u3d_cl_conv3d_scratch_bytes in conv3d.c). */
size_t u3d_cl_igemm_scratch_bytes(u3d_backend *be, int n,
                                  const u3d_conv3d_params *p,
                                  const u3d_shape *x, const u3d_shape *w)
{
    const u3d_cl *cl = u3d_cl_of(be);
    size_t wmax = 0, xmax = 0;
    for (int i = 0; i < n; i++) {
        u3d_igemm_cfg c = u3d_cl_igemm_config_at(
            cl, U3D_IGEMM_FWD, "fwd", u3d_cl_conv_bucket(x[i].c, w[i].n));
        u3d_igemm_conv cv = cubic(&p[i]);
        u3d_shape ys = u3d_shape5(x[i].n, w[i].n,
                                  out_size(x[i].d, cv.k[0], cv.pad[0]),
                                  out_size(x[i].h, cv.k[1], cv.pad[1]),
                                  out_size(x[i].w, cv.k[2], cv.pad[2]));
        if (ys.d < 1 || ys.h < 1 || ys.w < 1 || c.kwg < 1 || c.mwg < 1)
            continue;
        ig_geom full = geom_full(x[i], cv.k, cv.pad, ys);
        size_t plane = (size_t)x[i].n * x[i].c * full.hp * full.wp;
        int S = slab_planes(cl, plane, full.dp - ys.d, ys.d), kp, mp;
        wa_dims(&full, &c, &kp, &mp);
        size_t wa = (size_t)kp * mp;
        size_t xp = padded(&full) ? pad_count(&full, S) : 0;
        wmax = wa > wmax ? wa : wmax;
        xmax = xp > xmax ? xp : xmax;
    }
    return 2 * sizeof(float) * (wmax + xmax);
}

/* ---- weight gradient ------------------------------------------------ */

/* Split-K of one slab: chunks per sample nq of qchunk positions. */
typedef struct bw_split {
    int nq, qchunk, nch;
} bw_split;

static bw_split bw_choose(const u3d_cl *cl, const ig_geom *g,
                          const u3d_igemm_cfg *c)
{
    bw_split s;
    int lq = geom_lq(g);
    long groups = (long)ceil_div(g->cin * taps_of(g), c->nwg) *
                  ceil_div(g->cout, c->mwg) * g->n;
    const char *b = u3d_cl_conv_bucket(g->cin, g->cout);
    long want = tune(cl, "weight", b, "bw_groups", 256);
    int minchunk = tune(cl, "weight", b, "bw_minchunk", 4096);
    int maxsplit = tune(cl, "weight", b, "bw_maxsplit", 64);
    int nq = (int)((want + groups - 1) / groups);
    int nqmax = ceil_div(lq, minchunk < 1 ? 1 : minchunk);
    if (nq > nqmax)
        nq = nqmax;
    if (nq > maxsplit)
        nq = maxsplit;
    if (nq < 1)
        nq = 1;
    /* chunks of whole K steps, so only the last one has an edge */
    s.qchunk = ceil_div(ceil_div(lq, nq), c->kwg) * c->kwg;
    s.nq = ceil_div(lq, s.qchunk);
    s.nch = s.nq * g->n;
    return s;
}

/* Buffers of the weight gradient. */
typedef struct bw_bufs {
    cl_mem x, dyq;
    int xstride, xoff;
    cl_mem part, bpart; /* partial sums of dw and db per chunk */
    int pstride, boff;  /* floats per chunk, db's first element */
    int ch0;            /* first chunk of this slab */
} bw_bufs;

static u3d_status bw_launch(u3d_cl *cl, const ig_geom *g,
                            const u3d_igemm_cfg *c, const bw_split *s,
                            const bw_bufs *b, int with_bias, u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(get_gemm(cl, "conv3d_igemm_bww", g, c, 0, &k, err));
    int sq = g->dout * g->hp * g->wp;
    int a[] = {g->cin, g->cout, g->hp, g->wp, b->xstride, b->xoff,
               sq,     geom_lq(g), s->nq, s->qchunk, b->pstride, b->boff,
               b->ch0, with_bias};
    cl_mem m[] = {b->x, b->dyq, b->part, b->bpart ? b->bpart : b->part};
    U3D_TRY(set_mems(k, m, 4, err));
    U3D_TRY(set_ints(k, 4, a, 14, err));
    size_t gs[3] = {(size_t)ceil_div(g->cin * taps_of(g), c->nwg) * c->ndimc,
                    (size_t)ceil_div(g->cout, c->mwg) * c->mdimc,
                    (size_t)s->nch};
    size_t l[3] = {(size_t)c->ndimc, (size_t)c->mdimc, 1};
    return u3d_cl_launch(cl, k, "conv3d_igemm_bww", 3, gs, l, err);
}

/* One slab: pads x (when padded), embeds dy in the padded geometry (zero
 * at positions that are not output voxels), then its chunks' sums. */
static u3d_status bw_slab(u3d_cl *cl, const ig_geom *g, int z0, cten *x,
                          cten *dy, const u3d_igemm_cfg *c, const bw_split *s,
                          cl_mem xp, bw_bufs *b, int with_bias,
                          u3d_error *err)
{
    u3d_shape xs = x->shape, ys = dy->shape;
    if (padded(g)) {
        U3D_TRY(embed(cl, g, c, u3d_cl_mem(x), xp, xs, xs.c, g->dp, z0, 1,
                      err));
        b->x = xp;
        b->xstride = g->dp * g->hp * g->wp;
        b->xoff = 0;
    } else {
        b->x = u3d_cl_mem(x);
        b->xstride = xs.d * xs.h * xs.w;
        b->xoff = z0 * xs.h * xs.w;
    }
    U3D_TRY(embed(cl, g, c, u3d_cl_mem(dy), b->dyq, ys, ys.c, g->dout, z0, 0,
                  err));
    return bw_launch(cl, g, c, s, b, with_bias, err);
}

/* out = the sum over chunks of part, in chunk order: conv3d_reduce. */
static u3d_status reduce(u3d_cl *cl, cl_mem part, cl_mem dw, cl_mem db,
                         int nw, int ne, int nch, u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "conv3d", "conv3d_reduce", NULL, &k, err));
    int a[] = {nw, ne, nch, ne};
    cl_mem m[] = {part, dw, db ? db : dw}; /* db unused without bias */
    U3D_TRY(set_mems(k, m, 3, err));
    U3D_TRY(set_ints(k, 3, a, 4, err));
    size_t g = (size_t)ne, l = small_lws(cl, g);
    return u3d_cl_launch(cl, k, "conv3d_reduce", 1, &g, &l, err);
}

/* Scratch of the weight gradient: padded x and dy slabs, partials. */
static u3d_status bw_buffers(u3d_backend *be, size_t xcount, size_t qcount,
                             int nch, int ne, cl_mem dw, cl_mem db,
                             cl_mem *xp, bw_bufs *b, u3d_error *err)
{
    U3D_TRY(check_size("conv3d backward-weight", xcount, err));
    U3D_TRY(check_size("conv3d backward-weight", qcount, err));
    U3D_TRY(check_size("conv3d backward-weight", (size_t)nch * ne, err));
    if (xcount)
        U3D_TRY(scratch(be, U3D_SCRATCH_CONV_X, xcount, xp, err));
    U3D_TRY(scratch(be, U3D_SCRATCH_CONV_DY, qcount, &b->dyq, err));
    if (nch == 1) { /* one chunk: the sums go straight to dw, db */
        b->part = dw;
        b->bpart = db;
        return U3D_OK;
    }
    U3D_TRY(scratch(be, U3D_SCRATCH_CONV_PART, (size_t)nch * ne, &b->part,
                    err));
    b->bpart = b->part;
    b->pstride = ne; /* db from element nw of each chunk: the caller */
    return U3D_OK;
}

u3d_status u3d_cl_igemm_conv_backward_weight(u3d_backend *be,
                                             const u3d_igemm_conv *cv,
                                             cten *x, cten *dy, u3d_tensor *dw,
                                             u3d_tensor *db, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    u3d_shape xs = x->shape, ys = dy->shape;
    U3D_TRY(check_size("conv3d backward-weight", u3d_shape_count(xs), err));
    U3D_TRY(check_size("conv3d backward-weight", u3d_shape_count(ys), err));
    ig_geom full = geom_full(xs, cv->k, cv->pad, ys);
    u3d_igemm_cfg c;
    U3D_TRY(config(cl, U3D_IGEMM_BWW, "weight",
                   u3d_cl_conv_bucket(full.cin, full.cout), taps_of(&full),
                   &c, err));
    size_t xplane =
        padded(&full) ? (size_t)xs.n * xs.c * full.hp * full.wp : 0;
    size_t qplane = (size_t)ys.n * ys.c * full.hp * full.wp;
    int extra = xplane ? full.dp - ys.d : 0; /* more x than dy planes */
    int S = slab_planes(cl, xplane + qplane, extra, ys.d);
    int nw = ys.c * xs.c * taps_of(&full), ne = nw + (db ? ys.c : 0);
    int nch = 0; /* chunks over all slabs */
    for (int z0 = 0; z0 < ys.d; z0 += S) {
        ig_geom g = geom_slab(&full, z0, S);
        nch += bw_choose(cl, &g, &c).nch;
    }
    cl_mem xp = NULL;
    bw_bufs b = {0};
    U3D_TRY(bw_buffers(be, xplane * (size_t)(S + extra), qplane * S, nch, ne,
                       u3d_cl_mem(dw), db ? u3d_cl_mem(db) : NULL, &xp, &b,
                       err));
    if (nch > 1)
        b.boff = nw;
    for (int z0 = 0; z0 < ys.d; z0 += S) {
        ig_geom g = geom_slab(&full, z0, S);
        bw_split s = bw_choose(cl, &g, &c);
        U3D_TRY(bw_slab(cl, &g, z0, x, dy, &c, &s, xp, &b, db != NULL, err));
        b.ch0 += s.nch;
    }
    if (nch > 1)
        U3D_TRY(reduce(cl, b.part, u3d_cl_mem(dw), db ? u3d_cl_mem(db) : NULL,
                       nw, ne, nch, err));
    return U3D_OK;
}

u3d_status u3d_cl_igemm_backward_weight(u3d_backend *be,
                                        const u3d_conv3d_params *p, cten *x,
                                        cten *dy, u3d_tensor *dw,
                                        u3d_tensor *db, u3d_error *err)
{
    u3d_igemm_conv cv = cubic(p);
    return u3d_cl_igemm_conv_backward_weight(be, &cv, x, dy, dw, db, err);
}
