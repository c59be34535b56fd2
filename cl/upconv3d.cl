/* Transposed convolution, kernel 2, stride 2 (PyTorch ConvTranspose3d):
 *   y[n,co,2z+a,2y+b,2x+c] = sum_ci x[n,ci,z,y,x] * w[ci,co,a,b,c] + b[co]
 * Tap t = a*4 + b*2 + c; the 8 taps w[ci,co,:] are contiguous and read as
 * one float8. Each input voxel owns a 2x2x2 output block, so all three
 * passes are matrix products over channels with that block as 8 columns.
 *
 * Forward and backward-data: lanes run along W (coalesced x / dx and, as
 * float2 pairs, y / dy rows) and each work-item keeps a register tile of
 * channels x TP neighbouring voxels x 8 taps; the weights a work-group reads
 * are the same for all its lanes (broadcast loads).
 * Backward-weight: split-K over the N*D*H*W voxels. Lanes of a work-group
 * take voxels in turn, accumulate a BW_TCI x BW_TCO x 8 tile, and a fixed
 * local-memory tree sums the lanes; chunks are summed in order by
 * upconv3d_sum_chunks. No atomics, so results are bit-reproducible.
 *
 * Tile sizes are -D options from the host (tuning table). Sizes fit in 32
 * bits (checked on the host). Out-of-range channels of a partial tile are
 * clamped to the last channel on loads and skipped on stores. */
#ifndef FW_TCO
#define FW_TCO 4 /* output channels per work-item, forward */
#endif
#ifndef FW_TP
#define FW_TP 2 /* voxels along W per work-item, forward */
#endif
#ifndef BD_TCI
#define BD_TCI 8 /* input channels per work-item, backward-data */
#endif
#ifndef BD_TP
#define BD_TP 2
#endif
#ifndef BW_TCI
#define BW_TCI 4 /* backward-weight tile: input channels */
#endif
#ifndef BW_TCO
#define BW_TCO 2 /* backward-weight tile: output channels */
#endif
#ifndef BW_LWS
#define BW_LWS 64 /* work-group size of the split-K kernels, power of two */
#endif

/* The 8 taps of dy for input voxel offset g (top-left-front of its block). */
float8 load_block(__global const float *g, const uint W2, const uint HW4)
{
    return (float8)(g[0], g[1], g[W2], g[W2 + 1], g[HW4], g[HW4 + 1],
                    g[HW4 + W2], g[HW4 + W2 + 1]);
}

/* gid0 = voxel group along W + XG*(y + H*z), gid1 = tile of FW_TCO output
 * channels, gid2 = n. */
__kernel void upconv3d_forward(__global const float *x,
                               __global const float *w,
                               __global const float *bias, const int has_bias,
                               __global float *y, const uint Cin,
                               const uint Cout, const uint D, const uint H,
                               const uint W, const uint N)
{
    const uint XG = (W + FW_TP - 1) / FW_TP;
    const uint g0 = get_global_id(0), co0 = get_global_id(1) * FW_TCO;
    const uint n = get_global_id(2);
    if (g0 >= XG * H * D || co0 >= Cout || n >= N)
        return;
    const uint row = g0 / XG, x0 = (g0 - row * XG) * FW_TP;
    const uint z = row / H, yy = row - z * H;
    const uint P = D * H * W;
    __global const float *xp = x + n * Cin * P + row * W + x0;

    float8 acc[FW_TCO][FW_TP];
#pragma unroll
    for (int j = 0; j < FW_TCO; j++)
#pragma unroll
        for (int t = 0; t < FW_TP; t++)
            acc[j][t] = (float8)(0.0f);

    for (uint ci = 0; ci < Cin; ci++, xp += P) {
        float xv[FW_TP];
#pragma unroll
        for (int t = 0; t < FW_TP; t++)
            xv[t] = x0 + t < W ? xp[t] : 0.0f;
        __global const float *wp = w + ci * Cout * 8;
#pragma unroll
        for (int j = 0; j < FW_TCO; j++) {
            const float8 wv = vload8(min(co0 + j, Cout - 1), wp);
#pragma unroll
            for (int t = 0; t < FW_TP; t++)
                acc[j][t] = mad((float8)(xv[t]), wv, acc[j][t]);
        }
    }

    const uint W2 = 2 * W, HW4 = 4 * H * W;
#pragma unroll
    for (int j = 0; j < FW_TCO; j++) {
        const uint co = co0 + j;
        if (co >= Cout)
            break;
        const float bv = has_bias ? bias[co] : 0.0f;
        __global float *yp =
            y + (n * Cout + co) * 8 * P + (4 * z * H + 2 * yy) * W2 + 2 * x0;
#pragma unroll
        for (int t = 0; t < FW_TP; t++) {
            if (x0 + t >= W)
                break;
            const float8 v = acc[j][t] + bv;
            vstore2(v.s01, t, yp);
            vstore2(v.s23, t, yp + W2);
            vstore2(v.s45, t, yp + HW4);
            vstore2(v.s67, t, yp + HW4 + W2);
        }
    }
}

