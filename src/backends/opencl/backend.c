/* The OpenCL backend: buffers are cl_mem, ops are the layers' host routines. */
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/opencl.h"
#include "augment/augment_internal.h"

static u3d_status cl_alloc(u3d_backend *be, size_t bytes, void **buf,
                           u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    if (bytes > cl->max_alloc)
        return u3d_seterr(err, U3D_ERR_OOM,
                          "a %.1f MiB buffer exceeds the largest allocation "
                          "of %s (%.1f MiB): use a smaller patch or tile",
                          bytes / 1048576.0, cl->device_name,
                          cl->max_alloc / 1048576.0);
    cl_int rc;
    cl_mem m = clCreateBuffer(cl->ctx, CL_MEM_READ_WRITE, bytes, NULL, &rc);
    if (rc != CL_SUCCESS)
        return u3d_cl_check(rc, "clCreateBuffer", err);
    *buf = m;
    return U3D_OK;
}

static void cl_free(u3d_backend *be, void *buf)
{
    u3d_cl *cl = u3d_cl_of(be);
    if (!buf)
        return;
    u3d_cl_wcache_drop(cl, (cl_mem)buf);
    if (cl->is_oclgrind) { /* see u3d_cl.graveyard */
        if (cl->ngrave == cl->capgrave) {
            size_t cap = cl->capgrave ? 2 * cl->capgrave : 64;
            cl_mem *g = realloc(cl->graveyard, cap * sizeof *g);
            if (g) {
                cl->graveyard = g;
                cl->capgrave = cap;
            }
        }
        if (cl->ngrave < cl->capgrave) {
            cl->graveyard[cl->ngrave++] = (cl_mem)buf;
            return;
        }
    }
    clReleaseMemObject((cl_mem)buf);
}

static u3d_status cl_write(u3d_backend *be, void *buf, size_t off,
                           size_t bytes, const void *src, u3d_error *err)
{
    return u3d_cl_check(clEnqueueWriteBuffer(u3d_cl_of(be)->queue, (cl_mem)buf,
                                             CL_TRUE, off, bytes, src, 0, NULL,
                                             NULL),
                        "clEnqueueWriteBuffer", err);
}

static u3d_status cl_read(u3d_backend *be, const void *buf, size_t off,
                          size_t bytes, void *dst, u3d_error *err)
{
    return u3d_cl_check(clEnqueueReadBuffer(u3d_cl_of(be)->queue, (cl_mem)buf,
                                            CL_TRUE, off, bytes, dst, 0, NULL,
                                            NULL),
                        "clEnqueueReadBuffer", err);
}

static u3d_status cl_fill(u3d_backend *be, void *buf, size_t count,
                          float value, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    if (count > (size_t)CL_UINT_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "fill: buffers of more than 2^32 floats are not "
                          "supported; use a smaller patch");
    /* vw floats per work-item, the elementwise tuning of this device */
    int vw = u3d_cl_tune(cl, "elementwise", "vw", 4);
    if (vw != 1 && vw != 2 && vw != 8 && vw != 16)
        vw = 4;
    size_t l = (size_t)u3d_cl_tune(cl, "elementwise", "lws", 256);
    if (l < 1 || (cl->max_wg && l > cl->max_wg))
        l = cl->max_wg ? cl->max_wg : 1;
    char opts[16];
    snprintf(opts, sizeof opts, "-DVW=%d", vw);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "util", "fill_f32", opts, &k, err));
    cl_mem m = (cl_mem)buf;
    cl_uint n = (cl_uint)count;
    U3D_ARG(k, 0, m, err);
    U3D_ARG(k, 1, value, err);
    U3D_ARG(k, 2, n, err);
    size_t g = (count + (size_t)vw - 1) / (size_t)vw;
    return u3d_cl_launch(cl, k, "fill", 1, &g, &l, err);
}

static u3d_status cl_copy(u3d_backend *be, void *dst, size_t dst_off,
                          const void *src, size_t src_off, size_t bytes,
                          u3d_error *err)
{
    return u3d_cl_check(clEnqueueCopyBuffer(u3d_cl_of(be)->queue, (cl_mem)src,
                                            (cl_mem)dst, src_off, dst_off,
                                            bytes, 0, NULL, NULL),
                        "clEnqueueCopyBuffer", err);
}

static u3d_status cl_finish(u3d_backend *be, u3d_error *err)
{
    return u3d_cl_check(clFinish(u3d_cl_of(be)->queue), "clFinish", err);
}

static void cl_destroy(u3d_backend *be)
{
    u3d_cl *cl = u3d_cl_of(be);
    if (cl)
        u3d_cl_profile_print(cl, stderr);
    u3d_cl_destroy(cl);
    free(be);
}

/* The conv scratch slots (grow-only, see u3d_cl_scratch) and the weight
 * cache (u3d_cl_wcache_get). */
static size_t cl_scratch_total(u3d_backend *be)
{
    const u3d_cl *cl = u3d_cl_of(be);
    size_t n = 0;
    for (int i = 0; i < U3D_CL_SCRATCH_SLOTS; i++)
        n += cl->scratch_bytes[i];
    return n + cl->wcache_bytes;
}

static const u3d_backend_ops opencl_ops = {
    .buffer_alloc = cl_alloc,
    .buffer_free = cl_free,
    .buffer_write = cl_write,
    .buffer_read = cl_read,
    .buffer_fill = cl_fill,
    .buffer_copy = cl_copy,
    .finish = cl_finish,
    .destroy = cl_destroy,
    U3D_BACKEND_OP_TABLE(cl)
    .scratch_bytes = cl_scratch_total,
    .conv3d_scratch_bytes = u3d_cl_conv3d_scratch_bytes,
    .upconv3d_scratch_bytes = u3d_cl_upconv3d_scratch_bytes,
};

u3d_status u3d_backend_opencl_create(const char *device, int profile,
                                     u3d_backend **out, u3d_error *err)
{
    *out = NULL;
    u3d_backend *be = calloc(1, sizeof *be);
    if (!be)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_cl *cl;
    u3d_status st = u3d_cl_create(device, profile, &cl, err);
    if (st) {
        free(be);
        return st;
    }
    be->ops = &opencl_ops;
    be->ctx = cl;
    snprintf(be->name, sizeof be->name, "opencl");
    snprintf(be->device, sizeof be->device, "%s / %s", cl->platform_name,
             cl->device_name);
    be->mem_total = (size_t)cl->global_mem;
    be->max_alloc = (size_t)cl->max_alloc;
    *out = be;
    return U3D_OK;
}
