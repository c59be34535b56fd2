/* Data augmentation on the device (Cicek et al. 2016, sec. 3: "a smooth
 * dense deformation field ... random vectors from a normal distribution
 * with standard deviation of 4 in a grid with a spacing of 32 voxels ...
 * B-spline interpolation", besides rotation, scaling and gray-value
 * augmentation).
 *
 * One call makes one training patch: every output voxel o (patch voxel
 * coordinates z, y, x) reads the source at
 *
 *     p = origin + A (o - c) + u(o)
 *
 * where c = ((d-1)/2, (h-1)/2, (w-1)/2) is the patch center, origin the
 * source point (voxels, z y x order) the patch center maps to (chosen by
 * the caller, e.g. a random patch location), A = R diag(m_i / s_i) the
 * random affine map (rotation R = R_d(a0) R_h(a1) R_w(a2) about the d, h
 * and w axes, mirroring m_i = +-1, scaling s_i; s > 1 enlarges structures)
 * and u the dense deformation field. The image is sampled trilinearly per
 * channel, labels by nearest neighbour; then the gray-value changes apply.
 *
 * Dense field: control points on a grid with spacing grid_spacing (voxels,
 * per axis) over the output patch, control point j of an axis at voxel
 * (j-1)*spacing, so voxel i uses points i/spacing + 0..3; each displacement
 * component is N(0, sigma_axis^2), drawn by Philox4x32-10 (key = seed,
 * counter = (control point index, 1, sample index)) and Box-Muller; u is
 * their uniform cubic B-spline interpolation (separable).
 *
 * Its spread: with iid N(0, sigma^2) control values, the field component at
 * a voxel with per-axis fractional positions (t_z, t_y, t_x) is a weighted
 * sum of 64 iid normals, variance sigma^2 prod_axes sum_{i=0..3} B_i(t)^2.
 * sum_i B_i(t)^2 runs from 265/576 = 0.460 (t = 1/2) to 1/2 (t = 0); its
 * mean over t uniform in [0,1) is the integral 151/315 = 0.479365, and over
 * the grid's discrete t = r/spacing it is 0.47936509 for spacing 32 (exact
 * fraction 9264858161/19327352832). Averaged over voxels (patch sides a
 * multiple of the spacing) the mean square of a component is therefore
 * sigma^2 (151/315)^3, i.e. the root mean square is
 * sigma (151/315)^(3/2) = 0.33189 sigma (1.3276 voxels for sigma = 4).
 * tests/test_augment.c measures exactly that root mean square (over all
 * voxels, components and samples) on the device and checks it against the
 * exact expectation with a 5-standard-error tolerance computed from the
 * B-spline weights.
 *
 * Outside the source: a source point p is inside when its nearest voxel
 * round(p) exists, i.e. -0.5 <= p < n - 0.5 on every axis. Outside, labels
 * get ignore_label (never a fake background) and the image gets fill_value
 * (U3D_AUG_FILL_CONSTANT) or the half-sample symmetric mirror of the source
 * (U3D_AUG_FILL_MIRROR); inside, trilinear interpolation clamps to the
 * border voxels. Filled values go through the gray-value changes too.
 *
 * Gray values, per channel in this order, with [lo, hi] = gray_range:
 * gamma   v in (lo, hi) -> lo + (hi-lo) ((v-lo)/(hi-lo))^gamma (values
 *         outside stay: the map fixes lo and hi)
 * contrast and brightness  v -> contrast (v - (lo+hi)/2) + (lo+hi)/2 + b
 * noise   v -> v + N(0, noise_std^2), per voxel and channel (Philox, counter
 *         (voxel, 2 | group << 8, sample index))
 * Per-sample scalars (angles, scales, mirror flags, gamma, contrast,
 * brightness, noise std) are drawn uniformly in their ranges from the host
 * stream u3d_rng_init(seed, sample_index), always all of them in a fixed
 * order (u3d_augment_draw_sample), so enabling one does not change the
 * others.
 *
 * Reproducibility: the kernels use no device math library (own ln, exp,
 * sqrt, sin, cos from +, -, * and bit operations; no FMA contraction; see
 * cl/augment.cl) and the host implementation compiles the same source, so
 * a (seed, sample index) pair gives bit-identical patches on the host, PoCL
 * and oclgrind, and on any conforming device that keeps single-precision
 * denormals (optional in OpenCL: a device flushing them can differ in the
 * last bits where the data has denormals).
 *
 * Work per call on OpenCL: 4 small buffers (constants, control grid, two
 * partial fields, about 3 (d/spacing + 4) h w floats), 4 or 5 kernels
 * (control points, field along w, along h, sampling, gray values when they
 * change anything). Source coordinates are clamped to +-1e7 voxels. */
#ifndef UNET3D_AUGMENT_H
#define UNET3D_AUGMENT_H
#include <stdint.h>
#include "unet3d/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum u3d_aug_fill {
    U3D_AUG_FILL_MIRROR = 0,   /* symmetric extension of the source */
    U3D_AUG_FILL_CONSTANT = 1  /* fill_value */
} u3d_aug_fill;

