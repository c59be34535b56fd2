/* TIFF volume and label reading: two passes over the page directories, the
 * first validating every page and the total size before anything large is
 * allocated, the second decoding the pages into C,D,H,W planes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/files.h"
#include "data/tiff_io.h"
#include "unet3d/volume.h"

typedef struct page_fmt {
    uint32_t w, h;
    uint16_t spp, bps, fmt, planar, comp;
    int tiled;
} page_fmt;

typedef struct reader {
    const char *name;
    u3d_tsrc *src;
    TIFF *tif;
    u3d_tmsg msg;
    u3d_error *err;
    int labels;       /* 1: uint16 labels, 0: float volume */
    size_t limit;     /* bytes the decoded data may take */
    page_fmt f;       /* of the first page; every page must match */
    u3d_imagej ij;
    long ic, c, d;    /* ImageJ channels, channels (ic * spp), depth */
    long npages;      /* pages with their own directory to decode */
    long raw_pages;   /* ImageJ > 4 GB: further pages as raw data */
    uint64_t raw_off; /* offset of page 0's data when raw_pages > 0 */
    double spacing[3];
    char unit[16];
    /* non-finite float values: count and first position */
    size_t nbad;
    long bad_pos[4];
    float bad_val;
} reader;

static u3d_status fail(reader *r, u3d_status code, const char *fmt, ...)
    U3D_PRINTF(3, 4);

/* "name: what (libtiff: ...)", one line. */
static u3d_status fail(reader *r, u3d_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    u3d_status st = u3d_tmsg_fail(r->err, code, r->name, &r->msg, fmt, ap);
    va_end(ap);
    return st;
}

static size_t sample_bytes(const page_fmt *f) { return f->bps / 8u; }

static const char *fmt_name(uint16_t fmt)
{
    switch (fmt) {
    case SAMPLEFORMAT_UINT: return "unsigned integer";
    case SAMPLEFORMAT_INT: return "signed integer";
    case SAMPLEFORMAT_IEEEFP: return "float";
    case SAMPLEFORMAT_VOID: return "untyped";
    default: return "complex or unknown";
    }
}

static u3d_status check_sample_type(reader *r, long page, const page_fmt *f)
{
    int ok;
    switch (f->fmt) {
    case SAMPLEFORMAT_UINT:
    case SAMPLEFORMAT_INT:
    case SAMPLEFORMAT_VOID:
        ok = f->bps == 8 || f->bps == 16 || f->bps == 32;
        break;
    case SAMPLEFORMAT_IEEEFP:
        ok = f->bps == 16 || f->bps == 32 || f->bps == 64;
        break;
    default:
        ok = 0;
    }
    if (!ok)
        return fail(r, U3D_ERR_UNSUPPORTED,
                    "page %ld has %u-bit %s samples; supported are 8/16/32-bit "
                    "integers and 16/32/64-bit floats",
                    page, f->bps, fmt_name(f->fmt));
    if (f->spp < 1 || f->spp > 64)
        return fail(r, U3D_ERR_UNSUPPORTED,
                    "page %ld has %u samples per pixel (1..64 supported)", page,
                    f->spp);
    return U3D_OK;
}

/* Reads and validates the current directory's layout. */
static u3d_status get_fmt(reader *r, long page, page_fmt *f)
{
    TIFF *t = r->tif;
    uint16_t photo = PHOTOMETRIC_MINISBLACK;
    uint32_t depth = 1;
    memset(f, 0, sizeof *f);
    if (!TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &f->w) ||
        !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &f->h) || !f->w || !f->h)
        return fail(r, U3D_ERR_FORMAT, "page %ld has no valid image size", page);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &f->spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &f->bps);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &f->fmt);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &f->planar);
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &f->comp);
    TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo);
    TIFFGetFieldDefaulted(t, TIFFTAG_IMAGEDEPTH, &depth);
    f->tiled = TIFFIsTiled(t);
    if (f->fmt == SAMPLEFORMAT_VOID)
        f->fmt = SAMPLEFORMAT_UINT;
    u3d_status st = check_sample_type(r, page, f);
    if (st)
        return st;
    if (depth != 1)
        return fail(r, U3D_ERR_UNSUPPORTED,
                    "page %ld is an SGI volume tile (ImageDepth %u)", page, depth);
    if (!TIFFIsCODECConfigured(f->comp))
        return fail(r, U3D_ERR_UNSUPPORTED,
                    "page %ld uses compression scheme %u, which this libtiff "
                    "cannot decode", page, f->comp);
    if (photo == PHOTOMETRIC_YCBCR) {
        uint16_t sh = 1, sv = 1;
        if (f->comp == COMPRESSION_JPEG) {
            TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        } else {
            TIFFGetFieldDefaulted(t, TIFFTAG_YCBCRSUBSAMPLING, &sh, &sv);
            if (sh != 1 || sv != 1)
                return fail(r, U3D_ERR_UNSUPPORTED,
                            "page %ld: subsampled YCbCr is not supported", page);
        }
    }
    return U3D_OK;
}

