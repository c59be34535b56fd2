/* unet3d train: train a 3D U-Net on sparsely labeled volumes. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "core/files.h"
#include "dist/dist.h"

#define MAXV 32

typedef struct targs {
    u3d_cli_train t;
    u3d_backend_config bc;
    const char *imgs[MAXV], *labs[MAXV], *model, *val_img, *val_lab;
    int nimg, nlab, resume, val_every;
    double holdout;
    int calibrate, g_holdout, g_calibrate;
} targs;

typedef struct tjob {
    const targs *a;
    u3d_model_meta m;
    u3d_class_weighting weights;
    u3d_backend *be;
    u3d_net *net;
    u3d_train_volume vols[MAXV], val;
    u3d_labels held[MAXV]; /* each volume's held-out slices (may be empty) */
    u3d_slice_score *slices[MAXV]; /* and which they are */
    int nslices[MAXV];
    int nv, has_val, nheld; /* nheld: held-out slices in all */
    int calibrate;           /* --calibrate, or the plan's default */
    u3d_calibration calib;
    u3d_val_score calib_est; /* cross-fitted over the held-out slices */
    int calib_kept;          /* 0: offsets found but not carried over */
    double calib_s;
    u3d_val_score best;
    char bestbuf[4200];
    size_t counts[U3D_MAX_CLASSES];
    char logbuf[4200];
    u3d_error e;
} tjob;

static const char ABOUT[] =
    "Images and labels pair up in the order given. Sizes are D x H x W.\n"
    "Settings left out (kernels/pools, patch, augmentation, class weights)\n"
    "come from the data ('unet3d plan' shows them and why; --plan off: the\n"
    "preset's, augmentation paper). --resume keeps the model file's.\n"
    "--calibrate: after training, the decision (one logit offset per\n"
    "class, which predict applies) is tuned on annotation the model did\n"
    "not train on: --holdout's share of each volume's annotated slices\n"
    "(default 0.125), or the --val-image's labels when given.\n";

