/* Compute backends: "opencl" (any OpenCL 1.2 device), "ref" (plain C, the
 * tests' oracle) and "cudnn" (NVIDIA). A backend is an opaque handle:
 * tensors are created on it (tensor.h) and the ops of ops.h run on their
 * tensors' backend. Its function table is internal
 * (src/core/backend_impl.h). */
#ifndef UNET3D_BACKEND_H
#define UNET3D_BACKEND_H

#include <stdio.h>
#include "unet3d/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

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
/* "opencl", "ref" or "cudnn". */
const char *u3d_backend_name(const u3d_backend *be);
/* The device in words (platform and device name, or the CUDA card). */
const char *u3d_backend_device(const u3d_backend *be);
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
