/* Transposed conv 2x2x2 stride 2 on OpenCL (cl/upconv3d.cl); other factors
 * (1x2x2 for anisotropic levels) on scalar kernels of the same file.
 * Tile sizes come from the tuning table (family "upconv3d") and are compiled
 * in as -D options. Backward-weight splits the voxel sum into chunks written
 * to a scratch buffer, then sums the chunks in order (deterministic).
 *
 * The GEMM path: with T taps an up-convolution is a 1x1x1 convolution
 * with T*Cout output channels (weights w viewed as Ci x T*Cout) followed
 * by a shuffle of those channels into the up-sampled volume. Forward is
 * then the convolution's data gradient (which reads its weights
 * transposed), backward-data its forward on the unshuffled dy, and the
 * weight gradient its weight gradient with x and dy in swapped roles:
 * all three run on the tuned convolution kernels, which on CPUs were
 * 2-6x the dedicated kernels (few voxels, many channels: those kernels
 * stream the whole weight tensor per voxel group). Chosen per layer by
 * use_gemm. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/conv3d_wino.h"
#include "backends/opencl/opencl.h"

#define PROG "upconv3d"
#define LWS0 64 /* lanes along W for forward / backward-data */

/* Sets kernel argument i of k unless st already holds an error (for paths
 * that must free a scratch buffer whatever happens). */
#define ARG(i, v)                                                              \
    if (!st)                                                                   \
    st = u3d_cl_check(clSetKernelArg(k, i, sizeof(v), &(v)),                   \
                      "clSetKernelArg(" #v ")", err)

/* Tile parameters of one device, read once per call (cheap table lookup). */
typedef struct upconv_tiles {
    int fw_tco, fw_tp, bd_tci, bw_tci, bw_tco, bw_lws;
    char opts[256];
} upconv_tiles;

static int pow2_floor(size_t v)
{
    int p = 1;
    while ((size_t)p * 2 <= v && p < (1 << 20))
        p *= 2;
    return p;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static upconv_tiles tiles_of(const u3d_cl *cl)
{
    upconv_tiles t;
    t.fw_tco = clampi(u3d_cl_tune(cl, PROG, "fw_tco", 4), 1, 16);
    t.fw_tp = clampi(u3d_cl_tune(cl, PROG, "fw_tp", 2), 1, 4);
    t.bd_tci = clampi(u3d_cl_tune(cl, PROG, "bd_tci", 8), 1, 32);
    t.bw_tci = clampi(u3d_cl_tune(cl, PROG, "bw_tci", 8), 1, 16);
    t.bw_tco = clampi(u3d_cl_tune(cl, PROG, "bw_tco", 2), 1, 16);
    /* the split-K kernels need a power-of-two work-group the device takes */
    int lws = pow2_floor(
        (size_t)clampi(u3d_cl_tune(cl, PROG, "bw_lws", 64), 1, 1024));
    t.bw_lws = lws <= (int)cl->max_wg ? lws : pow2_floor(cl->max_wg);
    snprintf(t.opts, sizeof t.opts,
             "-DFW_TCO=%d -DFW_TP=%d -DBD_TCI=%d -DBW_TCI=%d -DBW_TCO=%d "
             "-DBW_LWS=%d",
             t.fw_tco, t.fw_tp, t.bd_tci, t.bw_tci, t.bw_tco, t.bw_lws);
    return t;
}

/* Kernels index with 32-bit integers; y is the largest tensor. */
static u3d_status fits_u32(u3d_shape ys, u3d_shape xs, const char *op,
                           u3d_error *err)
{
    if (u3d_shape_count(ys) >= UINT32_MAX / 2 ||
        u3d_shape_count(xs) >= UINT32_MAX / 2)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: tensors of 2^31 or more elements are not "
                          "supported; use a smaller patch",
                          op);
    return U3D_OK;
}

static u3d_status get_kernel(u3d_cl *cl, const upconv_tiles *t,
                             const char *name, cl_kernel *k, size_t *max_wg,
                             u3d_error *err)
{
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, name, t->opts, k, err));
    U3D_TRY(u3d_cl_check(clGetKernelWorkGroupInfo(*k, cl->device,
                                                  CL_KERNEL_WORK_GROUP_SIZE,
                                                  sizeof *max_wg, max_wg, NULL),
                         "clGetKernelWorkGroupInfo", err));
    return U3D_OK;
}

