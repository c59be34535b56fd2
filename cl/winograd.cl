/* Winograd F(2x2x2, 3x3x3): a stride-1 3x3x3 convolution computed on output
 * tiles of 2x2x2 from input tiles of 4x4x4 (Lavin & Gray 2016, in 3D).
 * Per tile and channel pair it takes 64 multiplications instead of 8*27 =
 * 216, 3.4x fewer; the rest is additions in three transforms:
 *   U = G g G' per axis     (weights, 3 -> 4 per axis)
 *   V = B' d B per axis     (input tiles, 4 -> 4)
 *   M[xi] = sum over ci of U[xi][co][ci] V[xi][ci]   (64 GEMMs)
 *   y = A' M A per axis     (4 -> 2) + bias, ReLU
 * with  B' = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *       G  = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *       A' = [1 1 1 0; 0 1 -1 -1]:
 * every coefficient is 0, +-1 or +-1/2, so the transforms add little
 * rounding (the op tests hold it to the direct kernels' tolerance).
 *
 * Tiles are numbered (tz * th + ty) * tw + tx over the output; the host
 * runs a chunk of tc tiles from t0 on at a time (its V and M fit the
 * scratch budget) and lays them out for the GEMM: the chunk's tile t in
 * blocks of XB tiles,
 *   V[xi][tb][ci][XB]       (one block's channels contiguous),
 *   U[xi][cb][ci][COB]      (output channels in blocks of COB, U_CBS apart),
 *   M[xi][cb][tb][COB][XB],
 * so the GEMM's inner loop streams two contiguous arrays.
 *
 * Build options: VW (vector width), NV (vectors per tile block: XB =
 * VW * NV tiles), COB (output channels per GEMM work-item), RELU,
 * SPLIT_SHUFFLE (0 under oclgrind). */
#ifndef NV
#define NV 2
#endif
#ifndef COB
#define COB 8
#endif
#ifndef RELU
#define RELU 0
#endif
#ifndef SPLIT_SHUFFLE /* 1: .even/.odd (devices), 0: oclgrind, see below */
#define SPLIT_SHUFFLE 1
#endif

#include "vector_width.h"

#define XB (VW * NV)
typedef VEC floatv;

/* Floats between the planes xi and xi + 1 of U, V and M: the plane's size
 * and one cache line more. A transform touches all 64 planes of a tile;
 * with plane sizes a multiple of 4 KiB (most chunks) those 64 addresses
 * would share one set of an 8-way L1 cache. conv3d_wino.c's sizes()
 * allocates the same. */
#define XIPAD 16

/* Where tile t of channel c lies within a plane of V (or D): in blocks of
 * XB tiles, [tb][c][XB] (the forward GEMM streams a block's channels), or
 * with CMAJOR [c][t] (the weight gradient's GEMM streams each channel's
 * tiles). */
#ifndef CMAJOR
#define CMAJOR 0
#endif
#if CMAJOR
#define V_AT(t, c, nc, ntb) ((size_t)(c) * (ntb) * XB + (t))
#else
#define V_AT(t, c, nc, ntb)                                                    \
    (((size_t)((t) / XB) * (nc) + (c)) * XB + (t) - ((t) / XB) * XB)
#endif
/* Floats between U's channel blocks: a block's cin * COB and one cache
 * line more. The data gradient's wino_gemm_fu reads a few rows of every
 * block, blocks 8 KiB apart at 256 channels: without the line they all
 * fall into the same sets of the L1 cache (its GEMM 10 % slower). */
#define U_CBS(cin) ((size_t)(cin) * COB + 16)
#define U_XIS(ncb, cin) ((size_t)(ncb) * U_CBS(cin) + XIPAD)
#define V_XIS(ntb, cin) ((size_t)(ntb) * (cin) * XB + XIPAD)
#define M_XIS(ncb, ntb) ((size_t)(ncb) * (ntb) * COB * XB + XIPAD)

/* U from w (cout, cin, 3, 3, 3); flip: w is a forward weight (ci_n, co_n,
 * 3, 3, 3) used for the data gradient (channels swapped, taps reversed).
 * One work-item per (channel block, input channel): the transform runs
 * on 8-float vectors across the block's output channels, whose COB
 * floats are contiguous in U, so each plane takes whole-vector stores and
 * neighbouring work-items write neighbouring floats (vectors across the
 * input channels, stored one float per COB through a private array:
 * 8.4-10.7 ms for 256 -> 512 channels, now 5.9-7.1, on a 2-core EPYC;
 * what is left is writing U, 2.4x the weights: staging its planes in
 * local memory for longer runs gained nothing). Channels past co_n get
 * zero weights. */
__kernel void wino_weights(__global const float *restrict w,
                           __global float *restrict u, const int co_n,
                           const int ci_n, const int ncb, const int flip)
{
    const int r = get_global_id(0); /* cb * ci_n + ci */
    if (r >= ncb * ci_n)
        return;
    const int cb = r / ci_n;
    const int ci = r - cb * ci_n;
    const size_t xis = U_XIS(ncb, ci_n); /* stride of xi in u */
    __global float *o = u + cb * U_CBS(ci_n) + (size_t)ci * COB;
    for (int j0 = 0; j0 < COB; j0 += 8) {
        float gl[27][8];
        for (int i = 0; i < 8; i++) {
            const int co = cb * COB + j0 + i;
            const int live = j0 + i < COB && co < co_n;
            /* the filter's 27 taps in order (reversed: flip) */
            __global const float *s =
                w + (live ? (flip ? (size_t)ci * co_n + co
                                  : (size_t)co * ci_n + ci)
                          : 0) *
                        27 +
                (flip ? 26 : 0);
            const int step = flip ? -1 : 1;
            /* scalar loads: LLVM made gathers of them (half the time) */
#pragma clang loop vectorize(disable)
            for (int k = 0; k < 27; k++)
                gl[k][i] = live ? s[k * step] : 0.0f;
        }
        float8 a[3][3][4]; /* along x: 3 -> 4 */
        for (int z = 0; z < 3; z++)
            for (int y = 0; y < 3; y++) {
                const float8 g0 = vload8(0, gl[(z * 3 + y) * 3]),
                             g1 = vload8(0, gl[(z * 3 + y) * 3 + 1]),
                             g2 = vload8(0, gl[(z * 3 + y) * 3 + 2]);
                a[z][y][0] = g0;
                a[z][y][1] = 0.5f * (g0 + g1 + g2);
                a[z][y][2] = 0.5f * (g0 - g1 + g2);
                a[z][y][3] = g2;
            }
        float8 b[3][4][4]; /* along y */
        for (int z = 0; z < 3; z++)
            for (int x = 0; x < 4; x++) {
                const float8 g0 = a[z][0][x], g1 = a[z][1][x],
                             g2 = a[z][2][x];
                b[z][0][x] = g0;
                b[z][1][x] = 0.5f * (g0 + g1 + g2);
                b[z][2][x] = 0.5f * (g0 - g1 + g2);
                b[z][3][x] = g2;
            }
        const int lanes = min(8, COB - j0);
        for (int y = 0; y < 4; y++) /* along z, stored */
            for (int x = 0; x < 4; x++) {
                const float8 g0 = b[0][y][x], g1 = b[1][y][x],
                             g2 = b[2][y][x];
                const float8 e[4] = {g0, 0.5f * (g0 + g1 + g2),
                                     0.5f * (g0 - g1 + g2), g2};
                for (int z = 0; z < 4; z++) {
                    __global float *q = o + (z * 16 + y * 4 + x) * xis + j0;
                    if (lanes == 8) {
                        vstore8(e[z], 0, q);
                    } else {
                        float t[8];
                        vstore8(e[z], 0, t);
                        for (int i = 0; i < lanes; i++)
                            q[i] = t[i];
                    }
                }
            }
    }
}

