/* Training from sparse annotation. The model files it writes and resumes
 * from are those of model_io.h. */
#ifndef UNET3D_TRAIN_H
#define UNET3D_TRAIN_H
#include <stdint.h>
#include <stdio.h>
#include "unet3d/augment.h"
#include "unet3d/model.h"
#include "unet3d/model_io.h"
#include "unet3d/volume.h"
#ifdef __cplusplus
extern "C" {
#endif

/* One training volume: image (normalized in place by the trainer) and
 * sparse labels of the same D,H,W. */
typedef struct u3d_train_volume {
    u3d_volume image;
    u3d_labels labels;
    char image_path[512];
    char labels_path[512];
} u3d_train_volume;

typedef struct u3d_train_opts {
    const char *model_path;  /* final model; checkpoints go there too;
                                NULL: none written (the net in memory is
                                the result) */
    const char *log_path;    /* CSV loss curve, or NULL */
    int checkpoint_every;    /* iterations between checkpoints, 0: end only */
    int class_weights_auto;  /* from labeled-voxel frequencies */
    int quiet;               /* no progress lines */
    long stop_after;         /* testing: stop (as if killed) after this many
                                iterations of this run, 0: never */
    FILE *progress;          /* progress lines (stderr when NULL) */
} u3d_train_opts;

/* Automatic class weights from labeled-voxel counts: w_c = n / (K n_c) for
 * the K classes present (balanced influence, so the frequent background
 * gets a weight below 1, as in the paper), 0 for absent classes. */
void u3d_class_weights_auto(const size_t *counts, int classes, float *w);

/* Trains net (created and initialized, or loaded for resuming with
 * m->iteration > 0) on the volumes until m->iterations or m->minutes.
 * Every volume's labels must have been checked (u3d_labels_check) and its
 * image normalized. Writes the model atomically every checkpoint_every
 * iterations and at the end. Deterministic for a given seed and device:
 * iteration i draws its patches from the counter-based RNG stream (seed,
 * i), so a resumed run continues exactly. */
u3d_status u3d_train_run(u3d_net *net, u3d_model_meta *m,
                         u3d_train_volume *vols, int nvols,
                         const u3d_train_opts *o, u3d_error *err);

/* Default input patch (D,H,W) for a net and volume sizes: the largest
 * valid size <= cap per axis that still gives output >= 1. */
u3d_status u3d_train_default_patch(const u3d_net_config *cfg, int cap,
                                   int patch[3], u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
