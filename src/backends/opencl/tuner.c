/* `unet3d tune` on OpenCL: see tuner.h. The parameter spaces are the
 * table `entries` below; the search itself is tune_search.c. */
#define _POSIX_C_SOURCE 200809L
#include "backends/opencl/tuner.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "backends/opencl/conv3d_igemm.h"
#include "backends/opencl/conv3d_wino.h"
#include "backends/opencl/opencl.h"
#include "backends/opencl/tune_search.h"
#include "unet3d/rng.h"

/* What a candidate runs: it is checked, then timed, on this op. */
typedef enum tune_op {
    OP_CONV_FWD, OP_CONV_DATA, OP_CONV_WEIGHT,
    OP_BN /* batch norm, training forward then backward */
} tune_op;

/* One family and pass of the table. */
typedef struct tune_entry {
    u3d_tune_space space;
    /* the code's default of each parameter (what a device without rows
     * uses: keep equal to the fallbacks in the family's host code) */
    int defaults[U3D_TUNE_MAX_PARAMS];
    tune_op op;
    const char *buckets[3]; /* shape buckets, NULL-terminated */
} tune_entry;

/* conv3d forward / data gradient (cl/conv3d.cl conv3d_fwd): the tile of a
 * work-item is cob channels x nv vectors of vw positions, acc accumulator
 * vectors at most; registers bound acc * vw. */
static int conv_fwd_valid(const int *v, const u3d_tune_limits *lim)
{
    int vw = v[0], cob = v[1], acc = v[2], lws = v[4];
    int regs = lim->is_cpu ? 512 : 256; /* floats a work-item may hold */
    return acc >= cob && acc * vw <= regs && (size_t)lws <= lim->max_wg;
}

/* conv3d weight gradient (conv3d_bwd_weight): bw_cob x bw_vw partial sums
 * per work-item, chunks of bw_chunk..bw_maxchunk positions. */
static int conv_weight_valid(const int *v, const u3d_tune_limits *lim)
{
    int vw = v[0], cob = v[1], lws = v[2], chunk = v[3], maxchunk = v[4];
    return vw * cob <= 256 && chunk <= maxchunk && chunk >= vw &&
           (size_t)lws <= lim->max_wg;
}

#define CONV_FWD_SPACE(pass_)                                                  \
    {"conv3d", pass_, 6,                                                       \
     {"vw", "cob", "acc", "nv", "lws", "tapout_cin"},                          \
     {{1, 2, 4, 8, 16},                                                        \
      {2, 4, 6, 8, 12, 16},                                                    \
      {4, 8, 12, 16, 24, 32},                                                  \
      {1, 2, 4, 8},                                                            \
      {1, 8, 16, 32, 64, 128, 256},                                            \
      {1, 16, 64}},                                                            \
     4,                                                                        \
     {{16, 8, 16, 4, 64, 16},   /* PoCL AVX-512 rows */                        \
      {8, 8, 12, 4, 64, 16},    /* PoCL AVX2 rows */                           \
      {4, 8, 8, 4, 64, 16},     /* the GPU defaults */                         \
      {4, 4, 8, 2, 128, 16}},                                                  \
     conv_fwd_valid}

/* batchnorm (cl/batchnorm3d.cl, reduce.h): vw floats per load, lws items
 * per group (a power of 2; lws floats of local memory per reduction),
 * chunk voxels per group. */
static int bn_valid(const int *v, const u3d_tune_limits *lim)
{
    size_t lws = (size_t)v[1];
    return lws <= lim->max_wg &&
           (!lim->local_mem || 2 * lws * sizeof(float) <= lim->local_mem) &&
           (size_t)v[2] >= lws * (size_t)v[0];
}

/* conv3d_igemm (conv3d_igemm.c): the tile parameters of u3d_igemm_cfg in
 * its order, then (weight gradient) the split-K ones, last "use" (1: this
 * path, 0: the direct kernels, for this pass and bucket). A tile is valid
 * when u3d_cl_igemm_valid says so for the 3x3x3 kernels the tuner runs;
 * with use 0 the tile is unused, so only the defaults' stand for it (no
 * repeats of the direct path under other names). */
#define IGEMM_USE_FWD 8
#define IGEMM_USE_BW 11
static const int igemm_def[2][12] = {
    {64, 64, 16, 8, 16, 4, 4, 1, 1},
    {32, 64, 16, 8, 16, 4, 4, 1, 256, 4096, 64, 1}};

