/* Zarr v2 and v3 arrays and OME-Zarr images (a folder per array).
 *
 * Reading: .zarray (v2) or zarr.json (v3) parsed with libcjson; a group
 * resolves to its OME-Zarr multiscales level 0 (its scale transform gives
 * the spacing, the axes the unit), else its "raw"/"label" array, else its
 * only array. Codecs: raw, zlib, gzip, zstd, blosc (and v3 crc32c, not
 * verified); sharding and transposes are refused. Planes are read
 * chunk-wise: the chunks holding a plane's Z range (one "slab", chunk
 * depth x C x H x W floats) are decoded once and kept until a plane
 * outside it is asked for.
 *
 * Writing: an OME-Zarr v0.4 image (Zarr v2, the most widely read) with one
 * scale level "0": axes (c,) z, y, x, chunks of one plane (up to 512 x 512
 * rows and columns, all channels), zlib-compressed, '/' separated keys.
 * The folder is written as TARGET.tmp-PID-N and renamed into place at the
 * end; a previous folder of that name is replaced. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <blosc.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "data/tiff_io.h"
#include "core/files.h"
#include "data/vio_impl.h"
#include "data/zarr_meta.h"

/* ---- metadata ------------------------------------------------------------ */

static int fail(char *why, size_t n, const char *fmt, ...) U3D_PRINTF(3, 4);
static int fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    u3d_msg_oneline(why); /* it may quote the metadata */
    return -1;
}

static int int_array(const cJSON *a, int64_t *out, int max, int *n)
{
    if (!cJSON_IsArray(a))
        return -1;
    int k = cJSON_GetArraySize(a);
    if (k < 1 || k > max)
        return -1;
    for (int i = 0; i < k; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 ||
            e->valuedouble > 9.0e15 || e->valuedouble != floor(e->valuedouble))
            return -1;
        out[i] = (int64_t)e->valuedouble;
    }
    *n = k;
    return 0;
}

static int codec_id(const char *s)
{
    if (!strcmp(s, "zlib"))
        return U3D_ZC_ZLIB;
    if (!strcmp(s, "gzip"))
        return U3D_ZC_GZIP;
    if (!strcmp(s, "zstd"))
        return U3D_ZC_ZSTD;
    if (!strcmp(s, "blosc"))
        return U3D_ZC_BLOSC;
    return -1;
}

static int v3_type(const char *s, int *t, int *size)
{
    static const struct {
        const char *n;
        int t, s;
    } k[] = {{"uint8", U3D_ZT_U8, 1},     {"int8", U3D_ZT_I8, 1},
             {"uint16", U3D_ZT_U16, 2},   {"int16", U3D_ZT_I16, 2},
             {"uint32", U3D_ZT_U32, 4},   {"int32", U3D_ZT_I32, 4},
             {"uint64", U3D_ZT_U64, 8},   {"int64", U3D_ZT_I64, 8},
             {"float32", U3D_ZT_F32, 4},  {"float64", U3D_ZT_F64, 8}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        if (!strcmp(s, k[i].n)) {
            *t = k[i].t, *size = k[i].s;
            return 0;
        }
    return -1;
}

/* "<f4", "|u1", ">i2" */
static int v2_type(const char *s, int *t, int *size, int *big)
{
    if (strlen(s) != 3 || (s[0] != '<' && s[0] != '>' && s[0] != '|'))
        return -1;
    *big = s[0] == '>';
    int n = s[2] - '0';
    char k = s[1];
    if (k == 'f' && n == 4)
        *t = U3D_ZT_F32;
    else if (k == 'f' && n == 8)
        *t = U3D_ZT_F64;
    else if ((k == 'u' || k == 'i') && (n == 1 || n == 2 || n == 4 || n == 8)) {
        static const int u[9] = {0, U3D_ZT_U8, U3D_ZT_U16, 0, U3D_ZT_U32,
                                 0, 0, 0, U3D_ZT_U64};
        static const int i[9] = {0, U3D_ZT_I8, U3D_ZT_I16, 0, U3D_ZT_I32,
                                 0, 0, 0, U3D_ZT_I64};
        *t = k == 'u' ? u[n] : i[n];
    } else
        return -1;
    *size = n;
    return 0;
}

static double fill_value(const cJSON *f)
{
    if (cJSON_IsNumber(f))
        return f->valuedouble;
    if (cJSON_IsString(f) && !strcmp(f->valuestring, "NaN"))
        return NAN;
    return 0;
}

static int parse_v2(const cJSON *j, u3d_zarr_meta *m, char *why, size_t wn)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (!cJSON_IsString(dt) ||
        v2_type(dt->valuestring, &m->type, &m->size, &m->big_endian))
        return fail(why, wn, "unsupported dtype (integers and floats of "
                             "1-8 bytes are read)");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "order");
    if (cJSON_IsString(o) && strcmp(o->valuestring, "C"))
        return fail(why, wn, "order \"%s\": only C order is read",
                    o->valuestring);
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(j, "filters");
    if (fl && !cJSON_IsNull(fl) &&
        !(cJSON_IsArray(fl) && cJSON_GetArraySize(fl) == 0))
        return fail(why, wn, "filters are not supported");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "compressor");
    if (c && !cJSON_IsNull(c)) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
        int k = cJSON_IsString(id) ? codec_id(id->valuestring) : -1;
        if (k < 0)
            return fail(why, wn, "compressor %s not supported (zlib, gzip, "
                                 "zstd, blosc are)",
                        cJSON_IsString(id) ? id->valuestring : "?");
        m->codec[m->ncodecs++] = k;
    }
    const cJSON *sep = cJSON_GetObjectItemCaseSensitive(j, "dimension_separator");
    m->sep = '.';
    if (cJSON_IsString(sep) && !strcmp(sep->valuestring, "/"))
        m->sep = '/';
    m->fill = fill_value(cJSON_GetObjectItemCaseSensitive(j, "fill_value"));
    int n1, n2;
    if (int_array(cJSON_GetObjectItemCaseSensitive(j, "shape"), m->shape, 5,
                  &n1) ||
        int_array(cJSON_GetObjectItemCaseSensitive(j, "chunks"), m->chunks, 5,
                  &n2) ||
        n1 != n2)
        return fail(why, wn, "bad shape or chunks");
    m->rank = n1;
    return 0;
}

