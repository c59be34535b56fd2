/* Annotation slices as PNG (u3d_labels_from_png_slices): labels are the
 * stored values whatever the PNG's kind (16-bit, gAMA, palette, alpha, gray
 * RGB), colours and crafted names or files are refused naming the file. */
#define _POSIX_C_SOURCE 200809L
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test_util.h"

enum { S = 8 };
static char root[256];

/* A fresh folder per case. */
static const char *case_dir(const char *name)
{
    static char d[400];
    snprintf(d, sizeof d, "%s/%s", root, name);
    mkdir(d, 0755);
    return d;
}

typedef struct png_spec {
    int color_type, depth, w, h;
    double gamma;              /* > 0: write a gAMA chunk */
    const png_color *palette;  /* for PNG_COLOR_TYPE_PALETTE */
    int npalette;
    const png_byte *trns;      /* palette alpha */
    int ntrns;
    int trns_gray;             /* > 0: this gray value is transparent */
} png_spec;

/* Writes a PNG whose samples come from sample(x, y, channel). */
static void write_png(const char *path, const png_spec *p,
                      unsigned (*sample)(int x, int y, int ch))
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng failed writing %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)p->w, (png_uint_32)p->h, p->depth,
                 p->color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (p->gamma > 0)
        png_set_gAMA(png, info, p->gamma);
    if (p->palette)
        png_set_PLTE(png, info, p->palette, p->npalette);
    if (p->trns)
        png_set_tRNS(png, info, p->trns, p->ntrns, NULL);
    if (p->trns_gray > 0) {
        png_color_16 tc = {0};
        tc.gray = (png_uint_16)p->trns_gray;
        png_set_tRNS(png, info, NULL, 0, &tc);
    }
    png_write_info(png, info);
    int ch = p->color_type == PNG_COLOR_TYPE_GRAY         ? 1
             : p->color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
             : p->color_type == PNG_COLOR_TYPE_RGB        ? 3
             : p->color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                                                          : 1;
    int bytes = p->depth == 16 ? 2 : 1;
    png_byte *row = calloc((size_t)p->w * ch * bytes, 1);
    for (int y = 0; y < p->h; y++) {
        for (int x = 0; x < p->w; x++)
            for (int c = 0; c < ch; c++) {
                unsigned v = sample(x, y, c);
                size_t i = ((size_t)x * ch + c) * bytes;
                if (bytes == 2) {
                    row[i] = (png_byte)(v >> 8);
                    row[i + 1] = (png_byte)v;
                } else {
                    row[i] = (png_byte)v;
                }
            }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
}

/* Reads dir as an SxSxS annotation, returns the status; labels in *out. */
static u3d_status read_dir(const char *dir, u3d_labels *out, u3d_error *err)
{
    int ns;
    size_t conflicts;
    memset(out, 0, sizeof *out);
    return u3d_labels_from_png_slices(dir, S, S, S, &ns, &conflicts, out,
                                      err);
}

/* Expects the folder to be refused with a message naming want. */
static void expect_refused(const char *dir, const char *want)
{
    u3d_labels l;
    u3d_error err = {0};
    u3d_status st = read_dir(dir, &l, &err);
    if (st == U3D_OK)
        fail_msg("%s: accepted, expected an error naming %s", dir, want);
    if (!strstr(err.msg, want))
        fail_msg("%s: message '%s' does not name %s", dir, err.msg, want);
    if (strchr(err.msg, '\n'))
        fail_msg("message is not one line: %s", err.msg);
}

static unsigned v16(int x, int y, int c)
{
    (void)c;
    static const unsigned v[4] = {0, 1, 2, 100};
    return v[(x + y) % 4];
}

static void sixteen_bit_values_are_kept(void **state)
{
    (void)state;
    const char *d = case_dir("g16");
    char p[512];
    snprintf(p, sizeof p, "%s/z0003.png", d);
    png_spec s = {.color_type = PNG_COLOR_TYPE_GRAY, .depth = 16, .w = S,
                  .h = S, .gamma = 0.2};
    write_png(p, &s, v16);
    u3d_labels l;
    u3d_error err = {0};
    t_ok(read_dir(d, &l, &err), &err, "16-bit gray");
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            assert_int_equal(l.data[(3 * S + y) * S + x], v16(x, y, 0));
    assert_int_equal(l.data[0], 255); /* z 0 unannotated */
    u3d_labels_free(&l);
}

static unsigned one(int x, int y, int c)
{
    (void)x, (void)y, (void)c;
    return 1;
}

