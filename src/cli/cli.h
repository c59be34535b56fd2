/* Subcommands of the unet3d program (internal). Each takes argv with the
 * subcommand name at argv[0] and returns the process exit code. */
#ifndef UNET3D_CLI_H
#define UNET3D_CLI_H
#include "unet3d/unet3d.h"

int u3d_cli_common(int argc, char **argv, u3d_backend_config *cfg);
int u3d_cmd_bench(int argc, char **argv); /* bench/bench.c */
int u3d_cmd_info(int argc, char **argv);  /* src/cli/cmd_info.c */
int u3d_cmd_train(int argc, char **argv); /* src/cli/cmd_train.c */
int u3d_cmd_sparsify(int argc, char **argv); /* src/cli/cmd_sparsify.c */
int u3d_cmd_augment(int argc, char **argv); /* src/cli/cmd_augment.c */

int u3d_cmd_densify(int argc, char **argv); /* src/cli/cmd_densify.c */
int u3d_cmd_demo(int argc, char **argv);    /* src/cli/cmd_demo.c */
int u3d_cmd_predict(int argc, char **argv);  /* src/cli/cmd_predict.c */
int u3d_cmd_evaluate(int argc, char **argv); /* src/cli/cmd_evaluate.c */

/* The densify workflow (also run by the demo). */
typedef struct u3d_densify_opts {
    const char *preset, *augment;
    const char *model_out;  /* keep the trained model here (may be NULL) */
    const char *image_name, *labels_name, *out_name; /* for messages */
    long iterations;        /* or */
    double minutes;         /* training budget (default 10) */
    int classes;            /* 0: largest annotated label + 1 */
    int levels, base_channels; /* 0: the preset's */
    int patch[3];           /* 0: automatic */
    int patch_cap;          /* largest automatic patch per axis */
    float lr, momentum;
    unsigned long long seed;
    int ignore_label;
    size_t max_memory;      /* device budget for prediction; 0: device's */
    int quiet;
} u3d_densify_opts;

void u3d_densify_defaults(u3d_densify_opts *o);
/* Trains on sparse's annotated voxels of image (normalized in place),
 * predicts the whole volume into dense, annotated voxels kept. */
u3d_status u3d_densify(u3d_backend *be, const u3d_densify_opts *o,
                       u3d_volume *image, const u3d_labels *sparse,
                       u3d_labels *dense, u3d_error *err);

#endif