static int igemm_valid(const int *v, const u3d_tune_limits *lim,
                       u3d_igemm_pass pass, int use_at)
{
    if (!v[use_at]) /* the direct path: the tile must be the defaults' */
        return !memcmp(v, igemm_def[pass], (size_t)use_at * sizeof *v);
    if (!lim->dev) /* no device to ask */
        return 0;
    u3d_igemm_cfg c = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    return u3d_cl_igemm_valid(lim->dev, pass, &c, 27, NULL, 0);
}

static int igemm_fwd_valid(const int *v, const u3d_tune_limits *lim)
{
    return igemm_valid(v, lim, U3D_IGEMM_FWD, IGEMM_USE_FWD);
}

static int igemm_bw_valid(const int *v, const u3d_tune_limits *lim)
{
    return igemm_valid(v, lim, U3D_IGEMM_BWW, IGEMM_USE_BW);
}

/* CLBlast's SGEMM-like tiles: 64x64 by 8x16 items (the default), 32x64,
 * 128x64 by 16x16, 32x32 by 8x8, 64x128, a wide K step; then the direct
 * path. */
#define IGEMM_FWD_SPACE(pass_)                                                 \
    {"conv3d_igemm", pass_, 9,                                                 \
     {"mwg", "nwg", "kwg", "mdimc", "ndimc", "vwm", "vwn", "lpad", "use"},    \
     {{16, 32, 64, 128},                                                       \
      {16, 32, 64, 128},                                                       \
      {8, 16, 32},                                                             \
      {4, 8, 16},                                                              \
      {8, 16, 32},                                                             \
      {1, 2, 4, 8},                                                            \
      {1, 2, 4, 8},                                                            \
      {0, 1, 2},                                                               \
      {0, 1}},                                                                 \
     7,                                                                        \
     {{64, 64, 16, 8, 16, 4, 4, 1, 1},                                         \
      {32, 64, 16, 8, 16, 4, 4, 1, 1},                                         \
      {128, 64, 16, 16, 16, 4, 4, 1, 1},                                       \
      {32, 32, 16, 8, 8, 4, 4, 1, 1},                                          \
      {64, 128, 16, 8, 16, 4, 4, 1, 1},                                        \
      {64, 64, 32, 8, 16, 4, 4, 1, 1},                                         \
      {64, 64, 16, 8, 16, 4, 4, 1, 0}},                                        \
     igemm_fwd_valid}

/* winograd (conv3d_wino.c, cl/winograd.cl): the GEMM's work-item holds
 * cob x nv vectors of vw tiles; "use" last (1: this path for the pass and
 * bucket, 0: the direct kernels). */
static int wino_valid(const int *v, const u3d_tune_limits *lim)
{
    int vw = v[0], nv = v[1], cob = v[2], lws = v[3];
    int regs = lim->is_cpu ? 512 : 256; /* floats a work-item may hold */
    return vw * nv * cob <= regs && (size_t)lws <= lim->max_wg;
}

#define WINO_SPACE(pass_)                                                      \
    {"winograd", pass_, 6,                                                     \
     {"vw", "nv", "cob", "gemm_lws", "chunk_kb", "use"},                       \
     {{4, 8, 16},                                                              \
      {1, 2, 3, 4},                                                            \
      {2, 4, 6, 8, 12, 16},                                                    \
      {1, 4, 16, 64},                                                          \
      {1024, 4096, 16384},                                                     \
      {0, 1}},                                                                 \
     6,                                                                        \
     {{8, 2, 6, 1, 4096, 1},  /* the default (PoCL AVX2) */                   \
      {8, 1, 8, 1, 4096, 1},                                                   \
      {16, 2, 6, 1, 4096, 1}, /* AVX-512 (32 registers) */                     \
      {16, 1, 12, 1, 4096, 1},                                                 \
      {4, 4, 8, 64, 4096, 1}, /* GPUs */                                       \
      {8, 2, 6, 1, 4096, 0}}, /* the direct kernels */                         \
     wino_valid}

/* its weight gradient: cob x cib vector accumulators over tile lanes, and
 * as many loads (cob + cib) per step */
static int wino_bw_valid(const int *v, const u3d_tune_limits *lim)
{
    int vw = v[0], cob = v[2], cib = v[3];
    int regs = lim->is_cpu ? 512 : 256;
    return (cob * cib + cob + cib) * vw <= regs;
}

/* The table: one entry per family and pass. Adding a family is one more
 * entry: its parameters and values, a few hand-picked candidates, a
 * validity function with the device's limits (local memory for its
 * tiles), the code's defaults, the op it runs and its shape buckets. */