/* The transforms work on TVW consecutive tiles per work-item (lanes),
 * a divisor of XB up to 8: vectors of TVW floats, and of 2 * TVW for a
 * row of input or output voxels (the even and odd columns of 2x2x2
 * tiles). */
#if XB % 8 == 0
#define TVW 8
#elif XB % 4 == 0
#define TVW 4
#elif XB % 2 == 0
#define TVW 2
#else
#define TVW 1
#endif
#if TVW == 1
typedef float tvec;
typedef float2 tvec2;
#define TLOAD(p) (*(p))
#define TSTORE(v, p) (*(p) = (v))
#else
typedef CAT(float, TVW) tvec;
#endif
#if TVW == 2
typedef float4 tvec2;
#elif TVW == 4
typedef float8 tvec2;
#elif TVW == 8
typedef float16 tvec2;
#endif
#if TVW > 1
#define TLOAD(p) CAT(vload, TVW)(0, (p))
#define TSTORE(v, p) CAT(vstore, TVW)((v), 0, (p))
#endif
#define TLOAD2(p) CAT(vload, TVW2)(0, (p))
#define TSTORE2(v, p) CAT(vstore, TVW2)((v), 0, (p))
#if TVW == 1
#define TVW2 2
#elif TVW == 2
#define TVW2 4
#elif TVW == 4
#define TVW2 8
#else
#define TVW2 16
#endif

/* A vector of TVW lanes from an expression of the lane, E(i); two
 * vectors' lanes interleaved.
 * Built in registers: lanes written one by one into a private array and
 * read back as a vector stall the store forwarding (29 % of in_transform's
 * samples for the deep layers' narrow rows, 2-core EPYC). */
#if TVW == 8
#define TV_OF(E) ((tvec)(E(0), E(1), E(2), E(3), E(4), E(5), E(6), E(7)))
#define TV_ZIP(p, q)                                                           \
    ((tvec2)(p.s0, q.s0, p.s1, q.s1, p.s2, q.s2, p.s3, q.s3, p.s4, q.s4,      \
             p.s5, q.s5, p.s6, q.s6, p.s7, q.s7))
#elif TVW == 4
#define TV_OF(E) ((tvec)(E(0), E(1), E(2), E(3)))
#define TV_ZIP(p, q) ((tvec2)(p.s0, q.s0, p.s1, q.s1, p.s2, q.s2, p.s3, q.s3))
#elif TVW == 2
#define TV_OF(E) ((tvec)(E(0), E(1)))
#define TV_ZIP(p, q) ((tvec2)(p.s0, q.s0, p.s1, q.s1))
#else
#define TV_OF(E) (E(0))
#define TV_ZIP(p, q) ((tvec2)(p, q))
#endif

/* dst = TV_OF(E) as a statement; oclgrind's uninitialized-value plugin
 * crashes on vectors built lane by lane (as it misreads .even/.odd), so
 * there (SPLIT_SHUFFLE 0) the lanes go through a private array. */
#if SPLIT_SHUFFLE
#define TV_SET(dst, E) ((dst) = TV_OF(E))
#else
#define TV_SET(dst, E)                                                         \
    do {                                                                       \
        float q_[TVW];                                                         \
        for (int i_ = 0; i_ < TVW; i_++)                                       \
            q_[i_] = E(i_);                                                    \
        (dst) = TLOAD(q_);                                                     \
    } while (0)
#endif

/* Tile tg's first voxel: z, y, x of the output, 2 * (tz, ty, tx). */
inline void tile_at(const int tg, const int th, const int tw, int *z,
                    int *y, int *x)
{
    const int tpl = th * tw;
    const int tz = tg / tpl;
    const int r = tg - tz * tpl;
    const int ty = r / tw;
    *z = 2 * tz;
    *y = 2 * ty;
    *x = 2 * (r - ty * tw);
}

/* The input tiles of TVW consecutive tiles from tile tg on (the first
 * `live` of them real, the rest zero) of one channel plane xs (d x h x w,
 * padded by pz, py, px), transformed: m = B' d B along each axis. When
 * the lanes are one row of tiles whose reads lie inside the row (most
 * tiles of a wide volume), a row of 4 input voxels per lane is two
 * vector loads, split into even and odd columns; else each lane is
 * gathered on its own. */
inline void in_transform(__global const float *restrict xs, const int d,
                         const int h, const int w, const int pz,
                         const int py, const int px, const int th,
                         const int tw, const int tg, const int live,
                         tvec m[4][4][4])
{
    int z0, y0, x0;
    tile_at(tg, th, tw, &z0, &y0, &x0);
    z0 -= pz;
    y0 -= py;
    x0 -= px;
    /* one row: all lanes live, same tile row, reads inside [0, w) */
    const int fast = live >= TVW && tg % tw + TVW <= tw && x0 >= 0 &&
                     x0 + 2 * TVW + 1 < w;
    /* else lane by lane: a lane whose 4x4x4 input lies inside loads
     * each row as one vector (narrow rows of the deep layers, blocks
     * across row ends), the others element by element */
    int lz[TVW], ly[TVW], lx[TVW], ll[TVW], li[TVW];
    if (!fast)
#pragma unroll
        for (int i = 0; i < TVW; i++) {
            tile_at(tg + i, th, tw, &lz[i], &ly[i], &lx[i]);
            lz[i] -= pz;
            ly[i] -= py;
            lx[i] -= px;
            ll[i] = i < live;
            li[i] = ll[i] && lz[i] >= 0 && lz[i] + 4 <= d && ly[i] >= 0 &&
                    ly[i] + 4 <= h && lx[i] >= 0 && lx[i] + 4 <= w;
        }
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            tvec e0, e1, e2, e3;
            if (fast) {
                const int z = z0 + a, y = y0 + b;
                if (z >= 0 && z < d && y >= 0 && y < h) {
                    __global const float *p =
                        xs + ((size_t)z * h + y) * w + x0;
#if SPLIT_SHUFFLE
                    const tvec2 r0 = TLOAD2(p), r2 = TLOAD2(p + 2);
                    e0 = r0.even;
                    e1 = r0.odd;
                    e2 = r2.even;
                    e3 = r2.odd;
#else
                    /* the same loads, lanes split through private arrays:
                     * oclgrind's uninitialized-value plugin misreads
                     * .even/.odd (which PoCL runs 2x faster) */
                    float rr[2 * TVW + 2], q[4][TVW];
                    TSTORE2(TLOAD2(p), rr);
                    rr[2 * TVW] = p[2 * TVW];
                    rr[2 * TVW + 1] = p[2 * TVW + 1];
                    for (int i = 0; i < TVW; i++)
                        for (int c = 0; c < 4; c++)
                            q[c][i] = rr[2 * i + c];
                    e0 = TLOAD(q[0]);
                    e1 = TLOAD(q[1]);
                    e2 = TLOAD(q[2]);
                    e3 = TLOAD(q[3]);
#endif
                } else {
                    e0 = e1 = e2 = e3 = (tvec)0.0f;
                }
            } else {
                float4 r[TVW]; /* lane i's row of 4 voxels */
#pragma unroll
                for (int i = 0; i < TVW; i++) {
                    const int z = lz[i] + a, y = ly[i] + b;
                    if (li[i]) {
                        r[i] = vload4(0, xs + ((size_t)z * h + y) * w + lx[i]);
                        continue;
                    }
                    const int row =
                        ll[i] && z >= 0 && z < d && y >= 0 && y < h;
                    __global const float *p =
                        xs + ((size_t)(row ? z : 0) * h + (row ? y : 0)) * w;
                    const int xx = lx[i];
#define IN_X(c) (row && xx + (c) >= 0 && xx + (c) < w ? p[xx + (c)] : 0.0f)
                    r[i] = (float4)(IN_X(0), IN_X(1), IN_X(2), IN_X(3));
#undef IN_X
                }
#define R_S0(i) r[i].s0
#define R_S1(i) r[i].s1
#define R_S2(i) r[i].s2
#define R_S3(i) r[i].s3
                TV_SET(e0, R_S0);
                TV_SET(e1, R_S1);
                TV_SET(e2, R_S2);
                TV_SET(e3, R_S3);
#undef R_S0
#undef R_S1
#undef R_S2
#undef R_S3
            }
            m[a][b][0] = e0 - e2;
            m[a][b][1] = e1 + e2;
            m[a][b][2] = e2 - e1;
            m[a][b][3] = e1 - e3;
        }
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < 4; c++) {
            const tvec e0 = m[a][0][c], e1 = m[a][1][c], e2 = m[a][2][c],
                       e3 = m[a][3][c];
            m[a][0][c] = e0 - e2;
            m[a][1][c] = e1 + e2;
            m[a][2][c] = e2 - e1;
            m[a][3][c] = e1 - e3;
        }
    for (int b = 0; b < 4; b++)
        for (int c = 0; c < 4; c++) {
            const tvec e0 = m[0][b][c], e1 = m[1][b][c], e2 = m[2][b][c],
                       e3 = m[3][b][c];
            m[0][b][c] = e0 - e2;
            m[1][b][c] = e1 + e2;
            m[2][b][c] = e2 - e1;
            m[3][b][c] = e1 - e3;
        }
}

