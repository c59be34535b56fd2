/* The layer operations of the 3D U-Net, forward and backward.
 *
 * Every function validates shapes, then dispatches to the tensor's backend
 * (OpenCL, host reference, later cuDNN). All tensors of one call must live on
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

#ifdef __cplusplus
extern "C" {
#endif

/* Stride-1 convolution with a cubic kernel; pad 0 = valid, (k-1)/2 = same. */
typedef struct u3d_conv3d_params {
    int kernel; /* 1 or 3 in the U-Net; any odd or even size >= 1 works */
    int pad;    /* zero padding on every side, 0 <= pad < kernel */
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

/* y = conv(x, w) + b. b may be NULL. */
u3d_status u3d_conv3d_forward(const u3d_conv3d_params *p, const u3d_tensor *x,
                              const u3d_tensor *w, const u3d_tensor *b,
                              u3d_tensor *y, u3d_error *err);
/* dx = d(sum dy*y)/dx. */
u3d_status u3d_conv3d_backward_data(const u3d_conv3d_params *p,
                                    const u3d_tensor *dy, const u3d_tensor *w,
                                    u3d_tensor *dx, u3d_error *err);
/* dw (and db when not NULL) from x and dy, overwritten. */
u3d_status u3d_conv3d_backward_weight(const u3d_conv3d_params *p,
                                      const u3d_tensor *x, const u3d_tensor *dy,
                                      u3d_tensor *dw, u3d_tensor *db,
                                      u3d_error *err);

/* Transposed conv, kernel 2, stride 2: y spatial = 2 * x spatial. */
u3d_status u3d_upconv3d_forward(const u3d_tensor *x, const u3d_tensor *w,
                                const u3d_tensor *b, u3d_tensor *y,
                                u3d_error *err);
u3d_status u3d_upconv3d_backward_data(const u3d_tensor *dy,
                                      const u3d_tensor *w, u3d_tensor *dx,
                                      u3d_error *err);
u3d_status u3d_upconv3d_backward_weight(const u3d_tensor *x,
                                        const u3d_tensor *dy, u3d_tensor *dw,
                                        u3d_tensor *db, u3d_error *err);

/* Max-pool 2x2x2 stride 2, floor mode (a trailing odd voxel is dropped). */
u3d_status u3d_maxpool3d_forward(const u3d_tensor *x, u3d_tensor *y,
                                 u3d_error *err);
/* Routes dy to the first maximum of each window (PyTorch's tie rule);
 * dx is zero elsewhere, including dropped trailing voxels. */
u3d_status u3d_maxpool3d_backward(const u3d_tensor *x, const u3d_tensor *dy,
                                  u3d_tensor *dx, u3d_error *err);

/* y = max(x, 0); y may be x. */
u3d_status u3d_relu_forward(const u3d_tensor *x, u3d_tensor *y,
                            u3d_error *err);
/* dx = dy where y > 0 else 0; y is the forward output (or input); dx may be dy. */
u3d_status u3d_relu_backward(const u3d_tensor *y, const u3d_tensor *dy,
                             u3d_tensor *dx, u3d_error *err);

/* Training mode: batch mean and biased variance over N,D,H,W. gamma, beta
 * may be NULL (no affine). running_mean/var may be NULL (no update, as when
 * the paper normalises with batch statistics at inference); when given they
 * are updated in place, the variance with the unbiased estimate.
 * save_mean and save_invstd (1,C,1,1,1) receive what backward needs. */
u3d_status u3d_batchnorm3d_forward_train(
    const u3d_bn_params *p, const u3d_tensor *x, const u3d_tensor *gamma,
    const u3d_tensor *beta, u3d_tensor *running_mean, u3d_tensor *running_var,
    u3d_tensor *y, u3d_tensor *save_mean, u3d_tensor *save_invstd,
    u3d_error *err);
/* Inference with running statistics. */
u3d_status u3d_batchnorm3d_forward_infer(
    const u3d_bn_params *p, const u3d_tensor *x, const u3d_tensor *gamma,
    const u3d_tensor *beta, const u3d_tensor *running_mean,
    const u3d_tensor *running_var, u3d_tensor *y, u3d_error *err);
/* Backward of the training-mode forward. dgamma, dbeta may be NULL. */
u3d_status u3d_batchnorm3d_backward(
    const u3d_tensor *x, const u3d_tensor *dy, const u3d_tensor *gamma,
    const u3d_tensor *save_mean, const u3d_tensor *save_invstd,
    u3d_tensor *dx, u3d_tensor *dgamma, u3d_tensor *dbeta, u3d_error *err);

/* y = concat along C of [center-crop(skip) to up's D,H,W, up].
 * Crop offset per axis = (skip size - up size) / 2 (integer division). */
u3d_status u3d_crop_concat_forward(const u3d_tensor *skip,
                                   const u3d_tensor *up, u3d_tensor *y,
                                   u3d_error *err);
/* Splits dy: dup gets the last up.C channels; the first skip.C channels go
 * to the crop window of dskip. accumulate_skip != 0 adds into dskip (which
 * already holds the gradient from the pooling path); 0 overwrites dskip,
 * zero outside the window. */
u3d_status u3d_crop_concat_backward(const u3d_tensor *dy, u3d_tensor *dskip,
                                    u3d_tensor *dup, int accumulate_skip,
                                    u3d_error *err);

/* Softmax over C, then weighted cross-entropy:
 *   loss = sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]
 * over voxels whose label != ignore_label. class_weights (1,C,1,1,1).
 * probs and dlogits (same shape as logits) may be NULL. *loss receives the
 * loss (0 when no voxel is labeled), *weight_sum (may be NULL) sum_i w[y_i].
 * A label outside [0,C) that is not ignore_label is an error. */
u3d_status u3d_softmax_ce(const u3d_tensor *logits, const u3d_tensor *labels,
                          const u3d_tensor *class_weights, int ignore_label,
                          u3d_tensor *probs, u3d_tensor *dlogits, float *loss,
                          float *weight_sum, u3d_error *err);

/* One SGD step in place: buf = m*buf + g + wd*param; param -= lr*buf. */
u3d_status u3d_sgd_step(const u3d_sgd_params *p, u3d_tensor *param,
                        const u3d_tensor *grad, u3d_tensor *buf,
                        u3d_error *err);

/* y += alpha * x (same element count). */
u3d_status u3d_axpy(float alpha, const u3d_tensor *x, u3d_tensor *y,
                    u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
