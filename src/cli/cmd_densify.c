/* unet3d densify: the semi-automatic workflow in one command — train on the
 * annotated voxels of one volume, predict the whole volume, keep the
 * user's labels where they annotated (u3d_densify, densify.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "dist/dist.h"
#include "unet3d/predict.h"

typedef struct dargs {
    u3d_cli_train t;
    u3d_backend_config bc;
    const char *img, *lab, *slices, *out, *overview, *model_out;
    double max_mb, holdout;
    int val_every, suggest, calibrate;
} dargs;

typedef struct djob {
    const dargs *a;
    u3d_densify_opts o;
    u3d_volume v, shown;
    u3d_vgeom geom; /* the image's orientation, for the output */
    u3d_labels sp, dense;
    u3d_densify_result res;
    u3d_slice_score *sugg; /* --suggest */
    int nsugg;
    u3d_backend *be;
    u3d_error e;
} djob;

static const char ABOUT[] =
    "Trains on the annotated voxels of this volume (default 10 minutes),\n"
    "segments the whole volume and keeps the annotated voxels' labels.\n"
    "--annotation-slices: PNG label slices zNNNN.png, yNNNN.png, xNNNN.png\n"
    "(8-bit gray, 255 = unlabeled). Classes default to the largest\n"
    "annotated label + 1. Sizes are D x H x W.\n"
    "--holdout: the held-out slices are scored during training, the best\n"
    "model makes the output (their labels are still kept in it), and\n"
    "\"estimated IoU per class\" is printed; no retraining on all slices.\n"
    "--calibrate: the decision is tuned on the same held-out slices (one\n"
    "offset per class), so the estimate is that of the tuned decision.\n"
    "Settings left out (kernels/pools, patch, augmentation, class weights)\n"
    "come from the data ('unet3d plan' shows them and why; --plan off: the\n"
    "preset's, augmentation paper).\n";

