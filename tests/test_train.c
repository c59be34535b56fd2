/* Training end to end: a tiny net fits a small synthetic volume; a run
 * interrupted after a checkpoint and resumed equals an uninterrupted one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_util.h"
#include "train/sample_internal.h"

/* Blobs of class 1 in a noisy background: image (1,S,S,S), dense labels. */
static void make_volume(u3d_train_volume *v, int S, uint64_t seed)
{
    u3d_error err = {0};
    memset(v, 0, sizeof *v);
    t_ok(u3d_volume_alloc(1, S, S, S, &v->image, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(S, S, S, &v->labels, &err), &err, "alloc");
    snprintf(v->image_path, sizeof v->image_path, "synthetic");
    snprintf(v->labels_path, sizeof v->labels_path, "synthetic");
    uint64_t s = seed;
    enum { NB = 24 };
    double bc[NB][3], br[NB];
    for (int b = 0; b < NB; b++) {
        for (int a = 0; a < 3; a++)
            bc[b][a] = t_randf(&s, 0, (float)S);
        br[b] = t_randf(&s, 2.5f, 5.0f);
    }
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t i = ((size_t)z * S + y) * S + x;
                int in = 0;
                for (int b = 0; b < NB && !in; b++) {
                    double dz = z - bc[b][0], dy = y - bc[b][1], dx = x - bc[b][2];
                    in = dz * dz + dy * dy + dx * dx < br[b] * br[b];
                }
                v->labels.data[i] = (uint16_t)in;
                v->image.data[i] = (in ? 1.0f : 0.0f) + t_randf(&s, -0.3f, 0.3f);
            }
}

static void tiny_meta(u3d_model_meta *m, int S)
{
    u3d_model_meta_defaults(m);
    u3d_error err = {0};
    t_ok(u3d_net_preset("tiny", &m->net, &err), &err, "preset");
    m->net.in_channels = 1;
    m->net.classes = 2;
    m->net.levels = 2;
    m->net.base_channels = 4;
    m->patch[0] = m->patch[1] = m->patch[2] = S;
    m->lr = 0.05f;
    m->momentum = 0.9f;
    m->seed = 7;
    snprintf(m->augment, sizeof m->augment, "none");
    m->class_weights[0] = m->class_weights[1] = 1.0f;
}

static double fit_iou(u3d_net *net, const u3d_train_volume *v, int S)
{
    u3d_error err = {0};
    u3d_backend *be = u3d_net_backend(net);
    u3d_tensor x = t_tensor(be, u3d_shape5(1, 1, S, S, S), v->image.data);
    const u3d_tensor *logits;
    t_ok(u3d_net_forward(net, &x, U3D_NET_EVAL_BATCHSTATS, &logits, &err), &err,
         "forward");
    u3d_shape o = logits->shape;
    float *l = t_read(logits);
    int off = (S - o.d) / 2;
    size_t tp = 0, fp = 0, fn = 0, sp = (size_t)o.d * o.h * o.w;
    for (int z = 0; z < o.d; z++)
        for (int y = 0; y < o.h; y++)
            for (int xx = 0; xx < o.w; xx++) {
                size_t i = ((size_t)z * o.h + y) * o.w + xx;
                int pred = l[sp + i] > l[i];
                int truth = v->labels.data[((size_t)(z + off) * S + y + off) * S +
                                           xx + off];
                tp += pred && truth;
                fp += pred && !truth;
                fn += !pred && truth;
            }
    free(l);
    u3d_tensor_release(&x);
    return (double)tp / (double)(tp + fp + fn > 0 ? tp + fp + fn : 1);
}

