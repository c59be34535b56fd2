/* SGD and Adam steps and axpy on OpenCL (cl/sgd.cl): elementwise, VW floats per
 * work-item. */
#include "backends/opencl/opencl.h"
#include "backends/opencl/reduce.h"

u3d_status u3d_cl_sgd_step(u3d_backend *be, const u3d_sgd_params *p,
                           u3d_tensor *param, cten *grad, u3d_tensor *buf,
                           u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, "sgd", "sgd_step", &k, &vw, err));
    cl_mem pm = u3d_cl_mem(param), gm = u3d_cl_mem(grad), bm = u3d_cl_mem(buf);
    size_t count = u3d_shape_count(param->shape);
    cl_uint n = (cl_uint)count;
    U3D_ARG(k, 0, pm, err);
    U3D_ARG(k, 1, gm, err);
    U3D_ARG(k, 2, bm, err);
    U3D_ARG(k, 3, p->lr, err);
    U3D_ARG(k, 4, p->momentum, err);
    U3D_ARG(k, 5, p->weight_decay, err);
    U3D_ARG(k, 6, n, err);
    return u3d_ew_launch(cl, k, "sgd_step", count, vw, err);
}

u3d_status u3d_cl_adam_step(u3d_backend *be, const u3d_adam_params *p,
                            u3d_tensor *param, cten *grad, u3d_tensor *m,
                            u3d_tensor *v, u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, "sgd", "adam_step", &k, &vw, err));
    cl_mem pm = u3d_cl_mem(param), gm = u3d_cl_mem(grad);
    cl_mem mm = u3d_cl_mem(m), vm = u3d_cl_mem(v);
    size_t count = u3d_shape_count(param->shape);
    cl_uint n = (cl_uint)count;
    float step_size, bc2;
    u3d_adam_corrections(p, &step_size, &bc2);
    float inv_bc2 = 1.0f / bc2;
    /* 1 - beta from the double betas: closest to PyTorch's */
    float b1 = (float)p->beta1, c1 = (float)(1.0 - p->beta1);
    float b2 = (float)p->beta2, c2 = (float)(1.0 - p->beta2);
    U3D_ARG(k, 0, pm, err);
    U3D_ARG(k, 1, gm, err);
    U3D_ARG(k, 2, mm, err);
    U3D_ARG(k, 3, vm, err);
    U3D_ARG(k, 4, step_size, err);
    U3D_ARG(k, 5, b1, err);
    U3D_ARG(k, 6, c1, err);
    U3D_ARG(k, 7, b2, err);
    U3D_ARG(k, 8, c2, err);
    U3D_ARG(k, 9, p->eps, err);
    U3D_ARG(k, 10, p->weight_decay, err);
    U3D_ARG(k, 11, inv_bc2, err);
    U3D_ARG(k, 12, n, err);
    return u3d_ew_launch(cl, k, "adam_step", count, vw, err);
}

u3d_status u3d_cl_axpy(u3d_backend *be, float alpha, cten *x, u3d_tensor *y,
                       u3d_error *err)
{
    u3d_cl *cl = u3d_cl_of(be);
    cl_kernel k;
    int vw;
    U3D_TRY(u3d_ew_kernel(cl, "sgd", "axpy", &k, &vw, err));
    cl_mem xm = u3d_cl_mem(x), ym = u3d_cl_mem(y);
    size_t count = u3d_shape_count(x->shape);
    cl_uint n = (cl_uint)count;
    U3D_ARG(k, 0, alpha, err);
    U3D_ARG(k, 1, xm, err);
    U3D_ARG(k, 2, ym, err);
    U3D_ARG(k, 3, n, err);
    return u3d_ew_launch(cl, k, "axpy", count, vw, err);
}
