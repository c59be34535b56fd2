/* A plan from the data (issue #15): the settings train and densify use
 * unless told otherwise, chosen from the user's volumes as nnU-Net
 * chooses them from a dataset fingerprint, each with a one-line reason.
 * `unet3d plan` prints it; train and densify apply each choice the user
 * did not make (--plan off: the preset's defaults). */
#ifndef UNET3D_PLAN_H
#define UNET3D_PLAN_H
#include <stddef.h>
#include "unet3d/augment.h"
#include "unet3d/densify.h"
#include "unet3d/model_io.h"
#include "unet3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The rules' thresholds, in one place (someone measures which win).
 * Anisotropy r = largest / smallest voxel spacing. From r >= AUG the
 * augmentation works in physical units: rotations only about z (about y or
 * x they would mix the coarse z axis into the plane) and the deformation
 * per axis scaled by s_min / s[a]. From r >= NET the network gets nnU-Net's
 * anisotropic kernels and pools (u3d_net_plan_spacing); 3 is nnU-Net's
 * anisotropy threshold. */
#define U3D_PLAN_ANISO_AUG 2.0
#define U3D_PLAN_ANISO_NET 3.0
/* The deformation grid never gets finer than this (voxels). */
#define U3D_PLAN_MIN_GRID 4
/* densify (semi-automatic): same-padded convolutions on patches of at
 * most this side (each <= the volume's): no context margin is computed and
 * thrown away, so an iteration costs a third of a 72x96x96 valid one.
 * Measured on the membranes (3 min, --augment none): 1265 iterations and
 * membrane IoU 0.785 against 468 and 0.744 with valid 72x96x96 patches. */
#define U3D_PLAN_DENSIFY_PATCH 48
/* Balanced class weights above this make the loss of one patch depend on
 * a handful of voxels of the rarest class: then their square root. */
#define U3D_PLAN_MAX_WEIGHT 50.0
/* The optimizer: Adam (PyTorch's, lr 1e-3). Measured on the development
 * set (3 min, semi-automatic, the plan's other choices) against SGD 0.99:
 * membranes 0.800 vs 0.765, boundaries 0.360 vs 0.351, nuclei 0.776 vs
 * 0.745 (README). */
#define U3D_PLAN_LR_ADAM 1e-3f
/* The decision: tuned on this share of the annotated slices, held out of
 * training (train per volume, densify), one logit offset per class. The
 * argmax over-segments thin walls; measured fully automatic (750
 * iterations, README): boundaries +0.042, membranes +0.063 IoU. */
#define U3D_PLAN_HOLDOUT 0.125
/* Percentiles reported and used by the normalization. */
#define U3D_PLAN_PLO 1.0
#define U3D_PLAN_PHI 99.8

#define U3D_PLAN_WHY 240   /* one reason line */
#define U3D_PLAN_MAX_STATS 64 /* (volume, channel) rows of statistics */

typedef struct u3d_plan_input {
    const u3d_volume *images;  /* n volumes, raw (not normalized) */
    const u3d_labels *labels;  /* their sparse labels, checked for shape */
    const char *const *label_names; /* for messages (may be NULL) */
    int n;
    /* the preset's network with the user's changes; classes 0: the largest
     * annotated label + 1 (densify); in_channels: the images' */
    u3d_net_config net;
    int keep_net;     /* 1: the user chose kernels/pools (keep them) */
    int keep_padding; /* 1: the user chose --padding (densify keeps it) */
    int ignore_label;
    const double *spacing; /* z, y, x overriding the first file's, or NULL */
    int patch_cap;    /* 0: 96, as train and densify */
} u3d_plan_input;

typedef struct u3d_plan_stats {
    int volume, channel;
    double min, plo, phi, mean, std, max;
} u3d_plan_stats;

typedef struct u3d_plan {
    double spacing[3];  /* z, y, x */
    char unit[16];
    double aniso;       /* r */
    char spacing_why[U3D_PLAN_WHY];
    u3d_net_config net; /* kernels and pools chosen */
    char net_why[U3D_PLAN_WHY];
    int patch_train[3];   /* train's: as densify's over the smallest volume
                             (--padding given: largest valid <= cap) */
    int padding_train;    /* u3d_padding train uses */
    int patch_densify[3]; /* densify's: same padding, <= 48 and the volume */
    int padding_densify;  /* u3d_padding densify uses */
    char patch_why[U3D_PLAN_WHY];
    u3d_augment_params aug; /* from u3d_augment_params_default */
    int aug_changed;        /* 1: differs from the 'default' preset */
    int aug_densify_none;   /* 1: densify trains without augmentation
                               (2 classes; see plan_augment) */
    char aug_why[U3D_PLAN_WHY];
    int norm_mode;          /* u3d_norm_mode */
    char norm_why[U3D_PLAN_WHY];
    u3d_plan_stats stats[U3D_PLAN_MAX_STATS];
    int nstats, stats_left_out;
    size_t counts[U3D_MAX_CLASSES]; /* annotated voxels per class */
    float balanced[U3D_MAX_CLASSES]; /* --class-weights auto's weights */
    u3d_class_weighting weights;     /* BALANCED or SQRT */
    float class_weights[U3D_MAX_CLASSES]; /* weights's */
    char weights_why[U3D_PLAN_WHY];
    int optimizer;        /* u3d_optimizer */
    float lr;
    char optim_why[U3D_PLAN_WHY];
    double holdout;       /* U3D_PLAN_HOLDOUT: train's and densify's share
                             of annotated slices for the decision */
    char decision_why[U3D_PLAN_WHY];
} u3d_plan;

/* The plan of in's volumes: deterministic (the same volumes give the same
 * plan), no allocation beyond one channel's values at a time for the
 * percentiles (as normalizing it needs; u3d_norm_channel_stats).
 * Fails with a message naming the labels file when a label lies above the
 * classes, or when no patch fits the network. */
u3d_status u3d_plan_make(const u3d_plan_input *in, u3d_plan *p,
                         u3d_error *err);

/* The augmentation of r >= U3D_PLAN_ANISO_AUG applied to p (spacing z, y,
 * x); 1 when it changed p. */
int u3d_plan_augment_aniso(const double spacing[3], u3d_augment_params *p);

/* "default (in-plane rotation, sigma 4,2.6,2.6 voxels)" or "default". */
const char *u3d_plan_aug_str(const u3d_plan *p, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
