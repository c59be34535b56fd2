/* Segmentation metrics on hand-made examples (perfect, disjoint, partial,
 * absent classes, exclude mask, ignore label), the JSON output, overview
 * PNGs (read back with libpng), and the `unet3d evaluate` command. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"
#include "unet3d/predict.h"

static u3d_labels labels_of(int d, int h, int w, const uint16_t *v)
{
    u3d_labels l;
    u3d_error err = {0};
    t_ok(u3d_labels_alloc(d, h, w, &l, &err), &err, "labels alloc");
    memcpy(l.data, v, (size_t)d * h * w * sizeof *v);
    return l;
}

static u3d_metrics_opts opts(int ignore, const u3d_labels *exclude)
{
    u3d_metrics_opts o = {ignore, exclude, ignore, 0, "pred.tif", "truth.tif",
                          "sparse.tif"};
    return o;
}

static void near(double got, double want)
{
    if (!(fabs(got - want) < 1e-12))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void perfect(void **state)
{
    (void)state;
    uint16_t t[8] = {0, 1, 1, 2, 2, 2, 0, 0};
    u3d_labels a = labels_of(2, 2, 2, t), b = labels_of(2, 2, 2, t);
    u3d_metrics m;
    u3d_metrics_opts o = opts(U3D_NO_IGNORE, NULL);
    u3d_error err = {0};
    t_ok(u3d_metrics_compute(&a, &b, &o, &m, &err), &err, "metrics");
    assert_int_equal(m.classes, 3);
    for (int c = 0; c < 3; c++) {
        near(m.iou[c], 1);
        near(m.dice[c], 1);
    }
    near(m.mean_iou, 1);
    assert_int_equal(m.voxels, 8);
    u3d_metrics_free(&m);
    u3d_labels_free(&a);
    u3d_labels_free(&b);
}

static void disjoint(void **state)
{
    (void)state;
    uint16_t t[4] = {0, 0, 1, 1}, p[4] = {1, 1, 0, 0};
    u3d_labels tl = labels_of(1, 1, 4, t), pl = labels_of(1, 1, 4, p);
    u3d_metrics m;
    u3d_error err = {0};
    t_ok(u3d_metrics_compute(&pl, &tl, NULL, &m, &err), &err, "metrics");
    near(m.iou[0], 0);
    near(m.iou[1], 0);
    near(m.dice[1], 0);
    near(m.mean_iou, 0);
    assert_int_equal(m.fp[1], 2);
    assert_int_equal(m.fn[1], 2);
    u3d_metrics_free(&m);
    u3d_labels_free(&tl);
    u3d_labels_free(&pl);
}

/* truth 0 0 1 1 1 2, prediction 0 1 1 1 2 2:
 * class 0: TP 1 FP 0 FN 1 -> IoU 1/2, Dice 2/3
 * class 1: TP 2 FP 1 FN 1 -> IoU 1/2, Dice 4/6
 * class 2: TP 1 FP 1 FN 0 -> IoU 1/2, Dice 2/3
 * with 5 classes requested, 3 and 4 are absent: NaN, not in the mean */
static void partial_and_absent(void **state)
{
    (void)state;
    uint16_t t[6] = {0, 0, 1, 1, 1, 2}, p[6] = {0, 1, 1, 1, 2, 2};
    u3d_labels tl = labels_of(1, 2, 3, t), pl = labels_of(1, 2, 3, p);
    u3d_metrics m;
    u3d_metrics_opts o = opts(U3D_NO_IGNORE, NULL);
    o.classes = 5;
    u3d_error err = {0};
    t_ok(u3d_metrics_compute(&pl, &tl, &o, &m, &err), &err, "metrics");
    assert_int_equal(m.classes, 5);
    assert_int_equal(m.present, 3);
    for (int c = 0; c < 3; c++) {
        near(m.iou[c], 0.5);
        near(m.dice[c], 2.0 / 3.0);
    }
    assert_true(isnan(m.iou[3]) && isnan(m.iou[4]) && isnan(m.dice[4]));
    near(m.mean_iou, 0.5);
    near(m.mean_dice, 2.0 / 3.0);
    assert_int_equal(m.tp[1], 2);
    assert_int_equal(m.fp[1], 1);
    assert_int_equal(m.fn[1], 1);
    u3d_metrics_free(&m);
    u3d_labels_free(&tl);
    u3d_labels_free(&pl);
}

