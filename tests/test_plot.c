/* Charts (report/plot.h): the PNG read back has the asked size, a white
 * background, each series' colour where its points map, nothing where a
 * value is NaN, vertical error bars; bad arguments and unwritable paths
 * fail with a message and leave no file. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_util.h"
#include "report/plot_internal.h"

static char root[256];

typedef struct image {
    int w, h;
    unsigned char *rgb;
} image;

static const char *out_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", root, name);
    return p;
}

/* Reads an 8-bit RGB PNG; fails the test otherwise. */
static image read_png(const char *path)
{
    image im = {0, 0, NULL};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL,
                                             NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("%s: libpng could not read it", path);
    png_init_io(png, f);
    png_read_info(png, info);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    assert_int_equal(png_get_bit_depth(png, info), 8);
    im.w = (int)png_get_image_width(png, info);
    im.h = (int)png_get_image_height(png, info);
    im.rgb = malloc((size_t)im.w * im.h * 3);
    for (int y = 0; y < im.h; y++)
        png_read_row(png, im.rgb + (size_t)y * im.w * 3, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return im;
}

static int is(const image *im, int x, int y, const unsigned char c[3])
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h)
        return 0;
    return memcmp(im->rgb + ((size_t)y * im->w + x) * 3, c, 3) == 0;
}

/* Pixels of colour c within r of (x, y). */
static int near(const image *im, double x, double y, int r,
                const unsigned char c[3])
{
    int n = 0, cx = (int)lround(x), cy = (int)lround(y);
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            n += is(im, cx + dx, cy + dy, c);
    return n;
}

static const double X[5] = {3, 5, 7, 9, 11};
static const double A[5] = {0.2, 0.4, NAN, 0.7, 0.8};
static const double AE[5] = {0.05, 0.05, 0.05, 0.1, 0.02};
static const double B[5] = {0.1, 0.15, 0.3, 0.35, 0.5};

static u3d_plot lines_plot(u3d_plot_series s[2])
{
    s[0] = (u3d_plot_series){"suggested", 5, X, A, AE};
    s[1] = (u3d_plot_series){"even", 5, X, B, NULL};
    return (u3d_plot){"annotation loop: t\xc3\xa9st.tif", "annotated slices",
                      "IoU", 640, 400, 0, 0, s, 2, NULL, 0};
}

static void lines_points(void **state)
{
    (void)state;
    u3d_plot_series s[2];
    u3d_plot p = lines_plot(s);
    u3d_error err = {0};
    const char *path = out_path("lines.png");
    t_ok(u3d_plot_lines(path, &p, &err), &err, "u3d_plot_lines");
    u3d_plot_frame f;
    t_ok(u3d_plot_frame_of(&p, 0, &f, &err), &err, "frame");
    image im = read_png(path);
    assert_int_equal(im.w, 640);
    assert_int_equal(im.h, 400);
    static const unsigned char white[3] = {255, 255, 255};
    assert_true(is(&im, 1, 1, white));
    assert_true(is(&im, im.w - 2, im.h - 2, white));
    /* the range holds the data and its error bars */
    assert_true(f.ymin <= 0.15 && f.ymax >= 0.85 && f.ymax < 1.0);
    assert_true(f.xmin < 3 && f.xmax > 11);
    for (int k = 0; k < 2; k++) {
        unsigned char col[3];
        u3d_plot_colour(k, col);
        for (int i = 0; i < 5; i++) {
            const double *y = k ? B : A;
            if (isnan(y[i]))
                continue;
            assert_true(near(&im, u3d_plot_map_x(&f, X[i]),
                             u3d_plot_map_y(&f, y[i]), 2, col) >= 9);
        }
    }
    unsigned char c0[3];
    u3d_plot_colour(0, c0);
    /* NaN at x = 7: a gap, no marker and no line in that column */
    int x7 = (int)lround(u3d_plot_map_x(&f, 7));
    for (int y = f.y0; y <= f.y1; y++)
        for (int dx = -3; dx <= 3; dx++)
            assert_false(is(&im, x7 + dx, y, c0));
    /* the error bar of the point at x = 9 reaches y +- 0.1 */
    double x9 = u3d_plot_map_x(&f, 9);
    assert_true(near(&im, x9, u3d_plot_map_y(&f, 0.7 + 0.09), 1, c0) > 0);
    assert_true(near(&im, x9, u3d_plot_map_y(&f, 0.7 - 0.09), 1, c0) > 0);
    assert_int_equal(near(&im, x9, u3d_plot_map_y(&f, 0.7 + 0.13), 1, c0),
                     0);
    free(im.rgb);
}

