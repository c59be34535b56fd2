/* Mirror indexing of volumes (internal): the whole-volume prediction's
 * mirrored tile borders (src/predict/predict.c) and the training volumes'
 * mirror padding (src/train/trainer.c). cl/augment.cl has its own for the
 * kernels (aug_sym, division-free in the common case). */
#ifndef UNET3D_DATA_MIRROR_H
#define UNET3D_DATA_MIRROR_H

/* Index i reflected into [0, n), n > 0, for any i: half-sample symmetric,
 * the edge voxel repeated (... 1 0 | 0 1 ... n-1 | n-1 n-2 ...). */
static inline int u3d_mirror(int i, int n)
{
    int p = 2 * n, r = i % p;
    if (r < 0)
        r += p;
    return r < n ? r : p - 1 - r;
}

#endif