/* Ignore label in the truth and voxels annotated in a sparse label file
 * are not scored. */
static void exclude_and_ignore(void **state)
{
    (void)state;
    /* voxel:          0  1  2    3  4  5  6    7 */
    uint16_t t[8] = {0, 1, 255, 1, 0, 1, 255, 0};
    uint16_t p[8] = {1, 1, 0,   0, 0, 1, 1,   1};
    uint16_t s[8] = {0, 255, 255, 1, 255, 255, 255, 255}; /* 0, 3 annotated */
    u3d_labels tl = labels_of(2, 2, 2, t), pl = labels_of(2, 2, 2, p);
    u3d_labels sl = labels_of(2, 2, 2, s);
    u3d_metrics m;
    u3d_metrics_opts o = opts(255, &sl);
    u3d_error err = {0};
    t_ok(u3d_metrics_compute(&pl, &tl, &o, &m, &err), &err, "metrics");
    /* scored: 1 (1/1), 4 (0/0), 5 (1/1), 7 (0 -> 1) */
    assert_int_equal(m.voxels, 4);
    assert_int_equal(m.excluded, 2);
    assert_int_equal(m.ignored, 2);
    assert_int_equal(m.classes, 2);
    near(m.iou[0], 1.0 / 2.0); /* TP 1, FN 1 */
    near(m.iou[1], 2.0 / 3.0); /* TP 2, FP 1 */
    near(m.mean_iou, (0.5 + 2.0 / 3.0) / 2);
    /* without the exclude mask voxels 0 and 3 count too */
    o.exclude = NULL;
    u3d_metrics_free(&m);
    t_ok(u3d_metrics_compute(&pl, &tl, &o, &m, &err), &err, "metrics");
    assert_int_equal(m.voxels, 6);
    assert_int_equal(m.excluded, 0);
    near(m.iou[0], 1.0 / 4.0); /* TP 1 (4), FP 1 (3), FN 2 (0, 7) */
    near(m.iou[1], 2.0 / 5.0); /* TP 2 (1, 5), FP 2 (0, 7), FN 1 (3) */
    u3d_metrics_free(&m);
    u3d_labels_free(&tl);
    u3d_labels_free(&pl);
    u3d_labels_free(&sl);
}

static void shape_mismatch(void **state)
{
    (void)state;
    uint16_t v[24] = {0};
    u3d_labels a = labels_of(2, 3, 4, v), b = labels_of(2, 4, 3, v);
    u3d_metrics m;
    u3d_metrics_opts o = opts(255, NULL);
    u3d_error err = {0};
    assert_int_equal(u3d_metrics_compute(&a, &b, &o, &m, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "pred.tif is 2x3x4"));
    assert_non_null(strstr(err.msg, "truth.tif is 2x4x3"));
    assert_null(m.iou);
    o.exclude = &b;
    assert_int_equal(u3d_metrics_compute(&a, &a, &o, &m, &err), U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "sparse.tif"));
    u3d_labels_free(&a);
    u3d_labels_free(&b);
}

