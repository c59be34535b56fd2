/* What is particular to the OpenCL backend's kernels (every op on every
 * backend against the reference is test_ops.c): conv3d's other blockings
 * (the kernel variants other devices are tuned to, through the
 * UNET3D_TUNE_CONV3D_* overrides), bitwise reproducible weight gradients of
 * conv3d and upconv3d (fixed-order partial sums, no atomics), and the
 * accuracy of the two-level reductions over one large channel (batch norm)
 * and many voxels (softmax cross-entropy) against double. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/conv3d_wino.h"
#include "test_util.h"

/* ------------------------------------------------------------------ */
/* conv3d                                                              */
/* ------------------------------------------------------------------ */

/* Tolerances, normwise relative to max(max|ref|, 1). The reference sums in
 * double; the device sums Cin*k^3 float products per output (forward and
 * data gradient), and up to N*D*H*W products per weight gradient, in
 * float, hence the larger tolerance for the long reductions. */
#define TOL_FWD 1e-5
#define TOL_DATA 1e-5
#define TOL_WEIGHT 1e-4

typedef struct conv_shape {
    int n, cin, cout, d, h, w, k, pad, bias;
} conv_shape;

static u3d_shape out_shape(const conv_shape *c)
{
    u3d_conv3d_params p = {.kernel = c->k, .pad = c->pad};
    return u3d_shape5(c->n, c->cout, u3d_conv3d_out_size(c->d, &p),
                      u3d_conv3d_out_size(c->h, &p),
                      u3d_conv3d_out_size(c->w, &p));
}

/* Runs all three ops on both backends and compares. */
static void check_case(t_env *e, const conv_shape *c)
{
    u3d_conv3d_params p = {.kernel = c->k, .pad = c->pad};
    u3d_shape xs = u3d_shape5(c->n, c->cin, c->d, c->h, c->w);
    u3d_shape ws = u3d_shape5(c->cout, c->cin, c->k, c->k, c->k);
    u3d_shape bs = u3d_shape5(1, c->cout, 1, 1, 1);
    u3d_shape ys = out_shape(c);
    float *x = t_rand_array(&e->seed, u3d_shape_count(xs), -1, 1);
    float *w = t_rand_array(&e->seed, u3d_shape_count(ws), -1, 1);
    float *b = t_rand_array(&e->seed, u3d_shape_count(bs), -1, 1);
    float *dy = t_rand_array(&e->seed, u3d_shape_count(ys), -1, 1);
    u3d_backend *bes[2] = {e->cl, e->ref};
    u3d_tensor t[2][8];
    u3d_error err = {0};
    char what[160];
    snprintf(what, sizeof what, "N%d %d->%d %dx%dx%d k%d pad%d bias%d", c->n,
             c->cin, c->cout, c->d, c->h, c->w, c->k, c->pad, c->bias);
    for (int i = 0; i < 2; i++) {
        u3d_tensor *T = t[i];
        T[0] = t_tensor(bes[i], xs, x);
        T[1] = t_tensor(bes[i], ws, w);
        T[2] = t_tensor(bes[i], bs, b);
        T[3] = t_tensor(bes[i], ys, dy);
        T[4] = t_tensor(bes[i], ys, NULL);
        T[5] = t_tensor(bes[i], xs, NULL);
        T[6] = t_tensor(bes[i], ws, NULL);
        T[7] = t_tensor(bes[i], bs, NULL);
        /* outputs must be overwritten, not accumulated: start from junk */
        t_ok(u3d_tensor_fill(&T[4], 7.0f, &err), &err, "fill");
        t_ok(u3d_tensor_fill(&T[5], 7.0f, &err), &err, "fill");
        t_ok(u3d_tensor_fill(&T[6], 7.0f, &err), &err, "fill");
        t_ok(u3d_tensor_fill(&T[7], 7.0f, &err), &err, "fill");
        t_ok(u3d_conv3d_forward(&p, &T[0], &T[1], c->bias ? &T[2] : NULL,
                                &T[4], &err),
             &err, what);
        t_ok(u3d_conv3d_backward_data(&p, &T[3], &T[1], &T[5], &err), &err,
             what);
        t_ok(u3d_conv3d_backward_weight(&p, &T[0], &T[3], &T[6],
                                        c->bias ? &T[7] : NULL, &err),
             &err, what);
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s: y", what);
    t_assert_tensors_close(&t[0][4], &t[1][4], TOL_FWD, msg);
    snprintf(msg, sizeof msg, "%s: dx", what);
    t_assert_tensors_close(&t[0][5], &t[1][5], TOL_DATA, msg);
    snprintf(msg, sizeof msg, "%s: dw", what);
    t_assert_tensors_close(&t[0][6], &t[1][6], TOL_WEIGHT, msg);
    if (c->bias) {
        snprintf(msg, sizeof msg, "%s: db", what);
        t_assert_tensors_close(&t[0][7], &t[1][7], TOL_WEIGHT, msg);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 8; j++)
            u3d_tensor_release(&t[i][j]);
    free(x);
    free(w);
    free(b);
    free(dy);
}

/* Other blockings than this device's tuned ones, through the environment
 * overrides the host code reads (UNET3D_TUNE_CONV3D_<PARAM>), so the kernel
 * variants other devices use are tested here too. */
static void conv3d_other_blockings(void **state)
{
    t_env *e = *state;
    const char *cfgs[][2] = {
        {"VW=1 NV=1 COB=1 ACC=1 TAPOUT_CIN=1", "BW_VW=1 BW_COB=1"},
        {"VW=4 NV=2 COB=3 ACC=6 TAPOUT_CIN=100000", "BW_VW=2 BW_COB=3"},
        {"VW=8 NV=1 COB=8 ACC=8 TAPOUT_CIN=1", "BW_VW=8 BW_COB=5"},
        {"VW=16 NV=3 COB=4 ACC=12", "BW_VW=16 BW_COB=8"},
        {"VW=2 NV=4 COB=16 ACC=32", "BW_VW=4 BW_COB=2"},
    };
    /* chunked weight gradient (many chunks, partial last vectors) and
     * one-plane slabs */
    const char *chunk =
        "BW_ITEMS=100000 BW_CHUNK=5 BW_MAXCHUNK=37 LWS=7 SLAB_KB=1";
    conv_shape cases[] = {
        {2, 3, 5, 5, 6, 13, 3, 0, 1},
        {2, 2, 7, 4, 5, 9, 3, 1, 1},
        {3, 5, 2, 3, 4, 6, 1, 0, 0},
    };
    int ncfg = sizeof cfgs / sizeof cfgs[0];
    for (int i = 0; i < ncfg; i++) {
        if (t_small() && i % 2) /* the simulator is slow */
            continue;
        char buf[200];
        snprintf(buf, sizeof buf, "%s %s %s", cfgs[i][0], cfgs[i][1], chunk);
        char *names[16];
        int nn = 0;
        for (char *tok = strtok(buf, " "); tok && nn < 16;
             tok = strtok(NULL, " ")) {
            char *eq = strchr(tok, '=');
            char name[64];
            *eq = 0;
            snprintf(name, sizeof name, "UNET3D_TUNE_CONV3D_%s", tok);
            setenv(name, eq + 1, 1);
            names[nn++] = tok;
        }
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++)
            check_case(e, &cases[j]);
        for (int j = 0; j < nn; j++) {
            char name[64];
            snprintf(name, sizeof name, "UNET3D_TUNE_CONV3D_%s", names[j]);
            unsetenv(name);
        }
    }
}

