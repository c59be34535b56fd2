/* Issue #16's tuner: the search with a fake timer (fastest valid
 * candidate, budget, failing candidates), the shipped tables' strict
 * parse, the user's tuned file (atomic, versioned, keyed by device;
 * corrupt or foreign files refused with a message, the shipped rows and
 * defaults used), the lookup order (the environment wins), and tuned
 * results found and used by a new backend. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_util.h"
#include "backends/opencl/conv3d_igemm.h"
#include "backends/opencl/opencl.h"
#include "backends/opencl/tune_search.h"
#include "backends/opencl/tuner.h"
#include "backends/opencl/tuning.h"

/* ---- the search with a fake timer ---- */

typedef struct fake {
    double t;      /* the fake clock */
    int runs;      /* measure calls */
    int started_late; /* calls at or after the budget */
    double budget;
} fake;

/* cost: distance from (8, 3), in fake seconds; (16, 1) would be the
 * fastest of all but fails (say, does not compile) */
static int fake_measure(void *ctx, const int *v, double *s)
{
    fake *f = ctx;
    f->runs++;
    if (f->t >= f->budget)
        f->started_late++;
    double cost = 1.0 + fabs((double)v[0] - 8) / 4.0 + fabs((double)v[1] - 3);
    f->t += cost;
    if (v[0] == 16 && v[1] == 1)
        return 1;
    *s = v[0] == 16 && v[1] == 1 ? 0.01 : cost;
    return 0;
}

static double fake_clock(void *ctx) { return ((fake *)ctx)->t; }

/* rejects vw 2 unrun: too few lanes for this made-up device */
static int fake_valid(const int *v, const u3d_tune_limits *lim)
{
    (void)lim;
    return v[0] != 2;
}

static const u3d_tune_space fake_space = {
    "fake", "fwd", 2, {"vw", "cob"},
    {{1, 2, 4, 8, 16}, {1, 2, 3, 4, 6}},
    2, {{16, 1}, {2, 2}}, fake_valid};

/* a switch {0, 1} (conv3d_igemm's "use"): 0 is a value when it leads the
 * list; here it is the faster one and only the random stage draws it */
static int switch_measure(void *ctx, const int *v, double *s)
{
    fake *f = ctx;
    f->runs++;
    f->t += 1;
    *s = v[0] ? 2.0 : 1.0;
    return 0;
}

static void search_leading_zero_value(void **state)
{
    (void)state;
    static const u3d_tune_space sw = {
        "fake", "fwd", 1, {"use"}, {{0, 1}}, 1, {{1}}, NULL};
    fake f = {0, 0, 0, 1e9};
    u3d_tune_limits lim = {256, 32768, 1, NULL};
    u3d_tune_search_opts o = {1e9, 7, 50, NULL, 0, 0};
    u3d_tune_outcome out;
    u3d_error err = {0};
    t_ok(u3d_tune_search(&sw, &lim, &o, switch_measure, fake_clock, &f, &out,
                         &err),
         &err, "search");
    assert_true(out.found);
    assert_int_equal(out.best[0], 0);
    assert_int_equal(out.tried, 2);
}

static void search_picks_fastest_valid(void **state)
{
    (void)state;
    fake f = {0, 0, 0, 1e9};
    u3d_tune_limits lim = {256, 32768, 1, NULL};
    int base[2] = {4, 4};
    u3d_tune_search_opts o = {1e9, 42, 200, base, 2, 0.03};
    u3d_tune_outcome out;
    u3d_error err = {0};
    t_ok(u3d_tune_search(&fake_space, &lim, &o, fake_measure, fake_clock, &f,
                         &out, &err),
         &err, "search");
    assert_true(out.found);
    /* (16, 1) fails and is skipped; the fastest valid one is (8, 3) */
    assert_int_equal(out.best[0], 8);
    assert_int_equal(out.best[1], 3);
    assert_true(fabs(out.best_s - 1.0) < 1e-12);
    assert_true(fabs(out.baseline_s - 3.0) < 1e-12);
    assert_int_equal(out.failed, 1);
    assert_true(out.invalid >= 1); /* (2, 2) of the fixed set at least */
    /* 25 combinations, 5 of them invalid: each valid one run once */
    assert_int_equal(out.tried, 20);
    assert_int_equal(out.invalid, 5);
    assert_int_equal(f.runs, out.tried + 4); /* + the confirmation */
    assert_false(out.out_of_time);
    assert_true(out.confirmed);
}

