/* Decision calibration on held-out annotated voxels (train.h): per-class
 * logit offsets that maximize their mean foreground IoU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/train.h"

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

/* Mean foreground IoU of the held-out voxels under offsets b (classes
 * absent from labels and decision do not count, as u3d_validate): of all
 * of them with s (the report), else of the search's stride. */
static double score(const held *h, const float *b, u3d_val_score *s)
{
    size_t tp[U3D_MAX_CLASSES] = {0}, fp[U3D_MAX_CLASSES] = {0},
           fn[U3D_MAX_CLASSES] = {0};
    int K = h->k;
    size_t step = s ? 1 : h->step;
    for (size_t i = 0; i < h->n; i += step) {
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
        s->voxels = h->n;
    }
    return n ? fg : na ? all / na : -1; /* as u3d_val_key */
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

u3d_status u3d_calibrate_bias(const u3d_volume *probs,
                              const u3d_labels *labels, int ignore_label,
                              u3d_calibration *c, u3d_error *err)
{
    memset(c, 0, sizeof *c);
    if (!probs || !labels || probs->d != labels->d || probs->h != labels->h ||
        probs->w != labels->w || probs->c < 2 || probs->c > U3D_MAX_CLASSES)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "calibration: probabilities and labels differ in "
                          "size, or fewer than 2 classes");
    held h = {0};
    u3d_status st = gather(probs, labels, ignore_label, &h, err);
    if (st) {
        free(h.lp);
        free(h.y);
        return st;
    }
    float b[U3D_MAX_CLASSES] = {0};
    double base_all = score(&h, b, &c->before);
    double base = score(&h, b, NULL), cur = base;
    if (h.n && h.k <= 3)
        cur = grid(&h, b, base);
    else if (h.n)
        cur = ascend(&h, b, base);
    /* the gain is judged on every held-out voxel */
    u3d_val_score all;
    if (cur > base &&
        score(&h, b, &all) >= base_all + U3D_CALIB_MIN_GAIN) {
        memcpy(c->bias, b, sizeof b);
        c->changed = 1;
    }
    score(&h, c->bias, &c->after);
    free(h.lp);
    free(h.y);
    return U3D_OK;
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
