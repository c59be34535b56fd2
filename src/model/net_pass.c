/* 3D U-Net forward and backward passes and the SGD step, all through the
 * operations of ops.h so they run on every backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "model/net_internal.h"

static u3d_tensor *val(u3d_net *net, int i)
{
    return i >= 0 ? &net->params[i].value : NULL;
}

static u3d_tensor *grad(u3d_net *net, int i)
{
    return i >= 0 ? &net->params[i].grad : NULL;
}

static u3d_tensor *buf(u3d_net *net, int i)
{
    return i >= 0 ? &net->bufs[i].value : NULL;
}

static u3d_bn_params bn_params(const u3d_net *net)
{
    u3d_bn_params p = {net->cfg.bn_eps, net->cfg.bn_momentum};
    return p;
}

/* ---- synchronized batch norm (u3d_net_hooks.bn_sum) ---- */

/* A view of shape s on scratch buffer t of capacity *cap floats (grown on
 * demand). */
static u3d_status scratch(u3d_net *net, u3d_tensor *t, size_t *cap,
                          u3d_shape s, u3d_tensor *view, u3d_error *err)
{
    size_t n = u3d_shape_count(s);
    if (n > *cap) {
        u3d_tensor_release(t);
        *cap = 0;
        U3D_TRY(u3d_tensor_create(net->be, u3d_shape5((int)n, 1, 1, 1, 1),
                                  U3D_F32, t, err));
        *cap = n;
    }
    *view = *t;
    view->shape = s;
    return U3D_OK;
}

static u3d_status chan_scratch(u3d_net *net, int C, u3d_tensor v[4],
                               u3d_error *err)
{
    size_t cap = net->sbn_c_n;
    for (int i = 0; i < 4; i++) {
        net->sbn_c_n = cap;
        U3D_TRY(scratch(net, &net->sbn_c[i], &net->sbn_c_n,
                        u3d_shape5(1, C, 1, 1, 1), &v[i], err));
    }
    return U3D_OK;
}

/* Batch statistics over every process: the local pass gives this
 * process's mean and 1/std; two sums give the global mean, then the global
 * variance sum_r M_r (var_r + (mean_r - mean)^2) / M; the output is the
 * inference formula with those statistics. */
static u3d_status sync_bn_forward(u3d_net *net, net_block *b, u3d_error *err)
{
    u3d_bn_params p = bn_params(net);
    u3d_tensor *g = val(net, b->gamma), *be = val(net, b->beta);
    U3D_TRY(u3d_batchnorm3d_forward_train(&p, &b->z, g, be, NULL, NULL, &b->a,
                                          &b->save_mean, &b->save_invstd,
                                          err));
    int C = b->z.shape.c;
    double Ml = (double)b->z.shape.n * (double)u3d_shape_spatial(b->z.shape);
    size_t nb = (size_t)(2 * C + 1);
    float *f = malloc(2 * (size_t)C * sizeof *f);
    double *d = malloc(nb * sizeof *d), *mean = malloc((size_t)C * sizeof *d);
    u3d_status st = f && d && mean ? U3D_OK
                                   : u3d_seterr(err, U3D_ERR_OOM,
                                                "out of host memory");
    if (!st)
        st = u3d_tensor_read(&b->save_mean, f, err);
    if (!st)
        st = u3d_tensor_read(&b->save_invstd, f + C, err);
    if (!st) {
        for (int c = 0; c < C; c++)
            d[c] = Ml * f[c];
        d[C] = Ml;
        st = net->hooks.bn_sum(net->hooks.ctx, d, C + 1, err);
    }
    double M = d[C];
    if (!st) {
        for (int c = 0; c < C; c++) {
            mean[c] = d[c] / M;
            double inv = f[C + c], var = 1.0 / (inv * inv) - p.eps;
            double dm = f[c] - mean[c];
            d[c] = Ml * ((var > 0 ? var : 0) + dm * dm);
        }
        st = net->hooks.bn_sum(net->hooks.ctx, d, C, err);
    }
    u3d_tensor v[4]; /* global mean, variance, then their float copies */
    if (!st)
        st = chan_scratch(net, C, v, err);
    float *h = malloc(4 * (size_t)C * sizeof *h);
    if (!st && !h)
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    if (!st) {
        for (int c = 0; c < C; c++) {
            double var = d[c] / M;
            h[c] = (float)mean[c];
            h[C + c] = (float)var;
            h[2 * C + c] = (float)(1.0 / sqrt(var + p.eps));
        }
        st = u3d_tensor_write(&v[0], h, err);
    }
    if (!st)
        st = u3d_tensor_write(&v[1], h + C, err);
    if (!st)
        st = u3d_tensor_write(&b->save_mean, h, err);
    if (!st)
        st = u3d_tensor_write(&b->save_invstd, h + 2 * C, err);
    if (!st)
        st = u3d_batchnorm3d_forward_infer(&p, &b->z, g, be, &v[0], &v[1],
                                           &b->a, err);
    /* running statistics of the global batch, as the op updates them */
    u3d_tensor *rm = buf(net, b->rmean), *rv = buf(net, b->rvar);
    if (!st && rm && rv) {
        float *r = h + 2 * C;
        st = u3d_tensor_read(rm, r, err);
        for (int c = 0; !st && c < C; c++)
            r[c] = (float)((1.0 - p.momentum) * r[c] + p.momentum * mean[c]);
        if (!st)
            st = u3d_tensor_write(rm, r, err);
        if (!st)
            st = u3d_tensor_read(rv, r, err);
        for (int c = 0; !st && c < C; c++)
            r[c] = (float)((1.0 - p.momentum) * r[c] +
                           p.momentum * d[c] / (M > 1 ? M - 1 : 1));
        if (!st)
            st = u3d_tensor_write(rv, r, err);
    }
    b->bn_count = M;
    free(f);
    free(d);
    free(mean);
    free(h);
    return st;
}

