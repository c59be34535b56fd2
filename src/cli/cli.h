/* Subcommands of the unet3d program (internal). Each takes argv with the
 * subcommand name at argv[0] and returns the process exit code. */
#ifndef UNET3D_CLI_H
#define UNET3D_CLI_H
#include "unet3d/unet3d.h"

int u3d_cmd_bench(int argc, char **argv); /* bench/bench.c */
int u3d_cmd_info(int argc, char **argv);  /* src/cli/cmd_info.c */
int u3d_cmd_train(int argc, char **argv); /* src/cli/cmd_train.c */
int u3d_cmd_plan(int argc, char **argv);  /* src/cli/cmd_plan.c */
int u3d_cmd_sparsify(int argc, char **argv); /* src/cli/cmd_sparsify.c */
int u3d_cmd_synth(int argc, char **argv);      /* src/cli/cmd_synth.c */
int u3d_cmd_boundaries(int argc, char **argv); /* src/cli/cmd_synth.c */
int u3d_cmd_suggest(int argc, char **argv);    /* src/cli/cmd_suggest.c */
int u3d_cmd_suggest_simulate(int argc, char **argv); /* cmd_simulate.c */
int u3d_cmd_augment(int argc, char **argv); /* src/cli/cmd_augment.c */
int u3d_cmd_tune(int argc, char **argv);    /* src/cli/cmd_tune.c */

int u3d_cmd_densify(int argc, char **argv); /* src/cli/cmd_densify.c */
int u3d_cmd_experiment(int argc, char **argv); /* cmd_experiment.c */
int u3d_cmd_demo(int argc, char **argv);    /* src/cli/cmd_demo.c */
int u3d_cmd_predict(int argc, char **argv);  /* src/cli/cmd_predict.c */
int u3d_cmd_evaluate(int argc, char **argv); /* src/cli/cmd_evaluate.c */

#endif
