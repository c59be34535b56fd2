/* The option parser of the unet3d commands: bad values (junk, NaN,
 * negative, out of range, overflowing) exit 1 with one line naming the
 * option and the value; sizes are D x H x W everywhere; every command's
 * --help lists its options. Needs no data and no device. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

static const char *exe = U3D_BINARY_DIR "/unet3d";
static char dir[128];

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/u3d_opts_%d", (int)getpid());
    mkdir(dir, 0755);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* Runs `unet3d ARGS`; returns the exit status, stdout and stderr in
 * out/err (at most n bytes each). */
static int run(const char *args, char *out, char *err, size_t n)
{
    char cmd[4096], po[256], pe[256];
    snprintf(po, sizeof po, "%s/out.txt", dir);
    snprintf(pe, sizeof pe, "%s/err.txt", dir);
    snprintf(cmd, sizeof cmd, "%s %s > %s 2> %s", exe, args, po, pe);
    int rc = system(cmd);
    const char *paths[2] = {po, pe};
    char *bufs[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        size_t k = f ? fread(bufs[i], 1, n - 1, f) : 0;
        bufs[i][k] = 0;
        if (f)
            fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* exit 1, one line on stderr naming `opt` and `value`, nothing else */
static void rejected(const char *args, const char *opt, const char *value)
{
    char out[8192], err[8192];
    int rc = run(args, out, err, sizeof out);
    int lines = 0;
    for (char *p = err; *p; p++)
        lines += *p == '\n';
    if (rc != 1 || lines != 1 || !strstr(err, opt) ||
        (value && !strstr(err, value)))
        fail_msg("unet3d %s: expected exit 1 and one line naming %s%s%s%s; "
                 "got exit %d: %s", args, opt, value ? " and '" : "",
                 value ? value : "", value ? "'" : "", rc, err);
}

static void bad_values(void **state)
{
    (void)state;
    /* issue #14 item 12 */
    rejected("train --levels -1", "--levels", "-1");
    rejected("train --seed abc", "--seed", "abc");
    rejected("train --image a.tif --labels b.tif --model m.u3d --iterations "
             "1 --aug-mirror qqq", "--aug-mirror", "qqq");
    rejected("densify --max-memory -1", "--max-memory", "-1");
    rejected("densify --max-memory nan", "--max-memory", "nan");
    rejected("augment --sigma nan", "--sigma", "nan");
    rejected("augment --aug-sigma nan", "--aug-sigma", "nan");
    rejected("train --minutes nan", "--minutes", "nan");
    rejected("sparsify --slices 99999999999", "--slices", "99999999999");
    rejected("sparsify --slices 5,5,99999999999", "--slices", "99999999999");
    rejected("evaluate --classes 2147483647", "--classes", "2147483647");
    rejected("info --input 2147483647x2147483647x2147483647", "--input",
             "2147483647x2147483647x2147483647");
    /* trailing junk, infinities, overflow, empty, ranges */
    rejected("train --iterations 10x", "--iterations", "10x");
    rejected("train --iterations 99999999999999999999", "--iterations",
             "99999999999999999999");
    rejected("train --lr inf", "--lr", "inf");
    rejected("train --lr 0", "--lr", "0");
    rejected("train --momentum 1e400", "--momentum", "1e400");
    rejected("train --patch 92x92", "--patch", "92x92");
    rejected("train --patch 92x92x92x", "--patch", "92x92x92x");
    rejected("train --patch 0x92x92", "--patch", "0x92x92");
    rejected("train --patch ' 92x92x92'", "--patch", " 92x92x92");
    rejected("train --classes 0", "--classes", "0");
    rejected("train --batch 100000", "--batch", "100000");
    rejected("train --ignore-label 70000", "--ignore-label", "70000");
    rejected("train --aug-scale 0.9", "--aug-scale", "0.9");
    rejected("train --aug-gray maybe", "--aug-gray", "maybe");
    rejected("demo --seed -1", "--seed", "-1");
    rejected("demo --seed 99999999999999999999999", "--seed",
             "99999999999999999999999");
    rejected("predict --tile 116x132x0", "--tile", "116x132x0");
    rejected("predict --max-memory inf", "--max-memory", "inf");
    rejected("evaluate --ignore-label -3 --prediction a --truth b",
             "--ignore-label", "-3");
    rejected("augment --samples 0", "--samples", "0");
    rejected("info --levels 99", "--levels", "99");
    rejected("info --base-channels 1e3", "--base-channels", "1e3");
    rejected("bench --reps 0", "--reps", "0");
    /* names: one mapping each */
    rejected("info --batchnorm sometimes", "--batchnorm", "sometimes");
    rejected("densify --padding full", "--padding", "full");
    rejected("train --normalize minmax", "--normalize", "minmax");
    rejected("train --lr-schedule cosine", "--lr-schedule", "cosine");
    rejected("train --augment heavy", "--augment", "heavy");
    /* unknown options, missing values, missing options */
    rejected("train --bogus 3", "--bogus", NULL);
    rejected("info --input-order dhw", "--input-order", NULL);
    rejected("predict --model m.u3d --tile", "--tile", NULL);
    rejected("train --quiet=yes", "--quiet", NULL);
    rejected("sparsify --labels a.tif --out b.tif", "--slices", NULL);
    rejected("golden", "DIR", NULL);
    rejected("train --image a.tif --labels b.tif --model m.u3d",
             "--iterations", NULL);
    rejected("densify --image a.tif --out b.tif", "--labels", NULL);
}

/* D x H x W in and out, the paper's X x Y x Z alongside */
static void info_sizes_dhw(void **state)
{
    (void)state;
    char out[8192], err[8192];
    assert_int_equal(run("info --preset paper --input 116x132x132", out, err,
                         sizeof out), 0);
    if (!strstr(out, "input   (D x H x W) 116x132x132") ||
        !strstr(out, "output  (D x H x W) 28x44x44") ||
        !strstr(out, "X x Y x Z: 44x44x28"))
        fail_msg("info --input 116x132x132: %s", out);
    /* the preset's tile by default, and --input=VALUE */
    assert_int_equal(run("info --preset paper", out, err, sizeof out), 0);
    assert_non_null(strstr(out, "(D x H x W) 116x132x132"));
    assert_int_equal(run("info --preset tiny --input=44x44x52", out, err,
                         sizeof out), 0);
    assert_non_null(strstr(out, "output  (D x H x W) 4x4x12"));
    /* the old batch-norm spelling is the same option */
    char out2[8192];
    assert_int_equal(run("info --no-bn --input 116x132x132", out, err,
                         sizeof out), 0);
    assert_int_equal(run("info --batchnorm none --input 116x132x132", out2,
                         err, sizeof out2), 0);
    assert_string_equal(out, out2);
    assert_non_null(strstr(out, "no batch norm"));
    /* a size that does not fit: exit 1 naming the axis */
    assert_int_equal(run("info --preset paper --input 116x132x131", out, err,
                         sizeof out), 1);
    assert_non_null(strstr(err, "W=131"));
}

/* --help of each command: exit 0, every option listed, aliases hidden */
static void help_lists_options(void **state)
{
    (void)state;
    static const char *const want[][24] = {
        {"train", "--image", "--labels", "--model", "--resume", "--preset",
         "--classes", "--levels", "--base-channels", "--padding",
         "--batchnorm", "--iterations", "--minutes", "--patch", "--lr",
         "--normalize", "--augment", "--aug-mirror", "--seed", "--device",
         NULL},
        {"densify", "--image", "--labels", "--annotation-slices", "--out",
         "--model-out", "--max-memory", "--padding", "--batchnorm",
         "--normalize", "--class-weights", "--lr-schedule", "--aug-sigma",
         "--aug-gray", "--weight-decay", "--device", NULL},
        {"info", "--preset", "--input DxHxW", "--batchnorm", "--in-channels",
         "--batch", NULL},
        {"predict", "--model", "--image", "--out", "--tile DxHxW",
         "--max-memory", "--probabilities", "--batchstats", NULL},
        {"evaluate", "--prediction", "--truth", "--exclude", "--classes",
         "--json", NULL},
        {"sparsify", "--labels", "--slices Z,Y,X", "--out", "--random",
         NULL},
        {"augment", "--image", "--out", "--samples", "--aug-sigma",
         "--aug-grid", "--aug-rotate", "--normalize", NULL},
        {"demo", "--out", "--minutes", "--slices", "--seed", NULL},
        {"bench", "--json", "--quick", "--reps", "--input DxHxW", NULL},
        {"golden", "DIR", "--device", NULL},
    };
    char out[16384], err[8192];
    for (size_t c = 0; c < sizeof want / sizeof want[0]; c++) {
        char args[64];
        snprintf(args, sizeof args, "%s --help", want[c][0]);
        assert_int_equal(run(args, out, err, sizeof out), 0);
        char usage[64];
        snprintf(usage, sizeof usage, "usage: unet3d %s", want[c][0]);
        assert_non_null(strstr(out, usage));
        for (int i = 1; want[c][i]; i++)
            if (!strstr(out, want[c][i]))
                fail_msg("unet3d %s --help lacks %s:\n%s", want[c][0],
                         want[c][i], out);
    }
    assert_int_equal(run("info --help", out, err, sizeof out), 0);
    assert_null(strstr(out, "--no-bn"));
    assert_null(strstr(out, "--input-order"));
    assert_int_equal(run("augment --help", out, err, sizeof out), 0);
    assert_null(strstr(out, "--sigma"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_values),
        cmocka_unit_test(info_sizes_dhw),
        cmocka_unit_test(help_lists_options),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
