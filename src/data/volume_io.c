/* The volume source/sink interface: format choice, TIFF behind it (the
 * existing streamer and writer), channel stacking, NaN checks, and the
 * whole-volume helpers every format shares. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "data/tiff_io.h"
#include "data/vio_impl.h"

const char *u3d_format_name(u3d_format f)
{
    switch (f) {
    case U3D_FMT_TIFF: return "TIFF";
    case U3D_FMT_HDF5: return "HDF5";
    case U3D_FMT_NIFTI: return "NIfTI";
    case U3D_FMT_ZARR: return "Zarr";
    default: return "auto";
    }
}

static int ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && !strncasecmp(s + n - k, suf, k);
}

static u3d_format by_extension_n(const char *p, size_t n)
{
    while (n > 1 && p[n - 1] == '/')
        n--; /* "a.zarr/" */
    if (ends_with(p, n, ".tif") || ends_with(p, n, ".tiff"))
        return U3D_FMT_TIFF;
    if (ends_with(p, n, ".h5") || ends_with(p, n, ".hdf5") ||
        ends_with(p, n, ".hdf"))
        return U3D_FMT_HDF5;
    if (ends_with(p, n, ".nii") || ends_with(p, n, ".nii.gz"))
        return U3D_FMT_NIFTI;
    if (ends_with(p, n, ".zarr"))
        return U3D_FMT_ZARR;
    return U3D_FMT_AUTO;
}

static u3d_format by_extension(const char *p)
{
    return by_extension_n(p, strlen(p));
}

/* An existing input by its first bytes. */
static u3d_format sniff(const char *p)
{
    struct stat sb;
    if (stat(p, &sb))
        return U3D_FMT_AUTO;
    if (S_ISDIR(sb.st_mode))
        return U3D_FMT_ZARR;
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return U3D_FMT_AUTO;
    unsigned char b[352] = {0};
    ssize_t n = pread(fd, b, sizeof b, 0);
    close(fd);
    if (n >= 8 && !memcmp(b, "\x89HDF\r\n\x1a\n", 8))
        return U3D_FMT_HDF5;
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return U3D_FMT_NIFTI; /* gzip: NIfTI is the gzipped format we read */
    if (n >= 348 && (!memcmp(b + 344, "n+1", 4) || !memcmp(b + 344, "ni1", 4)))
        return U3D_FMT_NIFTI;
    if (n >= 8 && (!memcmp(b + 4, "n+2\0", 4) || !memcmp(b + 4, "ni2\0", 4)))
        return U3D_FMT_NIFTI;
    return U3D_FMT_AUTO;
}

static const struct {
    const char *prefix;
    u3d_format f;
} prefixes[] = {{"tiff:", U3D_FMT_TIFF}, {"tif:", U3D_FMT_TIFF},
                {"h5:", U3D_FMT_HDF5},   {"hdf5:", U3D_FMT_HDF5},
                {"nifti:", U3D_FMT_NIFTI}, {"nii:", U3D_FMT_NIFTI},
                {"zarr:", U3D_FMT_ZARR}};