static const tune_entry entries[] = {
    {CONV_FWD_SPACE("fwd"), {4, 8, 8, 4, 64, 16}, OP_CONV_FWD,
     {"small", "large", NULL}},
    {CONV_FWD_SPACE("data"), {4, 8, 8, 4, 64, 16}, OP_CONV_DATA,
     {"small", "large", NULL}},
    {{"conv3d", "weight", 6,
      {"bw_vw", "bw_cob", "bw_lws", "bw_chunk", "bw_maxchunk", "bw_items"},
      {{4, 8, 16},
       {2, 4, 6, 8, 12},
       {16, 32, 64, 128},
       {256, 1024, 4096},
       {4096, 16384, 65536},
       {64, 256, 1024, 4096, 65536}},
      3,
      {{16, 8, 64, 1024, 16384, 256},
       {8, 6, 64, 1024, 16384, 256},
       {4, 4, 64, 4096, 65536, 65536}},
      conv_weight_valid},
     {4, 4, 64, 4096, 65536, 65536},
     OP_CONV_WEIGHT,
     {"small", "large", NULL}},
    {IGEMM_FWD_SPACE("fwd"), {64, 64, 16, 8, 16, 4, 4, 1, 1}, OP_CONV_FWD,
     {"small", "large", NULL}},
    {IGEMM_FWD_SPACE("data"), {64, 64, 16, 8, 16, 4, 4, 1, 1}, OP_CONV_DATA,
     {"small", "large", NULL}},
    {{"conv3d_igemm", "weight", 12,
      {"bw_mwg", "bw_nwg", "bw_kwg", "bw_mdimc", "bw_ndimc", "bw_vwm",
       "bw_vwn", "bw_lpad", "bw_groups", "bw_minchunk", "bw_maxsplit",
       "use"},
      {{16, 32, 64, 128},
       {16, 32, 64, 128},
       {8, 16, 32},
       {4, 8, 16},
       {8, 16, 32},
       {1, 2, 4, 8},
       {1, 2, 4, 8},
       {0, 1, 2},
       {64, 256, 1024, 4096},
       {256, 1024, 4096, 16384},
       {16, 64, 256},
       {0, 1}},
      6,
      {{32, 64, 16, 8, 16, 4, 4, 1, 256, 4096, 64, 1},
       {64, 64, 16, 8, 16, 4, 4, 1, 256, 4096, 64, 1},
       {32, 32, 16, 8, 8, 4, 4, 1, 256, 4096, 64, 1},
       {64, 64, 32, 8, 16, 4, 4, 1, 256, 4096, 64, 1},
       {32, 64, 16, 8, 16, 4, 4, 1, 1024, 1024, 256, 1}, /* more split-K */
       {32, 64, 16, 8, 16, 4, 4, 1, 256, 4096, 64, 0}},
      igemm_bw_valid},
     {32, 64, 16, 8, 16, 4, 4, 1, 256, 4096, 64, 1},
     OP_CONV_WEIGHT,
     {"small", "large", NULL}},
    {WINO_SPACE("fwd"), {8, 2, 6, 1, 4096, 1}, OP_CONV_FWD,
     {"small", "large", NULL}},
    {WINO_SPACE("data"), {8, 2, 6, 1, 4096, 1}, OP_CONV_DATA,
     {"small", "large", NULL}},
    {{"winograd", "weight", 6,
      {"vw", "nv", "cob", "cib", "chunk_kb", "use"},
      {{4, 8, 16},
       {1, 2, 4},
       {1, 2, 3, 4, 6},
       {1, 2, 3, 4, 6},
       {4096, 16384, 65536},
       {0, 1}},
      5,
      {{8, 2, 3, 3, 16384, 1}, /* the default (PoCL AVX2) */
       {8, 1, 3, 3, 16384, 1},
       {16, 1, 4, 4, 16384, 1}, /* AVX-512 */
       {4, 4, 4, 4, 16384, 1},
       {8, 2, 3, 3, 16384, 0}}, /* the direct kernels */
      wino_bw_valid},
     {8, 2, 3, 3, 16384, 1},
     OP_CONV_WEIGHT,
     {"small", "large", NULL}},
    /* layers without passes or buckets: rows of pass and bucket "-" */
    {{"batchnorm", U3D_TUNE_ANY, 3,
      {"vw", "lws", "chunk"},
      {{1, 2, 4, 8, 16},
       {1, 8, 32, 64, 128, 256},
       {1024, 4096, 16384, 65536}},
      2,
      {{16, 1, 16384}, /* PoCL rows */
       {4, 128, 4096}}, /* the GPU defaults */
      bn_valid},
     {4, 128, 4096},
     OP_BN,
     {U3D_TUNE_ANY, NULL}},
};
#define NENTRIES ((int)(sizeof entries / sizeof entries[0]))

