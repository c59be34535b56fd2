/* 3D convolution, stride 1, a kernel of KD x KH x KW taps (build options;
 * KS for a cubic one), e.g. 1x3x3 for anisotropic voxels.
 *
 * Layout trick: an input volume of one channel, zero-padded to Dp x Hp x Wp,
 * is read as one flat array. The output voxel (z, y, x) is computed at the
 * flat position q = (z*Hp + y)*Wp + x, and the tap (kz, ky, kx) reads the
 * input at q + (kz*Hp + ky)*Wp + kx. So every tap is a contiguous vector
 * load along q, rows of any length fill the vectors, and positions with
 * x >= Wout or y >= Hout are computed but never stored. q runs over
 * [0, Lq), Lq = ((Dout-1)*Hp + Hout-1)*Wp + Wout, whose last tap reads the
 * last input element exactly, so no load leaves the buffer. The host runs
 * a large volume as slabs of output planes; Dout, Dp are then the slab's.
 * Its padded copies share one border between neighbouring rows (Wp = W +
 * pad_w: a read past a row's end lands in the next row's left zeros) and
 * between planes (Hp = H + pad_h), with a spare plane for the last reads.
 *
 * Build options (tuning, see src/runtime/tuning.c):
 *   KS      kernel size of a cubic kernel, or
 *   KD, KH, KW  the kernel size per axis (D, H, W)
 *   VW      vector width along q of the forward kernel (1,2,4,8,16)
 *   NV      vectors per work-item (a tile of XB = VW*NV positions)
 *   COB     output channels per work-item (accumulators COB*NV vectors)
 *   BVW     vector width of the weight-gradient kernel
 *   BCOB    output channels per work-item of the weight-gradient kernel
 *   TAPOUT  forward loop order: 1 = tap rows outside channels (skips the
 *           zero rows of padding), 0 = channels outside (few channels)
 *
 * Remainders are written a - (a/b)*b: LLVM rewrites a % b next to a / b
 * with a `freeze` instruction that oclgrind cannot execute.
 */
#if !defined(KS) && !defined(KD)
#define KS 3
#endif
#ifndef KD /* cubic */
#define KD KS
#define KH KS
#define KW KS
#endif
#ifndef VW
#define VW 4
#endif
#ifndef NV
#define NV 1
#endif
#ifndef COB
#define COB 8
#endif
#ifndef BVW
#define BVW 4
#endif
#ifndef TAPOUT
#define TAPOUT 1
#endif
#ifndef BCOB
#define BCOB 4
#endif

/* LWS, BLWS, BL: work-group sizes fixed when the host compiles the
 * program (conv3d_fwd, conv3d_bwd_weight, conv3d_bwd_bias), so the
 * compiler may specialise for them. */
#ifdef LWS
#define REQD_LWS __attribute__((reqd_work_group_size(LWS, 1, 1)))
#else
#define REQD_LWS
#endif
#ifdef BLWS
#define REQD_BLWS __attribute__((reqd_work_group_size(BLWS, 1, 1)))
#else
#define REQD_BLWS
#endif
#ifndef BL
#define BL 64
#endif

#define K3 (KD * KH * KW)
#define XB (VW * NV)

#include "vector_width.h"

/* floatv: VW floats, VLOAD/VSTORE (and floatb of width BVW). */
typedef VEC floatv;

#if BVW == 1
typedef float floatb;
#define BLOAD(p) (*(p))
#else
typedef CAT(float, BVW) floatb;
#define BLOAD(p) CAT(vload, BVW)(0, (p))
#endif

/* Sum of the lanes, through a private array: oclgrind's uninitialized-
 * value plugin crashes on the shuffles LLVM makes of lane extracts. */
inline float hsum_b(floatb v)
{
#if BVW == 1
    return v;
#else
    float t[BVW];
    CAT(vstore, BVW)(v, 0, t);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < BVW; i++)
        s += t[i];
    return s;
#endif
}

/* Weights rearranged into the order the forward kernel reads them:
 * wt[cb][c][tap][j] = weight of output channel cb*COB+j, input channel c,
 * zero for output channels past co_n. flip != 0 builds the weights of the
 * data gradient: input/output channels swapped and the taps reversed, the
 * source w being (ci_n, co_n, K3) then. */