/* The local backward with the global statistics gives
 * dx_l = g inv (dy - Sdy_l/M_l - xh Sdyxh_l/M_l) and this process's sums;
 * with the global sums dx differs by A_c + B_c xh per channel, added
 * through the inference formula (gamma B, beta A). */
static u3d_status sync_bn_backward(u3d_net *net, net_block *b,
                                   const u3d_tensor *dy, u3d_tensor *dz,
                                   u3d_error *err)
{
    int C = b->z.shape.c;
    u3d_tensor v[4];
    U3D_TRY(chan_scratch(net, C, v, err));
    u3d_tensor *dg = b->gamma >= 0 ? grad(net, b->gamma) : &v[0];
    u3d_tensor *db = b->beta >= 0 ? grad(net, b->beta) : &v[1];
    U3D_TRY(u3d_batchnorm3d_backward(&b->z, dy, val(net, b->gamma),
                                     &b->save_mean, &b->save_invstd, dz, dg,
                                     db, err));
    double Ml = (double)b->z.shape.n * (double)u3d_shape_spatial(b->z.shape);
    float *h = malloc(5 * (size_t)C * sizeof *h);
    double *d = malloc(2 * (size_t)C * sizeof *d);
    u3d_status st = h && d ? U3D_OK
                           : u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    /* h: sdyxh, sdy, gamma, invstd, then the outputs */
    if (!st)
        st = u3d_tensor_read(dg, h, err);
    if (!st)
        st = u3d_tensor_read(db, h + C, err);
    if (!st && b->gamma >= 0)
        st = u3d_tensor_read(val(net, b->gamma), h + 2 * C, err);
    else
        for (int c = 0; c < C; c++)
            h[2 * C + c] = 1.0f;
    if (!st)
        st = u3d_tensor_read(&b->save_invstd, h + 3 * C, err);
    if (!st) {
        for (int c = 0; c < 2 * C; c++)
            d[c] = h[c];
        st = net->hooks.bn_sum(net->hooks.ctx, d, 2 * C, err);
    }
    double M = b->bn_count;
    u3d_tensor corr;
    if (!st) {
        /* v[2] = B_c (gamma of the formula), v[3] = A_c (its beta) */
        float *A = h + 4 * C, *B = h; /* B overwrites the sums read */
        for (int c = 0; c < C; c++) {
            double gi = (double)h[2 * C + c] * h[3 * C + c];
            A[c] = (float)(gi * (h[C + c] / Ml - d[C + c] / M));
            B[c] = (float)(gi * (h[c] / Ml - d[c] / M));
        }
        st = u3d_tensor_write(&v[2], B, err);
        if (!st)
            st = u3d_tensor_write(&v[3], A, err);
    }
    /* xh from the saved statistics: mean and var with 1/sqrt(var+eps) =
     * invstd */
    if (!st) {
        u3d_bn_params p = bn_params(net);
        float *var = h + 2 * C; /* gamma no longer needed */
        for (int c = 0; c < C; c++) {
            double inv = h[3 * C + c];
            var[c] = (float)(1.0 / (inv * inv) - p.eps);
        }
        st = u3d_tensor_write(&v[1], var, err);
        if (!st)
            st = scratch(net, &net->sbn_big, &net->sbn_big_n, b->z.shape,
                         &corr, err);
        if (!st)
            st = u3d_batchnorm3d_forward_infer(&p, &b->z, &v[2], &v[3],
                                               &b->save_mean, &v[1], &corr,
                                               err);
        if (!st)
            st = u3d_axpy(1.0f, &corr, dz, err);
    }
    free(h);
    free(d);
    return st;
}

