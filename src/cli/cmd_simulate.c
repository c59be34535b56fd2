/* unet3d suggest --simulate: the annotation loop with the truth standing
 * in for the user (u3d_simulate, densify.h), for each way of picking the
 * next slices and each training seed: a table on stdout and, with --json,
 * a JSON file, with --plot a chart of IoU against annotated slices. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "core/files.h"
#include "core/json_out.h"
#include "report/plot.h"

typedef struct sim_args {
    u3d_cli_train t;
    u3d_backend_config bc;
    const char *truth, *img, *json, *plot;
    int rounds, count, pick; /* bit p: run u3d_sim_pick p */
    const char *picks;
    int seeds;               /* training seeds seed .. seed + seeds - 1 */
    double max_mb;
} sim_args;

/* --pick: a comma list of suggested, even, random, or all. */
static int parse_picks(const char *s, int *mask)
{
    /* u3d_sim_pick_names, then all */
    static const char *const names[] = {"suggested", "even", "random", "all",
                                        NULL};
    int idx[4], n = u3d_opts_names(s, names, 4, idx);
    *mask = 0;
    for (int i = 0; i < n; i++)
        *mask |= idx[i] == 3 ? 7 : 1 << idx[i];
    return n ? 0 : -1;
}

static int parse(int argc, char **argv, sim_args *a)
{
    const u3d_opt opts[] = {
        {"--simulate", U3D_OPT_STRING, &a->truth, 0, 0, "TRUTH.tif",
         .help = "dense labels standing in for the user",
         .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--image", U3D_OPT_STRING, &a->img, 0, 0, "IMG.tif",
         .help = "the volume", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--rounds", U3D_OPT_INT, &a->rounds, 1, 1000, "R",
         .help = "rounds of adding slices (default 3)"},
        {"--count", U3D_OPT_INT, &a->count, 1, 10000, "K",
         .help = "slices added per round (default 4)"},
        {"--pick", U3D_OPT_STRING, &a->picks, 0, 0, "LIST",
         .help = "how slices are added: any of suggested,even,\n"
                 "random (default all)"},
        {"--json", U3D_OPT_STRING, &a->json, 0, 0, "OUT.json",
         .help = "every round of every run", .flags = U3D_OPT_OUT},
        {"--seeds", U3D_OPT_INT, &a->seeds, 1, 1000, "S",
         .help = "S training seeds from --seed, averaged (default 1)"},
        {"--plot", U3D_OPT_STRING, &a->plot, 0, 0, "OUT.png",
         .help = "IoU against annotated slices, one line per pick",
         .flags = U3D_OPT_OUT},
        {"--max-memory", U3D_OPT_DOUBLE, &a->max_mb, 0, 1e9, "MB",
         .help = "device budget of the predictions (MiB)",
         .flags = U3D_OPT_GT},
        U3D_OPTS_NET(&a->t.net),
        U3D_OPTS_TRAIN(&a->t),
        U3D_OPTS_AUG(&a->t.aug),
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {
        "suggest",
        "--simulate TRUTH.tif --image IMG.tif (--iterations N | --minutes M)\n"
        "                      [--rounds R] [--count K] [--pick P] "
        "[--seeds S]\n"
        "                      [--json OUT.json] [--plot OUT.png]",
        "Starts from 1,1,1 evenly spaced slices of the truth, trains\n"
        "(--iterations or --minutes per round, densify's setup), scores the\n"
        "IoU on the voxels not annotated, adds K slices of the truth (the\n"
        "suggested ones, evenly spaced or random) and trains on, warm-\n"
        "started (the lr schedule restarts each round), R times. With\n"
        "--seeds S, all of it for S training seeds: the mean and the\n"
        "spread ((max - min) / 2) over seeds.\n",
        opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    if (!a->t.iterations && !(a->t.minutes > 0))
        return u3d_opts_fail(&spec, "give --iterations N or --minutes M "
                                    "(per round)");
    if (a->t.log)
        return u3d_opts_fail(&spec, "--log is not used by --simulate");
    if (a->picks && parse_picks(a->picks, &a->pick))
        return u3d_opts_fail(&spec, "--pick wants a comma list of suggested, "
                                    "even, random (or all)");
    return -1;
}

typedef struct sim_job {
    const sim_args *a;
    u3d_densify_opts o;
    u3d_volume raw, img;
    u3d_labels truth;
    u3d_backend *be;
    u3d_sim_row *rows[3]; /* per pick, seeds x (rounds + 1) */
    u3d_error e;
} sim_job;

/* Pick p's row of round r in the run of the k-th seed. */
static const u3d_sim_row *row(const sim_job *j, int p, int k, int r)
{
    return &j->rows[p][(size_t)k * (j->a->rounds + 1) + r];
}

/* Over seeds, for pick p and round r: the mean annotated slices and the
 * mean and spread ((max - min) / 2) of the mean foreground IoU (NaN
 * scores, a class absent, left out; NaN when none is left). */
typedef struct sim_stat {
    double slices, iou, spread;
} sim_stat;

static sim_stat stat(const sim_job *j, int p, int r)
{
    sim_stat st = {0, 0, 0};
    double lo = INFINITY, hi = -INFINITY;
    int n = 0;
    for (int k = 0; k < j->a->seeds; k++) {
        const u3d_sim_row *w = row(j, p, k, r);
        st.slices += w->slices[0] + w->slices[1] + w->slices[2];
        if (isnan(w->score.mean_fg))
            continue;
        st.iou += w->score.mean_fg;
        lo = fmin(lo, w->score.mean_fg);
        hi = fmax(hi, w->score.mean_fg);
        n++;
    }
    st.slices /= j->a->seeds;
    st.iou = n ? st.iou / n : NAN;
    st.spread = n ? (hi - lo) / 2 : NAN;
    return st;
}

/* Several seeds: per pick and round the means, then per round the picks
 * side by side. */
static void print_summary(const sim_job *j)
{
    printf("%-10s %5s %9s  mean fg IoU (unannotated), mean \xc2\xb1 spread over "
           "%d seeds\n", "pick", "round", "slices", j->a->seeds);
    for (int p = 0; p < 3; p++)
        for (int r = 0; j->rows[p] && r <= j->a->rounds; r++) {
            sim_stat st = stat(j, p, r);
            printf("%-10s %5d %9.1f  %.4f \xc2\xb1 %.4f\n",
                   u3d_sim_pick_names[p], r, st.slices, st.iou, st.spread);
        }
    for (int r = 0; r <= j->a->rounds; r++) {
        printf("round %d:", r);
        const char *sep = " ";
        for (int p = 0; p < 3; p++) {
            if (!j->rows[p])
                continue;
            sim_stat st = stat(j, p, r);
            printf("%s%s %.3f \xc2\xb1 %.3f", sep, u3d_sim_pick_names[p],
                   st.iou, st.spread);
            sep = ", ";
        }
        printf("\n");
    }
}

static void print_table(const sim_job *j)
{
    if (j->a->seeds > 1) {
        print_summary(j);
        return;
    }
    printf("%-10s %5s %-10s %9s %10s  %s\n", "pick", "round", "z,y,x",
           "annotated", "iterations", "IoU per class (unannotated) | mean fg");
    for (int p = 0; p < 3; p++)
        for (int r = 0; j->rows[p] && r <= j->a->rounds; r++) {
            const u3d_sim_row *w = row(j, p, 0, r);
            char zyx[32];
            snprintf(zyx, sizeof zyx, "%d,%d,%d", w->slices[0], w->slices[1],
                     w->slices[2]);
            printf("%-10s %5d %-10s %8.1f%% %10ld  ", u3d_sim_pick_names[p],
                   w->round, zyx, 100.0 * w->annotated, w->iterations);
            for (int c = 0; c < w->score.classes; c++)
                printf("%.4f ", w->score.iou[c]);
            printf("| %.4f\n", w->score.mean_fg);
        }
}

static void json_row(FILE *f, const u3d_sim_row *w)
{
    fprintf(f, "{\"round\": %d, \"slices\": [%d, %d, %d], \"annotated\": "
               "%.6f, \"iterations\": %ld, \"seconds\": %.3f, \"iou\": [",
            w->round, w->slices[0], w->slices[1], w->slices[2], w->annotated,
            w->iterations, w->seconds);
    for (int c = 0; c < w->score.classes; c++) {
        fputs(c ? ", " : "", f);
        u3d_json_num(f, w->score.iou[c]);
    }
    fputs("], \"mean_fg_iou\": ", f);
    u3d_json_num(f, w->score.mean_fg);
    fputs("}", f);
}

/* The runs of the k-th seed: {"suggested": [rows], ...}. */
static void json_runs(FILE *f, const sim_job *j, int k)
{
    int first = 1;
    fputs("{", f);
    for (int p = 0; p < 3; p++) {
        if (!j->rows[p])
            continue;
        fprintf(f, "%s\n  \"%s\": [", first ? "" : ",", u3d_sim_pick_names[p]);
        first = 0;
        for (int r = 0; r <= j->a->rounds; r++) {
            fputs(r ? ",\n    " : "\n    ", f);
            json_row(f, row(j, p, k, r));
        }
        fputs("]", f);
    }
    fputs("}", f);
}

/* Per pick, per round: the means and spreads of print_summary. */
static void json_summary(FILE *f, const sim_job *j)
{
    int first = 1;
    fputs("{", f);
    for (int p = 0; p < 3; p++) {
        if (!j->rows[p])
            continue;
        fprintf(f, "%s\n  \"%s\": [", first ? "" : ",", u3d_sim_pick_names[p]);
        first = 0;
        for (int r = 0; r <= j->a->rounds; r++) {
            sim_stat st = stat(j, p, r);
            fprintf(f, "%s{\"round\": %d, \"slices\": %.3f, \"mean_fg_iou\": ",
                    r ? ",\n    " : "\n    ", r, st.slices);
            u3d_json_num(f, st.iou);
            fputs(", \"spread\": ", f);
            u3d_json_num(f, st.spread);
            fputs("}", f);
        }
        fputs("]", f);
    }
    fputs("}", f);
}

/* One seed: {"seed": S, "runs": {...}} as before --seeds; several:
 * "seeds", "runs_by_seed" and "summary". */
static void json_body(FILE *f, const sim_job *j)
{
    const sim_args *a = j->a;
    fputs("{\"image\": ", f);
    u3d_json_str(f, a->img);
    fputs(", \"truth\": ", f);
    u3d_json_str(f, a->truth);
    fprintf(f, ", \"rounds\": %d, \"count\": %d, ", a->rounds, a->count);
    if (a->seeds == 1) {
        fprintf(f, "\"seed\": %llu, ", a->t.seed);
    } else {
        fputs("\"seeds\": [", f);
        for (int k = 0; k < a->seeds; k++)
            fprintf(f, "%s%llu", k ? ", " : "", a->t.seed + (unsigned)k);
        fputs("], ", f);
    }
    fprintf(f, "\"iterations_per_round\": %ld, \"minutes_per_round\": %g, ",
            a->t.iterations, a->t.iterations ? 0.0 : a->t.minutes);
    if (a->seeds == 1) {
        fputs("\"runs\": ", f);
        json_runs(f, j, 0);
        fputs("}\n", f);
        return;
    }
    fputs("\"runs_by_seed\": [", f);
    for (int k = 0; k < a->seeds; k++) {
        fprintf(f, "%s{\"seed\": %llu, \"runs\": ", k ? ",\n " : "\n ",
                a->t.seed + (unsigned)k);
        json_runs(f, j, k);
        fputs("}", f);
    }
    fputs("],\n\"summary\": ", f);
    json_summary(f, j);
    fputs("}\n", f);
}

static u3d_status write_json(const sim_job *j)
{
    u3d_error *err = (u3d_error *)&j->e;
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, j->a->json, err));
    FILE *f = u3d_outfile_stream(&o, err);
    if (!f) {
        u3d_outfile_abort(&o);
        return U3D_ERR_IO;
    }
    json_body(f, j);
    return u3d_outfile_commit(&o, err);
}

