/* The one list of the backends' operations.
 *
 * Every op is one X(ENUM, name, (parameters)) line. From it come the public
 * enum u3d_op and its names (ops.h), the public u3d_NAME declarations
 * (ops.h, for the public ops), the backend function table
 * (src/core/backend_impl.h) and each backend's table and prototypes
 * (U3D_BACKEND_OP_TABLE / U3D_BACKEND_DECLARE_OPS there). Adding an op
 * means: a line here, its validation in src/core/ops.c, and one file per
 * backend defining u3d_<backend>_NAME; a backend without it fails to link
 * with "undefined reference to u3d_<backend>_NAME", and the op-test table
 * (tests/test_ops.c) fails for an op without cases.
 *
 * The parameters are the public function's; a backend's function takes
 * (u3d_backend *be, parameters..., u3d_error *err). Contracts:
 *
 * conv3d: stride-1 convolution with a kernel cubic or per axis
 *   (u3d_conv3d_params.kernel3: 1x3x3 for anisotropic voxels), weight
 *   (Cout, Cin, kd, kh, kw), bias (1, Cout, 1, 1, 1) or NULL; forward
 *   y = conv(x, w) + b (p->relu: max(0, .) fused into the store);
 *   backward_data dx = d(sum dy*y)/dx; backward_weight
 *   dw (and db when not NULL) from x and dy, overwritten.
 * upconv3d: transposed conv, kernel = stride = f per axis, f the weight's
 *   spatial size, 1 or 2 per axis (2x2x2; 1x2x2 for anisotropic levels; y =
 *   f * x spatial); weight (Cin, Cout, fd, fh, fw) (PyTorch layout), bias
 *   (1, Cout, 1, 1, 1) or NULL; the same three passes.
 * maxpool3d: window = stride = 2 or 1 per axis, floor mode (a trailing odd
 *   voxel is dropped); the window comes from y's (dy's) shape: an axis
 *   where y is x's size has window 1 (1x2x2 pooling), else y = x / 2;
 *   backward routes dy to the first maximum of each window (PyTorch's tie
 *   rule), dx is zero elsewhere, including dropped trailing voxels.
 * relu: y = max(x, 0), y may be x; backward dx = dy where y > 0 else 0, y
 *   the forward output (or input), dx may be dy.
 * batchnorm3d: parameters and statistics (1, C, 1, 1, 1). forward_train:
 *   batch mean and biased variance over N,D,H,W; gamma, beta may be NULL
 *   (no affine); running_mean/var may be NULL (no update, as when the paper
 *   normalises with batch statistics at inference), else updated in place,
 *   the variance with the unbiased estimate; save_mean and save_invstd
 *   receive what backward needs. forward_infer: running statistics.
 *   backward of the training-mode forward; dgamma, dbeta may be NULL.
 *   y may be x in both forwards.
 * crop_concat: y = concat along C of [center-crop(skip) to up's D,H,W, up],
 *   crop offset per axis (skip size - up size) / 2. backward splits dy: dup
 *   gets the last up.C channels, the first skip.C channels go to the crop
 *   window of dskip; accumulate_skip != 0 adds into dskip (which holds the
 *   gradient of the pooling path), 0 overwrites it, zero outside the window.
 * softmax_ce: softmax over C, then weighted cross-entropy
 *   loss = sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i] over voxels whose
 *   label (N, 1, D, H, W int32) != ignore_label; class_weights (1,C,1,1,1);
 *   probs and dlogits (shape of logits) may be NULL; *loss receives the loss
 *   (0 when no voxel is labeled), *weight_sum (may be NULL) sum_i w[y_i]. A
 *   label outside [0,C) that is not ignore_label is an error.
 * sgd_step: in place, buf = m*buf + g + wd*param; param -= lr*buf.
 * adam_step: in place, g = grad + wd*param; m = b1*m + (1-b1)*g;
 *   v = b2*v + (1-b2)*g*g; param -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t)
 *   + eps), t = p->step.
 * axpy: y += alpha * x (same element count).
 * augment_sample (internal): one augmented patch from constants prepared by
 *   augment.c; src_labels/out_labels may be NULL. */
#ifndef UNET3D_OP_LIST_H
#define UNET3D_OP_LIST_H

#define U3D_OP_PARAMS_UNWRAP(...) __VA_ARGS__