/* conv -> [BN] -> [ReLU] of one block. At inference without a batch norm
 * between them (none, or folded), the ReLU is fused into the conv's store:
 * one pass over the activations less. */
static u3d_status block_forward(u3d_net *net, net_block *b, u3d_net_mode mode,
                                u3d_error *err)
{
    u3d_conv3d_params cp = b->cp;
    int fused = mode == U3D_NET_EVAL && b->relu && (!b->bn || net->bn_folded);
    cp.relu = fused;
    cp.weights_version = mode == U3D_NET_TRAIN ? net->wversion : 0;
    U3D_TRY(u3d_conv3d_forward(&cp, b->in, val(net, b->w), val(net, b->b),
                               &b->z, err));
    if (b->bn && !net->bn_folded) {
        u3d_bn_params p = bn_params(net);
        u3d_tensor *g = val(net, b->gamma), *be = val(net, b->beta);
        if (mode == U3D_NET_TRAIN && net->hooks.bn_sum)
            U3D_TRY(sync_bn_forward(net, b, err));
        else if (mode == U3D_NET_EVAL)
            U3D_TRY(u3d_batchnorm3d_forward_infer(
                &p, &b->z, g, be, buf(net, b->rmean), buf(net, b->rvar), &b->a,
                err));
        else
            U3D_TRY(u3d_batchnorm3d_forward_train(
                &p, &b->z, g, be,
                mode == U3D_NET_TRAIN ? buf(net, b->rmean) : NULL,
                mode == U3D_NET_TRAIN ? buf(net, b->rvar) : NULL, &b->a,
                &b->save_mean, &b->save_invstd, err));
    }
    if (b->relu && !fused)
        U3D_TRY(u3d_relu_forward(&b->a, &b->a, err));
    return U3D_OK;
}

static u3d_status run_forward(u3d_net *net, u3d_net_mode mode, u3d_error *err)
{
    int L = net->cfg.levels;
    u3d_status st;
    for (int l = 0; l < L; l++) {
        if (l && (st = u3d_maxpool3d_forward(&net->enc[l - 1][1].a,
                                             &net->pool[l - 1], err)))
            return u3d_errprefix(err, "max-pool %d: ", l - 1);
        for (int i = 0; i < 2; i++)
            if ((st = block_forward(net, &net->enc[l][i], mode, err)))
                return u3d_errprefix(err, "%s: ", net->enc[l][i].name);
    }
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j;
        if ((st = u3d_upconv3d_forward(net->up_in[j], val(net, net->up_w[j]),
                                       NULL, &net->up[j], err)))
            return u3d_errprefix(err, "up_%d: ", j);
        if ((st = u3d_crop_concat_forward(&net->enc[m][1].a, &net->up[j],
                                          &net->cat[j], err)))
            return u3d_errprefix(err, "concat of decoder step %d: ", j);
        for (int i = 0; i < 2; i++)
            if ((st = block_forward(net, &net->dec[j][i], mode, err)))
                return u3d_errprefix(err, "%s: ", net->dec[j][i].name);
    }
    if ((st = block_forward(net, &net->out, mode, err)))
        return u3d_errprefix(err, "out: ");
    return U3D_OK;
}

