/* The unet3d command: dispatches subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/files.h"
#include "cli/options.h"
#include "dist/dist.h"
#include "golden/golden.h"

static void usage(FILE *f)
{
    fprintf(f,
            "unet3d %s - 3D U-Net (Cicek et al. 2016) on OpenCL\n\n"
            "usage: unet3d COMMAND [options]\n\n"
            "commands:\n"
            "  demo                    the whole workflow on a synthetic volume\n"
            "  devices                 list OpenCL (and CUDA) devices (under\n"
            "                          mpirun: which device each rank gets)\n"
            "  info [--preset P] [--input DxHxW]\n"
            "                          parameters, output size and memory\n"
            "  plan --image I --labels L [--json]\n"
            "                          the settings train/densify take from the\n"
            "                          data, and why\n"
            "  train --image I --labels L --model M.u3d [...]\n"
            "                          train on sparsely labeled volumes\n"
            "  sparsify --labels L --slices Z,Y,X --out S.tif\n"
            "                          keep a few annotated slices (paper protocol)\n"
            "  predict --model M.u3d --image I --out SEG.tif [...]\n"
            "                          segment a volume of any size (overlap-tile)\n"
            "  evaluate --prediction P --truth T [--exclude SPARSE] [--json]\n"
            "                          IoU and Dice per class\n"
            "  densify --image I --labels SPARSE --out DENSE.tif [...]\n"
            "                          train on one volume's annotations, segment it\n"
            "  experiment table1|table2|table3 --image I --labels DENSE\n"
            "             --out DIR (--iterations N | --minutes M) [...]\n"
            "                          the paper's evaluation tables on your data\n"
            "  augment --image I [--labels L] --out DIR [--samples N]\n"
            "                          write augmented samples and PNGs to look at\n"
            "  synth --kind tubules|membranes --out I --labels L\n"
            "                          a synthetic volume of the development set\n"
            "  boundaries --instances I --out B.tif\n"
            "                          thin walls between and around instances\n"
            "  suggest --model M --image I --labels SPARSE [--count K]\n"
            "                          the slices to annotate next\n"
            "  golden DIR...           check every op against PyTorch fixtures\n"
            "  bench [--json]          kernel benchmarks on the device\n"
            "  tune [--quick|--minutes M]\n"
            "                          tune the OpenCL kernels for the device\n"
            "  version                 print the version\n\n"
            "common options:\n"
            "  --device SPEC           OpenCL device: P:D, gpu, cpu or part of\n"
            "                          its name (default: $UNET3D_DEVICE, else\n"
            "                          the first GPU, else the first device);\n"
            "                          under MPI one SPEC per rank of a host\n"
            "                          (gpu:0,gpu:1) or auto (the i-th GPU)\n"
            "  --backend NAME          opencl (default), ref (plain C), cudnn\n"
            "                          (NVIDIA, when built)\n"
            "  --profile               print per-kernel times at exit\n",
            U3D_VERSION);
}

/* Under mpirun: the list once, then which device each rank gets. */
static int cmd_devices(int argc, char **argv)
{
    u3d_error e = {0};
    u3d_status st = U3D_OK;
    if (u3d_dist_rank() == 0)
        st = u3d_list_devices(stdout, &e);
    if (!u3d_dist_active()) {
        if (st)
            fprintf(stderr, "unet3d: %s\n", e.msg);
        return st ? 1 : 0;
    }
    u3d_backend_config cfg = {0};
    const u3d_opt opts[] = {U3D_OPTS_DEVICE(&cfg), {0}};
    const u3d_cmd_spec spec = {"devices", "[--device SPEC[,SPEC...]]", NULL,
                               opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    char line[512];
    u3d_backend *be = NULL;
    u3d_error be_err = {0};
    if (u3d_backend_create(&cfg, &be, &be_err))
        snprintf(line, sizeof line, "rank %d (%s, local rank %d): error: %s",
                 u3d_dist_rank(), u3d_dist_host(), u3d_dist_local_rank(),
                 be_err.msg);
    else
        snprintf(line, sizeof line, "rank %d (%s, local rank %d): %s (%s)",
                 u3d_dist_rank(), u3d_dist_host(), u3d_dist_local_rank(),
                 u3d_backend_device(be), u3d_backend_name(be));
    u3d_backend_destroy(be);
    fflush(stdout);
    if (u3d_dist_rank() == 0) {
        printf("%s\n", line);
        for (int r = 1; r < u3d_dist_size() && !st; r++) {
            st = u3d_dist_recv(line, sizeof line, r, 1, &e);
            if (!st)
                printf("%s\n", line);
        }
    } else {
        st = u3d_dist_send(line, sizeof line, 0, 1, &e);
    }
    if (st)
        u3d_dist_report("devices", &e);
    return st ? 1 : 0;
}

static int cmd_golden(int argc, char **argv)
{
    u3d_backend_config cfg = {0};
    const char *dirs[4096];
    int ndirs = 0;
    const u3d_opt opts[] = {
        {"DIR", U3D_OPT_LIST, dirs, 0, 4096, NULL,
         .help = "fixture folders (each with a case.txt)", .given = &ndirs,
         .flags = U3D_OPT_REQUIRED},
        U3D_OPTS_DEVICE(&cfg),
        {0}};
    const u3d_cmd_spec spec = {"golden", "[options] DIR...", NULL, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    u3d_error e = {0};
    u3d_backend *be;
    if (u3d_backend_create(&cfg, &be, &e)) {
        fprintf(stderr, "unet3d: %s\n", e.msg);
        return 1;
    }
    printf("device: %s (%s backend)\n", u3d_backend_device(be), u3d_backend_name(be));
    int passed, failed;
    u3d_status st = u3d_golden_run(be, (char **)dirs, ndirs, stdout, &passed,
                                   &failed, &e);
    u3d_backend_destroy(be);
    if (st) {
        fprintf(stderr, "unet3d golden: %s\n", e.msg);
        return 1;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

static int dispatch(int argc, char **argv);

int main(int argc, char **argv)
{
    /* Ctrl-C or a scheduler's SIGTERM leaves no temporary file behind */
    u3d_outfile_cleanup_on_signals();
    /* MPI only when started by an MPI launcher (src/dist/dist.h) */
    if (u3d_dist_init(&argc, &argv))
        return 1;
    int rc = dispatch(argc, argv);
    u3d_dist_finalize();
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("unet3d %s\n", U3D_VERSION);
        return 0;
    }
    /* commands that write files but do not share their work: several
     * copies would race for the same outputs */
    static const char *single[] = {"demo", "evaluate", "augment",
                                   "sparsify", "tune"};
    for (size_t i = 0; u3d_dist_active() && i < sizeof single / sizeof *single;
         i++)
        if (!strcmp(cmd, single[i])) {
            if (u3d_dist_rank() == 0)
                fprintf(stderr, "unet3d %s runs as one process: start it "
                                "without mpirun (train, predict, densify and "
                                "bench --allreduce use several ranks)\n",
                        cmd);
            return 2;
        }
    if (!strcmp(cmd, "devices"))
        return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "golden"))
        return cmd_golden(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan"))
        return u3d_cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "train"))
        return u3d_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict"))
        return u3d_cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "evaluate"))
        return u3d_cmd_evaluate(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo"))
        return u3d_cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "densify"))
        return u3d_cmd_densify(argc - 1, argv + 1);
    if (!strcmp(cmd, "experiment"))
        return u3d_cmd_experiment(argc - 1, argv + 1);
    if (!strcmp(cmd, "augment"))
        return u3d_cmd_augment(argc - 1, argv + 1);
    if (!strcmp(cmd, "sparsify"))
        return u3d_cmd_sparsify(argc - 1, argv + 1);
    if (!strcmp(cmd, "synth"))
        return u3d_cmd_synth(argc - 1, argv + 1);
    if (!strcmp(cmd, "boundaries"))
        return u3d_cmd_boundaries(argc - 1, argv + 1);
    if (!strcmp(cmd, "suggest"))
        return u3d_cmd_suggest(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return u3d_cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "tune"))
        return u3d_cmd_tune(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return u3d_cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "unet3d: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
