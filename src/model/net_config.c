/* 3D U-Net configuration: presets, checks and description (no device
 * needed). The sizes and counts derived from it are in geometry.c. */
#include <stdio.h>
#include <string.h>
#include "unet3d/model.h"

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
