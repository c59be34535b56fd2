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
    t_mkdtemp(dir, sizeof dir, "opts");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
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
    rejected("suggest --model m.u3d --image i.tif", "--labels", NULL);
    rejected("suggest --model m.u3d --image i.tif --labels l.tif --count 0",
             "--count", "0");
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

/* Parameter counts of anisotropic nets, computed by hand and the same in
 * PyTorch (tools/make_golden_aniso.py --counts) (k: taps of a
 * conv, 1x3x3 = 9, 3x3x3 = 27; a conv cin -> cout has cin*cout*k + cout
 * parameters, an up-conv 1x2x2 c*c*4, 2x2x2 c*c*8, BN gamma+beta 2*cout).
 *
 * --preset small --dims 2 (f 8, 3 levels, 1 -> 2 classes, all 1x3x3):
 *   enc 0: 1*8*9+8 = 80, 8*16*9+16 = 1168
 *   enc 1: 16*16*9+16 = 2320, 16*32*9+32 = 4640
 *   enc 2: 32*32*9+32 = 9248, 32*64*9+64 = 18496
 *   up 0: 64*64*4 = 16384, up 1: 32*32*4 = 4096
 *   dec 0: 96*32*9+32 = 27680, 32*32*9+32 = 9248
 *   dec 1: 48*16*9+16 = 6928, 16*16*9+16 = 2320
 *   out: 16*2+2 = 34
 *   sum 102642; BN channels 8+16+16+32+32+64+32+32+16+16 = 264, so
 *   + 528 = 103170 with gamma and beta. Context 20 in-plane, 0 along z.
 * --preset tiny --kernels 1x3x3,3x3x3,3x3x3 --pools 1x2x2,2x2x2 (f 4,
 * 2 -> 3 classes): the golden tiny net (72223 with gamma and beta) less
 * the 18 taps per channel pair of the 1x3x3 level: enc 0 2*4*18 + 4*8*18 =
 * 720, dec 1 24*8*18 + 8*8*18 = 4608, and up 1 16*16*4 = 1024: 72223 -
 * 6352 = 65871; less BN 2*(4+8+8+16+16+32+16+16+8+8) = 264: 65607. */
