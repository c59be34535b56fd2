/* The cuDNN backend's center crop + concat along channels, and its backward: CUDA kernels of kernels.cu.
 * Argument arrays must match the kernels' parameter types exactly. */
#ifdef U3D_HAVE_CUDNN
#include "backends/cudnn/cudnn_internal.h"

u3d_status u3d_cudnn_crop_concat_forward(u3d_backend *be, cten *skip,
                                         cten *up, u3d_tensor *y,
                                         u3d_error *err)
{
    u3d_shape k = skip->shape, u = up->shape;
    int oz = (k.d - u.d) / 2, oy = (k.h - u.h) / 2, ox = (k.w - u.w) / 2;
    const float *ks = u3d_cudnn_f(skip), *us = u3d_cudnn_f(up);
    float *ys = u3d_cudnn_f(y);
    u3d_kargs a = {0};
    U3D_KARG(a, ks);
    U3D_KARG(a, us);
    U3D_KARG(a, ys);
    U3D_KARG(a, u.n);
    U3D_KARG(a, k.c);
    U3D_KARG(a, k.d);
    U3D_KARG(a, k.h);
    U3D_KARG(a, k.w);
    U3D_KARG(a, u.c);
    U3D_KARG(a, u.d);
    U3D_KARG(a, u.h);
    U3D_KARG(a, u.w);
    U3D_KARG(a, oz);
    U3D_KARG(a, oy);
    U3D_KARG(a, ox);
    long long total = u3d_cudnn_count(y);
    return u3d_cudnn_launch(u3d_cudnn_of(be), K_CROP_FWD,
                            "crop-concat forward", u3d_cudnn_blocks(total), 1,
                            &a, err);
}

u3d_status u3d_cudnn_crop_concat_backward(u3d_backend *be, cten *dy,
                                          u3d_tensor *dskip, u3d_tensor *dup,
                                          int accumulate_skip, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    u3d_shape k = dskip->shape, u = dup->shape;
    int oz = (k.d - u.d) / 2, oy = (k.h - u.h) / 2, ox = (k.w - u.w) / 2;
    int acc = accumulate_skip != 0;
    const float *g = u3d_cudnn_f(dy);
    float *ds = u3d_cudnn_f(dskip), *du = u3d_cudnn_f(dup);
    u3d_kargs a1 = {0}, a2 = {0};
    U3D_KARG(a1, g);
    U3D_KARG(a1, ds);
    U3D_KARG(a1, u.n);
    U3D_KARG(a1, k.c);
    U3D_KARG(a1, k.d);
    U3D_KARG(a1, k.h);
    U3D_KARG(a1, k.w);
    U3D_KARG(a1, u.c);
    U3D_KARG(a1, u.d);
    U3D_KARG(a1, u.h);
    U3D_KARG(a1, u.w);
    U3D_KARG(a1, oz);
    U3D_KARG(a1, oy);
    U3D_KARG(a1, ox);
    U3D_KARG(a1, acc);
    U3D_TRY(u3d_cudnn_launch(cx, K_CROP_BWD_SKIP, "crop-concat backward (skip)",
                             u3d_cudnn_blocks(u3d_cudnn_count(dskip)), 1, &a1,
                             err));
    long long P = (long long)u3d_shape_spatial(u);
    U3D_KARG(a2, g);
    U3D_KARG(a2, du);
    U3D_KARG(a2, u.n);
    U3D_KARG(a2, k.c);
    U3D_KARG(a2, u.c);
    U3D_KARG(a2, P);
    return u3d_cudnn_launch(cx, K_CROP_BWD_UP, "crop-concat backward (up)",
                            u3d_cudnn_blocks(u3d_cudnn_count(dup)), 1, &a2, err);
}

#else
typedef int u3d_cudnn_crop_concat_unused;
#endif
