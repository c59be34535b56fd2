/* HDF5 volumes (libhdf5): "file.h5:/group/dataset", 3D (Z,Y,X) or 4D
 * (C,Z,Y,X) datasets of any integer or float type, read by hyperslabs
 * (a window of rows of one plane at a time), written chunked and
 * gzip-compressed; spacing in the element_size_um attribute (z, y, x) as
 * PlantSeg and pytorch-3dunet write it. HDF5's error stack is never
 * printed: its innermost message is appended to ours. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/files.h"
#include "data/tiff_io.h"
#include "data/vio_impl.h"

/* ---- errors ------------------------------------------------------------ */

static void quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct h5msg {
    char outer[256], inner[256];
    int n;
} h5msg;

static herr_t walk(unsigned n, const H5E_error2_t *e, void *data)
{
    h5msg *m = data;
    const char *d = e->desc ? e->desc : "";
    if (n == 0)
        snprintf(m->outer, sizeof m->outer, "%s", d);
    snprintf(m->inner, sizeof m->inner, "%s", d);
    m->n++;
    return 0;
}

/* "name: what (HDF5: outer: inner)"; clears HDF5's stack. */
static u3d_status h5fail(u3d_error *err, u3d_status code, const char *name,
                         const char *fmt, ...) U3D_PRINTF(4, 5);
static u3d_status h5fail(u3d_error *err, u3d_status code, const char *name,
                         const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    h5msg m = {{0}, {0}, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &m);
    H5Eclear2(H5E_DEFAULT);
    if (!m.n)
        return u3d_seterr(err, code, "%s: %s", name, what);
    if (!strcmp(m.outer, m.inner))
        return u3d_seterr(err, code, "%s: %s (HDF5: %s)", name, what,
                          m.inner);
    return u3d_seterr(err, code, "%s: %s (HDF5: %s: %s)", name, what,
                      m.outer, m.inner);
}

