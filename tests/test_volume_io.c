/* The volume source/sink interface (include/unet3d/volume_io.h): format
 * choice, round trips through every format, plane/row reads, channel
 * stacking, the real files of /work/shared/data/formats (skipped when
 * absent), damaged and ambiguous inputs. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test_util.h"
#include "unet3d/volume_io.h"
#include "data/vio_impl.h"
#include <signal.h>
#include <zlib.h>
#include <blosc.h>
#include <zstd.h>
#include <fcntl.h>

#define DATA U3D_SOURCE_DIR "/../shared/data/"
#define FMT DATA "formats/"
#define NUCLEI_TIF DATA "nuclei/1135_image.tif"
#define NUCLEI_H5 FMT "nuclei_1135.h5"
#define FLAIR FMT "brats_pat0005_flair.nii.gz"
#define T1C FMT "brats_pat0005_t1c.nii.gz"
#define BRATS_LAB FMT "brats_pat0005_labels.nii.gz"

static char g_dir[64];

static const char *tmp_path(const char *name) { return t_join(g_dir, name); }

static void rm_rf(const char *p) { t_rmtree(p); }

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/u3d_vio_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    rm_rf(g_dir);
    return 0;
}

static int have(const char *path)
{
    if (access(path, R_OK)) {
        fprintf(stderr, "(%s absent: part skipped)\n", path);
        return 0;
    }
    return 1;
}

/* A 2-channel float volume with distinct values per voxel. */
static u3d_volume make_volume(int c, int d, int h, int w)
{
    u3d_volume v;
    u3d_error e;
    t_ok(u3d_volume_alloc(c, d, h, w, &v, &e), &e, "alloc");
    size_t n = (size_t)c * d * h * w;
    for (size_t i = 0; i < n; i++)
        v.data[i] = (float)i * 0.25f - 7.0f;
    v.spacing[0] = 2.5, v.spacing[1] = 0.5, v.spacing[2] = 0.25;
    snprintf(v.unit, sizeof v.unit, "um");
    return v;
}

static u3d_labels make_labels(int d, int h, int w, int maxv)
{
    u3d_labels l;
    u3d_error e;
    t_ok(u3d_labels_alloc(d, h, w, &l, &e), &e, "alloc");
    for (size_t i = 0; i < (size_t)d * h * w; i++)
        l.data[i] = (uint16_t)((i * 7) % (size_t)(maxv + 1));
    l.spacing[0] = 3, l.spacing[1] = 1, l.spacing[2] = 1;
    snprintf(l.unit, sizeof l.unit, "um");
    return l;
}

static void check_same_volume(const u3d_volume *a, const u3d_volume *b)
{
    assert_int_equal(a->c, b->c);
    assert_int_equal(a->d, b->d);
    assert_int_equal(a->h, b->h);
    assert_int_equal(a->w, b->w);
    size_t n = (size_t)a->c * a->d * a->h * a->w;
    assert_memory_equal(a->data, b->data, n * sizeof(float));
    for (int i = 0; i < 3; i++)
        assert_true(fabs(a->spacing[i] - b->spacing[i]) < 1e-6);
}

