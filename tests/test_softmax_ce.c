/* Softmax + weighted cross-entropy: device vs reference with ignored voxels
 * and class weights, the loss reduction over many voxels vs double, the
 * gradient by finite differences, invalid labels, all-ignored, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

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

/* Like t_assert_tensors_close but relative to max|want| without the floor
 * of 1: dlogits are ~w/sum_w, far below 1. */
static void assert_tensors_rel(const u3d_tensor *got, const u3d_tensor *want,
                               double tol, const char *what)
{
    size_t n = u3d_shape_count(want->shape);
    float *a = t_read(got), *b = t_read(want);
    double amax = 0, emax = 0;
    for (size_t i = 0; i < n; i++) {
        amax = fmax(amax, fabs(b[i]));
        emax = fmax(emax, fabs((double)a[i] - b[i]));
    }
    if (!(emax <= tol * amax))
        fail_msg("%s: max error %.3g vs max |want| %.3g (tol %.1g)", what,
                 emax, amax, tol);
    free(a);
    free(b);
}

static void ce_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 4 : 12;
    const int ignores[3] = {255, -1, 1}; /* 1: a class index can be ignored */
    for (int r = 0; r < reps; r++) {
        int m = t_small() ? 5 : 11;
        u3d_shape s = u3d_shape5(t_randi(&e->seed, 1, 3), t_randi(&e->seed, 2, 7),
                                 t_randi(&e->seed, 1, m), t_randi(&e->seed, 1, m),
                                 t_randi(&e->seed, 1, m));
        int flags = r % 4 == 3 ? r % 3 : 3; /* sometimes no probs/dlogits */
        ce_in in = ce_random(&e->seed, s, ignores[r % 3], 0.3f);
        ce_out c, h;
        u3d_error err = {0};
        t_ok(ce_run(e->cl, &in, flags, &c, &err), &err, "softmax-ce");
        t_ok(ce_run(e->ref, &in, flags, &h, &err), &err, "ref softmax-ce");
        /* scalars: float reductions vs double */
        assert_scalar(c.loss, h.loss, 1e-5, "loss");
        assert_scalar(c.wsum, h.wsum, 1e-5, "weight sum");
        if (flags & 1)
            t_assert_tensors_close(&c.p, &h.p, 1e-5, "probs");
        if (flags & 2)
            assert_tensors_rel(&c.d, &h.d, 1e-5, "dlogits");
        ce_release(&c);
        ce_release(&h);
        ce_free_in(&in);
    }
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

static double ce_loss(t_env *e, const ce_in *in)
{
    ce_out o;
    u3d_error err = {0};
    t_ok(ce_run(e->ref, in, 0, &o, &err), &err, "ref softmax-ce");
    double l = o.loss;
    ce_release(&o);
    return l;
}

/* dlogits of the reference vs central differences of the loss, with
 * ignored voxels and unequal class weights. Logits ~ U(-5,5), h = 1e-2:
 * truncation ~h^2/6 * |f'''| ~ 1e-6 and float rounding of the loss
 * ~6e-8 / 2h ~ 3e-6, against gradients of ~w/sum_w ~ 3e-2, so 1e-3
 * relative holds with margin; a wrong weight or normalisation is O(1). */
static void ce_gradient_fd(void **state)
{
    t_env *e = *state;
    u3d_shape s = u3d_shape5(2, 3, 2, 3, 2);
    ce_in in = ce_random(&e->seed, s, 255, 0.3f);
    in.lab[0] = 255; /* at least one ignored voxel */
    size_t n = u3d_shape_count(s);
    ce_out o;
    u3d_error err = {0};
    t_ok(ce_run(e->ref, &in, 2, &o, &err), &err, "ref softmax-ce");
    float *d = t_read(&o.d), *fd = malloc(n * sizeof *fd);
    assert_non_null(fd);
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = in.z[i];
        in.z[i] = keep + h;
        double lp = ce_loss(e, &in);
        in.z[i] = keep - h;
        double lm = ce_loss(e, &in);
        in.z[i] = keep;
        fd[i] = (float)((lp - lm) / (2.0 * h));
    }
    double amax = 0, emax = 0;
    for (size_t i = 0; i < n; i++) {
        amax = fmax(amax, fabs(fd[i]));
        emax = fmax(emax, fabs(d[i] - fd[i]));
    }
    print_message("dlogits vs FD: rel err %.2e\n", emax / amax);
    if (!(emax <= 1e-3 * amax))
        fail_msg("dlogits vs FD: max error %.3g, max |gradient| %.3g", emax,
                 amax);
    /* ignored voxel 0 (n=0, s=0): zero gradient in every class */
    for (int k = 0; k < 3; k++)
        assert_true(d[(size_t)k * 12] == 0.0f);
    free(d);
    free(fd);
    ce_release(&o);
    ce_free_in(&in);
}

