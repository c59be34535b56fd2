/* Every op of ops.h on every backend, from one table (like ggml's
 * test-backend-ops).
 *
 * Each row of CASES is one case: an op, shapes (odd sizes, N > 1, channel
 * counts off the kernels' block sizes), options and a data generator. A case
 * runs on the "ref" backend (the host reference, the oracle) and on every
 * backend t_backends() can create (test_util.c holds the one list of names:
 * OpenCL, cuDNN where there is a GPU), and each backend's outputs are
 * compared with the reference's at the tolerance of that backend (TOLS, the
 * values the per-backend tests used). Rows flagged F_FD also check the
 * gradients of every backend, the reference included, by central
 * differences of the reference's loss sum(y * r) in double, and some
 * generators carry known answers (max-pool routing with ties and NaN, the
 * hand examples of upconv and crop-concat) or formulas (ReLU, SGD, axpy,
 * the running statistics) that check the reference itself. F_FULL rows are
 * left out under oclgrind (t_small()), which runs the others.
 *
 * Adding a case is one line in CASES; adding a backend is one name in
 * t_backends() and one row of TOLS. BAD lists shape and argument errors,
 * also checked on every backend. Every failure names the op, the case and
 * the backend. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

/* ------------------------------------------------------------------ */
/* the table                                                           */
/* ------------------------------------------------------------------ */

enum {
    OP_CONV, OP_UPCONV, OP_POOL, OP_RELU, OP_BN, OP_CC, OP_CE, OP_SGD,
    OP_ADAM, OP_AXPY, OP_FILL, OP_COUNT
};
static const char *const OP_NAMES[OP_COUNT] = {
    "conv3d",      "upconv3d",   "maxpool3d", "relu",
    "batchnorm3d", "crop_concat", "softmax_ce", "sgd_step",
    "adam_step",   "axpy",        "tensor_fill"};

enum {
    F_BIAS = 1 << 0,    /* conv/upconv: forward with bias */
    F_DB = 1 << 1,      /* conv/upconv: weight gradient also gives db */
    F_AFFINE = 1 << 2,  /* batch norm: gamma, beta */
    F_RUN = 1 << 3,     /* batch norm: running statistics updated */
    F_DPARAM = 1 << 4,  /* batch norm: dgamma, dbeta requested */
    F_INPLACE = 1 << 5, /* relu: y = x and dx = dy; batch norm: y = x */
    F_NOPROBS = 1 << 6, /* softmax-ce: probs not requested */
    F_NODL = 1 << 7,    /* softmax-ce: dlogits not requested */
    F_FD = 1 << 8,      /* gradients by finite differences too */
    F_FULL = 1 << 9,    /* not under oclgrind (too slow there) */
    F_HAND = 1 << 10    /* hand-made inputs with known outputs */
};

/* data of max-pool: uniform, quantized (ties), few integers (many ties),
 * a shuffled ramp (distinct values, for finite differences), routing
 * patterns (ties, -inf, NaN) */
enum { G_RAND, G_TIES, G_FEW, G_RAMP, G_PATTERN };

typedef struct op_case {
    int op;
    const char *name;
    int n, c, d, h, w; /* x; crop-concat: up; softmax-ce: logits */
    int c2;            /* conv/upconv: Cout; crop-concat: skip channels */
    int k, pad;        /* conv */
    int ka[3], pa[3];  /* conv per axis (D, H, W) when ka[0] > 0 */
    int fd;            /* pool window / upconv factor along D when > 0
                          (1: 1x2x2), else 2 */
    int dd, dh, dw;    /* crop-concat: skip size - up size per axis */
    int ignore;        /* softmax-ce: ignore label */
    float f0, f1, f2;  /* sgd: lr, momentum, weight decay; axpy: alpha;
                          fill: value; softmax-ce: ignored fraction;
                          adam: lr, beta1, weight decay */
    float f3, f4;      /* adam: beta2, eps */
    int gen, arg;      /* max-pool data; arg: first routing pattern */
    int flags;
} op_case;

#define CONV(nm, N, CI, CO, D, H, W, K, P, fl)                                 \
    {.op = OP_CONV, .name = nm, .n = N, .c = CI, .d = D, .h = H, .w = W,      \
     .c2 = CO, .k = K, .pad = P, .flags = fl}
/* per-axis kernel (anisotropic levels: 1x3x3) */
#define CONVA(nm, N, CI, CO, D, H, W, KD, KH, KW, PD, PH, PW, fl)              \
    {.op = OP_CONV, .name = nm, .n = N, .c = CI, .d = D, .h = H, .w = W,      \
     .c2 = CO, .ka = {KD, KH, KW}, .pa = {PD, PH, PW}, .flags = fl}
/* factor / window FD x 2 x 2 */
#define UPCONVA(nm, N, CI, CO, D, H, W, FD, fl)                                \
    {.op = OP_UPCONV, .name = nm, .n = N, .c = CI, .d = D, .h = H, .w = W,    \
     .c2 = CO, .fd = FD, .flags = fl}
#define POOLA(nm, N, C, D, H, W, G, FD, fl)                                    \
    {.op = OP_POOL, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,       \
     .gen = G, .fd = FD, .flags = fl}
#define UPCONV(nm, N, CI, CO, D, H, W, fl)                                     \
    {.op = OP_UPCONV, .name = nm, .n = N, .c = CI, .d = D, .h = H, .w = W,    \
     .c2 = CO, .flags = fl}
#define POOL(nm, N, C, D, H, W, G, A, fl)                                      \
    {.op = OP_POOL, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,       \
     .gen = G, .arg = A, .flags = fl}
#define RELU(nm, N, C, D, H, W, fl)                                            \
    {.op = OP_RELU, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,       \
     .flags = fl}
#define BN(nm, N, C, D, H, W, fl)                                              \
    {.op = OP_BN, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,         \
     .flags = fl}
#define CC(nm, N, CU, D, H, W, CS, DD, DH, DW, fl)                             \
    {.op = OP_CC, .name = nm, .n = N, .c = CU, .d = D, .h = H, .w = W,        \
     .c2 = CS, .dd = DD, .dh = DH, .dw = DW, .flags = fl}
#define CE(nm, N, C, D, H, W, IGN, FRAC, fl)                                   \
    {.op = OP_CE, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,         \
     .ignore = IGN, .f0 = FRAC, .flags = fl}
#define SGD(nm, N, C, D, H, W, LR, MOM, WD, fl)                                \
    {.op = OP_SGD, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,        \
     .f0 = LR, .f1 = MOM, .f2 = WD, .flags = fl}
/* Adam: 3 steps from step STEP0 + 1 */
#define ADAM(nm, N, C, D, H, W, LR, B1, B2, EPS, WD, STEP0, fl)                \
    {.op = OP_ADAM, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,       \
     .f0 = LR, .f1 = B1, .f2 = WD, .f3 = B2, .f4 = EPS, .arg = STEP0,         \
     .flags = fl}
#define AXPY(nm, N, C, D, H, W, A, fl)                                         \
    {.op = OP_AXPY, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,       \
     .f0 = A, .flags = fl}
#define FILL(nm, N, C, D, H, W, V, fl)                                         \
    {.op = OP_FILL, .name = nm, .n = N, .c = C, .d = D, .h = H, .w = W,       \
     .f0 = V, .flags = fl}

#define BD (F_BIAS | F_DB)
#define BNALL (F_AFFINE | F_RUN | F_DPARAM)

