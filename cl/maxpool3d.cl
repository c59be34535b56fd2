/* Max-pool 2x2x2 stride 2, floor mode. The window is scanned d-major, then
 * h, then w; a voxel becomes the maximum when it is greater than the current
 * one or NaN (PyTorch's rule: ties go to the first maximum, NaN propagates).
 * Planes are indexed as nc * D*H*W; sizes fit in 32 bits (checked on the
 * host).
 *
 * Each work-item handles VX consecutive windows along W of one output row
 * with vector loads of 2*VX input floats per input row (build option -DVX=2,
 * 4 or 8): consecutive work-items read consecutive memory (coalesced on
 * GPUs), and on CPUs every load is a full SIMD vector. A group that would
 * run past the row end falls back to a per-window scalar path.
 * oclgrind 21.10's --uninitialized plugin crashes on some vector shuffles
 * (assignments to .even/.odd, horizontal sums) and loses track of some
 * 8-wide ones (false reports): lanes are split from vectors of at most 8
 * floats and interleaved by building vectors from their components. */
#ifndef VX
#define VX 4
#endif
/* LOAD_EO(p, E, O): the 2*VX floats at p split into even (dx = 0) and odd
 * (dx = 1) lanes; STORE_EO(E, O, p): the reverse. */
#if VX == 2
#define VOUT float2
#define VINT int2
#define VSTORE_OUT vstore2
#define VLOAD_OUT vload2
#define LOAD_EO(p, E, O)                                                       \
    do {                                                                       \
        const float4 r_ = vload4(0, (p));                                      \
        E = (float2)(r_.s0, r_.s2);                                            \
        O = (float2)(r_.s1, r_.s3);                                            \
    } while (0)
#define STORE_EO(E, O, p) vstore4((float4)(E.s0, O.s0, E.s1, O.s1), 0, (p))
#elif VX == 4
#define VOUT float4
#define VINT int4
#define VSTORE_OUT vstore4
#define VLOAD_OUT vload4
#define LOAD_EO(p, E, O)                                                       \
    do {                                                                       \
        const float8 r_ = vload8(0, (p));                                      \
        E = r_.even;                                                           \
        O = r_.odd;                                                            \
    } while (0)
#define STORE_EO(E, O, p)                                                      \
    vstore8((float8)(E.s0, O.s0, E.s1, O.s1, E.s2, O.s2, E.s3, O.s3), 0, (p))
#elif VX == 8
#define VOUT float8
#define VINT int8
#define VSTORE_OUT vstore8
#define VLOAD_OUT vload8
/* two 8-float loads: the lanes of a 16-float load split in two trip
 * oclgrind's shadow tracking (false reports) */
#define LOAD_EO(p, E, O)                                                       \
    do {                                                                       \
        const float8 a_ = vload8(0, (p)), b_ = vload8(1, (p));                 \
        E = (float8)(a_.even, b_.even);                                        \
        O = (float8)(a_.odd, b_.odd);                                          \
    } while (0)
/* element stores: an interleaving 8-float vector built from 8-wide lanes
 * trips oclgrind too; compilers merge consecutive stores */
#define STORE_EO(E, O, p)                                                      \
    do {                                                                       \
        __global float *q_ = (p);                                              \
        q_[0] = E.s0, q_[1] = O.s0, q_[2] = E.s1, q_[3] = O.s1;                \
        q_[4] = E.s2, q_[5] = O.s2, q_[6] = E.s3, q_[7] = O.s3;                \
        q_[8] = E.s4, q_[9] = O.s4, q_[10] = E.s5, q_[11] = O.s5;              \
        q_[12] = E.s6, q_[13] = O.s6, q_[14] = E.s7, q_[15] = O.s7;            \
    } while (0)
#else
#error "VX must be 2, 4 or 8"
#endif

/* Index within the window (dz*4 + dy*2 + dx) of its maximum; *m gets it. */
int window_argmax(__global const float *p, const uint H, const uint W,
                  float *m)
{
    int best = 0;
    float mx = -INFINITY;
    for (int dz = 0; dz < 2; dz++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
                const float v = p[(dz * H + dy) * W + dx];
                if (v > mx || isnan(v)) {
                    mx = v;
                    best = dz * 4 + dy * 2 + dx;
                }
            }
    *m = mx;
    return best;
}

/* The scan rule on VX windows at once: lanes take v where it is greater or
 * NaN. */
