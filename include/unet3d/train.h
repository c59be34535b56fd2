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
    int sync_bn;             /* several processes (MPI): batch norm with the
                                statistics of the global batch */
    /* Validation (u3d_validate) every val_every iterations (0: at the
     * checkpoints, else every 50) and at the end, written to the log. */
    const u3d_train_volume *val; /* NULL: none */
    int val_every;
    const char *best_path;   /* the best-scoring model is written here
                                (NULL: not written) */
    int keep_best;           /* the net, and model_path's last write,
                                end with the best-scoring parameters
                                (else the last ones) */
    struct u3d_val_score *best; /* out (may be NULL): the best validation */
} u3d_train_opts;

/* ---- Validation ----------------------------------------------------------
 * The one scorer of train's --val-image and densify's held-out slices:
 * the net predicts the whole (normalized) image, and the IoU per class is
 * counted over the annotated voxels of the labels only (the ignore label
 * is not scored), so sparse labels score as well as dense ones. */
typedef struct u3d_val_score {
    long iteration;              /* when scored; 0: no score */
    int classes;
    double iou[U3D_MAX_CLASSES]; /* NaN: absent from labels and prediction */
    double mean_fg;              /* mean IoU of classes 1..K-1 with an IoU;
                                    NaN: none */
    double mean_all;             /* the same over every class */
    size_t voxels;               /* annotated voxels scored */
} u3d_val_score;

/* Scores net on v (image normalized, labels checked against the classes).
 * Under MPI every rank calls it (the prediction is shared) and receives
 * rank 0's score. max_memory: the prediction's device budget (0: the
 * device's). */
u3d_status u3d_validate(u3d_net *net, const u3d_train_volume *v,
                        int ignore_label, size_t max_memory, u3d_val_score *s,
                        u3d_error *err);
/* What "best" compares: mean_fg, or mean_all when no foreground class has
 * an IoU; -1 for no score. */
double u3d_val_key(const u3d_val_score *s);

/* Decision calibration (issue #15): weighted cross-entropy shifts the
 * network's decision towards the rare classes (balanced weights and
 * class-first patches: walls over-segmented), so densify chooses per-class
 * offsets added to the logits before the argmax, bias[0] = 0, each from
 * U3D_CALIB_MIN..U3D_CALIB_MAX in steps of U3D_CALIB_STEP, that maximize
 * the mean foreground IoU of the annotated voxels of `labels` (the
 * held-out slices) under `probs` (softmax, C = classes, same D,H,W): every
 * combination of the grid for 2 or 3 classes, coordinate ascent
 * (U3D_CALIB_SWEEPS sweeps over classes 1..K-1) for more. Ties keep the offset
 * nearest 0; the offsets are kept only when they raise that IoU by at least
 * U3D_CALIB_MIN_GAIN, else all 0 (changed = 0). For two classes an offset
 * b is the threshold p1 > 1 / (1 + e^b). */
#define U3D_CALIB_MIN (-4.0f) /* symmetric: -U3D_CALIB_MAX */
#define U3D_CALIB_MAX 4.0f
#define U3D_CALIB_STEP 0.25f
#define U3D_CALIB_SWEEPS 3
#define U3D_CALIB_MIN_GAIN 0.005
typedef struct u3d_calibration {
    float bias[U3D_MAX_CLASSES];
    u3d_val_score before, after; /* iteration 0: set by the caller */
    int changed;
} u3d_calibration;
u3d_status u3d_calibrate_bias(const u3d_volume *probs,
                              const u3d_labels *labels, int ignore_label,
                              u3d_calibration *c, u3d_error *err);
/* The honest estimate of that calibrated decision (the offsets are tuned
 * on the very slices that score them, which flatters the IoU most with
 * many classes): each of the nslices held-out slices is scored with the
 * offsets u3d_calibrate_bias would choose from the other slices' voxels,
 * the counts pooled (a voxel on several slices belongs to the first).
 * est->voxels 0 (no estimate) when fewer than two slices could be scored
 * so. */
struct u3d_slice_score;
u3d_status u3d_calibrate_crossfit(const u3d_volume *probs,
                                  const u3d_labels *labels, int ignore_label,
                                  const struct u3d_slice_score *slices,
                                  int nslices, u3d_val_score *est,
                                  u3d_error *err);
/* train's calibration: net predicts every image whose labels have
 * annotated voxels (the held-out slices of a training volume, or a
 * validation volume's annotation), those voxels are pooled over the
 * images, and c is u3d_calibrate_bias of the pool (c->changed 0 when no
 * voxel is annotated). est (may be NULL) receives the cross-fitted score
 * of that decision: each held-out slice (slices, numbered over all images;
 * an image without them takes part in tuning only) decided by the offsets
 * tuned on the other voxels, est->voxels 0 when fewer than two slices
 * could be scored so. Holds one image's probabilities at a time. Under
 * MPI every rank calls it (prediction is distributed) and receives rank
 * 0's c and est. */
typedef struct u3d_calib_set {
    const u3d_volume *image;
    const u3d_labels *labels;
    const struct u3d_slice_score *slices; /* may be NULL */
    int nslices;
} u3d_calib_set;
u3d_status u3d_calibrate_net(u3d_net *net, const u3d_calib_set *set, int n,
                             int ignore_label, size_t max_memory,
                             u3d_calibration *c, u3d_val_score *est,
                             u3d_error *err);
/* out (allocated, probs's D,H,W and spacing) = argmax_k log p_k + bias[k]
 * (bias NULL: 0), the lowest class on ties. */
u3d_status u3d_labels_from_probs(const u3d_volume *probs, const float *bias,
                                 u3d_labels *out, u3d_error *err);

/* Automatic class weights from labeled-voxel counts: w_c = n / (K n_c) for
 * the K classes present (balanced influence, so the frequent background
 * gets a weight below 1, as in the paper), 0 for absent classes. */
void u3d_class_weights_auto(const size_t *counts, int classes, float *w);

/* Trains net (created and initialized, or loaded for resuming with
 * m->iteration > 0) on the volumes until m->iterations or m->minutes.
 * Every volume's labels must have been checked (u3d_labels_check) and its
 * image normalized. Writes the model atomically every checkpoint_every
 * iterations and at the end. Deterministic for a given seed and device:
 * item b of the batch of iteration i is drawn from the counter-based RNG
 * stream (seed, i, b), so a resumed run continues exactly.
 *
 * Under MPI (several ranks, src/dist/dist.h) every rank calls this with
 * the same arguments: m->batch is the global batch, rank r of N takes items
 * [r*B/N, (r+1)*B/N) of it, so N ranks sample exactly the patches one
 * process with batch B samples; the loss is weighted over the global batch
 * and the gradients summed (bucketed non-blocking allreduce overlapping
 * backward), so without batch norm, or with sync_bn, the model equals one
 * process's with batch B up to rounding. Without sync_bn each rank
 * normalizes with its own batch statistics (the running statistics saved
 * are rank 0's). Rank 0 writes the model and the log. A failure during
 * setup on any rank fails every rank with its message; one in the loop
 * aborts the job (MPI_Abort) after printing it. */
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
