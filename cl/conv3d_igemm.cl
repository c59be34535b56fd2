/* Implicit-GEMM 3D convolution for GPUs (host: src/backends/opencl/
 * conv3d_igemm.c, which documents the build options and their limits).
 *
 * The input uses the padded flat-position layout of cl/conv3d.cl: output
 * position q of a slab reads x[q + off[t]] for tap t, off[t] = (kz*Hp +
 * ky)*Wp + kx, from a small table in local memory. So
 *   forward     y[co][q]  = sum over kk = ci*TAPS + t of A[kk][co] * B[kk][q]
 *               A: weights rearranged K-major (conv3d_igemm_weights),
 *               B: x[ci][q + off[t]] gathered while staging the tile;
 *   weight grad dW[co][kk] = sum over q of dy[co][q] * x[ci][q + off[t]],
 *               split over chunks of q into partial sums (split-K).
 * Work-group (NDIMC, MDIMC) computes an MWG x NWG block; work-item (tn, tm)
 * a TM x TN register tile at rows tm + i*MDIMC, columns tn + j*NDIMC, so
 * local reads are broadcasts or consecutive and stores are coalesced.
 * Tiles of KWG are staged in padded local memory by all work-items.
 *
 * Remainders are written a - (a/b)*b: LLVM rewrites a % b next to a / b
 * with a `freeze` instruction that oclgrind cannot execute.
 */
#ifndef KD
#define KD 3
#endif
#ifndef KH
#define KH 3
#endif
#ifndef KW
#define KW 3
#endif
#ifndef MWG
#define MWG 64
#endif
#ifndef NWG
#define NWG 64
#endif
#ifndef KWG
#define KWG 16
#endif
#ifndef MDIMC
#define MDIMC 8
#endif
#ifndef NDIMC
#define NDIMC 16
#endif
#ifndef VWM
#define VWM 4
#endif
#ifndef VWN
#define VWN 4
#endif
#ifndef LPAD
#define LPAD 1
#endif
#ifndef RELU
#define RELU 0
#endif

#define TAPS (KD * KH * KW)
#define TM (MWG / MDIMC)
#define TN (NWG / NDIMC)
#define WGS (MDIMC * NDIMC)

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if VWM == 1
#define LOADM(p) (*(p))
#define STOREM(v, p) (*(p) = (v))
#define FLOATM float
#else
#define LOADM(p) CAT(vload, VWM)(0, (p))
#define STOREM(v, p) CAT(vstore, VWM)((v), 0, (p))
#define FLOATM CAT(float, VWM)
#endif
#if VWN == 1
#define LOADN(p) (*(p))
#define STOREN(v, p) (*(p) = (v))
#define FLOATN float
#else
#define LOADN(p) CAT(vload, VWN)(0, (p))
#define STOREN(v, p) CAT(vstore, VWN)((v), 0, (p))
#define FLOATN CAT(float, VWN)
#endif

#if RELU
#define ACT(v) fmax((v), 0.0f)
#else
#define ACT(v) (v)
#endif

/* Rounds of the cooperative loads: i = lid + r*WGS for r < ROUNDS(count);
 * the host requires count to be a multiple of WGS, so every work-item
 * loads in every round, as CLBlast requires too. (With idle work-items in
 * a round and a `continue` past the barriers, PoCL 3.1 gave wrong sums or
 * crashed for some tile sets where oclgrind found no fault; which of the
 * two it was is not isolated, both are gone.) */
#define ROUNDS(count) ((count) / WGS)

/* Flat offset of tap t in a padded volume of rows wp, planes hp x wp. */
inline int tap_off(const int t, const int hp, const int wp)
{
    const int kz = t / (KH * KW);
    const int r = t - kz * (KH * KW);
    const int ky = r / KW;
    const int kx = r - ky * KW;
    return (kz * hp + ky) * wp + kx;
}

/* Whether the flat range [a, b] touches a row that can be nonzero: planes
 * [pz0, pz1), rows [py0, py1) within a plane. */
inline int range_live(const int a, const int b, const int hp, const int wp,
                      const int pz0, const int pz1, const int py0,
                      const int py1)
{
    for (int r = a / wp; r <= b / wp; r++) {
        const int pl = r / hp;
        const int rr = r - pl * hp;
        if (pl >= pz0 && pl < pz1 && rr >= py0 && rr < py1)
            return 1;
    }
    return 0;
}

