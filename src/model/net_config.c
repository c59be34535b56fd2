/* 3D U-Net configuration: presets, checks, sizes, parameter counts and
 * memory estimates (no device needed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/net_internal.h"

static const struct {
    const char *name;
    u3d_net_config cfg;
} presets[] = {
    /* Cicek et al. 2016: BN without scale/shift, as their parameter count */
    {"paper", {4, 32, 3, 3, U3D_PAD_VALID, U3D_BN_PLAIN, 1e-5f, 0.1f}},
    /* trains in minutes on a CPU: ~11 GMAC forward for a 92^3 patch */
    {"small", {3, 8, 1, 2, U3D_PAD_VALID, U3D_BN_AFFINE, 1e-5f, 0.1f}},
    /* the unet3d_tiny golden case */
    {"tiny", {3, 4, 2, 3, U3D_PAD_VALID, U3D_BN_AFFINE, 1e-5f, 0.1f}},
};

const char *u3d_net_preset_names(void) { return "paper, small, tiny"; }

u3d_status u3d_net_preset(const char *name, u3d_net_config *cfg,
                          u3d_error *err)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (name && !strcmp(name, presets[i].name)) {
            *cfg = presets[i].cfg;
            return U3D_OK;
        }
    return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                      "unknown network preset '%s'; known presets: %s",
                      name ? name : "(null)", u3d_net_preset_names());
}

u3d_status u3d_net_config_check(const u3d_net_config *c, u3d_error *err)
{
    if (!c)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "no network configuration");
    if (c->levels < 1 || c->levels > U3D_NET_MAX_LEVELS)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "levels must be 1..%d, got %d", U3D_NET_MAX_LEVELS,
                          c->levels);
    /* the widest layer has f*2^levels channels; keep it far from overflow */
    if (c->base_channels < 1 ||
        (long long)c->base_channels << c->levels > 65536)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "base channels must be >= 1 with base*2^levels <= "
                          "65536, got %d at %d levels",
                          c->base_channels, c->levels);
    if (c->in_channels < 1 || c->in_channels > 65536)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "input channels must be 1..65536, got %d",
                          c->in_channels);
    if (c->classes < 1 || c->classes > 65536)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "classes must be 1..65536, got %d", c->classes);
    if (c->padding != U3D_PAD_VALID && c->padding != U3D_PAD_SAME)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "padding must be valid or same");
    if (c->bn != U3D_BN_NONE && c->bn != U3D_BN_PLAIN && c->bn != U3D_BN_AFFINE)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "batch-norm mode must be none, plain or affine");
    if (c->bn != U3D_BN_NONE &&
        (!(c->bn_eps > 0.0f) || !(c->bn_momentum >= 0.0f) ||
         c->bn_momentum > 1.0f))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "batch norm needs eps > 0 and momentum in [0,1] "
                          "(got %g, %g)",
                          c->bn_eps, c->bn_momentum);
    return U3D_OK;
}

const char *u3d_net_config_str(const u3d_net_config *c, char *buf, size_t len)
{
    static const char *bn[] = {"no batch norm",
                               "batch norm without scale/shift",
                               "batch norm with scale/shift"};
    snprintf(buf, len,
             "%d levels, base channels %d, %d input channel%s, %d classes, "
             "%s convolutions, %s",
             c->levels, c->base_channels, c->in_channels,
             c->in_channels == 1 ? "" : "s", c->classes,
             c->padding == U3D_PAD_SAME ? "same" : "valid",
             (unsigned)c->bn <= 2 ? bn[c->bn] : "?");
    return buf;
}

/* Walks one axis through the network; fails where a conv leaves nothing,
 * a max-pool sees an odd size, or an up-sampled map outgrows its skip. */
int net_axis_trace(const u3d_net_config *cfg, int in, net_axis *s, char *why,
                   size_t len)
{
    int L = cfg->levels, shrink = cfg->padding == U3D_PAD_SAME ? 0 : 2;
    int v = in;
    s->in = in;
    if (in < 1) {
        snprintf(why, len, "size %d is not positive", in);
        return 0;
    }
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < 2; i++) {
            v -= shrink;
            if (v < 1) {
                snprintf(why, len, "nothing is left after conv %d of encoder "
                         "level %d (too small)", i + 1, l);
                return 0;
            }
            s->enc[l][i] = v;
        }
        if (l < L - 1) {
            if (v % 2) {
                snprintf(why, len, "the max-pool after encoder level %d sees "
                         "the odd size %d", l, v);
                return 0;
            }
            v /= 2;
            s->pool[l] = v;
        }
    }
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j;
        v *= 2;
        s->up[j] = v;
        if (v > s->enc[m][1]) {
            snprintf(why, len, "decoder step %d (%d) is larger than its skip "
                     "features (%d)", j, v, s->enc[m][1]);
            return 0;
        }
        for (int i = 0; i < 2; i++) {
            v -= shrink;
            if (v < 1) {
                snprintf(why, len, "nothing is left after conv %d of decoder "
                         "step %d (too small)", i + 1, j);
                return 0;
            }
            s->dec[j][i] = v;
        }
    }
    s->out = v;
    return 1;
}

