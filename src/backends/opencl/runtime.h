/* OpenCL runtime shared by the layers' host routines (internal). */
#ifndef UNET3D_CL_RUNTIME_H
#define UNET3D_CL_RUNTIME_H

#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include "core/backend_impl.h"
#include "backends/opencl/tuning.h"

/* Scratch buffer slots (u3d_cl_scratch), one per use. */
enum {
    U3D_SCRATCH_BN_PART_A, /* batch norm: stage-1 partials */
    U3D_SCRATCH_BN_PART_B,
    U3D_SCRATCH_BN_SUMS, /* batch norm backward: per-channel sums */
    U3D_SCRATCH_CE_PART, /* softmax-CE: stage-1 partials (float, int) */
    U3D_SCRATCH_CE_IPART,
    U3D_SCRATCH_CE_RES,  /* softmax-CE: the 4-int result */
    U3D_SCRATCH_CONV_W,  /* conv3d: rearranged weights */
    U3D_SCRATCH_CONV_X,  /* conv3d: zero-padded input slab */
    U3D_SCRATCH_CONV_DY, /* conv3d backward-weight: dy slab */
    U3D_SCRATCH_CONV_PART, /* conv3d backward-weight: chunk partials */
    U3D_SCRATCH_UP_Q,      /* upconv3d's GEMM path: T*Cout channels */
    U3D_SCRATCH_WINO_U,    /* conv3d's Winograd path: weights, */
    U3D_SCRATCH_WINO_V,    /* input tiles */
    U3D_SCRATCH_WINO_M,    /* and products */
    U3D_CL_SCRATCH_SLOTS = 14
};

typedef struct u3d_cl_program u3d_cl_program;
typedef struct u3d_cl_kernel u3d_cl_kernel;
typedef struct u3d_cl_prof u3d_cl_prof;

/* Weights transformed by a Winograd forward pass, kept for the data
 * gradient of the same weights (conv3d_wino.c): keyed by the weight
 * buffer and the caller's weights_version (u3d_conv3d_params). */
typedef struct u3d_cl_wcache {
    cl_mem w;
    unsigned long long version; /* 0: content undefined */
    int key[4];                 /* U's layout (conv3d_wino.c) */
    cl_mem u;
    size_t bytes;
} u3d_cl_wcache;

typedef struct u3d_cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    char platform_name[128];
    char device_name[128];
    char device_vendor[128];
    char driver_version[128];
    cl_device_type type;
    cl_ulong global_mem;
    cl_ulong max_alloc;
    size_t max_wg;
    cl_uint compute_units;
    cl_ulong local_mem; /* CL_DEVICE_LOCAL_MEM_SIZE */
    int is_oclgrind; /* simulator: tiny launches are preferred, no caching */
    int is_cpu;
    int profile;
    char cache_dir[512]; /* "" disables the program binary cache */
    u3d_cl_program *programs;
    u3d_cl_kernel *kernels;
    u3d_cl_prof *prof;
    /* Under oclgrind, released buffers are kept until destroy: its
     * uninitialized-value plugin keeps the shadow of a freed buffer for a
     * new one at the same address and then reports false positives. */
    cl_mem *graveyard;
    size_t ngrave, capgrave;
    cl_mem scratch[U3D_CL_SCRATCH_SLOTS]; /* see u3d_cl_scratch */
    size_t scratch_bytes[U3D_CL_SCRATCH_SLOTS];
    u3d_cl_wcache *wcache; /* see u3d_cl_wcache_get */
    size_t nwcache, capwcache, wcache_bytes;
    u3d_tuning tuning; /* shipped and user rows (tuning.h) */
} u3d_cl;

/* The OpenCL context of an OpenCL backend. */
static inline u3d_cl *u3d_cl_of(u3d_backend *be) { return (u3d_cl *)be->ctx; }
static inline cl_mem u3d_cl_mem(const u3d_tensor *t) { return (cl_mem)t->buf; }

u3d_status u3d_cl_create(const char *spec, int profile, u3d_cl **out,
                         u3d_error *err);
