/* `unet3d train --val-image/--val-labels`: validation rows in the log at
 * the right iterations (kept by --resume), the best model file is the
 * best-scoring one, and bad validation inputs fail before any output. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"
#include "unet3d/checkpoint.h"

static char dir[128];
static const char *exe = U3D_BINARY_DIR "/unet3d";
enum { S = 32 };

static const char *P(const char *name) { return t_join(dir, name); }

/* valid padding (not the plan's same): the thin validation volume below
 * is too thin for it */
static const char *COMMON = "--patch 28x28x28 --preset tiny --levels 2 "
                            "--padding valid --classes 2 --augment none "
                            "--lr 0.02 --momentum 0.9 --quiet";

static int group_setup(void **state)
{
    (void)state;
    u3d_volume v;
    u3d_labels l;
    u3d_error err = {0};
    t_mkdtemp(dir, sizeof dir, "val");
    t_blobs(S, &v, &l);
    t_ok(u3d_tiff_write_volume(P("img.tif"), &v, &err), &err, "write");
    t_ok(u3d_tiff_write_labels(P("lab.tif"), &l, &err), &err, "write");
    l.data[7] = 7; /* a value >= classes */
    t_ok(u3d_tiff_write_labels(P("lab_badvalue.tif"), &l, &err), &err, "w");
    memset(l.data, 255, (size_t)S * S * S * sizeof *l.data);
    t_ok(u3d_tiff_write_labels(P("lab_empty.tif"), &l, &err), &err, "w");
    u3d_volume_free(&v);
    u3d_labels_free(&l);
    u3d_labels sh;
    t_ok(u3d_labels_alloc(S, S, S - 2, &sh, &err), &err, "alloc");
    t_ok(u3d_tiff_write_labels(P("lab_shape.tif"), &sh, &err), &err, "w");
    u3d_labels_free(&sh);
    /* too thin to be predicted whole by the tiny net */
    t_ok(u3d_volume_alloc(1, 2, S, S, &v, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(2, S, S, &l, &err), &err, "alloc");
    t_ok(u3d_tiff_write_volume(P("img_thin.tif"), &v, &err), &err, "w");
    t_ok(u3d_tiff_write_labels(P("lab_thin.tif"), &l, &err), &err, "w");
    u3d_volume_free(&v);
    u3d_labels_free(&l);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

/* The log's rows: iteration and validation score (NaN: none). */
typedef struct logrows {
    int n;
    long it[64];
    double score[64];
    char header[256];
} logrows;

static void read_log(const char *path, logrows *r)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    memset(r, 0, sizeof *r);
    assert_non_null(fgets(r->header, sizeof r->header, f));
    while (fgets(line, sizeof line, f) && r->n < 64) {
        char *p = line;
        r->it[r->n] = strtol(p, &p, 10);
        for (int k = 0; k < 3; k++)
            p = strchr(p, ',') + 1;
        char *end;
        double v = strtod(p, &end);
        r->score[r->n++] = end == p ? NAN : v;
    }
    fclose(f);
}

static void train(const char *model, const char *extra)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --val-image %s --val-labels %s "
             "--model %s %s %s",
             exe, P("img.tif"), P("lab.tif"), P("img.tif"), P("lab.tif"),
             P(model), COMMON, extra);
    assert_int_equal(t_run(cmd), 0);
}

static long model_iteration(const char *path)
{
    u3d_ckpt c;
    u3d_error err = {0};
    char buf[32];
    t_ok(u3d_ckpt_read(path, &c, &err), &err, path);
    long it = atol(u3d_ckpt_meta_get(&c, "iteration", buf, sizeof buf));
    u3d_ckpt_free(&c);
    return it;
}

/* Rows validated: every 4th iteration and the last; the best file holds
 * the iteration with the highest score. */
static void rows_and_best(const logrows *r, long last, const char *best)
{
    long best_it = 0;
    double top = -1;
    for (int i = 0; i < r->n; i++) {
        assert_int_equal(r->it[i], i + 1);
        int want = r->it[i] % 4 == 0 || r->it[i] == last;
        if (want != !isnan(r->score[i]))
            fail_msg("row %ld: validation %s", r->it[i],
                     want ? "missing" : "unexpected");
        if (!isnan(r->score[i]) && r->score[i] > top) {
            top = r->score[i];
            best_it = r->it[i];
        }
    }
    assert_int_equal(r->n, last);
    assert_int_equal(model_iteration(best), best_it);
}

