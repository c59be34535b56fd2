/* Max-pool 2x2x2 stride 2 on OpenCL (cl/maxpool3d.cl): memory-bound, one
 * work-item per output voxel (forward) or per window (backward), lanes along
 * W so loads and stores coalesce. */
#include <stdint.h>
#include "layers/layers.h"

#define LWS0 64

/* The kernels index with 32-bit integers. */
static u3d_status fits_u32(const u3d_tensor *x, const char *op, u3d_error *err)
{
    if (u3d_shape_count(x->shape) > UINT32_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: tensors of more than 2^32 elements are not "
                          "supported; use a smaller patch",
                          op);
    return U3D_OK;
}

static u3d_status launch(u3d_backend *be, const char *name, cl_mem a, cl_mem b,
                         cl_mem c, u3d_shape s, size_t g0, size_t g1,
                         u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "maxpool3d", name, NULL, &k, err));
    cl_uint d = (cl_uint)s.d, h = (cl_uint)s.h, w = (cl_uint)s.w;
    cl_uint nc = (cl_uint)s.n * (cl_uint)s.c;
    cl_uint i = 0;
    U3D_ARG(k, i++, a, err);
    U3D_ARG(k, i++, b, err);
    if (c)
        U3D_ARG(k, i++, c, err);
    U3D_ARG(k, i++, d, err);
    U3D_ARG(k, i++, h, err);
    U3D_ARG(k, i++, w, err);
    U3D_ARG(k, i++, nc, err);
    size_t lws = cl->max_wg < LWS0 ? cl->max_wg : LWS0;
    size_t g[2] = {g0, g1}, l[2] = {lws, 1};
    return u3d_cl_launch(cl, k, name, 2, g, l, err);
}

u3d_status u3d_cl_maxpool3d_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                                    u3d_error *err)
{
    U3D_TRY(fits_u32(x, "maxpool3d forward", err));
    u3d_shape s = x->shape;
    size_t g0 = (size_t)(s.h / 2) * (size_t)(s.w / 2);
    size_t g1 = (size_t)(s.d / 2) * (size_t)s.n * (size_t)s.c;
    return launch(be, "maxpool3d_forward", u3d_cl_mem(x), u3d_cl_mem(y), NULL,
                  s, g0, g1, err);
}

u3d_status u3d_cl_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy,
                                     u3d_tensor *dx, u3d_error *err)
{
    U3D_TRY(fits_u32(x, "maxpool3d backward", err));
    u3d_shape s = x->shape;
    /* ceil sizes: the partial windows at odd edges zero their voxels */
    size_t g0 = (size_t)((s.h + 1) / 2) * (size_t)((s.w + 1) / 2);
    size_t g1 = (size_t)((s.d + 1) / 2) * (size_t)s.n * (size_t)s.c;
    return launch(be, "maxpool3d_backward", u3d_cl_mem(x), u3d_cl_mem(dy),
                  u3d_cl_mem(dx), s, g0, g1, err);
}
