/* NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz).
 *
 * Reading goes through libnifti2 (nifti2_io: both versions, byte swapping,
 * gzip): the header is checked first (dimensions, type, size against the
 * file), then planes are read on demand and converted: an uncompressed
 * .nii by seeking, a .nii.gz as a forward stream (a plane behind the
 * cursor restarts the decompression, which predict's overlapping slabs
 * do a few times per volume). A multi-channel .nii.gz stores each channel
 * after the whole previous one, so a plane would need a pass over the
 * file per channel: that one is loaded whole (its native type) instead. NIfTI stores x fastest, then y, z and t: voxel (i, j, k) is the
 * project's (z = k, y = j, x = i), so a Z plane is the contiguous block of
 * nx * ny voxels at k; a 4th dimension (t) holds channels. scl_slope and
 * scl_inter are applied. The header's geometry (qform, sform, pixdim,
 * units) travels to the outputs written from the volume, so results
 * overlay their image.
 *
 * Writing is ours (a NIfTI-1 header and zlib, gzip when the name ends in
 * .gz): planes go out in order; channels beyond the first (stored after the
 * whole first channel) wait in an anonymous temporary file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <nifti2_io.h>
#include "core/files.h"
#include "data/tiff_io.h"
#include "data/vio_impl.h"

/* ---- reading ------------------------------------------------------------ */

typedef struct nsrc {
    nifti_image *nim; /* data NULL when streaming */
    double slope, inter;
    int scaled;
    gzFile gz;        /* streaming: open on the file */
    uint64_t data_off;
    unsigned char *raw; /* one read's bytes */
    size_t raw_cap;
} nsrc;

static void src_close(u3d_vsource *s)
{
    nsrc *n = s->impl;
    if (!n)
        return;
    if (n->nim)
        nifti_image_free(n->nim);
    if (n->gz)
        gzclose(n->gz);
    free(n->raw);
    free(n);
    s->impl = NULL;
}

static double sample(int datatype, const void *d, size_t i)
{
    switch (datatype) {
    case DT_UINT8: return ((const uint8_t *)d)[i];
    case DT_INT8: return ((const int8_t *)d)[i];
    case DT_INT16: return ((const int16_t *)d)[i];
    case DT_UINT16: return ((const uint16_t *)d)[i];
    case DT_INT32: return ((const int32_t *)d)[i];
    case DT_UINT32: return ((const uint32_t *)d)[i];
    case DT_INT64: return (double)((const int64_t *)d)[i];
    case DT_UINT64: return (double)((const uint64_t *)d)[i];
    case DT_FLOAT32: return ((const float *)d)[i];
    case DT_FLOAT64: return ((const double *)d)[i];
    default: return NAN;
    }
}

/* cnt voxels from voxel index base of the file's data, in its native
 * type and host byte order, into n->raw. */
static u3d_status stream_read(u3d_vsource *s, nsrc *n, size_t base,
                              size_t cnt, int z, u3d_error *err)
{
    const nifti_image *nim = n->nim;
    size_t len = cnt * (size_t)nim->nbyper;
    if (len > n->raw_cap) {
        free(n->raw);
        n->raw_cap = 0;
        if (!(n->raw = malloc(len)))
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        n->raw_cap = len;
    }
    uint64_t off = n->data_off + (uint64_t)base * (uint64_t)nim->nbyper;
    if (gztell(n->gz) != (z_off_t)off &&
        gzseek(n->gz, (z_off_t)off, SEEK_SET) != (z_off_t)off)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: the voxel data end before plane %d "
                          "(truncated or corrupt file)",
                          s->name, z);
    for (size_t got = 0; got < len;) {
        size_t k = len - got > (1u << 30) ? 1u << 30 : len - got;
        int r = gzread(n->gz, n->raw + got, (unsigned)k);
        if (r <= 0)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: the voxel data end in plane %d "
                              "(truncated or corrupt file)",
                              s->name, z);
        got += (size_t)r;
    }
    if (nim->byteorder != nifti_short_order() && nim->swapsize > 1)
        nifti_swap_Nbytes((int64_t)cnt, nim->swapsize, n->raw);
    return U3D_OK;
}