static const op_case CASES[] = {
    /* conv3d: name, N, Cin, Cout, D, H, W, kernel, pad, flags */
    CONV("k3 valid odd N2", 2, 3, 5, 5, 7, 9, 3, 0, BD),
    CONV("k3 same", 2, 5, 3, 5, 6, 7, 3, 1, BD),
    CONV("k1 N3", 3, 4, 7, 3, 5, 11, 1, 0, BD),
    CONV("k3 valid no bias", 2, 2, 3, 3, 3, 3, 3, 0, 0),
    CONV("k1 one voxel", 1, 1, 1, 1, 1, 1, 1, 0, BD),
    CONV("k3 same tiny", 2, 3, 2, 2, 2, 2, 3, 1, BD),
    CONV("k3 long rows Cout 9", 2, 3, 9, 6, 5, 20, 3, 0, 0),
    CONV("k2 even kernel", 1, 2, 3, 4, 4, 4, 2, 0, BD),
    CONV("k4 pad2", 2, 4, 5, 4, 3, 8, 4, 2, BD),
    CONV("k2 pad1", 1, 3, 4, 5, 6, 7, 2, 1, F_DB),
    CONV("k3 pad2", 2, 2, 5, 3, 4, 6, 3, 2, F_BIAS),
    CONV("k3 db without bias", 2, 3, 4, 4, 5, 6, 3, 1, F_DB),
    CONV("fd k3 same", 2, 2, 3, 3, 4, 5, 3, 1, BD | F_FD),
    CONV("fd k3 valid", 2, 2, 2, 4, 3, 5, 3, 0, BD | F_FD),
    CONV("fd k2 pad1", 2, 3, 2, 3, 3, 4, 2, 1, BD | F_FD),
    CONV("k3 same wide", 3, 13, 19, 10, 9, 21, 3, 1, BD | F_FULL),
    CONV("k4 pad2 wide", 2, 7, 11, 11, 4, 17, 4, 2, F_FULL),
    CONV("k2 pad1 wide", 1, 9, 16, 8, 10, 23, 2, 1, BD | F_FULL),
    CONV("k1 wide", 3, 12, 5, 6, 12, 14, 1, 0, F_DB | F_FULL),
    CONV("k3 pad2 wide", 2, 11, 17, 9, 7, 12, 3, 2, BD | F_FULL),
    CONV("k3 valid wide", 1, 13, 19, 12, 12, 33, 3, 0, BD | F_FULL),
    /* anisotropic: D, H, W kernel, D, H, W padding */
    CONVA("k1x3x3 valid", 2, 3, 4, 3, 6, 7, 1, 3, 3, 0, 0, 0, BD),
    CONVA("k1x3x3 same", 2, 3, 5, 4, 5, 6, 1, 3, 3, 0, 1, 1, BD),
    CONVA("k1x3x3 same no bias", 1, 2, 3, 2, 4, 9, 1, 3, 3, 0, 1, 1, 0),
    CONVA("k1x3x3 one plane", 2, 4, 3, 1, 5, 5, 1, 3, 3, 0, 1, 1, F_DB),
    CONVA("k3x1x3 pad 1,0,1", 1, 2, 3, 4, 3, 5, 3, 1, 3, 1, 0, 1, BD),
    CONVA("k3x3x3 per axis", 1, 2, 3, 4, 4, 5, 3, 3, 3, 1, 1, 1, BD),
    CONVA("fd k1x3x3 same", 2, 2, 3, 2, 4, 5, 1, 3, 3, 0, 1, 1, BD | F_FD),
    CONVA("fd k1x3x3 valid", 2, 2, 2, 3, 4, 4, 1, 3, 3, 0, 0, 0, BD | F_FD),
    CONVA("k1x3x3 same wide", 2, 11, 17, 5, 9, 21, 1, 3, 3, 0, 1, 1,
          BD | F_FULL),
    /* upconv3d: name, N, Cin, Cout, D, H, W, flags */
    UPCONV("odd N3", 3, 5, 3, 3, 1, 4, BD),
    UPCONV("Cin 1 no bias", 1, 1, 6, 2, 4, 3, 0),
    UPCONV("Cout 1", 2, 6, 1, 4, 3, 2, BD),
    UPCONV("channels 9 -> 10", 2, 9, 10, 2, 3, 3, BD),
    UPCONV("long rows", 2, 3, 2, 1, 2, 70, BD),
    UPCONV("rows of one voxel", 3, 2, 3, 3, 2, 1, BD),
    UPCONV("db without bias", 2, 4, 3, 2, 3, 5, F_DB),
    UPCONV("hand example", 1, 1, 2, 1, 1, 1, BD | F_HAND),
    UPCONV("fd", 2, 3, 2, 2, 3, 2, BD | F_FD),
    UPCONV("random-size N3", 3, 13, 7, 9, 5, 8, BD | F_FULL),
    UPCONV("random-size no bias", 2, 11, 13, 6, 9, 7, F_FULL),
    UPCONV("random-size odd", 1, 7, 12, 9, 9, 9, BD | F_FULL),
    UPCONV("channels 64 -> 67", 2, 64, 67, 3, 5, 7, BD | F_FULL),
    UPCONV("channels 128 -> 128", 1, 128, 128, 5, 6, 7, F_FULL),
    /* anisotropic 1x2x2 */
    UPCONVA("1x2x2 odd N3", 3, 5, 3, 3, 1, 4, 1, BD),
    UPCONVA("1x2x2 no bias", 1, 2, 4, 2, 3, 3, 1, 0),
    UPCONVA("1x2x2 db without bias", 2, 4, 3, 2, 3, 5, 1, F_DB),
    UPCONVA("fd 1x2x2", 2, 3, 2, 2, 3, 2, 1, BD | F_FD),
    UPCONVA("1x2x2 random-size", 2, 13, 7, 5, 5, 8, 1, BD | F_FULL),
    /* maxpool3d: name, N, C, D, H, W, data, pattern, flags */
    POOL("odd everywhere N2", 2, 3, 5, 7, 9, G_RAND, 0, 0),
    POOL("wide rows ties", 1, 2, 4, 5, 35, G_TIES, 0, 0),
    POOL("ties N3", 3, 4, 6, 3, 7, G_TIES, 0, 0),
    POOL("one window", 1, 1, 2, 2, 2, G_RAND, 0, 0),
    POOL("few values", 2, 2, 7, 6, 4, G_FEW, 0, 0),
    POOL("pattern all equal", 1, 1, 3, 3, 3, G_PATTERN, 0, 0),
    POOL("pattern tie in scan order", 1, 1, 3, 3, 3, G_PATTERN, 1, 0),
    POOL("pattern tie across planes", 1, 1, 3, 3, 3, G_PATTERN, 2, 0),
    POOL("pattern all -inf", 1, 1, 3, 3, 3, G_PATTERN, 3, 0),
    POOL("pattern one NaN", 1, 1, 3, 3, 3, G_PATTERN, 4, 0),
    POOL("pattern two NaNs", 1, 1, 3, 3, 3, G_PATTERN, 5, 0),
    POOL("patterns 17 windows wide", 1, 1, 3, 3, 35, G_PATTERN, 0, 0),
    POOL("fd distinct values", 2, 2, 3, 4, 5, G_RAMP, 0, F_FD),
    POOL("ties large", 3, 4, 13, 12, 11, G_TIES, 0, F_FULL),
    POOL("random large", 2, 3, 10, 13, 8, G_RAND, 0, F_FULL),
    POOL("few values large", 1, 4, 9, 11, 13, G_FEW, 0, F_FULL),
    /* anisotropic 1x2x2: every plane pooled in H, W only */
    POOLA("1x2x2 odd N2", 2, 3, 5, 7, 9, G_RAND, 1, 0),
    POOLA("1x2x2 ties", 3, 2, 3, 4, 7, G_TIES, 1, 0),
    POOLA("1x2x2 one plane", 1, 2, 1, 4, 6, G_FEW, 1, 0),
    POOLA("fd 1x2x2 distinct values", 2, 2, 3, 4, 5, G_RAMP, 1, F_FD),
    POOLA("1x2x2 large", 2, 3, 7, 13, 11, G_TIES, 1, F_FULL),
    /* relu: name, N, C, D, H, W, flags */
    RELU("odd N2", 2, 3, 5, 7, 9, 0),
    RELU("one voxel", 1, 1, 1, 1, 1, 0),
    RELU("N3", 3, 5, 4, 9, 6, 0),
    RELU("in place", 2, 2, 3, 4, 5, F_INPLACE),
    RELU("in place one voxel", 1, 1, 1, 1, 1, F_INPLACE),
    RELU("fd", 2, 2, 3, 3, 3, F_FD),
    RELU("large", 3, 5, 9, 8, 9, F_FULL),
    RELU("large in place", 2, 4, 9, 9, 7, F_INPLACE | F_FULL),
    /* batchnorm3d: name, N, C, D, H, W, flags */
    BN("9 channels", 2, 9, 3, 5, 7, BNALL),
    BN("plain, dparams", 1, 1, 2, 3, 4, F_DPARAM),
    BN("affine N3", 3, 4, 5, 2, 6, F_AFFINE | F_DPARAM),
    BN("running, no affine", 2, 6, 1, 3, 2, F_RUN),
    BN("running, dparams no affine", 2, 3, 2, 2, 5, F_RUN | F_DPARAM),
    BN("two values per channel", 1, 2, 1, 1, 2, BNALL),
    BN("in place affine", 2, 3, 4, 5, 6, BNALL | F_INPLACE),
    BN("in place plain", 1, 5, 2, 7, 9, F_RUN | F_INPLACE),
    BN("fd affine", 2, 2, 3, 2, 3, F_AFFINE | F_DPARAM | F_FD),
    BN("fd plain", 2, 2, 3, 2, 3, F_FD),
    BN("67 channels", 2, 67, 3, 5, 7, BNALL | F_FULL),
    BN("many blocks", 2, 3, 24, 20, 22, BNALL | F_FULL),
    BN("large affine", 3, 6, 11, 10, 9, BNALL | F_FULL),
    BN("large running", 2, 5, 7, 11, 4, F_RUN | F_DPARAM | F_FULL),
    BN("large plain", 1, 4, 10, 3, 11, F_FULL),
    BN("large in place", 1, 3, 9, 10, 11, F_RUN | F_INPLACE | F_FULL),
    /* crop_concat (both backward modes always): name, N, up C, D, H, W,
     * skip C, skip - up along D, H, W, flags */
    CC("wide rows", 2, 2, 2, 3, 37, 3, 2, 1, 5, 0),
    CC("no crop", 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),
    CC("odd differences N3", 3, 4, 3, 5, 2, 2, 3, 4, 1, 0),
    CC("mixed differences", 2, 3, 5, 2, 4, 4, 5, 0, 2, 0),
    CC("hand example", 2, 1, 1, 1, 2, 2, 0, 2, 4, F_HAND),
    CC("fd", 2, 1, 1, 2, 2, 2, 3, 1, 3, F_FD),
    CC("large", 3, 4, 12, 9, 11, 4, 5, 5, 5, F_FULL),
    CC("large odd", 2, 2, 7, 12, 10, 1, 1, 2, 3, F_FULL),
    CC("large no D crop", 1, 3, 10, 8, 12, 3, 0, 3, 4, F_FULL),
    /* softmax_ce: name, N, C, D, H, W, ignore label, ignored fraction,
     * flags */
    CE("ignore 255", 2, 3, 4, 5, 3, 255, 0.3f, 0),
    CE("ignore -1, 7 classes", 1, 7, 2, 5, 4, -1, 0.3f, 0),
    CE("a class ignored", 3, 2, 3, 1, 5, 1, 0.3f, 0),
    CE("loss only", 2, 5, 5, 2, 3, 255, 0.3f, F_NOPROBS | F_NODL),
    CE("probs only", 1, 4, 3, 3, 2, -1, 0.3f, F_NODL),
    CE("dlogits only", 2, 6, 2, 4, 5, 1, 0.3f, F_NOPROBS),
    CE("nothing labeled", 2, 4, 3, 3, 5, -1, 1.0f, 0),
    CE("nothing ignored", 1, 3, 2, 3, 4, 255, 0.0f, 0),
    CE("fd", 2, 3, 2, 3, 2, 255, 0.3f, F_FD),
    CE("large", 3, 7, 11, 9, 10, 255, 0.3f, F_FULL),
    CE("large few ignored", 2, 5, 12, 12, 12, -1, 0.17f, F_FULL),
    CE("large a class ignored", 1, 2, 11, 7, 8, 1, 0.3f, F_FULL),
    CE("large loss only", 3, 6, 9, 10, 11, 255, 0.3f,
       F_NOPROBS | F_NODL | F_FULL),
    /* sgd_step (3 steps): name, N, C, D, H, W, lr, momentum, weight decay */
    SGD("plain", 3, 2, 1, 3, 7, 0.05f, 0.0f, 0.0f, 0),
    SGD("momentum", 5, 4, 3, 2, 9, 0.01f, 0.99f, 0.0f, 0),
    SGD("weight decay one value", 1, 1, 1, 1, 1, 0.1f, 0.0f, 1e-4f, 0),
    SGD("momentum and weight decay", 7, 5, 3, 3, 9, 0.003f, 0.99f, 1e-4f, 0),
    SGD("momentum 0.9 decay 1e-3", 2, 3, 5, 6, 7, 0.05f, 0.9f, 1e-3f, 0),
    /* adam_step (3 steps): name, N, C, D, H, W, lr, beta1, beta2, eps,
     * weight decay, steps done before */
    ADAM("first steps", 3, 2, 1, 3, 7, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 0),
    ADAM("one value", 1, 1, 1, 1, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 0),
    ADAM("weight decay late", 5, 4, 3, 2, 9, 3e-3f, 0.9f, 0.999f, 1e-8f,
         1e-2f, 1000, 0),
    ADAM("betas 0.5 0.9 eps 1e-3", 2, 3, 5, 6, 7, 0.05f, 0.5f, 0.9f, 1e-3f,
         1e-4f, 4, 0),
    ADAM("beta1 0", 7, 5, 3, 3, 9, 1e-3f, 0.0f, 0.99f, 1e-8f, 0.0f, 20, 0),
    /* axpy: name, N, C, D, H, W, alpha */
    AXPY("odd", 2, 3, 4, 5, 6, 1.37f, 0),
    AXPY("one value", 1, 1, 1, 1, 1, -0.7f, 0),
    AXPY("alpha 0", 3, 7, 2, 8, 5, 0.0f, 0),
    AXPY("large", 3, 9, 9, 9, 9, -1.6f, F_FULL),
    /* tensor fill: name, N, C, D, H, W, value */
    FILL("odd", 2, 3, 4, 5, 7, -2.5f, 0),
    FILL("one value", 1, 1, 1, 1, 1, 3.0f, 0),
};
#define NCASES (sizeof CASES / sizeof CASES[0])

/* ------------------------------------------------------------------ */
/* tolerances per backend                                              */
/* ------------------------------------------------------------------ */

/* What is compared with the reference; each backend gives its tolerance,
 * normwise: max|got - want| <= tol * max(max|want|, 1) (t_assert_close),
 * or without the floor of 1 for the kinds in nofloor. 0 means exact
 * (NaN matching NaN). */
enum {
    T_EXACT, T_CONV_Y, T_CONV_DX, T_CONV_DW, T_BN_Y, T_BN_MEAN, T_BN_INVSTD,
    T_BN_RUN, T_BN_INFER, T_BN_DX, T_BN_DP, T_CE_LOSS, T_CE_WSUM,
    T_CE_PROBS, T_CE_DL, T_SGD, T_ADAM, T_AXPY, T_COUNT
};
#define BIT(k) (1u << (k))

typedef struct be_tol {
    const char *backend;
    double t[T_COUNT];
    unsigned nofloor;
    /* finite-difference checks: 0 holds the backend's gradients to the
     * tolerance the reference is held to; 1 adds the backend's tolerance
     * against the reference */
    int fd_add;
} be_tol;

static const be_tol TOLS[] = {
    /* OpenCL: the reference sums in double; the device sums Cin*k^3 float
     * products per output (1e-5) and up to N*D*H*W per weight or batch-norm
     * parameter gradient (1e-4). Softmax-ce: loss, weight sum and dlogits
     * relative to their own size (dlogits ~ w/sum w, far below 1). */
    {"opencl",
     {[T_CONV_Y] = 1e-5, [T_CONV_DX] = 1e-5, [T_CONV_DW] = 1e-4,
      [T_BN_Y] = 1e-5, [T_BN_MEAN] = 1e-5, [T_BN_INVSTD] = 1e-5,
      [T_BN_RUN] = 1e-5, [T_BN_INFER] = 1e-5, [T_BN_DX] = 1e-4,
      [T_BN_DP] = 1e-4, [T_CE_LOSS] = 1e-5, [T_CE_WSUM] = 1e-5,
      [T_CE_PROBS] = 1e-5, [T_CE_DL] = 1e-5, [T_SGD] = 1e-6,
      [T_ADAM] = 1e-6, [T_AXPY] = 1e-6},
     BIT(T_CE_LOSS) | BIT(T_CE_WSUM) | BIT(T_CE_DL), 0},
    /* cuDNN (its former gpu_* tests): 1e-4 for forward values and single
     * sums, 1e-3 for reductions over N*D*H*W, exact data movement */
    {"cudnn",
     {[T_CONV_Y] = 1e-4, [T_CONV_DX] = 1e-4, [T_CONV_DW] = 1e-3,
      [T_BN_Y] = 1e-4, [T_BN_MEAN] = 1e-5, [T_BN_INVSTD] = 1e-4,
      [T_BN_RUN] = 1e-5, [T_BN_INFER] = 1e-4, [T_BN_DX] = 1e-3,
      [T_BN_DP] = 1e-3, [T_CE_LOSS] = 1e-5, [T_CE_WSUM] = 1e-6,
      [T_CE_PROBS] = 1e-5, [T_CE_DL] = 1e-4, [T_SGD] = 1e-6,
      [T_ADAM] = 1e-6, [T_AXPY] = 1e-6},
     0, 1},
};

/* ------------------------------------------------------------------ */
/* state, messages                                                     */
/* ------------------------------------------------------------------ */

static u3d_backend *g_ref;
static u3d_backend *g_be[T_MAX_BACKENDS];
static const be_tol *g_tol[T_MAX_BACKENDS];
static int g_nbe;
static char g_ctx[256]; /* "conv3d 'k3 same' on opencl" */

