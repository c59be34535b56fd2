/* The annotation split behind densify's honest estimate (densify.h):
 * some annotated slices held out of training, scored instead. */
#include <stdlib.h>
#include <string.h>
#include "unet3d/densify.h"
#include "unet3d/rng.h"
#include "train/densify_internal.h"

/* Per axis and slice: annotated (over half its voxels), then held (2) or
 * kept (1). */
typedef struct split {
    int len[3];
    unsigned char *state[3];
} split;

void u3d_annotated_counts(const u3d_labels *l, int ignore, size_t *cnt[3])
{
    int len[3] = {l->d, l->h, l->w};
    for (int a = 0; a < 3; a++)
        memset(cnt[a], 0, (size_t)len[a] * sizeof *cnt[a]);
    for (int z = 0; z < l->d; z++)
        for (int y = 0; y < l->h; y++)
            for (int x = 0; x < l->w; x++)
                if (l->data[((size_t)z * l->h + y) * l->w + x] != ignore) {
                    cnt[0][z]++;
                    cnt[1][y]++;
                    cnt[2][x]++;
                }
}

void u3d_annotated_slices(const u3d_labels *l, int ignore, size_t *cnt[3],
                          unsigned char *flag[3])
{
    int len[3] = {l->d, l->h, l->w};
    u3d_annotated_counts(l, ignore, cnt);
    size_t all = (size_t)l->d * l->h * l->w;
    for (int a = 0; a < 3; a++)
        for (int k = 0; k < len[a]; k++)
            flag[a][k] = 2 * cnt[a][k] > all / (size_t)len[a];
}

/* Marks the held-out slices (state 2): a seeded shuffle of the annotated
 * slices, taken in order while their axis keeps one. */
static int choose(split *sp, double fraction, uint64_t seed, int *cand)
{
    int n = 0, per[3] = {0}, held[3] = {0};
    for (int a = 0; a < 3; a++)
        for (int k = 0; k < sp->len[a]; k++)
            if (sp->state[a][k]) {
                cand[n++] = a << 24 | k;
                per[a]++;
            }
    int want = (int)(fraction * n + 0.5);
    if (want < 1)
        want = 1;
    u3d_rng r;
    u3d_rng_init(&r, seed, 0x686f6c646f7574ULL); /* "holdout" */
    for (int i = n - 1; i > 0; i--) {
        int j = (int)u3d_rng_below(&r, (uint32_t)i + 1), t = cand[i];
        cand[i] = cand[j];
        cand[j] = t;
    }
    int got = 0;
    for (int i = 0; i < n && got < want; i++) {
        int a = cand[i] >> 24, k = cand[i] & 0xffffff;
        if (held[a] + 1 < per[a]) {
            held[a]++;
            sp->state[a][k] = 2;
            got++;
        }
    }
    return got;
}

/* Voxels of held slices on no kept slice move to h->held. */
static size_t move_voxels(const u3d_labels *l, int ignore, const split *sp,
                          u3d_holdout *h)
{
    size_t moved = 0;
    for (int z = 0; z < l->d; z++)
        for (int y = 0; y < l->h; y++)
            for (int x = 0; x < l->w; x++) {
                size_t i = ((size_t)z * l->h + y) * l->w + x;
                int s[3] = {sp->state[0][z], sp->state[1][y], sp->state[2][x]};
                int on_held = s[0] == 2 || s[1] == 2 || s[2] == 2;
                int on_kept = s[0] == 1 || s[1] == 1 || s[2] == 1;
                h->held.data[i] = (uint16_t)ignore;
                if (l->data[i] == ignore || !on_held || on_kept)
                    continue;
                h->held.data[i] = l->data[i];
                h->train.data[i] = (uint16_t)ignore;
                moved++;
            }
    return moved;
}

static void list_held(const split *sp, u3d_holdout *h)
{
    h->nheld = 0;
    for (int a = 0; a < 3; a++)
        for (int k = 0; k < sp->len[a]; k++)
            if (sp->state[a][k] == 2)
                h->slices[h->nheld++] = (u3d_slice_score){"zyx"[a], k, 0};
}

static u3d_status alloc_split(const u3d_labels *l, split *sp, size_t *cnt[3],
                              int **cand, u3d_holdout *h, u3d_error *err)
{
    int len[3] = {l->d, l->h, l->w}, total = l->d + l->h + l->w;
    int bad = 0;
    for (int a = 0; a < 3; a++) {
        sp->len[a] = len[a];
        sp->state[a] = calloc((size_t)len[a], 1);
        cnt[a] = calloc((size_t)len[a], sizeof *cnt[a]);
        bad |= !sp->state[a] || !cnt[a];
    }
    *cand = malloc((size_t)total * sizeof **cand);
    h->slices = calloc((size_t)total, sizeof *h->slices);
    if (bad || !*cand || !h->slices)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    U3D_TRY(u3d_labels_alloc(l->d, l->h, l->w, &h->train, err));
    U3D_TRY(u3d_labels_alloc(l->d, l->h, l->w, &h->held, err));
    size_t n = (size_t)l->d * l->h * l->w;
    memcpy(h->train.data, l->data, n * sizeof *l->data);
    memcpy(h->train.spacing, l->spacing, sizeof l->spacing);
    memcpy(h->held.spacing, l->spacing, sizeof l->spacing);
    return U3D_OK;
}

u3d_status u3d_holdout_split(const u3d_labels *sparse, int ignore_label,
                             double fraction, uint64_t seed, u3d_holdout *h,
                             u3d_error *err)
{
    split sp;
    size_t *cnt[3] = {NULL, NULL, NULL};
    int *cand = NULL;
    memset(h, 0, sizeof *h);
    memset(&sp, 0, sizeof sp);
    u3d_status st = alloc_split(sparse, &sp, cnt, &cand, h, err);
    if (!st) {
        u3d_annotated_slices(sparse, ignore_label, cnt, sp.state);
        if (fraction > 0 && choose(&sp, fraction, seed, cand) &&
            move_voxels(sparse, ignore_label, &sp, h))
            list_held(&sp, h);
        else /* nothing held out after all: the annotation as it is */
            memcpy(h->train.data, sparse->data,
                   (size_t)sparse->d * sparse->h * sparse->w *
                       sizeof *sparse->data);
    }
    for (int a = 0; a < 3; a++) {
        free(sp.state[a]);
        free(cnt[a]);
    }
    free(cand);
    if (st)
        u3d_holdout_free(h);
    return st;
}

void u3d_holdout_free(u3d_holdout *h)
{
    u3d_labels_free(&h->train);
    u3d_labels_free(&h->held);
    free(h->slices);
    memset(h, 0, sizeof *h);
}
