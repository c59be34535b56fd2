/* TIFF volumes and labels: the real data sets (skipped when absent), round
 * trips, crafted layouts (tiles, planar RGB, big-endian, BigTIFF, ImageJ
 * > 4 GB), damaged files, label checks, normalization, sparsification. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <tiffio.h>
#include <unistd.h>
#include "test_util.h"
#include "unet3d/volume.h"

#define DATA U3D_SOURCE_DIR "/../shared/data/"
#define NUCLEI DATA "nuclei/1135_image.tif"
#define NUCLEI_LAB DATA "nuclei/1135_labels.tif"
#define NUCLEI_INST DATA "nuclei/1135_instances.tif"
#define BRATS DATA "brats/pat0003_image.tif"
#define BRATS_LAB DATA "brats/pat0003_labels.tif"

static char g_dir[64]; /* per-run scratch folder under /tmp */

static const char *tmp_path(const char *name)
{
    static char buf[4][256]; /* a few live paths per expression */
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/u3d_volume_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            remove(tmp_path(e->d_name));
    if (d)
        closedir(d);
    rmdir(g_dir);
    return 0;
}

static void need_file(const char *path)
{
    if (access(path, R_OK)) {
        printf("skipping: %s not found\n", path);
        skip();
    }
}

static void expect_err(u3d_status st, u3d_status want, const u3d_error *err,
                       const char *needle)
{
    if (st != want || (needle && !strstr(err->msg, needle)))
        fail_msg("expected %s containing \"%s\", got %s: %s",
                 u3d_status_name(want), needle ? needle : "", u3d_status_name(st),
                 err->msg);
    assert_null(strchr(err->msg, '\n')); /* one line */
}