/* Returns -1 when parsed, else the exit code. */
static int parse(int argc, char **argv, targs *a)
{
    const u3d_opt opts[] = {
        U3D_OPTS_PAIRS(a, MAXV),
        {"--model", U3D_OPT_STRING, &a->model, 0, 0, "M.u3d",
         .help = "the model to write", .flags = U3D_OPT_REQUIRED | U3D_OPT_OUT},
        {"--resume", U3D_OPT_FLAG, &a->resume, 0, 0, NULL,
         .help = "continue the run saved in --model"},
        {"--val-image", U3D_OPT_STRING, &a->val_img, 0, 0, "V.tif",
         .help = "validation image: scored during training, the\n"
                 "best model kept as MODEL.best.u3d",
         .flags = U3D_OPT_IN},
        {"--val-labels", U3D_OPT_STRING, &a->val_lab, 0, 0, "VL.tif",
         .help = "its labels (sparse: annotated voxels scored)",
         .flags = U3D_OPT_IN},
        {"--val-every", U3D_OPT_INT, &a->val_every, 1, 1e9, "N",
         .help = "validate every N iterations (default: at the\n"
                 "checkpoints, else every 50) and at the end"},
        {"--holdout", U3D_OPT_DOUBLE, &a->holdout, 0, 0.5, "FRACTION",
         .help = "share of each volume's annotated slices held\n"
                 "out of training for --calibrate (default 0.125\n"
                 "when calibrating, 0 with --val-image)",
         .given = &a->g_holdout},
        {"--calibrate", U3D_OPT_CHOICE, &a->calibrate, 0, 0, NULL,
         .help = "on (the plan's default for 2 classes, or with\n"
                 "--holdout): tune the decision on held-out slices\n"
                 "or --val-image; off: argmax",
         .choices = u3d_cli_onoff, .given = &a->g_calibrate},
        U3D_OPTS_NET(&a->t.net),
        U3D_OPTS_TRAIN(&a->t),
        U3D_OPTS_AUG(&a->t.aug),
        U3D_OPTS_PLAN(&a->t),
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {
        "train",
        "--image A.tif --labels A_labels.tif [--image B.tif --labels ...]\n"
        "                    --model out.u3d [options]",
        ABOUT, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->nimg != a->nlab)
        return u3d_opts_fail(&spec, "%d --image but %d --labels: give one "
                                    "--labels per --image", a->nimg, a->nlab);
    if (!a->t.iterations && !a->t.minutes && !a->resume)
        return u3d_opts_fail(&spec, "give --iterations N or --minutes M");
    if (!a->val_img != !a->val_lab)
        return u3d_opts_fail(&spec, "--val-image and --val-labels go "
                                    "together");
    if (a->val_every && !a->val_img)
        return u3d_opts_fail(&spec, "--val-every needs --val-image");
    if (a->holdout > 0 && a->g_calibrate && !a->calibrate)
        return u3d_opts_fail(&spec, "--holdout serves --calibrate: with "
                                    "--calibrate off it would only take "
                                    "slices from training");
    if (a->holdout > 0 && a->val_img)
        return u3d_opts_fail(&spec, "--holdout and --val-image: the "
                                    "calibration uses the validation "
                                    "volume; give one of them");
    return -1;
}

/* Loads, checks and normalizes one image/labels pair. */
static u3d_status load_pair(const char *img, const char *lab,
                            const u3d_model_meta *m, u3d_train_volume *v,
                            size_t *counts, u3d_error *err)
{
    memset(v, 0, sizeof *v);
    snprintf(v->image_path, sizeof v->image_path, "%s", img);
    snprintf(v->labels_path, sizeof v->labels_path, "%s", lab);
    u3d_status st = u3d_vio_read_volume(img, &v->image, NULL, err);
    if (!st)
        st = u3d_vio_read_labels(lab, &v->labels, NULL, err);
    if (!st)
        st = u3d_check_image_labels(&v->image, img, &v->labels, lab, err);
    size_t c[U3D_MAX_CLASSES] = {0};
    if (!st) {
        st = u3d_labels_check(&v->labels, m->net.classes, m->ignore_label, c,
                              NULL, err);
        if (st)
            u3d_errprefix(err, "%s: ", lab);
    }
    for (int k = 0; !st && k < m->net.classes; k++)
        counts[k] += c[k];
    return st;
}

/* After the plan, which looks at the raw intensities. */
static u3d_status normalize(const u3d_model_meta *m, u3d_train_volume *v,
                            u3d_error *err)
{
    if (m->norm_mode == U3D_NORM_NONE)
        return U3D_OK;
    u3d_norm_params np;
    U3D_TRY(u3d_norm_compute(&v->image, NULL, (u3d_norm_mode)m->norm_mode,
                             m->norm_plo, m->norm_phi, &np, err));
    return u3d_norm_apply(&v->image, &np, err);
}

static u3d_status normalize_all(tjob *j)
{
    u3d_status st = U3D_OK;
    for (int i = 0; !st && i < j->nv; i++)
        st = normalize(&j->m, &j->vols[i], &j->e);
    if (!st && j->has_val)
        st = normalize(&j->m, &j->val, &j->e);
    return st;
}

/* The plan of the training volumes (--plan on) applied to the new model. */
static u3d_status apply_plan(tjob *j)
{
    u3d_volume imgs[MAXV];
    u3d_labels labs[MAXV];
    for (int i = 0; i < j->nv; i++) { /* shallow: the plan only reads */
        imgs[i] = j->vols[i].image;
        labs[i] = j->vols[i].labels;
    }
    return u3d_cli_plan_run(&j->a->t, imgs, labs, j->a->labs, j->nv, 0,
                            &j->m, &j->weights, &j->e);
}

/* The saved run, with a new length if given. */
static u3d_status setup_resume(tjob *j)
{
    const u3d_cli_train *t = &j->a->t;
    u3d_status st = u3d_model_load(j->a->model, j->be, &j->net, &j->m, &j->e);
    if (st)
        return u3d_errprefix(&j->e, "cannot resume: ");
    int lead = u3d_dist_rank() == 0;
    if (lead && (t->g_patch || t->g_lr || t->g_momentum || t->g_optim ||
                 t->g_seed ||
                 t->aug.g_preset || u3d_cli_aug_custom(&t->aug)))
        fprintf(stderr, "unet3d train: --resume keeps the saved patch, "
                        "optimizer, lr, momentum, seed and augmentation\n");
    if (t->iterations)
        j->m.iterations = t->iterations;
    if (t->minutes > 0)
        j->m.minutes = t->minutes;
    if (lead)
        fprintf(stderr, "resuming %s at iteration %ld (batch %d%s)\n",
                j->a->model, j->m.iteration, j->m.batch,
                u3d_dist_active() ? " over all ranks" : "");
    return U3D_OK;
}

/* A new model once the volumes are read: patch, class weights, weights. */
static u3d_status setup_fresh(tjob *j)
{
    u3d_model_meta *m = &j->m;
    u3d_status st = U3D_OK;
    /* --kernels/--pools auto without --spacing: the first image's */
    if (u3d_cli_net_wants_spacing(&j->a->t.net))
        st = u3d_cli_net_aniso(&j->a->t.net, j->vols[0].image.spacing,
                               &m->net, &j->e);
    if (!st && j->a->t.plan)
        st = apply_plan(j);
    else if (!st && !j->a->t.g_patch)
        st = u3d_train_default_patch(&m->net, 96, m->patch, &j->e);
    if (st)
        return st;
    u3d_class_weights_set(j->weights, j->counts, m->net.classes,
                          m->class_weights);
    st = u3d_net_create(j->be, &m->net, &j->net, &j->e);
    if (!st)
        st = u3d_net_init(j->net, m->seed, &j->e);
    return st;
}

static u3d_status load_volumes(tjob *j)
{
    for (j->nv = 0; j->nv < j->a->nimg; j->nv++) {
        u3d_status st = load_pair(j->a->imgs[j->nv], j->a->labs[j->nv], &j->m,
                                  &j->vols[j->nv], j->counts, &j->e);
        if (st) {
            j->nv++; /* partly loaded: freed too */
            return st;
        }
        if (!j->a->resume && j->nv == 0)
            j->m.net.in_channels = j->vols[0].image.c;
    }
    if (!j->a->val_img)
        return U3D_OK;
    size_t counts[U3D_MAX_CLASSES] = {0}; /* no say in the class weights */
    j->has_val = 1;
    return load_pair(j->a->val_img, j->a->val_lab, &j->m, &j->val, counts,
                     &j->e);
}

static size_t count_annotated(const u3d_labels *l, int ignore)
{
    size_t n = (size_t)l->d * l->h * l->w, k = 0;
    for (size_t i = 0; i < n; i++)
        k += l->data[i] != ignore;
    return k;
}

/* 1 when the held-out voxels are a fair share of the annotation: in a
 * densely annotated block every voxel of a held-out slice lies on kept
 * slices of the other axes too, so only their crossings (about 1/512 of
 * it) would be held out, each among trained neighbours, which says
 * nothing about unseen data. */
static int fair_share(const u3d_holdout *ho, const u3d_labels *all,
                      double fraction, int ignore)
{
    size_t held = count_annotated(&ho->held, ignore);
    return (double)held >= 0.25 * fraction *
                               (double)count_annotated(all, ignore);
}

/* Holds out m.holdout of each volume's annotated slices (seeded per
 * volume, so a resumed run holds out the same); the class counts then
 * come from the slices trained on. */
static u3d_status split_holdout(tjob *j)
{
    const u3d_model_meta *m = &j->m;
    int total = 0;
    for (int i = 0; i < j->nv && m->holdout > 0; i++) {
        u3d_holdout ho;
        u3d_status st = u3d_holdout_split(&j->vols[i].labels, m->ignore_label,
                                          m->holdout, m->seed + (uint64_t)i,
                                          &ho, &j->e);
        if (st)
            return u3d_errprefix(&j->e, "%s: ", j->vols[i].labels_path);
        if (ho.nheld && !fair_share(&ho, &j->vols[i].labels, m->holdout,
                                    m->ignore_label)) {
            if (!j->a->t.quiet && u3d_dist_rank() == 0)
                fprintf(stderr, "%s: densely annotated: no slice held out "
                                "of it (give --val-image to calibrate on "
                                "another volume)\n", j->vols[i].labels_path);
            ho.nheld = 0;
        }
        if (ho.nheld) { /* the volume keeps the rest */
            u3d_labels_free(&j->vols[i].labels);
            j->vols[i].labels = ho.train;
            j->held[i] = ho.held;
            j->slices[i] = ho.slices;
            j->nslices[i] = ho.nheld;
            memset(&ho.train, 0, sizeof ho.train);
            memset(&ho.held, 0, sizeof ho.held);
            ho.slices = NULL;
            j->nheld += ho.nheld;
        }
        u3d_holdout_free(&ho);
    }
    if (!j->nheld)
        return U3D_OK;
    memset(j->counts, 0, sizeof j->counts);
    for (int i = 0; i < j->nv; i++) {
        size_t c[U3D_MAX_CLASSES] = {0};
        U3D_TRY(u3d_labels_check(&j->vols[i].labels, m->net.classes,
                                 m->ignore_label, c, NULL, &j->e));
        for (int k = 0; k < m->net.classes; k++)
            j->counts[k] += c[k];
        total += j->held[i].data != NULL;
    }
    if (!j->a->t.quiet && u3d_dist_rank() == 0)
        fprintf(stderr, "holding out %d annotated slice(s) of %d volume(s) "
                        "to calibrate the decision (--holdout %g)\n",
                j->nheld, total, m->holdout);
    return U3D_OK;
}

/* MODEL.best.u3d beside MODEL.u3d (MODEL.best.u3d also for other names). */
static u3d_status best_path(tjob *j)
{
    const char *m = j->a->model;
    size_t n = strlen(m);
    if (n > 4 && !strcmp(m + n - 4, ".u3d"))
        n -= 4;
    snprintf(j->bestbuf, sizeof j->bestbuf, "%.*s.best.u3d", (int)n, m);
    if (u3d_same_file(j->bestbuf, j->a->val_img) ||
        u3d_same_file(j->bestbuf, j->a->val_lab))
        return u3d_seterr(&j->e, U3D_ERR_INVALID_ARG,
                          "%s: the best model would overwrite an input",
                          j->bestbuf);
    return u3d_outfile_check_target(j->bestbuf, &j->e);
}

static void print_setup(const tjob *j)
{
    const u3d_model_meta *m = &j->m;
    char cfgs[256];
    int out[3] = {0};
    u3d_net_output_size(&m->net, m->patch, out, NULL);
    char ranks[64] = "";
    if (u3d_dist_active())
        snprintf(ranks, sizeof ranks, " over %d ranks%s", u3d_dist_size(),
                 j->a->t.sync_bn ? ", synchronized batch norm" : "");
    char opt[64];
    if (m->optimizer == U3D_OPTIM_ADAM)
        snprintf(opt, sizeof opt, "adam");
    else
        snprintf(opt, sizeof opt, "sgd, momentum %g", m->momentum);
    fprintf(stderr,
            "device: %s%s\nnetwork: %s\npatch %dx%dx%d -> %dx%dx%d (DxHxW), "
            "batch %d%s, %s, lr %g, augment %s%s\nclass weights:",
            u3d_backend_device(j->be),
            u3d_dist_active() ? " (rank 0; 'unet3d devices' under mpirun "
                                "shows every rank's)" : "", u3d_net_config_str(&m->net, cfgs, sizeof cfgs),
            m->patch[0], m->patch[1], m->patch[2], out[0], out[1], out[2],
            m->batch, ranks, opt, m->lr, m->augment,
            m->aug_custom ? " (changed per transform)" : "");
    for (int k = 0; k < m->net.classes; k++)
        fprintf(stderr, " %.3g", m->class_weights[k]);
    fprintf(stderr, "\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The decision of net tuned on the held-out slices (or the validation
 * volume); the model file at path gets it. Held-out slices also decide
 * whether it is kept: only when the offsets tuned on the other slices
 * raise each slice's IoU above the argmax's (cross-fitted; on fully
 * automatic BraTS, 4 tumour classes from 3 patients, offsets tuned on all
 * of them raised their IoU 0.09 -> 0.17 and halved the new patient's). */
static u3d_status calibrate_model(tjob *j, u3d_net *net, u3d_model_meta *m,
                                  const char *path, u3d_calibration *c)
{
    double t0 = now_s();
    u3d_calib_set set[MAXV];
    int n = 0;
    if (j->has_val) {
        set[n++] = (u3d_calib_set){&j->val.image, &j->val.labels, NULL, 0};
    } else {
        for (int i = 0; i < j->nv; i++)
            if (j->held[i].data)
                set[n++] = (u3d_calib_set){&j->vols[i].image, &j->held[i],
                                           j->slices[i], j->nslices[i]};
    }
    u3d_val_score *est = &j->calib_est;
    U3D_TRY(u3d_calibrate_net(net, set, n, m->ignore_label, 0, c, est,
                              &j->e));
    c->before.iteration = c->after.iteration = m->iteration;
    j->calib_s = now_s() - t0; /* after the time budget: said */
    j->calib_kept = !(c->changed && est->voxels &&
                      !(est->mean_fg > c->before.mean_fg));
    if (!c->changed || !j->calib_kept)
        return U3D_OK;
    memcpy(m->class_bias, c->bias, sizeof m->class_bias);
    u3d_status st = U3D_OK;
    if (u3d_dist_rank() == 0)
        st = u3d_model_save(path, net, m, 1, &j->e);
    return u3d_dist_active() ? u3d_dist_agree(st, &j->e) : st;
}

static void say_calibration(const tjob *j, const u3d_calibration *c,
                            const char *path)
{
    if (j->a->t.quiet || u3d_dist_rank() != 0)
        return;
    char from[300];
    if (j->has_val)
        snprintf(from, sizeof from, "%s", j->a->val_lab);
    else
        snprintf(from, sizeof from, "%d held-out slice(s)", j->nheld);
    if (!c->changed) {
        fprintf(stderr, "%s: decision the plain argmax (no offsets raised "
                        "the IoU on %s by %g; %.1f s)\n",
                path, from, U3D_CALIB_MIN_GAIN, j->calib_s);
        return;
    }
    const u3d_val_score *est = &j->calib_est;
    if (!j->calib_kept) {
        fprintf(stderr, "%s: decision the plain argmax: offsets tuned on %s "
                        "did not carry from slice to slice (each slice with "
                        "the others' offsets: mean foreground IoU %.4f, the "
                        "argmax %.4f; %.1f s)\n",
                path, from, est->mean_fg, c->before.mean_fg, j->calib_s);
        return;
    }
    fprintf(stderr, "%s: decision calibrated on %s (%zu voxels), logit "
                    "offsets:", path, from, c->after.voxels);
    for (int k = 0; k < c->after.classes; k++)
        fprintf(stderr, " %d %+.2f", k, (double)c->bias[k]);
    fprintf(stderr, "; their mean foreground IoU %.4f -> %.4f (predict "
                    "applies it; tuned on those voxels, so the gain "
                    "flatters", c->before.mean_fg, c->after.mean_fg);
    if (est->voxels)
        fprintf(stderr, "; each slice with the others' offsets %.4f",
                est->mean_fg);
    fprintf(stderr, "; %.1f s)\n", j->calib_s);
}

/* The best model (--val-image) gets its own decision. */
static u3d_status calibrate_best(tjob *j)
{
    u3d_net *net = NULL;
    u3d_model_meta m;
    u3d_calibration c;
    u3d_status st = u3d_model_load(j->bestbuf, j->be, &net, &m, &j->e);
    if (!st) {
        memset(m.class_bias, 0, sizeof m.class_bias);
        st = calibrate_model(j, net, &m, j->bestbuf, &c);
    }
    if (!st)
        say_calibration(j, &c, j->bestbuf);
    u3d_net_destroy(net);
    return st;
}

/* After training: --calibrate's decision for the model (and the best). */
static u3d_status calibrate(tjob *j)
{
    if (!j->calibrate)
        return U3D_OK;
    if (!j->has_val && !j->nheld) {
        if (!j->a->t.quiet && u3d_dist_rank() == 0)
            fprintf(stderr, "no calibration: nothing was held out (an "
                            "axis needs two annotated slices, and a densely "
                            "annotated volume gives none; a resumed model "
                            "keeps its --holdout)\n");
        return U3D_OK;
    }
    U3D_TRY(calibrate_model(j, j->net, &j->m, j->a->model, &j->calib));
    say_calibration(j, &j->calib, j->a->model);
    return j->best.iteration ? calibrate_best(j) : U3D_OK;
}

/* The plan's decision: calibrated for two classes. With more, fully
 * automatic BraTS (4 tumour classes) lost the held-out slices' share of
 * training on each of 3 seeds while its offsets never carried from slice
 * to slice (README), so the argmax and every slice. */
static int plan_calibrates(const tjob *j)
{
    return j->a->t.plan && j->m.net.classes <= 2;
}

static u3d_status run(tjob *j)
{
    const targs *a = j->a;
    u3d_status st = U3D_OK;
    /* option errors before the device and the data */
    if (!a->resume)
        st = u3d_cli_train_meta(&a->t, 0, &j->m, &j->e);
    if (!st && !a->resume)
        st = u3d_cli_class_weights(a->t.class_weights, j->m.net.classes,
                                   &j->weights, j->m.class_weights, &j->e);
    /* --batch is per rank: the model keeps the global batch, which a
     * resumed run shares among however many ranks it has */
    if (!st && !a->resume)
        j->m.batch *= u3d_dist_size();
    if (!st)
        st = u3d_backend_create(&a->bc, &j->be, &j->e);
    if (!st && a->resume)
        st = setup_resume(j);
    if (!st && a->val_img)
        st = best_path(j);
    if (!st)
        j->calibrate = a->g_calibrate                  ? a->calibrate
                       : a->g_holdout && a->holdout > 0 ? 1
                                                        : plan_calibrates(j);
    if (!st && !a->resume)
        j->m.holdout = a->g_holdout                  ? a->holdout
                       : j->calibrate && !a->val_img ? U3D_PLAN_HOLDOUT
                                                     : 0;
    else if (!st && a->g_holdout && a->holdout != j->m.holdout &&
             u3d_dist_rank() == 0)
        fprintf(stderr, "unet3d train: --resume keeps the saved --holdout "
                        "%g\n", j->m.holdout);
    if (!st)
        st = load_volumes(j);
    if (!st)
        st = split_holdout(j);
    if (!st && !a->resume)
        st = setup_fresh(j);
    /* a decision belongs to the parameters it was tuned for */
    memset(j->m.class_bias, 0, sizeof j->m.class_bias);
    if (!st)
        st = normalize_all(j);
    /* under mpirun: a rank that failed (device, file, memory) stops all */
    if (u3d_dist_active())
        st = u3d_dist_agree(st, &j->e);
    if (st)
        return st;
    if (!a->t.quiet && u3d_dist_rank() == 0)
        print_setup(j);
    const char *logp = a->t.log;
    if (!logp) {
        snprintf(j->logbuf, sizeof j->logbuf, "%s.csv", a->model);
        logp = j->logbuf;
    }
    u3d_train_opts o = {a->model, logp, a->t.every, 0, a->t.quiet, 0,
                        stderr, a->t.sync_bn, .val = NULL};
    if (j->has_val) {
        o.val = &j->val;
        o.val_every = a->val_every;
        o.best_path = j->bestbuf;
        o.best = &j->best;
    }
    st = u3d_train_run(j->net, &j->m, j->vols, j->nv, &o, &j->e);
    if (!st && !a->t.quiet && u3d_dist_rank() == 0)
        fprintf(stderr, "saved %s after %ld iterations (%.1f s)%s\n", a->model,
                j->m.iteration, j->m.elapsed_s,
                u3d_dist_active() ? ", written by rank 0" : "");
    if (!st && j->best.iteration && !a->t.quiet && u3d_dist_rank() == 0)
        fprintf(stderr, "best model: %s (iteration %ld, mean foreground IoU "
                        "%.4f on %s)\n",
                j->bestbuf, j->best.iteration, j->best.mean_fg, a->val_lab);
    return st ? st : calibrate(j);
}

int u3d_cmd_train(int argc, char **argv)
{
    targs a;
    memset(&a, 0, sizeof a);
    u3d_cli_train_defaults(&a.t);
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    tjob *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "unet3d train: out of host memory\n");
        return 1;
    }
    j->a = &a;
    rc = run(j) ? 1 : 0;
    if (rc)
        u3d_dist_report("train", &j->e);
    for (int i = 0; i < j->nv; i++) {
        u3d_volume_free(&j->vols[i].image);
        u3d_labels_free(&j->vols[i].labels);
        u3d_labels_free(&j->held[i]);
        free(j->slices[i]);
    }
    u3d_volume_free(&j->val.image);
    u3d_labels_free(&j->val.labels);
    u3d_net_destroy(j->net);
    u3d_backend_destroy(j->be);
    free(j);
    return rc;
}