/* The weight gradient reduces partial sums in a fixed order: two runs give
 * the same bits. */
static void conv3d_weight_gradient_is_deterministic(void **state)
{
    t_env *e = *state;
    conv_shape c = {2, 3, 4, 5, 6, 17, 3, 1, 1};
    if (!t_small())
        c.d = 12, c.h = 20, c.w = 23;
    u3d_conv3d_params p = {.kernel = c.k, .pad = c.pad};
    u3d_shape xs = u3d_shape5(c.n, c.cin, c.d, c.h, c.w);
    u3d_shape ws = u3d_shape5(c.cout, c.cin, c.k, c.k, c.k);
    u3d_shape ys = out_shape(&c);
    float *x = t_rand_array(&e->seed, u3d_shape_count(xs), -1, 1);
    float *dy = t_rand_array(&e->seed, u3d_shape_count(ys), -1, 1);
    u3d_error err = {0};
    setenv("UNET3D_TUNE_CONV3D_BW_MAXCHUNK", "64", 1); /* many partial sums */
    u3d_tensor X = t_tensor(e->cl, xs, x), DY = t_tensor(e->cl, ys, dy);
    u3d_tensor DW[2], DB[2];
    float *dw[2], *db[2];
    for (int i = 0; i < 2; i++) {
        DW[i] = t_tensor(e->cl, ws, NULL);
        DB[i] = t_tensor(e->cl, u3d_shape5(1, c.cout, 1, 1, 1), NULL);
        t_ok(u3d_conv3d_backward_weight(&p, &X, &DY, &DW[i], &DB[i], &err),
             &err, "bwd weight");
        dw[i] = t_read(&DW[i]);
        db[i] = t_read(&DB[i]);
    }
    unsetenv("UNET3D_TUNE_CONV3D_BW_MAXCHUNK");
    assert_memory_equal(dw[0], dw[1], u3d_shape_count(ws) * sizeof(float));
    assert_memory_equal(db[0], db[1], (size_t)c.cout * sizeof(float));
    for (int i = 0; i < 2; i++) {
        u3d_tensor_release(&DW[i]);
        u3d_tensor_release(&DB[i]);
        free(dw[i]);
        free(db[i]);
    }
    u3d_tensor_release(&X);
    u3d_tensor_release(&DY);
    free(x);
    free(dy);
}