static size_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (size_t)sb.st_size;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    *n = file_size(path);
    unsigned char *b = malloc(*n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static int count_tmp_files(void)
{
    DIR *d = opendir(g_dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* ---- the real data ----------------------------------------------------- */

static void reads_nuclei(void **state)
{
    (void)state;
    need_file(NUCLEI);
    u3d_error err = {0};
    u3d_volume v;
    t_ok(u3d_tiff_read_volume(NUCLEI, &v, &err), &err, "nuclei image");
    assert_int_equal(v.c, 1);
    assert_int_equal(v.d, 100);
    assert_int_equal(v.h, 100);
    assert_int_equal(v.w, 100);
    assert_int_equal(v.bits, 8);
    assert_false(v.is_float);
    assert_string_equal(v.unit, "um");
    assert_true(fabs(v.spacing[0] - 0.28371836501901143) < 1e-12);
    assert_true(fabs(v.spacing[1] - 0.127) < 1e-3);
    assert_true(fabs(v.spacing[2] - 0.127) < 1e-3);
    float lo = 1e9f, hi = -1e9f;
    for (size_t i = 0; i < 1000000; i++) {
        lo = fminf(lo, v.data[i]);
        hi = fmaxf(hi, v.data[i]);
    }
    assert_true(lo >= 0 && hi <= 255 && hi > lo);

    u3d_labels l, inst;
    size_t counts[2], ign;
    t_ok(u3d_tiff_read_labels(NUCLEI_LAB, &l, &err), &err, "nuclei labels");
    t_ok(u3d_check_image_labels(&v, NUCLEI, &l, NUCLEI_LAB, &err), &err, "shape");
    t_ok(u3d_labels_check(&l, 2, U3D_NO_IGNORE, counts, &ign, &err), &err, "check");
    assert_int_equal(counts[0] + counts[1], 1000000);
    assert_true(counts[1] > 0 && counts[0] > counts[1]);
    assert_int_equal(ign, 0);
    assert_true(fabs(l.spacing[0] - v.spacing[0]) < 1e-12);

    t_ok(u3d_tiff_read_labels(NUCLEI_INST, &inst, &err), &err, "instances");
    int maxid = 0;
    for (size_t i = 0; i < 1000000; i++)
        maxid = inst.data[i] > maxid ? inst.data[i] : maxid;
    assert_true(maxid > 1);
    u3d_labels_free(&inst);
    u3d_labels_free(&l);
    u3d_volume_free(&v);
    u3d_volume_free(&v); /* double free is a no-op */
}

static void reads_brats(void **state)
{
    (void)state;
    need_file(BRATS);
    u3d_error err = {0};
    u3d_volume v;
    u3d_labels l;
    size_t counts[5];
    t_ok(u3d_tiff_read_volume(BRATS, &v, &err), &err, "brats image");
    assert_int_equal(v.c, 2);
    assert_int_equal(v.d, 148);
    assert_true(v.h > 100 && v.w > 100);
    assert_true(v.is_float);
    assert_int_equal(v.bits, 32);
    assert_string_equal(v.unit, "mm");
    for (int i = 0; i < 3; i++)
        assert_true(fabs(v.spacing[i] - 1.0) < 1e-6);
    t_ok(u3d_tiff_read_labels(BRATS_LAB, &l, &err), &err, "brats labels");
    t_ok(u3d_check_image_labels(&v, BRATS, &l, BRATS_LAB, &err), &err, "shape");
    t_ok(u3d_labels_check(&l, 5, U3D_NO_IGNORE, counts, NULL, &err), &err, "0..4");
    assert_true(counts[0] > 0 && counts[2] > 0 && counts[4] > 0);
    /* the two channels differ (channel order within pages is honoured) */
    size_t vox = (size_t)v.d * v.h * v.w, diff = 0;
    for (size_t i = 0; i < vox; i++)
        diff += v.data[i] != v.data[vox + i];
    assert_true(diff > vox / 10);
    /* labels file is not a 2-channel file; the image is not a label file */
    u3d_labels bad;
    expect_err(u3d_tiff_read_labels(BRATS, &bad, &err), U3D_ERR_FORMAT, &err,
               "float");
    assert_non_null(strstr(err.msg, BRATS));
    assert_null(bad.data);
    /* memory limit checked before allocating */
    u3d_tiff_read_opts o = {1000000};
    u3d_volume big;
    expect_err(u3d_tiff_read_volume_ex(BRATS, &o, &big, &err), U3D_ERR_OOM,
               &err, "MB, more than the 1.0 MB allowed");
    u3d_labels_free(&l);
    u3d_volume_free(&v);
}

/* ---- round trips ------------------------------------------------------- */

static u3d_volume rand_volume(uint64_t *seed, int c, int d, int h, int w)
{
    u3d_volume v;
    u3d_error err = {0};
    t_ok(u3d_volume_alloc(c, d, h, w, &v, &err), &err, "alloc");
    for (size_t i = 0; i < (size_t)c * d * h * w; i++)
        v.data[i] = t_randf(seed, -3, 3);
    v.spacing[0] = 2.5, v.spacing[1] = 0.3, v.spacing[2] = 0.25;
    snprintf(v.unit, sizeof v.unit, "um");
    return v;
}

static void assert_same_volume(const u3d_volume *a, const u3d_volume *b)
{
    assert_int_equal(a->c, b->c);
    assert_int_equal(a->d, b->d);
    assert_int_equal(a->h, b->h);
    assert_int_equal(a->w, b->w);
    assert_memory_equal(a->data, b->data,
                        (size_t)a->c * a->d * a->h * a->w * sizeof(float));
    for (int i = 0; i < 3; i++)
        assert_true(fabs(a->spacing[i] / b->spacing[i] - 1) < 1e-6);
    assert_string_equal(a->unit, b->unit);
}

static void roundtrip_float(void **state)
{
    (void)state;
    uint64_t seed = 7;
    u3d_error err = {0};
    int shapes[3][4] = {{1, 1, 1, 1}, {3, 5, 7, 9}, {2, 17, 33, 3}};
    for (int s = 0; s < 3; s++)
        for (int comp = 0; comp < 2; comp++) {
            u3d_volume v = rand_volume(&seed, shapes[s][0], shapes[s][1],
                                       shapes[s][2], shapes[s][3]), r;
            u3d_tiff_write_opts o = {comp, 1, 0};
            const char *p = tmp_path("rt.tif");
            t_ok(u3d_tiff_write_volume_ex(p, &v, &o, &err), &err, "write");
            t_ok(u3d_tiff_read_volume(p, &r, &err), &err, "read back");
            assert_same_volume(&v, &r);
            assert_true(r.is_float && r.bits == 32);
            u3d_volume_free(&r);
            /* also from memory */
            size_t n;
            unsigned char *b = slurp(p, &n);
            t_ok(u3d_tiff_read_volume_mem(b, n, "rt", NULL, &r, &err), &err, "mem");
            assert_same_volume(&v, &r);
            free(b);
            u3d_volume_free(&r);
            u3d_volume_free(&v);
        }
    assert_int_equal(count_tmp_files(), 0);
}

static void roundtrip_labels(void **state)
{
    (void)state;
    u3d_error err = {0};
    for (int big = 0; big < 2; big++) {
        u3d_labels l, r;
        u3d_volume asvol;
        t_ok(u3d_labels_alloc(4, 6, 5, &l, &err), &err, "alloc");
        for (size_t i = 0; i < 120; i++)
            l.data[i] = (uint16_t)(big ? i * 500 : i % 3 == 0 ? 255 : i % 4);
        l.spacing[0] = 3, l.spacing[1] = 1, l.spacing[2] = 0.5;
        snprintf(l.unit, sizeof l.unit, "mm");
        const char *p = tmp_path("lab.tif");
        t_ok(u3d_tiff_write_labels(p, &l, &err), &err, "write labels");
        t_ok(u3d_tiff_read_labels(p, &r, &err), &err, "read labels");
        assert_int_equal(r.d, 4);
        assert_int_equal(r.h, 6);
        assert_int_equal(r.w, 5);
        assert_memory_equal(l.data, r.data, 120 * sizeof(uint16_t));
        assert_true(fabs(r.spacing[0] - 3) < 1e-9 && fabs(r.spacing[2] - 0.5) < 1e-6);
        assert_string_equal(r.unit, "mm");
        t_ok(u3d_tiff_read_volume(p, &asvol, &err), &err, "labels as volume");
        assert_int_equal(asvol.bits, big ? 16 : 8); /* smallest type used */
        u3d_volume_free(&asvol);
        u3d_labels_free(&r);
        u3d_labels_free(&l);
    }
}

static void bigtiff_roundtrip(void **state)
{
    (void)state;
    uint64_t seed = 11;
    u3d_error err = {0};
    u3d_volume v = rand_volume(&seed, 2, 3, 4, 5), r;
    u3d_tiff_write_opts o = {1, 0, 1};
    const char *p = tmp_path("big.tif");
    t_ok(u3d_tiff_write_volume_ex(p, &v, &o, &err), &err, "write BigTIFF");
    size_t n;
    unsigned char *b = slurp(p, &n);
    assert_int_equal(b[2], 43); /* BigTIFF version 43, little-endian */
    free(b);
    t_ok(u3d_tiff_read_volume(p, &r, &err), &err, "read BigTIFF");
    assert_same_volume(&v, &r);
    u3d_volume_free(&r);
    u3d_volume_free(&v);
}

/* Plane-by-plane writing gives the file the whole-volume writer gives
 * (read back equal), BigTIFF on request; an aborted or unfinished file
 * leaves nothing behind. */
static void stream_matches(const char *p);

static void plane_writer(void **state)
{
    (void)state;
    uint64_t seed = 13;
    u3d_error err = {0};
    u3d_volume v = rand_volume(&seed, 3, 5, 7, 6), r;
    size_t hw = 7 * 6;
    const char *p = tmp_path("planes.tif");
    for (int big = 0; big < 2; big++) {
        u3d_tiff_write_opts o = {big, 0, big ? 1 : 0};
        u3d_tiff_writer *w;
        t_ok(u3d_tiff_writer_open(p, 3, 5, 7, 6, 32, v.spacing, v.unit, -3, 3,
                                  &o, &w, &err), &err, "open");
        float *plane = malloc(3 * hw * sizeof *plane);
        for (int z = 0; z < 5; z++) {
            for (int c = 0; c < 3; c++)
                memcpy(plane + c * hw, v.data + ((size_t)c * 5 + z) * hw,
                       hw * sizeof *plane);
            t_ok(u3d_tiff_writer_plane_f32(w, plane, &err), &err, "plane");
        }
        free(plane);
        t_ok(u3d_tiff_writer_finish(w, &err), &err, "finish");
        size_t n;
        unsigned char *b = slurp(p, &n);
        assert_int_equal(b[2], big ? 43 : 42);
        free(b);
        t_ok(u3d_tiff_read_volume(p, &r, &err), &err, "read back");
        assert_same_volume(&v, &r);
        u3d_volume_free(&r);
        stream_matches(p);
    }
    /* labels, 8 and 16 bits */
    for (int bits = 8; bits <= 16; bits += 8) {
        uint16_t lab[2 * 3 * 4];
        for (int i = 0; i < 24; i++)
            lab[i] = (uint16_t)(bits == 8 ? i * 10 : i * 2000);
        u3d_tiff_writer *w;
        t_ok(u3d_tiff_writer_open(p, 1, 2, 3, 4, bits, v.spacing, "um", 0,
                                  bits == 8 ? 255 : 65535, NULL, &w, &err),
             &err, "open labels");
        t_ok(u3d_tiff_writer_plane_u16(w, lab, &err), &err, "plane 0");
        expect_err(u3d_tiff_writer_plane_f32(w, v.data, &err),
                   U3D_ERR_INVALID_ARG, &err, "float plane for a");
        t_ok(u3d_tiff_writer_plane_u16(w, lab + 12, &err), &err, "plane 1");
        expect_err(u3d_tiff_writer_plane_u16(w, lab, &err),
                   U3D_ERR_INVALID_ARG, &err, "all 2 planes already written");
        t_ok(u3d_tiff_writer_finish(w, &err), &err, "finish labels");
        u3d_labels l;
        t_ok(u3d_tiff_read_labels(p, &l, &err), &err, "read labels");
        assert_memory_equal(l.data, lab, sizeof lab);
        u3d_labels_free(&l);
    }
    /* 8-bit label planes (predict's), into 8- and 16-bit files */
    for (int bits = 8; bits <= 16; bits += 8) {
        uint8_t lab[2 * 3 * 4];
        for (int i = 0; i < 24; i++)
            lab[i] = (uint8_t)(i * 11);
        u3d_tiff_writer *w;
        t_ok(u3d_tiff_writer_open(p, 1, 2, 3, 4, bits, v.spacing, "um", 0,
                                  255, NULL, &w, &err),
             &err, "open labels");
        t_ok(u3d_tiff_writer_plane_u8(w, lab, &err), &err, "u8 plane 0");
        t_ok(u3d_tiff_writer_plane_u8(w, lab + 12, &err), &err, "u8 plane 1");
        t_ok(u3d_tiff_writer_finish(w, &err), &err, "finish labels");
        u3d_labels l;
        t_ok(u3d_tiff_read_labels(p, &l, &err), &err, "read labels");
        for (int i = 0; i < 24; i++)
            assert_int_equal(l.data[i], lab[i]);
        u3d_labels_free(&l);
    }
    {
        uint8_t lab[6 * 7] = {0};
        u3d_tiff_writer *w;
        t_ok(u3d_tiff_writer_open(p, 1, 1, 7, 6, 32, v.spacing, v.unit, 0, 1,
                                  NULL, &w, &err), &err, "open float");
        expect_err(u3d_tiff_writer_plane_u8(w, lab, &err), U3D_ERR_INVALID_ARG,
                   &err, "label plane for a 32-bit file");
        u3d_tiff_writer_abort(w);
    }
    /* failures: nothing left, the old file untouched */
    size_t before = file_size(p);
    u3d_tiff_writer *w;
    t_ok(u3d_tiff_writer_open(p, 3, 5, 7, 6, 32, v.spacing, v.unit, 0, 1,
                              NULL, &w, &err), &err, "open");
    t_ok(u3d_tiff_writer_plane_f32(w, v.data, &err), &err, "plane");
    expect_err(u3d_tiff_writer_finish(w, &err), U3D_ERR_INVALID_ARG, &err,
               "only 1 of 5 planes written");
    t_ok(u3d_tiff_writer_open(p, 3, 5, 7, 6, 32, v.spacing, v.unit, 0, 1,
                              NULL, &w, &err), &err, "open");
    u3d_tiff_writer_abort(w);
    assert_int_equal(file_size(p), before);
    assert_int_equal(count_tmp_files(), 0);
    expect_err(u3d_tiff_writer_open(p, 1, 1, 1, 1, 12, v.spacing, "", 0, 1,
                                    NULL, &w, &err),
               U3D_ERR_INVALID_ARG, &err, "12 bits per sample");
    assert_null(w);
    u3d_volume_free(&v);
}

/* ---- crafted layouts --------------------------------------------------- */

typedef struct spec {
    int w, h, pages, bps, fmt, spp, planar, tiled, bigend, bigtiff;
    uint16_t comp;
    const char *desc;
    int odd_page; /* page index written with a different width, or -1 */
} spec;

static double pattern(int p, int s, int y, int x) { return (p * 7 + s * 3 + y * 5 + x) % 97; }

static void put(unsigned char *b, size_t i, const spec *s, double v)
{
    if (s->fmt == SAMPLEFORMAT_IEEEFP) {
        if (s->bps == 32) { float f = (float)v; memcpy(b + 4 * i, &f, 4); }
        else { memcpy(b + 8 * i, &v, 8); }
    } else if (s->bps == 8) {
        b[i] = (unsigned char)(int)v;
    } else if (s->bps == 16) {
        int16_t k = (int16_t)(s->fmt == SAMPLEFORMAT_INT ? -v : v);
        memcpy(b + 2 * i, &k, 2);
    } else {
        int32_t k = (int32_t)v;
        memcpy(b + 4 * i, &k, 4);
    }
}

/* expected value of channel sample s of page p at y, x */
static double expect(const spec *s, int p, int smp, int y, int x)
{
    double v = pattern(p, smp, y, x);
    return s->fmt == SAMPLEFORMAT_INT && s->bps == 16 ? -v : v;
}

static void craft(const char *path, const spec *s)
{
    char mode[8];
    snprintf(mode, sizeof mode, "w%s%s", s->bigend ? "b" : "l", s->bigtiff ? "8" : "");
    TIFF *t = TIFFOpen(path, mode);
    assert_non_null(t);
    int sb = s->bps / 8, sep = s->planar == PLANARCONFIG_SEPARATE;
    for (int p = 0; p < s->pages; p++) {
        int w = p == s->odd_page ? s->w + 1 : s->w;
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, s->h);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, s->bps);
        TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, s->fmt);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, s->spp);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, s->planar);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, s->spp == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_COMPRESSION, s->comp);
        TIFFSetField(t, TIFFTAG_XRESOLUTION, 4.0);
        TIFFSetField(t, TIFFTAG_YRESOLUTION, 2.0);
        TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
        if (s->desc && p == 0)
            TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, s->desc);
        int tw = 16, th = 16;
        if (s->tiled) {
            TIFFSetField(t, TIFFTAG_TILEWIDTH, tw);
            TIFFSetField(t, TIFFTAG_TILELENGTH, th);
        } else {
            TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 3);
        }
        int per = sep ? 1 : s->spp, nplanes = sep ? s->spp : 1;
        if (s->tiled) {
            unsigned char *b = calloc((size_t)tw * th * per, (size_t)sb);
            for (int pl = 0; pl < nplanes; pl++)
                for (int y0 = 0; y0 < s->h; y0 += th)
                    for (int x0 = 0; x0 < w; x0 += tw) {
                        for (int y = 0; y < th; y++)
                            for (int x = 0; x < tw; x++)
                                for (int k = 0; k < per; k++)
                                    put(b, ((size_t)y * tw + x) * per + k, s,
                                        pattern(p, sep ? pl : k, y0 + y, x0 + x));
                        assert_true(TIFFWriteTile(t, b, x0, y0, 0, pl) > 0);
                    }
            free(b);
        } else {
            unsigned char *b = calloc((size_t)w * per, (size_t)sb);
            for (int pl = 0; pl < nplanes; pl++)
                for (int y = 0; y < s->h; y++) {
                    for (int x = 0; x < w; x++)
                        for (int k = 0; k < per; k++)
                            put(b, (size_t)x * per + k, s, pattern(p, sep ? pl : k, y, x));
                    assert_true(TIFFWriteScanline(t, b, y, pl) >= 0);
                }
            free(b);
        }
        assert_true(TIFFWriteDirectory(t));
    }
    TIFFClose(t);
}

