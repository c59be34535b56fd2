/* Batch norm: device vs reference (training, inference, backward), the
 * accuracy of the per-channel reductions over a large channel, the running
 * statistics, finite-difference gradients of the reference, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

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

static void bn_matches_reference(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 4 : 12;
    for (int r = 0; r < reps; r++) {
        int m = t_small() ? 6 : 11;
        u3d_shape s = u3d_shape5(t_randi(&e->seed, 1, 3), t_randi(&e->seed, 1, 6),
                                 t_randi(&e->seed, 1, m), t_randi(&e->seed, 1, m),
                                 t_randi(&e->seed, 2, m));
        if (r == 0) /* many channels, as in the deep levels of the U-Net */
            s = u3d_shape5(2, t_small() ? 9 : 67, 3, 5, 7);
        int affine = r % 2, running = (r / 2) % 2, dparams = affine || r % 3;
        bn_in in = bn_random(&e->seed, s, affine, running);
        bn_out c, h;
        bn_run(e->cl, &in, dparams, &c);
        bn_run(e->ref, &in, dparams, &h);
        /* forward: elementwise after a reduction, float vs double stats */
        t_assert_tensors_close(&c.mean, &h.mean, 1e-5, "bn save_mean");
        t_assert_tensors_close(&c.invstd, &h.invstd, 1e-5, "bn save_invstd");
        t_assert_tensors_close(&c.y, &h.y, 1e-5, "bn y");
        if (running) {
            t_assert_tensors_close(&c.rm, &h.rm, 1e-5, "bn running_mean");
            t_assert_tensors_close(&c.rv, &h.rv, 1e-5, "bn running_var");
            t_assert_tensors_close(&c.yi, &h.yi, 1e-5, "bn inference y");
        }
        /* backward: reductions of dy and dy*xhat */
        t_assert_tensors_close(&c.dx, &h.dx, 1e-4, "bn dx");
        if (dparams) {
            t_assert_tensors_close(&c.dgamma, &h.dgamma, 1e-4, "bn dgamma");
            t_assert_tensors_close(&c.dbeta, &h.dbeta, 1e-4, "bn dbeta");
        }
        bn_release(&c);
        bn_release(&h);
        bn_free_in(&in);
    }
}

/* In place (y = x), as the inference plan runs BN on the conv output's
 * own buffer: the same values as out of place, on every backend, for the
 * running statistics and for the batch statistics (predict --batchstats). */
