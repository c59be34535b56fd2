/* Convolutions through cuDNN: descriptors, algorithm choice and a plan
 * cache per (kind, shapes, pad, stride). The transposed 2x2x2 (1x2x2) stride-2
 * convolution is run as the adjoint of a stride-2 conv whose filter is the
 * PyTorch ConvTranspose3d weight (Cin, Cout, 2, 2, 2) read as (K, C, ...):
 *   upconv forward       = conv backward-data (dy := x, dx := y)
 *   upconv backward-data = conv forward       (x := dy_up, y := dx)
 *   upconv backward-w    = conv backward-filter (x := dy_up, dy := x)
 * as PyTorch itself does on cuDNN. */
#ifdef U3D_HAVE_CUDNN
#include <stdlib.h>
#include <string.h>
#include "backends/cudnn/cudnn_internal.h"

#define SB 96
#define MAX_PLANS 256 /* oldest dropped beyond: tiled prediction varies shapes */

struct u3d_cudnn_plan {
    u3d_cudnn_conv_kind kind;
    u3d_cudnn_conv_geom g;
    u3d_cudnn_conv_descs d;
    int algo;
    size_t ws;
    char label[48];
};

static const char *kind_name(u3d_cudnn_conv_kind k)
{
    return k == U3D_CONV_FWD ? "forward"
           : k == U3D_CONV_BWD_DATA ? "backward-data"
                                    : "backward-filter";
}

void u3d_cudnn_conv_descs_free(u3d_cudnn_conv_descs *d)
{
    if (d->x)
        cudnnDestroyTensorDescriptor(d->x);
    if (d->y)
        cudnnDestroyTensorDescriptor(d->y);
    if (d->w)
        cudnnDestroyFilterDescriptor(d->w);
    if (d->conv)
        cudnnDestroyConvolutionDescriptor(d->conv);
    memset(d, 0, sizeof *d);
}

static u3d_status filter_desc(cudnnFilterDescriptor_t *f, u3d_shape w,
                              u3d_error *err)
{
    int dims[5], strides[5];
    u3d_cudnn_nd(w, dims, strides); /* K,C,k,k,k packed = CUDNN_TENSOR_NCHW */
    U3D_TRY(u3d_dnn_check(cudnnCreateFilterDescriptor(f),
                          "cudnnCreateFilterDescriptor", err));
    return u3d_dnn_check(cudnnSetFilterNdDescriptor(*f, CUDNN_DATA_FLOAT,
                                                    CUDNN_TENSOR_NCHW, 5, dims),
                         "cudnnSetFilterNdDescriptor", err);
}

static u3d_status conv_desc(cudnnConvolutionDescriptor_t *c, const int pad[3],
                            const int stride[3], u3d_error *err)
{
    int padv[3] = {pad[0], pad[1], pad[2]};
    int str[3] = {stride[0], stride[1], stride[2]};
    int dil[3] = {1, 1, 1};
    U3D_TRY(u3d_dnn_check(cudnnCreateConvolutionDescriptor(c),
                          "cudnnCreateConvolutionDescriptor", err));
    /* cross-correlation = PyTorch's conv; float accumulation */
    U3D_TRY(u3d_dnn_check(
        cudnnSetConvolutionNdDescriptor(*c, 3, padv, str, dil,
                                        CUDNN_CROSS_CORRELATION,
                                        CUDNN_DATA_FLOAT),
        "cudnnSetConvolutionNdDescriptor", err));
    /* FMA only: on Ampere and later the default math may use TF32 tensor
     * cores (10-bit mantissa), far outside the 1e-4 float32 contract */
    return u3d_dnn_check(cudnnSetConvolutionMathType(*c, CUDNN_FMA_MATH),
                         "cudnnSetConvolutionMathType", err);
}

/* cuDNN's view of the output size must be ours. */
static u3d_status check_out_dims(const u3d_cudnn_conv_descs *d,
                                 const u3d_cudnn_conv_geom *g, u3d_error *err)
{
    int od[5], want[5], st[5];
    char a[SB], b[SB], c[SB];
    U3D_TRY(u3d_dnn_check(
        cudnnGetConvolutionNdForwardOutputDim(d->conv, d->x, d->w, 5, od),
        "cudnnGetConvolutionNdForwardOutputDim", err));
    u3d_cudnn_nd(g->y, want, st);
    for (int i = 0; i < 5; i++)
        if (od[i] != want[i])
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "cudnn conv: cuDNN computes output %dx%dx%dx%dx%d "
                              "for input %s and filter %s, expected %s",
                              od[0], od[1], od[2], od[3], od[4],
                              u3d_shape_str(g->x, a, SB),
                              u3d_shape_str(g->w, b, SB),
                              u3d_shape_str(g->y, c, SB));
    return U3D_OK;
}

