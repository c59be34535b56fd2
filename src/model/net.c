/* 3D U-Net object: layout (from the layers of geometry.c), parameters,
 * initialisation, activation planning and the memory estimate that
 * planning gives. Forward/backward are in net_pass.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/net_internal.h"
#include "unet3d/rng.h"

static u3d_shape chan(int c) { return u3d_shape5(1, c, 1, 1, 1); }

static int add_entry(u3d_param *tab, int *n, int max, u3d_shape s,
                     int learnable, const char *fmt, const char *pfx,
                     const char *suffix)
{
    if (*n >= max)
        return -1; /* cannot happen within U3D_NET_MAX_LEVELS */
    u3d_param *p = &tab[*n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, fmt, pfx, suffix);
    p->value.shape = p->grad.shape = p->momentum.shape = p->second.shape = s;
    p->learnable = learnable;
    return (*n)++;
}

static int add_param(u3d_net *net, const char *pfx, const char *suffix,
                     u3d_shape s)
{
    return add_entry(net->params, &net->nparams, NET_MAXP, s, 1, "%s_%s", pfx,
                     suffix);
}

static int add_buf(u3d_net *net, const char *pfx, const char *suffix,
                   u3d_shape s)
{
    return add_entry(net->bufs, &net->nbufs, NET_MAXB, s, 0, "%s_%s", pfx,
                     suffix);
}

/* The block of conv layer y. */
static net_block *block_of(u3d_net *net, const net_layer *y)
{
    if (y->part == NET_ENC)
        return &net->enc[y->stage][y->i];
    if (y->part == NET_DEC)
        return &net->dec[y->stage][y->i];
    return &net->out;
}

/* The view that will hold the output of layer i (-1: the input). */
static const u3d_tensor *output_of(u3d_net *net, const net_geom *g, int i)
{
    if (i < 0)
        return &net->x;
    const net_layer *y = &g->l[i];
    switch (y->op) {
    case NET_CONV:
        return &block_of(net, y)->a;
    case NET_POOL:
        return &net->pool[y->stage];
    case NET_UP:
        return &net->up[y->stage];
    default:
        return &net->cat[y->stage];
    }
}

/* The block of conv layer y: its conv parameters, then (with BN) the
 * BN's. */
static void layout_block(u3d_net *net, const net_geom *g, const net_layer *y)
{
    const u3d_net_config *c = &net->cfg;
    net_block *b = block_of(net, y);
    int cout = y->cout;
    snprintf(b->name, sizeof b->name, "%s", y->name);
    b->cp = net_conv_params(y);
    b->cin = y->cin;
    b->cout = cout;
    b->relu = y->relu;
    b->bn = y->bn && c->bn != U3D_BN_NONE;
    b->in = output_of(net, g, y->in);
    b->w = add_param(net, y->name, "weight",
                     u3d_shape5(cout, y->cin, y->k[0], y->k[1], y->k[2]));
    b->b = add_param(net, y->name, "bias", chan(cout));
    b->gamma = b->beta = b->rmean = b->rvar = -1;
    if (!b->bn)
        return;
    if (c->bn == U3D_BN_AFFINE) {
        b->gamma = add_param(net, y->bn_name, "weight", chan(cout));
        b->beta = add_param(net, y->bn_name, "bias", chan(cout));
    }
    b->rmean = add_buf(net, y->bn_name, "running_mean", chan(cout));
    b->rvar = add_buf(net, y->bn_name, "running_var", chan(cout));
    b->save_mean.shape = b->save_invstd.shape = chan(cout);
}

void net_layout(u3d_net *net, const u3d_net_config *cfg)
{
    net_geom g;
    net_geometry(cfg, &g);
    net->cfg = *cfg;
    net->nparams = net->nbufs = 0;
    /* parameters in the reference order: encoder convs, up-convs, then
     * decoder convs and the output conv */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < g.n; i++) {
            const net_layer *y = &g.l[i];
            int order = y->op == NET_UP ? 1 : y->part == NET_ENC ? 0 : 2;
            if (order != pass)
                continue;
            if (y->op == NET_CONV)
                layout_block(net, &g, y);
            if (y->op != NET_UP)
                continue;
            /* (Cin, Cout, fd, fh, fw) as PyTorch's ConvTranspose3d */
            net->up_w[y->stage] =
                add_param(net, y->name, "weight",
                          u3d_shape5(y->cin, y->cout, y->f[0], y->f[1],
                                     y->f[2]));
            net->up_in[y->stage] = output_of(net, &g, y->in);
        }
}

