/* Data augmentation (include/unet3d/augment.h): a smooth B-spline
 * deformation composed with an affine map, trilinear/nearest resampling and
 * gray-value changes, in one sampling pass.
 *
 * Everything before the kernels is also compiled as C11 by
 * src/augment/augment_internal.h, so the host implementation (the tests'
 * oracle and the CPU baseline) runs the very same arithmetic. The source
 * coordinates are computed with +, -, * only (no contraction, reciprocals
 * computed on the host, our own log/sin/cos/sqrt from +, -, * and bit
 * operations), so they are bit-identical on every conforming OpenCL device
 * and on the host: label patches match exactly and a (seed, sample index)
 * pair gives the same patch everywhere. Only pow (gamma) may differ by a
 * few ulp. */
#ifdef __OPENCL_VERSION__
#pragma OPENCL FP_CONTRACT OFF
#define AUG_FN
#define AUG_GLOBAL __global
#define AUG_CONST __constant
typedef uint aug_u32;
#define AUG_MULHI(a, b) mul_hi((a), (b))
#define AUG_AS_U32(f) as_uint(f)
#define AUG_AS_F32(u) as_float(u)
#define AUG_FLOOR(x) floor(x)
#define AUG_FMIN(a, b) fmin((a), (b))
#define AUG_FMAX(a, b) fmax((a), (b))
#define AUG_POW(x, y) pow((x), (y))
#else
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __clang__
#pragma clang fp contract(off)
#endif
/* GCC in ISO C mode (-std=c11) does not contract a*b+c into an FMA. */
#define AUG_FN static inline
#define AUG_GLOBAL
#define AUG_CONST
typedef uint32_t aug_u32;
static inline aug_u32 aug_mulhi_host(aug_u32 a, aug_u32 b)
{
    return (aug_u32)(((uint64_t)a * b) >> 32);
}
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
#define AUG_MULHI(a, b) aug_mulhi_host((a), (b))
#define AUG_AS_U32(f) aug_as_u32_host(f)
#define AUG_AS_F32(u) aug_as_f32_host(u)
#define AUG_FLOOR(x) floorf(x)
#define AUG_FMIN(a, b) fminf((a), (b))
#define AUG_FMAX(a, b) fmaxf((a), (b))
#define AUG_POW(x, y) powf((x), (y))
#endif

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