static void bn_in_place(void **state)
{
    t_env *e = *state;
    u3d_backend *bes[2] = {e->cl, e->ref};
    for (int r = 0; r < 4; r++) {
        u3d_shape s = u3d_shape5(t_randi(&e->seed, 1, 2),
                                 t_randi(&e->seed, 1, 5), t_randi(&e->seed, 2, 7),
                                 t_randi(&e->seed, 1, 7), t_randi(&e->seed, 2, 9));
        int affine = r % 2;
        bn_in in = bn_random(&e->seed, s, affine, 1);
        u3d_shape cs = u3d_shape5(1, s.c, 1, 1, 1);
        for (int b = 0; b < 2; b++) {
            u3d_backend *be = bes[b];
            u3d_error err = {0};
            u3d_tensor x = t_tensor(be, s, in.x), y = t_tensor(be, s, NULL);
            u3d_tensor g = affine ? t_tensor(be, cs, in.gamma) : x;
            u3d_tensor bt = affine ? t_tensor(be, cs, in.beta) : x;
            u3d_tensor rm = t_tensor(be, cs, in.rm), rv = t_tensor(be, cs, in.rv);
            u3d_tensor m = t_tensor(be, cs, NULL), v = t_tensor(be, cs, NULL);
            u3d_tensor *gp = affine ? &g : NULL, *bp = affine ? &bt : NULL;
            /* inference: out of place into y, then in place on x */
            t_ok(u3d_batchnorm3d_forward_infer(&BN, &x, gp, bp, &rm, &rv, &y,
                                               &err),
                 &err, "bn inference");
            t_ok(u3d_batchnorm3d_forward_infer(&BN, &x, gp, bp, &rm, &rv, &x,
                                               &err),
                 &err, "bn inference in place");
            t_assert_tensors_close(&x, &y, 0.0, "bn inference in place");
            /* batch statistics, no running update */
            t_ok(u3d_tensor_write(&x, in.x, &err), &err, "reset x");
            t_ok(u3d_batchnorm3d_forward_train(&BN, &x, gp, bp, NULL, NULL, &y,
                                               &m, &v, &err),
                 &err, "bn batch statistics");
            t_ok(u3d_batchnorm3d_forward_train(&BN, &x, gp, bp, NULL, NULL, &x,
                                               &m, &v, &err),
                 &err, "bn batch statistics in place");
            t_assert_tensors_close(&x, &y, 0.0, "bn batch statistics in place");
            u3d_tensor *all[] = {&x, &y, &rm, &rv, &m, &v};
            for (int i = 0; i < 6; i++)
                u3d_tensor_release(all[i]);
            if (affine) {
                u3d_tensor_release(&g);
                u3d_tensor_release(&bt);
            }
        }
        bn_free_in(&in);
    }
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

/* running = (1-m)*running + m*batch, the variance unbiased (PyTorch). */
static void bn_running_stats_update(void **state)
{
    t_env *e = *state;
    u3d_shape s = u3d_shape5(2, 3, 3, 4, 5);
    size_t S = u3d_shape_spatial(s), M = 2 * S;
    bn_in in = bn_random(&e->seed, s, 0, 1);
    u3d_backend *bes[2] = {e->cl, e->ref};
    for (int b = 0; b < 2; b++) {
        bn_out o;
        bn_run(bes[b], &in, 0, &o);
        float *rm = t_read(&o.rm), *rv = t_read(&o.rv);
        for (int c = 0; c < 3; c++) {
            double sum = 0, sq = 0;
            for (int n = 0; n < 2; n++)
                for (size_t i = 0; i < S; i++)
                    sum += in.x[(n * 3 + c) * S + i];
            double mu = sum / (double)M;
            for (int n = 0; n < 2; n++)
                for (size_t i = 0; i < S; i++) {
                    double d = in.x[(n * 3 + c) * S + i] - mu;
                    sq += d * d;
                }
            double wm = 0.9 * in.rm[c] + 0.1 * mu;
            double wv = 0.9 * in.rv[c] + 0.1 * sq / (double)(M - 1);
            assert_true(fabs(rm[c] - wm) <= 1e-5 * fmax(fabs(wm), 1));
            assert_true(fabs(rv[c] - wv) <= 1e-5 * fmax(fabs(wv), 1));
        }
        free(rm);
        free(rv);
        bn_release(&o);
    }
    bn_free_in(&in);
}

/* loss = sum(y * r) of a training forward on the reference, in double. */
static double bn_loss(t_env *e, const bn_in *in, const float *r)
{
    u3d_error err = {0};
    u3d_shape cs = u3d_shape5(1, in->s.c, 1, 1, 1);
    u3d_tensor x = t_tensor(e->ref, in->s, in->x), y = t_tensor(e->ref, in->s, NULL);
    u3d_tensor g = {0}, b = {0}, m = t_tensor(e->ref, cs, NULL),
               v = t_tensor(e->ref, cs, NULL);
    if (in->gamma) {
        g = t_tensor(e->ref, cs, in->gamma);
        b = t_tensor(e->ref, cs, in->beta);
    }
    t_ok(u3d_batchnorm3d_forward_train(&BN, &x, opt(&g), opt(&b), NULL, NULL,
                                       &y, &m, &v, &err),
         &err, "bn forward");
    float *h = t_read(&y);
    double l = t_dot(h, r, u3d_shape_count(in->s));
    free(h);
    u3d_tensor *all[] = {&x, &y, &g, &b, &m, &v};
    for (int i = 0; i < 6; i++)
        u3d_tensor_release(all[i]);
    return l;
}

/* Central difference of bn_loss w.r.t. p[i]. */
static float bn_fd(t_env *e, const bn_in *in, const float *r, float *p,
                   size_t i, float h)
{
    float keep = p[i];
    p[i] = keep + h;
    double lp = bn_loss(e, in, r);
    p[i] = keep - h;
    double lm = bn_loss(e, in, r);
    p[i] = keep;
    return (float)((lp - lm) / (2.0 * h));
}

/* max|got - want| <= tol * max|want| (no floor: gradients may be small). */
static void assert_rel(const float *got, const float *want, size_t n,
                       double tol, const char *what)
{
    double amax = 0, emax = 0;
    for (size_t i = 0; i < n; i++) {
        amax = fmax(amax, fabs(want[i]));
        emax = fmax(emax, fabs((double)got[i] - want[i]));
    }
    print_message("%s: rel err %.2e\n", what, emax / amax);
    if (!(emax <= tol * amax))
        fail_msg("%s: max error %.3g vs max |gradient| %.3g (tol %.1g)", what,
                 emax, amax, tol);
}

/* Backward of the reference vs central differences of loss = sum(y*r).
 * x ~ 1.15 spread (invstd ~ 0.9), h = 1e-2: truncation ~h^2 ~ 1e-4 and
 * float rounding of y ~ 1e-6 / 2h ~ 5e-5 relative to |dx| ~ 1, so 2e-3
 * leaves a margin while a wrong term (e.g. a missing mean(dy*xhat)) is
 * off by O(1). */
static void bn_fd_check(t_env *e, int affine)
{
    u3d_shape s = u3d_shape5(2, 2, 3, 2, 3);
    size_t n = u3d_shape_count(s);
    bn_in in = bn_random(&e->seed, s, affine, 0);
    float *r = t_rand_array(&e->seed, n, -1, 1);
    memcpy(in.dy, r, n * sizeof *r);
    bn_out o;
    bn_run(e->ref, &in, affine, &o);
    float *dx = t_read(&o.dx), *fd = malloc(n * sizeof *fd);
    assert_non_null(fd);
    for (size_t i = 0; i < n; i++)
        fd[i] = bn_fd(e, &in, r, in.x, i, 1e-2f);
    assert_rel(dx, fd, n, 2e-3, affine ? "bn dx (affine) vs FD" : "bn dx vs FD");
    if (affine) {
        float *dg = t_read(&o.dgamma), *db = t_read(&o.dbeta), f[2];
        for (int k = 0; k < 2; k++)
            f[k] = bn_fd(e, &in, r, in.gamma, (size_t)k, 1e-2f);
        assert_rel(dg, f, 2, 2e-3, "bn dgamma vs FD");
        for (int k = 0; k < 2; k++)
            f[k] = bn_fd(e, &in, r, in.beta, (size_t)k, 1e-2f);
        assert_rel(db, f, 2, 2e-3, "bn dbeta vs FD");
        free(dg);
        free(db);
    }
    free(dx);
    free(fd);
    free(r);
    bn_release(&o);
    bn_free_in(&in);
}

static void bn_backward_fd_affine(void **state) { bn_fd_check(*state, 1); }
static void bn_backward_fd_plain(void **state) { bn_fd_check(*state, 0); }

static void bn_rejects_bad_input(void **state)
{
    t_env *e = *state;
    u3d_error err = {0};
    u3d_shape s = u3d_shape5(1, 3, 2, 2, 2);
    u3d_tensor x = t_tensor(e->cl, s, NULL), y = t_tensor(e->cl, s, NULL);
    u3d_tensor g = t_tensor(e->cl, u3d_shape5(1, 4, 1, 1, 1), NULL);
    u3d_tensor m = t_tensor(e->cl, u3d_shape5(1, 3, 1, 1, 1), NULL);
    u3d_tensor v = t_tensor(e->cl, u3d_shape5(1, 3, 1, 1, 1), NULL);
    assert_int_equal(u3d_batchnorm3d_forward_train(&BN, &x, &g, NULL, NULL,
                                                   NULL, &y, &m, &v, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x4x1x1x1"));
    assert_non_null(strstr(err.msg, "1x3x1x1x1"));
    u3d_bn_params bad = {0.0f, 0.1f};
    assert_int_equal(u3d_batchnorm3d_forward_train(&bad, &x, NULL, NULL, NULL,
                                                   NULL, &y, &m, &v, &err),
                     U3D_ERR_INVALID_ARG);
    /* one value per channel: the batch variance is meaningless */
    u3d_backend *bes[2] = {e->cl, e->ref};
    for (int b = 0; b < 2; b++) {
        u3d_shape one = u3d_shape5(1, 3, 1, 1, 1);
        u3d_tensor x1 = t_tensor(bes[b], one, NULL), y1 = t_tensor(bes[b], one, NULL);
        u3d_tensor m1 = t_tensor(bes[b], one, NULL), v1 = t_tensor(bes[b], one, NULL);
        assert_int_equal(u3d_batchnorm3d_forward_train(&BN, &x1, NULL, NULL,
                                                       NULL, NULL, &y1, &m1,
                                                       &v1, &err),
                         U3D_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "more than one value"));
        u3d_tensor *t1[] = {&x1, &y1, &m1, &v1};
        for (int i = 0; i < 4; i++)
            u3d_tensor_release(t1[i]);
    }
    u3d_tensor *all[] = {&x, &y, &g, &m, &v};
    for (int i = 0; i < 5; i++)
        u3d_tensor_release(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bn_matches_reference),
        cmocka_unit_test(bn_in_place),
        cmocka_unit_test(bn_large_channel_accuracy),
        cmocka_unit_test(bn_running_stats_update),
        cmocka_unit_test(bn_backward_fd_affine),
        cmocka_unit_test(bn_backward_fd_plain),
        cmocka_unit_test(bn_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
