/* Transposed convolution, kernel 2, stride 2 (PyTorch ConvTranspose3d):
 *   y[n,co,2z+a,2y+b,2x+c] = sum_ci x[n,ci,z,y,x] * w[ci,co,a,b,c] + b[co]
 * Tap t = a*4 + b*2 + c; the 8 taps w[ci,co,:] are contiguous and read as
 * one float8. Each input voxel owns a 2x2x2 output block, so all three
 * passes are matrix products over channels with that block as 8 columns.
 *
 * Forward and backward-data: lanes run along W (coalesced x / dx and vector
 * loads / stores of y / dy rows) and each work-item keeps a register tile
 * of channels x neighbouring voxels x 8 taps; the weights a work-group reads
 * are the same for all its lanes (broadcast loads).
 * Backward-weight: split-K over the N*D*H rows of voxels. Lanes of a
 * work-group take voxels in turn and accumulate a BW_TCI x BW_TCO x 8 tile;
 * the lanes' tiles are summed in a fixed order through local memory and
 * the chunks in order by upconv3d_sum_chunks. No atomics, so results are
 * bit-reproducible.
 *
 * Tile sizes are -D options from the host (tuning table). Sizes fit in 32
 * bits (checked on the host). Out-of-range channels of a partial tile are
 * clamped to the last channel on loads and skipped on stores.
 *
 * oclgrind's uninitialized-value checker crashes on vector shuffles that
 * concatenate vectors or add components of one vector, so vectors here are
 * only loaded, stored, and taken apart into scalars. */
#ifndef FW_TCO
#define FW_TCO 4 /* output channels per work-item, forward */
#endif
#ifndef FW_TP
#define FW_TP 2 /* voxels along W per work-item, forward */
#endif
#ifndef BD_TCI
#define BD_TCI 8 /* input channels per work-item, backward-data; each
                    work-item takes 2 voxels along W (float4 dy rows) */
#endif
#ifndef BW_TCI
#define BW_TCI 8 /* backward-weight tile: input channels */
#endif
#ifndef BW_TCO
#define BW_TCO 2 /* backward-weight tile: output channels */
#endif
#ifndef BW_LWS
#define BW_LWS 64 /* work-group size of the split-K kernels, power of two */
#endif

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
 * Each work-item takes voxels x0, x0+1 (their dy rows are 4 contiguous
 * floats). gid0 = voxel pair along W + XG*(y + H*z), gid1 = tile of BD_TCI
 * input channels, gid2 = n. */
__kernel void upconv3d_backward_data(__global const float *dy,
                                     __global const float *w,
                                     __global float *dx, const uint Cin,
                                     const uint Cout, const uint D,
                                     const uint H, const uint W, const uint N)
{
    const uint XG = (W + 1) / 2;
    const uint g0 = get_global_id(0), ci0 = get_global_id(1) * BD_TCI;
    const uint n = get_global_id(2);
    if (g0 >= XG * H * D || ci0 >= Cin || n >= N)
        return;
    const uint row = g0 / XG, x0 = (g0 - row * XG) * 2;
    const uint z = row / H, yy = row - z * H;
    const bool pair = x0 + 1 < W; /* else the last voxel of an odd row */
    const uint P = D * H * W, W2 = 2 * W, HW4 = 4 * H * W;
    __global const float *gp =
        dy + n * Cout * 8 * P + (4 * z * H + 2 * yy) * W2 + 2 * x0;

    float acc0[BD_TCI], acc1[BD_TCI]; /* voxels x0 and x0 + 1 */
#pragma unroll
    for (int i = 0; i < BD_TCI; i++)
        acc0[i] = acc1[i] = 0.0f;

    for (uint co = 0; co < Cout; co++, gp += 8 * P) {
        /* rows (a,b) = (0,0), (0,1), (1,0), (1,1); components 2t + c */
        float4 r0, r1, r2, r3;
        if (pair) {
            r0 = vload4(0, gp);
            r1 = vload4(0, gp + W2);
            r2 = vload4(0, gp + HW4);
            r3 = vload4(0, gp + HW4 + W2);
        } else {
            r0 = (float4)(gp[0], gp[1], 0.0f, 0.0f);
            r1 = (float4)(gp[W2], gp[W2 + 1], 0.0f, 0.0f);
            r2 = (float4)(gp[HW4], gp[HW4 + 1], 0.0f, 0.0f);
            r3 = (float4)(gp[HW4 + W2], gp[HW4 + W2 + 1], 0.0f, 0.0f);
        }
#pragma unroll
        for (int i = 0; i < BD_TCI; i++) {
            const float8 wv = vload8(min(ci0 + i, Cin - 1) * Cout + co, w);
            float a = acc0[i], b = acc1[i];
            a = mad(wv.s0, r0.s0, a);
            b = mad(wv.s0, r0.s2, b);
            a = mad(wv.s1, r0.s1, a);
            b = mad(wv.s1, r0.s3, b);
            a = mad(wv.s2, r1.s0, a);
            b = mad(wv.s2, r1.s2, b);
            a = mad(wv.s3, r1.s1, a);
            b = mad(wv.s3, r1.s3, b);
            a = mad(wv.s4, r2.s0, a);
            b = mad(wv.s4, r2.s2, b);
            a = mad(wv.s5, r2.s1, a);
            b = mad(wv.s5, r2.s3, b);
            a = mad(wv.s6, r3.s0, a);
            b = mad(wv.s6, r3.s2, b);
            acc0[i] = mad(wv.s7, r3.s1, a);
            acc1[i] = mad(wv.s7, r3.s3, b);
        }
    }

#pragma unroll
    for (int i = 0; i < BD_TCI; i++) {
        const uint ci = ci0 + i;
        if (ci >= Cin)
            break;
        __global float *o = dx + (n * Cin + ci) * P + row * W + x0;
        o[0] = acc0[i];
        if (pair)
            o[1] = acc1[i];
    }
}

