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

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void slices_train_and_keep_annotations(void **state)
{
    (void)state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s densify --image %s --annotation-slices %s --out %s "
             "--iterations %d %s",
             exe, P("img.tif"), P("ok"), P("dense.tif"), t_small() ? 2 : 40, OPTS);
    assert_int_equal(run(cmd), 0);
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
    assert_int_equal(run(cmd), 0);
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
    int rc = run(cmd);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slices_train_and_keep_annotations),
        cmocka_unit_test(train_options_reach_the_model),
        cmocka_unit_test(bad_inputs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