/* Every block of the network, for loops that do not care about order. */
static int all_blocks(u3d_net *net, net_block **out)
{
    int n = 0;
    for (int l = 0; l < net->cfg.levels; l++) {
        out[n++] = &net->enc[l][0];
        out[n++] = &net->enc[l][1];
    }
    for (int j = 0; j < net->cfg.levels - 1; j++) {
        out[n++] = &net->dec[j][0];
        out[n++] = &net->dec[j][1];
    }
    out[n++] = &net->out;
    return n;
}

size_t net_learnable_bytes(const u3d_net *net)
{
    size_t n = 0;
    for (int i = 0; i < net->nparams; i++)
        n += 4 * u3d_shape_count(net->params[i].value.shape);
    return n;
}

size_t net_param_bytes(const u3d_net *net)
{
    size_t n = 0;
    for (int i = 0; i < net->nbufs; i++)
        n += 4 * u3d_shape_count(net->bufs[i].value.shape);
    /* the saved mean/invstd of each BN layer match its running mean/var */
    return net_learnable_bytes(net) + 2 * n;
}

/* ---- activation plans ---- */

typedef struct plan_ctx {
    u3d_net *net;
    size_t wb_count[2];              /* elements of each work buffer */
    u3d_tensor *pend[NET_MAXOWN];    /* views into work buffers */
    int pend_wb[NET_MAXOWN];
    int npend;
} plan_ctx;

static u3d_tensor empty_view(const u3d_net *net, u3d_shape s)
{
    u3d_tensor t = {s, U3D_F32, net->be, NULL};
    return t;
}

/* A buffer of its own for view (counted only without a backend). */
static u3d_status own(plan_ctx *pc, u3d_shape s, u3d_tensor *view,
                      u3d_error *err)
{
    u3d_net *net = pc->net;
    u3d_tensor *t = &net->owned[net->nowned];
    *t = empty_view(net, s);
    if (net->be) {
        u3d_status st = u3d_tensor_create(net->be, s, U3D_F32, t, err);
        if (st)
            return st;
    }
    net->nowned++;
    net->plan_bytes += 4 * u3d_shape_count(s);
    if (4 * u3d_shape_count(s) > net->plan_largest)
        net->plan_largest = 4 * u3d_shape_count(s);
    if (view)
        *view = *t;
    return U3D_OK;
}

/* Records that work buffer wb must hold s; view (may be NULL) will point
 * into it once the work buffers exist. */
static void work(plan_ctx *pc, int wb, u3d_shape s, u3d_tensor *view)
{
    size_t n = u3d_shape_count(s);
    if (n > pc->wb_count[wb])
        pc->wb_count[wb] = n;
    if (!view)
        return;
    *view = empty_view(pc->net, s);
    pc->pend[pc->npend] = view;
    pc->pend_wb[pc->npend++] = wb;
}

/* Allocates the work buffers and points the recorded views into them. */
static u3d_status finish_work(plan_ctx *pc, u3d_tensor *wb_out[2],
                              u3d_error *err)
{
    u3d_net *net = pc->net;
    for (int k = 0; k < 2; k++) {
        size_t n = pc->wb_count[k];
        if (!n)
            continue;
        if (n > 0x7fffffff)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "an activation of %zu elements is too large; "
                              "use smaller patches or tiles", n);
        u3d_tensor *t = &net->owned[net->nowned];
        u3d_status st = own(pc, u3d_shape5(1, 1, 1, 1, (int)n), NULL, err);
        if (st)
            return st;
        if (wb_out)
            *wb_out[k] = *t;
        for (int i = 0; i < pc->npend; i++)
            if (pc->pend_wb[i] == k)
                pc->pend[i]->buf = t->buf;
    }
    return U3D_OK;
}

typedef struct plan_shapes {
    net_axis ax[3];
    int n;
} plan_shapes;

#define SHP(ps, c, field)                                                      \
    u3d_shape5((ps)->n, (c), (ps)->ax[0].field, (ps)->ax[1].field,             \
               (ps)->ax[2].field)

/* Training: every tensor backward reads gets its own buffer; up-conv
 * outputs (consumed by the concat) and all gradients live in two scratch
 * buffers. */