u3d_status u3d_vio_parse(const char *spec, int output, u3d_format *fmt,
                         char *path, size_t path_len, char *dataset,
                         size_t dataset_len, u3d_error *err)
{
    if (!spec || !spec[0])
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "empty file name");
    u3d_format f = U3D_FMT_AUTO;
    const char *r = spec;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t k = strlen(prefixes[i].prefix);
        if (!strncasecmp(spec, prefixes[i].prefix, k)) {
            f = prefixes[i].f;
            r = spec + k;
            break;
        }
    }
    if (!r[0])
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: no file name after the format", spec);
    size_t plen = strlen(r);
    const char *ds = NULL;
    struct stat sb;
    /* "file:/dataset" (HDF5, Zarr): unless the whole name exists */
    if ((f == U3D_FMT_AUTO || f == U3D_FMT_HDF5 || f == U3D_FMT_ZARR) &&
        stat(r, &sb) != 0) {
        const char *c = strrchr(r, ':');
        if (c && c > r) {
            u3d_format g = by_extension_n(r, (size_t)(c - r));
            if ((g == U3D_FMT_HDF5 || g == U3D_FMT_ZARR) &&
                (f == U3D_FMT_AUTO || f == g)) {
                f = g;
                ds = c + 1;
                plen = (size_t)(c - r);
            } else if (f != U3D_FMT_AUTO && c[1] == '/') {
                ds = c + 1;
                plen = (size_t)(c - r);
            }
        }
    }
    if (plen + 1 > path_len)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "%s: name too long",
                          spec);
    memcpy(path, r, plen);
    path[plen] = 0;
    if (ds) {
        while (*ds == '/')
            ds++;
        if (strlen(ds) + 1 > dataset_len)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "%s: dataset name too long", spec);
    }
    snprintf(dataset, dataset_len, "%s", ds ? ds : "");
    if (f == U3D_FMT_AUTO)
        f = by_extension(path);
    if (f == U3D_FMT_AUTO && !output)
        f = sniff(path);
    if (f == U3D_FMT_AUTO)
        f = U3D_FMT_TIFF;
    if (ds && f != U3D_FMT_HDF5 && f != U3D_FMT_ZARR)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: a dataset name (':%s') is for HDF5 and Zarr "
                          "files only, not %s",
                          spec, dataset, u3d_format_name(f));
    *fmt = f;
    return U3D_OK;
}

/* ---- TIFF behind the interface ---------------------------------------- */

static u3d_status tiff_rows(u3d_vsource *s, int z, int y0, int ny,
                            float *dst, u3d_error *err)
{
    return u3d_tiff_stream_read_rows(s->impl, z, y0, ny, dst, err);
}

static void tiff_close(u3d_vsource *s)
{
    u3d_tiff_stream_close(s->impl);
}

static const u3d_vsrc_ops tiff_src_ops = {tiff_rows, tiff_close};

static u3d_status tiff_plane(u3d_vsink *s, const void *plane, u3d_error *err)
{
    if (s->bits == 32)
        return u3d_tiff_writer_plane_f32(s->impl, plane, err);
    if (s->bits == 16)
        return u3d_tiff_writer_plane_u16(s->impl, plane, err);
    size_t n = (size_t)s->c * s->h * s->w;
    const uint16_t *p = plane;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return u3d_seterr(err, U3D_ERR_OOM, "%s: out of host memory",
                          s->name);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)p[i];
    u3d_status st = u3d_tiff_writer_plane_u8(s->impl, b, err);
    free(b);
    return st;
}

static u3d_status tiff_finish(u3d_vsink *s, u3d_error *err)
{
    return u3d_tiff_writer_finish(s->impl, err);
}

static void tiff_abort(u3d_vsink *s)
{
    u3d_tiff_writer_abort(s->impl);
}

static const u3d_vsink_ops tiff_sink_ops = {tiff_plane, tiff_finish,
                                            tiff_abort};

/* ---- sources ---------------------------------------------------------- */

static u3d_status open_one(const char *spec, int labels, u3d_vsource *s,
                           u3d_error *err)
{
    u3d_format f;
    char path[4096], ds[1024];
    U3D_TRY(u3d_vio_parse(spec, 0, &f, path, sizeof path, ds, sizeof ds,
                          err));
    switch (f) {
    case U3D_FMT_HDF5:
        return u3d_h5_source_open(s, path, ds, labels, err);
    case U3D_FMT_NIFTI:
        return u3d_nifti_source_open(s, path, err);
    case U3D_FMT_ZARR:
        return u3d_zarr_source_open(s, path, ds, labels, err);
    default: {
        u3d_tiff_stream *t;
        U3D_TRY(u3d_tiff_stream_open(path, &t, &s->shape, err));
        s->impl = t;
        s->ops = &tiff_src_ops;
        return U3D_OK;
    }
    }
}

static u3d_status stack_rows(u3d_vsource *s, int z, int y0, int ny,
                             float *dst, u3d_error *err)
{
    for (int i = 0; i < s->nparts; i++) {
        u3d_vsource *p = s->parts[i];
        U3D_TRY(u3d_vsource_read_rows(p, z, y0, ny, dst, err));
        dst += (size_t)p->shape.c * ny * p->shape.w;
    }
    return U3D_OK;
}