__kernel void conv3d_weights(__global const float *restrict w,
                             __global float *restrict wt, const int co_n,
                             const int ci_n, const int items, const int flip)
{
    /* one work-item per (cb, c): K3 * COB contiguous outputs, read from
     * COB runs of K3 contiguous weights (few index divisions per float) */
    const int i = get_global_id(0);
    if (i >= items)
        return;
    const int cb = i / ci_n;
    const int c = i - cb * ci_n;
    __global float *o = wt + (size_t)i * K3 * COB;
    for (int j = 0; j < COB; j++) {
        const int co = cb * COB + j;
        if (co >= co_n) {
            for (int tap = 0; tap < K3; tap++)
                o[tap * COB + j] = 0.0f;
        } else if (flip) {
            __global const float *src = w + ((size_t)c * co_n + co) * K3;
            for (int tap = 0; tap < K3; tap++)
                o[tap * COB + j] = src[K3 - 1 - tap];
        } else {
            __global const float *src = w + ((size_t)co * ci_n + c) * K3;
            for (int tap = 0; tap < K3; tap++)
                o[tap * COB + j] = src[tap];
        }
    }
}

/* Copies src (N, cs, d, h, w) into dst (N, cd, dd, hd, wd): dst voxel
 * (z, y, x) = src (z + zoff - offz, y - offy, x - offx), zero outside src and
 * for channels c >= cs. zoff selects a slab of planes. Work-item i copies
 * `per` consecutive elements of a destination row (nx = ceil(wd / per)
 * items per row): per = 1, one element each, gives a GPU coalesced
 * accesses; per >= wd, whole rows, keeps the row arithmetic once per row
 * (CPUs). */
__kernel void conv3d_embed(__global const float *restrict src,
                           __global float *restrict dst, const int cs,
                           const int cd, const int d, const int h, const int w,
                           const int dd, const int hd, const int wd,
                           const int offz, const int offy, const int offx,
                           const int zoff, const int rows, const int per,
                           const int nx)
{
    const int i = get_global_id(0);
    const int r = i / nx;
    if (r >= rows)
        return;
    const int xa = (i - r * nx) * per;
    const int xb = min(xa + per, wd);
    const int t = r / hd;
    const int y = r - t * hd;
    const int t2 = t / dd;
    const int z = t - t2 * dd;
    const int n = t2 / cd;
    const int c = t2 - n * cd;
    const int sz = z + zoff - offz, sy = y - offy;
    __global float *o = dst + (size_t)r * wd;
    int x0 = 0, x1 = 0; /* src columns copied to [x0, x1) */
    if (c < cs && sz >= 0 && sz < d && sy >= 0 && sy < h) {
        x0 = offx;
        x1 = min(offx + w, wd);
    }
    for (int x = xa; x < min(x0, xb); x++)
        o[x] = 0.0f;
    if (x1 > x0) {
        __global const float *s =
            src + ((((size_t)n * cs + c) * d + sz) * h + sy) * w - offx;
        for (int x = max(xa, x0); x < min(x1, xb); x++)
            o[x] = s[x];
    }
    for (int x = max(xa, max(x0, x1)); x < xb; x++)
        o[x] = 0.0f;
}

/* RELU=1: max(0, .) fused into the store (inference). */
#ifndef RELU
#define RELU 0
#endif
#if RELU
#define ACT(v) fmax((v), 0.0f)
#else
#define ACT(v) (v)
#endif

/* Stores COB x XB results of one tile. qs is the first computed position,
 * q0 >= qs the first one this work-item owns (the last tile is shifted
 * back to stay inside the input, see conv3d_fwd). Only positions with
 * x < wout and y < hout are outputs. */
