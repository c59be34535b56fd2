/* The backend seam: a struct of function pointers per compute backend.
 *
 * Layers and the network call the u3d_* operations of ops.h, which validate
 * shapes once and dispatch through these pointers, so adding a backend
 * (cuDNN) never touches their callers. An op a backend lacks is NULL and
 * reported as unsupported. Backend functions may assume validated shapes. */
#ifndef UNET3D_BACKEND_H
#define UNET3D_BACKEND_H

#include <stdio.h>
#include "unet3d/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef const u3d_tensor cten;
/* Per-sample constants of an augmentation (cl/augment.cl, shared by the
 * host code): opaque to the seam. */
struct aug_consts;

typedef struct u3d_backend_ops {
    /* memory */
    u3d_status (*buffer_alloc)(u3d_backend *be, size_t bytes, void **buf,
                               u3d_error *err);
    void (*buffer_free)(u3d_backend *be, void *buf);
    u3d_status (*buffer_write)(u3d_backend *be, void *buf, size_t offset,
                               size_t bytes, const void *src, u3d_error *err);
    u3d_status (*buffer_read)(u3d_backend *be, const void *buf, size_t offset,
                              size_t bytes, void *dst, u3d_error *err);
    u3d_status (*buffer_fill)(u3d_backend *be, void *buf, size_t count,
                              float value, u3d_error *err);
    u3d_status (*buffer_copy)(u3d_backend *be, void *dst, size_t dst_off,
                              const void *src, size_t src_off, size_t bytes,
                              u3d_error *err);
    /* waits for queued work; reports asynchronous failures */
    u3d_status (*finish)(u3d_backend *be, u3d_error *err);
    void (*destroy)(u3d_backend *be);

    /* operations, see ops.h for the contracts */
    u3d_status (*conv3d_forward)(u3d_backend *, const u3d_conv3d_params *,
                                 cten *x, cten *w, cten *b, u3d_tensor *y,
                                 u3d_error *);
    u3d_status (*conv3d_backward_data)(u3d_backend *, const u3d_conv3d_params *,
                                       cten *dy, cten *w, u3d_tensor *dx,
                                       u3d_error *);
    u3d_status (*conv3d_backward_weight)(u3d_backend *,
                                         const u3d_conv3d_params *, cten *x,
                                         cten *dy, u3d_tensor *dw,
                                         u3d_tensor *db, u3d_error *);
    u3d_status (*upconv3d_forward)(u3d_backend *, cten *x, cten *w, cten *b,
                                   u3d_tensor *y, u3d_error *);
    u3d_status (*upconv3d_backward_data)(u3d_backend *, cten *dy, cten *w,
                                         u3d_tensor *dx, u3d_error *);
    u3d_status (*upconv3d_backward_weight)(u3d_backend *, cten *x, cten *dy,
                                           u3d_tensor *dw, u3d_tensor *db,
                                           u3d_error *);
    u3d_status (*maxpool3d_forward)(u3d_backend *, cten *x, u3d_tensor *y,
                                    u3d_error *);
    u3d_status (*maxpool3d_backward)(u3d_backend *, cten *x, cten *dy,
                                     u3d_tensor *dx, u3d_error *);
    u3d_status (*relu_forward)(u3d_backend *, cten *x, u3d_tensor *y,
                               u3d_error *);
    u3d_status (*relu_backward)(u3d_backend *, cten *y, cten *dy,
                                u3d_tensor *dx, u3d_error *);
    u3d_status (*batchnorm3d_forward_train)(
        u3d_backend *, const u3d_bn_params *, cten *x, cten *gamma, cten *beta,
        u3d_tensor *running_mean, u3d_tensor *running_var, u3d_tensor *y,
        u3d_tensor *save_mean, u3d_tensor *save_invstd, u3d_error *);
    u3d_status (*batchnorm3d_forward_infer)(u3d_backend *,
                                            const u3d_bn_params *, cten *x,
                                            cten *gamma, cten *beta,
                                            cten *running_mean,
                                            cten *running_var, u3d_tensor *y,
                                            u3d_error *);
    u3d_status (*batchnorm3d_backward)(u3d_backend *, cten *x, cten *dy,
                                       cten *gamma, cten *save_mean,
                                       cten *save_invstd, u3d_tensor *dx,
                                       u3d_tensor *dgamma, u3d_tensor *dbeta,
                                       u3d_error *);
    u3d_status (*crop_concat_forward)(u3d_backend *, cten *skip, cten *up,
                                      u3d_tensor *y, u3d_error *);
    u3d_status (*crop_concat_backward)(u3d_backend *, cten *dy,
                                       u3d_tensor *dskip, u3d_tensor *dup,
                                       int accumulate_skip, u3d_error *);
    u3d_status (*softmax_ce)(u3d_backend *, cten *logits, cten *labels,
                             cten *class_weights, int ignore_label,
                             u3d_tensor *probs, u3d_tensor *dlogits,
                             float *loss, float *weight_sum, u3d_error *);
    u3d_status (*sgd_step)(u3d_backend *, const u3d_sgd_params *,
                           u3d_tensor *param, cten *grad, u3d_tensor *buf,
                           u3d_error *);
    u3d_status (*axpy)(u3d_backend *, float alpha, cten *x, u3d_tensor *y,
                       u3d_error *);
    /* one augmented patch (augment.h); src_labels/out_labels may be NULL */
    u3d_status (*augment_sample)(u3d_backend *, const struct aug_consts *plan,
                                 cten *src_image, cten *src_labels,
                                 u3d_tensor *out_image, u3d_tensor *out_labels,
                                 u3d_error *);
    /* optional: device bytes the backend holds besides tensors (kernel
     * scratch, workspaces), which only grow; NULL: none */
    size_t (*scratch_bytes)(u3d_backend *);
    /* optional: the most device bytes of scratch the backend holds while
     * conv3d_forward runs the n convolutions p[i] of inputs x[i] with
     * weights w[i] (each any number of times, in any order), for memory
     * planning; NULL: none */
    size_t (*conv3d_scratch_bytes)(u3d_backend *, int n,
                                   const u3d_conv3d_params *p,
                                   const u3d_shape *x, const u3d_shape *w);
} u3d_backend_ops;

