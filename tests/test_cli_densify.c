/* `unet3d densify`: PNG annotation slices, annotated voxels kept in the
 * output, and bad inputs (slice index out of range, wrong PNG size, channel
 * mismatch, label shape) give one-line errors and no output file. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

static char dir[128];
static const char *exe = U3D_BINARY_DIR "/unet3d";
enum { S = 32 };

static const char *P(const char *name) { return t_join(dir, name); }

static int inside(int z, int y, int x) { return ((x / 6 + y / 6 + z / 6) % 3) == 0; }

static void png_slice(const char *name, int w, int h, int axis, int idx)
{
    unsigned char *px = malloc((size_t)w * h);
    u3d_error err = {0};
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            int z = axis == 'z' ? idx : r, y = axis == 'y' ? idx : axis == 'z' ? r : c;
            int x = axis == 'x' ? idx : c;
            px[(size_t)r * w + c] = (unsigned char)(c < w / 8 ? 255 : inside(z, y, x));
        }
    t_ok(u3d_png_write_gray(P(name), w, h, px, &err), &err, "png");
    free(px);
}

static int group_setup(void **state)
{
    (void)state;
    t_mkdtemp(dir, sizeof dir, "dens");
    mkdir(P("ok"), 0755);
    mkdir(P("range"), 0755);
    mkdir(P("size"), 0755);
    u3d_volume v;
    u3d_error err = {0};
    uint64_t s = 4;
    t_ok(u3d_volume_alloc(1, S, S, S, &v, &err), &err, "alloc");
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                v.data[((size_t)z * S + y) * S + x] =
                    100.0f * inside(z, y, x) + t_randf(&s, 0, 30);
    t_ok(u3d_tiff_write_volume(P("img.tif"), &v, &err), &err, "write");
    u3d_labels truth;
    t_ok(u3d_labels_alloc(S, S, S, &truth, &err), &err, "alloc");
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                truth.data[((size_t)z * S + y) * S + x] =
                    (uint16_t)inside(z, y, x);
    t_ok(u3d_tiff_write_labels(P("truth.tif"), &truth, &err), &err, "write");
    u3d_labels_free(&truth);
    u3d_labels l2;
    t_ok(u3d_labels_alloc(S, S - 1, S, &l2, &err), &err, "alloc");
    t_ok(u3d_tiff_write_labels(P("lab_shape.tif"), &l2, &err), &err, "write");
    u3d_volume_free(&v);
    u3d_labels_free(&l2);
    png_slice("ok/z0004.png", S, S, 'z', 4);
    png_slice("ok/z0020.png", S, S, 'z', 20);
    png_slice("ok/y0010.png", S, S, 'y', 10);
    png_slice("ok/x0015.png", S, S, 'x', 15);
    png_slice("range/z0040.png", S, S, 'z', 3);
    png_slice("size/z0004.png", S + 3, S, 'z', 4);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

static const char *OPTS = "--preset tiny --levels 2 --classes 2 --patch 28x28x28 "
                          "--augment none --lr 0.02 --momentum 0.9 --quiet";

static void slices_train_and_keep_annotations(void **state)
{
    (void)state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s densify --image %s --annotation-slices %s --out %s "
             "--iterations %d %s",
             exe, P("img.tif"), P("ok"), P("dense.tif"), t_small() ? 2 : 40, OPTS);
    assert_int_equal(t_run(cmd), 0);
    u3d_labels d, sp;
    u3d_error err = {0};
    int ns;
    size_t conflicts;
    t_ok(u3d_tiff_read_labels(P("dense.tif"), &d, &err), &err, "read");
    t_ok(u3d_labels_from_png_slices(P("ok"), S, S, S, &ns, &conflicts, &sp, &err),
         &err, "slices");
    assert_int_equal(ns, 4);
    assert_int_equal(conflicts, 0);
    size_t kept = 0, n = (size_t)S * S * S;
    for (size_t i = 0; i < n; i++) {
        assert_true(d.data[i] <= 1);
        if (sp.data[i] != 255) {
            assert_int_equal(d.data[i], sp.data[i]); /* user labels kept */
            kept++;
        }
    }
    assert_true(kept > 0);
    u3d_labels_free(&d);
    u3d_labels_free(&sp);
}