/* Reads a crafted file; checks the C,D,H,W mapping against pattern(). */
/* The plane reader gives what the whole-volume reader gives, planes read
 * out of order (random access to the pages). */
static void stream_matches(const char *p)
{
    u3d_error err = {0};
    u3d_volume whole, shape;
    u3d_tiff_stream *s;
    t_ok(u3d_tiff_read_volume(p, &whole, &err), &err, "whole");
    t_ok(u3d_tiff_stream_open(p, &s, &shape, &err), &err, "stream open");
    assert_int_equal(shape.c, whole.c);
    assert_int_equal(shape.d, whole.d);
    assert_int_equal(shape.h, whole.h);
    assert_int_equal(shape.w, whole.w);
    assert_null(shape.data);
    for (int i = 0; i < 3; i++)
        assert_true(shape.spacing[i] == whole.spacing[i]);
    assert_string_equal(shape.unit, whole.unit);
    size_t hw = (size_t)whole.h * whole.w;
    float *plane = malloc((size_t)whole.c * hw * sizeof *plane);
    for (int k = 0; k < whole.d; k++) {
        int z = (k * 7 + 3) % whole.d; /* a permutation when d % 7 != 0 */
        if (whole.d % 7 == 0)
            z = whole.d - 1 - k;
        t_ok(u3d_tiff_stream_read(s, z, plane, &err), &err, "stream read");
        for (int c = 0; c < whole.c; c++)
            assert_memory_equal(plane + (size_t)c * hw,
                                whole.data + ((size_t)c * whole.d + z) * hw,
                                hw * sizeof *plane);
    }
    /* windows of rows */
    int y0 = whole.h / 3, ny = whole.h - y0 > 2 ? 2 : whole.h - y0;
    t_ok(u3d_tiff_stream_read_rows(s, whole.d - 1, y0, ny, plane, &err), &err,
         "rows");
    for (int c = 0; c < whole.c; c++)
        assert_memory_equal(plane + (size_t)c * ny * whole.w,
                            whole.data + ((size_t)c * whole.d + whole.d - 1) *
                                hw + (size_t)y0 * whole.w,
                            (size_t)ny * whole.w * sizeof *plane);
    expect_err(u3d_tiff_stream_read_rows(s, 0, whole.h - 1, 2, plane, &err),
               U3D_ERR_INVALID_ARG, &err, "rows");
    expect_err(u3d_tiff_stream_read(s, whole.d, plane, &err),
               U3D_ERR_INVALID_ARG, &err, "plane");
    free(plane);
    u3d_tiff_stream_close(s);
    u3d_volume_free(&whole);
}