u3d_status u3d_cudnn_conv_descs_init(u3d_cudnn_conv_descs *d,
                                     const u3d_cudnn_conv_geom *g,
                                     u3d_error *err)
{
    memset(d, 0, sizeof *d);
    u3d_status st = u3d_cudnn_tensor_desc(&d->x, g->x, err);
    if (!st)
        st = u3d_cudnn_tensor_desc(&d->y, g->y, err);
    if (!st)
        st = filter_desc(&d->w, g->w, err);
    if (!st)
        st = conv_desc(&d->conv, g->pad, g->stride, err);
    if (!st)
        st = check_out_dims(d, g, err);
    if (st)
        u3d_cudnn_conv_descs_free(d);
    return st;
}

/* ---- algorithm choice ---- */

static int is_tensor_op(cudnnMathType_t m)
{
    return m == CUDNN_TENSOR_OP_MATH ||
           m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

#define CAND(perf)                                                             \
    (u3d_cudnn_algo_cand)                                                      \
    {                                                                          \
        (int)(perf).algo, (perf).status == CUDNN_STATUS_SUCCESS,               \
            (perf).memory, (perf).determinism == CUDNN_DETERMINISTIC,          \
            is_tensor_op((perf).mathType)                                      \
    }

/* cuDNN's heuristic list for p, fastest first, as candidates. */
static u3d_status candidates(u3d_cudnn *cx, const u3d_cudnn_plan *p,
                             u3d_cudnn_algo_cand *c, int *n, u3d_error *err)
{
    const u3d_cudnn_conv_descs *d = &p->d;
    *n = 0;
    if (p->kind == U3D_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t pf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        U3D_TRY(u3d_dnn_check(
            cudnnGetConvolutionForwardAlgorithm_v7(
                cx->dnn, d->x, d->w, d->conv, d->y,
                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, n, pf),
            "cudnnGetConvolutionForwardAlgorithm_v7", err));
        for (int i = 0; i < *n; i++)
            c[i] = CAND(pf[i]);
    } else if (p->kind == U3D_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t
            pf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        U3D_TRY(u3d_dnn_check(
            cudnnGetConvolutionBackwardDataAlgorithm_v7(
                cx->dnn, d->w, d->y, d->conv, d->x,
                CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, n, pf),
            "cudnnGetConvolutionBackwardDataAlgorithm_v7", err));
        for (int i = 0; i < *n; i++)
            c[i] = CAND(pf[i]);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t
            pf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        U3D_TRY(u3d_dnn_check(
            cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                cx->dnn, d->x, d->y, d->conv, d->w,
                CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, n, pf),
            "cudnnGetConvolutionBackwardFilterAlgorithm_v7", err));
        for (int i = 0; i < *n; i++)
            c[i] = CAND(pf[i]);
    }
    return U3D_OK;
}