static u3d_status src_rows(u3d_vsource *s, int z, int y0, int ny, float *dst,
                           u3d_error *err)
{
    nsrc *n = s->impl;
    const u3d_volume *v = &s->shape;
    size_t hw = (size_t)v->h * v->w, dhw = hw * v->d;
    for (int c = 0; c < v->c; c++) {
        size_t base = c * dhw + (size_t)z * hw + (size_t)y0 * v->w;
        float *o = dst + (size_t)c * ny * v->w;
        size_t cnt = (size_t)ny * v->w;
        const void *src = n->nim->data;
        if (n->gz) {
            U3D_TRY(stream_read(s, n, base, cnt, z, err));
            src = n->raw, base = 0;
        }
        int dt = n->nim->datatype;
        if (dt == DT_FLOAT32 && !n->scaled)
            memcpy(o, (const float *)src + base, cnt * sizeof *o);
        else
            for (size_t i = 0; i < cnt; i++) {
                double x = sample(dt, src, base + i);
                o[i] = (float)(n->scaled ? x * n->slope + n->inter : x);
            }
    }
    return U3D_OK;
}

static const u3d_vsrc_ops nifti_src_ops = {src_rows, src_close};

static u3d_status check_and_load(u3d_vsource *s, nsrc *n, gzFile gzf,
                                 const char *path, u3d_error *err);

/* The header's own quaternion, offsets, sform and pixdim, as stored:
 * libnifti recomputes some of them (e.g. a zero quaternion when
 * qform_code is 0), and copying them verbatim gives outputs the
 * input's header geometry exactly. */
/* The same fields of NIfTI-1 (float) and NIfTI-2 (double) headers. */
#define GEOM_FROM(g, h)                                                        \
    do {                                                                       \
        (g)->quatern[0] = (h).quatern_b, (g)->quatern[1] = (h).quatern_c;      \
        (g)->quatern[2] = (h).quatern_d;                                       \
        (g)->qoffset[0] = (h).qoffset_x, (g)->qoffset[1] = (h).qoffset_y;      \
        (g)->qoffset[2] = (h).qoffset_z;                                       \
        (g)->qfac = (h).pixdim[0] < 0 ? -1 : 1;                                \
        for (int c_ = 0; c_ < 4; c_++) {                                       \
            (g)->srow[0][c_] = (h).srow_x[c_];                                 \
            (g)->srow[1][c_] = (h).srow_y[c_];                                 \
            (g)->srow[2][c_] = (h).srow_z[c_];                                 \
        }                                                                      \
        for (int i_ = 0; i_ < 3; i_++)                                         \
            (g)->pixdim[i_] = (h).pixdim[i_ + 1];                              \
        (g)->xyzt_units = (unsigned char)(h).xyzt_units;                       \
    } while (0)

static void geom_from_header(u3d_vgeom *g, const unsigned char *hb, int ver)
{
    if (ver == 1) {
        nifti_1_header h;
        memcpy(&h, hb, sizeof h);
        if (h.sizeof_hdr != 348)
            swap_nifti_header(&h, 1);
        GEOM_FROM(g, h);
    } else {
        nifti_2_header h;
        memcpy(&h, hb, sizeof h);
        if (h.sizeof_hdr != 540)
            swap_nifti_header(&h, 2);
        GEOM_FROM(g, h);
    }
}

static const char *unit_name(int xyz_units)
{
    switch (XYZT_TO_SPACE(xyz_units)) {
    case NIFTI_UNITS_METER: return "m";
    case NIFTI_UNITS_MM: return "mm";
    case NIFTI_UNITS_MICRON: return "um";
    default: return "";
    }
}

static int dims_ok(int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                   int64_t d4, int64_t d5, int64_t d6, int64_t d7)
{
    int64_t d[8] = {d0, d1, d2, d3, d4, d5, d6, d7};
    if (d0 < 1 || d0 > 7)
        return 0;
    for (int i = 1; i <= d0; i++)
        if (d[i] < 1 || d[i] > INT_MAX)
            return 0;
    return 1;
}

static int type_ok(int dt)
{
    switch (dt) {
    case DT_UINT8: case DT_INT8: case DT_INT16: case DT_UINT16:
    case DT_INT32: case DT_UINT32: case DT_INT64: case DT_UINT64:
    case DT_FLOAT32: case DT_FLOAT64:
        return 1;
    default:
        return 0;
    }
}

