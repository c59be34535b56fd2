/* unet3d sparsify: keep a few orthogonal slices of a dense label volume
 * (the paper's sparse-annotation protocol). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: unet3d sparsify --labels DENSE.tif --slices Z,Y,X "
               "--out SPARSE.tif\n"
               "                       [--random --seed S] [--ignore-label L]\n"
               "keeps Z evenly spaced z-slices, Y y-slices and X x-slices; "
               "every other voxel\nbecomes the ignore label (default 255)\n");
}

int u3d_cmd_sparsify(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *slices = NULL;
    int random = 0, ignore = 255;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--labels") && v) in = argv[++i];
        else if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--slices") && v) slices = argv[++i];
        else if (!strcmp(a, "--seed") && v) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--ignore-label") && v) ignore = atoi(argv[++i]);
        else if (!strcmp(a, "--random")) random = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unet3d sparsify: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    int k[3];
    char x;
    if (!in || !out || !slices ||
        sscanf(slices, "%d,%d,%d%c", &k[0], &k[1], &k[2], &x) != 3 || k[0] < 0 ||
        k[1] < 0 || k[2] < 0) {
        usage(stderr);
        return 2;
    }
    if (ignore < 0 || ignore > 65535) {
        fprintf(stderr, "unet3d sparsify: --ignore-label must be 0..65535\n");
        return 2;
    }
    u3d_labels l = {0};
    u3d_error e = {0};
    size_t kept = 0;
    int rc = 1;
    if (u3d_tiff_read_labels(in, &l, &e) ||
        u3d_labels_sparsify(&l, k, random, seed, (uint16_t)ignore, &kept, &e) ||
        u3d_tiff_write_labels(out, &l, &e))
        fprintf(stderr, "unet3d sparsify: %s\n", e.msg);
    else {
        size_t n = (size_t)l.d * l.h * l.w;
        printf("kept %zu of %zu voxels (%.2f%%) on %d,%d,%d slices; wrote %s\n",
               kept, n, 100.0 * (double)kept / (double)n, k[0], k[1], k[2], out);
        rc = 0;
    }
    u3d_labels_free(&l);
    return rc;
}
