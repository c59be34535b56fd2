/* unet3d bench: option parsing and output; the work is in bench_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "cli/cli.h"

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: unet3d bench [--device D] [--backend B] [--json] [--quick]\n"
            "                    [--only NAME[,NAME...]] [--reps N] [--list] "
            "[-v]\n\n"
            "Measures the device FMA peak and copy bandwidth, CLBlast SGEMM\n"
            "and every layer operation on the paper's shapes (N=1).\n"
            "  --json     one JSON object on stdout instead of the table\n"
            "  --quick    tiny sizes, one repetition (smoke test)\n"
            "  --only     run only these entries (the peak always runs)\n"
            "  --reps N   timed runs per entry, 1..20 (default: as many as\n"
            "             fit about a second, at least 1)\n"
            "  --list     print the entry names\n"
            "  -v         progress and the peak variants on stderr\n"
            "  --train PRESET [--input WxHxD] [--iters N]\n"
            "             one training iteration of a preset network\n"
            "             (default input: paper 132x132x116, small 96x96x96)\n"
            "  --augment  augmentation of a paper-sized patch: device vs plain\n"
            "             C, and its share of a paper-net training iteration\n"
            "Entries that fail (e.g. out of memory) are reported in their row;\n"
            "ops the backend lacks are listed as unsupported. The peak and\n"
            "SGEMM need OpenCL; on --backend ref the full sizes take long:\n"
            "use --quick or --only there.\n");
}

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

/* Parses the bench's own options; returns -1 to go on, else an exit code. */
typedef struct train_opts {
    int augment;        /* the augmentation benchmark */
    const char *preset; /* NULL: the kernel benchmarks */
    int in[3];          /* W,H,D; 0: the preset's default */
    int iters;
} train_opts;

static int parse(int argc, char **argv, u3d_bench_opts *o, int *json,
                 train_opts *t)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char x;
        if (!strcmp(a, "--train") && i + 1 < argc)
            t->preset = argv[++i];
        else if (!strcmp(a, "--augment"))
            t->augment = 1;
        else if (!strcmp(a, "--input") && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%dx%d%c", &t->in[0], &t->in[1],
                       &t->in[2], &x) != 3) {
                fprintf(stderr, "unet3d bench: --input wants WxHxD\n");
                return 2;
            }
        } else if (!strcmp(a, "--iters") && i + 1 < argc) {
            t->iters = atoi(argv[++i]);
            if (t->iters < 1) {
                fprintf(stderr, "unet3d bench: --iters wants a count >= 1\n");
                return 2;
            }
        }
        else if (!strcmp(a, "--json"))
            *json = 1;
        else if (!strcmp(a, "--quick"))
            o->quick = 1;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
            o->verbose = 1;
        else if (!strcmp(a, "--only") && i + 1 < argc)
            o->only = argv[++i];
        else if (!strcmp(a, "--reps") && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 20) {
                fprintf(stderr, "unet3d bench: --reps wants 1..20, not %s\n",
                        argv[i]);
                return 2;
            }
            o->reps = (int)n;
        } else if (!strcmp(a, "--list")) {
            list_names(stdout);
            return 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unet3d bench: unknown option %s\n\n", a);
            bench_usage(stderr);
            return 2;
        }
    }
    return -1;
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
    argc = u3d_cli_common(argc, argv, &cfg);
    train_opts t = {0, NULL, {0, 0, 0}, 2};
    int rc = parse(argc, argv, &o, &json, &t);
    if (rc >= 0)
        return rc;
    u3d_error e = {0};
    if (u3d_bench_check_only(&o, &e)) {
        fprintf(stderr, "unet3d bench: %s\n", e.msg);
        return 2;
    }
    u3d_backend *be;
    if (u3d_backend_create(&cfg, &be, &e)) {
        fprintf(stderr, "unet3d: %s\n", e.msg);
        return 1;
    }
    if (t.augment) {
        rc = u3d_bench_augment(be, o.quick, 1, json, stdout, &e) ? 1 : 0;
        if (rc)
            fprintf(stderr, "unet3d bench: %s\n", e.msg);
        u3d_backend_destroy(be);
        return rc;
    }
    if (t.preset) {
        if (!t.in[0]) {
            int paper = !strcmp(t.preset, "paper");
            t.in[0] = t.in[1] = paper ? 132 : 96;
            t.in[2] = paper ? 116 : 96;
        }
        rc = 0;
        if (u3d_bench_train(be, t.preset, t.in, t.iters, json, stdout, NULL, &e)) {
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