u3d_status u3d_net_forward(u3d_net *net, const u3d_tensor *x,
                           u3d_net_mode mode, const u3d_tensor **logits,
                           u3d_error *err)
{
    char sb[96];
    *logits = NULL;
    net->fwd_train = 0;
    if (mode != U3D_NET_TRAIN && mode != U3D_NET_EVAL &&
        mode != U3D_NET_EVAL_BATCHSTATS)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "unknown network mode %d",
                          (int)mode);
    if (net->bn_folded < 0)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "folding batch norm into this network failed half "
                          "way: load the model again");
    if (net->bn_folded && mode != U3D_NET_EVAL)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "this network's batch norm is folded into its "
                          "convolutions: it runs inference with running "
                          "statistics only");
    if (!x || !x->buf || x->be != net->be || x->dtype != U3D_F32)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "network input must be a float32 tensor on the "
                          "network's backend (%s)", u3d_backend_name(net->be));
    if (x->shape.c != net->cfg.in_channels)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "network input %s has %d channels, the network "
                          "expects %d",
                          u3d_shape_str(x->shape, sb, sizeof sb), x->shape.c,
                          net->cfg.in_channels);
    int want = mode == U3D_NET_TRAIN ? NET_PLAN_TRAIN : NET_PLAN_INFER;
    /* an existing training plan serves inference of the same shape too */
    if (!net->plan || !u3d_shape_eq(net->plan_x, x->shape) ||
        (want == NET_PLAN_TRAIN && net->plan != NET_PLAN_TRAIN))
        U3D_TRY(net_plan(net, x->shape, want, err));
    net->x = *x;
    net->wversion = mode == U3D_NET_TRAIN ? ++net->wversion_seq : 0;
    U3D_TRY(run_forward(net, mode, err));
    net->fwd_train = mode == U3D_NET_TRAIN;
    *logits = &net->out.z;
    return U3D_OK;
}

/* ---- batch norm folded into the convolutions ---- */

/* Host copy of tensor t (n floats). */
static float *host_copy(const u3d_tensor *t, u3d_error *err)
{
    size_t n = u3d_shape_count(t->shape);
    float *h = malloc(n * sizeof *h);
    if (!h) {
        u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        return NULL;
    }
    if (u3d_tensor_read(t, h, err)) {
        free(h);
        return NULL;
    }
    return h;
}

/* conv -> BN(running statistics) as one conv: per output channel c,
 * s = gamma / sqrt(var + eps), w' = w s, b' = (b - mean) s + beta (in
 * double, then rounded once). */
static u3d_status fold_block(u3d_net *net, net_block *b, u3d_error *err)
{
    const u3d_tensor *tw = val(net, b->w), *tb = val(net, b->b);
    const u3d_tensor *tm = buf(net, b->rmean), *tv = buf(net, b->rvar);
    const u3d_tensor *tg = val(net, b->gamma), *tbe = val(net, b->beta);
    float *w = host_copy(tw, err), *bias = w ? host_copy(tb, err) : NULL;
    float *m = bias ? host_copy(tm, err) : NULL;
    float *v = m ? host_copy(tv, err) : NULL;
    float *g = v && tg ? host_copy(tg, err) : NULL;
    float *be = v && tbe ? host_copy(tbe, err) : NULL;
    u3d_status st = v && (!tg || g) && (!tbe || be)
                        ? U3D_OK
                        : (err && err->code ? err->code : U3D_ERR_OOM);
    size_t per = u3d_shape_count(tw->shape) / (size_t)b->cout;
    double eps = net->cfg.bn_eps;
    for (int c = 0; c < b->cout && !st; c++) {
        double s = (g ? g[c] : 1.0) / sqrt((double)v[c] + eps);
        for (size_t k = 0; k < per; k++)
            w[c * per + k] = (float)(w[c * per + k] * s);
        bias[c] = (float)(((double)bias[c] - m[c]) * s + (be ? be[c] : 0.0));
    }
    if (!st)
        st = u3d_tensor_write((u3d_tensor *)tw, w, err);
    if (!st)
        st = u3d_tensor_write((u3d_tensor *)tb, bias, err);
    free(w);
    free(bias);
    free(m);
    free(v);
    free(g);
    free(be);
    return st;
}