/* Stores a transform's 64 planes of TVW tiles, plane xi at o + xi * xis,
 * into either address space. */
#define STORE_PLANES(NAME, AS)                                                 \
    inline void NAME(tvec m[4][4][4], AS float *restrict o, const size_t xis)  \
    {                                                                          \
        for (int a = 0; a < 4; a++)                                            \
            for (int b = 0; b < 4; b++)                                        \
                for (int c = 0; c < 4; c++)                                    \
                    TSTORE(m[a][b][c], o + (a * 16 + b * 4 + c) * xis);        \
    }
STORE_PLANES(store_planes_g, __global)
STORE_PLANES(store_planes_l, __local)

/* V from x (one sample: cin planes of d x h x w from element xoff on):
 * work-item (g, ci) transforms the TVW tiles from g * TVW on, g * TVW <
 * ntb * XB; tiles past tc get zeros. */
__kernel void wino_input(__global const float *restrict x,
                         __global float *restrict v, const int cin,
                         const int xoff, const int d, const int h, const int w,
                         const int pz, const int py, const int px,
                         const int th, const int tw, const int t0,
                         const int tc, const int ntb)
{
    const int g = get_global_id(0);
    const int ci = get_global_id(1);
    if (g >= ntb * (XB / TVW) || ci >= cin)
        return;
    const int t = g * TVW;
    tvec m[4][4][4];
    in_transform(x + xoff + (size_t)ci * d * h * w, d, h, w, pz, py, px, th,
                 tw, t0 + t, tc - t, m);
    store_planes_g(m, v + V_AT(t, ci, cin, ntb), V_XIS(ntb, cin));
}

/* One block of the 64 GEMMs: acc[c][j] = sum over ci of U (up: COB
 * floats per channel) times V (vp: XB tiles per channel), V in either
 * address space (__global: the chunked path, __local: the fused kernel).
 * Each loaded vector of V feeds COB FMAs. */
#define GEMM_BLOCK(NAME, AS)                                                   \
    inline void NAME(AS const float *restrict vp,                              \
                     __global const float *restrict up, const int cin,         \
                     floatv acc[COB][NV])                                      \
    {                                                                          \
        for (int c = 0; c < COB; c++)                                          \
            for (int j = 0; j < NV; j++)                                       \
                acc[c][j] = (floatv)0.0f;                                      \
        for (int ci = 0; ci < cin; ci++, vp += XB, up += COB) {                \
            floatv e[NV];                                                      \
            _Pragma("unroll") for (int j = 0; j < NV; j++)                     \
                e[j] = VLOAD(vp + j * VW);                                     \
            _Pragma("unroll") for (int c = 0; c < COB; c++)                    \
            {                                                                  \
                const floatv wv = (floatv)up[c];                               \
                _Pragma("unroll") for (int j = 0; j < NV; j++)                 \
                    acc[c][j] = fma(wv, e[j], acc[c][j]);                      \
            }                                                                  \
        }                                                                      \
    }
GEMM_BLOCK(gemm_block_g, __global)
GEMM_BLOCK(gemm_block_l, __local)

/* The GEMMs' accumulators of block (xi, cb, tb) into M. */
inline void store_m(__global float *restrict m, floatv acc[COB][NV],
                    const int xi, const int cb, const int tb, const int ncb,
                    const int ntb)
{
    __global float *o =
        m + xi * M_XIS(ncb, ntb) + ((size_t)cb * ntb + tb) * COB * XB;
#pragma unroll
    for (int c = 0; c < COB; c++)
#pragma unroll
        for (int j = 0; j < NV; j++)
            VSTORE(acc[c][j], o + c * XB + j * VW);
}

/* V of tile block tb in plane xi (the chunked GEMMs' input). */
inline __global const float *v_block(__global const float *restrict v,
                                     const int xi, const int tb,
                                     const int cin, const int ntb)
{
    return v + xi * V_XIS(ntb, cin) + (size_t)tb * cin * XB;
}

/* M[xi][cb][tb] = U[xi][cb] x V[xi][tb]: work-item (tb, cb, xi) keeps
 * COB x NV vector accumulators; each loaded vector of V feeds COB FMAs.
 * Tile blocks vary fastest: the chunk's V[xi] (small) stays in cache
 * while each block of U[xi] (large for deep layers) is read once. */
__kernel void wino_gemm(__global const float *restrict v,
                        __global const float *restrict u,
                        __global float *restrict m, const int cin,
                        const int ntb, const int ncb)
{
    const int tb = get_global_id(0);
    const int cb = get_global_id(1);
    const int xi = get_global_id(2);
    if (cb >= ncb || tb >= ntb)
        return;
    __global const float *vp = v_block(v, xi, tb, cin, ntb);
    __global const float *up =
        u + xi * U_XIS(ncb, cin) + cb * U_CBS(cin);
    floatv acc[COB][NV];
    gemm_block_g(vp, up, cin, acc);
    store_m(m, acc, xi, cb, tb, ncb, ntb);
}

#ifdef FCOB
/* The data gradient's GEMM on the forward pass's U (built with FCOB, the
 * forward's channel block), so that a training step transforms each
 * weight once (conv3d_wino.c's weight cache). The data gradient is the
 * convolution of dy with the taps reversed and the channels swapped; G
 * applied to reversed taps (g2, g1, g0) gives rows 3, 1, 2, 0 of G g, so
 * its plane xi is the forward's plane with each axis index 0 <-> 3, and
 * its U[ci][co] the forward's U[co][ci]: the forward lays out
 * [xi][co / FCOB][ci][co % FCOB], so a block of COB data outputs (rows
 * ci) reads FCOB consecutive floats per row, rows FCOB apart. */
inline int flip_xi(const int xi)
{
    int a = xi >> 4, b = (xi >> 2) & 3, c = xi & 3;
    a = a == 0 || a == 3 ? 3 - a : a;
    b = b == 0 || b == 3 ? 3 - b : b;
    c = c == 0 || c == 3 ? 3 - c : c;
    return (a * 4 + b) * 4 + c;
}

/* acc[c][j] = sum over the cin channels k of dy of U(row c, k) V(k);
 * ROW(c): the row of output c (clamped to `last` in a partial block,
 * whose extra rows are never stored by wino_output). */
