/* Data augmentation (include/unet3d/augment.h): a smooth B-spline
 * deformation composed with an affine map, trilinear/nearest resampling in
 * one sampling pass (each output voxel computes its source point once),
 * then the gray-value changes.
 *
 * Everything before the kernels is also compiled as C11 by
 * src/augment/augment_internal.h, so the host implementation (the tests'
 * oracle and the CPU baseline) runs the very same arithmetic, and so do the
 * cudnn backend's CUDA kernels (src/backends/cudnn/kernels.cu). It uses +, -,
 * *, comparisons and bit operations only: no contraction into FMA,
 * reciprocals computed on the host, our own ln/exp/sqrt/sin/cos (a device
 * math library differs by a few ulp between implementations). So every
 * result is bit-identical on the host and on any conforming OpenCL device
 * that keeps denormals (single-precision denormals are optional: a device
 * flushing them may differ where the data has some): label patches match
 * exactly and a (seed, sample index) pair gives the same patch everywhere.
 * Remainders are written as i - (i / s) * s: clang turns a / and % pair
 * into a "freeze" instruction that oclgrind's uninitialized-value checker
 * cannot run. */
#ifdef __OPENCL_VERSION__
#pragma OPENCL FP_CONTRACT OFF
#ifdef AUG_ALWAYS_INLINE
/* set by the host for CPU devices: PoCL keeps calls to large functions,
 * which stops it from vectorizing across work items */
#define AUG_FN static inline __attribute__((always_inline))
#else
#define AUG_FN
#endif
#define AUG_GLOBAL __global
typedef uint aug_u32;
#define AUG_AS_U32(f) as_uint(f)
#define AUG_AS_F32(u) as_float(u)
#elif defined(__CUDACC_RTC__)
/* NVRTC, included by src/backends/cudnn/kernels.cu; nvrtc.c compiles with
 * --fmad=false, the counterpart of FP_CONTRACT OFF */