u3d_status u3d_nifti_source_open(u3d_vsource *s, const char *path,
                                 u3d_error *err)
{
    struct stat sb;
    if (stat(path, &sb))
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot open: %s", path,
                          strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return u3d_seterr(err, U3D_ERR_IO, "%s: not a regular file", path);
    nifti_set_debug_level(0); /* libnifti prints nothing: we say it */
    nsrc *n = calloc(1, sizeof *n);
    if (!n)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    s->impl = n;
    s->ops = &nifti_src_ops;
    /* libnifti's own nifti_image_read resolves names (it may take a.nii
     * for a.nii.gz): we read the bytes of this file, libnifti decodes the
     * header */
    gzFile gzf = gzopen(path, "rb");
    if (gzf)
        gzbuffer(gzf, 1 << 20); /* fewer reads while streaming planes */
    unsigned char hb[sizeof(nifti_2_header)];
    int got = gzf ? gzread(gzf, hb, sizeof hb) : -1;
    int ver = got >= 348 ? nifti_header_version((const char *)hb,
                                                (size_t)got)
                         : -1;
    /* libnifti prints its complaints: dimensions and type are checked
     * here first, so it has none */
    if (ver == 1) {
        nifti_1_header h1, c1;
        memcpy(&h1, hb, sizeof h1);
        c1 = h1;
        if (c1.sizeof_hdr != 348)
            swap_nifti_header(&c1, 1);
        if (dims_ok(c1.dim[0], c1.dim[1], c1.dim[2], c1.dim[3], c1.dim[4],
                    c1.dim[5], c1.dim[6], c1.dim[7]) &&
            type_ok(c1.datatype))
            n->nim = nifti_convert_n1hdr2nim(h1, path);
    } else if (ver == 2 && got >= (int)sizeof(nifti_2_header)) {
        nifti_2_header h2, c2;
        memcpy(&h2, hb, sizeof h2);
        c2 = h2;
        if (c2.sizeof_hdr != 540)
            swap_nifti_header(&c2, 2);
        if (dims_ok(c2.dim[0], c2.dim[1], c2.dim[2], c2.dim[3], c2.dim[4],
                    c2.dim[5], c2.dim[6], c2.dim[7]) &&
            type_ok(c2.datatype))
            n->nim = nifti_convert_n2hdr2nim(h2, path);
    }
    if (!n->nim) {
        if (gzf)
            gzclose(gzf);
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: not a readable NIfTI-1/2 file (bad or "
                          "truncated header, dimensions out of range, or a "
                          "data type other than integers and floats)",
                          path);
    }
    u3d_status st = check_and_load(s, n, gzf, path, err);
    if (n->gz != gzf)
        gzclose(gzf); /* loaded whole, or failed */
    if (!st)
        geom_from_header(&s->geom, hb, ver);
    return st;
}