static void check_crafted(const spec *s, int channels_ij)
{
    u3d_error err = {0};
    u3d_volume v;
    const char *p = tmp_path("craft.tif");
    craft(p, s);
    stream_matches(p);
    t_ok(u3d_tiff_read_volume(p, &v, &err), &err, "crafted");
    int ic = channels_ij;
    assert_int_equal(v.c, ic * s->spp);
    assert_int_equal(v.d, s->pages / ic);
    assert_int_equal(v.h, s->h);
    assert_int_equal(v.w, s->w);
    for (int page = 0; page < s->pages; page++)
        for (int k = 0; k < s->spp; k++)
            for (int y = 0; y < s->h; y++)
                for (int x = 0; x < s->w; x++) {
                    int c = page % ic * s->spp + k, z = page / ic;
                    float got = v.data[(((size_t)c * v.d + z) * v.h + y) * v.w + x];
                    if (got != (float)expect(s, page, k, y, x))
                        fail_msg("page %d sample %d y %d x %d: got %g want %g",
                                 page, k, y, x, got, expect(s, page, k, y, x));
                }
    if (!s->desc) { /* cm resolution tags, z from x */
        assert_string_equal(v.unit, "cm");
        assert_true(fabs(v.spacing[2] - 0.25) < 1e-7 && fabs(v.spacing[1] - 0.5) < 1e-7);
        assert_true(fabs(v.spacing[0] - 0.25) < 1e-7);
    }
    u3d_volume_free(&v);
}