/* Pick p's curve: x the mean annotated slices, y the mean IoU, err the
 * spread over seeds, one point per round, in xye (3 x (rounds + 1)). */
static void curve(const sim_job *j, int p, double *xye)
{
    int n = j->a->rounds + 1;
    for (int r = 0; r < n; r++) {
        sim_stat st = stat(j, p, r);
        xye[r] = st.slices;
        xye[n + r] = st.iou;
        xye[2 * n + r] = st.spread;
    }
}

static u3d_status write_plot(sim_job *j)
{
    const sim_args *a = j->a;
    int n = a->rounds + 1, ns = 0;
    double *xye = malloc(sizeof *xye * 9 * (size_t)n);
    if (!xye)
        return u3d_seterr(&j->e, U3D_ERR_OOM, "out of host memory");
    u3d_plot_series s[3];
    for (int p = 0; p < 3; p++) {
        if (!j->rows[p])
            continue;
        double *c = xye + (size_t)3 * n * ns;
        curve(j, p, c);
        s[ns++] = (u3d_plot_series){u3d_sim_pick_names[p], n, c, c + n,
                                    c + 2 * n};
    }
    const char *base = strrchr(a->img, '/');
    char title[512];
    snprintf(title, sizeof title, "annotation loop: %s", base ? base + 1
                                                              : a->img);
    u3d_plot pl = {title, "annotated slices", "IoU (unannotated voxels)",
                   0, 0, 0, 0, s, ns, NULL, 0};
    u3d_status st = u3d_plot_lines(a->plot, &pl, &j->e);
    free(xye);
    return st;
}

