/* unet3d plan: the settings train and densify would choose from these
 * volumes (plan.h), each with its reason, as a table or JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "core/json_out.h"

#define MAXV 32

typedef struct pargs {
    u3d_cli_net net;
    const char *imgs[MAXV], *labs[MAXV];
    int nimg, nlab, ignore_label, json;
} pargs;

typedef struct pjob {
    const pargs *a;
    u3d_volume v[MAXV];
    u3d_labels l[MAXV];
    int n;
    u3d_plan p;
    u3d_error e;
} pjob;

static const char ABOUT[] =
    "Prints the settings train and densify take from these volumes when\n"
    "not given (kernels/pools, patch, augmentation, class weights; the\n"
    "normalization), each with its reason, and the intensity statistics\n"
    "and annotated voxels per class. Classes default to the largest\n"
    "annotated label + 1.\n";

static int parse(int argc, char **argv, pargs *a)
{
    const u3d_opt opts[] = {
        U3D_OPTS_PAIRS(a, MAXV),
        {"--preset", U3D_OPT_STRING, &a->net.preset, 0, 0, "P",
         .help = "network preset: paper, small (default) or tiny"},
        {"--classes", U3D_OPT_INT, &a->net.classes, 1, U3D_MAX_CLASSES, "K",
         .help = "number of classes (default: the largest label + 1)"},
        {"--spacing", U3D_OPT_STRING, &a->net.spacing, 0, 0, "ZxYxX",
         .help = "voxel spacing (default: the first image's)"},
        {"--ignore-label", U3D_OPT_INT, &a->ignore_label, 0, 65535, "L",
         .help = "label of unannotated voxels (default 255)"},
        {"--json", U3D_OPT_FLAG, &a->json, 0, 0, NULL,
         .help = "the plan as JSON on stdout"},
        {0}};
    const u3d_cmd_spec spec = {
        "plan", "--image A.tif --labels L.tif [--image B.tif --labels ...]\n"
                "                   [options]",
        ABOUT, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->nimg != a->nlab)
        return u3d_opts_fail(&spec, "%d --image but %d --labels: give one "
                                    "--labels per --image", a->nimg, a->nlab);
    return -1;
}

/* The volumes as train reads them (raw: the plan looks at intensities). */
static u3d_status read_all(pjob *j)
{
    for (; j->n < j->a->nimg; j->n++) {
        int i = j->n;
        U3D_TRY(u3d_vio_read_volume(j->a->imgs[i], &j->v[i], NULL, &j->e));
        if (i && j->v[i].c != j->v[0].c)
            return u3d_seterr(&j->e, U3D_ERR_SHAPE,
                              "%s: %d channels, %s has %d: every image needs "
                              "the same channels", j->a->imgs[i], j->v[i].c,
                              j->a->imgs[0], j->v[0].c);
        U3D_TRY(u3d_cli_read_annotation(&j->v[i], j->a->imgs[i],
                                        j->a->labs[i], NULL, 1, &j->l[i],
                                        &j->e));
    }
    return U3D_OK;
}

static u3d_status make(pjob *j)
{
    const pargs *a = j->a;
    u3d_net_config c;
    u3d_cli_net n = a->net; /* classes from the labels unless given */
    U3D_TRY(u3d_cli_net_config(&n, &c, &j->e));
    if (!a->net.classes)
        c.classes = 0;
    c.in_channels = j->v[0].c;
    double sp[3];
    if (a->net.spacing)
        U3D_TRY(u3d_cli_parse_spacing(a->net.spacing, sp, &j->e));
    u3d_plan_input in = {.images = j->v,
                         .labels = j->l,
                         .label_names = a->labs,
                         .n = j->n,
                         .net = c,
                         .keep_padding = a->net.padding >= 0,
                         .ignore_label = a->ignore_label,
                         .spacing = a->net.spacing ? sp : NULL};
    return u3d_plan_make(&in, &j->p, &j->e);
}

/* The table's and the JSON's rows: setting, value, reason. */
#define PLAN_ROWS 8
typedef struct row {
    const char *name;
    char value[200];
    const char *why;
} row;

