/* `unet3d plan` on a tiny volume pair (table, --json, a size mismatch),
 * and densify's model recording the plan's augmentation (--plan off: the
 * preset paper as before). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "test_util.h"

static char dir[128];
static const char *exe = U3D_BINARY_DIR "/unet3d";
enum { S = 24 };

static const char *P(const char *name) { return t_join(dir, name); }

/* img.tif: blobs on noise; lab.tif: z slice 8 annotated; short.tif:
 * labels one row short. */
static int group_setup(void **state)
{
    (void)state;
    t_mkdtemp(dir, sizeof dir, "plan");
    u3d_volume v;
    u3d_labels l, bad;
    u3d_error err = {0};
    uint64_t s = 5;
    t_ok(u3d_volume_alloc(1, S, S, S, &v, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(S, S, S, &l, &err), &err, "alloc");
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t i = ((size_t)z * S + y) * S + x;
                int in = ((x / 6 + y / 6 + z / 6) % 3) == 0;
                v.data[i] = 100.0f * in + t_randf(&s, 0, 30);
                l.data[i] = z == 8 ? (uint16_t)in : 255;
            }
    t_ok(u3d_tiff_write_volume(P("img.tif"), &v, &err), &err, "write");
    t_ok(u3d_tiff_write_labels(P("lab.tif"), &l, &err), &err, "write");
    t_ok(u3d_labels_alloc(S, S - 1, S, &bad, &err), &err, "alloc");
    t_ok(u3d_tiff_write_labels(P("short.tif"), &bad, &err), &err, "write");
    u3d_volume_free(&v);
    u3d_labels_free(&l);
    u3d_labels_free(&bad);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

static void plan_table_and_json(void **state)
{
    (void)state;
    char cmd[2048], txt[16384];
    snprintf(cmd, sizeof cmd, "%s plan --image %s --labels %s > %s", exe,
             P("img.tif"), P("lab.tif"), P("t.txt"));
    assert_int_equal(t_run(cmd), 0);
    t_slurp(P("t.txt"), txt, sizeof txt);
    const char *rows[] = {"setting", "spacing", "network", "patch",
                          "augment", "normalize", "class weights",
                          "optimizer", "adam, lr 0.001", "p99.8",
                          "annotated voxels"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (!strstr(txt, rows[i]))
            fail_msg("no '%s' in: %s", rows[i], txt);
    snprintf(cmd, sizeof cmd,
             "%s plan --image %s --labels %s --spacing 2.5x1x1 --json > %s",
             exe, P("img.tif"), P("lab.tif"), P("t.json"));
    assert_int_equal(t_run(cmd), 0);
    t_slurp(P("t.json"), txt, sizeof txt);
    const char *keys[] = {"\"spacing\": [2.5, 1, 1]", "\"anisotropy\"",
                          "\"settings\"", "\"reason\"", "\"patch_densify\"",
                          "\"changed\": true", "\"intensity\"",
                          "\"class_weights\"", "\"annotated\""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strstr(txt, keys[i]))
            fail_msg("no %s in: %s", keys[i], txt);
    assert_true(txt[0] == '{' && strstr(txt, "}\n}\n"));
}

static void plan_size_mismatch(void **state)
{
    (void)state;
    char cmd[2048], txt[4096];
    snprintf(cmd, sizeof cmd, "%s plan --image %s --labels %s 2> %s", exe,
             P("img.tif"), P("short.tif"), P("e.txt"));
    assert_int_equal(t_run(cmd), 1);
    t_slurp(P("e.txt"), txt, sizeof txt);
    if (!strstr(txt, "short.tif") || strchr(txt, '\n') != strrchr(txt, '\n'))
        fail_msg("want one line naming short.tif, got: %s", txt);
}

/* densify with opts, its exit status (stderr in d.txt) */
static int densify(const char *opts)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s densify --image %s --labels %s --out %s --model-out %s "
             "--preset tiny --levels 2 --iterations 1 --holdout 0 %s "
             "2> %s",
             exe, P("img.tif"), P("lab.tif"), P("d.tif"), P("m.u3d"), opts,
             P("d.txt"));
    return t_run(cmd);
}

/* The model's augmentation metadata after densify with opts. */
static void densify_aug(const char *opts, char *augment, char *params,
                        size_t n)
{
    assert_int_equal(densify(opts), 0);
    u3d_ckpt c;
    u3d_error err = {0};
    t_ok(u3d_ckpt_read(P("m.u3d"), &c, &err), &err, "model");
    const char *a = u3d_ckpt_meta_get(&c, "augment", augment, n);
    assert_non_null(a);
    if (!u3d_ckpt_meta_get(&c, "augment_params", params, n))
        params[0] = 0;
    u3d_ckpt_free(&c);
}