static void set_ctx(const op_case *c, const char *backend)
{
    snprintf(g_ctx, sizeof g_ctx, "%s '%s' on %s", OP_NAMES[c->op], c->name,
             backend);
}

/* "<context>: <part>", in one of a few rotating buffers */
static const char *W(const char *part)
{
    static char buf[4][384];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s: %s", g_ctx, part);
    return buf[k];
}

static void ok(u3d_status st, const u3d_error *err, const char *what)
{
    if (st != U3D_OK)
        fail_msg("%s failed: %s", W(what), err->msg);
}

/* got vs want at tolerance tol (see be_tol); floor1: normwise against
 * max(max|want|, 1), else against max|want|. */
static void compare(const float *got, const float *want, size_t n, double tol,
                    int floor1, const char *what)
{
    if (tol == 0.0) {
        for (size_t i = 0; i < n; i++)
            if (!(got[i] == want[i] || (isnan(got[i]) && isnan(want[i]))))
                fail_msg("%s: index %zu is %.9g, want exactly %.9g", what, i,
                         got[i], want[i]);
        return;
    }
    if (floor1) {
        t_assert_close(got, want, n, tol, what);
        return;
    }
    double amax = 0, emax = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        amax = fmax(amax, fabs(want[i]));
        if (!(e <= emax)) { /* also catches NaN */
            emax = isnan(e) ? INFINITY : e;
            worst = i;
        }
    }
    if (!(emax <= tol * amax))
        fail_msg("%s: max error %.3g at index %zu (got %.9g, want %.9g) vs "
                 "max |want| %.3g (tolerance %.1g relative)",
                 what, emax, worst, got[worst], want[worst], amax, tol);
}

/* ------------------------------------------------------------------ */
/* host data and outputs                                               */
/* ------------------------------------------------------------------ */

typedef struct host {
    float *a[8];
    size_t n[8];
    int32_t *lab;
    size_t nlab;
} host;

static float *hrand(host *h, int i, size_t n, uint64_t *seed, float lo,
                    float hi)
{
    h->a[i] = t_rand_array(seed, n, lo, hi);
    h->n[i] = n;
    return h->a[i];
}

static void host_free(host *h)
{
    for (int i = 0; i < 8; i++)
        free(h->a[i]);
    free(h->lab);
}

enum { MAXOUT = 12 };
typedef struct outs {
    int n;
    const char *name[MAXOUT];
    float *v[MAXOUT];
    size_t len[MAXOUT];
    int tol[MAXOUT];
} outs;

/* Adds the contents of t (read now) as output name. */
static void out_tensor(outs *o, const char *name, const u3d_tensor *t,
                       int tol)
{
    assert_true(o->n < MAXOUT);
    o->name[o->n] = name;
    o->v[o->n] = t_read(t);
    o->len[o->n] = u3d_shape_count(t->shape);
    o->tol[o->n] = tol;
    o->n++;
}

static void out_scalar(outs *o, const char *name, float v, int tol)
{
    assert_true(o->n < MAXOUT);
    o->name[o->n] = name;
    o->v[o->n] = malloc(sizeof(float));
    assert_non_null(o->v[o->n]);
    o->v[o->n][0] = v;
    o->len[o->n] = 1;
    o->tol[o->n] = tol;
    o->n++;
}

static const float *out_get(const outs *o, const char *name)
{
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->name[i], name))
            return o->v[i];
    fail_msg("%s: no output '%s'", W("outputs"), name);
    return NULL;
}

static void outs_free(outs *o)
{
    for (int i = 0; i < o->n; i++)
        free(o->v[i]);
    o->n = 0;
}

/* Tensors of one run, released together. */
typedef struct tset {
    u3d_tensor t[16];
    int n;
} tset;

static u3d_tensor *tnew(tset *s, u3d_backend *be, u3d_shape sh,
                        const float *host)
{
    assert_true(s->n < 16);
    s->t[s->n] = t_tensor(be, sh, host);
    return &s->t[s->n++];
}

/* New tensor filled with junk: an output every element of which the op
 * must overwrite. */
static u3d_tensor *tjunk(tset *s, u3d_backend *be, u3d_shape sh, float v)
{
    u3d_error err = {0};
    u3d_tensor *t = tnew(s, be, sh, NULL);
    ok(u3d_tensor_fill(t, v, &err), &err, "fill");
    return t;
}

static void tset_release(tset *s)
{
    for (int i = 0; i < s->n; i++)
        u3d_tensor_release(&s->t[i]);
    s->n = 0;
}

static u3d_shape shp(const op_case *c)
{
    return u3d_shape5(c->n, c->c, c->d, c->h, c->w);
}

static u3d_shape chan(int c) { return u3d_shape5(1, c, 1, 1, 1); }

static const float JUNK = 7.0f;

/* A requested-not output left as it was: every element still JUNK. */
static void check_untouched(const u3d_tensor *t, const char *what)
{
    float *v = t_read(t);
    for (size_t i = 0; i < u3d_shape_count(t->shape); i++)
        if (v[i] != JUNK)
            fail_msg("%s: index %zu is %g, not left untouched", W(what), i,
                     v[i]);
    free(v);
}

/* ------------------------------------------------------------------ */
/* the ops: make (host inputs), run (on a backend), check (invariants   */
/* and known answers, on every backend; is_ref: formulas in double that  */
/* only the reference is held to)                                        */
/* ------------------------------------------------------------------ */

/* conv3d and upconv3d: x a0, w a1, b a2, dy a3 */
/* The window / factor along D of pool and upconv cases. */
static int factor_d(const op_case *c) { return c->fd > 0 ? c->fd : 2; }

/* The case's conv parameters: cubic, or per axis (kernel3). */
static u3d_conv3d_params conv_params_of(const op_case *c)
{
    if (c->ka[0] > 0)
        return u3d_conv3d_params3(c->ka, c->pa, 0);
    u3d_conv3d_params p = {.kernel = c->k, .pad = c->pad};
    return p;
}

static u3d_shape conv_out_shape(const op_case *c)
{
    if (c->op == OP_UPCONV)
        return u3d_shape5(c->n, c->c2, factor_d(c) * c->d, 2 * c->h,
                          2 * c->w);
    u3d_conv3d_params p = conv_params_of(c);
    return u3d_shape5(c->n, c->c2, u3d_conv3d_out_size_axis(c->d, &p, 0),
                      u3d_conv3d_out_size_axis(c->h, &p, 1),
                      u3d_conv3d_out_size_axis(c->w, &p, 2));
}

static u3d_shape conv_w_shape(const op_case *c)
{
    if (c->op == OP_UPCONV)
        return u3d_shape5(c->c, c->c2, factor_d(c), 2, 2);
    u3d_conv3d_params p = conv_params_of(c);
    int k[3], pad[3];
    u3d_conv3d_axes(&p, k, pad);
    return u3d_shape5(c->c2, c->c, k[0], k[1], k[2]);
}

static void make_conv(const op_case *c, uint64_t *seed, host *h)
{
    hrand(h, 0, u3d_shape_count(shp(c)), seed, -1, 1);
    hrand(h, 1, u3d_shape_count(conv_w_shape(c)), seed, -1, 1);
    hrand(h, 2, (size_t)c->c2, seed, -1, 1);
    hrand(h, 3, u3d_shape_count(conv_out_shape(c)), seed, -1, 1);
    if (c->flags & F_HAND) { /* upconv: one voxel, 1 -> 2 channels */
        assert_true(c->op == OP_UPCONV && h->n[0] == 1 && c->c2 == 2);
        h->a[0][0] = 2.0f;
        for (int i = 0; i < 16; i++)
            h->a[1][i] = (float)(i + 1);
        h->a[2][0] = 0.5f;
        h->a[2][1] = -1.0f;
    }
}

static void run_conv(u3d_backend *be, const op_case *c, const host *h,
                     outs *o)
{
    u3d_error err = {0};
    u3d_conv3d_params p = conv_params_of(c);
    u3d_shape xs = shp(c), ws = conv_w_shape(c), ys = conv_out_shape(c);
    tset s = {0};
    u3d_tensor *x = tnew(&s, be, xs, h->a[0]), *w = tnew(&s, be, ws, h->a[1]);
    u3d_tensor *b = tnew(&s, be, chan(c->c2), h->a[2]);
    u3d_tensor *dy = tnew(&s, be, ys, h->a[3]);
    u3d_tensor *y = tjunk(&s, be, ys, JUNK), *dx = tjunk(&s, be, xs, JUNK);
    u3d_tensor *dw = tjunk(&s, be, ws, JUNK);
    u3d_tensor *db = tjunk(&s, be, chan(c->c2), JUNK);
    u3d_tensor *bias = c->flags & F_BIAS ? b : NULL;
    u3d_tensor *dbias = c->flags & F_DB ? db : NULL;
    if (c->op == OP_CONV) {
        ok(u3d_conv3d_forward(&p, x, w, bias, y, &err), &err, "forward");
        ok(u3d_conv3d_backward_data(&p, dy, w, dx, &err), &err,
           "backward_data");
        ok(u3d_conv3d_backward_weight(&p, x, dy, dw, dbias, &err), &err,
           "backward_weight");
    } else {
        ok(u3d_upconv3d_forward(x, w, bias, y, &err), &err, "forward");
        ok(u3d_upconv3d_backward_data(dy, w, dx, &err), &err,
           "backward_data");
        ok(u3d_upconv3d_backward_weight(x, dy, dw, dbias, &err), &err,
           "backward_weight");
    }
    out_tensor(o, "y", y, T_CONV_Y);
    out_tensor(o, "dx", dx, T_CONV_DX);
    out_tensor(o, "dw", dw, T_CONV_DW);
    if (dbias)
        out_tensor(o, "db", db, T_CONV_DW);
    else
        check_untouched(db, "db (not requested)");
    const char *wino = getenv("UNET3D_WINOGRAD");
    if (c->op == OP_CONV && wino && !strcmp(wino, "on")) {
        /* a training step's forward and data gradient with a weights
         * version (the OpenCL backend's Winograd path keeps the weights'
         * transform from one to the other), then a data gradient whose
         * forward did not run (it transforms them itself); in the runs
         * that force the Winograd path, the only ones where these cases
         * take it (the others would repeat their calls for nothing,
         * minutes under oclgrind) */
        u3d_tensor *yv = tjunk(&s, be, ys, JUNK), *dxv = tjunk(&s, be, xs, JUNK);
        u3d_tensor *dxd = tjunk(&s, be, xs, JUNK);
        u3d_conv3d_params pv = p;
        pv.weights_version = 1;
        ok(u3d_conv3d_forward(&pv, x, w, bias, yv, &err), &err,
           "forward (versioned)");
        ok(u3d_conv3d_backward_data(&pv, dy, w, dxv, &err), &err,
           "backward_data (versioned)");
        pv.weights_version = 2;
        ok(u3d_conv3d_backward_data(&pv, dy, w, dxd, &err), &err,
           "backward_data (new version)");
        out_tensor(o, "y (versioned)", yv, T_CONV_Y);
        out_tensor(o, "dx (versioned)", dxv, T_CONV_DX);
        out_tensor(o, "dx (new version)", dxd, T_CONV_DX);
    }
    tset_release(&s);
}

/* upconv's hand example: y = x * w + b for one input voxel, the 8 taps in
 * (a, b, c) order; dx = sum dy*w, dw = x*dy, db = sum dy */
static void check_conv(const op_case *c, const host *h, const outs *o,
                       int is_ref)
{
    (void)is_ref;
    if (!(c->flags & F_HAND))
        return;
    const float *y = out_get(o, "y"), *dx = out_get(o, "dx");
    const float *dw = out_get(o, "dw"), *db = out_get(o, "db");
    const float *w = h->a[1], *b = h->a[2], *dy = h->a[3];
    for (int co = 0; co < 2; co++)
        for (int t = 0; t < 8; t++) {
            int a = t >> 2, bb = (t >> 1) & 1, cc = t & 1;
            float got = y[co * 8 + (a * 2 + bb) * 2 + cc];
            float want = 2.0f * w[co * 8 + t] + b[co];
            if (got != want)
                fail_msg("%s: y[%d, %d,%d,%d] = %g, want %g", W("hand"), co,
                         a, bb, cc, got, want);
        }
    double sx = 0, sb = 0;
    for (int i = 0; i < 16; i++) {
        sx += (double)dy[i] * w[i];
        if (fabsf(dw[i] - 2.0f * dy[i]) > 1e-6f)
            fail_msg("%s: dw[%d] = %g, want %g", W("hand"), i, dw[i],
                     2.0f * dy[i]);
    }
    for (int i = 0; i < 8; i++)
        sb += dy[i];
    if (!(fabs(dx[0] - sx) < 1e-5) || !(fabs(db[0] - sb) < 1e-5))
        fail_msg("%s: dx %g (want %g), db %g (want %g)", W("hand"), dx[0], sx,
                 db[0], sb);
}

