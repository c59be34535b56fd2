/* The evaluation protocols of Cicek et al. 2016 on the user's volumes
 * (`unet3d experiment`): the pieces that decide what is trained on and
 * what is scored, and one training-and-scoring run. */
#ifndef UNET3D_EXPERIMENT_H
#define UNET3D_EXPERIMENT_H
#include "unet3d/densify.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The networks compared in the paper's tables. */
typedef enum u3d_exp_variant {
    U3D_EXP_3D = 0,      /* the configured net */
    U3D_EXP_3D_NOBN = 1, /* the same without batch norm */
    U3D_EXP_2D = 2       /* the same with 1x3x3 convs, 1x2x2 pools */
} u3d_exp_variant;

extern const char *const u3d_exp_variant_names[]; /* 3d, 3d-nobn, 2d */

/* The variant's change to a configured net. */
void u3d_exp_variant_apply(u3d_exp_variant v, u3d_net_config *c);

typedef struct u3d_exp_slice {
    int axis;  /* 0 z, 1 y, 2 x */
    int index;
} u3d_exp_slice;

/* The annotated slices of sparse: every voxel annotated (a plane the
 * truth was sparsified to; the half-annotated rule of suggest.h would
 * also count crossed planes of small volumes), ordered z then y then x,
 * by index; *s malloc'd. */
u3d_status u3d_exp_slices(const u3d_labels *sparse, int ignore,
                          u3d_exp_slice **s, int *n, u3d_error *err);

/* Fold f of k: slices are dealt round-robin (slice i goes to fold i % k).
 * train: truth on the slices of the other folds; score: truth on fold f's
 * slices where no training slice passes; ignore elsewhere. Both are
 * allocated here. k > n is refused. */
u3d_status u3d_exp_fold(const u3d_labels *truth, const u3d_exp_slice *s,
                        int n, int k, int f, int ignore, u3d_labels *train,
                        u3d_labels *score, u3d_error *err);

/* score: truth where sparse has the ignore label, ignore elsewhere. */
u3d_status u3d_exp_unannotated(const u3d_labels *truth,
                               const u3d_labels *sparse, int ignore,
                               u3d_labels *score, u3d_error *err);

/* Leave one out: the n - 1 indices other than test into train, in order;
 * returns their count. */
int u3d_exp_others(int n, int test, int *train);

typedef struct u3d_exp_result {
    u3d_val_score score; /* iteration 0: nothing to score (NaN IoU) */
    long iterations;
    double seconds;      /* training */
} u3d_exp_result;

/* Trains a new net with o's setup (classes: o->meta.net.classes, else the
 * training labels'; patch: the smallest of each volume's automatic one;
 * class weights from all training volumes) on the nv volumes (images
 * normalized), then scores it on val (u3d_validate). */
u3d_status u3d_exp_run(u3d_backend *be, const u3d_densify_opts *o,
                       u3d_train_volume *train, int nv,
                       const u3d_train_volume *val, u3d_exp_result *r,
                       u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
