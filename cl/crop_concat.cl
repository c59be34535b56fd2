/* Center crop of the skip features + concatenation with the up-sampled
 * features along C (skip first). Memory-bound copies: work-items move
 * groups of VW consecutive floats of a row along W (build option
 * -DVW=1|2|4|8|16) with vector loads and stores (lanes along W, so GPU
 * accesses coalesce); the floats after the last whole vector of a range go
 * one at a time. Crop offsets (oz, oy, ox) = (skip - up) / 2 per
 * axis, computed on the host. Sizes fit in 32 bits (checked on the host). */
#include "vector_width.h"

/* The skip channels of y. Each work-item copies `per` groups of VW floats
 * of one row (per = 1 on GPUs; a whole row on CPUs, which amortises the
 * index arithmetic). global (H*Wi, D, Cs*N) with Wi = ceil(Wg / per) items
 * per row, Wg = ceil(W / VW): gid0 = xi + Wi*yy, gid1 = z, gid2 = c + Cs*n.
 */
__kernel void crop_concat_forward(__global const float *skip,
                                  __global float *y, const uint Cs,
                                  const uint Cu, const uint D, const uint H,
                                  const uint W, const uint Ds, const uint Hs,
                                  const uint Ws, const uint oz, const uint oy,
                                  const uint ox, const uint N, const uint Wi,
                                  const uint per)
{
    const uint g0 = get_global_id(0), z = get_global_id(1);
    const uint g2 = get_global_id(2);
    if (g0 >= H * Wi || z >= D || g2 >= Cs * N)
        return;
    const uint yy = g0 / Wi, xb = (g0 - yy * Wi) * per * VW;
    const uint xe = min(xb + per * VW, W);
    const uint n = g2 / Cs; /* channel n*(Cs+Cu) + c of y is g2 + n*Cu */
    __global const float *src =
        skip + ((g2 * Ds + z + oz) * Hs + yy + oy) * Ws + ox;
    __global float *dst = y + (((g2 + n * Cu) * D + z) * H + yy) * W;
    uint x = xb;
    for (; x + VW <= xe; x += VW)
        VSTORE(VLOAD(src + x), dst + x);
    for (; x < xe; x++)
        dst[x] = src[x];
}

/* Accumulating dskip: dskip += the first Cs channels of dy inside the
 * crop window, nothing elsewhere, so the grid covers the window only, as
 * in the forward: global (H*Wi, D, Cs*N). */
__kernel void crop_concat_backward_skip_add(
    __global const float *dy, __global float *dskip, const uint Cs,
    const uint Cu, const uint D, const uint H, const uint W, const uint Ds,
    const uint Hs, const uint Ws, const uint oz, const uint oy,
    const uint ox, const uint N, const uint Wi, const uint per)
{
    const uint g0 = get_global_id(0), z = get_global_id(1);
    const uint g2 = get_global_id(2);
    if (g0 >= H * Wi || z >= D || g2 >= Cs * N)
        return;
    const uint yy = g0 / Wi, xb = (g0 - yy * Wi) * per * VW;
    const uint xe = min(xb + per * VW, W);
    const uint n = g2 / Cs;
    __global float *d = dskip + ((g2 * Ds + z + oz) * Hs + yy + oy) * Ws + ox;
    __global const float *g = dy + (((g2 + n * Cu) * D + z) * H + yy) * W;
    uint x = xb;
    for (; x + VW <= xe; x += VW)
        VSTORE(VLOAD(d + x) + VLOAD(g + x), d + x);
    for (; x < xe; x++)
        d[x] += g[x];
}

/* Per sample n < N, a contiguous slab of len floats:
 * dst[doff + n*dstride + f] = src[soff + n*sstride + f]. The up channels of
 * y (forward) and dup (backward). global (ceil(len / VW), N). */
__kernel void crop_concat_slab(__global const float *src, __global float *dst,
                               const uint len, const uint soff,
                               const uint sstride, const uint doff,
                               const uint dstride, const uint N)
{
    const uint gid = get_global_id(0), n = get_global_id(1);
    if (len == 0u || gid > (len - 1u) / VW || n >= N)
        return;
    const uint f = gid * VW;
    __global const float *s = src + soff + n * sstride + f;
    __global float *d = dst + doff + n * dstride + f;
    if (len - f >= VW) {
        VSTORE(VLOAD(s), d);
        return;
    }
    for (uint i = 0; f + i < len; i++)
        d[i] = s[i];
}

/* dskip (overwritten) from the first Cs channels of dy: dy inside the crop
 * window, 0 outside. Each work-item handles `per` groups of VW floats of
 * one row, as in the forward. global (Hs*Wi, Ds, Cs*N) with
 * Wi = ceil(Wg / per), Wg = ceil(Ws / VW): gid0 = xi + Wi*ys, gid1 = zs,
 * gid2 = c + Cs*n. */
__kernel void crop_concat_backward_skip(__global const float *dy,
                                        __global float *dskip, const uint Cs,
                                        const uint Cu, const uint D,
                                        const uint H, const uint W,
                                        const uint Ds, const uint Hs,
                                        const uint Ws, const uint oz,
                                        const uint oy, const uint ox,
                                        const uint N, const uint Wi,
                                        const uint per)
{
    const uint g0 = get_global_id(0), zs = get_global_id(1);
    const uint g2 = get_global_id(2);
    if (g0 >= Hs * Wi || zs >= Ds || g2 >= Cs * N)
        return;
    const uint ys = g0 / Wi, xb = (g0 - ys * Wi) * per * VW;
    const uint xe = min(xb + per * VW, Ws);
    const uint n = g2 / Cs;
    __global float *d = dskip + ((g2 * Ds + zs) * Hs + ys) * Ws;
    /* unsigned wrap-around makes rows before the window fail the test */
    const uint z = zs - oz, yy = ys - oy;
    /* the window's columns [wb, we) within [xb, xe); none outside rows */
    uint wb = xe, we = xe;
    if (z < D && yy < H) {
        wb = max(xb, min(ox, xe));
        we = max(wb, min(ox + W, xe));
    }
    uint x = xb;
    for (; x + VW <= wb; x += VW) /* zeros before the window */
        VSTORE((VEC)(0.0f), d + x);
    for (; x < wb; x++)
        d[x] = 0.0f;
    if (wb < we) {
        /* the dy row; dskip column x holds dy column x - ox */
        __global const float *g = dy + (((g2 + n * Cu) * D + z) * H + yy) * W;
        for (; x + VW <= we; x += VW)
            VSTORE(VLOAD(g + (x - ox)), d + x);
        for (; x < we; x++)
            d[x] = g[x - ox];
    }
    for (; x + VW <= xe; x += VW) /* zeros after the window */
        VSTORE((VEC)(0.0f), d + x);
    for (; x < xe; x++)
        d[x] = 0.0f;
}
