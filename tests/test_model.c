/* The 3D U-Net: parameter counts, sizes, memory estimates, device vs
 * reference forward/backward, finite-difference gradients of the whole
 * network, BN modes, SGD and bad inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"
#include "unet3d/model.h"

#define IGNORE 3 /* ignore label of the 3-class nets */

/* ---- helpers ---- */

static u3d_net_config cfg_of(int levels, int f, int cin, int classes,
                             u3d_padding pad, u3d_bn_mode bn)
{
    u3d_net_config c = {levels, f, cin, classes, pad, bn, 1e-5f, 0.1f};
    return c;
}

static u3d_net *make_net(u3d_backend *be, const u3d_net_config *cfg,
                         uint64_t seed)
{
    u3d_error err = {0};
    u3d_net *net;
    t_ok(u3d_net_create(be, cfg, &net, &err), &err, "net create");
    t_ok(u3d_net_init(net, seed, &err), &err, "net init");
    return net;
}

/* Host data of a batch: input, labels (IGNORE among them for 3 classes),
 * class weights. */
typedef struct host_batch {
    u3d_shape xs, ls;
    int classes;
    float *x, *cw;
    int32_t *labels;
} host_batch;

static host_batch make_batch(uint64_t *seed, const u3d_net_config *c, int n,
                             int d, int h, int w)
{
    host_batch b;
    int in[3] = {d, h, w}, out[3];
    u3d_error err = {0};
    t_ok(u3d_net_output_size(c, in, out, &err), &err, "output size");
    b.xs = u3d_shape5(n, c->in_channels, d, h, w);
    b.ls = u3d_shape5(n, 1, out[0], out[1], out[2]);
    b.classes = c->classes;
    b.x = t_rand_array(seed, u3d_shape_count(b.xs), -1, 1);
    b.cw = t_rand_array(seed, (size_t)c->classes, 0.5f, 1.5f);
    size_t nl = u3d_shape_count(b.ls);
    b.labels = malloc(nl * sizeof *b.labels);
    assert_non_null(b.labels);
    int top = c->classes == IGNORE ? IGNORE : c->classes - 1;
    for (size_t i = 0; i < nl; i++)
        b.labels[i] = t_randi(seed, 0, top);
    return b;
}

static void free_batch(host_batch *b)
{
    free(b->x);
    free(b->cw);
    free(b->labels);
}

/* The batch on one backend. */
typedef struct dev_batch {
    u3d_tensor x, labels, cw, dlogits;
} dev_batch;

static dev_batch upload(u3d_backend *be, const host_batch *b)
{
    dev_batch d;
    u3d_shape os = b->ls;
    os.c = b->classes;
    d.x = t_tensor(be, b->xs, b->x);
    d.labels = t_tensor_i32(be, b->ls, b->labels);
    d.cw = t_tensor(be, u3d_shape5(1, b->classes, 1, 1, 1), b->cw);
    d.dlogits = t_tensor(be, os, NULL);
    return d;
}

static void release_batch(dev_batch *d)
{
    u3d_tensor_release(&d->x);
    u3d_tensor_release(&d->labels);
    u3d_tensor_release(&d->cw);
    u3d_tensor_release(&d->dlogits);
}

/* Forward in `mode`, loss; with TRAIN also backward. Returns the loss. */
static float pass(u3d_net *net, dev_batch *d, u3d_net_mode mode,
                  const u3d_tensor **logits)
{
    u3d_error err = {0};
    float loss;
    const u3d_tensor *lg;
    t_ok(u3d_net_forward(net, &d->x, mode, &lg, &err), &err, "net forward");
    t_ok(u3d_softmax_ce(lg, &d->labels, &d->cw, IGNORE, NULL, &d->dlogits,
                        &loss, NULL, &err),
         &err, "softmax-ce");
    if (mode == U3D_NET_TRAIN)
        t_ok(u3d_net_backward(net, &d->dlogits, &err), &err, "net backward");
    if (logits)
        *logits = lg;
    return loss;
}

