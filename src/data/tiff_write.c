/* ImageJ-hyperstack TIFF writing, atomic: temporary file in the target's
 * folder, fsync, rename; the temporary file is removed on any failure. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/files.h"
#include "data/tiff_io.h"
#include "unet3d/volume.h"

/* Above this the 32-bit offsets of classic TIFF may not reach (4 GiB less a
 * margin for directories and compression overhead). */
#define CLASSIC_MAX 3900000000ull

typedef struct wjob {
    const char *path;
    int c, d, h, w;
    const float *f32;   /* volume data, or */
    const uint16_t *u16; /* label data, or */
    const uint8_t *u8;   /* 8-bit label data (one plane) */
    int bps;             /* 8, 16 or 32 */
    const double *spacing;
    const char *unit;
    double vmin, vmax;
    const u3d_tiff_write_opts *o;
    u3d_tmsg msg;
    u3d_error *err;
    int plane_data; /* f32/u16/u8 hold only the plane being written */
} wjob;

static u3d_status wfail(wjob *j, u3d_status code, const char *fmt, ...)
    U3D_PRINTF(3, 4);

static u3d_status wfail(wjob *j, u3d_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    u3d_status st = u3d_tmsg_fail(j->err, code, j->path, &j->msg, fmt, ap);
    va_end(ap);
    return st;
}

static void describe(const wjob *j, char *buf, size_t len)
{
    char u[16];
    snprintf(u, sizeof u, "%.15s", j->unit); /* the caller's may lack a NUL */
    for (char *p = u; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = '_'; /* one key=value per line */
    const char *unit = !strcmp(u, "um") ? "micron" : u;
    int n = snprintf(buf, len, "ImageJ=1.11a\nimages=%lld\n",
                     (long long)j->c * j->d);
    if (j->c > 1)
        n += snprintf(buf + n, len - (size_t)n, "channels=%d\n", j->c);
    if (j->d > 1)
        n += snprintf(buf + n, len - (size_t)n, "slices=%d\n", j->d);
    if (j->c > 1)
        n += snprintf(buf + n, len - (size_t)n, "hyperstack=true\nmode=grayscale\n");
    if (unit[0])
        n += snprintf(buf + n, len - (size_t)n, "unit=%s\n", unit);
    snprintf(buf + n, len - (size_t)n, "spacing=%.17g\nloop=false\nmin=%.9g\nmax=%.9g\n",
             j->spacing[0], j->vmin, j->vmax);
}

static int set_tags(TIFF *t, const wjob *j, uint32_t rps, const char *desc)
{
    int ok = 1;
    ok &= TIFFSetField(t, TIFFTAG_SUBFILETYPE, 0);
    ok &= TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)j->w);
    ok &= TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)j->h);
    ok &= TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)j->bps);
    ok &= TIFFSetField(t, TIFFTAG_SAMPLEFORMAT,
                       j->f32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT);
    ok &= TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)1);
    ok &= TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    ok &= TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    ok &= TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, rps);
    if (j->o->compress) {
        ok &= TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
        ok &= TIFFSetField(t, TIFFTAG_ZIPQUALITY, j->o->level ? j->o->level : 6);
    } else {
        ok &= TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
    }
    ok &= TIFFSetField(t, TIFFTAG_XRESOLUTION, 1.0 / j->spacing[2]);
    ok &= TIFFSetField(t, TIFFTAG_YRESOLUTION, 1.0 / j->spacing[1]);
    ok &= TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_NONE);
    if (desc)
        ok &= TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, desc);
    return ok;
}

/* Copies rows [y0, y0+rows) of plane (c, z) into buf in the file's type. */
static void fill_strip(const wjob *j, int c, int z, uint32_t y0, uint32_t rows,
                       unsigned char *buf)
{
    size_t hw = (size_t)j->h * j->w, n = (size_t)rows * j->w;
    size_t base = (j->plane_data ? (size_t)c * hw
                                 : ((size_t)c * j->d + (size_t)z) * hw) +
                  (size_t)y0 * j->w;
    if (j->f32) {
        memcpy(buf, j->f32 + base, n * sizeof(float));
    } else if (j->u8 && j->bps == 8) {
        memcpy(buf, j->u8 + base, n);
    } else if (j->u8) { /* 8-bit labels into a 16-bit file */
        for (size_t i = 0; i < n; i++) {
            uint16_t v = j->u8[base + i];
            memcpy(buf + 2 * i, &v, sizeof v);
        }
    } else if (j->bps == 16) {
        memcpy(buf, j->u16 + base, n * sizeof(uint16_t));
    } else {
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)j->u16[base + i];
    }
}