static void lines_fixed_range_and_nan(void **state)
{
    (void)state;
    u3d_plot_series s[2];
    u3d_plot p = lines_plot(s);
    p.ymin = 0.3; /* clips the low points */
    p.ymax = 0.6;
    p.width = p.height = 0;
    u3d_error err = {0};
    t_ok(u3d_plot_lines(out_path("fixed.png"), &p, &err), &err, "fixed");
    image im = read_png(out_path("fixed.png"));
    assert_int_equal(im.w, 800);
    assert_int_equal(im.h, 500);
    free(im.rgb);
    /* all NaN: empty axes, no crash */
    static const double nan5[5] = {NAN, NAN, NAN, NAN, NAN};
    s[0].y = s[1].y = nan5;
    p.ymin = p.ymax = 0;
    t_ok(u3d_plot_lines(out_path("nan.png"), &p, &err), &err, "all NaN");
    u3d_plot_frame f;
    t_ok(u3d_plot_frame_of(&p, 0, &f, &err), &err, "frame");
    assert_true(f.ymin == 0 && f.ymax == 1);
    /* more series than colours, one point each, a huge value */
    static const double one[1] = {1}, big[1] = {1e300};
    u3d_plot_series many[10];
    for (int k = 0; k < 10; k++)
        many[k] = (u3d_plot_series){"s", 1, one, k == 3 ? big : one, NULL};
    p.series = many;
    p.nseries = 10;
    t_ok(u3d_plot_lines(out_path("many.png"), &p, &err), &err, "10 series");
}

static void bars(void **state)
{
    (void)state;
    static const char *const groups[3] = {"round 1", "round 2", "round 3"};
    static const double a[3] = {0.5, NAN, 0.9}, ae[3] = {0.1, 0, 0.05};
    static const double b[3] = {0.3, 0.4, 0.6};
    u3d_plot_series s[2] = {{"suggested", 3, NULL, a, ae},
                            {"even", 3, NULL, b, NULL}};
    u3d_plot p = {"bars", NULL, "IoU", 600, 300, 0, 0, s, 2, groups, 3};
    u3d_error err = {0};
    t_ok(u3d_plot_bars(out_path("bars.png"), &p, &err), &err, "bars");
    u3d_plot_frame f;
    t_ok(u3d_plot_frame_of(&p, 1, &f, &err), &err, "frame");
    assert_true(f.ymin == 0); /* bars start at zero */
    image im = read_png(out_path("bars.png"));
    assert_int_equal(im.w, 600);
    unsigned char c0[3], c1[3];
    u3d_plot_colour(0, c0);
    u3d_plot_colour(1, c1);
    for (int g = 0; g < 3; g++) {
        /* a point inside bar g of series 1, half way up */
        double x = u3d_plot_bar_x(&f, &p, g, 1);
        assert_true(near(&im, x, u3d_plot_map_y(&f, b[g] / 2), 1, c1) == 9);
        x = u3d_plot_bar_x(&f, &p, g, 0) + 2; /* beside the error bar */
        int n = near(&im, x, u3d_plot_map_y(&f, 0.2), 1, c0);
        assert_int_equal(n, g == 1 ? 0 : 9); /* NaN: no bar */
    }
    /* the error bar of group 0 rises above its bar */
    static const unsigned char white[3] = {255, 255, 255};
    double x0 = u3d_plot_bar_x(&f, &p, 0, 0);
    assert_true(near(&im, x0, u3d_plot_map_y(&f, 0.58), 1, white) < 9);
    assert_true(is(&im, (int)lround(x0) + 3,
                   (int)lround(u3d_plot_map_y(&f, 0.58)), white));
    free(im.rgb);
}

static void refuse(u3d_plot *p, int as_bars, const char *name)
{
    u3d_error err = {0};
    const char *path = out_path(name);
    u3d_status st = as_bars ? u3d_plot_bars(path, p, &err)
                            : u3d_plot_lines(path, p, &err);
    assert_int_equal(st, U3D_ERR_INVALID_ARG);
    assert_true(err.msg[0] != 0);
    assert_null(strchr(err.msg, '\n'));
    assert_int_not_equal(access(path, F_OK), 0);
}

static void bad_arguments(void **state)
{
    (void)state;
    u3d_plot_series s[2];
    u3d_plot p = lines_plot(s);
    u3d_plot q = p;
    q.nseries = 0;
    refuse(&q, 0, "n0.png");
    q = p;
    q.width = 100;
    refuse(&q, 0, "w.png");
    q = p;
    q.height = 5000;
    refuse(&q, 0, "h.png");
    q = p;
    s[1].n = 0;
    refuse(&q, 0, "e.png");
    s[1].n = 5;
    q.ymin = 1;
    q.ymax = 0.5;
    refuse(&q, 0, "r.png");
    q = p;
    refuse(&q, 1, "nogroups.png");
    static const char *const groups[2] = {"a", "b"};
    q.groups = groups;
    q.ngroups = 2; /* the series have 5 values */
    refuse(&q, 1, "count.png");
    u3d_error err = {0};
    assert_int_equal(u3d_plot_lines(NULL, &p, &err), U3D_ERR_INVALID_ARG);
}

static void unwritable(void **state)
{
    (void)state;
    u3d_plot_series s[2];
    u3d_plot p = lines_plot(s);
    u3d_error err = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/folder/x.png", root);
    assert_int_not_equal(u3d_plot_lines(path, &p, &err), U3D_OK);
    assert_true(err.msg[0] != 0);
    assert_null(strchr(err.msg, '\n'));
    assert_int_not_equal(access(path, F_OK), 0);
}

static int setup(void **state)
{
    (void)state;
    t_mkdtemp(root, sizeof root, "plot");
    return 0;
}

/* KEEP=1 keeps the PNGs to look at. */
static int teardown(void **state)
{
    (void)state;
    return getenv("KEEP") ? 0 : t_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_points),
        cmocka_unit_test(lines_fixed_range_and_nan),
        cmocka_unit_test(bars),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(unwritable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
