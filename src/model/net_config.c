/* 3D U-Net configuration: presets, checks and description (no device
 * needed). The sizes and counts derived from it are in geometry.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/model.h"

int u3d_net_kernel(const u3d_net_config *cfg, int l, int a)
{
    int k = cfg->kernel[l][a];
    return k ? k : 3;
}

int u3d_net_pool(const u3d_net_config *cfg, int l, int a)
{
    int f = cfg->pool[l][a];
    return f ? f : 2;
}

int u3d_net_is_anisotropic(const u3d_net_config *cfg)
{
    for (int l = 0; l < cfg->levels && l < U3D_NET_MAX_LEVELS; l++)
        for (int a = 0; a < 3; a++)
            if (u3d_net_kernel(cfg, l, a) != 3 ||
                (l < cfg->levels - 1 && u3d_net_pool(cfg, l, a) != 2))
                return 1;
    return 0;
}

/* A list of DxHxW entries into v (n of them, or one for all); each value
 * in {lo, hi}. */
static u3d_status parse_sizes(const char *what, const char *list, int n,
                              int lo, int hi, int v[][3], u3d_error *err)
{
    int got = 0, e[U3D_NET_MAX_LEVELS][3];
    const char *p = list ? list : "";
    while (*p && got < U3D_NET_MAX_LEVELS) {
        for (int a = 0; a < 3; a++) {
            char *end;
            long x = strtol(p, &end, 10);
            char want = a < 2 ? 'x' : 0;
            if (end == p || (x != lo && x != hi) ||
                (want ? *end != want : (*end && *end != ',')))
                return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                                  "%s '%s': want D x H x W entries of %d or "
                                  "%d, comma separated "
                                  "(e.g. %dx%dx%d,%dx%dx%d)",
                                  what, list ? list : "", lo, hi, lo, hi, hi,
                                  hi, hi, hi);
            e[got][a] = (int)x;
            p = *end ? end + 1 : end;
        }
        got++;
    }
    if (*p || (got != 1 && got != n))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s '%s': %d entr%s for %d level%s; give %d (or one "
                          "for all)",
                          what, list ? list : "", got, got == 1 ? "y" : "ies",
                          n, n == 1 ? "" : "s", n);
    for (int i = 0; i < n; i++)
        memcpy(v[i], e[got == 1 ? 0 : i], sizeof e[0]);
    return U3D_OK;
}

u3d_status u3d_net_set_kernels(u3d_net_config *cfg, const char *list,
                               u3d_error *err)
{
    int v[U3D_NET_MAX_LEVELS][3];
    U3D_TRY(u3d_net_config_check(cfg, err));
    U3D_TRY(parse_sizes("--kernels", list, cfg->levels, 1, 3, v, err));
    memcpy(cfg->kernel, v, sizeof v[0] * (size_t)cfg->levels);
    return U3D_OK;
}

u3d_status u3d_net_set_pools(u3d_net_config *cfg, const char *list,
                             u3d_error *err)
{
    int v[U3D_NET_MAX_LEVELS][3];
    U3D_TRY(u3d_net_config_check(cfg, err));
    if (cfg->levels < 2)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--pools: a 1-level network does not pool");
    U3D_TRY(parse_sizes("--pools", list, cfg->levels - 1, 1, 2, v, err));
    memcpy(cfg->pool, v, sizeof v[0] * (size_t)(cfg->levels - 1));
    return U3D_OK;
}

void u3d_net_set_2d(u3d_net_config *cfg)
{
    for (int l = 0; l < U3D_NET_MAX_LEVELS; l++) {
        cfg->kernel[l][0] = 1;
        cfg->kernel[l][1] = cfg->kernel[l][2] = 3;
        cfg->pool[l][0] = 1;
        cfg->pool[l][1] = cfg->pool[l][2] = 2;
    }
}

