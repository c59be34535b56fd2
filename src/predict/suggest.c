/* Slices worth annotating next (suggest.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/suggest.h"

void u3d_suggest_opts_default(u3d_suggest_opts *o)
{
    o->count = 8;
    o->ignore_label = 255;
    o->fg_weight = 1.0;
    o->spread = 2.0;
}

/* Per axis: slice sums of the voxels' uncertainty and annotated counts. */
typedef struct axis_acc {
    int n;              /* slices */
    size_t per;         /* voxels per slice */
    double *u;          /* summed uncertainty of unannotated voxels */
    size_t *annotated;  /* annotated voxels */
} axis_acc;

/* Normalized entropy of voxel i, weighted towards foreground. */
static double uncertainty(const u3d_volume *p, size_t i, size_t vox,
                          double fg_weight)
{
    double h = 0;
    for (int c = 0; c < p->c; c++) {
        double q = p->data[(size_t)c * vox + i];
        if (q > 0)
            h -= q * log(q);
    }
    double p0 = p->data[i];
    return h / log((double)p->c) * (1.0 + fg_weight * (1.0 - p0));
}

static void accumulate(const u3d_volume *p, const u3d_labels *s,
                       const u3d_suggest_opts *o, axis_acc ax[3])
{
    size_t hw = (size_t)s->h * s->w, vox = hw * s->d;
    for (int z = 0; z < s->d; z++)
        for (int y = 0; y < s->h; y++)
            for (int x = 0; x < s->w; x++) {
                size_t i = z * hw + (size_t)y * s->w + x;
                const int at[3] = {z, y, x};
                if (s->data[i] != o->ignore_label) {
                    for (int a = 0; a < 3; a++)
                        ax[a].annotated[at[a]]++;
                    continue;
                }
                double u = uncertainty(p, i, vox, o->fg_weight);
                for (int a = 0; a < 3; a++)
                    ax[a].u[at[a]] += u;
            }
}

/* Lowers the slices of axis a near slice k (the same factor as for the
 * annotated slices). */
static void damp(double *score, int n, int k, double spread)
{
    for (int j = 0; j < n; j++) {
        double d = j - k;
        score[j] *= 1.0 - exp(-d * d / (2.0 * spread * spread));
    }
}

u3d_status u3d_suggest_slices(const u3d_volume *probs,
                              const u3d_labels *sparse,
                              const u3d_suggest_opts *o, u3d_slice_score *out,
                              int *n, u3d_error *err)
{
    *n = 0;
    if (probs->d != sparse->d || probs->h != sparse->h ||
        probs->w != sparse->w || probs->c < 2)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "suggest: probabilities (%d classes) and labels "
                          "must cover the same volume", probs->c);
    if (o->count < 1 || !(o->spread > 0) || !(o->fg_weight >= 0))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "suggest: count >= 1, spread > 0, fg_weight >= 0");
    const int len[3] = {sparse->d, sparse->h, sparse->w};
    const size_t all = (size_t)len[0] * len[1] * len[2];
    axis_acc ax[3];
    double *score[3] = {NULL, NULL, NULL};
    u3d_status st = U3D_OK;
    memset(ax, 0, sizeof ax);
    for (int a = 0; a < 3; a++) {
        ax[a].n = len[a];
        ax[a].per = all / (size_t)len[a];
        ax[a].u = calloc((size_t)len[a], sizeof *ax[a].u);
        ax[a].annotated = calloc((size_t)len[a], sizeof *ax[a].annotated);
        score[a] = calloc((size_t)len[a], sizeof *score[a]);
        if (!ax[a].u || !ax[a].annotated || !score[a])
            st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    if (!st) {
        accumulate(probs, sparse, o, ax);
        for (int a = 0; a < 3; a++) {
            for (int k = 0; k < len[a]; k++)
                score[a][k] = ax[a].u[k] / (double)ax[a].per;
            for (int k = 0; k < len[a]; k++)
                if (2 * ax[a].annotated[k] > ax[a].per)
                    damp(score[a], len[a], k, o->spread);
        }
        /* greedy: the best slice, then its neighbours count less */
        while (*n < o->count) {
            int ba = -1, bk = -1;
            for (int a = 0; a < 3; a++)
                for (int k = 0; k < len[a]; k++)
                    if (score[a][k] > 0 &&
                        (ba < 0 || score[a][k] > score[ba][bk]))
                        ba = a, bk = k;
            if (ba < 0)
                break;
            out[(*n)++] = (u3d_slice_score){"zyx"[ba], bk, score[ba][bk]};
            damp(score[ba], len[ba], bk, o->spread);
            score[ba][bk] = 0;
        }
    }
    for (int a = 0; a < 3; a++) {
        free(ax[a].u);
        free(ax[a].annotated);
        free(score[a]);
    }
    return st;
}