static void tiny_net_fits_synthetic_volume(void **state)
{
    t_env *e = *state;
    /* valid 2-level net: 28 -> 12 output voxels per axis (20 -> 4 under
     * oclgrind, which interprets every kernel) */
    int S = t_small() ? 20 : 28;
    /* 500 iterations of a 28^3 patch: ~6 s on PoCL; IoU ~0.97 (0.95 at 300) */
    int iters = t_small() ? 1 : 500;
    u3d_train_volume v;
    make_volume(&v, S, 3);
    u3d_model_meta m;
    tiny_meta(&m, S);
    m.iterations = iters;
    size_t counts[2] = {0, 0};
    for (size_t i = 0; i < (size_t)S * S * S; i++)
        counts[v.labels.data[i]]++;
    u3d_class_weights_auto(counts, 2, m.class_weights);
    u3d_error err = {0};
    u3d_net *net;
    t_ok(u3d_net_create(e->cl, &m.net, &net, &err), &err, "net");
    t_ok(u3d_net_init(net, 11, &err), &err, "init");
    char path[64];
    snprintf(path, sizeof path, "/tmp/u3d_fit_%d.u3d", (int)getpid());
    u3d_train_opts o = {path, NULL, 0, 0, 1, 0, NULL, 0, .val = NULL};
    t_ok(u3d_train_run(net, &m, &v, 1, &o, &err), &err, "train");
    assert_int_equal(m.iteration, iters);
    if (!t_small()) {
        double iou = fit_iou(net, &v, S);
        printf("IoU after %d iterations: %.4f\n", iters, iou);
        assert_true(iou > 0.95);
    }
    /* the saved model loads back with identical parameters */
    u3d_net *back;
    u3d_model_meta mb;
    t_ok(u3d_model_load(path, e->cl, &back, &mb, &err), &err, "load");
    assert_int_equal(mb.iteration, iters);
    for (int i = 0; i < u3d_net_num_params(net); i++)
        t_assert_tensors_close(&u3d_net_param(back, i)->value,
                               &u3d_net_param(net, i)->value, 0.0, "param");
    u3d_net_destroy(back);
    /* for inference: the same parameters and buffers, no optimizer state
     * (no gradient or momentum buffers on the device) */
    t_ok(u3d_model_load_inference(path, e->cl, &back, &mb, &err), &err,
         "load for inference");
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(back, i);
        t_assert_tensors_close(&p->value, &u3d_net_param(net, i)->value, 0.0,
                               "param");
        assert_null(p->grad.buf);
        assert_null(p->momentum.buf);
    }
    for (int i = 0; i < u3d_net_num_buffers(net); i++)
        t_assert_tensors_close(&u3d_net_buffer(back, i)->value,
                               &u3d_net_buffer(net, i)->value, 0.0, "buffer");
    u3d_net_destroy(back);
    u3d_net_destroy(net);
    remove(path);
    u3d_volume_free(&v.image);
    u3d_labels_free(&v.labels);
}

/* Interrupted after 3 iterations (last checkpoint at 2), resumed to 6:
 * identical to 6 uninterrupted iterations, with either optimizer (Adam's
 * moments and step count are part of the file). */
static void resume_case(t_env *e, u3d_optimizer opt, u3d_sampling sampling)
{
    if (t_small())
        skip(); /* determinism needs no simulator; ~10 min under oclgrind */
    int S = 28;
    u3d_train_volume v;
    make_volume(&v, S, 5);
    u3d_error err = {0};
    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "/tmp/u3d_ra_%d.u3d", (int)getpid());
    snprintf(pb, sizeof pb, "/tmp/u3d_rb_%d.u3d", (int)getpid());
    int total = t_small() ? 3 : 6;
    /* uninterrupted */
    u3d_model_meta m;
    tiny_meta(&m, S);
    snprintf(m.augment, sizeof m.augment, "paper");
    m.iterations = total;
    m.optimizer = opt;
    m.sampling = sampling;
    if (opt == U3D_OPTIM_ADAM)
        m.lr = 3e-3f;
    u3d_net *net;
    t_ok(u3d_net_create(e->cl, &m.net, &net, &err), &err, "net");
    t_ok(u3d_net_init(net, 1, &err), &err, "init");
    u3d_train_opts o = {pa, NULL, 2, 0, 1, 0, NULL, 0, .val = NULL};
    t_ok(u3d_train_run(net, &m, &v, 1, &o, &err), &err, "train");
    u3d_net_destroy(net);
    /* interrupted: dies after iteration 3, the file holds iteration 2 */
    tiny_meta(&m, S);
    snprintf(m.augment, sizeof m.augment, "paper");
    m.iterations = total;
    m.optimizer = opt;
    m.sampling = sampling;
    if (opt == U3D_OPTIM_ADAM)
        m.lr = 3e-3f;
    t_ok(u3d_net_create(e->cl, &m.net, &net, &err), &err, "net");
    t_ok(u3d_net_init(net, 1, &err), &err, "init");
    u3d_train_opts ob = {pb, NULL, 2, 0, 1, total - 1, NULL, 0, .val = NULL};
    t_ok(u3d_train_run(net, &m, &v, 1, &ob, &err), &err, "train part");
    u3d_net_destroy(net);
    u3d_model_meta mr;
    t_ok(u3d_model_load(pb, e->cl, &net, &mr, &err), &err, "load");
    assert_int_equal(mr.iteration, (total - 1) / 2 * 2);
    assert_int_equal(mr.optimizer, opt);
    assert_int_equal(mr.sampling, sampling);
    assert_int_equal(mr.adam_step, opt == U3D_OPTIM_ADAM ? mr.iteration : 0);
    u3d_train_opts oc = {pb, NULL, 2, 0, 1, 0, NULL, 0, .val = NULL};
    t_ok(u3d_train_run(net, &mr, &v, 1, &oc, &err), &err, "resume");
    assert_int_equal(mr.iteration, total);
    assert_int_equal(mr.adam_step, opt == U3D_OPTIM_ADAM ? total : 0);
    u3d_net_destroy(net);
    /* compare every stored tensor bit for bit */
    u3d_ckpt a, b;
    t_ok(u3d_ckpt_read(pa, &a, &err), &err, "read");
    t_ok(u3d_ckpt_read(pb, &b, &err), &err, "read");
    assert_int_equal(a.ntensors, b.ntensors);
    assert_true((u3d_ckpt_find(&a, "out_bias.adam_v") != NULL) ==
                (opt == U3D_OPTIM_ADAM));
    for (int i = 0; i < a.ntensors; i++) {
        const u3d_ckpt_tensor *tb = u3d_ckpt_find(&b, a.tensors[i].name);
        assert_non_null(tb);
        if (memcmp(a.tensors[i].data, tb->data,
                   u3d_shape_count(tb->shape) * sizeof(float)))
            fail_msg("tensor %s differs after resume", tb->name);
    }
    u3d_ckpt_free(&a);
    u3d_ckpt_free(&b);
    remove(pa);
    remove(pb);
    u3d_volume_free(&v.image);
    u3d_labels_free(&v.labels);
}

