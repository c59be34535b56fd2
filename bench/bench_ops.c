/* Layer operations of ops.h on the shapes of Cicek et al. 2016 (N = 1,
 * input 116x132x132 voxels), through the public API on any backend. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "backends/opencl/opencl.h"

typedef enum op_kind {
    CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHT,
    UP_FWD, UP_BWD_DATA, UP_BWD_WEIGHT,
    POOL_FWD, POOL_BWD,
    BN_FWD, BN_BWD,
    RELU_FWD, RELU_BWD,
    SOFTMAX_CE, SGD_STEP
} op_kind;

/* cin/cout: channels (one count for single-channel ops, classes for
 * softmax); k: conv kernel; d,h,w: input spatial size (SGD: w = number of
 * parameters, 19069955 in the paper's network). */
typedef struct op_case {
    const char *name;
    op_kind kind;
    int cin, cout, k, d, h, w;
} op_case;

#define CONV3(sfx, ci, co, k, d, h, w)                                         \
    {"conv3d_fwd_" sfx, CONV_FWD, ci, co, k, d, h, w},                         \
    {"conv3d_bwd_data_" sfx, CONV_BWD_DATA, ci, co, k, d, h, w},               \
    {"conv3d_bwd_weight_" sfx, CONV_BWD_WEIGHT, ci, co, k, d, h, w}
#define UP3(sfx, ci, co, d, h, w)                                              \
    {"upconv_fwd_" sfx, UP_FWD, ci, co, 2, d, h, w},                           \
    {"upconv_bwd_data_" sfx, UP_BWD_DATA, ci, co, 2, d, h, w},                 \
    {"upconv_bwd_weight_" sfx, UP_BWD_WEIGHT, ci, co, 2, d, h, w}

static const op_case op_cases[] = {
    CONV3("3to32", 3, 32, 3, 116, 132, 132),
    CONV3("32to64", 32, 64, 3, 114, 130, 130),
    CONV3("256to256", 256, 256, 3, 11, 13, 13),
    CONV3("256to512", 256, 512, 3, 9, 11, 11),
    CONV3("64to3_k1", 64, 3, 1, 28, 44, 44),
    {"maxpool_fwd", POOL_FWD, 64, 64, 2, 112, 128, 128},
    {"maxpool_bwd", POOL_BWD, 64, 64, 2, 112, 128, 128},
    UP3("512", 512, 512, 7, 9, 9),
    UP3("128", 128, 128, 24, 28, 28),
    {"batchnorm_train_fwd", BN_FWD, 64, 64, 0, 112, 128, 128},
    {"batchnorm_bwd", BN_BWD, 64, 64, 0, 112, 128, 128},
    {"relu_fwd", RELU_FWD, 64, 64, 0, 112, 128, 128},
    {"relu_bwd", RELU_BWD, 64, 64, 0, 112, 128, 128},
    {"softmax_ce", SOFTMAX_CE, 3, 3, 0, 28, 44, 44},
    {"sgd_step", SGD_STEP, 1, 1, 0, 1, 1, 19069955},
};
#define NCASES ((int)(sizeof op_cases / sizeof op_cases[0]))

#define NT 12
typedef struct op_ctx {
    op_case c; /* after --quick shrinking */
    u3d_conv3d_params conv;
    u3d_bn_params bn;
    u3d_sgd_params sgd;
    u3d_tensor t[NT];
    float loss;
} op_ctx;

int u3d_bench_op_names(const char **names, int max)
{
    int n = 0;
    for (int i = 0; i < NCASES && n < max; i++)
        names[n++] = op_cases[i].name;
    return n;
}

static int mini(int a, int b) { return a < b ? a : b; }

/* --quick: a few channels and voxels, cheap even under oclgrind. */
static op_case shrink(op_case c)
{
    int s = c.kind == UP_FWD || c.kind == UP_BWD_DATA ||
                    c.kind == UP_BWD_WEIGHT
                ? 3
                : 6;
    c.cin = mini(c.cin, 4);
    c.cout = mini(c.cout, 4);
    c.d = mini(c.d, s);
    c.h = mini(c.h, s);
    c.w = c.kind == SGD_STEP ? mini(c.w, 4096) : mini(c.w, s + 1);
    return c;
}