const struct u3d_tune_space *u3d_tuner_space(const char *family,
                                             const char *pass)
{
    for (int i = 0; i < NENTRIES; i++)
        if (!strcmp(entries[i].space.family, family) &&
            !strcmp(entries[i].space.pass, pass))
            return &entries[i].space;
    return NULL;
}

/* Shapes of a bucket: timed on the paper net's layers (conv3d_bucket's
 * classes), checked on a small input with the same channels (so the same
 * kernel variant compiles) and padding (the padded-copy path). Batch
 * norm: cin channels. */
typedef struct conv_case {
    int n, cin, cout, d, h, w, pad;
} conv_case;

static conv_case timed_case(tune_op op, const char *bucket)
{
    if (op == OP_BN) /* a crop of bench's batchnorm rows */
        return (conv_case){1, 64, 64, 32, 64, 64, 0};
    if (!strcmp(bucket, "large")) /* bench's conv3d_*_256to256 */
        return (conv_case){1, 256, 256, 11, 13, 13, 0};
    return (conv_case){1, 32, 64, 48, 60, 60, 0}; /* a crop of 32to64 */
}

/* The large bucket is timed on both of bench's deep shapes: a winner on
 * 256->256 alone was 13 % slower on 256->512 (weight gradient, quiet PoCL
 * run). Returns 0 when the bucket has one timed case. */
static int timed_case2(tune_op op, const char *bucket, conv_case *c)
{
    if (op == OP_BN || strcmp(bucket, "large"))
        return 0;
    *c = (conv_case){1, 256, 512, 9, 11, 11, 0}; /* conv3d_*_256to512 */
    return 1;
}

static conv_case check_case(tune_op op, const char *bucket)
{
    conv_case c = timed_case(op, bucket);
    c.n = 2;
    c.d = 4;
    c.h = 5;
    c.w = 7;
    c.pad = 1;
    if (op == OP_BN)
        c.cin = c.cout = 3;
    return c;
}

/* Tensors of one case: conv (T_Y is dy of the gradients) or batch norm
 * (B_*). */
enum { T_X, T_W, T_B, T_Y, T_DX, T_DW, T_DB, NT = 12 };
enum { B_X, B_GAMMA, B_BETA, B_RMEAN, B_RVAR, B_Y, B_SMEAN, B_SINV, B_DY,
       B_DX, B_DGAMMA, B_DBETA };
typedef struct conv_io {
    u3d_conv3d_params p;
    u3d_bn_params bn;
    u3d_tensor t[NT];
} conv_io;

static void io_release(conv_io *c)
{
    for (int i = 0; i < NT; i++)
        u3d_tensor_release(&c->t[i]);
}

static u3d_status fill(u3d_tensor *t, uint64_t seed, u3d_error *err)
{
    size_t n = u3d_shape_count(t->shape);
    float *h = malloc(n * sizeof *h);
    if (!h)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (size_t i = 0; i < n; i++)
        h[i] = (float)((double)(u3d_splitmix64(&seed) >> 40) / 8388608.0 -
                       1.0);
    u3d_status st = u3d_tensor_write(t, h, err);
    free(h);
    return st;
}

static u3d_status bn_setup(u3d_backend *be, const conv_case *c, conv_io *io,
                           u3d_error *err)
{
    io->bn.eps = 1e-5f;
    io->bn.momentum = 0.1f;
    u3d_shape xs = u3d_shape5(c->n, c->cin, c->d, c->h, c->w);
    u3d_shape cs = u3d_shape5(1, c->cin, 1, 1, 1);
    u3d_status st = U3D_OK;
    for (int i = 0; i < NT && !st; i++) {
        int big = i == B_X || i == B_Y || i == B_DY || i == B_DX;
        st = u3d_tensor_create(be, big ? xs : cs, U3D_F32, &io->t[i], err);
    }
    static const int rnd[] = {B_X, B_GAMMA, B_BETA, B_DY};
    for (int i = 0; i < 4 && !st; i++)
        st = fill(&io->t[rnd[i]], 7 + (uint64_t)i, err);
    if (!st)
        st = u3d_tensor_fill(&io->t[B_RMEAN], 0, err);
    if (!st)
        st = u3d_tensor_fill(&io->t[B_RVAR], 1, err);
    if (st)
        io_release(io);
    return st;
}

