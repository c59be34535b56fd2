/* The paper's evaluation protocols (experiment.h): which slices and
 * volumes are trained on and scored, and one run. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "train/densify_internal.h"
#include "unet3d/experiment.h"

const char *const u3d_exp_variant_names[] = {"3d", "3d-nobn", "2d", NULL};

void u3d_exp_variant_apply(u3d_exp_variant v, u3d_net_config *c)
{
    if (v == U3D_EXP_3D_NOBN)
        c->bn = U3D_BN_NONE;
    else if (v == U3D_EXP_2D)
        u3d_net_set_2d(c);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Annotated voxels per slice of each axis. */
static u3d_status slice_counts(const u3d_labels *l, int ignore,
                               size_t *cnt[3], u3d_error *err)
{
    int len[3] = {l->d, l->h, l->w};
    for (int a = 0; a < 3; a++)
        if (!(cnt[a] = calloc((size_t)len[a], sizeof *cnt[a])))
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_annotated_counts(l, ignore, cnt);
    return U3D_OK;
}

u3d_status u3d_exp_slices(const u3d_labels *sparse, int ignore,
                          u3d_exp_slice **s, int *n, u3d_error *err)
{
    int len[3] = {sparse->d, sparse->h, sparse->w};
    size_t plane[3] = {(size_t)len[1] * len[2], (size_t)len[0] * len[2],
                       (size_t)len[0] * len[1]};
    size_t *cnt[3] = {NULL, NULL, NULL};
    *s = NULL;
    *n = 0;
    u3d_status st = slice_counts(sparse, ignore, cnt, err);
    if (!st && !(*s = malloc((size_t)(len[0] + len[1] + len[2]) *
                             sizeof **s)))
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (int a = 0; !st && a < 3; a++)
        for (int k = 0; k < len[a]; k++)
            if (cnt[a][k] == plane[a])
                (*s)[(*n)++] = (u3d_exp_slice){a, k};
    for (int a = 0; a < 3; a++)
        free(cnt[a]);
    return st;
}

/* Per axis, per index: 0 not annotated, 1 training slice, 2 fold f's. */
static u3d_status fold_marks(const u3d_labels *t, const u3d_exp_slice *s,
                             int n, int k, int f, unsigned char *mark[3],
                             u3d_error *err)
{
    int len[3] = {t->d, t->h, t->w};
    for (int a = 0; a < 3; a++)
        if (!(mark[a] = calloc((size_t)len[a], 1)))
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (int i = 0; i < n; i++)
        mark[s[i].axis][s[i].index] = i % k == f ? 2 : 1;
    return U3D_OK;
}

static u3d_status alloc_pair(const u3d_labels *t, u3d_labels *a,
                             u3d_labels *b, u3d_error *err)
{
    U3D_TRY(u3d_labels_alloc(t->d, t->h, t->w, a, err));
    U3D_TRY(u3d_labels_alloc(t->d, t->h, t->w, b, err));
    memcpy(a->spacing, t->spacing, sizeof t->spacing);
    memcpy(b->spacing, t->spacing, sizeof t->spacing);
    return U3D_OK;
}

u3d_status u3d_exp_fold(const u3d_labels *truth, const u3d_exp_slice *s,
                        int n, int k, int f, int ignore, u3d_labels *train,
                        u3d_labels *score, u3d_error *err)
{
    unsigned char *m[3] = {NULL, NULL, NULL};
    memset(train, 0, sizeof *train);
    memset(score, 0, sizeof *score);
    if (k < 1 || k > n || f < 0 || f >= k)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--folds %d: the annotation has %d annotated "
                          "slice(s); give at most that many folds", k, n);
    u3d_status st = fold_marks(truth, s, n, k, f, m, err);
    if (!st)
        st = alloc_pair(truth, train, score, err);
    for (int z = 0; !st && z < truth->d; z++)
        for (int y = 0; y < truth->h; y++)
            for (int x = 0; x < truth->w; x++) {
                size_t i = ((size_t)z * truth->h + y) * truth->w + x;
                int tr = m[0][z] == 1 || m[1][y] == 1 || m[2][x] == 1;
                int sc = !tr && (m[0][z] | m[1][y] | m[2][x]) == 2;
                train->data[i] = tr ? truth->data[i] : (uint16_t)ignore;
                score->data[i] = sc ? truth->data[i] : (uint16_t)ignore;
            }
    for (int a = 0; a < 3; a++)
        free(m[a]);
    if (st) {
        u3d_labels_free(train);
        u3d_labels_free(score);
    }
    return st;
}