/* The exact workspace of one algorithm; nonzero rc when it cannot run. */
static cudnnStatus_t ws_size(u3d_cudnn *cx, const u3d_cudnn_plan *p, int algo,
                             size_t *bytes)
{
    const u3d_cudnn_conv_descs *d = &p->d;
    *bytes = 0;
    if (p->kind == U3D_CONV_FWD)
        return cudnnGetConvolutionForwardWorkspaceSize(
            cx->dnn, d->x, d->w, d->conv, d->y,
            (cudnnConvolutionFwdAlgo_t)algo, bytes);
    if (p->kind == U3D_CONV_BWD_DATA)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(
            cx->dnn, d->w, d->y, d->conv, d->x,
            (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(
        cx->dnn, d->x, d->y, d->conv, d->w,
        (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
}

static u3d_status choose_algo(u3d_cudnn *cx, u3d_cudnn_plan *p, u3d_error *err)
{
    u3d_cudnn_algo_cand c[16];
    int order[16], n, k;
    size_t fr = 0, tot = 0;
    char a[SB], b[SB];
    U3D_TRY(candidates(cx, p, c, &n, err));
    U3D_TRY(u3d_cuda_check(cudaMemGetInfo(&fr, &tot), "cudaMemGetInfo", err));
    size_t limit = u3d_cudnn_workspace_limit(fr, cx->ws_bytes);
    k = u3d_cudnn_algo_order(c, n, limit, order);
    for (int i = 0; i < k; i++) {
        size_t bytes;
        if (ws_size(cx, p, c[order[i]].algo, &bytes) != CUDNN_STATUS_SUCCESS ||
            bytes > limit)
            continue;
        p->algo = c[order[i]].algo;
        p->ws = bytes;
        snprintf(p->label, sizeof p->label, "cudnn conv %s algo %d%s",
                 kind_name(p->kind), p->algo,
                 c[order[i]].deterministic ? "" : " (nondet)");
        return U3D_OK;
    }
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                      "cuDNN has no float32 %s algorithm for input %s, filter "
                      "%s (stride %d,%d,%d, pad %d,%d,%d) within %.0f MiB of "
                      "workspace",
                      kind_name(p->kind), u3d_shape_str(p->g.x, a, SB),
                      u3d_shape_str(p->g.w, b, SB), p->g.stride[0],
                      p->g.stride[1], p->g.stride[2], p->g.pad[0],
                      p->g.pad[1], p->g.pad[2],
                      limit / 1048576.0);
}

/* ---- the cache ---- */

static int same(const u3d_cudnn_plan *p, u3d_cudnn_conv_kind kind,
                const u3d_cudnn_conv_geom *g)
{
    return p->kind == kind && u3d_shape_eq(p->g.x, g->x) &&
           u3d_shape_eq(p->g.w, g->w) &&
           !memcmp(p->g.pad, g->pad, sizeof g->pad) &&
           !memcmp(p->g.stride, g->stride, sizeof g->stride);
}

void u3d_cudnn_plans_free(u3d_cudnn *cx)
{
    for (int i = 0; i < cx->nplans; i++)
        u3d_cudnn_conv_descs_free(&cx->plans[i].d);
    free(cx->plans);
    cx->plans = NULL;
    cx->nplans = cx->capplans = 0;
}

/* Room for one more plan: grow, or drop the oldest at MAX_PLANS. */
static u3d_status make_room(u3d_cudnn *cx, u3d_error *err)
{
    if (cx->nplans == MAX_PLANS) {
        u3d_cudnn_conv_descs_free(&cx->plans[0].d);
        memmove(cx->plans, cx->plans + 1,
                (size_t)(cx->nplans - 1) * sizeof *cx->plans);
        cx->nplans--;
    }
    if (cx->nplans < cx->capplans)
        return U3D_OK;
    int cap = cx->capplans ? 2 * cx->capplans : 16;
    u3d_cudnn_plan *np = realloc(cx->plans, (size_t)cap * sizeof *np);
    if (!np)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    cx->plans = np;
    cx->capplans = cap;
    return U3D_OK;
}

static u3d_status get_plan(u3d_cudnn *cx, u3d_cudnn_conv_kind kind,
                           const u3d_cudnn_conv_geom *g, u3d_cudnn_plan **out,
                           u3d_error *err)
{
    for (int i = cx->nplans - 1; i >= 0; i--)
        if (same(&cx->plans[i], kind, g)) {
            *out = &cx->plans[i];
            return U3D_OK;
        }
    u3d_cudnn_plan p;
    memset(&p, 0, sizeof p);
    p.kind = kind;
    p.g = *g;
    U3D_TRY(u3d_cudnn_conv_descs_init(&p.d, g, err));
    u3d_status st = choose_algo(cx, &p, err);
    if (!st)
        st = make_room(cx, err);
    if (st) {
        u3d_cudnn_conv_descs_free(&p.d);
        return st;
    }
    cx->plans[cx->nplans] = p;
    *out = &cx->plans[cx->nplans++];
    return U3D_OK;
}

static cudnnStatus_t run_plan(u3d_cudnn *cx, const u3d_cudnn_plan *p,
                              const float *a, const float *b, float *out)
{
    const float one = 1.0f, zero = 0.0f;
    const u3d_cudnn_conv_descs *d = &p->d;
    if (p->kind == U3D_CONV_FWD)
        return cudnnConvolutionForward(cx->dnn, &one, d->x, a, d->w, b,
                                       d->conv,
                                       (cudnnConvolutionFwdAlgo_t)p->algo,
                                       cx->ws, p->ws, &zero, d->y, out);
    if (p->kind == U3D_CONV_BWD_DATA)
        return cudnnConvolutionBackwardData(
            cx->dnn, &one, d->w, b, d->y, a, d->conv,
            (cudnnConvolutionBwdDataAlgo_t)p->algo, cx->ws, p->ws, &zero,
            d->x, out);
    return cudnnConvolutionBackwardFilter(
        cx->dnn, &one, d->x, a, d->y, b, d->conv,
        (cudnnConvolutionBwdFilterAlgo_t)p->algo, cx->ws, p->ws, &zero, d->w,
        out);
}

u3d_status u3d_cudnn_conv_run(u3d_cudnn *cx, u3d_cudnn_conv_kind kind,
                              const u3d_cudnn_conv_geom *g, const float *a,
                              const float *b, float *out, u3d_error *err)
{
    u3d_cudnn_plan *p;
    U3D_TRY(get_plan(cx, kind, g, &p, err));
    U3D_TRY(u3d_cudnn_workspace(cx, p->ws, err));
    U3D_TRY(u3d_cudnn_prof_begin(cx, err));
    U3D_TRY(u3d_dnn_check(run_plan(cx, p, a, b, out), p->label, err));
    return u3d_cudnn_prof_end(cx, p->label, err);
}

/* ---- the ops ---- */

static const int ONE[3] = {1, 1, 1}, ZERO[3] = {0, 0, 0};

/* The transposed conv's stride per axis: its filter's size (2x2x2, 1x2x2). */
static const int *factor(u3d_shape w, int f[3])
{
    f[0] = w.d;
    f[1] = w.h;
    f[2] = w.w;
    return f;
}

/* Geometry of a conv whose output must be `want` (validated by ops.c; a
 * mismatch here is an internal error, reported rather than run). */
static u3d_status geom(u3d_shape x, u3d_shape w, const int pad[3],
                       const int stride[3], u3d_shape want,
                       u3d_cudnn_conv_geom *g, u3d_error *err)
{
    char a[SB], b[SB];
    U3D_TRY(u3d_cudnn_conv_geometry(x, w, pad, stride, g, err));
    if (!u3d_shape_eq(g->y, want))
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "cudnn conv: output would be %s, expected %s",
                          u3d_shape_str(g->y, a, SB),
                          u3d_shape_str(want, b, SB));
    return U3D_OK;
}

u3d_status u3d_cudnn_conv3d_forward(u3d_backend *be,
                                    const u3d_conv3d_params *p, cten *x,
                                    cten *w, cten *b, u3d_tensor *y,
                                    u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_cudnn_conv_geom g;
    int k[3], pad[3];
    u3d_conv3d_axes(p, k, pad); /* k: the filter's shape */
    U3D_TRY(geom(x->shape, w->shape, pad, ONE, y->shape, &g, err));
    U3D_TRY(u3d_cudnn_conv_run(cx, U3D_CONV_FWD, &g, u3d_cudnn_f(x),
                               u3d_cudnn_f(w), u3d_cudnn_f(y), err));
    if (b)
        U3D_TRY(u3d_cudnn_bias_add(cx, u3d_cudnn_f(y), y->shape,
                                   u3d_cudnn_f(b), err));
    /* a separate in-place pass here (cuDNN's fused bias + activation
     * forward is a later optimisation) */
    return p->relu ? u3d_cudnn_relu_forward(be, y, y, err) : U3D_OK;
}

/* The one cuDNN workspace is shared by every convolution and grows to the
 * largest plan's, and a new plan may take the workspace held plus half the
 * free memory beyond a reserve, at most 2 GiB (u3d_cudnn_workspace_limit):
 * that bound, whatever the shapes. (The exact figure would cost a cuDNN
 * algorithm query per convolution of every tile size a planner tries, and
 * depend on the free memory when the plan is made.) */
size_t u3d_cudnn_conv3d_scratch_bytes(u3d_backend *be, int n,
                                      const u3d_conv3d_params *p,
                                      const u3d_shape *x, const u3d_shape *w)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    size_t fr = 0, tot = 0;
    (void)p;
    (void)x;
    (void)w;
    if (n < 1)
        return 0;
    if (cudaSetDevice(cx->device) != cudaSuccess ||
        cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        cudaGetLastError(); /* not sticky: clear it */
        fr = cx->total_mem;
    }
    return u3d_cudnn_workspace_limit(fr, cx->ws_bytes);
}

u3d_status u3d_cudnn_conv3d_backward_data(u3d_backend *be,
                                          const u3d_conv3d_params *p, cten *dy,
                                          cten *w, u3d_tensor *dx,
                                          u3d_error *err)
{
    u3d_cudnn_conv_geom g;
    int k[3], pad[3];
    u3d_conv3d_axes(p, k, pad); /* k: the filter's shape */
    U3D_TRY(geom(dx->shape, w->shape, pad, ONE, dy->shape, &g, err));
    return u3d_cudnn_conv_run(u3d_cudnn_of(be), U3D_CONV_BWD_DATA, &g,
                              u3d_cudnn_f(dy), u3d_cudnn_f(w),
                              u3d_cudnn_f(dx), err);
}

u3d_status u3d_cudnn_conv3d_backward_weight(u3d_backend *be,
                                            const u3d_conv3d_params *p,
                                            cten *x, cten *dy, u3d_tensor *dw,
                                            u3d_tensor *db, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_cudnn_conv_geom g;
    int k[3], pad[3];
    u3d_conv3d_axes(p, k, pad); /* k: the filter's shape */
    U3D_TRY(geom(x->shape, dw->shape, pad, ONE, dy->shape, &g, err));
    U3D_TRY(u3d_cudnn_conv_run(cx, U3D_CONV_BWD_FILTER, &g, u3d_cudnn_f(x),
                               u3d_cudnn_f(dy), u3d_cudnn_f(dw), err));
    if (!db)
        return U3D_OK;
    return u3d_cudnn_channel_sum(cx, u3d_cudnn_f(dy), dy->shape,
                                 u3d_cudnn_f(db), err);
}

u3d_status u3d_cudnn_upconv3d_forward(u3d_backend *be, cten *x, cten *w,
                                      cten *b, u3d_tensor *y, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_cudnn_conv_geom g;
    int f[3];
    U3D_TRY(geom(y->shape, w->shape, ZERO, factor(w->shape, f), x->shape, &g,
                 err));
    U3D_TRY(u3d_cudnn_conv_run(cx, U3D_CONV_BWD_DATA, &g, u3d_cudnn_f(x),
                               u3d_cudnn_f(w), u3d_cudnn_f(y), err));
    if (!b)
        return U3D_OK;
    return u3d_cudnn_bias_add(cx, u3d_cudnn_f(y), y->shape, u3d_cudnn_f(b),
                              err);
}

u3d_status u3d_cudnn_upconv3d_backward_data(u3d_backend *be, cten *dy,
                                            cten *w, u3d_tensor *dx,
                                            u3d_error *err)
{
    u3d_cudnn_conv_geom g;
    int f[3];
    U3D_TRY(geom(dy->shape, w->shape, ZERO, factor(w->shape, f), dx->shape,
                 &g, err));
    return u3d_cudnn_conv_run(u3d_cudnn_of(be), U3D_CONV_FWD, &g,
                              u3d_cudnn_f(dy), u3d_cudnn_f(w),
                              u3d_cudnn_f(dx), err);
}

u3d_status u3d_cudnn_upconv3d_backward_weight(u3d_backend *be, cten *x,
                                              cten *dy, u3d_tensor *dw,
                                              u3d_tensor *db, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_cudnn_conv_geom g;
    int f[3];
    U3D_TRY(geom(dy->shape, dw->shape, ZERO, factor(dw->shape, f), x->shape,
                 &g, err));
    U3D_TRY(u3d_cudnn_conv_run(cx, U3D_CONV_BWD_FILTER, &g, u3d_cudnn_f(dy),
                               u3d_cudnn_f(x), u3d_cudnn_f(dw), err));
    if (!db)
        return U3D_OK;
    return u3d_cudnn_channel_sum(cx, u3d_cudnn_f(dy), dy->shape,
                                 u3d_cudnn_f(db), err);
}

#else
typedef int u3d_cudnn_conv_unused;
#endif
