/* unet3d experiment table1|table2|table3: the evaluation protocols of
 * Cicek et al. 2016 (experiment.h) on the user's densely labeled volumes,
 * reported as DIR/tableN.md, .json and .png. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "core/files.h"
#include "core/json_out.h"
#include "report/plot.h"
#include "unet3d/experiment.h"

#define MAXV 32
#define MAXR 16            /* rows of table2 (slice counts) */
#define MAXF 32            /* folds of table1 */
#define MAXG (MAXF + MAXV) /* rows or columns of a report */

typedef struct xargs {
    u3d_cli_train t;
    u3d_backend_config bc;
    const char *tabs[1], *imgs[MAXV], *labs[MAXV], *out, *variants,
        *slices, *slices_list;
    int ntab, nimg, nlab, table, seeds, folds, nvar, var[3], sl[3], nrows,
        rows[MAXR][3], g_slices, g_list;
    double max_mb;
    int argc;
    char **argv;
} xargs;

typedef struct xrun {
    int vol, row, var, seed;
    u3d_exp_result r;
} xrun;

/* A report cell: the runs of vol (-1: any), row (-1: any) and variant. */
typedef struct xcell {
    int vol, row, var;
} xcell;

typedef struct xgrid {
    int nr, nc;
    char rname[MAXG][96], cname[3 * (MAXV + 1)][128];
    xcell cell[MAXG][3 * (MAXV + 1)];
} xgrid;

typedef struct xjob {
    const xargs *a;
    u3d_densify_opts o[3]; /* per variant */
    u3d_train_volume v[MAXV]; /* normalized image, dense truth */
    int nv;
    double share[MAXR];    /* table2: share annotated, mean over volumes */
    u3d_backend *be;
    xrun *runs;
    int nruns, cap;
    xgrid g;
    u3d_error e;
} xjob;

static const char *const TABLES[] = {"table1", "table2", "table3", NULL};

static const char ABOUT[] =
    "The protocols of Cicek et al. 2016 on densely labeled volumes; each\n"
    "run trains a new net with densify's setup (the budget is per run):\n"
    "  table1  semi-automatic: per volume, the truth cut to --slices, its\n"
    "          annotated slices dealt round-robin into --folds subsets;\n"
    "          train on the others, score the subset's voxels that lie on\n"
    "          no training slice. Rows: the subsets and their average.\n"
    "  table2  IoU on the unannotated voxels vs the annotated slices\n"
    "          (--slices-list), per volume.\n"
    "  table3  fully automatic, leave one volume out: train on the other\n"
    "          volumes' truth cut to --slices, score the whole left-out one.\n"
    "IoU: mean foreground IoU, mean ± (max-min)/2 over the seeds. Writes\n"
    "DIR/tableN.md (also on stdout), DIR/tableN.json and DIR/tableN.png.\n";

/* The table's own defaults, then the given values checked. */
static int check_args(const u3d_cmd_spec *spec, xargs *a)
{
    for (a->table = 0; TABLES[a->table]; a->table++)
        if (!strcmp(TABLES[a->table], a->tabs[0]))
            break;
    if (!TABLES[a->table])
        return u3d_opts_fail(spec, "unknown protocol '%s': give table1, "
                                   "table2 or table3", a->tabs[0]);
    if (a->nimg != a->nlab)
        return u3d_opts_fail(spec, "%d --image but %d --labels: give one "
                                   "--labels per --image", a->nimg, a->nlab);
    if (!a->t.iterations && !(a->t.minutes > 0))
        return u3d_opts_fail(spec, "give --iterations N or --minutes M "
                                   "(per training run)");
    if (a->t.log)
        return u3d_opts_fail(spec, "--log is not used by experiment");
    if (a->table == 2 && a->nimg < 2)
        return u3d_opts_fail(spec, "table3 leaves one volume out: give at "
                                   "least 2 --image/--labels pairs");
    a->nvar = u3d_opts_names(a->variants ? a->variants
                             : a->table == 1 ? "3d" : "3d,3d-nobn,2d",
                             u3d_exp_variant_names, 3, a->var);
    if (!a->nvar)
        return u3d_opts_fail(spec, "--variants '%s': want a comma list of "
                                   "3d, 3d-nobn, 2d (each once)",
                             a->variants);
    int one[1][3];
    /* a total of 0 slices annotates nothing */
    if (a->slices && (!u3d_opts_triples(a->slices, 0, 100000, 1, one) ||
                      one[0][0] + one[0][1] + one[0][2] == 0))
        return u3d_opts_fail(spec, "--slices '%s': want Z,Y,X, three counts "
                                   "(e.g. 3,5,5)", a->slices);
    if (a->slices)
        memcpy(a->sl, one[0], sizeof a->sl);
    a->g_list = a->slices_list != NULL;
    a->nrows = u3d_opts_triples(a->slices_list ? a->slices_list
                                : "1,1,1:2,2,1:4,4,2:8,8,4",
                                0, 100000, MAXR, a->rows);
    for (int r = 0; r < a->nrows; r++)
        if (a->rows[r][0] + a->rows[r][1] + a->rows[r][2] == 0)
            a->nrows = 0;
    if (!a->nrows)
        return u3d_opts_fail(spec, "--slices-list '%s': want Z,Y,X:Z,Y,X:... "
                                   "(at most %d)", a->slices_list, MAXR);
    return -1;
}

