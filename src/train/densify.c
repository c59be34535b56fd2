/* Densification (densify.h): train on the annotated voxels of one volume,
 * predict the whole volume, keep the user's labels where they annotated. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "dist/dist.h"
#include "unet3d/densify.h"
#include "unet3d/predict.h"
#include "train/densify_internal.h"

void u3d_class_weights_set(u3d_class_weighting mode, const size_t *counts,
                           int classes, float *w)
{
    if (mode == U3D_WEIGHTS_GIVEN)
        return;
    u3d_class_weights_auto(counts, classes, w);
    if (mode == U3D_WEIGHTS_SQRT)
        for (int k = 0; k < classes; k++)
            w[k] = sqrtf(w[k]);
}

void u3d_densify_defaults(u3d_densify_opts *o)
{
    memset(o, 0, sizeof *o);
    u3d_model_meta_defaults(&o->meta);
    o->meta.net.classes = 0;
    o->patch_cap = 96;
    o->checkpoint_every = 50;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(void *user, int done, int total)
{
    double el = now_s() - *(double *)user;
    fprintf(stderr, "\rpredicting: tile %d/%d  ETA %.0f s   ", done, total,
            done ? el / done * (total - done) : 0.0);
    if (done == total)
        fprintf(stderr, "\n");
}

/* Slices per patch along an axis the net never looks across (--dims 2):
 * there a longer patch is only a larger batch of 2D images, and 96 of
 * them made the 2D baseline's iteration 7x the 3D one's. */
#define U3D_FLAT_AXIS_PATCH 8

/* 1 when every level's kernel and pool is 1 along axis a. */
static int flat_axis(const u3d_net_config *c, int a)
{
    for (int l = 0; l < c->levels; l++)
        if (c->kernel[l][a] != 1 || (l + 1 < c->levels && c->pool[l][a] != 1))
            return 0;
    return 1;
}

u3d_status u3d_densify_patch(const u3d_net_config *c, const int vol[3],
                                int cap, int patch[3], u3d_error *err)
{
    for (int a = 0; a < 3; a++) {
        int ctx = u3d_net_context_axis(c, a); /* anisotropic nets differ */
        int want = vol[a] + 2 * ctx, below, above;
        int most = flat_axis(c, a) && cap > U3D_FLAT_AXIS_PATCH
                       ? U3D_FLAT_AXIS_PATCH
                       : cap;
        if (want > most)
            want = most;
        if (!u3d_net_valid_size_axis(c, a, want, &below, &above))
            want = below > 0 ? below : above;
        patch[a] = want;
    }
    int out[3];
    return u3d_net_output_size(c, patch, out, err);
}

/* Classes as given, else the largest annotated label + 1 (>= 2). */
static u3d_status densify_classes(const u3d_densify_opts *o,
                                  const u3d_labels *sparse, u3d_model_meta *m,
                                  u3d_error *err)
{
    int maxl = 1;
    size_t n = (size_t)sparse->d * sparse->h * sparse->w;
    for (size_t i = 0; i < n; i++)
        if (sparse->data[i] != m->ignore_label && sparse->data[i] > maxl)
            maxl = sparse->data[i];
    m->net.classes = o->meta.net.classes > 0 ? o->meta.net.classes : maxl + 1;
    if (m->net.classes > U3D_MAX_CLASSES)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: label value %d: at most %d classes are "
                          "supported (is the ignore label %d right?)",
                          o->labels_name ? o->labels_name : "the labels",
                          maxl, U3D_MAX_CLASSES, m->ignore_label);
    return u3d_net_config_check(&m->net, err);
}

/* The training setup of o completed from the image and its annotation:
 * classes, class weights, patch, time budget. */
u3d_status u3d_densify_meta(const u3d_densify_opts *o,
                            const u3d_volume *image, const u3d_labels *sparse,
                            u3d_model_meta *m, size_t *annotated,
                            u3d_error *err)
{
    *m = o->meta;
    m->net.in_channels = image->c;
    u3d_status st = densify_classes(o, sparse, m, err);
    if (st)
        return st;
    if (!m->iterations && !(m->minutes > 0))
        m->minutes = 10;
    if (m->iterations)
        m->minutes = 0;
    size_t counts[U3D_MAX_CLASSES] = {0};
    if ((st = u3d_labels_check(sparse, m->net.classes, m->ignore_label,
                               counts, NULL, err)))
        return u3d_errprefix(err, "%s: ", o->labels_name);
    u3d_class_weights_set(o->weights, counts, m->net.classes,
                          m->class_weights);
    *annotated = 0;
    for (int k = 0; k < m->net.classes; k++)
        *annotated += counts[k];
    int vol[3] = {image->d, image->h, image->w};
    if (m->patch[0] && m->patch[1] && m->patch[2])
        return U3D_OK;
    return u3d_densify_patch(&m->net, vol, o->patch_cap, m->patch, err);
}

