/* The CUDA runtime, NVRTC and cuDNN, loaded with dlopen on first use.
 *
 * Why: linked at load time, these libraries are mapped and relocated in
 * every unet3d process, 34 MiB of resident memory (NVRTC alone 28) that an
 * OpenCL run never uses; on a laptop predicting through PoCL that is a
 * quarter of the process. So unet3d does not link them: this file defines
 * every CUDA, NVRTC and cuDNN function the backend (and its tests) call,
 * each forwarding to the real one, which the first call looks up. The
 * prototypes come from the real headers, so the compiler checks every
 * signature here against them.
 *
 * The handles and function pointers are process-wide like the dynamic
 * linker's own tables: written once under pthread_once, read-only after.
 * When a library cannot be loaded, its functions return that library's
 * "not initialized" error and u3d_cuda_libs_load says which file is
 * missing. */
#define _POSIX_C_SOURCE 200809L
#ifdef U3D_HAVE_CUDNN
#include <dlfcn.h>
#include <nvrtc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "backends/cudnn/cudnn_internal.h"

/* Sonames and the folders the build found them in (cmake/cudnn.cmake):
 * the soname first, so LD_LIBRARY_PATH and ld.so.conf win, then the
 * build's folder, which the binary no longer carries as an RPATH. */
#ifndef U3D_CUDART_SONAME
#error "cmake/cudnn.cmake defines U3D_CUDART_SONAME and the others"
#endif

/* The stringified name after macro expansion: the runtime header renames
 * some functions (the per-thread default stream variants, versioned
 * entry points), and the symbol to look up is the renamed one. */
#define U3D_STR_(x) #x
#define U3D_STR(x) U3D_STR_(x)

/* X(return type, name, (parameters), (arguments)) */
#define U3D_CUDART_FUNCS(X)                                                    \
    X(cudaError_t, cudaDriverGetVersion, (int *a), (a))                        \
    X(cudaError_t, cudaRuntimeGetVersion, (int *a), (a))                       \
    X(cudaError_t, cudaGetDeviceCount, (int *a), (a))                          \
    X(cudaError_t, cudaGetDeviceProperties,                                    \
      (struct cudaDeviceProp * a, int b), (a, b))                              \
    X(cudaError_t, cudaSetDevice, (int a), (a))                                \
    X(cudaError_t, cudaGetLastError, (void), ())                               \
    X(cudaError_t, cudaMalloc, (void **a, size_t b), (a, b))                   \
    X(cudaError_t, cudaFree, (void *a), (a))                                   \
    X(cudaError_t, cudaMemGetInfo, (size_t * a, size_t *b), (a, b))            \
    X(cudaError_t, cudaMemcpyAsync,                                            \
      (void *a, const void *b, size_t c, enum cudaMemcpyKind d,                \
       cudaStream_t e),                                                        \
      (a, b, c, d, e))                                                         \
    X(cudaError_t, cudaMemsetAsync,                                            \
      (void *a, int b, size_t c, cudaStream_t d), (a, b, c, d))                \
    X(cudaError_t, cudaStreamCreateWithFlags,                                  \
      (cudaStream_t * a, unsigned int b), (a, b))                              \
    X(cudaError_t, cudaStreamDestroy, (cudaStream_t a), (a))                   \
    X(cudaError_t, cudaStreamSynchronize, (cudaStream_t a), (a))               \
    X(cudaError_t, cudaEventCreate, (cudaEvent_t * a), (a))                    \
    X(cudaError_t, cudaEventDestroy, (cudaEvent_t a), (a))                     \
    X(cudaError_t, cudaEventRecord, (cudaEvent_t a, cudaStream_t b), (a, b))   \
    X(cudaError_t, cudaEventSynchronize, (cudaEvent_t a), (a))                 \
    X(cudaError_t, cudaEventElapsedTime,                                       \
      (float *a, cudaEvent_t b, cudaEvent_t c), (a, b, c))                     \
    X(cudaError_t, cudaLaunchKernel,                                           \
      (const void *a, dim3 b, dim3 c, void **d, size_t e, cudaStream_t f),     \
      (a, b, c, d, e, f))                                                      \
    X(cudaError_t, cudaLibraryLoadData,                                        \
      (cudaLibrary_t * a, const void *b, enum cudaJitOption *c, void **d,      \
       unsigned int e, enum cudaLibraryOption *f, void **g, unsigned int h),   \
      (a, b, c, d, e, f, g, h))                                                \
    X(cudaError_t, cudaLibraryGetKernel,                                       \
      (cudaKernel_t * a, cudaLibrary_t b, const char *c), (a, b, c))           \
    X(cudaError_t, cudaLibraryUnload, (cudaLibrary_t a), (a))