/* Lane sums: each lane stores its partial values in a column of red (rows
 * padded to BW_LWS + 1 floats so both the stores and the row sums below hit
 * distinct banks); after a barrier, lane r adds up row r in lane order.
 * That is a fixed order (reproducible) and costs each lane about two
 * local-memory accesses per value, far less than a tree. */
#define RED_ROW (BW_LWS + 1)
#define BW_ACC (BW_TCI * BW_TCO * 8) /* partial values per lane */
#define BW_PASS (BW_ACC < BW_LWS ? BW_ACC : BW_LWS) /* rows per pass */

float row_sum(__local const float *row)
{
    float s = 0.0f;
    for (int l = 0; l < BW_LWS; l++)
        s += row[l];
    return s;
}

/* Partial dw of row chunk s = group 0 (rows [s*chunk, (s+1)*chunk) of the
 * N*D*H rows of W voxels), for the channel tile gid1 (input) x gid2
 * (output):  part[s][ci][co][t] = sum_voxels x[n,ci,v] * dy[n,co,block(v),t].
 * Lanes are laid over RB = max(1, BW_LWS / W) rows at a time, lane l taking
 * row l / W and voxel l % W (voxels l, l + BW_LWS, ... if W > BW_LWS), so a
 * lane divides once and then steps rows by RB without dividing. */
