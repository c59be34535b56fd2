/* The network's geometry (see geometry.h): the layer list, sizes along an
 * axis, valid input sizes, the context margin, the parameter count and the
 * backend's convolution scratch. No device needed. */
#include <stdio.h>
#include <string.h>
#include "model/geometry.h"
#include "core/backend_impl.h"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static int add(net_geom *g, net_op op, net_part part, int stage, int in,
               int cin, int cout)
{
    net_layer *y = &g->l[g->n];
    memset(y, 0, sizeof *y);
    y->op = op;
    y->part = part;
    y->stage = stage;
    y->in = in;
    y->skip = -1;
    y->cin = cin;
    y->cout = cout;
    return g->n++;
}

/* conv k^3 (same-padded when k > 1 and cfg says so), named as the
 * reference implementation names its parameters. */
static int add_conv(net_geom *g, net_part part, int stage, int i, int in,
                    int cin, int cout, int k)
{
    static const char *pfx[] = {"enc", "dec"};
    int n = add(g, NET_CONV, part, stage, in, cin, cout);
    net_layer *y = &g->l[n];
    y->i = i;
    y->k = k;
    y->pad = k > 1 && g->cfg.padding == U3D_PAD_SAME ? (k - 1) / 2 : 0;
    if (part == NET_OUT) {
        snprintf(y->name, sizeof y->name, "out");
        return n;
    }
    y->bn = y->relu = 1;
    snprintf(y->name, sizeof y->name, "%s_%d_%d", pfx[part], stage, 2 * i);
    snprintf(y->bn_name, sizeof y->bn_name, "%s_%d_%d", pfx[part], stage,
             2 * i + 1);
    return n;
}

void net_geometry(const u3d_net_config *cfg, net_geom *g)
{
    int L = cfg->levels, f = cfg->base_channels, last = -1;
    int skip[NET_MAXL];
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    /* encoder level l: conv -> f 2^l, conv -> f 2^(l+1), pool */
    for (int l = 0; l < L; l++) {
        int cin = l ? f << l : cfg->in_channels;
        last = add_conv(g, NET_ENC, l, 0, last, cin, f << l, 3);
        last = add_conv(g, NET_ENC, l, 1, last, f << l, f << (l + 1), 3);
        skip[l] = last;
        if (l < L - 1)
            last = add(g, NET_POOL, NET_ENC, l, last, f << (l + 1),
                       f << (l + 1));
    }
    /* decoder step j, matching encoder level m = L-2-j: up-conv keeping
     * the f 2^(m+2) channels, concat with the skip's f 2^(m+1), two convs
     * to the skip's channel count */
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j, s = f << (m + 1), up = f << (m + 2);
        last = add(g, NET_UP, NET_DEC, j, last, up, up);
        snprintf(g->l[last].name, sizeof g->l[last].name, "up_%d", j);
        last = add(g, NET_CAT, NET_DEC, j, last, up, s + up);
        g->l[last].skip = skip[m];
        last = add_conv(g, NET_DEC, j, 0, last, s + up, s, 3);
        last = add_conv(g, NET_DEC, j, 1, last, s, s, 3);
    }
    add_conv(g, NET_OUT, 0, 0, last, 2 * f, cfg->classes, 1);
}

static const char *where(const net_layer *y)
{
    return y->part == NET_ENC ? "encoder level" : "decoder step";
}

int net_trace(const net_geom *g, int in, int size[NET_MAXLAYERS], char *why,
              size_t len)
{
    if (in < 1) {
        snprintf(why, len, "size %d is not positive", in);
        return 0;
    }
    if (in > U3D_NET_MAX_INPUT) {
        snprintf(why, len, "size %d is above the %d voxels per axis a "
                 "network input can have", in, U3D_NET_MAX_INPUT);
        return 0;
    }
    for (int i = 0; i < g->n; i++) {
        const net_layer *y = &g->l[i];
        int v = y->in < 0 ? in : size[y->in];
        switch (y->op) {
        case NET_CONV:
            v += 2 * y->pad - y->k + 1;
            if (v < 1) {
                snprintf(why, len, "nothing is left after conv %d of %s %d "
                         "(too small)", y->i + 1, where(y), y->stage);
                return 0;
            }
            break;
        case NET_POOL:
            if (v % 2) {
                snprintf(why, len, "the max-pool after encoder level %d sees "
                         "the odd size %d", y->stage, v);
                return 0;
            }
            v /= 2;
            break;
        case NET_UP:
            v *= 2;
            break;
        case NET_CAT:
            if (v > size[y->skip]) {
                snprintf(why, len, "decoder step %d (%d) is larger than its "
                         "skip features (%d)", y->stage, v, size[y->skip]);
                return 0;
            }
            break;
        }
        size[i] = v;
    }
    return 1;
}