static void stack_close(u3d_vsource *s)
{
    for (int i = 0; i < s->nparts; i++)
        u3d_vsource_close(s->parts[i]);
    free(s->parts);
}

static const u3d_vsrc_ops stack_ops = {stack_rows, stack_close};

/* "a,b,c": each opened, same D, H, W, channels in order. */
static u3d_status open_stack(const char *spec, int labels, u3d_vsource *s,
                             u3d_error *err)
{
    int n = 1;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    s->parts = calloc((size_t)n, sizeof *s->parts);
    if (!s->parts)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    s->ops = &stack_ops;
    const char *p = spec;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        char one[4096];
        if (k == 0 || k >= sizeof one)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "%s: empty or too long name in the list",
                              spec);
        memcpy(one, p, k);
        one[k] = 0;
        u3d_volume sh;
        U3D_TRY(u3d_vsource_open(one, labels, &s->parts[i], &sh, err));
        s->nparts = i + 1;
        if (i == 0) {
            s->shape = sh;
            s->geom = s->parts[0]->geom;
        } else {
            const u3d_volume *a = &s->shape;
            if (sh.d != a->d || sh.h != a->h || sh.w != a->w)
                return u3d_seterr(
                    err, U3D_ERR_SHAPE,
                    "%s is %dx%dx%d (DxHxW) but %s is %dx%dx%d: volumes "
                    "stacked as channels need the same size",
                    one, sh.d, sh.h, sh.w, s->parts[0]->name, a->d, a->h,
                    a->w);
            if (a->c + sh.c > U3D_NORM_MAX_C)
                return u3d_seterr(err, U3D_ERR_SHAPE,
                                  "%s: more than %d channels", spec,
                                  U3D_NORM_MAX_C);
            s->shape.c += sh.c;
            if (sh.bits > s->shape.bits)
                s->shape.bits = sh.bits;
            s->shape.is_float |= sh.is_float;
        }
        p += k + 1;
    }
    return U3D_OK;
}

u3d_status u3d_vsource_open(const char *spec, int labels, u3d_vsource **out,
                            u3d_volume *shape, u3d_error *err)
{
    *out = NULL;
    u3d_vsource *s = calloc(1, sizeof *s);
    if (!s)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    snprintf(s->name, sizeof s->name, "%s", spec ? spec : "");
    struct stat sb;
    u3d_status st;
    if (spec && strchr(spec, ',') && stat(spec, &sb) != 0)
        st = open_stack(spec, labels, s, err);
    else
        st = open_one(spec, labels, s, err);
    if (st) {
        if (s->ops)
            s->ops->close(s);
        free(s);
        return st;
    }
    s->shape.data = NULL;
    if (shape)
        *shape = s->shape;
    *out = s;
    return U3D_OK;
}

u3d_status u3d_vsource_read_rows(u3d_vsource *s, int z, int y0, int ny,
                                 float *dst, u3d_error *err)
{
    const u3d_volume *v = &s->shape;
    if (z < 0 || z >= v->d || y0 < 0 || ny <= 0 || y0 > v->h - ny)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: plane %d rows %d..%d outside %dx%dx%d",
                          s->name, z, y0, y0 + ny, v->d, v->h, v->w);
    U3D_TRY(s->ops->read_rows(s, z, y0, ny, dst, err));
    if (!s->check_finite)
        return U3D_OK;
    size_t per = (size_t)ny * v->w, n = per * v->c;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) {
            size_t r = i % per;
            return u3d_seterr(err, U3D_ERR_NUMERIC,
                              "%s: non-finite value (NaN or Inf) at channel "
                              "%zu z %d y %zu x %zu",
                              s->name, i / per, z, y0 + r / v->w, r % v->w);
        }
    return U3D_OK;
}

u3d_status u3d_vsource_read(u3d_vsource *s, int z, float *dst,
                            u3d_error *err)
{
    return u3d_vsource_read_rows(s, z, 0, s->shape.h, dst, err);
}

const u3d_vgeom *u3d_vsource_geom(const u3d_vsource *s)
{
    return &s->geom;
}

