/* The backend seam (internal): a struct of function pointers per compute
 * backend behind the opaque u3d_backend handle.
 *
 * Layers and the network call the u3d_* operations of ops.h, which validate
 * shapes once (src/core/ops.c) and dispatch through these pointers, so
 * adding a backend never touches their callers. The op members, each
 * backend's prototypes and its table come from the one op list
 * (include/unet3d/op_list.h). Backend functions may assume validated
 * shapes. */
#ifndef UNET3D_BACKEND_IMPL_H
#define UNET3D_BACKEND_IMPL_H

#include <stddef.h>
#include "unet3d/backend.h"

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
    /* optional: the same for upconv3d_forward of the n up-convolutions of
     * inputs x[i] with weights w[i]; NULL: none */
    size_t (*upconv3d_scratch_bytes)(u3d_backend *, int n, const u3d_shape *x,
                                     const u3d_shape *w);

    /* the operations, one member per line of op_list.h */
#define U3D_X(E, name, params)                                                 \
    u3d_status (*name)(u3d_backend * be, U3D_OP_PARAMS_UNWRAP params,          \
                       u3d_error * err);
    U3D_OPS(U3D_X)
#undef U3D_X
} u3d_backend_ops;

/* Prototypes of backend PFX's ops, u3d_PFX_NAME for every op of the list:
 * a backend's internal header says U3D_BACKEND_DECLARE_OPS(cl). */
#define U3D_BACKEND_DECLARE_OP_(pfx, name, params)                             \
    u3d_status u3d_##pfx##_##name(u3d_backend *be,                             \
                                  U3D_OP_PARAMS_UNWRAP params,                 \
                                  u3d_error *err);
#define U3D_BACKEND_DECLARE_OPS(pfx) U3D_OPS(U3D_BACKEND_DECLARE_OP_##pfx)

/* The op members of backend PFX's table, for its designated initializer:
 * `.finish = ..., U3D_BACKEND_OP_TABLE(cl)`. An op the backend does not
 * define fails the link naming u3d_PFX_NAME. */
#define U3D_BACKEND_OP_ENTRY_(pfx, name) .name = u3d_##pfx##_##name,

/* The list's X takes (ENUM, name, params): one adapter per backend prefix,
 * since a macro argument cannot carry the prefix into U3D_OPS's X. */
#define U3D_BACKEND_DECLARE_OP_cl(E, name, params)                             \
    U3D_BACKEND_DECLARE_OP_(cl, name, params)
#define U3D_BACKEND_DECLARE_OP_ref(E, name, params)                            \
    U3D_BACKEND_DECLARE_OP_(ref, name, params)
#define U3D_BACKEND_DECLARE_OP_cudnn(E, name, params)                          \
    U3D_BACKEND_DECLARE_OP_(cudnn, name, params)
#define U3D_BACKEND_OP_ENTRY_cl(E, name, params) U3D_BACKEND_OP_ENTRY_(cl, name)
#define U3D_BACKEND_OP_ENTRY_ref(E, name, params)                              \
    U3D_BACKEND_OP_ENTRY_(ref, name)
#define U3D_BACKEND_OP_ENTRY_cudnn(E, name, params)                            \
    U3D_BACKEND_OP_ENTRY_(cudnn, name)
#define U3D_BACKEND_OP_TABLE(pfx) U3D_OPS(U3D_BACKEND_OP_ENTRY_##pfx)

/* Adam's bias corrections for p->step, computed once per step on the host
 * in double (as PyTorch does): every backend updates with
 * param -= step_size * m / (sqrt(v) / bc2_sqrt + eps). */
void u3d_adam_corrections(const u3d_adam_params *p, float *step_size,
                          float *bc2_sqrt);

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

#endif