/* ---- data ---- */

#define CHUNK (1 << 20) /* elements per host write */

/* Uniform values in [-scale, scale) (F32) or in [0, classes) (I32),
 * written in chunks so huge tensors need no huge host buffer. */
static u3d_status fill_random(u3d_tensor *t, float scale, int classes,
                              uint64_t seed, u3d_error *err)
{
    size_t n = u3d_shape_count(t->shape);
    size_t m = n < CHUNK ? n : CHUNK;
    uint32_t *buf = malloc(m * sizeof *buf);
    if (!buf)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (size_t i = 0; i < m; i++) {
        uint64_t r = u3d_splitmix64(&seed);
        if (t->dtype == U3D_I32) {
            int32_t v = (int32_t)(r % (uint64_t)classes);
            memcpy(&buf[i], &v, sizeof v);
        } else {
            float v = scale * (float)((double)(r >> 40) / 8388608.0 - 1.0);
            memcpy(&buf[i], &v, sizeof v);
        }
    }
    u3d_status st = U3D_OK;
    for (size_t off = 0; off < n && !st; off += m) {
        size_t cnt = n - off < m ? n - off : m;
        st = t->be->ops->buffer_write(t->be, t->buf, off * 4, cnt * 4, buf,
                                      err);
    }
    free(buf);
    return st;
}

/* ---- setup per family ---- */

static u3d_status mk(u3d_backend *be, op_ctx *x, int i, u3d_shape s,
                     u3d_error *err)
{
    return u3d_tensor_create(be, s, U3D_F32, &x->t[i], err);
}

static u3d_status mk_rand(u3d_backend *be, op_ctx *x, int i, u3d_shape s,
                          float scale, u3d_error *err)
{
    u3d_status st = mk(be, x, i, s, err);
    return st ? st : fill_random(&x->t[i], scale, 0, 1000 + (uint64_t)i, err);
}

static u3d_shape sp(int n, int c, int d, int h, int w)
{
    return u3d_shape5(n, c, d, h, w);
}

/* conv: 0 x, 1 w, 2 b, 3 y (= dy); upconv the same. */
static u3d_status setup_conv(u3d_backend *be, op_ctx *x, u3d_error *err)
{
    const op_case *c = &x->c;
    int up = c->kind == UP_FWD || c->kind == UP_BWD_DATA ||
             c->kind == UP_BWD_WEIGHT;
    int k = c->k;
    x->conv.kernel = k;
    x->conv.pad = 0;
    x->conv.relu = 0;
    /* the data gradient as a training step runs it: after its forward,
     * whose transform of the weights it may reuse (Winograd; the first,
     * untimed run makes it); the forward pays the transform every run */
    x->conv.weights_version = c->kind == CONV_BWD_DATA;
    int od = up ? 2 * c->d : c->d - k + 1, oh = up ? 2 * c->h : c->h - k + 1,
        ow = up ? 2 * c->w : c->w - k + 1;
    u3d_shape ws = up ? sp(c->cin, c->cout, 2, 2, 2)
                      : sp(c->cout, c->cin, k, k, k);
    float wscale = 1.0f / sqrtf((float)(c->cin * (up ? 8 : k * k * k)));
    u3d_status st = mk_rand(be, x, 0, sp(1, c->cin, c->d, c->h, c->w), 1, err);
    if (!st)
        st = mk_rand(be, x, 1, ws, wscale, err);
    if (!st)
        st = mk_rand(be, x, 2, sp(1, c->cout, 1, 1, 1), 0.1f, err);
    if (!st)
        st = mk_rand(be, x, 3, sp(1, c->cout, od, oh, ow), 1, err);
    return st;
}

/* pool: 0 x, 1 y (= dy), 2 dx. */
static u3d_status setup_pool(u3d_backend *be, op_ctx *x, u3d_error *err)
{
    const op_case *c = &x->c;
    u3d_shape xs = sp(1, c->cin, c->d, c->h, c->w);
    u3d_status st = mk_rand(be, x, 0, xs, 1, err);
    if (!st)
        st = mk_rand(be, x, 1, sp(1, c->cin, c->d / 2, c->h / 2, c->w / 2), 1,
                     err);
    if (!st && c->kind == POOL_BWD)
        st = mk(be, x, 2, xs, err);
    return st;
}