int net_axis_trace(const u3d_net_config *cfg, int in, net_axis *s, char *why,
                   size_t len)
{
    net_geom g;
    int size[NET_MAXLAYERS];
    net_geometry(cfg, &g);
    s->in = in;
    if (!net_trace(&g, in, size, why, len))
        return 0;
    for (int i = 0; i < g.n; i++) {
        const net_layer *y = &g.l[i];
        if (y->op == NET_POOL)
            s->pool[y->stage] = size[i];
        else if (y->op == NET_UP)
            s->up[y->stage] = size[i];
        else if (y->op == NET_CONV && y->part == NET_ENC)
            s->enc[y->stage][y->i] = size[i];
        else if (y->op == NET_CONV && y->part == NET_DEC)
            s->dec[y->stage][y->i] = size[i];
        else if (y->op == NET_CONV)
            s->out = size[i];
    }
    return 1;
}

/* Nearest valid sizes of g around size (see u3d_net_valid_size). */
static int valid_size(const net_geom *g, int size, int *below, int *above)
{
    int s[NET_MAXLAYERS];
    char why[8];
    *below = *above = 0;
    if (size > U3D_NET_MAX_INPUT)
        size = U3D_NET_MAX_INPUT + 1; /* the nearest valid ones are below */
    /* valid sizes repeat with period 2^(levels-1): the nearest ones lie
     * within span; the bound covers inputs far below the smallest valid
     * size too */
    int span = (8 << g->cfg.levels) + 64;
    for (int t = size - 1; t >= 1 && t >= size - span; t--)
        if (net_trace(g, t, s, why, sizeof why)) {
            *below = t;
            break;
        }
    int limit = (size > 0 ? size : 0) + span;
    for (int t = size + 1; t <= limit; t++)
        if (net_trace(g, t, s, why, sizeof why)) {
            *above = t;
            break;
        }
    return size >= 1 && net_trace(g, size, s, why, sizeof why);
}

int u3d_net_valid_size(const u3d_net_config *cfg, int size, int *below,
                       int *above)
{
    net_geom g;
    *below = *above = 0;
    if (u3d_net_config_check(cfg, NULL))
        return 0;
    net_geometry(cfg, &g);
    return valid_size(&g, size, below, above);
}