/* max-pool: x a0, dy a1. Routing patterns: 2x2x2 windows in d,h,w scan
 * order, with the first maximum (PyTorch's rule) and the value. */
enum { NPAT = 6 };
static const float PAT[NPAT][8] = {
    {2, 2, 2, 2, 2, 2, 2, 2},                         /* all equal */
    {0, 1, 0, 5, 0, 5, 5, 0},                         /* tie, scan order */
    {0, 1, 0, 0, 3, 0, 0, 3},                         /* tie across planes */
    {-INFINITY, -INFINITY, -INFINITY, -INFINITY,      /* all -inf */
     -INFINITY, -INFINITY, -INFINITY, -INFINITY},
    {1, 9, 2, NAN, 3, 4, 5, 6}, /* a NaN is the maximum */
    {NAN, 9, 2, 1, NAN, 4, 5, 6}};  /* PyTorch updates on every NaN: the last */
static const int PAT_IDX[NPAT] = {0, 3, 4, 0, 3, 4};
static const float PAT_Y[NPAT] = {2, 5, 3, -INFINITY, NAN, NAN};

static u3d_shape pool_out_shape(const op_case *c)
{
    return u3d_shape5(c->n, c->c, c->d / factor_d(c), c->h / 2, c->w / 2);
}

static void make_pool(const op_case *c, uint64_t *seed, host *h)
{
    size_t n = u3d_shape_count(shp(c));
    float *x = hrand(h, 0, n, seed, -1, 1);
    hrand(h, 1, u3d_shape_count(pool_out_shape(c)), seed, -1, 1);
    if (c->gen == G_TIES) /* quantized values make ties frequent */
        for (size_t i = 0; i < n; i++)
            x[i] = floorf(x[i] * 2.0f);
    if (c->gen == G_FEW)
        for (size_t i = 0; i < n; i++)
            x[i] = (float)t_randi(seed, -2, 2);
    if (c->gen == G_RAMP) { /* a shuffled ramp: gaps of 0.01, no ties */
        for (size_t i = 0; i < n; i++)
            x[i] = 0.01f * (float)i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)t_randi(seed, 0, (int)i);
            float t = x[i];
            x[i] = x[j];
            x[j] = t;
        }
    }
    if (c->gen == G_PATTERN) {
        /* one row of windows along W in a 1x1x3x3xW volume: the trailing
         * plane, row and (odd W) column are dropped; the dropped voxels
         * are larger than any window */
        assert_true(c->n == 1 && c->c == 1 && c->d == 3 && c->h == 3);
        for (size_t i = 0; i < n; i++)
            x[i] = 100.0f + (float)i;
        for (int k = 0; k < c->w / 2; k++) {
            h->a[1][k] = 0.5f + (float)k;
            for (int j = 0; j < 8; j++)
                x[((j >> 2) * 3 + ((j >> 1) & 1)) * c->w + 2 * k + (j & 1)] =
                    PAT[(c->arg + 5 * k) % NPAT][j];
        }
    }
}

static void run_pool(u3d_backend *be, const op_case *c, const host *h,
                     outs *o)
{
    u3d_error err = {0};
    tset s = {0};
    u3d_tensor *x = tnew(&s, be, shp(c), h->a[0]);
    u3d_tensor *y = tjunk(&s, be, pool_out_shape(c), JUNK);
    u3d_tensor *dy = tnew(&s, be, pool_out_shape(c), h->a[1]);
    u3d_tensor *dx = tjunk(&s, be, shp(c), JUNK);
    ok(u3d_maxpool3d_forward(x, y, &err), &err, "forward");
    ok(u3d_maxpool3d_backward(x, dy, dx, &err), &err, "backward");
    out_tensor(o, "y", y, T_EXACT);
    out_tensor(o, "dx", dx, T_EXACT);
    tset_release(&s);
}

static void check_pool(const op_case *c, const host *h, const outs *o,
                       int is_ref)
{
    (void)is_ref;
    if (c->gen != G_PATTERN)
        return;
    const float *y = out_get(o, "y"), *dx = out_get(o, "dx");
    int nw = c->w / 2, W_ = c->w;
    for (int k = 0; k < nw; k++) {
        int p = (c->arg + 5 * k) % NPAT;
        if (isnan(PAT_Y[p]) ? !isnan(y[k]) : y[k] != PAT_Y[p])
            fail_msg("%s: window %d: y = %g, want %g", W("routing"), k, y[k],
                     PAT_Y[p]);
    }
    for (int i = 0; i < 9 * W_; i++) {
        int z = i / (3 * W_), yy = (i / W_) % 3, xx = i % W_, k = xx / 2;
        int j = z * 4 + yy * 2 + xx % 2;
        int in_win = z < 2 && yy < 2 && k < nw;
        float want = in_win && j == PAT_IDX[(c->arg + 5 * k) % NPAT]
                         ? h->a[1][k]
                         : 0.0f;
        if (dx[i] != want)
            fail_msg("%s: window %d: dx[%d] = %g, want %g", W("routing"), k, i,
                     dx[i], want);
    }
}

/* relu: x a0, dy a1 */
static void make_relu(const op_case *c, uint64_t *seed, host *h)
{
    size_t n = u3d_shape_count(shp(c));
    float *x = hrand(h, 0, n, seed, -1, 1);
    hrand(h, 1, n, seed, -1, 1);
    x[0] = 0.0f; /* the boundary: y 0, no gradient */
    if (c->flags & F_FD) /* away from the kink by more than eps */
        for (size_t i = 0; i < n; i++)
            if (fabsf(x[i]) < 0.01f)
                x[i] = x[i] < 0 ? x[i] - 0.01f : x[i] + 0.01f;
}

static void run_relu(u3d_backend *be, const op_case *c, const host *h,
                     outs *o)
{
    u3d_error err = {0};
    tset s = {0};
    u3d_tensor *x = tnew(&s, be, shp(c), h->a[0]);
    u3d_tensor *dy = tnew(&s, be, shp(c), h->a[1]);
    if (c->flags & F_INPLACE) {
        ok(u3d_relu_forward(x, x, &err), &err, "forward in place");
        ok(u3d_relu_backward(x, dy, dy, &err), &err, "backward in place");
        out_tensor(o, "y", x, T_EXACT);
        out_tensor(o, "dx", dy, T_EXACT);
    } else {
        u3d_tensor *y = tjunk(&s, be, shp(c), JUNK);
        u3d_tensor *dx = tjunk(&s, be, shp(c), JUNK);
        ok(u3d_relu_forward(x, y, &err), &err, "forward");
        ok(u3d_relu_backward(y, dy, dx, &err), &err, "backward");
        out_tensor(o, "y", y, T_EXACT);
        out_tensor(o, "dx", dx, T_EXACT);
    }
    tset_release(&s);
}

/* y = max(x, 0), dx = dy where y > 0 else 0: exact */
static void check_relu(const op_case *c, const host *h, const outs *o,
                       int is_ref)
{
    (void)is_ref;
    const float *y = out_get(o, "y"), *dx = out_get(o, "dx");
    for (size_t i = 0; i < u3d_shape_count(shp(c)); i++) {
        float wy = h->a[0][i] > 0 ? h->a[0][i] : 0.0f;
        float wd = wy > 0 ? h->a[1][i] : 0.0f;
        if (y[i] != wy || dx[i] != wd)
            fail_msg("%s: index %zu: y %g dx %g, want %g and %g",
                     W("formula"), i, y[i], dx[i], wy, wd);
    }
}

/* batch norm: x a0, dy a1, gamma a2, beta a3, running mean a4, var a5 */
static const u3d_bn_params BNP = {1e-5f, 0.1f};

static void make_bn(const op_case *c, uint64_t *seed, host *h)
{
    size_t n = u3d_shape_count(shp(c));
    /* x = offset + scale * U(-1,1): the mean is not 0 */
    float off = t_randf(seed, -3, 3), sc = t_randf(seed, 0.1f, 3);
    float *x = hrand(h, 0, n, seed, -1, 1);
    for (size_t i = 0; i < n; i++)
        x[i] = off + sc * x[i];
    hrand(h, 1, n, seed, -1, 1);
    hrand(h, 2, (size_t)c->c, seed, 0.5f, 1.5f);
    hrand(h, 3, (size_t)c->c, seed, -1, 1);
    hrand(h, 4, (size_t)c->c, seed, -1, 1);
    hrand(h, 5, (size_t)c->c, seed, 0.5f, 2);
}

/* Inference with the running statistics as given, then the training
 * forward (updating them with F_RUN) and its backward. F_INPLACE: also
 * inference and the batch-statistics forward with y = x, which must give
 * the out-of-place values bit for bit (as the inference plan runs them). */
static void run_bn(u3d_backend *be, const op_case *c, const host *h, outs *o)
{
    u3d_error err = {0};
    u3d_shape xs = shp(c), cs = chan(c->c);
    int aff = c->flags & F_AFFINE, run = c->flags & F_RUN;
    int dp = c->flags & F_DPARAM;
    tset s = {0};
    u3d_tensor *x = tnew(&s, be, xs, h->a[0]), *dy = tnew(&s, be, xs, h->a[1]);
    u3d_tensor *g = aff ? tnew(&s, be, cs, h->a[2]) : NULL;
    u3d_tensor *b = aff ? tnew(&s, be, cs, h->a[3]) : NULL;
    u3d_tensor *rm = tnew(&s, be, cs, h->a[4]), *rv = tnew(&s, be, cs, h->a[5]);
    u3d_tensor *y = tjunk(&s, be, xs, JUNK), *yi = tjunk(&s, be, xs, JUNK);
    u3d_tensor *m = tjunk(&s, be, cs, JUNK), *v = tjunk(&s, be, cs, JUNK);
    u3d_tensor *dx = tjunk(&s, be, xs, JUNK);
    u3d_tensor *dg = dp ? tjunk(&s, be, cs, JUNK) : NULL;
    u3d_tensor *db = dp ? tjunk(&s, be, cs, JUNK) : NULL;
    ok(u3d_batchnorm3d_forward_infer(&BNP, x, g, b, rm, rv, yi, &err), &err,
       "forward_infer");
    ok(u3d_batchnorm3d_forward_train(&BNP, x, g, b, run ? rm : NULL,
                                     run ? rv : NULL, y, m, v, &err),
       &err, "forward_train");
    ok(u3d_batchnorm3d_backward(x, dy, g, m, v, dx, dg, db, &err), &err,
       "backward");
    out_tensor(o, "y", y, T_BN_Y);
    out_tensor(o, "save_mean", m, T_BN_MEAN);
    out_tensor(o, "save_invstd", v, T_BN_INVSTD);
    out_tensor(o, "y (inference)", yi, T_BN_INFER);
    if (run) {
        out_tensor(o, "running_mean", rm, T_BN_RUN);
        out_tensor(o, "running_var", rv, T_BN_RUN);
    }
    out_tensor(o, "dx", dx, T_BN_DX);
    if (dp) {
        out_tensor(o, "dgamma", dg, T_BN_DP);
        out_tensor(o, "dbeta", db, T_BN_DP);
    }
    if (c->flags & F_INPLACE) {
        u3d_tensor *x2 = tnew(&s, be, xs, h->a[0]);
        u3d_tensor *rm0 = tnew(&s, be, cs, h->a[4]);
        u3d_tensor *rv0 = tnew(&s, be, cs, h->a[5]);
        ok(u3d_batchnorm3d_forward_infer(&BNP, x2, g, b, rm0, rv0, x2, &err),
           &err, "forward_infer in place");
        t_assert_tensors_close(x2, yi, 0.0, W("inference in place"));
        /* batch statistics, no running update, out of place then in place */
        ok(u3d_tensor_write(x2, h->a[0], &err), &err, "reset x");
        ok(u3d_batchnorm3d_forward_train(&BNP, x2, g, b, NULL, NULL, y, m, v,
                                         &err),
           &err, "forward_train (batch statistics)");
        ok(u3d_batchnorm3d_forward_train(&BNP, x2, g, b, NULL, NULL, x2, m, v,
                                         &err),
           &err, "forward_train in place");
        t_assert_tensors_close(x2, y, 0.0, W("batch statistics in place"));
    }
    tset_release(&s);
}

/* running = (1-m)*running + m*batch, the variance unbiased (PyTorch), vs
 * double */
