/* STUB: kernel benchmarks, not implemented yet. */
#include <stdio.h>
#include "cli/cli.h"

int u3d_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "unet3d bench: not implemented yet\n");
    return 1;
}
