/* The layer operations of the 3D U-Net, forward and backward.
 *
 * Every function validates shapes, then dispatches to the tensor's backend
 * (OpenCL, host reference, cuDNN). The ops and their contracts are listed
 * once, in op_list.h. All tensors of one call must live on
 * the same backend. Outputs are overwritten unless a comment says otherwise.
 * Shapes (N,C,D,H,W):
 *   conv3d weight  (Cout, Cin, k, k, k), bias (1, Cout, 1, 1, 1)
 *   upconv3d weight (Cin, Cout, 2, 2, 2) (PyTorch layout), bias (1,Cout,1,1,1)
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

/* Stride-1 convolution with a cubic kernel; pad 0 = valid, (k-1)/2 = same. */
typedef struct u3d_conv3d_params {
    int kernel; /* 1 or 3 in the U-Net; any odd or even size >= 1 works */
    int pad;    /* zero padding on every side, 0 <= pad < kernel */
    int relu;   /* forward only: y = max(conv + bias, 0) in the same pass
                   (inference); 0 in the backward passes */
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

/* Output spatial size of a conv: in + 2*pad - kernel + 1. */
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