/* bn: 0 x, 1 y (= dy), 2 gamma, 3 beta, 4 running mean, 5 running var,
 * 6 save_mean, 7 save_invstd, 8 dx, 9 dgamma, 10 dbeta. */
static u3d_status setup_bn(u3d_backend *be, op_ctx *x, u3d_error *err)
{
    const op_case *c = &x->c;
    u3d_shape xs = sp(1, c->cin, c->d, c->h, c->w), cs = sp(1, c->cin, 1, 1, 1);
    x->bn.eps = 1e-5f;
    x->bn.momentum = 0.1f;
    u3d_status st = mk_rand(be, x, 0, xs, 1, err);
    if (!st)
        st = mk_rand(be, x, 1, xs, 1, err);
    for (int i = 2; i <= 7 && !st; i++)
        st = mk(be, x, i, cs, err);
    /* gamma, running var and invstd 1; the rest 0 */
    if (!st)
        st = u3d_tensor_fill(&x->t[2], 1, err);
    if (!st)
        st = u3d_tensor_fill(&x->t[5], 1, err);
    if (!st)
        st = u3d_tensor_fill(&x->t[7], 1, err);
    if (!st && c->kind == BN_BWD) {
        st = mk(be, x, 8, xs, err);
        if (!st)
            st = mk(be, x, 9, cs, err);
        if (!st)
            st = mk(be, x, 10, cs, err);
    }
    return st;
}

/* relu: 0 x (= y of backward), 1 y (= dy), 2 dx. */
static u3d_status setup_relu(u3d_backend *be, op_ctx *x, u3d_error *err)
{
    const op_case *c = &x->c;
    u3d_shape xs = sp(1, c->cin, c->d, c->h, c->w);
    u3d_status st = mk_rand(be, x, 0, xs, 1, err);
    if (!st)
        st = mk_rand(be, x, 1, xs, 1, err);
    if (!st && c->kind == RELU_BWD)
        st = mk(be, x, 2, xs, err);
    return st;
}

/* softmax-CE: 0 logits, 1 labels, 2 class weights, 3 dlogits. */
static u3d_status setup_softmax(u3d_backend *be, op_ctx *x, u3d_error *err)
{
    const op_case *c = &x->c;
    u3d_shape ls = sp(1, c->cin, c->d, c->h, c->w);
    u3d_status st = mk_rand(be, x, 0, ls, 2, err);
    if (!st)
        st = u3d_tensor_create(be, sp(1, 1, c->d, c->h, c->w), U3D_I32,
                               &x->t[1], err);
    if (!st)
        st = fill_random(&x->t[1], 0, c->cin, 7, err);
    if (!st)
        st = mk(be, x, 2, sp(1, c->cin, 1, 1, 1), err);
    if (!st)
        st = u3d_tensor_fill(&x->t[2], 1, err);
    if (!st)
        st = mk(be, x, 3, ls, err);
    return st;
}

/* sgd: 0 param, 1 grad, 2 momentum buffer. */
static u3d_status setup_sgd(u3d_backend *be, op_ctx *x, u3d_error *err)
{
    u3d_shape s = sp(1, 1, 1, 1, x->c.w);
    x->sgd.lr = 1e-4f; /* small: params barely move over the timed runs */
    x->sgd.momentum = 0.99f;
    x->sgd.weight_decay = 1e-5f;
    u3d_status st = mk_rand(be, x, 0, s, 0.1f, err);
    if (!st)
        st = mk_rand(be, x, 1, s, 0.01f, err);
    if (!st)
        st = mk(be, x, 2, s, err);
    return st;
}