void u3d_cl_destroy(u3d_cl *cl);
const char *u3d_cl_errname(cl_int code);

/* Embedded source of cl/NAME.cl, or NULL. */
const char *u3d_cl_source(const char *name);

/* Kernel `kernel` of program cl/PROGRAM.cl built with `options` (e.g.
 * tuning -D flags); built once per (program, options) and cached, on disk
 * too. The kernel object is owned by the runtime. */
u3d_status u3d_cl_kernel_get(u3d_cl *cl, const char *program,
                             const char *kernel, const char *options,
                             cl_kernel *out, u3d_error *err);

/* Enqueues k. gws is rounded up to a multiple of lws when lws != NULL, so
 * kernels must guard their index range. `label` names the launch in
 * profiles and errors. */
u3d_status u3d_cl_launch(u3d_cl *cl, cl_kernel k, const char *label,
                         cl_uint dims, const size_t *gws, const size_t *lws,
                         u3d_error *err);

/* A device buffer of at least `bytes` for slot `slot` (U3D_SCRATCH_*),
 * kept until u3d_cl_destroy and grown as needed: temporary data of a
 * layer without an allocation (and a fill) per call. Its content is
 * undefined; the queue is in order, so a slot is reused safely by the
 * next call once this call's kernels are enqueued. */
u3d_status u3d_cl_scratch(u3d_cl *cl, int slot, size_t bytes, cl_mem *out,
                          u3d_error *err);

/* The weight cache's entry for weight buffer w with U's layout key and
 * `bytes`, made (version 0) or remade if its layout differs; *out NULL
 * when it would take the cache past its budget (tuning "winograd"
 * "wcache_mb", default 1024) or the device cannot allocate it: the
 * caller transforms into scratch. The
 * pointer is valid until the next call. */
u3d_status u3d_cl_wcache_get(u3d_cl *cl, cl_mem w, const int key[4],
                             size_t bytes, u3d_cl_wcache **out,
                             u3d_error *err);
/* Forgets w's entry: its buffer is being released (a new buffer may get
 * the same handle). */
void u3d_cl_wcache_drop(u3d_cl *cl, cl_mem w);

/* Checks an OpenCL return code; fills err naming the call. */
u3d_status u3d_cl_check(cl_int rc, const char *what, u3d_error *err);

/* Sets argument i from a value: U3D_ARG(k, 0, mem, err). */
#define U3D_ARG(k, i, v, err)                                                  \
    do {                                                                       \
        cl_int rc_ = clSetKernelArg((k), (i), sizeof(v), &(v));                \
        if (rc_ != CL_SUCCESS)                                                 \
            return u3d_cl_check(rc_, "clSetKernelArg(" #v ")", (err));         \
    } while (0)

/* Global size rounded up to a multiple of the local size. */
static inline size_t u3d_round_up(size_t n, size_t m)
{
    return (n + m - 1) / m * m;
}

/* Tuning parameters per device, kept as data (tuning.h, data/tuning/).
 * Returns the value of `param` for kernel family `family` on this device,
 * or `fallback`; _at for one pass and shape bucket (rows of the user's
 * tuned file can be that specific). */
int u3d_cl_tune(const u3d_cl *cl, const char *family, const char *param,
                int fallback);
int u3d_cl_tune_at(const u3d_cl *cl, const char *family, const char *pass,
                   const char *bucket, const char *param, int fallback);

/* Profiling summary (no-op unless profiling is on). */
void u3d_cl_profile_print(const u3d_cl *cl, FILE *out);
/* Turns per-kernel timing on or off for later launches (the queue is
 * recreated with or without CL_QUEUE_PROFILING_ENABLE after a finish). */
u3d_status u3d_cl_set_profiling(u3d_cl *cl, int on, u3d_error *err);
void u3d_cl_profile_reset(u3d_cl *cl);
/* Entry i of the profile (0 past the end): kernel label, total ms, calls. */
int u3d_cl_profile_entry(const u3d_cl *cl, int i, const char **label,
                         double *ms, long *calls);

#endif
