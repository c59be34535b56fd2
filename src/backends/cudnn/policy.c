/* Pure decisions of the cuDNN backend (geometry, algorithm order,
 * workspace size, target architecture, launch sizes) and error text: all
 * testable without a GPU. Compiled only with U3D_HAVE_CUDNN (the guard keeps
 * builds that glob src/ but lack CUDA working). */
#ifdef U3D_HAVE_CUDNN
#include <stdio.h>
#include <string.h>
#include "backends/cudnn/cudnn_internal.h"

#define SB 96

void u3d_cudnn_nd(u3d_shape s, int dims[5], int strides[5])
{
    int d[5] = {s.n, s.c, s.d, s.h, s.w};
    int st = 1;
    for (int i = 4; i >= 0; i--) {
        dims[i] = d[i];
        strides[i] = st;
        st *= d[i];
    }
}

u3d_status u3d_cudnn_conv_geometry(u3d_shape x, u3d_shape w, const int pad[3],
                                   const int stride[3], u3d_cudnn_conv_geom *g,
                                   u3d_error *err)
{
    char a[SB], b[SB];
    memset(g, 0, sizeof *g);
    for (int i = 0; i < 3; i++)
        if (pad[i] < 0 || stride[i] < 1)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "cudnn conv: pad %d / stride %d along %c out of "
                              "range",
                              pad[i], stride[i], "DHW"[i]);
    if (w.c != x.c || w.d < 1 || w.h < 1 || w.w < 1 || w.n < 1)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "cudnn conv: filter %s does not fit input %s",
                          u3d_shape_str(w, a, SB), u3d_shape_str(x, b, SB));
    int in[3] = {x.d, x.h, x.w}, k[3] = {w.d, w.h, w.w}, o[3];
    for (int i = 0; i < 3; i++) {
        if (in[i] + 2 * pad[i] < k[i])
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "cudnn conv: input %s is smaller than the "
                              "%dx%dx%d filter with padding %d,%d,%d",
                              u3d_shape_str(x, a, SB), k[0], k[1], k[2],
                              pad[0], pad[1], pad[2]);
        o[i] = (in[i] + 2 * pad[i] - k[i]) / stride[i] + 1;
    }
    g->x = x;
    g->w = w;
    g->y = u3d_shape5(x.n, w.n, o[0], o[1], o[2]);
    for (int i = 0; i < 3; i++) {
        g->pad[i] = pad[i];
        g->stride[i] = stride[i];
    }
    return U3D_OK;
}

static int usable(const u3d_cudnn_algo_cand *c, size_t limit)
{
    return c->ok && !c->tensor_op && c->memory <= limit;
}

int u3d_cudnn_algo_order(const u3d_cudnn_algo_cand *c, int n, size_t limit,
                         int *order)
{
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if (usable(&c[i], limit) && !!c[i].deterministic == !pass)
                order[k++] = i;
    return k;
}

size_t u3d_cudnn_workspace_limit(size_t free_bytes, size_t held_bytes)
{
    const size_t reserve = (size_t)256 << 20, cap = (size_t)2 << 30;
    size_t extra = free_bytes > reserve ? (free_bytes - reserve) / 2 : 0;
    size_t lim = held_bytes + extra;
    return lim < cap ? lim : (held_bytes > cap ? held_bytes : cap);
}

u3d_status u3d_cudnn_pick_arch(int major, int minor, const int *supported,
                               int n, int *arch, int *sass, u3d_error *err)
{
    int cc = major * 10 + minor, best = -1, lowest = -1;
    for (int i = 0; i < n; i++) {
        if (supported[i] == cc) {
            *arch = cc;
            *sass = 1;
            return U3D_OK;
        }
        if (supported[i] < cc && supported[i] > best)
            best = supported[i];
        if (lowest < 0 || supported[i] < lowest)
            lowest = supported[i];
    }
    if (best < 0)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "the GPU has compute capability %d.%d, older than "
                          "the oldest this CUDA's NVRTC supports (%d.%d); "
                          "use --backend opencl",
                          major, minor, lowest / 10, lowest % 10);
    *arch = best;
    *sass = 0;
    return U3D_OK;
}

unsigned u3d_cudnn_blocks(long long n)
{
    long long b = (n + U3D_CUDNN_BLOCK - 1) / U3D_CUDNN_BLOCK;
    if (b < 1)
        b = 1;
    return b > (1 << 20) ? (1u << 20) : (unsigned)b; /* grid-stride beyond */
}

int u3d_cudnn_chan_blocks(long long m)
{
    /* about 32 values per thread, at most 128 blocks per channel */
    long long b = (m + 32LL * U3D_CUDNN_BLOCK - 1) / (32LL * U3D_CUDNN_BLOCK);
    return b < 1 ? 1 : (b > 128 ? 128 : (int)b);
}

int u3d_cudnn_reduce_blocks(long long n)
{
    long long b = (n + 16LL * U3D_CUDNN_BLOCK - 1) / (16LL * U3D_CUDNN_BLOCK);
    return b < 1 ? 1 : (b > 1024 ? 1024 : (int)b);
}

u3d_status u3d_cuda_check(cudaError_t rc, const char *what, u3d_error *err)
{
    if (rc == cudaSuccess)
        return U3D_OK;
    u3d_status st = U3D_ERR_DEVICE;
    const char *hint = "";
    if (rc == cudaErrorMemoryAllocation) {
        st = U3D_ERR_OOM;
        hint = "; use a smaller patch, tile or batch";
    } else if (rc == cudaErrorInsufficientDriver) {
        hint = "; install or update the NVIDIA driver";
    } else if (rc == cudaErrorNoDevice) {
        hint = "; no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES)";
    }
    return u3d_seterr(err, st, "CUDA error in %s: %s (%s)%s", what,
                      cudaGetErrorName(rc), cudaGetErrorString(rc), hint);
}

u3d_status u3d_dnn_check(cudnnStatus_t rc, const char *what, u3d_error *err)
{
    if (rc == CUDNN_STATUS_SUCCESS)
        return U3D_OK;
    char detail[512] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    u3d_status st = rc == CUDNN_STATUS_ALLOC_FAILED ? U3D_ERR_OOM
                    : rc == CUDNN_STATUS_NOT_SUPPORTED ? U3D_ERR_UNSUPPORTED
                                                       : U3D_ERR_DEVICE;
    return u3d_seterr(err, st, "cuDNN error in %s: %s%s%s", what,
                      cudnnGetErrorString(rc), detail[0] ? ": " : "", detail);
}

#else
typedef int u3d_cudnn_policy_unused; /* ISO C wants a declaration */
#endif
