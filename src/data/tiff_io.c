#define _POSIX_C_SOURCE 200809L
#include "data/tiff_io.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !TIFFLIB_AT_LEAST(4, 5, 0)
#error "unet3d needs libtiff >= 4.5.0 (per-handle error handlers, TIFFOpenOptions)"
#endif

/* ---- client procedures over u3d_tsrc ---------------------------------- */

static tmsize_t src_read(thandle_t h, void *buf, tmsize_t n)
{
    u3d_tsrc *s = (u3d_tsrc *)h;
    if (n <= 0)
        return 0;
    if (s->fd < 0) {
        uint64_t left = s->pos < s->size ? s->size - s->pos : 0;
        size_t k = (uint64_t)n < left ? (size_t)n : (size_t)left;
        if (k)
            memcpy(buf, s->mem + s->pos, k);
        s->pos += k;
        return (tmsize_t)k;
    }
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t r = read(s->fd, (char *)buf + done, (size_t)n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    return (tmsize_t)done;
}

static tmsize_t src_write(thandle_t h, void *buf, tmsize_t n)
{
    u3d_tsrc *s = (u3d_tsrc *)h;
    if (s->fd < 0 || n < 0)
        return -1;
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t r = write(s->fd, (const char *)buf + done, (size_t)n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return done ? (tmsize_t)done : -1;
        done += (size_t)r;
    }
    return (tmsize_t)done;
}

static toff_t src_seek(thandle_t h, toff_t off, int whence)
{
    u3d_tsrc *s = (u3d_tsrc *)h;
    if (s->fd >= 0) {
        off_t r = lseek(s->fd, (off_t)off, whence);
        return r < 0 ? (toff_t)-1 : (toff_t)r;
    }
    uint64_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->size : 0;
    /* libtiff passes negative offsets as large unsigned values */
    s->pos = base + off;
    return s->pos;
}

static int src_close(thandle_t h)
{
    (void)h; /* the caller owns the descriptor */
    return 0;
}

static toff_t src_size(thandle_t h)
{
    u3d_tsrc *s = (u3d_tsrc *)h;
    if (s->fd >= 0) {
        off_t cur = lseek(s->fd, 0, SEEK_CUR);
        off_t end = lseek(s->fd, 0, SEEK_END);
        if (cur >= 0)
            lseek(s->fd, cur, SEEK_SET);
        return end < 0 ? 0 : (toff_t)end;
    }
    return s->size;
}

static int src_map(thandle_t h, void **base, toff_t *size)
{
    (void)h;
    (void)base;
    (void)size;
    return 0; /* no mapping: libtiff reads through src_read */
}

static void src_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h;
    (void)base;
    (void)size;
}

