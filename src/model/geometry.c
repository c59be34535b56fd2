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

/* conv k[0] x k[1] x k[2] (same-padded along the axes where k > 1 when cfg
 * says so), named as the reference implementation names its parameters. */
static int add_conv(net_geom *g, net_part part, int stage, int i, int in,
                    int cin, int cout, const int k[3])
{
    static const char *pfx[] = {"enc", "dec"};
    int n = add(g, NET_CONV, part, stage, in, cin, cout);
    net_layer *y = &g->l[n];
    y->i = i;
    for (int a = 0; a < 3; a++) {
        y->k[a] = k[a];
        y->pad[a] = k[a] > 1 && g->cfg.padding == U3D_PAD_SAME
                        ? (k[a] - 1) / 2
                        : 0;
    }
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

u3d_conv3d_params net_conv_params(const net_layer *y)
{
    if (y->k[0] == y->k[1] && y->k[1] == y->k[2] && y->pad[0] == y->pad[1] &&
        y->pad[1] == y->pad[2]) {
        u3d_conv3d_params p = {.kernel = y->k[0], .pad = y->pad[0]};
        return p;
    }
    return u3d_conv3d_params3(y->k, y->pad, 0);
}

/* Level l's conv kernel and pooling factor. */
static void level_sizes(const u3d_net_config *cfg, int l, int k[3], int f[3])
{
    for (int a = 0; a < 3; a++) {
        k[a] = u3d_net_kernel(cfg, l, a);
        f[a] = u3d_net_pool(cfg, l, a);
    }
}

void net_geometry(const u3d_net_config *cfg, net_geom *g)
{
    int L = cfg->levels, f = cfg->base_channels, last = -1;
    int skip[NET_MAXL], k[3], fac[3];
    static const int k1[3] = {1, 1, 1};
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    /* encoder level l: conv -> f 2^l, conv -> f 2^(l+1), pool */
    for (int l = 0; l < L; l++) {
        int cin = l ? f << l : cfg->in_channels;
        level_sizes(cfg, l, k, fac);
        last = add_conv(g, NET_ENC, l, 0, last, cin, f << l, k);
        last = add_conv(g, NET_ENC, l, 1, last, f << l, f << (l + 1), k);
        skip[l] = last;
        if (l < L - 1) {
            last = add(g, NET_POOL, NET_ENC, l, last, f << (l + 1),
                       f << (l + 1));
            memcpy(g->l[last].f, fac, sizeof fac);
        }
    }
    /* decoder step j, matching encoder level m = L-2-j: up-conv keeping
     * the f 2^(m+2) channels, concat with the skip's f 2^(m+1), two convs
     * to the skip's channel count */
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j, s = f << (m + 1), up = f << (m + 2);
        level_sizes(cfg, m, k, fac);
        last = add(g, NET_UP, NET_DEC, j, last, up, up);
        memcpy(g->l[last].f, fac, sizeof fac);
        snprintf(g->l[last].name, sizeof g->l[last].name, "up_%d", j);
        last = add(g, NET_CAT, NET_DEC, j, last, up, s + up);
        g->l[last].skip = skip[m];
        last = add_conv(g, NET_DEC, j, 0, last, s + up, s, k);
        last = add_conv(g, NET_DEC, j, 1, last, s, s, k);
    }
    add_conv(g, NET_OUT, 0, 0, last, 2 * f, cfg->classes, k1);
}

static const char *where(const net_layer *y)
{
    return y->part == NET_ENC ? "encoder level" : "decoder step";
}

int net_trace(const net_geom *g, int a, int in, int size[NET_MAXLAYERS],
              char *why, size_t len)
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
            v += 2 * y->pad[a] - y->k[a] + 1;
            if (v < 1) {
                snprintf(why, len, "nothing is left after conv %d of %s %d "
                         "(too small)", y->i + 1, where(y), y->stage);
                return 0;
            }
            break;
        case NET_POOL:
            if (v % y->f[a]) {
                snprintf(why, len, "the max-pool after encoder level %d sees "
                         "the odd size %d", y->stage, v);
                return 0;
            }
            v /= y->f[a];
            break;
        case NET_UP:
            v *= y->f[a];
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

int net_axis_trace(const u3d_net_config *cfg, int a, int in, net_axis *s,
                   char *why, size_t len)
{
    net_geom g;
    int size[NET_MAXLAYERS];
    net_geometry(cfg, &g);
    s->in = in;
    if (!net_trace(&g, a, in, size, why, len))
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

/* Nearest valid sizes of g around size along axis a (see
 * u3d_net_valid_size). */
static int valid_size(const net_geom *g, int a, int size, int *below,
                      int *above)
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
        if (net_trace(g, a, t, s, why, sizeof why)) {
            *below = t;
            break;
        }
    int limit = (size > 0 ? size : 0) + span;
    for (int t = size + 1; t <= limit; t++)
        if (net_trace(g, a, t, s, why, sizeof why)) {
            *above = t;
            break;
        }
    return size >= 1 && net_trace(g, a, size, s, why, sizeof why);
}