#define TAKE(v, i)                                                             \
    do {                                                                       \
        const VINT t_ = isgreater((v), m) | isnan(v);                          \
        m = select(m, (v), t_);                                                \
        b = select(b, (VINT)(i), t_);                                          \
    } while (0)

/* Maxima (*m) and their window indices (*b) of VX windows whose top-left
 * input voxel is p (row stride W, plane stride H*W). */
void windows_argmax(__global const float *p, const uint H, const uint W,
                    VOUT *mo, VINT *bo)
{
    VOUT m, e, o;
    VINT b = (VINT)(0);
    LOAD_EO(p, m, o);
    TAKE(o, 1);
    LOAD_EO(p + W, e, o);
    TAKE(e, 2);
    TAKE(o, 3);
    LOAD_EO(p + H * W, e, o);
    TAKE(e, 4);
    TAKE(o, 5);
    LOAD_EO(p + H * W + W, e, o);
    TAKE(e, 6);
    TAKE(o, 7);
    *mo = m;
    *bo = b;
}

/* Work-item (g0, g1) handles `per` groups of VX windows of one output row
 * (per = 1 on GPUs; whole rows on CPUs, which amortises the index
 * arithmetic): g0 = xi + Wi*oy with Wi = ceil(ceil(Wo / VX) / per) items
 * per row, g1 = oz + Do*nc. */
__kernel void maxpool3d_forward(__global const float *x, __global float *y,
                                const uint D, const uint H, const uint W,
                                const uint NC, const uint Wi, const uint per)
{
    const uint Do = D / 2, Ho = H / 2, Wo = W / 2;
    const uint g0 = get_global_id(0), g1 = get_global_id(1);
    if (g0 >= Ho * Wi || g1 >= Do * NC)
        return;
    const uint oy = g0 / Wi, xb = (g0 - oy * Wi) * per * VX;
    const uint xe = min(xb + per * VX, Wo);
    const uint nc = g1 / Do, oz = g1 - nc * Do;
    __global const float *p =
        x + nc * (D * H * W) + ((2 * oz) * H + 2 * oy) * W;
    __global float *q = y + (g1 * Ho + oy) * Wo;
    uint ox = xb;
    for (; ox + VX <= xe; ox += VX) {
        VOUT m;
        VINT b;
        windows_argmax(p + 2 * ox, H, W, &m, &b);
        VSTORE_OUT(m, 0, q + ox);
    }
    for (; ox < xe; ox++) {
        float m;
        window_argmax(p + 2 * ox, H, W, &m);
        q[ox] = m;
    }
}

/* dx of the window whose top-left voxel is at offset off: dy value g at its
 * maximum, 0 elsewhere; a partial window (at an odd trailing edge, dropped
 * by floor mode) gets zeros on its voxels that exist. */
void window_backward(__global const float *x, __global float *dx,
                     const uint off, const uint D, const uint H, const uint W,
                     const uint z, const uint yy, const uint xx,
                     const int full, const float g)
{
    float m;
    const int best = full ? window_argmax(x + off, H, W, &m) : -1;
    for (uint dz = 0; dz < 2; dz++)
        for (uint dy_ = 0; dy_ < 2; dy_++)
            for (uint dx_ = 0; dx_ < 2; dx_++)
                if (z + dz < D && yy + dy_ < H && xx + dx_ < W)
                    dx[off + (dz * H + dy_) * W + dx_] =
                        best == (int)(dz * 4 + dy_ * 2 + dx_) ? g : 0.0f;
}

/* Work-items over the ceil-mode tiling (Dc, Hc, Wc) of windows, `per`
 * groups of VX windows of one row each, so every dx voxel is written by
 * exactly one work-item: a full window routes dy to its maximum and zeroes
 * the other seven; a partial window zeroes its voxels. g0 = xi + Wi*oy
 * (Wi = ceil(ceil(Wc / VX) / per)), g1 = oz + Dc*nc. */
