/* The patch-centre draw of the training loop (trainer.c), apart so its
 * proportions can be tested. */
#ifndef UNET3D_SAMPLE_INTERNAL_H
#define UNET3D_SAMPLE_INTERNAL_H
#include <stddef.h>
#include "unet3d/rng.h"

/* An index into a volume's labeled voxels sorted by class (class k at
 * [start[k], start[k+1]); present: the npresent classes with voxels;
 * nlabeled >= 1) as `sampling` (u3d_sampling) draws it from r. */
size_t u3d_sample_pick(int sampling, const size_t *start, const int *present,
                       int npresent, size_t nlabeled, u3d_rng *r);

#endif