/* dx[n,ci,z,y,x] = sum_{co,t} dy[n,co,block(z,y,x),t] * w[ci,co,t].
 * gid0 = voxel group along W + XG*(y + H*z), gid1 = tile of BD_TCI input
 * channels, gid2 = n. */
__kernel void upconv3d_backward_data(__global const float *dy,
                                     __global const float *w,
                                     __global float *dx, const uint Cin,
                                     const uint Cout, const uint D,
                                     const uint H, const uint W, const uint N)
{
    const uint XG = (W + BD_TP - 1) / BD_TP;
    const uint g0 = get_global_id(0), ci0 = get_global_id(1) * BD_TCI;
    const uint n = get_global_id(2);
    if (g0 >= XG * H * D || ci0 >= Cin || n >= N)
        return;
    const uint row = g0 / XG, x0 = (g0 - row * XG) * BD_TP;
    const uint z = row / H, yy = row - z * H;
    const uint P = D * H * W, W2 = 2 * W, HW4 = 4 * H * W;
    __global const float *gp =
        dy + n * Cout * 8 * P + (4 * z * H + 2 * yy) * W2 + 2 * x0;

    float acc[BD_TCI][BD_TP];
#pragma unroll
    for (int i = 0; i < BD_TCI; i++)
#pragma unroll
        for (int t = 0; t < BD_TP; t++)
            acc[i][t] = 0.0f;

    for (uint co = 0; co < Cout; co++, gp += 8 * P) {
        float8 d[BD_TP];
#pragma unroll
        for (int t = 0; t < BD_TP; t++)
            d[t] = x0 + t < W ? load_block(gp + 2 * t, W2, HW4) : (float8)(0.0f);
#pragma unroll
        for (int i = 0; i < BD_TCI; i++) {
            const float8 wv = vload8(min(ci0 + i, Cin - 1) * Cout + co, w);
#pragma unroll
            for (int t = 0; t < BD_TP; t++) {
                float a = acc[i][t];
                a = mad(wv.s0, d[t].s0, a);
                a = mad(wv.s1, d[t].s1, a);
                a = mad(wv.s2, d[t].s2, a);
                a = mad(wv.s3, d[t].s3, a);
                a = mad(wv.s4, d[t].s4, a);
                a = mad(wv.s5, d[t].s5, a);
                a = mad(wv.s6, d[t].s6, a);
                acc[i][t] = mad(wv.s7, d[t].s7, a);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < BD_TCI; i++) {
        const uint ci = ci0 + i;
        if (ci >= Cin)
            break;
        __global float *o = dx + (n * Cin + ci) * P + row * W + x0;
#pragma unroll
        for (int t = 0; t < BD_TP; t++)
            if (x0 + t < W)
                o[t] = acc[i][t];
    }
}

/* Sums a float8 over the lanes of the work-group into red[0] (fixed order).
 * Ends with a barrier, so red[0] is visible to every lane. */
void tree_sum8(__local float8 *red, const uint lid, const float8 v)
{
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = BW_LWS / 2; h > 0; h >>= 1) {
        if (lid < h)
            red[lid] += red[lid + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Partial dw of voxel chunk s = group 0 (voxels [s*chunk, (s+1)*chunk) of
 * the N*D*H*W), for the channel tile gid1 (input) x gid2 (output):
 *   part[s][ci][co][t] = sum_voxels x[n,ci,v] * dy[n,co,block(v),t]. */
__kernel __attribute__((reqd_work_group_size(BW_LWS, 1, 1))) void
upconv3d_backward_weight(__global const float *x, __global const float *dy,
                         __global float *part, const uint Cin, const uint Cout,
                         const uint D, const uint H, const uint W, const uint N,
                         const uint chunk)
{
    __local float8 red[BW_LWS];
    const uint lid = get_local_id(0), s = get_group_id(0);
    /* dims 1 and 2 have work-groups of 1 and exact global sizes */
    const uint ci0 = get_global_id(1) * BW_TCI, co0 = get_global_id(2) * BW_TCO;
    const uint HW = H * W, P = D * HW, W2 = 2 * W, HW4 = 4 * HW;
    const uint kend = min(N * P, (s + 1) * chunk);

    float8 acc[BW_TCI][BW_TCO];
#pragma unroll
    for (int i = 0; i < BW_TCI; i++)
#pragma unroll
        for (int j = 0; j < BW_TCO; j++)
            acc[i][j] = (float8)(0.0f);

    for (uint k = s * chunk + lid; k < kend; k += BW_LWS) {
        const uint n = k / P, p = k - n * P;
        const uint z = p / HW, r = p - z * HW;
        const uint yy = r / W, xx = r - yy * W;
        float xv[BW_TCI];
#pragma unroll
        for (int i = 0; i < BW_TCI; i++)
            xv[i] = x[(n * Cin + min(ci0 + i, Cin - 1)) * P + p];
        const uint goff = (4 * z * H + 2 * yy) * W2 + 2 * xx;
#pragma unroll
        for (int j = 0; j < BW_TCO; j++) {
            const float8 d = load_block(
                dy + (n * Cout + min(co0 + j, Cout - 1)) * 8 * P + goff, W2,
                HW4);
#pragma unroll
            for (int i = 0; i < BW_TCI; i++)
                acc[i][j] = mad((float8)(xv[i]), d, acc[i][j]);
        }
    }

    __global float *o = part + s * Cin * Cout * 8;
#pragma unroll
    for (int i = 0; i < BW_TCI; i++)
#pragma unroll
        for (int j = 0; j < BW_TCO; j++) {
            tree_sum8(red, lid, acc[i][j]);
            if (lid == 0 && ci0 + i < Cin && co0 + j < Cout)
                vstore8(red[0], (ci0 + i) * Cout + co0 + j, o);
            /* red[0] is rewritten by lane 0 only, after its own read */
        }
}

/* Partial db of chunk s = group 0 over the N x 8P output voxels seen as
 * N x P float8s, channel gid1: part[s][co]. */
__kernel __attribute__((reqd_work_group_size(BW_LWS, 1, 1))) void
upconv3d_bias_partial(__global const float *dy, __global float *part,
                      const uint Cout, const uint P, const uint N,
                      const uint chunk)
{
    __local float8 red[BW_LWS];
    const uint lid = get_local_id(0), s = get_group_id(0);
    const uint co = get_global_id(1);
    const uint kend = min(N * P, (s + 1) * chunk);
    float8 acc = (float8)(0.0f);
    for (uint k = s * chunk + lid; k < kend; k += BW_LWS) {
        const uint n = k / P, q = k - n * P;
        acc += vload8(q, dy + (n * Cout + co) * 8 * P);
    }
    tree_sum8(red, lid, acc);
    if (lid == 0) {
        const float8 v = red[0];
        part[s * Cout + co] =
            ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7));
    }
}

/* out[i] = sum over chunks s in order of part[s*count + i]. */
__kernel void upconv3d_sum_chunks(__global const float *part,
                                  __global float *out, const uint count,
                                  const uint S)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    float s = 0.0f;
    for (uint c = 0; c < S; c++)
        s += part[c * count + i];
    out[i] = s;
}