static int parse_v3(const cJSON *j, u3d_zarr_meta *m, char *why, size_t wn)
{
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(j, "node_type");
    if (!cJSON_IsString(nt) || strcmp(nt->valuestring, "array"))
        return fail(why, wn, "not an array (node_type)");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "data_type");
    if (!cJSON_IsString(dt) || v3_type(dt->valuestring, &m->type, &m->size))
        return fail(why, wn, "unsupported data_type (integers and floats "
                             "are read)");
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(j, "chunk_grid");
    const cJSON *gn = cJSON_GetObjectItemCaseSensitive(grid, "name");
    if (!cJSON_IsString(gn) || strcmp(gn->valuestring, "regular"))
        return fail(why, wn, "only regular chunk grids are read");
    const cJSON *gc = cJSON_GetObjectItemCaseSensitive(grid, "configuration");
    int n1, n2;
    if (int_array(cJSON_GetObjectItemCaseSensitive(j, "shape"), m->shape, 5,
                  &n1) ||
        int_array(cJSON_GetObjectItemCaseSensitive(gc, "chunk_shape"),
                  m->chunks, 5, &n2) ||
        n1 != n2)
        return fail(why, wn, "bad shape or chunk_shape");
    m->rank = n1;
    const cJSON *ke = cJSON_GetObjectItemCaseSensitive(j, "chunk_key_encoding");
    const cJSON *kn = cJSON_GetObjectItemCaseSensitive(ke, "name");
    const cJSON *ks = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ke, "configuration"), "separator");
    int v2keys = cJSON_IsString(kn) && !strcmp(kn->valuestring, "v2");
    m->v3_prefix = !v2keys;
    m->sep = v2keys ? '.' : '/';
    if (cJSON_IsString(ks))
        m->sep = !strcmp(ks->valuestring, ".") ? '.' : '/';
    m->fill = fill_value(cJSON_GetObjectItemCaseSensitive(j, "fill_value"));
    const cJSON *codecs = cJSON_GetObjectItemCaseSensitive(j, "codecs");
    if (!cJSON_IsArray(codecs))
        return fail(why, wn, "no codecs");
    int seen_bytes = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, codecs)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!cJSON_IsString(name))
            return fail(why, wn, "a codec without a name");
        const char *s = name->valuestring;
        if (!strcmp(s, "bytes")) {
            const cJSON *en = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(c, "configuration"),
                "endian");
            m->big_endian = cJSON_IsString(en) && !strcmp(en->valuestring, "big");
            seen_bytes = 1;
        } else if (!strcmp(s, "crc32c")) {
            m->crc32c = 1;
        } else if (codec_id(s) >= 0 && seen_bytes && !m->crc32c) {
            if (m->ncodecs >= 1)
                return fail(why, wn, "more than one compression codec");
            m->codec[m->ncodecs++] = codec_id(s);
        } else
            return fail(why, wn, "codec %s not supported (bytes, gzip, zstd, "
                                 "blosc, crc32c are; not sharding or "
                                 "transpose)",
                        s);
    }
    if (!seen_bytes)
        return fail(why, wn, "no bytes codec");
    return 0;
}

