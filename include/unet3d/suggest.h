/* "Which slices should I annotate next?": unannotated z, y and x slices
 * ranked by how unsure a model is there, for the semi-automatic workflow's
 * next round of annotation (the names densify's --annotation-slices
 * reads: z0042.png, y0100.png, x0031.png). */
#ifndef UNET3D_SUGGEST_H
#define UNET3D_SUGGEST_H
#include "unet3d/volume.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct u3d_slice_score {
    char axis;    /* 'z', 'y' or 'x' */
    int index;    /* slice number along that axis */
    double score; /* 0..~2: higher, more worth annotating */
} u3d_slice_score;

typedef struct u3d_suggest_opts {
    int count;          /* slices to suggest */
    int ignore_label;   /* the sparse labels' unannotated value */
    double fg_weight;   /* voxels count 1 + fg_weight * P(not class 0):
                           foreground errors matter more; default 1 */
    double spread;      /* slices within about this many slices of an
                           annotated or already suggested one (same axis)
                           count less; default 2 */
} u3d_suggest_opts;

/* count (or 8), ignore label 255, fg_weight 1, spread 2. */
void u3d_suggest_opts_default(u3d_suggest_opts *o);

/* Scores every z, y and x slice of probs (C = classes softmax
 * probabilities, D,H,W of sparse): the mean over the slice of the
 * normalized entropy H(p)/log(C) of its unannotated voxels, weighted
 * towards foreground, times 1 - exp(-d^2 / (2 spread^2)) for the distance
 * d in slices to the nearest annotated slice (over half its voxels
 * annotated) of the same axis. Picks the best o->count greedily, each
 * pick lowering its neighbours the same way, into out (capacity count);
 * *n receives how many (fewer when the volume has fewer unannotated
 * slices), best first. */
u3d_status u3d_suggest_slices(const u3d_volume *probs,
                              const u3d_labels *sparse,
                              const u3d_suggest_opts *o, u3d_slice_score *out,
                              int *n, u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
