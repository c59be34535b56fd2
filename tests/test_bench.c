/* unet3d bench: the FMA peak and the --quick run work and give sane
 * numbers and well-formed JSON. No timing assertions: the machine is
 * shared and the device is anything. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

#include "bench.h" /* the unet3d_bench library */

/* ---- a minimal JSON syntax checker (RFC 8259 grammar, no semantics) ---- */

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *js_value(const char *p, int depth);

static const char *js_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *js_number(const char *p)
{
    char *end;
    if (*p != '-' && (*p < '0' || *p > '9'))
        return NULL;
    double v = strtod(p, &end);
    return end > p && isfinite(v) ? end : NULL;
}

static const char *js_list(const char *p, int depth, char close, int keyed)
{
    p = js_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (keyed) {
            p = js_string(js_ws(p));
            if (!p)
                return NULL;
            p = js_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        p = js_value(p, depth + 1);
        if (!p)
            return NULL;
        p = js_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *js_value(const char *p, int depth)
{
    if (depth > 32)
        return NULL;
    p = js_ws(p);
    switch (*p) {
    case '{': return js_list(p, depth, '}', 1);
    case '[': return js_list(p, depth, ']', 0);
    case '"': return js_string(p);
    case 't': return strncmp(p, "true", 4) ? NULL : p + 4;
    case 'f': return strncmp(p, "false", 5) ? NULL : p + 5;
    case 'n': return strncmp(p, "null", 4) ? NULL : p + 4;
    default: return js_number(p);
    }
}

static int json_valid(const char *s)
{
    const char *e = js_value(s, 0);
    return e && *js_ws(e) == 0;
}

static int count_of(const char *s, const char *w)
{
    int n = 0;
    for (const char *p = strstr(s, w); p; p = strstr(p + 1, w))
        n++;
    return n;
}

/* The report as JSON text (malloc'd). */
static char *json_text(const u3d_bench_report *r)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    u3d_bench_print_json(r, f);
    long n = ftell(f);
    assert_true(n > 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    rewind(f);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* ---- tests ---- */

static void bench_json_checker_works(void **state)
{
    (void)state;
    assert_true(json_valid("{\"a\": [1, -2.5e3, null, true, \"x\\\"y\"]}"));
    assert_false(json_valid("{\"a\": [1, 2,]}"));
    assert_false(json_valid("{\"a\": nan}"));
    assert_false(json_valid("{\"a\": 1} x"));
}

static void bench_peak_is_finite(void **state)
{
    t_env *e = *state;
    u3d_bench_opts o = {0};
    o.quick = 1;
    u3d_error err = {0};
    double g = 0, gbs = 0;
    char cfg[64] = "";
    t_ok(u3d_bench_peak(e->cl, &o, &g, cfg, sizeof cfg, &err), &err,
         "FMA peak");
    assert_true(isfinite(g) && g > 0);
    assert_non_null(strstr(cfg, "accumulators"));
    t_ok(u3d_bench_bandwidth(e->cl, &o, &gbs, &err), &err, "bandwidth");
    assert_true(isfinite(gbs) && gbs > 0);
    /* no OpenCL on the reference backend: reported, not crashed */
    assert_int_equal(u3d_bench_peak(e->ref, &o, &g, NULL, 0, &err),
                     U3D_ERR_UNSUPPORTED);
    assert_true(g == 0);
}

static void check_row(const u3d_bench_row *w)
{
    if (w->state == U3D_BENCH_FAILED)
        fail_msg("bench entry %s (%s) failed: %s", w->name, w->shape,
                 w->note);
    if (w->state != U3D_BENCH_OK) {
        assert_true(w->note[0] != 0); /* says why */
        return;
    }
    assert_true(isfinite(w->ms) && w->ms > 0);
    assert_true(isfinite(w->rate) && w->rate > 0);
    assert_true(isfinite(w->work) && w->work > 0);
    assert_true(w->reps == 1); /* --quick */
    assert_true(w->pct_peak > 0 && isfinite(w->pct_peak));
    assert_true(w->is_flops ? w->vs_sgemm > 0 : w->vs_sgemm < 0);
}

static void bench_quick_run(void **state)
{
    t_env *e = *state;
    u3d_bench_opts o = {0};
    o.quick = 1;
    /* Under oclgrind only the bench's own kernels, CLBlast's and relu's:
     * each layer's kernels are checked there by its own test, and one
     * layer's report must not fail the bench's. */
    if (t_small())
        o.only = "sgemm_1024,sgemm_2048,sgemm_implicit,relu_fwd,relu_bwd";
    u3d_error err = {0};
    u3d_bench_report *r = calloc(1, sizeof *r);
    assert_non_null(r);
    t_ok(u3d_bench_run(e->cl, &o, r, &err), &err, "bench --quick");
    assert_true(r->peak_gflops > 0 && r->peak_gbs > 0);
    assert_int_equal(r->nsgemm, 3);
    assert_true(r->sgemm_best > 0);
    const char *names[U3D_BENCH_MAX_OPS];
    assert_int_equal(r->nops, t_small() ? 2 : u3d_bench_op_names(names, U3D_BENCH_MAX_OPS));
    for (int i = 0; i < r->nsgemm; i++) {
        assert_int_equal(r->sgemm[i].state, U3D_BENCH_OK);
        check_row(&r->sgemm[i]);
    }
    for (int i = 0; i < r->nops; i++) {
        check_row(&r->ops[i]);
        if (!strncmp(r->ops[i].name, "relu", 4)) /* the worked example */
            assert_int_equal(r->ops[i].state, U3D_BENCH_OK);
    }
    char *js = json_text(r);
    if (!json_valid(js))
        fail_msg("bench JSON is malformed:\n%s", js);
    assert_non_null(strstr(js, "\"device\": "));
    assert_non_null(strstr(js, "\"peak_gflops\": "));
    assert_non_null(strstr(js, "\"sgemm_gflops\": {\"sgemm_1024\": "));
    assert_non_null(strstr(js, "\"ops\": ["));
    assert_int_equal(count_of(js, "\"name\": "), r->nsgemm + r->nops);
    assert_int_equal(count_of(js, "\"pct_peak\": "), r->nsgemm + r->nops);
    assert_int_equal(count_of(js, "\"vs_sgemm\": "), r->nsgemm + r->nops);
    free(js);
    free(r);
}

/* --only picks entries; the ref backend skips what needs OpenCL. */
static void bench_only_on_ref(void **state)
{
    t_env *e = *state;
    u3d_bench_opts o = {0};
    o.quick = 1;
    o.only = "sgemm_1024,relu_bwd";
    u3d_error err = {0};
    u3d_bench_report *r = calloc(1, sizeof *r);
    assert_non_null(r);
    t_ok(u3d_bench_run(e->ref, &o, r, &err), &err, "bench --backend ref");
    assert_int_equal(r->nsgemm, 1);
    assert_int_equal(r->sgemm[0].state, U3D_BENCH_SKIPPED);
    assert_int_equal(r->nops, 1);
    assert_string_equal(r->ops[0].name, "relu_bwd");
    assert_int_equal(r->ops[0].state, U3D_BENCH_OK);
    assert_true(r->peak_gflops == 0 && r->peak_note[0]);
    assert_true(r->ops[0].pct_peak < 0 && r->ops[0].vs_sgemm < 0);
    char *js = json_text(r);
    assert_true(json_valid(js));
    assert_non_null(strstr(js, "\"peak_gflops\": null"));
    assert_non_null(strstr(js, "\"sgemm_gflops\": {\"sgemm_1024\": null}"));
    free(js);
    free(r);
}

static void bench_rejects_unknown_entry(void **state)
{
    t_env *e = *state;
    u3d_bench_opts o = {0};
    o.only = "relu_fwd,conv9d";
    u3d_error err = {0};
    u3d_bench_report *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(u3d_bench_run(e->cl, &o, r, &err), U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "conv9d"));
    free(r);
}

/* bench --infer: one warm tile, its time and the convolutions' GFLOP of
 * the network (checked against the closed form), as JSON and text. */
static void bench_infer_tile(void **state)
{
    t_env *e = *state;
    int in[3] = {44, 44, 44};
    u3d_error err = {0};
    FILE *f = tmpfile();
    double best = 0;
    t_ok(u3d_bench_infer(e->cl, "tiny", in, 1, 1, f, &best, &err), &err,
         "bench --infer tiny");
    assert_true(best > 0 && isfinite(best));
    long n = ftell(f);
    char *js = calloc((size_t)n + 1, 1);
    rewind(f);
    assert_int_equal(fread(js, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    assert_true(json_valid(js));
    assert_non_null(strstr(js, "\"seconds_per_tile\""));
    assert_non_null(strstr(js, "\"input_dhw\": [44, 44, 44]"));
    free(js);
    /* the paper tile's forward: 533.5 GFLOP (issue #17's figure) */
    u3d_net_config c;
    t_ok(u3d_net_preset("paper", &c, &err), &err, "preset");
    int tile[3] = {116, 132, 132};
    double g = u3d_net_forward_flops(&c, tile) * 1e-9;
    assert_true(g > 533.0 && g < 534.0);
    /* a size the network cannot take has no figure */
    u3d_net_config one;
    t_ok(u3d_net_preset("tiny", &one, &err), &err, "preset");
    int bad[3] = {3, 3, 3};
    assert_true(u3d_net_forward_flops(&one, bad) == 0); /* too small */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bench_json_checker_works),
        cmocka_unit_test(bench_peak_is_finite),
        cmocka_unit_test(bench_quick_run),
        cmocka_unit_test(bench_only_on_ref),
        cmocka_unit_test(bench_rejects_unknown_entry),
        cmocka_unit_test(bench_infer_tile),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
