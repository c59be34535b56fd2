/* The validation scorer (train.h): predict the whole image, IoU per class
 * over the annotated voxels only. Shared by train's --val-image and
 * densify's held-out slices; plus the log columns and the host copy of
 * the best parameters the training loop keeps (val_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist/dist.h"
#include "train/val_internal.h"

static void score_from_metrics(const u3d_metrics *mt, int classes,
                               u3d_val_score *s)
{
    double sum = 0;
    int n = 0;
    s->classes = classes;
    for (int c = 0; c < classes; c++) {
        s->iou[c] = c < mt->classes ? mt->iou[c] : NAN;
        if (c > 0 && !isnan(s->iou[c])) {
            sum += s->iou[c];
            n++;
        }
    }
    s->mean_fg = n ? sum / n : NAN;
    s->mean_all = mt->mean_iou;
    s->voxels = mt->voxels;
}

/* Rank 0 (the only process without MPI) holds the prediction. */
static u3d_status score_labels(const u3d_labels *pred,
                               const u3d_train_volume *v, int ignore_label,
                               int classes, u3d_val_score *s, u3d_error *err)
{
    u3d_metrics mt;
    u3d_metrics_opts mo = {ignore_label, NULL, 0, classes, "the prediction",
                           v->labels_path, NULL};
    memset(&mt, 0, sizeof mt);
    U3D_TRY(u3d_metrics_compute(pred, &v->labels, &mo, &mt, err));
    score_from_metrics(&mt, classes, s);
    u3d_metrics_free(&mt);
    return U3D_OK;
}

u3d_status u3d_validate(u3d_net *net, const u3d_train_volume *v,
                        int ignore_label, size_t max_memory, u3d_val_score *s,
                        u3d_error *err)
{
    u3d_labels pred;
    u3d_predict_opts po = {0};
    po.max_memory = max_memory;
    memset(&pred, 0, sizeof pred);
    memset(s, 0, sizeof *s);
    int classes = u3d_net_get_config(net)->classes;
    u3d_status st = u3d_predict(net, &v->image, &po, &pred, NULL, NULL, err);
    if (!st && u3d_dist_rank() == 0)
        st = score_labels(&pred, v, ignore_label, classes, s, err);
    u3d_labels_free(&pred);
    if (u3d_dist_active()) { /* every rank decides on rank 0's score */
        st = u3d_dist_agree(st, err);
        if (!st)
            st = u3d_dist_bcast(s, sizeof *s, 0, err);
    }
    return st;
}

double u3d_val_key(const u3d_val_score *s)
{
    if (!s || s->iteration <= 0)
        return -1;
    if (!isnan(s->mean_fg))
        return s->mean_fg;
    return isnan(s->mean_all) ? -1 : s->mean_all;
}

u3d_status u3d_val_check(const u3d_net_config *c, const u3d_train_volume *v,
                         int ignore_label, u3d_error *err)
{
    const u3d_labels *l = &v->labels;
    int min[3];
    for (int a = 0; a < 3; a++)
        min[a] = u3d_predict_min_size_axis(c, a);
    if (v->image.c != c->in_channels)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s has %d channel(s), the network takes %d",
                          v->image_path, v->image.c, c->in_channels);
    if (l->d < min[0] || l->h < min[1] || l->w < min[2])
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s is %dx%dx%d (DxHxW): validation predicts it "
                          "whole, which needs at least %dx%dx%d voxels",
                          v->image_path, l->d, l->h, l->w, min[0], min[1],
                          min[2]);
    size_t n = (size_t)l->d * l->h * l->w;
    for (size_t i = 0; i < n; i++)
        if (l->data[i] != ignore_label)
            return U3D_OK;
    return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                      "%s: no annotated voxel to validate on (every voxel "
                      "has the ignore label %d)",
                      v->labels_path, ignore_label);
}

void u3d_val_csv_header(int classes, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, ",val_mean_fg_iou");
    for (int c = 0; c < classes && k < n; c++)
        k += (size_t)snprintf(buf + k, n - k, ",val_iou_%d", c);
}

/* NaN (no IoU): an empty field. */
static size_t put(char *buf, size_t n, double v)
{
    return (size_t)(isnan(v) ? snprintf(buf, n, ",")
                             : snprintf(buf, n, ",%.6f", v));
}

void u3d_val_csv_fields(const u3d_val_score *s, int classes, char *buf,
                        size_t n)
{
    size_t k = put(buf, n, s ? s->mean_fg : NAN);
    for (int c = 0; c < classes && k < n; c++)
        k += put(buf + k, n - k, s ? s->iou[c] : NAN);
}

/* The field after the next comma: NaN when empty or missing. */
static double field(const char **p)
{
    const char *q = strchr(*p, ',');
    if (!q) {
        *p += strlen(*p);
        return NAN;
    }
    char *end;
    double v = strtod(q + 1, &end);
    *p = q + 1;
    return end == q + 1 ? NAN : v;
}

int u3d_val_csv_parse(const char *row, int classes, long iteration,
                      u3d_val_score *s)
{
    const char *p = row;
    int any = 0;
    memset(s, 0, sizeof *s);
    for (int skip = 0; skip < 2; skip++) /* loss, seconds */
        field(&p);
    s->mean_fg = field(&p);
    double sum = 0;
    int n = 0;
    for (int c = 0; c < classes; c++) {
        s->iou[c] = field(&p);
        if (!isnan(s->iou[c])) {
            sum += s->iou[c];
            n++;
            any = 1;
        }
    }
    s->classes = classes;
    s->mean_all = n ? sum / n : NAN;
    s->iteration = any ? iteration : 0;
    return any;
}

/* Visits every parameter value and batch-norm statistic. */
static u3d_status each_state(u3d_net *net, float *h, size_t *n, int write,
                             u3d_error *err)
{
    size_t off = 0;
    int np = u3d_net_num_params(net), nb = u3d_net_num_buffers(net);
    for (int i = 0; i < np + nb; i++) {
        u3d_tensor *t = i < np ? &u3d_net_param(net, i)->value
                               : &u3d_net_buffer(net, i - np)->value;
        if (!t->buf)
            continue;
        if (h && write)
            U3D_TRY(u3d_tensor_write(t, h + off, err));
        else if (h)
            U3D_TRY(u3d_tensor_read(t, h + off, err));
        off += u3d_shape_count(t->shape);
    }
    *n = off;
    return U3D_OK;
}

u3d_status u3d_net_snapshot_take(u3d_net *net, u3d_net_snapshot *s,
                                 u3d_error *err)
{
    size_t n;
    U3D_TRY(each_state(net, NULL, &n, 0, err));
    if (!s->h || s->n != n) {
        free(s->h);
        s->h = malloc(n * sizeof *s->h);
        s->n = s->h ? n : 0;
        if (!s->h)
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    return each_state(net, s->h, &n, 0, err);
}

u3d_status u3d_net_snapshot_restore(u3d_net *net, const u3d_net_snapshot *s,
                                    u3d_error *err)
{
    size_t n;
    U3D_TRY(each_state(net, NULL, &n, 0, err));
    if (!s->h || n != s->n)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "no saved parameters of this network");
    return each_state(net, s->h, &n, 1, err);
}

void u3d_net_snapshot_free(u3d_net_snapshot *s)
{
    free(s->h);
    s->h = NULL;
    s->n = 0;
}