static u3d_status op_setup(u3d_backend *be, op_ctx *x, u3d_error *err)
{
    switch (x->c.kind) {
    case CONV_FWD: case CONV_BWD_DATA: case CONV_BWD_WEIGHT:
    case UP_FWD: case UP_BWD_DATA: case UP_BWD_WEIGHT:
        return setup_conv(be, x, err);
    case POOL_FWD: case POOL_BWD: return setup_pool(be, x, err);
    case BN_FWD: case BN_BWD: return setup_bn(be, x, err);
    case RELU_FWD: case RELU_BWD: return setup_relu(be, x, err);
    case SOFTMAX_CE: return setup_softmax(be, x, err);
    case SGD_STEP: return setup_sgd(be, x, err);
    }
    return u3d_seterr(err, U3D_ERR_INVALID_ARG, "unknown bench op");
}

/* ---- one run ---- */

static u3d_status op_run(void *vctx, u3d_error *err)
{
    op_ctx *x = vctx;
    u3d_tensor *t = x->t;
    const u3d_conv3d_params *p = &x->conv;
    switch (x->c.kind) {
    case CONV_FWD: return u3d_conv3d_forward(p, &t[0], &t[1], &t[2], &t[3], err);
    case CONV_BWD_DATA: return u3d_conv3d_backward_data(p, &t[3], &t[1], &t[0], err);
    case CONV_BWD_WEIGHT:
        return u3d_conv3d_backward_weight(p, &t[0], &t[3], &t[1], &t[2], err);
    case UP_FWD: return u3d_upconv3d_forward(&t[0], &t[1], &t[2], &t[3], err);
    case UP_BWD_DATA: return u3d_upconv3d_backward_data(&t[3], &t[1], &t[0], err);
    case UP_BWD_WEIGHT:
        return u3d_upconv3d_backward_weight(&t[0], &t[3], &t[1], &t[2], err);
    case POOL_FWD: return u3d_maxpool3d_forward(&t[0], &t[1], err);
    case POOL_BWD: return u3d_maxpool3d_backward(&t[0], &t[1], &t[2], err);
    case BN_FWD:
        return u3d_batchnorm3d_forward_train(&x->bn, &t[0], &t[2], &t[3],
                                             &t[4], &t[5], &t[1], &t[6],
                                             &t[7], err);
    case BN_BWD:
        return u3d_batchnorm3d_backward(&t[0], &t[1], &t[2], &t[6], &t[7],
                                        &t[8], &t[9], &t[10], err);
    case RELU_FWD: return u3d_relu_forward(&t[0], &t[1], err);
    case RELU_BWD: return u3d_relu_backward(&t[0], &t[1], &t[2], err);
    case SOFTMAX_CE:
        return u3d_softmax_ce(&t[0], &t[1], &t[2], -1, NULL, &t[3], &x->loss,
                              NULL, err);
    case SGD_STEP: return u3d_sgd_step(&x->sgd, &t[0], &t[1], &t[2], err);
    }
    return u3d_seterr(err, U3D_ERR_INVALID_ARG, "unknown bench op");
}

/* ---- work and description ---- */

/* Flops (conv, upconv) or bytes read + written once (the rest). */
static double op_work(const op_case *c, int *is_flops)
{
    double in = (double)c->d * c->h * c->w, k3 = (double)c->k * c->k * c->k;
    double out = (double)(c->d - c->k + 1) * (c->h - c->k + 1) *
                 (c->w - c->k + 1);
    double xs = 4.0 * c->cin * in; /* bytes of the input */
    *is_flops = 0;
    switch (c->kind) {
    case CONV_FWD: case CONV_BWD_DATA: case CONV_BWD_WEIGHT:
        *is_flops = 1;
        return 2.0 * c->cout * c->cin * k3 * out;
    case UP_FWD: case UP_BWD_DATA: case UP_BWD_WEIGHT:
        *is_flops = 1;
        return 2.0 * c->cin * c->cout * 8.0 * in;
    case POOL_FWD: return xs + xs / 8;           /* x, y */
    case POOL_BWD: return 2 * xs + xs / 8;       /* x, dy, dx */
    case BN_FWD: case RELU_FWD: return 2 * xs;   /* x, y */
    case BN_BWD: case RELU_BWD: return 3 * xs;   /* x|y, dy, dx */
    case SOFTMAX_CE: return 2 * xs + 4.0 * in;   /* logits, labels, dlogits */
    case SGD_STEP: return 5 * xs;                /* p, g, buf in; p, buf out */
    }
    return 0;
}