/* The multiply of one staged KWG step: acc += As^T Bs for this tile. */
#define MICRO_KERNEL(As, Bs, acc, tm, tn)                                     \
    for (int k = 0; k < KWG; k++) {                                           \
        float a[TM], b[TN];                                                   \
        _Pragma("unroll") for (int i = 0; i < TM; i++) a[i] =                 \
            As[k][(tm) + i * MDIMC];                                          \
        _Pragma("unroll") for (int j = 0; j < TN; j++) b[j] =                 \
            Bs[k][(tn) + j * NDIMC];                                          \
        _Pragma("unroll") for (int i = 0; i < TM; i++)                        \
            _Pragma("unroll") for (int j = 0; j < TN; j++) acc[i][j] =        \
                fma(a[i], b[j], acc[i][j]);                                   \
    }

/* wa[kk][co] (kk < kp, co < mp, zero padded) from w (co_n, ci_n, TAPS);
 * flip != 0: w is a forward weight (ci_n, co_n, TAPS) used for the data
 * gradient (channels swapped, taps reversed). */
__kernel void conv3d_igemm_weights(__global const float *restrict w,
                                   __global float *restrict wa, const int co_n,
                                   const int ci_n, const int kp, const int mp,
                                   const int flip)
{
    const int gid = get_global_id(0);
    if (gid >= kp * mp)
        return;
    const int kk = gid / mp;
    const int co = gid - kk * mp;
    float v = 0.0f;
    if (co < co_n && kk < ci_n * TAPS) {
        const int ci = kk / TAPS;
        const int t = kk - ci * TAPS;
        v = flip ? w[((size_t)ci * co_n + co) * TAPS + TAPS - 1 - t]
                 : w[((size_t)co * ci_n + ci) * TAPS + t];
    }
    wa[gid] = v;
}

/* dst (N, cd, dd, hd, wd) voxel (z, y, x) = src (N, cs, d, h, w) voxel
 * (z + zoff - pd, y - ph, x - pw), zero outside src and for channels
 * c >= cs: the zero-padded copy (padding per axis) and dy in the padded
 * geometry. One work-item per element: coalesced on a GPU. */
__kernel void conv3d_igemm_embed(__global const float *restrict src,
                                 __global float *restrict dst, const int cs,
                                 const int cd, const int d, const int h,
                                 const int w, const int dd, const int hd,
                                 const int wd, const int pd, const int ph,
                                 const int pw, const int zoff, const int total)
{
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int r = i / wd;
    const int x = i - r * wd;
    const int t = r / hd;
    const int y = r - t * hd;
    const int t2 = t / dd;
    const int z = t - t2 * dd;
    const int n = t2 / cd;
    const int c = t2 - n * cd;
    const int sz = z + zoff - pd, sy = y - ph, sx = x - pw;
    float v = 0.0f;
    if (c < cs && sz >= 0 && sz < d && sy >= 0 && sy < h && sx >= 0 && sx < w)
        v = src[((((size_t)n * cs + c) * d + sz) * h + sy) * w + sx];
    dst[i] = v;
}

/* Stages the weight tile: As[k][m] = wa[k0 + k][m0 + m] (wa is padded to
 * whole tiles, so no guard). */
inline void fwd_load_a(__local float (*As)[MWG + LPAD],
                       __global const float *restrict wa, const int mp,
                       const int k0, const int m0, const int lid)
{
    #pragma unroll
    for (int r = 0; r < ROUNDS(KWG * (MWG / VWM)); r++) {
        const int i = lid + r * WGS;
        const int k = i / (MWG / VWM);
        const int mv = i - k * (MWG / VWM);
        STOREM(LOADM(wa + (size_t)(k0 + k) * mp + m0 + mv * VWM),
               &As[k][mv * VWM]);
    }
}

/* Stages the input tile: Bs[k][j] = x[ci][q0 + j + off[t]] for kk = k0 + k
 * = ci*TAPS + t, zero past kdim or lq. */
inline void fwd_load_b(__local float (*Bs)[NWG + LPAD],
                       __global const float *restrict xn,
                       __local const int *off, const int xstride,
                       const int kdim, const int lq, const int k0,
                       const int q0, const int lid)
{
    #pragma unroll
    for (int r = 0; r < ROUNDS(KWG * (NWG / VWN)); r++) {
        const int i = lid + r * WGS;
        const int k = i / (NWG / VWN);
        const int nv = i - k * (NWG / VWN);
        const int kk = k0 + k, q = q0 + nv * VWN;
        __local float *d = &Bs[k][nv * VWN];
        const int ci = kk / TAPS;
        __global const float *s =
            xn + (size_t)ci * xstride + q + off[kk - ci * TAPS];
        if (kk < kdim && q + VWN <= lq) {
            STOREN(LOADN(s), d);
        } else {
            for (int j = 0; j < VWN; j++)
                d[j] = (kk < kdim && q + j < lq) ? s[j] : 0.0f;
        }
    }
}