/* Normwise relative error max|got-want| / max(scale, max|want|). */
static double rel_err(const float *got, const float *want, size_t n,
                      double scale)
{
    double emax = 0, amax = scale;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= emax)) /* also catches NaN */
            emax = isnan(e) ? INFINITY : e;
        amax = fmax(amax, fabs(want[i]));
    }
    return emax / fmax(amax, 1e-30);
}

static double tensor_max(const u3d_tensor *t)
{
    float *h = t_read(t);
    double m = 0;
    for (size_t i = 0; i < u3d_shape_count(t->shape); i++)
        m = fmax(m, fabs(h[i]));
    free(h);
    return m;
}

/* 1 for a conv bias followed by BN (its gradient is zero up to rounding,
 * so it is compared relative to its conv's weight gradient). */
static int bias_before_bn(u3d_net *net, const char *name)
{
    char bn[64];
    size_t len = strlen(name);
    if (len < 8 || len >= sizeof bn - 16 || strcmp(name + len - 5, "_bias"))
        return 0;
    memcpy(bn, name, len - 5);
    bn[len - 5] = 0;
    char *last = strrchr(bn, '_');
    last[1]++;
    strcat(bn, "_running_mean");
    return u3d_net_find(net, bn) != NULL;
}

/* ---- sizes and counts (no device) ---- */

static void paper_parameter_count(void **state)
{
    (void)state;
    u3d_net_config c;
    u3d_error err = {0};
    t_ok(u3d_net_preset("paper", &c, &err), &err, "preset");
    assert_int_equal(u3d_net_param_count(&c, 0), 19069955);
    assert_int_equal(u3d_net_param_count(&c, 1), 19074627);
    t_ok(u3d_net_preset("tiny", &c, &err), &err, "preset");
    assert_int_equal(u3d_net_param_count(&c, 1), 72223); /* golden case */
    c.bn = U3D_BN_NONE;
    assert_int_equal(u3d_net_param_count(&c, 1), u3d_net_param_count(&c, 0));
    assert_int_equal(u3d_net_preset("huge", &c, &err), U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "paper"));
}