__kernel __attribute__((reqd_work_group_size(BW_LWS, 1, 1))) void
upconv3d_backward_weight(__global const float *x, __global const float *dy,
                         __global float *part, const uint Cin, const uint Cout,
                         const uint D, const uint H, const uint W, const uint N,
                         const uint chunk)
{
    __local float red[BW_PASS * RED_ROW];
    const uint lid = get_local_id(0), s = get_group_id(0);
    /* dims 1 and 2 have work-groups of 1 and exact global sizes */
    const uint ci0 = get_global_id(1) * BW_TCI, co0 = get_global_id(2) * BW_TCO;
    const uint P = D * H * W, W2 = 2 * W, HW4 = 4 * H * W;
    const uint RB = W < BW_LWS ? BW_LWS / W : 1;
    /* no '%' next to '/' on the same operands anywhere: LLVM then emits a
     * freeze instruction, which oclgrind cannot run */
    const uint dr = W < BW_LWS ? lid / W : 0, x0 = lid - dr * W;
    const uint rend = min(N * D * H, (s + 1) * chunk);

    float acc[BW_ACC]; /* acc[(i * BW_TCO + j) * 8 + t] */
#pragma unroll
    for (int a = 0; a < BW_ACC; a++)
        acc[a] = 0.0f;

    uint row = s * chunk + dr;
    const uint zr = row / H; /* z + D*n */
    uint yy = row - zr * H, n = zr / D, z = zr - n * D;
    for (; dr < RB && row < rend; row += RB) {
        for (uint xx = x0; xx < W; xx += BW_LWS) {
            float xv[BW_TCI];
            const uint xo = (z * H + yy) * W + xx;
#pragma unroll
            for (int i = 0; i < BW_TCI; i++)
                xv[i] = x[(n * Cin + min(ci0 + i, Cin - 1)) * P + xo];
            const uint goff = (4 * z * H + 2 * yy) * W2 + 2 * xx;
#pragma unroll
            for (int j = 0; j < BW_TCO; j++) {
                __global const float *g =
                    dy + (n * Cout + min(co0 + j, Cout - 1)) * 8 * P + goff;
                const float2 r0 = vload2(0, g), r1 = vload2(0, g + W2);
                const float2 r2 = vload2(0, g + HW4);
                const float2 r3 = vload2(0, g + HW4 + W2);
#pragma unroll
                for (int i = 0; i < BW_TCI; i++) {
                    float *c = acc + (i * BW_TCO + j) * 8;
                    c[0] = mad(xv[i], r0.s0, c[0]);
                    c[1] = mad(xv[i], r0.s1, c[1]);
                    c[2] = mad(xv[i], r1.s0, c[2]);
                    c[3] = mad(xv[i], r1.s1, c[3]);
                    c[4] = mad(xv[i], r2.s0, c[4]);
                    c[5] = mad(xv[i], r2.s1, c[5]);
                    c[6] = mad(xv[i], r3.s0, c[6]);
                    c[7] = mad(xv[i], r3.s1, c[7]);
                }
            }
        }
        /* next row: y += RB with carries into z and n */
        yy += RB;
        while (yy >= H) {
            yy -= H;
            if (++z == D) {
                z = 0;
                n++;
            }
        }
    }

    __global float *o = part + s * Cin * Cout * 8;
#pragma unroll
    for (int base = 0; base < BW_ACC; base += BW_PASS) {
#pragma unroll
        for (int r = 0; r < BW_PASS; r++)
            if (base + r < BW_ACC)
                red[r * RED_ROW + lid] = acc[base + r];
        barrier(CLK_LOCAL_MEM_FENCE);
        const uint a = base + lid; /* value (i, j, t) this lane sums */
        const uint i = a / (BW_TCO * 8), jt = a - i * (BW_TCO * 8);
        const uint j = jt / 8, t = jt - j * 8;
        if (lid < BW_PASS && a < BW_ACC && ci0 + i < Cin && co0 + j < Cout)
            o[((ci0 + i) * Cout + co0 + j) * 8 + t] =
                row_sum(red + lid * RED_ROW);
        barrier(CLK_LOCAL_MEM_FENCE); /* before the next pass rewrites red */
    }
}

/* Partial db of chunk s = group 0 over the N x 8P output voxels seen as
 * N x P float8s, channel gid1: part[s][co][0..7], 8 lane sums that
 * upconv3d_sum_bias adds up with scalar adds. Lanes stride over one
 * sample's part of the chunk at a time (no per-element division). */
__kernel __attribute__((reqd_work_group_size(BW_LWS, 1, 1))) void
upconv3d_bias_partial(__global const float *dy, __global float *part,
                      const uint Cout, const uint P, const uint N,
                      const uint chunk)
{
    __local float red[8 * RED_ROW];
    const uint lid = get_local_id(0), s = get_group_id(0);
    const uint co = get_global_id(1);
    const uint k0 = s * chunk, k1 = min(N * P, k0 + chunk);
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (uint n = k0 / P; n < N && n * P < k1; n++) {
        __global const float *g = dy + (n * Cout + co) * 8 * P;
        const uint hi = min(k1, (n + 1) * P) - n * P;
        for (uint q = max(k0, n * P) - n * P + lid; q < hi; q += BW_LWS) {
            const float8 v = vload8(q, g);
            acc[0] += v.s0;
            acc[1] += v.s1;
            acc[2] += v.s2;
            acc[3] += v.s3;
            acc[4] += v.s4;
            acc[5] += v.s5;
            acc[6] += v.s6;
            acc[7] += v.s7;
        }
    }
#pragma unroll
    for (int t = 0; t < 8; t++)
        red[t * RED_ROW + lid] = acc[t];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < 8)
        part[(s * Cout + co) * 8 + lid] = row_sum(red + lid * RED_ROW);
}