static void say_training(const u3d_densify_opts *o, const u3d_model_meta *m,
                         size_t annotated)
{
    char cs[200];
    fprintf(stderr, "training %s on %zu annotated voxels (%s), patch %dx%dx%d "
                    "(DxHxW)%s\n",
            u3d_net_config_str(&m->net, cs, sizeof cs), annotated,
            o->labels_name, m->patch[0], m->patch[1], m->patch[2],
            m->iterations ? "" : ", time budget");
}

/* Segments image with net; the annotated voxels keep sparse's labels.
 * probs (may be NULL) receives the softmax. */
static u3d_status densify_predict(u3d_net *net, const u3d_densify_opts *o,
                                  u3d_volume *image, const u3d_labels *sparse,
                                  u3d_labels *dense, u3d_volume *probs,
                                  u3d_error *err)
{
    double t0 = now_s();
    u3d_predict_opts po = {0};
    po.max_memory = o->max_memory;
    po.progress = o->quiet || u3d_dist_rank() ? NULL : progress;
    po.progress_user = &t0;
    u3d_status st = u3d_predict(net, image, &po, dense, probs, NULL, err);
    if (st)
        return st;
    size_t n = (size_t)sparse->d * sparse->h * sparse->w;
    for (size_t i = 0; i < n; i++)
        if (sparse->data[i] != o->meta.ignore_label)
            dense->data[i] = sparse->data[i];
    memcpy(dense->spacing, image->spacing, sizeof dense->spacing);
    memcpy(dense->unit, image->unit, sizeof dense->unit);
    return U3D_OK;
}

/* Holds out o->holdout of the annotated slices; the class weights then
 * come from the slices trained on. */
static u3d_status densify_holdout(const u3d_densify_opts *o,
                                  const u3d_labels *sparse, u3d_model_meta *m,
                                  u3d_holdout *ho, size_t *annotated,
                                  u3d_error *err)
{
    memset(ho, 0, sizeof *ho);
    if (!(o->holdout > 0))
        return U3D_OK;
    U3D_TRY(u3d_holdout_split(sparse, m->ignore_label, o->holdout, m->seed,
                              ho, err));
    if (!ho->nheld)
        return U3D_OK;
    size_t counts[U3D_MAX_CLASSES] = {0};
    U3D_TRY(u3d_labels_check(&ho->train, m->net.classes, m->ignore_label,
                             counts, NULL, err));
    u3d_class_weights_set(o->weights, counts, m->net.classes,
                          m->class_weights);
    *annotated = 0;
    for (int k = 0; k < m->net.classes; k++)
        *annotated += counts[k];
    return U3D_OK;
}

/* "z0012 y0005 ...", cut to fit. */
static void held_names(const u3d_holdout *ho, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < ho->nheld && k + 7 < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%c%04d", i ? " " : "",
                              ho->slices[i].axis, ho->slices[i].index);
}

/* The validation volume: the image with the held-out slices' labels. */
static void densify_val(const u3d_densify_opts *o, const u3d_volume *image,
                        const u3d_holdout *ho, u3d_train_volume *vv,
                        u3d_train_opts *to, u3d_densify_result *r)
{
    vv->image = *image;
    vv->labels = ho->held;
    snprintf(vv->image_path, sizeof vv->image_path, "%s", o->image_name);
    snprintf(vv->labels_path, sizeof vv->labels_path,
             "the held-out slices of %s", o->labels_name);
    to->val = vv;
    to->val_every = o->val_every > 0         ? o->val_every
                    : o->checkpoint_every > 0 ? o->checkpoint_every
                                              : 50;
    to->keep_best = 1;
    to->best = &r->estimate;
    r->held = ho->nheld;
    held_names(ho, r->held_names, sizeof r->held_names);
    if (!o->quiet && u3d_dist_rank() == 0)
        fprintf(stderr, "holding out %d annotated slice(s) for the "
                        "estimate: %s\n", ho->nheld, r->held_names);
}