__kernel void maxpool3d_backward(__global const float *x,
                                 __global const float *dy,
                                 __global float *dx, const uint D, const uint H,
                                 const uint W, const uint NC, const uint Wi,
                                 const uint per)
{
    const uint Do = D / 2, Ho = H / 2, Wo = W / 2;
    const uint Dc = (D + 1) / 2, Hc = (H + 1) / 2, Wc = (W + 1) / 2;
    const uint g0 = get_global_id(0), g1 = get_global_id(1);
    if (g0 >= Hc * Wi || g1 >= Dc * NC)
        return;
    const uint oy = g0 / Wi, xb = (g0 - oy * Wi) * per * VX;
    const uint xe = min(xb + per * VX, Wc);
    const uint nc = g1 / Dc, oz = g1 - nc * Dc;
    const uint off = nc * (D * H * W) + ((2 * oz) * H + 2 * oy) * W;
    const uint o = (nc * Do + oz) * (Ho * Wo) + oy * Wo;
    const int rows_full = oz < Do && oy < Ho;
    uint ox = xb;
    if (rows_full) {
        const VOUT z = (VOUT)(0.0f);
        for (; ox + VX <= min(xe, Wo); ox += VX) {
            VOUT m;
            VINT b;
            windows_argmax(x + off + 2 * ox, H, W, &m, &b);
            const VOUT g = VLOAD_OUT(0, dy + o + ox);
            for (uint r = 0; r < 4; r++) { /* rows (dz, dy) */
                const VOUT e = select(z, g, b == (VINT)(2 * r));
                const VOUT od = select(z, g, b == (VINT)(2 * r + 1));
                STORE_EO(e, od,
                         dx + off + ((r >> 1) * H + (r & 1u)) * W + 2 * ox);
            }
        }
    }
    for (; ox < xe; ox++) {
        const int full = rows_full && ox < Wo;
        window_backward(x, dx, off + 2 * ox, D, H, W, 2 * oz, 2 * oy, 2 * ox,
                        full, full ? dy[o + ox] : 0.0f);
    }
}

/* Windows of FD x FH x FW (each 1 or 2; 1x2x2 for anisotropic levels),
 * the same scan rule, one work-item per output voxel (forward) or input
 * voxel (backward, gathering: dx is dy where the voxel is its window's
 * maximum, zero elsewhere and in dropped trailing voxels, so no two items
 * write one element). Scalar: 2x2x2 takes the vector kernels above. */
int window_argmax_any(__global const float *p, const uint H, const uint W,
                      const uint FD, const uint FH, const uint FW)
{
    int best = 0;
    float mx = -INFINITY;
    for (uint dz = 0; dz < FD; dz++)
        for (uint dy = 0; dy < FH; dy++)
            for (uint dx = 0; dx < FW; dx++) {
                const float v = p[(dz * H + dy) * W + dx];
                if (v > mx || isnan(v)) {
                    mx = v;
                    best = (int)((dz * H + dy) * W + dx);
                }
            }
    return best;
}

/* gid0 = output voxel of one plane, gid1 = n*C + c. */
__kernel void maxpool3d_forward_any(__global const float *x,
                                    __global float *y, const uint D,
                                    const uint H, const uint W, const uint FD,
                                    const uint FH, const uint FW)
{
    const uint Do = D / FD, Ho = H / FH, Wo = W / FW;
    const uint i = get_global_id(0), nc = get_global_id(1);
    if (i >= Do * Ho * Wo)
        return;
    const uint oz = i / (Ho * Wo), r = i - oz * (Ho * Wo);
    const uint oy = r / Wo, ox = r - oy * Wo;
    __global const float *p =
        x + nc * (D * H * W) + ((FD * oz) * H + FH * oy) * W + FW * ox;
    y[nc * (Do * Ho * Wo) + i] = p[window_argmax_any(p, H, W, FD, FH, FW)];
}

/* gid0 = input voxel of one plane, gid1 = n*C + c. */
__kernel void maxpool3d_backward_any(__global const float *x,
                                     __global const float *dy,
                                     __global float *dx, const uint D,
                                     const uint H, const uint W,
                                     const uint FD, const uint FH,
                                     const uint FW)
{
    const uint Do = D / FD, Ho = H / FH, Wo = W / FW;
    const uint i = get_global_id(0), nc = get_global_id(1);
    if (i >= D * H * W)
        return;
    const uint z = i / (H * W), r = i - z * (H * W);
    const uint yy = r / W, xx = r - yy * W;
    const uint oz = z / FD, oy = yy / FH, ox = xx / FW;
    float g = 0.0f;
    if (oz < Do && oy < Ho && ox < Wo) {
        __global const float *p =
            x + nc * (D * H * W) + ((FD * oz) * H + FH * oy) * W + FW * ox;
        const int at = (int)(((z - FD * oz) * H + (yy - FH * oy)) * W +
                             (xx - FW * ox));
        if (window_argmax_any(p, H, W, FD, FH, FW) == at)
            g = dy[nc * (Do * Ho * Wo) + (oz * Ho + oy) * Wo + ox];
    }
    dx[nc * (D * H * W) + i] = g;
}
