/* Crafted input files (issue #14): each reproducer gives a one-line error
 * naming the file, or reads exactly what the file describes; never a memory
 * error (this test also runs in the ASan/UBSan build). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>
#include "test_util.h"

static char path[256];

/* An ImageJ-described stack of n 8-bit pages of s x s whose description is
 * desc (on the first page, as ImageJ writes it). */
static void write_imagej(const char *p, int n, int s, const char *desc)
{
    TIFF *t = TIFFOpen(p, "w");
    assert_non_null(t);
    unsigned char *row = calloc((size_t)s, 1);
    for (int k = 0; k < n; k++) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, s);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, s);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, s);
        if (k == 0)
            TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, desc);
        for (int y = 0; y < s; y++) {
            memset(row, (k + y) % 3, (size_t)s);
            assert_true(TIFFWriteScanline(t, row, (uint32_t)y, 0) >= 0);
        }
        assert_int_equal(TIFFWriteDirectory(t), 1);
    }
    TIFFClose(t);
    free(row);
}

/* ImageJ's images= smaller than the page count: the buffers are sized from
 * the description, so only its pages are read (was a heap overflow). */
static void imagej_images_below_page_count(void **state)
{
    (void)state;
    write_imagej(path, 24, 24, "ImageJ=1.53t\nimages=5\nslices=5\n");
    u3d_error err = {0};
    u3d_labels l;
    t_ok(u3d_tiff_read_labels(path, &l, &err), &err, "labels");
    assert_int_equal(l.d, 5);
    for (int z = 0; z < 5; z++)
        assert_int_equal(l.data[(size_t)z * 24 * 24 + 24], (z + 1) % 3);
    u3d_labels_free(&l);
    u3d_volume v;
    t_ok(u3d_tiff_read_volume(path, &v, &err), &err, "volume");
    assert_int_equal(v.d, 5);
    u3d_volume_free(&v);
    u3d_tiff_stream *s;
    float plane[24 * 24];
    t_ok(u3d_tiff_stream_open(path, &s, &v, &err), &err, "stream");
    assert_int_equal(v.d, 5);
    for (int z = 0; z < 5; z++)
        t_ok(u3d_tiff_stream_read(s, z, plane, &err), &err, "plane");
    assert_int_not_equal(u3d_tiff_stream_read(s, 5, plane, &err), U3D_OK);
    u3d_tiff_stream_close(s);
}

/* images= larger than the pages there are: a truncated file, said so. */
static void imagej_images_above_page_count(void **state)
{
    (void)state;
    write_imagej(path, 3, 16, "ImageJ=1.53t\nimages=9\nslices=9\n");
    u3d_error err = {0};
    u3d_labels l;
    assert_int_not_equal(u3d_tiff_read_labels(path, &l, &err), U3D_OK);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "images=9"));
}

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/u3d_robust_%d.tif", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(imagej_images_below_page_count),
        cmocka_unit_test(imagej_images_above_page_count),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