/* Launches a forward / backward-data kernel over (W-groups x H x D, channel
 * tiles, N) with work-groups along W. */
static u3d_status launch_lanes(u3d_cl *cl, cl_kernel k, size_t max_wg,
                               const char *name, u3d_shape xs, int tp,
                               int ctiles, u3d_error *err)
{
    size_t xg = (size_t)((xs.w + tp - 1) / tp);
    size_t g[3] = {xg * (size_t)xs.h * (size_t)xs.d, (size_t)ctiles,
                   (size_t)xs.n};
    size_t l[3] = {max_wg < LWS0 ? max_wg : LWS0, 1, 1};
    return u3d_cl_launch(cl, k, name, 3, g, l, err);
}

static u3d_status set_dims(cl_kernel k, cl_uint first, int cin, int cout,
                           u3d_shape xs, u3d_error *err)
{
    cl_uint v[6] = {(cl_uint)cin,  (cl_uint)cout, (cl_uint)xs.d,
                    (cl_uint)xs.h, (cl_uint)xs.w, (cl_uint)xs.n};
    for (cl_uint i = 0; i < 6; i++)
        U3D_ARG(k, first + i, v[i], err);
    return U3D_OK;
}

/* Factors other than 2x2x2 (the weight's spatial size, 1x2x2 for
 * anisotropic levels) run the scalar kernels of cl/upconv3d.cl: one
 * work-item per output value over `items`, planes along dim 1. */
static int is_2x2x2(u3d_shape ws)
{
    return ws.d == 2 && ws.h == 2 && ws.w == 2;
}

/* Sets the dimension arguments v[0..nv) from `first` on and launches
 * `items` work-items (rounded up to whole work-groups) x `planes`. */
static u3d_status launch_any(u3d_cl *cl, cl_kernel k, const char *name,
                             cl_uint first, const cl_uint *v, int nv,
                             size_t items, size_t planes, u3d_error *err)
{
    for (int i = 0; i < nv; i++)
        U3D_ARG(k, first + (cl_uint)i, v[i], err);
    size_t lws = 64, kmax = 0;
    if (clGetKernelWorkGroupInfo(k, cl->device, CL_KERNEL_WORK_GROUP_SIZE,
                                 sizeof kmax, &kmax, NULL) == CL_SUCCESS &&
        kmax > 0 && kmax < lws)
        lws = kmax;
    if (cl->max_wg > 0 && lws > cl->max_wg)
        lws = cl->max_wg;
    size_t g[2] = {(items + lws - 1) / lws * lws, planes}, l[2] = {lws, 1};
    return u3d_cl_launch(cl, k, name, 2, g, l, err);
}

/* Cin, Cout, D, H, W of the input x, then the factor per axis. */
static int dims_any(cl_uint *v, int cin, int cout, u3d_shape xs, u3d_shape ws)
{
    cl_uint a[8] = {(cl_uint)cin,  (cl_uint)cout, (cl_uint)xs.d,
                    (cl_uint)xs.h, (cl_uint)xs.w, (cl_uint)ws.d,
                    (cl_uint)ws.h, (cl_uint)ws.w};
    memcpy(v, a, sizeof a);
    return 8;
}

/* The GEMM path for cin -> cout channels: UNET3D_UPCONV_PATH (gemm or
 * direct), else from min(cin, cout) >= the "gemm_from" tuning value.
 * Default on CPUs 32, where it was measured (PoCL: 128 and 512 channels
 * 1.3-4.3x the dedicated kernels, the small preset's 32 and 64 a 6 %
 * faster iteration; 16 not measured); on GPUs the dedicated kernels, not
 * yet measured against the implicit GEMM there. */
static u3d_status use_gemm(const u3d_cl *cl, int cin, int cout, int *gemm,
                           u3d_error *err)
{
    const char *env = getenv("UNET3D_UPCONV_PATH");
    if (env && env[0]) {
        if (strcmp(env, "gemm") && strcmp(env, "direct"))
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "UNET3D_UPCONV_PATH='%s': use 'gemm' or "
                              "'direct' (or unset it)", env);
        *gemm = !strcmp(env, "gemm");
        return U3D_OK;
    }
    int gpu = (cl->type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) &&
              !cl->is_oclgrind;
    int from = u3d_cl_tune(cl, PROG, "gemm_from", gpu ? INT32_MAX : 32);
    *gemm = (cin < cout ? cin : cout) >= from;
    return U3D_OK;
}

