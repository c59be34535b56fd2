/* Launch-size helpers of the reduction layers (batch norm, softmax-CE):
 * work-group sizes that the kernel and the device accept (internal). */
#ifndef UNET3D_LAYERS_REDUCE_H
#define UNET3D_LAYERS_REDUCE_H
#include "runtime/cl_runtime.h"

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

#endif