static int rows(const u3d_plan *p, row *r)
{
    char net[160];
    snprintf(r[0].value, sizeof r[0].value, "%gx%gx%g%s%s", p->spacing[0],
             p->spacing[1], p->spacing[2], p->unit[0] ? " " : "", p->unit);
    snprintf(r[1].value, sizeof r[1].value, "%s",
             u3d_net_aniso_str(&p->net, net, sizeof net));
    snprintf(r[2].value, sizeof r[2].value,
             "train %dx%dx%d %s, densify %dx%dx%d %s", p->patch_train[0],
             p->patch_train[1], p->patch_train[2],
             p->padding_train == U3D_PAD_SAME ? "same" : "valid",
             p->patch_densify[0], p->patch_densify[1], p->patch_densify[2],
             p->padding_densify == U3D_PAD_SAME ? "same" : "valid");
    u3d_plan_aug_str(p, r[3].value, sizeof r[3].value);
    if (p->aug_densify_none) {
        size_t used = strlen(r[3].value);
        snprintf(r[3].value + used, sizeof r[3].value - used,
                 "; densify none");
    }
    snprintf(r[4].value, sizeof r[4].value, "percentile %g..%g",
             U3D_PLAN_PLO, U3D_PLAN_PHI);
    int k = snprintf(r[5].value, sizeof r[5].value, "%s:",
                     p->weights == U3D_WEIGHTS_SQRT ? "sqrt" : "auto");
    for (int c = 0; c < p->net.classes && k < (int)sizeof r[5].value - 12; c++)
        k += snprintf(r[5].value + k, sizeof r[5].value - (size_t)k, " %.3g",
                      (double)p->class_weights[c]);
    snprintf(r[6].value, sizeof r[6].value, "%s, lr %g",
             u3d_name_of(u3d_optimizer_names, p->optimizer), (double)p->lr);
    if (p->net.classes <= 2)
        snprintf(r[7].value, sizeof r[7].value,
                 "calibrated on held-out slices (--holdout %g)", p->holdout);
    else
        snprintf(r[7].value, sizeof r[7].value,
                 "densify calibrated (--holdout %g), train argmax",
                 p->holdout);
    const char *names[] = {"spacing",   "network",       "patch",
                           "augment",   "normalize",     "class weights",
                           "optimizer", "decision"};
    const char *why[] = {p->spacing_why, p->net_why,     p->patch_why,
                         p->aug_why,     p->norm_why,    p->weights_why,
                         p->optim_why,   p->decision_why};
    for (int i = 0; i < PLAN_ROWS; i++)
        r[i].name = names[i], r[i].why = why[i];
    return PLAN_ROWS;
}

static void print_table(const pjob *j)
{
    const u3d_plan *p = &j->p;
    row r[PLAN_ROWS];
    int n = rows(p, r);
    int wide = 5; /* the value column fits the longest value */
    for (int i = 0; i < n; i++)
        wide = (int)strlen(r[i].value) > wide ? (int)strlen(r[i].value)
                                              : wide;
    printf("%-14s %-*s  %s\n", "setting", wide, "value", "reason");
    for (int i = 0; i < n; i++)
        printf("%-14s %-*s  %s\n", r[i].name, wide, r[i].value, r[i].why);
    printf("\nintensity (raw)         min      p%g     p%g       mean        "
           "std        max\n", U3D_PLAN_PLO, U3D_PLAN_PHI);
    for (int i = 0; i < p->nstats; i++) {
        const u3d_plan_stats *s = &p->stats[i];
        printf("image %2d channel %2d %10.4g %10.4g %10.4g %10.4g %10.4g "
               "%10.4g\n", s->volume + 1, s->channel, s->min, s->plo, s->phi,
               s->mean, s->std, s->max);
    }
    if (p->stats_left_out)
        printf("(%d more not shown)\n", p->stats_left_out);
    printf("\nclass  annotated voxels  balanced weight (--class-weights auto)"
           "\n");
    for (int c = 0; c < p->net.classes; c++)
        printf("%5d  %16zu  %.4g\n", c, p->counts[c], (double)p->balanced[c]);
}

static void json_ints(FILE *f, const int *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? ", " : "", v[i]);
    fputc(']', f);
}

static void json_floats(FILE *f, const float *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        u3d_json_num(f, v[i]);
    }
    fputc(']', f);
}

