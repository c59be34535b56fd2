/* Decision calibration on held-out annotated voxels (train.h): per-class
 * logit offsets that maximize their mean foreground IoU; densify's on its
 * volume's probabilities, train's pooled over several volumes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dist/dist.h"
#include "unet3d/predict.h"
#include "unet3d/train.h"
#include "unet3d/suggest.h"

typedef struct held {
    float *lp;     /* n x K log-probabilities */
    uint8_t *y;    /* n labels */
    size_t n;
    size_t step;   /* the search scores every step-th voxel */
    int k;
} held;

/* The search looks at this many held-out voxels at most (evenly strided):
 * a grid of 33^2 decisions over a million voxels would take seconds. */
#define SEARCH_VOXELS 262144

/* The annotated voxels of labels with their log-probabilities. */
static u3d_status gather(const u3d_volume *probs, const u3d_labels *labels,
                         int ignore_label, held *h, u3d_error *err)
{
    size_t vox = (size_t)labels->d * labels->h * labels->w, n = 0;
    for (size_t i = 0; i < vox; i++)
        n += labels->data[i] != ignore_label;
    h->k = probs->c;
    h->n = n;
    h->step = n > SEARCH_VOXELS ? (n + SEARCH_VOXELS - 1) / SEARCH_VOXELS : 1;
    h->lp = malloc((n ? n : 1) * (size_t)h->k * sizeof *h->lp);
    h->y = malloc(n ? n : 1);
    if (!h->lp || !h->y)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    size_t j = 0;
    for (size_t i = 0; i < vox; i++) {
        int l = labels->data[i];
        if (l == ignore_label)
            continue;
        if (l >= h->k)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "calibration: label %d >= %d classes", l, h->k);
        h->y[j] = (uint8_t)l;
        for (int c = 0; c < h->k; c++) {
            float p = probs->data[(size_t)c * vox + i];
            h->lp[j * (size_t)h->k + (size_t)c] = logf(p > 1e-30f ? p : 1e-30f);
        }
        j++;
    }
    return U3D_OK;
}

/* Confusion counts of h's voxels under offsets b: every step-th, or with
 * fold (may be NULL) those of fold f only. */
static void count(const held *h, const float *b, size_t step, const int *fold,
                  int f, size_t *tp, size_t *fp, size_t *fn)
{
    int K = h->k;
    for (size_t i = 0; i < h->n; i += step) {
        if (fold && fold[i] != f)
            continue;
        const float *l = h->lp + i * (size_t)K;
        int best = 0;
        float mx = l[0] + b[0];
        for (int c = 1; c < K; c++)
            if (l[c] + b[c] > mx)
                mx = l[c] + b[c], best = c;
        if (best == h->y[i])
            tp[best]++;
        else
            fp[best]++, fn[h->y[i]]++;
    }
}

/* Mean foreground IoU from the counts (classes absent from labels and
 * decision do not count, as u3d_validate), filling s when given. */
static double finish(int K, const size_t *tp, const size_t *fp,
                     const size_t *fn, size_t voxels, u3d_val_score *s)
{
    double sum = 0, all = 0;
    int n = 0, na = 0;
    for (int c = 0; c < K; c++) {
        size_t u = tp[c] + fp[c] + fn[c];
        double iou = u ? (double)tp[c] / (double)u : NAN;
        if (s)
            s->iou[c] = iou;
        if (!u)
            continue;
        all += iou, na++;
        if (c > 0)
            sum += iou, n++;
    }
    double fg = n ? sum / n : NAN;
    if (s) {
        s->classes = K;
        s->mean_fg = fg;
        s->mean_all = na ? all / na : NAN;
        s->voxels = voxels;
    }
    return n ? fg : na ? all / na : -1; /* as u3d_val_key */
}

/* Mean foreground IoU of the held-out voxels under offsets b: of all of
 * them with s (the report), else of the search's stride. */
static double score(const held *h, const float *b, u3d_val_score *s)
{
    size_t tp[U3D_MAX_CLASSES] = {0}, fp[U3D_MAX_CLASSES] = {0},
           fn[U3D_MAX_CLASSES] = {0};
    count(h, b, s ? 1 : h->step, NULL, 0, tp, fp, fn);
    return finish(h->k, tp, fp, fn, h->n, s);
}

/* Offset i of the grid, nearest 0 first (0, +s, -s, +2s, ...): a tie
 * keeps the smaller offset; NAN past the end. */