/* Axes are in (d, h, w) order throughout. Ranges are [lo, hi]. */
typedef struct u3d_augment_params {
    float sigma[3];        /* std of control displacements per component
                              (voxels); 0 disables the deformation */
    int grid_spacing[3];   /* control-point spacing (voxels), >= 1 */
    float rotate_deg[3];   /* angle about each axis ~ U(-r, r), degrees */
    float scale_iso[2];    /* isotropic scale ~ U(lo, hi), > 0 */
    float scale_axis[2];   /* extra scale per axis ~ U(lo, hi), > 0 */
    int mirror[3];         /* 1: flip that axis with probability 1/2 */
    float gray_range[2];   /* intensities gamma and contrast refer to */
    float gamma[2];        /* > 0 */
    float contrast[2];     /* >= 0 */
    float brightness[2];
    float noise_std[2];    /* >= 0 */
    u3d_aug_fill fill;     /* image outside the source */
    float fill_value;      /* for U3D_AUG_FILL_CONSTANT */
    int ignore_label;      /* labels outside the source: set it to the
                              loss's ignore label */
    /* Probability that a sample gets each transform, drawn independently:
     * the deformation, the rotation, the scaling, the gray-value changes
     * (1: every sample, as the paper). Below 1, the other samples are exact
     * crops in that respect: every resampling blurs the image (trilinear)
     * and moves labels by up to half a voxel, which thin walls feel; the
     * network must also see the unresampled data it will segment. */
    float p_deform, p_rotate, p_scale, p_gray;
} u3d_augment_params;

/* No change at all: sigma 0, no rotation, scale 1, no mirror, gray values
 * untouched; mirror fill, ignore_label 255, grid spacing 32. */
void u3d_augment_params_none(u3d_augment_params *p);
/* The paper's deformation (sigma 4, spacing 32) plus our choice of the
 * ranges the paper does not give: rotation +-15 deg about every axis,
 * isotropic scale [0.9, 1.1], no mirroring, gamma [0.8, 1.25], contrast
 * [0.9, 1.1], brightness [-0.1, 0.1], noise std [0, 0.02] on a [0, 1]
 * gray range (intensities normalized to about [0, 1]). */
void u3d_augment_params_paper(u3d_augment_params *p);
/* Every axis mirrored at random; the paper's ranges kept for the other
 * transforms, each applied with probability 0 (raise it with p_*, the
 * CLI's --aug-prob). Measured on thin walls (README, "Augmentation on thin
 * structures"): at the budgets of minutes every resampled or gray-changed
 * patch cost IoU, even at probability 0.2; flips are exact and free. */
void u3d_augment_params_default(u3d_augment_params *p);
/* By name: "default", "paper" or "none". */
u3d_status u3d_augment_params_preset(const char *name, u3d_augment_params *p,
                                     u3d_error *err);
/* U3D_ERR_INVALID_ARG naming the bad field (negative or non-finite sigma,
 * zero grid spacing, empty or reversed ranges, ...). */
u3d_status u3d_augment_params_check(const u3d_augment_params *p,
                                    u3d_error *err);

/* The per-sample random scalars of (seed, sample_index). */
typedef struct u3d_augment_draw {
    float angle_deg[3];
    float scale[3];     /* iso * per-axis */
    int mirror[3];      /* 1: flipped */
    float gamma, contrast, brightness, noise_std;
    float matrix[9];    /* A: source offset = A (output offset), row-major */
    int deform;         /* 1: this sample is deformed (sigma > 0 and drawn
                           with probability p_deform) */
} u3d_augment_draw;

void u3d_augment_draw_sample(const u3d_augment_params *p, uint64_t seed,
                             uint64_t sample_index, u3d_augment_draw *out);

/* Makes one augmented patch on be (OpenCL, or the ref backend through the
 * host implementation). src_image (1,C,D,H,W) float32; src_labels
 * (1,1,D,H,W) int32 or NULL; origin: source point (z, y, x, voxels) of the
 * patch center; out_image (1,C,d,h,w) with d <= D, h <= H, w <= W;
 * out_labels (1,1,d',h',w') int32 (NULL iff src_labels is NULL), at most
 * the image patch and centered in it ((d - d') etc. even), as valid
 * convolutions predict only the center. Asynchronous on OpenCL like the
 * other ops. */
u3d_status u3d_augment_sample(u3d_backend *be, const u3d_augment_params *p,
                              uint64_t seed, uint64_t sample_index,
                              const u3d_tensor *src_image,
                              const u3d_tensor *src_labels,
                              const float origin[3], u3d_tensor *out_image,
                              u3d_tensor *out_labels, u3d_error *err);

/* The same transform in plain C on host arrays (shapes as above;
 * src_labels and out_labels both NULL or both given, label_shape then
 * ignored). The tests' oracle and the CPU baseline. */
u3d_status u3d_augment_sample_host(const u3d_augment_params *p, uint64_t seed,
                                   uint64_t sample_index, u3d_shape src_shape,
                                   const float *src_image,
                                   const int32_t *src_labels,
                                   const float origin[3], u3d_shape out_shape,
                                   float *out_image, u3d_shape label_shape,
                                   int32_t *out_labels, u3d_error *err);

/* The dense deformation field alone, host: field (3, d, h, w), components
 * (d, h, w) in voxels, for a patch of d x h x w. */
u3d_status u3d_augment_field_host(const u3d_augment_params *p, uint64_t seed,
                                  uint64_t sample_index, int d, int h, int w,
                                  float *field, u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