static uint32_t rows_per_strip(const wjob *j)
{
    size_t row = (size_t)j->w * (size_t)(j->bps / 8);
    uint32_t rps = (uint32_t)(row >= 262144 ? 1 : 262144 / row);
    return rps > (uint32_t)j->h ? (uint32_t)j->h : rps;
}

/* Writes the C pages of plane z (ImageJ page order: channel fastest, then
 * z); buf holds one strip. */
static u3d_status write_plane(wjob *j, TIFF *t, int z, unsigned char *buf)
{
    size_t row = (size_t)j->w * (size_t)(j->bps / 8);
    uint32_t rps = rows_per_strip(j);
    char desc[1024];
    describe(j, desc, sizeof desc);
    for (int c = 0; c < j->c; c++) {
        if (!set_tags(t, j, rps, z == 0 && c == 0 ? desc : NULL))
            return wfail(j, U3D_ERR_IO, "cannot set the TIFF tags");
        for (uint32_t s = 0, y = 0; y < (uint32_t)j->h; s++, y += rps) {
            uint32_t rows = (uint32_t)j->h - y < rps ? (uint32_t)j->h - y : rps;
            fill_strip(j, c, z, y, rows, buf);
            if (TIFFWriteEncodedStrip(t, s, buf, (tmsize_t)(rows * row)) < 0)
                return wfail(j, U3D_ERR_IO, "cannot write page %d: %s",
                             z * j->c + c, strerror(errno));
        }
        if (!TIFFWriteDirectory(t))
            return wfail(j, U3D_ERR_IO, "cannot write the directory of page "
                         "%d: %s", z * j->c + c, strerror(errno));
    }
    return U3D_OK;
}

static u3d_status write_pages(wjob *j, TIFF *t)
{
    size_t row = (size_t)j->w * (size_t)(j->bps / 8);
    unsigned char *buf = malloc(rows_per_strip(j) * row);
    u3d_status st = U3D_OK;
    if (!buf)
        return wfail(j, U3D_ERR_OOM, "out of memory for a strip buffer");
    for (int z = 0; z < j->d && !st; z++)
        st = write_plane(j, t, z, buf);
    free(buf);
    return st;
}

static u3d_status write_file(wjob *j)
{
    uint64_t bytes = (uint64_t)j->c * j->d * j->h * j->w * (uint64_t)(j->bps / 8);
    int big = j->o->bigtiff > 0 || (j->o->bigtiff == 0 && bytes > CLASSIC_MAX);
    char hb[32];
    if (!big && bytes > CLASSIC_MAX)
        return wfail(j, U3D_ERR_INVALID_ARG,
                     "%s of data do not fit in a classic TIFF; allow BigTIFF "
                     "(u3d_tiff_write_opts.bigtiff = 0)",
                     u3d_human_bytes((double)bytes, hb, sizeof hb));
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, j->path, j->err));
    u3d_tsrc src = {o.fd, NULL, 0, 0};
    TIFF *t = u3d_tiff_open_src(&src, j->path, big ? "w8" : "w", &j->msg, 0);
    u3d_status st = U3D_OK;
    if (!t) {
        st = wfail(j, U3D_ERR_IO, "cannot start the TIFF file");
    } else {
        st = write_pages(j, t);
        if (!st && (!TIFFFlush(t) || j->msg.count))
            st = wfail(j, U3D_ERR_IO, "cannot finish the file: %s", strerror(errno));
        TIFFClose(t);
    }
    if (st) {
        u3d_outfile_abort(&o);
        return st;
    }
    return u3d_outfile_commit(&o, j->err);
}

static u3d_status check_geometry(wjob *j, int c, int d, int h, int w,
                                 const void *data, const double *spacing)
{
    if (c < 1 || d < 1 || h < 1 || w < 1 || !data)
        return wfail(j, U3D_ERR_INVALID_ARG,
                     "nothing to write: %dx%dx%dx%d (CxDxHxW) volume%s", c, d,
                     h, w, data ? "" : " without data");
    if ((double)c * d > 4e9)
        return wfail(j, U3D_ERR_INVALID_ARG, "too many pages (%d x %d)", c, d);
    for (int i = 0; i < 3; i++)
        if (!isfinite(spacing[i]) || spacing[i] <= 0)
            return wfail(j, U3D_ERR_INVALID_ARG,
                         "spacing %g (axis %d) must be finite and > 0",
                         spacing[i], i);
    return U3D_OK;
}

