/* Launch-size helpers of the memory-bound layers (batch norm, softmax-CE,
 * relu, sgd, crop-concat): work-group sizes that the kernel and the device
 * accept, tuned geometries (internal). */
#ifndef UNET3D_LAYERS_REDUCE_H
#define UNET3D_LAYERS_REDUCE_H
#include <stdio.h>
#include "backends/opencl/runtime.h"

/* Largest power of two <= cap that both the device and kernel k accept;
 * tree reductions in local memory rely on the power of two. */
static inline u3d_status u3d_cl_pow2_lws(u3d_cl *cl, cl_kernel k, size_t cap,
                                         size_t *out, u3d_error *err)
{
    size_t kmax = 0;
    cl_int rc = clGetKernelWorkGroupInfo(k, cl->device,
                                         CL_KERNEL_WORK_GROUP_SIZE,
                                         sizeof kmax, &kmax, NULL);
    U3D_TRY(u3d_cl_check(rc, "clGetKernelWorkGroupInfo", err));
    size_t lim = cap;
    if (cl->max_wg && cl->max_wg < lim)
        lim = cl->max_wg;
    if (kmax && kmax < lim)
        lim = kmax;
    size_t l = 1;
    while (l * 2 <= lim)
        l *= 2;
    *out = l;
    return U3D_OK;
}

/* Smallest power of two >= n (n >= 1), capped at cap (a power of two):
 * the local size of a launch whose row length is n, so short rows waste
 * few padded work-items. */
static inline size_t u3d_pow2_at_least(size_t n, size_t cap)
{
    size_t l = 1;
    while (l < n && l < cap)
        l *= 2;
    return l;
}

/* Vector width of the elementwise kernels (relu, sgd, crop-concat): VW
 * floats per work-item, build option -DVW; family "elementwise". */
static inline int u3d_ew_vw(const u3d_cl *cl)
{
    int vw = u3d_cl_tune(cl, "elementwise", "vw", 4);
    return vw == 1 || vw == 2 || vw == 8 || vw == 16 ? vw : 4;
}

/* Kernel `name` of cl/PROGRAM.cl built for the elementwise vector width;
 * *vw receives it. */
static inline u3d_status u3d_ew_kernel(u3d_cl *cl, const char *program,
                                       const char *name, cl_kernel *k,
                                       int *vw, u3d_error *err)
{
    char opts[16];
    *vw = u3d_ew_vw(cl);
    snprintf(opts, sizeof opts, "-DVW=%d", *vw);
    return u3d_cl_kernel_get(cl, program, name, opts, k, err);
}

/* Launches an elementwise kernel over n floats, vw per work-item. */
static inline u3d_status u3d_ew_launch(u3d_cl *cl, cl_kernel k,
                                       const char *label, size_t n, int vw,
                                       u3d_error *err)
{
    if (n > (size_t)CL_UINT_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: tensors of more than 2^32 elements are not "
                          "supported; use a smaller patch",
                          label);
    size_t l;
    int want = u3d_cl_tune(cl, "elementwise", "lws", 256);
    U3D_TRY(u3d_cl_pow2_lws(cl, k, want < 1 ? 1 : (size_t)want, &l, err));
    size_t g = (n + (size_t)vw - 1) / (size_t)vw;
    return u3d_cl_launch(cl, k, label, 1, &g, &l, err);
}

/* Largest tensor of the chunked kernels: their 32-bit voxel indices run
 * up to a chunk (<= 2^24) plus a few strides (<= 2^14) past the end. */
#define U3D_CHUNK_MAX_COUNT ((size_t)CL_UINT_MAX - ((size_t)1 << 25))

/* Geometry of the chunked kernels (cl/batchnorm3d.cl, cl/softmax_ce.cl):
 * vector width (build option -DVW), work-items per group (-DLWS, a power
 * of two) and voxels per work-group. */
typedef struct u3d_chunk_cfg {
    int vw;
    size_t lws;
    cl_uint chunk;
} u3d_chunk_cfg;

/* Tuned geometry of `family` (params "vw", "lws", "chunk"): the defaults
 * suit GPUs; src/backends/opencl/tuning.c has the rows of other devices. The chunk
 * is rounded to whole vectors of every item. */
static inline u3d_chunk_cfg u3d_chunk_tune(const u3d_cl *cl,
                                           const char *family, int vw,
                                           int lws, int chunk)
{
    u3d_chunk_cfg c;
    c.vw = u3d_cl_tune(cl, family, "vw", vw);
    if (c.vw != 1 && c.vw != 2 && c.vw != 8 && c.vw != 16)
        c.vw = 4;
    int l = u3d_cl_tune(cl, family, "lws", lws);
    c.lws = 1;
    while (l > 1 && c.lws * 2 <= (size_t)l && c.lws < 1024)
        c.lws *= 2;
    if (cl->max_wg)
        while (c.lws > cl->max_wg)
            c.lws /= 2;
    size_t unit = c.lws * (size_t)c.vw;
    int ch = u3d_cl_tune(cl, family, "chunk", chunk);
    if (ch > (1 << 24))
        ch = 1 << 24; /* see U3D_CHUNK_MAX_COUNT */
    size_t n = ch < 1 ? 1 : ((size_t)ch + unit - 1) / unit;
    c.chunk = (cl_uint)(n * unit);
    return c;
}

/* The build options of c: "-DVW=.. -DLWS=..". */
static inline void u3d_chunk_opts(const u3d_chunk_cfg *c, char *buf, size_t n)
{
    snprintf(buf, n, "-DVW=%d -DLWS=%zu", c->vw, c->lws);
}

/* Kernel `name` of cl/PROGRAM.cl built for c (-DVW, -DLWS), for kernels
 * whose launch does not use c->lws (the stage-2 reductions): one program
 * per geometry. */
static inline u3d_status u3d_chunk_kernel_any(u3d_cl *cl, const char *program,
                                              const char *name,
                                              const u3d_chunk_cfg *c,
                                              cl_kernel *k, u3d_error *err)
{
    char opts[64];
    u3d_chunk_opts(c, opts, sizeof opts);
    return u3d_cl_kernel_get(cl, program, name, opts, k, err);
}

/* Kernel `name` of cl/PROGRAM.cl built for c (-DVW, -DLWS), launched with
 * c->lws work-items per group. When the kernel accepts fewer, c->lws is
 * halved until it fits (the chunk stays: a kernel covers any chunk with
 * any local size). */
static inline u3d_status u3d_chunk_kernel(u3d_cl *cl, const char *program,
                                          const char *name, u3d_chunk_cfg *c,
                                          cl_kernel *k, u3d_error *err)
{
    for (;;) {
        U3D_TRY(u3d_chunk_kernel_any(cl, program, name, c, k, err));
        size_t kmax = 0;
        cl_int rc = clGetKernelWorkGroupInfo(*k, cl->device,
                                             CL_KERNEL_WORK_GROUP_SIZE,
                                             sizeof kmax, &kmax, NULL);
        U3D_TRY(u3d_cl_check(rc, "clGetKernelWorkGroupInfo", err));
        if (c->lws <= 1 || !kmax || c->lws <= kmax)
            return U3D_OK;
        c->lws /= 2;
    }
}

#endif
