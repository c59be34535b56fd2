/* Segmentation metrics: per-class IoU and Dice over the scored voxels
 * (see include/unet3d/predict.h for the protocol), as a table or JSON. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/predict.h"

static u3d_status check_shapes(const u3d_labels *a, const char *an,
                               const u3d_labels *b, const char *bn,
                               u3d_error *err)
{
    if (a->d == b->d && a->h == b->h && a->w == b->w)
        return U3D_OK;
    return u3d_seterr(err, U3D_ERR_SHAPE,
                      "%s is %dx%dx%d (D x H x W) but %s is %dx%dx%d: "
                      "they must cover the same voxels",
                      an, a->d, a->h, a->w, bn, b->d, b->h, b->w);
}

static u3d_status check_args(const u3d_labels *pred, const u3d_labels *truth,
                             const u3d_metrics_opts *o, u3d_error *err)
{
    const char *pn = o->pred_name ? o->pred_name : "the prediction";
    const char *tn = o->truth_name ? o->truth_name : "the truth";
    const char *en = o->exclude_name ? o->exclude_name : "the exclude volume";
    if (!pred || !pred->data || !truth || !truth->data)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "metrics: empty labels");
    u3d_status st = check_shapes(pred, pn, truth, tn, err);
    if (!st && o->exclude) {
        if (!o->exclude->data)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "metrics: empty exclude volume");
        st = check_shapes(o->exclude, en, truth, tn, err);
    }
    return st;
}

/* 1 when voxel i is scored; counts what is left out. */
static int scored(const u3d_labels *truth, const u3d_metrics_opts *o,
                  size_t i, u3d_metrics *m)
{
    if (o->exclude && (int)o->exclude->data[i] != o->exclude_ignore) {
        m->excluded++;
        return 0;
    }
    if (o->ignore_label != U3D_NO_IGNORE &&
        (int)truth->data[i] == o->ignore_label) {
        m->ignored++;
        return 0;
    }
    return 1;
}

static u3d_status alloc_classes(u3d_metrics *m, int k, u3d_error *err)
{
    m->classes = k;
    m->tp = calloc((size_t)k, sizeof *m->tp);
    m->fp = calloc((size_t)k, sizeof *m->fp);
    m->fn = calloc((size_t)k, sizeof *m->fn);
    m->iou = calloc((size_t)k, sizeof *m->iou);
    m->dice = calloc((size_t)k, sizeof *m->dice);
    if (!m->tp || !m->fp || !m->fn || !m->iou || !m->dice) {
        u3d_metrics_free(m);
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    return U3D_OK;
}

static void finish(u3d_metrics *m)
{
    double si = 0, sd = 0;
    m->present = 0;
    for (int c = 0; c < m->classes; c++) {
        double tp = (double)m->tp[c], fp = (double)m->fp[c],
               fn = (double)m->fn[c];
        if (tp + fp + fn == 0) {
            m->iou[c] = m->dice[c] = NAN;
            continue;
        }
        m->iou[c] = tp / (tp + fp + fn);
        m->dice[c] = 2 * tp / (2 * tp + fp + fn);
        si += m->iou[c];
        sd += m->dice[c];
        m->present++;
    }
    m->mean_iou = m->present ? si / m->present : NAN;
    m->mean_dice = m->present ? sd / m->present : NAN;
}

u3d_status u3d_metrics_compute(const u3d_labels *pred,
                               const u3d_labels *truth,
                               const u3d_metrics_opts *opts, u3d_metrics *m,
                               u3d_error *err)
{
    u3d_metrics_opts o0 = {U3D_NO_IGNORE, NULL, 0, 0, NULL, NULL, NULL};
    const u3d_metrics_opts *o = opts ? opts : &o0;
    memset(m, 0, sizeof *m);
    u3d_status st = check_args(pred, truth, o, err);
    if (st)
        return st;
    size_t n = (size_t)truth->d * truth->h * truth->w;
    int k = o->classes > 0 ? o->classes : 0;
    u3d_metrics cnt = {0};
    for (size_t i = 0; i < n; i++)
        if (scored(truth, o, i, &cnt)) {
            if (pred->data[i] >= k)
                k = pred->data[i] + 1;
            if (truth->data[i] >= k)
                k = truth->data[i] + 1;
        }
    if (k < 1)
        k = 1;
    st = alloc_classes(m, k, err);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++) {
        if (!scored(truth, o, i, m))
            continue;
        int p = pred->data[i], t = truth->data[i];
        m->voxels++;
        if (p == t) {
            m->tp[t]++;
        } else {
            m->fp[p]++;
            m->fn[t]++;
        }
    }
    finish(m);
    return U3D_OK;
}