static void check_bn(const op_case *c, const host *h, const outs *o,
                     int is_ref)
{
    (void)is_ref;
    if (!(c->flags & F_RUN))
        return;
    const float *rm = out_get(o, "running_mean");
    const float *rv = out_get(o, "running_var");
    size_t S = u3d_shape_spatial(shp(c)), M = (size_t)c->n * S;
    for (int ch = 0; ch < c->c; ch++) {
        double sum = 0, sq = 0;
        for (int n = 0; n < c->n; n++)
            for (size_t i = 0; i < S; i++)
                sum += h->a[0][((size_t)n * c->c + ch) * S + i];
        double mu = sum / (double)M;
        for (int n = 0; n < c->n; n++)
            for (size_t i = 0; i < S; i++) {
                double d = h->a[0][((size_t)n * c->c + ch) * S + i] - mu;
                sq += d * d;
            }
        double wm = (1 - BNP.momentum) * (double)h->a[4][ch] +
                    BNP.momentum * mu;
        double wv = (1 - BNP.momentum) * (double)h->a[5][ch] +
                    BNP.momentum * sq / (double)(M - 1);
        if (!(fabs(rm[ch] - wm) <= 1e-5 * fmax(fabs(wm), 1)) ||
            !(fabs(rv[ch] - wv) <= 1e-5 * fmax(fabs(wv), 1)))
            fail_msg("%s: channel %d: running mean %.9g var %.9g, want %.9g "
                     "%.9g",
                     W("running statistics formula"), ch, rm[ch], rv[ch], wm,
                     wv);
    }
}

/* crop-concat: skip a0, up a1, dy a2, dskip before accumulating a3 */
static u3d_shape cc_skip_shape(const op_case *c)
{
    return u3d_shape5(c->n, c->c2, c->d + c->dd, c->h + c->dh, c->w + c->dw);
}

static u3d_shape cc_y_shape(const op_case *c)
{
    return u3d_shape5(c->n, c->c + c->c2, c->d, c->h, c->w);
}

static void make_cc(const op_case *c, uint64_t *seed, host *h)
{
    size_t ns = u3d_shape_count(cc_skip_shape(c));
    size_t nu = u3d_shape_count(shp(c)), ny = u3d_shape_count(cc_y_shape(c));
    hrand(h, 0, ns, seed, -1, 1);
    hrand(h, 1, nu, seed, -1, 1);
    hrand(h, 2, ny, seed, -1, 1);
    hrand(h, 3, ns, seed, -1, 1);
    if (c->flags & F_HAND) {
        /* N=2, skip 2 channels of 1x3x6 (differences 0, 2, 4: offsets 0,
         * 1, 2) cropped to up 1x1x2: skip[n,c,0,h,w] = 36n + 18c + 6h + w */
        assert_true(ns == 72 && nu == 4 && ny == 12);
        for (int i = 0; i < 72; i++) {
            h->a[0][i] = (float)i;
            h->a[3][i] = 0.5f;
        }
        for (int i = 0; i < 4; i++)
            h->a[1][i] = 100.0f + (float)i;
        for (int i = 0; i < 12; i++)
            h->a[2][i] = 1000.0f + (float)i;
    }
}

/* Forward, backward overwriting dskip (junk before) and backward adding
 * into dskip (a3 before); dup does not depend on the mode. */
static void run_cc(u3d_backend *be, const op_case *c, const host *h, outs *o)
{
    u3d_error err = {0};
    u3d_shape ss = cc_skip_shape(c), us = shp(c), ys = cc_y_shape(c);
    tset s = {0};
    u3d_tensor *sk = tnew(&s, be, ss, h->a[0]), *up = tnew(&s, be, us, h->a[1]);
    u3d_tensor *dy = tnew(&s, be, ys, h->a[2]);
    u3d_tensor *y = tjunk(&s, be, ys, JUNK), *ds = tjunk(&s, be, ss, JUNK);
    u3d_tensor *du = tjunk(&s, be, us, JUNK);
    ok(u3d_crop_concat_forward(sk, up, y, &err), &err, "forward");
    ok(u3d_crop_concat_backward(dy, ds, du, 0, &err), &err,
       "backward (overwrite)");
    out_tensor(o, "y", y, T_EXACT);
    out_tensor(o, "dskip (overwrite)", ds, T_EXACT);
    out_tensor(o, "dup", du, T_EXACT);
    ok(u3d_tensor_write(ds, h->a[3], &err), &err, "write dskip");
    ok(u3d_tensor_fill(du, JUNK, &err), &err, "fill");
    ok(u3d_crop_concat_backward(dy, ds, du, 1, &err), &err,
       "backward (accumulate)");
    out_tensor(o, "dskip (accumulate)", ds, T_EXACT);
    out_tensor(o, "dup (accumulate)", du, T_EXACT);
    tset_release(&s);
}

static void check_cc(const op_case *c, const host *h, const outs *o,
                     int is_ref)
{
    (void)is_ref;
    const float *ov = out_get(o, "dskip (overwrite)");
    const float *ac = out_get(o, "dskip (accumulate)");
    const float *du = out_get(o, "dup"), *du2 = out_get(o, "dup (accumulate)");
    size_t ns = u3d_shape_count(cc_skip_shape(c));
    /* one float addition per voxel: exact */
    for (size_t i = 0; i < ns; i++)
        if (ac[i] != h->a[3][i] + ov[i])
            fail_msg("%s: dskip[%zu] = %g, want %g + %g",
                     W("accumulate = before + overwrite"), i, ac[i],
                     h->a[3][i], ov[i]);
    compare(du2, du, u3d_shape_count(shp(c)), 0.0, 1,
            W("dup (accumulate) = dup (overwrite)"));
    if (!(c->flags & F_HAND))
        return;
    /* crop window: h = 1 ((3-1)/2), w = 2..3 ((6-2)/2) */
    const float want_y[12] = {8,  9,  26, 27, 100, 101,  /* n 0: c0 c1 up */
                              44, 45, 62, 63, 102, 103}; /* n 1 */
    const float want_du[4] = {1004, 1005, 1010, 1011};
    compare(out_get(o, "y"), want_y, 12, 0.0, 1, W("hand example y"));
    compare(du, want_du, 4, 0.0, 1, W("hand example dup"));
    for (int i = 0; i < 72; i++) {
        int n = i / 36, ch = (i / 18) % 2, hh = (i / 6) % 3, w = i % 6;
        int in = hh == 1 && (w == 2 || w == 3);
        float g = in ? 1000.0f + (float)(n * 6 + ch * 2 + (w - 2)) : 0.0f;
        if (ov[i] != g || ac[i] != 0.5f + g)
            fail_msg("%s: dskip[%d] = %g / %g (overwrite / accumulate), want "
                     "%g / %g",
                     W("hand example"), i, ov[i], ac[i], g, 0.5f + g);
    }
}

/* softmax-ce: logits a0, class weights a1, labels */
static void make_ce(const op_case *c, uint64_t *seed, host *h)
{
    u3d_shape s = shp(c);
    size_t nv = (size_t)s.n * u3d_shape_spatial(s);
    hrand(h, 0, u3d_shape_count(s), seed, -5, 5);
    hrand(h, 1, (size_t)s.c, seed, 0.2f, 2);
    h->lab = malloc(nv * sizeof *h->lab);
    assert_non_null(h->lab);
    h->nlab = nv;
    for (size_t v = 0; v < nv; v++)
        h->lab[v] = t_randf(seed, 0, 1) < c->f0 ? c->ignore
                                                : t_randi(seed, 0, s.c - 1);
    if (c->f0 > 0) /* at least one ignored voxel */
        h->lab[0] = c->ignore;
}

static void run_ce(u3d_backend *be, const op_case *c, const host *h, outs *o)
{
    u3d_error err = {0};
    u3d_shape s = shp(c), ls = s;
    ls.c = 1;
    tset ts = {0};
    u3d_tensor *z = tnew(&ts, be, s, h->a[0]);
    u3d_tensor *w = tnew(&ts, be, chan(c->c), h->a[1]);
    u3d_tensor lab = t_tensor_i32(be, ls, h->lab);
    u3d_tensor *p = c->flags & F_NOPROBS ? NULL : tjunk(&ts, be, s, JUNK);
    u3d_tensor *d = c->flags & F_NODL ? NULL : tjunk(&ts, be, s, JUNK);
    float loss = -1, wsum = -1, l2 = -1;
    ok(u3d_softmax_ce(z, &lab, w, c->ignore, p, d, &loss, &wsum, &err), &err,
       "softmax_ce");
    out_scalar(o, "loss", loss, T_CE_LOSS);
    out_scalar(o, "weight sum", wsum, T_CE_WSUM);
    if (p)
        out_tensor(o, "probs", p, T_CE_PROBS);
    if (d)
        out_tensor(o, "dlogits", d, T_CE_DL);
    /* without the optional outputs: the same loss, bit for bit */
    ok(u3d_softmax_ce(z, &lab, w, c->ignore, NULL, NULL, &l2, NULL, &err),
       &err, "softmax_ce (loss only)");
    if (memcmp(&l2, &loss, sizeof l2))
        fail_msg("%s: %.9g, with outputs %.9g", W("loss only"), l2, loss);
    u3d_tensor_release(&lab);
    tset_release(&ts);
}

/* ignored voxels have no gradient; nothing labeled: loss and weight sum 0 */
static void check_ce(const op_case *c, const host *h, const outs *o,
                     int is_ref)
{
    (void)is_ref;
    size_t S = u3d_shape_spatial(shp(c));
    int all_ignored = 1;
    for (size_t v = 0; v < h->nlab; v++)
        all_ignored &= h->lab[v] == c->ignore;
    if (all_ignored && (out_get(o, "loss")[0] != 0.0f ||
                        out_get(o, "weight sum")[0] != 0.0f))
        fail_msg("%s: loss %g, weight sum %g, want 0 and 0",
                 W("nothing labeled"), out_get(o, "loss")[0],
                 out_get(o, "weight sum")[0]);
    if (c->flags & F_NODL)
        return;
    const float *d = out_get(o, "dlogits");
    for (size_t v = 0; v < h->nlab; v++) {
        if (h->lab[v] != c->ignore)
            continue;
        size_t n = v / S, sv = v % S;
        for (int k = 0; k < c->c; k++)
            if (d[(n * (size_t)c->c + (size_t)k) * S + sv] != 0.0f)
                fail_msg("%s: voxel %zu class %d: dlogits %g",
                         W("ignored voxel"), v, k,
                         d[(n * (size_t)c->c + (size_t)k) * S + sv]);
    }
}

/* sgd: param a0, momentum buffer a1, gradients of 3 steps a2..a4 */
static void make_sgd(const op_case *c, uint64_t *seed, host *h)
{
    size_t n = u3d_shape_count(shp(c));
    hrand(h, 0, n, seed, -1, 1);
    hrand(h, 1, n, seed, -0.1f, 0.1f);
    for (int i = 2; i < 5; i++)
        hrand(h, i, n, seed, -1, 1);
}

static void run_sgd(u3d_backend *be, const op_case *c, const host *h,
                    outs *o)
{
    u3d_error err = {0};
    u3d_sgd_params sp = {c->f0, c->f1, c->f2};
    tset s = {0};
    u3d_tensor *p = tnew(&s, be, shp(c), h->a[0]);
    u3d_tensor *b = tnew(&s, be, shp(c), h->a[1]);
    for (int step = 0; step < 3; step++) { /* the buffer carries over */
        u3d_tensor *g = tnew(&s, be, shp(c), h->a[2 + step]);
        ok(u3d_sgd_step(&sp, p, g, b, &err), &err, "sgd_step");
    }
    out_tensor(o, "param", p, T_SGD);
    out_tensor(o, "momentum buffer", b, T_SGD);
    tset_release(&s);
}

/* the reference vs PyTorch's formula in double: float rounding of 3 steps */
static void check_sgd(const op_case *c, const host *h, const outs *o,
                      int is_ref)
{
    if (!is_ref)
        return;
    size_t n = u3d_shape_count(shp(c));
    const float *p = out_get(o, "param"), *b = out_get(o, "momentum buffer");
    for (size_t i = 0; i < n; i++) {
        double pd = h->a[0][i], bd = h->a[1][i];
        for (int step = 0; step < 3; step++) {
            bd = (double)c->f1 * bd + h->a[2 + step][i] + (double)c->f2 * pd;
            pd -= (double)c->f0 * bd;
        }
        if (!(fabs(p[i] - pd) <= 1e-6 * fmax(fabs(pd), 1)) ||
            !(fabs(b[i] - bd) <= 1e-6 * fmax(fabs(bd), 1)))
            fail_msg("%s: index %zu: param %.9g buf %.9g, want %.9g %.9g",
                     W("formula"), i, p[i], b[i], pd, bd);
    }
}

/* adam: param a0, first moment a1, second moment a2 (>= 0, tiny to
 * moderate: eps matters for some), gradients of 3 steps a3..a5 */
static void make_adam(const op_case *c, uint64_t *seed, host *h)
{
    size_t n = u3d_shape_count(shp(c));
    hrand(h, 0, n, seed, -1, 1);
    if (c->arg == 0) { /* PyTorch's fresh state */
        hrand(h, 1, n, seed, 0, 0);
        hrand(h, 2, n, seed, 0, 0);
    } else {
        hrand(h, 1, n, seed, -0.1f, 0.1f);
        hrand(h, 2, n, seed, 0, 1);
        for (size_t i = 0; i < n; i++) /* spread over 8 decades */
            h->a[2][i] = powf(10.0f, -8.0f * h->a[2][i]);
    }
    for (int i = 3; i < 6; i++)
        hrand(h, i, n, seed, -1, 1);
}