/* Whether K tile [k0, k0 + KWG) reads any live tap (the others multiply
 * zero padding only). */
inline int ktile_live(__local const int *live, const int k0, const int kdim)
{
    for (int k = k0; k < min(k0 + KWG, kdim); k++) {
        const int ci = k / TAPS;
        if (live[k - ci * TAPS])
            return 1;
    }
    return 0;
}

/* y(n, co, slab) = sum over kk of wa[kk][co] * x[ci][q + off[t]] (+ bias),
 * stored where the position is an output voxel (x < wout, y < hout).
 * Group (q tile, co tile, n). x: padded input from element xoff on,
 * channel stride xstride; y: from element yoff on, channel stride ystride.
 * skip != 0: only planes [pz0, pz1) and rows [py0, py1) of the padded
 * input can be nonzero, and K tiles whose taps read only zero rows for
 * this q tile are skipped (the same for the whole group: barriers stay
 * uniform). */
__kernel __attribute__((reqd_work_group_size(NDIMC, MDIMC, 1))) void
conv3d_igemm_fwd(__global const float *restrict x,
                 __global const float *restrict wa,
                 __global const float *restrict bias,
                 __global float *restrict y, const int cin, const int cout,
                 const int mp, const int hp, const int wp, const int xstride,
                 const int xoff, const int hout, const int wout,
                 const int ystride, const int yoff, const int lq,
                 const int use_bias, const int skip, const int pz0,
                 const int pz1, const int py0, const int py1)
{
    __local float As[KWG][MWG + LPAD];
    __local float Bs[KWG][NWG + LPAD];
    __local int off[TAPS];
    __local int live[TAPS];
    const int tn = get_local_id(0), tm = get_local_id(1);
    const int lid = tm * NDIMC + tn;
    const int q0 = get_group_id(0) * NWG;
    const int m0 = get_group_id(1) * MWG;
    const int n = get_group_id(2);
    const int kdim = cin * TAPS;
    const int qlast = min(q0 + NWG, lq) - 1;
    for (int t = lid; t < TAPS; t += WGS) {
        const int o = tap_off(t, hp, wp);
        off[t] = o;
        live[t] = !skip ||
                  range_live(q0 + o, qlast + o, hp, wp, pz0, pz1, py0, py1);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    __global const float *xn = x + (size_t)n * cin * xstride + xoff;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++)
            acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < kdim; k0 += KWG) {
        /* the same for the whole group; the barriers stay unconditional
         * (PoCL 3.1 fails to compile a `continue` past them) */
        const int run = !skip || ktile_live(live, k0, kdim);
        if (run) {
            fwd_load_a(As, wa, mp, k0, m0, lid);
            fwd_load_b(Bs, xn, off, xstride, kdim, lq, k0, q0, lid);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (run) {
            MICRO_KERNEL(As, Bs, acc, tm, tn)
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const int hwp = hp * wp, ohw = hout * wout;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int co = m0 + tm + i * MDIMC;
        if (co >= cout)
            continue;
        const float b = use_bias ? bias[co] : 0.0f;
        __global float *yc = y + ((size_t)n * cout + co) * ystride + yoff;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int q = q0 + tn + j * NDIMC;
            if (q >= lq)
                continue;
            const int z = q / hwp;
            const int r = q - z * hwp;
            const int yy = r / wp;
            const int xx = r - yy * wp;
            if (yy < hout && xx < wout)
                yc[z * ohw + yy * wout + xx] = ACT(acc[i][j] + b);
        }
    }
}

/* Stages dy for the weight gradient: As[k][m] = dyq[m0 + m][q0 + k], zero
 * past cout or qb. Loads run along q (coalesced); the transposed local
 * stores are what LPAD spreads over the banks. */
inline void bww_load_a(__local float (*As)[MWG + LPAD],
                       __global const float *restrict dn, const int sq,
                       const int cout, const int m0, const int q0,
                       const int qb, const int lid)
{
    #pragma unroll
    for (int r = 0; r < ROUNDS(MWG * (KWG / VWM)); r++) {
        const int i = lid + r * WGS;
        const int m = i / (KWG / VWM);
        const int kv = i - m * (KWG / VWM);
        const int co = m0 + m, q = q0 + kv * VWM;
        __global const float *s = dn + (size_t)co * sq + q;
        float v[VWM];
        if (co < cout && q + VWM <= qb) {
            STOREM(LOADM(s), v);
        } else {
            for (int j = 0; j < VWM; j++)
                v[j] = (co < cout && q + j < qb) ? s[j] : 0.0f;
        }
        for (int j = 0; j < VWM; j++)
            As[kv * VWM + j][m] = v[j];
    }
}

