/* Training from sparse annotation, and model files.
 *
 * A model file is a .u3d checkpoint (checkpoint.h) whose metadata describe
 * the architecture, normalization, classes and training state, and whose
 * tensors are every parameter, every BN running statistic and (for resuming)
 * every SGD momentum buffer ("NAME.momentum"). */
#ifndef UNET3D_TRAIN_H
#define UNET3D_TRAIN_H
#include <stdint.h>
#include <stdio.h>
#include "unet3d/augment.h"
#include "unet3d/model.h"
#include "unet3d/volume.h"
#ifdef __cplusplus
extern "C" {
#endif

#define U3D_MAX_CLASSES 64

typedef struct u3d_model_meta {
    u3d_net_config net;
    int norm_mode;           /* u3d_norm_mode, computed per input volume */
    float norm_plo, norm_phi; /* percentiles for U3D_NORM_PERCENTILE */
    int ignore_label;
    float class_weights[U3D_MAX_CLASSES];
    char class_names[256];   /* comma separated, may be empty */
    /* training state */
    long iteration;          /* iterations done */
    long iterations;         /* planned total (0 with --minutes) */
    double minutes;          /* planned time budget (0 with --iterations) */
    double elapsed_s;        /* training time spent so far */
    uint64_t seed;
    int patch[3];            /* input patch D,H,W */
    int batch;
    float lr, momentum, weight_decay;
    int lr_poly;             /* 1: lr * (1 - progress)^0.9, progress = the
                                share of the iterations (or minutes) done */
    char augment[32];        /* augmentation preset name */
    int aug_custom;          /* 1: aug below (a preset with per-transform
                                changes) is used instead of the preset */
    u3d_augment_params aug;
} u3d_model_meta;

/* The augmentation a model was (is being) trained with. */
u3d_status u3d_model_augment_params(const u3d_model_meta *m,
                                    u3d_augment_params *p, u3d_error *err);

void u3d_model_meta_defaults(u3d_model_meta *m);

/* Saves parameters, BN statistics and (with_optimizer) momentum buffers
 * atomically. */
u3d_status u3d_model_save(const char *path, u3d_net *net,
                          const u3d_model_meta *m, int with_optimizer,
                          u3d_error *err);
/* Loads a model file onto be: rebuilds the net from the stored
 * architecture and checks every tensor's presence, shape and finiteness.
 * Momentum buffers are restored when present. */
u3d_status u3d_model_load(const char *path, u3d_backend *be, u3d_net **net,
                          u3d_model_meta *m, u3d_error *err);
/* The same for inference: momentum buffers are checked but not loaded, and
 * no gradient buffers are made, so the device holds the parameters alone
 * (the paper network's optimizer state is 145 MiB). */
u3d_status u3d_model_load_inference(const char *path, u3d_backend *be,
                                    u3d_net **net, u3d_model_meta *m,
                                    u3d_error *err);

/* One training volume: image (normalized in place by the trainer) and
 * sparse labels of the same D,H,W. */
typedef struct u3d_train_volume {
    u3d_volume image;
    u3d_labels labels;
    char image_path[512];
    char labels_path[512];
} u3d_train_volume;

typedef struct u3d_train_opts {
    const char *model_path;  /* final model; checkpoints go there too */
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