struct u3d_backend {
    const u3d_backend_ops *ops;
    void *ctx;          /* backend private state */
    char name[32];      /* "opencl", "ref", "cudnn" */
    char device[256];   /* human readable device description */
    /* device bytes held in tensors now, and the most since creation (or
     * u3d_backend_memory_reset): kept by u3d_tensor_create/_release */
    size_t tensor_bytes, tensor_peak;
    /* the device's memory and largest single buffer in bytes, set by the
     * backend at creation; 0: unknown (the reference backend's host) */
    size_t mem_total, max_alloc;
};

typedef struct u3d_backend_config {
    const char *backend; /* "opencl" (default), "ref" or "cudnn"; NULL: env
                            UNET3D_BACKEND, then "opencl" */
    const char *device;  /* OpenCL device: "P:D" indices or a case-insensitive
                            substring of platform/device name; NULL: env
                            UNET3D_DEVICE, then the first GPU, then any */
    int profile;         /* per-kernel timing, printed by destroy; also env
                            UNET3D_PROFILE=1 */
} u3d_backend_config;

u3d_status u3d_backend_create(const u3d_backend_config *cfg,
                              u3d_backend **out, u3d_error *err);
void u3d_backend_destroy(u3d_backend *be);
u3d_status u3d_backend_finish(u3d_backend *be, u3d_error *err);
/* Device memory the backend holds now and at most (tensors and its own
 * scratch), in bytes: what a budget such as predict's --max-memory is
 * checked against. peak bounds the true high-water mark from above (it
 * adds the scratch's current, grow-only size to the tensors' peak). */
void u3d_backend_memory(const u3d_backend *be, size_t *now, size_t *peak);
/* Starts a new peak from what is held now. */
void u3d_backend_memory_reset(u3d_backend *be);
/* The device's memory and its largest single buffer in bytes (0 where
 * unknown). */
void u3d_backend_device_memory(const u3d_backend *be, size_t *total,
                               size_t *max_alloc);
/* Lists OpenCL platforms and devices (and CUDA devices when built). */
u3d_status u3d_list_devices(FILE *out, u3d_error *err);

/* The host reference backend: plain C loops, the tests' oracle. */
u3d_status u3d_backend_ref_create(u3d_backend **out, u3d_error *err);
/* OpenCL backend for a device spec as in u3d_backend_config. */
u3d_status u3d_backend_opencl_create(const char *device, int profile,
                                     u3d_backend **out, u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