#define GEMM_FU_BLOCK(NAME, ROW)                                               \
    inline void NAME(__global const float *restrict vp,                        \
                     __global const float *restrict up, const int cin,         \
                     const size_t kbs, const int last, floatv acc[COB][NV])    \
    {                                                                          \
        (void)last;                                                            \
        for (int c = 0; c < COB; c++)                                          \
            for (int j = 0; j < NV; j++)                                       \
                acc[c][j] = (floatv)0.0f;                                      \
        const int nfull = cin / FCOB;                                          \
        for (int kb = 0; kb < nfull; kb++, up += kbs) {                        \
            _Pragma("unroll") for (int kk = 0; kk < FCOB; kk++, vp += XB)      \
            {                                                                  \
                floatv e[NV];                                                  \
                _Pragma("unroll") for (int j = 0; j < NV; j++)                 \
                    e[j] = VLOAD(vp + j * VW);                                 \
                _Pragma("unroll") for (int c = 0; c < COB; c++)                \
                {                                                              \
                    const floatv wv = (floatv)up[ROW(c) * FCOB + kk];          \
                    _Pragma("unroll") for (int j = 0; j < NV; j++)             \
                        acc[c][j] = fma(wv, e[j], acc[c][j]);                  \
                }                                                              \
            }                                                                  \
        }                                                                      \
        /* the forward's last block, partial: its padded channels      \
         * have no dy */                                                       \
        for (int kk = 0; kk < cin - nfull * FCOB; kk++, vp += XB) {            \
            floatv e[NV];                                                      \
            for (int j = 0; j < NV; j++)                                       \
                e[j] = VLOAD(vp + j * VW);                                     \
            for (int c = 0; c < COB; c++) {                                    \
                const floatv wv = (floatv)up[ROW(c) * FCOB + kk];              \
                for (int j = 0; j < NV; j++)                                   \
                    acc[c][j] = fma(wv, e[j], acc[c][j]);                      \
            }                                                                  \
        }                                                                      \
    }
#define ROW_ALL(c) (c)
#define ROW_CLAMP(c) min((c), last)
GEMM_FU_BLOCK(gemm_fu_all, ROW_ALL)
GEMM_FU_BLOCK(gemm_fu_clamp, ROW_CLAMP)

/* wino_gemm's M for the data gradient from the forward's U: cin = dy's
 * channels (the forward's output channels, fncb blocks of FCOB), fci =
 * dx's (the forward's input channels, ncb blocks of COB here). */
__kernel void wino_gemm_fu(__global const float *restrict v,
                           __global const float *restrict u,
                           __global float *restrict m, const int cin,
                           const int ntb, const int ncb, const int fci,
                           const int fncb)
{
    const int tb = get_global_id(0);
    const int cb = get_global_id(1);
    const int xi = get_global_id(2);
    if (cb >= ncb || tb >= ntb)
        return;
    __global const float *vp = v_block(v, xi, tb, cin, ntb);
    const size_t kbs = (size_t)fci * FCOB + 16; /* the forward's U_CBS */
    __global const float *up =
        u + flip_xi(xi) * ((size_t)fncb * kbs + XIPAD) +
        (size_t)cb * COB * FCOB;
    floatv acc[COB][NV];
    if ((cb + 1) * COB <= fci)
        gemm_fu_all(vp, up, cin, kbs, 0, acc);
    else
        gemm_fu_clamp(vp, up, cin, kbs, fci - 1 - cb * COB, acc);
    store_m(m, acc, xi, cb, tb, ncb, ntb);
}
#endif

#if RELU
#define ACT(v) fmax((v), 0.0f)
#else
#define ACT(v) (v)
#endif

/* The output transform y = A' M A along each axis of TVW tiles' 4x4x4
 * products at p (product xi at p + xi * xis), in either address space
 * (__global: M of the chunked path, __local: the fused kernel's). It runs
 * plane by plane of the products (x, then y), adding each plane into the
 * two output planes. */
#define OUT_TRANSFORM(NAME, AS)                                                \
    inline void NAME(AS const float *restrict p, const size_t xis,             \
                     tvec r[2][2][2])                                          \
    {                                                                          \
        for (int a = 0; a < 4; a++) {                                          \
            tvec s[4][2];                                                      \
            for (int b = 0; b < 4; b++) {                                      \
                const int xi = (a * 4 + b) * 4;                                \
                const tvec e0 = TLOAD(p + xi * xis),                           \
                           e1 = TLOAD(p + (xi + 1) * xis),                     \
                           e2 = TLOAD(p + (xi + 2) * xis),                     \
                           e3 = TLOAD(p + (xi + 3) * xis);                     \
                s[b][0] = e0 + e1 + e2;                                        \
                s[b][1] = e1 - e2 - e3;                                        \
            }                                                                  \
            for (int c = 0; c < 2; c++) {                                      \
                const tvec q0 = s[0][c] + s[1][c] + s[2][c];                   \
                const tvec q1 = s[1][c] - s[2][c] - s[3][c];                   \
                /* A' column a: (1, 0), (1, 1), (1, -1), (0, -1) */            \
                if (a == 0) {                                                  \
                    r[0][0][c] = q0;                                           \
                    r[0][1][c] = q1;                                           \
                    r[1][0][c] = (tvec)0.0f;                                   \
                    r[1][1][c] = (tvec)0.0f;                                   \
                } else if (a == 1) {                                           \
                    r[0][0][c] += q0;                                          \
                    r[0][1][c] += q1;                                          \
                    r[1][0][c] += q0;                                          \
                    r[1][1][c] += q1;                                          \
                } else if (a == 2) {                                           \
                    r[0][0][c] += q0;                                          \
                    r[0][1][c] += q1;                                          \
                    r[1][0][c] -= q0;                                          \
                    r[1][1][c] -= q1;                                          \
                } else {                                                       \
                    r[1][0][c] -= q0;                                          \
                    r[1][1][c] -= q1;                                          \
                }                                                              \
            }                                                                  \
        }                                                                      \
    }
OUT_TRANSFORM(out_transform_g, __global)
OUT_TRANSFORM(out_transform_l, __local)

/* Stores TVW tiles' 2x2x2 outputs r (+ bias bv, activation) from tile tg
 * on, the first `live` of them, into the channel plane o (d x h x w).
 * Outputs past the edge (odd sizes) and lanes past `live` are not
 * stored. */
inline void out_store(__global float *restrict o, tvec r[2][2][2],
                      const float bv, const int tg, const int live,
                      const int th, const int tw, const int d, const int h,
                      const int w)
{
    int z0, y0, x0;
    tile_at(tg, th, tw, &z0, &y0, &x0);
    const int fast = live >= TVW && tg % tw + TVW <= tw && x0 + 2 * TVW <= w;
    if (fast) {
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                if (z0 + a < d && y0 + b < h) {
                    __global float *q =
                        o + ((size_t)(z0 + a) * h + y0 + b) * w + x0;
#if SPLIT_SHUFFLE
                    const tvec e0 = ACT(r[a][b][0] + bv),
                               e1 = ACT(r[a][b][1] + bv);
                    TSTORE2(TV_ZIP(e0, e1), q);
#else
                    /* interleaved through private arrays (as in
                     * in_transform) */
                    float e[2][TVW], row[2 * TVW];
                    TSTORE(ACT(r[a][b][0] + bv), e[0]);
                    TSTORE(ACT(r[a][b][1] + bv), e[1]);
                    for (int i = 0; i < TVW; i++) {
                        row[2 * i] = e[0][i];
                        row[2 * i + 1] = e[1][i];
                    }
                    TSTORE2(TLOAD2(row), q);
#endif
                }
        return;
    }
    float q[2][2][2][TVW];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++)
                TSTORE(ACT(r[a][b][c] + bv), q[a][b][c]);
    for (int i = 0; i < TVW && i < live; i++) {
        int zi, yi, xi;
        tile_at(tg + i, th, tw, &zi, &yi, &xi);
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 2; c++)
                    if (zi + a < d && yi + b < h && xi + c < w)
                        o[((size_t)(zi + a) * h + yi + b) * w + xi + c] =
                            q[a][b][c][i];
    }
}