#define AUG_FN __device__ static __forceinline__
#define AUG_GLOBAL
typedef unsigned int aug_u32;
#define AUG_AS_U32(f) __float_as_uint(f)
#define AUG_AS_F32(u) __uint_as_float(u)
#else
#include <stdint.h>
#include <string.h>
#ifdef __clang__
#pragma clang fp contract(off)
#endif
/* GCC in ISO C mode (-std=c11) does not contract a*b+c into an FMA. */
#define AUG_FN static inline
#define AUG_GLOBAL
typedef uint32_t aug_u32;
static inline aug_u32 aug_as_u32_host(float f)
{
    aug_u32 u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float aug_as_f32_host(aug_u32 u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
#define AUG_AS_U32(f) aug_as_u32_host(f)
#define AUG_AS_F32(u) aug_as_f32_host(u)
#endif

/* Philox4x32-10, the function of u3d_philox4x32 (src/core/rng.c). */
#define PHILOX_FN AUG_FN
#include "philox.h"
#define aug_philox philox4x32

/* Philox counter word 1 tells the streams of one (seed, sample) apart; the
 * host's u3d_rng (per-sample scalars) uses word 1 = 0. */
#define AUG_TAG_CP 1u    /* control-point displacements */
#define AUG_TAG_NOISE 2u /* per-voxel gray-value noise, | (group << 8) */

/* Per-call constants, filled on the host (augment.c) and read by every
 * work item from a __constant buffer. Only 4-byte scalars, so the layout
 * is the same in C and OpenCL C. */
typedef struct aug_consts {
    int C, D, H, W;     /* source image */
    int d, h, w;        /* image patch */
    int has_labels;     /* 0: no label buffers */
    int ld, lh, lw;     /* label patch */
    int lz0, ly0, lx0;  /* label patch corner inside the image patch */
    int ncz, ncy, ncx;  /* control grid */
    int sz, sy, sx;     /* control-point spacing, voxels */
    int fill_mirror;    /* 1: mirror the image outside, 0: fill_value */
    int ignore_label;
    int use_gray;       /* 0: the gray-value pass changes nothing */
    int use_gamma, use_noise;
    float inv_sz, inv_sy, inv_sx;
    float sig_z, sig_y, sig_x;
    float a[9];         /* source offset = a * (output offset), row-major */
    float oz, oy, ox;   /* source point of the patch center */
    float cz, cy, cx;   /* patch center, (n - 1) / 2 */
    float fill_value;
    float gamma, gray_lo, gray_hi, gray_range, gray_inv_range;
    float contrast, offset; /* v * contrast + offset */
    float noise_std;
    aug_u32 key0, key1; /* seed */
    aug_u32 smp0, smp1; /* sample index */
} aug_consts;

/* floor(x) as an int for |x| < 2^31 (no library call: PoCL would not
 * inline it, which blocks vectorization). */
AUG_FN int aug_ifloor(float x)
{
    int i = (int)x; /* truncation */
    return (float)i > x ? i - 1 : i;
}

/* ln(x) for a normal x > 0: x = f 2^e with f in [sqrt(1/2), sqrt(2)),
 * ln f = 2 atanh(s), s = (f - 1) / (f + 1) in [-0.172, 0.172] (series to
 * s^11: truncation below 1e-10), the reciprocal by Newton steps. */
AUG_FN float aug_ln(float x)
{
    aug_u32 bits = AUG_AS_U32(x);
    int e = (int)(bits >> 23) - 127;
    float f = AUG_AS_F32((bits & 0x007fffffu) | 0x3f800000u);
    if (f > 1.41421354f) {
        f = f * 0.5f;
        e = e + 1;
    }
    float a = f + 1.0f;
    float r = 0.993211508f - 0.242640689f * a; /* 1/a within 1.7% */
    for (int i = 0; i < 3; i++)
        r = r * (2.0f - a * r);
    float s = (f - 1.0f) * r, s2 = s * s;
    float p = 0.0909090936f;
    p = p * s2 + 0.111111112f;
    p = p * s2 + 0.142857149f;
    p = p * s2 + 0.200000003f;
    p = p * s2 + 0.333333343f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p + (float)e * 0.693147182f;
}

/* exp(y) for y in [-80, 80] (0 below): y = k ln2 + r, |r| <= ln2 / 2
 * (Cody-Waite: k ln2_hi is exact), Taylor to r^8 (truncation < 2e-10). */
AUG_FN float aug_exp(float y)
{
    if (y < -80.0f)
        return 0.0f;
    y = y > 80.0f ? 80.0f : y;
    float kf = (float)aug_ifloor(y * 1.44269502f + 0.5f);
    float r = y - kf * 0.693145752f - kf * 1.42860677e-06f;
    float p = 2.48015876e-05f;
    p = p * r + 0.000198412701f;
    p = p * r + 0.00138888892f;
    p = p * r + 0.00833333377f;
    p = p * r + 0.0416666679f;
    p = p * r + 0.166666672f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * AUG_AS_F32((aug_u32)((int)kf + 127) << 23);
}

/* sqrt(x), x >= 0, by three Newton steps on 1/sqrt from the classic bit
 * guess (relative error ~1e-7). */
AUG_FN float aug_sqrt(float x)
{
    if (!(x > 0.0f))
        return 0.0f;
    float y = AUG_AS_F32(0x5f3759dfu - (AUG_AS_U32(x) >> 1));
    float h = 0.5f * x;
    for (int i = 0; i < 3; i++)
        y = y * (1.5f - h * y * y);
    return x * y;
}

/* cos and sin of 2 pi t for t in [0, 1) with 24 fractional bits: quadrant
 * q, the rest x in [-pi/4, pi/4] (t - q/4 is exact), Taylor series there
 * (truncation < 2e-9). */
AUG_FN void aug_cossin_turn(float t, float *c, float *s)
{
    int q = aug_ifloor(t * 4.0f + 0.5f);
    float x = 6.28318548f * (t - (float)q * 0.25f), x2 = x * x;
    float sp = 2.75573188e-06f;
    sp = sp * x2 + -0.000198412701f;
    sp = sp * x2 + 0.00833333377f;
    sp = sp * x2 + -0.166666672f;
    sp = sp * x2 + 1.0f;
    sp = sp * x;
    float cp = -2.755732e-07f;
    cp = cp * x2 + 2.48015876e-05f;
    cp = cp * x2 + -0.00138888892f;
    cp = cp * x2 + 0.0416666679f;
    cp = cp * x2 + -0.5f;
    cp = cp * x2 + 1.0f;
    /* rotate by q quarter turns: odd q swaps, q & 2 negates */
    float c1 = (q & 1) ? -sp : cp, s1 = (q & 1) ? cp : sp;
    *c = (q & 2) ? -c1 : c1;
    *s = (q & 2) ? -s1 : s1;
}

/* Four standard normals from four random words by Box-Muller (both the
 * cosine and the sine branch): u1 = (w0 >> 8 + 1) / 2^24 in (0, 1],
 * u2 = (w1 >> 8) / 2^24 in [0, 1); then the same for w2, w3. */
AUG_FN void aug_normals4(const aug_u32 *w, float *n)
{
    for (int j = 0; j < 2; j++) {
        float u1 = (float)((w[2 * j] >> 8) + 1u) * 5.96046448e-08f;
        float u2 = (float)(w[2 * j + 1] >> 8) * 5.96046448e-08f;
        float r = aug_sqrt(-2.0f * aug_ln(u1)), c, s;
        aug_cossin_turn(u2, &c, &s);
        n[2 * j] = r * c;
        n[2 * j + 1] = r * s;
    }
}

/* Uniform cubic B-spline weights of the 4 control points around t. */
AUG_FN void aug_bspline(float t, float *wt)
{
    float t2 = t * t, t3 = t2 * t, u = 1.0f - t;
    wt[0] = u * u * u * 0.166666672f;
    wt[1] = (3.0f * t3 - 6.0f * t2 + 4.0f) * 0.166666672f;
    wt[2] = (-3.0f * t3 + 3.0f * t2 + 3.0f * t + 1.0f) * 0.166666672f;
    wt[3] = t3 * 0.166666672f;
}

/* Weights of voxel i on an axis with control spacing s; returns its first
 * control point i / s (control point j sits at voxel (j - 1) s). */
AUG_FN int aug_axis_weights(int i, int s, float inv_s, float *wt)
{
    int q = i / s;
    aug_bspline((float)(i - q * s) * inv_s, wt);
    return q;
}

AUG_FN float aug_dot4(const float *wt, float p0, float p1, float p2, float p3)
{
    return wt[0] * p0 + wt[1] * p1 + wt[2] * p2 + wt[3] * p3;
}

/* Control point i (of ncz*ncy*ncx): displacement (d, h, w) components into
 * phi planes 0, 1, 2. Counter (i, tag, sample), key = seed. */
AUG_FN void aug_control_point(const aug_consts *k,
                              AUG_GLOBAL float *phi, int i)
{
    int n = k->ncz * k->ncy * k->ncx;
    aug_u32 w[4];
    float g[4];
    aug_philox((aug_u32)i, AUG_TAG_CP, k->smp0, k->smp1, k->key0, k->key1, w);
    aug_normals4(w, g);
    phi[i] = k->sig_z * g[0];
    phi[n + i] = k->sig_y * g[1];
    phi[2 * n + i] = k->sig_x * g[2];
}

/* Interpolation along w: p1 (3, ncz, ncy, w) from phi (3, ncz, ncy, ncx). */
AUG_FN void aug_field_w(const aug_consts *k,
                        AUG_GLOBAL const float *phi, AUG_GLOBAL float *p1,
                        int i)
{
    int row = i / k->w, x = i - row * k->w;
    float wt[4];
    int cx = aug_axis_weights(x, k->sx, k->inv_sx, wt);
    AUG_GLOBAL const float *p = phi + row * k->ncx + cx;
    p1[i] = aug_dot4(wt, p[0], p[1], p[2], p[3]);
}

/* Interpolation along h: p2 (3, ncz, h, w) from p1 (3, ncz, ncy, w). */
AUG_FN void aug_field_h(const aug_consts *k,
                        AUG_GLOBAL const float *p1, AUG_GLOBAL float *p2,
                        int i)
{
    int row = i / k->w, x = i - row * k->w;
    int plane = row / k->h, y = row - plane * k->h;
    float wt[4];
    int cy = aug_axis_weights(y, k->sy, k->inv_sy, wt);
    AUG_GLOBAL const float *p = p1 + (plane * k->ncy + cy) * k->w + x;
    p2[i] = aug_dot4(wt, p[0], p[k->w], p[2 * k->w], p[3 * k->w]);
}

/* The dense field at output voxel (z, y, x): interpolation along d of
 * p2 (3, ncz, h, w). */
AUG_FN void aug_displacement(const aug_consts *k,
                             AUG_GLOBAL const float *field, int z, int y,
                             int x, float *u)
{
    int hw = k->h * k->w;
    float wt[4];
    int cz = aug_axis_weights(z, k->sz, k->inv_sz, wt);
    for (int c = 0; c < 3; c++) {
        AUG_GLOBAL const float *f =
            field + ((c * k->ncz + cz) * k->h + y) * k->w + x;
        u[c] = aug_dot4(wt, f[0], f[hw], f[2 * hw], f[3 * hw]);
    }
}

/* Half-sample symmetric extension: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ... */
AUG_FN int aug_sym(int i, int n)
{
    if (i >= 0 && i < n)
        return i; /* the common case, without a division */
    int p = 2 * n;
    i = i - (i / p) * p;
    if (i < 0)
        i += p;
    return i < n ? i : p - 1 - i;
}

/* Gray-value changes of one image value (the order is documented in
 * augment.h); nz is this voxel's normal for the channel. */
AUG_FN float aug_gray(const aug_consts *k, float v, float nz)
{
    if (k->use_gamma && v > k->gray_lo && v < k->gray_hi) {
        float t = (v - k->gray_lo) * k->gray_inv_range; /* (0, 1] */
        t = t > 1.0e-30f ? aug_exp(k->gamma * aug_ln(t)) : 0.0f;
        v = k->gray_lo + k->gray_range * t;
    }
    v = v * k->contrast + k->offset;
    if (k->use_noise)
        v = v + k->noise_std * nz;
    return v;
}

/* Gray-value changes of channels 4g..4g+3 of output voxel vox, item
 * i = g * d*h*w + vox. The noise normals come from counter
 * (vox, AUG_TAG_NOISE | g << 8, sample). */
AUG_FN void aug_gray_group(const aug_consts *k, AUG_GLOBAL float *out, int i)
{
    int dhw = k->d * k->h * k->w, g = i / dhw, vox = i - g * dhw;
    float nz[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (k->use_noise) {
        aug_u32 w4[4];
        aug_philox((aug_u32)vox, AUG_TAG_NOISE | ((aug_u32)g << 8), k->smp0,
                   k->smp1, k->key0, k->key1, w4);
        aug_normals4(w4, nz);
    }
    for (int lane = 0; lane < 4; lane++) {
        int c = 4 * g + lane;
        if (c < k->C)
            out[c * dhw + vox] = aug_gray(k, out[c * dhw + vox], nz[lane]);
    }
}

/* One output voxel (z, y, x) of the image patch: its source point, the
 * image channels (trilinear) and, inside the label patch, its label
 * (nearest). field is p2 of aug_field_h. Gray values follow in
 * aug_gray_group, a separate pass (skipped when it changes nothing) that
 * keeps the noise and gamma arithmetic out of this gather-bound loop. */
AUG_FN void aug_voxel(const aug_consts *k,
                      AUG_GLOBAL const float *src,
                      AUG_GLOBAL const int *src_lab,
                      AUG_GLOBAL const float *field, AUG_GLOBAL float *out,
                      AUG_GLOBAL int *out_lab, int z, int y, int x)
{
    int hw = k->h * k->w, vox = (z * k->h + y) * k->w + x;
    float u[3];
    aug_displacement(k, field, z, y, x, u);
    float vz = (float)z - k->cz, vy = (float)y - k->cy, vx = (float)x - k->cx;
    float p[3];
    for (int r = 0; r < 3; r++) {
        float o = r == 0 ? k->oz : r == 1 ? k->oy : k->ox;
        float a = k->a[3 * r] * vz + k->a[3 * r + 1] * vy + k->a[3 * r + 2] * vx;
        /* bounded so the int conversions below cannot overflow */
        float q = o + a + u[r];
        p[r] = q < -1.0e7f ? -1.0e7f : q > 1.0e7f ? 1.0e7f : q;
    }
    /* nearest voxel; the source point is inside iff it exists */
    int rz = aug_ifloor(p[0] + 0.5f), ry = aug_ifloor(p[1] + 0.5f),
        rx = aug_ifloor(p[2] + 0.5f);
    int inside = rz >= 0 && rz < k->D && ry >= 0 && ry < k->H && rx >= 0 &&
                 rx < k->W;

    int dhw = k->d * hw, DHW = k->D * k->H * k->W;
    int iz = aug_ifloor(p[0]), iy = aug_ifloor(p[1]), ix = aug_ifloor(p[2]);
    float fz = p[0] - (float)iz, fy = p[1] - (float)iy, fx = p[2] - (float)ix;
    float gz = 1.0f - fz, gy = 1.0f - fy, gx = 1.0f - fx;
    /* inside, the symmetric extension only clamps the half-voxel rim */
    int z0 = aug_sym(iz, k->D), z1 = aug_sym(iz + 1, k->D);
    int y0 = aug_sym(iy, k->H), y1 = aug_sym(iy + 1, k->H);
    int x0 = aug_sym(ix, k->W), x1 = aug_sym(ix + 1, k->W);
    int r00 = (z0 * k->H + y0) * k->W, r01 = (z0 * k->H + y1) * k->W;
    int r10 = (z1 * k->H + y0) * k->W, r11 = (z1 * k->H + y1) * k->W;
    for (int c = 0; c < k->C; c++) {
        float v = k->fill_value;
        if (inside || k->fill_mirror) {
            AUG_GLOBAL const float *s = src + c * DHW;
            float c00 = gx * s[r00 + x0] + fx * s[r00 + x1];
            float c01 = gx * s[r01 + x0] + fx * s[r01 + x1];
            float c10 = gx * s[r10 + x0] + fx * s[r10 + x1];
            float c11 = gx * s[r11 + x0] + fx * s[r11 + x1];
            float c0 = gy * c00 + fy * c01, c1 = gy * c10 + fy * c11;
            v = gz * c0 + fz * c1;
        }
        out[c * dhw + vox] = v;
    }
    if (k->has_labels) {
        int lz = z - k->lz0, ly = y - k->ly0, lx = x - k->lx0;
        if (lz >= 0 && lz < k->ld && ly >= 0 && ly < k->lh && lx >= 0 &&
            lx < k->lw)
            out_lab[(lz * k->lh + ly) * k->lw + lx] =
                inside ? src_lab[(rz * k->H + ry) * k->W + rx]
                       : k->ignore_label;
    }
}

#ifdef __OPENCL_VERSION__
/* ---- kernels: one work item per element, guarded (the global size is
 * rounded up to the work-group size) ---------------------------------- */

__kernel void aug_control_points(__constant const aug_consts *k,
                                 __global float *phi)
{
    const int i = (int)get_global_id(0);
    const aug_consts kp = *k;
    if (i < kp.ncz * kp.ncy * kp.ncx)
        aug_control_point(&kp, phi, i);
}

__kernel void aug_field_w_pass(__constant const aug_consts *k,
                               __global const float *phi, __global float *p1)
{
    const int i = (int)get_global_id(0);
    const aug_consts kp = *k;
    if (i < 3 * kp.ncz * kp.ncy * kp.w)
        aug_field_w(&kp, phi, p1, i);
}

__kernel void aug_field_h_pass(__constant const aug_consts *k,
                               __global const float *p1, __global float *p2)
{
    const int i = (int)get_global_id(0);
    const aug_consts kp = *k;
    if (i < 3 * kp.ncz * kp.h * kp.w)
        aug_field_h(&kp, p1, p2, i);
}

__kernel void aug_gray_pass(__constant const aug_consts *k,
                            __global float *out)
{
    const int i = (int)get_global_id(0);
    const aug_consts kp = *k;
    if (i < (kp.C + 3) / 4 * kp.d * kp.h * kp.w)
        aug_gray_group(&kp, out, i);
}

__kernel void aug_sample(__constant const aug_consts *k,
                         __global const float *src,
                         __global const int *src_lab,
                         __global const float *field, __global float *out,
                         __global int *out_lab)
{
    const int i = (int)get_global_id(0);
    const aug_consts kp = *k; /* private: stores to out cannot alias it */
    if (i < kp.d * kp.h * kp.w) {
        int row = i / kp.w, x = i - row * kp.w;
        int z = row / kp.h, y = row - z * kp.h;
        aug_voxel(&kp, src, src_lab, field, out, out_lab, z, y, x);
    }
}
#endif
