/* Device tensors: float32 (or int32 labels) in N,C,D,H,W order. */
#ifndef UNET3D_TENSOR_H
#define UNET3D_TENSOR_H

#include <stddef.h>
#include "unet3d/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct u3d_backend u3d_backend;

typedef struct u3d_shape {
    int n, c, d, h, w;
} u3d_shape;

typedef enum u3d_dtype { U3D_F32 = 0, U3D_I32 = 1 } u3d_dtype;

/* A tensor owns one backend buffer holding shape-count elements. */
typedef struct u3d_tensor {
    u3d_shape shape;
    u3d_dtype dtype;
    u3d_backend *be;
    void *buf; /* backend handle: cl_mem for OpenCL, host pointer for ref */
} u3d_tensor;

static inline u3d_shape u3d_shape5(int n, int c, int d, int h, int w)
{
    u3d_shape s = {n, c, d, h, w};
    return s;
}
size_t u3d_shape_count(u3d_shape s);
size_t u3d_shape_spatial(u3d_shape s); /* d*h*w */
int u3d_shape_eq(u3d_shape a, u3d_shape b);
/* "NxCxDxHxW" into buf; returns buf. */
const char *u3d_shape_str(u3d_shape s, char *buf, size_t len);
size_t u3d_tensor_bytes(const u3d_tensor *t);

/* New tensor, zero-filled. On failure *out is left empty (buf NULL). */
u3d_status u3d_tensor_create(u3d_backend *be, u3d_shape s, u3d_dtype dt,
                             u3d_tensor *out, u3d_error *err);
/* Frees the buffer; safe on an empty or already released tensor. */
void u3d_tensor_release(u3d_tensor *t);
u3d_status u3d_tensor_write(u3d_tensor *t, const void *host, u3d_error *err);
u3d_status u3d_tensor_read(const u3d_tensor *t, void *host, u3d_error *err);
u3d_status u3d_tensor_fill(u3d_tensor *t, float value, u3d_error *err);
/* Copies all elements of src into dst (same count and dtype). */
u3d_status u3d_tensor_copy(u3d_tensor *dst, const u3d_tensor *src,
                           u3d_error *err);
/* Copies batch item src_n of src into item dst_n of dst (same C,D,H,W). */
u3d_status u3d_tensor_copy_sample(u3d_tensor *dst, int dst_n,
                                  const u3d_tensor *src, int src_n,
                                  u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