static u3d_status plan_train(plan_ctx *pc, const plan_shapes *ps,
                             u3d_error *err)
{
    u3d_net *net = pc->net;
    int L = net->cfg.levels;
    u3d_status st = U3D_OK;
#define OWN(s, v)                                                              \
    do {                                                                       \
        if ((st = own(pc, (s), (v), err)))                                     \
            return st;                                                         \
        work(pc, 0, (s), NULL);                                                \
        work(pc, 1, (s), NULL);                                                \
    } while (0)
    for (int l = 0; l < L; l++) {
        if (l)
            OWN(SHP(ps, net->enc[l - 1][1].cout, pool[l - 1]),
                &net->pool[l - 1]);
        for (int i = 0; i < 2; i++) {
            net_block *b = &net->enc[l][i];
            OWN(SHP(ps, b->cout, enc[l][i]), &b->z);
            if (b->bn)
                OWN(b->z.shape, &b->a);
            else
                b->a = b->z;
        }
    }
    for (int j = 0; j < L - 1; j++) {
        int upc = net->params[net->up_w[j]].value.shape.c;
        int m = L - 2 - j;
        work(pc, 0, SHP(ps, upc, up[j]), &net->up[j]);
        work(pc, 1, SHP(ps, upc, up[j]), NULL);
        OWN(SHP(ps, upc + net->enc[m][1].cout, up[j]), &net->cat[j]);
        for (int i = 0; i < 2; i++) {
            net_block *b = &net->dec[j][i];
            OWN(SHP(ps, b->cout, dec[j][i]), &b->z);
            if (b->bn)
                OWN(b->z.shape, &b->a);
            else
                b->a = b->z;
        }
    }
    OWN(SHP(ps, net->cfg.classes, out), &net->out.z);
    net->out.a = net->out.z;
    for (int m = 0; m < L - 1; m++)
        OWN(net->enc[m][1].z.shape, &net->dskip[m]);
#undef OWN
    u3d_tensor *g[2] = {&net->g[0], &net->g[1]};
    return finish_work(pc, g, err);
}

/* One conv block of the lean inference plan. cur is the work buffer
 * holding the input (-1: elsewhere); skip: the output must survive as a
 * skip connection (own buffer). BN and ReLU run in place on the conv
 * output (both are elementwise on every backend), so a block needs its
 * input and one output buffer, not two: at the first level of a valid
 * net that is a third less memory per tile. Returns the new cur. */
static int infer_block(plan_ctx *pc, net_block *b, u3d_shape s, int cur,
                       int skip, u3d_status *st, u3d_error *err)
{
    if (skip) {
        *st = own(pc, s, &b->z, err);
        b->a = b->z;
        return -1;
    }
    int zb = cur == 0 ? 1 : 0;
    work(pc, zb, s, &b->z);
    work(pc, zb, s, &b->a);
    return zb;
}

/* Inference: only skip features get buffers of their own; everything else
 * alternates between two work buffers. */
static u3d_status plan_infer(plan_ctx *pc, const plan_shapes *ps,
                             u3d_error *err)
{
    u3d_net *net = pc->net;
    int L = net->cfg.levels, cur = -1;
    u3d_status st = U3D_OK;
    for (int l = 0; l < L && !st; l++) {
        if (l) {
            work(pc, 0, SHP(ps, net->enc[l - 1][1].cout, pool[l - 1]),
                 &net->pool[l - 1]);
            cur = 0;
        }
        cur = infer_block(pc, &net->enc[l][0],
                          SHP(ps, net->enc[l][0].cout, enc[l][0]), cur, 0, &st,
                          err);
        if (!st)
            cur = infer_block(pc, &net->enc[l][1],
                              SHP(ps, net->enc[l][1].cout, enc[l][1]), cur,
                              l < L - 1, &st, err);
    }
    for (int j = 0; j < L - 1 && !st; j++) {
        int upc = net->params[net->up_w[j]].value.shape.c;
        int m = L - 2 - j, upb = cur == 0 ? 1 : 0;
        work(pc, upb, SHP(ps, upc, up[j]), &net->up[j]);
        work(pc, 1 - upb, SHP(ps, upc + net->enc[m][1].cout, up[j]),
             &net->cat[j]);
        cur = 1 - upb;
        for (int i = 0; i < 2 && !st; i++)
            cur = infer_block(pc, &net->dec[j][i],
                              SHP(ps, net->dec[j][i].cout, dec[j][i]), cur, 0,
                              &st, err);
    }
    if (!st)
        st = own(pc, SHP(ps, net->cfg.classes, out), &net->out.z, err);
    net->out.a = net->out.z;
    return st ? st : finish_work(pc, NULL, err);
}