int u3d_net_valid_size_axis(const u3d_net_config *cfg, int a, int size,
                            int *below, int *above)
{
    net_geom g;
    *below = *above = 0;
    if (a < 0 || a > 2 || u3d_net_config_check(cfg, NULL))
        return 0;
    net_geometry(cfg, &g);
    return valid_size(&g, a, size, below, above);
}

int u3d_net_valid_size(const u3d_net_config *cfg, int size, int *below,
                       int *above)
{
    return u3d_net_valid_size_axis(cfg, 2, size, below, above);
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
        if (net_trace(&g, a, in[a], size, why, sizeof why)) {
            out[a] = size[g.n - 1];
            continue;
        }
        int lo, hi;
        valid_size(&g, a, in[a], &lo, &hi);
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
 * whole-volume pass in a same-padded net (level-0 voxels), along axis a:
 * every conv widens it by its kernel's reach at its level; pools divide it
 * by their factor (rounding up, tiles start on the pooling grid), up-convs
 * multiply it back; a concat takes the wider of skip and up path. */
static int same_band(const net_geom *g, int a)
{
    int band[NET_MAXLAYERS], b = 0;
    for (int i = 0; i < g->n; i++) {
        const net_layer *y = &g->l[i];
        b = y->in < 0 ? 0 : band[y->in];
        if (y->op == NET_CONV)
            b += (y->k[a] - 1) / 2;
        else if (y->op == NET_POOL)
            b = ceil_div(b, y->f[a]);
        else if (y->op == NET_UP)
            b *= y->f[a];
        else if (band[y->skip] > b)
            b = band[y->skip];
        band[i] = b;
    }
    return b;
}

/* The pooling period along axis a: the product of the pool factors. */
static int period(const u3d_net_config *cfg, int a)
{
    int P = 1;
    for (int l = 0; l < cfg->levels - 1; l++)
        P *= u3d_net_pool(cfg, l, a);
    return P;
}

int u3d_net_context_axis(const u3d_net_config *cfg, int a)
{
    if (a < 0 || a > 2 || u3d_net_config_check(cfg, NULL))
        return 0;
    net_geom g;
    net_geometry(cfg, &g);
    if (cfg->padding == U3D_PAD_SAME) {
        int P = period(cfg, a);
        return ceil_div(same_band(&g, a), P) * P;
    }
    /* the smallest valid input */
    int lo, hi, size[NET_MAXLAYERS];
    char why[8];
    int t = valid_size(&g, a, 1, &lo, &hi) ? 1 : hi;
    if (!t || !net_trace(&g, a, t, size, why, sizeof why))
        return 0;
    return (t - size[g.n - 1]) / 2;
}

int u3d_net_context(const u3d_net_config *cfg)
{
    int m = 0;
    for (int a = 0; a < 3; a++) {
        int c = u3d_net_context_axis(cfg, a);
        m = c > m ? c : m;
    }
    return m;
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
            n += cin * cout * (size_t)(y->k[0] * y->k[1] * y->k[2]) + cout;
            if (y->bn)
                bn += cout;
        } else if (y->op == NET_UP) {
            n += cin * cout * (size_t)(y->f[0] * y->f[1] * y->f[2]);
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
        if (!net_trace(&g, a, in[a], size[a], why, sizeof why))
            return 0;
    u3d_conv3d_params p[NET_MAXLAYERS];
    u3d_shape x[NET_MAXLAYERS], w[NET_MAXLAYERS];
    u3d_shape ux[NET_MAXLAYERS], uw[NET_MAXLAYERS];
    int n = 0, nu = 0;
    for (int i = 0; i < g.n; i++) {
        const net_layer *y = &g.l[i];
        if (y->op != NET_CONV && y->op != NET_UP)
            continue;
        int s[3];
        for (int a = 0; a < 3; a++)
            s[a] = y->in < 0 ? in[a] : size[a][y->in];
        if (y->op == NET_UP) {
            ux[nu] = u3d_shape5(batch, y->cin, s[0], s[1], s[2]);
            uw[nu++] = u3d_shape5(y->cin, y->cout, y->f[0], y->f[1], y->f[2]);
            continue;
        }
        p[n] = net_conv_params(y);
        x[n] = u3d_shape5(batch, y->cin, s[0], s[1], s[2]);
        w[n] = u3d_shape5(y->cout, y->cin, y->k[0], y->k[1], y->k[2]);
        n++;
    }
    size_t up = be->ops->upconv3d_scratch_bytes
                    ? be->ops->upconv3d_scratch_bytes(be, nu, ux, uw)
                    : 0;
    return be->ops->conv3d_scratch_bytes(be, n, p, x, w) + up;
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
        if (!net_trace(&g, a, in[a], size[a], why, sizeof why))
            return 0;
    double flops = 0;
    for (int i = 0; i < g.n; i++) {
        const net_layer *y = &g.l[i];
        double vox = (double)size[0][i] * size[1][i] * size[2][i];
        if (y->op == NET_CONV) /* per output voxel: cin * kd kh kw MACs */
            flops += 2.0 * y->cin * y->cout * y->k[0] * y->k[1] * y->k[2] *
                     vox;
        else if (y->op == NET_UP) /* per output voxel: cin MACs each */
            flops += 2.0 * y->cin * y->cout * vox;
    }
    return flops;
}