/* A winner that was fast only once (the machine was busy while the
 * baseline ran) is not confirmed: the values in use are kept. */
typedef struct noisy {
    double t;
    int base_runs;
} noisy;

static int noisy_measure(void *ctx, const int *v, double *s)
{
    noisy *f = ctx;
    f->t += 1;
    if (v[0] == 4 && v[1] == 4) /* the baseline: slow on its first run */
        *s = f->base_runs++ ? 1.0 : 5.0;
    else /* everything else is really 1 % faster at best */
        *s = 0.99 + 0.01 * fabs((double)v[0] - 8);
    return 0;
}

static double noisy_clock(void *ctx) { return ((noisy *)ctx)->t; }

static void search_confirms_winner(void **state)
{
    (void)state;
    noisy f = {0, 0};
    u3d_tune_limits lim = {256, 32768, 1, NULL};
    int base[2] = {4, 4};
    u3d_tune_search_opts o = {10, 3, 200, base, 2, 0.03};
    u3d_tune_outcome out;
    u3d_error err = {0};
    t_ok(u3d_tune_search(&fake_space, &lim, &o, noisy_measure, noisy_clock,
                         &f, &out, &err),
         &err, "search");
    assert_false(out.confirmed);
    assert_memory_equal(out.best, base, sizeof base);
    assert_true(fabs(out.baseline_s - 1.0) < 1e-12);
}

static void search_respects_budget(void **state)
{
    (void)state;
    fake f = {0, 0, 0, 5.0};
    u3d_tune_limits lim = {256, 32768, 1, NULL};
    int base[2] = {1, 1}; /* 3.75 s */
    u3d_tune_search_opts o = {5.0, 7, 200, base, 0, 0};
    u3d_tune_outcome out;
    u3d_error err = {0};
    t_ok(u3d_tune_search(&fake_space, &lim, &o, fake_measure, fake_clock, &f,
                         &out, &err),
         &err, "search");
    assert_true(out.out_of_time);
    assert_int_equal(f.started_late, 0); /* nothing starts after it */
    assert_true(f.runs >= 2);            /* the baseline, then (16, 1) */
    assert_true(out.found);
    assert_true(out.best_s <= out.baseline_s);
    /* the same seed draws the same candidates */
    fake g = {0, 0, 0, 5.0};
    u3d_tune_outcome out2;
    t_ok(u3d_tune_search(&fake_space, &lim, &o, fake_measure, fake_clock, &g,
                         &out2, &err),
         &err, "search again");
    assert_int_equal(out2.tried, out.tried);
    assert_memory_equal(out2.best, out.best, sizeof out.best);
}

/* ---- tables and files ---- */

static void shipped_tables_parse(void **state)
{
    (void)state;
    const char *name, *text;
    int tables = 0;
    for (int i = 0; u3d_tune_shipped(i, &name, &text); i++, tables++) {
        u3d_tune_row *r;
        int n;
        u3d_error err = {0};
        t_ok(u3d_tune_parse_table(name, text, &r, &n, &err), &err, name);
        assert_true(n > 0);
        free(r);
    }
    assert_true(tables >= 1);
    /* strict: a bad row is an error naming the table and line */
    static const char *const bad[] = {
        "# ok\nPoCL\tconv3d\tvw\t16\nPoCL\tconv3d\tvw\n",
        "x\tconv3d\tvw\t0\n", "x\tConv3d\tvw\t4\n", "x\tconv3d\tvw\t4x\n",
        "x\tconv3d\tvw\t4\t5\n", "\tconv3d\tvw\t4\n",
        "x\tconv3d\tvw\t99999999999\n", "x conv3d vw 4\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        u3d_tune_row *r = NULL;
        int n = 0;
        u3d_error err = {0};
        assert_int_equal(u3d_tune_parse_table("bad.tsv", bad[i], &r, &n,
                                              &err),
                         U3D_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "bad.tsv, line"));
        assert_null(r);
    }
}

