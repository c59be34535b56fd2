/* Command-line options of the unet3d commands (internal). Each command
 * describes its options in one table (name, kind, destination, range,
 * help); the parser and --help both read it, so an option is spelled,
 * checked and documented the same way everywhere.
 *
 * Sizes are D x H x W (Z, Y, X: numpy, ImageJ and TIFF order) in every
 * command, written "DxHxW". Numbers are strict: the whole value must parse,
 * NaN and infinities are refused, and each value must lie in the option's
 * range, so an overflow cannot reach the size arithmetic. Every error is
 * one line naming the option and the value; the command then exits 1. */
#ifndef UNET3D_CLI_OPTIONS_H
#define UNET3D_CLI_OPTIONS_H
#include <stdio.h>
#include "unet3d/unet3d.h"

typedef enum u3d_opt_kind {
    U3D_OPT_FLAG,   /* int: 1 */
    U3D_OPT_SET,    /* int: (int)lo (a hidden spelling of a choice) */
    U3D_OPT_INT,    /* int in [lo, hi] */
    U3D_OPT_LONG,   /* long in [lo, hi] */
    U3D_OPT_U64,    /* unsigned long long, 0 .. 2^64-1 */
    U3D_OPT_DOUBLE, /* finite double in [lo, hi] */
    U3D_OPT_FLOAT,  /* finite float in [lo, hi] */
    U3D_OPT_FLOAT2, /* float[2] "A,B", each in [lo, hi] */
    U3D_OPT_SIZE3,  /* int[3] "DxHxW", each in [lo, hi] */
    U3D_OPT_INT3,   /* int[3] "Z,Y,X", each in [lo, hi] */
    U3D_OPT_STRING, /* const char * */
    U3D_OPT_CHOICE, /* int: index of the value in choices */
    U3D_OPT_LIST    /* const char *[hi]: every occurrence (or positional) */
} u3d_opt_kind;

enum {
    U3D_OPT_REQUIRED = 1, /* the command needs it */
    U3D_OPT_GT = 2,       /* lo itself excluded: "> lo" */
    /* STRING or LIST naming files the command reads (IN) or writes (OUT).
     * Before any work the parser refuses an output that is the same file
     * as an input or another output, one that exists but is not a regular
     * file (a device, a FIFO, a folder), and one in a folder it cannot
     * write to, so no input is lost and no run fails at its end. */
    U3D_OPT_IN = 4,
    U3D_OPT_OUT = 8
};

typedef struct u3d_opt {
    const char *name;  /* "--levels"; a name without "-": positional */
    u3d_opt_kind kind;
    void *dest;
    double lo, hi;     /* numeric range; LIST: hi = capacity */
    const char *meta;  /* the value in --help ("N", "DxHxW"); CHOICE: NULL
                          lists the choices */
    const char *help;  /* lines separated by \n; NULL: hidden alias */
    const char *const *choices; /* CHOICE: NULL-terminated */
    int *given;        /* set to 1 when given, or NULL; LIST: the count
                          (required) */
    int flags;         /* U3D_OPT_REQUIRED, U3D_OPT_GT */
} u3d_opt;

typedef struct u3d_cmd_spec {
    const char *name;     /* "train" */
    const char *synopsis; /* after "usage: unet3d NAME " */
    const char *about;    /* after the options, or NULL */
    const u3d_opt *opts;  /* ends with {NULL} */
} u3d_cmd_spec;

/* Parses argv[1..argc) ("--name value" or "--name=value") into the
 * destinations. Returns -1 to go on, 0 after printing --help, 1 after a
 * one-line error on stderr. */