static void log_rows_best_model(void **state)
{
    (void)state;
    logrows r;
    train("a.u3d", "--iterations 10 --val-every 4 --checkpoint-every 2 "
                   "--lr 0.05 --lr-schedule constant");
    read_log(P("a.u3d.csv"), &r);
    assert_string_equal(r.header, "iteration,loss,seconds,val_mean_fg_iou,"
                                  "val_iou_0,val_iou_1\n");
    rows_and_best(&r, 10, P("a.best.u3d"));
}

/* A run of 6 iterations resumed to 10 keeps rows 1..6 (6 validated as its
 * last) and validates 8 and 10; the best file is still the best row's. */
static void resume_keeps_rows(void **state)
{
    (void)state;
    logrows r;
    train("b.u3d", "--iterations 6 --val-every 4 --checkpoint-every 2 "
                   "--lr 0.05 --lr-schedule constant");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --val-image %s --val-labels %s "
             "--model %s --resume --iterations 10 --val-every 4 --quiet",
             exe, P("img.tif"), P("lab.tif"), P("img.tif"), P("lab.tif"),
             P("b.u3d"));
    assert_int_equal(t_run(cmd), 0);
    read_log(P("b.u3d.csv"), &r);
    assert_int_equal(r.n, 10);
    assert_false(isnan(r.score[5])); /* the first run's last */
    r.score[5] = NAN;                /* what rows_and_best does not expect */
    logrows full;
    read_log(P("a.u3d.csv"), &full);
    for (int i = 0; i < 10; i++) /* the same run: the same scores */
        if (i != 5 && !(isnan(r.score[i]) && isnan(full.score[i])))
            assert_true(fabs(r.score[i] - full.score[i]) < 1e-9);
    rows_and_best(&r, 10, P("b.best.u3d"));
}

static void expect_error(const char *vimg, const char *vlab, const char *want)
{
    char cmd[2048], msg[4096] = "";
    remove(P("bad.u3d"));
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --model %s --iterations 2 %s "
             "--val-image %s --val-labels %s 2> %s",
             exe, P("img.tif"), P("lab.tif"), P("bad.u3d"), COMMON, vimg,
             vlab, P("err.txt"));
    int rc = t_run(cmd);
    FILE *f = fopen(P("err.txt"), "r");
    size_t n = fread(msg, 1, sizeof msg - 1, f);
    msg[n] = 0;
    fclose(f);
    if (rc != 1 || !strstr(msg, want) || strchr(msg, '\n') != msg + n - 1)
        fail_msg("expected exit 1 and one line containing '%s' (exit %d), "
                 "got: %s", want, rc, msg);
    assert_int_equal(access(P("bad.u3d"), F_OK), -1);
    assert_int_equal(access(P("bad.best.u3d"), F_OK), -1);
    assert_int_equal(access(P("bad.u3d.csv"), F_OK), -1);
}

static void bad_val_inputs(void **state)
{
    (void)state;
    expect_error(P("img.tif"), P("lab_shape.tif"), "lab_shape.tif");
    expect_error(P("img.tif"), P("lab_badvalue.tif"), "lab_badvalue.tif");
    expect_error(P("img.tif"), P("lab_empty.tif"), "lab_empty.tif");
    expect_error(P("missing.tif"), P("lab.tif"), "missing.tif");
    expect_error(P("img_thin.tif"), P("lab_thin.tif"), "img_thin.tif");
    /* half the pair */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s train --image %s --labels %s --model %s --iterations 2 "
             "--val-image %s 2> /dev/null",
             exe, P("img.tif"), P("lab.tif"), P("bad.u3d"), P("img.tif"));
    assert_int_equal(t_run(cmd), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_rows_best_model),
        cmocka_unit_test(resume_keeps_rows),
        cmocka_unit_test(bad_val_inputs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