static u3d_status same_fmt(reader *r, long page, const page_fmt *f)
{
    const page_fmt *a = &r->f;
    if (f->w != a->w || f->h != a->h)
        return fail(r, U3D_ERR_FORMAT,
                    "page %ld is %ux%u (WxH) but page 0 is %ux%u: all pages of "
                    "a volume must have the same size",
                    page, f->w, f->h, a->w, a->h);
    if (f->spp != a->spp || f->bps != a->bps || f->fmt != a->fmt)
        return fail(r, U3D_ERR_FORMAT,
                    "page %ld has %u sample(s) of %u-bit %s per pixel but page 0 "
                    "has %u of %u-bit %s: all pages must share one type",
                    page, f->spp, f->bps, fmt_name(f->fmt), a->spp, a->bps,
                    fmt_name(a->fmt));
    return U3D_OK;
}

/* Thumbnails and other reduced-resolution pages are not Z slices. */
static int skip_page(reader *r)
{
    uint32_t sub = 0;
    if (r->ij.present)
        return 0;
    return TIFFGetField(r->tif, TIFFTAG_SUBFILETYPE, &sub) &&
           (sub & FILETYPE_REDUCEDIMAGE);
}

/* Moves to the next directory; 1 when there is one, 0 at the end, -1 when
 * the chain is broken (error already set). */
static int next_dir(reader *r, long page)
{
    int before = r->msg.count;
    if (TIFFReadDirectory(r->tif))
        return 1;
    if (r->msg.count > before) {
        fail(r, U3D_ERR_FORMAT,
             "cannot read the directory after page %ld (file truncated or "
             "corrupt?)", page);
        return -1;
    }
    return 0;
}

static void read_spacing(reader *r)
{
    TIFF *t = r->tif;
    float xr = 0, yr = 0;
    uint16_t ru = 0;
    int has_x = TIFFGetField(t, TIFFTAG_XRESOLUTION, &xr) && isfinite(xr) && xr > 0;
    int has_y = TIFFGetField(t, TIFFTAG_YRESOLUTION, &yr) && isfinite(yr) && yr > 0;
    r->spacing[2] = has_x ? 1.0 / xr : 1.0;
    r->spacing[1] = has_y ? 1.0 / yr : r->spacing[2];
    if (!has_x && has_y)
        r->spacing[2] = r->spacing[1];
    r->spacing[0] = r->ij.spacing > 0 ? r->ij.spacing : r->spacing[2];
    r->unit[0] = 0;
    if (r->ij.present && r->ij.unit[0]) {
        snprintf(r->unit, sizeof r->unit, "%s", r->ij.unit);
    } else if (has_x || has_y) {
        if (!TIFFGetField(t, TIFFTAG_RESOLUTIONUNIT, &ru))
            ru = RESUNIT_INCH; /* the TIFF default */
        snprintf(r->unit, sizeof r->unit, "%s",
                 ru == RESUNIT_INCH ? "inch" : ru == RESUNIT_CENTIMETER ? "cm" : "");
    }
}

static u3d_status read_first(reader *r)
{
    char *desc = NULL, why[200];
    if (TIFFGetField(r->tif, TIFFTAG_IMAGEDESCRIPTION, &desc) &&
        u3d_imagej_parse(desc, &r->ij, why, sizeof why))
        return fail(r, U3D_ERR_FORMAT, "%s", why);
    return U3D_OK;
}

/* Pass 1: validate every page, count them. */
static u3d_status scan_pages(reader *r)
{
    long page = 0, dir = 0;
    u3d_status st = read_first(r);
    if (st)
        return st;
    /* after read_first: the ImageJ description bounds the pages to read
     * (the buffers are sized from it) */
    long want = r->ij.present && r->ij.images ? r->ij.images : LONG_MAX;
    for (;;) {
        if (!skip_page(r)) {
            page_fmt f;
            if ((st = get_fmt(r, page, &f)))
                return st;
            if (page == 0) {
                r->f = f;
                read_spacing(r);
            } else if ((st = same_fmt(r, page, &f))) {
                return st;
            }
            if (++page >= want)
                break;
        }
        int k = next_dir(r, dir++);
        if (k < 0)
            return r->err ? r->err->code : U3D_ERR_FORMAT;
        if (!k)
            break;
    }
    if (page == 0)
        return fail(r, U3D_ERR_FORMAT, "no full-resolution image page");
    r->npages = page;
    return U3D_OK;
}

/* ImageJ writes stacks > 4 GB with a single directory and the pages stored
 * back to back after the first page's data (uncompressed). *ok = 0 when
 * the file does not have that layout. */