/* The ops of the public API (ops.h declares u3d_NAME for each). */
#define U3D_PUBLIC_OPS(X)                                                      \
    X(CONV3D_FORWARD, conv3d_forward,                                          \
      (const u3d_conv3d_params *p, const u3d_tensor *x, const u3d_tensor *w,   \
       const u3d_tensor *b, u3d_tensor *y))                                    \
    X(CONV3D_BACKWARD_DATA, conv3d_backward_data,                              \
      (const u3d_conv3d_params *p, const u3d_tensor *dy, const u3d_tensor *w,  \
       u3d_tensor *dx))                                                        \
    X(CONV3D_BACKWARD_WEIGHT, conv3d_backward_weight,                          \
      (const u3d_conv3d_params *p, const u3d_tensor *x, const u3d_tensor *dy,  \
       u3d_tensor *dw, u3d_tensor *db))                                        \
    X(UPCONV3D_FORWARD, upconv3d_forward,                                      \
      (const u3d_tensor *x, const u3d_tensor *w, const u3d_tensor *b,          \
       u3d_tensor *y))                                                         \
    X(UPCONV3D_BACKWARD_DATA, upconv3d_backward_data,                          \
      (const u3d_tensor *dy, const u3d_tensor *w, u3d_tensor *dx))             \
    X(UPCONV3D_BACKWARD_WEIGHT, upconv3d_backward_weight,                      \
      (const u3d_tensor *x, const u3d_tensor *dy, u3d_tensor *dw,              \
       u3d_tensor *db))                                                        \
    X(MAXPOOL3D_FORWARD, maxpool3d_forward,                                    \
      (const u3d_tensor *x, u3d_tensor *y))                                    \
    X(MAXPOOL3D_BACKWARD, maxpool3d_backward,                                  \
      (const u3d_tensor *x, const u3d_tensor *dy, u3d_tensor *dx))             \
    X(RELU_FORWARD, relu_forward, (const u3d_tensor *x, u3d_tensor *y))        \
    X(RELU_BACKWARD, relu_backward,                                            \
      (const u3d_tensor *y, const u3d_tensor *dy, u3d_tensor *dx))             \
    X(BATCHNORM3D_FORWARD_TRAIN, batchnorm3d_forward_train,                    \
      (const u3d_bn_params *p, const u3d_tensor *x, const u3d_tensor *gamma,   \
       const u3d_tensor *beta, u3d_tensor *running_mean,                       \
       u3d_tensor *running_var, u3d_tensor *y, u3d_tensor *save_mean,          \
       u3d_tensor *save_invstd))                                               \
    X(BATCHNORM3D_FORWARD_INFER, batchnorm3d_forward_infer,                    \
      (const u3d_bn_params *p, const u3d_tensor *x, const u3d_tensor *gamma,   \
       const u3d_tensor *beta, const u3d_tensor *running_mean,                 \
       const u3d_tensor *running_var, u3d_tensor *y))                          \
    X(BATCHNORM3D_BACKWARD, batchnorm3d_backward,                              \
      (const u3d_tensor *x, const u3d_tensor *dy, const u3d_tensor *gamma,     \
       const u3d_tensor *save_mean, const u3d_tensor *save_invstd,             \
       u3d_tensor *dx, u3d_tensor *dgamma, u3d_tensor *dbeta))                 \
    X(CROP_CONCAT_FORWARD, crop_concat_forward,                                \
      (const u3d_tensor *skip, const u3d_tensor *up, u3d_tensor *y))           \
    X(CROP_CONCAT_BACKWARD, crop_concat_backward,                              \
      (const u3d_tensor *dy, u3d_tensor *dskip, u3d_tensor *dup,               \
       int accumulate_skip))                                                   \
    X(SOFTMAX_CE, softmax_ce,                                                  \
      (const u3d_tensor *logits, const u3d_tensor *labels,                     \
       const u3d_tensor *class_weights, int ignore_label, u3d_tensor *probs,   \
       u3d_tensor *dlogits, float *loss, float *weight_sum))                   \
    X(SGD_STEP, sgd_step,                                                      \
      (const u3d_sgd_params *p, u3d_tensor *param, const u3d_tensor *grad,     \
       u3d_tensor *buf))                                                       \
    X(ADAM_STEP, adam_step,                                                    \
      (const u3d_adam_params *p, u3d_tensor *param, const u3d_tensor *grad,    \
       u3d_tensor *m, u3d_tensor *v))                                          \
    X(AXPY, axpy, (float alpha, const u3d_tensor *x, u3d_tensor *y))

/* Every op a backend implements: the public ones and those the library
 * calls with internal types (struct aug_consts: augment.c's prepared
 * per-sample constants). */
#define U3D_OPS(X)                                                             \
    U3D_PUBLIC_OPS(X)                                                          \
    X(AUGMENT_SAMPLE, augment_sample,                                          \
      (const struct aug_consts *plan, const u3d_tensor *src_image,             \
       const u3d_tensor *src_labels, u3d_tensor *out_image,                    \
       u3d_tensor *out_labels))

#endif