static u3d_status check_and_load(u3d_vsource *s, nsrc *n, gzFile gzf,
                                 const char *path, u3d_error *err)
{
    nifti_image *nim = n->nim;
    if (nim->nifti_type != NIFTI_FTYPE_NIFTI1_1 &&
        nim->nifti_type != NIFTI_FTYPE_NIFTI2_1)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: only single-file NIfTI (.nii, .nii.gz) is "
                          "read, not ANALYZE or .hdr/.img pairs",
                          path);
    int64_t dims[8];
    for (int i = 1; i < 8; i++)
        dims[i] = nim->dim[0] >= i ? nim->dim[i] : 1;
    for (int i = 1; i < 8; i++)
        if (dims[i] < 1 || dims[i] > INT_MAX)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: dimension %d has size %lld", path, i,
                              (long long)dims[i]);
    for (int i = 5; i < 8; i++)
        if (dims[i] != 1)
            return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                              "%s: %d dimensions; volumes have x, y, z and "
                              "channels (t) only",
                              path, (int)nim->dim[0]);
    u3d_volume *v = &s->shape;
    v->w = (int)dims[1], v->h = (int)dims[2], v->d = (int)dims[3];
    v->c = (int)dims[4];
    if (v->c > U3D_NORM_MAX_C)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: %d channels (the 4th dimension); at most %d",
                          path, v->c, U3D_NORM_MAX_C);
    switch (nim->datatype) {
    case DT_UINT8: case DT_INT8: case DT_INT16: case DT_UINT16:
    case DT_INT32: case DT_UINT32: case DT_INT64: case DT_UINT64:
    case DT_FLOAT32: case DT_FLOAT64:
        break;
    default:
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: data type %s; integers and floats are read",
                          path, nifti_datatype_string(nim->datatype));
    }
    v->bits = nim->nbyper * 8;
    v->is_float = nim->datatype == DT_FLOAT32 || nim->datatype == DT_FLOAT64;
    v->is_signed = nim->datatype == DT_INT8 || nim->datatype == DT_INT16 ||
                   nim->datatype == DT_INT32 || nim->datatype == DT_INT64;
    size_t nvox = u3d_mul_sz(u3d_mul_sz(u3d_mul_sz((size_t)v->w, (size_t)v->h),
                                        (size_t)v->d),
                             (size_t)v->c);
    size_t bytes = u3d_mul_sz(nvox, (size_t)nim->nbyper);
    int whole = !gzdirect(gzf) && v->c > 1; /* see the top of the file */
    if (!bytes || (whole && bytes > u3d_mem_limit(0)))
        return u3d_seterr(err, U3D_ERR_OOM,
                          "%s: %dx%dx%dx%d voxels exceed the host memory",
                          path, v->c, v->d, v->h, v->w);
    if (nim->iname_offset < 348 || nim->iname_offset > (1 << 30) ||
        gzseek(gzf, (z_off_t)nim->iname_offset, SEEK_SET) < 0)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: bad data offset (vox_offset %lld)", path,
                          (long long)nim->iname_offset);
    /* no allocation beyond what the file can hold (gzip: 1032:1 at most) */
    struct stat sb;
    uint64_t fsz = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    uint64_t cap = gzdirect(gzf) ? (fsz > (uint64_t)nim->iname_offset
                                        ? fsz - (uint64_t)nim->iname_offset
                                        : 0)
                                 : fsz * 1032 + 4096;
    if ((uint64_t)bytes > cap)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: the header announces %dx%dx%dx%d voxels (%zu "
                          "bytes), more than the file holds (truncated?)",
                          path, v->c, v->d, v->h, v->w, bytes);
    if (!whole) {
        /* planes on demand (see the top of the file) */
        n->gz = gzf;
        n->data_off = (uint64_t)nim->iname_offset;
    } else if (!(nim->data = malloc(bytes)))
        return u3d_seterr(err, U3D_ERR_OOM, "%s: out of host memory", path);
    for (size_t off = 0; !n->gz && off < bytes;) {
        size_t k = bytes - off > (1u << 30) ? 1u << 30 : bytes - off;
        int r = gzread(gzf, (char *)nim->data + off, (unsigned)k);
        if (r <= 0)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: the voxel data end after %zu of %zu "
                              "bytes (truncated or corrupt file)",
                              path, off, bytes);
        off += (size_t)r;
    }
    if (!n->gz && nim->byteorder != nifti_short_order() && nim->swapsize > 1)
        nifti_swap_Nbytes((int64_t)nvox, nim->swapsize, nim->data);
    if (nim->scl_slope != 0 && isfinite(nim->scl_slope) &&
        isfinite(nim->scl_inter) &&
        (nim->scl_slope != 1 || nim->scl_inter != 0)) {
        n->scaled = 1;
        n->slope = nim->scl_slope;
        n->inter = nim->scl_inter;
        v->is_float = 1;
    }
    s->check_finite = v->is_float;
    double px[3] = {nim->pixdim[3], nim->pixdim[2], nim->pixdim[1]};
    for (int i = 0; i < 3; i++)
        v->spacing[i] = px[i] > 0 && isfinite(px[i]) ? px[i] : 1.0;
    snprintf(v->unit, sizeof v->unit, "%s", unit_name(nim->xyz_units));
    u3d_vgeom *g = &s->geom;
    g->valid = 1;
    g->dim[0] = v->w, g->dim[1] = v->h, g->dim[2] = v->d;
    g->qform_code = nim->qform_code;
    g->sform_code = nim->sform_code;
    g->quatern[0] = nim->quatern_b, g->quatern[1] = nim->quatern_c;
    g->quatern[2] = nim->quatern_d;
    g->qoffset[0] = nim->qoffset_x, g->qoffset[1] = nim->qoffset_y;
    g->qoffset[2] = nim->qoffset_z;
    g->qfac = nim->qfac < 0 ? -1 : 1;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            g->srow[r][c] = nim->sto_xyz.m[r][c];
    for (int i = 0; i < 3; i++)
        g->pixdim[i] = nim->pixdim[i + 1];
    g->xyzt_units = nim->xyz_units | nim->time_units;
    return U3D_OK;
}