static const u3d_tiff_write_opts default_opts = {1, 0, 0};

static void job_init(wjob *j, const char *path,
                     const u3d_tiff_write_opts *opts, u3d_error *err)
{
    memset(j, 0, sizeof *j);
    j->path = path ? path : "(null)";
    j->err = err;
    j->o = opts ? opts : &default_opts;
}

u3d_status u3d_tiff_write_volume_ex(const char *path, const u3d_volume *v,
                                    const u3d_tiff_write_opts *opts,
                                    u3d_error *err)
{
    wjob j;
    job_init(&j, path, opts, err);
    if (!path || !v)
        return wfail(&j, U3D_ERR_INVALID_ARG, "no path or no volume to write");
    U3D_TRY(check_geometry(&j, v->c, v->d, v->h, v->w, v->data, v->spacing));
    j.c = v->c, j.d = v->d, j.h = v->h, j.w = v->w;
    j.f32 = v->data;
    j.bps = 32;
    j.spacing = v->spacing;
    j.unit = v->unit;
    size_t n = (size_t)v->c * v->d * v->h * v->w;
    j.vmin = INFINITY, j.vmax = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v->data[i])) {
            j.vmin = v->data[i] < j.vmin ? v->data[i] : j.vmin;
            j.vmax = v->data[i] > j.vmax ? v->data[i] : j.vmax;
        }
    if (j.vmin > j.vmax)
        j.vmin = j.vmax = 0;
    return write_file(&j);
}

u3d_status u3d_tiff_write_volume(const char *path, const u3d_volume *v,
                                 u3d_error *err)
{
    return u3d_tiff_write_volume_ex(path, v, NULL, err);
}

u3d_status u3d_tiff_write_labels_ex(const char *path, const u3d_labels *l,
                                    const u3d_tiff_write_opts *opts,
                                    u3d_error *err)
{
    wjob j;
    job_init(&j, path, opts, err);
    if (!path || !l)
        return wfail(&j, U3D_ERR_INVALID_ARG, "no path or no labels to write");
    U3D_TRY(check_geometry(&j, 1, l->d, l->h, l->w, l->data, l->spacing));
    j.c = 1, j.d = l->d, j.h = l->h, j.w = l->w;
    j.u16 = l->data;
    j.spacing = l->spacing;
    j.unit = l->unit;
    size_t n = (size_t)l->d * l->h * l->w;
    uint16_t lo = 65535, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = l->data[i] < lo ? l->data[i] : lo;
        hi = l->data[i] > hi ? l->data[i] : hi;
    }
    j.vmin = lo, j.vmax = hi;
    j.bps = hi < 256 ? 8 : 16;
    return write_file(&j);
}

u3d_status u3d_tiff_write_labels(const char *path, const u3d_labels *l,
                                 u3d_error *err)
{
    return u3d_tiff_write_labels_ex(path, l, NULL, err);
}

/* ---- plane-by-plane writing -------------------------------------------- */

struct u3d_tiff_writer {
    wjob j;
    char path[4096], unit[16];
    double spacing[3];
    u3d_tiff_write_opts o;
    u3d_outfile out; /* out.fd < 0: not open */
    int z;
    u3d_tsrc src; /* libtiff's handle points here */
    TIFF *t;
    unsigned char *buf;
};

void u3d_tiff_writer_abort(u3d_tiff_writer *w)
{
    if (!w)
        return;
    if (w->t)
        TIFFClose(w->t);
    if (w->out.fd >= 0)
        u3d_outfile_abort(&w->out);
    free(w->buf);
    free(w);
}