/* The weights as the 1x1x1 convolution's (Ci outputs, T*Cout inputs). */
static u3d_tensor gemm_weights(cten *w)
{
    u3d_tensor t = *w;
    t.shape = u3d_shape5(w->shape.n, w->shape.c * w->shape.d * w->shape.h *
                                         w->shape.w, 1, 1, 1);
    return t;
}

/* A T*Cout-channel tensor of x's voxels in the backend's scratch slot
 * (kept between calls: a fresh buffer per call cost its page faults). */
static u3d_status gemm_temp(u3d_backend *be, u3d_shape xs, u3d_shape ws,
                            u3d_tensor *q, u3d_error *err)
{
    memset(q, 0, sizeof *q);
    q->shape = u3d_shape5(xs.n, ws.c * ws.d * ws.h * ws.w, xs.d, xs.h, xs.w);
    q->dtype = U3D_F32;
    q->be = be;
    cl_mem m;
    U3D_TRY(u3d_cl_scratch(u3d_cl_of(be), U3D_SCRATCH_UP_Q,
                           u3d_shape_count(q->shape) * sizeof(float), &m,
                           err));
    q->buf = m;
    return U3D_OK;
}

/* Launches upconv3d_shuffle (q -> y, plus bias) or upconv3d_unshuffle
 * (dy -> q) over the D*H rows of x's shape xs for every (n, co). */
static u3d_status gemm_move(u3d_cl *cl, int shuffle, cl_mem q, cl_mem y,
                            cl_mem bias, u3d_shape xs, u3d_shape ws,
                            u3d_error *err)
{
    const char *name = shuffle ? "upconv3d_shuffle" : "upconv3d_unshuffle";
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, PROG, name, NULL, &k, err));
    cl_uint i = 0;
    if (shuffle) {
        cl_int has_bias = bias != NULL;
        cl_mem bm = bias ? bias : q; /* never read without a bias */
        cl_uint cout = (cl_uint)ws.c;
        U3D_ARG(k, i++, q, err);
        U3D_ARG(k, i++, bm, err);
        U3D_ARG(k, i++, has_bias, err);
        U3D_ARG(k, i++, y, err);
        U3D_ARG(k, i++, cout, err);
    } else {
        U3D_ARG(k, i++, y, err);
        U3D_ARG(k, i++, q, err);
    }
    cl_uint v[6] = {(cl_uint)xs.d, (cl_uint)xs.h, (cl_uint)xs.w,
                    (cl_uint)ws.d, (cl_uint)ws.h, (cl_uint)ws.w};
    /* work-groups of 1, 8 and 64 rows measured alike on PoCL */
    return launch_any(cl, k, name, i, v, 6, (size_t)xs.d * (size_t)xs.h,
                      (size_t)xs.n * (size_t)ws.c, err);
}

/* The GEMM path's forward holds the q slot (grown to under twice the
 * largest request, see u3d_cl_scratch) and the scratch of its 1x1x1
 * convolutions (counted apart from the network's 3x3x3 ones: an upper
 * bound, the slots are shared). */
size_t u3d_cl_upconv3d_scratch_bytes(u3d_backend *be, int n,
                                     const u3d_shape *x, const u3d_shape *w)
{
    u3d_conv3d_params p[64];
    u3d_shape cx[64], cw[64];
    size_t qmax = 0;
    int nc = 0;
    for (int i = 0; i < n && nc < 64; i++) {
        int gemm = 0;
        u3d_error e;
        if (use_gemm(u3d_cl_of(be), x[i].c, w[i].c, &gemm, &e) || !gemm)
            continue;
        int tc = w[i].c * w[i].d * w[i].h * w[i].w;
        size_t q = (size_t)x[i].n * (size_t)tc * u3d_shape_spatial(x[i]);
        qmax = q > qmax ? q : qmax;
        /* forward runs the data gradient of a (T*Cout -> Cin) conv: the
         * same weight scratch as that conv's forward from Cin */
        p[nc] = (u3d_conv3d_params){.kernel = 1};
        cx[nc] = u3d_shape5(x[i].n, x[i].c, x[i].d, x[i].h, x[i].w);
        cw[nc++] = u3d_shape5(tc, x[i].c, 1, 1, 1);
    }
    if (!nc)
        return 0;
    return 2 * sizeof(float) * qmax +
           u3d_cl_conv3d_scratch_bytes(be, nc, p, cx, cw);
}

