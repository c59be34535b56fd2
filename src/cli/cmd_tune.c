/* unet3d tune: searches the OpenCL kernels' parameters for this device
 * (src/backends/opencl/tuner.c) and writes them into the user's tuned
 * file, which every later run on the device reads. */
#include <stdio.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "backends/opencl/tuner.h"

int u3d_cmd_tune(int argc, char **argv)
{
    u3d_backend_config cfg = {0};
    u3d_tuner_opts o = {10.0, 1, NULL, NULL};
    int quick = 0;
    const u3d_opt opts[] = {
        {"--minutes", U3D_OPT_DOUBLE, &o.minutes, 0, 1440, "M",
         .help = "time budget of the whole search (default 10)",
         .flags = U3D_OPT_GT},
        {"--quick", U3D_OPT_FLAG, &quick, 0, 0, NULL,
         .help = "a 1.5-minute search (the same as --minutes 1.5)"},
        {"--seed", U3D_OPT_U64, &o.seed, 0, 0, "S",
         .help = "of the random candidates (default 1)"},
        {"--only", U3D_OPT_STRING, &o.only, 0, 0, "FAMILY[/PASS]",
         .help = "tune only conv3d, conv3d/fwd, conv3d/data,\n"
                 "conv3d/weight, conv3d_igemm (also /fwd, /data,\n"
                 "/weight: its tiles and, per pass and bucket,\n"
                 "whether it or the direct kernels run) or batchnorm"},
        {"--out", U3D_OPT_STRING, &o.out, 0, 0, "FILE",
         .help = "write here instead of the cache folder's tuned\n"
                 "file (which later runs read)",
         .flags = U3D_OPT_OUT},
        U3D_OPTS_DEVICE(&cfg),
        {0}};
    const u3d_cmd_spec spec = {
        "tune", "[--quick | --minutes M] [options]",
        "Times candidate kernel parameters for every conv3d pass and shape\n"
        "bucket (direct kernels and implicit GEMM, and which of the two\n"
        "runs) and for batch norm (each checked against the reference\n"
        "backend first) and keeps the fastest in the cache folder, keyed\n"
        "by platform, device and driver. `unet3d devices` shows which\n"
        "tuning a device uses.\n",
        opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    if (quick)
        o.minutes = 1.5;
    u3d_error e = {0};
    u3d_backend *be;
    if (u3d_backend_create(&cfg, &be, &e)) {
        fprintf(stderr, "unet3d tune: %s\n", e.msg);
        return 1;
    }
    char path[4096];
    u3d_status st = u3d_tuner_run(be, &o, stdout, path, sizeof path, &e);
    u3d_backend_destroy(be);
    if (st) {
        fprintf(stderr, "unet3d tune: %s\n", e.msg);
        return 1;
    }
    printf("wrote %s\n", path);
    return 0;
}