static void resume_equals_uninterrupted(void **state)
{
    resume_case(*state, U3D_OPTIM_SGD, U3D_SAMPLE_CLASS);
}

/* with the other optimizer and the other patch samplings */
static void resume_equals_uninterrupted_mixed(void **state)
{
    resume_case(*state, U3D_OPTIM_SGD, U3D_SAMPLE_MIXED);
}

static void resume_equals_uninterrupted_adam(void **state)
{
    resume_case(*state, U3D_OPTIM_ADAM, U3D_SAMPLE_VOXEL);
}

/* The patch-centre draws (u3d_sample_pick): class first gives each
 * present class half here, voxel the annotated share (1 %), mixed a third
 * of the one and two thirds of the other; 60,000 draws put 5 standard
 * deviations inside the tolerance of 0.01. Every index stays in range. */
static void sampling_proportions(void **state)
{
    (void)state;
    size_t start[U3D_MAX_CLASSES + 1];
    start[0] = 0;
    start[1] = start[2] = 990; /* class 0: 990 voxels, class 1: none */
    for (int k = 3; k <= U3D_MAX_CLASSES; k++)
        start[k] = 1000; /* class 2: 10 voxels */
    const int present[2] = {0, 2};
    const int modes[3] = {U3D_SAMPLE_CLASS, U3D_SAMPLE_VOXEL,
                          U3D_SAMPLE_MIXED};
    const double want[3] = {0.5, 0.01, 0.5 / 3 + 2 * 0.01 / 3};
    for (int s = 0; s < 3; s++) {
        u3d_rng r;
        u3d_rng_init(&r, 7, (uint64_t)s);
        int n = 60000, rare = 0;
        for (int i = 0; i < n; i++) {
            size_t j = u3d_sample_pick(modes[s], start, present, 2, 1000, &r);
            assert_true(j < 1000);
            rare += j >= 990;
        }
        double f = (double)rare / n;
        if (fabs(f - want[s]) > 0.01)
            fail_msg("sampling %s: rare class in %.4f of the draws, want "
                     "%.4f", u3d_sampling_names[modes[s]], f, want[s]);
    }
}

static void class_weights_balance(void **state)
{
    (void)state;
    size_t counts[3] = {900, 100, 0};
    float w[3];
    u3d_class_weights_auto(counts, 3, w);
    assert_true(fabsf(w[0] * 900 - w[1] * 100) < 1e-3f);
    assert_true(w[0] < 1.0f && w[1] > 1.0f);
    assert_true(w[2] == 0.0f);
}

/* Issue #14 item 5: a run whose parameters become NaN/Inf stops with an
 * error and never writes them over the model file, which keeps a model
 * whose every value is finite. */