static u3d_status setup_raw_pages(reader *r, long images, int *ok)
{
    TIFF *t = r->tif;
    const page_fmt *f = &r->f;
    uint64_t *off = NULL, *bc = NULL;
    *ok = 0;
    if (!TIFFSetDirectory(t, 0))
        return fail(r, U3D_ERR_FORMAT, "cannot re-read page 0");
    uint32_t ns = TIFFNumberOfStrips(t);
    uint64_t page_bytes = u3d_mul_sz(u3d_mul_sz(f->w, f->h), sample_bytes(f));
    if (!page_bytes || f->comp != COMPRESSION_NONE || f->tiled || f->spp != 1 || !ns ||
        !TIFFGetField(t, TIFFTAG_STRIPOFFSETS, &off) ||
        !TIFFGetField(t, TIFFTAG_STRIPBYTECOUNTS, &bc) || !off || !bc)
        return U3D_OK;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < ns; i++) {
        if (i && off[i] != off[i - 1] + bc[i - 1])
            return U3D_OK;
        sum += bc[i];
    }
    if (sum != page_bytes)
        return U3D_OK;
    *ok = 1;
    /* division, not images * page_bytes: forged counts must not overflow */
    uint64_t fit = off[0] <= r->src->size ? (r->src->size - off[0]) / page_bytes : 0;
    if ((uint64_t)images > fit)
        return fail(r, U3D_ERR_FORMAT,
                    "ImageJ metadata says images=%ld stored contiguously, but "
                    "the file ends after %llu of them (truncated file?)",
                    images, (unsigned long long)fit);
    r->raw_off = off[0];
    r->raw_pages = images - 1;
    return U3D_OK;
}

/* Pages missing from the directory chain: ImageJ's > 4 GB layout or a
 * truncated file. */
static u3d_status resolve_missing(reader *r)
{
    long images = r->ic * r->d; /* <= 1e9 by layout_imagej */
    if (r->npages >= images)
        return U3D_OK;
    if (r->npages == 1) {
        int ok;
        u3d_status st = setup_raw_pages(r, images, &ok);
        if (st || ok)
            return st;
    }
    return fail(r, U3D_ERR_FORMAT,
                "has %ld page(s) but its ImageJ metadata says images=%ld "
                "(truncated file?)", r->npages, images);
}

static u3d_status layout_imagej(reader *r)
{
    u3d_imagej *ij = &r->ij;
    long images = ij->images ? ij->images : r->npages;
    long ic = ij->channels ? ij->channels : 1;
    long s = ij->slices, fr = ij->frames;
    if (!s && !fr) {
        if (images % ic)
            return fail(r, U3D_ERR_FORMAT,
                        "ImageJ metadata images=%ld is not a multiple of "
                        "channels=%ld", images, ic);
        s = images / ic;
    }
    s = s ? s : 1;
    fr = fr ? fr : 1;
    /* in double: each factor <= 1e9, an exact match cannot be rounding */
    if ((double)ic * (double)s * (double)fr != (double)images)
        return fail(r, U3D_ERR_FORMAT,
                    "ImageJ metadata images=%ld does not match channels=%ld x "
                    "slices=%ld x frames=%ld", images, ic, s, fr);
    if (s > 1 && fr > 1)
        return fail(r, U3D_ERR_UNSUPPORTED,
                    "a time series (slices=%ld, frames=%ld); save one time "
                    "point per file", s, fr);
    r->ic = ic;
    r->d = s * fr;
    return U3D_OK;
}

static u3d_status check_size(reader *r)
{
    size_t elem = r->labels ? sizeof(uint16_t) : sizeof(float);
    r->c = r->ic * r->f.spp;
    size_t n = u3d_mul_sz(u3d_mul_sz((size_t)r->c, (size_t)r->d),
                          u3d_mul_sz(r->f.w, r->f.h));
    size_t bytes = u3d_mul_sz(n, elem);
    if (r->c > INT_MAX || r->d > INT_MAX || r->f.w > INT_MAX ||
        r->f.h > INT_MAX || !bytes || bytes > r->limit) {
        char need[32], lim[32];
        return fail(r, U3D_ERR_OOM,
                    "%ld x %ld x %u x %u (CxDxHxW) voxels need %s, more than "
                    "the %s allowed (physical memory or "
                    "u3d_tiff_read_opts.max_bytes); crop or downsample it",
                    r->c, r->d, r->f.h, r->f.w,
                    u3d_human_bytes((double)r->c * r->d * r->f.h * r->f.w * elem,
                                    need, sizeof need),
                    u3d_human_bytes((double)r->limit, lim, sizeof lim));
    }
    if (r->labels && r->f.fmt == SAMPLEFORMAT_IEEEFP)
        return fail(r, U3D_ERR_FORMAT,
                    "labels must be integers (uint8/uint16) but the file has "
                    "%u-bit float samples", r->f.bps);
    if (r->labels && r->c != 1)
        return fail(r, U3D_ERR_FORMAT,
                    "labels must have one channel but the file has %ld "
                    "(%ld ImageJ channel(s) x %u sample(s) per pixel)",
                    r->c, r->ic, r->f.spp);
    return U3D_OK;
}