/* Stages x for the weight gradient: Bs[k][j] = x[ci][q0 + k + off[t]] for
 * column n0 + j = ci*TAPS + t, zero past kdim or qb. */
inline void bww_load_b(__local float (*Bs)[NWG + LPAD],
                       __global const float *restrict xn,
                       __local const int *off, const int xstride,
                       const int kdim, const int n0, const int q0,
                       const int qb, const int lid)
{
    #pragma unroll
    for (int r = 0; r < ROUNDS(NWG * (KWG / VWN)); r++) {
        const int i = lid + r * WGS;
        const int c = i / (KWG / VWN);
        const int kv = i - c * (KWG / VWN);
        const int kk = n0 + c, q = q0 + kv * VWN;
        const int ci = kk / TAPS;
        __global const float *s =
            xn + (size_t)ci * xstride + q + off[kk - ci * TAPS];
        float v[VWN];
        if (kk < kdim && q + VWN <= qb) {
            STOREN(LOADN(s), v);
        } else {
            for (int j = 0; j < VWN; j++)
                v[j] = (kk < kdim && q + j < qb) ? s[j] : 0.0f;
        }
        for (int j = 0; j < VWN; j++)
            Bs[kv * VWN + j][c] = v[j];
    }
}

/* Partial weight (and bias) gradients of one chunk of positions:
 * part[ch0 + ch][co*kdim + kk] = sum over q in the chunk of
 *     dyq(n, co, q) * x(n, ci, q + off[t]),  kk = ci*TAPS + t,
 * bpart[(ch0 + ch)*pstride + boff + co] = sum over the chunk of dyq(n, co)
 * (by the groups of the first kk tile, with_bias != 0).
 * Group (kk tile, co tile, ch), ch = n*nq + chunk over [chunk*qchunk, ...)
 * of [0, lq). dyq: (N, cout, sq), dy in the padded geometry, zero at the
 * positions that are not output voxels. Sums run in a fixed order. */
__kernel __attribute__((reqd_work_group_size(NDIMC, MDIMC, 1))) void
conv3d_igemm_bww(__global const float *restrict x,
                 __global const float *restrict dyq,
                 __global float *restrict part, __global float *restrict bpart,
                 const int cin, const int cout, const int hp, const int wp,
                 const int xstride, const int xoff, const int sq,
                 const int lq, const int nq, const int qchunk,
                 const int pstride, const int boff, const int ch0,
                 const int with_bias)
{
    __local float As[KWG][MWG + LPAD];
    __local float Bs[KWG][NWG + LPAD];
    __local int off[TAPS];
    const int tn = get_local_id(0), tm = get_local_id(1);
    const int lid = tm * NDIMC + tn;
    const int n0 = get_group_id(0) * NWG;
    const int m0 = get_group_id(1) * MWG;
    const int ch = get_group_id(2);
    const int n = ch / nq;
    const int qa = (ch - n * nq) * qchunk;
    const int qb = min(qa + qchunk, lq);
    const int kdim = cin * TAPS;
    for (int t = lid; t < TAPS; t += WGS)
        off[t] = tap_off(t, hp, wp);
    barrier(CLK_LOCAL_MEM_FENCE);

    __global const float *xn = x + (size_t)n * cin * xstride + xoff;
    __global const float *dn = dyq + (size_t)n * cout * sq;
    const int bias_here = with_bias && get_group_id(0) == 0 && tn == 0;
    float acc[TM][TN], bsum[TM];
#pragma unroll
    for (int i = 0; i < TM; i++) {
        bsum[i] = 0.0f;
#pragma unroll
        for (int j = 0; j < TN; j++)
            acc[i][j] = 0.0f;
    }
    for (int q0 = qa; q0 < qb; q0 += KWG) {
        bww_load_a(As, dn, sq, cout, m0, q0, qb, lid);
        bww_load_b(Bs, xn, off, xstride, kdim, n0, q0, qb, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (bias_here)
            for (int k = 0; k < KWG; k++)
#pragma unroll
                for (int i = 0; i < TM; i++)
                    bsum[i] += As[k][tm + i * MDIMC];
        MICRO_KERNEL(As, Bs, acc, tm, tn)
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    __global float *p = part + (size_t)(ch0 + ch) * pstride;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int co = m0 + tm + i * MDIMC;
        if (co >= cout)
            continue;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int kk = n0 + tn + j * NDIMC;
            if (kk < kdim)
                p[(size_t)co * kdim + kk] = acc[i][j];
        }
        if (bias_here)
            bpart[(size_t)(ch0 + ch) * pstride + boff + co] = bsum[i];
    }
}