static const u3d_conv3d_params GEMM_CONV = {.kernel = 1};

static u3d_status gemm_forward(u3d_backend *be, cten *x, cten *w, cten *b,
                               u3d_tensor *y, u3d_error *err)
{
    u3d_tensor q, wv = gemm_weights(w);
    U3D_TRY(gemm_temp(be, x->shape, w->shape, &q, err));
    u3d_status st = u3d_cl_conv3d_backward_data(be, &GEMM_CONV, x, &wv, &q,
                                                err);
    if (!st)
        st = gemm_move(u3d_cl_of(be), 1, u3d_cl_mem(&q), u3d_cl_mem(y),
                       b ? u3d_cl_mem(b) : NULL, x->shape, w->shape, err);
    return st;
}

/* q = dy unshuffled into the T*Cout channels of x's voxels (shape xs),
 * wv = w viewed as the 1x1x1 convolution's weights. */
static u3d_status gemm_unshuffled(u3d_backend *be, cten *dy, u3d_shape xs,
                                  cten *w, u3d_tensor *q, u3d_tensor *wv,
                                  u3d_error *err)
{
    *wv = gemm_weights(w);
    U3D_TRY(gemm_temp(be, xs, w->shape, q, err));
    return gemm_move(u3d_cl_of(be), 0, u3d_cl_mem(q), u3d_cl_mem(dy), NULL,
                     xs, w->shape, err);
}

static u3d_status gemm_backward_data(u3d_backend *be, cten *dy, cten *w,
                                     u3d_tensor *dx, u3d_error *err)
{
    u3d_tensor q, wv;
    U3D_TRY(gemm_unshuffled(be, dy, dx->shape, w, &q, &wv, err));
    return u3d_cl_conv3d_forward(be, &GEMM_CONV, &q, &wv, NULL, dx, err);
}

/* dw (viewed as Ci x T*Cout) = the 1x1x1 weight gradient with x as the
 * output gradient and the unshuffled dy as the input. */
static u3d_status gemm_backward_weight(u3d_backend *be, cten *x, cten *dy,
                                       u3d_tensor *dw, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    u3d_shape xs = x->shape, ws = dw->shape;
    size_t tc = (size_t)ws.c * ws.d * ws.h * ws.w, np = u3d_shape_spatial(xs);
    /* up to rows_pos positions per sample: dy position-major and one
     * GEMM per sample without sums across lanes (the 1x1x1 weight
     * gradient sums vectors of positions, then their lanes). 2-core EPYC
     * (AVX-512): 512 channels at 567 positions 28-35 -> 13.6-14.4 ms,
     * 128 at 18816 122 -> 81-92 ms (each work-item streams its columns of
     * dy over all positions: a K-blocked GEMM would do better there) */
    int rows = np <= (size_t)u3d_cl_tune(cl, PROG, "rows_pos", 32768) &&
               tc <= INT32_MAX && u3d_cl_gemm_rows_ok(cl, (int)tc) &&
               (size_t)xs.n * xs.c * np <= INT32_MAX &&
               tc * np <= INT32_MAX;
    if (rows) {
        u3d_tensor q;
        U3D_TRY(gemm_temp(be, xs, ws, &q, err));
        cl_kernel k;
        U3D_TRY(u3d_cl_kernel_get(cl, PROG, "upconv3d_unshuffle_t", NULL, &k,
                                  err));
        for (int n = 0; n < xs.n; n++) {
            cl_mem d = u3d_cl_mem(dy), qm = u3d_cl_mem(&q);
            cl_uint off = (cl_uint)((size_t)n * tc * np), co = (cl_uint)ws.c;
            U3D_ARG(k, 0, d, err);
            U3D_ARG(k, 1, qm, err);
            U3D_ARG(k, 2, off, err);
            U3D_ARG(k, 3, co, err);
            cl_uint v[6] = {(cl_uint)xs.d, (cl_uint)xs.h, (cl_uint)xs.w,
                            (cl_uint)ws.d, (cl_uint)ws.h, (cl_uint)ws.w};
            U3D_TRY(launch_any(cl, k, "upconv3d_unshuffle_t", 4, v, 6,
                               (size_t)xs.d * xs.h, (size_t)ws.c, err));
            U3D_TRY(u3d_cl_gemm_rows(cl, u3d_cl_mem(x),
                                     (int)((size_t)n * xs.c * np), xs.c,
                                     (int)np, qm, (int)tc, u3d_cl_mem(dw),
                                     n == 0, err));
        }
        return U3D_OK;
    }
    u3d_tensor q, wv;
    U3D_TRY(gemm_unshuffled(be, dy, x->shape, dw, &q, &wv, err));
    return u3d_cl_conv3d_backward_weight(be, &GEMM_CONV, &q, x, &wv, NULL,
                                         err);
}