int u3d_zarr_parse_meta(const char *json, size_t len, int version,
                        u3d_zarr_meta *m, char *why, size_t wn)
{
    memset(m, 0, sizeof *m);
    m->version = version;
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return fail(why, wn, "not a JSON object");
    }
    int r = version == 2 ? parse_v2(j, m, why, wn) : parse_v3(j, m, why, wn);
    cJSON_Delete(j);
    if (r)
        return r;
    if (m->rank < 3 || m->rank > 5 || (m->rank == 5 && m->shape[0] != 1))
        return fail(why, wn, "%d dimensions; volumes are 3D (Z,Y,X), 4D "
                             "(C,Z,Y,X) or 5D with a first axis of size 1",
                    m->rank);
    size_t b = (size_t)m->size;
    for (int i = 0; i < m->rank; i++) {
        if (m->shape[i] < 1 || m->shape[i] > INT_MAX || m->chunks[i] < 1 ||
            m->chunks[i] > INT_MAX)
            return fail(why, wn, "dimension %d: size %lld, chunk %lld", i,
                        (long long)m->shape[i], (long long)m->chunks[i]);
        b = u3d_mul_sz(b, (size_t)m->chunks[i]);
    }
    if (!b || b > ((size_t)1 << 31))
        return fail(why, wn, "chunks of more than 2 GiB");
    m->chunk_bytes = b;
    return 0;
}

static int inflate_all(const void *src, size_t n, void *dst, size_t cap,
                       char *why, size_t wn)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* zlib or gzip */
        return fail(why, wn, "zlib init failed");
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    int r = inflate(&z, Z_FINISH);
    size_t out = z.total_out;
    inflateEnd(&z);
    if (r != Z_STREAM_END || out != cap)
        return fail(why, wn, "corrupt zlib/gzip chunk (%zu of %zu bytes)", out,
                    cap);
    return 0;
}

int u3d_zarr_decode_chunk(const u3d_zarr_meta *m, const void *src, size_t n,
                          void *dst, char *why, size_t wn)
{
    size_t cap = m->chunk_bytes;
    if (m->crc32c) {
        if (n < 4)
            return fail(why, wn, "chunk shorter than its checksum");
        n -= 4;
    }
    if (n > UINT_MAX)
        return fail(why, wn, "chunk of %zu bytes", n);
    int codec = m->ncodecs ? m->codec[0] : U3D_ZC_NONE;
    switch (codec) {
    case U3D_ZC_NONE:
        if (n != cap)
            return fail(why, wn, "raw chunk of %zu bytes, expected %zu", n,
                        cap);
        memcpy(dst, src, n);
        break;
    case U3D_ZC_ZLIB:
    case U3D_ZC_GZIP:
        if (inflate_all(src, n, dst, cap, why, wn))
            return -1;
        break;
    case U3D_ZC_ZSTD: {
        size_t r = ZSTD_decompress(dst, cap, src, n);
        if (ZSTD_isError(r) || r != cap)
            return fail(why, wn, "corrupt zstd chunk (%s)",
                        ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
        break;
    }
    case U3D_ZC_BLOSC: {
        size_t nb = 0;
        if (blosc_cbuffer_validate(src, n, &nb) != 0 || nb != cap ||
            blosc_decompress_ctx(src, dst, cap, 1) != (int)cap)
            return fail(why, wn, "corrupt blosc chunk");
        break;
    }
    default:
        return fail(why, wn, "unknown codec");
    }
    if (m->big_endian && m->size > 1) {
        unsigned char *p = dst;
        for (size_t i = 0; i + (size_t)m->size <= cap; i += (size_t)m->size)
            for (int a = 0, b = m->size - 1; a < b; a++, b--) {
                unsigned char t = p[i + a];
                p[i + a] = p[i + b];
                p[i + b] = t;
            }
    }
    return 0;
}

double u3d_zarr_sample(const u3d_zarr_meta *m, const void *c, size_t i)
{
    switch (m->type) {
    case U3D_ZT_U8: return ((const uint8_t *)c)[i];
    case U3D_ZT_I8: return ((const int8_t *)c)[i];
    case U3D_ZT_U16: return ((const uint16_t *)c)[i];
    case U3D_ZT_I16: return ((const int16_t *)c)[i];
    case U3D_ZT_U32: return ((const uint32_t *)c)[i];
    case U3D_ZT_I32: return ((const int32_t *)c)[i];
    case U3D_ZT_U64: return (double)((const uint64_t *)c)[i];
    case U3D_ZT_I64: return (double)((const int64_t *)c)[i];
    case U3D_ZT_F32: return ((const float *)c)[i];
    default: return ((const double *)c)[i];
    }
}

/* ---- files --------------------------------------------------------------- */

/* The whole file, at most max bytes; 1 when absent, -1 on errors. */
static int slurp(const char *path, size_t max, char **buf, size_t *len)
{
    *buf = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *b = malloc(n + 1);
    while (b && got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!b || got != n) {
        free(b);
        return -1;
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

static cJSON *read_json(const char *dir, const char *name)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *b;
    size_t n;
    if (slurp(p, 1 << 24, &b, &n))
        return NULL;
    cJSON *j = cJSON_ParseWithLength(b, n);
    free(b);
    return j;
}

static int exists(const char *dir, const char *name)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static const char *unit_of(const char *u)
{
    if (!u)
        return "";
    if (!strcmp(u, "micrometer"))
        return "um";
    if (!strcmp(u, "millimeter"))
        return "mm";
    if (!strcmp(u, "nanometer"))
        return "nm";
    if (!strcmp(u, "centimeter"))
        return "cm";
    if (!strcmp(u, "meter"))
        return "m";
    return "";
}

typedef struct zresolved {
    char dir[4200]; /* the array's folder */
    int version;
    double spacing[3];
    char unit[16];
    int has_spacing;
} zresolved;

/* OME multiscales (v0.4: attrs.multiscales; v0.5: attrs.ome.multiscales):
 * level 0's path and scale. */
static int ome_level0(const cJSON *attrs, zresolved *r, const char *group)
{
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(attrs, "multiscales");
    if (!ms)
        ms = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(attrs, "ome"), "multiscales");
    const cJSON *m0 = cJSON_GetArrayItem(ms, 0);
    const cJSON *d0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(m0, "datasets"), 0);
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(d0, "path");
    if (!cJSON_IsString(path) || strstr(path->valuestring, ".."))
        return 0;
    snprintf(r->dir, sizeof r->dir, "%s/%s", group, path->valuestring);
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(
                              d0, "coordinateTransformations"))
    {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(t, "scale");
        int n = cJSON_GetArraySize(sc);
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "scale") || n < 3)
            continue;
        int ok = 1;
        double s[3];
        for (int i = 0; i < 3; i++) {
            const cJSON *e = cJSON_GetArrayItem(sc, n - 3 + i);
            s[i] = cJSON_IsNumber(e) ? e->valuedouble : -1;
            ok &= s[i] > 0 && isfinite(s[i]);
        }
        if (ok) {
            memcpy(r->spacing, s, sizeof s);
            r->has_spacing = 1;
        }
    }
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(m0, "axes");
    int na = cJSON_GetArraySize(axes);
    const cJSON *ax = na > 0 ? cJSON_GetArrayItem(axes, na - 1) : NULL;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(ax, "unit");
    snprintf(r->unit, sizeof r->unit, "%s",
             unit_of(cJSON_IsString(u) ? u->valuestring : NULL));
    return 1;
}

