/* `unet3d experiment`: the table1 fold split (a partition of the annotated
 * slices, nothing scored on a training slice), table3's leave-one-out
 * selection, the variants' nets, the three reports on tiny volumes
 * (multi-channel, multi-class for table3) and bad inputs refused with one
 * line and nothing written. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "test_util.h"
#include "unet3d/experiment.h"
#include "unet3d/volume_io.h"

static char dir[128];
static const char *exe = U3D_BINARY_DIR "/unet3d";

static const char *P(const char *name) { return t_join(dir, name); }

static const char *COMMON = "--preset tiny --levels 2 --augment none "
                            "--iterations 2";

/* Two channels (float), labels 0..4 by position and intensity: a BRATS-
 * like volume. */
static void write_multi(const char *img, const char *lab, uint64_t seed)
{
    u3d_volume v;
    u3d_labels l;
    u3d_error err = {0};
    enum { D = 16, H = 32, W = 32 };
    t_ok(u3d_volume_alloc(2, D, H, W, &v, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(D, H, W, &l, &err), &err, "alloc");
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)z * H + y) * W + x;
                int k = (x / 8 + y / 8 + z / 4) % 5;
                l.data[i] = (uint16_t)k;
                v.data[i] = (float)k + t_randf(&seed, -0.3f, 0.3f);
                v.data[(size_t)D * H * W + i] =
                    (float)(k % 2) + t_randf(&seed, -0.3f, 0.3f);
            }
    t_ok(u3d_vio_write_volume(img, &v, NULL, &err), &err, img);
    t_ok(u3d_vio_write_labels(lab, &l, NULL, &err), &err, lab);
    u3d_volume_free(&v);
    u3d_labels_free(&l);
}

