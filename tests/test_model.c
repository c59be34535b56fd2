/* The 3D U-Net: parameter counts, sizes, memory estimates, device vs
 * reference forward/backward, finite-difference gradients of the whole
 * network, BN modes, SGD and bad inputs. */
#define _POSIX_C_SOURCE 200809L /* setenv, strdup */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_util.h"
#include "unet3d/augment.h"
#include "unet3d/model.h"
#include "unet3d/model_io.h"

#define IGNORE 3 /* ignore label of the 3-class nets */

/* ---- helpers ---- */

static u3d_net_config cfg_of(int levels, int f, int cin, int classes,
                             u3d_padding pad, u3d_bn_mode bn)
{
    u3d_net_config c = {.levels = levels, .base_channels = f,
                        .in_channels = cin, .classes = classes,
                        .padding = pad, .bn = bn, .bn_eps = 1e-5f,
                        .bn_momentum = 0.1f};
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
    if (!last || last[1] < '0' || last[1] > '8' || last[2])
        return 0;
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

/* Anisotropic nets: the formula still agrees with the tensors, whose
 * shapes are per axis (1x3x3 convs, 1x2x2 up-conv), and a model file keeps
 * the plan. */
static void anisotropic_parameters(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_net_config c = cfg_of(3, 4, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    t_ok(u3d_net_set_kernels(&c, "1x3x3,3x3x3,3x3x3", &err), &err, "kernels");
    t_ok(u3d_net_set_pools(&c, "1x2x2,2x2x2", &err), &err, "pools");
    assert_true(u3d_net_is_anisotropic(&c));
    u3d_net *net = make_net(e->ref, &c, 1);
    size_t n = 0;
    for (int i = 0; i < u3d_net_num_params(net); i++)
        n += u3d_shape_count(u3d_net_param(net, i)->value.shape);
    assert_int_equal(n, u3d_net_param_count(&c, 1));
    assert_int_equal(n, 65871); /* by hand: see test_cli_options.c */
    u3d_shape w0 = u3d_net_find(net, "enc_0_0_weight")->value.shape;
    assert_true(u3d_shape_eq(w0, u3d_shape5(4, 2, 1, 3, 3)));
    u3d_shape up1 = u3d_net_find(net, "up_1_weight")->value.shape;
    assert_true(u3d_shape_eq(up1, u3d_shape5(16, 16, 1, 2, 2)));
    u3d_shape up0 = u3d_net_find(net, "up_0_weight")->value.shape;
    assert_true(u3d_shape_eq(up0, u3d_shape5(32, 32, 2, 2, 2)));
    u3d_net_destroy(net);
    /* sizes per axis: z loses 2 per 1x3x3 pair... valid sizes differ */
    int in[3] = {20, 44, 44}, out[3];
    t_ok(u3d_net_output_size(&c, in, out, &err), &err, "aniso size");
    assert_int_equal(out[1], 4);
    assert_int_equal(out[2], 4);
    assert_int_equal(out[0], 20 - 2 * u3d_net_context_axis(&c, 0));
    assert_int_equal(u3d_net_context_axis(&c, 1), 20);
    assert_int_equal(u3d_net_context_axis(&c, 0), 8);
    /* 2D: context 0 along z, any depth */
    u3d_net_config d = cfg_of(3, 4, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    u3d_net_set_2d(&d);
    assert_int_equal(u3d_net_context_axis(&d, 0), 0);
    int lo, hi;
    assert_true(u3d_net_valid_size_axis(&d, 0, 1, &lo, &hi));
    assert_true(u3d_net_valid_size_axis(&d, 0, 7, &lo, &hi));
    /* bad lists are refused with the reason */
    assert_int_equal(u3d_net_set_kernels(&d, "2x3x3", &err),
                     U3D_ERR_INVALID_ARG);
    assert_int_equal(u3d_net_set_pools(&d, "1x2x2,2x2x2,2x2x2", &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "give 2"));
    /* auto plan: z 4x the in-plane spacing: 1x3x3 until in-plane spacing
     * reaches 2 (z 4 is then not > 2*2), 3x3x3 from level 2 on */
    u3d_net_config a = cfg_of(4, 4, 1, 2, U3D_PAD_VALID, U3D_BN_AFFINE);
    const double sp[3] = {4.0, 1.0, 1.0};
    u3d_net_plan_spacing(&a, sp);
    assert_int_equal(u3d_net_kernel(&a, 0, 0), 1);
    assert_int_equal(u3d_net_pool(&a, 0, 0), 1);
    assert_int_equal(u3d_net_kernel(&a, 1, 0), 3);
    assert_int_equal(u3d_net_pool(&a, 1, 0), 2);
    assert_int_equal(u3d_net_kernel(&a, 3, 1), 3);
}

static void compare_backends(t_env *e, const u3d_net_config *c, int n, int d,
                             int h, int w);

/* A model file keeps the per-level plan and loads back the same net; an
 * isotropic one stores no plan (files as before) and loads isotropic. */
static void anisotropic_model_file(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_model_meta m;
    u3d_model_meta_defaults(&m);
    m.net = cfg_of(3, 2, 1, 2, U3D_PAD_SAME, U3D_BN_AFFINE);
    t_ok(u3d_net_set_kernels(&m.net, "1x3x3,1x3x3,3x3x3", &err), &err, "k");
    t_ok(u3d_net_set_pools(&m.net, "1x2x2,2x2x2", &err), &err, "pools");
    for (int i = 0; i < m.net.classes; i++)
        m.class_weights[i] = 1.0f;
    /* custom augmentation with per-transform probabilities round-trips */
    snprintf(m.augment, sizeof m.augment, "default");
    m.aug_custom = 1;
    u3d_augment_params_default(&m.aug);
    m.aug.p_deform = 0.125f, m.aug.p_rotate = 0.25f, m.aug.p_scale = 0.5f;
    m.aug.p_gray = 0.75f, m.aug.rotate_deg[1] = 0.0f;
    u3d_net *net = make_net(e->ref, &m.net, 5);
    char path[64];
    snprintf(path, sizeof path, "/tmp/u3d_aniso_%d.u3d", (int)getpid());
    t_ok(u3d_model_save(path, net, &m, 0, &err), &err, "save");
    u3d_net *back;
    u3d_model_meta mb;
    t_ok(u3d_model_load(path, e->ref, &back, &mb, &err), &err, "load");
    for (int l = 0; l < 3; l++)
        for (int a = 0; a < 3; a++) {
            assert_int_equal(u3d_net_kernel(&mb.net, l, a),
                             u3d_net_kernel(&m.net, l, a));
            if (l < 2)
                assert_int_equal(u3d_net_pool(&mb.net, l, a),
                                 u3d_net_pool(&m.net, l, a));
        }
    assert_int_equal(u3d_net_num_params(back), u3d_net_num_params(net));
    for (int i = 0; i < u3d_net_num_params(net); i++)
        t_assert_tensors_close(&u3d_net_param(back, i)->value,
                               &u3d_net_param(net, i)->value, 0.0, "param");
    assert_true(mb.aug_custom);
    assert_true(mb.aug.p_deform == 0.125f && mb.aug.p_rotate == 0.25f &&
                mb.aug.p_scale == 0.5f && mb.aug.p_gray == 0.75f);
    assert_true(mb.aug.rotate_deg[1] == 0.0f && mb.aug.rotate_deg[0] == 15.0f &&
                mb.aug.mirror[2] == 1);
    u3d_net_destroy(back);
    u3d_net_destroy(net);
    /* isotropic: no plan keys, loads with the defaults */
    m.net = cfg_of(2, 2, 1, 2, U3D_PAD_VALID, U3D_BN_NONE);
    net = make_net(e->ref, &m.net, 6);
    t_ok(u3d_model_save(path, net, &m, 0, &err), &err, "save isotropic");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = 0;
    for (size_t i = 0; i + 7 <= got; i++) /* the metadata comes first */
        assert_false(!memcmp(buf + i, "kernels", 7));
    t_ok(u3d_model_load(path, e->ref, &back, &mb, &err), &err, "load iso");
    assert_false(u3d_net_is_anisotropic(&mb.net));
    u3d_net_destroy(back);
    u3d_net_destroy(net);
    remove(path);
}

/* An anisotropic net runs alike on the device and the reference,
 * training (loss, every gradient) and inference. */
static void anisotropic_device_matches_reference(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_net_config a = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    t_ok(u3d_net_set_kernels(&a, "1x3x3,3x3x3", &err), &err, "kernels");
    t_ok(u3d_net_set_pools(&a, "1x2x2", &err), &err, "pools");
    compare_backends(e, &a, 1, 6, 20, 22);
    u3d_net_config b = cfg_of(2, 2, 1, 2, U3D_PAD_SAME, U3D_BN_NONE);
    u3d_net_set_2d(&b);
    compare_backends(e, &b, 2, 3, 6, 4);
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
    /* inference with the running statistics the TRAIN pass updated, first
     * in the training buffers, then in the lean inference ones */
    for (int mode = U3D_NET_EVAL; mode <= U3D_NET_EVAL_BATCHSTATS; mode++) {
        float *prev = NULL;
        for (int lean = 0; lean < 2; lean++) {
            if (lean) {
                u3d_net_free_activations(nc);
                u3d_net_free_activations(nr);
            }
            pass(nc, &bc, (u3d_net_mode)mode, &lc);
            pass(nr, &br, (u3d_net_mode)mode, &lr);
            gl = t_read(lc);
            wl = t_read(lr);
            assert_true(rel_err(gl, wl, nl, 0) <= 1e-4);
            if (prev) /* same arithmetic, other buffers */
                assert_true(rel_err(wl, prev, nl, 0) == 0.0);
            free(gl);
            free(prev);
            prev = wl;
        }
        free(prev);
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

/* ---- an independent double-precision host U-Net ---- */

/* Plain loops straight from the architecture description (README of the
 * golden cases), sharing nothing with the library but the parameter
 * values: the oracle of the finite-difference check, free of float noise. */
typedef struct dt {
    int n, c, d, h, w;
    double *v;
} dt;

#define AT(t, N, C, Z, Y, X)                                                   \
    (t).v[((((size_t)(N) * (t).c + (C)) * (t).d + (Z)) * (t).h + (Y)) *        \
              (t).w + (X)]

static dt dt_new(int n, int c, int d, int h, int w)
{
    dt t = {n, c, d, h, w, calloc((size_t)n * c * d * h * w, sizeof(double))};
    assert_non_null(t.v);
    return t;
}

static dt h_conv(dt x, const double *w, const double *b, int cout, int k,
                 int pad)
{
    dt y = dt_new(x.n, cout, x.d + 2 * pad - k + 1, x.h + 2 * pad - k + 1,
                  x.w + 2 * pad - k + 1);
    for (int n = 0; n < y.n; n++)
        for (int co = 0; co < cout; co++)
            for (int z = 0; z < y.d; z++)
                for (int yy = 0; yy < y.h; yy++)
                    for (int xx = 0; xx < y.w; xx++) {
                        double s = b[co];
                        for (int ci = 0; ci < x.c; ci++)
                            for (int a = 0; a < k; a++)
                                for (int bb = 0; bb < k; bb++)
                                    for (int cc = 0; cc < k; cc++) {
                                        int iz = z + a - pad, iy = yy + bb - pad,
                                            ix = xx + cc - pad;
                                        if (iz < 0 || iy < 0 || ix < 0 ||
                                            iz >= x.d || iy >= x.h || ix >= x.w)
                                            continue;
                                        s += w[(((size_t)co * x.c + ci) * k + a) *
                                                   k * k + bb * k + cc] *
                                             AT(x, n, ci, iz, iy, ix);
                                    }
                        AT(y, n, co, z, yy, xx) = s;
                    }
    free(x.v);
    return y;
}

/* Training-mode BN (batch statistics, biased variance) then ReLU. */
static void h_bn_relu(dt *x, const double *g, const double *be, double eps,
                      int bn)
{
    size_t vox = (size_t)x->d * x->h * x->w;
    for (int c = 0; c < x->c; c++) {
        double mean = 0, var = 0, cnt = (double)x->n * vox;
        for (int n = 0; n < x->n; n++)
            for (size_t i = 0; i < vox; i++)
                mean += x->v[((size_t)n * x->c + c) * vox + i];
        mean /= cnt;
        for (int n = 0; n < x->n; n++)
            for (size_t i = 0; i < vox; i++) {
                double t = x->v[((size_t)n * x->c + c) * vox + i] - mean;
                var += t * t;
            }
        var /= cnt;
        for (int n = 0; n < x->n; n++)
            for (size_t i = 0; i < vox; i++) {
                double *p = &x->v[((size_t)n * x->c + c) * vox + i];
                if (bn)
                    *p = (*p - mean) / sqrt(var + eps) * (g ? g[c] : 1) +
                         (be ? be[c] : 0);
                *p = *p > 0 ? *p : 0;
            }
    }
}

static dt h_pool(dt x)
{
    dt y = dt_new(x.n, x.c, x.d / 2, x.h / 2, x.w / 2);
    for (int n = 0; n < y.n; n++)
        for (int c = 0; c < y.c; c++)
            for (int z = 0; z < y.d; z++)
                for (int yy = 0; yy < y.h; yy++)
                    for (int xx = 0; xx < y.w; xx++) {
                        double m = -INFINITY;
                        for (int i = 0; i < 8; i++)
                            m = fmax(m, AT(x, n, c, 2 * z + (i >> 2),
                                           2 * yy + ((i >> 1) & 1),
                                           2 * xx + (i & 1)));
                        AT(y, n, c, z, yy, xx) = m;
                    }
    return y;
}

/* Transposed conv, kernel 2 stride 2, weight (Cin, Cout, 2, 2, 2). */
static dt h_up(dt x, const double *w, int cout)
{
    dt y = dt_new(x.n, cout, 2 * x.d, 2 * x.h, 2 * x.w);
    for (int n = 0; n < y.n; n++)
        for (int co = 0; co < cout; co++)
            for (int z = 0; z < y.d; z++)
                for (int yy = 0; yy < y.h; yy++)
                    for (int xx = 0; xx < y.w; xx++) {
                        double s = 0;
                        int tap = (z & 1) * 4 + (yy & 1) * 2 + (xx & 1);
                        for (int ci = 0; ci < x.c; ci++)
                            s += w[((size_t)ci * cout + co) * 8 + tap] *
                                 AT(x, n, ci, z / 2, yy / 2, xx / 2);
                        AT(y, n, co, z, yy, xx) = s;
                    }
    free(x.v);
    return y;
}

/* [center-cropped skip, up] along channels. */
static dt h_cat(dt skip, dt up)
{
    dt y = dt_new(up.n, skip.c + up.c, up.d, up.h, up.w);
    int oz = (skip.d - up.d) / 2, oy = (skip.h - up.h) / 2,
        ox = (skip.w - up.w) / 2;
    for (int n = 0; n < y.n; n++)
        for (int c = 0; c < y.c; c++)
            for (int z = 0; z < y.d; z++)
                for (int yy = 0; yy < y.h; yy++)
                    for (int xx = 0; xx < y.w; xx++)
                        AT(y, n, c, z, yy, xx) =
                            c < skip.c
                                ? AT(skip, n, c, z + oz, yy + oy, xx + ox)
                                : AT(up, n, c - skip.c, z, yy, xx);
    free(up.v);
    return y;
}

/* Parameters of a net as doubles, by the net's index. */
typedef struct hparams {
    u3d_net *net;
    double *v[256];
} hparams;

static hparams h_load(u3d_net *net)
{
    hparams hp = {net, {0}};
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(net, i);
        size_t n = u3d_shape_count(p->value.shape);
        float *f = t_read(&p->value);
        hp.v[i] = malloc(n * sizeof(double));
        assert_non_null(hp.v[i]);
        for (size_t k = 0; k < n; k++)
            hp.v[i][k] = f[k];
        free(f);
    }
    return hp;
}

static void h_free(hparams *hp)
{
    for (int i = 0; i < 256; i++)
        free(hp->v[i]);
}

static const double *hp_get(const hparams *hp, const char *fmt, int a, int b)
{
    char name[64];
    snprintf(name, sizeof name, fmt, a, b);
    for (int i = 0; i < u3d_net_num_params(hp->net); i++)
        if (!strcmp(u3d_net_param(hp->net, i)->name, name))
            return hp->v[i];
    return NULL;
}

/* conv -> [BN] -> ReLU named PFX_L_(2i) (conv) and PFX_L_(2i+1) (BN). */
static dt h_block(const hparams *hp, dt x, const char *pfx, int l, int i)
{
    const u3d_net_config *c = u3d_net_get_config(hp->net);
    char wn[48];
    snprintf(wn, sizeof wn, "%s_%d_%d_weight", pfx, l, 2 * i);
    u3d_shape ws = u3d_net_find(hp->net, wn)->value.shape;
    int pad = c->padding == U3D_PAD_SAME ? (ws.d - 1) / 2 : 0;
    char f[4][48];
    snprintf(f[0], 48, "%s_%%d_%%d_weight", pfx);
    snprintf(f[1], 48, "%s_%%d_%%d_bias", pfx);
    dt y = h_conv(x, hp_get(hp, f[0], l, 2 * i), hp_get(hp, f[1], l, 2 * i),
                  ws.n, ws.d, pad);
    h_bn_relu(&y, hp_get(hp, f[0], l, 2 * i + 1),
              hp_get(hp, f[1], l, 2 * i + 1), c->bn_eps,
              c->bn != U3D_BN_NONE);
    return y;
}

/* Logits of the whole network for host input x (copied). */
static dt h_forward(const hparams *hp, const host_batch *b)
{
    const u3d_net_config *c = u3d_net_get_config(hp->net);
    int L = c->levels;
    dt skip[U3D_NET_MAX_LEVELS];
    dt a = dt_new(b->xs.n, b->xs.c, b->xs.d, b->xs.h, b->xs.w);
    for (size_t i = 0; i < u3d_shape_count(b->xs); i++)
        a.v[i] = b->x[i];
    for (int l = 0; l < L; l++) {
        if (l)
            a = h_pool(skip[l - 1]);
        a = h_block(hp, a, "enc", l, 0);
        a = h_block(hp, a, "enc", l, 1);
        skip[l] = a;
    }
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j;
        a = h_up(a, hp_get(hp, "up_%d_weight", j, 0), a.c);
        a = h_cat(skip[m], a);
        a = h_block(hp, a, "dec", j, 0);
        a = h_block(hp, a, "dec", j, 1);
    }
    for (int l = 0; l < L - 1; l++)
        free(skip[l].v);
    return h_conv(a, hp_get(hp, "out_weight", 0, 0),
                  hp_get(hp, "out_bias", 0, 0), c->classes, 1, 0);
}

/* Weighted, ignore-aware cross-entropy in double. */
static double h_loss(dt lg, const host_batch *b)
{
    size_t vox = (size_t)lg.d * lg.h * lg.w;
    double num = 0, den = 0;
    for (int n = 0; n < lg.n; n++)
        for (size_t v = 0; v < vox; v++) {
            int y = b->labels[(size_t)n * vox + v];
            if (y == IGNORE && lg.c == IGNORE)
                continue;
            const double *p = lg.v + (size_t)n * lg.c * vox + v;
            double mx = p[0], s = 0;
            for (int c = 1; c < lg.c; c++)
                mx = fmax(mx, p[(size_t)c * vox]);
            for (int c = 0; c < lg.c; c++)
                s += exp(p[(size_t)c * vox] - mx);
            num += b->cw[y] * (log(s) + mx - p[(size_t)y * vox]);
            den += b->cw[y];
        }
    return den > 0 ? num / den : 0;
}

static double h_eval(const hparams *hp, const host_batch *b)
{
    dt lg = h_forward(hp, b);
    double l = h_loss(lg, b);
    free(lg.v);
    return l;
}

/* Checks the net against the double host network: logits (forward
 * tolerance 1e-4), then two entries of every parameter gradient against
 * central differences of the double loss (step 1e-6: rounding noise
 * ~1e-10, a ReLU or max-pool switch within +-1e-6 is unlikely). Error
 * measure: |fd - g| relative to the largest gradient of the same tensor
 * (of the conv's weights for a bias before BN, whose gradient is zero);
 * tolerance 1e-3, float rounding of the backward pass being ~1e-5. */
static void fd_check(t_env *e, const u3d_net_config *c, int n, int d, int h,
                     int w)
{
    host_batch hb = make_batch(&e->seed, c, n, d, h, w);
    u3d_net *net = make_net(e->ref, c, 5);
    dev_batch db = upload(e->ref, &hb);
    const u3d_tensor *lg;
    pass(net, &db, U3D_NET_TRAIN, &lg);
    hparams hp = h_load(net);
    dt hl = h_forward(&hp, &hb);
    float *fl = t_read(lg);
    size_t nl = u3d_shape_count(lg->shape);
    assert_int_equal(nl, (size_t)hl.n * hl.c * hl.d * hl.h * hl.w);
    float *hlf = malloc(nl * sizeof *hlf);
    assert_non_null(hlf);
    for (size_t i = 0; i < nl; i++)
        hlf[i] = (float)hl.v[i];
    double fwd = rel_err(fl, hlf, nl, 0);
    assert_true(fwd <= 1e-4);
    free(hlf);
    free(fl);
    free(hl.v);
    const double step = 1e-6, tol = 1e-3;
    double worst = 0;
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(net, i);
        double scale = bias_before_bn(net, p->name)
                           ? tensor_max(&u3d_net_param(net, i - 1)->grad)
                           : tensor_max(&p->grad);
        float *g = t_read(&p->grad);
        size_t cnt = u3d_shape_count(p->value.shape);
        for (int r = 0; r < 2; r++) {
            size_t k = (size_t)t_randi(&e->seed, 0, (int)cnt - 1);
            double v = hp.v[i][k];
            hp.v[i][k] = v + step;
            double lp = h_eval(&hp, &hb);
            hp.v[i][k] = v - step;
            double lm = h_eval(&hp, &hb);
            hp.v[i][k] = v;
            double fd = (lp - lm) / (2 * step);
            double err = fabs(fd - g[k]) / fmax(scale, 1e-12);
            worst = fmax(worst, err);
            if (!(err <= tol))
                fail_msg("%s[%zu]: finite difference %.6g, backward %.6g "
                         "(error %.3g of the tensor's gradient scale %.3g)",
                         p->name, k, fd, g[k], err, scale);
        }
        free(g);
    }
    print_message("double-precision host net: logits error %.3g, finite "
                  "differences worst error %.3g (tolerance %.0e)\n",
                  fwd, worst, tol);
    h_free(&hp);
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

/* Adam: the first step moves each weight by lr * g / (|g| + eps') (bias
 * corrections of step 1), later steps lower the loss, and the moments and
 * step count survive a model file (inference loads skip them). */
static void adam_lowers_loss_and_round_trips(void **state)
{
    t_env *e = *state;
    u3d_net_config c = cfg_of(2, 2, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE);
    host_batch hb = make_batch(&e->seed, &c, 1, 20, 20, 20);
    u3d_net *net = make_net(e->ref, &c, 11);
    dev_batch db = upload(e->ref, &hb);
    u3d_adam_params ap = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
    u3d_error err = {0};
    float first = pass(net, &db, U3D_NET_TRAIN, NULL);
    u3d_param *ob = u3d_net_find(net, "out_bias");
    float *p0 = t_read(&ob->value), *g0 = t_read(&ob->grad);
    t_ok(u3d_net_adam_step(net, &ap, &err), &err, "adam");
    float *p1 = t_read(&ob->value);
    for (int k = 0; k < 3; k++) /* m/(1-b1) = g, sqrt(v/(1-b2)) = |g| */
        assert_true(fabs(p1[k] - (p0[k] - 1e-3 * g0[k] / (fabs(g0[k]) + 1e-8))) <=
                    1e-7);
    float last = first;
    for (int it = 0; it < 5; it++) {
        last = pass(net, &db, U3D_NET_TRAIN, NULL);
        ap.step++;
        t_ok(u3d_net_adam_step(net, &ap, &err), &err, "adam");
    }
    assert_true(last < first);
    u3d_model_meta m;
    u3d_model_meta_defaults(&m);
    m.net = c;
    m.optimizer = U3D_OPTIM_ADAM;
    m.adam_step = ap.step;
    m.beta2 = 0.99;
    m.sampling = U3D_SAMPLE_VOXEL;
    m.class_bias[2] = -1.25f;
    char path[64];
    snprintf(path, sizeof path, "/tmp/u3d_adam_%d.u3d", (int)getpid());
    t_ok(u3d_model_save(path, net, &m, 1, &err), &err, "save");
    u3d_net *back;
    u3d_model_meta mb;
    t_ok(u3d_model_load(path, e->ref, &back, &mb, &err), &err, "load");
    assert_int_equal(mb.optimizer, U3D_OPTIM_ADAM);
    assert_int_equal(mb.adam_step, 6);
    assert_int_equal(mb.sampling, U3D_SAMPLE_VOXEL);
    assert_true(u3d_model_has_bias(&mb) && mb.class_bias[0] == 0.0f &&
                mb.class_bias[1] == 0.0f && mb.class_bias[2] == -1.25f);
    assert_true(mb.beta1 == 0.9 && mb.beta2 == 0.99 && mb.adam_eps == 1e-8f);
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *a = u3d_net_param(net, i), *b = u3d_net_param(back, i);
        t_assert_tensors_close(&b->value, &a->value, 0.0, "value");
        t_assert_tensors_close(&b->momentum, &a->momentum, 0.0, "first");
        t_assert_tensors_close(&b->second, &a->second, 0.0, "second");
    }
    u3d_net_destroy(back);
    t_ok(u3d_model_load_inference(path, e->ref, &back, &mb, &err), &err,
         "load for inference");
    assert_null(u3d_net_param(back, 0)->second.buf);
    u3d_net_destroy(back);
    /* an SGD model file has no second moments */
    m.optimizer = U3D_OPTIM_SGD;
    t_ok(u3d_model_save(path, net, &m, 1, &err), &err, "save sgd");
    t_ok(u3d_model_load(path, e->ref, &back, &mb, &err), &err, "load sgd");
    assert_int_equal(mb.optimizer, U3D_OPTIM_SGD);
    assert_null(u3d_net_param(back, 0)->second.buf);
    assert_non_null(u3d_net_param(back, 0)->momentum.buf);
    u3d_net_destroy(back);
    remove(path);
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

/* Issue #17: batch norm folded into the convolutions gives the logits of
 * the plain inference plan (running statistics), max |difference| <= 1e-4
 * of the logits' scale, on the small and paper presets; the folded net
 * refuses training and batch-statistics modes. */
static void fold_case(t_env *e, const char *preset, int size, uint64_t seed)
{
    u3d_error err = {0};
    u3d_net_config c;
    t_ok(u3d_net_preset(preset, &c, &err), &err, "preset");
    c.bn = U3D_BN_AFFINE; /* gamma and beta folded too */
    u3d_net *a = make_net(e->cl, &c, seed), *b = make_net(e->cl, &c, seed);
    /* running statistics far from 0 and 1, and non-trivial gamma/beta,
     * the same in both nets */
    uint64_t s = seed;
    for (int i = 0; i < u3d_net_num_buffers(a); i++) {
        u3d_param *pa = u3d_net_buffer(a, i), *pb = u3d_net_buffer(b, i);
        size_t n = u3d_shape_count(pa->value.shape);
        int var = strstr(pa->name, "running_var") != NULL;
        float *h = t_rand_array(&s, n, var ? 0.2f : -0.5f, var ? 3.0f : 0.5f);
        t_ok(u3d_tensor_write(&pa->value, h, &err), &err, "stats");
        t_ok(u3d_tensor_write(&pb->value, h, &err), &err, "stats");
        free(h);
    }
    for (int i = 0; i < u3d_net_num_params(a); i++) {
        u3d_param *pa = u3d_net_param(a, i), *pb = u3d_net_param(b, i);
        if (pa->value.shape.n != 1) /* weights (Cout or Cin first): keep */
            continue;
        /* (1, C, 1, 1, 1): conv biases, BN gamma and beta */
        size_t n = u3d_shape_count(pa->value.shape);
        float *h = t_rand_array(&s, n, 0.5f, 1.5f);
        t_ok(u3d_tensor_write(&pa->value, h, &err), &err, "bn params");
        t_ok(u3d_tensor_write(&pb->value, h, &err), &err, "bn params");
        free(h);
    }
    t_ok(u3d_net_fold_batchnorm(b, &err), &err, "fold");
    u3d_tensor x = t_tensor(e->cl, u3d_shape5(1, c.in_channels, size, size,
                                              size), NULL);
    size_t nx = u3d_shape_count(x.shape);
    float *hx = t_rand_array(&s, nx, -1, 1);
    t_ok(u3d_tensor_write(&x, hx, &err), &err, "x");
    free(hx);
    const u3d_tensor *la, *lb;
    t_ok(u3d_net_forward(a, &x, U3D_NET_EVAL, &la, &err), &err, "plain");
    float *ya = t_read(la);
    t_ok(u3d_net_forward(b, &x, U3D_NET_EVAL, &lb, &err), &err, "folded");
    float *yb = t_read(lb);
    t_assert_close(yb, ya, u3d_shape_count(la->shape), 1e-4,
                   "folded vs plain logits");
    free(ya);
    free(yb);
    assert_int_equal(u3d_net_forward(b, &x, U3D_NET_TRAIN, &lb, &err),
                     U3D_ERR_INVALID_ARG);
    assert_int_equal(
        u3d_net_forward(b, &x, U3D_NET_EVAL_BATCHSTATS, &lb, &err),
        U3D_ERR_INVALID_ARG);
    u3d_tensor_release(&x);
    u3d_net_destroy(a);
    u3d_net_destroy(b);
}

static void batchnorm_folding_matches(void **state)
{
    t_env *e = *state;
    if (t_small()) /* host-side folding; the fused kernel runs under */
        skip();    /* oclgrind in test_ops (conv3d_fused_relu) */
    fold_case(e, "tiny", 44, 11);
    fold_case(e, "small", 60, 12);
    fold_case(e, "paper", 92, 13);
}

/* Issue #17: the Winograd path (the CPU default from 16 input channels)
 * gives the direct kernels' logits, max |difference| <= 1e-4 of the
 * logits' scale, with the inference plan (batch norm folded, ReLU fused)
 * of the small and paper presets. */
static void winograd_case(t_env *e, const char *preset, int size,
                          uint64_t seed)
{
    u3d_error err = {0};
    u3d_net_config c;
    t_ok(u3d_net_preset(preset, &c, &err), &err, "preset");
    u3d_net *net = make_net(e->cl, &c, seed);
    t_ok(u3d_net_fold_batchnorm(net, &err), &err, "fold");
    u3d_tensor x = t_tensor(e->cl, u3d_shape5(1, c.in_channels, size, size,
                                              size), NULL);
    uint64_t s = seed;
    float *hx = t_rand_array(&s, u3d_shape_count(x.shape), -1, 1);
    t_ok(u3d_tensor_write(&x, hx, &err), &err, "x");
    free(hx);
    const char *old = getenv("UNET3D_WINOGRAD");
    char *saved = old ? strdup(old) : NULL;
    float *y[2];
    size_t n = 0;
    for (int on = 0; on < 2; on++) {
        const u3d_tensor *l;
        setenv("UNET3D_WINOGRAD", on ? "on" : "off", 1);
        t_ok(u3d_net_forward(net, &x, U3D_NET_EVAL, &l, &err), &err,
             on ? "winograd" : "direct");
        y[on] = t_read(l);
        n = u3d_shape_count(l->shape);
    }
    if (saved) {
        setenv("UNET3D_WINOGRAD", saved, 1);
        free(saved);
    } else {
        unsetenv("UNET3D_WINOGRAD");
    }
    double dmax = 0, amax = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)y[1][i] - y[0][i]);
        dmax = d > dmax ? d : dmax;
        amax = fabs(y[0][i]) > amax ? fabs(y[0][i]) : amax;
    }
    printf("  %s at %d^3: winograd vs direct max |logit diff| %.3g (max "
           "|logit| %.3g)\n", preset, size, dmax, amax);
    t_assert_close(y[1], y[0], n, 1e-4, "winograd vs direct logits");
    free(y[0]);
    free(y[1]);
    u3d_tensor_release(&x);
    u3d_net_destroy(net);
}

static void winograd_matches_direct(void **state)
{
    t_env *e = *state;
    if (t_small()) /* the op tests run the kernels under oclgrind */
        skip();
    winograd_case(e, "small", 60, 21);
    winograd_case(e, "paper", 92, 22);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paper_parameter_count),
        cmocka_unit_test(winograd_matches_direct),
        cmocka_unit_test(parameter_table),
        cmocka_unit_test(anisotropic_parameters),
        cmocka_unit_test(anisotropic_device_matches_reference),
        cmocka_unit_test(anisotropic_model_file),
        cmocka_unit_test(output_sizes),
        cmocka_unit_test(memory_estimate_matches),
        cmocka_unit_test(device_matches_reference),
        cmocka_unit_test(finite_difference_gradients),
        cmocka_unit_test(train_updates_running_stats),
        cmocka_unit_test(sgd_lowers_loss),
        cmocka_unit_test(adam_lowers_loss_and_round_trips),
        cmocka_unit_test(input_shape_changes),
        cmocka_unit_test(bad_inputs),
        cmocka_unit_test(batchnorm_folding_matches),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