static int is_array(const char *dir, int *version)
{
    if (exists(dir, ".zarray")) {
        *version = 2;
        return 1;
    }
    cJSON *j = read_json(dir, "zarr.json");
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(j, "node_type");
    int a = cJSON_IsString(nt) && !strcmp(nt->valuestring, "array");
    cJSON_Delete(j);
    if (a)
        *version = 3;
    return a;
}

static u3d_status resolve(const char *path, const char *dataset, int labels,
                          zresolved *r, u3d_error *err)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s%s%s", path, dataset[0] ? "/" : "",
             dataset);
    struct stat sb;
    if (stat(dir, &sb) || !S_ISDIR(sb.st_mode))
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot open as a Zarr "
                                           "folder: %s",
                          dir, errno ? strerror(errno) : "not a folder");
    if (is_array(dir, &r->version)) {
        snprintf(r->dir, sizeof r->dir, "%s", dir);
        return U3D_OK;
    }
    cJSON *g = read_json(dir, "zarr.json");
    cJSON *attrs = g ? cJSON_GetObjectItemCaseSensitive(g, "attributes")
                     : NULL;
    cJSON *za = g ? NULL : read_json(dir, ".zattrs");
    if (!g && !za && !exists(dir, ".zgroup"))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: not a Zarr array or group (no .zarray, "
                          ".zgroup or zarr.json)",
                          dir);
    int ome = ome_level0(g ? attrs : za, r, dir);
    cJSON_Delete(g);
    cJSON_Delete(za);
    if (ome) {
        if (!is_array(r->dir, &r->version))
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: the OME-Zarr level 0 (%s) is not an "
                              "array",
                              dir, r->dir);
        return U3D_OK;
    }
    const char *def = labels ? "label" : "raw";
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, def);
    if (is_array(p, &r->version)) {
        snprintf(r->dir, sizeof r->dir, "%s", p);
        return U3D_OK;
    }
    /* the only array among the children */
    char names[1024] = "";
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int v;
        if (!is_array(p, &v))
            continue;
        size_t k = strlen(names);
        snprintf(names + k, sizeof names - k, "%s%s", n ? ", " : "",
                 e->d_name);
        if (!n++) {
            snprintf(r->dir, sizeof r->dir, "%s", p);
            r->version = v;
        }
    }
    if (d)
        closedir(d);
    if (n == 1)
        return U3D_OK;
    return u3d_seterr(err, U3D_ERR_FORMAT,
                      "%s: %s; name one as %s/NAME (arrays: %s)", dir,
                      n ? "several arrays and none is called 'raw' or "
                          "'label'"
                        : "no array in the group",
                      dir, n ? names : "none");
}

/* ---- reading ------------------------------------------------------------- */