/* The setup as densify's, from the same options. */
static u3d_status setup(sim_job *j)
{
    const sim_args *a = j->a;
    u3d_densify_opts *o = &j->o;
    U3D_TRY(u3d_cli_densify_setup(&a->t, o, &j->e));
    o->image_name = a->img;
    o->labels_name = a->truth;
    o->max_memory = (size_t)(a->max_mb * 1048576.0);
    return U3D_OK;
}

/* Pick p with the k-th seed, on a fresh copy of the image (each run
 * normalizes its own). */
static u3d_status run_one(sim_job *j, int p, int k)
{
    const sim_args *a = j->a;
    size_t n = (size_t)j->raw.c * j->raw.d * j->raw.h * j->raw.w;
    u3d_volume_free(&j->img);
    U3D_TRY(u3d_volume_alloc(j->raw.c, j->raw.d, j->raw.h, j->raw.w,
                             &j->img, &j->e));
    memcpy(j->img.data, j->raw.data, n * sizeof *j->img.data);
    memcpy(j->img.spacing, j->raw.spacing, sizeof j->raw.spacing);
    u3d_densify_opts o = j->o;
    o.meta.seed = a->t.seed + (uint64_t)k;
    return u3d_simulate(j->be, &o, (u3d_sim_pick)p, a->rounds, a->count,
                        &j->img, &j->truth,
                        j->rows[p] + (size_t)k * (a->rounds + 1), &j->e);
}

