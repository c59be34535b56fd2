/* Host implementation of the augmentation: the kernels of cl/augment.cl run
 * as plain loops over the same functions (augment_internal.h compiles them
 * as C), so it is bit-identical to the device up to pow (gamma). */
#include <stdlib.h>
#include "augment/augment_internal.h"
#include "backends/ref/ref.h"

/* The three field stages into fresh arrays; *p2 owned by the caller. */
static u3d_status host_field(const aug_consts *k, float **p2_out,
                             u3d_error *err)
{
    size_t nphi = u3d_aug_phi_count(k), n1 = u3d_aug_p1_count(k),
           n2 = u3d_aug_p2_count(k);
    float *phi = malloc(nphi * sizeof *phi), *p1 = malloc(n1 * sizeof *p1);
    float *p2 = malloc(n2 * sizeof *p2);
    if (!phi || !p1 || !p2) {
        free(phi);
        free(p1);
        free(p2);
        return u3d_seterr(err, U3D_ERR_OOM,
                          "augment: out of host memory for the deformation "
                          "field (%.1f MiB)",
                          (double)(nphi + n1 + n2) * 4 / 1048576.0);
    }
    for (size_t i = 0; i < nphi / 3; i++)
        aug_control_point(k, phi, (int)i);
    for (size_t i = 0; i < n1; i++)
        aug_field_w(k, phi, p1, (int)i);
    for (size_t i = 0; i < n2; i++)
        aug_field_h(k, p1, p2, (int)i);
    free(phi);
    free(p1);
    *p2_out = p2;
    return U3D_OK;
}

/* The ref backend's augment_sample: host buffers hold the data. */
u3d_status u3d_ref_augment_sample(u3d_backend *be, const aug_consts *k,
                                  const u3d_tensor *src_image,
                                  const u3d_tensor *src_labels,
                                  u3d_tensor *out_image, u3d_tensor *out_labels,
                                  u3d_error *err)
{
    (void)be;
    return u3d_aug_sample_host_k(
        k, src_image->buf, src_labels ? src_labels->buf : NULL, out_image->buf,
        out_labels ? out_labels->buf : NULL, err);
}

u3d_status u3d_aug_sample_host_k(const aug_consts *k, const float *src,
                                 const int32_t *src_lab, float *out,
                                 int32_t *out_lab, u3d_error *err)
{
    float *p2;
    U3D_TRY(host_field(k, &p2, err));
    for (int z = 0; z < k->d; z++)
        for (int y = 0; y < k->h; y++)
            for (int x = 0; x < k->w; x++)
                aug_voxel(k, src, src_lab, p2, out, out_lab, z, y, x);
    free(p2);
    if (k->use_gray)
        for (size_t i = 0; i < u3d_aug_gray_count(k); i++)
            aug_gray_group(k, out, (int)i);
    return U3D_OK;
}

u3d_status u3d_augment_sample_host(const u3d_augment_params *p, uint64_t seed,
                                   uint64_t sample_index, u3d_shape src_shape,
                                   const float *src_image,
                                   const int32_t *src_labels,
                                   const float origin[3], u3d_shape out_shape,
                                   float *out_image, u3d_shape label_shape,
                                   int32_t *out_labels, u3d_error *err)
{
    if (!src_image || !out_image)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: the source and output images are needed");
    if (!src_labels != !out_labels)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: give both src_labels and out_labels or "
                          "neither");
    aug_consts k;
    U3D_TRY(u3d_aug_prepare(p, seed, sample_index, src_shape, origin,
                            out_shape, src_labels ? &label_shape : NULL, &k,
                            err));
    return u3d_aug_sample_host_k(&k, src_image, src_labels, out_image,
                                 out_labels, err);
}

u3d_status u3d_augment_field_host(const u3d_augment_params *p, uint64_t seed,
                                  uint64_t sample_index, int d, int h, int w,
                                  float *field, u3d_error *err)
{
    u3d_shape s = u3d_shape5(1, 1, d, h, w);
    const float origin[3] = {0, 0, 0};
    aug_consts k;
    float *p2;
    if (!field)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: no output array for the field");
    U3D_TRY(u3d_aug_prepare(p, seed, sample_index, s, origin, s, NULL, &k,
                            err));
    U3D_TRY(host_field(&k, &p2, err));
    size_t n = u3d_shape_spatial(s);
    for (int z = 0; z < d; z++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float u[3];
                size_t v = ((size_t)z * h + y) * w + x;
                aug_displacement(&k, p2, z, y, x, u);
                field[v] = u[0];
                field[n + v] = u[1];
                field[2 * n + v] = u[2];
            }
    free(p2);
    return U3D_OK;
}
