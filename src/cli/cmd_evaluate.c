/* unet3d evaluate: IoU and Dice of a segmentation against a dense truth,
 * optionally scoring only voxels that were not annotated for training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "unet3d/predict.h"

typedef struct eargs {
    const char *pred, *truth, *exclude, *names, *overview, *image, *ignore_s;
    int ignore, classes, json;
} eargs;

static const char ABOUT[] =
    "IoU = TP/(TP+FP+FN), Dice = 2TP/(2TP+FP+FN) per class; the means\n"
    "average the classes present in truth or prediction.\n";

/* Returns -1 when parsed, else the exit code. */
static int parse(int argc, char **argv, eargs *a)
{
    const u3d_opt opts[] = {
        {"--prediction", U3D_OPT_STRING, &a->pred, 0, 0, "SEG.tif",
         .help = "the labels to score", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--truth", U3D_OPT_STRING, &a->truth, 0, 0, "GT.tif",
         .help = "dense ground truth", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--exclude", U3D_OPT_STRING, &a->exclude, 0, 0, "SPARSE.tif",
         .help = "leave out the voxels annotated there (not\n"
                 "the ignore label): score only what the\n"
                 "network had to infer, as the paper",
         .flags = U3D_OPT_IN},
        {"--ignore-label", U3D_OPT_STRING, &a->ignore_s, 0, 0, "L|none",
         .help = "truth voxels not scored, and the unannotated\n"
                 "value of --exclude (default 255)"},
        {"--classes", U3D_OPT_INT, &a->classes, 1, 256, "K",
         .help = "report at least K classes"},
        {"--names", U3D_OPT_STRING, &a->names, 0, 0, "a,b,...",
         .help = "class names for the table"},
        {"--json", U3D_OPT_FLAG, &a->json, 0, 0, NULL,
         .help = "JSON on stdout: iou (per class), mean_iou,\n"
                 "dice, mean_dice, voxels (scored), ..."},
        {"--overview", U3D_OPT_STRING, &a->overview, 0, 0, "OUT.png",
         .help = "middle slices: prediction (top row) and\n"
                 "truth (bottom row) over the image (needs --image)",
         .flags = U3D_OPT_OUT},
        {"--image", U3D_OPT_STRING, &a->image, 0, 0, "IMG.tif",
         .help = "the image under --overview",
         .flags = U3D_OPT_IN},
        {0}};
    const u3d_cmd_spec spec = {
        "evaluate", "--prediction SEG.tif --truth GT.tif [options]", ABOUT,
        opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    long l;
    if (a->ignore_s && !strcmp(a->ignore_s, "none"))
        a->ignore = U3D_NO_IGNORE;
    else if (a->ignore_s && !u3d_opts_long(a->ignore_s, 0, 65535, &l))
        return u3d_opts_fail(&spec, "--ignore-label wants an integer in "
                                    "0..65535 or none, got '%s'", a->ignore_s);
    else if (a->ignore_s)
        a->ignore = (int)l;
    if (!a->overview != !a->image)
        return u3d_opts_fail(&spec, "--overview needs --image and vice versa");
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
    u3d_status st = u3d_vio_read_labels(j->a.pred, &j->pred, NULL, e);
    if (!st)
        st = u3d_vio_read_labels(j->a.truth, &j->truth, NULL, e);
    if (!st && j->a.exclude)
        st = u3d_vio_read_labels(j->a.exclude, &j->excl, NULL, e);
    if (st)
        return st;
    u3d_metrics_opts o = {j->a.ignore, j->a.exclude ? &j->excl : NULL,
                          j->a.ignore, j->a.classes, j->a.pred, j->a.truth,
                          j->a.exclude};
    st = u3d_metrics_compute(&j->pred, &j->truth, &o, &j->m, e);
    if (st)
        return st;
    if (j->a.overview) {
        st = u3d_vio_read_volume(j->a.image, &j->img, NULL, e);
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
