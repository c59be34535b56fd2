/* 3D U-Net forward and backward passes and the SGD step, all through the
 * operations of ops.h so they run on every backend. */
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

/* conv -> [BN] -> [ReLU] of one block. */
static u3d_status block_forward(u3d_net *net, net_block *b, u3d_net_mode mode,
                                u3d_error *err)
{
    U3D_TRY(u3d_conv3d_forward(&b->cp, b->in, val(net, b->w), val(net, b->b),
                               &b->z, err));
    if (b->bn) {
        u3d_bn_params p = bn_params(net);
        u3d_tensor *g = val(net, b->gamma), *be = val(net, b->beta);
        if (mode == U3D_NET_EVAL)
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
    if (b->relu)
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
    U3D_TRY(run_forward(net, mode, err));
    net->fwd_train = mode == U3D_NET_TRAIN;
    *logits = &net->out.z;
    return U3D_OK;
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
        U3D_TRY(u3d_batchnorm3d_backward(
            &b->z, &cur->t, val(net, b->gamma), &b->save_mean, &b->save_invstd,
            &dz.t, grad(net, b->gamma), grad(net, b->beta), err));
    }
    U3D_TRY(u3d_conv3d_backward_weight(&b->cp, b->in, &dz.t, grad(net, b->w),
                                       grad(net, b->b), err));
    U3D_TRY(grads_ready(net, b->w, b->b, b->gamma, b->beta, err));
    if (!need_dx)
        return U3D_OK;
    *cur = gview(net, 1 - dz.k, b->in->shape);
    return u3d_conv3d_backward_data(&b->cp, &dz.t, val(net, b->w), &cur->t,
                                    err);
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