static const u3d_tune_key key_a = {"Plat", "Dev A", "1.0"};
static const u3d_tune_key key_b = {"Plat", "Dev B", "1.0"};

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void user_file_refusals(void **state)
{
    (void)state;
    char dir[256], path[1200];
    t_mkdtemp(dir, sizeof dir, "tune_file");
    u3d_tune_path(dir, &key_a, path, sizeof path);
    u3d_tune_row rows[2] = {{"", "conv3d", "fwd", "small", "vw", 8},
                            {"", "conv3d", "weight", "-", "bw_cob", 6}};
    u3d_error err = {0};
    t_ok(u3d_tune_write(path, &key_a, rows, 2, "a comment\nline 2", &err),
         &err, "write");
    u3d_tuning t;
    t_ok(u3d_tuning_init(&t, &key_a, dir, &err), &err, "init");
    assert_int_equal(t.nuser, 2);
    assert_string_equal(t.note, "");
    const char *src;
    assert_int_equal(u3d_tuning_get(&t, "conv3d", "fwd", "small", "vw", 1,
                                    &src), 8);
    assert_string_equal(src, "user");
    /* another pass or bucket: not this row */
    assert_int_not_equal(u3d_tuning_get(&t, "conv3d", "fwd", "large", "vw",
                                        1, &src), 8);
    assert_int_equal(u3d_tuning_get(&t, "conv3d", "weight", "large",
                                     "bw_cob", 1, &src), 6);
    u3d_tuning_free(&t);

    /* read the good file's text and spoil it in several ways */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char good[4096];
    size_t len = fread(good, 1, sizeof good - 1, f);
    fclose(f);
    good[len] = 0;
    char trunc[4096], noend[4096], ver[4096], badrow[4096], emptyend[4096],
        zeroend[4096];
    snprintf(trunc, sizeof trunc, "%.*s", (int)len - 3, good); /* cut */
    snprintf(noend, sizeof noend, "%s", good);
    *strstr(noend, "end\t") = 0;
    snprintf(ver, sizeof ver, "%s", good);
    strstr(ver, "unet3d-tuning\t1")[14] = '2';
    snprintf(badrow, sizeof badrow, "%s", good);
    strstr(badrow, "\tvw\t8")[4] = 'x';
    /* end lines that do not count the rows: empty, a leading zero */
    snprintf(emptyend, sizeof emptyend, "%s", good);
    snprintf(strstr(emptyend, "end\t") + 4, 8, "\n");
    snprintf(zeroend, sizeof zeroend, "%s", good);
    snprintf(strstr(zeroend, "end\t") + 4, 8, "02\n");
    struct {
        const char *text, *why;
    } cases[] = {{trunc, "truncated"},
                 {noend, "truncated"},
                 {ver, "format version 2"},
                 {badrow, "is not family"},
                 {emptyend, "end line counts  rows"},
                 {zeroend, "end line counts 02 rows"},
                 {"GIF89a\n", "not a unet3d tuning file"},
                 {"", "empty"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(path, cases[i].text);
        t_ok(u3d_tuning_init(&t, &key_a, dir, &err), &err, "init corrupt");
        assert_int_equal(t.nuser, 0);
        assert_non_null(strstr(t.note, path));
        if (!strstr(t.note, cases[i].why))
            fail_msg("case %zu: '%s' lacks '%s'", i, t.note, cases[i].why);
        /* the shipped rows and defaults are used */
        assert_int_equal(u3d_tuning_get(&t, "conv3d", "fwd", "small", "vw",
                                        77, &src), 77);
        assert_string_equal(src, "default");
        u3d_tuning_free(&t);
    }
    /* the writer refuses rows the reader would refuse, writing nothing */
    u3d_tune_row bad[2] = {{"", "conv3d", "fwd", "small", "VW", 8},
                           {"", "conv3d", "fwd", "small", "vw", 0}};
    char other[1300];
    snprintf(other, sizeof other, "%s/other.tsv", dir);
    for (int i = 0; i < 2; i++) {
        assert_int_not_equal(u3d_tune_write(other, &key_a, &bad[i], 1, NULL,
                                            &err), U3D_OK);
        assert_non_null(strstr(err.msg, "not written"));
        assert_int_equal(access(other, F_OK), -1);
    }
    /* a foreign file: another device's, copied under this one's name */
    t_ok(u3d_tune_write(path, &key_b, rows, 2, NULL, &err), &err, "write b");
    t_ok(u3d_tuning_init(&t, &key_a, dir, &err), &err, "init foreign");
    assert_int_equal(t.nuser, 0);
    assert_non_null(strstr(t.note, "Dev B"));
    assert_non_null(strstr(t.note, "not for this device"));
    u3d_tuning_free(&t);
    /* another driver version likewise */
    u3d_tune_key drv = key_a;
    snprintf(drv.driver, sizeof drv.driver, "2.0");
    t_ok(u3d_tune_write(path, &drv, rows, 2, NULL, &err), &err, "write drv");
    t_ok(u3d_tuning_init(&t, &key_a, dir, &err), &err, "init driver");
    assert_int_equal(t.nuser, 0);
    assert_non_null(strstr(t.note, "driver 2.0"));
    u3d_tuning_free(&t);
    assert_int_equal(t_rmtree(dir), 0);
}

static void env_override_wins(void **state)
{
    (void)state;
    char dir[256], path[1200];
    t_mkdtemp(dir, sizeof dir, "tune_env");
    u3d_tune_path(dir, &key_a, path, sizeof path);
    u3d_tune_row rows[1] = {{"", "conv3d", "-", "-", "vw", 8}};
    u3d_error err = {0};
    t_ok(u3d_tune_write(path, &key_a, rows, 1, NULL, &err), &err, "write");
    u3d_tuning t;
    t_ok(u3d_tuning_init(&t, &key_a, dir, &err), &err, "init");
    const char *src;
    setenv("UNET3D_TUNE_CONV3D_VW", "4", 1);
    assert_int_equal(u3d_tuning_get(&t, "conv3d", "fwd", "small", "vw", 1,
                                    &src), 4);
    assert_string_equal(src, "env");
    unsetenv("UNET3D_TUNE_CONV3D_VW");
    setenv("UNET3D_CONV3D_VW", "2", 1); /* the older name still works */
    assert_int_equal(u3d_tuning_get(&t, "conv3d", "fwd", "small", "vw", 1,
                                    &src), 2);
    unsetenv("UNET3D_CONV3D_VW");
    setenv("UNET3D_TUNE_BATCHNORM_LWS", "32", 1); /* every family */
    assert_int_equal(u3d_tuning_get(&t, "batchnorm", "-", "-", "lws", 1,
                                    &src), 32);
    unsetenv("UNET3D_TUNE_BATCHNORM_LWS");
    assert_int_equal(u3d_tuning_get(&t, "conv3d", "fwd", "small", "vw", 1,
                                    &src), 8);
    assert_string_equal(src, "user");
    u3d_tuning_free(&t);
    assert_int_equal(t_rmtree(dir), 0);
}

/* ---- on the OpenCL backend ---- */

static u3d_backend *new_cl(void)
{
    u3d_backend_config cfg = {.backend = "opencl"};
    u3d_backend *be = NULL;
    u3d_error err = {0};
    t_ok(u3d_backend_create(&cfg, &be, &err), &err, "opencl backend");
    return be;
}

/* conv3d forward of a small case on be against the reference */
static void conv_matches_ref(u3d_backend *be, u3d_backend *ref)
{
    uint64_t seed = 5;
    u3d_conv3d_params p = {.kernel = 3, .pad = 1};
    u3d_shape xs = u3d_shape5(1, 5, 5, 6, 7), ws = u3d_shape5(9, 5, 3, 3, 3);
    u3d_shape bs = u3d_shape5(1, 9, 1, 1, 1), ys = u3d_shape5(1, 9, 5, 6, 7);
    float *x = t_rand_array(&seed, u3d_shape_count(xs), -1, 1);
    float *w = t_rand_array(&seed, u3d_shape_count(ws), -1, 1);
    float *b = t_rand_array(&seed, u3d_shape_count(bs), -1, 1);
    u3d_tensor T[2][4];
    u3d_backend *bes[2] = {be, ref};
    u3d_error err = {0};
    for (int i = 0; i < 2; i++) {
        T[i][0] = t_tensor(bes[i], xs, x);
        T[i][1] = t_tensor(bes[i], ws, w);
        T[i][2] = t_tensor(bes[i], bs, b);
        T[i][3] = t_tensor(bes[i], ys, NULL);
        t_ok(u3d_conv3d_forward(&p, &T[i][0], &T[i][1], &T[i][2], &T[i][3],
                                &err),
             &err, "conv forward");
    }
    t_assert_tensors_close(&T[0][3], &T[1][3], 1e-5, "tuned conv forward");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            u3d_tensor_release(&T[i][j]);
    free(x);
    free(w);
    free(b);
}

static void tuned_results_used_after_restart(void **state)
{
    t_env *e = *state;
    char dir[256], path[4096];
    t_mkdtemp(dir, sizeof dir, "tune_restart");
    setenv("UNET3D_CACHE_DIR", dir, 1);
    u3d_backend *be = new_cl();
    u3d_cl *cl = u3d_cl_of(be);
    u3d_error err = {0};
    const char *src;
    if (!t_small()) {
        /* a real (very short) tune: the baseline and what fits 3 s */
        u3d_tuner_opts o = {0.05, 3, "conv3d/fwd", NULL};
        FILE *log = tmpfile();
        assert_non_null(log);
        t_ok(u3d_tuner_run(be, &o, log, path, sizeof path, &err), &err,
             "tune");
        fclose(log);
        u3d_tune_row *rows;
        int n;
        t_ok(u3d_tune_read(path, &cl->tuning.key, &rows, &n, &err), &err,
             "read the tuned file");
        assert_int_equal(n, 12); /* 6 parameters x 2 buckets */
        int vw = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].pass, "fwd") &&
                !strcmp(rows[i].bucket, "small") &&
                !strcmp(rows[i].param, "vw"))
                vw = rows[i].value;
        free(rows);
        u3d_backend_destroy(be);
        be = new_cl(); /* the restart */
        cl = u3d_cl_of(be);
        assert_int_equal(u3d_tuning_get(&cl->tuning, "conv3d", "fwd",
                                        "small", "vw", -1, &src), vw);
        assert_string_equal(src, "user");
    }
    /* distinct values, written where tune writes them: a new backend
     * finds them, runs with them and still matches the reference */
    u3d_tune_path(dir, &cl->tuning.key, path, sizeof path);
    u3d_tune_row rows[4] = {{"", "conv3d", "fwd", "small", "vw", 2},
                            {"", "conv3d", "fwd", "small", "cob", 3},
                            {"", "conv3d", "fwd", "small", "acc", 6},
                            {"", "batchnorm", "-", "-", "lws", 8}};
    t_ok(u3d_tune_write(path, &cl->tuning.key, rows, 4, NULL, &err), &err,
         "write");
    u3d_backend_destroy(be);
    be = new_cl();
    cl = u3d_cl_of(be);
    assert_string_equal(cl->tuning.note, "");
    assert_int_equal(u3d_tuning_get(&cl->tuning, "conv3d", "fwd", "small",
                                    "cob", -1, &src), 3);
    assert_string_equal(src, "user");
    /* a family without passes: what its host code asks for */
    assert_int_equal(u3d_cl_tune(cl, "batchnorm", "lws", -1), 8);
    char cfg[160];
    u3d_conv3d_params p = {.kernel = 3, .pad = 1};
    u3d_cl_conv3d_config(be, "fwd", &p, u3d_shape5(1, 5, 5, 6, 7), 9, cfg,
                         sizeof cfg);
    print_message("tuned config: %s\n", cfg);
    assert_non_null(strstr(cfg, "vw2 cob3"));
    assert_non_null(strstr(cfg, "user"));
    conv_matches_ref(be, e->ref);
    u3d_backend_destroy(be);

    /* a corrupt file: refused (the message names it), shipped rows used */
    write_text(path, "unet3d-tuning\t1\nplatform\tx\n");
    be = new_cl();
    cl = u3d_cl_of(be);
    assert_non_null(strstr(cl->tuning.note, path));
    assert_non_null(strstr(cl->tuning.note, "truncated"));
    u3d_tuning_get(&cl->tuning, "conv3d", "fwd", "small", "cob", -1, &src);
    assert_true(!strcmp(src, "shipped") || !strcmp(src, "default"));
    conv_matches_ref(be, e->ref);
    u3d_backend_destroy(be);
    unsetenv("UNET3D_CACHE_DIR");
    assert_int_equal(t_rmtree(dir), 0);
}