static u3d_status run(sim_job *j)
{
    const sim_args *a = j->a;
    U3D_TRY(setup(j));
    U3D_TRY(u3d_vio_read_volume(a->img, &j->raw, NULL, &j->e));
    U3D_TRY(u3d_vio_read_labels(a->truth, &j->truth, NULL, &j->e));
    U3D_TRY(u3d_check_image_labels(&j->raw, a->img, &j->truth, a->truth,
                                   &j->e));
    U3D_TRY(u3d_backend_create(&a->bc, &j->be, &j->e));
    for (int p = 0; p < 3; p++) {
        if (!(a->pick & 1 << p))
            continue;
        j->rows[p] = calloc((size_t)a->seeds * (a->rounds + 1),
                            sizeof *j->rows[p]);
        if (!j->rows[p])
            return u3d_seterr(&j->e, U3D_ERR_OOM, "out of host memory");
        for (int k = 0; k < a->seeds; k++)
            U3D_TRY(run_one(j, p, k));
    }
    if (a->json)
        U3D_TRY(write_json(j));
    if (a->plot)
        U3D_TRY(write_plot(j));
    print_table(j);
    return U3D_OK;
}

int u3d_cmd_suggest_simulate(int argc, char **argv)
{
    sim_args a;
    memset(&a, 0, sizeof a);
    u3d_cli_train_defaults(&a.t);
    a.rounds = 3;
    a.count = 4;
    a.pick = 7;
    a.seeds = 1;
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    sim_job *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "unet3d suggest: out of host memory\n");
        return 1;
    }
    j->a = &a;
    rc = run(j) ? 1 : 0;
    if (rc)
        fprintf(stderr, "unet3d suggest: %s\n", j->e.msg);
    for (int p = 0; p < 3; p++)
        free(j->rows[p]);
    u3d_volume_free(&j->raw);
    u3d_volume_free(&j->img);
    u3d_labels_free(&j->truth);
    u3d_backend_destroy(j->be);
    free(j);
    return rc;
}