/* ---- pass 2: decoding -------------------------------------------------- */

/* Copies npix pixels of spp interleaved samples into spp planes. */
static void scatter(unsigned char *planes, size_t plane_bytes, size_t off,
                    const unsigned char *src, size_t npix, int spp, size_t sb)
{
    if (spp == 1) {
        memcpy(planes + off, src, npix * sb);
        return;
    }
    for (int s = 0; s < spp; s++) {
        unsigned char *d = planes + (size_t)s * plane_bytes + off;
        for (size_t i = 0; i < npix; i++)
            memcpy(d + i * sb, src + (i * (size_t)spp + (size_t)s) * sb, sb);
    }
}

static u3d_status read_strips(reader *r, long page, unsigned char *planes,
                              unsigned char *buf, const page_fmt *f)
{
    TIFF *t = r->tif;
    size_t sb = sample_bytes(f), plane_bytes = (size_t)f->w * f->h * sb;
    int sep = f->planar == PLANARCONFIG_SEPARATE && f->spp > 1;
    int nplanes = sep ? f->spp : 1, per = sep ? 1 : f->spp;
    size_t row = (size_t)f->w * (size_t)per * sb;
    uint32_t rps = 0;
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rps);
    if (rps == 0 || rps > f->h)
        rps = f->h;
    uint32_t nstrip = (f->h + rps - 1) / rps;
    if ((uint64_t)TIFFScanlineSize64(t) != row ||
        TIFFNumberOfStrips(t) < (uint64_t)nstrip * (uint64_t)nplanes)
        return fail(r, U3D_ERR_FORMAT, "page %ld: inconsistent strip layout",
                    page);
    for (int p = 0; p < nplanes; p++)
        for (uint32_t i = 0; i < nstrip; i++) {
            uint32_t rows = f->h - i * rps < rps ? f->h - i * rps : rps;
            tmsize_t want = (tmsize_t)(rows * row);
            tmsize_t got = TIFFReadEncodedStrip(t, (uint32_t)p * nstrip + i,
                                                buf, want);
            if (got != want)
                return fail(r, U3D_ERR_FORMAT,
                            "page %ld: cannot decode strip %u (file truncated "
                            "or corrupt?)", page, (uint32_t)p * nstrip + i);
            size_t off = (size_t)i * rps * f->w * sb;
            scatter(planes + (size_t)p * plane_bytes, plane_bytes, off, buf,
                    (size_t)rows * f->w, per, sb);
        }
    return U3D_OK;
}

static u3d_status read_tiles(reader *r, long page, unsigned char *planes,
                             unsigned char *buf, const page_fmt *f)
{
    TIFF *t = r->tif;
    size_t sb = sample_bytes(f), plane_bytes = (size_t)f->w * f->h * sb;
    int sep = f->planar == PLANARCONFIG_SEPARATE && f->spp > 1;
    int nplanes = sep ? f->spp : 1, per = sep ? 1 : f->spp;
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    size_t trow = (size_t)tw * (size_t)per * sb;
    if (!tw || !th || (uint64_t)TIFFTileRowSize64(t) != trow ||
        (uint64_t)TIFFTileSize64(t) != (uint64_t)trow * th)
        return fail(r, U3D_ERR_FORMAT, "page %ld: inconsistent tile layout",
                    page);
    for (int p = 0; p < nplanes; p++)
        for (uint32_t y = 0; y < f->h; y += th)
            for (uint32_t x = 0; x < f->w; x += tw) {
                uint32_t tile = TIFFComputeTile(t, x, y, 0, (uint16_t)p);
                tmsize_t want = (tmsize_t)trow * th;
                if (TIFFReadEncodedTile(t, tile, buf, want) != want)
                    return fail(r, U3D_ERR_FORMAT,
                                "page %ld: cannot decode tile %u (file "
                                "truncated or corrupt?)", page, tile);
                uint32_t rows = f->h - y < th ? f->h - y : th;
                uint32_t cols = f->w - x < tw ? f->w - x : tw;
                for (uint32_t k = 0; k < rows; k++) {
                    size_t off = ((size_t)(y + k) * f->w + x) * sb;
                    scatter(planes + (size_t)p * plane_bytes, plane_bytes, off,
                            buf + k * trow, cols, per, sb);
                }
            }
    return U3D_OK;
}

/* Decoding buffer: the larger of a strip (<= a page) and a tile. */
static u3d_status alloc_buf(reader *r, const page_fmt *f, size_t page_bytes,
                            unsigned char **buf, size_t *cap)
{
    size_t need = page_bytes;
    if (f->tiled) {
        uint64_t ts = TIFFTileSize64(r->tif);
        if (!ts || ts > r->limit)
            return fail(r, U3D_ERR_FORMAT, "implausible tile size %llu bytes",
                        (unsigned long long)ts);
        need = (size_t)ts;
    }
    if (need <= *cap)
        return U3D_OK;
    unsigned char *nb = realloc(*buf, need);
    if (!nb)
        return fail(r, U3D_ERR_OOM, "out of memory for a %zu-byte buffer", need);
    *buf = nb;
    *cap = need;
    return U3D_OK;
}