void u3d_vsource_close(u3d_vsource *s)
{
    if (!s)
        return;
    if (s->ops)
        s->ops->close(s);
    free(s);
}

/* One TIFF file: its own whole-volume readers (size limits, messages). */
static int is_tiff(const char *spec, char *path, size_t n)
{
    u3d_format f;
    char ds[8];
    struct stat sb;
    if (strchr(spec, ',') && stat(spec, &sb) != 0)
        return 0;
    if (u3d_vio_parse(spec, 0, &f, path, n, ds, sizeof ds, NULL))
        return 0;
    return f == U3D_FMT_TIFF;
}

static u3d_status read_all(const char *spec, int labels, u3d_volume *out,
                           u3d_vgeom *geom, u3d_error *err)
{
    memset(out, 0, sizeof *out); /* freed on failure below */
    u3d_vsource *s;
    u3d_volume sh;
    U3D_TRY(u3d_vsource_open(spec, labels, &s, &sh, err));
    size_t plane = u3d_mul_sz(u3d_mul_sz((size_t)sh.c, (size_t)sh.h),
                              (size_t)sh.w);
    size_t all = u3d_mul_sz(u3d_mul_sz(plane, (size_t)sh.d), sizeof(float));
    char hb[32];
    u3d_status st = U3D_OK;
    float *tmp = NULL;
    if (!all || all > u3d_mem_limit(0))
        st = u3d_seterr(err, U3D_ERR_OOM,
                        "%s: the volume (%d x %d x %d x %d, %s as float32) "
                        "exceeds the host memory",
                        spec, sh.c, sh.d, sh.h, sh.w,
                        u3d_human_bytes((double)sh.c * sh.d * sh.h * sh.w * 4,
                                        hb, sizeof hb));
    if (!st)
        st = u3d_volume_alloc(sh.c, sh.d, sh.h, sh.w, out, err);
    if (!st && !(tmp = malloc(plane * sizeof *tmp)))
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    size_t hw = (size_t)sh.h * sh.w, dhw = hw * sh.d;
    for (int z = 0; !st && z < sh.d; z++) {
        st = u3d_vsource_read(s, z, tmp, err);
        for (int c = 0; !st && c < sh.c; c++)
            memcpy(out->data + c * dhw + z * hw, tmp + c * hw,
                   hw * sizeof *tmp);
    }
    free(tmp);
    if (!st) {
        memcpy(out->spacing, sh.spacing, sizeof sh.spacing);
        memcpy(out->unit, sh.unit, sizeof sh.unit);
        out->bits = sh.bits;
        out->is_float = sh.is_float;
        out->is_signed = sh.is_signed;
        if (geom)
            *geom = s->geom;
    } else
        u3d_volume_free(out);
    u3d_vsource_close(s);
    return st;
}

u3d_status u3d_vio_read_volume(const char *spec, u3d_volume *out,
                               u3d_vgeom *geom, u3d_error *err)
{
    char path[4096];
    if (geom)
        memset(geom, 0, sizeof *geom);
    if (is_tiff(spec, path, sizeof path))
        return u3d_tiff_read_volume(path, out, err);
    return read_all(spec, 0, out, geom, err);
}

u3d_status u3d_vio_read_labels(const char *spec, u3d_labels *out,
                               u3d_vgeom *geom, u3d_error *err)
{
    char path[4096];
    if (geom)
        memset(geom, 0, sizeof *geom);
    if (is_tiff(spec, path, sizeof path))
        return u3d_tiff_read_labels(path, out, err);
    memset(out, 0, sizeof *out);
    u3d_volume v = {0};
    U3D_TRY(read_all(spec, 1, &v, geom, err));
    u3d_status st = U3D_OK;
    if (v.c != 1)
        st = u3d_seterr(err, U3D_ERR_FORMAT,
                        "%s: labels need one channel, the file has %d", spec,
                        v.c);
    if (!st)
        st = u3d_labels_alloc(v.d, v.h, v.w, out, err);
    size_t n = (size_t)v.d * v.h * v.w;
    for (size_t i = 0; !st && i < n; i++) {
        float x = v.data[i];
        if (!(x >= 0 && x <= 65535 && x == floorf(x))) {
            size_t hw = (size_t)v.h * v.w;
            st = u3d_seterr(err, U3D_ERR_FORMAT,
                            "%s: value %g at z %zu y %zu x %zu is not a "
                            "label (labels are integers 0..65535)",
                            spec, (double)x, i / hw, i % hw / v.w, i % v.w);
            u3d_labels_free(out);
            break;
        }
        out->data[i] = (uint16_t)x;
    }
    if (!st) {
        memcpy(out->spacing, v.spacing, sizeof v.spacing);
        memcpy(out->unit, v.unit, sizeof v.unit);
    }
    u3d_volume_free(&v);
    return st;
}

