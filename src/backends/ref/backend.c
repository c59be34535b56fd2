/* The host reference backend: buffers are malloc'd, ops are plain loops. */
#include <stdlib.h>
#include <string.h>
#include "backends/ref/ref.h"
#include "augment/augment_internal.h"

static u3d_status ref_alloc(u3d_backend *be, size_t bytes, void **buf,
                            u3d_error *err)
{
    (void)be;
    *buf = malloc(bytes ? bytes : 1);
    if (!*buf)
        return u3d_seterr(err, U3D_ERR_OOM,
                          "out of host memory allocating %.1f MiB",
                          bytes / 1048576.0);
    return U3D_OK;
}

static void ref_free(u3d_backend *be, void *buf)
{
    (void)be;
    free(buf);
}

static u3d_status ref_write(u3d_backend *be, void *buf, size_t off,
                            size_t bytes, const void *src, u3d_error *err)
{
    (void)be;
    (void)err;
    memcpy((char *)buf + off, src, bytes);
    return U3D_OK;
}

static u3d_status ref_read(u3d_backend *be, const void *buf, size_t off,
                           size_t bytes, void *dst, u3d_error *err)
{
    (void)be;
    (void)err;
    memcpy(dst, (const char *)buf + off, bytes);
    return U3D_OK;
}

static u3d_status ref_fill(u3d_backend *be, void *buf, size_t count,
                           float value, u3d_error *err)
{
    (void)be;
    (void)err;
    float *f = buf;
    for (size_t i = 0; i < count; i++)
        f[i] = value;
    return U3D_OK;
}

static u3d_status ref_copy(u3d_backend *be, void *dst, size_t dst_off,
                           const void *src, size_t src_off, size_t bytes,
                           u3d_error *err)
{
    (void)be;
    (void)err;
    memmove((char *)dst + dst_off, (const char *)src + src_off, bytes);
    return U3D_OK;
}

static u3d_status ref_finish(u3d_backend *be, u3d_error *err)
{
    (void)be;
    (void)err;
    return U3D_OK;
}

static void ref_destroy(u3d_backend *be) { free(be); }

static const u3d_backend_ops ref_ops = {
    .buffer_alloc = ref_alloc,
    .buffer_free = ref_free,
    .buffer_write = ref_write,
    .buffer_read = ref_read,
    .buffer_fill = ref_fill,
    .buffer_copy = ref_copy,
    .finish = ref_finish,
    .destroy = ref_destroy,
    U3D_BACKEND_OP_TABLE(ref)
};

u3d_status u3d_backend_ref_create(u3d_backend **out, u3d_error *err)
{
    u3d_backend *be = calloc(1, sizeof *be);
    *out = NULL;
    if (!be)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    be->ops = &ref_ops;
    snprintf(be->name, sizeof be->name, "ref");
    snprintf(be->device, sizeof be->device, "host reference (plain C)");
    *out = be;
    return U3D_OK;
}
