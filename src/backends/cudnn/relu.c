/* The cuDNN backend's ReLU forward and backward: CUDA kernels of kernels.cu.
 * Argument arrays must match the kernels' parameter types exactly. */
#ifdef U3D_HAVE_CUDNN
#include "backends/cudnn/cudnn_internal.h"

u3d_status u3d_cudnn_relu_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                                  u3d_error *err)
{
    long long n = u3d_cudnn_count(x);
    const float *a = u3d_cudnn_f(x);
    float *b = u3d_cudnn_f(y);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, a);
    U3D_KARG(k, b);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_RELU_FWD, "relu forward",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

u3d_status u3d_cudnn_relu_backward(u3d_backend *be, cten *y, cten *dy,
                                   u3d_tensor *dx, u3d_error *err)
{
    long long n = u3d_cudnn_count(y);
    const float *a = u3d_cudnn_f(y), *g = u3d_cudnn_f(dy);
    float *o = u3d_cudnn_f(dx);
    u3d_kargs k = {0};
    U3D_KARG(k, n);
    U3D_KARG(k, a);
    U3D_KARG(k, g);
    U3D_KARG(k, o);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_RELU_BWD, "relu backward",
                            u3d_cudnn_blocks(n), 1, &k, err);
}

#else
typedef int u3d_cudnn_relu_unused;
#endif
