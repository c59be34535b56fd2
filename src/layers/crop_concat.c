/* Crop + concat on OpenCL (cl/crop_concat.cl): memory-bound copies, one
 * work-item per element with lanes along W. */
#include <stdint.h>
#include "layers/layers.h"

#define LWS0 64

/* The scalar arguments shared by the forward and skip-backward kernels, in
 * kernel order: Cs, Cu, D, H, W (up), Ds, Hs, Ws (skip), oz, oy, ox, N. */
#define NCROP 12
typedef struct crop_args {
    cl_uint v[NCROP];
} crop_args;

static crop_args crop_args_of(u3d_shape skip, u3d_shape up)
{
    crop_args a = {
        {(cl_uint)skip.c, (cl_uint)up.c, (cl_uint)up.d, (cl_uint)up.h,
         (cl_uint)up.w, (cl_uint)skip.d, (cl_uint)skip.h, (cl_uint)skip.w,
         (cl_uint)((skip.d - up.d) / 2), (cl_uint)((skip.h - up.h) / 2),
         (cl_uint)((skip.w - up.w) / 2), (cl_uint)up.n}};
    return a;
}

static u3d_status set_crop_args(cl_kernel k, cl_uint first, const crop_args *a,
                                u3d_error *err)
{
    for (cl_uint i = 0; i < NCROP; i++)
        U3D_ARG(k, first + i, a->v[i], err);
    return U3D_OK;
}

/* Kernels index with 32-bit integers. */
static u3d_status fits_u32(u3d_shape a, u3d_shape b, const char *op,
                           u3d_error *err)
{
    if (u3d_shape_count(a) > UINT32_MAX || u3d_shape_count(b) > UINT32_MAX)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: tensors of more than 2^32 elements are not "
                          "supported; use a smaller patch",
                          op);
    return U3D_OK;
}

static size_t lws_of(const u3d_cl *cl)
{
    return cl->max_wg < LWS0 ? cl->max_wg : LWS0;
}

u3d_status u3d_cl_crop_concat_forward(u3d_backend *be, cten *skip, cten *up,
                                      u3d_tensor *y, u3d_error *err)
{
    U3D_TRY(fits_u32(skip->shape, y->shape, "crop-concat forward", err));
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "crop_concat", "crop_concat_forward", NULL,
                              &k, err));
    crop_args a = crop_args_of(skip->shape, up->shape);
    cl_mem sm = u3d_cl_mem(skip), um = u3d_cl_mem(up), ym = u3d_cl_mem(y);
    U3D_ARG(k, 0, sm, err);
    U3D_ARG(k, 1, um, err);
    U3D_ARG(k, 2, ym, err);
    U3D_TRY(set_crop_args(k, 3, &a, err));
    u3d_shape s = y->shape;
    size_t g[2] = {(size_t)s.h * s.w, (size_t)s.d * s.c * s.n};
    size_t l[2] = {lws_of(cl), 1};
    return u3d_cl_launch(cl, k, "crop_concat_forward", 2, g, l, err);
}

static u3d_status backward_skip(u3d_cl *cl, cten *dy, u3d_tensor *dskip,
                                const crop_args *a, cl_int accumulate,
                                u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "crop_concat", "crop_concat_backward_skip",
                              NULL, &k, err));
    cl_mem gm = u3d_cl_mem(dy), sm = u3d_cl_mem(dskip);
    U3D_ARG(k, 0, gm, err);
    U3D_ARG(k, 1, sm, err);
    U3D_TRY(set_crop_args(k, 2, a, err));
    U3D_ARG(k, 14, accumulate, err);
    u3d_shape s = dskip->shape;
    size_t g[2] = {(size_t)s.h * s.w, (size_t)s.d * s.c * s.n};
    size_t l[2] = {lws_of(cl), 1};
    return u3d_cl_launch(cl, k, "crop_concat_backward_skip", 2, g, l, err);
}

static u3d_status backward_up(u3d_cl *cl, cten *dy, u3d_tensor *dup, cl_uint cs,
                              u3d_error *err)
{
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "crop_concat", "crop_concat_backward_up",
                              NULL, &k, err));
    u3d_shape s = dup->shape;
    cl_mem gm = u3d_cl_mem(dy), um = u3d_cl_mem(dup);
    cl_uint cu = (cl_uint)s.c, p = (cl_uint)u3d_shape_spatial(s);
    cl_uint n = (cl_uint)s.n;
    U3D_ARG(k, 0, gm, err);
    U3D_ARG(k, 1, um, err);
    U3D_ARG(k, 2, cs, err);
    U3D_ARG(k, 3, cu, err);
    U3D_ARG(k, 4, p, err);
    U3D_ARG(k, 5, n, err);
    size_t g[2] = {(size_t)cu * p, (size_t)n}, l[2] = {lws_of(cl), 1};
    return u3d_cl_launch(cl, k, "crop_concat_backward_up", 2, g, l, err);
}

u3d_status u3d_cl_crop_concat_backward(u3d_backend *be, cten *dy,
                                       u3d_tensor *dskip, u3d_tensor *dup,
                                       int accumulate_skip, u3d_error *err)
{
    U3D_TRY(fits_u32(dskip->shape, dy->shape, "crop-concat backward", err));
    u3d_cl *cl = u3d_cl_of(be);
    crop_args a = crop_args_of(dskip->shape, dup->shape);
    U3D_TRY(backward_skip(cl, dy, dskip, &a, accumulate_skip ? 1 : 0, err));
    return backward_up(cl, dy, dup, a.v[0], err);
}