/* ------------------------------------------------------------------ */
/* upconv3d                                                            */
/* ------------------------------------------------------------------ */

typedef struct up_io {
    u3d_shape xs, ws, ys;
    int bias;
    float *x, *w, *b, *dy;   /* inputs */
    float *y, *dx, *dw, *db; /* outputs, filled by run_up */
} up_io;

static up_io up_make(uint64_t *seed, int n, int cin, int cout, int d, int h,
                     int w, int bias)
{
    up_io io;
    memset(&io, 0, sizeof io);
    io.xs = u3d_shape5(n, cin, d, h, w);
    io.ws = u3d_shape5(cin, cout, 2, 2, 2);
    io.ys = u3d_shape5(n, cout, 2 * d, 2 * h, 2 * w);
    io.bias = bias;
    io.x = t_rand_array(seed, u3d_shape_count(io.xs), -1, 1);
    io.w = t_rand_array(seed, u3d_shape_count(io.ws), -1, 1);
    io.b = t_rand_array(seed, (size_t)cout, -1, 1);
    io.dy = t_rand_array(seed, u3d_shape_count(io.ys), -1, 1);
    return io;
}

static void up_free_outputs(up_io *io)
{
    free(io->y);
    free(io->dx);
    free(io->dw);
    free(io->db);
    io->y = io->dx = io->dw = io->db = NULL;
}

static void up_free(up_io *io)
{
    up_free_outputs(io);
    free(io->x);
    free(io->w);
    free(io->b);
    free(io->dy);
}

/* Forward, backward-data and backward-weight on be. */
static void run_up(u3d_backend *be, up_io *io)
{
    u3d_error err = {0};
    u3d_shape bs = u3d_shape5(1, io->ws.c, 1, 1, 1);
    u3d_tensor x = t_tensor(be, io->xs, io->x), w = t_tensor(be, io->ws, io->w);
    u3d_tensor b = t_tensor(be, bs, io->b), dy = t_tensor(be, io->ys, io->dy);
    u3d_tensor y = t_tensor(be, io->ys, NULL), dx = t_tensor(be, io->xs, NULL);
    u3d_tensor dw = t_tensor(be, io->ws, NULL), db = t_tensor(be, bs, NULL);
    /* garbage in the outputs: every element must be overwritten */
    t_ok(u3d_tensor_fill(&dx, 3.0f, &err), &err, "fill");
    t_ok(u3d_tensor_fill(&dw, 3.0f, &err), &err, "fill");
    t_ok(u3d_tensor_fill(&db, 3.0f, &err), &err, "fill");
    t_ok(u3d_upconv3d_forward(&x, &w, io->bias ? &b : NULL, &y, &err), &err,
         "upconv forward");
    t_ok(u3d_upconv3d_backward_data(&dy, &w, &dx, &err), &err,
         "upconv backward-data");
    t_ok(
        u3d_upconv3d_backward_weight(&x, &dy, &dw, io->bias ? &db : NULL, &err),
        &err, "upconv backward-weight");
    up_free_outputs(io);
    io->y = t_read(&y);
    io->dx = t_read(&dx);
    io->dw = t_read(&dw);
    io->db = t_read(&db);
    u3d_tensor *all[] = {&x, &w, &b, &dy, &y, &dx, &dw, &db};
    for (int i = 0; i < 8; i++)
        u3d_tensor_release(all[i]);
}

/* The split-K weight gradient has no atomics: two runs agree bit for bit. */
static void upconv_weight_grad_reproducible(void **state)
{
    t_env *e = *state;
    up_io io = t_small() ? up_make(&e->seed, 2, 5, 3, 3, 4, 5, 1)
                         : up_make(&e->seed, 3, 6, 5, 9, 10, 11, 1);
    run_up(e->cl, &io);
    float *dw = io.dw, *db = io.db;
    io.dw = io.db = NULL;
    run_up(e->cl, &io);
    assert_memory_equal(dw, io.dw, u3d_shape_count(io.ws) * sizeof *dw);
    assert_memory_equal(db, io.db, (size_t)io.ws.c * sizeof *db);
    free(dw);
    free(db);
    up_free(&io);
}

/* UNET3D_UPCONV_PATH other than gemm or direct: each pass refuses with a
 * message naming the variable and the value, and writes nothing. */