#define U3D_NVRTC_FUNCS(X)                                                     \
    X(nvrtcResult, nvrtcGetNumSupportedArchs, (int *a), (a))                   \
    X(nvrtcResult, nvrtcGetSupportedArchs, (int *a), (a))                      \
    X(nvrtcResult, nvrtcCreateProgram,                                         \
      (nvrtcProgram * a, const char *b, const char *c, int d,                  \
       const char *const *e, const char *const *f),                            \
      (a, b, c, d, e, f))                                                      \
    X(nvrtcResult, nvrtcCompileProgram,                                        \
      (nvrtcProgram a, int b, const char *const *c), (a, b, c))                \
    X(nvrtcResult, nvrtcDestroyProgram, (nvrtcProgram * a), (a))               \
    X(nvrtcResult, nvrtcGetProgramLogSize, (nvrtcProgram a, size_t *b),        \
      (a, b))                                                                  \
    X(nvrtcResult, nvrtcGetProgramLog, (nvrtcProgram a, char *b), (a, b))      \
    X(nvrtcResult, nvrtcGetPTXSize, (nvrtcProgram a, size_t *b), (a, b))       \
    X(nvrtcResult, nvrtcGetPTX, (nvrtcProgram a, char *b), (a, b))             \
    X(nvrtcResult, nvrtcGetCUBINSize, (nvrtcProgram a, size_t *b), (a, b))     \
    X(nvrtcResult, nvrtcGetCUBIN, (nvrtcProgram a, char *b), (a, b))

