/* SGD step and axpy on OpenCL (cl/sgd.cl). */
#include "layers/layers.h"
#include "layers/reduce.h"

#define LWS 256

static u3d_status launch1d(u3d_cl *cl, cl_kernel k, const char *label,
                           cl_uint n, u3d_error *err)
{
    size_t l;
    U3D_TRY(u3d_cl_pow2_lws(cl, k, LWS, &l, err));
    size_t g = n;
    return u3d_cl_launch(cl, k, label, 1, &g, &l, err);
}

u3d_status u3d_cl_sgd_step(u3d_backend *be, const u3d_sgd_params *p,
                           u3d_tensor *param, cten *grad, u3d_tensor *buf,
                           u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "sgd", "sgd_step", NULL, &k, err));
    cl_mem pm = u3d_cl_mem(param), gm = u3d_cl_mem(grad), bm = u3d_cl_mem(buf);
    cl_uint n = (cl_uint)u3d_shape_count(param->shape);
    U3D_ARG(k, 0, pm, err);
    U3D_ARG(k, 1, gm, err);
    U3D_ARG(k, 2, bm, err);
    U3D_ARG(k, 3, p->lr, err);
    U3D_ARG(k, 4, p->momentum, err);
    U3D_ARG(k, 5, p->weight_decay, err);
    U3D_ARG(k, 6, n, err);
    return launch1d(cl, k, "sgd_step", n, err);
}

u3d_status u3d_cl_axpy(u3d_backend *be, float alpha, cten *x, u3d_tensor *y,
                       u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "sgd", "axpy", NULL, &k, err));
    cl_mem xm = u3d_cl_mem(x), ym = u3d_cl_mem(y);
    cl_uint n = (cl_uint)u3d_shape_count(x->shape);
    U3D_ARG(k, 0, alpha, err);
    U3D_ARG(k, 1, xm, err);
    U3D_ARG(k, 2, ym, err);
    U3D_ARG(k, 3, n, err);
    return launch1d(cl, k, "axpy", n, err);
}
