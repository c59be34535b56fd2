/* The .u3d container (format in include/unet3d/checkpoint.h). */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "unet3d/checkpoint.h"
#include "core/files.h"

static const char MAGIC[8] = {'U', '3', 'D', 'M', 'O', 'D', 'E', 'L'};
static const char ENDMARK[8] = {'U', '3', 'D', '-', 'E', 'N', 'D', '!'};

uint32_t u3d_crc32(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void u3d_ckpt_init(u3d_ckpt *c) { memset(c, 0, sizeof *c); }

void u3d_ckpt_free(u3d_ckpt *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->ntensors; i++)
        free(c->tensors[i].data);
    free(c->tensors);
    free(c->meta);
    memset(c, 0, sizeof *c);
}

u3d_status u3d_ckpt_meta_set(u3d_ckpt *c, const char *key, u3d_error *err,
                             const char *fmt, ...)
{
    char val[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    if (strchr(key, ' ') || strchr(key, '\n') || strchr(val, '\n'))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "checkpoint metadata '%s' must be one line and the "
                          "key without spaces",
                          key);
    size_t old = c->meta ? strlen(c->meta) : 0;
    size_t add = strlen(key) + 1 + strlen(val) + 1;
    char *m = realloc(c->meta, old + add + 1);
    if (!m)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    snprintf(m + old, add + 1, "%s %s\n", key, val);
    c->meta = m;
    return U3D_OK;
}

const char *u3d_ckpt_meta_get(const u3d_ckpt *c, const char *key, char *buf,
                              size_t len)
{
    size_t kl = strlen(key);
    for (const char *p = c->meta; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll > kl && !strncmp(p, key, kl) && p[kl] == ' ') {
            size_t vl = ll - kl - 1;
            if (vl >= len)
                vl = len - 1;
            memcpy(buf, p + kl + 1, vl);
            buf[vl] = 0;
            return buf;
        }
        p = nl ? nl + 1 : p + ll;
    }
    return NULL;
}

/* Appends a tensor record taking ownership of data (may be NULL). */
static u3d_status add_owned(u3d_ckpt *c, const char *name, u3d_shape shape,
                            float *data, u3d_error *err)
{
    u3d_ckpt_tensor *t = realloc(c->tensors, (c->ntensors + 1) * sizeof *t);
    if (!t) {
        free(data);
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    c->tensors = t;
    t = &c->tensors[c->ntensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->shape = shape;
    t->data = data;
    return U3D_OK;
}

u3d_status u3d_ckpt_add(u3d_ckpt *c, const char *name, u3d_shape shape,
                        const float *data, u3d_error *err)
{
    size_t n = u3d_shape_count(shape);
    if (strlen(name) >= sizeof c->tensors[0].name || n == 0)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "checkpoint tensor '%s': name too long or empty shape",
                          name);
    float *copy = malloc(n * sizeof(float));
    if (!copy)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    memcpy(copy, data, n * sizeof(float));
    return add_owned(c, name, shape, copy, err);
}

const u3d_ckpt_tensor *u3d_ckpt_find(const u3d_ckpt *c, const char *name)
{
    for (int i = 0; i < c->ntensors; i++)
        if (!strcmp(c->tensors[i].name, name))
            return &c->tensors[i];
    return NULL;
}

/* Buffered writer that keeps the running CRC. */
typedef struct wr {
    FILE *f;
    uint32_t crc;
    int ok;
} wr;

static void put(wr *w, const void *p, size_t n)
{
    if (w->ok && fwrite(p, 1, n, w->f) != n)
        w->ok = 0;
    w->crc = u3d_crc32(w->crc, p, n);
}

static void put_u16(wr *w, uint16_t v)
{
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(w, b, 2);
}

static void put_u32(wr *w, uint32_t v)
{
    unsigned char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(w, b, 4);
}

static void put_u64(wr *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

u3d_status u3d_ckpt_write(const char *path, const u3d_ckpt *c, u3d_error *err)
{
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, path, err));
    wr w = {u3d_outfile_stream(&o, err), 0, 1};
    if (!w.f) {
        u3d_outfile_abort(&o);
        return U3D_ERR_IO;
    }
    size_t ml = c->meta ? strlen(c->meta) : 0;
    put(&w, MAGIC, 8);
    put_u32(&w, U3D_CKPT_VERSION);
    put_u32(&w, 0);
    put_u64(&w, ml);
    put(&w, c->meta, ml);
    put_u32(&w, (uint32_t)c->ntensors);
    for (int i = 0; i < c->ntensors && w.ok; i++) {
        const u3d_ckpt_tensor *t = &c->tensors[i];
        uint16_t nl = (uint16_t)strlen(t->name);
        put_u16(&w, nl);
        put(&w, t->name, nl);
        put_u32(&w, 0);
        const int dims[5] = {t->shape.n, t->shape.c, t->shape.d, t->shape.h,
                             t->shape.w};
        for (int k = 0; k < 5; k++)
            put_u32(&w, (uint32_t)dims[k]);
        /* float32 little-endian: the host order on every supported CPU */
        put(&w, t->data, u3d_shape_count(t->shape) * sizeof(float));
    }
    uint32_t crc = w.crc;
    put_u32(&w, crc);
    put(&w, ENDMARK, 8);
    if (!w.ok) {
        u3d_outfile_abort(&o);
        return u3d_seterr(err, U3D_ERR_IO, "%s: write failed: %m", path);
    }
    return u3d_outfile_commit(&o, err);
}