static int group_setup(void **state)
{
    (void)state;
    char cmd[1024];
    t_mkdtemp(dir, sizeof dir, "exp");
    for (int s = 1; s <= 2; s++) {
        snprintf(cmd, sizeof cmd, "%s synth --out %s/v%d.tif --labels "
                                  "%s/v%d_lab.tif --size 16x32x32 --seed %d "
                                  "> /dev/null", exe, dir, s, dir, s, s);
        assert_int_equal(t_run(cmd), 0);
    }
    snprintf(cmd, sizeof cmd, "%s synth --out %s/odd.tif --labels "
                              "%s/odd_lab.tif --size 16x32x30 > /dev/null",
             exe, dir, dir);
    assert_int_equal(t_run(cmd), 0);
    write_multi(P("m1.tif"), P("m1_lab.tif"), 5);
    write_multi(P("m2.tif"), P("m2_lab.tif"), 6);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

/* ---- the split, the selection, the variants ---- */

static void random_truth(u3d_labels *t)
{
    u3d_error err = {0};
    uint64_t seed = 3;
    t_ok(u3d_labels_alloc(12, 16, 20, t, &err), &err, "alloc");
    for (size_t i = 0; i < (size_t)12 * 16 * 20; i++)
        t->data[i] = (uint16_t)t_randi(&seed, 0, 2);
}

/* Voxel (z, y, x) lies on one of the slices whose index i has
 * (i % k == f) == in_fold. */
static int on_slices(const u3d_exp_slice *s, int n, int k, int f,
                     int in_fold, const int at[3])
{
    for (int i = 0; i < n; i++)
        if ((i % k == f) == in_fold && at[s[i].axis] == s[i].index)
            return 1;
    return 0;
}

static void check_fold(const u3d_labels *t, const u3d_exp_slice *s, int n,
                       int k, int f)
{
    u3d_labels tr, sc;
    u3d_error err = {0};
    t_ok(u3d_exp_fold(t, s, n, k, f, 255, &tr, &sc, &err), &err, "fold");
    size_t scored = 0;
    for (int z = 0; z < t->d; z++)
        for (int y = 0; y < t->h; y++)
            for (int x = 0; x < t->w; x++) {
                int at[3] = {z, y, x};
                size_t i = ((size_t)z * t->h + y) * t->w + x;
                int train = on_slices(s, n, k, f, 0, at);
                int score = !train && on_slices(s, n, k, f, 1, at);
                assert_int_equal(tr.data[i], train ? t->data[i] : 255);
                assert_int_equal(sc.data[i], score ? t->data[i] : 255);
                /* never scored where trained */
                assert_false(tr.data[i] != 255 && sc.data[i] != 255);
                scored += sc.data[i] != 255;
            }
    assert_true(scored > 0);
    u3d_labels_free(&tr);
    u3d_labels_free(&sc);
}

static void fold_split(void **state)
{
    (void)state;
    u3d_labels t, s;
    u3d_error err = {0};
    u3d_exp_slice *sl;
    int n, k[3] = {3, 5, 5};
    random_truth(&t);
    t_ok(u3d_labels_alloc(t.d, t.h, t.w, &s, &err), &err, "alloc");
    memcpy(s.data, t.data, (size_t)t.d * t.h * t.w * sizeof *t.data);
    t_ok(u3d_labels_sparsify(&s, k, 0, 0, 255, NULL, &err), &err, "sparse");
    t_ok(u3d_exp_slices(&s, 255, &sl, &n, &err), &err, "slices");
    assert_int_equal(n, 13);
    for (int i = 1; i < n; i++) /* z, then y, then x, by index */
        assert_true(sl[i - 1].axis < sl[i].axis ||
                    (sl[i - 1].axis == sl[i].axis &&
                     sl[i - 1].index < sl[i].index));
    /* every slice in exactly one fold: fold sizes add up to n */
    for (int kk = 1; kk <= 4; kk++) {
        int total = 0;
        for (int f = 0; f < kk; f++) {
            for (int i = 0; i < n; i++)
                total += i % kk == f;
            check_fold(&t, sl, n, kk, f);
        }
        assert_int_equal(total, n);
    }
    u3d_labels tr, sc;
    assert_int_equal(u3d_exp_fold(&t, sl, n, n + 1, 0, 255, &tr, &sc, &err),
                     U3D_ERR_INVALID_ARG);
    assert_null(strchr(err.msg, '\n'));
    free(sl);
    u3d_labels_free(&s);
    u3d_labels_free(&t);
}

static void leave_one_out(void **state)
{
    (void)state;
    int idx[8];
    for (int n = 2; n <= 5; n++)
        for (int test = 0; test < n; test++) {
            assert_int_equal(u3d_exp_others(n, test, idx), n - 1);
            for (int k = 0; k < n - 1; k++) {
                assert_int_not_equal(idx[k], test);
                assert_int_equal(idx[k], k < test ? k : k + 1);
            }
        }
}

static void variants(void **state)
{
    (void)state;
    u3d_net_config base, c;
    u3d_error err = {0};
    t_ok(u3d_net_preset("tiny", &base, &err), &err, "preset");
    c = base;
    u3d_exp_variant_apply(U3D_EXP_3D, &c);
    assert_memory_equal(&c, &base, sizeof c);
    c = base;
    u3d_exp_variant_apply(U3D_EXP_3D_NOBN, &c);
    assert_int_equal(c.bn, U3D_BN_NONE);
    assert_memory_equal(c.kernel, base.kernel, sizeof c.kernel);
    c = base;
    u3d_exp_variant_apply(U3D_EXP_2D, &c);
    assert_int_equal(c.bn, base.bn);
    for (int l = 0; l < c.levels; l++) {
        assert_int_equal(u3d_net_kernel(&c, l, 0), 1);
        assert_int_equal(u3d_net_kernel(&c, l, 1), 3);
        assert_int_equal(u3d_net_kernel(&c, l, 2), 3);
        if (l < c.levels - 1) {
            assert_int_equal(u3d_net_pool(&c, l, 0), 1);
            assert_int_equal(u3d_net_pool(&c, l, 1), 2);
        }
    }
    t_ok(u3d_net_config_check(&c, &err), &err, "2d net");
}

/* ---- the command ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* Counts "mean_fg_iou": followed by a number in the runs. */
static int scored_runs(const char *json)
{
    int n = 0;
    const char *p = strstr(json, "\"runs\"");
    const char *end = strstr(json, "\"report\"");
    assert_non_null(p);
    assert_non_null(end);
    while ((p = strstr(p, "\"mean_fg_iou\": ")) && p < end) {
        p += strlen("\"mean_fg_iou\": ");
        n += *p >= '0' && *p <= '9';
    }
    return n;
}

/* runs: scored runs in the JSON; seeds > 1: cells show mean ± spread,
 * one seed: the value alone. */
static void check_report(const char *out, const char *table, int runs,
                         int seeds)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.png", out, table);
    const unsigned char *png = (const unsigned char *)slurp(path);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    snprintf(path, sizeof path, "%s/%s.md", out, table);
    if (seeds > 1)
        assert_non_null(strstr(slurp(path), " ± "));
    else
        assert_null(strstr(slurp(path), " ± "));
    snprintf(path, sizeof path, "%s/%s.json", out, table);
    const char *json = slurp(path);
    assert_int_equal(json[0], '{');
    assert_non_null(strstr(json, "\"command\": \"unet3d experiment"));
    assert_int_equal(scored_runs(json), runs);
}

static void experiment(const char *table, const char *args, const char *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s experiment %s %s --out %s %s > %s.stdout "
                              "2> /dev/null", exe, table, args, out, COMMON,
             out);
    assert_int_equal(t_run(cmd), 0);
}

static void table1(void **state)
{
    (void)state;
    char args[512];
    snprintf(args, sizeof args, "--image %s --labels %s", P("v1.tif"),
             P("v1_lab.tif"));
    experiment("table1", args, P("t1"));
    check_report(P("t1"), "table1", 3 * 3, 1); /* 3 subsets x 3 variants */
    assert_non_null(strstr(slurp(P("t1.stdout")), "| subset 3 |"));
}