static float half_to_float(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0    ? ldexpf((float)m, -24)
              : e == 31 ? (m ? NAN : INFINITY)
                        : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

#define CONVERT(T)                                                             \
    for (size_t i = 0; i < n; i++) {                                           \
        T v;                                                                   \
        memcpy(&v, s + i * sizeof v, sizeof v);                                \
        dst[i] = (float)v;                                                     \
    }

static void to_float(const unsigned char *s, size_t n, const page_fmt *f,
                     float *dst)
{
    int fl = f->fmt == SAMPLEFORMAT_IEEEFP, sg = f->fmt == SAMPLEFORMAT_INT;
    switch (f->bps) {
    case 8:
        if (sg) { CONVERT(int8_t) } else { CONVERT(uint8_t) }
        break;
    case 16:
        if (fl) {
            for (size_t i = 0; i < n; i++) {
                uint16_t v;
                memcpy(&v, s + 2 * i, 2);
                dst[i] = half_to_float(v);
            }
        } else if (sg) { CONVERT(int16_t) } else { CONVERT(uint16_t) }
        break;
    case 32:
        if (fl) { CONVERT(float) } else if (sg) { CONVERT(int32_t) } else { CONVERT(uint32_t) }
        break;
    default:
        CONVERT(double)
    }
}

static void note_nonfinite(reader *r, const float *p, size_t n, long c, long z)
{
    if (r->f.fmt != SAMPLEFORMAT_IEEEFP)
        return;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) {
            if (r->nbad++ == 0) {
                r->bad_pos[0] = c;
                r->bad_pos[1] = z;
                r->bad_pos[2] = (long)(i / r->f.w);
                r->bad_pos[3] = (long)(i % r->f.w);
                r->bad_val = p[i];
            }
        }
}

static u3d_status to_labels(reader *r, const unsigned char *s, size_t n,
                            long z, uint16_t *dst)
{
    const page_fmt *f = &r->f;
    int sg = f->fmt == SAMPLEFORMAT_INT;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (f->bps == 8) {
            v = sg ? (int64_t)(int8_t)s[i] : (int64_t)s[i];
        } else if (f->bps == 16) {
            uint16_t u;
            memcpy(&u, s + 2 * i, 2);
            v = sg ? (int64_t)(int16_t)u : (int64_t)u;
        } else {
            uint32_t u;
            memcpy(&u, s + 4 * i, 4);
            v = sg ? (int64_t)(int32_t)u : (int64_t)u;
        }
        if (v < 0 || v > 65535)
            return fail(r, U3D_ERR_FORMAT,
                        "label value %lld at z %ld, y %ld, x %ld is outside "
                        "0..65535", (long long)v, z, (long)(i / f->w),
                        (long)(i % f->w));
        dst[i] = (uint16_t)v;
    }
    return U3D_OK;
}

/* Converts the spp planes of page `page` into the output. */
static u3d_status store_page(reader *r, long page, const unsigned char *planes,
                             void *out)
{
    size_t hw = (size_t)r->f.w * r->f.h, sb = sample_bytes(&r->f);
    long ic = page % r->ic, z = page / r->ic;
    for (int s = 0; s < r->f.spp; s++) {
        long c = ic * r->f.spp + s;
        size_t plane = ((size_t)c * (size_t)r->d + (size_t)z) * hw;
        const unsigned char *src = planes + (size_t)s * hw * sb;
        if (r->labels) {
            u3d_status st = to_labels(r, src, hw, z, (uint16_t *)out + plane);
            if (st)
                return st;
        } else {
            float *dst = (float *)out + plane;
            to_float(src, hw, &r->f, dst);
            note_nonfinite(r, dst, hw, c, z);
        }
    }
    return U3D_OK;
}

static void swab_page(TIFF *t, unsigned char *p, size_t n, int sb)
{
    if (!TIFFIsByteSwapped(t))
        return;
    if (sb == 2)
        TIFFSwabArrayOfShort((uint16_t *)(void *)p, (tmsize_t)n);
    else if (sb == 4)
        TIFFSwabArrayOfLong((uint32_t *)(void *)p, (tmsize_t)n);
    else if (sb == 8)
        TIFFSwabArrayOfLong8((uint64_t *)(void *)p, (tmsize_t)n);
}

static u3d_status read_raw_pages(reader *r, unsigned char *planes, void *out)
{
    size_t hw = (size_t)r->f.w * r->f.h, sb = sample_bytes(&r->f);
    for (long p = 1; p <= r->raw_pages; p++) {
        uint64_t off = r->raw_off + (uint64_t)p * hw * sb;
        if (u3d_tsrc_pread(r->src, off, planes, hw * sb))
            return fail(r, U3D_ERR_IO, "cannot read page %ld at offset %llu",
                        p, (unsigned long long)off);
        swab_page(r->tif, planes, hw, (int)sb);
        u3d_status st = store_page(r, p, planes, out);
        if (st)
            return st;
    }
    return U3D_OK;
}