u3d_status u3d_net_output_size(const u3d_net_config *cfg, const int in[3],
                               int out[3], u3d_error *err)
{
    static const char axis[3] = {'D', 'H', 'W'};
    u3d_status st = u3d_net_config_check(cfg, err);
    if (st)
        return st;
    net_geom g;
    net_geometry(cfg, &g);
    char msg[sizeof err->msg] = "";
    size_t used = 0;
    for (int a = 0; a < 3; a++) {
        int size[NET_MAXLAYERS];
        char why[160];
        if (net_trace(&g, in[a], size, why, sizeof why)) {
            out[a] = size[g.n - 1];
            continue;
        }
        int lo, hi;
        valid_size(&g, in[a], &lo, &hi);
        char near[64];
        if (lo && hi)
            snprintf(near, sizeof near, "%d or %d", lo, hi);
        else if (lo)
            snprintf(near, sizeof near, "%d (the largest)", lo);
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

/* Width of the band next to a tile border whose values differ from the
 * whole-volume pass in a same-padded net (level-0 voxels): every conv
 * widens it by its kernel's reach at its level; pools halve it (rounding
 * up, tiles start on the pooling grid), up-convs double it; a concat
 * takes the wider of skip and up path. */
static int same_band(const net_geom *g)
{
    int band[NET_MAXLAYERS], b = 0;
    for (int i = 0; i < g->n; i++) {
        const net_layer *y = &g->l[i];
        b = y->in < 0 ? 0 : band[y->in];
        if (y->op == NET_CONV)
            b += (y->k - 1) / 2;
        else if (y->op == NET_POOL)
            b = (b + 1) / 2;
        else if (y->op == NET_UP)
            b *= 2;
        else if (band[y->skip] > b)
            b = band[y->skip];
        band[i] = b;
    }
    return b;
}

int u3d_net_context(const u3d_net_config *cfg)
{
    if (u3d_net_config_check(cfg, NULL))
        return 0;
    net_geom g;
    net_geometry(cfg, &g);
    if (cfg->padding == U3D_PAD_SAME) {
        int P = 1 << (cfg->levels - 1);
        return ceil_div(same_band(&g), P) * P;
    }
    /* the smallest valid input */
    int lo, hi, size[NET_MAXLAYERS];
    char why[8];
    int t = valid_size(&g, 1, &lo, &hi) ? 1 : hi;
    if (!t || !net_trace(&g, t, size, why, sizeof why))
        return 0;
    return (t - size[g.n - 1]) / 2;
}

size_t u3d_net_param_count(const u3d_net_config *c, int count_bn_affine)
{
    if (u3d_net_config_check(c, NULL))
        return 0;
    net_geom g;
    net_geometry(c, &g);
    size_t n = 0, bn = 0;
    for (int i = 0; i < g.n; i++) {
        const net_layer *y = &g.l[i];
        size_t cin = (size_t)y->cin, cout = (size_t)y->cout;
        if (y->op == NET_CONV) {
            n += cin * cout * (size_t)(y->k * y->k * y->k) + cout;
            if (y->bn)
                bn += cout;
        } else if (y->op == NET_UP) {
            n += cin * cout * 8;
        }
    }
    if (count_bn_affine && c->bn != U3D_BN_NONE)
        n += 2 * bn;
    return n;
}

size_t u3d_net_backend_scratch(u3d_backend *be, const u3d_net_config *cfg,
                               int batch, const int in[3])
{
    if (!be || !be->ops->conv3d_scratch_bytes ||
        u3d_net_config_check(cfg, NULL))
        return 0;
    net_geom g;
    int size[3][NET_MAXLAYERS];
    char why[8];
    net_geometry(cfg, &g);
    for (int a = 0; a < 3; a++)
        if (!net_trace(&g, in[a], size[a], why, sizeof why))
            return 0;
    u3d_conv3d_params p[NET_MAXLAYERS];
    u3d_shape x[NET_MAXLAYERS], w[NET_MAXLAYERS];
    int n = 0;
    for (int i = 0; i < g.n; i++) {
        const net_layer *y = &g.l[i];
        if (y->op != NET_CONV)
            continue;
        int s[3];
        for (int a = 0; a < 3; a++)
            s[a] = y->in < 0 ? in[a] : size[a][y->in];
        p[n] = (u3d_conv3d_params){.kernel = y->k, .pad = y->pad};
        x[n] = u3d_shape5(batch, y->cin, s[0], s[1], s[2]);
        w[n] = u3d_shape5(y->cout, y->cin, y->k, y->k, y->k);
        n++;
    }
    return be->ops->conv3d_scratch_bytes(be, n, p, x, w);
}

double u3d_net_forward_flops(const u3d_net_config *cfg, const int in[3])
{
    if (u3d_net_config_check(cfg, NULL))
        return 0;
    net_geom g;
    net_geometry(cfg, &g);
    int size[3][NET_MAXLAYERS];
    char why[8];
    for (int a = 0; a < 3; a++)
        if (!net_trace(&g, in[a], size[a], why, sizeof why))
            return 0;
    double flops = 0;
    for (int i = 0; i < g.n; i++) {
        const net_layer *y = &g.l[i];
        double vox = (double)size[0][i] * size[1][i] * size[2][i];
        if (y->op == NET_CONV) /* per output voxel: cin * k^3 MACs each */
            flops += 2.0 * y->cin * y->cout * y->k * y->k * y->k * vox;
        else if (y->op == NET_UP) /* per output voxel: cin MACs each */
            flops += 2.0 * y->cin * y->cout * vox;
    }
    return flops;
}
