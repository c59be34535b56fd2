/* Multi-process runs under mpirun (issue 18): N ranks x batch b train the
 * model one process trains with batch N*b; a 2-rank run killed with SIGKILL
 * resumes (with 2 ranks or 1) to the uninterrupted result; a rank that
 * fails stops every rank with one message naming it and no output file.
 * Skipped (exit 77) when the build has no MPI or mpirun is absent. As root
 * it sets Open MPI's OMPI_ALLOW_RUN_AS_ROOT variables itself. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "dist/dist.h"
#include "test_util.h"

static char dir[128];
static const char *exe = U3D_BINARY_DIR "/unet3d";
static const char *MPIRUN = "mpirun --oversubscribe --bind-to none";

static const char *P(const char *name) { return t_join(dir, name); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Blobs image + sparse labels (every 4th z slice labeled). */
static void write_data(int S)
{
    u3d_volume v;
    u3d_labels l;
    u3d_error err = {0};
    t_blobs(S, &v, &l);
    t_ok(u3d_tiff_write_volume(P("img.tif"), &v, &err), &err, "write");
    t_ok(u3d_tiff_write_labels(P("lab.tif"), &l, &err), &err, "write");
    u3d_volume_free(&v);
    u3d_labels_free(&l);
}

static int group_setup(void **state)
{
    (void)state;
    if (!u3d_dist_built()) {
        printf("SKIP: this unet3d is built without MPI (-DUNET3D_MPI=OFF)\n");
        exit(77);
    }
    if (t_run("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("SKIP: mpirun not found (Debian: apt-get install "
               "openmpi-bin)\n");
        exit(77);
    }
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    /* the single-process runs start no MPI, whatever the environment */
    t_mkdtemp(dir, sizeof dir, "mpi");
    write_data(32);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

/* Every tensor of two models: bit for bit (tol 0) or within tol relative
 * to the tensor's largest magnitude (tol < 0: only returns the largest
 * relative difference). */
static double compare_models(const char *a, const char *b, double tol)
{
    u3d_ckpt ca, cb;
    u3d_error err = {0};
    t_ok(u3d_ckpt_read(a, &ca, &err), &err, "read a");
    t_ok(u3d_ckpt_read(b, &cb, &err), &err, "read b");
    assert_int_equal(ca.ntensors, cb.ntensors);
    double worst = 0;
    for (int i = 0; i < ca.ntensors; i++) {
        const u3d_ckpt_tensor *t = u3d_ckpt_find(&cb, ca.tensors[i].name);
        assert_non_null(t);
        size_t n = u3d_shape_count(t->shape);
        const float *x = ca.tensors[i].data, *y = t->data;
        if (tol == 0) {
            if (memcmp(x, y, n * sizeof(float)))
                fail_msg("%s differs between %s and %s", t->name, a, b);
            continue;
        }
        double amax = 0, dmax = 0;
        for (size_t j = 0; j < n; j++) {
            double d = fabs((double)x[j] - (double)y[j]);
            amax = fmax(amax, fabs((double)x[j]));
            dmax = fmax(dmax, d);
            if (!isfinite(x[j]) || !isfinite(y[j]))
                fail_msg("%s: non-finite value", t->name);
        }
        /* a conv bias followed by batch norm (and its momentum) has a zero
         * gradient in exact arithmetic: its values are rounding noise
         * (below 1e-6, where every trained tensor is far above), and only
         * have to stay noise */
        if (amax < 1e-6 && dmax < 1e-6)
            continue;
        double rel = amax > 0 ? dmax / amax : dmax;
        worst = fmax(worst, rel);
        if (tol >= 0 && rel > tol)
            fail_msg("%s: %s and %s differ by %.3g relative (> %.0e; "
                     "largest value %.3g, difference %.3g)",
                     t->name, a, b, rel, tol, amax, dmax);
    }
    if (tol > 0)
        printf("%s vs %s: largest relative difference %.3g\n", a, b, worst);
    u3d_ckpt_free(&ca);
    u3d_ckpt_free(&cb);
    return worst;
}

static const char *COMMON =
    "--patch 28x28x28 --preset tiny --levels 2 --classes 2 --augment paper "
    "--lr 0.02 --momentum 0.9 --quiet --checkpoint-every 0";

/* 2 ranks x batch 1 == 1 process x batch 2 on the same patches, after
 * `iters` iterations. The two sum the batch's gradients (and, with
 * --sync-bn, its statistics) in another order, so they agree to rounding
 * after one step; over several steps batch norm amplifies that rounding
 * (a channel of small variance, a ReLU that flips): 1e-5 held on these
 * blobs with every slice trained on and missed by 1e-5..1e-3 with one held
 * out or on other volumes, while the wrong statistics differ by > 1e-3
 * (below). So batch norm is compared after one step, and the patches and
 * optimizer state of later iterations without it, after five. */
static void same_as_big_batch(const char *bn, const char *extra, int iters)
{
    char cmd[2048];
    double t0 = now_s();
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --model %s --iterations %d "
             "--batch 2 --batchnorm %s %s",
             exe, P("img.tif"), P("lab.tif"), P("one.u3d"), iters, bn,
             COMMON);
    assert_int_equal(t_run(cmd), 0);
    double t1 = now_s();
    snprintf(cmd, sizeof cmd,
             "%s -np 2 %s train --image %s --labels %s --model %s "
             "--iterations %d --batch 1 --batchnorm %s %s %s",
             MPIRUN, exe, P("img.tif"), P("lab.tif"), P("two.u3d"), iters,
             bn, extra, COMMON);
    assert_int_equal(t_run(cmd), 0);
    printf("batchnorm %s%s, %d iteration(s): 1 process x batch 2 %.1f s, "
           "2 ranks x batch 1 %.1f s\n", bn, extra, iters, t1 - t0,
           now_s() - t1);
    compare_models(P("one.u3d"), P("two.u3d"), 1e-5);
}

static void two_ranks_equal_one_big_batch(void **state)
{
    (void)state;
    same_as_big_batch("none", "", 5);
    same_as_big_batch("plain", "--sync-bn", 1);
    same_as_big_batch("affine", "--sync-bn", 1);
    /* the check has teeth: per-rank batch statistics (one.u3d is still the
     * affine 1 x 2 model) train another model */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s -np 2 %s train --image %s --labels %s --model %s "
             "--iterations 1 --batch 1 --batchnorm affine %s",
             MPIRUN, exe, P("img.tif"), P("lab.tif"), P("two.u3d"), COMMON);
    assert_int_equal(t_run(cmd), 0);
    double d = compare_models(P("one.u3d"), P("two.u3d"), -1);
    printf("without --sync-bn: largest relative difference %.3g\n", d);
    if (!(d > 1e-3))
        fail_msg("per-rank batch norm should differ from batch 2 (%.3g)", d);
}

