/* Shared inside src/train: densify's setup, and which slices of an
 * annotation are annotated (holdout, simulation). */
#ifndef UNET3D_DENSIFY_INTERNAL_H
#define UNET3D_DENSIFY_INTERNAL_H
#include "unet3d/densify.h"

/* The training setup of o completed from the image and its annotation:
 * classes, class weights, patch, time budget; *annotated: voxels. */
u3d_status u3d_densify_meta(const u3d_densify_opts *o,
                            const u3d_volume *image, const u3d_labels *sparse,
                            u3d_model_meta *m, size_t *annotated,
                            u3d_error *err);

/* cnt[a][k]: annotated voxels of slice k of axis a (z, y, x). */
void u3d_annotated_counts(const u3d_labels *l, int ignore, size_t *cnt[3]);

/* cnt[a][k]: annotated voxels of slice k of axis a (z, y, x); flag[a][k]:
 * 1 when over half of that slice is annotated (as suggest.h counts). */
void u3d_annotated_slices(const u3d_labels *l, int ignore, size_t *cnt[3],
                          unsigned char *flag[3]);

#endif