static void upconv_bad_path_refused(void **state)
{
    t_env *e = *state;
    up_io io = up_make(&e->seed, 1, 4, 4, 2, 2, 2, 1);
    u3d_error err = {0};
    u3d_shape bs = u3d_shape5(1, io.ws.c, 1, 1, 1);
    u3d_tensor x = t_tensor(e->cl, io.xs, io.x), w = t_tensor(e->cl, io.ws, io.w);
    u3d_tensor b = t_tensor(e->cl, bs, io.b), dy = t_tensor(e->cl, io.ys, io.dy);
    u3d_tensor y = t_tensor(e->cl, io.ys, NULL), dx = t_tensor(e->cl, io.xs, NULL);
    u3d_tensor dw = t_tensor(e->cl, io.ws, NULL), db = t_tensor(e->cl, bs, NULL);
    const char *old = getenv("UNET3D_UPCONV_PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("UNET3D_UPCONV_PATH", "fast", 1);
    u3d_status st[3] = {
        u3d_upconv3d_forward(&x, &w, &b, &y, &err),
        u3d_upconv3d_backward_data(&dy, &w, &dx, &err),
        u3d_upconv3d_backward_weight(&x, &dy, &dw, &db, &err)};
    if (saved) {
        setenv("UNET3D_UPCONV_PATH", saved, 1);
        free(saved);
    } else {
        unsetenv("UNET3D_UPCONV_PATH");
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(st[i], U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "UNET3D_UPCONV_PATH='fast'"));
    u3d_tensor *all[] = {&x, &w, &b, &dy, &y, &dx, &dw, &db};
    for (int i = 0; i < 8; i++)
        u3d_tensor_release(all[i]);
    up_free(&io);
}

/* UNET3D_WINOGRAD other than on or off: a 3x3x3 convolution's forward
 * and data gradient refuse with a message naming the variable and the
 * value, and leave their outputs as they were. */
static void winograd_bad_env_refused(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_conv3d_params p = {.kernel = 3, .pad = 1};
    u3d_shape xs = u3d_shape5(1, 16, 6, 6, 6), ws = u3d_shape5(16, 16, 3, 3, 3);
    size_t nx = u3d_shape_count(xs), nw = u3d_shape_count(ws);
    float *hx = t_rand_array(&e->seed, nx, -1, 1);
    float *hw = t_rand_array(&e->seed, nw, -1, 1);
    u3d_tensor x = t_tensor(e->cl, xs, hx), w = t_tensor(e->cl, ws, hw);
    u3d_tensor y = t_tensor(e->cl, xs, hx), dx = t_tensor(e->cl, xs, hx);
    const char *old = getenv("UNET3D_WINOGRAD");
    char *saved = old ? strdup(old) : NULL;
    setenv("UNET3D_WINOGRAD", "fast", 1);
    u3d_status st[2] = {u3d_conv3d_forward(&p, &x, &w, NULL, &y, &err),
                        u3d_conv3d_backward_data(&p, &x, &w, &dx, &err)};
    if (saved) {
        setenv("UNET3D_WINOGRAD", saved, 1);
        free(saved);
    } else {
        unsetenv("UNET3D_WINOGRAD");
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(st[i], U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "UNET3D_WINOGRAD='fast'"));
    float *gy = t_read(&y), *gx = t_read(&dx);
    assert_memory_equal(gy, hx, nx * sizeof(float));
    assert_memory_equal(gx, hx, nx * sizeof(float));
    free(gy);
    free(gx);
    free(hx);
    free(hw);
    u3d_tensor *all[] = {&x, &w, &y, &dx};
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(all[i]);
}

/* Which Winograd kernels a layer gets: the fused one for many tiles of
 * few channels where a block's V and M fit the device's local memory,
 * the chunked ones for deep layers (U of 256 x 256 channels, 16 MiB, read
 * by every fused block) and when fused_kb is below a block; the same for
 * the weight gradient (its V, D and dU in local memory). */
static void winograd_fused_choice(void **state)
{
    t_env *e = *state;
    const u3d_cl *cl = u3d_cl_of(e->cl);
    char d[200];
    u3d_shape x = u3d_shape5(1, 32, 66, 66, 66), y = u3d_shape5(1, 64, 64, 64, 64);
    u3d_shape xd = u3d_shape5(1, 256, 13, 13, 13),
              yd = u3d_shape5(1, 256, 11, 11, 11);
    const char *old = getenv("UNET3D_TUNE_WINOGRAD_FUSED_KB");
    char *saved = old ? strdup(old) : NULL;
    unsetenv("UNET3D_TUNE_WINOGRAD_FUSED_KB");
    u3d_cl_wino_describe(cl, "fwd", xd, yd, d, sizeof d);
    assert_null(strstr(d, "fused"));
    assert_non_null(strstr(d, "chunk"));
    u3d_cl_wino_describe(cl, "weight", xd, yd, d, sizeof d);
    assert_null(strstr(d, "fused")); /* dU alone 16 MiB */
    u3d_cl_wino_describe(cl, "fwd", x, y, d, sizeof d);
    /* blocks of 16-32 tiles of 32 channels: up to 300 KiB */
    if (cl->local_mem >= (1u << 20))
        assert_non_null(strstr(d, "fused"));
    /* the weight gradient of 8 -> 16 channels: V, D and dU under 1 MiB */
    u3d_shape x8 = u3d_shape5(1, 8, 66, 66, 66), y16 = u3d_shape5(1, 16, 64, 64, 64);
    u3d_cl_wino_describe(cl, "weight", x8, y16, d, sizeof d);
    if (cl->local_mem >= (1u << 20))
        assert_non_null(strstr(d, "fused"));
    setenv("UNET3D_TUNE_WINOGRAD_FUSED_KB", "1", 1);
    char dw[200];
    u3d_cl_wino_describe(cl, "weight", x8, y16, dw, sizeof dw);
    u3d_cl_wino_describe(cl, "data", x, y, d, sizeof d);
    if (saved) {
        setenv("UNET3D_TUNE_WINOGRAD_FUSED_KB", saved, 1);
        free(saved);
    } else {
        unsetenv("UNET3D_TUNE_WINOGRAD_FUSED_KB");
    }
    assert_null(strstr(d, "fused"));
    assert_null(strstr(dw, "fused"));
}

/* ------------------------------------------------------------------ */
/* batch norm                                                          */
/* ------------------------------------------------------------------ */

static const u3d_bn_params BN = {1e-5f, 0.1f};

/* Inputs of one case (host arrays; gamma/beta/rm/rv NULL when unused). */
typedef struct bn_in {
    u3d_shape s;
    float *x, *dy, *gamma, *beta, *rm, *rv;
} bn_in;

/* Tensors of one training forward + backward + inference on a backend. */
typedef struct bn_out {
    u3d_tensor x, dy, gamma, beta, rm, rv, y, mean, invstd, dx, dgamma,
        dbeta, yi;
} bn_out;

static void bn_release(bn_out *o)
{
    u3d_tensor *all[] = {&o->x,    &o->dy,     &o->gamma, &o->beta, &o->rm,
                         &o->rv,   &o->y,      &o->mean,  &o->invstd,
                         &o->dx,   &o->dgamma, &o->dbeta, &o->yi};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        u3d_tensor_release(all[i]);
}

static u3d_tensor *opt(u3d_tensor *t) { return t->buf ? t : NULL; }

/* Runs forward (training), backward and inference; dparams: ask for dgamma
 * and dbeta. Inference uses rm/rv as given (before the update) or, without
 * running statistics, the saved batch mean and 1/invstd^2 - eps. */
static void bn_run(u3d_backend *be, const bn_in *in, int dparams, bn_out *o)
{
    u3d_error err = {0};
    u3d_shape cs = u3d_shape5(1, in->s.c, 1, 1, 1);
    memset(o, 0, sizeof *o);
    o->x = t_tensor(be, in->s, in->x);
    o->dy = t_tensor(be, in->s, in->dy);
    if (in->gamma)
        o->gamma = t_tensor(be, cs, in->gamma);
    if (in->beta)
        o->beta = t_tensor(be, cs, in->beta);
    if (in->rm) {
        o->rm = t_tensor(be, cs, in->rm);
        o->rv = t_tensor(be, cs, in->rv);
    }
    o->y = t_tensor(be, in->s, NULL);
    o->yi = t_tensor(be, in->s, NULL);
    o->dx = t_tensor(be, in->s, NULL);
    o->mean = t_tensor(be, cs, NULL);
    o->invstd = t_tensor(be, cs, NULL);
    if (dparams) {
        o->dgamma = t_tensor(be, cs, NULL);
        o->dbeta = t_tensor(be, cs, NULL);
    }
    if (in->rm) {
        u3d_tensor rm0 = t_tensor(be, cs, in->rm), rv0 = t_tensor(be, cs, in->rv);
        t_ok(u3d_batchnorm3d_forward_infer(&BN, &o->x, opt(&o->gamma),
                                           opt(&o->beta), &rm0, &rv0, &o->yi,
                                           &err),
             &err, "bn inference");
        u3d_tensor_release(&rm0);
        u3d_tensor_release(&rv0);
    }
    t_ok(u3d_batchnorm3d_forward_train(&BN, &o->x, opt(&o->gamma),
                                       opt(&o->beta), opt(&o->rm), opt(&o->rv),
                                       &o->y, &o->mean, &o->invstd, &err),
         &err, "bn forward");
    t_ok(u3d_batchnorm3d_backward(&o->x, &o->dy, opt(&o->gamma), &o->mean,
                                  &o->invstd, &o->dx, opt(&o->dgamma),
                                  opt(&o->dbeta), &err),
         &err, "bn backward");
}

static void bn_free_in(bn_in *in)
{
    free(in->x);
    free(in->dy);
    free(in->gamma);
    free(in->beta);
    free(in->rm);
    free(in->rv);
}

/* Random case: x = offset + scale*U(-1,1) so that the mean is not 0. */
static bn_in bn_random(uint64_t *seed, u3d_shape s, int affine, int running)
{
    bn_in in = {s, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t n = u3d_shape_count(s);
    float off = t_randf(seed, -3, 3), sc = t_randf(seed, 0.1f, 3);
    in.x = t_rand_array(seed, n, -1, 1);
    for (size_t i = 0; i < n; i++)
        in.x[i] = off + sc * in.x[i];
    in.dy = t_rand_array(seed, n, -1, 1);
    if (affine) {
        in.gamma = t_rand_array(seed, (size_t)s.c, 0.5f, 1.5f);
        in.beta = t_rand_array(seed, (size_t)s.c, -1, 1);
    }
    if (running) {
        in.rm = t_rand_array(seed, (size_t)s.c, -1, 1);
        in.rv = t_rand_array(seed, (size_t)s.c, 0.5f, 2);
    }
    return in;
}

/* One large channel pair (the paper's net has ~2M voxels per channel):
 * device statistics and parameter gradients vs a double host computation.
 * Channel 0 has a large offset (mean 100, spread 1), the hard case for a
 * variance computed as E[x^2] - E[x]^2. */
static void bn_large_channel_accuracy(void **state)
{
    t_env *e = *state;
    /* 17^3 under oclgrind: more than one chunk of the GPU geometry, and a
     * partial last one with a tail of single voxels */
    int sz = t_small() ? 17 : 64;
    u3d_shape s = u3d_shape5(1, 2, sz, sz, sz);
    size_t S = u3d_shape_spatial(s);
    bn_in in = bn_random(&e->seed, s, 1, 1);
    for (size_t i = 0; i < S; i++) {
        in.x[i] = 100.0f + t_randf(&e->seed, -1, 1);
        in.x[S + i] = t_randf(&e->seed, -5, 5);
    }
    bn_out c;
    bn_run(e->cl, &in, 1, &c);
    float *mean = t_read(&c.mean), *inv = t_read(&c.invstd);
    float *dg = t_read(&c.dgamma), *db = t_read(&c.dbeta);
    for (int ch = 0; ch < 2; ch++) {
        const float *x = in.x + ch * S, *dy = in.dy + ch * S;
        double sum = 0, sq = 0, sdy = 0, sdyx = 0, sabs = 0;
        for (size_t i = 0; i < S; i++)
            sum += x[i];
        double mu = sum / (double)S;
        for (size_t i = 0; i < S; i++)
            sq += (x[i] - mu) * (x[i] - mu);
        double iv = 1.0 / sqrt(sq / (double)S + BN.eps);
        for (size_t i = 0; i < S; i++) {
            sdy += dy[i];
            sdyx += dy[i] * (x[i] - mu) * iv;
            sabs += fabs(dy[i]) * (1.0 + fabs((x[i] - mu) * iv));
        }
        double e_mu = fabs(mean[ch] - mu) / fabs(mu);
        double e_iv = fabs(inv[ch] - iv) / iv;
        /* sums that cancel are judged against the sum of magnitudes */
        double e_db = fabs(db[ch] - sdy) / sabs, e_dg = fabs(dg[ch] - sdyx) / sabs;
        print_message("channel %d (%zu voxels): rel err mean %.2e invstd "
                      "%.2e, dbeta %.2e dgamma %.2e of sum |terms|\n",
                      ch, S, e_mu, e_iv, e_db, e_dg);
        /* float32 over 2^18 values: a sound two-level reduction stays near
         * a few ulp; 1e-5 would catch a naive or single-level one */
        assert_true(e_mu < 1e-5);
        assert_true(e_iv < 1e-5);
        assert_true(e_db < 1e-6);
        assert_true(e_dg < 1e-6);
    }
    free(mean);
    free(inv);
    free(dg);
    free(db);
    bn_release(&c);
    bn_free_in(&in);
}

/* ------------------------------------------------------------------ */
/* softmax cross-entropy                                               */
/* ------------------------------------------------------------------ */

/* Host arrays of one case. */
typedef struct ce_in {
    u3d_shape s; /* logits shape */
    int ignore;
    float *z, *w;
    int32_t *lab;
} ce_in;

typedef struct ce_out {
    u3d_tensor z, lab, w, p, d;
    float loss, wsum;
} ce_out;

static void ce_free_in(ce_in *in)
{
    free(in->z);
    free(in->w);
    free(in->lab);
}

static void ce_release(ce_out *o)
{
    u3d_tensor *all[] = {&o->z, &o->lab, &o->w, &o->p, &o->d};
    for (int i = 0; i < 5; i++)
        u3d_tensor_release(all[i]);
}

static u3d_shape label_shape(u3d_shape s)
{
    s.c = 1;
    return s;
}

/* Random logits in [-5,5), labels in [0,C) with a fraction `ign` set to the
 * ignore label, class weights in [0.2, 2). */
static ce_in ce_random(uint64_t *seed, u3d_shape s, int ignore, float ign)
{
    ce_in in = {s, ignore, NULL, NULL, NULL};
    size_t nv = (size_t)s.n * s.d * s.h * s.w;
    in.z = t_rand_array(seed, u3d_shape_count(s), -5, 5);
    in.w = t_rand_array(seed, (size_t)s.c, 0.2f, 2);
    in.lab = malloc(nv * sizeof *in.lab);
    assert_non_null(in.lab);
    for (size_t v = 0; v < nv; v++)
        in.lab[v] = t_randf(seed, 0, 1) < ign ? ignore
                                              : t_randi(seed, 0, s.c - 1);
    return in;
}

/* Runs the op on be; outputs requested by flags (1 probs, 2 dlogits). */
static u3d_status ce_run(u3d_backend *be, const ce_in *in, int flags,
                         ce_out *o, u3d_error *err)
{
    memset(o, 0, sizeof *o);
    o->z = t_tensor(be, in->s, in->z);
    o->lab = t_tensor_i32(be, label_shape(in->s), in->lab);
    o->w = t_tensor(be, u3d_shape5(1, in->s.c, 1, 1, 1), in->w);
    if (flags & 1)
        o->p = t_tensor(be, in->s, NULL);
    if (flags & 2)
        o->d = t_tensor(be, in->s, NULL);
    return u3d_softmax_ce(&o->z, &o->lab, &o->w, in->ignore,
                          o->p.buf ? &o->p : NULL, o->d.buf ? &o->d : NULL,
                          &o->loss, &o->wsum, err);
}

static void assert_scalar(double got, double want, double tol,
                          const char *what)
{
    if (!(fabs(got - want) <= tol * fmax(fabs(want), 1e-30)))
        fail_msg("%s: got %.9g, want %.9g (tol %.1g relative)", what, got,
                 want, tol);
}

/* The loss over 2^18 voxels (small: 2^12) vs a double host computation. */
static void ce_large_reduction_accuracy(void **state)
{
    t_env *e = *state;
    int sz = t_small() ? 16 : 64;
    u3d_shape s = u3d_shape5(1, 3, sz, sz, sz);
    size_t S = u3d_shape_spatial(s);
    ce_in in = ce_random(&e->seed, s, 255, 0.2f);
    ce_out c;
    u3d_error err = {0};
    t_ok(ce_run(e->cl, &in, 0, &c, &err), &err, "softmax-ce");
    double sw = 0, sl = 0;
    for (size_t v = 0; v < S; v++) {
        int y = in.lab[v];
        if (y == in.ignore)
            continue;
        double mx = -INFINITY, se = 0;
        for (int k = 0; k < 3; k++)
            mx = fmax(mx, in.z[k * S + v]);
        for (int k = 0; k < 3; k++)
            se += exp(in.z[k * S + v] - mx);
        sw += in.w[y];
        sl += in.w[y] * (log(se) - (in.z[(size_t)y * S + v] - mx));
    }
    print_message("%zu voxels: loss rel err %.2e, weight sum rel err %.2e\n",
                  S, fabs(c.loss - sl / sw) / (sl / sw),
                  fabs(c.wsum - sw) / sw);
    /* sums of positive terms: a two-level float reduction stays within a
     * few ulp; a single running float sum would drift ~1e-4 */
    assert_scalar(c.loss, sl / sw, 1e-5, "large loss");
    assert_scalar(c.wsum, sw, 1e-5, "large weight sum");
    ce_release(&c);
    ce_free_in(&in);
}

/* Sets env name to value (NULL: unsets); returns the old value (free it
 * with env_restore). */
static char *env_swap(const char *name, const char *value)
{
    const char *old = getenv(name);
    char *saved = old ? strdup(old) : NULL;
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
    return saved;
}

static void env_restore(const char *name, char *saved)
{
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    free(saved);
}

/* The weight cache (u3d_conv3d_params.weights_version): a data gradient
 * of the forward's version reads the forward's transform of the weights
 * (shown by changing them in between, which callers must not: it then
 * still computes with the forward's), one of another version transforms
 * them anew, and releasing the weights drops their entry. */
static void winograd_weight_cache(void **state)
{
    t_env *e = *state;
    const u3d_cl *cl = u3d_cl_of(e->cl);
    char *wino = env_swap("UNET3D_WINOGRAD", "on");
    char *fkb = env_swap("UNET3D_TUNE_WINOGRAD_FUSED_KB", "1"); /* chunked */
    u3d_conv3d_params p = {.kernel = 3, .pad = 1};
    u3d_shape xs = u3d_shape5(1, 12, 6, 7, 8), ws = u3d_shape5(20, 12, 3, 3, 3);
    u3d_shape ys = u3d_shape5(1, 20, 6, 7, 8);
    float *x = t_rand_array(&e->seed, u3d_shape_count(xs), -1, 1);
    float *w1 = t_rand_array(&e->seed, u3d_shape_count(ws), -1, 1);
    float *w2 = t_rand_array(&e->seed, u3d_shape_count(ws), -1, 1);
    float *dy = t_rand_array(&e->seed, u3d_shape_count(ys), -1, 1);
    u3d_error err = {0};
    /* the reference's data gradients with w1 and with w2 */
    u3d_tensor rdy = t_tensor(e->ref, ys, dy), rw = t_tensor(e->ref, ws, w1);
    u3d_tensor dxa = t_tensor(e->ref, xs, NULL), dxb = t_tensor(e->ref, xs, NULL);
    t_ok(u3d_conv3d_backward_data(&p, &rdy, &rw, &dxa, &err), &err, "ref w1");
    t_ok(u3d_tensor_write(&rw, w2, &err), &err, "ref write");
    t_ok(u3d_conv3d_backward_data(&p, &rdy, &rw, &dxb, &err), &err, "ref w2");

    size_t n0 = cl->nwcache;
    u3d_tensor tx = t_tensor(e->cl, xs, x), tw = t_tensor(e->cl, ws, w1);
    u3d_tensor tdy = t_tensor(e->cl, ys, dy), ty = t_tensor(e->cl, ys, NULL);
    u3d_tensor dx = t_tensor(e->cl, xs, NULL);
    p.weights_version = 5;
    t_ok(u3d_conv3d_forward(&p, &tx, &tw, NULL, &ty, &err), &err, "forward");
    assert_int_equal(cl->nwcache, n0 + 1);
    t_ok(u3d_tensor_write(&tw, w2, &err), &err, "write w2");
    t_ok(u3d_conv3d_backward_data(&p, &tdy, &tw, &dx, &err), &err, "data v5");
    t_assert_tensors_close(&dx, &dxa, TOL_DATA, "data gradient of version 5");
    p.weights_version = 6;
    t_ok(u3d_conv3d_backward_data(&p, &tdy, &tw, &dx, &err), &err, "data v6");
    t_assert_tensors_close(&dx, &dxb, TOL_DATA, "data gradient of version 6");
    assert_int_equal(cl->nwcache, n0 + 1);
    u3d_tensor_release(&tw);
    assert_int_equal(cl->nwcache, n0);
    /* without a version nothing is kept */
    tw = t_tensor(e->cl, ws, w2);
    p.weights_version = 0;
    t_ok(u3d_conv3d_forward(&p, &tx, &tw, NULL, &ty, &err), &err, "forward");
    t_ok(u3d_conv3d_backward_data(&p, &tdy, &tw, &dx, &err), &err, "data v0");
    t_assert_tensors_close(&dx, &dxb, TOL_DATA, "data gradient, no version");
    assert_int_equal(cl->nwcache, n0);

    u3d_tensor *all[] = {&rdy, &rw, &dxa, &dxb, &tx, &tw, &tdy, &ty, &dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        u3d_tensor_release(all[i]);
    free(x);
    free(w1);
    free(w2);
    free(dy);
    env_restore("UNET3D_TUNE_WINOGRAD_FUSED_KB", fkb);
    env_restore("UNET3D_WINOGRAD", wino);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv3d_other_blockings),
        cmocka_unit_test(conv3d_weight_gradient_is_deterministic),
        cmocka_unit_test(upconv_weight_grad_reproducible),
        cmocka_unit_test(upconv_bad_path_refused),
        cmocka_unit_test(winograd_bad_env_refused),
        cmocka_unit_test(winograd_fused_choice),
        cmocka_unit_test(winograd_weight_cache),
        cmocka_unit_test(bn_large_channel_accuracy),
        cmocka_unit_test(ce_large_reduction_accuracy),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