#define U3D_CUDNN_FUNCS(X)                                                     \
    X(cudnnStatus_t, cudnnCreate, (cudnnHandle_t * a), (a))                    \
    X(cudnnStatus_t, cudnnDestroy, (cudnnHandle_t a), (a))                     \
    X(cudnnStatus_t, cudnnSetStream, (cudnnHandle_t a, cudaStream_t b),        \
      (a, b))                                                                  \
    X(cudnnStatus_t, cudnnCreateTensorDescriptor,                              \
      (cudnnTensorDescriptor_t * a), (a))                                      \
    X(cudnnStatus_t, cudnnDestroyTensorDescriptor,                             \
      (cudnnTensorDescriptor_t a), (a))                                        \
    X(cudnnStatus_t, cudnnSetTensorNdDescriptor,                               \
      (cudnnTensorDescriptor_t a, cudnnDataType_t b, int c, const int d[],     \
       const int e[]),                                                         \
      (a, b, c, d, e))                                                         \
    X(cudnnStatus_t, cudnnGetTensorNdDescriptor,                               \
      (const cudnnTensorDescriptor_t a, int b, cudnnDataType_t *c, int *d,     \
       int e[], int f[]),                                                      \
      (a, b, c, d, e, f))                                                      \
    X(cudnnStatus_t, cudnnCreateFilterDescriptor,                              \
      (cudnnFilterDescriptor_t * a), (a))                                      \
    X(cudnnStatus_t, cudnnDestroyFilterDescriptor,                             \
      (cudnnFilterDescriptor_t a), (a))                                        \
    X(cudnnStatus_t, cudnnSetFilterNdDescriptor,                               \
      (cudnnFilterDescriptor_t a, cudnnDataType_t b, cudnnTensorFormat_t c,    \
       int d, const int e[]),                                                  \
      (a, b, c, d, e))                                                         \
    X(cudnnStatus_t, cudnnCreateConvolutionDescriptor,                         \
      (cudnnConvolutionDescriptor_t * a), (a))                                 \
    X(cudnnStatus_t, cudnnDestroyConvolutionDescriptor,                        \
      (cudnnConvolutionDescriptor_t a), (a))                                   \
    X(cudnnStatus_t, cudnnSetConvolutionNdDescriptor,                          \
      (cudnnConvolutionDescriptor_t a, int b, const int c[], const int d[],    \
       const int e[], cudnnConvolutionMode_t f, cudnnDataType_t g),            \
      (a, b, c, d, e, f, g))                                                   \
    X(cudnnStatus_t, cudnnSetConvolutionMathType,                              \
      (cudnnConvolutionDescriptor_t a, cudnnMathType_t b), (a, b))             \
    X(cudnnStatus_t, cudnnGetConvolutionNdForwardOutputDim,                    \
      (const cudnnConvolutionDescriptor_t a, const cudnnTensorDescriptor_t b,  \
       const cudnnFilterDescriptor_t c, int d, int e[]),                       \
      (a, b, c, d, e))                                                         \
    X(cudnnStatus_t, cudnnGetConvolutionForwardAlgorithm_v7,                   \
      (cudnnHandle_t a, const cudnnTensorDescriptor_t b,                       \
       const cudnnFilterDescriptor_t c,                                        \
       const cudnnConvolutionDescriptor_t d,                                   \
       const cudnnTensorDescriptor_t e, const int f, int *g,                   \
       cudnnConvolutionFwdAlgoPerf_t *h),                                      \
      (a, b, c, d, e, f, g, h))                                                \
    X(cudnnStatus_t, cudnnGetConvolutionBackwardDataAlgorithm_v7,              \
      (cudnnHandle_t a, const cudnnFilterDescriptor_t b,                       \
       const cudnnTensorDescriptor_t c,                                        \
       const cudnnConvolutionDescriptor_t d,                                   \
       const cudnnTensorDescriptor_t e, const int f, int *g,                   \
       cudnnConvolutionBwdDataAlgoPerf_t *h),                                  \
      (a, b, c, d, e, f, g, h))                                                \
    X(cudnnStatus_t, cudnnGetConvolutionBackwardFilterAlgorithm_v7,            \
      (cudnnHandle_t a, const cudnnTensorDescriptor_t b,                       \
       const cudnnTensorDescriptor_t c,                                        \
       const cudnnConvolutionDescriptor_t d,                                   \
       const cudnnFilterDescriptor_t e, const int f, int *g,                   \
       cudnnConvolutionBwdFilterAlgoPerf_t *h),                                \
      (a, b, c, d, e, f, g, h))                                                \
    X(cudnnStatus_t, cudnnGetConvolutionForwardWorkspaceSize,                  \
      (cudnnHandle_t a, const cudnnTensorDescriptor_t b,                       \
       const cudnnFilterDescriptor_t c,                                        \
       const cudnnConvolutionDescriptor_t d,                                   \
       const cudnnTensorDescriptor_t e, cudnnConvolutionFwdAlgo_t f,           \
       size_t *g),                                                             \
      (a, b, c, d, e, f, g))                                                   \
    X(cudnnStatus_t, cudnnGetConvolutionBackwardDataWorkspaceSize,             \
      (cudnnHandle_t a, const cudnnFilterDescriptor_t b,                       \
       const cudnnTensorDescriptor_t c,                                        \
       const cudnnConvolutionDescriptor_t d,                                   \
       const cudnnTensorDescriptor_t e, cudnnConvolutionBwdDataAlgo_t f,       \
       size_t *g),                                                             \
      (a, b, c, d, e, f, g))                                                   \
    X(cudnnStatus_t, cudnnGetConvolutionBackwardFilterWorkspaceSize,           \
      (cudnnHandle_t a, const cudnnTensorDescriptor_t b,                       \
       const cudnnTensorDescriptor_t c,                                        \
       const cudnnConvolutionDescriptor_t d,                                   \
       const cudnnFilterDescriptor_t e, cudnnConvolutionBwdFilterAlgo_t f,     \
       size_t *g),                                                             \
      (a, b, c, d, e, f, g))                                                   \
    X(cudnnStatus_t, cudnnConvolutionForward,                                  \
      (cudnnHandle_t a, const void *b, const cudnnTensorDescriptor_t c,        \
       const void *d, const cudnnFilterDescriptor_t e, const void *f,          \
       const cudnnConvolutionDescriptor_t g, cudnnConvolutionFwdAlgo_t h,      \
       void *i, size_t j, const void *k, const cudnnTensorDescriptor_t l,      \
       void *m),                                                               \
      (a, b, c, d, e, f, g, h, i, j, k, l, m))                                 \
    X(cudnnStatus_t, cudnnConvolutionBackwardData,                             \
      (cudnnHandle_t a, const void *b, const cudnnFilterDescriptor_t c,        \
       const void *d, const cudnnTensorDescriptor_t e, const void *f,          \
       const cudnnConvolutionDescriptor_t g, cudnnConvolutionBwdDataAlgo_t h,  \
       void *i, size_t j, const void *k, const cudnnTensorDescriptor_t l,      \
       void *m),                                                               \
      (a, b, c, d, e, f, g, h, i, j, k, l, m))                                 \
    X(cudnnStatus_t, cudnnConvolutionBackwardFilter,                           \
      (cudnnHandle_t a, const void *b, const cudnnTensorDescriptor_t c,        \
       const void *d, const cudnnTensorDescriptor_t e, const void *f,          \
       const cudnnConvolutionDescriptor_t g,                                   \
       cudnnConvolutionBwdFilterAlgo_t h, void *i, size_t j, const void *k,    \
       const cudnnFilterDescriptor_t l, void *m),                              \
      (a, b, c, d, e, f, g, h, i, j, k, l, m))                                 \
    X(cudnnStatus_t, cudnnDeriveBNTensorDescriptor,                            \
      (cudnnTensorDescriptor_t a, const cudnnTensorDescriptor_t b,             \
       cudnnBatchNormMode_t c),                                                \
      (a, b, c))                                                               \
    X(cudnnStatus_t, cudnnBatchNormalizationForwardInference,                  \
      (cudnnHandle_t a, cudnnBatchNormMode_t b, const void *c, const void *d,  \
       const cudnnTensorDescriptor_t e, const void *f,                         \
       const cudnnTensorDescriptor_t g, void *h,                               \
       const cudnnTensorDescriptor_t i, const void *j, const void *k,          \
       const void *l, const void *m, double n),                                \
      (a, b, c, d, e, f, g, h, i, j, k, l, m, n))                              \
    X(cudnnStatus_t, cudnnBatchNormalizationForwardTraining,                   \
      (cudnnHandle_t a, cudnnBatchNormMode_t b, const void *c, const void *d,  \
       const cudnnTensorDescriptor_t e, const void *f,                         \
       const cudnnTensorDescriptor_t g, void *h,                               \
       const cudnnTensorDescriptor_t i, const void *j, const void *k,          \
       double l, void *m, void *n, double o, void *p, void *q),                \
      (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q))                     \
    X(cudnnStatus_t, cudnnBatchNormalizationBackward,                          \
      (cudnnHandle_t a, cudnnBatchNormMode_t b, const void *c, const void *d,  \
       const void *e, const void *f, const cudnnTensorDescriptor_t g,          \
       const void *h, const cudnnTensorDescriptor_t i, const void *j,          \
       const cudnnTensorDescriptor_t k, void *l,                               \
       const cudnnTensorDescriptor_t m, const void *n, void *o, void *p,       \
       double q, const void *r, const void *s),                                \
      (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s))