static void table2(void **state)
{
    (void)state;
    char args[512];
    snprintf(args, sizeof args, "--image %s --labels %s --image %s --labels "
                                "%s --slices-list 1,1,1:2,2,1 --seeds 2",
             P("v1.tif"), P("v1_lab.tif"), P("v2.tif"), P("v2_lab.tif"));
    experiment("table2", args, P("t2"));
    check_report(P("t2"), "table2", 2 * 2 * 2, 2); /* volumes x rows x seeds */
    const char *json = slurp(P("t2/table2.json"));
    assert_non_null(strstr(json, "\"per_seed\": [0."));
}

/* Multi-channel float images, five classes, leave one out. */
static void table3(void **state)
{
    (void)state;
    char args[512];
    snprintf(args, sizeof args, "--image %s --labels %s --image %s --labels "
                                "%s --variants 3d,2d --slices 2,3,3",
             P("m1.tif"), P("m1_lab.tif"), P("m2.tif"), P("m2_lab.tif"));
    experiment("table3", args, P("t3"));
    check_report(P("t3"), "table3", 2 * 2, 1);
    const char *json = slurp(P("t3/table3.json"));
    assert_non_null(strstr(json, "\"classes\": 5"));
    assert_non_null(strstr(slurp(P("t3.stdout")), "| m2.tif |"));
}

/* Exit 1, one line on stderr naming what, nothing in the output folder. */
static void expect_error(const char *args, const char *what)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s experiment %s --out %s %s 2> %s", exe, args,
             P("bad"), COMMON, P("err.txt"));
    assert_int_equal(t_run(cmd), 1);
    const char *msg = slurp(P("err.txt"));
    const char *nl = strchr(msg, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], 0);
    if (!strstr(msg, what))
        fail_msg("'%s' does not name %s", msg, what);
    struct stat st;
    assert_int_not_equal(stat(P("bad"), &st), 0);
}

static void bad_inputs(void **state)
{
    (void)state;
    char a[1024];
    snprintf(a, sizeof a, "table3 --image %s --labels %s", P("v1.tif"),
             P("v1_lab.tif"));
    expect_error(a, "table3");
    snprintf(a, sizeof a, "table1 --image %s --labels %s", P("v1.tif"),
             P("odd_lab.tif"));
    expect_error(a, "odd_lab.tif");
    snprintf(a, sizeof a, "table1 --image %s --labels %s --image %s",
             P("v1.tif"), P("v1_lab.tif"), P("v2.tif"));
    expect_error(a, "--labels");
    snprintf(a, sizeof a, "table1 --image %s --labels %s --folds 14",
             P("v1.tif"), P("v1_lab.tif"));
    expect_error(a, "--folds 14");
    snprintf(a, sizeof a, "table1 --image %s --labels %s --slices 17,1,1",
             P("v1.tif"), P("v1_lab.tif"));
    expect_error(a, "--slices 17,1,1");
    snprintf(a, sizeof a, "table3 --image %s --labels %s --image %s "
                          "--labels %s", P("v1.tif"), P("v1_lab.tif"),
             P("m1.tif"), P("m1_lab.tif"));
    expect_error(a, "channel");
    /* the list options: malformed, unknown, repeated, empty, too many */
    static const char *const lists[][2] = {
        {"table2 --slices-list 1,1,1:2,2", "--slices-list '1,1,1:2,2'"},
        {"table2 --slices-list 1,1,1:", "--slices-list '1,1,1:'"},
        {"table2 --slices-list 1,,1", "--slices-list '1,,1'"},
        {"table2 --slices-list 0,0,0", "--slices-list '0,0,0'"},
        {"table2 --slices-list 1,1,1x", "--slices-list '1,1,1x'"},
        {"table2 --slices-list ' 1,1,1'", "--slices-list ' 1,1,1'"},
        {"table2 --slices-list 1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1", "--slices-list"},
        {"table2 --slices-list 1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:"
         "1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:1,1,1:1,1,1",
         "at most 16"},
        {"table1 --variants 3d,4d", "--variants '3d,4d'"},
        {"table1 --variants 3d,3d", "--variants '3d,3d'"},
        {"table1 --variants 3d,", "--variants '3d,'"},
        {"table1 --variants ''", "--variants ''"},
        {"table1 --slices 3,5", "--slices '3,5'"},
        {"table1 --slices 3,5,5,5", "--slices '3,5,5,5'"},
        {"table1 --slices -1,5,5", "--slices '-1,5,5'"},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        snprintf(a, sizeof a, "%s --image %s --labels %s", lists[i][0],
                 P("v1.tif"), P("v1_lab.tif"));
        expect_error(a, lists[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fold_split),    cmocka_unit_test(leave_one_out),
        cmocka_unit_test(variants),      cmocka_unit_test(table1),
        cmocka_unit_test(table2),        cmocka_unit_test(table3),
        cmocka_unit_test(bad_inputs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