/* ---- sinks ------------------------------------------------------------ */

u3d_status u3d_vsink_open(const char *spec, int c, int d, int h, int w,
                          int bits, const double spacing[3], const char *unit,
                          double vmin, double vmax, const u3d_vgeom *geom,
                          u3d_vsink **out, u3d_error *err)
{
    *out = NULL;
    u3d_format f;
    char path[4096], ds[1024];
    U3D_TRY(u3d_vio_parse(spec, 1, &f, path, sizeof path, ds, sizeof ds,
                          err));
    if (c <= 0 || d <= 0 || h <= 0 || w <= 0 ||
        (bits != 8 && bits != 16 && bits != 32))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: cannot write %dx%dx%dx%d of %d bits", spec, c,
                          d, h, w, bits);
    u3d_vsink *s = calloc(1, sizeof *s);
    if (!s)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    snprintf(s->name, sizeof s->name, "%s", spec);
    s->c = c, s->d = d, s->h = h, s->w = w, s->bits = bits;
    for (int i = 0; i < 3; i++)
        s->spacing[i] = spacing ? spacing[i] : 1.0;
    snprintf(s->unit, sizeof s->unit, "%s", unit ? unit : "");
    if (geom)
        s->geom = *geom;
    u3d_status st;
    switch (f) {
    case U3D_FMT_HDF5:
        st = u3d_h5_sink_open(s, path, ds, err);
        break;
    case U3D_FMT_NIFTI:
        st = u3d_nifti_sink_open(s, path, err);
        break;
    case U3D_FMT_ZARR:
        st = ds[0] ? u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                                "%s: Zarr outputs are written as a whole "
                                "OME-Zarr image; name the folder only",
                                spec)
                   : u3d_zarr_sink_open(s, path, err);
        break;
    default: {
        u3d_tiff_writer *t;
        st = u3d_tiff_writer_open(path, c, d, h, w, bits, s->spacing, s->unit,
                                  vmin, vmax, NULL, &t, err);
        if (!st) {
            s->impl = t;
            s->ops = &tiff_sink_ops;
        }
    }
    }
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return U3D_OK;
}

static u3d_status next(u3d_vsink *s, const void *p, u3d_error *err)
{
    if (s->z >= s->d)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: all %d planes already written", s->name, s->d);
    U3D_TRY(s->ops->plane(s, p, err));
    s->z++;
    return U3D_OK;
}

u3d_status u3d_vsink_plane_f32(u3d_vsink *s, const float *plane,
                               u3d_error *err)
{
    if (s->bits != 32)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: float planes into a %d-bit label file",
                          s->name, s->bits);
    return next(s, plane, err);
}

u3d_status u3d_vsink_plane_u16(u3d_vsink *s, const uint16_t *plane,
                               u3d_error *err)
{
    if (s->bits == 32)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: integer planes into a float file", s->name);
    if (s->bits == 8) {
        size_t n = (size_t)s->c * s->h * s->w;
        for (size_t i = 0; i < n; i++)
            if (plane[i] > 255)
                return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                                  "%s: value %u in an 8-bit label file",
                                  s->name, plane[i]);
    }
    return next(s, plane, err);
}