/* y from M (one sample: cout planes of d x h x w from element yoff on):
 * work-item (g, co) for the TVW tiles from g * TVW on, g * TVW < tc. */
__kernel void wino_output(__global const float *restrict m,
                          __global const float *restrict bias,
                          __global float *restrict y, const int cout,
                          const int yoff, const int d, const int h,
                          const int w, const int th, const int tw,
                          const int t0, const int tc, const int ntb,
                          const int ncb, const int use_bias)
{
    const int g = get_global_id(0);
    const int co = get_global_id(1);
    const int t = g * TVW;
    if (t >= tc || co >= cout)
        return;
    const int tb = t / XB;
    const int l = t - tb * XB;
    const int cb = co / COB;
    const int j = co - cb * COB;
    tvec r[2][2][2]; /* [z][y][x] of the 2x2x2 outputs */
    out_transform_g(m + (((size_t)cb * ntb + tb) * COB + j) * XB + l,
                    M_XIS(ncb, ntb), r);
    out_store(y + yoff + (size_t)co * d * h * w, r,
              use_bias ? bias[co] : 0.0f, t0 + t, tc - t, th, tw, d, h, w);
}

/* The three steps in one kernel, for many tiles of few channels (the
 * first levels, where the chunked path's V and M, 8x the activations,
 * stream through memory): a work-group of one work-item takes one block
 * of XB tiles from tile b * XB on, transforms its input tiles of all
 * channels into vl (V[xi][ci][XB], 64 * cin * XB floats), and then for
 * each block of COB output channels runs the 64 products into ml
 * (M[xi][COB][XB]) and their output transform into y; both stay in the
 * core's cache. Each work-group reads all of U: deep layers (few tiles,
 * large U) take the chunked path. */
__kernel void wino_fused(__global const float *restrict x,
                         __global const float *restrict u,
                         __global const float *restrict bias,
                         __global float *restrict y,
                         __local float *restrict vl,
                         __local float *restrict ml, const int cin,
                         const int cout, const int xoff, const int yoff,
                         const int d, const int h, const int w, const int od,
                         const int oh, const int ow, const int pz,
                         const int py, const int px, const int th,
                         const int tw, const int tiles, const int ncb,
                         const int use_bias)
{
    const int t = get_group_id(0) * XB;
    if (t >= tiles)
        return;
    const size_t vxis = (size_t)cin * XB + XIPAD;
    for (int ci = 0; ci < cin; ci++)
        for (int g = 0; g < XB; g += TVW) {
            tvec m[4][4][4];
            in_transform(x + xoff + (size_t)ci * d * h * w, d, h, w, pz, py,
                         px, th, tw, t + g, tiles - t - g, m);
            store_planes_l(m, vl + (size_t)ci * XB + g, vxis);
        }
    const size_t mxis = (size_t)COB * XB + XIPAD;
    const size_t uxis = U_XIS(ncb, cin);
    for (int cb = 0; cb < ncb; cb++) {
        for (int xi = 0; xi < 64; xi++) {
            __local const float *vp = vl + xi * vxis;
            __global const float *up = u + xi * uxis + cb * U_CBS(cin);
            floatv acc[COB][NV];
            gemm_block_l(vp, up, cin, acc);
            __local float *o = ml + xi * mxis;
#pragma unroll
            for (int c = 0; c < COB; c++)
#pragma unroll
                for (int j = 0; j < NV; j++)
                    VSTORE(acc[c][j], o + c * XB + j * VW);
        }
        for (int c = 0; c < COB && cb * COB + c < cout; c++) {
            const int co = cb * COB + c;
            const float bv = use_bias ? bias[co] : 0.0f;
            __global float *o = y + yoff + (size_t)co * od * oh * ow;
            for (int g = 0; g < XB; g += TVW) {
                tvec r[2][2][2];
                out_transform_l(ml + c * XB + g, mxis, r);
                out_store(o, r, bv, t + g, tiles - t - g, th, tw, od, oh, ow);
            }
        }
    }
}

/* ---- weight gradient ------------------------------------------------ */
/* dU[xi][co][ci] = sum over tiles of D[xi][co] V[xi][ci], D = A dY A' per
 * axis, (y0, y1) -> (y0, y0 + y1, y0 - y1, -y1) (the output transform's
 * adjoint), V the input transform of x; then dw = G' dU G per axis, 4 -> 3:
 * (u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3). dU is summed
 * over the chunks and samples in order (no atomics: deterministic). */
#ifndef CIB
#define CIB 3
#endif
#define DU_XIS(cout, cin) ((size_t)(cout) * (cin) + XIPAD)

/* D = A dY A' per axis of a 2x2x2 tile's values e (vectors of any type
 * T): (y0, y1) -> (y0, y0 + y1, y0 - y1, -y1); dv[a][b][c] is plane
 * (a * 16 + b * 4 + c). */
#define DY_MATH(NAME, T)                                                       \
    inline void NAME(T e[2][2][2], T dv[4][4][4])                              \
    {                                                                          \
        T m[2][2][4]; /* along x: 2 -> 4 */                                    \
        for (int a = 0; a < 2; a++)                                            \
            for (int b = 0; b < 2; b++) {                                      \
                const T e0 = e[a][b][0], e1 = e[a][b][1];                      \
                m[a][b][0] = e0;                                               \
                m[a][b][1] = e0 + e1;                                          \
                m[a][b][2] = e0 - e1;                                          \
                m[a][b][3] = -e1;                                              \
            }                                                                  \
        T n[2][4][4]; /* along y */                                            \
        for (int a = 0; a < 2; a++)                                            \
            for (int c = 0; c < 4; c++) {                                      \
                const T e0 = m[a][0][c], e1 = m[a][1][c];                      \
                n[a][0][c] = e0;                                               \
                n[a][1][c] = e0 + e1;                                          \
                n[a][2][c] = e0 - e1;                                          \
                n[a][3][c] = -e1;                                              \
            }                                                                  \
        for (int b = 0; b < 4; b++) /* along z */                              \
            for (int c = 0; c < 4; c++) {                                      \
                const T e0 = n[0][b][c], e1 = n[1][b][c];                      \
                dv[0][b][c] = e0;                                              \
                dv[1][b][c] = e0 + e1;                                         \
                dv[2][b][c] = e0 - e1;                                         \
                dv[3][b][c] = -e1;                                             \
            }                                                                  \
    }
DY_MATH(dy_math_t, tvec)
DY_MATH(dy_math_v, floatv)

/* The dy transform of TVW tiles from tile tg on (the first `live` of them
 * real, the rest zero) of one channel plane ys (d x h x w): D = A dY A'
 * per axis, (y0, y1) -> (y0, y0 + y1, y0 - y1, -y1); dv[a][b][c] is plane
 * (a * 16 + b * 4 + c). Eight loads per tile and lane, gathered lane by
 * lane unless the lanes are one row inside the plane. */