static void op_shape(const op_case *c, char *buf, size_t n)
{
    switch (c->kind) {
    case CONV_FWD: case CONV_BWD_DATA: case CONV_BWD_WEIGHT:
        snprintf(buf, n, "%d->%d ch, in %dx%dx%d, k%d", c->cin, c->cout, c->d,
                 c->h, c->w, c->k);
        break;
    case UP_FWD: case UP_BWD_DATA: case UP_BWD_WEIGHT:
        snprintf(buf, n, "%d->%d ch, in %dx%dx%d, k2 s2", c->cin, c->cout,
                 c->d, c->h, c->w);
        break;
    case SOFTMAX_CE:
        snprintf(buf, n, "%d classes, %dx%dx%d", c->cin, c->d, c->h, c->w);
        break;
    case SGD_STEP: snprintf(buf, n, "%d parameters", c->w); break;
    default:
        snprintf(buf, n, "%d ch, %dx%dx%d", c->cin, c->d, c->h, c->w);
        break;
    }
}

static void op_release(op_ctx *x)
{
    for (int i = 0; i < NT; i++)
        u3d_tensor_release(&x->t[i]);
}

/* Tensors for case c in x. A tiny probe runs first so that an unsupported
 * op costs no huge tensors; --quick keeps the probe's. */
static u3d_status op_prepare(u3d_backend *be, const u3d_bench_opts *o,
                             const op_case *c, op_ctx *x, u3d_error *err)
{
    x->c = shrink(*c);
    u3d_status st = op_setup(be, x, err);
    if (!st)
        st = op_run(x, err);
    if (st == U3D_ERR_UNSUPPORTED || o->quick)
        return st;
    op_release(x);
    memset(x, 0, sizeof *x);
    x->c = *c;
    return op_setup(be, x, err);
}

static void op_one(u3d_backend *be, const u3d_bench_opts *o, const op_case *c,
                   u3d_bench_row *row)
{
    snprintf(row->name, sizeof row->name, "%s", c->name);
    op_case shown = o->quick ? shrink(*c) : *c;
    op_shape(&shown, row->shape, sizeof row->shape);
    row->work = op_work(&shown, &row->is_flops);
    op_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        row->state = U3D_BENCH_FAILED;
        snprintf(row->note, sizeof row->note, "out of host memory");
        return;
    }
    u3d_error e = {0};
    u3d_status st = op_prepare(be, o, c, x, &e);
    if (st)
        u3d_bench_row_error(row, st, &e);
    else
        u3d_bench_time(be, o, op_run, x, row);
    /* which blocking the OpenCL conv ran, and where it came from */
    if (!st && !strcmp(u3d_backend_name(be), "opencl") &&
        (c->kind == CONV_FWD || c->kind == CONV_BWD_DATA ||
         c->kind == CONV_BWD_WEIGHT))
        u3d_cl_conv3d_config(be,
                             c->kind == CONV_FWD        ? "fwd"
                             : c->kind == CONV_BWD_DATA ? "data"
                                                        : "weight",
                             &x->conv, x->t[0].shape, x->c.cout, row->config,
                             sizeof row->config);
    if (!st && !strcmp(u3d_backend_name(be), "opencl") &&
        (c->kind == CONV_FWD || c->kind == CONV_BWD_DATA ||
         c->kind == CONV_BWD_WEIGHT))
        row->work_done = u3d_cl_conv3d_flops_done(
            be,
            c->kind == CONV_FWD        ? "fwd"
            : c->kind == CONV_BWD_DATA ? "data"
                                       : "weight",
            &x->conv, x->t[0].shape, x->c.cout);
    op_release(x);
    free(x);
}

void u3d_bench_ops_all(u3d_backend *be, const u3d_bench_opts *o,
                       u3d_bench_report *r)
{
    for (int i = 0; i < NCASES && r->nops < U3D_BENCH_MAX_OPS; i++) {
        if (!u3d_bench_selected(o, op_cases[i].name))
            continue;
        if (o->verbose)
            fprintf(stderr, "bench: %s...\n", op_cases[i].name);
        op_one(be, o, &op_cases[i], &r->ops[r->nops++]);
    }
}
