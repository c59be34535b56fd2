/* OpenCL host routines of every layer, one file pair per layer:
 * src/backends/opencl/NAME.c + cl/NAME.cl. Shapes are validated by src/core/ops.c
 * before these run (internal header). */
#ifndef UNET3D_LAYERS_H
#define UNET3D_LAYERS_H
#include "backends/opencl/runtime.h"

u3d_status u3d_cl_conv3d_forward(u3d_backend *be, const u3d_conv3d_params *p, cten *x, cten *w, cten *b, u3d_tensor *y,
    u3d_error *err);
u3d_status u3d_cl_conv3d_backward_data(u3d_backend *be, const u3d_conv3d_params *p, cten *dy, cten *w, u3d_tensor *dx,
    u3d_error *err);
u3d_status u3d_cl_conv3d_backward_weight(u3d_backend *be, const u3d_conv3d_params *p, cten *x, cten *dy, u3d_tensor *dw, u3d_tensor *db,
    u3d_error *err);
/* the backend's conv3d_scratch_bytes (conv3d.c) */
size_t u3d_cl_conv3d_scratch_bytes(u3d_backend *be, int n,
                                   const u3d_conv3d_params *p,
                                   const u3d_shape *x, const u3d_shape *w);
u3d_status u3d_cl_upconv3d_forward(u3d_backend *be, cten *x, cten *w, cten *b, u3d_tensor *y,
    u3d_error *err);
u3d_status u3d_cl_upconv3d_backward_data(u3d_backend *be, cten *dy, cten *w, u3d_tensor *dx,
    u3d_error *err);
u3d_status u3d_cl_upconv3d_backward_weight(u3d_backend *be, cten *x, cten *dy, u3d_tensor *dw, u3d_tensor *db,
    u3d_error *err);
u3d_status u3d_cl_maxpool3d_forward(u3d_backend *be, cten *x, u3d_tensor *y,
    u3d_error *err);
u3d_status u3d_cl_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy, u3d_tensor *dx,
    u3d_error *err);
u3d_status u3d_cl_relu_forward(u3d_backend *be, cten *x, u3d_tensor *y,
    u3d_error *err);
u3d_status u3d_cl_relu_backward(u3d_backend *be, cten *y, cten *dy, u3d_tensor *dx,
    u3d_error *err);
u3d_status u3d_cl_batchnorm3d_forward_train(u3d_backend *be, const u3d_bn_params *p, cten *x, cten *gamma, cten *beta, u3d_tensor *running_mean, u3d_tensor *running_var, u3d_tensor *y, u3d_tensor *save_mean, u3d_tensor *save_invstd,
    u3d_error *err);
u3d_status u3d_cl_batchnorm3d_forward_infer(u3d_backend *be, const u3d_bn_params *p, cten *x, cten *gamma, cten *beta, cten *running_mean, cten *running_var, u3d_tensor *y,
    u3d_error *err);
u3d_status u3d_cl_batchnorm3d_backward(u3d_backend *be, cten *x, cten *dy, cten *gamma, cten *save_mean, cten *save_invstd, u3d_tensor *dx, u3d_tensor *dgamma, u3d_tensor *dbeta,
    u3d_error *err);
u3d_status u3d_cl_crop_concat_forward(u3d_backend *be, cten *skip, cten *up, u3d_tensor *y,
    u3d_error *err);
u3d_status u3d_cl_crop_concat_backward(u3d_backend *be, cten *dy, u3d_tensor *dskip, u3d_tensor *dup, int accumulate_skip,
    u3d_error *err);
u3d_status u3d_cl_softmax_ce(u3d_backend *be, cten *logits, cten *labels, cten *class_weights, int ignore_label, u3d_tensor *probs, u3d_tensor *dlogits, float *loss, float *weight_sum,
    u3d_error *err);
u3d_status u3d_cl_sgd_step(u3d_backend *be, const u3d_sgd_params *p, u3d_tensor *param, cten *grad, u3d_tensor *buf,
    u3d_error *err);
u3d_status u3d_cl_axpy(u3d_backend *be, float alpha, cten *x, u3d_tensor *y,
    u3d_error *err);

#endif