/* Streaming reader over [0, len) of the file with bounds checks: a model
 * is read tensor by tensor, never whole (the paper network's file with its
 * momentum buffers is 145 MiB, which a laptop's predict should not hold
 * twice). */
typedef struct rd {
    FILE *f;
    uint64_t len, pos;
    int ok, io; /* io: a read failed (not a format error) */
} rd;

static int take(rd *r, void *dst, uint64_t n)
{
    if (!r->ok || n > r->len - r->pos) {
        r->ok = 0;
        return 0;
    }
    if (n && fread(dst, 1, (size_t)n, r->f) != (size_t)n) {
        r->ok = 0;
        r->io = 1;
        return 0;
    }
    r->pos += n;
    return 1;
}

static int skip(rd *r, uint64_t n)
{
    if (!r->ok || n > r->len - r->pos) {
        r->ok = 0;
        return 0;
    }
    if (fseeko(r->f, (off_t)(r->pos + n), SEEK_SET)) {
        r->ok = 0;
        r->io = 1;
        return 0;
    }
    r->pos += n;
    return 1;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

static uint32_t get_u32(rd *r)
{
    unsigned char b[4];
    return take(r, b, 4) ? le32(b) : 0;
}

/* CRC-32 of bytes [0, n) of f, streamed; 0 on a read error. */
static int crc_of(FILE *f, uint64_t n, uint32_t *crc)
{
    static const size_t CHUNK = 1 << 20;
    unsigned char *b = malloc(CHUNK);
    int ok = b && !fseeko(f, 0, SEEK_SET);
    *crc = 0;
    while (ok && n) {
        size_t k = n < CHUNK ? (size_t)n : CHUNK;
        ok = fread(b, 1, k, f) == k;
        if (ok)
            *crc = u3d_crc32(*crc, b, k);
        n -= k;
    }
    free(b);
    return ok;
}

u3d_status u3d_ckpt_read(const char *path, u3d_ckpt *c, u3d_error *err)
{
    return u3d_ckpt_read_some(path, NULL, NULL, c, err);
}

u3d_status u3d_ckpt_read_some(const char *path,
                              int (*keep)(const char *name, void *user),
                              void *user, u3d_ckpt *c, u3d_error *err)
{
    u3d_ckpt_init(c);
    FILE *f = u3d_infile_fopen(path, err);
    if (!f)
        return U3D_ERR_IO;
    u3d_status st = U3D_OK;
    rd r = {f, 0, 0, 1, 0};
    off_t end = -1;
    if (!fseeko(f, 0, SEEK_END))
        end = ftello(f);
    if (end < 0 || fseeko(f, 0, SEEK_SET)) {
        fclose(f);
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot read", path);
    }
    uint64_t len = (uint64_t)end;
#define BAD(...)                                                               \
    do {                                                                       \
        st = u3d_seterr(err, U3D_ERR_FORMAT, __VA_ARGS__);                     \
        goto done;                                                             \
    } while (0)
#define IOFAIL()                                                               \
    do {                                                                       \
        st = u3d_seterr(err, U3D_ERR_IO, "%s: cannot read the file", path);    \
        goto done;                                                             \
    } while (0)
    unsigned char head[8], tail[12];
    r.len = len;
    if (len < 8 + 8 + 8 + 4 + 4 + 8)
        BAD("%s: not a unet3d model/checkpoint (.u3d) file", path);
    if (!take(&r, head, 8))
        IOFAIL();
    if (memcmp(head, MAGIC, 8))
        BAD("%s: not a unet3d model/checkpoint (.u3d) file", path);
    if (fseeko(f, (off_t)(len - 12), SEEK_SET) || fread(tail, 1, 12, f) != 12)
        IOFAIL();
    if (memcmp(tail + 4, ENDMARK, 8))
        BAD("%s: truncated checkpoint (end marker missing): the file was cut "
            "short; use an earlier checkpoint",
            path);
    uint32_t crc;
    if (!crc_of(f, len - 12, &crc))
        IOFAIL();
    if (crc != le32(tail))
        BAD("%s: checksum mismatch: the checkpoint is corrupt", path);
    /* the checksum holds: parse [8, len - 12) */
    r.len = len - 12;
    if (fseeko(f, 8, SEEK_SET))
        IOFAIL();
    uint32_t ver = get_u32(&r);
    get_u32(&r);
    if (ver > U3D_CKPT_VERSION || ver == 0)
        BAD("%s: checkpoint format version %u; this unet3d reads up to %d "
            "(update unet3d)",
            path, ver, U3D_CKPT_VERSION);
    uint64_t ml = get_u32(&r);
    ml |= (uint64_t)get_u32(&r) << 32;
    if (!r.ok || ml > r.len - r.pos)
        BAD("%s: inconsistent metadata length", path);
    c->meta = malloc((size_t)ml + 1);
    if (!c->meta) {
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        goto done;
    }
    if (!take(&r, c->meta, ml))
        IOFAIL();
    c->meta[ml] = 0;
    uint32_t nt = get_u32(&r);
    if (!r.ok || nt > 100000)
        BAD("%s: inconsistent tensor count", path);
    for (uint32_t i = 0; i < nt; i++) {
        unsigned char nb[2] = {0, 0};
        char nm[64];
        take(&r, nb, 2);
        size_t nl = (size_t)(nb[0] | nb[1] << 8);
        if (r.ok && nl > 0 && nl < 64)
            take(&r, nm, nl);
        uint32_t dt = get_u32(&r);
        uint32_t dims[5];
        for (int k = 0; k < 5; k++)
            dims[k] = get_u32(&r);
        if (r.io)
            IOFAIL();
        if (!r.ok || nl == 0 || nl >= 64 || dt != 0)
            BAD("%s: tensor %u has a bad header", path, i);
        nm[nl] = 0;
        uint64_t cnt = 1;
        for (int k = 0; k < 5; k++) {
            if (dims[k] == 0 || dims[k] > 0x7fffffffu)
                BAD("%s: tensor %u has a bad shape", path, i);
            cnt *= dims[k];
            if (cnt > (r.len - r.pos) / 4)
                BAD("%s: tensor %u is larger than the file", path, i);
        }
        u3d_shape s = u3d_shape5((int)dims[0], (int)dims[1], (int)dims[2],
                                 (int)dims[3], (int)dims[4]);
        float *data = NULL;
        if (!keep || keep(nm, user)) {
            /* the file is little-endian float32, as every supported host */
            data = malloc((size_t)cnt * 4);
            if (!data) {
                st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory for "
                                "tensor %s", nm);
                goto done;
            }
            if (!take(&r, data, cnt * 4)) {
                free(data);
                IOFAIL();
            }
        } else if (!skip(&r, cnt * 4)) {
            IOFAIL();
        }
        if ((st = add_owned(c, nm, s, data, err)))
            goto done;
    }
    if (r.pos != r.len)
        BAD("%s: trailing bytes after the last tensor", path);
#undef BAD
#undef IOFAIL
done:
    fclose(f);
    if (st)
        u3d_ckpt_free(c);
    return st;
}
