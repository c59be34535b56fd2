/* The annotation loop with the truth standing in for the user (densify.h:
 * u3d_simulate): train, score the unannotated voxels, add slices, train
 * on, warm-started. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "train/densify_internal.h"
#include "unet3d/predict.h"
#include "unet3d/rng.h"

const char *const u3d_sim_pick_names[] = {"suggested", "even", "random",
                                          NULL};

typedef struct sim {
    const u3d_densify_opts *o;
    u3d_backend *be;
    const u3d_labels *truth;
    u3d_volume *image;
    u3d_labels sparse;       /* the annotation so far */
    u3d_train_volume vv;     /* the truth where not annotated */
    unsigned char *ann[3];   /* annotated slices per axis */
    size_t *cnt[3];
    int len[3], even[3];     /* even: slices per axis */
    int next_axis;           /* even: where the next slice goes */
    u3d_net *net;
    u3d_model_meta m;
    int ignore;
} sim;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sim_free(sim *s)
{
    u3d_labels_free(&s->sparse);
    u3d_labels_free(&s->vv.labels);
    for (int a = 0; a < 3; a++) {
        free(s->ann[a]);
        free(s->cnt[a]);
    }
    u3d_net_destroy(s->net);
}

/* The truth sparsified to s->even slices per axis, evenly spaced. */
static u3d_status sparsify_even(sim *s, u3d_error *err)
{
    size_t n = (size_t)s->len[0] * s->len[1] * s->len[2];
    memcpy(s->sparse.data, s->truth->data, n * sizeof *s->sparse.data);
    return u3d_labels_sparsify(&s->sparse, s->even, 0, 0,
                               (uint16_t)s->ignore, NULL, err);
}