static u3d_status decode_pages(reader *r, void *out)
{
    size_t page_bytes = (size_t)r->f.w * r->f.h * r->f.spp * sample_bytes(&r->f);
    unsigned char *planes = malloc(page_bytes), *buf = NULL;
    size_t cap = 0;
    u3d_status st = U3D_OK;
    if (!planes)
        return fail(r, U3D_ERR_OOM, "out of memory for one page");
    if (!TIFFSetDirectory(r->tif, 0))
        st = fail(r, U3D_ERR_FORMAT, "cannot re-read page 0");
    for (long page = 0, dir = 0; !st && page < r->npages; dir++) {
        if (dir > 0 && next_dir(r, dir - 1) != 1) {
            st = fail(r, U3D_ERR_FORMAT, "page %ld vanished on re-reading", page);
            break;
        }
        if (skip_page(r))
            continue;
        page_fmt f;
        if ((st = get_fmt(r, page, &f)) || (st = same_fmt(r, page, &f)) ||
            (st = alloc_buf(r, &f, page_bytes, &buf, &cap)))
            break;
        st = f.tiled ? read_tiles(r, page, planes, buf, &f)
                     : read_strips(r, page, planes, buf, &f);
        if (!st)
            st = store_page(r, page, planes, out);
        page++;
    }
    if (!st && r->raw_pages)
        st = read_raw_pages(r, planes, out);
    free(planes);
    free(buf);
    return st;
}

/* ---- entry points ------------------------------------------------------ */

/* Pass 1 and the layout: pages, ImageJ channels and depth, size checks. */
static u3d_status analyse(reader *r)
{
    u3d_status st = scan_pages(r);
    if (!st) {
        if (r->ij.present) {
            st = layout_imagej(r);
        } else {
            r->ic = 1;
            r->d = r->npages;
        }
    }
    if (!st && r->ij.present)
        st = resolve_missing(r); /* before the size: a truncated file says so */
    /* the buffers hold ic * d pages: never decode more than that */
    if (!st && r->npages > r->ic * r->d)
        st = fail(r, U3D_ERR_FORMAT,
                  "has %ld pages but its ImageJ metadata describes %ld",
                  r->npages, r->ic * r->d);
    if (!st)
        st = check_size(r);
    return st;
}

static u3d_status run_reader(reader *r, const u3d_tiff_read_opts *opts,
                             void **data)
{
    r->limit = u3d_mem_limit(opts ? opts->max_bytes : 0);
    r->ic = 1;
    r->tif = u3d_tiff_open_src(r->src, r->name, "rm", &r->msg, r->limit);
    if (!r->tif)
        return fail(r, U3D_ERR_FORMAT, "not a readable TIFF file");
    u3d_status st = analyse(r);
    if (!st) {
        size_t n = (size_t)r->c * r->d * r->f.w * r->f.h;
        *data = malloc(n * (r->labels ? sizeof(uint16_t) : sizeof(float)));
        if (!*data)
            st = fail(r, U3D_ERR_OOM, "out of memory for %zu voxels", n);
    }
    if (!st)
        st = decode_pages(r, *data);
    if (!st && r->nbad)
        st = fail(r, U3D_ERR_NUMERIC,
                  "%zu NaN/Inf value(s) in the float data, the first (%g) at "
                  "channel %ld, z %ld, y %ld, x %ld; clean the data before use",
                  r->nbad, (double)r->bad_val, r->bad_pos[0], r->bad_pos[1],
                  r->bad_pos[2], r->bad_pos[3]);
    TIFFClose(r->tif);
    if (st) {
        free(*data);
        *data = NULL;
    }
    return st;
}

static u3d_status open_file(const char *path, u3d_tsrc *src, u3d_error *err)
{
    struct stat sb;
    memset(src, 0, sizeof *src);
    src->fd = u3d_infile_open(path, err);
    if (src->fd < 0 || fstat(src->fd, &sb)) {
        if (src->fd >= 0)
            close(src->fd);
        return U3D_ERR_IO;
    }
    src->size = (uint64_t)sb.st_size;
    return U3D_OK;
}

static u3d_status read_any(u3d_tsrc *src, const char *name, int labels,
                           const u3d_tiff_read_opts *opts, reader *r,
                           void **data, u3d_error *err)
{
    memset(r, 0, sizeof *r);
    r->name = name ? name : "(memory)";
    r->src = src;
    r->err = err;
    r->labels = labels;
    *data = NULL;
    return run_reader(r, opts, data);
}