static void run_adam(u3d_backend *be, const op_case *c, const host *h,
                     outs *o)
{
    u3d_error err = {0};
    tset s = {0};
    u3d_tensor *p = tnew(&s, be, shp(c), h->a[0]);
    u3d_tensor *m = tnew(&s, be, shp(c), h->a[1]);
    u3d_tensor *v = tnew(&s, be, shp(c), h->a[2]);
    for (int step = 0; step < 3; step++) { /* the moments carry over */
        u3d_adam_params ap = {c->f0, c->f1, c->f3, c->f4, c->f2,
                              c->arg + step + 1};
        u3d_tensor *g = tnew(&s, be, shp(c), h->a[3 + step]);
        ok(u3d_adam_step(&ap, p, g, m, v, &err), &err, "adam_step");
    }
    out_tensor(o, "param", p, T_ADAM);
    out_tensor(o, "first moment", m, T_ADAM);
    out_tensor(o, "second moment", v, T_ADAM);
    tset_release(&s);
}

/* the reference vs PyTorch's formula in double (parameters and moments
 * stored as float between steps, as every backend does) */
static void check_adam(const op_case *c, const host *h, const outs *o,
                       int is_ref)
{
    if (!is_ref)
        return;
    size_t n = u3d_shape_count(shp(c));
    const float *p = out_get(o, "param"), *m = out_get(o, "first moment"),
                *v = out_get(o, "second moment");
    double b1 = c->f1, b2 = c->f3;
    for (size_t i = 0; i < n; i++) {
        float pd = h->a[0][i], md = h->a[1][i], vd = h->a[2][i];
        for (int step = 0; step < 3; step++) {
            double t = c->arg + step + 1;
            double g = h->a[3 + step][i] + (double)c->f2 * pd;
            md = (float)(b1 * md + (1 - b1) * g);
            vd = (float)(b2 * vd + (1 - b2) * g * g);
            double den = sqrt((double)vd) / sqrt(1 - pow(b2, t)) + c->f4;
            pd = (float)(pd - (double)c->f0 / (1 - pow(b1, t)) * md / den);
        }
        if (!(fabs(p[i] - pd) <= 1e-6 * fmax(fabs(pd), 1)) ||
            !(fabs(m[i] - md) <= 1e-6 * fmax(fabs(md), 1e-30)) ||
            !(fabs(v[i] - vd) <= 1e-6 * fmax(fabs(vd), 1e-30)))
            fail_msg("%s: index %zu: param %.9g m %.9g v %.9g, want %.9g "
                     "%.9g %.9g",
                     W("formula"), i, p[i], m[i], v[i], pd, md, vd);
    }
}

/* axpy: x a0, y a1 */
static void make_axpy(const op_case *c, uint64_t *seed, host *h)
{
    size_t n = u3d_shape_count(shp(c));
    hrand(h, 0, n, seed, -1, 1);
    hrand(h, 1, n, seed, -1, 1);
}

static void run_axpy(u3d_backend *be, const op_case *c, const host *h,
                     outs *o)
{
    u3d_error err = {0};
    tset s = {0};
    u3d_tensor *x = tnew(&s, be, shp(c), h->a[0]);
    u3d_tensor *y = tnew(&s, be, shp(c), h->a[1]);
    ok(u3d_axpy(c->f0, x, y, &err), &err, "axpy");
    out_tensor(o, "y", y, T_AXPY);
    tset_release(&s);
}

static void check_axpy(const op_case *c, const host *h, const outs *o,
                       int is_ref)
{
    if (!is_ref)
        return;
    size_t n = u3d_shape_count(shp(c));
    float *want = malloc(n * sizeof *want);
    assert_non_null(want);
    for (size_t i = 0; i < n; i++)
        want[i] = (float)(h->a[1][i] + (double)c->f0 * h->a[0][i]);
    t_assert_close(out_get(o, "y"), want, n, 1e-6, W("formula"));
    free(want);
}

/* tensor fill */
static void make_fill(const op_case *c, uint64_t *seed, host *h)
{
    (void)c;
    (void)seed;
    (void)h;
}

static void run_fill(u3d_backend *be, const op_case *c, const host *h,
                     outs *o)
{
    (void)h;
    tset s = {0};
    u3d_tensor *t = tjunk(&s, be, shp(c), c->f0);
    out_tensor(o, "t", t, T_EXACT);
    tset_release(&s);
}

static void check_fill(const op_case *c, const host *h, const outs *o,
                       int is_ref)
{
    (void)h;
    (void)is_ref;
    const float *t = out_get(o, "t");
    for (size_t i = 0; i < u3d_shape_count(shp(c)); i++)
        if (t[i] != c->f0)
            fail_msg("%s: index %zu is %g", W("fill"), i, t[i]);
}

/* Finite differences: gradient output `grad` vs central differences of
 * the reference's loss with respect to host input `in`; the loss is
 * sum(out0 * r) in double with r = host input `r` (softmax-ce: its loss).
 * modes: FD_NORM t_assert_close, FD_ABS per element, FD_REL vs max|fd|. */
enum { FD_NORM, FD_ABS, FD_REL };
typedef struct fd_spec {
    int in;
    const char *grad;
    int need; /* flags the case must have, else skipped */
    float eps;
    double tol;
    int mode;
    int tol_kind; /* the gradient's tolerance against the reference */
} fd_spec;

typedef struct op_kind {
    void (*make)(const op_case *, uint64_t *, host *);
    void (*run)(u3d_backend *, const op_case *, const host *, outs *);
    void (*check)(const op_case *, const host *, const outs *, int);
    int r; /* host input weighting the loss; -1: the op's loss output */
    fd_spec fd[4];
} op_kind;

/* The tolerances, with their reasons:
 * conv: the loss is linear in x, w and b, so the quotient is exact up to
 *   rounding: eps 0.25 and a few hundred float products give ~1e-5 of the
 *   gradient's scale; 1e-3 normwise.
 * upconv: linear too; eps 0.1 leaves the float rounding of <= 192 outputs
 *   (|y| < 4): <= 5e-4 absolute; 1e-3 absolute against gradients ~1..10.
 * max-pool, relu: gaps of >= 0.01 (no ties, away from the kink) and eps
 *   1e-3 below half a gap: exact to ~1e-4 absolute; 1e-3.
 * batch norm: x ~ 1.15 spread, h 1e-2: truncation ~h^2 ~ 1e-4 and rounding
 *   ~5e-5 relative to |dx| ~ 1; 2e-3 of max |gradient| while a wrong term
 *   is off by O(1).
 * crop-concat copies values: exact up to the rounding of y; 1e-5.
 * softmax-ce: logits ~U(-5,5), h 1e-2: truncation ~1e-6, rounding ~3e-6,
 *   gradients ~3e-2: 1e-3 of max |gradient|. */
static const op_kind KINDS[OP_COUNT] = {
    [OP_CONV] = {make_conv, run_conv, check_conv, 3,
                 {{0, "dx", 0, 0.25f, 1e-3, FD_NORM, T_CONV_DX},
                  {1, "dw", 0, 0.25f, 1e-3, FD_NORM, T_CONV_DW},
                  {2, "db", F_BIAS | F_DB, 0.25f, 1e-3, FD_NORM, T_CONV_DW}}},
    [OP_UPCONV] = {make_conv, run_conv, check_conv, 3,
                   {{0, "dx", 0, 0.1f, 1e-3, FD_ABS, T_CONV_DX},
                    {1, "dw", 0, 0.1f, 1e-3, FD_ABS, T_CONV_DW},
                    {2, "db", F_BIAS | F_DB, 0.1f, 1e-3, FD_ABS, T_CONV_DW}}},
    [OP_POOL] = {make_pool, run_pool, check_pool, 1,
                 {{0, "dx", 0, 1e-3f, 1e-3, FD_ABS, T_EXACT}}},
    [OP_RELU] = {make_relu, run_relu, check_relu, 1,
                 {{0, "dx", 0, 1e-3f, 1e-3, FD_ABS, T_EXACT}}},
    [OP_BN] = {make_bn, run_bn, check_bn, 1,
               {{0, "dx", 0, 1e-2f, 2e-3, FD_REL, T_BN_DX},
                {2, "dgamma", F_AFFINE | F_DPARAM, 1e-2f, 2e-3, FD_REL,
                 T_BN_DP},
                {3, "dbeta", F_AFFINE | F_DPARAM, 1e-2f, 2e-3, FD_REL,
                 T_BN_DP}}},
    [OP_CC] = {make_cc, run_cc, check_cc, 2,
               {{0, "dskip (overwrite)", 0, 0.1f, 1e-5, FD_ABS, T_EXACT},
                {1, "dup", 0, 0.1f, 1e-5, FD_ABS, T_EXACT}}},
    [OP_CE] = {make_ce, run_ce, check_ce, -1,
               {{0, "dlogits", 0, 1e-2f, 1e-3, FD_REL, T_CE_DL}}},
    [OP_SGD] = {make_sgd, run_sgd, check_sgd, -1, {{0}}},
    [OP_ADAM] = {make_adam, run_adam, check_adam, -1, {{0}}},
    [OP_AXPY] = {make_axpy, run_axpy, check_axpy, -1, {{0}}},
    [OP_FILL] = {make_fill, run_fill, check_fill, -1, {{0}}},
};

static double ref_loss(const op_case *c, const host *h)
{
    const op_kind *k = &KINDS[c->op];
    outs o = {0};
    k->run(g_ref, c, h, &o);
    double l = k->r < 0 ? o.v[0][0]
                        : t_dot(o.v[0], h->a[k->r], h->n[k->r]);
    assert_int_equal(o.len[0], k->r < 0 ? 1 : h->n[k->r]);
    outs_free(&o);
    return l;
}

typedef struct fd_res {
    int n;
    const fd_spec *spec[4];
    float *g[4];
} fd_res;

static void fd_compute(const op_case *c, host *h, fd_res *r)
{
    const op_kind *k = &KINDS[c->op];
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 4 && k->fd[i].grad; i++) {
        const fd_spec *f = &k->fd[i];
        if ((c->flags & f->need) != f->need)
            continue;
        float *a = h->a[f->in], *g = malloc(h->n[f->in] * sizeof *g);
        assert_non_null(g);
        for (size_t j = 0; j < h->n[f->in]; j++) {
            float keep = a[j];
            a[j] = keep + f->eps;
            double lp = ref_loss(c, h);
            a[j] = keep - f->eps;
            double lm = ref_loss(c, h);
            a[j] = keep;
            g[j] = (float)((lp - lm) / (2.0 * f->eps));
        }
        r->spec[r->n] = f;
        r->g[r->n++] = g;
    }
}

static void fd_check(const fd_res *r, const outs *o, const be_tol *t)
{
    for (int i = 0; i < r->n; i++) {
        const fd_spec *f = r->spec[i];
        double tol = f->tol + (t && t->fd_add ? t->t[f->tol_kind] : 0.0);
        char what[96];
        snprintf(what, sizeof what, "%s vs finite differences", f->grad);
        const float *got = out_get(o, f->grad);
        size_t n = 0;
        for (int j = 0; j < o->n; j++)
            if (!strcmp(o->name[j], f->grad))
                n = o->len[j];
        if (f->mode == FD_NORM)
            t_assert_close(got, r->g[i], n, tol, W(what));
        else if (f->mode == FD_REL)
            compare(got, r->g[i], n, tol, 0, W(what));
        else
            for (size_t j = 0; j < n; j++)
                if (!(fabs((double)got[j] - r->g[i][j]) <= tol))
                    fail_msg("%s: [%zu] analytic %g, finite difference %g "
                             "(tolerance %g)",
                             W(what), j, got[j], r->g[i][j], tol);
    }
}

/* From the op and the case's name (FNV-1a): a new row changes no other
 * row's data. */
static uint64_t case_seed(const op_case *c)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = OP_NAMES[c->op]; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    for (const char *p = c->name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h;
}

/* One case: the reference, then every backend against it. */
static void run_case(void **state)
{
    const op_case *c = *state;
    const op_kind *k = &KINDS[c->op];
    uint64_t seed = case_seed(c);
    host h;
    memset(&h, 0, sizeof h);
    set_ctx(c, "ref");
    k->make(c, &seed, &h);
    outs ref = {0};
    k->run(g_ref, c, &h, &ref);
    k->check(c, &h, &ref, 1);
    fd_res fd = {0};
    if (c->flags & F_FD) {
        fd_compute(c, &h, &fd);
        fd_check(&fd, &ref, NULL);
    }
    for (int b = 0; b < g_nbe; b++) {
        const be_tol *t = g_tol[b];
        set_ctx(c, u3d_backend_name(g_be[b]));
        outs o = {0};
        k->run(g_be[b], c, &h, &o);
        if (o.n != ref.n)
            fail_msg("%s: %d outputs, the reference %d", W("outputs"), o.n,
                     ref.n);
        for (int i = 0; i < o.n; i++)
            compare(o.v[i], ref.v[i], o.len[i], t->t[o.tol[i]],
                    !(t->nofloor & BIT(o.tol[i])), W(o.name[i]));
        k->check(c, &h, &o, 0);
        fd_check(&fd, &o, t);
        outs_free(&o);
    }
    for (int i = 0; i < fd.n; i++)
        free(fd.g[i]);
    outs_free(&ref);
    host_free(&h);
}