u3d_status u3d_cl_upconv3d_forward(u3d_backend *be, cten *x, cten *w, cten *b,
                                   u3d_tensor *y, u3d_error *err)
{
    U3D_TRY(fits_u32(y->shape, x->shape, "upconv3d forward", err));
    u3d_cl *cl = u3d_cl_of(be);
    int gemm;
    U3D_TRY(use_gemm(cl, x->shape.c, y->shape.c, &gemm, err));
    if (gemm)
        return gemm_forward(be, x, w, b, y, err);
    if (!is_2x2x2(w->shape)) {
        cl_kernel k;
        U3D_TRY(u3d_cl_kernel_get(cl, PROG, "upconv3d_forward_any", NULL, &k,
                                  err));
        cl_mem wm = u3d_cl_mem(w);
        cl_mem bm = b ? u3d_cl_mem(b) : wm; /* never read without bias */
        cl_mem xm = u3d_cl_mem(x), ym = u3d_cl_mem(y);
        cl_int has_bias = b != NULL;
        U3D_ARG(k, 0, xm, err);
        U3D_ARG(k, 1, wm, err);
        U3D_ARG(k, 2, bm, err);
        U3D_ARG(k, 3, has_bias, err);
        U3D_ARG(k, 4, ym, err);
        cl_uint v[8];
        int nv = dims_any(v, x->shape.c, y->shape.c, x->shape, w->shape);
        return launch_any(cl, k, "upconv3d_forward_any", 5, v, nv,
                          u3d_shape_spatial(y->shape),
                          (size_t)y->shape.n * (size_t)y->shape.c, err);
    }
    upconv_tiles t = tiles_of(cl);
    cl_kernel k;
    size_t mwg;
    U3D_TRY(get_kernel(cl, &t, "upconv3d_forward", &k, &mwg, err));
    cl_mem xm = u3d_cl_mem(x), wm = u3d_cl_mem(w), ym = u3d_cl_mem(y);
    /* without a bias any valid buffer will do: the kernel never reads it */
    cl_mem bm = b ? u3d_cl_mem(b) : wm;
    cl_int has_bias = b != NULL;
    int cin = x->shape.c, cout = y->shape.c;
    U3D_ARG(k, 0, xm, err);
    U3D_ARG(k, 1, wm, err);
    U3D_ARG(k, 2, bm, err);
    U3D_ARG(k, 3, has_bias, err);
    U3D_ARG(k, 4, ym, err);
    U3D_TRY(set_dims(k, 5, cin, cout, x->shape, err));
    return launch_lanes(cl, k, mwg, "upconv3d_forward", x->shape, t.fw_tp,
                        (cout + t.fw_tco - 1) / t.fw_tco, err);
}