/* Philox4x32-10, the same function as u3d_philox4x32 (src/core/rng.c). */
AUG_FN void aug_philox(aug_u32 c0, aug_u32 c1, aug_u32 c2, aug_u32 c3,
                       aug_u32 k0, aug_u32 k1, aug_u32 *out)
{
    for (int r = 0; r < 10; r++) {
        aug_u32 hi0 = AUG_MULHI(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        aug_u32 hi1 = AUG_MULHI(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* ln(m / 2^24) for an integer m in [1, 2^24]: m = f 2^e with f in
 * [sqrt(1/2), sqrt(2)), ln(f) by its Taylor series in z = f - 1
 * (|z| <= 0.415, 20 terms: truncation below 1e-9). */
AUG_FN float aug_log_unit(aug_u32 m)
{
    aug_u32 bits = AUG_AS_U32((float)m);
    int e = (int)(bits >> 23) - 127;
    float f = AUG_AS_F32((bits & 0x007fffffu) | 0x3f800000u);
    if (f > 1.41421354f) {
        f = f * 0.5f;
        e = e + 1;
    }
    float z = f - 1.0f;
    float s = -0.0500000007f;
    s = s * z + 0.0526315793f;
    s = s * z + -0.055555556f;
    s = s * z + 0.0588235296f;
    s = s * z + -0.0625f;
    s = s * z + 0.0666666701f;
    s = s * z + -0.0714285746f;
    s = s * z + 0.0769230798f;
    s = s * z + -0.0833333358f;
    s = s * z + 0.0909090936f;
    s = s * z + -0.100000001f;
    s = s * z + 0.111111112f;
    s = s * z + -0.125f;
    s = s * z + 0.142857149f;
    s = s * z + -0.166666672f;
    s = s * z + 0.200000003f;
    s = s * z + -0.25f;
    s = s * z + 0.333333343f;
    s = s * z + -0.5f;
    s = s * z + 1.0f;
    return s * z + (float)(e - 24) * 0.693147182f;
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

/* sin and cos of x in [-pi, pi] by Taylor series (error < 1e-9 beyond
 * float rounding). */
AUG_FN float aug_sin(float x)
{
    float x2 = x * x;
    float s = 2.81145736e-15f;
    s = s * x2 + -7.64716361e-13f;
    s = s * x2 + 1.60590444e-10f;
    s = s * x2 + -2.50521079e-08f;
    s = s * x2 + 2.75573188e-06f;
    s = s * x2 + -0.000198412701f;
    s = s * x2 + 0.00833333377f;
    s = s * x2 + -0.166666672f;
    s = s * x2 + 1.0f;
    return s * x;
}

AUG_FN float aug_cos(float x)
{
    float x2 = x * x;
    float s = 4.11031759e-19f;
    s = s * x2 + -1.56192068e-16f;
    s = s * x2 + 4.77947726e-14f;
    s = s * x2 + -1.14707454e-11f;
    s = s * x2 + 2.08767559e-09f;
    s = s * x2 + -2.755732e-07f;
    s = s * x2 + 2.48015876e-05f;
    s = s * x2 + -0.00138888892f;
    s = s * x2 + 0.0416666679f;
    s = s * x2 + -0.5f;
    return s * x2 + 1.0f;
}

/* Four standard normals from four random words by Box-Muller (both the
 * cosine and the sine branch): u1 = (w0 >> 8 + 1) / 2^24 in (0, 1],
 * u2 = (w1 >> 8) / 2^24 in [0, 1); then the same for w2, w3. */
AUG_FN void aug_normals4(const aug_u32 *w, float *n)
{
    for (int j = 0; j < 2; j++) {
        float r = aug_sqrt(-2.0f * aug_log_unit((w[2 * j] >> 8) + 1u));
        /* 2 pi u2 = 2 pi s + pi with s = u2 - 1/2 in [-1/2, 1/2) */
        float s = (float)(w[2 * j + 1] >> 8) * 5.96046448e-08f - 0.5f;
        float x = 6.28318548f * s;
        n[2 * j] = -r * aug_cos(x);
        n[2 * j + 1] = -r * aug_sin(x);
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

/* Weights of voxel i on an axis with control spacing s: its control
 * points are i / s + 0..3 (control point j sits at voxel (j - 1) s). */
AUG_FN void aug_axis_weights(int i, int s, float inv_s, float *wt)
{
    aug_bspline((float)(i % s) * inv_s, wt);
}

AUG_FN float aug_dot4(const float *wt, float p0, float p1, float p2, float p3)
{
    return wt[0] * p0 + wt[1] * p1 + wt[2] * p2 + wt[3] * p3;
}

/* Control point i (of ncz*ncy*ncx): displacement (d, h, w) components into
 * phi planes 0, 1, 2. Counter (i, tag, sample), key = seed. */
AUG_FN void aug_control_point(AUG_CONST const aug_consts *k,
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
AUG_FN void aug_field_w(AUG_CONST const aug_consts *k,
                        AUG_GLOBAL const float *phi, AUG_GLOBAL float *p1,
                        int i)
{
    int x = i % k->w, row = i / k->w;
    float wt[4];
    aug_axis_weights(x, k->sx, k->inv_sx, wt);
    AUG_GLOBAL const float *p = phi + row * k->ncx + x / k->sx;
    p1[i] = aug_dot4(wt, p[0], p[1], p[2], p[3]);
}

/* Interpolation along h: p2 (3, ncz, h, w) from p1 (3, ncz, ncy, w). */
AUG_FN void aug_field_h(AUG_CONST const aug_consts *k,
                        AUG_GLOBAL const float *p1, AUG_GLOBAL float *p2,
                        int i)
{
    int x = i % k->w, y = (i / k->w) % k->h, plane = i / (k->w * k->h);
    float wt[4];
    aug_axis_weights(y, k->sy, k->inv_sy, wt);
    AUG_GLOBAL const float *p = p1 + (plane * k->ncy + y / k->sy) * k->w + x;
    p2[i] = aug_dot4(wt, p[0], p[k->w], p[2 * k->w], p[3 * k->w]);
}

/* The dense field at output voxel (z, y, x): interpolation along d of
 * p2 (3, ncz, h, w). */
AUG_FN void aug_displacement(AUG_CONST const aug_consts *k,
                             AUG_GLOBAL const float *field, int z, int y,
                             int x, float *u)
{
    int hw = k->h * k->w;
    float wt[4];
    aug_axis_weights(z, k->sz, k->inv_sz, wt);
    for (int c = 0; c < 3; c++) {
        AUG_GLOBAL const float *f =
            field + ((c * k->ncz + z / k->sz) * k->h + y) * k->w + x;
        u[c] = aug_dot4(wt, f[0], f[hw], f[2 * hw], f[3 * hw]);
    }
}

/* Half-sample symmetric extension: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ... */
AUG_FN int aug_sym(int i, int n)
{
    int p = 2 * n;
    i = i % p;
    if (i < 0)
        i += p;
    return i < n ? i : p - 1 - i;
}

/* Gray-value changes of one image value (the order is documented in
 * augment.h); nz is this voxel's normal for the channel. */
AUG_FN float aug_gray(AUG_CONST const aug_consts *k, float v, float nz)
{
    if (k->use_gamma && v > k->gray_lo && v < k->gray_hi)
        v = k->gray_lo +
            k->gray_range * AUG_POW((v - k->gray_lo) * k->gray_inv_range,
                                    k->gamma);
    v = v * k->contrast + k->offset;
    if (k->use_noise)
        v = v + k->noise_std * nz;
    return v;
}

/* One output voxel (z, y, x) of the image patch: its source point, the
 * image channels (trilinear) and, inside the label patch, its label
 * (nearest). field is p2 of aug_field_h. */
AUG_FN void aug_voxel(AUG_CONST const aug_consts *k,
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
        p[r] = AUG_FMIN(AUG_FMAX(o + a + u[r], -1.0e7f), 1.0e7f);
    }
    /* nearest voxel; the source point is inside iff it exists */
    int rz = (int)AUG_FLOOR(p[0] + 0.5f), ry = (int)AUG_FLOOR(p[1] + 0.5f),
        rx = (int)AUG_FLOOR(p[2] + 0.5f);
    int inside = rz >= 0 && rz < k->D && ry >= 0 && ry < k->H && rx >= 0 &&
                 rx < k->W;

    int dhw = k->d * hw, DHW = k->D * k->H * k->W;
    int iz = (int)AUG_FLOOR(p[0]), iy = (int)AUG_FLOOR(p[1]),
        ix = (int)AUG_FLOOR(p[2]);
    float fz = p[0] - (float)iz, fy = p[1] - (float)iy, fx = p[2] - (float)ix;
    float gz = 1.0f - fz, gy = 1.0f - fy, gx = 1.0f - fx;
    /* inside, the symmetric extension only clamps the half-voxel rim */
    int z0 = aug_sym(iz, k->D), z1 = aug_sym(iz + 1, k->D);
    int y0 = aug_sym(iy, k->H), y1 = aug_sym(iy + 1, k->H);
    int x0 = aug_sym(ix, k->W), x1 = aug_sym(ix + 1, k->W);
    int r00 = (z0 * k->H + y0) * k->W, r01 = (z0 * k->H + y1) * k->W;
    int r10 = (z1 * k->H + y0) * k->W, r11 = (z1 * k->H + y1) * k->W;
    float nz[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int c = 0; c < k->C; c++) {
        if (k->use_noise && c % 4 == 0) {
            aug_u32 w4[4];
            aug_philox((aug_u32)vox, AUG_TAG_NOISE | ((aug_u32)(c / 4) << 8),
                       k->smp0, k->smp1, k->key0, k->key1, w4);
            aug_normals4(w4, nz);
        }
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
        out[c * dhw + vox] = aug_gray(k, v, nz[c % 4]);
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
    if (i < k->ncz * k->ncy * k->ncx)
        aug_control_point(k, phi, i);
}

__kernel void aug_field_w_pass(__constant const aug_consts *k,
                               __global const float *phi, __global float *p1)
{
    const int i = (int)get_global_id(0);
    if (i < 3 * k->ncz * k->ncy * k->w)
        aug_field_w(k, phi, p1, i);
}

__kernel void aug_field_h_pass(__constant const aug_consts *k,
                               __global const float *p1, __global float *p2)
{
    const int i = (int)get_global_id(0);
    if (i < 3 * k->ncz * k->h * k->w)
        aug_field_h(k, p1, p2, i);
}

__kernel void aug_sample(__constant const aug_consts *k,
                         __global const float *src,
                         __global const int *src_lab,
                         __global const float *field, __global float *out,
                         __global int *out_lab)
{
    const int i = (int)get_global_id(0);
    if (i < k->d * k->h * k->w)
        aug_voxel(k, src, src_lab, field, out, out_lab, i / (k->h * k->w),
                  (i / k->w) % k->h, i % k->w);
}
#endif