inline void store_tile(floatv acc[COB][NV], __global float *restrict y,
                       __global const float *restrict bias, const int use_bias,
                       const int co0, const int cout, const int qs,
                       const int q0, const int hp, const int wp,
                       const int hout, const int wout, const size_t ystride)
{
    const int hwp = hp * wp;
    int z = qs / hwp;
    const int r = qs - z * hwp;
    int yy = r / wp;
    int xx = r - yy * wp;
    const int ohw = hout * wout;
    if (qs == q0 && yy < hout && xx + XB <= wout) {
        /* the whole tile lies in one valid row */
        __global float *o = y + z * ohw + yy * wout + xx;
#pragma unroll
        for (int c = 0; c < COB; c++) {
            if (co0 + c < cout) {
                const float b = use_bias ? bias[co0 + c] : 0.0f;
#pragma unroll
                for (int j = 0; j < NV; j++)
                    VSTORE(ACT(acc[c][j] + b), o + (size_t)c * ystride + j * VW);
            }
        }
        return;
    }
    int dst[XB]; /* output offset of each lane, -1: not stored */
    for (int l = 0; l < XB; l++) {
        dst[l] = (qs + l >= q0 && yy < hout && xx < wout)
                     ? z * ohw + yy * wout + xx
                     : -1;
        if (++xx == wp) {
            xx = 0;
            if (++yy == hp) {
                yy = 0;
                z++;
            }
        }
    }
#pragma unroll
    for (int c = 0; c < COB; c++) {
        if (co0 + c < cout) {
            const float b = use_bias ? bias[co0 + c] : 0.0f;
            float t[XB];
#pragma unroll
            for (int j = 0; j < NV; j++)
                VSTORE(acc[c][j], t + j * VW);
            __global float *o = y + (size_t)c * ystride;
            for (int l = 0; l < XB; l++)
                if (dst[l] >= 0)
                    o[dst[l]] = ACT(t[l] + b);
        }
    }
}

/* y(n, co, :) = sum over ci and taps of wt * x + bias.
 * x: padded input planes of Hp x Wp from element xoff on, channel stride
 * xstride; wt from conv3d_weights; y: dout planes of hout x wout from
 * element yoff on, channel stride ystride (a slab of a larger output).
 * Work-item (tile, cb, n) computes output channels cb*COB .. cb*COB+COB-1
 * at the XB positions [tile*XB, +XB) of [0, lq), so every input vector
 * loaded feeds COB*NV FMAs into register accumulators. The last tile is
 * shifted back to stay inside x and stores only the positions it owns.
 * The host guarantees lq >= XB.
 * Only planes [pz0, pz1) and, within a plane, rows [py0, py1) of the
 * padded input can be nonzero; a (kz, ky) tap row whose reads fall on zero
 * rows only, for the whole tile, is skipped. That matters for the data
 * gradient, which correlates dy padded by k-1: near the borders nearly
 * half its taps would multiply zeros. */