/* ---- writing ------------------------------------------------------------ */

typedef struct nsink {
    u3d_outfile o;
    gzFile gz;
    FILE *rest; /* channels 1.. of each plane, (z, c) order */
    size_t plane_bytes;
} nsink;

static u3d_status put(u3d_vsink *s, nsink *n, const void *p, size_t len,
                      u3d_error *err)
{
    while (len) {
        unsigned k = len > (1u << 30) ? 1u << 30 : (unsigned)len;
        if (gzwrite(n->gz, p, k) != (int)k) {
            int zerr;
            const char *m = gzerror(n->gz, &zerr);
            return u3d_seterr(err, U3D_ERR_IO, "%s: cannot write: %s",
                              s->name,
                              zerr == Z_ERRNO ? strerror(errno) : m);
        }
        p = (const char *)p + k;
        len -= k;
    }
    return U3D_OK;
}

/* The plane (bits 8: narrowed to bytes) in file layout. */
static const void *file_plane(u3d_vsink *s, const void *p, size_t i,
                              size_t hw, uint8_t *tmp)
{
    if (s->bits == 32)
        return (const float *)p + i * hw;
    if (s->bits == 16)
        return (const uint16_t *)p + i * hw;
    const uint16_t *q = (const uint16_t *)p + i * hw;
    for (size_t k = 0; k < hw; k++)
        tmp[k] = (uint8_t)q[k];
    return tmp;
}

static u3d_status sink_plane(u3d_vsink *s, const void *p, u3d_error *err)
{
    nsink *n = s->impl;
    size_t hw = (size_t)s->h * s->w;
    uint8_t *tmp = s->bits == 8 ? malloc(hw) : NULL;
    if (s->bits == 8 && !tmp)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_status st = put(s, n, file_plane(s, p, 0, hw, tmp), n->plane_bytes,
                        err);
    for (int c = 1; !st && c < s->c; c++)
        if (fwrite(file_plane(s, p, (size_t)c, hw, tmp), 1, n->plane_bytes,
                   n->rest) != n->plane_bytes)
            st = u3d_seterr(err, U3D_ERR_IO,
                            "%s: cannot buffer channel %d: %s", s->name, c,
                            strerror(errno));
    free(tmp);
    return st;
}

static void sink_free(nsink *n)
{
    if (n->gz)
        gzclose(n->gz);
    if (n->rest)
        fclose(n->rest);
    free(n);
}

static u3d_status sink_finish(u3d_vsink *s, u3d_error *err)
{
    nsink *n = s->impl;
    u3d_status st = U3D_OK;
    char *buf = s->c > 1 ? malloc(n->plane_bytes) : NULL;
    if (s->c > 1 && !buf)
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (int c = 1; !st && c < s->c; c++)
        for (int z = 0; !st && z < s->d; z++) {
            long off = (long)(((size_t)z * (s->c - 1) + c - 1) *
                              n->plane_bytes);
            if (fseek(n->rest, off, SEEK_SET) ||
                fread(buf, 1, n->plane_bytes, n->rest) != n->plane_bytes)
                st = u3d_seterr(err, U3D_ERR_IO,
                                "%s: cannot read back channel %d", s->name,
                                c);
            else
                st = put(s, n, buf, n->plane_bytes, err);
        }
    free(buf);
    if (!st) {
        int r = gzclose(n->gz);
        n->gz = NULL;
        if (r != Z_OK)
            st = u3d_seterr(err, U3D_ERR_IO, "%s: cannot complete the file",
                            s->name);
    }
    if (st)
        u3d_outfile_abort(&n->o);
    else
        st = u3d_outfile_commit(&n->o, err);
    sink_free(n);
    return st;
}

static void sink_abort(u3d_vsink *s)
{
    nsink *n = s->impl;
    if (n->gz)
        gzclose(n->gz);
    n->gz = NULL;
    u3d_outfile_abort(&n->o);
    sink_free(n);
}

static const u3d_vsink_ops nifti_sink_ops = {sink_plane, sink_finish,
                                             sink_abort};