inline void dy_transform(__global const float *restrict ys, const int d,
                         const int h, const int w, const int th,
                         const int tw, const int tg, const int live,
                         tvec dv[4][4][4])
{
    int z0, y0, x0;
    tile_at(tg, th, tw, &z0, &y0, &x0);
    /* all lanes live, in one tile row, their 2 * TVW columns inside */
    const int fast = live >= TVW && tg % tw + TVW <= tw && x0 + 2 * TVW <= w;
    tvec e[2][2][2];
    if (fast) {
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                const int z = z0 + a, y = y0 + b;
                if (z >= d || y >= h) {
                    e[a][b][0] = e[a][b][1] = (tvec)0.0f;
                    continue;
                }
                __global const float *p = ys + ((size_t)z * h + y) * w + x0;
#if SPLIT_SHUFFLE
                const tvec2 r = TLOAD2(p);
                e[a][b][0] = r.even;
                e[a][b][1] = r.odd;
#else
                float q[2][TVW]; /* oclgrind: see in_transform */
                for (int i = 0; i < TVW; i++) {
                    q[0][i] = p[2 * i];
                    q[1][i] = p[2 * i + 1];
                }
                e[a][b][0] = TLOAD(q[0]);
                e[a][b][1] = TLOAD(q[1]);
#endif
            }
    } else {
        int lz[TVW], ly[TVW], lx[TVW];
#pragma unroll
        for (int i = 0; i < TVW; i++) {
            tile_at(tg + i, th, tw, &lz[i], &ly[i], &lx[i]);
            /* lanes past live: outside, zero */
            lz[i] = i < live ? lz[i] : d;
        }
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 2; c++) {
#define DY_AT(i)                                                               \
    (lz[i] + a < d && ly[i] + b < h && lx[i] + c < w                           \
         ? ys[((size_t)(lz[i] + a) * h + ly[i] + b) * w + lx[i] + c]           \
         : 0.0f)
                    TV_SET(e[a][b][c], DY_AT);
#undef DY_AT
                }
    }
    dy_math_t(e, dv);
}

/* D from dy (one sample: cout planes of d x h x w from element yoff on),
 * in V's layout with cout channels: work-item (g, co) for the TVW tiles
 * from g * TVW on; dy past the tensor's edges and tiles past tc are zero. */
__kernel void wino_dy(__global const float *restrict dy,
                      __global float *restrict dd, const int cout,
                      const int yoff, const int d, const int h, const int w,
                      const int th, const int tw, const int t0, const int tc,
                      const int ntb)
{
    const int g = get_global_id(0);
    const int co = get_global_id(1);
    if (g >= ntb * (XB / TVW) || co >= cout)
        return;
    const int t = g * TVW;
    tvec dv[4][4][4];
    dy_transform(dy + yoff + (size_t)co * d * h * w, d, h, w, th, tw, t0 + t,
                 tc - t, dv);
    store_planes_g(dv, dd + V_AT(t, co, cout, ntb), V_XIS(ntb, cout));
}

/* The input tiles' transposition into vl in registers: 8 tiles (TVW) by
 * 8 channels (VW a multiple of 8); else element by element (and under
 * oclgrind, see TV_SET). tl: 64 x 8 x TVW floats. */
#define BW_TRANSPOSE (SPLIT_SHUFFLE && TVW == 8 && VW % 8 == 0)

/* The weight gradient of few channels in one kernel: `groups` persistent
 * work-groups of one work-item, group p over its share of the n * nblk
 * blocks of XB tiles (sample by sample). Per block it transforms the
 * input tiles into vl (V[xi][tile][cinp], lanes over channels) and dy
 * into dl (D[xi][coutp][tile]), then adds D[xi] V[xi] into its dU in
 * local memory (dul: [xi][coutp][cinp], vectors of VW input channels by
 * COB output channels, no sums across lanes) and D's (1,1,1) plane (each
 * tile's sum of dy) into its db (dbl); at the end both go to partial p of
 * part (dU in wino_bw_weights' layout, then db), which wino_bw_weights and
 * wino_bw_bias_sum add in order: deterministic. cinp: cin rounded up to
 * VW, coutp: cout to COB; the padding stays zero. */
__kernel void wino_bw_fused(__global const float *restrict x,
                            __global const float *restrict dy,
                            __global float *restrict part,
                            __local float *restrict vl,
                            __local float *restrict dl,
                            __local float *restrict dul,
                            __local float *restrict dbl,
                            __local float *restrict tl, const int cin,
                            const int cout, const int n, const int d,
                            const int h, const int w, const int od,
                            const int oh, const int ow, const int pz,
                            const int py, const int px, const int th,
                            const int tw, const int tiles, const int groups)
{
    const int p = get_group_id(0);
    if (p >= groups)
        return;
    const int cinp = (cin + VW - 1) / VW * VW;
    const int coutp = (cout + COB - 1) / COB * COB;
    const size_t vxis = (size_t)XB * cinp + XIPAD;
    const size_t dxis = (size_t)coutp * XB + XIPAD;
    const size_t uxis = (size_t)coutp * cinp + XIPAD;
    for (size_t i = 0; i < 64 * vxis; i++)
        vl[i] = 0.0f;
    for (size_t i = 0; i < 64 * dxis; i++)
        dl[i] = 0.0f;
    for (size_t i = 0; i < 64 * uxis; i++)
        dul[i] = 0.0f;
    for (int co = 0; co < coutp; co++)
        dbl[co] = 0.0f;
    const int nblk = (tiles + XB - 1) / XB;
    const long units = (long)n * nblk;
    const long u0 = units * p / groups, u1 = units * (p + 1) / groups;
    for (long un = u0; un < u1; un++) {
        const int s = (int)(un / nblk);
        const int t = (int)(un - (long)s * nblk) * XB;
        __global const float *xn = x + (size_t)s * cin * d * h * w;
        __global const float *yn = dy + (size_t)s * cout * od * oh * ow;
#if BW_TRANSPOSE
        /* 8 channels' transforms at a time into tl ([xi][8][TVW], lanes
         * over tiles), then per plane an 8 x 8 transpose in registers
         * into vl (lanes over channels): the element-wise stores below
         * took 60 % of this kernel's own time (small preset, 2-core
         * EPYC) */
        for (int g = 0; g < XB; g += TVW)
            for (int cv = 0; cv < cin; cv += 8) {
                const int nc = min(8, cin - cv);
                for (int j = 0; j < nc; j++) {
                    tvec m[4][4][4];
                    in_transform(xn + (size_t)(cv + j) * d * h * w, d, h, w,
                                 pz, py, px, th, tw, t + g, tiles - t - g, m);
                    store_planes_l(m, tl + j * TVW, 8 * TVW);
                }
                /* channels past cin: zero (their dU is never stored; this
                 * keeps the padded lanes finite) */
                for (int j = nc; j < 8; j++)
                    for (int xi = 0; xi < 64; xi++)
                        vstore8((float8)0.0f, 0, tl + (xi * 8 + j) * TVW);
                for (int xi = 0; xi < 64; xi++) {
                    __local const float *r = tl + xi * 8 * TVW;
                    const float8 a0 = vload8(0, r), a1 = vload8(1, r),
                                 a2 = vload8(2, r), a3 = vload8(3, r),
                                 a4 = vload8(4, r), a5 = vload8(5, r),
                                 a6 = vload8(6, r), a7 = vload8(7, r);
                    __local float *o = vl + xi * vxis + (size_t)g * cinp + cv;
#define TILE_ROW(i)                                                            \
    vstore8((float8)(a0.s##i, a1.s##i, a2.s##i, a3.s##i, a4.s##i, a5.s##i,     \
                     a6.s##i, a7.s##i),                                        \
            0, o + (size_t)(i) * cinp)
                    TILE_ROW(0);
                    TILE_ROW(1);
                    TILE_ROW(2);
                    TILE_ROW(3);
                    TILE_ROW(4);
                    TILE_ROW(5);
                    TILE_ROW(6);
                    TILE_ROW(7);
#undef TILE_ROW
                }
            }
#else
        for (int ci = 0; ci < cin; ci++)
            for (int g = 0; g < XB; g += TVW) {
                tvec m[4][4][4];
                in_transform(xn + (size_t)ci * d * h * w, d, h, w, pz, py, px,
                             th, tw, t + g, tiles - t - g, m);
                __local float *o = vl + (size_t)g * cinp + ci;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++)
                        for (int c = 0; c < 4; c++) {
                            float e[TVW];
                            TSTORE(m[a][b][c], e);
                            __local float *q = o + (a * 16 + b * 4 + c) * vxis;
                            /* scalar stores: PoCL's LLVM made a scatter
                             * of them (vscatterqps), 40 % of the kernel */
#pragma clang loop vectorize(disable)
                            for (int i = 0; i < TVW; i++)
                                q[(size_t)i * cinp] = e[i];
                        }
            }
#endif
        for (int co = 0; co < cout; co++)
            for (int g = 0; g < XB; g += TVW) {
                tvec dv[4][4][4];
                dy_transform(yn + (size_t)co * od * oh * ow, od, oh, ow, th, tw,
                             t + g, tiles - t - g, dv);
                store_planes_l(dv, dl + (size_t)co * XB + g, dxis);
            }
        for (int co = 0; co < cout; co++) {
            __local const float *q = dl + 21 * dxis + (size_t)co * XB;
            float sum = 0.0f;
            for (int i = 0; i < XB; i++)
                sum += q[i];
            dbl[co] += sum;
        }
        for (int xi = 0; xi < 64; xi++) {
            __local const float *vx = vl + xi * vxis;
            __local const float *dx = dl + xi * dxis;
            __local float *ux = dul + xi * uxis;
            for (int cb = 0; cb < coutp; cb += COB)
                for (int cv = 0; cv < cinp; cv += VW) {
                    floatv acc[COB];
#pragma unroll
                    for (int c = 0; c < COB; c++)
                        acc[c] = (floatv)0.0f;
                    for (int tt = 0; tt < XB; tt++) {
                        const floatv e = VLOAD(vx + (size_t)tt * cinp + cv);
#pragma unroll
                        for (int c = 0; c < COB; c++)
                            acc[c] = fma((floatv)dx[(cb + c) * XB + tt], e,
                                         acc[c]);
                    }
#pragma unroll
                    for (int c = 0; c < COB; c++) {
                        __local float *o = ux + (size_t)(cb + c) * cinp + cv;
                        VSTORE(VLOAD(o) + acc[c], o);
                    }
                }
        }
    }
    const size_t pstride = 64 * DU_XIS(cout, cin) + cout;
    __global float *o = part + (size_t)p * pstride;
    for (int xi = 0; xi < 64; xi++)
        for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < cin; ci++)
                o[xi * DU_XIS(cout, cin) + (size_t)co * cin + ci] =
                    dul[xi * uxis + (size_t)co * cinp + ci];
    for (int co = 0; co < cout; co++)
        o[64 * DU_XIS(cout, cin) + co] = dbl[co];
}