/* densify takes train's options and hands them to the model it trains */
static void train_options_reach_the_model(void **state)
{
    (void)state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s densify --image %s --annotation-slices %s --out %s "
             "--model-out %s --log %s --iterations 2 %s --padding same "
             "--batchnorm none --normalize zscore --lr-schedule constant "
             "--weight-decay 0.001 --class-weights 0.5,2 --aug-mirror zyx "
             "--aug-gray off --seed 7 --checkpoint-every 1 --batch 2",
             exe, P("img.tif"), P("ok"), P("dense2.tif"), P("m.u3d"),
             P("log.csv"), OPTS);
    assert_int_equal(t_run(cmd), 0);
    u3d_ckpt c;
    u3d_error err = {0};
    char buf[256];
    t_ok(u3d_ckpt_read(P("m.u3d"), &c, &err), &err, "model");
    static const char *const want[][2] = {
        {"padding", "same"},        {"batchnorm", "none"},
        {"lr_schedule", "constant"}, {"weight_decay", "0.00100000005"},
        {"class_weights", "0.5,2"},  {"seed", "7"},
        {"batch", "2"},              {"patch", "28x28x28"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = u3d_ckpt_meta_get(&c, want[i][0], buf, sizeof buf);
        if (!v || strcmp(v, want[i][1]))
            fail_msg("%s: want %s, got %s", want[i][0], want[i][1],
                     v ? v : "(none)");
    }
    const char *v = u3d_ckpt_meta_get(&c, "normalization", buf, sizeof buf);
    assert_true(v && !strncmp(v, "zscore", 6));
    assert_non_null(u3d_ckpt_meta_get(&c, "augment_params", buf, sizeof buf));
    u3d_ckpt_free(&c);
    assert_int_equal(access(P("log.csv"), F_OK), 0);
}

/* ann: a folder of PNG slices, or (labels != 0) a label TIFF */
static void expect_error(const char *img, const char *ann, const char *want,
                         int labels)
{
    char cmd[2048];
    remove(P("bad.tif"));
    snprintf(cmd, sizeof cmd,
             "%s densify --image %s %s %s --out %s --iterations 2 %s 2> %s",
             exe, img, labels ? "--labels" : "--annotation-slices", ann,
             P("bad.tif"), OPTS, P("err.txt"));
    int rc = t_run(cmd);
    FILE *f = fopen(P("err.txt"), "r");
    char msg[4096] = "";
    size_t n = fread(msg, 1, sizeof msg - 1, f);
    msg[n] = 0;
    fclose(f);
    /* exit 1 with the message: a crash (128 here) is no clear error */
    if (rc != 1 || !strstr(msg, want))
        fail_msg("expected exit 1 and an error containing '%s' (exit %d), "
                 "got: %s", want, rc, msg);
    assert_int_equal(access(P("bad.tif"), F_OK), -1);
}

static void bad_inputs(void **state)
{
    (void)state;
    expect_error(P("img.tif"), P("range"), "z0040.png", 0);
    expect_error(P("img.tif"), P("size"), "35x32", 0);
    expect_error(P("img.tif"), P("lab_shape.tif"), "lab_shape.tif", 1);
    expect_error(P("img.tif"), P("nothing_here"), "nothing_here", 0);
}

/* Reads a whole (small) file into buf. */
static void densify_to(const char *extra, const char *out, const char *stdout_file)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s densify --image %s --annotation-slices %s --out %s "
             "--iterations 12 --checkpoint-every 4 %s %s > %s",
             exe, P("img.tif"), P("ok"), P(out), OPTS, extra,
             P(stdout_file));
    assert_int_equal(t_run(cmd), 0);
}

/* One of the two z slices is held out (the only axis with two), scored at
 * 4, 8, 12, and the estimate printed. */