static hid_t fapl_nolock(void)
{
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    if (p >= 0) /* read-only shares and NFS refuse locks */
        H5Pset_file_locking(p, 0, 1);
#endif
    return p;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct h5src {
    hid_t f, d, space;
    int rank;
    hsize_t dims[4];
} h5src;

static void src_close(u3d_vsource *s)
{
    h5src *h = s->impl;
    if (!h)
        return;
    if (h->space >= 0)
        H5Sclose(h->space);
    if (h->d >= 0)
        H5Dclose(h->d);
    if (h->f >= 0)
        H5Fclose(h->f);
    H5Eclear2(H5E_DEFAULT);
    free(h);
    s->impl = NULL;
}

static u3d_status src_rows(u3d_vsource *s, int z, int y0, int ny, float *dst,
                           u3d_error *err)
{
    h5src *h = s->impl;
    const u3d_volume *v = &s->shape;
    hsize_t start[4] = {0}, count[4];
    if (h->rank == 3) {
        start[0] = (hsize_t)z, start[1] = (hsize_t)y0;
        count[0] = 1, count[1] = (hsize_t)ny, count[2] = (hsize_t)v->w;
    } else {
        start[1] = (hsize_t)z, start[2] = (hsize_t)y0;
        count[0] = (hsize_t)v->c, count[1] = 1, count[2] = (hsize_t)ny;
        count[3] = (hsize_t)v->w;
    }
    hsize_t n = (hsize_t)v->c * (hsize_t)ny * (hsize_t)v->w;
    hid_t mem = H5Screate_simple(1, &n, NULL);
    herr_t r = -1;
    if (mem >= 0 && H5Sselect_hyperslab(h->space, H5S_SELECT_SET, start, NULL,
                                        count, NULL) >= 0)
        r = H5Dread(h->d, H5T_NATIVE_FLOAT, mem, h->space, H5P_DEFAULT, dst);
    if (mem >= 0)
        H5Sclose(mem);
    if (r < 0)
        return h5fail(err, U3D_ERR_IO, s->name,
                      "cannot read plane %d (corrupt or truncated file?)", z);
    return U3D_OK;
}

static const u3d_vsrc_ops h5_src_ops = {src_rows, src_close};

typedef struct dslist {
    char names[2048];
    int n, n3d;
    char only[1024]; /* the last 3D/4D dataset */
} dslist;

static herr_t visit(hid_t g, const char *name, const H5L_info_t *info,
                    void *data)
{
    (void)info;
    dslist *l = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    if (oi.type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    hid_t sp = H5Dget_space(d);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[32];
    char shape[128] = "";
    if (rank > 0 && rank <= 32 && H5Sget_simple_extent_dims(sp, dims, NULL) >= 0)
        for (int i = 0; i < rank; i++) {
            size_t k = strlen(shape);
            snprintf(shape + k, sizeof shape - k, "%s%llu", i ? "x" : "",
                     (unsigned long long)dims[i]);
        }
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(d);
    size_t k = strlen(l->names);
    snprintf(l->names + k, sizeof l->names - k, "%s/%s (%s)",
             l->n ? ", " : "", name, shape);
    l->n++;
    if (rank == 3 || rank == 4) {
        l->n3d++;
        snprintf(l->only, sizeof l->only, "%s", name);
    }
    return 0;
}

static int is_dataset(hid_t f, const char *name)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    H5O_info_t oi;
    if (H5Oget_info_by_name(f, name, &oi, H5P_DEFAULT) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    return oi.type == H5O_TYPE_DATASET;
}

/* Every link on the path must exist before H5Lexists may look at it. */
static int path_exists(hid_t f, const char *ds)
{
    char part[1024];
    for (const char *p = ds;; p++) {
        if (*p == '/' || !*p) {
            size_t k = (size_t)(p - ds);
            if (k >= sizeof part)
                return 0;
            memcpy(part, ds, k);
            part[k] = 0;
            if (k && H5Lexists(f, part, H5P_DEFAULT) <= 0) {
                H5Eclear2(H5E_DEFAULT);
                return 0;
            }
            if (!*p)
                return 1;
        }
    }
}

static void read_spacing(hid_t d, u3d_volume *v)
{
    v->spacing[0] = v->spacing[1] = v->spacing[2] = 1;
    v->unit[0] = 0;
    if (H5Aexists(d, "element_size_um") <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return;
    }
    hid_t a = H5Aopen(d, "element_size_um", H5P_DEFAULT);
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    double s[3];
    if (sp >= 0 && H5Sget_simple_extent_npoints(sp) == 3 &&
        H5Aread(a, H5T_NATIVE_DOUBLE, s) >= 0 && s[0] > 0 && s[1] > 0 &&
        s[2] > 0 && isfinite(s[0]) && isfinite(s[1]) && isfinite(s[2])) {
        memcpy(v->spacing, s, sizeof s);
        snprintf(v->unit, sizeof v->unit, "um");
    }
    if (sp >= 0)
        H5Sclose(sp);
    if (a >= 0)
        H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
}

/* Opens the dataset with a chunk cache that holds one layer of chunks
 * along Z (every chunk a plane touches): planes are read one after the
 * other, and a chunk deeper than one plane is then decompressed once, not
 * once per plane. At most 512 MiB; HDF5's default (1 MiB) otherwise. */
static hid_t open_cached(hid_t f, const char *ds)
{
    hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
    if (d < 0)
        return d;
    hid_t dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d), t = H5Dget_type(d);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[4], ch[4];
    size_t bytes = 0;
    if ((rank == 3 || rank == 4) && dcpl >= 0 && t >= 0 &&
        H5Pget_layout(dcpl) == H5D_CHUNKED &&
        H5Pget_chunk(dcpl, rank, ch) == rank &&
        H5Sget_simple_extent_dims(sp, dims, NULL) == rank) {
        double b = (double)H5Tget_size(t);
        int zi = rank - 3;
        for (int i = 0; i < rank; i++) {
            if (!ch[i])
                b = 0;
            else if (i == zi)
                b *= (double)ch[i];
            else
                b *= (double)((dims[i] + ch[i] - 1) / ch[i] * ch[i]);
        }
        if (b > (double)(1 << 20) && b <= 512.0 * (1 << 20))
            bytes = (size_t)b;
    }
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    H5Eclear2(H5E_DEFAULT);
    if (!bytes)
        return d;
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl < 0 || H5Pset_chunk_cache(dapl, 100003, bytes, 1.0) < 0) {
        if (dapl >= 0)
            H5Pclose(dapl);
        H5Eclear2(H5E_DEFAULT);
        return d;
    }
    H5Dclose(d);
    d = H5Dopen2(f, ds, dapl);
    H5Pclose(dapl);
    return d;
}