/* The implicit-GEMM family's hand-picked candidates: each is valid on
 * this device or refused with the reason the tuner skips it for. */
static void igemm_fixed_candidates_valid(void **state)
{
    (void)state;
    u3d_backend *be = new_cl();
    u3d_cl *cl = u3d_cl_of(be);
    u3d_tune_limits lim = {cl->max_wg, 0, cl->is_cpu, cl};
    static const char *const passes[] = {"fwd", "data", "weight"};
    int nvalid = 0;
    for (int p = 0; p < 3; p++) {
        const u3d_tune_space *sp = u3d_tuner_space("conv3d_igemm", passes[p]);
        assert_non_null(sp);
        assert_non_null(sp->valid);
        assert_string_equal(sp->params[sp->nparams - 1], "use");
        u3d_igemm_pass ip = p == 2 ? U3D_IGEMM_BWW : U3D_IGEMM_FWD;
        for (int i = 0; i < sp->nfixed; i++) {
            const int *v = sp->fixed[i];
            if (sp->valid(v, &lim)) {
                nvalid++;
                continue;
            }
            /* only a tile the device refuses may be skipped, with why */
            assert_int_equal(v[sp->nparams - 1], 1);
            u3d_igemm_cfg c = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
            char why[160] = "";
            assert_false(u3d_cl_igemm_valid(cl, ip, &c, 27, why, sizeof why));
            assert_true(why[0] != 0);
            print_message("conv3d_igemm %s candidate %d skipped on %s: %s\n",
                          passes[p], i, cl->device_name, why);
        }
    }
    assert_true(nvalid > 0);
    u3d_backend_destroy(be);
}

