/* Synthetic volumes for the demo, the tests and the development set of
 * structures: the paper's kidney tubules (curved tubes of varying radius,
 * label 1 inside a tube) and membrane-stained cells (thin walls, label 1 on
 * a wall); anisotropic voxels (coarser z), microscope blur, noise and
 * uneven brightness. */
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

/* Membrane-stained tissue, as a confocal volume of cell boundaries: cells
 * of a jittered Voronoi tessellation with walls about `wall` x/y voxels
 * thick (label 1; cell interiors 0), anisotropic voxels, blur (weaker
 * along z), noise, uneven brightness, and walls of uneven contrast (each
 * pair of cells' wall between `faint` and 1 of the full contrast) — the
 * thin structures that stress augmentation and resampling. */
typedef struct u3d_membrane_params {
    int d, h, w;
    double z_spacing;  /* z voxel size relative to x/y */
    int ncells;        /* 2..4096 */
    double wall;       /* wall thickness, x/y voxels (1..2 for real data) */
    double blur;       /* Gaussian sigma in x/y voxels */
    double noise;      /* noise std relative to the wall contrast */
    double uneven;     /* brightness gradient across the field, 0..1 */
    double faint;      /* dimmest wall's contrast, 0..1 */
} u3d_membrane_params;

/* 32x128x128 voxels of 0.235 x 0.15 x 0.15 (z 1.57 times coarser), 60
 * cells, walls 1.5 voxels, blur 0.8, noise 0.15, uneven 0.4, faint 0.35. */
void u3d_membrane_params_default(u3d_membrane_params *p);
/* Deterministic for a seed. */
u3d_status u3d_synth_membranes(const u3d_membrane_params *p, uint64_t seed,
                               u3d_volume *img, u3d_labels *lab,
                               u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