static char *slurp(FILE *f)
{
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static void json_output(void **state)
{
    (void)state;
    uint16_t t[6] = {0, 0, 1, 1, 1, 2}, p[6] = {0, 1, 1, 1, 2, 2};
    u3d_labels tl = labels_of(1, 2, 3, t), pl = labels_of(1, 2, 3, p);
    u3d_metrics m;
    u3d_metrics_opts o = opts(U3D_NO_IGNORE, NULL);
    o.classes = 4;
    u3d_error err = {0};
    t_ok(u3d_metrics_compute(&pl, &tl, &o, &m, &err), &err, "metrics");
    FILE *f = tmpfile();
    assert_non_null(f);
    u3d_metrics_print_json(f, &m);
    char *s = slurp(f);
    fclose(f);
    assert_non_null(strstr(s, "\"iou\": [0.500000, 0.500000, 0.500000, null]"));
    assert_non_null(strstr(s, "\"mean_iou\": 0.500000"));
    assert_non_null(strstr(s, "\"dice\": [0.666667, 0.666667, 0.666667, null]"));
    assert_non_null(strstr(s, "\"voxels\": 6"));
    assert_int_equal(s[0], '{');
    free(s);
    f = tmpfile();
    u3d_metrics_print(f, &m, "bg,cell");
    s = slurp(f);
    fclose(f);
    assert_non_null(strstr(s, "1 cell"));
    assert_non_null(strstr(s, "mean"));
    free(s);
    u3d_metrics_free(&m);
    u3d_labels_free(&tl);
    u3d_labels_free(&pl);
}

/* ---- overview PNGs ---- */

/* The overview's label column ("result", 6 glyphs of 6 pixels and a gap)
 * and band (7-pixel glyphs and a gap) before the first panel. */
enum { LBL_W = 6 * 6 + 4, LBL_H = 7 + 4 };

/* Size of the PNG, its first image pixel in corner, and whether the label
 * band holds white text. */
static void png_read_size(const char *path, int *w, int *h,
                          unsigned char *corner)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL,
                                             NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("%s is not a readable PNG", path);
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    assert_int_equal(png_get_bit_depth(png, info), 8);
    png_bytepp rows = png_get_rows(png, info);
    memcpy(corner, rows[LBL_H] + 3 * LBL_W, 3);
    int white = 0;
    for (int y = 0; y < LBL_H; y++)
        for (int x = 0; x < *w; x++)
            white += rows[y][3 * x] == 255 && rows[y][3 * x + 1] == 255;
    assert_true(white > 0); /* the panels' labels ("z=5", ...) */
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
}