static u3d_status fold_all(u3d_net *net, u3d_error *err)
{
    int L = net->cfg.levels;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < 2; i++) {
            if (net->enc[l][i].bn)
                U3D_TRY(fold_block(net, &net->enc[l][i], err));
            if (l < L - 1 && net->dec[l][i].bn)
                U3D_TRY(fold_block(net, &net->dec[l][i], err));
        }
    if (net->out.bn)
        U3D_TRY(fold_block(net, &net->out, err));
    return U3D_OK;
}

u3d_status u3d_net_fold_batchnorm(u3d_net *net, u3d_error *err)
{
    if (net->bn_folded || net->cfg.bn == U3D_BN_NONE)
        return U3D_OK;
    if (net->training_ready)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "batch norm cannot be folded into a network that "
                          "is being trained");
    u3d_status st = fold_all(net, err);
    /* a failure half-way leaves some convs folded: the net is unusable */
    net->bn_folded = st ? -1 : 1;
    /* a training plan keeps BN's output apart from the conv's; the next
     * forward plans for inference, where they share a buffer */
    net_plan_free(net);
    return st;
}

/* ---- backward ---- */

void u3d_net_set_hooks(u3d_net *net, const u3d_net_hooks *hooks)
{
    if (hooks)
        net->hooks = *hooks;
    else
        memset(&net->hooks, 0, sizeof net->hooks);
}

/* Tells the grads_ready hook about up to four parameters (-1: none). */
static u3d_status grads_ready(u3d_net *net, int a, int b, int c, int d,
                              u3d_error *err)
{
    if (!net->hooks.grads_ready)
        return U3D_OK;
    int all[4] = {a, b, c, d}, idx[4], n = 0;
    for (int i = 0; i < 4; i++)
        if (all[i] >= 0)
            idx[n++] = all[i];
    return net->hooks.grads_ready(net->hooks.ctx, idx, n, err);
}

/* The gradient being propagated: a view of scratch buffer k. */
typedef struct gcur {
    int k;
    u3d_tensor t;
} gcur;

static gcur gview(const u3d_net *net, int k, u3d_shape s)
{
    gcur g = {k, net->g[k]};
    g.t.shape = s;
    return g;
}

/* Backward of one block: cur holds d(output); on return d(input) unless
 * need_dx is 0. Parameter gradients are overwritten. */
static u3d_status block_backward(u3d_net *net, net_block *b, gcur *cur,
                                 int need_dx, u3d_error *err)
{
    gcur dz = *cur;
    if (b->relu)
        U3D_TRY(u3d_relu_backward(&b->a, &cur->t, &cur->t, err));
    if (b->bn) {
        dz = gview(net, 1 - cur->k, b->z.shape);
        if (net->hooks.bn_sum)
            U3D_TRY(sync_bn_backward(net, b, &cur->t, &dz.t, err));
        else
            U3D_TRY(u3d_batchnorm3d_backward(
                &b->z, &cur->t, val(net, b->gamma), &b->save_mean,
                &b->save_invstd, &dz.t, grad(net, b->gamma),
                grad(net, b->beta), err));
    }
    U3D_TRY(u3d_conv3d_backward_weight(&b->cp, b->in, &dz.t, grad(net, b->w),
                                       grad(net, b->b), err));
    U3D_TRY(grads_ready(net, b->w, b->b, b->gamma, b->beta, err));
    if (!need_dx)
        return U3D_OK;
    *cur = gview(net, 1 - dz.k, b->in->shape);
    u3d_conv3d_params cp = b->cp;
    cp.weights_version = net->wversion; /* the forward's */
    return u3d_conv3d_backward_data(&cp, &dz.t, val(net, b->w), &cur->t, err);
}

