/* Max-pool 2x2x2 stride 2, floor mode. The window is scanned d-major, then
 * h, then w; a voxel becomes the maximum when it is greater than the current
 * one or NaN (PyTorch's rule: ties go to the first maximum, NaN propagates).
 * Planes are indexed as nc * D*H*W; sizes fit in 32 bits (checked on the
 * host). */

/* Index within the window (dz*4 + dy*2 + dx) of its maximum; *m gets it. */
int window_argmax(__global const float *p, const uint H, const uint W,
                         float *m)
{
    int best = 0;
    float v[8];
    for (int dz = 0; dz < 2; dz++)
        for (int dy = 0; dy < 2; dy++) {
            /* vload2: two neighbours along W in one (unaligned-safe) load */
            float2 r = vload2(0, p + (dz * H + dy) * W);
            v[dz * 4 + dy * 2] = r.s0;
            v[dz * 4 + dy * 2 + 1] = r.s1;
        }
    float mx = -INFINITY;
    for (int i = 0; i < 8; i++)
        if (v[i] > mx || isnan(v[i])) {
            mx = v[i];
            best = i;
        }
    *m = mx;
    return best;
}

/* One work-item per output voxel: gid0 = ox + Wo*oy, gid1 = oz + Do*nc. */
__kernel void maxpool3d_forward(__global const float *x, __global float *y,
                                const uint D, const uint H, const uint W,
                                const uint NC)
{
    const uint Do = D / 2, Ho = H / 2, Wo = W / 2;
    const uint g0 = get_global_id(0), g1 = get_global_id(1);
    if (g0 >= Ho * Wo || g1 >= Do * NC)
        return;
    const uint oy = g0 / Wo, ox = g0 - oy * Wo;
    const uint nc = g1 / Do, oz = g1 - nc * Do;
    __global const float *p =
        x + nc * (D * H * W) + ((2 * oz) * H + 2 * oy) * W + 2 * ox;
    float m;
    window_argmax(p, H, W, &m);
    y[g1 * (Ho * Wo) + g0] = m;
}

/* One work-item per window of the ceil-mode tiling, so every dx voxel is
 * written by exactly one work-item: a full window routes dy to its maximum
 * and zeroes the other seven; a partial window at an odd trailing edge
 * (dropped by floor mode) zeroes its voxels. gid0 = ox + Wc*oy,
 * gid1 = oz + Dc*nc over the ceil sizes Dc, Hc, Wc. */
__kernel void maxpool3d_backward(__global const float *x,
                                 __global const float *dy,
                                 __global float *dx, const uint D, const uint H,
                                 const uint W, const uint NC)
{
    const uint Do = D / 2, Ho = H / 2, Wo = W / 2;
    const uint Dc = (D + 1) / 2, Hc = (H + 1) / 2, Wc = (W + 1) / 2;
    const uint g0 = get_global_id(0), g1 = get_global_id(1);
    if (g0 >= Hc * Wc || g1 >= Dc * NC)
        return;
    const uint oy = g0 / Wc, ox = g0 - oy * Wc;
    const uint nc = g1 / Dc, oz = g1 - nc * Dc;
    const uint off = nc * (D * H * W) + ((2 * oz) * H + 2 * oy) * W + 2 * ox;
    if (oz < Do && oy < Ho && ox < Wo) {
        float m;
        const int best = window_argmax(x + off, H, W, &m);
        const float g = dy[(nc * Do + oz) * (Ho * Wo) + oy * Wo + ox];
        for (int dz = 0; dz < 2; dz++)
            for (int dy_ = 0; dy_ < 2; dy_++) {
                const int i = dz * 4 + dy_ * 2;
                float2 r = (float2)(best == i ? g : 0.0f,
                                    best == i + 1 ? g : 0.0f);
                vstore2(r, 0, dx + off + (dz * H + dy_) * W);
            }
        return;
    }
    for (uint dz = 0; dz < 2; dz++)
        for (uint dy_ = 0; dy_ < 2; dy_++)
            for (uint dx_ = 0; dx_ < 2; dx_++)
                if (2 * oz + dz < D && 2 * oy + dy_ < H && 2 * ox + dx_ < W)
                    dx[off + (dz * H + dy_) * W + dx_] = 0.0f;
}
