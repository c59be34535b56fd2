/* Inference on whole volumes: seamless overlap-tile prediction, the
 * segmentation metrics of the paper, and overview images.
 *
 * ---- Overlap-tile prediction -------------------------------------------
 * Valid-convolution networks (the paper's): a network input tile of `in`
 * voxels per axis yields `out` = in - 2m output voxels, m = the context
 * margin (44 for the paper net, 20 for "tiny"). Tiles are laid out so
 * their kept outputs abut and their inputs overlap by 2m; the volume border
 * is extended by mirroring (symmetric reflection, the edge voxel repeated:
 * ... x1 x0 | x0 x1 ...), and the last tile along an axis may stick out
 * beyond the volume (mirrored input, surplus output discarded).
 * Max-pooling makes the output depend on the tile origin modulo
 * P = 2^(levels-1), so every tile starts on the same pooling grid as a
 * single tile covering the whole volume: the kept output per tile (`step`)
 * is `out` rounded down to a multiple of P (equal to `out` for nets whose
 * outputs are multiples of P, such as "tiny"/"small"; `out` - 4 for the
 * paper net, whose valid outputs are 4 mod 8). The result is then the
 * whole-volume prediction, whatever the tile size (and so whatever the
 * memory budget): in EVAL mode equal up to float rounding (tests: max abs
 * difference of logits <= 1e-4; measured 0 on PoCL, whose kernels sum in
 * the same order whatever the tile; OpenCL vs reference backend ~1e-6).
 *
 * Same-padded networks: a tile sees zero padding at its own border, which
 * in the whole-volume pass would be real data. That error spreads inwards
 * by one voxel per conv (halving at each pool, doubling at each up-conv),
 * a band of 22 voxels for 3 levels (the valid margin is 20), 46 for 4
 * levels (valid margin 44). Tiles therefore overlap by a context c = that
 * band rounded up to a multiple of P (24 for 3 levels, 48 for 4), start on
 * multiples of P, and keep only their center, except at the volume border:
 * the first and last tile along an axis are clipped to the volume, so they
 * see the same zero padding as the whole-volume pass. A volume that is not
 * a multiple of P is extended with zeros to the next multiple (what the
 * whole-volume pass needs too). The result equals the whole-volume same
 * pass up to float rounding (tests: <= 1e-4; measured 0 on PoCL). With a
 * context of only the valid margin, kept voxels 21..22 voxels from a seam
 * would differ by up to 2.2e-2 in the logits (random 3-level net, f=2;
 * voxels closer than 20 to a cut differ by ~6), see
 * same_net_needs_its_context in tests/test_predict.c.
 *
 * Batch statistics (U3D_NET_EVAL_BATCHSTATS, the paper's inference) make
 * every tile normalise with its own statistics, so the result depends on
 * the tiling; EVAL (running statistics) is the default.
 *
 * Tile size: unless given, the tile with the least computation (tiles x
 * input voxels per tile) whose inference fits the device-memory budget
 * (u3d_net_memory(..).infer_total plus the scratch the backend says its
 * convolutions hold, u3d_net_backend_scratch), every single buffer also
 * within the device's max-allocation size. Default budget: 80% of the
 * device's memory (OpenCL: CL_DEVICE_GLOBAL_MEM_SIZE; cuDNN), half the
 * physical memory (reference backend). */
#ifndef UNET3D_PREDICT_H
#define UNET3D_PREDICT_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "unet3d/backend.h"
#include "unet3d/model.h"
#include "unet3d/model_io.h"
#include "unet3d/suggest.h"
#include "unet3d/volume.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Normalizes an input image in place the way the model was trained:
 * meta->norm_mode with the parameters computed on this volume itself
 * (u3d_norm_compute over all voxels, then u3d_norm_apply). */
u3d_status u3d_model_normalize_input(u3d_volume *v, const u3d_model_meta *m,
                                     u3d_error *err);

/* Smallest volume size per axis predict accepts: valid nets the margin m
 * (u3d_net_context, model.h; the mirrored context is one reflection of
 * the image, not a repeated folding), same nets 2^(levels-1) (the
 * smallest input they take). */
int u3d_predict_min_size(const u3d_net_config *cfg);
/* The same along axis a (0 D, 1 H, 2 W): an anisotropic net's differ (1
 * along z for the 2D net); u3d_predict_min_size is the largest. */
int u3d_predict_min_size_axis(const u3d_net_config *cfg, int a);