static u3d_status sim_init(sim *s, u3d_error *err)
{
    const u3d_labels *t = s->truth;
    int len[3] = {t->d, t->h, t->w};
    for (int a = 0; a < 3; a++) {
        s->len[a] = len[a];
        s->even[a] = 1;
        s->ann[a] = calloc((size_t)len[a], 1);
        s->cnt[a] = calloc((size_t)len[a], sizeof *s->cnt[a]);
        if (!s->ann[a] || !s->cnt[a])
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    U3D_TRY(u3d_labels_alloc(t->d, t->h, t->w, &s->sparse, err));
    U3D_TRY(u3d_labels_alloc(t->d, t->h, t->w, &s->vv.labels, err));
    memcpy(s->sparse.spacing, t->spacing, sizeof t->spacing);
    s->vv.image = *s->image;
    snprintf(s->vv.image_path, sizeof s->vv.image_path, "%s",
             s->o->image_name ? s->o->image_name : "the image");
    snprintf(s->vv.labels_path, sizeof s->vv.labels_path,
             "the unannotated voxels of %s",
             s->o->labels_name ? s->o->labels_name : "the truth");
    return sparsify_even(s, err);
}

/* One slice of the truth joins the annotation. */
static void add_plane(sim *s, int a, int k)
{
    const u3d_labels *t = s->truth;
    for (int z = 0; z < t->d; z++)
        for (int y = 0; y < t->h; y++)
            for (int x = 0; x < t->w; x++) {
                int at[3] = {z, y, x};
                size_t i = ((size_t)z * t->h + y) * t->w + x;
                if (at[a] == k)
                    s->sparse.data[i] = t->data[i];
            }
}

static void pick_even(sim *s, int count)
{
    for (int added = 0, tries = 0; added < count && tries < 3 * count + 3;
         tries++) {
        int a = s->next_axis;
        s->next_axis = (a + 1) % 3;
        if (s->even[a] < s->len[a]) {
            s->even[a]++;
            added++;
        }
    }
}

static u3d_status pick_random(sim *s, int round, int count, u3d_error *err)
{
    int total = s->len[0] + s->len[1] + s->len[2], n = 0;
    int *c = malloc((size_t)total * sizeof *c);
    if (!c)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (int a = 0; a < 3; a++)
        for (int k = 0; k < s->len[a]; k++)
            if (!s->ann[a][k])
                c[n++] = a << 24 | k;
    u3d_rng r;
    u3d_rng_init(&r, s->m.seed, 0x73696d00ULL + (uint64_t)round); /* "sim" */
    for (int i = 0; i < count && i < n; i++) {
        int j = i + (int)u3d_rng_below(&r, (uint32_t)(n - i)), t = c[j];
        c[j] = c[i];
        add_plane(s, t >> 24, t & 0xffffff);
    }
    free(c);
    return U3D_OK;
}

static u3d_status pick_suggested(sim *s, int count, u3d_error *err)
{
    u3d_volume probs;
    u3d_predict_opts po = {0};
    po.max_memory = s->o->max_memory;
    u3d_slice_score *best = calloc((size_t)count, sizeof *best);
    if (!best)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_suggest_opts so;
    u3d_suggest_opts_default(&so);
    so.count = count;
    so.ignore_label = s->ignore;
    int n = 0;
    u3d_status st = u3d_predict(s->net, s->image, &po, NULL, &probs, NULL,
                                err);
    if (!st)
        st = u3d_suggest_slices(&probs, &s->sparse, &so, best, &n, err);
    for (int i = 0; !st && i < n; i++)
        add_plane(s, best[i].axis == 'z' ? 0 : best[i].axis == 'y' ? 1 : 2,
                  best[i].index);
    u3d_volume_free(&probs);
    free(best);
    return st;
}

/* Trains this round on the annotation (a new net in round 0). */
static u3d_status train_round(sim *s, u3d_sim_row *row, u3d_error *err)
{
    size_t annotated;
    U3D_TRY(u3d_densify_meta(s->o, s->image, &s->sparse, &s->m, &annotated,
                             err));
    if (!s->net) {
        U3D_TRY(u3d_model_normalize_input(s->image, &s->m, err));
        U3D_TRY(u3d_net_create(s->be, &s->m.net, &s->net, err));
        U3D_TRY(u3d_net_init(s->net, s->m.seed, err));
    }
    u3d_train_volume tv;
    memset(&tv, 0, sizeof tv);
    tv.image = *s->image;
    tv.labels = s->sparse;
    snprintf(tv.labels_path, sizeof tv.labels_path, "the simulated annotation");
    u3d_train_opts to = {NULL, NULL, 0, 0, 1, 0, stderr, 0, .val = NULL};
    double t0 = now_s();
    U3D_TRY(u3d_train_run(s->net, &s->m, &tv, 1, &to, err));
    row->iterations = s->m.iteration;
    row->seconds = now_s() - t0;
    row->annotated = (double)annotated /
                     ((double)s->len[0] * s->len[1] * s->len[2]);
    return U3D_OK;
}

/* IoU on the voxels not annotated: the shared validator on the truth
 * with the annotation taken out. */
static u3d_status score_round(sim *s, u3d_sim_row *row, u3d_error *err)
{
    size_t n = (size_t)s->len[0] * s->len[1] * s->len[2];
    for (size_t i = 0; i < n; i++)
        s->vv.labels.data[i] = s->sparse.data[i] == s->ignore
                                   ? s->truth->data[i]
                                   : (uint16_t)s->ignore;
    U3D_TRY(u3d_validate(s->net, &s->vv, s->ignore, s->o->max_memory,
                         &row->score, err));
    row->score.iteration = s->m.iteration;
    return U3D_OK;
}

static u3d_status add_slices(sim *s, u3d_sim_pick pick, int round, int count,
                             u3d_error *err)
{
    if (pick == U3D_PICK_EVEN) {
        pick_even(s, count);
        return sparsify_even(s, err);
    }
    if (pick == U3D_PICK_RANDOM)
        return pick_random(s, round, count, err);
    return pick_suggested(s, count, err);
}

static void say_round(const u3d_sim_row *r, u3d_sim_pick pick)
{
    fprintf(stderr, "simulate %s, round %d: %d,%d,%d slices, %.1f%% "
                    "annotated, mean foreground IoU %.4f on the rest\n",
            u3d_sim_pick_names[pick], r->round, r->slices[0], r->slices[1],
            r->slices[2], 100.0 * r->annotated, r->score.mean_fg);
}

/* Classes from the truth unless given: every round trains the same net. */
static int truth_classes(const u3d_labels *t, int ignore)
{
    int maxl = 1;
    size_t n = (size_t)t->d * t->h * t->w;
    for (size_t i = 0; i < n; i++)
        if (t->data[i] != ignore && t->data[i] > maxl)
            maxl = t->data[i];
    return maxl + 1;
}

u3d_status u3d_simulate(u3d_backend *be, const u3d_densify_opts *o,
                        u3d_sim_pick pick, int rounds, int count,
                        u3d_volume *image, const u3d_labels *truth,
                        u3d_sim_row *rows, u3d_error *err)
{
    u3d_densify_opts oc = *o;
    sim s;
    memset(&s, 0, sizeof s);
    if (!oc.meta.net.classes)
        oc.meta.net.classes = truth_classes(truth, o->meta.ignore_label);
    s.o = &oc;
    s.be = be;
    s.truth = truth;
    s.image = image;
    s.ignore = o->meta.ignore_label;
    u3d_status st = u3d_check_image_labels(image, o->image_name, truth,
                                           o->labels_name, err);
    if (!st)
        st = sim_init(&s, err);
    for (int r = 0; !st && r <= rounds; r++) {
        u3d_sim_row *row = &rows[r];
        memset(row, 0, sizeof *row);
        row->round = r;
        if (r > 0)
            st = add_slices(&s, pick, r, count, err);
        if (!st)
            st = train_round(&s, row, err);
        if (!st)
            st = score_round(&s, row, err);
        u3d_annotated_slices(&s.sparse, s.ignore, s.cnt, s.ann);
        for (int a = 0; a < 3; a++)
            for (int k = 0; k < s.len[a]; k++)
                row->slices[a] += s.ann[a][k];
        if (!st && !o->quiet)
            say_round(row, pick);
    }
    sim_free(&s);
    return st;
}