static int units_code(const char *u)
{
    if (!strcmp(u, "mm"))
        return NIFTI_UNITS_MM;
    if (!strcmp(u, "um"))
        return NIFTI_UNITS_MICRON;
    if (!strcmp(u, "m"))
        return NIFTI_UNITS_METER;
    return NIFTI_UNITS_UNKNOWN;
}

u3d_status u3d_nifti_sink_open(u3d_vsink *s, const char *path,
                               u3d_error *err)
{
    nifti_1_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = 348;
    h.dim[0] = s->c > 1 ? 4 : 3;
    h.dim[1] = (short)s->w, h.dim[2] = (short)s->h, h.dim[3] = (short)s->d;
    h.dim[4] = (short)s->c;
    for (int i = 5; i < 8; i++)
        h.dim[i] = 1;
    if (s->w > 32767 || s->h > 32767 || s->d > 32767 || s->c > 32767)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: NIfTI-1 sizes are at most 32767 per axis",
                          path);
    h.datatype = s->bits == 32 ? DT_FLOAT32 : s->bits == 16 ? DT_UINT16
                                                             : DT_UINT8;
    h.bitpix = (short)s->bits;
    h.vox_offset = 352;
    h.scl_slope = 1;
    h.scl_inter = 0;
    const u3d_vgeom *g = &s->geom;
    int same = g->valid && g->dim[0] == s->w && g->dim[1] == s->h &&
               g->dim[2] == s->d;
    h.pixdim[0] = same && g->qfac < 0 ? -1.0f : 1.0f;
    if (same) {
        for (int i = 0; i < 3; i++)
            h.pixdim[i + 1] = (float)g->pixdim[i];
        h.xyzt_units = (char)g->xyzt_units;
        h.qform_code = (short)g->qform_code;
        h.sform_code = (short)g->sform_code;
        h.quatern_b = (float)g->quatern[0];
        h.quatern_c = (float)g->quatern[1];
        h.quatern_d = (float)g->quatern[2];
        h.qoffset_x = (float)g->qoffset[0];
        h.qoffset_y = (float)g->qoffset[1];
        h.qoffset_z = (float)g->qoffset[2];
        for (int c = 0; c < 4; c++) {
            h.srow_x[c] = (float)g->srow[0][c];
            h.srow_y[c] = (float)g->srow[1][c];
            h.srow_z[c] = (float)g->srow[2][c];
        }
    } else {
        /* axis-aligned: a scaling sform from the spacing */
        h.pixdim[1] = (float)s->spacing[2];
        h.pixdim[2] = (float)s->spacing[1];
        h.pixdim[3] = (float)s->spacing[0];
        h.xyzt_units = (char)units_code(s->unit);
        h.qform_code = NIFTI_XFORM_SCANNER_ANAT;
        h.sform_code = NIFTI_XFORM_SCANNER_ANAT;
        h.srow_x[0] = h.pixdim[1];
        h.srow_y[1] = h.pixdim[2];
        h.srow_z[2] = h.pixdim[3];
    }
    if (s->c > 1)
        h.pixdim[4] = 1;
    memcpy(h.magic, "n+1", 4);
    nsink *n = calloc(1, sizeof *n);
    if (!n)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    n->plane_bytes = (size_t)s->h * s->w * (size_t)(s->bits / 8);
    u3d_status st = u3d_outfile_open(&n->o, path, err);
    if (st) {
        free(n);
        return st;
    }
    s->impl = n;
    s->ops = &nifti_sink_ops;
    size_t len = strlen(path);
    int gz = len > 3 && !strcasecmp(path + len - 3, ".gz");
    int fd = dup(n->o.fd); /* gzclose closes it; the outfile keeps its own */
    if (fd >= 0)
        n->gz = gzdopen(fd, gz ? "wb6" : "wbT");
    if (!n->gz) {
        if (fd >= 0)
            close(fd);
        st = u3d_seterr(err, U3D_ERR_IO, "%s: cannot start the file", path);
    }
    if (!st && s->c > 1 && !(n->rest = tmpfile()))
        st = u3d_seterr(err, U3D_ERR_IO,
                        "%s: no temporary file for the channels: %s", path,
                        strerror(errno));
    static const char ext[4] = {0, 0, 0, 0};
    if (!st)
        st = put(s, n, &h, sizeof h, err);
    if (!st)
        st = put(s, n, ext, sizeof ext, err);
    if (st) {
        sink_abort(s);
        return st;
    }
    return U3D_OK;
}
