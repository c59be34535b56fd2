/* `unet3d train --calibrate` (issue #15): the decision of a fully automatic
 * model is tuned on annotation it did not train on. Checked against an
 * independent computation: the held-out slices drawn here with the same
 * split (u3d_holdout_split, seed + volume index), pooled over both
 * volumes, calibrated (u3d_calibrate_bias) on the probabilities `predict`
 * writes, must give the offsets the model file records (unless they did
 * not carry from one held-out slice to another, cross-fitted as densify's
 * estimate), and predict's labels must be the argmax with them. Also: --calibrate off and --plan
 * off train on every slice, option conflicts fail before any work. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "test_util.h"
#include "unet3d/checkpoint.h"
#include "unet3d/densify.h"

static char dir[128];
static const char *exe = U3D_BINARY_DIR "/unet3d";
enum { S = 32, SEED = 5 };

static const char *P(const char *name) { return t_join(dir, name); }

static const char *COMMON = "--patch 28x28x28 --preset tiny --levels 2 "
                            "--padding valid --classes 2 --augment none "
                            "--lr 0.02 --momentum 0.9";

/* Two volumes: the blobs annotated on every 4th z slice, and the same
 * image annotated on every 4th y slice as well (so its split differs). */
static int group_setup(void **state)
{
    (void)state;
    u3d_volume v;
    u3d_labels l;
    u3d_error err = {0};
    t_mkdtemp(dir, sizeof dir, "calib");
    t_blobs(S, &v, &l);
    t_ok(u3d_tiff_write_volume(P("img.tif"), &v, &err), &err, "write");
    t_ok(u3d_tiff_write_labels(P("lab.tif"), &l, &err), &err, "write");
    for (int z = 0; z < S; z++)
        for (int y = 2; y < S; y += 4)
            for (int x = 0; x < S; x++) {
                size_t i = ((size_t)z * S + y) * S + x;
                l.data[i] = v.data[i] > 65.0f; /* the blobs' inside */
            }
    t_ok(u3d_tiff_write_labels(P("lab_y.tif"), &l, &err), &err, "write");
    for (size_t i = 0; i < (size_t)S * S * S; i++) /* every voxel */
        l.data[i] = v.data[i] > 65.0f;
    t_ok(u3d_tiff_write_labels(P("lab_dense.tif"), &l, &err), &err, "write");
    u3d_volume_free(&v);
    u3d_labels_free(&l);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

static void train(const char *model, const char *extra, const char *errfile,
                  int want_rc)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --image %s --labels %s "
             "--model %s --iterations 20 --seed %d %s %s 2> %s",
             exe, P("img.tif"), P("lab.tif"), P("img.tif"), P("lab_y.tif"),
             P(model), SEED, COMMON, extra, P(errfile));
    assert_int_equal(t_run(cmd), want_rc);
}

/* 1 and the value when the model file has metadata key. */
static int meta(const char *model, const char *key, char *buf, size_t n)
{
    u3d_ckpt c;
    u3d_error err = {0};
    t_ok(u3d_ckpt_read(model, &c, &err), &err, model);
    int has = u3d_ckpt_meta_get(&c, key, buf, n) != NULL;
    u3d_ckpt_free(&c);
    return has;
}

/* The held-out voxels of both volumes with predict's probabilities, as
 * one 1 x 1 x N volume. */