/* The count formula agrees with the tensors the network creates. */
static void parameter_table(void **state)
{
    t_env *e = *state;
    u3d_net_config c = cfg_of(3, 4, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    u3d_net *net = make_net(e->ref, &c, 1);
    size_t n = 0;
    for (int i = 0; i < u3d_net_num_params(net); i++)
        n += u3d_shape_count(u3d_net_param(net, i)->value.shape);
    assert_int_equal(n, u3d_net_param_count(&c, 1));
    assert_string_equal(u3d_net_param(net, 0)->name, "enc_0_0_weight");
    assert_string_equal(u3d_net_param(net, 24)->name, "up_0_weight");
    assert_string_equal(u3d_net_param(net, 43)->name, "out_bias");
    assert_int_equal(u3d_net_num_params(net), 44);
    assert_int_equal(u3d_net_num_buffers(net), 20); /* 10 BN layers */
    u3d_param *rv = u3d_net_find(net, "dec_1_3_running_var");
    assert_non_null(rv);
    assert_false(rv->learnable);
    float *v = t_read(&rv->value);
    assert_true(v[0] == 1.0f);
    free(v);
    u3d_net_destroy(net);
}

static void output_sizes(void **state)
{
    (void)state;
    u3d_net_config c;
    u3d_error err = {0};
    t_ok(u3d_net_preset("paper", &c, &err), &err, "preset");
    int in[3] = {116, 132, 132}, out[3];
    t_ok(u3d_net_output_size(&c, in, out, &err), &err, "paper size");
    assert_int_equal(out[0], 28);
    assert_int_equal(out[1], 44);
    assert_int_equal(out[2], 44);
    /* 115 - 4 = 111 cannot be pooled evenly: 108 and 116 are the nearest */
    int bad[3] = {115, 132, 132};
    assert_int_equal(u3d_net_output_size(&c, bad, out, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "D=115"));
    assert_non_null(strstr(err.msg, "108 or 116"));
    int lo, hi;
    assert_int_equal(u3d_net_valid_size(&c, 115, &lo, &hi), 0);
    assert_int_equal(lo, 108);
    assert_int_equal(hi, 116);
    int small[3] = {116, 10, 132};
    assert_int_equal(u3d_net_output_size(&c, small, out, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "H=10"));
    assert_non_null(strstr(err.msg, "too small"));
    /* same padding keeps the size; it needs divisibility by 2^(L-1) */
    c.padding = U3D_PAD_SAME;
    int s[3] = {64, 40, 8};
    t_ok(u3d_net_output_size(&c, s, out, &err), &err, "same size");
    assert_int_equal(out[0], 64);
    assert_int_equal(out[1], 40);
    assert_int_equal(out[2], 8);
    s[2] = 12;
    assert_int_equal(u3d_net_output_size(&c, s, out, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "8 or 16"));
}

/* The estimate is what the net allocates. */
static void memory_estimate_matches(void **state)
{
    t_env *e = *state;
    u3d_net_config c = cfg_of(3, 4, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    int in[3] = {44, 52, 44};
    for (int bn = 0; bn < 3; bn++) {
        c.bn = (u3d_bn_mode)bn;
        u3d_net_mem m;
        u3d_error err = {0};
        t_ok(u3d_net_memory(&c, 2, in, &m, &err), &err, "memory");
        assert_true(m.infer_acts < m.train_acts);
        u3d_net *net = make_net(e->ref, &c, 3);
        u3d_tensor x = t_tensor(e->ref, u3d_shape5(2, 2, 44, 52, 44), NULL);
        const u3d_tensor *lg;
        t_ok(u3d_net_forward(net, &x, U3D_NET_EVAL, &lg, &err), &err, "eval");
        assert_int_equal(u3d_net_activation_bytes(net), m.infer_acts);
        t_ok(u3d_net_forward(net, &x, U3D_NET_TRAIN, &lg, &err), &err, "train");
        assert_int_equal(u3d_net_activation_bytes(net), m.train_acts);
        /* inference of the same shape reuses the training buffers */
        t_ok(u3d_net_forward(net, &x, U3D_NET_EVAL, &lg, &err), &err, "eval");
        assert_int_equal(u3d_net_activation_bytes(net), m.train_acts);
        u3d_net_free_activations(net);
        assert_int_equal(u3d_net_activation_bytes(net), 0);
        u3d_tensor_release(&x);
        u3d_net_destroy(net);
    }
}

/* ---- device vs reference ---- */

/* Same initialisation and batch on both backends: logits, loss and every
 * parameter gradient after a TRAIN pass, then EVAL logits. Tolerances are
 * the golden ones: 1e-4 forward, 1e-3 gradients (normwise relative). */
static void compare_backends(t_env *e, const u3d_net_config *c, int n, int d,
                             int h, int w)
{
    host_batch hb = make_batch(&e->seed, c, n, d, h, w);
    u3d_net *nc = make_net(e->cl, c, 77), *nr = make_net(e->ref, c, 77);
    dev_batch bc = upload(e->cl, &hb), br = upload(e->ref, &hb);
    const u3d_tensor *lc, *lr;
    float loss_c = pass(nc, &bc, U3D_NET_TRAIN, &lc);
    float loss_r = pass(nr, &br, U3D_NET_TRAIN, &lr);
    size_t nl = u3d_shape_count(lr->shape);
    float *gl = t_read(lc), *wl = t_read(lr);
    assert_true(rel_err(gl, wl, nl, 0) <= 1e-4);
    assert_true(fabs(loss_c - loss_r) <= 1e-4 * fabs(loss_r));
    free(gl);
    free(wl);
    for (int i = 0; i < u3d_net_num_params(nr); i++) {
        u3d_param *pc = u3d_net_param(nc, i), *pr = u3d_net_param(nr, i);
        double scale = 0;
        if (bias_before_bn(nr, pr->name))
            scale = tensor_max(&u3d_net_param(nr, i - 1)->grad);
        float *g = t_read(&pc->grad), *want = t_read(&pr->grad);
        double r = rel_err(g, want, u3d_shape_count(pr->value.shape), scale);
        if (!(r <= 1e-3))
            fail_msg("gradient %s: device vs reference error %.3g", pr->name,
                     r);
        free(g);
        free(want);
    }
    /* inference with the running statistics the TRAIN pass updated */
    for (int mode = U3D_NET_EVAL; mode <= U3D_NET_EVAL_BATCHSTATS; mode++) {
        pass(nc, &bc, (u3d_net_mode)mode, &lc);
        pass(nr, &br, (u3d_net_mode)mode, &lr);
        gl = t_read(lc);
        wl = t_read(lr);
        assert_true(rel_err(gl, wl, nl, 0) <= 1e-4);
        free(gl);
        free(wl);
    }
    release_batch(&bc);
    release_batch(&br);
    u3d_net_destroy(nc);
    u3d_net_destroy(nr);
    free_batch(&hb);
}

static void device_matches_reference(void **state)
{
    t_env *e = *state;
    if (t_small()) {
        u3d_net_config a = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
        compare_backends(e, &a, 1, 20, 20, 22);
        u3d_net_config b = cfg_of(2, 2, 1, 2, U3D_PAD_SAME, U3D_BN_NONE);
        compare_backends(e, &b, 2, 4, 6, 4);
        return;
    }
    /* the golden architecture, N=2, non-cubic */
    u3d_net_config a = cfg_of(3, 4, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    compare_backends(e, &a, 2, 44, 52, 44);
    u3d_net_config b = cfg_of(3, 3, 1, 2, U3D_PAD_SAME, U3D_BN_PLAIN);
    compare_backends(e, &b, 2, 12, 8, 20);
    u3d_net_config c = cfg_of(2, 4, 3, 3, U3D_PAD_VALID, U3D_BN_NONE);
    compare_backends(e, &c, 1, 22, 20, 24);
}

/* ---- finite differences on the reference backend ---- */

/* The weighted, ignore-aware cross-entropy of host logits, in double. */
static double host_loss(const float *lg, const host_batch *b)
{
    int C = b->classes;
    size_t vox = u3d_shape_spatial(b->ls);
    double num = 0, den = 0;
    for (int n = 0; n < b->ls.n; n++)
        for (size_t v = 0; v < vox; v++) {
            int y = b->labels[(size_t)n * vox + v];
            if (y == IGNORE && C == IGNORE)
                continue;
            const float *p = lg + (size_t)n * C * vox + v;
            double mx = p[0], s = 0;
            for (int c = 1; c < C; c++)
                mx = fmax(mx, p[(size_t)c * vox]);
            for (int c = 0; c < C; c++)
                s += exp(p[(size_t)c * vox] - mx);
            num += b->cw[y] * (log(s) + mx - p[(size_t)y * vox]);
            den += b->cw[y];
        }
    return den > 0 ? num / den : 0;
}

static double loss_at(u3d_net *net, dev_batch *d, const host_batch *b)
{
    u3d_error err = {0};
    const u3d_tensor *lg;
    /* batch statistics without touching the running ones: the function
     * TRAIN differentiates */
    t_ok(u3d_net_forward(net, &d->x, U3D_NET_EVAL_BATCHSTATS, &lg, &err), &err,
         "forward");
    float *h = t_read(lg);
    double l = host_loss(h, b);
    free(h);
    return l;
}

static void set_elem(u3d_param *p, size_t i, float v)
{
    u3d_error err = {0};
    float *h = t_read(&p->value);
    h[i] = v;
    t_ok(u3d_tensor_write(&p->value, h, &err), &err, "write param");
    free(h);
}

/* Two entries of every parameter: central differences of the loss (in
 * double from the float logits, step 1e-2) against the backward pass.
 * Error measure: |fd - g| relative to the largest gradient of the same
 * tensor (of the conv's weights for a bias before BN, whose gradient is
 * zero). Float rounding of the logits (~1e-7) gives ~1e-5 absolute FD
 * noise; ReLU/max-pool switches inside +-h and the O(h^2) truncation add a
 * little more; a wrong backward rule gives O(1) errors. Tolerance 2e-2. */
static void fd_check(t_env *e, const u3d_net_config *c, int n, int d, int h,
                     int w)
{
    host_batch hb = make_batch(&e->seed, c, n, d, h, w);
    u3d_net *net = make_net(e->ref, c, 5);
    dev_batch db = upload(e->ref, &hb);
    pass(net, &db, U3D_NET_TRAIN, NULL);
    /* the loss the net optimises is the one computed here */
    assert_true(fabs(loss_at(net, &db, &hb) -
                     pass(net, &db, U3D_NET_EVAL_BATCHSTATS, NULL)) < 1e-5);
    const double step = 1e-2, tol = 2e-2;
    double worst = 0;
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(net, i);
        double scale = bias_before_bn(net, p->name)
                           ? tensor_max(&u3d_net_param(net, i - 1)->grad)
                           : tensor_max(&p->grad);
        float *g = t_read(&p->grad), *v = t_read(&p->value);
        size_t cnt = u3d_shape_count(p->value.shape);
        for (int r = 0; r < 2; r++) {
            size_t k = (size_t)t_randi(&e->seed, 0, (int)cnt - 1);
            set_elem(p, k, v[k] + (float)step);
            double lp = loss_at(net, &db, &hb);
            set_elem(p, k, v[k] - (float)step);
            double lm = loss_at(net, &db, &hb);
            set_elem(p, k, v[k]);
            double fd = (lp - lm) / (2 * step);
            double err = fabs(fd - g[k]) / fmax(scale, 1e-12);
            worst = fmax(worst, err);
            if (!(err <= tol))
                fail_msg("%s[%zu]: finite difference %.6g, backward %.6g "
                         "(error %.3g of the tensor's gradient scale %.3g)",
                         p->name, k, fd, g[k], err, scale);
        }
        free(g);
        free(v);
    }
    print_message("finite differences: worst error %.3g (tolerance %.0e)\n",
                  worst, tol);
    release_batch(&db);
    u3d_net_destroy(net);
    free_batch(&hb);
}

static void finite_difference_gradients(void **state)
{
    t_env *e = *state;
    u3d_net_config a = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    fd_check(e, &a, 2, 20, 24, 20);
    u3d_net_config b = cfg_of(2, 2, 1, 2, U3D_PAD_SAME, U3D_BN_PLAIN);
    fd_check(e, &b, 2, 6, 4, 8);
    u3d_net_config c = cfg_of(2, 2, 1, 3, U3D_PAD_VALID, U3D_BN_NONE);
    fd_check(e, &c, 1, 24, 20, 20);
}

/* ---- BN modes, SGD, shapes, errors ---- */

static float *read_named(u3d_net *net, const char *name)
{
    u3d_param *p = u3d_net_find(net, name);
    assert_non_null(p);
    return t_read(&p->value);
}

static void train_updates_running_stats(void **state)
{
    t_env *e = *state;
    u3d_net_config c = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    host_batch hb = make_batch(&e->seed, &c, 2, 20, 20, 20);
    u3d_net *net = make_net(e->ref, &c, 9);
    dev_batch db = upload(e->ref, &hb);
    const u3d_tensor *lg;
    size_t nl = u3d_shape_count(hb.ls) * 3;
    pass(net, &db, U3D_NET_EVAL, &lg);
    float *eval0 = t_read(lg);
    pass(net, &db, U3D_NET_EVAL_BATCHSTATS, &lg);
    float *bstat = t_read(lg);
    float *m0 = read_named(net, "enc_0_1_running_mean");
    float *v0 = read_named(net, "enc_0_1_running_var");
    for (int i = 0; i < 2; i++)
        assert_true(m0[i] == 0.0f && v0[i] == 1.0f); /* untouched by EVAL */
    pass(net, &db, U3D_NET_TRAIN, &lg);
    float *train = t_read(lg);
    assert_true(rel_err(train, bstat, nl, 0) == 0.0); /* same function */
    float *m1 = read_named(net, "enc_0_1_running_mean");
    float *v1 = read_named(net, "enc_0_1_running_var");
    /* a second TRAIN pass on the same batch: m2 = 0.9 m1 + 0.1 mean with
     * 0.1 mean = m1, so m2 = 1.9 m1; likewise v2 = 1.9 v1 - 0.9 */
    pass(net, &db, U3D_NET_TRAIN, &lg);
    float *m2 = read_named(net, "enc_0_1_running_mean");
    float *v2 = read_named(net, "enc_0_1_running_var");
    for (int i = 0; i < 2; i++) {
        assert_true(m1[i] != 0.0f && v1[i] != 1.0f);
        assert_true(fabs(m2[i] - 1.9 * m1[i]) <= 1e-5 * (fabs(m2[i]) + 1e-3));
        assert_true(fabs(v2[i] - (1.9 * v1[i] - 0.9)) <= 1e-5 * fabs(v2[i]));
    }
    pass(net, &db, U3D_NET_EVAL, &lg);
    float *eval1 = t_read(lg);
    assert_true(rel_err(eval1, eval0, nl, 0) > 1e-3); /* new statistics */
    float *m3 = read_named(net, "enc_0_1_running_mean");
    assert_true(m3[0] == m2[0] && m3[1] == m2[1]);
    float *all[] = {eval0, bstat, m0, v0, train, m1, v1, m2, v2, eval1, m3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    release_batch(&db);
    u3d_net_destroy(net);
    free_batch(&hb);
}

static void sgd_lowers_loss(void **state)
{
    t_env *e = *state;
    u3d_net_config c = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    host_batch hb = make_batch(&e->seed, &c, 1, 20, 20, 20);
    u3d_net *net = make_net(e->ref, &c, 11);
    dev_batch db = upload(e->ref, &hb);
    u3d_sgd_params sp = {0.05f, 0.9f, 1e-4f};
    u3d_error err = {0};
    float first = pass(net, &db, U3D_NET_TRAIN, NULL);
    /* the first step: buf = g + wd*p, p -= lr*buf */
    u3d_param *ob = u3d_net_find(net, "out_bias");
    float *p0 = t_read(&ob->value), *g0 = t_read(&ob->grad);
    t_ok(u3d_net_sgd_step(net, &sp, &err), &err, "sgd");
    float *p1 = t_read(&ob->value);
    for (int k = 0; k < 3; k++)
        assert_true(fabs(p1[k] - (p0[k] - sp.lr * (g0[k] +
                                                   sp.weight_decay * p0[k]))) <=
                    1e-6);
    float last = first;
    for (int it = 0; it < 5; it++) {
        last = pass(net, &db, U3D_NET_TRAIN, NULL);
        t_ok(u3d_net_sgd_step(net, &sp, &err), &err, "sgd");
    }
    assert_true(last < first);
    free(p0);
    free(g0);
    free(p1);
    release_batch(&db);
    u3d_net_destroy(net);
    free_batch(&hb);
}

/* Activations follow the input shape; results do not depend on history. */
static void input_shape_changes(void **state)
{
    t_env *e = *state;
    u3d_net_config c = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    host_batch a = make_batch(&e->seed, &c, 1, 20, 20, 20);
    host_batch b = make_batch(&e->seed, &c, 2, 24, 20, 28);
    u3d_net *net = make_net(e->ref, &c, 13);
    dev_batch da = upload(e->ref, &a), dbb = upload(e->ref, &b);
    const u3d_tensor *lg;
    pass(net, &da, U3D_NET_EVAL, &lg);
    float *first = t_read(lg);
    pass(net, &dbb, U3D_NET_TRAIN, &lg);
    assert_int_equal(lg->shape.n, 2);
    assert_int_equal(lg->shape.w, 12);
    pass(net, &dbb, U3D_NET_EVAL_BATCHSTATS, &lg);
    u3d_net_free_activations(net);
    /* back to the first shape: the running statistics changed meanwhile,
     * batch statistics do not depend on them */
    pass(net, &da, U3D_NET_EVAL_BATCHSTATS, &lg);
    float *again = t_read(lg);
    pass(net, &da, U3D_NET_TRAIN, &lg);
    float *train = t_read(lg);
    assert_true(rel_err(again, train, u3d_shape_count(lg->shape), 0) == 0.0);
    assert_true(rel_err(again, first, u3d_shape_count(lg->shape), 0) > 0.0);
    free(first);
    free(again);
    free(train);
    release_batch(&da);
    release_batch(&dbb);
    u3d_net_destroy(net);
    free_batch(&a);
    free_batch(&b);
}

static void bad_inputs(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_net_config c = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    u3d_net *net = make_net(e->ref, &c, 1);
    const u3d_tensor *lg;
    u3d_tensor dl = t_tensor(e->ref, u3d_shape5(1, 3, 4, 4, 4), NULL);
    assert_int_equal(u3d_net_backward(net, &dl, &err), U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "TRAIN"));
    u3d_tensor x3 = t_tensor(e->ref, u3d_shape5(1, 3, 20, 20, 20), NULL);
    assert_int_equal(u3d_net_forward(net, &x3, U3D_NET_TRAIN, &lg, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "3 channels"));
    u3d_tensor xo = t_tensor(e->ref, u3d_shape5(1, 2, 20, 21, 20), NULL);
    assert_int_equal(u3d_net_forward(net, &xo, U3D_NET_TRAIN, &lg, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "H=21"));
    assert_non_null(strstr(err.msg, "20 or 22"));
    u3d_tensor x = t_tensor(e->ref, u3d_shape5(1, 2, 20, 20, 20), NULL);
    t_ok(u3d_net_forward(net, &x, U3D_NET_EVAL, &lg, &err), &err, "eval");
    assert_int_equal(u3d_net_backward(net, &dl, &err), U3D_ERR_INVALID_ARG);
    t_ok(u3d_net_forward(net, &x, U3D_NET_TRAIN, &lg, &err), &err, "train");
    u3d_tensor dlb = t_tensor(e->ref, u3d_shape5(1, 3, 4, 4, 5), NULL);
    assert_int_equal(u3d_net_backward(net, &dlb, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x3x4x4x5"));
    t_ok(u3d_net_backward(net, &dl, &err), &err, "backward");
    u3d_net *bad;
    c.levels = 0;
    assert_int_equal(u3d_net_create(e->ref, &c, &bad, &err),
                     U3D_ERR_INVALID_ARG);
    u3d_tensor *all[] = {&dl, &x3, &xo, &x, &dlb};
    for (int i = 0; i < 5; i++)
        u3d_tensor_release(all[i]);
    u3d_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paper_parameter_count),
        cmocka_unit_test(parameter_table),
        cmocka_unit_test(output_sizes),
        cmocka_unit_test(memory_estimate_matches),
        cmocka_unit_test(device_matches_reference),
        cmocka_unit_test(finite_difference_gradients),
        cmocka_unit_test(train_updates_running_stats),
        cmocka_unit_test(sgd_lowers_loss),
        cmocka_unit_test(input_shape_changes),
        cmocka_unit_test(bad_inputs),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