static void sigkill_then_resume(void **state)
{
    (void)state;
    const int iters = 8;
    const char *args = "--patch 28x28x28 --preset tiny --levels 2 --classes 2 "
                       "--augment none --lr 0.02 --momentum 0.9 --quiet "
                       "--checkpoint-every 2 --batch 1 --batchnorm none";
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s -np 2 %s train --image %s --labels %s --model %s "
             "--iterations %d %s",
             MPIRUN, exe, P("img.tif"), P("lab.tif"), P("full.u3d"), iters,
             args);
    assert_int_equal(t_run(cmd), 0);
    const char *resumed[2] = {"killed2.u3d", "killed1.u3d"};
    for (int k = 0; k < 2; k++) {
        /* the last rank kills itself with SIGKILL after iteration 5 (a
         * testing hook of the trainer), while rank 0 may be writing the
         * checkpoint of iteration 4; mpirun then ends the job */
        snprintf(cmd, sizeof cmd,
                 "UNET3D_TEST_SIGKILL_AT=5 %s -np 2 %s train --image %s "
                 "--labels %s --model %s --iterations %d %s 2>/dev/null",
                 MPIRUN, exe, P("img.tif"), P("lab.tif"), P(resumed[k]),
                 iters, args);
        double t0 = now_s();
        assert_int_not_equal(t_run(cmd), 0);
        printf("killed run ended after %.1f s\n", now_s() - t0);
        u3d_ckpt c;
        u3d_error err = {0};
        char buf[32];
        t_ok(u3d_ckpt_read(P(resumed[k]), &c, &err), &err,
             "checkpoint left by the killed run");
        long at = atol(u3d_ckpt_meta_get(&c, "iteration", buf, sizeof buf));
        u3d_ckpt_free(&c);
        printf("killed 2-rank run left a checkpoint at iteration %ld of %d; "
               "resuming with %d rank(s)\n", at, iters, 2 - k);
        assert_true(at >= 2 && at <= 4);
        if (k == 0)
            snprintf(cmd, sizeof cmd,
                     "%s -np 2 %s train --image %s --labels %s --model %s "
                     "--resume --quiet --checkpoint-every 2",
                     MPIRUN, exe, P("img.tif"), P("lab.tif"), P(resumed[k]));
        else
            snprintf(cmd, sizeof cmd,
                     "%s train --image %s --labels %s --model %s --resume "
                     "--quiet --checkpoint-every 2",
                     exe, P("img.tif"), P("lab.tif"), P(resumed[k]));
        assert_int_equal(t_run(cmd), 0);
        /* the same ranks: the same sums in the same order, bit for bit; one
         * process with the global batch: the same patches and model up to
         * rounding (its loss is normalized once, not per rank) */
        compare_models(P("full.u3d"), P(resumed[k]), k == 0 ? 0 : 1e-5);
    }
}