static void crafted_layouts(void **state)
{
    (void)state;
    const int U = SAMPLEFORMAT_UINT, I = SAMPLEFORMAT_INT, F = SAMPLEFORMAT_IEEEFP;
    const int C = PLANARCONFIG_CONTIG, S = PLANARCONFIG_SEPARATE;
    spec cases[] = {
        /* w  h  pg bps fmt spp planar tiled bigend bigtiff comp desc odd */
        {7, 5, 4, 8, U, 1, C, 0, 0, 0, COMPRESSION_NONE, NULL, -1},
        {7, 5, 1, 16, U, 1, C, 0, 1, 0, COMPRESSION_LZW, NULL, -1},
        {7, 5, 3, 16, I, 1, C, 0, 1, 0, COMPRESSION_ADOBE_DEFLATE, NULL, -1},
        {20, 19, 2, 32, F, 1, C, 1, 0, 0, COMPRESSION_ADOBE_DEFLATE, NULL, -1},
        {20, 19, 2, 8, U, 3, C, 1, 1, 1, COMPRESSION_PACKBITS, NULL, -1},
        {9, 7, 2, 16, U, 3, S, 0, 0, 0, COMPRESSION_LZW, NULL, -1},
        {9, 7, 2, 32, U, 3, S, 1, 1, 0, COMPRESSION_NONE, NULL, -1},
        {6, 4, 3, 64, F, 1, C, 0, 1, 1, COMPRESSION_NONE, NULL, -1},
        {6, 4, 3, 32, I, 1, C, 0, 0, 0, COMPRESSION_NONE, NULL, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_crafted(&cases[i], 1);
    /* ImageJ: 2 channels x 3 slices; and frames used as Z */
    spec ij = {8, 6, 6, 16, U, 1, C, 0, 0, 0, COMPRESSION_NONE,
               "ImageJ=1.53t\nimages=6\nchannels=2\nslices=3\nhyperstack=true\n"
               "spacing=0.5\nunit=micron\n", -1};
    check_crafted(&ij, 2);
    ij.desc = "ImageJ=1.53t\nimages=6\nchannels=3\nframes=2\nunit=\\u00B5m\n";
    check_crafted(&ij, 3);
}

static void crafted_errors(void **state)
{
    (void)state;
    u3d_error err = {0};
    u3d_volume v;
    u3d_labels l;
    const char *p = tmp_path("bad.tif");
    const int U = SAMPLEFORMAT_UINT, C = PLANARCONFIG_CONTIG;
    spec s = {8, 6, 3, 8, U, 1, C, 0, 0, 0, COMPRESSION_NONE, NULL, 1};
    craft(p, &s); /* page 1 wider */
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_FORMAT, &err,
               "page 1 is 9x6 (WxH) but page 0 is 8x6");
    assert_non_null(strstr(err.msg, p));
    s.odd_page = -1;
    s.desc = "ImageJ=1.53t\nimages=6\nchannels=2\nslices=3\n";
    craft(p, &s); /* 3 pages, metadata says 6, compressed-style gap */
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_FORMAT, &err,
               "has 3 page(s) but its ImageJ metadata says images=6");
    /* one page claiming a billion: no huge allocation, a clear reason */
    s.pages = 1;
    s.desc = "ImageJ=1.53t\nimages=1000000000\n";
    craft(p, &s);
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_FORMAT, &err,
               "images=1000000000 stored contiguously, but the file ends");
    s.comp = COMPRESSION_ADOBE_DEFLATE;
    s.desc = "ImageJ=1.53t\nimages=5\n";
    craft(p, &s);
    expect_err(u3d_tiff_read_labels(p, &l, &err), U3D_ERR_FORMAT, &err,
               "has 1 page(s) but its ImageJ metadata says images=5");
    s.comp = COMPRESSION_NONE;
    s.pages = 3;
    s.desc = "ImageJ=1.53t\nimages=3\nchannels=abc\n";
    craft(p, &s);
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_FORMAT, &err, "channels=abc");
    s.desc = "ImageJ=1.53t\nimages=4\nslices=2\nframes=2\n";
    s.pages = 4;
    craft(p, &s);
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_UNSUPPORTED, &err,
               "time series");
    s.desc = "ImageJ=1.53t\nimages=4\nchannels=2\nslices=2\n";
    craft(p, &s);
    expect_err(u3d_tiff_read_labels(p, &l, &err), U3D_ERR_FORMAT, &err,
               "one channel");
    s.desc = NULL;
    s.bps = 16, s.fmt = SAMPLEFORMAT_INT; /* negative labels */
    craft(p, &s);
    expect_err(u3d_tiff_read_labels(p, &l, &err), U3D_ERR_FORMAT, &err,
               "label value -1 at z 0, y 0, x 1");
    s.bps = 8, s.fmt = SAMPLEFORMAT_COMPLEXINT;
    craft(p, &s);
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_UNSUPPORTED, &err,
               "8-bit complex");
    assert_null(v.data);
    assert_null(l.data);
}

