/* Crop + concat on OpenCL (cl/crop_concat.cl): memory-bound copies, VW
 * floats per work-item with lanes along W; the up channels are contiguous
 * slabs per sample. */
#include <stdint.h>
#include "backends/opencl/opencl.h"
#include "backends/opencl/reduce.h"

#define PROG "crop_concat"
#define LWS0 64

/* The scalar arguments shared by the forward and skip-backward kernels, in
 * kernel order: Cs, Cu, D, H, W (up), Ds, Hs, Ws (skip), oz, oy, ox, N. */
#define NCROP 12
typedef struct crop_args {
    cl_uint v[NCROP];
} crop_args;

static crop_args crop_args_of(u3d_shape skip, u3d_shape up)
{
    crop_args a = {{(cl_uint)skip.c, (cl_uint)up.c, (cl_uint)up.d,
                    (cl_uint)up.h, (cl_uint)up.w, (cl_uint)skip.d,
                    (cl_uint)skip.h, (cl_uint)skip.w,
                    (cl_uint)((skip.d - up.d) / 2),
                    (cl_uint)((skip.h - up.h) / 2),
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

/* Work-items per row of w floats and vector groups per work-item: one
 * group per item by default (GPUs), up to whole rows where the tuning
 * table says so (CPUs). */
static void row_split(const u3d_cl *cl, int w, int vw, cl_uint *wi,
                      cl_uint *per)
{
    cl_uint wg = (cl_uint)((w + vw - 1) / vw);
    int p = u3d_cl_tune(cl, "crop_concat", "per", 1);
    *per = p < 1 ? 1u : (cl_uint)p < wg ? (cl_uint)p : wg;
    *wi = (wg + *per - 1) / *per;
}

/* Launches a row kernel over (rows * wg, planes, count); the local size
 * covers a short row dimension without many idle work-items. */
static u3d_status launch_rows(u3d_cl *cl, cl_kernel k, const char *label,
                              size_t g0, size_t g1, size_t g2, u3d_error *err)
{
    size_t cap;
    int want = u3d_cl_tune(cl, "crop_concat", "lws", LWS0);
    U3D_TRY(u3d_cl_pow2_lws(cl, k, want < 1 ? 1 : (size_t)want, &cap, err));
    size_t g[3] = {g0, g1, g2}, l[3] = {u3d_pow2_at_least(g0, cap), 1, 1};
    return u3d_cl_launch(cl, k, label, 3, g, l, err);
}

/* dst[doff + n*dstride + f] = src[soff + n*sstride + f], f < len, n < N. */
static u3d_status slab(u3d_cl *cl, cl_mem src, cl_mem dst, size_t len,
                       size_t soff, size_t sstride, size_t doff,
                       size_t dstride, cl_uint n, const char *label,
                       u3d_error *err)
{
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, PROG, "crop_concat_slab", &k, &vw, err));
    cl_uint a[5] = {(cl_uint)len, (cl_uint)soff, (cl_uint)sstride,
                    (cl_uint)doff, (cl_uint)dstride};
    U3D_ARG(k, 0, src, err);
    U3D_ARG(k, 1, dst, err);
    for (cl_uint i = 0; i < 5; i++)
        U3D_ARG(k, 2 + i, a[i], err);
    U3D_ARG(k, 7, n, err);
    size_t cap;
    int want = u3d_cl_tune(cl, "elementwise", "lws", 256);
    U3D_TRY(u3d_cl_pow2_lws(cl, k, want < 1 ? 1 : (size_t)want, &cap, err));
    size_t g[2] = {(len + (size_t)vw - 1) / (size_t)vw, n};
    size_t l[2] = {cap, 1};
    return u3d_cl_launch(cl, k, label, 2, g, l, err);
}

u3d_status u3d_cl_crop_concat_forward(u3d_backend *be, cten *skip, cten *up,
                                      u3d_tensor *y, u3d_error *err)
{
    U3D_TRY(fits_u32(skip->shape, y->shape, "crop-concat forward", err));
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, PROG, "crop_concat_forward", &k, &vw, err));
    crop_args a = crop_args_of(skip->shape, up->shape);
    u3d_shape s = up->shape;
    cl_uint wi, per;
    row_split(cl, s.w, vw, &wi, &per);
    cl_mem sm = u3d_cl_mem(skip), um = u3d_cl_mem(up), ym = u3d_cl_mem(y);
    U3D_ARG(k, 0, sm, err);
    U3D_ARG(k, 1, ym, err);
    U3D_TRY(set_crop_args(k, 2, &a, err));
    U3D_ARG(k, 14, wi, err);
    U3D_ARG(k, 15, per, err);
    U3D_TRY(launch_rows(cl, k, "crop_concat_forward", (size_t)s.h * wi,
                        (size_t)s.d, (size_t)skip->shape.c * s.n, err));
    size_t p = u3d_shape_spatial(s), cs = (size_t)skip->shape.c;
    size_t cu = (size_t)s.c;
    return slab(cl, um, ym, cu * p, 0, cu * p, cs * p, (cs + cu) * p,
                (cl_uint)s.n, "crop_concat_forward_up", err);
}

/* dskip: overwritten over its whole extent, or accumulated over the crop
 * window only. */
static u3d_status backward_skip(u3d_cl *cl, cten *dy, u3d_tensor *dskip,
                                u3d_shape up, const crop_args *a,
                                int accumulate, u3d_error *err)
{
    const char *name = accumulate ? "crop_concat_backward_skip_add"
                                  : "crop_concat_backward_skip";
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, PROG, name, &k, &vw, err));
    u3d_shape s = dskip->shape, g = accumulate ? up : s;
    cl_uint wi, per;
    row_split(cl, g.w, vw, &wi, &per);
    cl_mem gm = u3d_cl_mem(dy), sm = u3d_cl_mem(dskip);
    U3D_ARG(k, 0, gm, err);
    U3D_ARG(k, 1, sm, err);
    U3D_TRY(set_crop_args(k, 2, a, err));
    U3D_ARG(k, 14, wi, err);
    U3D_ARG(k, 15, per, err);
    return launch_rows(cl, k, name, (size_t)g.h * wi, (size_t)g.d,
                       (size_t)s.c * s.n, err);
}

u3d_status u3d_cl_crop_concat_backward(u3d_backend *be, cten *dy,
                                       u3d_tensor *dskip, u3d_tensor *dup,
                                       int accumulate_skip, u3d_error *err)
{
    U3D_TRY(fits_u32(dskip->shape, dy->shape, "crop-concat backward", err));
    u3d_cl *cl = u3d_cl_of(be);
    crop_args a = crop_args_of(dskip->shape, dup->shape);
    U3D_TRY(backward_skip(cl, dy, dskip, dup->shape, &a, accumulate_skip,
                          err));
    u3d_shape s = dup->shape;
    size_t p = u3d_shape_spatial(s), cs = (size_t)dskip->shape.c;
    size_t cu = (size_t)s.c;
    return slab(cl, u3d_cl_mem(dy), u3d_cl_mem(dup), cu * p, cs * p,
                (cs + cu) * p, 0, cu * p, (cl_uint)s.n,
                "crop_concat_backward_up", err);
}