u3d_status u3d_cl_upconv3d_backward_data(u3d_backend *be, cten *dy, cten *w,
                                         u3d_tensor *dx, u3d_error *err)
{
    U3D_TRY(fits_u32(dy->shape, dx->shape, "upconv3d backward-data", err));
    u3d_cl *cl = u3d_cl_of(be);
    int gemm;
    U3D_TRY(use_gemm(cl, dx->shape.c, dy->shape.c, &gemm, err));
    if (gemm)
        return gemm_backward_data(be, dy, w, dx, err);
    if (!is_2x2x2(w->shape)) {
        cl_kernel k;
        U3D_TRY(u3d_cl_kernel_get(cl, PROG, "upconv3d_backward_data_any", NULL,
                                  &k, err));
        cl_mem gm = u3d_cl_mem(dy), wm = u3d_cl_mem(w), om = u3d_cl_mem(dx);
        U3D_ARG(k, 0, gm, err);
        U3D_ARG(k, 1, wm, err);
        U3D_ARG(k, 2, om, err);
        cl_uint v[8];
        int nv = dims_any(v, dx->shape.c, dy->shape.c, dx->shape, w->shape);
        return launch_any(cl, k, "upconv3d_backward_data_any", 3, v, nv,
                          u3d_shape_spatial(dx->shape),
                          (size_t)dx->shape.n * (size_t)dx->shape.c, err);
    }
    upconv_tiles t = tiles_of(cl);
    cl_kernel k;
    size_t mwg;
    U3D_TRY(get_kernel(cl, &t, "upconv3d_backward_data", &k, &mwg, err));
    cl_mem gm = u3d_cl_mem(dy), wm = u3d_cl_mem(w), om = u3d_cl_mem(dx);
    int cin = dx->shape.c, cout = dy->shape.c;
    U3D_ARG(k, 0, gm, err);
    U3D_ARG(k, 1, wm, err);
    U3D_ARG(k, 2, om, err);
    U3D_TRY(set_dims(k, 3, cin, cout, dx->shape, err));
    return launch_lanes(cl, k, mwg, "upconv3d_backward_data", dx->shape, 2,
                        (cin + t.bd_tci - 1) / t.bd_tci, err);
}

/* Length of the chunks of a split-K reduction over k items that a
 * work-group takes `per_sweep` at a time: enough work-groups to fill the
 * device (tiles * chunks >= 8 per compute unit), but at least 4 sweeps per
 * chunk so the lane sums stay a small part of the work. */
static size_t chunk_len(const u3d_cl *cl, size_t k, size_t tiles,
                        size_t per_sweep)
{
    size_t target = 8 * (size_t)(cl->compute_units ? cl->compute_units : 1);
    size_t s = (target + tiles - 1) / tiles;
    size_t smax = (k + 4 * per_sweep - 1) / (4 * per_sweep);
    if (s > smax)
        s = smax;
    if (s < 1)
        s = 1;
    return (k + s - 1) / s;
}

/* Scratch for the chunk partials; NULL when one chunk writes the output. */
static u3d_status scratch(u3d_backend *be, size_t nchunks, size_t count,
                          void **buf, u3d_error *err)
{
    *buf = NULL;
    if (nchunks <= 1)
        return U3D_OK;
    return be->ops->buffer_alloc(be, nchunks * count * sizeof(float), buf, err);
}

/* out = sum over chunks of part (count floats each), in chunk order. */
static u3d_status sum_chunks(u3d_cl *cl, const upconv_tiles *t, cl_mem part,
                             cl_mem out, size_t count, size_t nchunks,
                             u3d_error *err)
{
    cl_kernel k;
    size_t mwg;
    U3D_TRY(get_kernel(cl, t, "upconv3d_sum_chunks", &k, &mwg, err));
    cl_uint c = (cl_uint)count, s = (cl_uint)nchunks;
    U3D_ARG(k, 0, part, err);
    U3D_ARG(k, 1, out, err);
    U3D_ARG(k, 2, c, err);
    U3D_ARG(k, 3, s, err);
    size_t g = count, l = mwg < LWS0 ? mwg : LWS0;
    return u3d_cl_launch(cl, k, "upconv3d_sum_chunks", 1, &g, &l, err);
}

/* A split-K kernel must run with exactly BW_LWS lanes per work-group, and
 * its lane-sum buffer (min(tile values, BW_LWS) rows of BW_LWS + 1 floats)
 * must fit in local memory. */
