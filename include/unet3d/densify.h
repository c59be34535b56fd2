/* Densification, the semi-automatic workflow of Cicek et al. 2016 on one
 * volume: train on its sparse annotation, segment the whole volume, keep
 * the annotated voxels' labels. The engine of `unet3d densify` and
 * `unet3d demo`. */
#ifndef UNET3D_DENSIFY_H
#define UNET3D_DENSIFY_H
#include <stddef.h>
#include "unet3d/backend.h"
#include "unet3d/suggest.h"
#include "unet3d/train.h"
#include "unet3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum u3d_class_weighting {
    U3D_WEIGHTS_BALANCED = 0, /* u3d_class_weights_auto */
    U3D_WEIGHTS_SQRT = 1,     /* its square root: half-way (geometric)
                                 between no weighting and balanced */
    U3D_WEIGHTS_GIVEN = 2     /* the weights as set, untouched */
} u3d_class_weighting;

/* Class weights w[0..classes) from labeled-voxel counts; GIVEN leaves w. */
void u3d_class_weights_set(u3d_class_weighting mode, const size_t *counts,
                           int classes, float *w);

typedef struct u3d_densify_opts {
    /* The training setup: network, normalization, SGD, augmentation, seed,
     * ignore label. meta.net.classes 0: the largest annotated label + 1;
     * meta.net.in_channels: the image's; meta.patch all 0: automatic (the
     * largest valid size per axis up to patch_cap and the volume plus the
     * network's context); meta.iterations and meta.minutes both 0: 10
     * minutes. */
    u3d_model_meta meta;
    u3d_class_weighting weights;
    int patch_cap;
    const char *model_out;  /* keep the trained model here (may be NULL) */
    const char *log_path;   /* CSV loss curve (may be NULL) */
    int checkpoint_every;   /* with model_out: iterations between saves */
    const char *image_name, *labels_name, *out_name; /* for messages */
    size_t max_memory;      /* device budget for prediction; 0: device's */
    int quiet;
    int sync_bn;            /* under MPI: see u3d_train_opts (train.h); the
                               trained model is predicted distributed and
                               rank 0 receives the result */
    /* An estimate of the result's IoU (u3d_holdout_split): this share of
     * the annotated slices is held out of training and scored with
     * u3d_validate every val_every iterations (0: the checkpoint interval,
     * else 50) and at the end; the best-scoring model makes the output
     * (and model_out). No retraining on all slices afterwards: within the
     * same budget it would halve each model's iterations, and the
     * estimate would describe another model than the one used. The held-
     * out slices' labels are still kept in the output. 0: none (the run
     * is then exactly that of a densify without this option). */
    double holdout;
    int val_every;
    /* With held-out slices: the decision is calibrated on them
     * (u3d_calibrate_bias: per-class logit offsets that maximize their
     * IoU), the output and the estimate use it and model_out records it
     * (predict applies it). Holds the probabilities of the whole volume
     * (classes x voxels floats) meanwhile. 0: the plain argmax. */
    int calibrate;
    int want_probs;         /* result->probs: the final softmax */
    struct u3d_densify_result *result; /* out (may be NULL) */
} u3d_densify_opts;

#define U3D_HOLDOUT_NAMES 256
typedef struct u3d_densify_result {
    u3d_val_score estimate;  /* iteration 0: no estimate; with calibrate,
                                the calibrated decision's, cross-fitted
                                (u3d_calibrate_crossfit) */
    u3d_calibration calib;   /* calibrate: before/after on the held-out
                                slices; calib.after.iteration 0: not run */
    int held;                /* held-out annotated slices */
    char held_names[U3D_HOLDOUT_NAMES]; /* "z0012 y0005", maybe cut */
    u3d_volume probs;        /* want_probs: C = classes (free it) */
} u3d_densify_result;

/* The annotation split for densify's estimate. An annotated slice is a z,
 * y or x slice with over half its voxels annotated (as in suggest.h).
 * round(fraction * slices), at least 1, are held out, drawn at random
 * from seed, never every annotated slice of an axis (an axis with one
 * annotated slice keeps it). held receives the annotated voxels of the
 * held-out slices that lie on no kept annotated slice; train the rest
 * (ignore_label where held has a label). nheld 0 (held empty, train =
 * sparse) when no slice can be held out. */
typedef struct u3d_holdout {
    u3d_labels train, held;
    int nheld;
    u3d_slice_score *slices; /* the nheld held-out slices (score 0) */
} u3d_holdout;

u3d_status u3d_holdout_split(const u3d_labels *sparse, int ignore_label,
                             double fraction, uint64_t seed, u3d_holdout *h,
                             u3d_error *err);
void u3d_holdout_free(u3d_holdout *h);

/* densify's automatic patch for a volume of vol (D, H, W) voxels: per
 * axis the largest valid size <= min(cap, vol + 2 * the net's context),
 * along an axis the net never looks across (--dims 2) at most 8 slices
 * (there a longer patch is only a larger batch of 2D images). */
u3d_status u3d_densify_patch(const u3d_net_config *c, const int vol[3],
                             int cap, int patch[3], u3d_error *err);

/* The small preset, paper augmentation, automatic classes, patch and
 * balanced class weights, checkpoints every 50 iterations, no holdout
 * (the densify command holds out 1/8 by default). */
void u3d_densify_defaults(u3d_densify_opts *o);
/* Trains on sparse's annotated voxels of image (normalized in place),
 * predicts the whole volume into dense, annotated voxels kept. */
u3d_status u3d_densify(u3d_backend *be, const u3d_densify_opts *o,
                       u3d_volume *image, const u3d_labels *sparse,
                       u3d_labels *dense, u3d_error *err);

/* ---- The annotation loop, simulated (suggest --simulate) ---------------
 * The truth stands in for the user: start from 1,1,1 evenly spaced
 * slices, train (densify's setup, o->meta's iterations or minutes per
 * round), score the IoU on the unannotated voxels (u3d_validate on the
 * truth outside the annotation), then add `count` slices of the truth and
 * train again, warm-started (the same network and momentum; the learning
 * rate schedule and the patch stream restart each round), `rounds` times.
 * Slices added: the ones u3d_suggest_slices ranks first, or evenly spaced
 * (count more per round, shared round-robin over z, y, x, placed as
 * u3d_labels_sparsify places them), or unannotated slices drawn at random
 * from meta.seed. */
typedef enum u3d_sim_pick {
    U3D_PICK_SUGGESTED = 0,
    U3D_PICK_EVEN = 1,
    U3D_PICK_RANDOM = 2
} u3d_sim_pick;

extern const char *const u3d_sim_pick_names[]; /* suggested, even, random */

typedef struct u3d_sim_row {
    int round;             /* 0: the first training, before any slice added */
    int slices[3];         /* annotated z, y, x slices */
    double annotated;      /* share of the voxels annotated */
    u3d_val_score score;   /* on the voxels not annotated */
    long iterations;       /* this round's */
    double seconds;        /* this round's training */
} u3d_sim_row;

/* image: raw (normalized in place); truth: dense, its D,H,W; rows:
 * capacity rounds + 1. */
u3d_status u3d_simulate(u3d_backend *be, const u3d_densify_opts *o,
                        u3d_sim_pick pick, int rounds, int count,
                        u3d_volume *image, const u3d_labels *truth,
                        u3d_sim_row *rows, u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