/* Returns -1 when parsed, else the exit code. */
static int parse(int argc, char **argv, dargs *a)
{
    const u3d_opt opts[] = {
        {"--image", U3D_OPT_STRING, &a->img, 0, 0, "IMG.tif",
         .help = "the volume", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--labels", U3D_OPT_STRING, &a->lab, 0, 0, "SPARSE.tif",
         .help = "its sparse labels, or",
         .flags = U3D_OPT_IN},
        {"--annotation-slices", U3D_OPT_STRING, &a->slices, 0, 0, "DIR",
         .help = "a folder of annotated PNG slices",
         .flags = U3D_OPT_IN},
        {"--out", U3D_OPT_STRING, &a->out, 0, 0, "DENSE.tif",
         .help = "the dense labels to write", .flags = U3D_OPT_REQUIRED | U3D_OPT_OUT},
        {"--model-out", U3D_OPT_STRING, &a->model_out, 0, 0, "M.u3d",
         .help = "keep the trained model",
         .flags = U3D_OPT_OUT},
        {"--overview", U3D_OPT_STRING, &a->overview, 0, 0, "OUT.png",
         .help = "orthogonal middle slices with the result",
         .flags = U3D_OPT_OUT},
        {"--max-memory", U3D_OPT_DOUBLE, &a->max_mb, 0, 1e9, "MB",
         .help = "device-memory budget of the prediction (MiB)",
         .flags = U3D_OPT_GT},
        {"--holdout", U3D_OPT_DOUBLE, &a->holdout, 0, 0.5, "FRACTION",
         .help = "share of the annotated slices held out to\n"
                 "estimate the IoU (default 0.125; 0: none)"},
        {"--calibrate", U3D_OPT_CHOICE, &a->calibrate, 0, 0, NULL,
         .help = "on (default): the decision (per-class logit\n"
                 "offsets) that maximizes the held-out slices' IoU\n"
                 "makes the output; the model keeps it",
         .choices = u3d_cli_onoff},
        {"--val-every", U3D_OPT_INT, &a->val_every, 1, 1e9, "N",
         .help = "score the held-out slices every N iterations\n"
                 "(default: --checkpoint-every) and at the end"},
        {"--suggest", U3D_OPT_INT, &a->suggest, 1, 10000, "K",
         .help = "print the K slices to annotate next (as\n"
                 "'unet3d suggest' ranks them)"},
        U3D_OPTS_NET(&a->t.net),
        U3D_OPTS_TRAIN(&a->t),
        U3D_OPTS_AUG(&a->t.aug),
        U3D_OPTS_PLAN(&a->t),
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {
        "densify",
        "--image IMG.tif (--labels SPARSE.tif | --annotation-slices DIR)\n"
        "                      --out DENSE.tif [options]",
        ABOUT, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->val_every && !(a->holdout > 0))
        return u3d_opts_fail(&spec, "--val-every needs --holdout above 0");
    return u3d_cli_one_annotation(&spec, a->lab, a->slices);
}

/* Densify's settings from the options; errors before any work. */
static u3d_status setup(djob *j)
{
    const dargs *a = j->a;
    u3d_densify_opts *o = &j->o;
    u3d_status st = u3d_cli_densify_setup(&a->t, o, &j->e);
    if (st)
        return st;
    o->model_out = a->model_out;
    o->image_name = a->img;
    o->labels_name = a->lab ? a->lab : a->slices;
    o->out_name = a->out;
    o->max_memory = (size_t)(a->max_mb * 1048576.0);
    /* under mpirun: --batch per rank, the batch norm option */
    o->meta.batch *= u3d_dist_size();
    o->sync_bn = a->t.sync_bn;
    o->holdout = a->holdout;
    o->val_every = a->val_every;
    o->calibrate = a->calibrate;
    o->want_probs = a->suggest > 0;
    o->result = &j->res;
    return st;
}

static u3d_status read_inputs(djob *j)
{
    const dargs *a = j->a;
    u3d_status st = u3d_vio_read_volume(a->img, &j->v, &j->geom, &j->e);
    if (!st)
        st = u3d_cli_read_annotation(&j->v, a->img, a->lab, a->slices,
                                     j->o.quiet, &j->sp, &j->e);
    /* densify normalizes the image in place: the overview shows it raw */
    const u3d_volume *v = &j->v;
    if (!st && a->overview &&
        u3d_volume_alloc(v->c, v->d, v->h, v->w, &j->shown, &j->e) == U3D_OK) {
        memcpy(j->shown.data, v->data,
               sizeof(float) * v->c * (size_t)v->d * v->h * v->w);
        memcpy(j->shown.spacing, v->spacing, sizeof v->spacing);
    }
    return st;
}

/* The estimate from the held-out slices, on stdout: a result, not
 * progress. */
static void print_estimate(const djob *j)
{
    const u3d_densify_result *r = &j->res;
    if (!(j->a->holdout > 0))
        return;
    if (!r->estimate.iteration) {
        fprintf(stderr, "no IoU estimate: no annotated slice could be held "
                        "out (an axis needs two annotated slices)\n");
        return;
    }
    printf("estimated IoU per class (from %d held-out annotated slices: "
           "%s):",
           r->held, r->held_names);
    for (int c = 0; c < r->estimate.classes; c++)
        printf(" %d %.4f", c, r->estimate.iou[c]);
    printf("; mean foreground %.4f (%zu voxels, model of iteration %ld)\n",
           r->estimate.mean_fg, r->estimate.voxels, r->estimate.iteration);
    const u3d_calibration *c = &r->calib;
    if (!c->after.iteration)
        return;
    if (!c->changed) {
        printf("decision: the plain argmax (no offsets raised the held-out "
               "IoU by %g)\n", U3D_CALIB_MIN_GAIN);
        return;
    }
    printf("decision calibrated on the held-out slices, logit offsets:");
    for (int k = 0; k < c->after.classes; k++)
        printf(" %d %+.2f", k, (double)c->bias[k]);
    printf("; held-out mean foreground %.4f -> %.4f on the slices it was "
           "tuned on (the estimate above: each held-out slice scored with "
           "offsets tuned on the others; --calibrate off: the plain "
           "argmax)\n",
           c->before.mean_fg, c->after.mean_fg);
}

/* After the outputs: the estimate and the slices to annotate next. */
static void report(djob *j)
{
    print_estimate(j);
    if (j->a->suggest <= 0)
        return;
    printf("annotate next:\n");
    u3d_cli_suggest_print(stdout, j->sugg, j->nsugg);
}

static u3d_status run(djob *j)
{
    const dargs *a = j->a;
    u3d_status st = setup(j);
    if (!st)
        st = read_inputs(j);
    const char *lname = j->o.labels_name;
    if (!st && a->t.plan) /* from the raw image: densify normalizes it */
        st = u3d_cli_plan_run(&a->t, &j->v, &j->sp, &lname, 1, 1,
                              &j->o.meta, &j->o.weights, &j->e);
    if (!st)
        st = u3d_backend_create(&a->bc, &j->be, &j->e);
    /* under mpirun: every rank trains and predicts, rank 0 writes */
    int lead = u3d_dist_rank() == 0;
    if (u3d_dist_active())
        st = u3d_dist_agree(st, &j->e);
    if (!st)
        st = u3d_densify(j->be, &j->o, &j->v, &j->sp, &j->dense, &j->e);
    if (!st && a->suggest && lead) /* before the outputs; overview marks */
        st = u3d_cli_suggest(&j->res.probs, &j->sp, a->suggest,
                             a->t.ignore_label, &j->sugg, &j->nsugg, &j->e);
    if (!st && lead)
        st = u3d_vio_write_labels(a->out, &j->dense, &j->geom, &j->e);
    if (!st && a->overview && lead) {
        u3d_overview_opts oo = {0, a->t.ignore_label, 0};
        st = u3d_overview_write_marked(a->overview,
                                       j->shown.data ? &j->shown : &j->v,
                                       &j->dense, NULL, &oo, j->sugg,
                                       j->nsugg, &j->e);
        if (st) /* a failed command leaves none of its outputs */
            u3d_vio_remove(a->out);
    }
    if (u3d_dist_active()) /* the outputs are written, or why not */
        st = u3d_dist_agree(st, &j->e);
    if (!st && !a->t.quiet && lead)
        fprintf(stderr, "wrote %s%s%s\n", a->out, a->overview ? " and " : "",
                a->overview ? a->overview : "");
    if (!st && lead)
        report(j);
    return st;
}

int u3d_cmd_densify(int argc, char **argv)
{
    dargs a;
    memset(&a, 0, sizeof a);
    u3d_cli_train_defaults(&a.t);
    a.holdout = U3D_PLAN_HOLDOUT;
    a.calibrate = 1;
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    djob *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "unet3d densify: out of host memory\n");
        return 1;
    }
    j->a = &a;
    rc = run(j) ? 1 : 0;
    if (rc)
        u3d_dist_report("densify", &j->e);
    u3d_backend_destroy(j->be);
    u3d_volume_free(&j->v);
    u3d_volume_free(&j->shown);
    u3d_labels_free(&j->sp);
    u3d_labels_free(&j->dense);
    u3d_volume_free(&j->res.probs);
    free(j->sugg);
    free(j);
    return rc;
}