static u3d_status io_setup(u3d_backend *be, tune_op op, const conv_case *c,
                           conv_io *io, u3d_error *err)
{
    memset(io, 0, sizeof *io);
    if (op == OP_BN)
        return bn_setup(be, c, io, err);
    io->p.kernel = 3;
    io->p.pad = c->pad;
    int o = 2 * c->pad - 2;
    u3d_shape xs = u3d_shape5(c->n, c->cin, c->d, c->h, c->w);
    u3d_shape ws = u3d_shape5(c->cout, c->cin, 3, 3, 3);
    u3d_shape bs = u3d_shape5(1, c->cout, 1, 1, 1);
    u3d_shape ys = u3d_shape5(c->n, c->cout, c->d + o, c->h + o, c->w + o);
    u3d_shape sh[] = {xs, ws, bs, ys, xs, ws, bs};
    u3d_status st = U3D_OK;
    for (int i = 0; i <= T_DB && !st; i++)
        st = u3d_tensor_create(be, sh[i], U3D_F32, &io->t[i], err);
    for (int i = 0; i < 4 && !st; i++)
        st = fill(&io->t[i], 7 + (uint64_t)i, err);
    if (st)
        io_release(io);
    return st;
}

/* Runs op on the inputs T_X, T_W, T_B, T_Y into its outputs. */
static u3d_status io_run(conv_io *io, tune_op op, u3d_error *err)
{
    u3d_tensor *t = io->t;
    switch (op) {
    case OP_CONV_FWD:
        return u3d_conv3d_forward(&io->p, &t[T_X], &t[T_W], &t[T_B],
                                  &t[T_Y], err);
    case OP_CONV_DATA:
        return u3d_conv3d_backward_data(&io->p, &t[T_Y], &t[T_W], &t[T_DX],
                                        err);
    case OP_CONV_WEIGHT:
        return u3d_conv3d_backward_weight(&io->p, &t[T_X], &t[T_Y],
                                          &t[T_DW], &t[T_DB], err);
    case OP_BN:
        U3D_TRY(u3d_batchnorm3d_forward_train(
            &io->bn, &t[B_X], &t[B_GAMMA], &t[B_BETA], &t[B_RMEAN],
            &t[B_RVAR], &t[B_Y], &t[B_SMEAN], &t[B_SINV], err));
        return u3d_batchnorm3d_backward(&t[B_X], &t[B_DY], &t[B_GAMMA],
                                        &t[B_SMEAN], &t[B_SINV], &t[B_DX],
                                        &t[B_DGAMMA], &t[B_DBETA], err);
    }
    return u3d_seterr(err, U3D_ERR_INVALID_ARG, "tuner: unknown op");
}

/* The results of op, read back one after the other into h (NULL: their
 * float count only). The weight gradient's are dw, then db. */
static u3d_status io_result(conv_io *io, tune_op op, float *h, size_t *n,
                            u3d_error *err)
{
    int outs[4] = {op == OP_CONV_FWD    ? T_Y
                   : op == OP_CONV_DATA ? T_DX
                                        : T_DW,
                   op == OP_CONV_WEIGHT ? T_DB : -1, -1, -1};
    if (op == OP_BN) { /* not the running statistics: updated each run */
        outs[0] = B_Y;
        outs[1] = B_DX;
        outs[2] = B_DGAMMA;
        outs[3] = B_DBETA;
    }
    *n = 0;
    for (int i = 0; i < 4 && outs[i] >= 0; i++) {
        const u3d_tensor *t = &io->t[outs[i]];
        if (h)
            U3D_TRY(u3d_tensor_read(t, h + *n, err));
        *n += u3d_shape_count(t->shape);
    }
    return U3D_OK;
}

typedef struct tctx {
    u3d_backend *be, *ref;
    u3d_cl *cl;
    const tune_entry *e;
    const char *bucket;
    conv_io check, timed, timed2;
    int has2; /* timed2 is set up: the time is the sum of both */
    float *want;   /* the reference result of the check case */
    size_t nwant;
    float *got;
    double best;   /* fastest so far (skips repeats of slow candidates) */
    FILE *log;
    int compile_fail, check_fail;
} tctx;

static double now(void *unused)
{
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* normwise relative difference, against max(max|want|, 1) */
static double diff(const float *a, const float *b, size_t n)
{
    double m = 1, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)b[i]) > m)
            m = fabs((double)b[i]);
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) /* NaN counts */
            d = isnan(e) ? INFINITY : e;
    }
    return d / m;
}

/* Warm-up (compiles the timed shape's variant), then the best of 2;
 * INFINITY on an error. */
static double time_io(tctx *c, conv_io *io, u3d_error *err)
{
    if (io_run(io, c->e->op, err) || u3d_backend_finish(c->be, err))
        return INFINITY;
    double best = INFINITY;
    for (int r = 0; r < 2; r++) {
        double t0 = now(NULL);
        if (io_run(io, c->e->op, err) || u3d_backend_finish(c->be, err))
            return INFINITY;
        double t = now(NULL) - t0;
        best = t < best ? t : best;
        if (best > 3 * c->best) /* clearly slower: no second run */
            break;
    }
    return best;
}