int u3d_tsrc_pread(u3d_tsrc *src, uint64_t off, void *buf, size_t len)
{
    if (off > src->size || len > src->size - off)
        return -1;
    if (src->fd < 0) {
        memcpy(buf, src->mem + off, len);
        return 0;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(src->fd, (char *)buf + done, len - done,
                          (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

/* ---- messages --------------------------------------------------------- */

static int on_error(TIFF *tif, void *ud, const char *module, const char *fmt,
                    va_list ap)
{
    (void)tif;
    (void)module;
    u3d_tmsg *m = (u3d_tmsg *)ud;
    if (m && m->count++ == 0) {
        vsnprintf(m->first, sizeof m->first, fmt, ap);
        for (char *p = m->first; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
    return 1; /* handled: keep libtiff from printing */
}

static int on_warning(TIFF *tif, void *ud, const char *module, const char *fmt,
                      va_list ap)
{
    (void)tif;
    (void)ud;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1; /* warnings (unknown ImageJ tags...) are noise for users */
}

static TIFFOpenOptions *make_opts(u3d_tmsg *msg, size_t max_alloc)
{
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o)
        return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, msg);
    TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, msg);
    if (max_alloc)
        TIFFOpenOptionsSetMaxSingleMemAlloc(
            o, max_alloc > (size_t)INT64_MAX ? INT64_MAX : (tmsize_t)max_alloc);
    return o;
}

TIFF *u3d_tiff_open_src(u3d_tsrc *src, const char *name, const char *mode,
                        u3d_tmsg *msg, size_t max_alloc)
{
    TIFFOpenOptions *o = make_opts(msg, max_alloc);
    if (!o) {
        snprintf(msg->first, sizeof msg->first, "out of memory");
        msg->count++;
        return NULL;
    }
    /* src must outlive the handle: libtiff keeps the pointer */
    TIFF *t = TIFFClientOpenExt(name, mode, (thandle_t)src, src_read, src_write,
                                src_seek, src_close, src_size, src_map,
                                src_unmap, o);
    TIFFOpenOptionsFree(o);
    return t;
}

const char *u3d_tmsg_suffix(const u3d_tmsg *m, const char *name, char *buf,
                            size_t len)
{
    if (!m || !m->count) {
        snprintf(buf, len, "%s", "");
        return buf;
    }
    const char *t = m->first;
    size_t n = name ? strlen(name) : 0;
    if (n && !strncmp(t, name, n) && !strncmp(t + n, ": ", 2))
        t += n + 2;
    snprintf(buf, len, " (libtiff: %s)", t);
    return buf;
}

u3d_status u3d_tmsg_fail(u3d_error *err, u3d_status code, const char *name,
                         const u3d_tmsg *m, const char *fmt, va_list ap)
{
    char what[700], sfx[600];
    vsnprintf(what, sizeof what, fmt, ap);
    return u3d_seterr(err, code, "%s: %s%s", name, what,
                      u3d_tmsg_suffix(m, name, sfx, sizeof sfx));
}

const char *u3d_human_bytes(double bytes, char *buf, size_t len)
{
    static const char *unit[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
    int i = 0;
    while (bytes >= 1000 && i < 6)
        bytes /= 1000, i++;
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", bytes, unit[i]);
    return buf;
}

/* ---- ImageJ description ----------------------------------------------- */

void u3d_unit_canon(const char *in, char out[16])
{
    static const char *micro[] = {"micron", "microns", "\\u00B5m", "\\u00b5m",
                                  "\xC2\xB5m", "\xCE\xBCm", "um"};
    for (size_t i = 0; i < sizeof micro / sizeof micro[0]; i++)
        if (!strcmp(in, micro[i])) {
            snprintf(out, 16, "um");
            return;
        }
    if (!strcmp(in, "pixel") || !strcmp(in, "pixels"))
        in = "";
    snprintf(out, 16, "%s", in);
}

static int parse_count(const char *key, const char *val, long *out, char *why,
                       size_t len)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    while (*end == ' ' || *end == '\r' || *end == '\t')
        end++;
    if (errno || end == val || *end || v <= 0 || v > 1000000000L) {
        snprintf(why, len, "ImageJ metadata %s=%.40s is not a positive integer",
                 key, val);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_line(const char *line, u3d_imagej *ij, char *why, size_t len)
{
    const char *eq = strchr(line, '=');
    if (!eq)
        return 0;
    char key[32];
    size_t kl = (size_t)(eq - line);
    if (kl >= sizeof key)
        return 0;
    memcpy(key, line, kl);
    key[kl] = 0;
    const char *val = eq + 1;
    if (!strcmp(key, "images"))
        return parse_count(key, val, &ij->images, why, len);
    if (!strcmp(key, "channels"))
        return parse_count(key, val, &ij->channels, why, len);
    if (!strcmp(key, "slices"))
        return parse_count(key, val, &ij->slices, why, len);
    if (!strcmp(key, "frames"))
        return parse_count(key, val, &ij->frames, why, len);
    if (!strcmp(key, "spacing")) {
        char *end;
        double s = strtod(val, &end);
        if (end != val && isfinite(s) && s > 0)
            ij->spacing = s; /* a meaningless spacing is ignored, not fatal */
        return 0;
    }
    if (!strcmp(key, "unit")) {
        char u[16];
        snprintf(u, sizeof u, "%s", val);
        u[strcspn(u, "\r")] = 0;
        u3d_unit_canon(u, ij->unit);
    }
    return 0;
}

int u3d_imagej_parse(const char *desc, u3d_imagej *ij, char *why, size_t len)
{
    memset(ij, 0, sizeof *ij);
    if (!desc || strncmp(desc, "ImageJ=", 7))
        return 0;
    ij->present = 1;
    const char *p = desc;
    while (*p) {
        size_t n = strcspn(p, "\n");
        char line[256];
        size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
        memcpy(line, p, k);
        line[k] = 0;
        if (parse_line(line, ij, why, len))
            return -1;
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

/* ---- sizes ------------------------------------------------------------ */

size_t u3d_mul_sz(size_t a, size_t b)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    return a * b;
}

size_t u3d_mem_limit(size_t max_bytes)
{
    if (max_bytes)
        return max_bytes;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0)
        return SIZE_MAX / 2;
    size_t m = u3d_mul_sz((size_t)pages, (size_t)psz);
    return m ? m : SIZE_MAX / 2;
}