static void holdout_estimate(void **state)
{
    (void)state;
    char txt[4096];
    char extra[512];
    snprintf(extra, sizeof extra, "--holdout 0.25 --log %s", P("h.csv"));
    densify_to(extra, "dense_h.tif", "h.txt");
    t_slurp(P("h.txt"), txt, sizeof txt);
    if (!strstr(txt, "estimated IoU per class (from 1 held-out annotated "
                     "slices: z00"))
        fail_msg("no estimate in: %s", txt);
    t_slurp(P("h.csv"), txt, sizeof txt);
    const char *hdr = "iteration,loss,seconds,val_mean_fg_iou,val_iou_0,"
                      "val_iou_1\n";
    assert_true(!strncmp(txt, hdr, strlen(hdr)));
    assert_non_null(strstr(txt, "\n4,"));
    /* the held-out slice's labels are still in the output */
    u3d_labels d, sp;
    u3d_error err = {0};
    int ns;
    size_t conflicts;
    t_ok(u3d_tiff_read_labels(P("dense_h.tif"), &d, &err), &err, "read");
    t_ok(u3d_labels_from_png_slices(P("ok"), S, S, S, &ns, &conflicts, &sp,
                                    &err), &err, "slices");
    for (size_t i = 0; i < (size_t)S * S * S; i++)
        if (sp.data[i] != 255)
            assert_int_equal(d.data[i], sp.data[i]);
    u3d_labels_free(&d);
    u3d_labels_free(&sp);
}

/* The decision calibrated on the held-out slice: said on stdout; when
 * offsets were kept the model records them and `predict` with that model
 * labels every unannotated voxel as densify did; --calibrate off: none. */
static void holdout_calibration(void **state)
{
    (void)state;
    char txt[4096], extra[512], cmd[1024];
    snprintf(extra, sizeof extra, "--holdout 0.25 --model-out %s",
             P("cal.u3d"));
    densify_to(extra, "dense_c.tif", "c.txt");
    t_slurp(P("c.txt"), txt, sizeof txt);
    int tuned = strstr(txt, "decision calibrated on the held-out slices") != NULL;
    if (!tuned && !strstr(txt, "decision: the plain argmax"))
        fail_msg("no decision line in: %s", txt);
    u3d_ckpt c;
    u3d_error err = {0};
    char buf[256];
    t_ok(u3d_ckpt_read(P("cal.u3d"), &c, &err), &err, "model");
    assert_int_equal(u3d_ckpt_meta_get(&c, "class_bias", buf, sizeof buf) != NULL,
                     tuned);
    u3d_ckpt_free(&c);
    snprintf(cmd, sizeof cmd, "%s predict --model %s --image %s --out %s "
             "--quiet 2> /dev/null",
             exe, P("cal.u3d"), P("img.tif"), P("pred_c.tif"));
    assert_int_equal(t_run(cmd), 0);
    u3d_labels d, p, sp;
    int ns;
    size_t conflicts;
    t_ok(u3d_tiff_read_labels(P("dense_c.tif"), &d, &err), &err, "read");
    t_ok(u3d_tiff_read_labels(P("pred_c.tif"), &p, &err), &err, "read");
    t_ok(u3d_labels_from_png_slices(P("ok"), S, S, S, &ns, &conflicts, &sp,
                                    &err), &err, "slices");
    for (size_t i = 0; i < (size_t)S * S * S; i++)
        if (sp.data[i] == 255 && d.data[i] != p.data[i])
            fail_msg("voxel %zu: densify %d, predict %d (tuned %d)", i,
                     d.data[i], p.data[i], tuned);
    u3d_labels_free(&d);
    u3d_labels_free(&p);
    u3d_labels_free(&sp);
    snprintf(extra, sizeof extra, "--holdout 0.25 --calibrate off");
    densify_to(extra, "dense_c0.tif", "c0.txt");
    t_slurp(P("c0.txt"), txt, sizeof txt);
    assert_null(strstr(txt, "decision"));
    assert_non_null(strstr(txt, "estimated IoU per class"));
}

/* --holdout 0: the plain run (no validation columns, no estimate), the
 * same for the same seed. */
static void holdout_zero_plain(void **state)
{
    (void)state;
    char txt[4096], extra[512];
    snprintf(extra, sizeof extra, "--holdout 0 --log %s", P("z.csv"));
    densify_to(extra, "dense_z1.tif", "z.txt");
    densify_to("--holdout 0", "dense_z2.tif", "z2.txt");
    t_slurp(P("z.txt"), txt, sizeof txt);
    assert_null(strstr(txt, "estimated"));
    t_slurp(P("z.csv"), txt, sizeof txt);
    assert_true(!strncmp(txt, "iteration,loss,seconds\n1,", 25));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", P("dense_z1.tif"),
             P("dense_z2.tif"));
    assert_int_equal(t_run(cmd), 0);
}