void u3d_metrics_free(u3d_metrics *m)
{
    free(m->tp);
    free(m->fp);
    free(m->fn);
    free(m->iou);
    free(m->dice);
    memset(m, 0, sizeof *m);
}

/* Name of class c from a comma-separated list, else its number. */
static const char *class_name(const char *names, int c, char *buf, size_t len)
{
    snprintf(buf, len, "%d", c);
    for (int i = 0; names && *names; i++) {
        const char *e = strchr(names, ',');
        size_t l = e ? (size_t)(e - names) : strlen(names);
        if (i == c && l) {
            snprintf(buf, len, "%d %.*s", c, (int)l, names);
            break;
        }
        if (!e)
            break;
        names = e + 1;
    }
    return buf;
}

static void num(FILE *f, double v)
{
    if (isnan(v))
        fprintf(f, "%8s", "-");
    else
        fprintf(f, "%8.4f", v);
}

void u3d_metrics_print(FILE *f, const u3d_metrics *m, const char *names)
{
    fprintf(f, "%-20s %8s %8s %12s %12s %12s\n", "class", "IoU", "Dice", "TP",
            "FP", "FN");
    for (int c = 0; c < m->classes; c++) {
        char nb[64];
        fprintf(f, "%-20s ", class_name(names, c, nb, sizeof nb));
        num(f, m->iou[c]);
        fprintf(f, " ");
        num(f, m->dice[c]);
        fprintf(f, " %12llu %12llu %12llu\n", (unsigned long long)m->tp[c],
                (unsigned long long)m->fp[c], (unsigned long long)m->fn[c]);
    }
    fprintf(f, "%-20s ", "mean");
    num(f, m->mean_iou);
    fprintf(f, " ");
    num(f, m->mean_dice);
    fprintf(f, "   (over the %d class%s present in truth or prediction)\n",
            m->present, m->present == 1 ? "" : "es");
    fprintf(f, "scored voxels %zu, excluded (annotated) %zu, ignored %zu\n",
            m->voxels, m->excluded, m->ignored);
}

static void jnum(FILE *f, double v)
{
    if (isnan(v))
        fprintf(f, "null");
    else
        fprintf(f, "%.6f", v);
}

static void jlist_d(FILE *f, const char *key, const double *v, int n)
{
    fprintf(f, "  \"%s\": [", key);
    for (int i = 0; i < n; i++) {
        fprintf(f, i ? ", " : "");
        jnum(f, v[i]);
    }
    fprintf(f, "],\n");
}

static void jlist_u(FILE *f, const char *key, const uint64_t *v, int n)
{
    fprintf(f, "  \"%s\": [", key);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)v[i]);
    fprintf(f, "],\n");
}

void u3d_metrics_print_json(FILE *f, const u3d_metrics *m)
{
    fprintf(f, "{\n");
    jlist_d(f, "iou", m->iou, m->classes);
    fprintf(f, "  \"mean_iou\": ");
    jnum(f, m->mean_iou);
    fprintf(f, ",\n");
    jlist_d(f, "dice", m->dice, m->classes);
    fprintf(f, "  \"mean_dice\": ");
    jnum(f, m->mean_dice);
    fprintf(f, ",\n");
    jlist_u(f, "tp", m->tp, m->classes);
    jlist_u(f, "fp", m->fp, m->classes);
    jlist_u(f, "fn", m->fn, m->classes);
    fprintf(f, "  \"classes\": %d,\n  \"present\": %d,\n", m->classes,
            m->present);
    fprintf(f, "  \"voxels\": %zu,\n  \"excluded\": %zu,\n  \"ignored\": %zu\n}\n",
            m->voxels, m->excluded, m->ignored);
}