/* 1 when a kernel whose label contains `label` ran on be (profiling
 * on). */
static int profile_has(u3d_backend *be, const char *label)
{
    const char *l;
    double ms;
    long calls;
    for (int i = 0; u3d_cl_profile_entry(u3d_cl_of(be), i, &l, &ms, &calls);
         i++)
        if (strstr(l, label))
            return 1;
    return 0;
}

/* A short real tune of conv3d_igemm/fwd: the setting it writes was
 * checked against the reference, a new backend reads it back, and with
 * "use" 1 the forward runs the igemm kernels (profile labels, bench's
 * config string) and still matches the reference. */
static void igemm_tuned_and_used(void **state)
{
    t_env *e = *state;
    if (t_small()) {
        skip(); /* oclgrind: the kernels are checked by test_conv_igemm */
        return;
    }
    char dir[256], path[4096];
    t_mkdtemp(dir, sizeof dir, "tune_igemm");
    setenv("UNET3D_CACHE_DIR", dir, 1);
    const char *oldpath = getenv("UNET3D_CONV_PATH");
    char *saved = oldpath ? strdup(oldpath) : NULL;
    unsetenv("UNET3D_CONV_PATH");
    u3d_backend *be = new_cl();
    u3d_cl *cl = u3d_cl_of(be);
    u3d_error err = {0};
    /* start from the igemm path (a CPU defaults to the direct one), so
     * the setting in use, measured first, is an igemm tile */
    u3d_tune_path(dir, &cl->tuning.key, path, sizeof path);
    u3d_tune_row use1[2] = {{"", "conv3d_igemm", "fwd", "small", "use", 1},
                            {"", "conv3d_igemm", "fwd", "large", "use", 1}};
    t_ok(u3d_tune_write(path, &cl->tuning.key, use1, 2, NULL, &err), &err,
         "write");
    u3d_backend_destroy(be);
    be = new_cl();
    cl = u3d_cl_of(be);
    u3d_tuner_opts o = {0.03, 5, "conv3d_igemm/fwd", NULL};
    FILE *log = tmpfile();
    assert_non_null(log);
    t_ok(u3d_tuner_run(be, &o, log, path, sizeof path, &err), &err, "tune");
    rewind(log);
    char line[512];
    while (fgets(line, sizeof line, log))
        print_message("  %s", line);
    fclose(log);
    u3d_backend_destroy(be);
    u3d_tune_row *rows;
    int n;
    be = new_cl(); /* the restart */
    cl = u3d_cl_of(be);
    t_ok(u3d_tune_read(path, &cl->tuning.key, &rows, &n, &err), &err,
         "read the tuned file");
    assert_int_equal(n, 18); /* 9 parameters x 2 buckets */
    const u3d_tune_space *sp = u3d_tuner_space("conv3d_igemm", "fwd");
    int v[U3D_TUNE_MAX_PARAMS] = {0};
    for (int p = 0; p < sp->nparams; p++)
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].bucket, "small") &&
                !strcmp(rows[i].param, sp->params[p]))
                v[p] = rows[i].value;
    free(rows);
    u3d_tune_limits lim = {cl->max_wg, 0, cl->is_cpu, cl};
    assert_true(sp->valid(v, &lim));
    const char *src;
    assert_int_equal(u3d_tuning_get(&cl->tuning, "conv3d_igemm", "fwd",
                                    "small", "mwg", -1, &src), v[0]);
    assert_string_equal(src, "user");
    /* the layer runs the path the tuned "use" says */
    char cfg[160];
    u3d_conv3d_params p = {.kernel = 3, .pad = 1};
    u3d_cl_conv3d_config(be, "fwd", &p, u3d_shape5(1, 5, 5, 6, 7), 9, cfg,
                         sizeof cfg);
    print_message("tuned igemm config: %s\n", cfg);
    assert_true(!strncmp(cfg, v[8] ? "igemm" : "direct", v[8] ? 5 : 6));
    u3d_backend_destroy(be);
    /* with "use" 1 and the tuned tile: the igemm kernels run */
    if (!v[8]) {
        u3d_tune_row r[9];
        for (int i = 0; i < 9; i++)
            r[i] = (u3d_tune_row){"", "conv3d_igemm", "fwd", "small", "",
                                  i == 8 ? 1 : v[i]};
        for (int i = 0; i < 9; i++)
            snprintf(r[i].param, sizeof r[i].param, "%s", sp->params[i]);
        t_ok(u3d_tune_write(path, &cl->tuning.key, r, 9, NULL, &err), &err,
             "write");
    }
    be = new_cl();
    cl = u3d_cl_of(be);
    u3d_cl_conv3d_config(be, "fwd", &p, u3d_shape5(1, 5, 5, 6, 7), 9, cfg,
                         sizeof cfg);
    char want[64];
    snprintf(want, sizeof want, "igemm %dx%dx%d items%dx%d", v[0], v[1],
             v[2], v[3], v[4]);
    if (!strstr(cfg, want) || !strstr(cfg, "user"))
        fail_msg("config '%s' lacks '%s' (user)", cfg, want);
    t_ok(u3d_cl_set_profiling(cl, 1, &err), &err, "profiling");
    conv_matches_ref(be, e->ref);
    assert_true(profile_has(be, "conv3d_igemm_fwd"));
    assert_false(profile_has(be, "conv3d_fwd"));
    u3d_backend_destroy(be);
    if (saved) {
        setenv("UNET3D_CONV_PATH", saved, 1);
        free(saved);
    }
    unsetenv("UNET3D_CACHE_DIR");
    assert_int_equal(t_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(search_picks_fastest_valid),
        cmocka_unit_test(search_leading_zero_value),
        cmocka_unit_test(search_respects_budget),
        cmocka_unit_test(search_confirms_winner),
        cmocka_unit_test(shipped_tables_parse),
        cmocka_unit_test(user_file_refusals),
        cmocka_unit_test(env_override_wins),
        cmocka_unit_test(tuned_results_used_after_restart),
        cmocka_unit_test(igemm_fixed_candidates_valid),
        cmocka_unit_test(igemm_tuned_and_used),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