/* Reads "aNNNN  score" lines after an optional header into names. */
static int read_names(const char *path, char names[][8], int max)
{
    char txt[4096], *p = txt;
    t_slurp(path, txt, sizeof txt);
    char *h = strstr(txt, "annotate next:\n");
    if (h)
        p = h + strlen("annotate next:\n");
    int n = 0;
    while (n < max && strchr("zyx", *p) && *p) {
        memcpy(names[n], p, 5);
        names[n++][5] = 0;
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    return n;
}

/* densify --suggest K: K valid unannotated slices, those unet3d suggest
 * ranks first for the model densify kept. */
static void densify_suggests(void **state)
{
    (void)state;
    char extra[512], cmd[2048], a[3][8], b[3][8];
    snprintf(extra, sizeof extra, "--suggest 3 --model-out %s --overview %s",
             P("sg.u3d"), P("sg.png"));
    densify_to(extra, "dense_s.tif", "s.txt");
    snprintf(cmd, sizeof cmd,
             "%s suggest --model %s --image %s --annotation-slices %s "
             "--count 3 --overview %s > %s",
             exe, P("sg.u3d"), P("img.tif"), P("ok"), P("s2.png"), P("s2.txt"));
    assert_int_equal(t_run(cmd), 0);
    /* both overviews, the slices marked */
    assert_int_equal(access(P("sg.png"), F_OK), 0);
    assert_int_equal(access(P("s2.png"), F_OK), 0);
    assert_int_equal(read_names(P("s.txt"), a, 3), 3);
    assert_int_equal(read_names(P("s2.txt"), b, 3), 3);
    static const char *const annotated[] = {"z0004", "z0020", "y0010",
                                            "x0015"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(a[i], b[i]);
        int idx = atoi(a[i] + 1);
        assert_true(idx >= 0 && idx < S);
        for (int k = 0; k < 4; k++)
            assert_string_not_equal(a[i], annotated[k]);
    }
}

static void bad_holdout_options(void **state)
{
    (void)state;
    char cmd[2048];
    const char *bad[] = {"--holdout 0.9", "--holdout -1",
                         "--holdout 0 --val-every 5", "--suggest 0"};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s densify --image %s --annotation-slices %s --out %s "
                 "--iterations 2 %s %s 2> /dev/null",
                 exe, P("img.tif"), P("ok"), P("bad.tif"), OPTS, bad[i]);
        assert_int_equal(t_run(cmd), 1);
        assert_int_equal(access(P("bad.tif"), F_OK), -1);
    }
}

/* suggest --simulate: rounds of 1,1,1 + 2 slices per round for each
 * pick, the table and the JSON; a truth of another shape: one line, no
 * JSON. */
static void simulate_rounds(void **state)
{
    (void)state;
    char cmd[2048], txt[8192];
    snprintf(cmd, sizeof cmd,
             "%s suggest --simulate %s --image %s --rounds 2 --count 2 "
             "--iterations 4 --json %s %s > %s",
             exe, P("truth.tif"), P("img.tif"), P("sim.json"), OPTS,
             P("sim.txt"));
    assert_int_equal(t_run(cmd), 0);
    t_slurp(P("sim.txt"), txt, sizeof txt);
    int lines = 0;
    for (char *p = txt; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1 + 3 * 3);
    t_slurp(P("sim.json"), txt, sizeof txt);
    static const char *const picks[] = {"suggested", "even", "random"};
    for (int p = 0; p < 3; p++) {
        char key[32];
        snprintf(key, sizeof key, "\"%s\": [", picks[p]);
        const char *at = strstr(txt, key);
        assert_non_null(at);
        for (int r = 0; r <= 2; r++) { /* 3, 5, 7 annotated slices */
            char row[64];
            snprintf(row, sizeof row, "{\"round\": %d, \"slices\": [", r);
            at = strstr(at, row);
            assert_non_null(at);
            int k[3];
            assert_int_equal(sscanf(at + strlen(row), "%d, %d, %d", &k[0],
                                    &k[1], &k[2]), 3);
            assert_int_equal(k[0] + k[1] + k[2], 3 + 2 * r);
        }
    }
    snprintf(cmd, sizeof cmd,
             "%s suggest --simulate %s --image %s --iterations 2 --json %s "
             "%s 2> %s",
             exe, P("lab_shape.tif"), P("img.tif"), P("bad.json"), OPTS,
             P("err.txt"));
    assert_int_equal(t_run(cmd), 1);
    t_slurp(P("err.txt"), txt, sizeof txt);
    assert_non_null(strstr(txt, "lab_shape.tif"));
    assert_int_equal(access(P("bad.json"), F_OK), -1);
}