void net_plan_free(u3d_net *net)
{
    for (int i = 0; i < net->nowned; i++)
        u3d_tensor_release(&net->owned[i]);
    net_block *blocks[4 * NET_MAXL + 1];
    int nb = all_blocks(net, blocks);
    for (int i = 0; i < nb; i++) {
        memset(&blocks[i]->z, 0, sizeof blocks[i]->z);
        memset(&blocks[i]->a, 0, sizeof blocks[i]->a);
    }
    memset(net->pool, 0, sizeof net->pool);
    memset(net->up, 0, sizeof net->up);
    memset(net->cat, 0, sizeof net->cat);
    memset(net->dskip, 0, sizeof net->dskip);
    memset(net->g, 0, sizeof net->g);
    net->nowned = 0;
    net->plan = NET_PLAN_NONE;
    net->plan_bytes = 0;
    net->plan_largest = 0;
    net->fwd_train = 0;
}

u3d_status net_plan(u3d_net *net, u3d_shape x, int kind, u3d_error *err)
{
    plan_shapes ps;
    int in[3] = {x.d, x.h, x.w}, out[3];
    u3d_status st = u3d_net_output_size(&net->cfg, in, out, err);
    if (st)
        return st;
    net_plan_free(net);
    ps.n = x.n;
    for (int a = 0; a < 3; a++) {
        char why[8];
        net_axis_trace(&net->cfg, a, in[a], &ps.ax[a], why, sizeof why);
    }
    plan_ctx pc;
    memset(&pc, 0, sizeof pc);
    pc.net = net;
    st = kind == NET_PLAN_TRAIN ? plan_train(&pc, &ps, err)
                                : plan_infer(&pc, &ps, err);
    if (st) {
        net_plan_free(net);
        return u3d_errprefix(err, "allocating activations for input %dx%dx%d"
                             "x%dx%d: ", x.n, x.c, x.d, x.h, x.w);
    }
    net->plan = kind;
    net->plan_x = x;
    return U3D_OK;
}

/* ---- creation, access ---- */

static u3d_status alloc_entry(u3d_backend *be, u3d_param *p, u3d_error *err)
{
    u3d_status st = u3d_tensor_create(be, p->value.shape, U3D_F32, &p->value,
                                      err);
    if (st)
        return u3d_errprefix(err, "%s: ", p->name);
    return U3D_OK;
}

/* Constant parts of the initialisation: biases, beta, running mean 0;
 * gamma, running var 1 (tensor_create already zeroed). */
static u3d_status set_constants(u3d_net *net, u3d_error *err)
{
    net_block *blocks[4 * NET_MAXL + 1];
    int nb = all_blocks(net, blocks);
    u3d_status st = U3D_OK;
    for (int i = 0; i < nb && !st; i++) {
        net_block *b = blocks[i];
        st = u3d_tensor_fill(&net->params[b->b].value, 0.0f, err);
        if (!st && b->gamma >= 0)
            st = u3d_tensor_fill(&net->params[b->gamma].value, 1.0f, err);
        if (!st && b->beta >= 0)
            st = u3d_tensor_fill(&net->params[b->beta].value, 0.0f, err);
        if (!st && b->rmean >= 0)
            st = u3d_tensor_fill(&net->bufs[b->rmean].value, 0.0f, err);
        if (!st && b->rvar >= 0)
            st = u3d_tensor_fill(&net->bufs[b->rvar].value, 1.0f, err);
    }
    return st;
}