static int parse(int argc, char **argv, xargs *a)
{
    const u3d_opt opts[] = {
        {"TABLE", U3D_OPT_LIST, a->tabs, 0, 1, NULL,
         .help = "table1, table2 or table3", .given = &a->ntab,
         .flags = U3D_OPT_REQUIRED},
        {"--image", U3D_OPT_LIST, a->imgs, 0, MAXV, "I.tif",
         .help = "a volume (repeat, each with --labels)", .given = &a->nimg,
         .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--labels", U3D_OPT_LIST, a->labs, 0, MAXV, "DENSE.tif",
         .help = "the dense truth of the image before it",
         .given = &a->nlab, .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--out", U3D_OPT_STRING, &a->out, 0, 0, "DIR",
         .help = "the report's folder (created if missing)",
         .flags = U3D_OPT_REQUIRED},
        {"--seeds", U3D_OPT_INT, &a->seeds, 1, 1000, "S",
         .help = "runs with seeds seed..seed+S-1 (default 1)"},
        {"--variants", U3D_OPT_STRING, &a->variants, 0, 0, "LIST",
         .help = "of 3d, 3d-nobn (no batch norm), 2d (1x3x3 convs)\n"
                 "(default 3d,3d-nobn,2d; table2: 3d)"},
        {"--slices", U3D_OPT_STRING, &a->slices, 0, 0, "Z,Y,X",
         .help = "annotated slices per axis, evenly spaced\n"
                 "(table1, table3; default 3,5,5)", .given = &a->g_slices},
        {"--folds", U3D_OPT_INT, &a->folds, 1, MAXF, "K",
         .help = "table1: subsets of the annotated slices (3)"},
        {"--slices-list", U3D_OPT_STRING, &a->slices_list, 0, 0,
         "Z,Y,X:...", .help = "table2: the slice counts (default\n"
                              "1,1,1:2,2,1:4,4,2:8,8,4, clipped)"},
        {"--max-memory", U3D_OPT_DOUBLE, &a->max_mb, 0, 1e9, "MB",
         .help = "device budget of the predictions (MiB)",
         .flags = U3D_OPT_GT},
        U3D_OPTS_NET(&a->t.net),
        U3D_OPTS_TRAIN(&a->t),
        U3D_OPTS_AUG(&a->t.aug),
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {
        "experiment",
        "table1|table2|table3 --image I.tif --labels DENSE.tif [...]\n"
        "                         --out DIR (--iterations N | --minutes M)",
        ABOUT, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    return rc >= 0 ? rc : check_args(&spec, a);
}

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- setup ---- */

static u3d_status load(xjob *j, int i)
{
    const xargs *a = j->a;
    u3d_train_volume *v = &j->v[i];
    snprintf(v->image_path, sizeof v->image_path, "%s", a->imgs[i]);
    snprintf(v->labels_path, sizeof v->labels_path, "%s", a->labs[i]);
    j->nv = i + 1;
    U3D_TRY(u3d_vio_read_volume(a->imgs[i], &v->image, NULL, &j->e));
    U3D_TRY(u3d_vio_read_labels(a->labs[i], &v->labels, NULL, &j->e));
    U3D_TRY(u3d_check_image_labels(&v->image, a->imgs[i], &v->labels,
                                   a->labs[i], &j->e));
    if (v->image.c != j->v[0].image.c) /* one net reads them all */
        return u3d_seterr(&j->e, U3D_ERR_SHAPE,
                          "%s has %d channel(s), %s %d: every volume needs "
                          "the same", a->imgs[i], v->image.c, a->imgs[0],
                          j->v[0].image.c);
    return U3D_OK;
}

/* Classes as given, else the largest truth label + 1 over all volumes, so
 * that every run of a table trains the same output layer. */
static int classes_of(const xjob *j)
{
    int maxl = 1, ig = j->a->t.ignore_label;
    for (int i = 0; i < j->nv; i++) {
        const u3d_labels *l = &j->v[i].labels;
        size_t n = (size_t)l->d * l->h * l->w;
        for (size_t k = 0; k < n; k++)
            if (l->data[k] != ig && l->data[k] > maxl)
                maxl = l->data[k];
    }
    return maxl + 1;
}

/* A variant's net, and a given --patch for it, checked before any run
 * (the 2d net takes other sizes than the 3d one). */
static u3d_status check_variant(xjob *j, int i)
{
    const u3d_model_meta *m = &j->o[i].meta;
    const char *name = u3d_exp_variant_names[j->a->var[i]];
    int out[3];
    if (u3d_net_config_check(&m->net, &j->e))
        return u3d_errprefix(&j->e, "variant %s: ", name);
    if (j->a->t.g_patch && u3d_net_output_size(&m->net, m->patch, out, &j->e))
        return u3d_errprefix(&j->e, "variant %s: ", name);
    return U3D_OK;
}

static u3d_status setup_variants(xjob *j)
{
    const xargs *a = j->a;
    for (int i = 0; i < a->nvar; i++) {
        u3d_densify_opts *o = &j->o[i];
        U3D_TRY(u3d_cli_densify_setup(&a->t, o, &j->e));
        u3d_exp_variant_apply((u3d_exp_variant)a->var[i], &o->meta.net);
        if (!a->t.net.classes)
            o->meta.net.classes = classes_of(j);
        o->max_memory = (size_t)(a->max_mb * 1048576.0);
        o->quiet = 1;
        U3D_TRY(check_variant(j, i));
    }
    return U3D_OK;
}

/* Slice counts beyond a volume are refused (a given --slices-list too; the
 * default list is clipped instead). */
static u3d_status check_slices(xjob *j, const int k[3], const char *opt)
{
    for (int i = 0; i < j->nv; i++) {
        const u3d_labels *l = &j->v[i].labels;
        if (k[0] > l->d || k[1] > l->h || k[2] > l->w)
            return u3d_seterr(&j->e, U3D_ERR_INVALID_ARG,
                              "%s %d,%d,%d: %s is only %dx%dx%d (DxHxW)", opt,
                              k[0], k[1], k[2], j->a->labs[i], l->d, l->h,
                              l->w);
    }
    return U3D_OK;
}

/* The truth of volume i cut to k slices per axis (clipped). */
static u3d_status cut(xjob *j, int i, const int k[3], u3d_labels *s,
                      size_t *kept)
{
    const u3d_labels *t = &j->v[i].labels;
    int kk[3] = {k[0] < t->d ? k[0] : t->d, k[1] < t->h ? k[1] : t->h,
                 k[2] < t->w ? k[2] : t->w};
    U3D_TRY(u3d_labels_alloc(t->d, t->h, t->w, s, &j->e));
    memcpy(s->data, t->data, (size_t)t->d * t->h * t->w * sizeof *t->data);
    memcpy(s->spacing, t->spacing, sizeof t->spacing);
    return u3d_labels_sparsify(s, kk, 0, 0, (uint16_t)j->a->t.ignore_label,
                               kept, &j->e);
}

/* Volume i's truth cut to --slices and its annotated slices (*sl
 * malloc'd; free it and *s also on failure). */
static u3d_status cut_slices(xjob *j, int i, u3d_labels *s,
                             u3d_exp_slice **sl, int *n)
{
    memset(s, 0, sizeof *s);
    *sl = NULL;
    *n = 0;
    U3D_TRY(cut(j, i, j->a->sl, s, NULL));
    return u3d_exp_slices(s, j->a->t.ignore_label, sl, n, &j->e);
}

/* table1: every volume has at least --folds annotated slices. */
static u3d_status check_folds(xjob *j)
{
    for (int i = 0; i < j->nv; i++) {
        u3d_labels s;
        u3d_exp_slice *sl = NULL;
        int n = 0;
        u3d_status st = cut_slices(j, i, &s, &sl, &n);
        free(sl);
        u3d_labels_free(&s);
        if (!st && j->a->folds > n)
            st = u3d_seterr(&j->e, U3D_ERR_INVALID_ARG,
                            "--folds %d: %s has %d annotated slice(s) with "
                            "--slices %d,%d,%d; give at most %d folds",
                            j->a->folds, j->a->labs[i], n, j->a->sl[0],
                            j->a->sl[1], j->a->sl[2], n);
        U3D_TRY(st);
    }
    return U3D_OK;
}

static u3d_status check_inputs(xjob *j)
{
    const xargs *a = j->a;
    if (a->table != 1) {
        U3D_TRY(check_slices(j, a->sl, "--slices"));
        return a->table == 0 ? check_folds(j) : U3D_OK;
    }
    for (int r = 0; r < a->nrows && a->g_list; r++)
        U3D_TRY(check_slices(j, a->rows[r], "--slices-list"));
    return U3D_OK;
}

static u3d_status setup(xjob *j)
{
    const xargs *a = j->a;
    for (int i = 0; i < a->nimg; i++)
        U3D_TRY(load(j, i));
    U3D_TRY(setup_variants(j));
    U3D_TRY(check_inputs(j));
    for (int i = 0; i < j->nv; i++) /* as prediction will (same mode) */
        U3D_TRY(u3d_model_normalize_input(&j->v[i].image, &j->o[0].meta,
                                          &j->e));
    return u3d_backend_create(&a->bc, &j->be, &j->e);
}

/* ---- runs ---- */

static u3d_status add_run(xjob *j, int vol, int row, int var, int seed,
                          u3d_train_volume *tv, int ntv,
                          const u3d_train_volume *val, const char *what)
{
    if (j->nruns == j->cap) {
        int cap = j->cap ? 2 * j->cap : 64;
        xrun *r = realloc(j->runs, (size_t)cap * sizeof *r);
        if (!r)
            return u3d_seterr(&j->e, U3D_ERR_OOM, "out of host memory");
        j->runs = r;
        j->cap = cap;
    }
    xrun *x = &j->runs[j->nruns];
    u3d_densify_opts o = j->o[var];
    o.meta.seed = j->a->t.seed + (unsigned long long)seed;
    *x = (xrun){vol, row, var, seed, {{0}, 0, 0}};
    U3D_TRY(u3d_exp_run(j->be, &o, tv, ntv, val, &x->r, &j->e));
    j->nruns++;
    fprintf(stderr, "experiment %s: %s, %s, seed %llu: IoU %.3f (%ld "
                    "iterations, %.0f s)\n", TABLES[j->a->table], what,
            u3d_exp_variant_names[j->a->var[var]],
            (unsigned long long)o.meta.seed,
            x->r.score.mean_fg, x->r.iterations, x->r.seconds);
    return U3D_OK;
}

/* Every variant and seed on one training set and one scored set. */
static u3d_status run_all(xjob *j, int vol, int row, u3d_train_volume *tv,
                          int ntv, const u3d_train_volume *val,
                          const char *what)
{
    for (int v = 0; v < j->a->nvar; v++)
        for (int s = 0; s < j->a->seeds; s++)
            U3D_TRY(add_run(j, vol, row, v, s, tv, ntv, val, what));
    return U3D_OK;
}

static u3d_status table1_fold(xjob *j, int i, const u3d_exp_slice *sl,
                              int n, int f)
{
    u3d_train_volume tv = j->v[i], vv = j->v[i];
    char what[700];
    U3D_TRY(u3d_exp_fold(&j->v[i].labels, sl, n, j->a->folds, f,
                         j->a->t.ignore_label, &tv.labels, &vv.labels,
                         &j->e));
    snprintf(vv.labels_path, sizeof vv.labels_path,
             "subset %d of %s", f + 1, j->a->labs[i]);
    snprintf(what, sizeof what, "volume %s, subset %d/%d",
             base(j->a->imgs[i]), f + 1, j->a->folds);
    u3d_status st = run_all(j, i, f, &tv, 1, &vv, what);
    u3d_labels_free(&tv.labels);
    u3d_labels_free(&vv.labels);
    return st;
}

static u3d_status table1(xjob *j)
{
    for (int i = 0; i < j->nv; i++) {
        u3d_labels s;
        u3d_exp_slice *sl = NULL;
        int n = 0;
        u3d_status st = cut_slices(j, i, &s, &sl, &n);
        for (int f = 0; !st && f < j->a->folds; f++)
            st = table1_fold(j, i, sl, n, f);
        free(sl);
        u3d_labels_free(&s);
        U3D_TRY(st);
    }
    return U3D_OK;
}

static u3d_status table2_row(xjob *j, int i, int r)
{
    u3d_train_volume tv = j->v[i], vv = j->v[i];
    const int *k = j->a->rows[r];
    const u3d_labels *t = &j->v[i].labels;
    size_t kept = 0;
    char what[700];
    memset(&tv.labels, 0, sizeof tv.labels);
    memset(&vv.labels, 0, sizeof vv.labels);
    u3d_status st = cut(j, i, k, &tv.labels, &kept);
    if (!st)
        st = u3d_exp_unannotated(t, &tv.labels, j->a->t.ignore_label,
                                 &vv.labels, &j->e);
    j->share[r] += (double)kept / ((double)t->d * t->h * t->w) / j->nv;
    snprintf(vv.labels_path, sizeof vv.labels_path,
             "the unannotated voxels of %s", j->a->labs[i]);
    snprintf(what, sizeof what, "volume %s, slices %d,%d,%d",
             base(j->a->imgs[i]), k[0], k[1], k[2]);
    if (!st)
        st = run_all(j, i, r, &tv, 1, &vv, what);
    u3d_labels_free(&tv.labels);
    u3d_labels_free(&vv.labels);
    return st;
}

static u3d_status table2(xjob *j)
{
    for (int i = 0; i < j->nv; i++)
        for (int r = 0; r < j->a->nrows; r++)
            U3D_TRY(table2_row(j, i, r));
    return U3D_OK;
}

/* Trains on the other volumes' cut truth, scores all of volume i. */
static u3d_status table3_vol(xjob *j, int i, u3d_train_volume *tv)
{
    int idx[MAXV], n = u3d_exp_others(j->nv, i, idx);
    u3d_status st = U3D_OK;
    char what[700];
    for (int k = 0; k < n; k++) {
        tv[k] = j->v[idx[k]];
        memset(&tv[k].labels, 0, sizeof tv[k].labels);
    }
    for (int k = 0; !st && k < n; k++)
        st = cut(j, idx[k], j->a->sl, &tv[k].labels, NULL);
    snprintf(what, sizeof what, "test volume %s", base(j->a->imgs[i]));
    if (!st)
        st = run_all(j, i, 0, tv, n, &j->v[i], what);
    for (int k = 0; k < n; k++)
        u3d_labels_free(&tv[k].labels);
    return st;
}

static u3d_status table3(xjob *j)
{
    u3d_train_volume *tv = calloc(MAXV, sizeof *tv);
    if (!tv)
        return u3d_seterr(&j->e, U3D_ERR_OOM, "out of host memory");
    u3d_status st = U3D_OK;
    for (int i = 0; !st && i < j->nv; i++)
        st = table3_vol(j, i, tv);
    free(tv);
    return st;
}

/* ---- the report ---- */

/* Mean IoU of the cell's runs with seed s; NaN when none scored. */
static double cell_seed(const xjob *j, xcell c, int s)
{
    double sum = 0;
    int n = 0;
    for (int i = 0; i < j->nruns; i++) {
        const xrun *x = &j->runs[i];
        if (x->seed == s && x->var == c.var && (c.vol < 0 || x->vol == c.vol)
            && (c.row < 0 || x->row == c.row) && !isnan(x->r.score.mean_fg)) {
            sum += x->r.score.mean_fg;
            n++;
        }
    }
    return n ? sum / n : NAN;
}

/* Mean and spread (max - min) / 2 over the seeds. */
static void cell_stats(const xjob *j, xcell c, double *mean, double *spread)
{
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    int n = 0;
    for (int s = 0; s < j->a->seeds; s++) {
        double v = cell_seed(j, c, s);
        if (isnan(v))
            continue;
        sum += v;
        n++;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *mean = n ? sum / n : NAN;
    *spread = n ? (hi - lo) / 2 : NAN;
}

static void add_col(xgrid *g, const char *name, int vol, int var)
{
    snprintf(g->cname[g->nc], sizeof g->cname[0], "%s", name);
    for (int r = 0; r < g->nr; r++)
        g->cell[r][g->nc] = (xcell){vol, g->cell[r][0].row, var};
    g->nc++;
}

/* Rows are subsets or test volumes (and their average), columns variants. */
static void grid_by_variant(xjob *j)
{
    const xargs *a = j->a;
    xgrid *g = &j->g;
    int n = a->table == 0 ? a->folds : j->nv;
    g->nr = n + 1;
    for (int r = 0; r <= n; r++) {
        if (r == n)
            snprintf(g->rname[r], sizeof g->rname[0], "average");
        else if (a->table == 0)
            snprintf(g->rname[r], sizeof g->rname[0], "subset %d", r + 1);
        else
            snprintf(g->rname[r], sizeof g->rname[0], "%s", base(a->imgs[r]));
        /* table1: a subset over all volumes; table3: a test volume */
        g->cell[r][0] = a->table == 0 ? (xcell){-1, r == n ? -1 : r, 0}
                                      : (xcell){r == n ? -1 : r, -1, 0};
    }
    for (int v = 0; v < a->nvar; v++) {
        for (int r = 0; r <= n; r++)
            g->cell[r][v] = (xcell){g->cell[r][0].vol, g->cell[r][0].row, v};
        snprintf(g->cname[v], sizeof g->cname[0], "%s",
                 u3d_exp_variant_names[a->var[v]]);
    }
    g->nc = a->nvar;
}

/* Rows are slice counts, columns the volumes and their mean (per variant). */
static void grid_by_slices(xjob *j)
{
    const xargs *a = j->a;
    xgrid *g = &j->g;
    g->nr = a->nrows;
    g->nc = 0;
    for (int r = 0; r < a->nrows; r++) {
        snprintf(g->rname[r], sizeof g->rname[0], "%d,%d,%d (%.1f %%)",
                 a->rows[r][0], a->rows[r][1], a->rows[r][2],
                 100.0 * j->share[r]);
        g->cell[r][0].row = r;
    }
    for (int v = 0; v < a->nvar; v++)
        for (int i = 0; i <= j->nv; i++) {
            char name[160];
            snprintf(name, sizeof name, "%s%s%s%s",
                     i < j->nv ? base(a->imgs[i]) : "mean",
                     a->nvar > 1 ? " (" : "",
                     a->nvar > 1 ? u3d_exp_variant_names[a->var[v]] : "",
                     a->nvar > 1 ? ")" : "");
            add_col(g, name, i < j->nv ? i : -1, v);
        }
}

static void fmt_cell(const xjob *j, xcell c, char *buf, size_t n)
{
    double m, s;
    cell_stats(j, c, &m, &s);
    if (isnan(m))
        snprintf(buf, n, "n/a");
    else if (j->a->seeds == 1) /* no spread to show */
        snprintf(buf, n, "%.3f", m);
    else
        snprintf(buf, n, "%.3f ± %.3f", m, s);
}

static void md_budget(FILE *f, const xargs *a)
{
    if (a->t.iterations)
        fprintf(f, "Budget %ld iterations per run", a->t.iterations);
    else
        fprintf(f, "Budget %g minutes per run", a->t.minutes);
    if (a->seeds == 1)
        fprintf(f, "; seed %llu", a->t.seed);
    else
        fprintf(f, "; seeds %llu..%llu (mean ± (max-min)/2)", a->t.seed,
                a->t.seed + (unsigned long long)a->seeds - 1);
    fprintf(f, "; preset %s", a->t.net.preset ? a->t.net.preset : "small");
    if (a->table != 1)
        fprintf(f, "; slices %d,%d,%d (z,y,x)", a->sl[0], a->sl[1], a->sl[2]);
    if (a->table == 0)
        fprintf(f, "; %d subsets", a->folds);
    fprintf(f, "; IoU = mean foreground IoU.\n");
}

static void write_md(FILE *f, const xjob *j)
{
    const xgrid *g = &j->g;
    static const char *const title[] = {
        "Semi-automatic segmentation, cross-validated over annotated slices",
        "IoU on the unannotated voxels vs annotated slices",
        "Fully automatic segmentation, leave one volume out"};
    fprintf(f, "## %s: %s\n\n|", TABLES[j->a->table], title[j->a->table]);
    static const char *const corner[] = {"", "slices z,y,x (annotated)",
                                         "test volume"};
    fprintf(f, " %s |", corner[j->a->table]);
    for (int c = 0; c < g->nc; c++)
        fprintf(f, " %s |", g->cname[c]);
    fputs("\n|---|", f);
    for (int c = 0; c < g->nc; c++)
        fputs("---|", f);
    fputc('\n', f);
    for (int r = 0; r < g->nr; r++) {
        fprintf(f, "| %s |", g->rname[r]);
        for (int c = 0; c < g->nc; c++) {
            char b[64];
            fmt_cell(j, g->cell[r][c], b, sizeof b);
            fprintf(f, " %s |", b);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
    md_budget(f, j->a);
}

/* ---- JSON ---- */

static void json_options(FILE *f, const xjob *j)
{
    const xargs *a = j->a;
    fputs("{\"command\": \"", f);
    for (int i = 0; i < a->argc; i++) {
        fputs(i ? " " : "unet3d ", f);
        u3d_json_esc(f, a->argv[i]);
    }
    fprintf(f, "\",\n \"table\": \"%s\", \"preset\": ", TABLES[a->table]);
    u3d_json_str(f, a->t.net.preset ? a->t.net.preset : "small");
    fprintf(f, ", \"seed\": %llu, \"seeds\": %d, \"iterations_per_run\": %ld, "
               "\"minutes_per_run\": %g, \"classes\": %d, \"folds\": %d, "
               "\"slices\": [%d, %d, %d],\n \"slices_list\": [",
            a->t.seed, a->seeds, a->t.iterations,
            a->t.iterations ? 0.0 : a->t.minutes, j->o[0].meta.net.classes,
            a->table == 0 ? a->folds : 0, a->sl[0], a->sl[1], a->sl[2]);
    for (int r = 0; a->table == 1 && r < a->nrows; r++)
        fprintf(f, "%s[%d, %d, %d]", r ? ", " : "", a->rows[r][0],
                a->rows[r][1], a->rows[r][2]);
    fputs("], \"variants\": [", f);
    for (int v = 0; v < a->nvar; v++)
        fprintf(f, "%s\"%s\"", v ? ", " : "", u3d_exp_variant_names[a->var[v]]);
    fputs("],\n", f);
}

static void json_volumes(FILE *f, const xjob *j)
{
    const xargs *a = j->a;
    fputs(" \"volumes\": [", f);
    for (int i = 0; i < j->nv; i++) {
        fputs(i ? ",\n   {\"image\": " : "\n   {\"image\": ", f);
        u3d_json_str(f, a->imgs[i]);
        fputs(", \"labels\": ", f);
        u3d_json_str(f, a->labs[i]);
        fputs("}", f);
    }
    fputs("],\n", f);
}

static void json_run(FILE *f, const xjob *j, const xrun *x)
{
    static const char *const rowkey[] = {"fold", "slices_row", "row"};
    fputs("   {\"volume\": ", f);
    u3d_json_str(f, base(j->a->imgs[x->vol]));
    fprintf(f, ", \"%s\": %d, \"variant\": \"%s\", \"seed\": %llu, "
               "\"iterations\": %ld, \"seconds\": %.3f, \"iou\": [",
            rowkey[j->a->table], x->row + (j->a->table == 0),
            u3d_exp_variant_names[j->a->var[x->var]],
            j->a->t.seed + (unsigned long long)x->seed, x->r.iterations,
            x->r.seconds);
    for (int c = 0; c < x->r.score.classes; c++) {
        fputs(c ? ", " : "", f);
        u3d_json_num(f, x->r.score.iou[c]);
    }
    fputs("], \"mean_fg_iou\": ", f);
    u3d_json_num(f, x->r.score.mean_fg);
    if (j->a->table == 1) /* the slice count trained on */
        fprintf(f, ", \"slices\": [%d, %d, %d]", j->a->rows[x->row][0],
                j->a->rows[x->row][1], j->a->rows[x->row][2]);
    fputs("}", f);
}

/* The report's cells: mean, spread and every seed's value. */
static void json_cells(FILE *f, const xjob *j)
{
    const xgrid *g = &j->g;
    fputs(" \"report\": [", f);
    for (int r = 0; r < g->nr; r++)
        for (int c = 0; c < g->nc; c++) {
            double m, s;
            cell_stats(j, g->cell[r][c], &m, &s);
            fputs(r || c ? ",\n   {\"row\": " : "\n   {\"row\": ", f);
            u3d_json_str(f, g->rname[r]);
            fputs(", \"column\": ", f);
            u3d_json_str(f, g->cname[c]);
            fputs(", \"mean\": ", f);
            u3d_json_num(f, m);
            fputs(", \"spread\": ", f);
            u3d_json_num(f, s);
            fputs(", \"per_seed\": [", f);
            for (int k = 0; k < j->a->seeds; k++) {
                fputs(k ? ", " : "", f);
                u3d_json_num(f, cell_seed(j, g->cell[r][c], k));
            }
            fputs("]}", f);
        }
    fputs("]}\n", f);
}

static void write_json(FILE *f, const xjob *j)
{
    json_options(f, j);
    json_volumes(f, j);
    fputs(" \"runs\": [", f);
    for (int i = 0; i < j->nruns; i++) {
        fputs(i ? ",\n" : "\n", f);
        json_run(f, j, &j->runs[i]);
    }
    fputs("],\n", f);
    json_cells(f, j);
}

/* ---- files ---- */

typedef void (*writer)(FILE *, const xjob *);

static u3d_status write_file(xjob *j, const char *path, writer w)
{
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, path, &j->e));
    FILE *f = u3d_outfile_stream(&o, &j->e);
    if (!f) {
        u3d_outfile_abort(&o);
        return U3D_ERR_IO;
    }
    w(f, j);
    return u3d_outfile_commit(&o, &j->e);
}

/* The chart's series: one per column (table2: but the mean). */
static int plot_series(const xjob *j, u3d_plot_series *s, double *y,
                       double *er, const double *x)
{
    const xgrid *g = &j->g;
    int ns = 0, lines = j->a->table == 1;
    for (int c = 0; c < g->nc; c++) {
        if (lines && g->cell[0][c].vol < 0) /* the mean is in the table */
            continue;
        double *yc = y + (size_t)ns * MAXG, *ec = er + (size_t)ns * MAXG;
        for (int r = 0; r < g->nr; r++)
            cell_stats(j, g->cell[r][c], &yc[r], &ec[r]);
        s[ns++] = (u3d_plot_series){g->cname[c], g->nr, lines ? x : NULL,
                                    yc, ec};
    }
    return ns;
}

/* Bars (table1, table3: groups = rows, one bar per variant) or lines
 * (table2: x = annotated slices, one line per volume and variant). */
static u3d_status write_png(xjob *j, const char *path)
{
    const xgrid *g = &j->g;
    enum { NS = 3 * (MAXV + 1) };
    u3d_plot_series s[NS];
    const char *groups[MAXG];
    double x[MAXG];
    int lines = j->a->table == 1;
    double *y = calloc((size_t)2 * NS * MAXG, sizeof *y);
    if (!y)
        return u3d_seterr(&j->e, U3D_ERR_OOM, "out of host memory");
    for (int r = 0; r < g->nr; r++) {
        groups[r] = g->rname[r];
        x[r] = lines ? j->a->rows[r][0] + j->a->rows[r][1] + j->a->rows[r][2]
                     : r;
    }
    int ns = plot_series(j, s, y, y + (size_t)NS * MAXG, x);
    char title[64];
    snprintf(title, sizeof title, "unet3d experiment %s", TABLES[j->a->table]);
    u3d_plot p = {title, lines ? "annotated slices (z + y + x)" : "",
                  "mean foreground IoU", 0, 0, 0, 1, s, ns, groups, g->nr};
    u3d_status st = lines ? u3d_plot_lines(path, &p, &j->e)
                          : u3d_plot_bars(path, &p, &j->e);
    free(y);
    return st;
}

static u3d_status make_dir(xjob *j)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", j->a->out);
    for (char *p = buf + 1;; p++) /* mkdir -p */
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST)
                return u3d_seterr(&j->e, U3D_ERR_IO, "--out %s: cannot "
                                  "create %s: %s", j->a->out, buf,
                                  strerror(errno));
            if (!(*p = c))
                break;
        }
    struct stat st;
    if (stat(j->a->out, &st) || !S_ISDIR(st.st_mode))
        return u3d_seterr(&j->e, U3D_ERR_IO, "--out %s: not a folder",
                          j->a->out);
    return U3D_OK;
}

