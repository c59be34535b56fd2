#include <stdio.h>
#include <string.h>
#include "core/backend_impl.h"

size_t u3d_shape_count(u3d_shape s)
{
    if (s.n <= 0 || s.c <= 0 || s.d <= 0 || s.h <= 0 || s.w <= 0)
        return 0;
    return (size_t)s.n * s.c * s.d * s.h * s.w;
}

size_t u3d_shape_spatial(u3d_shape s)
{
    if (s.d <= 0 || s.h <= 0 || s.w <= 0)
        return 0;
    return (size_t)s.d * s.h * s.w;
}

int u3d_shape_eq(u3d_shape a, u3d_shape b)
{
    return a.n == b.n && a.c == b.c && a.d == b.d && a.h == b.h && a.w == b.w;
}

const char *u3d_shape_str(u3d_shape s, char *buf, size_t len)
{
    snprintf(buf, len, "%dx%dx%dx%dx%d", s.n, s.c, s.d, s.h, s.w);
    return buf;
}

size_t u3d_tensor_bytes(const u3d_tensor *t)
{
    return u3d_shape_count(t->shape) * 4; /* float32 and int32 alike */
}

u3d_status u3d_tensor_create(u3d_backend *be, u3d_shape s, u3d_dtype dt,
                             u3d_tensor *out, u3d_error *err)
{
    char sb[96];
    memset(out, 0, sizeof *out);
    if (!be)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "no backend given");
    if (u3d_shape_count(s) == 0)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "tensor shape %s has a zero or negative size",
                          u3d_shape_str(s, sb, sizeof sb));
    /* guard against size_t overflow of element counts in kernels (int32
     * offsets on some devices) */
    if (u3d_shape_count(s) > ((size_t)1 << 31) - 1)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "tensor %s has more than 2^31-1 elements; use "
                          "smaller tiles or patches",
                          u3d_shape_str(s, sb, sizeof sb));
    u3d_tensor t = {s, dt, be, NULL};
    u3d_status st = be->ops->buffer_alloc(be, u3d_tensor_bytes(&t), &t.buf, err);
    if (st)
        return st;
    st = be->ops->buffer_fill(be, t.buf, u3d_shape_count(s), 0.0f, err);
    if (st) {
        be->ops->buffer_free(be, t.buf);
        return st;
    }
    be->tensor_bytes += u3d_tensor_bytes(&t);
    if (be->tensor_bytes > be->tensor_peak)
        be->tensor_peak = be->tensor_bytes;
    *out = t;
    return U3D_OK;
}

void u3d_tensor_release(u3d_tensor *t)
{
    if (t && t->be && t->buf) {
        t->be->ops->buffer_free(t->be, t->buf);
        t->be->tensor_bytes -= u3d_tensor_bytes(t); /* counted at create */
    }
    if (t)
        memset(t, 0, sizeof *t);
}

u3d_status u3d_tensor_write(u3d_tensor *t, const void *host, u3d_error *err)
{
    if (!t || !t->buf)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "write to an empty tensor");
    return t->be->ops->buffer_write(t->be, t->buf, 0, u3d_tensor_bytes(t),
                                    host, err);
}

u3d_status u3d_tensor_read(const u3d_tensor *t, void *host, u3d_error *err)
{
    if (!t || !t->buf)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "read from an empty tensor");
    return t->be->ops->buffer_read(t->be, t->buf, 0, u3d_tensor_bytes(t), host,
                                   err);
}

u3d_status u3d_tensor_fill(u3d_tensor *t, float value, u3d_error *err)
{
    if (!t || !t->buf)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "fill of an empty tensor");
    return t->be->ops->buffer_fill(t->be, t->buf, u3d_shape_count(t->shape),
                                   value, err);
}

u3d_status u3d_tensor_copy(u3d_tensor *dst, const u3d_tensor *src,
                           u3d_error *err)
{
    if (!dst || !src || !dst->buf || !src->buf)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "copy with an empty tensor");
    if (dst->be != src->be)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "copy between tensors of different backends");
    if (u3d_shape_count(dst->shape) != u3d_shape_count(src->shape) ||
        dst->dtype != src->dtype)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "copy between tensors of different size or type");
    return dst->be->ops->buffer_copy(dst->be, dst->buf, 0, src->buf, 0,
                                     u3d_tensor_bytes(src), err);
}

u3d_status u3d_tensor_copy_sample(u3d_tensor *dst, int dst_n,
                                  const u3d_tensor *src, int src_n,
                                  u3d_error *err)
{
    char a[96], b[96];
    if (!dst || !src || !dst->buf || !src->buf || dst->be != src->be)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "sample copy needs two tensors of one backend");
    u3d_shape ds = dst->shape, ss = src->shape;
    if (ds.c != ss.c || ds.d != ss.d || ds.h != ss.h || ds.w != ss.w ||
        dst->dtype != src->dtype || dst_n < 0 || dst_n >= ds.n || src_n < 0 ||
        src_n >= ss.n)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "cannot copy sample %d of %s into sample %d of %s",
                          src_n, u3d_shape_str(ss, a, sizeof a), dst_n,
                          u3d_shape_str(ds, b, sizeof b));
    size_t one = u3d_tensor_bytes(src) / (size_t)ss.n;
    return dst->be->ops->buffer_copy(dst->be, dst->buf, one * (size_t)dst_n,
                                     src->buf, one * (size_t)src_n, one, err);
}