static void overview_png(void **state)
{
    (void)state;
    char dir[] = "/tmp/u3d_overview_XXXXXX", path[256], cmd[300];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ov.png", dir);
    u3d_volume v;
    u3d_labels seg;
    u3d_error err = {0};
    int d = 10, h = 40, w = 50;
    t_ok(u3d_volume_alloc(1, d, h, w, &v, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(d, h, w, &seg, &err), &err, "alloc");
    for (int z = 0; z < d; z++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = ((size_t)z * h + y) * w + x;
                v.data[i] = (float)(x + y);
                seg.data[i] = x < w / 2 ? 0 : 1 + (y > h / 2);
            }
    v.spacing[0] = 2.0, v.spacing[1] = v.spacing[2] = 0.5; /* z x4 */
    t_ok(u3d_overview_write(path, &v, &seg, NULL, NULL, &err), &err,
         "overview");
    int pw, ph;
    unsigned char px[3];
    png_read_size(path, &pw, &ph, px);
    /* zoom 5 (50 -> 250 px); panels 50x40, 50x(10*4), (10*4)x40 */
    assert_int_equal(pw, LBL_W + 5 * (50 + 50 + 40) + 2 * 4);
    assert_int_equal(ph, LBL_H + 5 * 40);
    assert_int_equal(px[0], 0); /* darkest pixel, background class */
    assert_int_equal(px[0], px[1]);
    /* with truth: a second row */
    t_ok(u3d_overview_write(path, &v, &seg, &seg, NULL, &err), &err,
         "overview");
    png_read_size(path, &pw, &ph, px);
    assert_int_equal(ph, LBL_H + 2 * 5 * 40 + 4);
    /* errors: shape mismatch, unwritable folder; nothing left behind */
    u3d_labels bad;
    t_ok(u3d_labels_alloc(d, h, w - 1, &bad, &err), &err, "alloc");
    assert_int_equal(u3d_overview_write(path, &v, &bad, NULL, NULL, &err),
                     U3D_ERR_SHAPE);
    assert_int_equal(u3d_overview_write("/nonexistent/x.png", &v, &seg, NULL,
                                        NULL, &err),
                     U3D_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.png"));
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    u3d_labels_free(&bad);
    u3d_labels_free(&seg);
    u3d_volume_free(&v);
}

/* ---- the command ---- */

static const char *cli(void)
{
    const char *p = getenv("UNET3D_CLI");
    return p ? p : U3D_BINARY_DIR "/unet3d";
}

static int run_cli(const char *args, const char *dir, char **out, char **errt)
{
    char cmd[4096], of[512], ef[512];
    snprintf(of, sizeof of, "%s/stdout.txt", dir);
    snprintf(ef, sizeof ef, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "%s %s > %s 2> %s", cli(), args, of, ef);
    int rc = system(cmd);
    char *bufs[2] = {NULL, NULL};
    const char *files[2] = {of, ef};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "rb");
        bufs[i] = calloc(1, 65536);
        if (f) {
            size_t n = fread(bufs[i], 1, 65535, f);
            bufs[i][n] = 0;
            fclose(f);
        }
    }
    *out = bufs[0];
    *errt = bufs[1];
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void write_labels(const char *dir, const char *name, int d, int h,
                         int w, const uint16_t *v)
{
    char p[512];
    u3d_error err = {0};
    snprintf(p, sizeof p, "%s/%s", dir, name);
    u3d_labels l = labels_of(d, h, w, v);
    t_ok(u3d_tiff_write_labels(p, &l, &err), &err, "write labels");
    u3d_labels_free(&l);
}

static void cli_evaluate(void **state)
{
    (void)state;
    char *out, *errt, args[4096];
    char dir[] = "/tmp/u3d_evaluate_XXXXXX";
    assert_non_null(mkdtemp(dir));
    if (run_cli("evaluate --help", dir, &out, &errt) != 0) {
        free(out);
        free(errt);
        printf("  %s has no evaluate command yet: skipped\n", cli());
        snprintf(args, sizeof args, "rm -rf %s", dir);
        assert_int_equal(system(args), 0);
        skip();
    }
    free(out);
    free(errt);
    uint16_t t[8] = {0, 1, 255, 1, 0, 1, 255, 0};
    uint16_t p[8] = {1, 1, 0, 0, 0, 1, 1, 1};
    uint16_t s[8] = {0, 255, 255, 1, 255, 255, 255, 255};
    write_labels(dir, "truth.tif", 2, 2, 2, t);
    write_labels(dir, "pred.tif", 2, 2, 2, p);
    write_labels(dir, "sparse.tif", 2, 2, 2, s);
    write_labels(dir, "other.tif", 1, 2, 4, p);
    u3d_volume img;
    u3d_error err = {0};
    t_ok(u3d_volume_alloc(1, 2, 2, 2, &img, &err), &err, "alloc");
    char ip[512];
    snprintf(ip, sizeof ip, "%s/img.tif", dir);
    t_ok(u3d_tiff_write_volume(ip, &img, &err), &err, "write image");
    u3d_volume_free(&img);
    snprintf(args, sizeof args,
             "evaluate --prediction %s/pred.tif --truth %s/truth.tif "
             "--exclude %s/sparse.tif --json --overview %s/ov.png --image %s",
             dir, dir, dir, dir, ip);
    int rc = run_cli(args, dir, &out, &errt);
    if (rc)
        fail_msg("evaluate failed: %s", errt);
    assert_non_null(strstr(out, "\"iou\": [0.500000, 0.666667]"));
    assert_non_null(strstr(out, "\"mean_iou\": 0.583333"));
    assert_non_null(strstr(out, "\"dice\": ["));
    assert_non_null(strstr(out, "\"voxels\": 4"));
    free(out);
    free(errt);
    int pw, ph;
    unsigned char px[3];
    snprintf(ip, sizeof ip, "%s/ov.png", dir);
    png_read_size(ip, &pw, &ph, px);
    assert_true(pw > 0 && ph > 0);
    /* the table */
    snprintf(args, sizeof args,
             "evaluate --prediction %s/pred.tif --truth %s/truth.tif", dir,
             dir);
    assert_int_equal(run_cli(args, dir, &out, &errt), 0);
    assert_non_null(strstr(out, "IoU"));
    assert_non_null(strstr(out, "scored voxels 6"));
    free(out);
    free(errt);
    /* shape mismatch: both names and shapes */
    snprintf(args, sizeof args,
             "evaluate --prediction %s/other.tif --truth %s/truth.tif --json",
             dir, dir);
    rc = run_cli(args, dir, &out, &errt);
    assert_int_not_equal(rc, 0);
    if (!strstr(errt, "other.tif is 1x2x4") || !strstr(errt, "truth.tif is 2x2x2"))
        fail_msg("mismatch message: %s", errt);
    assert_string_equal(out, "");
    free(out);
    free(errt);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    assert_int_equal(system(args), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(perfect),
        cmocka_unit_test(disjoint),
        cmocka_unit_test(partial_and_absent),
        cmocka_unit_test(exclude_and_ignore),
        cmocka_unit_test(shape_mismatch),
        cmocka_unit_test(json_output),
        cmocka_unit_test(overview_png),
        cmocka_unit_test(cli_evaluate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