static void pool(const u3d_volume *probs, u3d_volume *po, u3d_labels *pl,
                 int *nheld)
{
    const char *labs[2] = {"lab.tif", "lab_y.tif"};
    u3d_labels held[2];
    u3d_error err = {0};
    size_t n = 0, vox = (size_t)S * S * S;
    *nheld = 0;
    for (int v = 0; v < 2; v++) {
        u3d_labels l;
        u3d_holdout ho;
        t_ok(u3d_tiff_read_labels(P(labs[v]), &l, &err), &err, "labels");
        t_ok(u3d_holdout_split(&l, 255, 0.25, SEED + v, &ho, &err), &err,
             "split");
        assert_true(ho.nheld > 0);
        *nheld += ho.nheld;
        held[v] = ho.held;
        memset(&ho.held, 0, sizeof ho.held);
        u3d_holdout_free(&ho);
        u3d_labels_free(&l);
        for (size_t i = 0; i < vox; i++)
            n += held[v].data[i] != 255;
    }
    t_ok(u3d_volume_alloc(2, 1, 1, (int)n, po, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(1, 1, (int)n, pl, &err), &err, "alloc");
    size_t j = 0;
    for (int v = 0; v < 2; v++) {
        for (size_t i = 0; i < vox; i++)
            if (held[v].data[i] != 255) {
                pl->data[j] = held[v].data[i];
                for (int c = 0; c < 2; c++)
                    po->data[(size_t)c * n + j] = probs->data[c * vox + i];
                j++;
            }
        u3d_labels_free(&held[v]);
    }
}

static void calibrated_on_held_out_slices(void **state)
{
    (void)state;
    char txt[4096], buf[256], cmd[2048];
    train("m.u3d", "--holdout 0.25", "m.err", 0);
    t_slurp(P("m.err"), txt, sizeof txt);
    assert_true(meta(P("m.u3d"), "holdout", buf, sizeof buf));
    assert_float_equal(atof(buf), 0.25, 1e-9);
    snprintf(cmd, sizeof cmd, "%s predict --model %s --image %s --out %s "
             "--probabilities %s --quiet 2> /dev/null", exe, P("m.u3d"),
             P("img.tif"), P("pred.tif"), P("probs.tif"));
    assert_int_equal(t_run(cmd), 0);
    u3d_volume probs, po;
    u3d_labels pred, pl, want;
    u3d_calibration c;
    u3d_error err = {0};
    int nheld;
    t_ok(u3d_tiff_read_volume(P("probs.tif"), &probs, &err), &err, "probs");
    t_ok(u3d_tiff_read_labels(P("pred.tif"), &pred, &err), &err, "pred");
    pool(&probs, &po, &pl, &nheld);
    char line[96];
    snprintf(line, sizeof line, "holding out %d annotated slice(s) of 2 "
             "volume(s)", nheld);
    if (!strstr(txt, line))
        fail_msg("'%s' not in: %s", line, txt);
    t_ok(u3d_calibrate_bias(&po, &pl, 255, &c, &err), &err, "calibrate");
    printf("held-out slices %d (%d voxels): IoU %.4f -> %.4f, offset %+.2f\n",
           nheld, po.w, c.before.mean_fg, c.after.mean_fg,
           (double)c.bias[1]);
    int has = meta(P("m.u3d"), "class_bias", buf, sizeof buf);
    int dropped = strstr(txt, "did not carry from slice to slice") != NULL;
    assert_int_equal(has, c.changed && !dropped);
    if (has) { /* said with the count and the IoU of those voxels */
        snprintf(line, sizeof line, "decision calibrated on %d held-out "
                 "slice(s) (%d voxels)", nheld, po.w);
        if (!strstr(txt, line))
            fail_msg("'%s' not in: %s", line, txt);
        snprintf(line, sizeof line, "mean foreground IoU %.4f -> %.4f",
                 c.before.mean_fg, c.after.mean_fg);
        if (!strstr(txt, line))
            fail_msg("'%s' not in: %s", line, txt);
        float b0, b1;
        assert_int_equal(sscanf(buf, "%f,%f", &b0, &b1), 2);
        assert_float_equal(b0, c.bias[0], 0);
        assert_float_equal(b1, c.bias[1], 0);
    } else {
        assert_non_null(strstr(txt, "decision the plain argmax"));
    }
    /* predict decides with the model's offsets */
    t_ok(u3d_labels_from_probs(&probs, has ? c.bias : NULL, &want,
                               &err), &err, "argmax");
    assert_memory_equal(want.data, pred.data,
                        (size_t)S * S * S * sizeof *want.data);
    u3d_volume_free(&probs);
    u3d_volume_free(&po);
    u3d_labels_free(&pred);
    u3d_labels_free(&pl);
    u3d_labels_free(&want);
}

/* One volume: the cross-fit over its held-out slices is densify's
 * (u3d_calibrate_crossfit on predict's probabilities and the split drawn
 * here); the offsets are kept only when it beats the argmax. */
static void crossfit_decides(void **state)
{
    (void)state;
    char txt[4096], buf[256], cmd[2048], cmdt[2048], line[160];
    snprintf(cmdt, sizeof cmdt,
             "%s train --image %s --labels %s --model %s --iterations 20 "
             "--seed %d --holdout 0.4 %s 2> %s",
             exe, P("img.tif"), P("lab_y.tif"), P("one.u3d"), SEED, COMMON,
             P("one.err"));
    assert_int_equal(t_run(cmdt), 0);
    t_slurp(P("one.err"), txt, sizeof txt);
    snprintf(cmd, sizeof cmd, "%s predict --model %s --image %s --out %s "
             "--probabilities %s --quiet 2> /dev/null", exe, P("one.u3d"),
             P("img.tif"), P("pred1.tif"), P("probs1.tif"));
    assert_int_equal(t_run(cmd), 0);
    u3d_volume probs;
    u3d_labels l;
    u3d_holdout ho;
    u3d_calibration c;
    u3d_val_score est;
    u3d_error err = {0};
    t_ok(u3d_tiff_read_volume(P("probs1.tif"), &probs, &err), &err, "probs");
    t_ok(u3d_tiff_read_labels(P("lab_y.tif"), &l, &err), &err, "labels");
    t_ok(u3d_holdout_split(&l, 255, 0.4, SEED, &ho, &err), &err, "split");
    assert_true(ho.nheld >= 2);
    t_ok(u3d_calibrate_bias(&probs, &ho.held, 255, &c, &err), &err, "cal");
    t_ok(u3d_calibrate_crossfit(&probs, &ho.held, 255, ho.slices, ho.nheld,
                                &est, &err), &err, "crossfit");
    printf("%d held-out slices: argmax %.4f, tuned %.4f, cross-fitted %.4f\n",
           ho.nheld, c.before.mean_fg, c.after.mean_fg, est.mean_fg);
    assert_true(c.changed && est.voxels > 0);
    int keep = est.mean_fg > c.before.mean_fg;
    if (keep)
        snprintf(line, sizeof line, "each slice with the others' offsets "
                 "%.4f", est.mean_fg);
    else
        snprintf(line, sizeof line, "the others' offsets: mean foreground "
                 "IoU %.4f, the argmax %.4f", est.mean_fg, c.before.mean_fg);
    if (!strstr(txt, line))
        fail_msg("'%s' not in: %s", line, txt);
    assert_int_equal(meta(P("one.u3d"), "class_bias", buf, sizeof buf), keep);
    u3d_volume_free(&probs);
    u3d_labels_free(&l);
    u3d_holdout_free(&ho);
}

/* Without calibration every annotated slice is trained on, and the model
 * records neither a share held out nor offsets. */
static void off_keeps_every_slice(void **state)
{
    (void)state;
    const char *extra[] = {"--calibrate off", "--plan off",
                           "--holdout 0"};
    char txt[4096], buf[256], name[32], errf[32];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "off%d.u3d", i);
        snprintf(errf, sizeof errf, "off%d.err", i);
        train(name, extra[i], errf, 0);
        t_slurp(P(errf), txt, sizeof txt);
        if (strstr(txt, "holding out") || strstr(txt, "decision"))
            fail_msg("%s: %s", extra[i], txt);
        assert_false(meta(P(name), "holdout", buf, sizeof buf));
        assert_false(meta(P(name), "class_bias", buf, sizeof buf));
    }
}