static u3d_status source_open(u3d_vsource *s, const char *path,
                              const char *dataset, int labels,
                              u3d_error *err)
{
    quiet();
    struct stat sb;
    if (stat(path, &sb))
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot open: %s", path,
                          strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return u3d_seterr(err, U3D_ERR_IO, "%s: not a regular file", path);
    h5src *h = calloc(1, sizeof *h);
    if (!h)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    h->f = h->d = h->space = -1;
    s->impl = h;
    s->ops = &h5_src_ops;
    hid_t fapl = fapl_nolock();
    h->f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (h->f < 0)
        return h5fail(err, U3D_ERR_FORMAT, path,
                      "cannot open as an HDF5 file");
    char ds[1024];
    if (dataset && dataset[0]) {
        snprintf(ds, sizeof ds, "%s", dataset);
        if (!path_exists(h->f, ds) || !is_dataset(h->f, ds)) {
            dslist l;
            memset(&l, 0, sizeof l);
            H5Lvisit(h->f, H5_INDEX_NAME, H5_ITER_INC, visit, &l);
            H5Eclear2(H5E_DEFAULT);
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: no dataset /%s (datasets: %s)", path, ds,
                              l.n ? l.names : "none");
        }
    } else {
        const char *def = labels ? "label" : "raw";
        if (is_dataset(h->f, def))
            snprintf(ds, sizeof ds, "%s", def);
        else {
            dslist l;
            memset(&l, 0, sizeof l);
            H5Lvisit(h->f, H5_INDEX_NAME, H5_ITER_INC, visit, &l);
            H5Eclear2(H5E_DEFAULT);
            if (l.n3d != 1)
                return u3d_seterr(
                    err, U3D_ERR_FORMAT,
                    "%s: %s; name one as %s:/NAME (datasets: %s)", path,
                    l.n3d ? "several 3D/4D datasets and none is called "
                            "'raw' or 'label'"
                          : "no 3D or 4D dataset",
                    path, l.n ? l.names : "none");
            snprintf(ds, sizeof ds, "%s", l.only);
        }
    }
    snprintf(s->name, sizeof s->name, "%s:/%s", path, ds);
    h->d = open_cached(h->f, ds);
    if (h->d < 0)
        return h5fail(err, U3D_ERR_FORMAT, s->name, "cannot open the dataset");
    h->space = H5Dget_space(h->d);
    h->rank = h->space >= 0 ? H5Sget_simple_extent_ndims(h->space) : -1;
    if (h->rank != 3 && h->rank != 4)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: %d dimensions; volumes are 3D (Z,Y,X) or 4D "
                          "(C,Z,Y,X)",
                          s->name, h->rank);
    if (H5Sget_simple_extent_dims(h->space, h->dims, NULL) < 0)
        return h5fail(err, U3D_ERR_FORMAT, s->name, "unreadable shape");
    u3d_volume *v = &s->shape;
    int o = h->rank - 3;
    for (int i = 0; i < h->rank; i++)
        if (h->dims[i] == 0 || h->dims[i] > INT_MAX)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: dimension %d has size %llu", s->name, i,
                              (unsigned long long)h->dims[i]);
    v->c = o ? (int)h->dims[0] : 1;
    v->d = (int)h->dims[o], v->h = (int)h->dims[o + 1];
    v->w = (int)h->dims[o + 2];
    if (v->c > U3D_NORM_MAX_C)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: %d channels (first axis of a 4D dataset); at "
                          "most %d",
                          s->name, v->c, U3D_NORM_MAX_C);
    if (!u3d_mul_sz(u3d_mul_sz((size_t)v->c * v->h, (size_t)v->w),
                    sizeof(float) * 4))
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: planes too large",
                          s->name);
    hid_t t = H5Dget_type(h->d);
    H5T_class_t cl = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    size_t size = t >= 0 ? H5Tget_size(t) : 0;
    int sign = cl == H5T_INTEGER ? H5Tget_sign(t) == H5T_SGN_2 : 0;
    if (t >= 0)
        H5Tclose(t);
    H5Eclear2(H5E_DEFAULT);
    if ((cl != H5T_INTEGER && cl != H5T_FLOAT) || size == 0 || size > 8)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: the data type is not an integer or float "
                          "number",
                          s->name);
    v->bits = (int)size * 8;
    v->is_float = cl == H5T_FLOAT;
    v->is_signed = sign;
    s->check_finite = v->is_float;
    read_spacing(h->d, v);
    return U3D_OK;
}

