/* The cuDNN backend: creation, device memory, scratch and the vtable. */
#ifdef U3D_HAVE_CUDNN
#include <nvrtc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "backends/cudnn/cudnn_internal.h"

/* ---- memory ---- */

static u3d_status cd_alloc(u3d_backend *be, size_t bytes, void **buf,
                           u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    *buf = NULL;
    U3D_TRY(u3d_cuda_check(cudaSetDevice(cx->device), "cudaSetDevice",
                                 err));
    cudaError_t rc = cudaMalloc(buf, bytes ? bytes : 4);
    if (rc == cudaErrorMemoryAllocation) {
        size_t fr = 0, tot = 0;
        cudaGetLastError(); /* not sticky: clear it */
        cudaMemGetInfo(&fr, &tot);
        *buf = NULL;
        return u3d_seterr(err, U3D_ERR_OOM,
                          "out of GPU memory allocating %.1f MiB on %s "
                          "(%.0f of %.0f MiB free): use a smaller patch, "
                          "tile or batch",
                          bytes / 1048576.0, cx->name, fr / 1048576.0,
                          tot / 1048576.0);
    }
    return u3d_cuda_check(rc, "cudaMalloc", err);
}

static void cd_free(u3d_backend *be, void *buf)
{
    (void)be;
    if (buf)
        cudaFree(buf); /* waits for the work using it */
}

static u3d_status cd_write(u3d_backend *be, void *buf, size_t off,
                           size_t bytes, const void *src, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    U3D_TRY(u3d_cuda_check(cudaMemcpyAsync((char *)buf + off, src, bytes,
                                                 cudaMemcpyHostToDevice,
                                                 cx->stream),
                                 "cudaMemcpyAsync (host to device)", err));
    /* src may be reused as soon as we return */
    return u3d_cuda_check(cudaStreamSynchronize(cx->stream),
                          "upload to the GPU", err);
}

static u3d_status cd_read(u3d_backend *be, const void *buf, size_t off,
                          size_t bytes, void *dst, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    U3D_TRY(u3d_cuda_check(cudaMemcpyAsync(dst, (const char *)buf + off,
                                                 bytes, cudaMemcpyDeviceToHost,
                                                 cx->stream),
                                 "cudaMemcpyAsync (device to host)", err));
    return u3d_cuda_check(cudaStreamSynchronize(cx->stream),
                          "download from the GPU", err);
}

u3d_status u3d_cudnn_fill(u3d_cudnn *cx, float *p, size_t n, float v,
                          u3d_error *err)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (bits == 0 && cx->host_mem) {
        memset(p, 0, n * sizeof(float));
        return U3D_OK;
    }
    if (bits == 0) /* +0.0f and int32 0 alike: all-zero bytes */
        return u3d_cuda_check(cudaMemsetAsync(p, 0, n * sizeof(float),
                                              cx->stream),
                              "cudaMemsetAsync", err);
    long long cnt = (long long)n;
    u3d_kargs a = {0};
    U3D_KARG(a, p);
    U3D_KARG(a, cnt);
    U3D_KARG(a, v);
    return u3d_cudnn_launch(cx, K_FILL, "fill", u3d_cudnn_blocks(cnt), 1, &a,
                            err);
}

static u3d_status cd_fill(u3d_backend *be, void *buf, size_t count,
                          float value, u3d_error *err)
{
    return u3d_cudnn_fill(u3d_cudnn_of(be), buf, count, value, err);
}

static u3d_status cd_copy(u3d_backend *be, void *dst, size_t dst_off,
                          const void *src, size_t src_off, size_t bytes,
                          u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    return u3d_cuda_check(cudaMemcpyAsync((char *)dst + dst_off,
                                          (const char *)src + src_off, bytes,
                                          cudaMemcpyDeviceToDevice,
                                          cx->stream),
                          "cudaMemcpyAsync (device to device)", err);
}

static u3d_status cd_finish(u3d_backend *be, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    U3D_TRY(u3d_cuda_check(cudaStreamSynchronize(cx->stream),
                                 "queued GPU work", err));
    return u3d_cuda_check(cudaGetLastError(), "queued GPU work", err);
}

/* ---- scratch ---- */