static int measure(void *ctx, const int *v, double *seconds)
{
    tctx *c = ctx;
    const u3d_tune_space *sp = &c->e->space;
    u3d_error err = {0};
    int rc = 1;
    if (u3d_tuning_force(&c->cl->tuning, sp->family, sp->params, v,
                         sp->nparams, &err))
        return 1;
    /* the direct kernels' candidates run on the direct path, wherever the
     * device's default or tuned "use" rows (implicit GEMM, Winograd)
     * would send the layer; Winograd's past the implicit GEMM */
    u3d_tuning *tu = &c->cl->tuning;
    const char *off[2] = {"conv3d_igemm", "winograd"};
    int noff = !strcmp(sp->family, "conv3d")     ? 2
               : !strcmp(sp->family, "winograd") ? 1
                                                 : 0;
    for (int i = 0; i < noff && tu->nforced < U3D_TUNE_MAX_FORCED; i++) {
        u3d_tune_row *r = &tu->forced[tu->nforced++];
        memset(r, 0, sizeof *r);
        snprintf(r->family, sizeof r->family, "%s", off[i]);
        snprintf(r->param, sizeof r->param, "use");
    }
    /* the check: the op on the small case against the reference */
    size_t ng;
    u3d_status st = io_run(&c->check, c->e->op, &err);
    if (!st)
        st = io_result(&c->check, c->e->op, c->got, &ng, &err);
    if (st) {
        c->compile_fail++;
        goto done;
    }
    /* test_opencl_ops' tolerances: long float reductions get more */
    double tol = c->e->op == OP_CONV_WEIGHT || c->e->op == OP_BN ? 1e-4
                                                                 : 1e-5;
    double d = diff(c->got, c->want, c->nwant);
    if (!(d <= tol)) {
        c->check_fail++;
        goto done;
    }
    double best = time_io(c, &c->timed, &err), best2 = 0;
    if (c->has2 && isfinite(best))
        best2 = time_io(c, &c->timed2, &err);
    if (!isfinite(best) || !isfinite(best2))
        goto done;
    best += best2;
    *seconds = best;
    if (best < c->best)
        c->best = best;
    rc = 0;
done:
    u3d_tuning_unforce(&c->cl->tuning);
    return rc;
}

/* Rows of (family, pass, bucket) are replaced by the winner's. */
static u3d_status merge(u3d_tune_row **rows, int *n, const tune_entry *e,
                        const char *bucket, const int *v, u3d_error *err)
{
    const u3d_tune_space *sp = &e->space;
    int k = 0;
    for (int i = 0; i < *n; i++) {
        const u3d_tune_row *r = &(*rows)[i];
        if (!strcmp(r->family, sp->family) && !strcmp(r->pass, sp->pass) &&
            !strcmp(r->bucket, bucket))
            continue;
        (*rows)[k++] = *r;
    }
    u3d_tune_row *nr = realloc(*rows, (size_t)(k + sp->nparams) * sizeof *nr);
    if (!nr)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (int p = 0; p < sp->nparams; p++) {
        u3d_tune_row *r = &nr[k++];
        memset(r, 0, sizeof *r);
        snprintf(r->family, sizeof r->family, "%s", sp->family);
        snprintf(r->pass, sizeof r->pass, "%s", sp->pass);
        snprintf(r->bucket, sizeof r->bucket, "%s", bucket);
        snprintf(r->param, sizeof r->param, "%s", sp->params[p]);
        r->value = v[p];
    }
    *rows = nr;
    *n = k;
    return U3D_OK;
}

static int selected(const u3d_tuner_opts *o, const tune_entry *e)
{
    if (!o->only || !o->only[0])
        return 1;
    char name[64];
    snprintf(name, sizeof name, "%s/%s", e->space.family, e->space.pass);
    return !strcmp(o->only, e->space.family) || !strcmp(o->only, name);
}

/* The GPU path is not searched on a CPU unless asked for by name. */
static int cpu_skips(const u3d_tuner_opts *o, const tune_entry *e,
                     const u3d_cl *cl)
{
    return cl->is_cpu && !strcmp(e->space.family, "conv3d_igemm") &&
           !(o->only && !strncmp(o->only, "conv3d_igemm", 12));
}

