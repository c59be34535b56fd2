/* The cuDNN backend (NVIDIA GPUs): convolutions, batch norm through cuDNN,
 * the other ops as CUDA C kernels compiled at run time with NVRTC.
 *
 * Declared always; defined only in builds configured with the backend
 * (U3D_HAVE_CUDNN, see cmake/cudnn.cmake). */
#ifndef UNET3D_CUDNN_H
#define UNET3D_CUDNN_H

#include <stdio.h>
#include "unet3d/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Backend on CUDA device device_index (0-based, as CUDA numbers them after
 * CUDA_VISIBLE_DEVICES). profile != 0 times every kernel and cuDNN call and
 * prints a table on destroy. Fails with U3D_ERR_DEVICE and a message saying
 * what is missing when there is no GPU, no driver or a too old driver. */
u3d_status u3d_backend_cudnn_create(int device_index, int profile,
                                    u3d_backend **out, u3d_error *err);

/* Device spec of u3d_backend_config.device for this backend: NULL or ""
 * is device 0; "N" or "cuda:N" is device N. */
u3d_status u3d_cudnn_parse_device(const char *spec, int *index,
                                  u3d_error *err);

/* One line per CUDA device (name, memory, compute capability), or one line
 * saying why there is none; U3D_OK in both cases. */
u3d_status u3d_cudnn_list_devices(FILE *out, u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