static void info_anisotropic(void **state)
{
    (void)state;
    char out[8192], err[8192];
    assert_int_equal(run("info --preset small --dims 2 --input 1x92x92", out,
                         err, sizeof out), 0);
    if (!strstr(out, "learnable parameters: 102642 ") ||
        !strstr(out, "103170 (with") ||
        !strstr(out, "kernels 1x3x3,1x3x3,1x3x3, pools 1x2x2,1x2x2") ||
        !strstr(out, "context per side (D x H x W): 0x20x20") ||
        !strstr(out, "output  (D x H x W) 1x52x52"))
        fail_msg("info --dims 2: %s", out);
    assert_int_equal(run("info --preset tiny --kernels 1x3x3,3x3x3,3x3x3 "
                         "--pools 1x2x2,2x2x2 --input 20x44x44",
                         out, err, sizeof out), 0);
    if (!strstr(out, "learnable parameters: 65607 ") ||
        !strstr(out, "65871 (with") ||
        !strstr(out, "context per side (D x H x W): 8x20x20") ||
        !strstr(out, "output  (D x H x W) 4x4x4"))
        fail_msg("info --kernels: %s", out);
    /* auto from the spacing: the first level flat for z 4x in-plane */
    assert_int_equal(run("info --preset paper --kernels auto --pools auto "
                         "--spacing 4x1x1", out, err, sizeof out), 0);
    assert_non_null(strstr(out, "kernels 1x3x3,3x3x3,3x3x3,3x3x3, pools "
                                "1x2x2,2x2x2,2x2x2"));
    /* refused: a kernel of 2, a count that does not match, auto without a
     * spacing, --dims 2 with explicit kernels */
    rejected("info --kernels 2x3x3", "--kernels", "2x3x3");
    rejected("info --pools 1x2x2,2x2x2", "--pools", "give 3");
    rejected("info --kernels auto", "--spacing", NULL);
    rejected("info --dims 2 --kernels 1x3x3", "--dims 2", NULL);
    rejected("info --kernels 1x3x3 --spacing 4x1", "--spacing", "4x1");
    rejected("info --kernels auto --spacing 4x1", "--spacing", "4x1");
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

/* Writes a small file and returns its path (in dir). */
static const char *touch(const char *name, const char *text)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    FILE *f = fopen(p[k], "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p[k];
}

/* Refused before any work; the input is left as it was. */
static void refused_keeps(const char *args, const char *what, const char *in,
                          const char *text)
{
    rejected(args, what, NULL);
    FILE *f = fopen(in, "r");
    char buf[64] = {0};
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (strcmp(buf, text))
        fail_msg("unet3d %s changed %s", args, in);
}

/* Issue #14 items 8, 9 and 11: an output that is an input (or another
 * output), a device or FIFO, or in an unwritable folder is refused before
 * any work, naming the option and the file. */
static void outputs_checked_first(void **state)
{
    (void)state;
    const char *v = touch("v.tif", "image"), *l = touch("l.tif", "labels");
    const char *m = touch("m.u3d", "model");
    char a[2048], alias[300], fifo[300];
    snprintf(a, sizeof a, "predict --model %s --image %s --out %s", m, v, v);
    refused_keeps(a, "is the same file as --image", v, "image");
    snprintf(a, sizeof a, "train --image %s --labels %s --model %s "
             "--iterations 1", v, l, v);
    refused_keeps(a, "--model", v, "image");
    snprintf(a, sizeof a, "densify --image %s --labels %s --out %s", v, l, v);
    refused_keeps(a, "--out", v, "image");
    snprintf(a, sizeof a, "sparsify --labels %s --slices 1,1,1 --out %s", l,
             l);
    refused_keeps(a, "--out", l, "labels");
    /* the same file by another name */
    snprintf(alias, sizeof alias, "%s/../%s/l.tif", dir, strrchr(dir, '/') + 1);
    snprintf(a, sizeof a, "sparsify --labels %s --slices 1,1,1 --out %s", l,
             alias);
    refused_keeps(a, "is the same file as --labels", l, "labels");
    snprintf(a, sizeof a, "predict --model %s --image %s --out %s/s.tif "
             "--probabilities %s/s.tif", m, v, dir, dir);
    rejected(a, "written twice", NULL);
    snprintf(a, sizeof a, "predict --model %s --image %s --out %s/s.tif "
             "--overview %s/./s.tif", m, v, dir, dir);
    rejected(a, "--overview", NULL);
    snprintf(a, sizeof a, "sparsify --labels %s --slices 1,1,1 --out "
             "/dev/full", l);
    rejected(a, "/dev/full: exists and is not a regular file", NULL);
    snprintf(fifo, sizeof fifo, "%s/fifo.tif", dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    snprintf(a, sizeof a, "sparsify --labels %s --slices 1,1,1 --out %s", l,
             fifo);
    rejected(a, "fifo.tif: exists and is not a regular file", NULL);
    struct stat sb;
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    snprintf(a, sizeof a, "densify --image %s --labels %s --out %s/d.tif "
             "--model-out /nonexistent-u3d/m.u3d", v, l, dir);
    rejected(a, "--model-out /nonexistent-u3d/m.u3d: cannot write", NULL);
    snprintf(a, sizeof a, "densify --image %s --labels %s --out %s/d.tif "
             "--log /nonexistent-u3d/x.csv", v, l, dir);
    rejected(a, "--log", NULL);
    snprintf(a, sizeof a, "densify --image %s --labels %s --out %s/d.tif "
             "--overview %s", v, l, dir, dir);
    rejected(a, "--overview", NULL);
    snprintf(a, sizeof a, "%s/d.tif", dir);
    assert_int_not_equal(access(a, F_OK), 0); /* no output left */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_values),
        cmocka_unit_test(info_sizes_dhw),
        cmocka_unit_test(info_anisotropic),
        cmocka_unit_test(help_lists_options),
        cmocka_unit_test(outputs_checked_first),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