/* One entry and bucket: the search, then the winner merged into rows. */
static u3d_status tune_one(tctx *c, const u3d_tuner_opts *o, double budget,
                           const u3d_tune_limits *lim, uint64_t seed,
                           u3d_tune_row **rows, int *nrows, char *summary,
                           size_t sn, u3d_error *err)
{
    const tune_entry *e = c->e;
    const u3d_tune_space *sp = &e->space;
    conv_case cc = check_case(e->op, c->bucket);
    conv_case tc = timed_case(e->op, c->bucket);
    u3d_status st;
    (void)o;
    /* the reference result of the check case */
    conv_io ref;
    U3D_TRY(io_setup(c->ref, e->op, &cc, &ref, err));
    st = io_run(&ref, e->op, err);
    io_result(&ref, e->op, NULL, &c->nwant, err);
    c->want = malloc(c->nwant * sizeof *c->want);
    c->got = malloc(c->nwant * sizeof *c->got);
    if (!st && (!c->want || !c->got))
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    if (!st)
        st = io_result(&ref, e->op, c->want, &c->nwant, err);
    io_release(&ref);
    if (!st)
        st = io_setup(c->be, e->op, &cc, &c->check, err);
    if (!st) {
        st = io_setup(c->be, e->op, &tc, &c->timed, err);
        if (st)
            io_release(&c->check);
    }
    conv_case tc2;
    if (!st && timed_case2(e->op, c->bucket, &tc2)) {
        st = io_setup(c->be, e->op, &tc2, &c->timed2, err);
        if (st) {
            io_release(&c->check);
            io_release(&c->timed);
        }
        c->has2 = !st;
    }
    if (st) {
        free(c->want);
        free(c->got);
        return st;
    }
    /* the values in use now: the baseline */
    int base[U3D_TUNE_MAX_PARAMS] = {0};
    for (int p = 0; p < sp->nparams; p++)
        base[p] = u3d_tuning_get(&c->cl->tuning, sp->family, sp->pass,
                                 c->bucket, sp->params[p], e->defaults[p],
                                 NULL);
    int use = sp->params[sp->nparams - 1] &&
              !strcmp(sp->params[sp->nparams - 1], "use");
    if (use) { /* the path this pass takes now (default: by device) */
        int k3[3] = {3, 3, 3}, w = 0;
        u3d_error e2;
        if (!strcmp(sp->family, "winograd"))
            u3d_cl_wino_use(c->cl, sp->pass,
                            e->op == OP_CONV_DATA ? tc.cout : tc.cin,
                            e->op == OP_CONV_DATA ? tc.cin : tc.cout, k3, &w,
                            &e2);
        else
            w = u3d_cl_conv_path_at(c->cl, sp->pass, tc.cin, tc.cout) ==
                U3D_CL_CONV_IGEMM;
        base[sp->nparams - 1] = w;
        if (!base[sp->nparams - 1]) /* its tile unused: see igemm_valid */
            memcpy(base, e->defaults, (size_t)(sp->nparams - 1) * sizeof *base);
    }
    u3d_tune_search_opts so = {budget, seed, 0, base, 2, 0.03};
    u3d_tune_outcome out;
    c->best = INFINITY;
    c->compile_fail = c->check_fail = 0;
    st = u3d_tune_search(sp, lim, &so, measure, now, c, &out, err);
    io_release(&c->check);
    io_release(&c->timed);
    if (c->has2)
        io_release(&c->timed2);
    free(c->want);
    free(c->got);
    U3D_TRY(st);
    char bs[320], ws[320];
    u3d_tune_format(sp, base, bs, sizeof bs);
    u3d_tune_format(sp, out.best, ws, sizeof ws);
    fprintf(c->log,
            "%s %s %s: %d candidates run (%d failed: %d errors, %d wrong "
            "results), %d invalid skipped%s\n",
            sp->family, sp->pass, c->bucket, out.tried, out.failed,
            c->compile_fail, c->check_fail, out.invalid,
            out.out_of_time ? ", budget spent" : "");
    if (!out.found) {
        snprintf(summary, sn, "%s %s %s: no candidate passed", sp->family,
                 sp->pass, c->bucket);
        fprintf(c->log, "  no candidate passed the check: nothing kept\n");
        return U3D_OK;
    }
    int same = !memcmp(out.best, base, (size_t)sp->nparams * sizeof *base);
    fprintf(c->log, "  in use: %s, %.2f ms\n  best:   %s, %.2f ms%s\n", bs,
            out.baseline_s * 1e3, ws, out.best_s * 1e3,
            same ? " (the values in use: nothing beat them by 3 % when "
                   "measured again)"
                 : " (confirmed against the values in use)");
    snprintf(summary, sn, "%s %s %s: %s (%.2f ms; in use %.2f ms)",
             sp->family, sp->pass, c->bucket, ws, out.best_s * 1e3,
             out.baseline_s * 1e3);
    return merge(rows, nrows, e, c->bucket, out.best, err);
}