u3d_status u3d_net_create(u3d_backend *be, const u3d_net_config *cfg,
                          u3d_net **out, u3d_error *err)
{
    *out = NULL;
    if (!be)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "no backend given");
    u3d_status st = u3d_net_config_check(cfg, err);
    if (st)
        return st;
    u3d_net *net = calloc(1, sizeof *net);
    if (!net)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    net_layout(net, cfg);
    net->be = be;
    for (int i = 0; i < net->nparams && !st; i++)
        st = alloc_entry(be, &net->params[i], err);
    for (int i = 0; i < net->nbufs && !st; i++)
        st = alloc_entry(be, &net->bufs[i], err);
    net_block *blocks[4 * NET_MAXL + 1];
    int nb = all_blocks(net, blocks);
    for (int i = 0; i < nb && !st; i++)
        if (blocks[i]->bn) {
            u3d_shape cs = blocks[i]->save_mean.shape;
            st = u3d_tensor_create(be, cs, U3D_F32, &blocks[i]->save_mean, err);
            if (!st)
                st = u3d_tensor_create(be, cs, U3D_F32, &blocks[i]->save_invstd,
                                       err);
        }
    if (!st)
        st = set_constants(net, err);
    if (st) {
        u3d_net_destroy(net);
        return u3d_errprefix(err, "creating the network: ");
    }
    *out = net;
    return U3D_OK;
}

static void release_entry(u3d_param *p)
{
    u3d_tensor_release(&p->value);
    u3d_tensor_release(&p->grad);
    u3d_tensor_release(&p->momentum);
    u3d_tensor_release(&p->second);
}

void u3d_net_destroy(u3d_net *net)
{
    if (!net)
        return;
    net_plan_free(net);
    for (int i = 0; i < net->nparams; i++)
        release_entry(&net->params[i]);
    for (int i = 0; i < net->nbufs; i++)
        release_entry(&net->bufs[i]);
    net_block *blocks[4 * NET_MAXL + 1];
    int nb = all_blocks(net, blocks);
    for (int i = 0; i < nb; i++) {
        u3d_tensor_release(&blocks[i]->save_mean);
        u3d_tensor_release(&blocks[i]->save_invstd);
    }
    u3d_tensor_release(&net->sbn_big);
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(&net->sbn_c[i]);
    free(net);
}

const u3d_net_config *u3d_net_get_config(const u3d_net *net)
{
    return &net->cfg;
}

u3d_backend *u3d_net_backend(const u3d_net *net) { return net->be; }
int u3d_net_num_params(const u3d_net *net) { return net->nparams; }
int u3d_net_num_buffers(const u3d_net *net) { return net->nbufs; }

u3d_param *u3d_net_param(u3d_net *net, int i)
{
    return i >= 0 && i < net->nparams ? &net->params[i] : NULL;
}

u3d_param *u3d_net_buffer(u3d_net *net, int i)
{
    return i >= 0 && i < net->nbufs ? &net->bufs[i] : NULL;
}

u3d_param *u3d_net_find(u3d_net *net, const char *name)
{
    for (int i = 0; i < net->nparams; i++)
        if (!strcmp(net->params[i].name, name))
            return &net->params[i];
    for (int i = 0; i < net->nbufs; i++)
        if (!strcmp(net->bufs[i].name, name))
            return &net->bufs[i];
    return NULL;
}

void u3d_net_free_activations(u3d_net *net)
{
    if (net)
        net_plan_free(net);
}

size_t u3d_net_activation_bytes(const u3d_net *net)
{
    return net->plan_bytes;
}

u3d_status u3d_net_prepare_training(u3d_net *net, u3d_error *err)
{
    if (net->training_ready)
        return U3D_OK;
    for (int i = 0; i < net->nparams; i++) {
        u3d_param *p = &net->params[i];
        u3d_status st = U3D_OK;
        if (!p->grad.buf)
            st = u3d_tensor_create(net->be, p->value.shape, U3D_F32, &p->grad,
                                   err);
        if (!st && !p->momentum.buf)
            st = u3d_tensor_create(net->be, p->value.shape, U3D_F32,
                                   &p->momentum, err);
        if (st)
            return u3d_errprefix(err, "gradient buffers of %s: ", p->name);
    }
    net->training_ready = 1;
    return U3D_OK;
}

u3d_status u3d_net_prepare_adam(u3d_net *net, u3d_error *err)
{
    U3D_TRY(u3d_net_prepare_training(net, err));
    for (int i = 0; i < net->nparams; i++) {
        u3d_param *p = &net->params[i];
        if (!p->second.buf &&
            u3d_tensor_create(net->be, p->value.shape, U3D_F32, &p->second,
                              err))
            return u3d_errprefix(err, "Adam's buffers of %s: ", p->name);
    }
    return U3D_OK;
}