typedef struct zsrc {
    char dir[4200];
    u3d_zarr_meta m;
    int o;             /* index of the C axis (rank 4, 5), -1 for rank 3 */
    int zi;            /* index of the Z axis */
    float *slab;       /* C x nz x H x W */
    int slab_z0, slab_nz;
    void *chunk;
    char *file;
} zsrc;

static void zsrc_close(u3d_vsource *s)
{
    zsrc *z = s->impl;
    if (!z)
        return;
    free(z->slab);
    free(z->chunk);
    free(z);
    s->impl = NULL;
}

static void chunk_key(const zsrc *z, const int64_t *idx, char *out, size_t n)
{
    const u3d_zarr_meta *m = &z->m;
    size_t k = (size_t)snprintf(out, n, "%s/%s", z->dir,
                                m->version == 3 && m->v3_prefix ? "c" : "");
    for (int i = 0; i < m->rank && k < n; i++) {
        int first = i == 0 && !(m->version == 3 && m->v3_prefix);
        k += (size_t)snprintf(out + k, n - k, "%s%lld",
                              first ? "" : (char[]){m->sep, 0},
                              (long long)idx[i]);
    }
}

static u3d_status load_slab(u3d_vsource *s, int z0, u3d_error *err)
{
    zsrc *z = s->impl;
    const u3d_zarr_meta *m = &z->m;
    const u3d_volume *v = &s->shape;
    int cz = (int)m->chunks[z->zi];
    int kz = z0 / cz;
    z->slab_z0 = kz * cz;
    z->slab_nz = v->d - z->slab_z0 < cz ? v->d - z->slab_z0 : cz;
    size_t hw = (size_t)v->h * v->w;
    int64_t cc = z->o >= 0 ? m->chunks[z->o] : 1;
    int64_t ch = m->chunks[z->zi + 1], cw = m->chunks[z->zi + 2];
    int64_t nkc = (v->c + cc - 1) / cc, nky = (v->h + ch - 1) / ch,
            nkx = (v->w + cw - 1) / cw;
    for (int64_t kc = 0; kc < nkc; kc++)
        for (int64_t ky = 0; ky < nky; ky++)
            for (int64_t kx = 0; kx < nkx; kx++) {
                int64_t idx[5] = {0};
                if (z->o >= 0)
                    idx[z->o] = kc;
                idx[z->zi] = kz, idx[z->zi + 1] = ky, idx[z->zi + 2] = kx;
                char key[4400], why[256];
                chunk_key(z, idx, key, sizeof key);
                char *buf;
                size_t n;
                int r = slurp(key, m->chunk_bytes * 2 + 65536, &buf, &n);
                if (r < 0)
                    return u3d_seterr(err, U3D_ERR_IO,
                                      "%s: cannot read chunk %s: %s", s->name,
                                      key, strerror(errno));
                int fill = r == 1;
                if (!fill && u3d_zarr_decode_chunk(m, buf, n, z->chunk, why,
                                                   sizeof why)) {
                    free(buf);
                    return u3d_seterr(err, U3D_ERR_FORMAT, "%s: chunk %s: %s",
                                      s->name, key, why);
                }
                free(buf);
                /* chunk layout: [c][z][y][x] with chunk sizes cc, cz, ch,
                 * cw (a leading size-1 axis changes nothing) */
                for (int64_t c = 0; c < cc && kc * cc + c < v->c; c++)
                    for (int zz = 0; zz < z->slab_nz; zz++)
                        for (int64_t y = 0; y < ch && ky * ch + y < v->h; y++) {
                            size_t src = (size_t)(((c * cz + zz) * ch + y) * cw);
                            float *dst = z->slab +
                                         ((size_t)(kc * cc + c) * z->slab_nz + zz) * hw +
                                         (size_t)(ky * ch + y) * v->w + (size_t)(kx * cw);
                            int64_t nx = v->w - kx * cw < cw ? v->w - kx * cw : cw;
                            for (int64_t x = 0; x < nx; x++)
                                dst[x] = fill ? (float)m->fill
                                              : (float)u3d_zarr_sample(
                                                    m, z->chunk, src + (size_t)x);
                        }
            }
    return U3D_OK;
}

static u3d_status zsrc_rows(u3d_vsource *s, int zp, int y0, int ny,
                            float *dst, u3d_error *err)
{
    zsrc *z = s->impl;
    const u3d_volume *v = &s->shape;
    if (zp < z->slab_z0 || zp >= z->slab_z0 + z->slab_nz) {
        z->slab_nz = 0;
        U3D_TRY(load_slab(s, zp, err));
    }
    size_t hw = (size_t)v->h * v->w, row = (size_t)ny * v->w;
    for (int c = 0; c < v->c; c++)
        memcpy(dst + c * row,
               z->slab + ((size_t)c * z->slab_nz + (zp - z->slab_z0)) * hw +
                   (size_t)y0 * v->w,
               row * sizeof *dst);
    return U3D_OK;
}

static const u3d_vsrc_ops zarr_src_ops = {zsrc_rows, zsrc_close};