u3d_status u3d_tuner_run(u3d_backend *be, const u3d_tuner_opts *o,
                         FILE *log, char *path, size_t n, u3d_error *err)
{
    if (strcmp(u3d_backend_name(be), "opencl"))
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "the %s backend has nothing to tune (the "
                          "OpenCL backend's kernels do)",
                          u3d_backend_name(be));
    u3d_cl *cl = u3d_cl_of(be);
    char dir[900];
    if (o->out && o->out[0])
        snprintf(path, n, "%s", o->out);
    else {
        u3d_cache_dir(dir, sizeof dir);
        if (!dir[0])
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "no cache folder to write the results "
                              "to (UNET3D_CACHE_DIR is off, HOME unset): "
                              "set UNET3D_CACHE_DIR or give --out");
        u3d_tune_path(dir, &cl->tuning.key, path, n);
    }
    int ntasks = 0, skipped_igemm = 0;
    for (int i = 0; i < NENTRIES; i++)
        for (int b = 0; selected(o, &entries[i]) && entries[i].buckets[b];
             b++) {
            if (cpu_skips(o, &entries[i], cl)) {
                skipped_igemm = 1;
                continue;
            }
            ntasks++;
        }
    if (!ntasks)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--only %s names no family or family/pass "
                          "(conv3d, conv3d/fwd, conv3d/data, conv3d/weight, "
                          "conv3d_igemm, conv3d_igemm/fwd, "
                          "conv3d_igemm/data, conv3d_igemm/weight, "
                          "batchnorm)",
                          o->only);
    u3d_backend_config rc = {.backend = "ref"};
    u3d_backend *ref;
    U3D_TRY(u3d_backend_create(&rc, &ref, err));
    u3d_tune_limits lim = {cl->max_wg, 0, cl->is_cpu, cl};
    cl_ulong lm = 0;
    clGetDeviceInfo(cl->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm,
                    NULL);
    lim.local_mem = (size_t)lm;
    /* the rows kept: those of an earlier run (of this device) stay unless
     * replaced */
    u3d_tune_row *rows = NULL;
    int nrows = 0;
    u3d_error ignore = {0};
    if (u3d_tune_read(path, &cl->tuning.key, &rows, &nrows, &ignore)) {
        free(rows);
        rows = NULL;
        nrows = 0;
    }
    const char *forced = getenv("UNET3D_CONV_PATH");
    if (forced && forced[0])
        fprintf(log, "note: UNET3D_CONV_PATH=%s overrides the \"use\" "
                     "switch of conv3d_igemm while tuning; unset it to "
                     "compare the two paths\n",
                forced);
    /* the budget is shared out as the run goes: a pass that overran (its
     * reference, its baseline, the confirmation) leaves less to the next */
    const double total = o->minutes * 60.0, t_start = now(NULL);
    fprintf(log, "tuning %s | %s (driver %s): %d passes x buckets, %.0f s "
                 "in all\n",
            cl->platform_name, cl->device_name, cl->driver_version, ntasks,
            total);
    if (skipped_igemm)
        fprintf(log, "conv3d_igemm: not tuned on a CPU device (the GPU "
                     "path; the direct kernels are 5-40x faster on PoCL); "
                     "--only conv3d_igemm tunes it anyway\n");
    int left = ntasks;
    char summary[4096] = "";
    size_t used = 0;
    u3d_status st = U3D_OK;
    uint64_t seed = o->seed;
    for (int i = 0; i < NENTRIES && !st; i++) {
        if (!selected(o, &entries[i]))
            continue;
        for (int b = 0; entries[i].buckets[b] && !st; b++) {
            if (cpu_skips(o, &entries[i], cl))
                continue;
            double budget = (total - (now(NULL) - t_start)) / left--;
            if (budget < 0)
                budget = 0; /* the baseline only: nothing else starts */
            tctx c = {0};
            c.be = be;
            c.ref = ref;
            c.cl = cl;
            c.e = &entries[i];
            c.bucket = entries[i].buckets[b];
            c.log = log;
            char line[800];
            st = tune_one(&c, o, budget, &lim, u3d_splitmix64(&seed), &rows,
                          &nrows, line, sizeof line, err);
            if (!st && used < sizeof summary)
                used += (size_t)snprintf(summary + used,
                                         sizeof summary - used, "%s\n",
                                         line);
            fflush(log);
        }
    }
    u3d_backend_destroy(ref);
    if (!st)
        st = u3d_tune_write(path, &cl->tuning.key, rows, nrows, summary, err);
    free(rows);
    if (st)
        return st;
    /* this backend uses them from now on, as a new process would */
    u3d_tuning_free(&cl->tuning);
    u3d_tune_key key = cl->tuning.key;
    return u3d_tuning_init(&cl->tuning, &key,
                           o->out && o->out[0] ? NULL : dir, err);
}