static u3d_status grow(void **p, size_t *have, size_t want, const char *what,
                       u3d_error *err)
{
    if (*have >= want && *p)
        return U3D_OK;
    if (*p)
        cudaFree(*p); /* synchronizes: no queued op still uses it */
    *p = NULL;
    *have = 0;
    cudaError_t rc = cudaMalloc(p, want ? want : 4);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return u3d_seterr(err, U3D_ERR_OOM,
                          "out of GPU memory for %.1f MiB of %s: use a "
                          "smaller patch, tile or batch",
                          want / 1048576.0, what);
    }
    *have = want;
    return U3D_OK;
}

u3d_status u3d_cudnn_download(u3d_cudnn *cx, void *dst, const void *src,
                              size_t bytes, u3d_error *err)
{
    if (cx->host_mem) {
        memcpy(dst, src, bytes);
        return U3D_OK;
    }
    U3D_TRY(u3d_cuda_check(cudaMemcpyAsync(dst, src, bytes,
                                                 cudaMemcpyDeviceToHost,
                                                 cx->stream),
                                 "cudaMemcpyAsync (device to host)", err));
    return u3d_cuda_check(cudaStreamSynchronize(cx->stream),
                          "queued GPU work", err);
}

u3d_status u3d_cudnn_scratch(u3d_cudnn *cx, size_t bytes, void **p,
                             u3d_error *err)
{
    if (cx->host_mem && cx->scratch_bytes < bytes) {
        free(cx->scratch);
        cx->scratch = malloc(bytes);
        cx->scratch_bytes = cx->scratch ? bytes : 0;
    }
    if (cx->host_mem) {
        *p = cx->scratch;
        return cx->scratch ? U3D_OK
                           : u3d_seterr(err, U3D_ERR_OOM, "out of memory");
    }
    U3D_TRY(grow(&cx->scratch, &cx->scratch_bytes, bytes,
                       "reduction scratch", err));
    *p = cx->scratch;
    return U3D_OK;
}

u3d_status u3d_cudnn_workspace(u3d_cudnn *cx, size_t bytes, u3d_error *err)
{
    if (bytes == 0)
        return U3D_OK;
    return grow(&cx->ws, &cx->ws_bytes, bytes, "cuDNN workspace", err);
}

/* A new device buffer of n floats into *p. */
static u3d_status dev_floats(float **p, size_t n, u3d_error *err)
{
    void *v = NULL;
    size_t have = 0;
    U3D_TRY(grow(&v, &have, n * sizeof(float), "batch-norm constants",
                       err));
    *p = v;
    return U3D_OK;
}

u3d_status u3d_cudnn_consts(u3d_cudnn *cx, int c, u3d_error *err)
{
    if (c <= cx->nconst)
        return U3D_OK;
    size_t n = (size_t)c;
    cudaFree(cx->ones); /* synchronizes: no queued op still reads them */
    cudaFree(cx->zeros);
    cudaFree(cx->dparam);
    cx->ones = cx->zeros = cx->dparam = NULL;
    cx->nconst = 0;
    U3D_TRY(dev_floats(&cx->ones, n, err));
    U3D_TRY(dev_floats(&cx->zeros, n, err));
    U3D_TRY(dev_floats(&cx->dparam, 2 * n, err)); /* dgamma, dbeta */
    U3D_TRY(u3d_cudnn_fill(cx, cx->ones, n, 1.0f, err));
    U3D_TRY(u3d_cudnn_fill(cx, cx->zeros, n, 0.0f, err));
    cx->nconst = c;
    return U3D_OK;
}

u3d_status u3d_cudnn_channel_sum(u3d_cudnn *cx, const float *x, u3d_shape s,
                                 float *out, u3d_error *err)
{
    long long S = (long long)u3d_shape_spatial(s), M = (long long)s.n * S;
    int N = s.n, C = s.c, B = u3d_cudnn_chan_blocks(M);
    void *part;
    U3D_TRY(u3d_cudnn_scratch(cx, (size_t)C * B * sizeof(double), &part,
                                    err));
    u3d_kargs a1 = {0}, a2 = {0};
    U3D_KARG(a1, x);
    U3D_KARG(a1, N);
    U3D_KARG(a1, C);
    U3D_KARG(a1, S);
    U3D_KARG(a1, part);
    U3D_TRY(u3d_cudnn_launch(cx, K_CHAN_PARTIAL, "channel sum",
                                   (unsigned)B, (unsigned)C, &a1, err));
    U3D_KARG(a2, part);
    U3D_KARG(a2, C);
    U3D_KARG(a2, B);
    U3D_KARG(a2, out);
    return u3d_cudnn_launch(cx, K_CHAN_FINAL, "channel sum final",
                            u3d_cudnn_blocks(C), 1, &a2, err);
}