/* ---- initialisation ---- */

/* Uniform in (0, 1]: never 0, so log() in Box-Muller is finite. */
static double unif(uint64_t *s)
{
    return ((u3d_splitmix64(s) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

/* He-normal weights of one tensor; an own stream per parameter index so a
 * value does not depend on the other parameters' sizes. */
static u3d_status he_normal(u3d_param *p, int index, uint64_t seed,
                            double fan_in, u3d_error *err)
{
    size_t n = u3d_shape_count(p->value.shape);
    float *h = malloc(n * sizeof *h);
    if (!h)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    uint64_t s = seed ^ (0xd1b54a32d192ed03ULL * (uint64_t)(index + 1));
    double sd = sqrt(2.0 / fan_in);
    for (size_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(unif(&s))), t = 6.283185307179586 * unif(&s);
        h[i] = (float)(sd * r * cos(t));
        if (i + 1 < n)
            h[i + 1] = (float)(sd * r * sin(t));
    }
    u3d_status st = u3d_tensor_write(&p->value, h, err);
    free(h);
    return st;
}

u3d_status u3d_net_init(u3d_net *net, uint64_t seed, u3d_error *err)
{
    u3d_status st = set_constants(net, err);
    net_block *blocks[4 * NET_MAXL + 1];
    int nb = all_blocks(net, blocks);
    for (int i = 0; i < nb && !st; i++) {
        net_block *b = blocks[i];
        int k[3], pad[3];
        u3d_conv3d_axes(&b->cp, k, pad);
        double fan_in = (double)b->cin * k[0] * k[1] * k[2];
        st = he_normal(&net->params[b->w], b->w, seed, fan_in, err);
    }
    for (int j = 0; j < net->cfg.levels - 1 && !st; j++) {
        u3d_param *p = &net->params[net->up_w[j]];
        /* stride = kernel: each output voxel sees one tap per channel */
        st = he_normal(p, net->up_w[j], seed, p->value.shape.n, err);
    }
    if (st)
        return u3d_errprefix(err, "initialising the network: ");
    return U3D_OK;
}

/* ---- memory estimate: the activation plans without a device ---- */

u3d_status u3d_net_memory(const u3d_net_config *cfg, int batch,
                          const int in[3], u3d_net_mem *m, u3d_error *err)
{
    int out[3];
    memset(m, 0, sizeof *m);
    u3d_status st = u3d_net_output_size(cfg, in, out, err);
    if (st)
        return st;
    if (batch < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "batch must be >= 1, got %d", batch);
    /* a bound on the byte counts below, in double: valid sizes up to
     * U3D_NET_MAX_INPUT per axis would overflow size_t */
    double widest = 6.0 * cfg->base_channels + cfg->in_channels + cfg->classes;
    if ((double)in[0] * in[1] * in[2] * batch * widest * 4 * 64 > 0x1p62)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "input %dx%dx%d (D x H x W), batch %d: far beyond "
                          "any device's memory", in[0], in[1], in[2], batch);
    u3d_net *net = calloc(1, sizeof *net);
    if (!net)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    net_layout(net, cfg);
    u3d_shape xs = u3d_shape5(batch, cfg->in_channels, in[0], in[1], in[2]);
    st = net_plan(net, xs, NET_PLAN_TRAIN, err);
    m->train_acts = net->plan_bytes;
    m->train_largest = net->plan_largest;
    net_plan_free(net);
    if (!st)
        st = net_plan(net, xs, NET_PLAN_INFER, err);
    m->infer_acts = net->plan_bytes;
    m->infer_largest = net->plan_largest;
    net_plan_free(net);
    m->params = net_param_bytes(net);
    m->grads = 2 * net_learnable_bytes(net);
    m->adam = net_learnable_bytes(net);
    free(net);
    if (st)
        return st;
    size_t vin = (size_t)in[0] * in[1] * in[2];
    size_t vout = (size_t)out[0] * out[1] * out[2];
    m->infer_io = 4 * (size_t)batch * cfg->in_channels * vin;
    m->train_io = m->infer_io + 4 * (size_t)batch * vout * (1 + cfg->classes);
    m->train_total = m->params + m->grads + m->train_acts + m->train_io;
    m->infer_total = m->params + m->infer_acts + m->infer_io;
    return U3D_OK;
}
