/* OpenCL host routines of every layer, one file pair per layer:
 * src/backends/opencl/NAME.c + cl/NAME.cl. Shapes are validated by src/core/ops.c
 * before these run (internal header). */
#ifndef UNET3D_LAYERS_H
#define UNET3D_LAYERS_H
#include "backends/opencl/runtime.h"

/* u3d_cl_NAME for every op of include/unet3d/op_list.h */
U3D_BACKEND_DECLARE_OPS(cl)
/* The path and blocking conv3d's pass ("fwd", "data", "weight") chooses
 * for input x and cout output channels, in words (bench rows say what
 * they ran). */
void u3d_cl_conv3d_config(u3d_backend *be, const char *pass,
                          const u3d_conv3d_params *p, u3d_shape x,
                          int cout, char *out, size_t n);
/* The FLOPs that pass executes when its path's arithmetic differs from
 * the direct convolution's count (Winograd), else 0. */
double u3d_cl_conv3d_flops_done(u3d_backend *be, const char *pass,
                                const u3d_conv3d_params *p, u3d_shape x,
                                int cout);
/* the backend's conv3d_scratch_bytes (conv3d.c) */
size_t u3d_cl_conv3d_scratch_bytes(u3d_backend *be, int n,
                                   const u3d_conv3d_params *p,
                                   const u3d_shape *x, const u3d_shape *w);

/* the backend's upconv3d_scratch_bytes (upconv3d.c) */
size_t u3d_cl_upconv3d_scratch_bytes(u3d_backend *be, int n,
                                     const u3d_shape *x, const u3d_shape *w);

#endif
