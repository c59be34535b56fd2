/* Implicit-GEMM 3D convolution for GPUs (conv3d_igemm.c, internal): the
 * OpenCL backend's conv passes use it when u3d_cl_conv_path says so. */
#ifndef UNET3D_CL_CONV3D_IGEMM_H
#define UNET3D_CL_CONV3D_IGEMM_H
#include "backends/opencl/opencl.h"

/* Which convolution kernels the OpenCL backend runs. */
enum { U3D_CL_CONV_DIRECT = 1, U3D_CL_CONV_IGEMM = 2 };

/* The path for this device: env UNET3D_CONV_PATH=igemm|direct, else the
 * tuning value ("conv3d", "path": 1 direct, 2 igemm), else igemm on GPUs
 * and accelerators, direct on CPUs and the oclgrind simulator. */
int u3d_cl_conv_path(const u3d_cl *cl);
/* The path of one layer's pass (tpass "fwd", "data", "weight"; cin, cout
 * the layer's channels): UNET3D_CONV_PATH or a "conv3d" "path" row when
 * set, else the tuning value ("conv3d_igemm", tpass, the layer's shape
 * bucket, "use": 1 igemm, 0 direct), else u3d_cl_conv_path's device
 * default. The tuner sets "use" per pass and bucket. */
int u3d_cl_conv_path_at(const u3d_cl *cl, const char *tpass, int cin,
                        int cout);

/* The two GEMM kernels: forward (and data gradient), weight gradient. */
typedef enum { U3D_IGEMM_FWD = 0, U3D_IGEMM_BWW = 1 } u3d_igemm_pass;

/* Compile-time tile parameters of one kernel (see conv3d_igemm.c). */
typedef struct u3d_igemm_cfg {
    int mwg, nwg, kwg;  /* work-group tile M x N, K step */
    int mdimc, ndimc;   /* work-items along M and N */
    int vwm, vwn;       /* vector widths of the global loads */
    int lpad;           /* padding floats per local-memory row */
} u3d_igemm_cfg;

/* The configuration in use for a kernel pass, for tuning pass tpass
 * ("fwd", "data" with U3D_IGEMM_FWD; "weight" with U3D_IGEMM_BWW) and
 * shape bucket (conv_bucket.h): per parameter the environment
 * (UNET3D_CONV3D_IGEMM_<PARAM>, weight gradient UNET3D_CONV3D_IGEMM_BW_
 * <PARAM>), else u3d_cl_tune_at(cl, "conv3d_igemm", tpass, bucket,
 * "[bw_]<param>"), else the default. _config: the rows of any pass and
 * bucket ("-") only. */
u3d_igemm_cfg u3d_cl_igemm_config_at(const u3d_cl *cl, u3d_igemm_pass pass,
                                     const char *tpass, const char *bucket);
u3d_igemm_cfg u3d_cl_igemm_config(const u3d_cl *cl, u3d_igemm_pass pass);

/* 1 if cfg can run pass on this device for kernels of `taps` taps (the
 * limits of the comment in conv3d_igemm.c: divisibility, vector widths,
 * work-group size, local memory), else 0 with the reason in why (when
 * not NULL). The tuner enumerates candidates through it. */
int u3d_cl_igemm_valid(const u3d_cl *cl, u3d_igemm_pass pass,
                       const u3d_igemm_cfg *cfg, int taps, char *why,
                       size_t nwhy);

/* A convolution of stride 1 with k = (D, H, W) taps and zero padding
 * pad[a] < k[a] per axis: the public op's cubic kernels and anisotropic
 * ones (1x3x3). Weights (Cout, Cin, kd, kh, kw). */
typedef struct u3d_igemm_conv {
    int k[3], pad[3];
    int relu; /* forward: max(0, .) fused into the store */
} u3d_igemm_conv;

u3d_status u3d_cl_igemm_conv_forward(u3d_backend *be, const u3d_igemm_conv *cv,
                                     cten *x, cten *w, cten *b, u3d_tensor *y,
                                     u3d_error *err);
u3d_status u3d_cl_igemm_conv_backward_data(u3d_backend *be,
                                           const u3d_igemm_conv *cv,
                                           cten *dy, cten *w, u3d_tensor *dx,
                                           u3d_error *err);
u3d_status u3d_cl_igemm_conv_backward_weight(u3d_backend *be,
                                             const u3d_igemm_conv *cv,
                                             cten *x, cten *dy, u3d_tensor *dw,
                                             u3d_tensor *db, u3d_error *err);

/* The public op's passes (cubic or per-axis kernels) on this path. */
u3d_status u3d_cl_igemm_forward(u3d_backend *be, const u3d_conv3d_params *p,
                                cten *x, cten *w, cten *b, u3d_tensor *y,
                                u3d_error *err);
u3d_status u3d_cl_igemm_backward_data(u3d_backend *be,
                                      const u3d_conv3d_params *p, cten *dy,
                                      cten *w, u3d_tensor *dx, u3d_error *err);
u3d_status u3d_cl_igemm_backward_weight(u3d_backend *be,
                                        const u3d_conv3d_params *p, cten *x,
                                        cten *dy, u3d_tensor *dw,
                                        u3d_tensor *db, u3d_error *err);
/* What u3d_cl_conv3d_scratch_bytes counts, for this path. */
size_t u3d_cl_igemm_scratch_bytes(u3d_backend *be, int n,
                                  const u3d_conv3d_params *p,
                                  const u3d_shape *x, const u3d_shape *w);

#endif
