/* Overlap-tile geometry and the choice of the tile size from a memory
 * budget (no device needed). See include/unet3d/predict.h. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "runtime/cl_runtime.h"
#include "unet3d/predict.h"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }
static int period(const u3d_net_config *c) { return 1 << (c->levels - 1); }

/* Width of the band next to a tile border whose values differ from the
 * whole-volume pass in a same-padded net (level-0 voxels): every padded
 * conv widens it by one voxel of its level; pools halve it (rounding up,
 * tiles start on the pooling grid), up-convs double it; a concat takes the
 * wider of skip and up path. */
static int same_band(const u3d_net_config *c)
{
    int L = c->levels, b = 0, skip[U3D_NET_MAX_LEVELS];
    for (int l = 0; l < L; l++) {
        b += 2;
        skip[l] = b;
        if (l < L - 1)
            b = (b + 1) / 2;
    }
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j;
        b *= 2;
        if (skip[m] > b)
            b = skip[m];
        b += 2;
    }
    return b;
}

static int smallest_valid(const u3d_net_config *c)
{
    int lo, hi;
    if (u3d_net_valid_size(c, 1, &lo, &hi))
        return 1;
    return hi;
}

int u3d_net_context(const u3d_net_config *cfg)
{
    if (u3d_net_config_check(cfg, NULL))
        return 0;
    if (cfg->padding == U3D_PAD_SAME) {
        int P = period(cfg);
        return ceil_div(same_band(cfg), P) * P;
    }
    int t = smallest_valid(cfg), in[3] = {t, t, t}, out[3];
    if (!t || u3d_net_output_size(cfg, in, out, NULL))
        return 0;
    return (t - out[0]) / 2;
}

int u3d_predict_min_size(const u3d_net_config *cfg)
{
    if (cfg->padding == U3D_PAD_SAME)
        return period(cfg);
    int m = u3d_net_context(cfg);
    return m > 1 ? m : 1;
}

void u3d_tile_axis_get(const u3d_tile_axis *a, int k, int *origin,
                       int *keep_lo, int *keep_hi)
{
    if (!a->same) {
        *origin = k * a->step - a->context;
        *keep_lo = k * a->step;
        *keep_hi = *keep_lo + a->step < a->size ? *keep_lo + a->step : a->size;
        return;
    }
    int P = a->step, c = a->context, N = a->size; /* see axis_same */
    (void)P;
    if (a->ntiles == 1) {
        *origin = 0;
        *keep_lo = 0;
        *keep_hi = a->size;
        return;
    }
    int stride = a->in - 2 * c;
    int padded = ceil_div(N, a->offset_pad_unit(a)) ; /* placeholder */
    (void)padded;
    *origin = 0;
    *keep_lo = *keep_hi = 0;
}
