/* ReLU on OpenCL (cl/relu.cl): elementwise, VW floats per work-item. */
#include "backends/opencl/opencl.h"
#include "backends/opencl/reduce.h"

u3d_status u3d_cl_relu_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                               u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, "relu", "relu_forward", &k, &vw, err));
    cl_mem xm = u3d_cl_mem(x), ym = u3d_cl_mem(y);
    size_t count = u3d_shape_count(x->shape);
    cl_uint n = (cl_uint)count;
    U3D_ARG(k, 0, xm, err);
    U3D_ARG(k, 1, ym, err);
    U3D_ARG(k, 2, n, err);
    return u3d_ew_launch(cl, k, "relu_forward", count, vw, err);
}

u3d_status u3d_cl_relu_backward(u3d_backend *be, cten *y, cten *dy,
                                u3d_tensor *dx, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, "relu", "relu_backward", &k, &vw, err));
    cl_mem ym = u3d_cl_mem(y), dym = u3d_cl_mem(dy), dxm = u3d_cl_mem(dx);
    size_t count = u3d_shape_count(y->shape);
    cl_uint n = (cl_uint)count;
    U3D_ARG(k, 0, ym, err);
    U3D_ARG(k, 1, dym, err);
    U3D_ARG(k, 2, dxm, err);
    U3D_ARG(k, 3, n, err);
    return u3d_ew_launch(cl, k, "relu_backward", count, vw, err);
}
