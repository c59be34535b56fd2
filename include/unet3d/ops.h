/* The layer operations of the 3D U-Net, forward and backward.
 *
 * Every function validates shapes, then dispatches to the tensor's backend
 * (OpenCL, host reference, cuDNN). The ops and their contracts are listed
 * once, in op_list.h. All tensors of one call must live on
 * the same backend. Outputs are overwritten unless a comment says otherwise.
 * Shapes (N,C,D,H,W):
 *   conv3d weight  (Cout, Cin, kd, kh, kw), bias (1, Cout, 1, 1, 1)
 *   upconv3d weight (Cin, Cout, fd, fh, fw) (PyTorch layout; 2x2x2 or
 *     1x2x2, kernel = stride per axis), bias (1,Cout,1,1,1)
 *   maxpool3d window per axis 1 or 2, read from y's shape
 *   batch-norm parameters and statistics (1, C, 1, 1, 1)
 *   labels (N, 1, D, H, W) int32
 */
#ifndef UNET3D_OPS_H
#define UNET3D_OPS_H

#include "unet3d/tensor.h"
#include "unet3d/op_list.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Stride-1 convolution; pad 0 = valid, (k-1)/2 = same. The kernel is cubic
 * (kernel, pad) unless kernel3 is set: then per axis (D, H, W), e.g.
 * {1, 3, 3} with pad3 {0, 1, 1} for anisotropic voxels, and kernel and pad
 * are ignored. Cubic callers ({.kernel = 3, .pad = 1}) need not change. */
typedef struct u3d_conv3d_params {
    int kernel; /* 1 or 3 in the U-Net; any odd or even size >= 1 works */
    int pad;    /* zero padding on every side, 0 <= pad < kernel */
    int relu;   /* forward only: y = max(conv + bias, 0) in the same pass
                   (inference); 0 in the backward passes */
    int kernel3[3]; /* per-axis kernel (D, H, W); all 0: cubic `kernel` */
    int pad3[3];    /* per-axis padding when kernel3 is set,
                       0 <= pad3[a] < kernel3[a] */
    /* nonzero: the caller promises that w is the same between calls with
     * the same w and weights_version (a training step's forward and data
     * gradient), so a backend may keep what it derives from w from one
     * to the other (the OpenCL backend: the Winograd transform of the
     * weights); 0: no promise, derived anew */
    unsigned long long weights_version;
} u3d_conv3d_params;

typedef struct u3d_bn_params {
    float eps;      /* added to the variance, PyTorch default 1e-5 */
    float momentum; /* running = (1-m)*running + m*batch, default 0.1 */
} u3d_bn_params;

typedef struct u3d_sgd_params {
    float lr;
    float momentum;     /* PyTorch semantics, dampening 0 */
    float weight_decay; /* added to the gradient as wd*param */
} u3d_sgd_params;

/* Adam (Kingma & Ba 2015) with PyTorch's semantics (torch.optim.Adam,
 * amsgrad off, L2 weight decay added to the gradient). step counts the
 * updates including this one (>= 1): the bias corrections use it. */
typedef struct u3d_adam_params {
    float lr;
    /* PyTorch defaults 0.9, 0.999; double as PyTorch's (in float, 1 - 0.999
     * would be off by 1.3e-5 relative) */
    double beta1, beta2;
    float eps;          /* added to sqrt(v_hat), default 1e-8 */
    float weight_decay;
    long step;
} u3d_adam_params;

/* The kernel and padding of p per axis (D, H, W), cubic or not. */
void u3d_conv3d_axes(const u3d_conv3d_params *p, int k[3], int pad[3]);

/* A per-axis convolution's parameters (kernel and pad zeroed). */
u3d_conv3d_params u3d_conv3d_params3(const int k[3], const int pad[3],
                                     int relu);

/* Output size of a conv along axis (0 D, 1 H, 2 W):
 * in + 2*pad - kernel + 1. */
int u3d_conv3d_out_size_axis(int in, const u3d_conv3d_params *p, int axis);

/* The same for a cubic kernel (axis W of a per-axis one). */
int u3d_conv3d_out_size(int in, const u3d_conv3d_params *p);

struct aug_consts;

/* Every op of the backends, from the one list (op_list.h). */
typedef enum u3d_op {
#define U3D_X(E, name, params) U3D_OP_##E,
    U3D_OPS(U3D_X)
#undef U3D_X
    U3D_OP_COUNT
} u3d_op;

/* "conv3d_forward", ...; NULL for an op outside [0, U3D_OP_COUNT). */
const char *u3d_op_name(u3d_op op);

/* The public ops: each validates shapes (src/core/ops.c), then runs on the
 * backend of its tensors; see op_list.h for the contracts. */
#define U3D_X(E, name, params)                                                 \
    u3d_status u3d_##name(U3D_OP_PARAMS_UNWRAP params, u3d_error *err);
U3D_PUBLIC_OPS(U3D_X)
#undef U3D_X

#ifdef __cplusplus
}
#endif
#endif