static void roundtrip(const char *vol_spec, const char *lab_spec)
{
    u3d_error e = {0};
    u3d_volume v = make_volume(2, 5, 7, 9), r;
    t_ok(u3d_vio_write_volume(vol_spec, &v, NULL, &e), &e, vol_spec);
    t_ok(u3d_vio_read_volume(vol_spec, &r, NULL, &e), &e, vol_spec);
    check_same_volume(&v, &r);
    assert_string_equal(r.unit, "um");
    /* rows of a plane */
    u3d_vsource *s;
    u3d_volume sh;
    t_ok(u3d_vsource_open(vol_spec, 0, &s, &sh, &e), &e, "open");
    assert_null(sh.data);
    float rows[2 * 3 * 9];
    t_ok(u3d_vsource_read_rows(s, 4, 2, 3, rows, &e), &e, "rows");
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 9; x++)
                assert_true(rows[(c * 3 + y) * 9 + x] ==
                            v.data[(((size_t)c * 5 + 4) * 7 + 2 + y) * 9 + x]);
    assert_int_not_equal(u3d_vsource_read_rows(s, 5, 0, 1, rows, &e), U3D_OK);
    u3d_vsource_close(s);
    u3d_volume_free(&r);
    u3d_volume_free(&v);

    for (int big = 0; big < 2; big++) {
        u3d_labels l = make_labels(4, 6, 5, big ? 1000 : 200), q;
        t_ok(u3d_vio_write_labels(lab_spec, &l, NULL, &e), &e, lab_spec);
        t_ok(u3d_vio_read_labels(lab_spec, &q, NULL, &e), &e, lab_spec);
        assert_int_equal(q.d, 4);
        assert_int_equal(q.h, 6);
        assert_int_equal(q.w, 5);
        assert_memory_equal(q.data, l.data, 4 * 6 * 5 * sizeof(uint16_t));
        assert_true(fabs(q.spacing[0] - 3) < 1e-9);
        u3d_labels_free(&q);
        u3d_labels_free(&l);
    }
}

static void parse_specs(void **state)
{
    (void)state;
    u3d_format f;
    char p[4096], d[1024];
    u3d_error e;
    t_ok(u3d_vio_parse("a/b.h5:/x/raw", 0, &f, p, sizeof p, d, sizeof d, &e),
         &e, "h5");
    assert_int_equal(f, U3D_FMT_HDF5);
    assert_string_equal(p, "a/b.h5");
    assert_string_equal(d, "x/raw");
    t_ok(u3d_vio_parse("h5:weird.bin:/raw", 0, &f, p, sizeof p, d, sizeof d,
                       &e), &e, "h5 prefix");
    assert_int_equal(f, U3D_FMT_HDF5);
    assert_string_equal(p, "weird.bin");
    assert_string_equal(d, "raw");
    t_ok(u3d_vio_parse("x.NII.GZ", 1, &f, p, sizeof p, d, sizeof d, &e), &e,
         "nifti");
    assert_int_equal(f, U3D_FMT_NIFTI);
    t_ok(u3d_vio_parse("x.zarr/", 1, &f, p, sizeof p, d, sizeof d, &e), &e,
         "zarr");
    assert_int_equal(f, U3D_FMT_ZARR);
    t_ok(u3d_vio_parse("x.tiff", 1, &f, p, sizeof p, d, sizeof d, &e), &e,
         "tiff");
    assert_int_equal(f, U3D_FMT_TIFF);
    t_ok(u3d_vio_parse("noext", 1, &f, p, sizeof p, d, sizeof d, &e), &e,
         "default");
    assert_int_equal(f, U3D_FMT_TIFF);
    assert_int_equal(u3d_vio_parse("a.tif:/raw", 0, &f, p, sizeof p, d,
                                   sizeof d, &e),
                     U3D_OK); /* "a.tif:/raw" has no HDF5 extension */
    assert_int_not_equal(u3d_vio_parse("", 0, &f, p, sizeof p, d, sizeof d,
                                       &e),
                         U3D_OK);
}

static void tiff_roundtrip(void **state)
{
    (void)state;
    roundtrip(tmp_path("v.tif"), tmp_path("l.tif"));
}

static void hdf5_roundtrip(void **state)
{
    (void)state;
    roundtrip(tmp_path("v.h5"), tmp_path("l.h5"));
    roundtrip(tmp_path("n.h5:/deep/group/img"), tmp_path("n2.h5:/a/seg"));
    /* no temporary files left */
    DIR *d = opendir(g_dir);
    struct dirent *en;
    while (d && (en = readdir(d)))
        assert_null(strstr(en->d_name, ".tmp-"));
    closedir(d);
}

/* ---- the isolated reader (src/data/isolate.c) --------------------------- */