static u3d_status check_lws(const u3d_cl *cl, const upconv_tiles *t, size_t mwg,
                            const char *name, u3d_error *err)
{
    cl_ulong local = 0;
    size_t vals = (size_t)t->bw_tci * (size_t)t->bw_tco * 8;
    size_t rows = vals < (size_t)t->bw_lws ? vals : (size_t)t->bw_lws;
    size_t need = rows * (size_t)(t->bw_lws + 1) * sizeof(float);
    if ((size_t)t->bw_lws > mwg)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s needs work-groups of %d but the device allows "
                          "%zu for it: lower the upconv3d bw_lws tuning value",
                          name, t->bw_lws, mwg);
    U3D_TRY(u3d_cl_check(clGetDeviceInfo(cl->device, CL_DEVICE_LOCAL_MEM_SIZE,
                                         sizeof local, &local, NULL),
                         "clGetDeviceInfo(CL_DEVICE_LOCAL_MEM_SIZE)", err));
    if (need > local)
        return u3d_seterr(
            err, U3D_ERR_UNSUPPORTED,
            "%s needs %zu bytes of local memory, the device has "
            "%lu: lower the upconv3d bw_lws or tile tuning values",
            name, need, (unsigned long)local);
    return U3D_OK;
}

static u3d_status weight_pass(u3d_backend *be, const upconv_tiles *t, cten *x,
                              cten *dy, u3d_tensor *dw, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    const char *name = "upconv3d_backward_weight";
    cl_kernel k;
    size_t mwg;
    U3D_TRY(get_kernel(cl, t, name, &k, &mwg, err));
    U3D_TRY(check_lws(cl, t, mwg, name, err));
    u3d_shape xs = x->shape;
    int cin = xs.c, cout = dw->shape.c;
    size_t ti = (size_t)((cin + t->bw_tci - 1) / t->bw_tci);
    size_t to = (size_t)((cout + t->bw_tco - 1) / t->bw_tco);
    /* chunks of whole rows; a work-group sweeps max(1, lws / W) at a time */
    size_t rows = (size_t)xs.n * (size_t)xs.d * (size_t)xs.h;
    size_t sweep = xs.w < t->bw_lws ? (size_t)(t->bw_lws / xs.w) : 1;
    size_t clen = chunk_len(cl, rows, ti * to, sweep);
    size_t ns = (rows + clen - 1) / clen, count = u3d_shape_count(dw->shape);
    void *part;
    U3D_TRY(scratch(be, ns, count, &part, err));
    cl_mem xm = u3d_cl_mem(x), gm = u3d_cl_mem(dy);
    cl_mem pm = part ? (cl_mem)part : u3d_cl_mem(dw);
    cl_uint cl_clen = (cl_uint)clen;
    u3d_status st = U3D_OK;
    ARG(0, xm);
    ARG(1, gm);
    ARG(2, pm);
    if (!st)
        st = set_dims(k, 3, cin, cout, xs, err);
    ARG(9, cl_clen);
    size_t g[3] = {ns * (size_t)t->bw_lws, ti, to};
    size_t l[3] = {(size_t)t->bw_lws, 1, 1};
    if (!st)
        st = u3d_cl_launch(cl, k, name, 3, g, l, err);
    if (!st && part)
        st = sum_chunks(cl, t, pm, u3d_cl_mem(dw), count, ns, err);
    if (part)
        be->ops->buffer_free(be, part); /* released once the queue is done */
    return st;
}

/* db[co] = sum of the 8-lane chunk partials (part: nchunks x Cout x 8). */
static u3d_status sum_bias(u3d_cl *cl, const upconv_tiles *t, cl_mem part,
                           cl_mem db, size_t cout, size_t nchunks,
                           u3d_error *err)
{
    cl_kernel k;
    size_t mwg;
    U3D_TRY(get_kernel(cl, t, "upconv3d_sum_bias", &k, &mwg, err));
    cl_uint c = (cl_uint)cout, s = (cl_uint)nchunks;
    U3D_ARG(k, 0, part, err);
    U3D_ARG(k, 1, db, err);
    U3D_ARG(k, 2, c, err);
    U3D_ARG(k, 3, s, err);
    size_t g = cout, l = mwg < LWS0 ? mwg : LWS0;
    return u3d_cl_launch(cl, k, "upconv3d_sum_bias", 1, &g, &l, err);
}

