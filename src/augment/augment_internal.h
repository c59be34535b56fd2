/* Shared by the files of src/augment (internal): the kernels' arithmetic compiled as
 * C, and the per-call constants every path fills the same way. */
#ifndef UNET3D_AUGMENT_INTERNAL_H
#define UNET3D_AUGMENT_INTERNAL_H
#include "unet3d/augment.h"
#include "core/backend_impl.h"
#include "../../cl/augment.cl"

/* Checks params and shapes (label_shape NULL: no labels) and fills k for
 * one call: the per-sample draws, the control grid, the label box. */
u3d_status u3d_aug_prepare(const u3d_augment_params *p, uint64_t seed,
                           uint64_t sample_index, u3d_shape src_shape,
                           const float origin[3], u3d_shape out_shape,
                           const u3d_shape *label_shape, aug_consts *k,
                           u3d_error *err);

/* Element counts of the control grid phi (3, ncz, ncy, ncx) and the two
 * partially interpolated fields p1 (3, ncz, ncy, w) and p2 (3, ncz, h, w). */
static inline size_t u3d_aug_phi_count(const aug_consts *k)
{
    return (size_t)3 * k->ncz * k->ncy * k->ncx;
}
static inline size_t u3d_aug_p1_count(const aug_consts *k)
{
    return (size_t)3 * k->ncz * k->ncy * k->w;
}
static inline size_t u3d_aug_p2_count(const aug_consts *k)
{
    return (size_t)3 * k->ncz * k->h * k->w;
}
/* Work items of the gray-value pass: channel groups of 4 x voxels. */
static inline size_t u3d_aug_gray_count(const aug_consts *k)
{
    return (size_t)(k->C + 3) / 4 * k->d * k->h * k->w;
}

/* Each backend's augment_sample (u3d_cl_augment_sample, ...) is declared
 * with its ops from the op list. */

/* The host path on prepared constants (backends/ref/augment.c). */
u3d_status u3d_aug_sample_host_k(const aug_consts *k, const float *src,
                                 const int32_t *src_lab, float *out,
                                 int32_t *out_lab, u3d_error *err);
#endif