static u3d_status fake_rows(u3d_vsource *s, int z, int y0, int ny, float *dst,
                            u3d_error *err)
{
    (void)err;
    if (z == 1)
        raise(SIGABRT); /* a library aborting on a damaged plane */
    for (int i = 0; i < ny * s->shape.w; i++)
        dst[i] = (float)(z * 100 + y0 * s->shape.w + i);
    return U3D_OK;
}

static void fake_close(u3d_vsource *s) { (void)s; }

static const u3d_vsrc_ops fake_ops = {fake_rows, fake_close};

static u3d_status open_ok(u3d_vsource *s, void *arg, u3d_error *err)
{
    (void)arg, (void)err;
    s->ops = &fake_ops;
    s->shape.c = 1, s->shape.d = 3, s->shape.h = 2, s->shape.w = 5;
    s->shape.bits = 16;
    snprintf(s->name, sizeof s->name, "fake.h5:/raw");
    return U3D_OK;
}

static u3d_status open_crash(u3d_vsource *s, void *arg, u3d_error *err)
{
    (void)s, (void)arg, (void)err;
    raise(SIGSEGV);
    return U3D_OK;
}

static u3d_status open_refuse(u3d_vsource *s, void *arg, u3d_error *err)
{
    (void)arg;
    return u3d_seterr(err, U3D_ERR_FORMAT, "%s: no dataset /raw", s->name);
}

static u3d_vsource *fake_source(void)
{
    u3d_vsource *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->name, sizeof s->name, "fake.h5");
    return s;
}

static void isolation(void **state)
{
    (void)state;
    u3d_error e = {0};
    /* the library crashes while opening: one line naming file and signal */
    u3d_vsource *s = fake_source();
    assert_int_equal(u3d_vsource_isolated(s, "HDF5", open_crash, NULL, &e),
                     U3D_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "fake.h5: the HDF5 library failed opening"));
    assert_non_null(strstr(e.msg, "signal 11"));
    assert_null(strchr(e.msg, '\n'));
    u3d_vsource_close(s);
    /* its own error passes through unchanged */
    s = fake_source();
    assert_int_equal(u3d_vsource_isolated(s, "HDF5", open_refuse, NULL, &e),
                     U3D_ERR_FORMAT);
    assert_string_equal(e.msg, "fake.h5: no dataset /raw");
    u3d_vsource_close(s);
    /* shape and name come back; plane 0 reads, plane 1 kills the child:
     * an error, then every later read fails without hanging */
    s = fake_source();
    t_ok(u3d_vsource_isolated(s, "HDF5", open_ok, NULL, &e), &e, "open");
    assert_int_equal(s->shape.d, 3);
    assert_int_equal(s->shape.w, 5);
    assert_string_equal(s->name, "fake.h5:/raw");
    float row[10];
    t_ok(u3d_vsource_read_rows(s, 0, 1, 1, row, &e), &e, "plane 0");
    assert_true(row[0] == 5.0f && row[4] == 9.0f);
    assert_int_equal(u3d_vsource_read(s, 1, row, &e), U3D_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "failed reading plane 1"));
    assert_non_null(strstr(e.msg, "signal 6"));
    assert_int_not_equal(u3d_vsource_read(s, 2, row, &e), U3D_OK);
    u3d_vsource_close(s);
}

/* The real reader through the child and in process: the same values. */
static void hdf5_isolated_same(void **state)
{
    (void)state;
    u3d_error e = {0};
    u3d_volume v = make_volume(2, 3, 4, 5), a, b;
    t_ok(u3d_vio_write_volume(tmp_path("iso.h5"), &v, NULL, &e), &e, "w");
    t_ok(u3d_vio_read_volume(tmp_path("iso.h5"), &a, NULL, &e), &e, "iso");
    setenv("UNET3D_HDF5_INPROCESS", "1", 1);
    t_ok(u3d_vio_read_volume(tmp_path("iso.h5"), &b, NULL, &e), &e, "in");
    unsetenv("UNET3D_HDF5_INPROCESS");
    assert_memory_equal(a.data, v.data, 120 * sizeof(float));
    assert_memory_equal(b.data, v.data, 120 * sizeof(float));
    assert_true(a.spacing[0] == b.spacing[0]);
    u3d_volume_free(&a);
    u3d_volume_free(&b);
    u3d_volume_free(&v);
}