u3d_status u3d_cudnn_bias_add(u3d_cudnn *cx, float *y, u3d_shape s,
                              const float *b, u3d_error *err)
{
    long long S = (long long)u3d_shape_spatial(s);
    long long total = (long long)u3d_shape_count(s);
    int C = s.c;
    u3d_kargs a = {0};
    U3D_KARG(a, y);
    U3D_KARG(a, b);
    U3D_KARG(a, S);
    U3D_KARG(a, C);
    U3D_KARG(a, total);
    return u3d_cudnn_launch(cx, K_BIAS_ADD, "bias add", u3d_cudnn_blocks(total),
                            1, &a, err);
}

u3d_status u3d_cudnn_tensor_desc(cudnnTensorDescriptor_t *d, u3d_shape s,
                                 u3d_error *err)
{
    int dims[5], strides[5];
    *d = NULL;
    U3D_TRY(u3d_dnn_check(cudnnCreateTensorDescriptor(d),
                                "cudnnCreateTensorDescriptor", err));
    u3d_cudnn_nd(s, dims, strides);
    u3d_status st = u3d_dnn_check(
        cudnnSetTensorNdDescriptor(*d, CUDNN_DATA_FLOAT, 5, dims, strides),
        "cudnnSetTensorNdDescriptor", err);
    if (st) {
        cudnnDestroyTensorDescriptor(*d);
        *d = NULL;
    }
    return st;
}

/* ---- lifetime ---- */

static void release(u3d_cudnn *cx)
{
    if (!cx)
        return;
    cudaSetDevice(cx->device);
    if (cx->stream)
        cudaStreamSynchronize(cx->stream);
    u3d_cudnn_plans_free(cx);
    cudaFree(cx->ws);
    cudaFree(cx->scratch);
    cudaFree(cx->ones);
    cudaFree(cx->zeros);
    cudaFree(cx->dparam);
    if (cx->lib)
        cudaLibraryUnload(cx->lib);
    if (cx->dnn)
        cudnnDestroy(cx->dnn);
    if (cx->ev0)
        cudaEventDestroy(cx->ev0);
    if (cx->ev1)
        cudaEventDestroy(cx->ev1);
    if (cx->stream)
        cudaStreamDestroy(cx->stream);
    u3d_cudnn_prof_free(cx);
    free(cx);
}

static void cd_destroy(u3d_backend *be)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    if (cx)
        u3d_cudnn_prof_print(cx, stderr);
    release(cx);
    free(be);
}

/* Workspace and reduction scratch (grow-only). */
static size_t cd_scratch_total(u3d_backend *be)
{
    const u3d_cudnn *cx = u3d_cudnn_of(be);
    return cx->ws_bytes + cx->scratch_bytes;
}

static const u3d_backend_ops cudnn_ops = {
    .buffer_alloc = cd_alloc,
    .buffer_free = cd_free,
    .buffer_write = cd_write,
    .buffer_read = cd_read,
    .buffer_fill = cd_fill,
    .buffer_copy = cd_copy,
    .finish = cd_finish,
    .destroy = cd_destroy,
    /* augment_sample: CUDA kernels on the shared code of cl/augment.cl
     * (augment.c): the source volume stays on the GPU, results match the
     * host's bits */
    U3D_BACKEND_OP_TABLE(cudnn)
    .scratch_bytes = cd_scratch_total,
    .conv3d_scratch_bytes = u3d_cudnn_conv3d_scratch_bytes,
};