/* A densely annotated volume has no slices to hold out apart (only their
 * crossings): it is trained on whole, and nothing is calibrated. */
static void dense_not_held_out(void **state)
{
    (void)state;
    char cmd[2048], txt[4096], buf[256];
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --model %s --iterations 4 %s "
             "2> %s", exe, P("img.tif"), P("lab_dense.tif"), P("dense.u3d"),
             COMMON, P("dense.err"));
    assert_int_equal(t_run(cmd), 0);
    t_slurp(P("dense.err"), txt, sizeof txt);
    assert_non_null(strstr(txt, "lab_dense.tif: densely annotated"));
    assert_non_null(strstr(txt, "no calibration: nothing was held out"));
    assert_false(meta(P("dense.u3d"), "class_bias", buf, sizeof buf));
}

/* Three or more classes: the plan trains on every slice and decides by
 * the argmax (measured on BraTS); --calibrate on or --holdout asks. */
static void multiclass_default_argmax(void **state)
{
    (void)state;
    const char *extra[] = {"", "--calibrate on", "--holdout 0.25"};
    char cmd[2048], txt[4096], buf[256], name[32], errf[32];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "k3_%d.u3d", i);
        snprintf(errf, sizeof errf, "k3_%d.err", i);
        snprintf(cmd, sizeof cmd,
                 "%s train --image %s --labels %s --model %s --iterations 4 "
                 "--patch 28x28x28 --preset tiny --levels 2 --padding valid "
                 "--classes 3 --augment none %s 2> %s", exe, P("img.tif"),
                 P("lab_y.tif"), P(name), extra[i], P(errf));
        assert_int_equal(t_run(cmd), 0);
        t_slurp(P(errf), txt, sizeof txt);
        int held = strstr(txt, "holding out") != NULL;
        assert_int_equal(held, i > 0);
        assert_int_equal(meta(P(name), "holdout", buf, sizeof buf), i > 0);
        assert_int_equal(strstr(txt, ": decision") != NULL, i > 0);
    }
}