static void gamma_chunk_changes_nothing(void **state)
{
    (void)state;
    const char *d = case_dir("gama");
    char p[512];
    snprintf(p, sizeof p, "%s/y0002.png", d);
    png_spec s = {.color_type = PNG_COLOR_TYPE_GRAY, .depth = 8, .w = S,
                  .h = S, .gamma = 0.1};
    write_png(p, &s, one);
    u3d_labels l;
    u3d_error err = {0};
    t_ok(read_dir(d, &l, &err), &err, "gAMA");
    for (int z = 0; z < S; z++)
        for (int x = 0; x < S; x++)
            assert_int_equal(l.data[(z * S + 2) * S + x], 1);
    u3d_labels_free(&l);
}

static unsigned pal(int x, int y, int c)
{
    (void)c;
    return (unsigned)((x + y) % 3);
}

static void palette_indexes_are_labels(void **state)
{
    (void)state;
    const char *d = case_dir("pal");
    char p[512];
    snprintf(p, sizeof p, "%s/x0005.png", d);
    /* index 1 is a dark blue that luminance would turn into 0; index 0 is
     * transparent (unannotated) */
    static const png_color colors[3] = {{0, 0, 0}, {0, 0, 40}, {200, 10, 10}};
    static const png_byte alpha[1] = {0};
    png_spec s = {.color_type = PNG_COLOR_TYPE_PALETTE, .depth = 8, .w = S,
                  .h = S, .palette = colors, .npalette = 3, .trns = alpha,
                  .ntrns = 1};
    write_png(p, &s, pal);
    u3d_labels l;
    u3d_error err = {0};
    t_ok(read_dir(d, &l, &err), &err, "palette");
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++) {
            unsigned want = pal(y, z, 0);
            assert_int_equal(l.data[(z * S + y) * S + 5],
                             want == 0 ? 255 : want);
        }
    u3d_labels_free(&l);
}

static unsigned gray_alpha(int x, int y, int c)
{
    if (c == 1)
        return x < 4 ? 0 : 255; /* left half transparent */
    return (unsigned)(y % 2 + 1);
}

static void transparent_is_unannotated(void **state)
{
    (void)state;
    const char *d = case_dir("ga");
    char p[512];
    snprintf(p, sizeof p, "%s/z0001.png", d);
    png_spec s = {.color_type = PNG_COLOR_TYPE_GRAY_ALPHA, .depth = 8,
                  .w = S, .h = S};
    write_png(p, &s, gray_alpha);
    u3d_labels l;
    u3d_error err = {0};
    t_ok(read_dir(d, &l, &err), &err, "gray+alpha");
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            assert_int_equal(l.data[(S + y) * S + x],
                             x < 4 ? 255 : (unsigned)(y % 2 + 1));
    u3d_labels_free(&l);
}

/* A gray image whose tRNS chunk makes the value 2 transparent. */
static void gray_trns_is_unannotated(void **state)
{
    (void)state;
    const char *d = case_dir("gtrns");
    char p[512];
    snprintf(p, sizeof p, "%s/z0002.png", d);
    png_spec s = {.color_type = PNG_COLOR_TYPE_GRAY, .depth = 8, .w = S,
                  .h = S, .trns_gray = 2};
    write_png(p, &s, pal);
    u3d_labels l;
    u3d_error err = {0};
    t_ok(read_dir(d, &l, &err), &err, "gray tRNS");
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            unsigned want = pal(x, y, 0);
            assert_int_equal(l.data[(2 * S + y) * S + x],
                             want == 2 ? 255 : want);
        }
    u3d_labels_free(&l);
}

static unsigned rgb_gray(int x, int y, int c)
{
    (void)c;
    return (unsigned)((x * y) % 3);
}

static unsigned rgb_color(int x, int y, int c)
{
    return x == 3 && y == 2 && c == 2 ? 40 : 0;
}

static void rgb_only_when_gray(void **state)
{
    (void)state;
    const char *d = case_dir("rgb");
    char p[512];
    snprintf(p, sizeof p, "%s/z0000.png", d);
    png_spec s = {.color_type = PNG_COLOR_TYPE_RGB, .depth = 8, .w = S,
                  .h = S};
    write_png(p, &s, rgb_gray);
    u3d_labels l;
    u3d_error err = {0};
    t_ok(read_dir(d, &l, &err), &err, "RGB gray");
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            assert_int_equal(l.data[y * S + x], rgb_gray(x, y, 0));
    u3d_labels_free(&l);
    d = case_dir("rgbc");
    snprintf(p, sizeof p, "%s/z0000.png", d);
    write_png(p, &s, rgb_color);
    expect_refused(d, "z0000.png: pixel (x 3, y 2) is a colour");
}

/* A file that declares a huge image: refused from its header, before any
 * pixel is decoded. */