/* ------------------------------------------------------------------ */
/* bad shapes and arguments                                            */
/* ------------------------------------------------------------------ */

enum {
    B_CONV_FWD, B_CONV_BWD_DATA, B_CONV_BWD_WEIGHT, B_UPCONV_FWD,
    B_UPCONV_BWD_DATA, B_POOL_FWD, B_POOL_BWD, B_RELU_FWD, B_RELU_BWD,
    B_BN_TRAIN, B_CC_FWD, B_CC_BWD, B_CE, B_SGD, B_ADAM, B_AXPY
};

typedef struct bad_case {
    int call;
    const char *name;
    u3d_shape s[4]; /* the op's tensors in argument order */
    int k, pad;     /* conv */
    float f;        /* batch-norm eps, sgd lr */
    int f32_labels; /* softmax-ce: labels of the wrong dtype */
    int ignore;     /* softmax-ce: labels are 0 except: */
    int bad[2][2];  /* {index, label} pairs ({0, 0}: none) */
    u3d_status want;
    const char *msg[3]; /* substrings of the message */
} bad_case;

#define S5(n, c, d, h, w) {n, c, d, h, w}
static const bad_case BAD[] = {
    {B_CONV_FWD, "conv3d: weight Cin != x C",
     {S5(1, 2, 5, 5, 5), S5(4, 3, 3, 3, 3), S5(1, 4, 3, 3, 3)}, 3, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"4x3x3x3x3", "1x2x5x5x5"}},
    {B_CONV_FWD, "conv3d: pad >= kernel",
     {S5(1, 2, 5, 5, 5), S5(4, 2, 3, 3, 3), S5(1, 4, 3, 3, 3)}, 3, 3, 0, 0, 0,
     {{0}}, U3D_ERR_INVALID_ARG, {0}},
    {B_CONV_BWD_DATA, "conv3d: dy of the wrong size",
     {S5(1, 4, 3, 3, 4), S5(4, 2, 3, 3, 3), S5(1, 2, 5, 5, 5)}, 3, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"1x4x3x3x4"}},
    {B_CONV_BWD_WEIGHT, "conv3d: dw of the wrong size",
     {S5(1, 2, 5, 5, 5), S5(1, 4, 3, 3, 3), S5(4, 2, 3, 3, 2)}, 3, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {0}},
    {B_UPCONV_FWD, "upconv3d: weight Cin != x C",
     {S5(1, 4, 2, 3, 3), S5(5, 6, 2, 2, 2), S5(1, 6, 4, 6, 6)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"5x6x2x2x2", "1x4x2x3x3"}},
    {B_UPCONV_FWD, "upconv3d: y not twice x",
     {S5(1, 4, 2, 3, 3), S5(4, 6, 2, 2, 2), S5(1, 6, 4, 6, 5)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"1x6x4x6x5"}},
    {B_UPCONV_BWD_DATA, "upconv3d: dx not half dy",
     {S5(1, 6, 4, 6, 6), S5(4, 6, 2, 2, 2), S5(1, 4, 2, 3, 2)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {0}},
    {B_POOL_FWD, "maxpool3d: y not half x",
     {S5(1, 2, 5, 6, 7), S5(1, 2, 3, 3, 3)}, 0, 0, 0, 0, 0, {{0}},
     U3D_ERR_SHAPE, {"1x2x3x3x3", "1x2x2x3x3"}},
    {B_POOL_FWD, "maxpool3d: D of 1",
     {S5(1, 1, 1, 4, 4), S5(1, 2, 3, 3, 3)}, 0, 0, 0, 0, 0, {{0}},
     U3D_ERR_SHAPE, {"1x1x1x4x4"}},
    {B_POOL_FWD, "maxpool3d: y neither x nor half x along D",
     {S5(1, 2, 6, 4, 4), S5(1, 2, 2, 2, 2)}, 0, 0, 0, 0, 0, {{0}},
     U3D_ERR_SHAPE, {"1x2x2x2x2", "1x2x3x2x2", "1x2x6x4x4"}},
    {B_UPCONV_FWD, "upconv3d: weight factor 3 along D",
     {S5(1, 4, 2, 3, 3), S5(4, 6, 3, 2, 2), S5(1, 6, 6, 6, 6)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"4x6x3x2x2", "1 x 2 x 2"}},
    {B_UPCONV_FWD, "upconv3d: y not 1x2x2 times x",
     {S5(1, 4, 2, 3, 3), S5(4, 6, 1, 2, 2), S5(1, 6, 4, 6, 6)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"1x6x2x6x6"}},
    {B_POOL_BWD, "maxpool3d: dx not the size of x",
     {S5(1, 2, 4, 4, 4), S5(1, 2, 2, 2, 2), S5(1, 2, 4, 4, 5)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {0}},
    {B_RELU_FWD, "relu: y not the size of x",
     {S5(1, 2, 3, 4, 5), S5(1, 2, 3, 4, 6)}, 0, 0, 0, 0, 0, {{0}},
     U3D_ERR_SHAPE, {"1x2x3x4x6"}},
    {B_RELU_BWD, "relu: dy not the size of y",
     {S5(1, 2, 3, 4, 5), S5(1, 2, 3, 4, 6), S5(1, 2, 3, 4, 5)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {0}},
    {B_BN_TRAIN, "batchnorm3d: gamma of 4 channels for 3",
     {S5(1, 3, 2, 2, 2), S5(1, 4, 1, 1, 1), S5(1, 3, 1, 1, 1)}, 0, 0, 1e-5f,
     0, 0, {{0}}, U3D_ERR_SHAPE, {"1x4x1x1x1", "1x3x1x1x1"}},
    {B_BN_TRAIN, "batchnorm3d: eps 0",
     {S5(1, 3, 2, 2, 2), {0}, S5(1, 3, 1, 1, 1)}, 0, 0, 0.0f, 0, 0, {{0}},
     U3D_ERR_INVALID_ARG, {0}},
    {B_BN_TRAIN, "batchnorm3d: one value per channel",
     {S5(1, 3, 1, 1, 1), {0}, S5(1, 3, 1, 1, 1)}, 0, 0, 1e-5f, 0, 0, {{0}},
     U3D_ERR_INVALID_ARG, {"more than one value"}},
    {B_CC_FWD, "crop_concat: skip smaller than up",
     {S5(1, 2, 5, 5, 3), S5(1, 3, 4, 4, 4), S5(1, 5, 4, 4, 4)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"1x2x5x5x3", "1x3x4x4x4"}},
    {B_CC_FWD, "crop_concat: y of the wrong channel count",
     {S5(1, 2, 5, 5, 5), S5(1, 3, 4, 4, 4), S5(1, 4, 4, 4, 4)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {"1x4x4x4x4"}},
    {B_CC_BWD, "crop_concat: dy of the wrong channel count",
     {S5(1, 6, 4, 4, 4), S5(1, 2, 5, 5, 5), S5(1, 3, 4, 4, 4)}, 0, 0, 0, 0, 0,
     {{0}}, U3D_ERR_SHAPE, {0}},
    {B_CE, "softmax_ce: labels of another size",
     {S5(1, 3, 2, 3, 4), S5(1, 1, 2, 3, 5), S5(1, 3, 1, 1, 1)}, 0, 0, 0, 0,
     255, {{0}}, U3D_ERR_SHAPE, {"1x1x2x3x5", "1x1x2x3x4"}},
    {B_CE, "softmax_ce: float labels",
     {S5(1, 3, 2, 3, 4), S5(1, 1, 2, 3, 4), S5(1, 3, 1, 1, 1)}, 0, 0, 0, 1,
     255, {{0}}, U3D_ERR_INVALID_ARG, {"int32"}},
    {B_CE, "softmax_ce: label C",
     {S5(2, 3, 3, 4, 5), S5(2, 1, 3, 4, 5), S5(1, 3, 1, 1, 1)}, 0, 0, 0, 0,
     255, {{37, 3}}, U3D_ERR_INVALID_ARG,
     {"label 3 found (1 invalid", "< classes (3)", "ignore label 255"}},
    {B_CE, "softmax_ce: label -2",
     {S5(2, 3, 3, 4, 5), S5(2, 1, 3, 4, 5), S5(1, 3, 1, 1, 1)}, 0, 0, 0, 0,
     255, {{37, -2}}, U3D_ERR_INVALID_ARG,
     {"label -2 found (1 invalid", "< classes (3)", "ignore label 255"}},
    {B_CE, "softmax_ce: two invalid labels",
     {S5(1, 3, 2, 2, 2), S5(1, 1, 2, 2, 2), S5(1, 3, 1, 1, 1)}, 0, 0, 0, 0,
     -1, {{4, 7}, {6, 5}}, U3D_ERR_INVALID_ARG,
     {"label 7 found (2 invalid", "ignore label -1"}},
    {B_SGD, "sgd_step: grad of another size",
     {S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 4), S5(1, 2, 3, 3, 3)}, 0, 0, 0.01f,
     0, 0, {{0}}, U3D_ERR_SHAPE, {"1x2x3x3x4", "1x2x3x3x3"}},
    {B_SGD, "sgd_step: negative learning rate",
     {S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3)}, 0, 0, -1.0f,
     0, 0, {{0}}, U3D_ERR_INVALID_ARG, {0}},
    {B_ADAM, "adam_step: second moment of another size",
     {S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3),
      S5(2, 2, 3, 3, 3)}, 0, 0, 1e-3f, 0, 0, {{0}}, U3D_ERR_SHAPE,
     {"second moment", "2x2x3x3x3"}},
    {B_ADAM, "adam_step: negative learning rate",
     {S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3),
      S5(1, 2, 3, 3, 3)}, 0, 0, -1e-3f, 0, 0, {{0}}, U3D_ERR_INVALID_ARG,
     {"lr"}},
    {B_ADAM, "adam_step: step 0",
     {S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 3),
      S5(1, 2, 3, 3, 3)}, 0, 0, 0.0f, 0, 0, {{0}}, U3D_ERR_INVALID_ARG,
     {"step >= 1"}},
    {B_AXPY, "axpy: sizes differ",
     {S5(1, 2, 3, 3, 3), S5(1, 2, 3, 3, 4)}, 0, 0, 0, 0, 0, {{0}},
     U3D_ERR_SHAPE, {0}},
};
#define NBAD (sizeof BAD / sizeof BAD[0])

static u3d_status bad_call(u3d_backend *be, const bad_case *c, u3d_error *err)
{
    u3d_tensor t[4];
    memset(t, 0, sizeof t);
    int32_t *lab = NULL;
    for (int i = 0; i < 4; i++) {
        if (!c->s[i].n)
            continue;
        if (c->call == B_CE && i == 1 && !c->f32_labels) {
            size_t n = u3d_shape_count(c->s[1]);
            lab = calloc(n, sizeof *lab);
            assert_non_null(lab);
            for (int j = 0; j < 2; j++)
                if (c->bad[j][0] || c->bad[j][1])
                    lab[c->bad[j][0]] = c->bad[j][1];
            t[i] = t_tensor_i32(be, c->s[i], lab);
        } else {
            t[i] = t_tensor(be, c->s[i], NULL);
        }
    }
    u3d_tensor *T[4];
    for (int i = 0; i < 4; i++)
        T[i] = t[i].buf ? &t[i] : NULL;
    u3d_conv3d_params cp = {.kernel = c->k, .pad = c->pad};
    u3d_bn_params bp = {c->f, 0.1f};
    u3d_sgd_params sp = {c->f, 0.9f, 0.0f};
    float loss;
    u3d_status st = U3D_OK;
    switch (c->call) {
    case B_CONV_FWD:
        st = u3d_conv3d_forward(&cp, T[0], T[1], NULL, T[2], err);
        break;
    case B_CONV_BWD_DATA:
        st = u3d_conv3d_backward_data(&cp, T[0], T[1], T[2], err);
        break;
    case B_CONV_BWD_WEIGHT:
        st = u3d_conv3d_backward_weight(&cp, T[0], T[1], T[2], NULL, err);
        break;
    case B_UPCONV_FWD:
        st = u3d_upconv3d_forward(T[0], T[1], NULL, T[2], err);
        break;
    case B_UPCONV_BWD_DATA:
        st = u3d_upconv3d_backward_data(T[0], T[1], T[2], err);
        break;
    case B_POOL_FWD:
        st = u3d_maxpool3d_forward(T[0], T[1], err);
        break;
    case B_POOL_BWD:
        st = u3d_maxpool3d_backward(T[0], T[1], T[2], err);
        break;
    case B_RELU_FWD:
        st = u3d_relu_forward(T[0], T[1], err);
        break;
    case B_RELU_BWD:
        st = u3d_relu_backward(T[0], T[1], T[2], err);
        break;
    case B_BN_TRAIN: { /* x, gamma (or none), statistics; y like x */
        u3d_tensor y = t_tensor(be, c->s[0], NULL);
        u3d_tensor v = t_tensor(be, c->s[2], NULL);
        st = u3d_batchnorm3d_forward_train(&bp, T[0], T[1], NULL, NULL, NULL,
                                           &y, T[2], &v, err);
        u3d_tensor_release(&y);
        u3d_tensor_release(&v);
        break;
    }
    case B_CC_FWD:
        st = u3d_crop_concat_forward(T[0], T[1], T[2], err);
        break;
    case B_CC_BWD:
        st = u3d_crop_concat_backward(T[0], T[1], T[2], 0, err);
        break;
    case B_CE:
        st = u3d_softmax_ce(T[0], T[1], T[2], c->ignore, NULL, NULL, &loss,
                            NULL, err);
        break;
    case B_SGD:
        st = u3d_sgd_step(&sp, T[0], T[1], T[2], err);
        break;
    case B_ADAM: {
        /* f: lr; 0 stands for a step count of 0 (lr 1e-3) */
        u3d_adam_params ap = {c->f ? c->f : 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f,
                              c->f ? 1 : 0};
        st = u3d_adam_step(&ap, T[0], T[1], T[2], T[3], err);
        break;
    }
    case B_AXPY:
        st = u3d_axpy(1.0f, T[0], T[1], err);
        break;
    default:
        fail_msg("bad call %d", c->call);
    }
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(&t[i]);
    free(lab);
    return st;
}