static u3d_status bias_pass(u3d_backend *be, const upconv_tiles *t, cten *dy,
                            u3d_tensor *db, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    const char *name = "upconv3d_bias_partial";
    cl_kernel k;
    size_t mwg;
    U3D_TRY(get_kernel(cl, t, name, &k, &mwg, err));
    U3D_TRY(check_lws(cl, t, mwg, name, err));
    u3d_shape gs = dy->shape;
    /* an output channel plane holds 8*D*H*W floats: whole float8s */
    size_t p = u3d_shape_spatial(gs) / 8, kv = (size_t)gs.n * p;
    size_t clen = chunk_len(cl, kv, (size_t)gs.c, (size_t)t->bw_lws);
    size_t ns = (kv + clen - 1) / clen, cout = (size_t)gs.c;
    void *part;
    U3D_TRY(
        be->ops->buffer_alloc(be, ns * cout * 8 * sizeof(float), &part, err));
    cl_mem gm = u3d_cl_mem(dy), pm = (cl_mem)part;
    cl_uint ccout = (cl_uint)cout, cp = (cl_uint)p, cn = (cl_uint)gs.n;
    cl_uint cl_clen = (cl_uint)clen;
    u3d_status st = U3D_OK;
    ARG(0, gm);
    ARG(1, pm);
    ARG(2, ccout);
    ARG(3, cp);
    ARG(4, cn);
    ARG(5, cl_clen);
    size_t g[2] = {ns * (size_t)t->bw_lws, cout};
    size_t l[2] = {(size_t)t->bw_lws, 1};
    if (!st)
        st = u3d_cl_launch(cl, k, name, 2, g, l, err);
    if (!st)
        st = sum_bias(cl, t, pm, u3d_cl_mem(db), cout, ns, err);
    be->ops->buffer_free(be, part); /* released once the queue is done */
    return st;
}

u3d_status u3d_cl_upconv3d_backward_weight(u3d_backend *be, cten *x, cten *dy,
                                           u3d_tensor *dw, u3d_tensor *db,
                                           u3d_error *err)
{
    U3D_TRY(fits_u32(dy->shape, x->shape, "upconv3d backward-weight", err));
    int gemm;
    U3D_TRY(use_gemm(u3d_cl_of(be), x->shape.c, dy->shape.c, &gemm, err));
    /* the bias reduction exists for 2x2x2 only (the network's
     * up-convolutions have no bias) */
    if (gemm && (!db || is_2x2x2(dw->shape))) {
        U3D_TRY(gemm_backward_weight(be, x, dy, dw, err));
        upconv_tiles t = tiles_of(u3d_cl_of(be));
        return db ? bias_pass(be, &t, dy, db, err) : U3D_OK;
    }
    if (!is_2x2x2(dw->shape)) {
        u3d_cl *cl = u3d_cl_of(be);
        cl_kernel k;
        U3D_TRY(u3d_cl_kernel_get(cl, PROG, "upconv3d_backward_weight_any",
                                  NULL, &k, err));
        cl_mem xm = u3d_cl_mem(x), gm = u3d_cl_mem(dy), wm = u3d_cl_mem(dw);
        cl_mem bm = db ? u3d_cl_mem(db) : wm; /* never written without */
        cl_int with_bias = db != NULL;
        U3D_ARG(k, 0, xm, err);
        U3D_ARG(k, 1, gm, err);
        U3D_ARG(k, 2, wm, err);
        U3D_ARG(k, 3, bm, err);
        U3D_ARG(k, 4, with_bias, err);
        int cout = dy->shape.c;
        size_t items = u3d_shape_count(dw->shape) + (db ? (size_t)cout : 0);
        cl_uint v[9];
        dims_any(v, x->shape.c, cout, x->shape, dw->shape);
        /* this kernel takes N after the sizes */
        memmove(v + 6, v + 5, 3 * sizeof *v);
        v[5] = (cl_uint)x->shape.n;
        return launch_any(cl, k, "upconv3d_backward_weight_any", 5, v, 9,
                          items, 1, err);
    }
    upconv_tiles t = tiles_of(u3d_cl_of(be));
    U3D_TRY(weight_pass(be, &t, x, dy, dw, err));
    return db ? bias_pass(be, &t, dy, db, err) : U3D_OK;
}