void u3d_net_plan_spacing(u3d_net_config *cfg, const double spacing[3])
{
    double sz = spacing[0];
    double s = spacing[1] < spacing[2] ? spacing[1] : spacing[2];
    int flat = 1; /* once a level is isotropic, every deeper one is too */
    for (int l = 0; l < U3D_NET_MAX_LEVELS; l++) {
        flat = flat && sz > 2.0 * s;
        cfg->kernel[l][0] = flat ? 1 : 3;
        cfg->kernel[l][1] = cfg->kernel[l][2] = 3;
        cfg->pool[l][0] = flat ? 1 : 2;
        cfg->pool[l][1] = cfg->pool[l][2] = 2;
        s *= 2.0; /* the in-plane spacing below the pool */
        if (!flat)
            sz *= 2.0;
    }
}

const char *u3d_net_aniso_str(const u3d_net_config *cfg, char *buf,
                              size_t len)
{
    if (!u3d_net_is_anisotropic(cfg)) {
        snprintf(buf, len, "isotropic (3x3x3 convs, 2x2x2 pooling)");
        return buf;
    }
    size_t used = 0;
    used += (size_t)snprintf(buf, len, "kernels ");
    for (int l = 0; l < cfg->levels && used < len; l++)
        used += (size_t)snprintf(buf + used, len - used, "%s%dx%dx%d",
                                 l ? "," : "", u3d_net_kernel(cfg, l, 0),
                                 u3d_net_kernel(cfg, l, 1),
                                 u3d_net_kernel(cfg, l, 2));
    if (used < len && cfg->levels > 1)
        used += (size_t)snprintf(buf + used, len - used, ", pools ");
    for (int l = 0; l < cfg->levels - 1 && used < len; l++)
        used += (size_t)snprintf(buf + used, len - used, "%s%dx%dx%d",
                                 l ? "," : "", u3d_net_pool(cfg, l, 0),
                                 u3d_net_pool(cfg, l, 1),
                                 u3d_net_pool(cfg, l, 2));
    return buf;
}

static const struct {
    const char *name;
    u3d_net_config cfg;
} presets[] = {
    /* Cicek et al. 2016: BN without scale/shift, as their parameter count */
    {"paper",
     {.levels = 4, .base_channels = 32, .in_channels = 3, .classes = 3,
      .padding = U3D_PAD_VALID, .bn = U3D_BN_PLAIN,
      .bn_eps = 1e-5f, .bn_momentum = 0.1f}},
    /* trains in minutes on a CPU: ~11 GMAC forward for a 92^3 patch */
    {"small",
     {.levels = 3, .base_channels = 8, .in_channels = 1, .classes = 2,
      .padding = U3D_PAD_VALID, .bn = U3D_BN_AFFINE,
      .bn_eps = 1e-5f, .bn_momentum = 0.1f}},
    /* the unet3d_tiny golden case */
    {"tiny",
     {.levels = 3, .base_channels = 4, .in_channels = 2, .classes = 3,
      .padding = U3D_PAD_VALID, .bn = U3D_BN_AFFINE,
      .bn_eps = 1e-5f, .bn_momentum = 0.1f}},
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
    for (int l = 0; l < U3D_NET_MAX_LEVELS; l++)
        for (int a = 0; a < 3; a++) {
            int k = c->kernel[l][a], f = c->pool[l][a];
            if (k != 0 && k != 1 && k != 3)
                return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                                  "level %d: kernel %d along %c; want 3 or 1",
                                  l, k, "DHW"[a]);
            if (f != 0 && f != 1 && f != 2)
                return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                                  "level %d: pooling %d along %c; want 2 or 1",
                                  l, f, "DHW"[a]);
        }
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
    if (u3d_net_is_anisotropic(c)) {
        size_t used = strlen(buf);
        if (used + 2 < len) {
            snprintf(buf + used, len - used, ", ");
            u3d_net_aniso_str(c, buf + used + 2, len - used - 2);
        }
    }
    return buf;
}