static u3d_status volume_from(reader *r, float *data, u3d_status st,
                              u3d_volume *out)
{
    memset(out, 0, sizeof *out);
    if (st)
        return st;
    out->c = (int)r->c;
    out->d = (int)r->d;
    out->h = (int)r->f.h;
    out->w = (int)r->f.w;
    out->data = data;
    memcpy(out->spacing, r->spacing, sizeof out->spacing);
    memcpy(out->unit, r->unit, sizeof out->unit);
    out->bits = r->f.bps;
    out->is_float = r->f.fmt == SAMPLEFORMAT_IEEEFP;
    out->is_signed = r->f.fmt == SAMPLEFORMAT_INT;
    return U3D_OK;
}

static u3d_status labels_from(reader *r, uint16_t *data, u3d_status st,
                              u3d_labels *out)
{
    memset(out, 0, sizeof *out);
    if (st)
        return st;
    out->d = (int)r->d;
    out->h = (int)r->f.h;
    out->w = (int)r->f.w;
    out->data = data;
    memcpy(out->spacing, r->spacing, sizeof out->spacing);
    memcpy(out->unit, r->unit, sizeof out->unit);
    return U3D_OK;
}

/* read_any on the file at path; an open failure leaves *data NULL. */
static u3d_status read_path(const char *path, int labels,
                            const u3d_tiff_read_opts *opts, reader *r,
                            void **data, u3d_error *err)
{
    u3d_tsrc src;
    *data = NULL;
    U3D_TRY(open_file(path, &src, err));
    u3d_status st = read_any(&src, path, labels, opts, r, data, err);
    close(src.fd);
    return st;
}

u3d_status u3d_tiff_read_volume_ex(const char *path,
                                   const u3d_tiff_read_opts *opts,
                                   u3d_volume *out, u3d_error *err)
{
    reader r;
    void *data;
    u3d_status st = read_path(path, 0, opts, &r, &data, err);
    return volume_from(&r, data, st, out);
}

u3d_status u3d_tiff_read_volume(const char *path, u3d_volume *out,
                                u3d_error *err)
{
    return u3d_tiff_read_volume_ex(path, NULL, out, err);
}

u3d_status u3d_tiff_read_volume_mem(const void *buf, size_t len,
                                    const char *name,
                                    const u3d_tiff_read_opts *opts,
                                    u3d_volume *out, u3d_error *err)
{
    u3d_tsrc src = {-1, (const unsigned char *)buf, len, 0};
    reader r;
    void *data = NULL;
    u3d_status st = read_any(&src, name, 0, opts, &r, &data, err);
    return volume_from(&r, data, st, out);
}

u3d_status u3d_tiff_read_labels_ex(const char *path,
                                   const u3d_tiff_read_opts *opts,
                                   u3d_labels *out, u3d_error *err)
{
    reader r;
    void *data;
    u3d_status st = read_path(path, 1, opts, &r, &data, err);
    return labels_from(&r, data, st, out);
}

u3d_status u3d_tiff_read_labels(const char *path, u3d_labels *out,
                                u3d_error *err)
{
    return u3d_tiff_read_labels_ex(path, NULL, out, err);
}

u3d_status u3d_tiff_read_labels_mem(const void *buf, size_t len,
                                    const char *name,
                                    const u3d_tiff_read_opts *opts,
                                    u3d_labels *out, u3d_error *err)
{
    u3d_tsrc src = {-1, (const unsigned char *)buf, len, 0};
    reader r;
    void *data = NULL;
    u3d_status st = read_any(&src, name, 1, opts, &r, &data, err);
    return labels_from(&r, data, st, out);
}

/* ---- plane streaming ---------------------------------------------------
 * The same validation pass as above, then pages decoded on demand, one Z
 * plane (all channels) at a time: volumes larger than host memory. */

struct u3d_tiff_stream {
    reader r;
    u3d_tsrc src;
    u3d_error *err; /* the caller's, per call */
    long *dir;      /* directory index of each page with its own directory */
    unsigned char *planes, *buf;
    size_t cap;
};

/* Directory index of every full-resolution page (thumbnails skipped). */
static u3d_status map_dirs(u3d_tiff_stream *s)
{
    reader *r = &s->r;
    s->dir = malloc((size_t)r->npages * sizeof *s->dir);
    if (!s->dir)
        return fail(r, U3D_ERR_OOM, "out of memory for the page index");
    if (!TIFFSetDirectory(r->tif, 0))
        return fail(r, U3D_ERR_FORMAT, "cannot re-read page 0");
    for (long page = 0, dir = 0; page < r->npages; dir++) {
        if (dir > 0 && next_dir(r, dir - 1) != 1)
            return fail(r, U3D_ERR_FORMAT, "page %ld vanished on re-reading",
                        page);
        if (!skip_page(r))
            s->dir[page++] = dir;
    }
    return U3D_OK;
}