static void hdf5_errors(void **state)
{
    (void)state;
    u3d_error e = {0};
    u3d_volume v = make_volume(1, 2, 3, 4), r;
    /* two 3D datasets, neither "raw": ambiguous, the error lists them */
    t_ok(u3d_vio_write_volume(tmp_path("two.h5:/a"), &v, NULL, &e), &e, "a");
    assert_int_not_equal(u3d_vio_read_volume(tmp_path("two.h5:/b"), &r, NULL,
                                             &e),
                         U3D_OK);
    assert_non_null(strstr(e.msg, "no dataset /b"));
    assert_non_null(strstr(e.msg, "/a (2x3x4)"));
    /* the only 3D dataset is taken */
    t_ok(u3d_vio_read_volume(tmp_path("two.h5"), &r, NULL, &e), &e, "only");
    u3d_volume_free(&r);
    /* labels refuse fractions and negatives */
    assert_int_not_equal(u3d_vio_read_labels(tmp_path("two.h5:/a"),
                                             &(u3d_labels){0}, NULL, &e),
                         U3D_OK);
    assert_non_null(strstr(e.msg, "is not a label"));
    /* NaN refused */
    v.data[5] = NAN;
    t_ok(u3d_vio_write_volume(tmp_path("nan.h5"), &v, NULL, &e), &e, "nan");
    assert_int_equal(u3d_vio_read_volume(tmp_path("nan.h5"), &r, NULL, &e),
                     U3D_ERR_NUMERIC);
    u3d_volume_free(&v);
    /* not HDF5, missing, truncated: one line naming the file */
    FILE *f = fopen(tmp_path("bad.h5"), "wb");
    fputs("\x89HDF\r\n\x1a\n garbage", f);
    fclose(f);
    assert_int_not_equal(u3d_vio_read_volume(tmp_path("bad.h5"), &r, NULL,
                                             &e),
                         U3D_OK);
    assert_non_null(strstr(e.msg, "bad.h5"));
    assert_null(strchr(e.msg, '\n'));
    assert_int_not_equal(u3d_vio_read_volume(tmp_path("none.h5"), &r, NULL,
                                             &e),
                         U3D_OK);
    assert_non_null(strstr(e.msg, "none.h5"));
}

static void hdf5_nuclei(void **state)
{
    (void)state;
    if (!have(NUCLEI_H5) || !have(NUCLEI_TIF))
        return;
    u3d_error e = {0};
    u3d_volume a, b;
    t_ok(u3d_vio_read_volume(NUCLEI_H5 ":/raw", &a, NULL, &e), &e, "h5");
    t_ok(u3d_vio_read_volume(NUCLEI_TIF, &b, NULL, &e), &e, "tif");
    assert_int_equal(a.c, b.c);
    assert_int_equal(a.d, b.d);
    assert_int_equal(a.h, b.h);
    assert_int_equal(a.w, b.w);
    assert_memory_equal(a.data, b.data,
                        sizeof(float) * a.c * a.d * a.h * (size_t)a.w);
    fprintf(stderr, "nuclei h5 spacing %g %g %g %s, tif %g %g %g %s\n",
            a.spacing[0], a.spacing[1], a.spacing[2], a.unit, b.spacing[0],
            b.spacing[1], b.spacing[2], b.unit);
    u3d_volume_free(&a);
    u3d_volume_free(&b);
    /* the default dataset of an image is "raw" */
    t_ok(u3d_vio_read_volume(NUCLEI_H5, &a, NULL, &e), &e, "default");
    u3d_volume_free(&a);
}

