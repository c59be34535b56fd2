/* Max-pool 2x2x2 stride 2 on OpenCL (cl/maxpool3d.cl): memory-bound, one
 * work-item per VX output voxels along W (forward) or VX windows (backward),
 * lanes along W so loads and stores coalesce. Other windows (1x2x2 for
 * anisotropic levels) run scalar kernels, one work-item per voxel. */
#include <stdint.h>
#include "backends/opencl/opencl.h"
#include "backends/opencl/reduce.h"

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

/* Per-device parameters (tuning.c): windows per vector (vx),
 * vector groups per work-item along a row (per) and the local size. */
typedef struct pool_tune {
    int vx, per;
    size_t lws;
} pool_tune;

static pool_tune tune_of(const u3d_cl *cl)
{
    pool_tune t;
    t.vx = u3d_cl_tune(cl, "maxpool3d", "vx", 4);
    if (t.vx != 2 && t.vx != 8)
        t.vx = 4;
    int l = u3d_cl_tune(cl, "maxpool3d", "lws", LWS0);
    t.lws = l < 1 ? 1 : (size_t)l;
    t.per = u3d_cl_tune(cl, "maxpool3d", "per", 1); /* groups per item */
    if (t.per < 1)
        t.per = 1;
    return t;
}

/* rows x ceil(ceil(wo / vx) / per) work-items along dim 0, planes along
 * dim 1. */
static u3d_status launch(u3d_backend *be, const char *name, cl_mem a, cl_mem b,
                         cl_mem c, u3d_shape s, size_t rows, size_t wo,
                         size_t planes, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    pool_tune t = tune_of(cl);
    char opts[32];
    snprintf(opts, sizeof opts, "-DVX=%d", t.vx);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "maxpool3d", name, opts, &k, err));
    U3D_TRY(u3d_cl_pow2_lws(cl, k, t.lws, &t.lws, err)); /* kernel's limit */
    cl_uint d = (cl_uint)s.d, h = (cl_uint)s.h, w = (cl_uint)s.w;
    cl_uint nc = (cl_uint)s.n * (cl_uint)s.c;
    cl_uint wg = (cl_uint)((wo + (size_t)t.vx - 1) / (size_t)t.vx);
    cl_uint per = (cl_uint)t.per < wg ? (cl_uint)t.per : wg;
    cl_uint wi = wg ? (wg + per - 1) / per : 0;
    cl_uint i = 0;
    U3D_ARG(k, i++, a, err);
    U3D_ARG(k, i++, b, err);
    if (c)
        U3D_ARG(k, i++, c, err);
    U3D_ARG(k, i++, d, err);
    U3D_ARG(k, i++, h, err);
    U3D_ARG(k, i++, w, err);
    U3D_ARG(k, i++, nc, err);
    U3D_ARG(k, i++, wi, err);
    U3D_ARG(k, i++, per, err);
    size_t g[2] = {rows * wi, planes}, l[2] = {t.lws, 1};
    return u3d_cl_launch(cl, k, name, 2, g, l, err);
}

/* Window per axis: 1 where the pooled shape o keeps the size of s. */
static void window_of(u3d_shape s, u3d_shape o, cl_uint f[3])
{
    f[0] = o.d == s.d ? 1 : 2;
    f[1] = o.h == s.h ? 1 : 2;
    f[2] = o.w == s.w ? 1 : 2;
}

/* The scalar kernels for windows other than 2x2x2: work-items over the
 * voxels of one plane (items of them) along dim 0, planes along dim 1. */
static u3d_status launch_any(u3d_backend *be, const char *name, cl_mem a,
                             cl_mem b, cl_mem c, u3d_shape s, u3d_shape o,
                             size_t items, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    /* VX is only read by the vector kernels; 4 is their default program */
    U3D_TRY(u3d_cl_kernel_get(cl, "maxpool3d", name, "-DVX=4", &k, err));
    size_t lws = tune_of(cl).lws;
    U3D_TRY(u3d_cl_pow2_lws(cl, k, lws, &lws, err));
    cl_uint d = (cl_uint)s.d, h = (cl_uint)s.h, w = (cl_uint)s.w, f[3];
    window_of(s, o, f);
    cl_uint i = 0;
    U3D_ARG(k, i++, a, err);
    U3D_ARG(k, i++, b, err);
    if (c)
        U3D_ARG(k, i++, c, err);
    U3D_ARG(k, i++, d, err);
    U3D_ARG(k, i++, h, err);
    U3D_ARG(k, i++, w, err);
    U3D_ARG(k, i++, f[0], err);
    U3D_ARG(k, i++, f[1], err);
    U3D_ARG(k, i++, f[2], err);
    size_t g[2] = {(items + lws - 1) / lws * lws, (size_t)s.n * (size_t)s.c};
    size_t l[2] = {lws, 1};
    return u3d_cl_launch(cl, k, name, 2, g, l, err);
}

static int is_2x2x2(u3d_shape s, u3d_shape o)
{
    cl_uint f[3];
    window_of(s, o, f);
    return f[0] == 2 && f[1] == 2 && f[2] == 2;
}

u3d_status u3d_cl_maxpool3d_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                                    u3d_error *err)
{
    U3D_TRY(fits_u32(x, "maxpool3d forward", err));
    if (!is_2x2x2(x->shape, y->shape))
        return launch_any(be, "maxpool3d_forward_any", u3d_cl_mem(x),
                          u3d_cl_mem(y), NULL, x->shape, y->shape,
                          u3d_shape_spatial(y->shape), err);
    u3d_shape s = x->shape;
    size_t planes = (size_t)(s.d / 2) * (size_t)s.n * (size_t)s.c;
    return launch(be, "maxpool3d_forward", u3d_cl_mem(x), u3d_cl_mem(y), NULL,
                  s, (size_t)(s.h / 2), (size_t)(s.w / 2), planes, err);
}

u3d_status u3d_cl_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy,
                                     u3d_tensor *dx, u3d_error *err)
{
    U3D_TRY(fits_u32(x, "maxpool3d backward", err));
    if (!is_2x2x2(x->shape, dy->shape))
        return launch_any(be, "maxpool3d_backward_any", u3d_cl_mem(x),
                          u3d_cl_mem(dy), u3d_cl_mem(dx), x->shape, dy->shape,
                          u3d_shape_spatial(x->shape), err);
    u3d_shape s = x->shape;
    /* ceil sizes: the partial windows at odd edges zero their voxels */
    size_t planes = (size_t)((s.d + 1) / 2) * (size_t)s.n * (size_t)s.c;
    return launch(be, "maxpool3d_backward", u3d_cl_mem(x), u3d_cl_mem(dy),
                  u3d_cl_mem(dx), s, (size_t)((s.h + 1) / 2),
                  (size_t)((s.w + 1) / 2), planes, err);
}