/* db from the fused kernel's partials (in order): work-item per channel. */
__kernel void wino_bw_bias_sum(__global const float *restrict part,
                               __global float *restrict db, const int cout,
                               const int cin, const int parts)
{
    const int co = get_global_id(0);
    if (co >= cout)
        return;
    const size_t pstride = 64 * DU_XIS(cout, cin) + cout;
    float s = 0.0f;
    for (int k = 0; k < parts; k++)
        s += part[(size_t)k * pstride + 64 * DU_XIS(cout, cin) + co];
    db[co] = s;
}

/* Sum of a vector's lanes through a private array (see conv3d.cl's
 * hsum_b: oclgrind and lane extracts). */
inline float hsum_v(floatv v)
{
#if VW == 1
    return v;
#else
    float t[VW];
    VSTORE(v, t);
    float s = 0.0f;
    for (int i = 0; i < VW; i++)
        s += t[i];
    return s;
#endif
}

/* dU[xi] (+)= D[xi]' V[xi] over the chunk's ntb tile blocks: work-item
 * (ib, cb, xi) keeps COB x CIB vector accumulators over the tiles' lanes,
 * summed across lanes at the end; first: store instead of add (the first
 * chunk of the first sample). Channels past the tensors' are clamped on
 * load and not stored. */
__kernel void wino_bw_gemm(__global const float *restrict v,
                           __global const float *restrict dd,
                           __global float *restrict du, const int cin,
                           const int cout, const int ntb, const int nib,
                           const int ncb, const int first)
{
    const int ib = get_global_id(0);
    const int cb = get_global_id(1);
    const int xi = get_global_id(2);
    if (ib >= nib || cb >= ncb)
        return;
    __global const float *vp = v + xi * V_XIS(ntb, cin);
    __global const float *dp = dd + xi * V_XIS(ntb, cout);
    int co[COB], ci[CIB];
    for (int c = 0; c < COB; c++)
        co[c] = min(cb * COB + c, cout - 1);
    for (int k = 0; k < CIB; k++)
        ci[k] = min(ib * CIB + k, cin - 1);
    floatv acc[COB][CIB];
#pragma unroll
    for (int c = 0; c < COB; c++)
#pragma unroll
        for (int k = 0; k < CIB; k++)
            acc[c][k] = (floatv)0.0f;
    /* built with CMAJOR: each channel's ntb * XB tiles contiguous */
    const size_t nt = (size_t)ntb * XB;
    for (size_t t = 0; t < nt; t += VW) {
        floatv e[COB], f[CIB];
#pragma unroll
        for (int c = 0; c < COB; c++)
            e[c] = VLOAD(dp + co[c] * nt + t);
#pragma unroll
        for (int k = 0; k < CIB; k++)
            f[k] = VLOAD(vp + ci[k] * nt + t);
#pragma unroll
        for (int c = 0; c < COB; c++)
#pragma unroll
            for (int k = 0; k < CIB; k++)
                acc[c][k] = fma(e[c], f[k], acc[c][k]);
    }
    __global float *o = du + xi * DU_XIS(cout, cin);
    for (int c = 0; c < COB; c++)
        for (int k = 0; k < CIB; k++) {
            const int oc = cb * COB + c, ic = ib * CIB + k;
            if (oc < cout && ic < cin) {
                const float s = hsum_v(acc[c][k]);
                __global float *p = o + (size_t)oc * cin + ic;
                *p = first ? s : *p + s;
            }
        }
}

/* db[co] (+)= the sum of dy over the chunk's tiles: D's plane (1, 1, 1)
 * holds each tile's y0 + y1 along every axis, the sum of its 8 values. */
__kernel void wino_bw_bias(__global const float *restrict dd,
                           __global float *restrict db, const int cout,
                           const int ntb, const int first)
{
    const int co = get_global_id(0);
    if (co >= cout)
        return;
    /* built with CMAJOR: the channel's tiles contiguous */
    __global const float *p =
        dd + 21 * V_XIS(ntb, cout) + (size_t)co * ntb * XB;
    float s = 0.0f;
    for (int t = 0; t < ntb * XB; t++)
        s += p[t];
    db[co] = first ? s : db[co] + s;
}

/* The weight gradient of few tiles (the deep layers: 180 tiles of 256
 * channels at the paper net's bottom): wino_bw_gemm's sums over tiles
 * are a dozen vectors long there, and its sums across lanes cost more
 * than the FMAs. Tile-major D instead, D[xi][t][coutp] (vectors across
 * output channels, coutp a multiple of VW * NVO, zero past cout), gives
 * a GEMM whose accumulators are whole rows of dU: no sums across lanes.
 * dU comes out as [xi][ci][coutp] (wino_bw_weights' ldt). Built with
 * CMAJOR (V as wino_bw_gemm reads it) and NVO. */
#ifndef NVO
#define NVO 2
#endif
#define DT_XIS(tc, coutp) ((size_t)(tc) * (coutp) + XIPAD)
#define DUT_XIS(cin, coutp) ((size_t)(cin) * (coutp) + XIPAD)