static void json_settings(FILE *f, const u3d_plan *p)
{
    row r[PLAN_ROWS];
    int n = rows(p, r);
    fprintf(f, "  \"settings\": [\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "    {\"setting\": ");
        u3d_json_str(f, r[i].name);
        fprintf(f, ", \"value\": ");
        u3d_json_str(f, r[i].value);
        fprintf(f, ", \"reason\": ");
        u3d_json_str(f, r[i].why);
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ],\n");
}

static void json_stats(FILE *f, const u3d_plan *p)
{
    fprintf(f, "  \"intensity\": [");
    for (int i = 0; i < p->nstats; i++) {
        const u3d_plan_stats *s = &p->stats[i];
        const double v[6] = {s->min, s->plo, s->phi, s->mean, s->std, s->max};
        const char *k[6] = {"min", "p_lo", "p_hi", "mean", "std", "max"};
        fprintf(f, "%s\n    {\"image\": %d, \"channel\": %d", i ? "," : "",
                s->volume + 1, s->channel);
        for (int m = 0; m < 6; m++) {
            fprintf(f, ", \"%s\": ", k[m]);
            u3d_json_num(f, v[m]);
        }
        fputc('}', f);
    }
    fprintf(f, "\n  ],\n");
}

static void print_json(const pjob *j)
{
    const u3d_plan *p = &j->p;
    FILE *f = stdout;
    fprintf(f, "{\n  \"spacing\": [%.17g, %.17g, %.17g],\n  \"unit\": ",
            p->spacing[0], p->spacing[1], p->spacing[2]);
    u3d_json_str(f, p->unit);
    fprintf(f, ",\n  \"anisotropy\": ");
    u3d_json_num(f, p->aniso);
    fprintf(f, ",\n");
    json_settings(f, p);
    fprintf(f, "  \"patch_train\": ");
    json_ints(f, p->patch_train, 3);
    fprintf(f, ",\n  \"padding_train\": \"%s\"",
            p->padding_train == U3D_PAD_SAME ? "same" : "valid");
    fprintf(f, ",\n  \"patch_densify\": ");
    json_ints(f, p->patch_densify, 3);
    fprintf(f, ",\n  \"padding_densify\": \"%s\"",
            p->padding_densify == U3D_PAD_SAME ? "same" : "valid");
    fprintf(f, ",\n  \"augment\": {\"preset\": \"default\", \"changed\": %s, "
               "\"rotate_deg\": ", p->aug_changed ? "true" : "false");
    json_floats(f, p->aug.rotate_deg, 3);
    fprintf(f, ", \"sigma\": ");
    json_floats(f, p->aug.sigma, 3);
    fprintf(f, ", \"grid\": ");
    json_ints(f, p->aug.grid_spacing, 3);
    fprintf(f, ", \"densify\": \"%s\"},\n  \"normalize\": "
               "\"percentile\",\n", p->aug_densify_none ? "none" : "default");
    json_stats(f, p);
    int k = p->net.classes;
    fprintf(f, "  \"class_weights\": {\"mode\": \"%s\", \"weights\": ",
            p->weights == U3D_WEIGHTS_SQRT ? "sqrt" : "auto");
    json_floats(f, p->class_weights, k);
    fprintf(f, ", \"balanced\": ");
    json_floats(f, p->balanced, k);
    fprintf(f, ", \"annotated\": [");
    for (int c = 0; c < k; c++)
        fprintf(f, "%s%zu", c ? ", " : "", p->counts[c]);
    fprintf(f, "]}\n}\n");
}

int u3d_cmd_plan(int argc, char **argv)
{
    pargs a;
    memset(&a, 0, sizeof a);
    u3d_cli_net_defaults(&a.net, "small");
    a.ignore_label = 255;
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    pjob *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "unet3d plan: out of host memory\n");
        return 1;
    }
    j->a = &a;
    u3d_status st = read_all(j);
    if (!st)
        st = make(j);
    if (st)
        fprintf(stderr, "unet3d plan: %s\n", j->e.msg);
    else if (a.json)
        print_json(j);
    else
        print_table(j);
    for (int i = 0; i <= j->n && i < MAXV; i++) {
        u3d_volume_free(&j->v[i]);
        u3d_labels_free(&j->l[i]);
    }
    free(j);
    return st ? 1 : 0;
}