u3d_status u3d_zarr_source_open(u3d_vsource *s, const char *path,
                                const char *dataset, int labels,
                                u3d_error *err)
{
    zresolved r;
    memset(&r, 0, sizeof r);
    U3D_TRY(resolve(path, dataset, labels, &r, err));
    zsrc *z = calloc(1, sizeof *z);
    if (!z)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    s->impl = z;
    s->ops = &zarr_src_ops;
    snprintf(z->dir, sizeof z->dir, "%s", r.dir);
    snprintf(s->name, sizeof s->name, "%s", r.dir);
    char p[4400], *json, why[256];
    size_t n;
    snprintf(p, sizeof p, "%s/%s", r.dir,
             r.version == 2 ? ".zarray" : "zarr.json");
    if (slurp(p, 1 << 24, &json, &n))
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot read: %s", p,
                          strerror(errno));
    int bad = u3d_zarr_parse_meta(json, n, r.version, &z->m, why, sizeof why);
    free(json);
    if (bad)
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: %s", p, why);
    const u3d_zarr_meta *m = &z->m;
    u3d_volume *v = &s->shape;
    z->zi = m->rank - 3;
    z->o = m->rank >= 4 ? m->rank - 4 : -1;
    v->c = z->o >= 0 ? (int)m->shape[z->o] : 1;
    v->d = (int)m->shape[z->zi], v->h = (int)m->shape[z->zi + 1];
    v->w = (int)m->shape[z->zi + 2];
    if (v->c > U3D_NORM_MAX_C)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: %d channels; at most %d", s->name, v->c,
                          U3D_NORM_MAX_C);
    size_t slab = u3d_mul_sz(u3d_mul_sz(u3d_mul_sz((size_t)v->c, (size_t)v->h),
                                        (size_t)v->w),
                             u3d_mul_sz((size_t)(m->chunks[z->zi] < v->d
                                                     ? m->chunks[z->zi]
                                                     : v->d),
                                        sizeof(float)));
    if (!slab || slab > u3d_mem_limit(0) / 2)
        return u3d_seterr(err, U3D_ERR_OOM,
                          "%s: a slab of chunks (%lld planes of %dx%dx%d) "
                          "does not fit the host memory",
                          s->name, (long long)m->chunks[z->zi], v->c, v->h,
                          v->w);
    if (!(z->slab = malloc(slab)) || !(z->chunk = malloc(m->chunk_bytes)))
        return u3d_seterr(err, U3D_ERR_OOM, "%s: out of host memory",
                          s->name);
    v->bits = m->size * 8;
    v->is_float = m->type == U3D_ZT_F32 || m->type == U3D_ZT_F64;
    v->is_signed = m->type == U3D_ZT_I8 || m->type == U3D_ZT_I16 ||
                   m->type == U3D_ZT_I32 || m->type == U3D_ZT_I64;
    s->check_finite = v->is_float;
    v->spacing[0] = v->spacing[1] = v->spacing[2] = 1;
    if (r.has_spacing) {
        memcpy(v->spacing, r.spacing, sizeof r.spacing);
        snprintf(v->unit, sizeof v->unit, "%s", r.unit);
    } else {
        /* element_size_um in the array's attributes (PlantSeg) */
        cJSON *j = r.version == 2 ? read_json(r.dir, ".zattrs")
                                  : read_json(r.dir, "zarr.json");
        const cJSON *a = r.version == 2
                             ? j
                             : cJSON_GetObjectItemCaseSensitive(j, "attributes");
        const cJSON *es = cJSON_GetObjectItemCaseSensitive(a, "element_size_um");
        if (cJSON_GetArraySize(es) == 3) {
            int ok = 1;
            double sp[3];
            for (int i = 0; i < 3; i++) {
                const cJSON *e = cJSON_GetArrayItem(es, i);
                sp[i] = cJSON_IsNumber(e) ? e->valuedouble : -1;
                ok &= sp[i] > 0 && isfinite(sp[i]);
            }
            if (ok) {
                memcpy(v->spacing, sp, sizeof sp);
                snprintf(v->unit, sizeof v->unit, "um");
            }
        }
        cJSON_Delete(j);
    }
    return U3D_OK;
}

/* ---- writing (OME-Zarr v0.4) -------------------------------------------- */

typedef struct zsink {
    char dir[4096], tmp[4200];
    int rank;
    int ch, cw;
    unsigned char *chunk, *comp;
    size_t chunk_bytes, comp_cap;
    int slot; /* of tmp in the signal cleanup list */
} zsink;

static int write_file(const char *path, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    const char *p = b;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r <= 0) {
            close(fd);
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return close(fd);
}

static int write_json(const char *dir, const char *name, cJSON *j)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = cJSON_Print(j);
    int r = s ? write_file(p, s, strlen(s)) : -1;
    free(s);
    return r;
}

static void zsink_free(zsink *z)
{
    u3d_tmpdir_untrack(z->slot);
    free(z->chunk);
    free(z->comp);
    free(z);
}

