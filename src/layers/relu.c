/* ReLU on OpenCL (cl/relu.cl). */
#include "layers/layers.h"

#define LWS 256

u3d_status u3d_cl_relu_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                               u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "relu", "relu_forward", NULL, &k, err));
    cl_mem xm = u3d_cl_mem(x), ym = u3d_cl_mem(y);
    cl_uint n = (cl_uint)u3d_shape_count(x->shape);
    U3D_ARG(k, 0, xm, err);
    U3D_ARG(k, 1, ym, err);
    U3D_ARG(k, 2, n, err);
    size_t g = n, l = LWS;
    return u3d_cl_launch(cl, k, "relu_forward", 1, &g, &l, err);
}

u3d_status u3d_cl_relu_backward(u3d_backend *be, cten *y, cten *dy,
                                u3d_tensor *dx, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    U3D_TRY(u3d_cl_kernel_get(cl, "relu", "relu_backward", NULL, &k, err));
    cl_mem ym = u3d_cl_mem(y), dym = u3d_cl_mem(dy), dxm = u3d_cl_mem(dx);
    cl_uint n = (cl_uint)u3d_shape_count(y->shape);
    U3D_ARG(k, 0, ym, err);
    U3D_ARG(k, 1, dym, err);
    U3D_ARG(k, 2, dxm, err);
    U3D_ARG(k, 3, n, err);
    size_t g = n, l = LWS;
    return u3d_cl_launch(cl, k, "relu_backward", 1, &g, &l, err);
}