/* Conflicts fail before any output. */
static void option_conflicts(void **state)
{
    (void)state;
    char txt[4096], extra[512];
    struct stat sb;
    train("bad1.u3d", "--holdout 0.25 --calibrate off", "bad1.err", 1);
    t_slurp(P("bad1.err"), txt, sizeof txt);
    assert_non_null(strstr(txt, "--holdout serves --calibrate"));
    snprintf(extra, sizeof extra, "--holdout 0.25 --val-image %s "
             "--val-labels %s", P("img.tif"), P("lab.tif"));
    train("bad2.u3d", extra, "bad2.err", 1);
    t_slurp(P("bad2.err"), txt, sizeof txt);
    assert_non_null(strstr(txt, "--holdout and --val-image"));
    train("bad3.u3d", "--holdout 0.6", "bad3.err", 1);
    assert_int_not_equal(stat(P("bad1.u3d"), &sb), 0);
    assert_int_not_equal(stat(P("bad2.u3d"), &sb), 0);
    assert_int_not_equal(stat(P("bad3.u3d"), &sb), 0);
}

/* With --val-image the decision of the model and of the best model are
 * tuned on the validation labels; nothing is held out. */
static void calibrated_on_validation(void **state)
{
    (void)state;
    char txt[8192], extra[512], buf[256];
    snprintf(extra, sizeof extra, "--val-image %s --val-labels %s "
             "--val-every 5", P("img.tif"), P("lab.tif"));
    train("v.u3d", extra, "v.err", 0);
    t_slurp(P("v.err"), txt, sizeof txt);
    assert_null(strstr(txt, "holding out"));
    assert_false(meta(P("v.u3d"), "holdout", buf, sizeof buf));
    const char *models[] = {"v.u3d", "v.best.u3d"};
    for (int i = 0; i < 2; i++) {
        char said[512];
        const char *p = P(models[i]);
        snprintf(said, sizeof said, "%s: decision", p);
        const char *at = strstr(txt, said);
        if (!at)
            fail_msg("no decision line for %s in: %s", p, txt);
        int tuned = strncmp(at + strlen(said), " calibrated on ", 15) == 0;
        assert_int_equal(meta(p, "class_bias", buf, sizeof buf), tuned);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(calibrated_on_held_out_slices),
        cmocka_unit_test(crossfit_decides),
        cmocka_unit_test(off_keeps_every_slice),
        cmocka_unit_test(dense_not_held_out),
        cmocka_unit_test(multiclass_default_argmax),
        cmocka_unit_test(option_conflicts),
        cmocka_unit_test(calibrated_on_validation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