static float grid_value(int i)
{
    int off = (i + 1) / 2 * (i % 2 ? 1 : -1);
    float v = (float)off * U3D_CALIB_STEP;
    return v < U3D_CALIB_MIN || v > U3D_CALIB_MAX ? NAN : v;
}

static int grid_size(void)
{
    return 2 * (int)lroundf(U3D_CALIB_MAX / U3D_CALIB_STEP) + 1;
}

/* Two or three classes: every offset (pair) of the grid. */
static double grid(const held *h, float *b, double cur)
{
    int n = grid_size(), n2 = h->k == 3 ? n : 1;
    float best[2] = {0, 0};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n2; j++) {
            b[1] = grid_value(i);
            if (h->k == 3)
                b[2] = grid_value(j);
            if (isnan(b[1]) || (h->k == 3 && isnan(b[2])))
                continue;
            double sc = score(h, b, NULL);
            if (sc > cur)
                cur = sc, best[0] = b[1], best[1] = b[2];
        }
    b[1] = best[0];
    b[2] = h->k == 3 ? best[1] : 0.0f;
    return cur;
}

/* More classes: coordinate ascent over classes 1..K-1. */
static double ascend(const held *h, float *b, double cur)
{
    for (int sweep = 0; sweep < U3D_CALIB_SWEEPS; sweep++) {
        int moved = 0;
        for (int k = 1; k < h->k; k++) {
            float keep = b[k], best = keep;
            for (int i = 0; i < grid_size(); i++) {
                b[k] = grid_value(i);
                if (isnan(b[k]))
                    continue;
                double sc = score(h, b, NULL);
                if (sc > cur)
                    cur = sc, best = b[k];
            }
            b[k] = best;
            moved |= best != keep;
        }
        if (!moved)
            break;
    }
    return cur;
}

/* The offsets the search keeps for h in out: zeros unless they raise the
 * IoU of all of h's voxels by U3D_CALIB_MIN_GAIN (returns 1 then). */
static int choose_bias(const held *h, float *out)
{
    float b[U3D_MAX_CLASSES] = {0};
    u3d_val_score all;
    memset(out, 0, sizeof(float) * U3D_MAX_CLASSES);
    double base_all = score(h, b, &all);
    double base = score(h, b, NULL), cur = base;
    if (h->n && h->k <= 3)
        cur = grid(h, b, base);
    else if (h->n)
        cur = ascend(h, b, base);
    /* the gain is judged on every held-out voxel */
    if (cur > base && score(h, b, &all) >= base_all + U3D_CALIB_MIN_GAIN) {
        memcpy(out, b, sizeof b);
        return 1;
    }
    return 0;
}

static u3d_status check_inputs(const u3d_volume *probs,
                               const u3d_labels *labels, u3d_error *err)
{
    if (!probs || !labels || probs->d != labels->d || probs->h != labels->h ||
        probs->w != labels->w || probs->c < 2 || probs->c > U3D_MAX_CLASSES)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "calibration: probabilities and labels differ in "
                          "size, or fewer than 2 classes");
    return U3D_OK;
}

u3d_status u3d_calibrate_bias(const u3d_volume *probs,
                              const u3d_labels *labels, int ignore_label,
                              u3d_calibration *c, u3d_error *err)
{
    memset(c, 0, sizeof *c);
    U3D_TRY(check_inputs(probs, labels, err));
    held h = {0};
    u3d_status st = gather(probs, labels, ignore_label, &h, err);
    if (!st) {
        float zero[U3D_MAX_CLASSES] = {0};
        score(&h, zero, &c->before);
        c->changed = choose_bias(&h, c->bias);
        score(&h, c->bias, &c->after);
    }
    free(h.lp);
    free(h.y);
    return st;
}

/* The first of the slices through voxel i of labels (D,H,W), else -1. */
static int fold_of(const u3d_labels *l, size_t i, const u3d_slice_score *sl,
                   int ns)
{
    size_t hw = (size_t)l->h * l->w;
    int z = (int)(i / hw), y = (int)(i % hw / (size_t)l->w),
        x = (int)(i % (size_t)l->w);
    for (int f = 0; f < ns; f++)
        if ((sl[f].axis == 'z' && sl[f].index == z) ||
            (sl[f].axis == 'y' && sl[f].index == y) ||
            (sl[f].axis == 'x' && sl[f].index == x))
            return f;
    return -1;
}