/* db[co] = sum over chunks s, then lanes t, of part[s][co][t]. */
__kernel void upconv3d_sum_bias(__global const float *part,
                                __global float *db, const uint Cout,
                                const uint S)
{
    const uint co = get_global_id(0);
    if (co >= Cout)
        return;
    float sum = 0.0f;
    for (uint s = 0; s < S; s++) {
        __global const float *p = part + (s * Cout + co) * 8;
        sum += ((p[0] + p[1]) + (p[2] + p[3])) +
               ((p[4] + p[5]) + (p[6] + p[7]));
    }
    db[co] = sum;
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

/* Factors FD x FH x FW other than 2x2x2 (1x2x2 for anisotropic levels):
 * scalar kernels, one work-item per output value, sums in a fixed order.
 * Tap t = (a*FH + b)*FW + c; w is (Cin, Cout, FD, FH, FW). */

/* gid0 = output voxel of one plane, gid1 = n*Cout + co. */
__kernel void upconv3d_forward_any(__global const float *x,
                                   __global const float *w,
                                   __global const float *bias,
                                   const int has_bias, __global float *y,
                                   const uint Cin, const uint Cout,
                                   const uint D, const uint H, const uint W,
                                   const uint FD, const uint FH, const uint FW)
{
    const uint Ho = FH * H, Wo = FW * W, Po = FD * D * Ho * Wo;
    const uint i = get_global_id(0), nco = get_global_id(1);
    if (i >= Po)
        return;
    const uint n = nco / Cout, co = nco - n * Cout;
    const uint oz = i / (Ho * Wo), r = i - oz * (Ho * Wo);
    const uint oy = r / Wo, ox = r - oy * Wo;
    const uint z = oz / FD, yy = oy / FH, xx = ox / FW;
    const uint t = ((oz - z * FD) * FH + (oy - yy * FH)) * FW + (ox - xx * FW);
    const uint T = FD * FH * FW, P = D * H * W;
    __global const float *xp = x + n * Cin * P + (z * H + yy) * W + xx;
    float s = has_bias ? bias[co] : 0.0f;
    for (uint ci = 0; ci < Cin; ci++)
        s = mad(xp[ci * P], w[(ci * Cout + co) * T + t], s);
    y[nco * Po + i] = s;
}

/* gid0 = input voxel of one plane, gid1 = n*Cin + ci. */
__kernel void upconv3d_backward_data_any(__global const float *dy,
                                         __global const float *w,
                                         __global float *dx, const uint Cin,
                                         const uint Cout, const uint D,
                                         const uint H, const uint W,
                                         const uint FD, const uint FH,
                                         const uint FW)
{
    const uint P = D * H * W, T = FD * FH * FW;
    const uint Ho = FH * H, Wo = FW * W, Po = T * P;
    const uint i = get_global_id(0), nci = get_global_id(1);
    if (i >= P)
        return;
    const uint n = nci / Cin, ci = nci - n * Cin;
    const uint z = i / (H * W), r = i - z * (H * W);
    const uint yy = r / W, xx = r - yy * W;
    float s = 0.0f;
    for (uint co = 0; co < Cout; co++) {
        __global const float *g = dy + (n * Cout + co) * Po;
        __global const float *wp = w + (ci * Cout + co) * T;
        for (uint a = 0; a < FD; a++)
            for (uint b = 0; b < FH; b++)
                for (uint c = 0; c < FW; c++)
                    s = mad(g[((FD * z + a) * Ho + FH * yy + b) * Wo +
                              FW * xx + c],
                            wp[(a * FH + b) * FW + c], s);
    }
    dx[nci * P + i] = s;
}

/* gid0 = weight element (ci*Cout + co)*T + t, or Cin*Cout*T + co for the
 * bias gradient (with_bias); sums over N and the voxels in order. */
__kernel void upconv3d_backward_weight_any(__global const float *x,
                                           __global const float *dy,
                                           __global float *dw,
                                           __global float *db,
                                           const int with_bias,
                                           const uint Cin, const uint Cout,
                                           const uint D, const uint H,
                                           const uint W, const uint N,
                                           const uint FD, const uint FH,
                                           const uint FW)
{
    const uint P = D * H * W, T = FD * FH * FW;
    const uint Ho = FH * H, Wo = FW * W, Po = T * P;
    const uint e = get_global_id(0), nw = Cin * Cout * T;
    if (e >= nw + (with_bias ? Cout : 0))
        return;
    float s = 0.0f;
    if (e >= nw) {
        const uint co = e - nw;
        for (uint n = 0; n < N; n++)
            for (uint q = 0; q < Po; q++)
                s += dy[(n * Cout + co) * Po + q];
        db[co] = s;
        return;
    }
    const uint ci = e / (Cout * T), r = e - ci * (Cout * T);
    const uint co = r / T, t = r - co * T;
    const uint a = t / (FH * FW), bc = t - a * (FH * FW);
    const uint b = bc / FW, c = bc - b * FW;
    for (uint n = 0; n < N; n++) {
        __global const float *xp = x + (n * Cin + ci) * P;
        __global const float *g = dy + (n * Cout + co) * Po;
        for (uint z = 0; z < D; z++)
            for (uint yy = 0; yy < H; yy++)
                for (uint xx = 0; xx < W; xx++)
                    s = mad(xp[(z * H + yy) * W + xx],
                            g[((FD * z + a) * Ho + FH * yy + b) * Wo +
                              FW * xx + c],
                            s);
    }
    dw[e] = s;
}

/* The GEMM path (upconv3d.c): the up-convolution as a 1x1x1 convolution
 * with T*Cout channels, q[n, co*T + t, z, y, x] holding tap t = (a*FH +
 * b)*FW + c of y[n, co, FD*z + a, FH*y + b, FW*x + c]. These two kernels
 * move values between that layout and the up-sampled one, a work-item per
 * input row (its loops run along contiguous rows: on CPUs one work-item
 * per voxel ran at a fifth of the copy bandwidth).
 * gid0 = input row z*H + y, gid1 = n*Cout + co. */
__kernel void upconv3d_shuffle(__global const float *q,
                               __global const float *bias, const int has_bias,
                               __global float *y, const uint Cout,
                               const uint D, const uint H, const uint W,
                               const uint FD, const uint FH, const uint FW)
{
    const uint P = D * H * W, T = FD * FH * FW;
    const uint row = get_global_id(0), nco = get_global_id(1);
    if (row >= D * H)
        return;
    const uint z = row / H, yy = row - z * H;
    const uint Ho = FH * H, Wo = FW * W;
    const float bv = has_bias ? bias[nco % Cout] : 0.0f;
    __global const float *qp = q + nco * T * P + row * W;
    __global float *yp = y + nco * T * P + (FD * z * Ho + FH * yy) * Wo;
    for (uint a = 0; a < FD; a++)
        for (uint b = 0; b < FH; b++) {
            __global float *o = yp + (a * Ho + b) * Wo;
            __global const float *src = qp + (a * FH + b) * FW * P;
            for (uint xx = 0; xx < W; xx++)
                for (uint c = 0; c < FW; c++)
                    o[xx * FW + c] = src[c * P + xx] + bv;
        }
}

/* The reverse of upconv3d_shuffle (without bias): dy into q's layout. */
__kernel void upconv3d_unshuffle(__global const float *dy, __global float *q,
                                 const uint D, const uint H, const uint W,
                                 const uint FD, const uint FH, const uint FW)
{
    const uint P = D * H * W, T = FD * FH * FW;
    const uint row = get_global_id(0), nco = get_global_id(1);
    if (row >= D * H)
        return;
    const uint z = row / H, yy = row - z * H;
    const uint Ho = FH * H, Wo = FW * W;
    __global float *qp = q + nco * T * P + row * W;
    __global const float *gp = dy + nco * T * P + (FD * z * Ho + FH * yy) * Wo;
    for (uint a = 0; a < FD; a++)
        for (uint b = 0; b < FH; b++) {
            __global const float *g = gp + (a * Ho + b) * Wo;
            __global float *dst = qp + (a * FH + b) * FW * P;
            for (uint xx = 0; xx < W; xx++)
                for (uint c = 0; c < FW; c++)
                    dst[c * P + xx] = g[xx * FW + c];
        }
}

/* qt (one sample: the D * H * W positions of x, each a row of Cout * T
 * floats) = dy from element dyoff on, unshuffled position-major:
 * qt[(z * H + y) * W + x][co * T + t] is voxel t of the FD x FH x FW
 * block of (z, y, x) in output channel co (upconv3d_unshuffle's q
 * transposed): the weight gradient as one GEMM with x's channel rows
 * (u3d_cl_gemm_rows). Work-item (row of x, co). */
__kernel void upconv3d_unshuffle_t(__global const float *dy,
                                   __global float *qt, const uint dyoff,
                                   const uint cout, const uint D,
                                   const uint H, const uint W, const uint FD,
                                   const uint FH, const uint FW)
{
    const uint P = D * H * W, T = FD * FH * FW;
    const uint row = get_global_id(0), co = get_global_id(1);
    if (row >= D * H || co >= cout)
        return;
    const uint z = row / H, yy = row - z * H;
    const uint Ho = FH * H, Wo = FW * W;
    __global const float *gp =
        dy + dyoff + co * T * P + (FD * z * Ho + FH * yy) * Wo;
    __global float *qp = qt + (size_t)row * W * cout * T + co * T;
    for (uint xx = 0; xx < W; xx++)
        for (uint a = 0; a < FD; a++)
            for (uint b = 0; b < FH; b++)
                for (uint c = 0; c < FW; c++)
                    qp[(size_t)xx * cout * T + (a * FH + b) * FW + c] =
                        gp[(a * Ho + b) * Wo + xx * FW + c];
}