/* D, tile-major, of the chunk's tc tiles from t0 on (one sample: cout
 * planes of d x h x w from element yoff on): work-item (t, cv) gathers
 * the tile's 8 values of VW channels from cv * VW on (zero past cout and
 * past the edges) and transforms them as vectors. */
__kernel void wino_dy_t(__global const float *restrict dy,
                        __global float *restrict dd, const int cout,
                        const int coutp, const int yoff, const int d,
                        const int h, const int w, const int th, const int tw,
                        const int t0, const int tc)
{
    const int t = get_global_id(0);
    const int cv = get_global_id(1);
    if (t >= tc || cv * VW >= coutp)
        return;
    int z0, y0, x0;
    tile_at(t0 + t, th, tw, &z0, &y0, &x0);
    const size_t plane = (size_t)d * h * w;
    __global const float *ys = dy + yoff + (size_t)cv * VW * plane;
    const int lanes = min(VW, cout - cv * VW);
    floatv e[2][2][2];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++) {
                const int z = z0 + a, y = y0 + b, x = x0 + c;
                const int in = z < d && y < h && x < w;
                const size_t off = in ? ((size_t)z * h + y) * w + x : 0;
                float q[VW];
                for (int i = 0; i < VW; i++)
                    q[i] = in && i < lanes ? ys[(size_t)i * plane + off] : 0.0f;
                e[a][b][c] = VLOAD(q);
            }
    floatv dv[4][4][4];
    dy_math_v(e, dv);
    __global float *o = dd + (size_t)t * coutp + cv * VW;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                VSTORE(dv[a][b][c],
                       o + (a * 16 + b * 4 + c) * DT_XIS(tc, coutp));
}

/* dU[xi][ci][coutp] (+)= sum over the chunk's tc tiles of V[xi][ci][t]
 * D[xi][t] (V from element voff on; one plane, xi 0 only, is a plain
 * GEMM: u3d_cl_gemm_rows): work-item (ib, ob, xi) keeps CIB x NVO vector accumulators
 * (CIB input channels by NVO vectors of output channels); V (CMAJOR, nt
 * tiles per channel) is broadcast, D's rows streamed. first: store
 * instead of add. Input channels past cin are clamped and not stored. */
__kernel void wino_bw_gemm_t(__global const float *restrict v,
                             __global const float *restrict dd,
                             __global float *restrict du, const int cin,
                             const int coutp, const int nt, const int tc,
                             const int nib, const int first, const int voff)
{
    const int ib = get_global_id(0);
    const int ob = get_global_id(1);
    const int xi = get_global_id(2);
    if (ib >= nib || (ob + 1) * NVO * VW > coutp)
        return;
    __global const float *vp = v + voff + xi * V_XIS(nt / XB, cin);
    __global const float *dp =
        dd + xi * DT_XIS(tc, coutp) + (size_t)ob * NVO * VW;
    size_t vr[CIB];
    for (int k = 0; k < CIB; k++)
        vr[k] = (size_t)min(ib * CIB + k, cin - 1) * nt;
    floatv acc[CIB][NVO];
#pragma unroll
    for (int k = 0; k < CIB; k++)
#pragma unroll
        for (int j = 0; j < NVO; j++)
            acc[k][j] = (floatv)0.0f;
    for (int t = 0; t < tc; t++, dp += coutp) {
        floatv e[NVO];
#pragma unroll
        for (int j = 0; j < NVO; j++)
            e[j] = VLOAD(dp + j * VW);
#pragma unroll
        for (int k = 0; k < CIB; k++) {
            const floatv s = (floatv)vp[vr[k] + t];
#pragma unroll
            for (int j = 0; j < NVO; j++)
                acc[k][j] = fma(s, e[j], acc[k][j]);
        }
    }
    __global float *o =
        du + xi * DUT_XIS(cin, coutp) + (size_t)ob * NVO * VW;
#pragma unroll
    for (int k = 0; k < CIB; k++) {
        const int ci = ib * CIB + k;
        if (ci < cin)
#pragma unroll
            for (int j = 0; j < NVO; j++) {
                __global float *p = o + (size_t)ci * coutp + j * VW;
                VSTORE(first ? acc[k][j] : VLOAD(p) + acc[k][j], p);
            }
    }
}

/* db[co] (+)= the sum of dy over the chunk's tiles, from tile-major D's
 * plane (1, 1, 1). */
__kernel void wino_bw_bias_t(__global const float *restrict dd,
                             __global float *restrict db, const int cout,
                             const int coutp, const int tc, const int first)
{
    const int co = get_global_id(0);
    if (co >= cout)
        return;
    __global const float *p = dd + 21 * DT_XIS(tc, coutp) + co;
    float s = 0.0f;
    for (int t = 0; t < tc; t++)
        s += p[(size_t)t * coutp];
    db[co] = first ? s : db[co] + s;
}

/* dw (cout, cin, 3, 3, 3) = G' dU G per axis: work-item per (co, ci);
 * dU is [xi][co][ci] (ldt 0) or tile-major's [xi][ci][ldt] (ldt = coutp). */
__kernel void wino_bw_weights(__global const float *restrict du,
                              __global float *restrict dw, const int cout,
                              const int cin, const int parts,
                              const int pstride, const int ldt)
{
    const int i = get_global_id(0);
    if (i >= cout * cin)
        return;
    const size_t xis = ldt ? DUT_XIS(cin, ldt) : DU_XIS(cout, cin);
    /* neighbouring work-items read neighbouring floats of dU */
    int co, ci;
    if (ldt) {
        ci = i / cout;
        co = i - ci * cout;
    } else {
        co = i / cin;
        ci = i - co * cin;
    }
    __global const float *p = du + (ldt ? (size_t)ci * ldt + co : (size_t)i);
    float uu[64]; /* dU, the partials added in order (the fused kernel's) */
    for (int xi = 0; xi < 64; xi++) {
        float s = 0.0f;
        for (int k = 0; k < parts; k++)
            s += p[(size_t)k * pstride + xi * xis];
        uu[xi] = s;
    }
    float a[4][4][3]; /* along x: 4 -> 3 */
    for (int z = 0; z < 4; z++)
        for (int y = 0; y < 4; y++) {
            const int xi = (z * 4 + y) * 4;
            const float u0 = uu[xi], u1 = uu[xi + 1], u2 = uu[xi + 2],
                        u3 = uu[xi + 3];
            a[z][y][0] = u0 + 0.5f * (u1 + u2);
            a[z][y][1] = 0.5f * (u1 - u2);
            a[z][y][2] = 0.5f * (u1 + u2) + u3;
        }
    float b[4][3][3]; /* along y */
    for (int z = 0; z < 4; z++)
        for (int x = 0; x < 3; x++) {
            const float u0 = a[z][0][x], u1 = a[z][1][x], u2 = a[z][2][x],
                        u3 = a[z][3][x];
            b[z][0][x] = u0 + 0.5f * (u1 + u2);
            b[z][1][x] = 0.5f * (u1 - u2);
            b[z][2][x] = 0.5f * (u1 + u2) + u3;
        }
    __global float *o = dw + ((size_t)co * cin + ci) * 27;
    for (int y = 0; y < 3; y++) /* along z, stored */
        for (int x = 0; x < 3; x++) {
            const float u0 = b[0][y][x], u1 = b[1][y][x], u2 = b[2][y][x],
                        u3 = b[3][y][x];
            o[(0 * 3 + y) * 3 + x] = u0 + 0.5f * (u1 + u2);
            o[(1 * 3 + y) * 3 + x] = 0.5f * (u1 - u2);
            o[(2 * 3 + y) * 3 + x] = 0.5f * (u1 + u2) + u3;
        }
}