static void nifti_roundtrip(void **state)
{
    (void)state;
    roundtrip(tmp_path("v.nii.gz"), tmp_path("l.nii"));
    roundtrip(tmp_path("v.nii"), tmp_path("l.nii.gz"));
}

/* The whole decompressed file (test helper, small files only). */
static unsigned char *gunzip(const char *path, size_t *len)
{
    gzFile g = gzopen(path, "rb");
    assert_non_null(g);
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    int k;
    while ((k = gzread(g, b + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)k;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    gzclose(g);
    *len = n;
    return b;
}

/* BRATS patient 5: a voxel found by hand in the raw file (x fastest) is
 * the same voxel at z = k, y = j, x = i of the volume; the header's
 * affine goes to the labels written from it. */
static void nifti_brats(void **state)
{
    (void)state;
    if (!have(FLAIR) || !have(BRATS_LAB))
        return;
    u3d_error e = {0};
    u3d_volume v;
    u3d_vgeom g;
    t_ok(u3d_vio_read_volume(FLAIR, &v, &g, &e), &e, "flair");
    size_t len;
    unsigned char *raw = gunzip(FLAIR, &len);
    int16_t dim[8], dt;
    float vox_offset, slope, inter;
    memcpy(dim, raw + 40, sizeof dim);
    memcpy(&dt, raw + 70, 2);
    memcpy(&vox_offset, raw + 108, 4);
    memcpy(&slope, raw + 112, 4);
    memcpy(&inter, raw + 116, 4);
    assert_int_equal(v.w, dim[1]);
    assert_int_equal(v.h, dim[2]);
    assert_int_equal(v.d, dim[3]);
    assert_true(g.valid);
    int bp = dt == 2 ? 1 : dt == 4 || dt == 512 ? 2 : dt == 16 || dt == 8 ? 4 : 8;
    int found = 0;
    for (int k = 0; k < dim[3]; k += 7)
        for (int j = 0; j < dim[2]; j += 5)
            for (int i = 0; i < dim[1]; i += 3) {
                size_t idx = (size_t)i + (size_t)dim[1] * (j + (size_t)dim[2] * k);
                const unsigned char *p = raw + (size_t)vox_offset + idx * bp;
                double x;
                if (dt == 2) x = p[0];
                else if (dt == 4) { int16_t t; memcpy(&t, p, 2); x = t; }
                else if (dt == 512) { uint16_t t; memcpy(&t, p, 2); x = t; }
                else if (dt == 8) { int32_t t; memcpy(&t, p, 4); x = t; }
                else if (dt == 16) { float t; memcpy(&t, p, 4); x = t; }
                else { double t; memcpy(&t, p, 8); x = t; }
                if (slope != 0 && (slope != 1 || inter != 0))
                    x = x * slope + inter;
                float got = v.data[((size_t)k * v.h + j) * v.w + i];
                assert_true(fabs(got - x) < 1e-4);
                found += x != 0;
            }
    assert_true(found > 100); /* not all background */
    free(raw);
    fprintf(stderr, "flair %dx%dx%d spacing %g %g %g %s\n", v.d, v.h, v.w,
            v.spacing[0], v.spacing[1], v.spacing[2], v.unit);

    /* labels written with the image's geometry keep its affine */
    u3d_labels l;
    t_ok(u3d_vio_read_labels(BRATS_LAB, &l, NULL, &e), &e, "labels");
    t_ok(u3d_vio_write_labels(tmp_path("lab_out.nii.gz"), &l, &g, &e), &e,
         "write");
    u3d_vsource *s;
    u3d_volume sh;
    t_ok(u3d_vsource_open(tmp_path("lab_out.nii.gz"), 1, &s, &sh, &e), &e,
         "reopen");
    const u3d_vgeom *g2 = u3d_vsource_geom(s);
    assert_int_equal(g2->qform_code, g.qform_code);
    assert_int_equal(g2->sform_code, g.sform_code);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 4; c++)
            assert_true(fabs(g2->srow[r][c] - g.srow[r][c]) < 1e-5);
        assert_true(fabs(g2->quatern[r] - g.quatern[r]) < 1e-6);
        assert_true(fabs(g2->qoffset[r] - g.qoffset[r]) < 1e-4);
        assert_true(fabs(sh.spacing[r] - v.spacing[r]) < 1e-6);
    }
    u3d_vsource_close(s);
    u3d_labels q;
    t_ok(u3d_vio_read_labels(tmp_path("lab_out.nii.gz"), &q, NULL, &e), &e,
         "labels back");
    assert_memory_equal(q.data, l.data, (size_t)l.d * l.h * l.w * 2);
    u3d_labels_free(&q);
    u3d_labels_free(&l);
    u3d_volume_free(&v);

    /* two modalities as channels */
    if (!have(T1C))
        return;
    t_ok(u3d_vio_read_volume(FLAIR "," T1C, &v, NULL, &e), &e, "stack");
    assert_int_equal(v.c, 2);
    u3d_volume_free(&v);
}