u3d_status u3d_exp_unannotated(const u3d_labels *truth,
                               const u3d_labels *sparse, int ignore,
                               u3d_labels *score, u3d_error *err)
{
    U3D_TRY(u3d_labels_alloc(truth->d, truth->h, truth->w, score, err));
    memcpy(score->spacing, truth->spacing, sizeof truth->spacing);
    size_t n = (size_t)truth->d * truth->h * truth->w;
    for (size_t i = 0; i < n; i++)
        score->data[i] = sparse->data[i] == ignore ? truth->data[i]
                                                   : (uint16_t)ignore;
    return U3D_OK;
}

int u3d_exp_others(int n, int test, int *train)
{
    int k = 0;
    for (int v = 0; v < n; v++)
        if (v != test)
            train[k++] = v;
    return k;
}

/* The setup of the first volume (classes, patch, budget), the patch made
 * the smallest over all volumes and the class weights their sum's. */
static u3d_status run_meta(const u3d_densify_opts *o, u3d_train_volume *tv,
                           int nv, u3d_model_meta *m, u3d_error *err)
{
    size_t counts[U3D_MAX_CLASSES] = {0}, annotated;
    u3d_densify_opts oc = *o;
    *m = o->meta;
    if (nv < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "no volume to train on");
    for (int v = 0; v < nv; v++) {
        u3d_model_meta mv;
        oc.labels_name = tv[v].labels_path;
        U3D_TRY(u3d_densify_meta(&oc, &tv[v].image, &tv[v].labels, &mv,
                                 &annotated, err));
        if (!v)
            *m = mv;
        for (int a = 0; a < 3; a++)
            if (mv.patch[a] < m->patch[a])
                m->patch[a] = mv.patch[a];
        size_t c[U3D_MAX_CLASSES] = {0};
        U3D_TRY(u3d_labels_check(&tv[v].labels, m->net.classes,
                                 m->ignore_label, c, NULL, err));
        for (int k = 0; k < m->net.classes; k++)
            counts[k] += c[k];
    }
    u3d_class_weights_set(o->weights, counts, m->net.classes,
                          m->class_weights);
    return U3D_OK;
}

static int any_label(const u3d_labels *l, int ignore)
{
    size_t n = (size_t)l->d * l->h * l->w;
    for (size_t i = 0; i < n; i++)
        if (l->data[i] != ignore)
            return 1;
    return 0;
}

u3d_status u3d_exp_run(u3d_backend *be, const u3d_densify_opts *o,
                       u3d_train_volume *train, int nv,
                       const u3d_train_volume *val, u3d_exp_result *r,
                       u3d_error *err)
{
    u3d_model_meta m;
    u3d_net *net = NULL;
    memset(r, 0, sizeof *r);
    U3D_TRY(run_meta(o, train, nv, &m, err));
    u3d_status st = u3d_net_create(be, &m.net, &net, err);
    if (!st)
        st = u3d_net_init(net, m.seed, err);
    /* quiet: the caller prints one line per run */
    u3d_train_opts to = {NULL, NULL, 0, 0, 1, 0, stderr, o->sync_bn,
                         .val = NULL};
    double t0 = now_s();
    if (!st)
        st = u3d_train_run(net, &m, train, nv, &to, err);
    r->seconds = now_s() - t0;
    r->iterations = m.iteration;
    r->score.classes = m.net.classes;
    for (int c = 0; c < U3D_MAX_CLASSES; c++)
        r->score.iou[c] = NAN;
    r->score.mean_fg = r->score.mean_all = NAN;
    /* a fold whose slices all cross training slices has nothing left */
    if (!st && any_label(&val->labels, m.ignore_label)) {
        st = u3d_validate(net, val, m.ignore_label, o->max_memory, &r->score,
                          err);
        r->score.iteration = m.iteration;
    }
    u3d_net_destroy(net);
    return st;
}