/* Calibrates the decision on the held-out slices (rank 0, which holds the
 * prediction): new offsets relabel dense from the probabilities (the
 * annotated voxels keep their labels), become the estimate, and go into
 * model_out. */
static u3d_status densify_calibrate(const u3d_densify_opts *o,
                                    u3d_model_meta *m, u3d_net *net,
                                    const u3d_holdout *ho,
                                    const u3d_labels *sparse,
                                    u3d_labels *dense, u3d_densify_result *r,
                                    u3d_error *err)
{
    u3d_calibration *c = &r->calib;
    U3D_TRY(u3d_calibrate_bias(&r->probs, &ho->held, m->ignore_label, c, err));
    c->before.iteration = c->after.iteration = r->estimate.iteration;
    if (!c->changed)
        return U3D_OK;
    u3d_labels relabeled;
    U3D_TRY(u3d_labels_from_probs(&r->probs, c->bias, &relabeled, err));
    size_t n = (size_t)dense->d * dense->h * dense->w;
    for (size_t i = 0; i < n; i++)
        dense->data[i] = sparse->data[i] != o->meta.ignore_label
                             ? sparse->data[i]
                             : relabeled.data[i];
    u3d_labels_free(&relabeled);
    /* the estimate: cross-fitted over the held-out slices (the in-sample
     * after-score flattered BraTS's 4 tumour classes by 0.08), else the
     * in-sample score when fewer than two slices could be scored so */
    u3d_val_score est;
    U3D_TRY(u3d_calibrate_crossfit(&r->probs, &ho->held, m->ignore_label,
                                   ho->slices, ho->nheld, &est, err));
    long it = r->estimate.iteration;
    r->estimate = est.voxels ? est : c->after;
    r->estimate.iteration = it;
    memcpy(m->class_bias, c->bias, sizeof m->class_bias);
    return o->model_out ? u3d_model_save(o->model_out, net, m, 1, err)
                        : U3D_OK;
}

u3d_status u3d_densify(u3d_backend *be, const u3d_densify_opts *o,
                       u3d_volume *image, const u3d_labels *sparse,
                       u3d_labels *dense, u3d_error *err)
{
    u3d_model_meta m;
    u3d_train_volume tv, vv;
    u3d_holdout ho;
    u3d_densify_result res_local, *res = o->result ? o->result : &res_local;
    u3d_net *net = NULL;
    size_t annotated = 0;
    memset(&tv, 0, sizeof tv);
    memset(&vv, 0, sizeof vv);
    memset(res, 0, sizeof *res);
    memset(dense, 0, sizeof *dense);
    u3d_status st = u3d_densify_meta(o, image, sparse, &m, &annotated, err);
    /* normalize as prediction will (the model stores the mode) */
    if (st || (st = u3d_model_normalize_input(image, &m, err)))
        return st;
    if ((st = densify_holdout(o, sparse, &m, &ho, &annotated, err)))
        goto done;
    tv.image = *image;
    tv.labels = ho.nheld ? ho.train : *sparse;
    snprintf(tv.image_path, sizeof tv.image_path, "%s", o->image_name);
    snprintf(tv.labels_path, sizeof tv.labels_path, "%s", o->labels_name);
    if ((st = u3d_net_create(be, &m.net, &net, err)) ||
        (st = u3d_net_init(net, m.seed, err)))
        goto done;
    if (!o->quiet && u3d_dist_rank() == 0)
        say_training(o, &m, annotated);
    u3d_train_opts to = {o->model_out, o->log_path,
                         o->model_out ? o->checkpoint_every : 0, 0, o->quiet,
                         0, stderr, o->sync_bn, .val = NULL};
    if (ho.nheld)
        densify_val(o, image, &ho, &vv, &to, res);
    int calib = o->calibrate && ho.nheld && m.net.classes >= 2;
    if (!(st = u3d_train_run(net, &m, &tv, 1, &to, err)))
        st = densify_predict(net, o, image, sparse, dense,
                             o->want_probs || calib ? &res->probs : NULL,
                             err);
    if (!st && calib && u3d_dist_rank() == 0 && res->estimate.iteration > 0)
        st = densify_calibrate(o, &m, net, &ho, sparse, dense, res, err);
    if (!o->want_probs)
        u3d_volume_free(&res->probs);
done:
    u3d_net_destroy(net);
    u3d_holdout_free(&ho);
    if (st) {
        u3d_labels_free(dense);
        u3d_volume_free(&res->probs);
    }
    return st;
}