/* Tiling along one axis. */
typedef struct u3d_tile_axis {
    int size;    /* volume size */
    int same;    /* same-padded net: clipped border tiles */
    int in;      /* network input per tile */
    int out;     /* network output per tile */
    int step;    /* kept output of an interior tile (tile stride) */
    int offset;  /* volume position of output voxel 0 - tile origin */
    int context; /* m (valid) or c (same) */
    int padded;  /* same nets: size rounded up to 2^(levels-1), the zero-
                    extended extent tiles cover; valid nets: size */
    int ntiles;
} u3d_tile_axis;

typedef struct u3d_tile_plan {
    u3d_tile_axis ax[3]; /* D, H, W */
    int total;           /* tiles */
    size_t memory;       /* estimated device bytes while predicting */
    size_t budget;       /* the budget it fits (0: none) */
    double efficiency;   /* volume voxels / input voxels computed */
} u3d_tile_plan;

/* Tile k (0 <= k < ntiles) of an axis: network input covers volume
 * positions [origin, origin + in) (outside the volume: mirrored for valid,
 * zero for same nets); its output voxels [keep_lo, keep_hi) (volume
 * positions) are kept; output voxel p sits at p - origin - offset. */
void u3d_tile_axis_get(const u3d_tile_axis *a, int k, int *origin,
                       int *keep_lo, int *keep_hi);

/* Plans the tiling of a volume vol[3] (D,H,W) for the backend be that
 * will run it: its convolution scratch counts, and its device's largest
 * single buffer bounds every buffer. tile (may be NULL; zeros: automatic)
 * fixes the network input tile per axis (valid nets: a valid input size
 * whose output is >= 2^(levels-1); same nets: a multiple of 2^(levels-1),
 * >= 2c + 2^(levels-1) unless it covers the axis). budget: device bytes
 * (0: unlimited). Errors say which size or budget is needed. */
u3d_status u3d_predict_plan_backend(u3d_backend *be,
                                    const u3d_net_config *cfg,
                                    const int vol[3], const int *tile,
                                    size_t budget, u3d_tile_plan *plan,
                                    u3d_error *err);
/* The same without a backend: the network's own buffers only, max_alloc
 * the largest single buffer (0: unlimited). */
u3d_status u3d_predict_plan(const u3d_net_config *cfg, const int vol[3],
                            const int *tile, size_t budget, size_t max_alloc,
                            u3d_tile_plan *plan, u3d_error *err);

/* Default budget and max single allocation of a backend (see above). */
void u3d_predict_device_memory(u3d_backend *be, size_t *budget,
                               size_t *max_alloc);

typedef void (*u3d_progress_fn)(void *user, int done, int total);

typedef struct u3d_predict_opts {
    int batchstats;      /* 1: U3D_NET_EVAL_BATCHSTATS, 0: U3D_NET_EVAL */
    size_t max_memory;   /* device budget in bytes; 0: the device's */
    int tile[3];         /* network input tile D,H,W; 0: automatic */
    int raw_logits;      /* probs receive logits instead of softmax */
    int tta;             /* 1: test-time augmentation, the mean logits of
                            the tile and its 7 mirror images (z, y, x
                            flips and their combinations): 8x the time */
    u3d_progress_fn progress; /* after every tile (may be NULL) */
    void *progress_user;
    /* added to the logits before the argmax (classes values; NULL: none):
     * a model's calibrated decision (u3d_model_meta.class_bias); the
     * probabilities written stay the network's */
    const float *class_bias;
} u3d_predict_opts;

/* Predicts a normalized image (C = the net's input channels; D,H,W >=
 * u3d_predict_min_size) with net (any backend). labels (may be NULL)
 * receives the per-voxel argmax (lowest class on ties), probs (may be NULL)
 * the softmax probabilities (C = classes) or logits; both get the image's
 * spacing and unit, and are left empty on failure. plan (may be NULL)
 * receives the tiling used. opts may be NULL (defaults). The net's
 * activation buffers are freed at the end. */
u3d_status u3d_predict(u3d_net *net, const u3d_volume *img,
                       const u3d_predict_opts *opts, u3d_labels *labels,
                       u3d_volume *probs, u3d_tile_plan *plan,
                       u3d_error *err);

/* Plane-band streaming: the same prediction with the volume read from and
 * written to callbacks, so host memory holds only what the current row of
 * tiles reads (a tile's depth of windows of at most a tile's height of
 * rows) and keeps (a tile's depth of output planes). read fills dst with
 * rows [y0, y0 + ny) of plane z of the normalized image (C x ny x W
 * floats); it is called for every row of tiles, so each plane is read
 * about (tiles along H) x (tile input / output depth) times. write receives
 * the planes in increasing z: the labels (H x W bytes, when sink->labels:
 * predict supports at most 256 classes) and
 * probabilities or logits (K x H x W, when sink->probs). An error from a
 * callback stops the prediction and is returned. */