static void nifti_errors(void **state)
{
    (void)state;
    u3d_error e = {0};
    u3d_volume r;
    FILE *f = fopen(tmp_path("bad.nii"), "wb");
    char junk[400] = {0};
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    assert_int_not_equal(u3d_vio_read_volume(tmp_path("bad.nii"), &r, NULL,
                                             &e),
                         U3D_OK);
    assert_non_null(strstr(e.msg, "bad.nii"));
    /* a valid header whose data are cut short */
    u3d_volume v = make_volume(1, 4, 5, 6);
    t_ok(u3d_vio_write_volume(tmp_path("cut.nii"), &v, NULL, &e), &e, "w");
    assert_int_equal(truncate(tmp_path("cut.nii"), 352 + 100), 0);
    assert_int_not_equal(u3d_vio_read_volume(tmp_path("cut.nii"), &r, NULL,
                                             &e),
                         U3D_OK);
    assert_non_null(strstr(e.msg, "cut.nii"));
    u3d_volume_free(&v);
}

static void zarr_roundtrip(void **state)
{
    (void)state;
    roundtrip(tmp_path("v.zarr"), tmp_path("l.zarr"));
    /* written again over the previous folder */
    roundtrip(tmp_path("v.zarr"), tmp_path("l.zarr"));
    u3d_error e;
    u3d_volume v = make_volume(1, 3, 600, 5), r;
    t_ok(u3d_vio_write_volume(tmp_path("wide.zarr"), &v, NULL, &e), &e,
         "two chunks of rows");
    t_ok(u3d_vio_read_volume(tmp_path("wide.zarr"), &r, NULL, &e), &e, "back");
    check_same_volume(&v, &r);
    u3d_volume_free(&v);
    u3d_volume_free(&r);
}

static void put_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Hand-made arrays: v2 big-endian int16 in 2x2x2 chunks under blosc,
 * gzip, zstd and raw, '.' keys, a missing chunk (fill value); v3 with
 * gzip, crc32c and v2 key encoding. */