static void same_files(const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    if (t_run(cmd) != 0)
        fail_msg("%s and %s differ", a, b);
}

/* Rows of tiles over 2 ranks write the single-process files byte for
 * byte: valid and same padding, tiles that do not divide the volume (a
 * 35x33x31 image). */
static void predict_equals_one_process(void **state)
{
    (void)state;
    char cmd[4096];
    u3d_volume v;
    u3d_error err = {0};
    uint64_t seed = 5;
    t_ok(u3d_volume_alloc(1, 35, 33, 31, &v, &err), &err, "alloc");
    for (size_t i = 0; i < (size_t)35 * 33 * 31; i++)
        v.data[i] = t_randf(&seed, 0, 100);
    t_ok(u3d_tiff_write_volume(P("odd.tif"), &v, &err), &err, "write");
    u3d_volume_free(&v);
    const char *pads[2] = {"valid", "same"};
    const char *tiles[2] = {"28x28x28", "20x20x20"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "%s train --image %s --labels %s --model %s --iterations 2 "
                 "--preset tiny --levels 2 --classes 2 --padding %s --patch "
                 "28x28x28 --augment none --quiet",
                 exe, P("img.tif"), P("lab.tif"), P("p.u3d"), pads[k]);
        assert_int_equal(t_run(cmd), 0);
        const char *np[2] = {"", "-np 2"};
        for (int r = 0; r < 2; r++) {
            snprintf(cmd, sizeof cmd,
                     "%s %s %s predict --model %s --image %s --out %s "
                     "--probabilities %s --tile %s --quiet",
                     r ? MPIRUN : "", np[r], exe, P("p.u3d"), P("odd.tif"),
                     P(r ? "seg2.tif" : "seg1.tif"),
                     P(r ? "prob2.tif" : "prob1.tif"), tiles[k]);
            assert_int_equal(t_run(cmd), 0);
        }
        same_files(P("seg1.tif"), P("seg2.tif"));
        same_files(P("prob1.tif"), P("prob2.tif"));
        printf("%s padding, tile %s: 2 ranks wrote the 1-process files\n",
               pads[k], tiles[k]);
    }
    /* a rank without its device: no output, the rank named */
    remove(P("seg2.tif"));
    snprintf(cmd, sizeof cmd,
             "timeout -s KILL 60 %s -np 2 %s predict --model %s --image %s "
             "--out %s --tile 16x16x16 --quiet --device cpu:0,cpu:9 2> %s",
             MPIRUN, exe, P("p.u3d"), P("odd.tif"), P("seg2.tif"),
             P("err.txt"));
    assert_int_not_equal(t_run(cmd), 0);
    assert_int_equal(access(P("seg2.tif"), F_OK), -1);
}