static void diverging_run_keeps_finite_model(void **state)
{
    t_env *e = *state;
    if (t_small())
        skip(); /* host-side logic; the kernels run under oclgrind elsewhere */
    int S = 20;
    u3d_train_volume v;
    make_volume(&v, S, 9);
    u3d_error err = {0};
    char pa[64];
    snprintf(pa, sizeof pa, "/tmp/u3d_div_%d.u3d", (int)getpid());
    u3d_model_meta m;
    tiny_meta(&m, S);
    m.iterations = 1;
    u3d_net *net;
    t_ok(u3d_net_create(e->cl, &m.net, &net, &err), &err, "net");
    t_ok(u3d_net_init(net, 1, &err), &err, "init");
    u3d_train_opts o = {pa, NULL, 1, 0, 1, 0, NULL, 0, .val = NULL};
    t_ok(u3d_train_run(net, &m, &v, 1, &o, &err), &err, "good run");
    /* The reproducer (--lr 1e30 --iterations 2 --checkpoint-every
     * 1) saved NaN/Inf although the loss it printed was finite: batch norm
     * keeps the loss finite while a value it does not use in training
     * (running statistics, or a momentum buffer before the step) is not.
     * Here a running mean is made NaN: the next checkpoint must refuse. */
    int nb = u3d_net_num_buffers(net);
    assert_true(nb > 0);
    u3d_param *b = u3d_net_buffer(net, 0);
    size_t n = u3d_shape_count(b->value.shape);
    float *bad = malloc(n * sizeof *bad);
    for (size_t k = 0; k < n; k++)
        bad[k] = NAN;
    t_ok(u3d_tensor_write(&b->value, bad, &err), &err, "poison");
    free(bad);
    m.iterations = 2;
    u3d_status st = u3d_train_run(net, &m, &v, 1, &o, &err);
    u3d_net_destroy(net);
    assert_int_equal(st, U3D_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "diverged"));
    u3d_ckpt c;
    t_ok(u3d_ckpt_read(pa, &c, &err), &err, "read back");
    for (int i = 0; i < c.ntensors; i++) {
        size_t n = u3d_shape_count(c.tensors[i].shape);
        for (size_t k = 0; k < n; k++)
            if (!isfinite(c.tensors[i].data[k]))
                fail_msg("%s holds a non-finite value", c.tensors[i].name);
    }
    u3d_ckpt_free(&c);
    remove(pa);
    u3d_volume_free(&v.image);
    u3d_labels_free(&v.labels);
}

/* Issue #14 item 6: --resume keeps the loss log's header and the rows of
 * the iterations before the checkpoint; each iteration appears once. */
static void resume_keeps_loss_log(void **state)
{
    t_env *e = *state;
    if (t_small())
        skip(); /* host-side logic; the kernels run under oclgrind elsewhere */
    int S = 20;
    u3d_train_volume v;
    make_volume(&v, S, 3);
    u3d_error err = {0};
    char pm[64], pl[64];
    snprintf(pm, sizeof pm, "/tmp/u3d_log_%d.u3d", (int)getpid());
    snprintf(pl, sizeof pl, "/tmp/u3d_log_%d.csv", (int)getpid());
    u3d_model_meta m;
    tiny_meta(&m, S);
    m.iterations = 5;
    u3d_net *net;
    t_ok(u3d_net_create(e->cl, &m.net, &net, &err), &err, "net");
    t_ok(u3d_net_init(net, 1, &err), &err, "init");
    /* dies after iteration 3; the checkpoint and the log hold 2 */
    u3d_train_opts o = {pm, pl, 2, 0, 1, 3, NULL, 0, .val = NULL};
    t_ok(u3d_train_run(net, &m, &v, 1, &o, &err), &err, "part");
    u3d_net_destroy(net);
    u3d_model_meta mr;
    t_ok(u3d_model_load(pm, e->cl, &net, &mr, &err), &err, "load");
    u3d_train_opts oc = {pm, pl, 2, 0, 1, 0, NULL, 0, .val = NULL};
    t_ok(u3d_train_run(net, &mr, &v, 1, &oc, &err), &err, "resume");
    u3d_net_destroy(net);
    FILE *f = fopen(pl, "r");
    assert_non_null(f);
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "iteration,loss,seconds\n");
    long want = 1;
    while (fgets(line, sizeof line, f))
        assert_int_equal(strtol(line, NULL, 10), want++);
    fclose(f);
    assert_int_equal(want, 6);
    remove(pm);
    remove(pl);
    u3d_volume_free(&v.image);
    u3d_labels_free(&v.labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(class_weights_balance),
        cmocka_unit_test(sampling_proportions),
        cmocka_unit_test(tiny_net_fits_synthetic_volume),
        cmocka_unit_test(resume_equals_uninterrupted),
        cmocka_unit_test(resume_equals_uninterrupted_adam),
        cmocka_unit_test(resume_equals_uninterrupted_mixed),
        cmocka_unit_test(diverging_run_keeps_finite_model),
        cmocka_unit_test(resume_keeps_loss_log),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