/* conv3d forward with ReLU fused into the store (inference): on every
 * backend equal to the reference's conv followed by max(0, .), for valid
 * and same padding and bias or none; the backward passes refuse it. */
static void conv3d_fused_relu(void **state)
{
    (void)state;
    static const struct {
        int k, pad, bias, n, cin, cout, d, h, w;
        int flat; /* 1: kernel 1 x k x k, padding 0, pad, pad */
    } cs[] = {{3, 0, 1, 2, 3, 10, 7, 9, 11, 0}, {3, 1, 0, 1, 5, 4, 6, 5, 8, 0},
              {1, 0, 1, 1, 6, 3, 4, 5, 6, 0},   {3, 1, 1, 2, 3, 5, 3, 6, 7, 1},
              {3, 0, 0, 1, 4, 3, 2, 5, 9, 1}};
    uint64_t seed = 77;
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        u3d_conv3d_params p = {.kernel = cs[i].k, .pad = cs[i].pad};
        if (cs[i].flat) {
            int k3[3] = {1, cs[i].k, cs[i].k};
            int p3[3] = {0, cs[i].pad, cs[i].pad};
            p = u3d_conv3d_params3(k3, p3, 0);
        }
        int ka[3], pa[3];
        u3d_conv3d_axes(&p, ka, pa);
        int od = u3d_conv3d_out_size_axis(cs[i].d, &p, 0),
            oh = u3d_conv3d_out_size_axis(cs[i].h, &p, 1),
            ow = u3d_conv3d_out_size_axis(cs[i].w, &p, 2);
        u3d_shape xs = u3d_shape5(cs[i].n, cs[i].cin, cs[i].d, cs[i].h,
                                  cs[i].w),
                  ws = u3d_shape5(cs[i].cout, cs[i].cin, ka[0], ka[1], ka[2]),
                  bs = u3d_shape5(1, cs[i].cout, 1, 1, 1),
                  ys = u3d_shape5(cs[i].n, cs[i].cout, od, oh, ow);
        float *hx = t_rand_array(&seed, u3d_shape_count(xs), -1, 1);
        float *hw = t_rand_array(&seed, u3d_shape_count(ws), -0.5f, 0.5f);
        float *hb = t_rand_array(&seed, u3d_shape_count(bs), -0.5f, 0.5f);
        size_t ny = u3d_shape_count(ys);
        /* the reference: plain conv, then max(0, .) on the host */
        u3d_tensor rx = t_tensor(g_ref, xs, hx), rw = t_tensor(g_ref, ws, hw),
                   rb = t_tensor(g_ref, bs, hb), ry = t_tensor(g_ref, ys, NULL);
        u3d_error err = {0};
        t_ok(u3d_conv3d_forward(&p, &rx, &rw, cs[i].bias ? &rb : NULL, &ry,
                                &err), &err, "ref conv");
        float *want = t_read(&ry);
        for (size_t j = 0; j < ny; j++)
            want[j] = want[j] > 0 ? want[j] : 0;
        p.relu = 1;
        for (int b = -1; b < g_nbe; b++) {
            u3d_backend *be = b < 0 ? g_ref : g_be[b];
            u3d_tensor x = t_tensor(be, xs, hx), w = t_tensor(be, ws, hw),
                       bb = t_tensor(be, bs, hb), y = t_tensor(be, ys, NULL);
            t_ok(u3d_conv3d_forward(&p, &x, &w, cs[i].bias ? &bb : NULL, &y,
                                    &err), &err, "fused conv");
            float *got = t_read(&y);
            t_assert_close(got, want, ny, 1e-5, u3d_backend_name(be));
            assert_int_equal(u3d_conv3d_backward_data(&p, &y, &w, &x, &err),
                             U3D_ERR_INVALID_ARG);
            assert_int_equal(
                u3d_conv3d_backward_weight(&p, &x, &y, &w, NULL, &err),
                U3D_ERR_INVALID_ARG);
            free(got);
            u3d_tensor *all[] = {&x, &w, &bb, &y};
            for (int k = 0; k < 4; k++)
                u3d_tensor_release(all[k]);
        }
        free(want);
        free(hx);
        free(hw);
        free(hb);
        u3d_tensor *all[] = {&rx, &rw, &rb, &ry};
        for (int k = 0; k < 4; k++)
            u3d_tensor_release(all[k]);
    }
}

static void rejects_bad_input(void **state)
{
    (void)state;
    for (int b = -1; b < g_nbe; b++) {
        u3d_backend *be = b < 0 ? g_ref : g_be[b];
        for (size_t i = 0; i < NBAD; i++) {
            const bad_case *c = &BAD[i];
            u3d_error err = {0};
            u3d_status st = bad_call(be, c, &err);
            if (st != c->want)
                fail_msg("%s on %s: status %d, want %d (%s)", c->name,
                         u3d_backend_name(be), (int)st, (int)c->want, err.msg);
            for (int j = 0; j < 3 && c->msg[j]; j++)
                if (!strstr(err.msg, c->msg[j]))
                    fail_msg("%s on %s: message '%s' lacks '%s'", c->name,
                             u3d_backend_name(be), err.msg, c->msg[j]);
        }
    }
}

/* ------------------------------------------------------------------ */

/* Which library ops (include/unet3d/op_list.h) each kind of case runs. An
 * op added to the list must get cases here (or a named test elsewhere), so
 * the table cannot silently miss it. */
static const struct {
    u3d_op op;
    int kind; /* OP_*, or -1: tested elsewhere, see `where` */
    const char *where;
} COVERAGE[] = {
    {U3D_OP_CONV3D_FORWARD, OP_CONV, NULL},
    {U3D_OP_CONV3D_BACKWARD_DATA, OP_CONV, NULL},
    {U3D_OP_CONV3D_BACKWARD_WEIGHT, OP_CONV, NULL},
    {U3D_OP_UPCONV3D_FORWARD, OP_UPCONV, NULL},
    {U3D_OP_UPCONV3D_BACKWARD_DATA, OP_UPCONV, NULL},
    {U3D_OP_UPCONV3D_BACKWARD_WEIGHT, OP_UPCONV, NULL},
    {U3D_OP_MAXPOOL3D_FORWARD, OP_POOL, NULL},
    {U3D_OP_MAXPOOL3D_BACKWARD, OP_POOL, NULL},
    {U3D_OP_RELU_FORWARD, OP_RELU, NULL},
    {U3D_OP_RELU_BACKWARD, OP_RELU, NULL},
    {U3D_OP_BATCHNORM3D_FORWARD_TRAIN, OP_BN, NULL},
    {U3D_OP_BATCHNORM3D_FORWARD_INFER, OP_BN, NULL},
    {U3D_OP_BATCHNORM3D_BACKWARD, OP_BN, NULL},
    {U3D_OP_CROP_CONCAT_FORWARD, OP_CC, NULL},
    {U3D_OP_CROP_CONCAT_BACKWARD, OP_CC, NULL},
    {U3D_OP_SOFTMAX_CE, OP_CE, NULL},
    {U3D_OP_SGD_STEP, OP_SGD, NULL},
    {U3D_OP_ADAM_STEP, OP_ADAM, NULL},
    {U3D_OP_AXPY, OP_AXPY, NULL},
    /* its inputs are augment.c's prepared constants: test_augment runs it
     * on the device against the host implementation bit for bit, and
     * test_cudnn's gpu_augment on the GPU */
    {U3D_OP_AUGMENT_SAMPLE, -1, "test_augment, test_cudnn (gpu_augment)"},
};

static int check_op_coverage(void)
{
    int bad = 0;
    for (int op = 0; op < U3D_OP_COUNT; op++) {
        int found = 0;
        for (size_t i = 0; i < sizeof COVERAGE / sizeof *COVERAGE; i++) {
            if ((int)COVERAGE[i].op != op)
                continue;
            if (COVERAGE[i].kind < 0)
                found = 1;
            for (size_t k = 0; k < NCASES && !found; k++)
                found = CASES[k].op == COVERAGE[i].kind;
        }
        if (!found) {
            fprintf(stderr, "test_ops: op %s of the op list has no case in "
                            "the op-test table: add its cases (and a "
                            "COVERAGE row)\n", u3d_op_name((u3d_op)op));
            bad = 1;
        }
    }
    return bad;
}

int main(void)
{
    u3d_error err = {0};
    if (u3d_backend_ref_create(&g_ref, &err)) {
        fprintf(stderr, "test_ops: %s\n", err.msg);
        return 1;
    }
    g_nbe = t_backends("test_ops", g_be);
    if (g_nbe == 0) {
        fprintf(stderr, "test_ops: no backend to test\n");
        u3d_backend_destroy(g_ref);
        return 1;
    }
    for (int b = 0; b < g_nbe; b++) {
        for (size_t i = 0; i < sizeof TOLS / sizeof TOLS[0]; i++)
            if (!strcmp(TOLS[i].backend, u3d_backend_name(g_be[b])))
                g_tol[b] = &TOLS[i];
        if (!g_tol[b]) {
            fprintf(stderr, "test_ops: no tolerances for backend %s: add a "
                            "row to TOLS\n", u3d_backend_name(g_be[b]));
            return 1;
        }
    }
    if (check_op_coverage())
        return 1;
    for (size_t i = 0; i < NCASES; i++) /* names: the seeds, the tests */
        for (size_t j = 0; j < i; j++)
            if (CASES[i].op == CASES[j].op &&
                !strcmp(CASES[i].name, CASES[j].name)) {
                fprintf(stderr, "test_ops: two %s cases named '%s'\n",
                        OP_NAMES[CASES[i].op], CASES[i].name);
                return 1;
            }
    static struct CMUnitTest tests[NCASES + 2];
    static char names[NCASES][96];
    size_t nt = 0, skipped = 0;
    for (size_t i = 0; i < NCASES; i++) {
        if ((CASES[i].flags & F_FULL) && t_small()) {
            skipped++;
            continue;
        }
        snprintf(names[i], sizeof names[i], "%s/%s", OP_NAMES[CASES[i].op],
                 CASES[i].name);
        tests[nt].name = names[i];
        tests[nt].test_func = run_case;
        tests[nt].initial_state = (void *)&CASES[i];
        nt++;
    }
    tests[nt].name = "rejects_bad_input";
    tests[nt].test_func = rejects_bad_input;
    nt++;
    tests[nt].name = "conv3d_fused_relu";
    tests[nt].test_func = conv3d_fused_relu;
    nt++;
    printf("test_ops: %zu cases x %d backend(s) (", nt - 2, g_nbe);
    for (int b = 0; b < g_nbe; b++)
        printf("%s%s", b ? ", " : "", u3d_backend_name(g_be[b]));
    printf(") against ref");
    if (skipped)
        printf("; %zu large cases left out (small mode)", skipped);
    printf(", %zu bad-input cases\n", NBAD);
    fflush(stdout);
    /* a subset, e.g. UNET3D_TEST_FILTER='conv3d*' (cmocka wildcards) */
    if (getenv("UNET3D_TEST_FILTER"))
        cmocka_set_test_filter(getenv("UNET3D_TEST_FILTER"));
    int failed = _cmocka_run_group_tests("test_ops", tests, nt, NULL, NULL);
    for (int b = 0; b < g_nbe; b++)
        u3d_backend_destroy(g_be[b]);
    u3d_backend_destroy(g_ref);
    return failed;
}
