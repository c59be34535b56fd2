/* libFuzzer harness for the command-line option parser (src/cli/options.c,
 * compiled in here: the CLI is not part of the library). The input is split
 * at newlines into arguments; every kind of option is in the table. What
 * parses must hold values inside their ranges; everything else is a clean
 * refusal (return 1). The list parsers (u3d_opts_names, u3d_opts_triples:
 * experiment's --variants/--slices-list, simulate's --pick) run on every
 * argument. Run through tools/fuzz.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/cli/options.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const choices[] = {"none", "plain", "affine", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[40] = {"fuzz"};
    int argc = 1;
    for (char *p = buf; argc < 40;) {
        argv[argc++] = p;
        char *nl = memchr(p, '\n', strlen(p));
        if (!nl)
            break;
        *nl = 0;
        p = nl + 1;
    }
    int flag = 0, i = 0, given3 = 0, choice = 0, nlist = 0;
    long l = 0;
    unsigned long long u = 0;
    double d = 0;
    float f = 0, f2[2] = {0, 0};
    int s3[3] = {0, 0, 0}, i3[3] = {0, 0, 0};
    const char *str = NULL, *in = NULL, *out = NULL, *list[4] = {0};
    const u3d_opt opts[] = {
        {"--flag", U3D_OPT_FLAG, &flag, 0, 0, NULL, .help = "f"},
        {"--set", U3D_OPT_SET, &flag, 2, 0, NULL, .help = NULL},
        {"--int", U3D_OPT_INT, &i, -5, 100, "N", .help = "i"},
        {"--long", U3D_OPT_LONG, &l, 1, 1e9, "N", .help = "l"},
        {"--u64", U3D_OPT_U64, &u, 0, 0, "S", .help = "u"},
        {"--double", U3D_OPT_DOUBLE, &d, 0, 1e6, "X", .help = "d",
         .flags = U3D_OPT_GT},
        {"--float", U3D_OPT_FLOAT, &f, 0, 10, "X", .help = "f"},
        {"--float2", U3D_OPT_FLOAT2, f2, 0, 100, "A,B", .help = "f2"},
        {"--size", U3D_OPT_SIZE3, s3, 1, 4096, "DxHxW", .help = "s",
         .given = &given3},
        {"--int3", U3D_OPT_INT3, i3, 0, 1000000, "Z,Y,X", .help = "i3"},
        {"--string", U3D_OPT_STRING, &str, 0, 0, "S", .help = "s"},
        {"--choice", U3D_OPT_CHOICE, &choice, 0, 0, NULL, .help = "c",
         .choices = choices},
        {"--in", U3D_OPT_STRING, &in, 0, 0, "F", .help = "in",
         .flags = U3D_OPT_IN},
        {"--out", U3D_OPT_STRING, &out, 0, 0, "F", .help = "out",
         .flags = U3D_OPT_OUT},
        {"--list", U3D_OPT_LIST, list, 0, 4, "F", .help = "l",
         .given = &nlist},
        {0}};
    const u3d_cmd_spec spec = {"fuzz", "[options]", NULL, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc != -1 && rc != 0 && rc != 1)
        __builtin_trap();
    if (rc == -1) { /* parsed: every value inside its range */
        if (i < -5 || i > 100 || (l && (l < 1 || l > 1000000000L)) ||
            (d && !(d > 0 && d <= 1e6)) || !(f >= 0 && f <= 10) ||
            !(isfinite(f2[0]) && isfinite(f2[1])) || nlist > 4 ||
            choice < 0 || choice > 2)
            __builtin_trap();
        for (int a = 0; a < 3; a++)
            if ((given3 && (s3[a] < 1 || s3[a] > 4096)) || i3[a] < 0 ||
                i3[a] > 1000000)
                __builtin_trap();
    }
    /* the list parsers on every argument: counts within bounds, names
     * distinct and known, triples in range */
    static const char *const names[] = {"3d", "3d-nobn", "2d", "all", NULL};
    for (int k = 1; k < argc; k++) {
        int idx[3], t[4][3];
        int n = u3d_opts_names(argv[k], names, 3, idx);
        if (n < 0 || n > 3)
            __builtin_trap();
        for (int a = 0; a < n; a++) {
            if (idx[a] < 0 || idx[a] > 3)
                __builtin_trap();
            for (int b = 0; b < a; b++)
                if (idx[a] == idx[b])
                    __builtin_trap();
        }
        n = u3d_opts_triples(argv[k], -3, 1000, 4, t);
        if (n < 0 || n > 4)
            __builtin_trap();
        for (int r = 0; r < n; r++)
            for (int a = 0; a < 3; a++)
                if (t[r][a] < -3 || t[r][a] > 1000)
                    __builtin_trap();
    }
    free(buf);
    return 0;
}
