/* OpenCL host routines of every layer, one file pair per layer:
 * src/backends/opencl/NAME.c + cl/NAME.cl. Shapes are validated by src/core/ops.c
 * before these run (internal header). */
#ifndef UNET3D_LAYERS_H
#define UNET3D_LAYERS_H
#include "backends/opencl/runtime.h"

/* u3d_cl_NAME for every op of include/unet3d/op_list.h */
U3D_BACKEND_DECLARE_OPS(cl)
/* the backend's conv3d_scratch_bytes (conv3d.c) */
size_t u3d_cl_conv3d_scratch_bytes(u3d_backend *be, int n,
                                   const u3d_conv3d_params *p,
                                   const u3d_shape *x, const u3d_shape *w);

#endif
