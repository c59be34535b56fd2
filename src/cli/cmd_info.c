/* STUB: unet3d info, not implemented yet. */
#include <stdio.h>
#include "cli/cli.h"

int u3d_cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "unet3d info: not implemented yet\n");
    return 1;
}
