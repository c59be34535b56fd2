/* unet3d evaluate: IoU and Dice of a segmentation against a dense truth,
 * optionally scoring only voxels that were not annotated for training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "unet3d/predict.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: unet3d evaluate --prediction SEG.tif --truth GT.tif "
        "[options]\n\n"
        "  --exclude SPARSE.tif   leave out the voxels annotated there (not\n"
        "                         the ignore label): score only what the\n"
        "                         network had to infer, as the paper\n"
        "  --ignore-label L|none  truth voxels not scored, and the unannotated\n"
        "                         value of --exclude (default 255)\n"
        "  --classes K            report at least K classes\n"
        "  --names a,b,...        class names for the table\n"
        "  --json                 JSON on stdout: iou (per class), mean_iou,\n"
        "                         dice, mean_dice, voxels (scored), ...\n"
        "  --overview OUT.png --image IMG.tif\n"
        "                         middle slices: prediction (top row) and\n"
        "                         truth (bottom row) over the image\n"
        "IoU = TP/(TP+FP+FN), Dice = 2TP/(2TP+FP+FN) per class; the means\n"
        "average the classes present in truth or prediction.\n");
}

typedef struct eargs {
    const char *pred, *truth, *exclude, *names, *overview, *image;
    int ignore, classes, json;
} eargs;

static int parse(int argc, char **argv, eargs *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(s, name) && v && (i++, 1))
        if (ARG("--prediction")) a->pred = v;
        else if (ARG("--truth")) a->truth = v;
        else if (ARG("--exclude")) a->exclude = v;
        else if (ARG("--names")) a->names = v;
        else if (ARG("--overview")) a->overview = v;
        else if (ARG("--image")) a->image = v;
        else if (ARG("--classes")) a->classes = atoi(v);
        else if (ARG("--ignore-label")) {
            char *end;
            long l = strtol(v, &end, 10);
            if (!strcmp(v, "none"))
                a->ignore = U3D_NO_IGNORE;
            else if (*end || end == v || l < 0 || l > 65535) {
                fprintf(stderr, "unet3d evaluate: --ignore-label must be "
                                "0..65535 or none\n");
                return 2;
            } else
                a->ignore = (int)l;
        } else if (!strcmp(s, "--json")) a->json = 1;
        else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unet3d evaluate: unknown or incomplete option "
                            "%s\n\n", s);
            usage(stderr);
            return 2;
        }
#undef ARG
    }
    if (!a->pred || !a->truth || (!a->overview != !a->image)) {
        if (a->pred && a->truth)
            fprintf(stderr, "unet3d evaluate: --overview needs --image and "
                            "vice versa\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

typedef struct ejob {
    eargs a;
    u3d_labels pred, truth, excl;
    u3d_volume img;
    u3d_metrics m;
    u3d_error e;
} ejob;

static u3d_status run(ejob *j)
{
    u3d_error *e = &j->e;
    u3d_status st = u3d_tiff_read_labels(j->a.pred, &j->pred, e);
    if (!st)
        st = u3d_tiff_read_labels(j->a.truth, &j->truth, e);
    if (!st && j->a.exclude)
        st = u3d_tiff_read_labels(j->a.exclude, &j->excl, e);
    if (st)
        return st;
    u3d_metrics_opts o = {j->a.ignore, j->a.exclude ? &j->excl : NULL,
                          j->a.ignore, j->a.classes, j->a.pred, j->a.truth,
                          j->a.exclude};
    st = u3d_metrics_compute(&j->pred, &j->truth, &o, &j->m, e);
    if (st)
        return st;
    if (j->a.overview) {
        st = u3d_tiff_read_volume(j->a.image, &j->img, e);
        if (!st)
            st = u3d_check_image_labels(&j->img, j->a.image, &j->pred,
                                        j->a.pred, e);
        u3d_overview_opts oo = {0.45f, j->a.ignore, 0};
        if (!st)
            st = u3d_overview_write(j->a.overview, &j->img, &j->pred,
                                    &j->truth, &oo, e);
        if (st)
            return st;
    }
    if (j->a.json)
        u3d_metrics_print_json(stdout, &j->m);
    else
        u3d_metrics_print(stdout, &j->m, j->a.names);
    return U3D_OK;
}

int u3d_cmd_evaluate(int argc, char **argv)
{
    ejob j;
    memset(&j, 0, sizeof j);
    j.a.ignore = 255;
    int rc = parse(argc, argv, &j.a);
    if (rc >= 0)
        return rc;
    rc = run(&j) ? 1 : 0;
    if (rc)
        fprintf(stderr, "unet3d evaluate: %s\n", j.e.msg);
    if (!rc && j.m.voxels == 0)
        fprintf(stderr, "unet3d evaluate: warning: no voxel was scored\n");
    u3d_labels_free(&j.pred);
    u3d_labels_free(&j.truth);
    u3d_labels_free(&j.excl);
    u3d_volume_free(&j.img);
    u3d_metrics_free(&j.m);
    return rc;
}