/* A label outside [0,C) that is not the ignore label is reported. */
static void ce_rejects_invalid_label(void **state)
{
    t_env *e = *state;
    u3d_backend *bes[2] = {e->cl, e->ref};
    const int badv[2] = {3, -2};
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 2; k++) {
            ce_in in = ce_random(&e->seed, u3d_shape5(2, 3, 3, 4, 5), 255, 0.2f);
            in.lab[37] = badv[k];
            ce_out o;
            u3d_error err = {0};
            assert_int_equal(ce_run(bes[b], &in, 3, &o, &err),
                             U3D_ERR_INVALID_ARG);
            char want[32];
            snprintf(want, sizeof want, "label %d", badv[k]);
            assert_non_null(strstr(err.msg, want));
            assert_non_null(strstr(err.msg, "< classes (3)"));
            assert_non_null(strstr(err.msg, "ignore label 255"));
            ce_release(&o);
            ce_free_in(&in);
        }
}

/* No labeled voxel: loss 0, weight sum 0, dlogits 0, probs still valid. */
static void ce_all_ignored(void **state)
{
    t_env *e = *state;
    u3d_shape s = u3d_shape5(2, 4, 3, 3, 5);
    ce_in in = ce_random(&e->seed, s, -1, 1.0f);
    u3d_backend *bes[2] = {e->cl, e->ref};
    ce_out o[2];
    for (int b = 0; b < 2; b++) {
        u3d_error err = {0};
        t_ok(ce_run(bes[b], &in, 3, &o[b], &err), &err, "softmax-ce");
        assert_true(o[b].loss == 0.0f);
        assert_true(o[b].wsum == 0.0f);
        float *d = t_read(&o[b].d);
        for (size_t i = 0; i < u3d_shape_count(s); i++)
            assert_true(d[i] == 0.0f);
        free(d);
    }
    t_assert_tensors_close(&o[0].p, &o[1].p, 1e-5, "probs, all ignored");
    ce_release(&o[0]);
    ce_release(&o[1]);
    ce_free_in(&in);
}

static void ce_rejects_bad_input(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    float loss;
    u3d_shape s = u3d_shape5(1, 3, 2, 3, 4);
    u3d_tensor z = t_tensor(e->cl, s, NULL);
    u3d_tensor w = t_tensor(e->cl, u3d_shape5(1, 3, 1, 1, 1), NULL);
    u3d_tensor lab = t_tensor_i32(e->cl, u3d_shape5(1, 1, 2, 3, 5), NULL);
    u3d_tensor flab = t_tensor(e->cl, u3d_shape5(1, 1, 2, 3, 4), NULL);
    assert_int_equal(u3d_softmax_ce(&z, &lab, &w, 255, NULL, NULL, &loss, NULL,
                                    &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x1x2x3x5"));
    assert_non_null(strstr(err.msg, "1x1x2x3x4"));
    assert_int_equal(u3d_softmax_ce(&z, &flab, &w, 255, NULL, NULL, &loss,
                                    NULL, &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "int32"));
    u3d_tensor *all[] = {&z, &w, &lab, &flab};
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ce_matches_reference),
        cmocka_unit_test(ce_large_reduction_accuracy),
        cmocka_unit_test(ce_gradient_fd),
        cmocka_unit_test(ce_rejects_invalid_label),
        cmocka_unit_test(ce_all_ignored),
        cmocka_unit_test(ce_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