/* Why there is no usable device, as a sentence (for create and list). */
static void no_device_reason(cudaError_t rc, char *buf, size_t len)
{
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    if (rc == cudaErrorInsufficientDriver)
        snprintf(buf, len,
                 "no NVIDIA driver for CUDA %d.%d or newer was found "
                 "(cudaErrorInsufficientDriver: no driver is installed or it "
                 "is too old)",
                 rt / 1000, rt % 1000 / 10);
    else if (rc == cudaErrorNoDevice || rc == cudaSuccess)
        snprintf(buf, len,
                 "no CUDA GPU was found (cudaErrorNoDevice; check "
                 "CUDA_VISIBLE_DEVICES)");
    else
        snprintf(buf, len, "the CUDA runtime cannot start (%s: %s)",
                 cudaGetErrorName(rc), cudaGetErrorString(rc));
}

/* Number of usable devices, or an error saying why there is none. */
static u3d_status count_devices(int *n, u3d_error *err)
{
    char why[300];
    *n = 0;
    cudaError_t rc = cudaGetDeviceCount(n);
    if (rc == cudaSuccess && *n > 0)
        return U3D_OK;
    cudaGetLastError();
    no_device_reason(rc, why, sizeof why);
    *n = 0;
    return u3d_seterr(err, U3D_ERR_DEVICE,
                      "the cudnn backend needs an NVIDIA GPU and its driver: "
                      "%s; use --backend opencl or --backend ref here",
                      why);
}

static u3d_status check_cudnn_version(u3d_error *err)
{
    size_t v = cudnnGetVersion();
    if (v / 10000 != CUDNN_MAJOR)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "the cuDNN library found at run time is version "
                          "%zu.%zu.%zu, but unet3d was built for cuDNN %d; "
                          "install cuDNN %d",
                          v / 10000, v % 10000 / 100, v % 100, CUDNN_MAJOR,
                          CUDNN_MAJOR);
    return U3D_OK;
}

static u3d_status load_kernels(u3d_cudnn *cx, u3d_error *err)
{
    int n = 0, arch, sass;
    U3D_TRY(nvrtcGetNumSupportedArchs(&n) == NVRTC_SUCCESS && n > 0
                      ? U3D_OK
                      : u3d_seterr(err, U3D_ERR_DEVICE,
                                   "NVRTC reports no GPU architectures"));
    int *archs = calloc((size_t)n, sizeof *archs);
    if (!archs)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    nvrtcGetSupportedArchs(archs);
    u3d_status st = u3d_cudnn_pick_arch(cx->cc_major, cx->cc_minor, archs, n,
                                        &arch, &sass, err);
    free(archs);
    if (st)
        return st;
    char *image;
    size_t size;
    U3D_TRY(u3d_cudnn_compile(u3d_cudnn_kernels_src, arch, sass, &image,
                                    &size, err));
    cudaError_t rc =
        cudaLibraryLoadData(&cx->lib, image, NULL, NULL, 0, NULL, NULL, 0);
    free(image);
    if (rc == cudaErrorUnsupportedPtxVersion)
        return u3d_seterr(err, U3D_ERR_DEVICE,
                          "the NVIDIA driver is older than the CUDA toolkit "
                          "unet3d was built with and cannot load its kernels "
                          "for compute capability %d.%d; update the driver",
                          cx->cc_major, cx->cc_minor);
    U3D_TRY(u3d_cuda_check(rc, "cudaLibraryLoadData", err));
    for (int i = 0; i < K_COUNT; i++)
        U3D_TRY(u3d_cuda_check(cudaLibraryGetKernel(
                                         &cx->k[i], cx->lib,
                                         u3d_cudnn_kernels[i].name),
                                     u3d_cudnn_kernels[i].name, err));
    return U3D_OK;
}

static u3d_status open_device(u3d_cudnn *cx, int index, u3d_error *err)
{
    struct cudaDeviceProp p;
    cx->device = index;
    U3D_TRY(u3d_cuda_check(cudaSetDevice(index), "cudaSetDevice", err));
    U3D_TRY(u3d_cuda_check(cudaGetDeviceProperties(&p, index),
                                 "cudaGetDeviceProperties", err));
    snprintf(cx->name, sizeof cx->name, "%s", p.name);
    cx->cc_major = p.major;
    cx->cc_minor = p.minor;
    cx->total_mem = p.totalGlobalMem;
    U3D_TRY(u3d_cuda_check(
        cudaStreamCreateWithFlags(&cx->stream, cudaStreamNonBlocking),
        "cudaStreamCreate", err));
    U3D_TRY(u3d_dnn_check(cudnnCreate(&cx->dnn), "cudnnCreate", err));
    U3D_TRY(u3d_dnn_check(cudnnSetStream(cx->dnn, cx->stream),
                                "cudnnSetStream", err));
    if (cx->profile) {
        U3D_TRY(u3d_cuda_check(cudaEventCreate(&cx->ev0),
                                     "cudaEventCreate", err));
        U3D_TRY(u3d_cuda_check(cudaEventCreate(&cx->ev1),
                                     "cudaEventCreate", err));
    }
    return load_kernels(cx, err);
}