typedef struct u3d_plane_source {
    int c, d, h, w;
    u3d_status (*read)(void *user, int z, int y0, int ny, float *dst,
                       u3d_error *err);
    void *user;
} u3d_plane_source;

typedef struct u3d_plane_sink {
    u3d_status (*write)(void *user, int z, const uint8_t *labels,
                        const float *probs, u3d_error *err);
    void *user;
    int labels, probs; /* which outputs write receives */
} u3d_plane_sink;

u3d_status u3d_predict_planes(u3d_net *net, const u3d_plane_source *src,
                              const u3d_predict_opts *opts,
                              const u3d_plane_sink *sink, u3d_tile_plan *plan,
                              u3d_error *err);

/* ---- Metrics ------------------------------------------------------------
 * Per class c over the scored voxels: TP, FP, FN; IoU = TP/(TP+FP+FN),
 * Dice = 2TP/(2TP+FP+FN). A class absent from both truth and prediction
 * (in the scored voxels) has no IoU (NaN, null in JSON) and is left out of
 * the means: mean_iou / mean_dice average the classes present in truth or
 * prediction. Scored voxels: every voxel except those whose truth is the
 * ignore label and those annotated in the exclude volume (its value is
 * not exclude_ignore): the paper scores only what the network had to infer
 * from the sparse annotation. */
typedef struct u3d_metrics_opts {
    int ignore_label;          /* in truth; U3D_NO_IGNORE: none */
    const u3d_labels *exclude; /* sparse annotation (may be NULL) */
    int exclude_ignore;        /* unannotated value of exclude */
    int classes;               /* report at least this many classes */
    const char *pred_name, *truth_name, *exclude_name; /* for messages */
} u3d_metrics_opts;

typedef struct u3d_metrics {
    int classes;             /* class ids 0..classes-1 (max id seen + 1) */
    uint64_t *tp, *fp, *fn;  /* per class */
    double *iou, *dice;      /* per class, NaN when absent */
    int present;             /* classes in the means */
    double mean_iou, mean_dice; /* NaN when no class is present */
    size_t voxels;           /* scored */
    size_t excluded;         /* left out by the exclude volume */
    size_t ignored;          /* left out by the ignore label */
} u3d_metrics;

/* Shapes must agree (U3D_ERR_SHAPE naming both files and shapes). */
u3d_status u3d_metrics_compute(const u3d_labels *pred,
                               const u3d_labels *truth,
                               const u3d_metrics_opts *o, u3d_metrics *m,
                               u3d_error *err);
void u3d_metrics_free(u3d_metrics *m);
/* Table: class, IoU, Dice, TP, FP, FN; then the means and voxel counts.
 * names: comma-separated class names (may be NULL or empty). */
void u3d_metrics_print(FILE *f, const u3d_metrics *m, const char *names);
/* One JSON object: iou (list per class, null when absent), mean_iou, dice,
 * mean_dice, voxels (scored), excluded, ignored, classes, tp, fp, fn. */
void u3d_metrics_print_json(FILE *f, const u3d_metrics *m);

/* ---- Overview images ----------------------------------------------------
 * A PNG with the orthogonal middle slices of the image (xy, xz, yz, side
 * by side; z scaled by spacing z / spacing x resp. y so anisotropic
 * volumes look right) in gray (1..99.8 percentile window of the shown
 * slices), with the segmentation alpha-blended in colors (class 0 =
 * background and the ignore label are not colored). With truth, a second
 * row shows the truth the same way. Written atomically. */
typedef struct u3d_overview_opts {
    float alpha;      /* overlay opacity; 0: 0.45 */
    int ignore_label; /* not drawn; U3D_NO_IGNORE: none */
    int channel;      /* image channel shown (default 0) */
} u3d_overview_opts;

/* seg and truth may be NULL; their D,H,W must match the image's. opts may
 * be NULL. */
u3d_status u3d_overview_write(const char *path, const u3d_volume *img,
                              const u3d_labels *seg, const u3d_labels *truth,
                              const u3d_overview_opts *opts, u3d_error *err);
/* The same with slices marked on the first row (suggest's and densify
 * --suggest's slices to annotate next): a dashed yellow line across each
 * panel that cuts the slice. */
u3d_status u3d_overview_write_marked(const char *path, const u3d_volume *img,
                                     const u3d_labels *seg,
                                     const u3d_labels *truth,
                                     const u3d_overview_opts *opts,
                                     const u3d_slice_score *marks,
                                     int nmarks, u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
