/* NumPy .npy reader/writer for the golden fixtures and tools. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "golden/npy.h"
#include "core/files.h"

void u3d_npy_free(u3d_npy *a)
{
    if (a) {
        free(a->data);
        memset(a, 0, sizeof *a);
    }
}

/* Finds 'key': in the header dict and returns the text after the colon. */
static const char *dict_value(const char *hdr, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static u3d_status bad(u3d_error *err, const char *path, const char *what)
{
    return u3d_seterr(err, U3D_ERR_FORMAT, "%s: not a valid .npy file: %s",
                      path, what);
}

u3d_status u3d_npy_load(const char *path, u3d_npy *out, u3d_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = u3d_infile_fopen(path, err);
    if (!f)
        return U3D_ERR_IO;
    unsigned char pre[10];
    char *hdr = NULL;
    u3d_status st = U3D_OK;
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6)) {
        st = bad(err, path, "missing \\x93NUMPY magic");
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) {
            st = bad(err, path, "truncated header");
            goto done;
        }
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        unsigned char b[4];
        if (fread(b, 1, 4, f) != 4) {
            st = bad(err, path, "truncated header");
            goto done;
        }
        hlen = b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 |
               (size_t)b[3] << 24;
    } else {
        st = bad(err, path, "unknown format version");
        goto done;
    }
    if (hlen > 65536) {
        st = bad(err, path, "header too long");
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
        st = bad(err, path, "truncated header");
        goto done;
    }
    hdr[hlen] = 0;
    const char *descr = dict_value(hdr, "descr");
    const char *fo = dict_value(hdr, "fortran_order");
    const char *shape = dict_value(hdr, "shape");
    if (!descr || !fo || !shape) {
        st = bad(err, path, "header lacks descr, fortran_order or shape");
        goto done;
    }
    if (strncmp(fo, "False", 5)) {
        st = bad(err, path, "Fortran order is not supported (save C order)");
        goto done;
    }
    /* element type: float32/int32 natively; other common types converted */
    int kind; /* 0 f4, 1 i4, 2 f8, 3 i8, 4 u1, 5 i1/|b1, 6 u2 */
    size_t esz;
    if (!strncmp(descr, "'<f4'", 5)) kind = 0, esz = 4;
    else if (!strncmp(descr, "'<i4'", 5)) kind = 1, esz = 4;
    else if (!strncmp(descr, "'<f8'", 5)) kind = 2, esz = 8;
    else if (!strncmp(descr, "'<i8'", 5)) kind = 3, esz = 8;
    else if (!strncmp(descr, "'|u1'", 5)) kind = 4, esz = 1;
    else if (!strncmp(descr, "'|i1'", 5) || !strncmp(descr, "'|b1'", 5)) kind = 5, esz = 1;
    else if (!strncmp(descr, "'<u2'", 5)) kind = 6, esz = 2;
    else {
        st = bad(err, path, "dtype must be <f4, <i4, <f8, <i8, |u1, |i1 or <u2");
        goto done;
    }
    if (*shape != '(') {
        st = bad(err, path, "shape is not a tuple");
        goto done;
    }
    const char *p = shape + 1;
    size_t count = 1;
    while (1) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || out->ndim >= 8) {
            st = bad(err, path, "shape is unreadable or has more than 8 axes");
            goto done;
        }
        if (v && count > SIZE_MAX / 8 / v) {
            st = bad(err, path, "shape is too large");
            goto done;
        }
        out->dims[out->ndim++] = (size_t)v;
        count *= (size_t)v;
        p = end;
    }
    out->count = count;
    out->is_int = kind == 1 || kind == 3 || kind >= 4;
    /* the shape is the header's word: check it against the bytes the file
     * holds before allocating for it */
    long here = ftell(f);
    if (here < 0 || fseek(f, 0, SEEK_END)) {
        st = u3d_seterr(err, U3D_ERR_IO, "%s: cannot read: %m", path);
        goto done;
    }
    long size = ftell(f);
    if (size < here || fseek(f, here, SEEK_SET)) {
        st = u3d_seterr(err, U3D_ERR_IO, "%s: cannot read: %m", path);
        goto done;
    }
    if ((size_t)(size - here) != count * esz) {
        st = bad(err, path, (size_t)(size - here) < count * esz
                                ? "data shorter than its shape says"
                                : "data longer than its shape says");
        goto done;
    }
    unsigned char *raw = malloc(count * esz + 1);
    out->data = malloc(count * 4 + 1);
    if (!raw || !out->data) {
        free(raw);
        st = u3d_seterr(err, U3D_ERR_OOM, "%s: out of memory", path);
        goto done;
    }
    if (fread(raw, esz, count, f) != count) {
        free(raw);
        st = bad(err, path, "data shorter than its shape says");
        goto done;
    }
    if (fgetc(f) != EOF) {
        free(raw);
        st = bad(err, path, "data longer than its shape says");
        goto done;
    }
    float *fo32 = out->data;
    int32_t *io32 = out->data;
    for (size_t i = 0; i < count; i++) {
        switch (kind) {
        case 0: memcpy(&fo32[i], raw + 4 * i, 4); break;
        case 1: memcpy(&io32[i], raw + 4 * i, 4); break;
        case 2: { double d; memcpy(&d, raw + 8 * i, 8); fo32[i] = (float)d; break; }
        case 3: {
            int64_t d;
            memcpy(&d, raw + 8 * i, 8);
            if (d < INT32_MIN || d > INT32_MAX) {
                free(raw);
                st = bad(err, path, "an int64 value is outside the int32 range");
                goto done;
            }
            io32[i] = (int32_t)d;
            break;
        }
        case 4: io32[i] = raw[i]; break;
        case 5: io32[i] = (int8_t)raw[i]; break;
        case 6: { uint16_t d; memcpy(&d, raw + 2 * i, 2); io32[i] = d; break; }
        }
    }
    free(raw);
done:
    free(hdr);
    fclose(f);
    if (st)
        u3d_npy_free(out);
    return st;
}

u3d_status u3d_npy_save(const char *path, const u3d_npy *a, u3d_error *err)
{
    char hdr[256], shape[200] = "";
    size_t o = 0;
    for (int i = 0; i < a->ndim; i++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%zu%s", a->dims[i],
                              a->ndim == 1 ? "," : (i + 1 < a->ndim ? ", " : ""));
    int n = snprintf(hdr, sizeof hdr,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     a->is_int ? "<i4" : "<f4", shape);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    u3d_outfile out;
    U3D_TRY(u3d_outfile_open(&out, path, err));
    FILE *f = u3d_outfile_stream(&out, err);
    if (!f) {
        u3d_outfile_abort(&out);
        return U3D_ERR_IO;
    }
    unsigned short hl = (unsigned short)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)(hl & 0xff),
                             (unsigned char)(hl >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)n, f) == (size_t)n;
    for (int i = 0; i < pad && ok; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    ok = ok && fwrite(a->data, 4, a->count, f) == a->count;
    if (!ok) {
        u3d_outfile_abort(&out);
        return u3d_seterr(err, U3D_ERR_IO, "%s: write failed: %m", path);
    }
    return u3d_outfile_commit(&out, err);
}