__kernel REQD_LWS void conv3d_fwd(__global const float *restrict x,
                         __global const float *restrict wt,
                         __global const float *restrict bias,
                         __global float *restrict y, const int cin,
                         const int cout, const int hp, const int wp,
                         const int xstride, const int xoff, const int dout,
                         const int hout, const int wout, const int ystride,
                         const int yoff, const int lq, const int ntiles,
                         const int ncb, const int use_bias, const int pz0,
                         const int pz1, const int py0, const int py1)
{
    const int tile = get_global_id(0);
    const int cb = get_global_id(1);
    const int n = get_global_id(2);
    if (tile >= ntiles || cb >= ncb)
        return;
    const int q0 = tile * XB;
    const int qs = min(q0, lq - XB);
    const int hwp = hp * wp;

#if TAPOUT
    /* bit kz*KH+ky: that tap row reads a nonzero row of x for this tile */
    int live = 0;
    for (int t = 0; t < KD * KH; t++) {
        const int kz = t / KH;
        const int ky = t - kz * KH;
        const int a = qs + kz * hwp + ky * wp; /* first element read */
        const int r1 = (a + XB + KW - 2) / wp; /* last row read */
        for (int r = a / wp; r <= r1; r++) {
            const int pl = r / hp;
            const int rr = r - pl * hp;
            if (pl >= pz0 && pl < pz1 && rr >= py0 && rr < py1)
                live |= 1 << t;
        }
    }
#endif

    floatv acc[COB][NV];
#pragma unroll
    for (int c = 0; c < COB; c++)
#pragma unroll
        for (int j = 0; j < NV; j++)
            acc[c][j] = (floatv)0.0f;

#if TAPOUT
    /* tap rows outside, channels inside: a skipped tap row costs nothing */
    for (int t = 0; t < KD * KH; t++) {
        if (!((live >> t) & 1))
            continue;
        const int kz = t / KH;
        const int ky = t - kz * KH;
        __global const float *xs =
            x + (size_t)n * cin * xstride + xoff + qs + kz * hwp + ky * wp;
        __global const float *ws = wt + (size_t)cb * cin * K3 * COB +
                                   t * KW * COB;
        for (int ci = 0; ci < cin; ci++, xs += xstride, ws += K3 * COB) {
#pragma unroll
            for (int kx = 0; kx < KW; kx++) {
                floatv v[NV];
#pragma unroll
                for (int j = 0; j < NV; j++)
                    v[j] = VLOAD(xs + kx + j * VW);
#pragma unroll
                for (int c = 0; c < COB; c++) {
                    const floatv wv = (floatv)ws[kx * COB + c];
#pragma unroll
                    for (int j = 0; j < NV; j++)
                        acc[c][j] = fma(wv, v[j], acc[c][j]);
                }
            }
        }
    }
#else
    /* channels outside, all taps inside: long unrolled bodies for few
     * channels (zero rows are multiplied, not skipped). The tap-row body
     * is written out in both branches: as an inline function taking acc
     * it ran 30 % slower on PoCL (the accumulators left the registers). */
    __global const float *xs = x + (size_t)n * cin * xstride + xoff + qs;
    __global const float *ws = wt + (size_t)cb * cin * K3 * COB;
    for (int ci = 0; ci < cin; ci++, xs += xstride, ws += K3 * COB) {
#pragma unroll
        for (int kz = 0; kz < KD; kz++) {
#pragma unroll
            for (int ky = 0; ky < KH; ky++) {
                __global const float *row = xs + kz * hwp + ky * wp;
                __global const float *wk = ws + (kz * KH + ky) * KW * COB;
#pragma unroll
                for (int kx = 0; kx < KW; kx++) {
                    floatv v[NV];
#pragma unroll
                    for (int j = 0; j < NV; j++)
                        v[j] = VLOAD(row + kx + j * VW);
#pragma unroll
                    for (int c = 0; c < COB; c++) {
                        const floatv wv = (floatv)wk[kx * COB + c];
#pragma unroll
                        for (int j = 0; j < NV; j++)
                            acc[c][j] = fma(wv, v[j], acc[c][j]);
                    }
                }
            }
        }
    }
#endif
    const int co0 = cb * COB;
    store_tile(acc, y + ((size_t)n * cout + co0) * ystride + yoff, bias,
               use_bias, co0, cout, qs, q0, hp, wp, hout, wout, ystride);
}

/* Partial weight gradients of one chunk of positions:
 * part[ch0 + ch][co][ci][kz][ky][kx] = sum over q in chunk of
 *     dyq(n, co, q) * x(n, ci, q + (kz*Hp + ky)*Wp + kx).
 * x: padded input from element xoff on, channel stride xstride; dyq:
 * (N, coutp, sq), dy embedded in the padded geometry, zero at unused
 * positions and channels >= cout. Work-item (ci*KD*KH + kz*KH + ky, cb, ch)
 * keeps BCOB x KW vector accumulators; ch = n*nq + chunk covers
 * [chunk*qchunk, ...) of [0, lq). */