u3d_status u3d_tiff_stream_open(const char *path, u3d_tiff_stream **out,
                                u3d_volume *shape, u3d_error *err)
{
    *out = NULL;
    memset(shape, 0, sizeof *shape);
    u3d_tiff_stream *s = calloc(1, sizeof *s);
    if (!s)
        return u3d_seterr(err, U3D_ERR_OOM, "%s: out of memory", path);
    reader *r = &s->r;
    r->name = path;
    r->src = &s->src;
    r->err = err;
    r->ic = 1;
    r->limit = SIZE_MAX; /* planes, not the volume, are held in memory */
    u3d_status st = open_file(path, &s->src, err);
    if (st) {
        free(s);
        return st;
    }
    r->tif = u3d_tiff_open_src(r->src, path, "rm", &r->msg, u3d_mem_limit(0));
    if (!r->tif)
        st = fail(r, U3D_ERR_FORMAT, "not a readable TIFF file");
    if (!st)
        st = analyse(r);
    if (!st)
        st = map_dirs(s);
    size_t page_bytes = (size_t)r->f.w * r->f.h * r->f.spp * sample_bytes(&r->f);
    if (!st && !(s->planes = malloc(page_bytes)))
        st = fail(r, U3D_ERR_OOM, "out of memory for one page");
    if (st) {
        u3d_tiff_stream_close(s);
        return st;
    }
    float *none = NULL;
    volume_from(r, none, U3D_OK, shape);
    *out = s;
    return U3D_OK;
}

/* Decodes page `page` (in ImageJ order) into s->planes. */
static u3d_status stream_page(u3d_tiff_stream *s, long page)
{
    reader *r = &s->r;
    size_t hw = (size_t)r->f.w * r->f.h, sb = sample_bytes(&r->f);
    if (page >= r->npages) { /* ImageJ > 4 GB: raw data after page 0 */
        uint64_t off = r->raw_off + (uint64_t)page * hw * sb;
        if (u3d_tsrc_pread(r->src, off, s->planes, hw * sb))
            return fail(r, U3D_ERR_IO, "cannot read page %ld at offset %llu",
                        page, (unsigned long long)off);
        swab_page(r->tif, s->planes, hw, (int)sb);
        return U3D_OK;
    }
    if (!TIFFSetDirectory(r->tif, (tdir_t)s->dir[page]))
        return fail(r, U3D_ERR_FORMAT, "cannot re-read page %ld", page);
    page_fmt f;
    u3d_status st;
    size_t page_bytes = hw * r->f.spp * sb;
    if ((st = get_fmt(r, page, &f)) || (st = same_fmt(r, page, &f)) ||
        (st = alloc_buf(r, &f, page_bytes, &s->buf, &s->cap)))
        return st;
    return f.tiled ? read_tiles(r, page, s->planes, s->buf, &f)
                   : read_strips(r, page, s->planes, s->buf, &f);
}

u3d_status u3d_tiff_stream_read_rows(u3d_tiff_stream *s, int z, int y0,
                                     int ny, float *dst, u3d_error *err)
{
    reader *r = &s->r;
    r->err = err;
    if (z < 0 || z >= r->d || y0 < 0 || ny < 1 || (uint32_t)y0 + ny > r->f.h)
        return fail(r, U3D_ERR_INVALID_ARG,
                    "rows %d..%d of plane %d requested from %ld planes of %u "
                    "rows", y0, y0 + ny - 1, z, r->d, r->f.h);
    size_t hw = (size_t)r->f.w * r->f.h, sb = sample_bytes(&r->f);
    size_t n = (size_t)ny * r->f.w, off = (size_t)y0 * r->f.w * sb;
    for (long ic = 0; ic < r->ic; ic++) {
        u3d_status st = stream_page(s, (long)z * r->ic + ic);
        if (st)
            return st;
        for (int k = 0; k < r->f.spp; k++) {
            long c = ic * r->f.spp + k;
            float *o = dst + (size_t)c * n;
            to_float(s->planes + (size_t)k * hw * sb + off, n, &r->f, o);
            size_t before = r->nbad;
            note_nonfinite(r, o, n, c, z);
            if (!before && r->nbad)
                r->bad_pos[2] += y0; /* rows of the window -> of the plane */
        }
    }
    if (r->nbad)
        return fail(r, U3D_ERR_NUMERIC,
                    "NaN/Inf value(s) in the float data, the first (%g) at "
                    "channel %ld, z %ld, y %ld, x %ld; clean the data before "
                    "use", (double)r->bad_val, r->bad_pos[0], r->bad_pos[1],
                    r->bad_pos[2], r->bad_pos[3]);
    return U3D_OK;
}

u3d_status u3d_tiff_stream_read(u3d_tiff_stream *s, int z, float *dst,
                                u3d_error *err)
{
    return u3d_tiff_stream_read_rows(s, z, 0, (int)s->r.f.h, dst, err);
}

void u3d_tiff_stream_close(u3d_tiff_stream *s)
{
    if (!s)
        return;
    if (s->r.tif)
        TIFFClose(s->r.tif);
    if (s->src.fd >= 0)
        close(s->src.fd);
    free(s->dir);
    free(s->planes);
    free(s->buf);
    free(s);
}