u3d_status u3d_vsink_plane_u8(u3d_vsink *s, const uint8_t *plane,
                              u3d_error *err)
{
    if (s->bits == 32)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: integer planes into a float file", s->name);
    size_t n = (size_t)s->c * s->h * s->w;
    if (!s->conv && !(s->conv = malloc(n * sizeof *s->conv)))
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (size_t i = 0; i < n; i++)
        s->conv[i] = plane[i];
    return next(s, s->conv, err);
}

u3d_status u3d_vsink_finish(u3d_vsink *s, u3d_error *err)
{
    if (!s)
        return U3D_OK;
    u3d_status st;
    if (s->z != s->d) {
        st = u3d_seterr(err, U3D_ERR_INVALID_ARG,
                        "%s: only %d of %d planes written", s->name, s->z,
                        s->d);
        s->ops->abort(s);
    } else
        st = s->ops->finish(s, err);
    free(s->conv);
    free(s);
    return st;
}

void u3d_vsink_abort(u3d_vsink *s)
{
    if (!s)
        return;
    s->ops->abort(s);
    free(s->conv);
    free(s);
}

u3d_status u3d_vio_write_volume(const char *spec, const u3d_volume *v,
                                const u3d_vgeom *geom, u3d_error *err)
{
    u3d_format f;
    char path[4096], ds[1024];
    U3D_TRY(u3d_vio_parse(spec, 1, &f, path, sizeof path, ds, sizeof ds,
                          err));
    if (f == U3D_FMT_TIFF)
        return u3d_tiff_write_volume(path, v, err);
    u3d_vsink *s;
    U3D_TRY(u3d_vsink_open(spec, v->c, v->d, v->h, v->w, 32, v->spacing,
                           v->unit, 0, 1, geom, &s, err));
    size_t hw = (size_t)v->h * v->w, dhw = hw * v->d;
    float *p = malloc(hw * v->c * sizeof *p);
    u3d_status st = p ? U3D_OK
                      : u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (int z = 0; !st && z < v->d; z++) {
        for (int c = 0; c < v->c; c++)
            memcpy(p + c * hw, v->data + c * dhw + z * hw, hw * sizeof *p);
        st = u3d_vsink_plane_f32(s, p, err);
    }
    free(p);
    if (st) {
        u3d_vsink_abort(s);
        return st;
    }
    return u3d_vsink_finish(s, err);
}

u3d_status u3d_vio_write_labels(const char *spec, const u3d_labels *l,
                                const u3d_vgeom *geom, u3d_error *err)
{
    u3d_format f;
    char path[4096], ds[1024];
    U3D_TRY(u3d_vio_parse(spec, 1, &f, path, sizeof path, ds, sizeof ds,
                          err));
    if (f == U3D_FMT_TIFF)
        return u3d_tiff_write_labels(path, l, err);
    size_t hw = (size_t)l->h * l->w, n = hw * l->d;
    int bits = 8;
    for (size_t i = 0; i < n && bits == 8; i++)
        if (l->data[i] > 255)
            bits = 16;
    u3d_vsink *s;
    U3D_TRY(u3d_vsink_open(spec, 1, l->d, l->h, l->w, bits, l->spacing,
                           l->unit, 0, 0, geom, &s, err));
    u3d_status st = U3D_OK;
    for (int z = 0; !st && z < l->d; z++)
        st = u3d_vsink_plane_u16(s, l->data + z * hw, err);
    if (st) {
        u3d_vsink_abort(s);
        return st;
    }
    return u3d_vsink_finish(s, err);
}

static int rm_tree(const char *p)
{
    struct stat sb;
    if (lstat(p, &sb))
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode))
        return unlink(p);
    DIR *d = opendir(p);
    struct dirent *e;
    int r = 0;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char q[4400];
        snprintf(q, sizeof q, "%s/%s", p, e->d_name);
        r |= rm_tree(q);
    }
    if (d)
        closedir(d);
    return rmdir(p) | r;
}

int u3d_vio_remove(const char *spec)
{
    u3d_format f;
    char path[4096], ds[1024];
    if (u3d_vio_parse(spec, 1, &f, path, sizeof path, ds, sizeof ds, NULL))
        return -1;
    if (f == U3D_FMT_ZARR)
        return rm_tree(path);
    return unlink(path) && errno != ENOENT ? -1 : 0;
}