int u3d_net_valid_size(const u3d_net_config *cfg, int size, int *below,
                       int *above)
{
    net_axis s;
    char why[8];
    *below = *above = 0;
    if (u3d_net_config_check(cfg, NULL))
        return 0;
    for (int t = size - 1; t >= 1; t--)
        if (net_axis_trace(cfg, t, &s, why, sizeof why)) {
            *below = t;
            break;
        }
    /* valid sizes repeat with period 2^(levels-1); the bound covers inputs
     * far below the smallest valid size too */
    int limit = (size > 0 ? size : 0) + (8 << cfg->levels) + 64;
    for (int t = size + 1; t <= limit; t++)
        if (net_axis_trace(cfg, t, &s, why, sizeof why)) {
            *above = t;
            break;
        }
    return size >= 1 && net_axis_trace(cfg, size, &s, why, sizeof why);
}

u3d_status u3d_net_output_size(const u3d_net_config *cfg, const int in[3],
                               int out[3], u3d_error *err)
{
    static const char axis[3] = {'D', 'H', 'W'};
    u3d_status st = u3d_net_config_check(cfg, err);
    if (st)
        return st;
    char msg[sizeof err->msg] = "";
    size_t used = 0;
    for (int a = 0; a < 3; a++) {
        net_axis s;
        char why[160];
        if (net_axis_trace(cfg, in[a], &s, why, sizeof why)) {
            out[a] = s.out;
            continue;
        }
        int lo, hi;
        u3d_net_valid_size(cfg, in[a], &lo, &hi);
        char near[64];
        if (lo)
            snprintf(near, sizeof near, "%d or %d", lo, hi);
        else
            snprintf(near, sizeof near, "%d (the smallest)", hi);
        used += (size_t)snprintf(msg + used, sizeof msg - used,
                                 "%s%c=%d: %s; nearest valid %c: %s",
                                 used ? "; " : "", axis[a], in[a], why,
                                 axis[a], near);
        if (used >= sizeof msg)
            used = sizeof msg - 1;
    }
    if (used)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "input %dx%dx%d (D x H x W) does not fit a %d-level "
                          "U-Net with %s convolutions: %s",
                          in[0], in[1], in[2], cfg->levels,
                          cfg->padding == U3D_PAD_SAME ? "same" : "valid", msg);
    return U3D_OK;
}

size_t u3d_net_param_count(const u3d_net_config *c, int count_bn_affine)
{
    if (u3d_net_config_check(c, NULL))
        return 0;
    size_t f = (size_t)c->base_channels, n = 0, bn = 0;
    int L = c->levels;
    for (int l = 0; l < L; l++) {
        size_t cin = l ? f << l : (size_t)c->in_channels;
        size_t c1 = f << l, c2 = f << (l + 1);
        n += cin * c1 * 27 + c1 + c1 * c2 * 27 + c2;
        bn += c1 + c2;
    }
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j;
        size_t s = f << (m + 1), up = f << (m + 2);
        n += up * up * 8 + (s + up) * s * 27 + s + s * s * 27 + s;
        bn += 2 * s;
    }
    n += 2 * f * (size_t)c->classes + (size_t)c->classes;
    if (count_bn_affine && c->bn != U3D_BN_NONE)
        n += 2 * bn;
    return n;
}

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
    u3d_net *net = calloc(1, sizeof *net);
    if (!net)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    net_layout(net, cfg);
    u3d_shape xs = u3d_shape5(batch, cfg->in_channels, in[0], in[1], in[2]);
    st = net_plan(net, xs, NET_PLAN_TRAIN, err);
    m->train_acts = net->plan_bytes;
    net_plan_free(net);
    if (!st)
        st = net_plan(net, xs, NET_PLAN_INFER, err);
    m->infer_acts = net->plan_bytes;
    net_plan_free(net);
    m->params = net_param_bytes(net);
    m->grads = 2 * net_learnable_bytes(net);
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