static void densify_records_the_plan(void **state)
{
    (void)state;
    char aug[256], params[1024], txt[4096];
    /* 2 classes: densify trains on its own volume without augmentation */
    densify_aug("", aug, params, sizeof aug);
    assert_string_equal(aug, "none");
    assert_string_equal(params, "");
    t_slurp(P("d.txt"), txt, sizeof txt);
    assert_non_null(strstr(txt, "augment none (2 classes)"));
    densify_aug("--spacing 2.5x1x1", aug, params, sizeof aug);
    assert_string_equal(aug, "none");
    /* 3 classes (the same annotation as class 2): mirroring, as train */
    densify_aug("--classes 3", aug, params, sizeof aug);
    assert_string_equal(aug, "default");
    assert_string_equal(params, "");
    /* --aug-prob alone asks for the transforms: anisotropic, the plan's
     * in-plane augmentation, recorded */
    densify_aug("--spacing 2.5x1x1 --aug-prob 0.2", aug, params, sizeof aug);
    assert_string_equal(aug, "default");
    const char *want = "1.60000002 4 4 13 32 32 15 0 0 ";
    if (strncmp(params, want, strlen(want)))
        fail_msg("want the plan's sigma, grid and rotation, got '%s'",
                 params);
    t_slurp(P("d.txt"), txt, sizeof txt);
    assert_non_null(strstr(txt, "plan: patch"));
    assert_non_null(strstr(txt, "in-plane rotation"));
    /* --plan off: as before, paper */
    densify_aug("--plan off", aug, params, sizeof aug);
    assert_string_equal(aug, "paper");
    assert_string_equal(params, "");
    t_slurp(P("d.txt"), txt, sizeof txt);
    assert_null(strstr(txt, "plan:"));
    /* an augmentation option: the user's, no plan */
    densify_aug("--spacing 2.5x1x1 --augment none", aug, params, sizeof aug);
    assert_string_equal(aug, "none");
    assert_string_equal(params, "");
}

/* The optimizer and lr densify's model records with opts. */
static void densify_optim(const char *opts, const char *optim, const char *lr)
{
    char buf[64];
    assert_int_equal(densify(opts), 0);
    u3d_ckpt c;
    u3d_error err = {0};
    t_ok(u3d_ckpt_read(P("m.u3d"), &c, &err), &err, "model");
    const char *v = u3d_ckpt_meta_get(&c, "optimizer", buf, sizeof buf);
    if (!v || strcmp(v, optim))
        fail_msg("%s: optimizer %s, want %s", opts, v ? v : "none", optim);
    v = u3d_ckpt_meta_get(&c, "lr", buf, sizeof buf);
    if (!v || strcmp(v, lr))
        fail_msg("%s: lr %s, want %s", opts, v ? v : "none", lr);
    u3d_ckpt_free(&c);
}

/* The plan's Adam unless the user says SGD (--optimizer, --momentum,
 * --plan off); a given lr is kept; --momentum with Adam is refused. */
static void densify_optimizer(void **state)
{
    (void)state;
    char txt[4096];
    densify_optim("", "adam", "0.00100000005");
    t_slurp(P("d.txt"), txt, sizeof txt);
    assert_non_null(strstr(txt, "adam, lr 0.001"));
    densify_optim("--lr 0.005", "adam", "0.00499999989");
    densify_optim("--plan off", "sgd", "0.00999999978");
    densify_optim("--momentum 0.9", "sgd", "0.00999999978");
    densify_optim("--optimizer sgd", "sgd", "0.00999999978");
    densify_optim("--plan off --optimizer adam", "adam", "0.00100000005");
    assert_int_equal(densify("--optimizer adam --momentum 0.9"), 1);
    t_slurp(P("d.txt"), txt, sizeof txt);
    if (!strstr(txt, "--momentum is SGD's") ||
        strchr(txt, '\n') != strrchr(txt, '\n'))
        fail_msg("want one line about --momentum, got: %s", txt);
    assert_int_equal(densify("--optimizer rmsprop"), 1);
}

/* train on an anisotropic volume: the plan's kernels, patch and
 * augmentation reach the model; a resumed run keeps them. */
static void train_takes_the_plan(void **state)
{
    (void)state;
    char cmd[2048], buf[1024];
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --model %s --preset tiny "
             "--levels 2 --iterations 1 --spacing 4x1x1 --quiet",
             exe, P("img.tif"), P("lab.tif"), P("t.u3d"));
    assert_int_equal(t_run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --model %s --resume "
             "--iterations 2 --quiet",
             exe, P("img.tif"), P("lab.tif"), P("t.u3d"));
    assert_int_equal(t_run(cmd), 0);
    u3d_ckpt c;
    u3d_error err = {0};
    t_ok(u3d_ckpt_read(P("t.u3d"), &c, &err), &err, "model");
    const char *v = u3d_ckpt_meta_get(&c, "kernels", buf, sizeof buf);
    assert_true(v && !strncmp(v, "1x3x3", 5));
    v = u3d_ckpt_meta_get(&c, "augment_params", buf, sizeof buf);
    assert_true(v && !strncmp(v, "1 4 4 8 32 32 15 0 0 ", 21));
    v = u3d_ckpt_meta_get(&c, "iteration", buf, sizeof buf);
    assert_true(v && !strcmp(v, "2"));
    v = u3d_ckpt_meta_get(&c, "optimizer", buf, sizeof buf);
    assert_true(v && !strcmp(v, "adam"));
    v = u3d_ckpt_meta_get(&c, "padding", buf, sizeof buf);
    assert_true(v && !strcmp(v, "same"));
    v = u3d_ckpt_meta_get(&c, "adam_step", buf, sizeof buf);
    assert_true(v && !strcmp(v, "2"));
    assert_non_null(u3d_ckpt_find(&c, "out_bias.adam_v"));
    u3d_ckpt_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plan_table_and_json),
        cmocka_unit_test(plan_size_mismatch),
        cmocka_unit_test(densify_records_the_plan),
        cmocka_unit_test(densify_optimizer),
        cmocka_unit_test(train_takes_the_plan),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