u3d_status u3d_tiff_writer_open(const char *path, int c, int d, int h, int w,
                                int bits, const double spacing[3],
                                const char *unit, double vmin, double vmax,
                                const u3d_tiff_write_opts *opts,
                                u3d_tiff_writer **out, u3d_error *err)
{
    *out = NULL;
    u3d_tiff_writer *s = calloc(1, sizeof *s);
    if (!s)
        return u3d_seterr(err, U3D_ERR_OOM, "%s: out of memory", path);
    s->out.fd = -1;
    wjob *j = &s->j;
    snprintf(s->path, sizeof s->path, "%s", path ? path : "(null)");
    j->path = s->path;
    j->err = err;
    s->o = opts ? *opts : default_opts;
    j->o = &s->o;
    u3d_status st = U3D_OK;
    if (bits != 8 && bits != 16 && bits != 32)
        st = wfail(j, U3D_ERR_INVALID_ARG, "%d bits per sample (8, 16 or 32)",
                   bits);
    const char *dummy = "";
    if (!st)
        st = check_geometry(j, c, d, h, w, dummy, spacing);
    if (st) {
        u3d_tiff_writer_abort(s);
        return st;
    }
    memcpy(s->spacing, spacing, sizeof s->spacing);
    snprintf(s->unit, sizeof s->unit, "%.15s", unit ? unit : "");
    j->c = c, j->d = d, j->h = h, j->w = w;
    j->bps = bits;
    j->spacing = s->spacing;
    j->unit = s->unit;
    j->vmin = vmin, j->vmax = vmax;
    j->plane_data = 1;
    uint64_t bytes = (uint64_t)c * d * h * w * (uint64_t)(bits / 8);
    int big = s->o.bigtiff > 0 || (s->o.bigtiff == 0 && bytes > CLASSIC_MAX);
    char hb[32];
    if (!big && bytes > CLASSIC_MAX) {
        st = wfail(j, U3D_ERR_INVALID_ARG,
                   "%s of data do not fit in a classic TIFF; allow BigTIFF "
                   "(u3d_tiff_write_opts.bigtiff = 0)",
                   u3d_human_bytes((double)bytes, hb, sizeof hb));
        u3d_tiff_writer_abort(s);
        return st;
    }
    st = u3d_outfile_open(&s->out, s->path, err);
    if (st) {
        s->out.fd = -1;
        u3d_tiff_writer_abort(s);
        return st;
    }
    s->src.fd = s->out.fd;
    s->t = u3d_tiff_open_src(&s->src, s->path, big ? "w8" : "w", &j->msg, 0);
    size_t row = (size_t)w * (size_t)(bits / 8);
    s->buf = malloc(rows_per_strip(j) * row);
    if (!s->t)
        st = wfail(j, U3D_ERR_IO, "cannot start the TIFF file");
    else if (!s->buf)
        st = wfail(j, U3D_ERR_OOM, "out of memory for a strip buffer");
    if (st) {
        u3d_tiff_writer_abort(s);
        return st;
    }
    *out = s;
    return U3D_OK;
}

static u3d_status next_plane(u3d_tiff_writer *w, const float *f,
                             const uint16_t *u, const uint8_t *u8,
                             u3d_error *err)
{
    wjob *j = &w->j;
    j->err = err;
    if (w->z >= j->d)
        return wfail(j, U3D_ERR_INVALID_ARG, "all %d planes already written",
                     j->d);
    if ((j->bps == 32) != (f != NULL))
        return wfail(j, U3D_ERR_INVALID_ARG, "%s plane for a %d-bit file",
                     f ? "float" : "label", j->bps);
    j->f32 = f;
    j->u16 = u;
    j->u8 = u8;
    u3d_status st = write_plane(j, w->t, w->z, w->buf);
    j->f32 = NULL;
    j->u16 = NULL;
    j->u8 = NULL;
    if (!st)
        w->z++;
    return st;
}

u3d_status u3d_tiff_writer_plane_f32(u3d_tiff_writer *w, const float *plane,
                                     u3d_error *err)
{
    return next_plane(w, plane, NULL, NULL, err);
}

u3d_status u3d_tiff_writer_plane_u16(u3d_tiff_writer *w,
                                     const uint16_t *plane, u3d_error *err)
{
    return next_plane(w, NULL, plane, NULL, err);
}

u3d_status u3d_tiff_writer_plane_u8(u3d_tiff_writer *w, const uint8_t *plane,
                                    u3d_error *err)
{
    return next_plane(w, NULL, NULL, plane, err);
}

u3d_status u3d_tiff_writer_finish(u3d_tiff_writer *w, u3d_error *err)
{
    wjob *j = &w->j;
    j->err = err;
    u3d_status st = U3D_OK;
    if (w->z != j->d)
        st = wfail(j, U3D_ERR_INVALID_ARG, "only %d of %d planes written",
                   w->z, j->d);
    if (!st && (!TIFFFlush(w->t) || j->msg.count))
        st = wfail(j, U3D_ERR_IO, "cannot finish the file: %s",
                   strerror(errno));
    TIFFClose(w->t);
    w->t = NULL;
    if (st)
        u3d_outfile_abort(&w->out);
    else
        st = u3d_outfile_commit(&w->out, err);
    free(w->buf);
    free(w);
    return st;
}