static void put_be(unsigned char *b, size_t off, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b[off + (size_t)i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

/* ImageJ's layout for stacks > 4 GB: one directory, pages back to back.
 * Built by hand (big-endian, 16-bit, 5x3, 4 images) to keep it tiny. */
static void imagej_contiguous(void **state)
{
    (void)state;
    const char desc[] = "ImageJ=1.53t\nimages=4\nslices=4\nspacing=2\nunit=mm\n";
    enum { W = 5, H = 3, N = 4, NE = 10 };
    size_t ifd = 8, dsc = ifd + 2 + NE * 12 + 4, data = (dsc + sizeof desc + 15) / 16 * 16;
    size_t page = W * H * 2, len = data + N * page;
    unsigned char *b = calloc(len, 1);
    memcpy(b, "MM\0*", 4);
    put_be(b, 4, ifd, 4);
    put_be(b, ifd, NE, 2);
    /* tag, type (3 short, 4 long, 2 ascii), count, value */
    uint32_t e[NE][4] = {{256, 3, 1, W}, {257, 3, 1, H}, {258, 3, 1, 16},
                         {259, 3, 1, 1}, {262, 3, 1, 1},
                         {270, 2, sizeof desc, (uint32_t)dsc},
                         {273, 4, 1, (uint32_t)data}, {277, 3, 1, 1},
                         {278, 3, 1, H}, {279, 4, 1, (uint32_t)page}};
    for (int i = 0; i < NE; i++) {
        size_t o = ifd + 2 + (size_t)i * 12;
        put_be(b, o, e[i][0], 2);
        put_be(b, o + 2, e[i][1], 2);
        put_be(b, o + 4, e[i][2], 4);
        put_be(b, o + 8, e[i][1] == 3 ? (uint64_t)e[i][3] << 16 : e[i][3], 4);
    }
    memcpy(b + dsc, desc, sizeof desc);
    for (size_t i = 0; i < N * W * H; i++)
        put_be(b, data + 2 * i, 1000 + i, 2);
    u3d_error err = {0};
    u3d_volume v;
    t_ok(u3d_tiff_read_volume_mem(b, len, "contig", NULL, &v, &err), &err, "contiguous");
    spit(tmp_path("contig.tif"), b, len);
    stream_matches(tmp_path("contig.tif")); /* raw pages after page 0 */
    assert_int_equal(v.d, N);
    assert_int_equal(v.bits, 16);
    for (size_t i = 0; i < N * W * H; i++)
        assert_true(v.data[i] == (float)(1000 + i));
    assert_true(v.spacing[0] == 2.0);
    assert_string_equal(v.unit, "mm");
    u3d_volume_free(&v);
    expect_err(u3d_tiff_read_volume_mem(b, len - 1, "contig", NULL, &v, &err),
               U3D_ERR_FORMAT, &err, "contig: ImageJ metadata says images=4 stored "
               "contiguously, but the file ends after 3");
    free(b);
}

/* ---- damaged files ----------------------------------------------------- */

static void missing_and_not_tiff(void **state)
{
    (void)state;
    u3d_error err = {0};
    u3d_volume v;
    expect_err(u3d_tiff_read_volume(tmp_path("nope.tif"), &v, &err), U3D_ERR_IO,
               &err, "nope.tif: cannot open: No such file");
    expect_err(u3d_tiff_read_volume(g_dir, &v, &err), U3D_ERR_IO, &err,
               "not a regular file");
    const char *p = tmp_path("text.tif");
    spit(p, "hello, world\n", 13);
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_FORMAT, &err,
               "text.tif: not a readable TIFF file (libtiff:");
    spit(p, "", 0);
    expect_err(u3d_tiff_read_volume(p, &v, &err), U3D_ERR_FORMAT, &err,
               "not a readable TIFF");
}

/* Every damaged variant must give OK or a one-line error naming the file. */
static void read_variant(const unsigned char *b, size_t n, int *errors)
{
    u3d_error err = {0};
    u3d_volume v;
    u3d_tiff_read_opts o = {256u << 20};
    u3d_status st = u3d_tiff_read_volume_mem(b, n, "damaged.tif", &o, &v, &err);
    if (st) {
        (*errors)++;
        assert_null(v.data);
        assert_non_null(strstr(err.msg, "damaged.tif: "));
        assert_null(strchr(err.msg, '\n'));
    }
    u3d_volume_free(&v);
}

static void damaged_files(void **state)
{
    (void)state;
    uint64_t seed = 99;
    u3d_error err = {0};
    /* a small compressed file of ours, and the real nuclei file if present */
    u3d_volume v = rand_volume(&seed, 2, 6, 20, 30);
    const char *p = tmp_path("ok.tif");
    t_ok(u3d_tiff_write_volume(p, &v, &err), &err, "write");
    u3d_volume_free(&v);
    const char *files[2] = {p, NUCLEI};
    for (int f = 0; f < 2; f++) {
        if (access(files[f], R_OK))
            continue;
        size_t n;
        unsigned char *b = slurp(files[f], &n), *c = malloc(n);
        int errors = 0, tries = 0;
        /* truncations: every one must fail (data or directories lost) */
        for (int k = 1; k < 24; k++, tries++)
            read_variant(b, n * (size_t)k / 24, &errors);
        assert_int_equal(errors, tries);
        /* and as files on disk */
        const char *cut = tmp_path("cut.tif");
        spit(cut, b, n / 2);
        expect_err(u3d_tiff_read_volume(cut, &v, &err), U3D_ERR_FORMAT, &err, cut);
        /* byte flips, in the header/directories and anywhere */
        for (int k = 0; k < (t_small() ? 60 : 300); k++) {
            memcpy(c, b, n);
            int flips = t_randi(&seed, 1, 8);
            for (int i = 0; i < flips; i++) {
                size_t at = k % 2 ? (size_t)t_randi(&seed, 0, (int)(n < 600 ? n - 1 : 599))
                                  : (size_t)t_randi(&seed, 0, (int)n - 1);
                c[at] ^= (unsigned char)t_randi(&seed, 1, 255);
            }
            read_variant(c, n, &errors);
        }
        printf("%s: %d damaged variants rejected cleanly\n", files[f], errors);
        free(b);
        free(c);
    }
}

static void nan_rejected(void **state)
{
    (void)state;
    uint64_t seed = 5;
    u3d_error err = {0};
    u3d_volume v = rand_volume(&seed, 2, 3, 4, 5), r;
    v.data[((size_t)(1 * 3 + 0) * 4 + 1) * 5 + 2] = NAN;      /* c1 z0 y1 x2 */
    v.data[((size_t)(0 * 3 + 2) * 4 + 0) * 5 + 0] = INFINITY; /* c0 z2 y0 x0 */
    const char *p = tmp_path("nan.tif");
    t_ok(u3d_tiff_write_volume(p, &v, &err), &err, "write with NaN");
    expect_err(u3d_tiff_read_volume(p, &r, &err), U3D_ERR_NUMERIC, &err,
               "2 NaN/Inf value(s) in the float data, the first (nan) at "
               "channel 1, z 0, y 1, x 2");
    assert_null(r.data);
    u3d_volume_free(&v);
}

static void atomic_write(void **state)
{
    (void)state;
    uint64_t seed = 3;
    u3d_error err = {0};
    u3d_volume small = rand_volume(&seed, 1, 2, 3, 4), big = rand_volume(&seed, 1, 40, 64, 64);
    const char *p = tmp_path("keep.tif");
    t_ok(u3d_tiff_write_volume(p, &small, &err), &err, "first version");
    size_t n0;
    unsigned char *before = slurp(p, &n0);
    /* a write that runs out of space midway (file size limit) */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {65536, 65536};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        u3d_tiff_write_opts o = {0, 0, 0};
        u3d_status st = u3d_tiff_write_volume_ex(p, &big, &o, &err);
        _exit(st == U3D_ERR_IO && strstr(err.msg, "keep.tif") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t n1;
    unsigned char *after = slurp(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    assert_int_equal(count_tmp_files(), 0);
    /* an unwritable place */
    expect_err(u3d_tiff_write_volume("/nonexistent-dir/x.tif", &small, &err),
               U3D_ERR_IO, &err, "/nonexistent-dir/x.tif: cannot create");
    /* bad spacing */
    small.spacing[1] = 0;
    expect_err(u3d_tiff_write_volume(p, &small, &err), U3D_ERR_INVALID_ARG, &err,
               "spacing");
    free(before);
    free(after);
    u3d_volume_free(&small);
    u3d_volume_free(&big);
}

/* ---- labels, normalization, sparsify ----------------------------------- */

static void label_checks(void **state)
{
    (void)state;
    u3d_error err = {0};
    u3d_labels l;
    size_t counts[3], ign;
    t_ok(u3d_labels_alloc(2, 3, 4, &l, &err), &err, "alloc");
    for (int i = 0; i < 24; i++)
        l.data[i] = (uint16_t)(i % 3);
    t_ok(u3d_labels_check(&l, 3, U3D_NO_IGNORE, counts, &ign, &err), &err, "ok");
    assert_int_equal(counts[0], 8);
    assert_int_equal(counts[2], 8);
    l.data[1 * 12 + 2 * 4 + 3] = 7; /* z1 y2 x3 */
    expect_err(u3d_labels_check(&l, 3, 255, counts, NULL, &err), U3D_ERR_INVALID_ARG,
               &err, "label 7 at z 1, y 2, x 3 is not a class (0..2) nor the ignore label");
    l.data[1 * 12 + 2 * 4 + 3] = 255;
    t_ok(u3d_labels_check(&l, 3, 255, counts, &ign, &err), &err, "ignore ok");
    assert_int_equal(ign, 1);
    for (int i = 0; i < 24; i++)
        l.data[i] = 255;
    expect_err(u3d_labels_check(&l, 3, 255, counts, NULL, &err), U3D_ERR_INVALID_ARG,
               &err, "no labeled voxel");
    u3d_volume v;
    t_ok(u3d_volume_alloc(2, 2, 3, 5, &v, &err), &err, "alloc");
    expect_err(u3d_check_image_labels(&v, "a.tif", &l, "b.tif", &err), U3D_ERR_SHAPE,
               &err, "image a.tif is 2x3x5 (DxHxW, 2 channel(s)) but labels b.tif are 2x3x4");
    u3d_volume_free(&v);
    u3d_labels_free(&l);
}

static void normalization(void **state)
{
    (void)state;
    u3d_error err = {0};
    u3d_volume v;
    u3d_norm_params p;
    t_ok(u3d_volume_alloc(2, 1, 1, 10, &v, &err), &err, "alloc");
    for (int i = 0; i < 10; i++) {
        v.data[i] = (float)(9 - i);        /* 0..9 shuffled order */
        v.data[10 + i] = i < 5 ? 4.0f : 6.0f;
    }
    t_ok(u3d_norm_compute(&v, NULL, U3D_NORM_ZSCORE, 0, 0, &p, &err), &err, "z");
    assert_int_equal(p.c, 2);
    assert_true(fabsf(p.a[0] - 4.5f) < 1e-6f && fabsf(p.b[0] - sqrtf(8.25f)) < 1e-5f);
    assert_true(fabsf(p.a[1] - 5) < 1e-6f && fabsf(p.b[1] - 1) < 1e-6f);
    /* numpy.percentile(range(10), [1, 99.8]) = 0.09, 8.982 */
    t_ok(u3d_norm_compute(&v, NULL, U3D_NORM_PERCENTILE, 1, 99.8, &p, &err), &err, "pct");
    assert_true(fabsf(p.a[0] - 0.09f) < 1e-5f && fabsf(p.b[0] - (8.982f - 0.09f)) < 1e-5f);
    assert_true(p.a[1] == 4.0f && p.b[1] == 2.0f);
    /* mask: the first 5 voxels only -> channel 1 constant, b = 1 */
    uint8_t mask[10] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
    t_ok(u3d_norm_compute(&v, mask, U3D_NORM_ZSCORE, 0, 0, &p, &err), &err, "mask");
    assert_true(fabsf(p.a[0] - 7) < 1e-6f && fabsf(p.b[0] - sqrtf(2)) < 1e-6f);
    assert_true(p.a[1] == 4.0f && p.b[1] == 1.0f);
    /* apply: z-scored data have mean 0, std 1 */
    t_ok(u3d_norm_compute(&v, NULL, U3D_NORM_ZSCORE, 0, 0, &p, &err), &err, "z");
    t_ok(u3d_norm_apply(&v, &p, &err), &err, "apply");
    double s = 0, q = 0;
    for (int i = 0; i < 10; i++)
        s += v.data[i], q += v.data[i] * v.data[i];
    assert_true(fabs(s) < 1e-5 && fabs(q / 10 - 1) < 1e-5);
    /* a larger random case against sorting */
    uint64_t seed = 1;
    u3d_volume r = rand_volume(&seed, 1, 7, 11, 13);
    size_t n = 7 * 11 * 13;
    for (size_t i = 0; i < n; i += 3)
        r.data[i] = 0.5f; /* many ties */
    float *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, r.data, n * sizeof *sorted);
    for (size_t i = 1; i < n; i++) /* insertion sort, fine for 1001 */
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            float t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    double pos = 0.998 * (double)(n - 1), fr = pos - floor(pos);
    double want = sorted[(size_t)pos] + fr * (sorted[(size_t)pos + 1] - sorted[(size_t)pos]);
    t_ok(u3d_norm_compute(&r, NULL, U3D_NORM_PERCENTILE, 37.5, 99.8, &p, &err), &err, "pct");
    assert_true(fabs(p.a[0] + p.b[0] - want) < 1e-5);
    pos = 0.375 * (double)(n - 1), fr = pos - floor(pos);
    want = sorted[(size_t)pos] + fr * (sorted[(size_t)pos + 1] - sorted[(size_t)pos]);
    assert_true(fabs(p.a[0] - want) < 1e-6);
    free(sorted);
    /* errors */
    expect_err(u3d_norm_compute(&r, NULL, U3D_NORM_PERCENTILE, 50, 10, &p, &err),
               U3D_ERR_INVALID_ARG, &err, "percentiles");
    memset(mask, 0, sizeof mask);
    expect_err(u3d_norm_compute(&v, mask, U3D_NORM_ZSCORE, 0, 0, &p, &err),
               U3D_ERR_INVALID_ARG, &err, "mask selects no voxel");
    expect_err(u3d_norm_apply(&r, &p, &err), U3D_ERR_INVALID_ARG, &err, "2 channel");
    r.data[5] = NAN;
    expect_err(u3d_norm_compute(&r, NULL, U3D_NORM_ZSCORE, 0, 0, &p, &err),
               U3D_ERR_NUMERIC, &err, "NaN");
    u3d_volume_free(&r);
    u3d_volume_free(&v);
}

static size_t sparsify_count(int d, int h, int w, const int k[3], int random)
{
    u3d_error err = {0};
    u3d_labels l;
    size_t kept = 0, ign = 0;
    t_ok(u3d_labels_alloc(d, h, w, &l, &err), &err, "alloc");
    for (size_t i = 0; i < (size_t)d * h * w; i++)
        l.data[i] = (uint16_t)(i % 2);
    t_ok(u3d_labels_sparsify(&l, k, random, 42, 255, &kept, &err), &err, "sparsify");
    t_ok(u3d_labels_check(&l, 2, 255, NULL, &ign, &err), &err, "check");
    assert_int_equal(kept + ign, (size_t)d * h * w);
    /* kept voxels keep their labels */
    for (size_t i = 0; i < (size_t)d * h * w; i++)
        assert_true(l.data[i] == 255 || l.data[i] == i % 2);
    u3d_labels_free(&l);
    return kept;
}

/* Plane-by-plane statistics equal the whole-volume ones exactly. */
typedef struct vol_reader {
    const u3d_volume *v;
    int reads;
} vol_reader;

static u3d_status read_plane_of(void *user, int z, float *dst, u3d_error *err)
{
    (void)err;
    vol_reader *r = user;
    const u3d_volume *v = r->v;
    size_t hw = (size_t)v->h * v->w;
    for (int c = 0; c < v->c; c++)
        memcpy(dst + c * hw, v->data + ((size_t)c * v->d + z) * hw,
               hw * sizeof *dst);
    r->reads++;
    return U3D_OK;
}

static void normalization_planes(void **state)
{
    (void)state;
    uint64_t seed = 21;
    u3d_error err = {0};
    double pcts[][2] = {{1, 99.8}, {0, 100}, {0.5, 50}, {3.3, 97.1}};
    for (int kind = 0; kind < 3; kind++) {
        u3d_volume v = rand_volume(&seed, 2, 6, 9, 11);
        size_t n = (size_t)2 * 6 * 9 * 11;
        for (size_t i = 0; i < n; i++) {
            if (kind == 1) /* many ties, as 8-bit data */
                v.data[i] = (float)t_randi(&seed, 0, 5);
            else if (kind == 2) /* signs, zeros, tiny and huge magnitudes */
                v.data[i] = (float)(t_randi(&seed, -2, 2)) *
                            powf(10.0f, (float)t_randi(&seed, -30, 30));
        }
        for (int m = 0; m < 5; m++) {
            u3d_norm_mode mode = m == 0 ? U3D_NORM_ZSCORE : U3D_NORM_PERCENTILE;
            double lo = m ? pcts[m - 1][0] : 0, hi = m ? pcts[m - 1][1] : 0;
            u3d_norm_params want, got;
            vol_reader r = {&v, 0};
            t_ok(u3d_norm_compute(&v, NULL, mode, lo, hi, &want, &err), &err,
                 "whole");
            t_ok(u3d_norm_compute_planes(2, 6, 9, 11, read_plane_of, &r, mode,
                                         lo, hi, &got, &err), &err, "planes");
            assert_int_equal(r.reads, 12); /* two passes */
            for (int c = 0; c < 2; c++)
                if (got.a[c] != want.a[c] || got.b[c] != want.b[c])
                    fail_msg("kind %d mode %d channel %d: a %.9g b %.9g, "
                             "whole volume a %.9g b %.9g", kind, m, c,
                             (double)got.a[c], (double)got.b[c],
                             (double)want.a[c], (double)want.b[c]);
        }
        u3d_volume_free(&v);
    }
}

static void sparsify(void **state)
{
    (void)state;
    int d = 10, h = 8, w = 6;
    for (int random = 0; random < 2; random++) {
        int k1[3] = {2, 0, 0}, k2[3] = {1, 1, 1}, k3[3] = {3, 2, 1}, kall[3] = {99, 0, 0};
        int k0[3] = {0, 0, 0};
        assert_int_equal(sparsify_count(d, h, w, k1, random), 2 * 8 * 6);
        assert_int_equal(sparsify_count(d, h, w, k2, random), 480 - 9 * 7 * 5);
        assert_int_equal(sparsify_count(d, h, w, k3, random), 480 - 7 * 6 * 5);
        assert_int_equal(sparsify_count(d, h, w, kall, random), 480);
        u3d_labels l;
        u3d_error err = {0};
        size_t kept;
        t_ok(u3d_labels_alloc(d, h, w, &l, &err), &err, "alloc");
        t_ok(u3d_labels_sparsify(&l, k0, random, 1, 255, &kept, &err), &err, "none");
        assert_int_equal(kept, 0);
        expect_err(u3d_labels_check(&l, 2, 255, NULL, NULL, &err), U3D_ERR_INVALID_ARG,
                   &err, "no labeled voxel");
        u3d_labels_free(&l);
    }
    /* evenly spaced slices are centred: 2 of 10 -> z = 2 and 7 */
    u3d_labels l;
    u3d_error err = {0};
    int k[3] = {2, 0, 0};
    t_ok(u3d_labels_alloc(10, 1, 1, &l, &err), &err, "alloc");
    t_ok(u3d_labels_sparsify(&l, k, 0, 0, 9, NULL, &err), &err, "even");
    for (int z = 0; z < 10; z++)
        assert_int_equal(l.data[z], z == 2 || z == 7 ? 0 : 9);
    u3d_labels_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_nuclei),
        cmocka_unit_test(reads_brats),
        cmocka_unit_test(roundtrip_float),
        cmocka_unit_test(roundtrip_labels),
        cmocka_unit_test(bigtiff_roundtrip),
        cmocka_unit_test(plane_writer),
        cmocka_unit_test(crafted_layouts),
        cmocka_unit_test(crafted_errors),
        cmocka_unit_test(imagej_contiguous),
        cmocka_unit_test(missing_and_not_tiff),
        cmocka_unit_test(damaged_files),
        cmocka_unit_test(nan_rejected),
        cmocka_unit_test(atomic_write),
        cmocka_unit_test(label_checks),
        cmocka_unit_test(normalization),
        cmocka_unit_test(normalization_planes),
        cmocka_unit_test(sparsify),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
