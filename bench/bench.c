/* unet3d bench: option parsing and output; the work is in bench_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "dist/dist.h"

static void list_names(FILE *f)
{
    const char *names[U3D_BENCH_MAX_OPS];
    int n = u3d_bench_op_names(names, U3D_BENCH_MAX_OPS);
    fprintf(f, "peak\n");
    for (int i = 0; u3d_bench_sgemm_names[i]; i++)
        fprintf(f, "%s\n", u3d_bench_sgemm_names[i]);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\n", names[i]);
}

typedef struct train_opts {
    int augment;        /* the augmentation benchmark */
    int allreduce;      /* the gradient allreduce benchmark (mpirun) */
    const char *preset; /* NULL: the kernel benchmarks */
    int infer;          /* preset: one inference tile, not a training
                           iteration */
    int in[3];          /* D,H,W; 0: the preset's default */
    int iters;
    const char *infer_preset;
} train_opts;

static const char ABOUT[] =
    "Measures the device FMA peak and copy bandwidth, CLBlast SGEMM\n"
    "and every layer operation on the paper's shapes (N=1).\n"
    "Entries that fail (e.g. out of memory) are reported in their row;\n"
    "ops the backend lacks are listed as unsupported. The peak and\n"
    "SGEMM need OpenCL; on --backend ref the full sizes take long:\n"
    "use --quick or --only there.\n";

/* Parses the bench's options; returns -1 to go on, else an exit code. */
static int parse(int argc, char **argv, u3d_backend_config *cfg,
                 u3d_bench_opts *o, int *json, train_opts *t)
{
    int list = 0;
    const u3d_opt opts[] = {
        {"--json", U3D_OPT_FLAG, json, 0, 0, NULL,
         .help = "one JSON object on stdout instead of the table"},
        {"--quick", U3D_OPT_FLAG, &o->quick, 0, 0, NULL,
         .help = "tiny sizes, one repetition (smoke test)"},
        {"--only", U3D_OPT_STRING, &o->only, 0, 0, "NAME[,NAME...]",
         .help = "run only these entries (the peak always runs)"},
        {"--reps", U3D_OPT_INT, &o->reps, 1, 20, "N",
         .help = "timed runs per entry (default: as many as\n"
                 "fit about a second, at least 1)"},
        {"--list", U3D_OPT_FLAG, &list, 0, 0, NULL,
         .help = "print the entry names"},
        {"--verbose", U3D_OPT_FLAG, &o->verbose, 0, 0, NULL,
         .help = "progress and the peak variants on stderr"},
        {"-v", U3D_OPT_FLAG, &o->verbose, 0, 0, NULL, .help = NULL},
        {"--train", U3D_OPT_STRING, &t->preset, 0, 0, "PRESET",
         .help = "one training iteration of a preset network"},
        {"--infer", U3D_OPT_STRING, &t->infer_preset, 0, 0, "PRESET",
         .help = "one inference tile of a preset network, as\n"
                 "predict runs it: seconds per tile, GFLOP/s"},
        {"--input", U3D_OPT_SIZE3, t->in, 1, 4096, "DxHxW",
         .help = "its input (default: paper 116x132x132,\n"
                 "others 96x96x96)"},
        {"--iters", U3D_OPT_INT, &t->iters, 1, 1000000, "N",
         .help = "its timed iterations (default 2)"},
        {"--augment", U3D_OPT_FLAG, &t->augment, 0, 0, NULL,
         .help = "augmentation of a paper-sized patch: device vs\n"
                 "plain C, and its share of a paper-net iteration"},
        {"--allreduce", U3D_OPT_FLAG, &t->allreduce, 0, 0, NULL,
         .help = "under mpirun: allreduce time of the paper and\n"
                 "small nets' gradients, communication share"},
        U3D_OPTS_DEVICE(cfg),
        {0}};
    const u3d_cmd_spec spec = {"bench", "[options]", ABOUT, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc < 0 && list) {
        list_names(stdout);
        return 0;
    }
    return rc;
}

static int count_failed(const u3d_bench_report *r)
{
    int n = 0;
    for (int i = 0; i < r->nsgemm; i++)
        n += r->sgemm[i].state == U3D_BENCH_FAILED;
    for (int i = 0; i < r->nops; i++)
        n += r->ops[i].state == U3D_BENCH_FAILED;
    return n;
}

int u3d_cmd_bench(int argc, char **argv)
{
    u3d_backend_config cfg = {0};
    u3d_bench_opts o = {0};
    int json = 0;
    train_opts t = {0, 0, NULL, 0, {0, 0, 0}, 2, NULL};
    int rc = parse(argc, argv, &cfg, &o, &json, &t);
    if (rc >= 0)
        return rc;
    u3d_error e = {0};
    if (u3d_bench_check_only(&o, &e)) {
        fprintf(stderr, "unet3d bench: %s\n", e.msg);
        return 1;
    }
    u3d_backend *be;
    if (u3d_backend_create(&cfg, &be, &e)) {
        fprintf(stderr, "unet3d: %s\n", e.msg);
        return 1;
    }
    if (t.allreduce) {
        rc = u3d_bench_allreduce(be, o.quick, json, stdout, &e) ? 1 : 0;
        if (rc)
            u3d_dist_report("bench", &e);
        u3d_backend_destroy(be);
        return rc;
    }
    if (t.augment) {
        rc = u3d_bench_augment(be, o.quick, 1, json, stdout, &e) ? 1 : 0;
        if (rc)
            fprintf(stderr, "unet3d bench: %s\n", e.msg);
        u3d_backend_destroy(be);
        return rc;
    }
    if (t.infer_preset) {
        if (t.preset) {
            fprintf(stderr, "unet3d bench: --train and --infer are two runs: "
                            "give one\n");
            u3d_backend_destroy(be);
            return 1;
        }
        t.preset = t.infer_preset;
        t.infer = 1;
    }
    if (t.preset) {
        if (!t.in[0]) {
            int paper = !strcmp(t.preset, "paper");
            t.in[0] = paper ? 116 : 96;
            t.in[1] = t.in[2] = paper ? 132 : 96;
        }
        rc = 0;
        if ((t.infer ? u3d_bench_infer : u3d_bench_train)(
                be, t.preset, t.in, t.iters, json, stdout, NULL, &e)) {
            fprintf(stderr, "unet3d bench: %s\n", e.msg);
            rc = 1;
        }
        u3d_backend_destroy(be);
        return rc;
    }
    u3d_bench_report *r = calloc(1, sizeof *r);
    if (!r) {
        u3d_backend_destroy(be);
        fprintf(stderr, "unet3d bench: out of host memory\n");
        return 1;
    }
    u3d_status st = u3d_bench_run(be, &o, r, &e);
    if (st)
        fprintf(stderr, "unet3d bench: %s\n", e.msg);
    else if (json)
        u3d_bench_print_json(r, stdout);
    else
        u3d_bench_print_table(r, stdout);
    int failed = st ? 0 : count_failed(r);
    if (failed)
        fprintf(stderr, "unet3d bench: %d entr%s failed (see the rows)\n",
                failed, failed == 1 ? "y" : "ies");
    free(r);
    u3d_backend_destroy(be);
    return st ? 1 : 0;
}