static u3d_status write_all(xjob *j)
{
    char path[4200];
    const char *t = TABLES[j->a->table];
    U3D_TRY(make_dir(j));
    snprintf(path, sizeof path, "%s/%s.json", j->a->out, t);
    U3D_TRY(write_file(j, path, write_json));
    snprintf(path, sizeof path, "%s/%s.png", j->a->out, t);
    U3D_TRY(write_png(j, path));
    snprintf(path, sizeof path, "%s/%s.md", j->a->out, t);
    return write_file(j, path, write_md);
}

static u3d_status run(xjob *j)
{
    U3D_TRY(setup(j));
    static u3d_status (*const tables[])(xjob *) = {table1, table2, table3};
    U3D_TRY(tables[j->a->table](j));
    if (j->a->table == 1)
        grid_by_slices(j);
    else
        grid_by_variant(j);
    U3D_TRY(write_all(j));
    write_md(stdout, j);
    return U3D_OK;
}

int u3d_cmd_experiment(int argc, char **argv)
{
    xargs a;
    memset(&a, 0, sizeof a);
    u3d_cli_train_defaults(&a.t);
    a.seeds = 1;
    a.folds = 3;
    a.sl[0] = 3, a.sl[1] = 5, a.sl[2] = 5;
    a.argc = argc;
    a.argv = argv;
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    xjob *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "unet3d experiment: out of host memory\n");
        return 1;
    }
    j->a = &a;
    rc = run(j) ? 1 : 0;
    if (rc)
        fprintf(stderr, "unet3d experiment: %s\n", j->e.msg);
    for (int i = 0; i < j->nv; i++) {
        u3d_volume_free(&j->v[i].image);
        u3d_labels_free(&j->v[i].labels);
    }
    u3d_backend_destroy(j->be);
    free(j->runs);
    free(j);
    return rc;
}