/* One pointer per function, named p_NAME, typed from the header's
 * prototype of NAME. */
#define U3D_PTR(ret, name, params, args) static __typeof__(name) *p_##name;
U3D_CUDART_FUNCS(U3D_PTR)
U3D_NVRTC_FUNCS(U3D_PTR)
U3D_CUDNN_FUNCS(U3D_PTR)
static size_t (*p_cudnnGetVersion)(void);
static const char *(*p_cudnnGetErrorString)(cudnnStatus_t);
static void (*p_cudnnGetLastErrorString)(char *, size_t);
static const char *(*p_cudaGetErrorName)(cudaError_t);
static const char *(*p_cudaGetErrorString)(cudaError_t);
static const char *(*p_nvrtcGetErrorString)(nvrtcResult);
#undef U3D_PTR

typedef struct lib {
    const char *soname, *dir, *what;
    int ok;
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static lib libs[3] = {
    {U3D_CUDART_SONAME, U3D_CUDART_DIR, "the CUDA runtime", 0},
    {U3D_NVRTC_SONAME, U3D_NVRTC_DIR, "NVRTC (CUDA toolkit)", 0},
    {U3D_CUDNN_SONAME, U3D_CUDNN_DIR, "cuDNN", 0},
};
static char why[700]; /* the first failure, as a sentence */

static void *open_lib(const lib *l, char *err, size_t len)
{
    void *h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
    if (h)
        return h;
    snprintf(err, len, "%s", dlerror());
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", l->dir, l->soname);
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    dlerror(); /* keep the soname's error, the more telling one */
    return h;
}

/* Looks up name in h into *fp; 0 when missing. */
static int sym(void *h, const char *name, void *fp, size_t size)
{
    void *p = dlsym(h, name);
    if (!p)
        return 0;
    memcpy(fp, &p, size); /* POSIX: object and function pointers convert */
    return 1;
}

#define U3D_SYM(h, name, missing)                                              \
    do {                                                                       \
        if (!sym(h, U3D_STR(name), &p_##name, sizeof p_##name) && !*(missing)) \
            *(missing) = U3D_STR(name);                                        \
    } while (0)

static void load_one(int i)
{
    lib *l = &libs[i];
    char err[400];
    const char *missing = NULL;
    void *h = open_lib(l, err, sizeof err);
    if (!h) {
        if (!why[0])
            snprintf(why, sizeof why, "cannot load %s (%s): %s", l->what,
                     l->soname, err);
        return;
    }
#define U3D_LOOK(ret, name, params, args) U3D_SYM(h, name, &missing);
    if (i == 0) {
        U3D_CUDART_FUNCS(U3D_LOOK)
        U3D_SYM(h, cudaGetErrorName, &missing);
        U3D_SYM(h, cudaGetErrorString, &missing);
    } else if (i == 1) {
        U3D_NVRTC_FUNCS(U3D_LOOK)
        U3D_SYM(h, nvrtcGetErrorString, &missing);
    } else {
        U3D_CUDNN_FUNCS(U3D_LOOK)
        U3D_SYM(h, cudnnGetVersion, &missing);
        U3D_SYM(h, cudnnGetErrorString, &missing);
        U3D_SYM(h, cudnnGetLastErrorString, &missing);
    }
#undef U3D_LOOK
    if (missing) {
        if (!why[0])
            snprintf(why, sizeof why,
                     "%s (%s) lacks %s: it is older than the version unet3d "
                     "was built with",
                     l->what, l->soname, missing);
        return; /* the handle stays open: nothing of it is used */
    }
    l->ok = 1;
}

static void load_all(void)
{
    for (int i = 0; i < 3; i++)
        load_one(i);
}

static int ready(int i)
{
    pthread_once(&once, load_all);
    return libs[i].ok;
}

u3d_status u3d_cuda_libs_load(u3d_error *err)
{
    int ok = ready(0) && ready(1) && ready(2);
    if (ok)
        return U3D_OK;
    return u3d_seterr(err, U3D_ERR_DEVICE,
                      "the cudnn backend is unavailable: %s; install the "
                      "NVIDIA libraries (or add their folder to "
                      "LD_LIBRARY_PATH), or use --backend opencl",
                      why);
}

/* ---- the forwarding definitions ---- */

/* NAME forwards to library lib's NAME, or fails with that library's
 * "not initialized" code when it could not be loaded. */
#define U3D_FWD(lib, fail, ret, name, params, args)                            \
    ret name params { return ready(lib) ? p_##name args : (fail); }
#define U3D_FWD_CUDART(ret, name, params, args)                                \
    U3D_FWD(0, cudaErrorSharedObjectInitFailed, ret, name, params, args)
#define U3D_FWD_NVRTC(ret, name, params, args)                                 \
    U3D_FWD(1, NVRTC_ERROR_INTERNAL_ERROR, ret, name, params, args)
#define U3D_FWD_CUDNN(ret, name, params, args)                                 \
    U3D_FWD(2, CUDNN_STATUS_NOT_INITIALIZED, ret, name, params, args)
U3D_CUDART_FUNCS(U3D_FWD_CUDART)
U3D_NVRTC_FUNCS(U3D_FWD_NVRTC)
U3D_CUDNN_FUNCS(U3D_FWD_CUDNN)

const char *cudaGetErrorName(cudaError_t e)
{
    return ready(0) ? p_cudaGetErrorName(e) : "cudaErrorSharedObjectInitFailed";
}

const char *cudaGetErrorString(cudaError_t e)
{
    return ready(0) ? p_cudaGetErrorString(e)
                    : "the CUDA runtime library could not be loaded";
}

const char *nvrtcGetErrorString(nvrtcResult r)
{
    return ready(1) ? p_nvrtcGetErrorString(r)
                    : "the NVRTC library could not be loaded";
}

size_t cudnnGetVersion(void)
{
    return ready(2) ? p_cudnnGetVersion() : 0;
}

const char *cudnnGetErrorString(cudnnStatus_t s)
{
    return ready(2) ? p_cudnnGetErrorString(s)
                    : "the cuDNN library could not be loaded";
}

void cudnnGetLastErrorString(char *message, size_t max_size)
{
    if (ready(2))
        p_cudnnGetLastErrorString(message, max_size);
    else if (message && max_size)
        snprintf(message, max_size, "the cuDNN library could not be loaded");
}

#else
typedef int u3d_cudnn_loader_unused;
#endif
