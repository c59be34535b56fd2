/* Winograd F(2x2x2, 3x3x3) convolution on OpenCL (conv3d_wino.c,
 * cl/winograd.cl; internal): the direct path's forward and data gradient
 * hand a 3x3x3 convolution to it when u3d_cl_wino_use says so. */
#ifndef UNET3D_CL_CONV3D_WINO_H
#define UNET3D_CL_CONV3D_WINO_H
#include "backends/opencl/opencl.h"

/* Whether pass tpass ("fwd", "data" or "weight") of a convolution with kernel k and
 * cin -> cout channels (the pass's own: swapped for "data") runs here:
 * only 3x3x3 kernels; env UNET3D_WINOGRAD=on|off forces it (anything else
 * is refused with a message), else from the tuning value "from_cin"
 * channels on (input and output; default 16 forward, 8 for the
 * gradients) when the row ("winograd", tpass, the
 * shape bucket, "use") says so, by default on CPUs, off on GPUs (not
 * measured there; `unet3d tune` decides) and the oclgrind simulator
 * (tests force it). */
/* dst (n, cd, dd, hd, wd) voxel (z, y, x) = src (n, cs, d, h, w) voxel
 * (z + zoff - off[0], y - off[1], x - off[2]), zero outside src (the
 * direct path's padding copy, conv3d.c). */
u3d_status u3d_cl_conv_embed(u3d_cl *cl, cl_mem src, cl_mem dst, int n,
                             int cs, int cd, int d, int h, int w, int dd,
                             int hd, int wd, const int off[3], int zoff,
                             u3d_error *err);

/* c (m x n, row-major) (+)= a (m rows of k floats from element aoff on)
 * times b (k rows of n floats), on the Winograd weight gradient's
 * tile-major GEMM (no sums across vector lanes: fit for short k); first:
 * store instead of add. n must be a multiple of the vector width
 * (u3d_cl_gemm_rows_ok), aoff + m * k and k * n and m * n fit an int. */
int u3d_cl_gemm_rows_ok(const u3d_cl *cl, int n);
u3d_status u3d_cl_gemm_rows(u3d_cl *cl, cl_mem a, int aoff, int m, int k,
                            cl_mem b, int n, cl_mem c, int first,
                            u3d_error *err);

u3d_status u3d_cl_wino_use(const u3d_cl *cl, const char *tpass, int cin,
                           int cout, const int k[3], int *use,
                           u3d_error *err);

/* y (shape ys) = 3x3x3 convolution of src zero-padded by pad[a] <= 2 per
 * axis, + bias (NULL: none), ReLU when relu; flip: w is a forward weight
 * (src.c, ys.c, 3, 3, 3) used reversed (the data gradient), else (ys.c,
 * src.c, 3, 3, 3). version: u3d_conv3d_params.weights_version (nonzero:
 * the forward keeps its transform of w for the data gradient of the same
 * version, see u3d_cl_wcache_get). */
u3d_status u3d_cl_wino_conv(u3d_backend *be, const char *tpass, cten *src,
                            const int pad[3], cl_mem w, int flip,
                            unsigned long long version, cl_mem bias,
                            int relu, cl_mem y, u3d_shape ys, u3d_error *err);

/* dw (and db when not NULL) of a 3x3x3 convolution of x zero-padded by
 * pad[a] <= 2 per axis whose output gradient is dy: w (dy.c, x.c, 3, 3, 3),
 * overwritten. */
u3d_status u3d_cl_wino_backward_weight(u3d_backend *be, cten *x,
                                       const int pad[3], cten *dy,
                                       u3d_tensor *dw, u3d_tensor *db,
                                       u3d_error *err);

/* The plan of pass tpass for input x and output y in words ("winograd
 * F(2,3) vw8 nv2 cob6 ...") into out, and the FLOPs its launches execute:
 * the 64 GEMMs (padded channels and tile blocks included) and the
 * transforms' additions; bench's %peak is of these, its GFLOP/s of the
 * direct convolution's count. */
double u3d_cl_wino_describe(const u3d_cl *cl, const char *tpass, u3d_shape x,
                            u3d_shape y, char *out, size_t n);

/* Device bytes of the path's three scratch slots (U, V, M) for one
 * convolution into bytes[3]; 0 (and zeros) when it runs elsewhere. */
int u3d_cl_wino_scratch_bytes(const u3d_cl *cl, const char *tpass,
                              u3d_shape x, u3d_shape y, const int k[3],
                              size_t bytes[3]);

#endif