/* suggest --simulate --seeds 2 --plot: the table of means with the ±
 * column and one comparison line per round, the JSON with both seeds'
 * runs and a summary, a PNG. */
static void simulate_seeds_plot(void **state)
{
    (void)state;
    char cmd[2048], txt[16384];
    snprintf(cmd, sizeof cmd,
             "%s suggest --simulate %s --image %s --rounds 1 --count 2 "
             "--iterations 2 --pick even,random --seeds 2 --json %s --plot %s %s "
             "--seed 5 > %s",
             exe, P("truth.tif"), P("img.tif"), P("sim2.json"),
             P("sim2.png"), OPTS, P("sim2.txt"));
    assert_int_equal(t_run(cmd), 0);
    t_slurp(P("sim2.txt"), txt, sizeof txt);
    assert_non_null(strstr(txt, "\xc2\xb1")); /* ± */
    assert_non_null(strstr(txt, "2 seeds"));
    assert_non_null(strstr(txt, "round 1: even "));
    assert_non_null(strstr(txt, "random "));
    assert_null(strstr(txt, "suggested")); /* only the picks asked for */
    t_slurp(P("sim2.json"), txt, sizeof txt);
    assert_non_null(strstr(txt, "\"seeds\": [5, 6]"));
    assert_non_null(strstr(txt, "{\"seed\": 5, \"runs\": {"));
    assert_non_null(strstr(txt, "{\"seed\": 6, \"runs\": {"));
    assert_non_null(strstr(txt, "\"summary\": {"));
    assert_non_null(strstr(txt, "\"spread\": "));
    FILE *f = fopen(P("sim2.png"), "rb");
    assert_non_null(f);
    unsigned char sig[8];
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fclose(f);
    assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    snprintf(cmd, sizeof cmd,
             "%s suggest --simulate %s --image %s --iterations 2 "
             "--pick even,best %s 2> %s",
             exe, P("truth.tif"), P("img.tif"), OPTS, P("err.txt"));
    assert_int_equal(t_run(cmd), 1);
    t_slurp(P("err.txt"), txt, sizeof txt);
    assert_non_null(strstr(txt, "--pick wants"));
}

/* --dims 2: the automatic patch takes 8 slices along z, which the net
 * never looks across (more would only be a larger batch). */
static void dims2_patch_flat_axis(void **state)
{
    (void)state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s densify --image %s --annotation-slices %s --out %s "
             "--model-out %s --iterations 1 --preset tiny --levels 2 "
             "--classes 2 --dims 2 --holdout 0 --quiet",
             exe, P("img.tif"), P("ok"), P("dense_2d.tif"), P("m2d.u3d"));
    assert_int_equal(t_run(cmd), 0);
    u3d_ckpt c;
    u3d_error err = {0};
    char buf[256];
    t_ok(u3d_ckpt_read(P("m2d.u3d"), &c, &err), &err, "model");
    const char *v = u3d_ckpt_meta_get(&c, "patch", buf, sizeof buf);
    assert_non_null(v);
    if (strncmp(v, "8x", 2) || !strcmp(v, "8x8x8"))
        fail_msg("--dims 2 patch %s, want 8 slices and more in-plane", v);
    u3d_ckpt_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slices_train_and_keep_annotations),
        cmocka_unit_test(train_options_reach_the_model),
        cmocka_unit_test(bad_inputs),
        cmocka_unit_test(holdout_estimate),
        cmocka_unit_test(holdout_calibration),
        cmocka_unit_test(holdout_zero_plain),
        cmocka_unit_test(densify_suggests),
        cmocka_unit_test(bad_holdout_options),
        cmocka_unit_test(simulate_rounds),
        cmocka_unit_test(simulate_seeds_plot),
        cmocka_unit_test(dims2_patch_flat_axis),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
