/* unet3d sparsify: keep a few orthogonal slices of a dense label volume
 * (the paper's sparse-annotation protocol). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/options.h"

typedef struct sargs {
    const char *in, *out, *png;
    int k[3], random, ignore;
    unsigned long long seed;
} sargs;

/* Returns -1 when parsed, else the exit code. */
static int parse(int argc, char **argv, sargs *a)
{
    const u3d_opt opts[] = {
        {"--labels", U3D_OPT_STRING, &a->in, 0, 0, "DENSE.tif",
         .help = "dense labels", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--slices", U3D_OPT_INT3, a->k, 0, 1000000, "Z,Y,X",
         .help = "keep Z evenly spaced z-slices, Y y-slices and\n"
                 "X x-slices",
         .flags = U3D_OPT_REQUIRED},
        {"--out", U3D_OPT_STRING, &a->out, 0, 0, "SPARSE.tif",
         .help = "the sparse labels to write", .flags = U3D_OPT_REQUIRED | U3D_OPT_OUT},
        {"--random", U3D_OPT_FLAG, &a->random, 0, 0, NULL,
         .help = "random slices instead of evenly spaced ones"},
        {"--seed", U3D_OPT_U64, &a->seed, 0, 0, "S",
         .help = "of --random (default 1)"},
        {"--png", U3D_OPT_STRING, &a->png, 0, 0, "DIR",
         .help = "also write the kept slices as PNG label images\n"
                 "(z0012.png ...; what densify --annotation-slices\n"
                 "reads, and a start for painting more)"},
        {"--ignore-label", U3D_OPT_INT, &a->ignore, 0, 65535, "L",
         .help = "what every other voxel becomes (default 255)"},
        {0}};
    const u3d_cmd_spec spec = {
        "sparsify", "--labels DENSE.tif --slices Z,Y,X --out SPARSE.tif "
                    "[options]", NULL, opts};
    return u3d_opts_parse(&spec, argc, argv);
}

int u3d_cmd_sparsify(int argc, char **argv)
{
    sargs a = {NULL, NULL, NULL, {0, 0, 0}, 0, 255, 1};
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    u3d_labels l = {0};
    u3d_vgeom g;
    u3d_error e = {0};
    size_t kept = 0;
    int npng = 0;
    rc = 1;
    if (u3d_vio_read_labels(a.in, &l, &g, &e) ||
        u3d_labels_sparsify(&l, a.k, a.random, a.seed, (uint16_t)a.ignore,
                            &kept, &e) ||
        u3d_vio_write_labels(a.out, &l, &g, &e) ||
        (a.png && u3d_labels_to_png_slices(&l, (uint16_t)a.ignore, a.png,
                                           &npng, &e)))
        fprintf(stderr, "unet3d sparsify: %s\n", e.msg);
    else {
        if (a.png)
            printf("wrote %d PNG slices to %s\n", npng, a.png);
        size_t n = (size_t)l.d * l.h * l.w;
        printf("kept %zu of %zu voxels (%.2f%%) on %d,%d,%d slices; wrote %s\n",
               kept, n, 100.0 * (double)kept / (double)n, a.k[0], a.k[1],
               a.k[2], a.out);
        rc = 0;
    }
    u3d_labels_free(&l);
    return rc;
}
