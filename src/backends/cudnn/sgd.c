/* The cuDNN backend's SGD with momentum, Adam, and axpy: CUDA kernels of kernels.cu.
 * Argument arrays must match the kernels' parameter types exactly. */
#ifdef U3D_HAVE_CUDNN
#include "backends/cudnn/cudnn_internal.h"

u3d_status u3d_cudnn_sgd_step(u3d_backend *be, const u3d_sgd_params *p,
                              u3d_tensor *param, cten *grad, u3d_tensor *buf,
                              u3d_error *err)
{
    long long n = u3d_cudnn_count(param);
    float lr = p->lr, m = p->momentum, wd = p->weight_decay;
    float *w = u3d_cudnn_f(param), *b = u3d_cudnn_f(buf);
    const float *g = u3d_cudnn_f(grad);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, lr);
    U3D_KARG(k, m);
    U3D_KARG(k, wd);
    U3D_KARG(k, w);
    U3D_KARG(k, g);
    U3D_KARG(k, b);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_SGD, "sgd step",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

u3d_status u3d_cudnn_adam_step(u3d_backend *be, const u3d_adam_params *p,
                               u3d_tensor *param, cten *grad, u3d_tensor *m,
                               u3d_tensor *v, u3d_error *err)
{
    long long n = u3d_cudnn_count(param);
    float step_size, bc2;
    u3d_adam_corrections(p, &step_size, &bc2);
    double b1 = p->beta1, b2 = p->beta2;
    float eps = p->eps, wd = p->weight_decay;
    float *w = u3d_cudnn_f(param), *a = u3d_cudnn_f(m), *b = u3d_cudnn_f(v);
    const float *g = u3d_cudnn_f(grad);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, step_size);
    U3D_KARG(k, b1);
    U3D_KARG(k, b2);
    U3D_KARG(k, eps);
    U3D_KARG(k, wd);
    U3D_KARG(k, bc2);
    U3D_KARG(k, w);
    U3D_KARG(k, g);
    U3D_KARG(k, a);
    U3D_KARG(k, b);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_ADAM, "adam step",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

u3d_status u3d_cudnn_axpy(u3d_backend *be, float alpha, cten *x, u3d_tensor *y,
                          u3d_error *err)
{
    long long n = u3d_cudnn_count(x);
    const float *a = u3d_cudnn_f(x);
    float *b = u3d_cudnn_f(y);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, alpha);
    U3D_KARG(k, a);
    U3D_KARG(k, b);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_AXPY, "axpy",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

#else
typedef int u3d_cudnn_sgd_unused;
#endif
