/* Augmentation on the GPU: the passes of the OpenCL path
 * (src/backends/opencl/augment.c) as the CUDA kernels of kernels.cu, which run
 * the shared arithmetic of cl/augment.cl, so a patch is bit for bit the
 * host implementation's. Control points, the B-spline field along w, then
 * along h, one sampling pass that finishes it along d, maps and samples,
 * then the gray-value pass (skipped when it would change nothing). The
 * source volume stays on the device: no host round trip per patch. */
#ifdef U3D_HAVE_CUDNN
#include <limits.h>
#include "backends/cudnn/cudnn_internal.h"
#include "augment/augment_internal.h"

/* Launches kernel id over n items (a grid-stride loop). */
static u3d_status aug_launch(u3d_cudnn *cx, u3d_cudnn_kid id,
                             const char *label, size_t n, const u3d_kargs *a,
                             u3d_error *err)
{
    return u3d_cudnn_launch(cx, id, label, u3d_cudnn_blocks((long long)n), 1,
                            a, err);
}

u3d_status u3d_cudnn_augment_sample(u3d_backend *be, const aug_consts *k,
                                    const u3d_tensor *src_image,
                                    const u3d_tensor *src_labels,
                                    u3d_tensor *out_image,
                                    u3d_tensor *out_labels, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    size_t nphi = u3d_aug_phi_count(k), n1 = u3d_aug_p1_count(k);
    size_t n2 = u3d_aug_p2_count(k), nv = (size_t)k->d * k->h * k->w;
    size_t ngray = u3d_aug_gray_count(k);
    size_t most = n2 > n1 ? n2 : n1;
    most = most > nphi ? most : nphi;
    /* the shared code indexes with int, like the OpenCL kernels */
    if (most > INT_MAX || nv > INT_MAX || ngray > INT_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "augment: the %dx%dx%d patch needs a deformation "
                          "field of %zu values, more than the 2^31-1 the "
                          "cudnn backend's kernels index; use a smaller patch",
                          k->d, k->h, k->w, most);
    /* the three field stages in the backend's grow-only scratch: the
     * stream orders this op after earlier users and before later ones */
    void *scratch;
    U3D_TRY(
        u3d_cudnn_scratch(cx, (nphi + n1 + n2) * sizeof(float), &scratch, err));
    float *phi = scratch, *p1 = phi + nphi, *p2 = p1 + n1;
    const float *src = src_image->buf;
    float *out = out_image->buf;
    /* without labels NULL, never read (has_labels is 0) */
    const int32_t *slab = src_labels ? src_labels->buf : NULL;
    int32_t *olab = out_labels ? out_labels->buf : NULL;

    u3d_kargs a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0};
    U3D_KARG_AUG(a1, k);
    U3D_KARG(a1, phi);
    U3D_TRY(aug_launch(cx, K_AUG_CONTROL_POINTS, "augment control points",
                       nphi / 3, &a1, err));
    U3D_KARG_AUG(a2, k);
    U3D_KARG(a2, phi);
    U3D_KARG(a2, p1);
    U3D_TRY(aug_launch(cx, K_AUG_FIELD_W, "augment field (w)", n1, &a2, err));
    U3D_KARG_AUG(a3, k);
    U3D_KARG(a3, p1);
    U3D_KARG(a3, p2);
    U3D_TRY(aug_launch(cx, K_AUG_FIELD_H, "augment field (h)", n2, &a3, err));
    U3D_KARG_AUG(a4, k);
    U3D_KARG(a4, src);
    U3D_KARG(a4, slab);
    U3D_KARG(a4, p2);
    U3D_KARG(a4, out);
    U3D_KARG(a4, olab);
    U3D_TRY(aug_launch(cx, K_AUG_SAMPLE, "augment sample", nv, &a4, err));
    if (!k->use_gray)
        return U3D_OK;
    U3D_KARG_AUG(a5, k);
    U3D_KARG(a5, out);
    return aug_launch(cx, K_AUG_GRAY, "augment gray values", ngray, &a5, err);
}

#else
typedef int u3d_cudnn_augment_unused;
#endif