static void zarr_codecs(void **state)
{
    (void)state;
    const char *codecs[] = {"blosc", "gzip", "zstd", "zlib", NULL};
    int16_t want[3 * 3 * 3];
    for (int i = 0; i < 27; i++)
        want[i] = (int16_t)(i * 37 - 400);
    for (int k = 0; k < 5; k++) {
        char dir[600], p[700];
        snprintf(dir, sizeof dir, "%s", tmp_path(k < 4 ? codecs[k] : "raw"));
        strcat(dir, ".zarr");
        mkdir(dir, 0755);
        char meta[512];
        snprintf(meta, sizeof meta,
                 "{\"zarr_format\":2,\"shape\":[3,3,3],\"chunks\":[2,2,2],"
                 "\"dtype\":\">i2\",\"compressor\":%s%s%s,\"fill_value\":7,"
                 "\"order\":\"C\",\"filters\":null}",
                 k < 4 ? "{\"id\":\"" : "null", k < 4 ? codecs[k] : "",
                 k < 4 ? "\"}" : "");
        snprintf(p, sizeof p, "%s/.zarray", dir);
        put_file(p, meta, strlen(meta));
        for (int cz = 0; cz < 2; cz++)
            for (int cy = 0; cy < 2; cy++)
                for (int cx = 0; cx < 2; cx++) {
                    if (cz == 1 && cy == 1 && cx == 1)
                        continue; /* missing: fill value */
                    unsigned char raw[16], out[256];
                    for (int z = 0; z < 2; z++)
                        for (int y = 0; y < 2; y++)
                            for (int x = 0; x < 2; x++) {
                                int Z = cz * 2 + z, Y = cy * 2 + y, X = cx * 2 + x;
                                int16_t v = Z < 3 && Y < 3 && X < 3
                                                ? want[(Z * 3 + Y) * 3 + X]
                                                : 0;
                                int o = ((z * 2 + y) * 2 + x) * 2;
                                raw[o] = (unsigned char)((uint16_t)v >> 8);
                                raw[o + 1] = (unsigned char)(v & 0xff);
                            }
                    size_t n = 16;
                    if (k == 0)
                        n = (size_t)blosc_compress(5, 1, 2, 16, raw, out,
                                                   sizeof out);
                    else if (k == 1 || k == 3) {
                        z_stream zs;
                        memset(&zs, 0, sizeof zs);
                        deflateInit2(&zs, 6, Z_DEFLATED, k == 1 ? 31 : 15, 8,
                                     Z_DEFAULT_STRATEGY);
                        zs.next_in = raw, zs.avail_in = 16;
                        zs.next_out = out, zs.avail_out = sizeof out;
                        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
                        n = zs.total_out;
                        deflateEnd(&zs);
                    } else if (k == 2)
                        n = ZSTD_compress(out, sizeof out, raw, 16, 3);
                    else
                        memcpy(out, raw, 16);
                    snprintf(p, sizeof p, "%s/%d.%d.%d", dir, cz, cy, cx);
                    put_file(p, out, n);
                }
        u3d_error e;
        u3d_volume v;
        t_ok(u3d_vio_read_volume(dir, &v, NULL, &e), &e, dir);
        assert_int_equal(v.d, 3);
        for (int i = 0; i < 27; i++) {
            float w = i == 26 ? 7.0f : (float)want[i];
            if (v.data[i] != w)
                fail_msg("%s: voxel %d is %g, expected %g", dir, i,
                         (double)v.data[i], (double)w);
        }
        assert_int_equal(v.bits, 16);
        assert_true(v.is_signed);
        u3d_volume_free(&v);
        /* a damaged chunk names the chunk */
        snprintf(p, sizeof p, "%s/0.0.0", dir);
        put_file(p, "garbage", 7);
        assert_int_not_equal(u3d_vio_read_volume(dir, &v, NULL, &e), U3D_OK);
        assert_non_null(strstr(e.msg, "0.0.0"));
    }
}

static void zarr_plantseg(void **state)
{
    (void)state;
    const char *z = FMT "plantseg_3d.zarr";
    if (!have(z))
        return;
    u3d_error e;
    u3d_volume v, w;
    t_ok(u3d_vio_read_volume(z, &v, NULL, &e), &e, "group -> raw");
    t_ok(u3d_vio_read_volume(FMT "plantseg_3d.zarr/raw", &w, NULL, &e), &e,
         "array");
    assert_int_equal(v.d, 10);
    assert_int_equal(v.h, 10);
    assert_int_equal(v.w, 10);
    assert_true(v.is_float);
    assert_string_equal(v.unit, "um");
    assert_true(fabs(v.spacing[0] - 0.235) < 1e-9);
    assert_true(fabs(v.spacing[2] - 0.15) < 1e-9);
    assert_memory_equal(v.data, w.data, 1000 * sizeof(float));
    double sum = 0;
    for (int i = 0; i < 1000; i++)
        sum += v.data[i];
    fprintf(stderr, "plantseg_3d.zarr: sum %g, v[0] %g v[999] %g\n", sum,
            (double)v.data[0], (double)v.data[999]);
    u3d_volume_free(&v);
    u3d_volume_free(&w);
    t_ok(u3d_vio_read_volume("zarr:" FMT "plantseg_3d.zarr:/raw", &v, NULL,
                             &e), &e, "dataset syntax");
    u3d_volume_free(&v);
}