static u3d_status zsink_plane(u3d_vsink *s, const void *p, u3d_error *err)
{
    zsink *z = s->impl;
    int isz = s->bits / 8;
    size_t hw = (size_t)s->h * s->w;
    char d[4400];
    /* 0/[0/]z/ky/kx */
    snprintf(d, sizeof d, "%s/0%s/%d", z->tmp, z->rank == 4 ? "/0" : "",
             s->z);
    if (mkdir(d, 0755) && errno != EEXIST)
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot create %s: %s",
                          s->name, d, strerror(errno));
    for (int ky = 0; ky * z->ch < s->h; ky++) {
        char dy[4500];
        snprintf(dy, sizeof dy, "%s/%d", d, ky);
        if (mkdir(dy, 0755) && errno != EEXIST)
            return u3d_seterr(err, U3D_ERR_IO, "%s: cannot create %s: %s",
                              s->name, dy, strerror(errno));
        for (int kx = 0; kx * z->cw < s->w; kx++) {
            memset(z->chunk, 0, z->chunk_bytes);
            for (int c = 0; c < s->c; c++)
                for (int y = 0; y < z->ch && ky * z->ch + y < s->h; y++) {
                    int nx = s->w - kx * z->cw < z->cw ? s->w - kx * z->cw
                                                       : z->cw;
                    size_t src = (size_t)c * hw +
                                 (size_t)(ky * z->ch + y) * s->w +
                                 (size_t)kx * z->cw;
                    unsigned char *dst =
                        z->chunk +
                        (((size_t)c * z->ch + y) * z->cw) * (size_t)isz;
                    if (s->bits == 32)
                        memcpy(dst, (const float *)p + src, (size_t)nx * 4);
                    else if (s->bits == 16)
                        memcpy(dst, (const uint16_t *)p + src, (size_t)nx * 2);
                    else
                        for (int x = 0; x < nx; x++)
                            dst[x] = (unsigned char)((const uint16_t *)p)[src + x];
                }
            uLongf clen = (uLongf)z->comp_cap;
            if (compress2(z->comp, &clen, z->chunk, (uLong)z->chunk_bytes,
                          5) != Z_OK)
                return u3d_seterr(err, U3D_ERR_IO, "%s: zlib failed",
                                  s->name);
            char f[4600];
            snprintf(f, sizeof f, "%s/%d", dy, kx);
            if (write_file(f, z->comp, clen))
                return u3d_seterr(err, U3D_ERR_IO, "%s: cannot write %s: %s",
                                  s->name, f, strerror(errno));
        }
    }
    return U3D_OK;
}

