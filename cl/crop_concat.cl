/* Center crop of the skip features + concatenation with the up-sampled
 * features along C (skip first). Memory-bound copies: one work-item per
 * element, lanes along W. Crop offsets (oz, oy, ox) = (skip - up) / 2 per
 * axis, computed on the host. Sizes fit in 32 bits (checked on the host). */

/* gid0 = x + W*y over the up plane, gid1 = z + D*(c + Ct*n), Ct = Cs + Cu. */
__kernel void crop_concat_forward(__global const float *skip,
                                  __global const float *up, __global float *y,
                                  const uint Cs, const uint Cu, const uint D,
                                  const uint H, const uint W, const uint Ds,
                                  const uint Hs, const uint Ws, const uint oz,
                                  const uint oy, const uint ox, const uint N)
{
    const uint Ct = Cs + Cu;
    const uint g0 = get_global_id(0), g1 = get_global_id(1);
    if (g0 >= H * W || g1 >= D * Ct * N)
        return;
    const uint r = g1 / D, z = g1 - r * D; /* r = c + Ct*n */
    const uint n = r / Ct, c = r - n * Ct;
    const uint yy = g0 / W, xx = g0 - yy * W;
    float v;
    if (c < Cs)
        v = skip[(((n * Cs + c) * Ds + z + oz) * Hs + yy + oy) * Ws + xx + ox];
    else
        v = up[((n * Cu + c - Cs) * D + z) * (H * W) + g0];
    y[g1 * (H * W) + g0] = v;
}

/* dskip from the first Cs channels of dy, one work-item per dskip voxel:
 * inside the crop window dy is written (or added when accumulate != 0);
 * outside it 0 is written, or the voxel is left alone when accumulating.
 * gid0 = x + Ws*y, gid1 = z + Ds*(c + Cs*n). */
__kernel void crop_concat_backward_skip(__global const float *dy,
                                        __global float *dskip, const uint Cs,
                                        const uint Cu, const uint D,
                                        const uint H, const uint W,
                                        const uint Ds, const uint Hs,
                                        const uint Ws, const uint oz,
                                        const uint oy, const uint ox,
                                        const uint N, const int accumulate)
{
    const uint g0 = get_global_id(0), g1 = get_global_id(1);
    if (g0 >= Hs * Ws || g1 >= Ds * Cs * N)
        return;
    const uint r = g1 / Ds, zs = g1 - r * Ds; /* r = c + Cs*n */
    const uint n = r / Cs, c = r - n * Cs;
    const uint ys = g0 / Ws, xs = g0 - ys * Ws;
    const uint i = g1 * (Hs * Ws) + g0;
    /* unsigned wrap-around makes voxels before the window fail the test */
    const uint z = zs - oz, yy = ys - oy, xx = xs - ox;
    if (z < D && yy < H && xx < W) {
        const float g =
            dy[((n * (Cs + Cu) + c) * D + z) * (H * W) + yy * W + xx];
        dskip[i] = accumulate ? dskip[i] + g : g;
    } else if (!accumulate) {
        dskip[i] = 0.0f;
    }
}

/* dup = the last Cu channels of dy: per sample a contiguous slab copy.
 * gid0 = element within the sample's slab, gid1 = n. */
__kernel void crop_concat_backward_up(__global const float *dy,
                                      __global float *dup, const uint Cs,
                                      const uint Cu, const uint P,
                                      const uint N)
{
    const uint g0 = get_global_id(0), n = get_global_id(1);
    if (g0 >= Cu * P || n >= N)
        return;
    dup[n * (Cu * P) + g0] = dy[(n * (Cs + Cu) + Cs) * P + g0];
}