static void huge_header_refused_before_decoding(void **state)
{
    (void)state;
    const char *d = case_dir("huge");
    char p[512];
    snprintf(p, sizeof p, "%s/z0001.png", d);
    png_spec s = {.color_type = PNG_COLOR_TYPE_GRAY, .depth = 8, .w = 20000,
                  .h = 20000};
    /* only the header matters: write it, then cut the file short */
    FILE *f = fopen(p, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)s.w, (png_uint_32)s.h, 8,
                 PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    expect_refused(d, "z0001.png: 20000x20000 pixels, expected 8x8");
}

static void truncated_png_refused(void **state)
{
    (void)state;
    const char *d = case_dir("trunc");
    char p[512];
    snprintf(p, sizeof p, "%s/z0001.png", d);
    png_spec s = {.color_type = PNG_COLOR_TYPE_GRAY, .depth = 8, .w = S,
                  .h = S};
    write_png(p, &s, rgb_gray);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(truncate(p, sb.st_size - 20), 0);
    expect_refused(d, "z0001.png: broken PNG");
}

/* Slice names whose index overflows an int, or wraps to a small one. */
static void crafted_names_refused(void **state)
{
    (void)state;
    static const char *names[] = {"z2147483648.png",
                                  "z99999999999999999999.png",
                                  "z4294967296.png",
                                  "x18446744073709551615.png", "y0008.png"};
    png_spec s = {.color_type = PNG_COLOR_TYPE_GRAY, .depth = 8, .w = S,
                  .h = S};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char sub[32], p[512];
        snprintf(sub, sizeof sub, "name%zu", i);
        const char *d = case_dir(sub);
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        write_png(p, &s, one);
        char want[64];
        snprintf(want, sizeof want, "%s: ", names[i]);
        expect_refused(d, want);
        expect_refused(d, "outside the volume");
    }
}

/* A FIFO named like a slice would block the reader forever. */
static void fifo_refused(void **state)
{
    (void)state;
    const char *d = case_dir("fifo");
    char p[512];
    snprintf(p, sizeof p, "%s/z0005.png", d);
    assert_int_equal(mkfifo(p, 0644), 0);
    expect_refused(d, "z0005.png: not a regular file");
}

/* Found by fuzzing: a 106-byte PNG whose zTXt chunk claims 2 GB made
 * libpng allocate it. Ancillary chunks are skipped unread now. */
static void huge_text_chunk_not_allocated(void **state)
{
    (void)state;
    static const unsigned char png[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d,
        0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,
        0x10, 0x04, 0x00, 0x00, 0x00, 0x4e, 0x6d, 0xba, 0x0e, 0x00, 0x00, 0x00,
        0x04, 0x67, 0x41, 0x4d, 0x41, 0x0d, 0xc0, 0x20, 0x14, 0x05, 0xb0, 0x12,
        0x48, 0x76, 0xe0, 0x00, 0x00, 0x7a, 0x54, 0x58, 0x74, 0x61, 0x05, 0x00,
        0x00, 0x00, 0x32, 0x49, 0x44, 0x41, 0x54, 0x08, 0x99, 0x05, 0xc1, 0x41,
        0x0d, 0xc0, 0x20, 0x14, 0x05, 0xb0, 0x12, 0x48, 0x76, 0xe0, 0x80, 0x2c,
        0x6c, 0x4e, 0xc6, 0x64, 0x4c, 0xc6, 0x37, 0xc0, 0xa3, 0xc5, 0x11, 0x2c,
        0x8b, 0x83, 0x7d, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x82,
    };
    const char *d = case_dir("ztxt");
    char p[512];
    snprintf(p, sizeof p, "%s/z0001.png", d);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(png, 1, sizeof png, f), sizeof png);
    fclose(f);
    u3d_labels l;
    u3d_error err = {0};
    int ns;
    size_t conflicts;
    /* 4x3 slice of a 4x3x4 volume: any outcome but a huge allocation */
    if (u3d_labels_from_png_slices(d, 4, 3, 4, &ns, &conflicts, &l, &err) ==
        U3D_OK)
        u3d_labels_free(&l);
    else
        assert_non_null(strstr(err.msg, "z0001.png"));
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/u3d_png_%d", (int)getpid());
    return mkdir(root, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sixteen_bit_values_are_kept),
        cmocka_unit_test(gamma_chunk_changes_nothing),
        cmocka_unit_test(palette_indexes_are_labels),
        cmocka_unit_test(transparent_is_unannotated),
        cmocka_unit_test(gray_trns_is_unannotated),
        cmocka_unit_test(rgb_only_when_gray),
        cmocka_unit_test(huge_header_refused_before_decoding),
        cmocka_unit_test(truncated_png_refused),
        cmocka_unit_test(crafted_names_refused),
        cmocka_unit_test(fifo_refused),
        cmocka_unit_test(huge_text_chunk_not_allocated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
