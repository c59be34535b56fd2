/* Synthetic volumes for the demo and tests, after the paper's kidney
 * tubules: curved tubes of varying radius, anisotropic voxels (coarser z),
 * microscope blur, noise and uneven brightness. Label 1 inside a tube. */
#ifndef UNET3D_SYNTH_H
#define UNET3D_SYNTH_H
#include <stdint.h>
#include "unet3d/volume.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct u3d_synth_params {
    int d, h, w;        /* voxels */
    double z_spacing;   /* z voxel size relative to x/y (anisotropy) */
    int ntubes;         /* 1..64 */
    double r_min, r_max; /* tube radius range, in x/y voxels */
    double blur;        /* Gaussian sigma in x/y voxels */
    double noise;       /* Gaussian noise std, relative to the tube contrast */
    double uneven;      /* brightness gradient across the field, 0..1 */
} u3d_synth_params;

/* 48x96x96 voxels, z twice as coarse, 14 tubes of radius 3..7. */
void u3d_synth_params_default(u3d_synth_params *p);
/* Deterministic for a seed. */
u3d_status u3d_synth_tubules(const u3d_synth_params *p, uint64_t seed,
                             u3d_volume *img, u3d_labels *lab, u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