static u3d_status zsink_finish(u3d_vsink *s, u3d_error *err)
{
    zsink *z = s->impl;
    u3d_status st = U3D_OK;
    struct stat sb;
    char old[4300] = "";
    if (lstat(z->dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            st = u3d_seterr(err, U3D_ERR_IO,
                            "%s: exists and is not a folder; not replaced",
                            z->dir);
        else {
            snprintf(old, sizeof old, "%s.old-%ld", z->dir, (long)getpid());
            if (rename(z->dir, old))
                st = u3d_seterr(err, U3D_ERR_IO, "%s: cannot replace: %s",
                                z->dir, strerror(errno));
        }
    }
    if (!st && rename(z->tmp, z->dir)) {
        st = u3d_seterr(err, U3D_ERR_IO, "%s: cannot rename %s into place: %s",
                        z->dir, z->tmp, strerror(errno));
        if (old[0])
            rename(old, z->dir);
    }
    if (st)
        u3d_rm_tree(z->tmp);
    else if (old[0])
        u3d_rm_tree(old);
    zsink_free(z);
    return st;
}

static void zsink_abort(u3d_vsink *s)
{
    zsink *z = s->impl;
    u3d_rm_tree(z->tmp);
    zsink_free(z);
}

static const u3d_vsink_ops zarr_sink_ops = {zsink_plane, zsink_finish,
                                            zsink_abort};

static const char *ome_unit(const char *u)
{
    if (!strcmp(u, "um"))
        return "micrometer";
    if (!strcmp(u, "mm"))
        return "millimeter";
    if (!strcmp(u, "nm"))
        return "nanometer";
    if (!strcmp(u, "cm"))
        return "centimeter";
    if (!strcmp(u, "m"))
        return "meter";
    return NULL;
}

static cJSON *int_list(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static u3d_status write_meta(u3d_vsink *s, zsink *z, u3d_error *err)
{
    int r = 0;
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "zarr_format", 2);
    r |= write_json(z->tmp, ".zgroup", g);
    cJSON_Delete(g);

    cJSON *at = cJSON_CreateObject();
    cJSON *ms = cJSON_AddArrayToObject(at, "multiscales");
    cJSON *m0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ms, m0);
    cJSON_AddStringToObject(m0, "version", "0.4");
    cJSON_AddStringToObject(m0, "name", "unet3d");
    cJSON *axes = cJSON_AddArrayToObject(m0, "axes");
    const char *unit = ome_unit(s->unit);
    if (z->rank == 4) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "name", "c");
        cJSON_AddStringToObject(a, "type", "channel");
        cJSON_AddItemToArray(axes, a);
    }
    static const char *names[3] = {"z", "y", "x"};
    for (int i = 0; i < 3; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "name", names[i]);
        cJSON_AddStringToObject(a, "type", "space");
        if (unit)
            cJSON_AddStringToObject(a, "unit", unit);
        cJSON_AddItemToArray(axes, a);
    }
    cJSON *ds = cJSON_AddArrayToObject(m0, "datasets");
    cJSON *d0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ds, d0);
    cJSON_AddStringToObject(d0, "path", "0");
    cJSON *ct = cJSON_AddArrayToObject(d0, "coordinateTransformations");
    cJSON *sc = cJSON_CreateObject();
    cJSON_AddItemToArray(ct, sc);
    cJSON_AddStringToObject(sc, "type", "scale");
    cJSON *sv = cJSON_AddArrayToObject(sc, "scale");
    if (z->rank == 4)
        cJSON_AddItemToArray(sv, cJSON_CreateNumber(1));
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(sv, cJSON_CreateNumber(s->spacing[i]));
    r |= write_json(z->tmp, ".zattrs", at);
    cJSON_Delete(at);

    char a0[4300];
    snprintf(a0, sizeof a0, "%s/0", z->tmp);
    if (mkdir(a0, 0755))
        r = -1;
    if (z->rank == 4) {
        char c0[4400];
        snprintf(c0, sizeof c0, "%s/0", a0);
        if (mkdir(c0, 0755))
            r = -1;
    }
    cJSON *za = cJSON_CreateObject();
    cJSON_AddNumberToObject(za, "zarr_format", 2);
    int shape[4], chunks[4], k = 0;
    if (z->rank == 4)
        shape[k] = s->c, chunks[k++] = s->c;
    shape[k] = s->d, chunks[k++] = 1;
    shape[k] = s->h, chunks[k++] = z->ch;
    shape[k] = s->w, chunks[k++] = z->cw;
    cJSON_AddItemToObject(za, "shape", int_list(shape, k));
    cJSON_AddItemToObject(za, "chunks", int_list(chunks, k));
    cJSON_AddStringToObject(za, "dtype", s->bits == 32   ? "<f4"
                                         : s->bits == 16 ? "<u2"
                                                         : "|u1");
    cJSON *comp = cJSON_AddObjectToObject(za, "compressor");
    cJSON_AddStringToObject(comp, "id", "zlib");
    cJSON_AddNumberToObject(comp, "level", 5);
    cJSON_AddNumberToObject(za, "fill_value", 0);
    cJSON_AddStringToObject(za, "order", "C");
    cJSON_AddNullToObject(za, "filters");
    cJSON_AddStringToObject(za, "dimension_separator", "/");
    r |= write_json(a0, ".zarray", za);
    cJSON_Delete(za);
    if (r)
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot write the metadata: %s",
                          s->name, strerror(errno));
    return U3D_OK;
}

u3d_status u3d_zarr_sink_open(u3d_vsink *s, const char *path, u3d_error *err)
{
    zsink *z = calloc(1, sizeof *z);
    if (!z)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    snprintf(z->dir, sizeof z->dir, "%s", path);
    size_t n = strlen(z->dir);
    while (n > 1 && z->dir[n - 1] == '/')
        z->dir[--n] = 0;
    z->slot = -1;
    /* folders of killed writers go first; N: the first name free */
    u3d_outfile_sweep(z->dir);
    for (int n = 0;; n++) {
        snprintf(z->tmp, sizeof z->tmp, "%s.tmp-%ld-%d", z->dir,
                 (long)getpid(), n);
        if (mkdir(z->tmp, 0755) == 0)
            break;
        if (errno != EEXIST || n >= 1000) {
            u3d_status st = u3d_seterr(err, U3D_ERR_IO,
                                       "%s: cannot create %s: %s", path,
                                       z->tmp, strerror(errno));
            free(z);
            return st;
        }
    }
    z->slot = u3d_tmpdir_track(z->tmp);
    s->impl = z;
    s->ops = &zarr_sink_ops;
    z->rank = s->c > 1 ? 4 : 3;
    z->ch = s->h < 512 ? s->h : 512;
    z->cw = s->w < 512 ? s->w : 512;
    z->chunk_bytes = (size_t)s->c * z->ch * z->cw * (size_t)(s->bits / 8);
    z->comp_cap = compressBound((uLong)z->chunk_bytes);
    z->chunk = malloc(z->chunk_bytes);
    z->comp = malloc(z->comp_cap);
    u3d_status st = z->chunk && z->comp
                        ? write_meta(s, z, err)
                        : u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    if (st) {
        zsink_abort(s);
        return st;
    }
    return U3D_OK;
}