/* h without the voxels of fold f (hs's arrays allocated). */
static u3d_status subset(const held *h, const int *fold, int f, held *hs,
                         u3d_error *err)
{
    memset(hs, 0, sizeof *hs);
    hs->k = h->k;
    hs->lp = malloc((h->n ? h->n : 1) * (size_t)h->k * sizeof *hs->lp);
    hs->y = malloc(h->n ? h->n : 1);
    if (!hs->lp || !hs->y)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (size_t i = 0; i < h->n; i++) {
        if (fold[i] == f)
            continue;
        memcpy(hs->lp + hs->n * (size_t)h->k, h->lp + i * (size_t)h->k,
               (size_t)h->k * sizeof *hs->lp);
        hs->y[hs->n++] = h->y[i];
    }
    hs->step = hs->n > SEARCH_VOXELS
                   ? (hs->n + SEARCH_VOXELS - 1) / SEARCH_VOXELS
                   : 1;
    return U3D_OK;
}

/* The cross-fitted score of h's voxels in folds 0..nfolds-1 (fold[i] < 0:
 * in no fold, only ever tuned on): each fold decided by the offsets
 * chosen on the other voxels, the counts pooled; est->voxels 0 when fewer
 * than two folds could be scored so. */
static u3d_status crossfit_held(const held *h, const int *fold, int nfolds,
                                u3d_val_score *est, u3d_error *err)
{
    size_t tp[U3D_MAX_CLASSES] = {0}, fp[U3D_MAX_CLASSES] = {0},
           fn[U3D_MAX_CLASSES] = {0}, scored = 0;
    int folds = 0;
    u3d_status st = U3D_OK;
    memset(est, 0, sizeof *est);
    for (int f = 0; !st && f < nfolds; f++) {
        size_t in_f = 0;
        for (size_t i = 0; i < h->n; i++)
            in_f += fold[i] == f;
        if (!in_f || in_f == h->n)
            continue;
        held hs;
        float b[U3D_MAX_CLASSES];
        st = subset(h, fold, f, &hs, err);
        if (!st) {
            choose_bias(&hs, b);
            count(h, b, 1, fold, f, tp, fp, fn);
            scored += in_f;
            folds++;
        }
        free(hs.lp);
        free(hs.y);
    }
    if (!st && folds >= 2)
        finish(h->k, tp, fp, fn, scored, est);
    return st;
}

u3d_status u3d_calibrate_crossfit(const u3d_volume *probs,
                                  const u3d_labels *labels, int ignore_label,
                                  const u3d_slice_score *slices, int nslices,
                                  u3d_val_score *est, u3d_error *err)
{
    memset(est, 0, sizeof *est);
    U3D_TRY(check_inputs(probs, labels, err));
    held h = {0};
    int *fold = NULL;
    u3d_status st = gather(probs, labels, ignore_label, &h, err);
    if (!st && !(fold = malloc((h.n ? h.n : 1) * sizeof *fold)))
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    if (!st) { /* gather's order: the annotated voxels in index order */
        size_t vox = (size_t)labels->d * labels->h * labels->w, j = 0;
        for (size_t i = 0; i < vox; i++)
            if (labels->data[i] != ignore_label)
                fold[j++] = fold_of(labels, i, slices, nslices);
        st = crossfit_held(&h, fold, nslices, est, err);
    }
    free(fold);
    free(h.lp);
    free(h.y);
    return st;
}

u3d_status u3d_labels_from_probs(const u3d_volume *probs, const float *bias,
                                 u3d_labels *out, u3d_error *err)
{
    U3D_TRY(u3d_labels_alloc(probs->d, probs->h, probs->w, out, err));
    memcpy(out->spacing, probs->spacing, sizeof out->spacing);
    memcpy(out->unit, probs->unit, sizeof out->unit);
    size_t vox = (size_t)probs->d * probs->h * probs->w;
    for (size_t i = 0; i < vox; i++) {
        int best = 0;
        float mx = -INFINITY;
        for (int c = 0; c < probs->c; c++) {
            float p = probs->data[(size_t)c * vox + i];
            float v = logf(p > 1e-30f ? p : 1e-30f) + (bias ? bias[c] : 0.0f);
            if (v > mx)
                mx = v, best = c;
        }
        out->data[i] = (uint16_t)best;
    }
    return U3D_OK;
}

/* The pool of held-out voxels over the volumes, with each voxel's fold
 * (its held-out slice, numbered over all volumes; -1: none given). */
typedef struct pool {
    u3d_volume probs; /* C x 1 x 1 x n */
    u3d_labels labels;
    int *fold;
    int nfolds;
} pool;

/* The annotated voxels of labels appended to the pool at *j; their folds
 * from the volume's ns slices (numbered from p->nfolds). */