typedef struct open_args {
    const char *path, *dataset;
    int labels;
} open_args;

static u3d_status open_cb(u3d_vsource *s, void *arg, u3d_error *err)
{
    const open_args *a = arg;
    return source_open(s, a->path, a->dataset, a->labels, err);
}

/* libhdf5 reads the untrusted file in a child process (data/isolate.c);
 * UNET3D_HDF5_INPROCESS=1 reads it here (debuggers, profilers). */
u3d_status u3d_h5_source_open(u3d_vsource *s, const char *path,
                              const char *dataset, int labels,
                              u3d_error *err)
{
    open_args a = {path, dataset, labels};
    const char *in = getenv("UNET3D_HDF5_INPROCESS");
    if (in && !strcmp(in, "1"))
        return open_cb(s, &a, err);
    return u3d_vsource_isolated(s, "HDF5", open_cb, &a, err);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct h5sink {
    u3d_outfile o;
    hid_t f, d, space;
    int open;
} h5sink;

static void sink_close(h5sink *h)
{
    if (h->space >= 0)
        H5Sclose(h->space);
    if (h->d >= 0)
        H5Dclose(h->d);
    if (h->f >= 0)
        H5Fclose(h->f);
    h->space = h->d = h->f = -1;
    H5Eclear2(H5E_DEFAULT);
}

static u3d_status sink_plane(u3d_vsink *s, const void *p, u3d_error *err)
{
    h5sink *h = s->impl;
    hsize_t start[4] = {0}, count[4];
    int rank = s->c > 1 ? 4 : 3;
    if (rank == 3) {
        start[0] = (hsize_t)s->z;
        count[0] = 1, count[1] = (hsize_t)s->h, count[2] = (hsize_t)s->w;
    } else {
        start[1] = (hsize_t)s->z;
        count[0] = (hsize_t)s->c, count[1] = 1, count[2] = (hsize_t)s->h;
        count[3] = (hsize_t)s->w;
    }
    hsize_t n = (hsize_t)s->c * (hsize_t)s->h * (hsize_t)s->w;
    hid_t mem = H5Screate_simple(1, &n, NULL);
    herr_t r = -1;
    if (mem >= 0 && H5Sselect_hyperslab(h->space, H5S_SELECT_SET, start, NULL,
                                        count, NULL) >= 0)
        r = H5Dwrite(h->d,
                     s->bits == 32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT16,
                     mem, h->space, H5P_DEFAULT, p);
    if (mem >= 0)
        H5Sclose(mem);
    if (r < 0)
        return h5fail(err, U3D_ERR_IO, s->name, "cannot write plane %d",
                      s->z);
    return U3D_OK;
}

static u3d_status sink_finish(u3d_vsink *s, u3d_error *err)
{
    h5sink *h = s->impl;
    herr_t r = 0;
    if (h->space >= 0)
        r |= H5Sclose(h->space);
    if (h->d >= 0)
        r |= H5Dclose(h->d);
    if (h->f >= 0)
        r |= H5Fclose(h->f);
    h->space = h->d = h->f = -1;
    u3d_status st;
    if (r < 0) {
        st = h5fail(err, U3D_ERR_IO, s->name, "cannot complete the file");
        u3d_outfile_abort(&h->o);
    } else
        st = u3d_outfile_commit(&h->o, err);
    free(h);
    return st;
}

static void sink_abort(u3d_vsink *s)
{
    h5sink *h = s->impl;
    sink_close(h);
    u3d_outfile_abort(&h->o);
    free(h);
}

static const u3d_vsink_ops h5_sink_ops = {sink_plane, sink_finish,
                                          sink_abort};

/* Spacing in micrometres when the unit allows it. */
static void spacing_um(const u3d_vsink *s, double um[3])
{
    double f = 1;
    if (!strcmp(s->unit, "mm"))
        f = 1e3;
    else if (!strcmp(s->unit, "nm"))
        f = 1e-3;
    else if (!strcmp(s->unit, "cm"))
        f = 1e4;
    else if (!strcmp(s->unit, "m"))
        f = 1e6;
    for (int i = 0; i < 3; i++)
        um[i] = s->spacing[i] * f;
}

u3d_status u3d_h5_sink_open(u3d_vsink *s, const char *path,
                            const char *dataset, u3d_error *err)
{
    quiet();
    h5sink *h = calloc(1, sizeof *h);
    if (!h)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    h->f = h->d = h->space = -1;
    u3d_status st = u3d_outfile_open(&h->o, path, err);
    if (st) {
        free(h);
        return st;
    }
    s->impl = h;
    s->ops = &h5_sink_ops;
    const char *ds = dataset && dataset[0] ? dataset
                                           : s->bits == 32 ? "raw" : "label";
    hid_t fapl = fapl_nolock();
    h->f = H5Fcreate(h->o.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    int rank = s->c > 1 ? 4 : 3;
    hsize_t dims[4], chunk[4];
    int o = rank - 3;
    if (o)
        dims[0] = (hsize_t)s->c, chunk[0] = (hsize_t)s->c;
    dims[o] = (hsize_t)s->d, chunk[o] = 1;
    dims[o + 1] = (hsize_t)s->h, chunk[o + 1] = s->h < 512 ? s->h : 512;
    dims[o + 2] = (hsize_t)s->w, chunk[o + 2] = s->w < 512 ? s->w : 512;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t type = s->bits == 32 ? H5T_IEEE_F32LE
                 : s->bits == 16 ? H5T_STD_U16LE
                                 : H5T_STD_U8LE;
    if (h->f >= 0 && lcpl >= 0 && dcpl >= 0 &&
        H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
        H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_shuffle(dcpl) >= 0 &&
        H5Pset_deflate(dcpl, 4) >= 0 &&
        (h->space = H5Screate_simple(rank, dims, NULL)) >= 0)
        h->d = H5Dcreate2(h->f, ds, type, h->space, lcpl, dcpl, H5P_DEFAULT);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (h->d < 0) {
        st = h5fail(err, U3D_ERR_IO, path, "cannot create dataset /%s", ds);
        sink_abort(s);
        return st;
    }
    double um[3];
    spacing_um(s, um);
    hsize_t three = 3;
    hid_t asp = H5Screate_simple(1, &three, NULL);
    hid_t a = asp >= 0 ? H5Acreate2(h->d, "element_size_um", H5T_IEEE_F64LE,
                                    asp, H5P_DEFAULT, H5P_DEFAULT)
                       : -1;
    herr_t r = a >= 0 ? H5Awrite(a, H5T_NATIVE_DOUBLE, um) : -1;
    if (a >= 0)
        H5Aclose(a);
    if (asp >= 0)
        H5Sclose(asp);
    if (r < 0) {
        st = h5fail(err, U3D_ERR_IO, path, "cannot write element_size_um");
        sink_abort(s);
        return st;
    }
    return U3D_OK;
}