__kernel REQD_BLWS void conv3d_bwd_weight(__global const float *restrict x,
                                __global const float *restrict dyq,
                                __global float *restrict part, const int cin,
                                const int cout, const int coutp, const int hp,
                                const int wp, const int xstride,
                                const int xoff, const int sq,
                                const int lq, const int nq, const int qchunk,
                                const int nch, const int ncb, const int pstride,
                                const int ch0)
{
    const int kk = get_global_id(0);
    const int cb = get_global_id(1);
    const int ch = get_global_id(2);
    if (kk >= cin * KD * KH || cb >= ncb || ch >= nch)
        return;
    const int kk1 = kk / KH;
    const int ky = kk - kk1 * KH;
    const int ci = kk1 / KD;
    const int kz = kk1 - ci * KD;
    const int n = ch / nq;
    const int qa = (ch - n * nq) * qchunk;
    const int qb = min(qa + qchunk, lq);
    const int qv = min(qb, lq / BVW * BVW); /* end of the vector part */

    __global const float *xs =
        x + ((size_t)n * cin + ci) * xstride + xoff + (kz * hp + ky) * wp;
    __global const float *ds = dyq + ((size_t)n * coutp + cb * BCOB) * sq;

    floatb acc[BCOB][KW];
#pragma unroll
    for (int c = 0; c < BCOB; c++)
#pragma unroll
        for (int kx = 0; kx < KW; kx++)
            acc[c][kx] = (floatb)0.0f;
    for (int q = qa; q < qv; q += BVW) {
        floatb xv[KW];
#pragma unroll
        for (int kx = 0; kx < KW; kx++)
            xv[kx] = BLOAD(xs + q + kx);
#pragma unroll
        for (int c = 0; c < BCOB; c++) {
            const floatb d = BLOAD(ds + (size_t)c * sq + q);
#pragma unroll
            for (int kx = 0; kx < KW; kx++)
                acc[c][kx] = fma(d, xv[kx], acc[c][kx]);
        }
    }
    /* scalar tail of the last chunk, where a vector would pass lq */
    float tail[BCOB][KW];
#pragma unroll
    for (int c = 0; c < BCOB; c++)
#pragma unroll
        for (int kx = 0; kx < KW; kx++)
            tail[c][kx] = 0.0f;
    for (int q = max(qa, qv); q < qb; q++) {
#pragma unroll
        for (int c = 0; c < BCOB; c++) {
            const float d = ds[(size_t)c * sq + q];
#pragma unroll
            for (int kx = 0; kx < KW; kx++)
                tail[c][kx] = fma(d, xs[q + kx], tail[c][kx]);
        }
    }
    __global float *p = part + (size_t)(ch0 + ch) * pstride;
#pragma unroll
    for (int c = 0; c < BCOB; c++) {
        const int co = cb * BCOB + c;
        if (co < cout) {
            __global float *o =
                p + ((((size_t)co * cin + ci) * KD + kz) * KH + ky) * KW;
#pragma unroll
            for (int kx = 0; kx < KW; kx++)
                o[kx] = hsum_b(acc[c][kx]) + tail[c][kx];
        }
    }
}

/* Partial bias gradients: part[ch0 + ch][boff + co] = sum of dyq(n, co,
 * chunk). One work-group of BL items (a power of 2) per (co, chunk): the
 * items stride through the chunk together (coalesced), then a tree in
 * local memory; the order is fixed, so the result is deterministic. */
__kernel __attribute__((reqd_work_group_size(BL, 1, 1))) void
conv3d_bwd_bias(__global const float *restrict dyq,
                __global float *restrict part, const int cout,
                const int coutp, const int sq, const int lq, const int nq,
                const int qchunk, const int nch, const int pstride,
                const int boff, const int ch0)
{
    __local float sums[BL];
    const int co = get_group_id(0);
    const int ch = get_global_id(1);
    const int l = get_local_id(0);
    /* whole work-groups only: every item reaches the barriers */
    const int live = co < cout && ch < nch;
    float s = 0.0f;
    if (live) {
        const int n = ch / nq;
        const int qa = (ch - n * nq) * qchunk;
        const int qb = min(qa + qchunk, lq);
        __global const float *ds = dyq + ((size_t)n * coutp + co) * sq;
        for (int q = qa + l; q < qb; q += BL)
            s += ds[q];
    }
    sums[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = BL / 2; k > 0; k >>= 1) {
        if (l < k)
            sums[l] += sums[l + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (live && l == 0)
        part[(size_t)(ch0 + ch) * pstride + boff + co] = sums[0];
}

/* out[e] = sum over chunks of part[ch][e] in chunk order (deterministic);
 * elements e >= nw go to out2[e - nw] (the bias gradient). */
__kernel void conv3d_reduce(__global const float *restrict part,
                            __global float *restrict out,
                            __global float *restrict out2, const int nw,
                            const int ne, const int nch, const int pstride)
{
    const int e = get_global_id(0);
    if (e >= ne)
        return;
    float s = 0.0f;
    for (int ch = 0; ch < nch; ch++)
        s += part[(size_t)ch * pstride + e];
    if (e < nw)
        out[e] = s;
    else
        out2[e - nw] = s;
}
