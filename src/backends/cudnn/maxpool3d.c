/* The cuDNN backend's 2x2x2 max-pooling with PyTorch's first-maximum tie rule (which cuDNN's
 * pooling does not promise): CUDA kernels of kernels.cu.
 * Argument arrays must match the kernels' parameter types exactly. */
#ifdef U3D_HAVE_CUDNN
#include "backends/cudnn/cudnn_internal.h"

u3d_status u3d_cudnn_maxpool3d_forward(u3d_backend *be, cten *x,
                                       u3d_tensor *y, u3d_error *err)
{
    u3d_shape s = x->shape, o = y->shape;
    long long total = u3d_cudnn_count(y);
    const float *a = u3d_cudnn_f(x);
    float *b = u3d_cudnn_f(y);
    u3d_kargs k = {0};
    U3D_KARG(k, a);
    U3D_KARG(k, b);
    U3D_KARG(k, s.d);
    U3D_KARG(k, s.h);
    U3D_KARG(k, s.w);
    U3D_KARG(k, o.d);
    U3D_KARG(k, o.h);
    U3D_KARG(k, o.w);
    U3D_KARG(k, total);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_MAXPOOL_FWD,
                            "maxpool forward", u3d_cudnn_blocks(total), 1, &k,
                            err);
}

u3d_status u3d_cudnn_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy,
                                        u3d_tensor *dx, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_shape s = x->shape, o = dy->shape;
    long long total = u3d_cudnn_count(dy);
    const float *a = u3d_cudnn_f(x), *g = u3d_cudnn_f(dy);
    float *d = u3d_cudnn_f(dx);
    /* zero first: non-maxima and dropped trailing voxels stay 0 */
    U3D_TRY(u3d_cudnn_fill(cx, d, (size_t)u3d_cudnn_count(dx), 0.0f, err));
    u3d_kargs k = {0};
    U3D_KARG(k, a);
    U3D_KARG(k, g);
    U3D_KARG(k, d);
    U3D_KARG(k, s.d);
    U3D_KARG(k, s.h);
    U3D_KARG(k, s.w);
    U3D_KARG(k, o.d);
    U3D_KARG(k, o.h);
    U3D_KARG(k, o.w);
    U3D_KARG(k, total);
    return u3d_cudnn_launch(cx, K_MAXPOOL_BWD, "maxpool backward",
                            u3d_cudnn_blocks(total), 1, &k, err);
}

#else
typedef int u3d_cudnn_maxpool3d_unused;
#endif