static u3d_status decoder_backward(u3d_net *net, int j, gcur *cur,
                                   u3d_error *err)
{
    int m = net->cfg.levels - 2 - j;
    for (int i = 1; i >= 0; i--)
        if (block_backward(net, &net->dec[j][i], cur, 1, err))
            return u3d_errprefix(err, "%s backward: ", net->dec[j][i].name);
    /* the skip part waits in dskip[m] until the encoder level is reached */
    gcur dup = gview(net, 1 - cur->k, net->up[j].shape);
    if (u3d_crop_concat_backward(&cur->t, &net->dskip[m], &dup.t, 0, err))
        return u3d_errprefix(err, "concat of decoder step %d backward: ", j);
    u3d_param *w = &net->params[net->up_w[j]];
    if (u3d_upconv3d_backward_weight(net->up_in[j], &dup.t, &w->grad, NULL,
                                     err) ||
        grads_ready(net, net->up_w[j], -1, -1, -1, err))
        return u3d_errprefix(err, "up_%d backward: ", j);
    *cur = gview(net, 1 - dup.k, net->up_in[j]->shape);
    if (u3d_upconv3d_backward_data(&dup.t, &w->value, &cur->t, err))
        return u3d_errprefix(err, "up_%d backward: ", j);
    return U3D_OK;
}

static u3d_status encoder_backward(u3d_net *net, int l, gcur *cur,
                                   u3d_error *err)
{
    net_block *top = &net->enc[l][1];
    if (l < net->cfg.levels - 1) {
        /* cur: d(pooled); add the skip gradient saved by the decoder */
        gcur da = gview(net, 1 - cur->k, top->a.shape);
        if (u3d_maxpool3d_backward(&top->a, &cur->t, &da.t, err) ||
            u3d_axpy(1.0f, &net->dskip[l], &da.t, err))
            return u3d_errprefix(err, "max-pool %d backward: ", l);
        *cur = da;
    }
    for (int i = 1; i >= 0; i--)
        if (block_backward(net, &net->enc[l][i], cur, i || l, err))
            return u3d_errprefix(err, "%s backward: ", net->enc[l][i].name);
    return U3D_OK;
}

u3d_status u3d_net_backward(u3d_net *net, const u3d_tensor *dlogits,
                            u3d_error *err)
{
    char a[96], b[96];
    if (!net->fwd_train)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "network backward needs a preceding successful "
                          "forward pass in TRAIN mode");
    if (!dlogits || !dlogits->buf || dlogits->be != net->be ||
        dlogits->dtype != U3D_F32)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "dlogits must be a float32 tensor on the network's "
                          "backend");
    if (!u3d_shape_eq(dlogits->shape, net->out.z.shape))
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "dlogits has shape %s, the logits %s",
                          u3d_shape_str(dlogits->shape, a, sizeof a),
                          u3d_shape_str(net->out.z.shape, b, sizeof b));
    U3D_TRY(u3d_net_prepare_training(net, err));
    net_block *o = &net->out;
    if (u3d_conv3d_backward_weight(&o->cp, o->in, dlogits, grad(net, o->w),
                                   grad(net, o->b), err) ||
        grads_ready(net, o->w, o->b, -1, -1, err))
        return u3d_errprefix(err, "out backward: ");
    gcur cur = gview(net, 0, o->in->shape);
    if (u3d_conv3d_backward_data(&o->cp, dlogits, val(net, o->w), &cur.t, err))
        return u3d_errprefix(err, "out backward: ");
    for (int j = net->cfg.levels - 2; j >= 0; j--)
        U3D_TRY(decoder_backward(net, j, &cur, err));
    for (int l = net->cfg.levels - 1; l >= 0; l--)
        U3D_TRY(encoder_backward(net, l, &cur, err));
    return U3D_OK;
}

u3d_status u3d_net_sgd_step(u3d_net *net, const u3d_sgd_params *p,
                            u3d_error *err)
{
    U3D_TRY(u3d_net_prepare_training(net, err));
    for (int i = 0; i < net->nparams; i++) {
        u3d_param *q = &net->params[i];
        if (u3d_sgd_step(p, &q->value, &q->grad, &q->momentum, err))
            return u3d_errprefix(err, "SGD step of %s: ", q->name);
    }
    return U3D_OK;
}

u3d_status u3d_net_adam_step(u3d_net *net, const u3d_adam_params *p,
                             u3d_error *err)
{
    U3D_TRY(u3d_net_prepare_adam(net, err));
    for (int i = 0; i < net->nparams; i++) {
        u3d_param *q = &net->params[i];
        if (u3d_adam_step(p, &q->value, &q->grad, &q->momentum, &q->second,
                          err))
            return u3d_errprefix(err, "Adam step of %s: ", q->name);
    }
    return U3D_OK;
}