/* densify trains data-parallel and predicts distributed; rank 0 writes. */
static void densify_runs(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s -np 2 %s densify --image %s --labels %s --out %s "
             "--iterations 3 --batch 1 --preset tiny --levels 2 --classes 2 "
             "--patch 28x28x28 --augment none 2> %s",
             MPIRUN, exe, P("img.tif"), P("lab.tif"), P("dense.tif"),
             P("err.txt"));
    assert_int_equal(t_run(cmd), 0);
    u3d_labels l;
    u3d_error err = {0};
    t_ok(u3d_tiff_read_labels(P("dense.tif"), &l, &err), &err, "dense");
    assert_int_equal(l.d, 32);
    u3d_labels_free(&l);
    FILE *f = fopen(P("err.txt"), "r");
    char msg[8192] = "";
    size_t n = fread(msg, 1, sizeof msg - 1, f);
    msg[n] = 0;
    fclose(f);
    const char *w = strstr(msg, "wrote ");
    if (!w || strstr(w + 1, "wrote "))
        fail_msg("expected one 'wrote' line (rank 0): %s", msg);
}

/* Validation under mpirun: every rank takes part in the prediction, rank
 * 0 writes the validated rows and the best model. */
static void train_validates(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s -np 2 %s train --image %s --labels %s --val-image %s "
             "--val-labels %s --model %s --iterations 4 --val-every 2 %s",
             MPIRUN, exe, P("img.tif"), P("lab.tif"), P("img.tif"),
             P("lab.tif"), P("val.u3d"), COMMON);
    assert_int_equal(t_run(cmd), 0);
    assert_int_equal(access(P("val.best.u3d"), F_OK), 0);
    FILE *f = fopen(P("val.u3d.csv"), "r");
    char txt[4096] = "";
    size_t n = fread(txt, 1, sizeof txt - 1, f);
    txt[n] = 0;
    fclose(f);
    assert_non_null(strstr(txt, "val_mean_fg_iou"));
    const char *r2 = strstr(txt, "\n2,"), *r3 = strstr(txt, "\n3,");
    assert_true(r2 && r3);
    assert_true(strstr(r2, ",,") == NULL || strstr(r2, ",,") > r3);
}

/* Expects exit != 0 within 30 s, `want` in the messages, no model. */
static void expect_failure(const char *cmd, const char *want)
{
    char full[4096];
    remove(P("bad.u3d"));
    snprintf(full, sizeof full, "timeout -s KILL 60 %s 2> %s", cmd,
             P("err.txt"));
    double t0 = now_s();
    int rc = t_run(full);
    double took = now_s() - t0;
    FILE *f = fopen(P("err.txt"), "r");
    char msg[8192] = "";
    size_t n = f ? fread(msg, 1, sizeof msg - 1, f) : 0;
    msg[n] = 0;
    if (f)
        fclose(f);
    printf("failed in %.1f s (exit %d): %s", took, rc, msg);
    if (rc == 0 || took > 30 || !strstr(msg, want))
        fail_msg("expected a failure within 30 s naming '%s'; exit %d after "
                 "%.1f s: %s", want, rc, took, msg);
    assert_int_equal(access(P("bad.u3d"), F_OK), -1);
}

static void failing_rank_stops_all(void **state)
{
    (void)state;
    char cmd[4096], base[1024];
    snprintf(base, sizeof base,
             "%s train --labels %s --model %s --iterations 3 %s", exe,
             P("lab.tif"), P("bad.u3d"), COMMON);
    /* rank 1 is given an image that does not exist (MPMD launch) */
    snprintf(cmd, sizeof cmd, "%s -np 1 %s --image %s : -np 1 %s --image %s",
             MPIRUN, base, P("img.tif"), base, P("missing.tif"));
    expect_failure(cmd, "rank 1");
    /* rank 1's device does not exist */
    snprintf(cmd, sizeof cmd, "%s -np 2 %s --image %s --device cpu:0,cpu:9",
             MPIRUN, base, P("img.tif"));
    expect_failure(cmd, "rank 1");
    /* a command that does not share its work refuses several ranks */
    snprintf(cmd, sizeof cmd, "%s -np 2 %s demo --out %s", MPIRUN, exe,
             P("demo"));
    expect_failure(cmd, "runs as one process");
    assert_int_equal(access(P("demo"), F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_ranks_equal_one_big_batch),
        cmocka_unit_test(sigkill_then_resume),
        cmocka_unit_test(failing_rank_stops_all),
        cmocka_unit_test(predict_equals_one_process),
        cmocka_unit_test(densify_runs),
        cmocka_unit_test(train_validates),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