static void remove_outputs(void **state)
{
    (void)state;
    u3d_error e;
    u3d_labels l = make_labels(2, 3, 4, 9);
    t_ok(u3d_vio_write_labels(tmp_path("rm.h5:/a/b"), &l, NULL, &e), &e, "h5");
    t_ok(u3d_vio_write_labels(tmp_path("rm.zarr"), &l, NULL, &e), &e, "zarr");
    assert_int_equal(u3d_vio_remove(tmp_path("rm.h5:/a/b")), 0);
    assert_int_equal(u3d_vio_remove(tmp_path("rm.zarr/")), 0);
    assert_int_not_equal(access(tmp_path("rm.h5"), F_OK), 0);
    assert_int_not_equal(access(tmp_path("rm.zarr"), F_OK), 0);
    assert_int_equal(u3d_vio_remove(tmp_path("absent.nii.gz")), 0);
    u3d_labels_free(&l);
}

static void stacking(void **state)
{
    (void)state;
    u3d_error e = {0};
    u3d_volume a = make_volume(1, 3, 4, 5), b = make_volume(2, 3, 4, 5), r;
    for (size_t i = 0; i < 2 * 60; i++)
        b.data[i] += 1000;
    t_ok(u3d_vio_write_volume(tmp_path("s1.h5"), &a, NULL, &e), &e, "a");
    t_ok(u3d_vio_write_volume(tmp_path("s2.tif"), &b, NULL, &e), &e, "b");
    char spec[1200];
    snprintf(spec, sizeof spec, "%s,%s", tmp_path("s1.h5"),
             tmp_path("s2.tif"));
    t_ok(u3d_vio_read_volume(spec, &r, NULL, &e), &e, "stack");
    assert_int_equal(r.c, 3);
    assert_memory_equal(r.data, a.data, 60 * sizeof(float));
    assert_memory_equal(r.data + 60, b.data, 120 * sizeof(float));
    u3d_volume_free(&r);
    u3d_volume c = make_volume(1, 3, 4, 6);
    t_ok(u3d_vio_write_volume(tmp_path("s3.h5"), &c, NULL, &e), &e, "c");
    snprintf(spec, sizeof spec, "%s,%s", tmp_path("s1.h5"),
             tmp_path("s3.h5"));
    assert_int_equal(u3d_vio_read_volume(spec, &r, NULL, &e), U3D_ERR_SHAPE);
    u3d_volume_free(&a);
    u3d_volume_free(&b);
    u3d_volume_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_specs),
        cmocka_unit_test(tiff_roundtrip),
        cmocka_unit_test(hdf5_roundtrip),
        cmocka_unit_test(hdf5_errors),
        cmocka_unit_test(isolation),
        cmocka_unit_test(hdf5_isolated_same),
        cmocka_unit_test(hdf5_nuclei),
        cmocka_unit_test(nifti_roundtrip),
        cmocka_unit_test(nifti_brats),
        cmocka_unit_test(nifti_errors),
        cmocka_unit_test(zarr_roundtrip),
        cmocka_unit_test(zarr_codecs),
        cmocka_unit_test(zarr_plantseg),
        cmocka_unit_test(remove_outputs),
        cmocka_unit_test(stacking),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