int u3d_opts_parse(const u3d_cmd_spec *c, int argc, char **argv);
void u3d_opts_help(const u3d_cmd_spec *c, FILE *f);
/* "unet3d NAME: message" on stderr; returns 1, the exit status. */
int u3d_opts_fail(const u3d_cmd_spec *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Strict integer s in [lo, hi] for values parsed outside the table; 0 when
 * it is not one (no message). */
int u3d_opts_long(const char *s, long lo, long hi, long *out);
/* A comma list of names from the NULL-ended table, each at most once, at
 * most max of them: their indices into idx; returns how many, 0 when the
 * list is not one (empty items, unknown or repeated names, too many). */
int u3d_opts_names(const char *s, const char *const *names, int max,
                   int *idx);
/* Triples "A,B,C:A,B,C:...", integers in [lo, hi], at most max of them:
 * returns how many, 0 when s is not such a list. */
int u3d_opts_triples(const char *s, long lo, long hi, int max, int (*t)[3]);

/* ---- option groups shared by several commands ---- */

/* Image/label pairs (train, plan): a has imgs, labs (arrays of max) and
 * their counts nimg, nlab. */
#define U3D_OPTS_PAIRS(a, max)                                              \
    {"--image", U3D_OPT_LIST, (a)->imgs, 0, max, "A.tif",                   \
     .help = "an image (repeat with --labels for more)",                    \
     .given = &(a)->nimg, .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},         \
    {"--labels", U3D_OPT_LIST, (a)->labs, 0, max, "L.tif",                  \
     .help = "the sparse labels of the image before it",                    \
     .given = &(a)->nlab, .flags = U3D_OPT_REQUIRED | U3D_OPT_IN}

/* The device (--device, --backend, --profile). */
#define U3D_OPTS_DEVICE(bc)                                                 \
    {"--device", U3D_OPT_STRING, &(bc)->device, 0, 0, "SPEC",               \
     .help = "OpenCL device: P:D, gpu, cpu or part of its name\n"           \
             "(default: $UNET3D_DEVICE, else the first GPU, else\n"         \
             "the first device); gpu:N/cpu:N the N-th GPU/CPU;\n"          \
             "under mpirun one SPEC per rank of a host\n"                 \
             "(gpu:0,gpu:1) or auto (the i-th GPU)"},                       \
    {"--backend", U3D_OPT_STRING, &(bc)->backend, 0, 0, "NAME",             \
     .help = "opencl (default), ref (plain C), cudnn (NVIDIA,\n"            \
             "when built)"},                                                \
    {"--profile", U3D_OPT_FLAG, &(bc)->profile, 0, 0, NULL,                 \
     .help = "print per-kernel times at exit"}

/* Largest size per axis of a patch, tile or network input: far above any
 * device's memory, and small enough that the size and memory arithmetic
 * of the model (u3d_net_valid_size, u3d_net_memory) cannot overflow. */
#define U3D_OPT_MAX_SIZE 4096
/* Widest first layer accepted (the paper: 32). */
#define U3D_OPT_MAX_BASE 1024
#define U3D_OPT_MAX_BATCH 256

/* Network architecture: info, train and densify. -1: the preset's. */
typedef struct u3d_cli_net {
    const char *preset;
    int classes, levels, base_channels, in_channels;
    int padding, bn; /* u3d_padding, u3d_bn_mode */
    /* anisotropic networks: --kernels, --pools (lists or auto), --dims 2,
     * --spacing ZxYxX for auto (train: the image's when not given) */
    const char *kernels, *pools, *spacing;
    int dims;
} u3d_cli_net;

void u3d_cli_net_defaults(u3d_cli_net *n, const char *preset);
/* The preset with the options applied, checked; --kernels/--pools auto
 * without --spacing are left for u3d_cli_net_aniso with the image's
 * spacing (u3d_cli_net_wants_spacing says so). */
u3d_status u3d_cli_net_config(const u3d_cli_net *n, u3d_net_config *c,
                              u3d_error *err);
/* --dims, --kernels, --pools (auto: from --spacing, else from spacing, the
 * image's z, y, x, when not NULL) applied to c, checked. */
u3d_status u3d_cli_net_aniso(const u3d_cli_net *n, const double *spacing,
                             u3d_net_config *c, u3d_error *err);
/* 1 when auto was asked for without --spacing. */
int u3d_cli_net_wants_spacing(const u3d_cli_net *n);

#define U3D_OPTS_NET(n)                                                     \
    {"--preset", U3D_OPT_STRING, &(n)->preset, 0, 0, "P",                   \
     .help = "network preset: paper, small or tiny"},                       \
    {"--classes", U3D_OPT_INT, &(n)->classes, 1, U3D_MAX_CLASSES, "K",      \
     .help = "number of classes (default: the preset's)"},                  \
    {"--levels", U3D_OPT_INT, &(n)->levels, 1, U3D_NET_MAX_LEVELS, "L",     \
     .help = "resolution levels (default: the preset's)"},                  \
    {"--base-channels", U3D_OPT_INT, &(n)->base_channels, 1,                \
     U3D_OPT_MAX_BASE, "F",                                                 \
     .help = "channels of the first convolution (preset's)"},               \
    {"--padding", U3D_OPT_CHOICE, &(n)->padding, 0, 0, NULL,                \
     .help = "convolutions without (valid) or with zero\n"                  \
             "padding (default: the preset's)",                             \
     .choices = u3d_padding_names},                                         \
    {"--batchnorm", U3D_OPT_CHOICE, &(n)->bn, 0, 0, NULL,                   \
     .help = "batch norm: none, without (plain) or with\n"                  \
             "scale/shift (affine) (default: the preset's)",                \
     .choices = u3d_bn_mode_names},                                         \
    {"--kernels", U3D_OPT_STRING, &(n)->kernels, 0, 0, "LIST",              \
     .help = "conv kernel per level, DxHxW, e.g. 1x3x3,3x3x3,3x3x3\n"       \
             "(one for all levels), or auto: from --spacing\n"             \
             "(default 3x3x3)"},                                            \
    {"--pools", U3D_OPT_STRING, &(n)->pools, 0, 0, "LIST",                  \
     .help = "max-pool (and up-conv) factor below each level but\n"         \
             "the last, DxHxW, e.g. 1x2x2,2x2x2 (default 2x2x2)"},          \
    {"--dims", U3D_OPT_INT, &(n)->dims, 2, 3, "N",                          \
     .help = "2: the paper's 2D baseline, every level 1x3x3 convs\n"        \
             "and 1x2x2 pooling (slice by slice); 3 (default)"},            \
    {"--spacing", U3D_OPT_STRING, &(n)->spacing, 0, 0, "ZxYxX",             \
     .help = "voxel spacing for --kernels auto (nnU-Net's plan:\n"          \
             "1x3x3 / 1x2x2 while z > 2x in-plane) and train's\n"         \
             "and densify's plan (default: the image's)"}

/* Augmentation: train, densify and augment. */
typedef struct u3d_cli_aug {
    int preset; /* index in u3d_cli_aug_presets */
    float sigma, rotate, scale[2], prob;
    int grid, gray;
    const char *mirror;
    int g_preset, g_sigma, g_grid, g_rotate, g_scale, g_mirror, g_gray, g_prob;
                /* given */
} u3d_cli_aug;

extern const char *const u3d_cli_aug_presets[]; /* paper, none, default */
void u3d_cli_aug_defaults(u3d_cli_aug *a);
/* 1 when a per-transform option was given. */
int u3d_cli_aug_custom(const u3d_cli_aug *a);
/* The preset with the per-transform options applied, checked. */
u3d_status u3d_cli_aug_params(const u3d_cli_aug *a, int ignore_label,
                              u3d_augment_params *p, u3d_error *err);

#define U3D_OPTS_AUG(a)                                                     \
    {"--augment", U3D_OPT_CHOICE, &(a)->preset, 0, 0, NULL,                 \
     .help = "augmentation preset (default paper; train and\n"           \
             "densify: the plan's, see --plan), changed per\n"            \
             "transform by the --aug-* options",                            \
     .choices = u3d_cli_aug_presets, .given = &(a)->g_preset},             \
    {"--aug-sigma", U3D_OPT_FLOAT, &(a)->sigma, 0, 100, "S",                \
     .help = "deformation: control-point std (voxels)", .given = &(a)->g_sigma}, \
    {"--aug-grid", U3D_OPT_INT, &(a)->grid, 1, U3D_OPT_MAX_SIZE, "G",       \
     .help = "deformation: control-point spacing (voxels)",                 \
     .given = &(a)->g_grid},                                                \
    {"--aug-rotate", U3D_OPT_FLOAT, &(a)->rotate, 0, 180, "DEG",            \
     .help = "rotation about each axis: +-DEG",                             \
     .given = &(a)->g_rotate},                                              \
    {"--aug-scale", U3D_OPT_FLOAT2, (a)->scale, 0, 100, "LO,HI",            \
     .help = "isotropic scale range", .given = &(a)->g_scale,               \
     .flags = U3D_OPT_GT},                                                  \
    {"--aug-mirror", U3D_OPT_STRING, &(a)->mirror, 0, 0, "zyx|none",        \
     .help = "axes flipped at random (any of z, y, x)",                     \
     .given = &(a)->g_mirror},                                              \
    {"--aug-gray", U3D_OPT_CHOICE, &(a)->gray, 0, 0, NULL,                  \
     .help = "gamma, contrast, brightness and noise",                       \
     .choices = u3d_cli_onoff, .given = &(a)->g_gray},                     \
    {"--aug-prob", U3D_OPT_FLOAT, &(a)->prob, 0, 1, "P",                    \
     .help = "each sample gets the deformation, the rotation,\n"            \
             "the scaling and the gray changes each with\n"                 \
             "probability P (paper: 1; default: 0; alone it\n"              \
             "keeps the plan's augmentation)",                              \
     .given = &(a)->g_prob}

extern const char *const u3d_cli_onoff[]; /* off, on */

/* Training setup: train and densify. */
typedef struct u3d_cli_train {
    u3d_cli_net net;
    u3d_cli_aug aug;
    long iterations;
    double minutes;
    int patch[3], batch, lr_poly, ignore_label, norm, every, quiet, sync_bn;
    float lr, momentum, weight_decay;
    int optimizer; /* u3d_optimizer */
    int sampling;  /* u3d_sampling */
    const char *class_weights, *log;
    unsigned long long seed;
    int plan; /* --plan on (1, default) / off: train's and densify's
                 defaults from the data (u3d_cli_plan_apply) */
    int g_patch, g_lr, g_momentum, g_seed, g_weights, g_optim, g_sampling;
    /* given */
} u3d_cli_train;

void u3d_cli_train_defaults(u3d_cli_train *t);
/* The model's training setup from the options (in_channels 1 until the
 * images are read; classes 0 when not given and classes_auto). */
u3d_status u3d_cli_train_meta(const u3d_cli_train *t, int classes_auto,
                              u3d_model_meta *m, u3d_error *err);
/* densify's setup (and suggest --simulate's) from the training options:
 * defaults, the model's setup, class weights, log, checkpoints, quiet. */
u3d_status u3d_cli_densify_setup(const u3d_cli_train *t, u3d_densify_opts *o,
                                 u3d_error *err);
/* Class weights: auto, sqrt or a list of `classes` numbers (into w). */
u3d_status u3d_cli_class_weights(const char *s, int classes,
                                 u3d_class_weighting *mode, float *w,
                                 u3d_error *err);

#define U3D_OPTS_TRAIN(t)                                                   \
    {"--iterations", U3D_OPT_LONG, &(t)->iterations, 1, 1e9, "N",           \
     .help = "train N iterations in total, or"},                            \
    {"--minutes", U3D_OPT_DOUBLE, &(t)->minutes, 0, 1e6, "M",               \
     .help = "train for M minutes of wall time", .flags = U3D_OPT_GT},      \
    {"--patch", U3D_OPT_SIZE3, (t)->patch, 1, U3D_OPT_MAX_SIZE, "DxHxW",    \
     .help = "input patch (default: automatic)", .given = &(t)->g_patch},   \
    {"--batch", U3D_OPT_INT, &(t)->batch, 1, U3D_OPT_MAX_BATCH, "B",        \
     .help = "patches per iteration (default 1; under mpirun\n"             \
             "per rank: N ranks train with batch N*B)"},                   \
    {"--sync-bn", U3D_OPT_FLAG, &(t)->sync_bn, 0, 0, NULL,                  \
     .help = "under mpirun: batch norm with the statistics of\n"           \
             "all ranks' patches (as one process with batch N*B)"},        \
    {"--optimizer", U3D_OPT_CHOICE, &(t)->optimizer, 0, 0, NULL,            \
     .help = "adam (the plan's; PyTorch's, betas 0.9, 0.999,\n"             \
             "eps 1e-8) or sgd (with momentum, as the paper;\n"           \
             "the default with --plan off or --momentum)",                 \
     .choices = u3d_optimizer_names, .given = &(t)->g_optim},              \
    {"--lr", U3D_OPT_FLOAT, &(t)->lr, 0, 10, "X",                           \
     .help = "learning rate (default 0.01 for sgd, 0.001 for\n"             \
             "adam)", .given = &(t)->g_lr,                                 \
     .flags = U3D_OPT_GT},                                                  \
    {"--lr-schedule", U3D_OPT_CHOICE, &(t)->lr_poly, 0, 0, NULL,            \
     .help = "poly (default): lr (1 - done)^0.9",                           \
     .choices = u3d_cli_lr_schedules},                                      \
    {"--momentum", U3D_OPT_FLOAT, &(t)->momentum, 0, 1, "X",                \
     .help = "SGD's momentum (default 0.99, as the paper)",                   \
     .given = &(t)->g_momentum},                                            \
    {"--sampling", U3D_OPT_CHOICE, &(t)->sampling, 0, 0, NULL,              \
     .help = "patch centres: class (a class, then one of its\n"             \
             "labeled voxels), voxel (any labeled voxel) or\n"              \
             "mixed (a third class, the rest voxel)",                      \
     .choices = u3d_sampling_names, .given = &(t)->g_sampling},            \
    {"--weight-decay", U3D_OPT_FLOAT, &(t)->weight_decay, 0, 1, "X",        \
     .help = "(default 0)"},                                                \
    {"--class-weights", U3D_OPT_STRING, &(t)->class_weights, 0, 0,          \
     "auto|sqrt|w0,w1,...",                                                 \
     .help = "auto: balanced, w_c = n / (K n_c); sqrt: its\n"              \
             "square root (default: the plan's, auto unless a\n"           \
             "weight would exceed 50)",                                     \
     .given = &(t)->g_weights},                                             \
    {"--ignore-label", U3D_OPT_INT, &(t)->ignore_label, 0, 65535, "L",      \
     .help = "label of unannotated voxels (default 255)"},                  \
    {"--normalize", U3D_OPT_CHOICE, &(t)->norm, 0, 0, NULL,                 \
     .help = "per channel (default percentile 1..99.8 -> 0..1)",            \
     .choices = u3d_norm_mode_names},                                       \
    {"--seed", U3D_OPT_U64, &(t)->seed, 0, 0, "S",                          \
     .help = "(default 1): same seed, same model", .given = &(t)->g_seed},  \
    {"--checkpoint-every", U3D_OPT_INT, &(t)->every, 0, 1e9, "N",           \
     .help = "write the model every N iterations (50; 0: at\n"              \
             "the end only)"},                                              \
    {"--log", U3D_OPT_STRING, &(t)->log, 0, 0, "FILE.csv",                  \
     .help = "loss curve", .flags = U3D_OPT_OUT},                           \
    {"--quiet", U3D_OPT_FLAG, &(t)->quiet, 0, 0, NULL,                      \
     .help = "no progress"}

extern const char *const u3d_cli_lr_schedules[]; /* constant, poly */

/* --plan: train and densify only (a plan needs the training data). */
#define U3D_OPTS_PLAN(t)                                                    \
    {"--plan", U3D_OPT_CHOICE, &(t)->plan, 0, 0, NULL,                      \
     .help = "on (default): the settings you leave out come from\n"        \
             "the data ('unet3d plan' shows them and why); off:\n"         \
             "the preset's, augmentation paper",                           \
     .choices = u3d_cli_onoff}

/* "ZxYxX": three positive numbers. */
u3d_status u3d_cli_parse_spacing(const char *s, double sp[3],
                                 u3d_error *err);
/* Applies each choice of p the user did not make (kernels/pools, patch:
 * densify's or train's rule, augmentation, class weights) to m and *w,
 * and says so in one line unless quiet. */
void u3d_cli_plan_apply(const u3d_cli_train *t, const u3d_plan *p,
                        int densify, u3d_model_meta *m,
                        u3d_class_weighting *w);
/* Computes the plan of the volumes and applies it (t->plan on); with
 * --spacing given, that spacing. */
u3d_status u3d_cli_plan_run(const u3d_cli_train *t, const u3d_volume *imgs,
                            const u3d_labels *labs,
                            const char *const *lab_names, int n, int densify,
                            u3d_model_meta *m, u3d_class_weighting *w,
                            u3d_error *err);

/* The sparse annotation of an image (densify, suggest): exactly one of
 * --labels (any volume format) or --annotation-slices (PNG slices). */
int u3d_cli_one_annotation(const u3d_cmd_spec *c, const char *labels,
                           const char *slices);
/* Reads it for img (checked against it); says how many slices were read
 * unless quiet. */
u3d_status u3d_cli_read_annotation(const u3d_volume *img, const char *img_name,
                                   const char *labels, const char *slices,
                                   int quiet, u3d_labels *out,
                                   u3d_error *err);

/* suggest and densify --suggest: the best count unannotated slices of
 * sparse by the softmax probs (u3d_suggest_slices, default weights) into
 * *out (malloc'd, best first), and printed one "z0042  0.1234" a line. */
u3d_status u3d_cli_suggest(const u3d_volume *probs, const u3d_labels *sparse,
                           int count, int ignore_label, u3d_slice_score **out,
                           int *n, u3d_error *err);
void u3d_cli_suggest_print(FILE *f, const u3d_slice_score *s, int n);

#endif