static void pool_append(const u3d_volume *probs, const u3d_labels *labels,
                        int ignore_label, const u3d_slice_score *sl, int ns,
                        pool *p, size_t *j)
{
    size_t vox = (size_t)labels->d * labels->h * labels->w;
    size_t n = (size_t)p->probs.w;
    u3d_volume *po = &p->probs;
    for (size_t i = 0; i < vox; i++) {
        if (labels->data[i] == ignore_label)
            continue;
        int f = sl ? fold_of(labels, i, sl, ns) : -1;
        p->fold[*j] = f < 0 ? -1 : p->nfolds + f;
        p->labels.data[*j] = labels->data[i];
        for (int c = 0; c < probs->c; c++)
            po->data[(size_t)c * n + *j] = probs->data[(size_t)c * vox + i];
        (*j)++;
    }
}

static size_t annotated(const u3d_labels *l, int ignore_label)
{
    size_t vox = (size_t)l->d * l->h * l->w, n = 0;
    for (size_t i = 0; i < vox; i++)
        n += l->data[i] != ignore_label;
    return n;
}

/* Predicts every image with annotated voxels and pools those voxels'
 * probabilities (rank 0, which receives the predictions). */
static u3d_status pool_predictions(u3d_net *net, const u3d_calib_set *set,
                                   int n, int ignore_label, size_t max_memory,
                                   pool *p, u3d_error *err)
{
    size_t total = 0, j = 0;
    for (int v = 0; v < n; v++)
        total += annotated(set[v].labels, ignore_label);
    if (!total)
        return U3D_OK;
    int classes = u3d_net_get_config(net)->classes;
    if (total > (size_t)INT32_MAX)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "calibration: %zu held-out voxels are too many",
                          total);
    U3D_TRY(u3d_volume_alloc(classes, 1, 1, (int)total, &p->probs, err));
    U3D_TRY(u3d_labels_alloc(1, 1, (int)total, &p->labels, err));
    if (!(p->fold = malloc(total * sizeof *p->fold)))
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_predict_opts o = {0};
    o.max_memory = max_memory;
    for (int v = 0; v < n; v++) {
        const u3d_labels *lab = set[v].labels;
        if (!annotated(lab, ignore_label))
            continue; /* nothing held out there: not predicted */
        u3d_labels seg;
        u3d_volume probs;
        memset(&seg, 0, sizeof seg);
        memset(&probs, 0, sizeof probs);
        u3d_status st = u3d_predict(net, set[v].image, &o, &seg, &probs,
                                    NULL, err);
        if (!st && u3d_dist_rank() == 0)
            pool_append(&probs, lab, ignore_label, set[v].slices,
                        set[v].nslices, p, &j);
        p->nfolds += set[v].slices ? set[v].nslices : 0;
        u3d_labels_free(&seg);
        u3d_volume_free(&probs);
        if (st)
            return st;
    }
    return U3D_OK;
}

/* The cross-fitted score of the pool (est->voxels 0: not computed). */
static u3d_status pool_crossfit(const pool *p, int ignore_label,
                                u3d_val_score *est, u3d_error *err)
{
    held h = {0};
    u3d_status st = gather(&p->probs, &p->labels, ignore_label, &h, err);
    if (!st) /* gather keeps the pool's order: every voxel is annotated */
        st = crossfit_held(&h, p->fold, p->nfolds, est, err);
    free(h.lp);
    free(h.y);
    return st;
}

u3d_status u3d_calibrate_net(u3d_net *net, const u3d_calib_set *set, int n,
                             int ignore_label, size_t max_memory,
                             u3d_calibration *c, u3d_val_score *est,
                             u3d_error *err)
{
    pool p;
    memset(c, 0, sizeof *c);
    memset(&p, 0, sizeof p);
    if (est)
        memset(est, 0, sizeof *est);
    u3d_status st = pool_predictions(net, set, n, ignore_label, max_memory,
                                     &p, err);
    if (!st && p.probs.data && u3d_dist_rank() == 0)
        st = u3d_calibrate_bias(&p.probs, &p.labels, ignore_label, c, err);
    if (!st && est && p.probs.data && u3d_dist_rank() == 0)
        st = pool_crossfit(&p, ignore_label, est, err);
    u3d_volume_free(&p.probs);
    u3d_labels_free(&p.labels);
    free(p.fold);
    if (u3d_dist_active()) { /* every rank keeps rank 0's decision */
        st = u3d_dist_agree(st, err);
        if (!st)
            st = u3d_dist_bcast(c, sizeof *c, 0, err);
        if (!st && est)
            st = u3d_dist_bcast(est, sizeof *est, 0, err);
    }
    return st;
}
