/* Model files.
 *
 * A model file is a .u3d checkpoint (checkpoint.h) whose metadata describe
 * the architecture, normalization, classes and training state, and whose
 * tensors are every parameter, every BN running statistic and (for resuming)
 * the optimizer's state: every SGD momentum buffer or Adam first moment
 * ("NAME.momentum") and every Adam second moment ("NAME.adam_v"). */
#ifndef UNET3D_MODEL_IO_H
#define UNET3D_MODEL_IO_H
#include <stdint.h>
#include "unet3d/augment.h"
#include "unet3d/model.h"
#ifdef __cplusplus
extern "C" {
#endif

#define U3D_MAX_CLASSES 64

typedef enum u3d_optimizer {
    U3D_OPTIM_SGD = 0, /* momentum, PyTorch semantics (ops.h) */
    U3D_OPTIM_ADAM = 1 /* PyTorch's Adam (ops.h) */
} u3d_optimizer;
extern const char *const u3d_optimizer_names[]; /* sgd, adam */

/* Where training patches are centred (a labeled voxel, jittered within
 * the patch's output): */
typedef enum u3d_sampling {
    U3D_SAMPLE_CLASS = 0, /* a class first, then one of its voxels: rare
                             classes are seen as often as common ones */
    U3D_SAMPLE_VOXEL = 1, /* any labeled voxel: classes as annotated */
    U3D_SAMPLE_MIXED = 2  /* a third of the patches class first, the rest
                             any labeled voxel (nnU-Net's 33 % foreground
                             oversampling): rare classes seen often, and
                             the common ones in all their variety */
} u3d_sampling;
extern const char *const u3d_sampling_names[]; /* class, voxel, mixed */

typedef struct u3d_model_meta {
    u3d_net_config net;
    int norm_mode;           /* u3d_norm_mode, computed per input volume */
    float norm_plo, norm_phi; /* percentiles for U3D_NORM_PERCENTILE */
    int ignore_label;
    float class_weights[U3D_MAX_CLASSES];
    char class_names[256];   /* comma separated, may be empty */
    /* decision offsets added to the logits before the argmax (densify's
     * calibration on held-out slices, u3d_calibrate_bias); all 0: none */
    float class_bias[U3D_MAX_CLASSES];
    /* train's share of each volume's annotated slices held out for that
     * calibration (u3d_holdout_split with the seed): kept so that a
     * resumed run holds out the same slices; 0: none */
    double holdout;
    /* training state */
    long iteration;          /* iterations done */
    long iterations;         /* planned total (0 with --minutes) */
    double minutes;          /* planned time budget (0 with --iterations) */
    double elapsed_s;        /* training time spent so far */
    uint64_t seed;
    int patch[3];            /* input patch D,H,W */
    int batch;
    float lr, momentum, weight_decay;
    int optimizer;           /* u3d_optimizer; files without one: SGD */
    double beta1, beta2;     /* Adam's (0.9, 0.999) */
    float adam_eps;          /* Adam's (1e-8) */
    long adam_step;          /* Adam updates done (its bias corrections) */
    int sampling;            /* u3d_sampling; files without one: class */
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
/* 1 when m has decision offsets (class_bias not all 0). */
int u3d_model_has_bias(const u3d_model_meta *m);

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

#ifdef __cplusplus
}
#endif
#endif