u3d_status u3d_backend_cudnn_create(int device_index, int profile,
                                    u3d_backend **out, u3d_error *err)
{
    int n;
    *out = NULL;
    U3D_TRY(u3d_cuda_libs_load(err));
    U3D_TRY(check_cudnn_version(err));
    U3D_TRY(count_devices(&n, err));
    if (device_index < 0 || device_index >= n)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "CUDA device %d does not exist (%d found: 0..%d); "
                          "'unet3d devices' lists them",
                          device_index, n, n - 1);
    u3d_backend *be = calloc(1, sizeof *be);
    u3d_cudnn *cx = calloc(1, sizeof *cx);
    if (!be || !cx) {
        free(be);
        free(cx);
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    cx->profile = profile;
    u3d_status st = open_device(cx, device_index, err);
    if (st) {
        u3d_errprefix(err, "cudnn backend on CUDA device %d: ", device_index);
        release(cx);
        free(be);
        return st;
    }
    size_t v = cudnnGetVersion();
    be->ops = &cudnn_ops;
    be->ctx = cx;
    snprintf(be->name, sizeof be->name, "cudnn");
    snprintf(be->device, sizeof be->device,
             "CUDA %d: %s (compute %d.%d, %.0f MiB), cuDNN %zu.%zu.%zu",
             device_index, cx->name, cx->cc_major, cx->cc_minor,
             cx->total_mem / 1048576.0, v / 10000, v % 10000 / 100, v % 100);
    be->mem_total = be->max_alloc = cx->total_mem;
    *out = be;
    return U3D_OK;
}

u3d_status u3d_cudnn_parse_device(const char *spec, int *index,
                                  u3d_error *err)
{
    *index = 0;
    if (!spec || !spec[0])
        return U3D_OK;
    const char *p = spec;
    if (!strncmp(p, "cuda:", 5))
        p += 5;
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || *end || v < 0 || v > 1024)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "the cudnn backend takes a CUDA device index as "
                          "device (0, 1, ... or cuda:N), not '%s'; 'unet3d "
                          "devices' lists them",
                          spec);
    *index = (int)v;
    return U3D_OK;
}

u3d_status u3d_cudnn_list_devices(FILE *out, u3d_error *err)
{
    int n = 0, drv = 0, rt = 0;
    u3d_error le;
    if (u3d_cuda_libs_load(&le)) {
        fprintf(out, "cuda     none: %s\n", le.msg);
        return U3D_OK;
    }
    cudaError_t rc = cudaGetDeviceCount(&n);
    size_t v = cudnnGetVersion();
    cudaRuntimeGetVersion(&rt);
    if (rc != cudaSuccess || n == 0) {
        char why[300];
        cudaGetLastError();
        no_device_reason(rc, why, sizeof why);
        fprintf(out, "cuda     none: %s; the cudnn backend is unavailable\n",
                why);
        return U3D_OK;
    }
    cudaDriverGetVersion(&drv);
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        U3D_TRY(u3d_cuda_check(cudaGetDeviceProperties(&p, i),
                                     "cudaGetDeviceProperties", err));
        fprintf(out,
                "cuda %d   %s | compute capability %d.%d | %d SMs | %.0f MiB "
                "| driver CUDA %d.%d, runtime %d.%d, cuDNN %zu.%zu.%zu\n",
                i, p.name, p.major, p.minor, p.multiProcessorCount,
                p.totalGlobalMem / 1048576.0, drv / 1000, drv % 1000 / 10,
                rt / 1000, rt % 1000 / 10, v / 10000, v % 10000 / 100,
                v % 100);
    }
    return U3D_OK;
}

#else
typedef int u3d_cudnn_backend_unused;
#endif
