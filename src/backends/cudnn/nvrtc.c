/* Run-time compilation of kernels.cu with NVRTC, kernel launches and the
 * per-launch profile of the cuDNN backend. */
#ifdef U3D_HAVE_CUDNN
#include <nvrtc.h>
#include <stdlib.h>
#include <string.h>
#include "backends/cudnn/cudnn_internal.h"

/* Signatures follow kernels.cu's parameter lists ('l': 8 bytes, a pointer,
 * long long or double). */
const u3d_cudnn_kernel_info u3d_cudnn_kernels[K_COUNT] = {
    [K_FILL] = {"u3d_fill_f32", "llf"},
    [K_AXPY] = {"u3d_axpy_f32", "lfll"},
    [K_SGD] = {"u3d_sgd_f32", "lffflll"},
    [K_ADAM] = {"u3d_adam_f32", "lfllfffllll"},
    [K_RELU_FWD] = {"u3d_relu_fwd", "lll"},
    [K_RELU_BWD] = {"u3d_relu_bwd", "llll"},
    [K_BIAS_ADD] = {"u3d_bias_add", "lllil"},
    [K_CHAN_PARTIAL] = {"u3d_chan_partial", "liill"},
    [K_CHAN_FINAL] = {"u3d_chan_final", "liil"},
    [K_MAXPOOL_FWD] = {"u3d_maxpool_fwd", "lliiiiiil"},
    [K_MAXPOOL_BWD] = {"u3d_maxpool_bwd", "llliiiiiil"},
    [K_CROP_FWD] = {"u3d_crop_concat_fwd", "llliiiiiiiiiiii"},
    [K_CROP_BWD_SKIP] = {"u3d_crop_concat_bwd_skip", "lliiiiiiiiiiiii"},
    [K_CROP_BWD_UP] = {"u3d_crop_concat_bwd_up", "lliiil"},
    [K_CE_WEIGHTS] = {"u3d_ce_weights", "lliillll"},
    [K_CE_WEIGHTS_FINAL] = {"u3d_ce_weights_final", "lllillll"},
    [K_CE_SOFTMAX] = {"u3d_ce_softmax", "llliilillll"},
    [K_SUM_FINAL] = {"u3d_sum_final", "lil"},
    [K_AUG_CONTROL_POINTS] = {"u3d_aug_control_points", "kl"},
    [K_AUG_FIELD_W] = {"u3d_aug_field_w", "kll"},
    [K_AUG_FIELD_H] = {"u3d_aug_field_h", "kll"},
    [K_AUG_SAMPLE] = {"u3d_aug_sample", "klllll"},
    [K_AUG_GRAY] = {"u3d_aug_gray", "kl"},
};

static u3d_status rtc_check(nvrtcResult rc, const char *what, u3d_error *err)
{
    if (rc == NVRTC_SUCCESS)
        return U3D_OK;
    return u3d_seterr(err, U3D_ERR_DEVICE, "NVRTC error in %s: %s", what,
                      nvrtcGetErrorString(rc));
}

/* Compile failure: the head of the log is what a developer needs. */
static u3d_status log_failure(nvrtcProgram prog, const char *opt,
                              u3d_error *err)
{
    size_t n = 0;
    char log[700] = "";
    if (nvrtcGetProgramLogSize(prog, &n) == NVRTC_SUCCESS && n > 1) {
        char *full = malloc(n);
        if (full && nvrtcGetProgramLog(prog, full) == NVRTC_SUCCESS)
            snprintf(log, sizeof log, "%s", full);
        free(full);
    }
    return u3d_seterr(err, U3D_ERR_DEVICE,
                      "NVRTC could not compile the cudnn backend's kernels "
                      "for %s: %s",
                      opt, log[0] ? log : "(no log)");
}

static u3d_status fetch_image(nvrtcProgram prog, int sass, char **image,
                              size_t *size, u3d_error *err)
{
    size_t n = 0;
    nvrtcResult rc = sass ? nvrtcGetCUBINSize(prog, &n)
                          : nvrtcGetPTXSize(prog, &n);
    U3D_TRY(rtc_check(rc, sass ? "nvrtcGetCUBINSize" : "nvrtcGetPTXSize", err));
    char *buf = malloc(n + 1);
    if (!buf)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    rc = sass ? nvrtcGetCUBIN(prog, buf) : nvrtcGetPTX(prog, buf);
    if (rc != NVRTC_SUCCESS) {
        free(buf);
        return rtc_check(rc, "nvrtcGetCUBIN/PTX", err);
    }
    buf[n] = 0;
    *image = buf;
    *size = n;
    return U3D_OK;
}

u3d_status u3d_cudnn_compile(const char *src, int arch, int sass,
                             char **image, size_t *size, u3d_error *err)
{
    char opt[64];
    *image = NULL;
    *size = 0;
    snprintf(opt, sizeof opt, "--gpu-architecture=%s_%d",
             sass ? "sm" : "compute", arch);
    /* no fused multiply-add contraction: elementwise results then match the
     * host reference's rounding; the kernels are memory bound anyway */
    const char *opts[] = {opt, "--fmad=false", "--std=c++17"};
    /* kernels.cu includes the augmentation's shared arithmetic, which
     * includes Philox */
    const char *headers[] = {u3d_cudnn_augment_src, u3d_cudnn_philox_src};
    const char *names[] = {"augment.cl", "philox.h"};
    nvrtcProgram prog;
    U3D_TRY(rtc_check(
        nvrtcCreateProgram(&prog, src, "kernels.cu", 2, headers, names),
        "nvrtcCreateProgram", err));
    nvrtcResult rc = nvrtcCompileProgram(prog, 3, opts);
    u3d_status st = U3D_OK;
    if (rc == NVRTC_ERROR_COMPILATION)
        st = log_failure(prog, opt, err);
    else if (rc != NVRTC_SUCCESS)
        st = rtc_check(rc, "nvrtcCompileProgram", err);
    if (!st)
        st = fetch_image(prog, sass, image, size, err);
    nvrtcDestroyProgram(&prog);
    return st;
}

/* ---- profile: one entry per label ---- */

struct u3d_cudnn_prof {
    char label[48];
    long calls;
    double ms;
    u3d_cudnn_prof *next;
};

static void prof_add(u3d_cudnn *cx, const char *label, double ms)
{
    u3d_cudnn_prof **pp = &cx->prof;
    for (; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->label, label))
            break;
    if (!*pp) {
        *pp = calloc(1, sizeof **pp);
        if (!*pp)
            return; /* profiling is best effort */
        snprintf((*pp)->label, sizeof (*pp)->label, "%s", label);
    }
    (*pp)->calls++;
    (*pp)->ms += ms;
}

u3d_status u3d_cudnn_prof_begin(u3d_cudnn *cx, u3d_error *err)
{
    if (!cx->profile)
        return U3D_OK;
    return u3d_cuda_check(cudaEventRecord(cx->ev0, cx->stream),
                          "cudaEventRecord", err);
}

u3d_status u3d_cudnn_prof_end(u3d_cudnn *cx, const char *label,
                              u3d_error *err)
{
    if (!cx->profile)
        return U3D_OK;
    float ms = 0;
    U3D_TRY(u3d_cuda_check(cudaEventRecord(cx->ev1, cx->stream),
                           "cudaEventRecord", err));
    U3D_TRY(u3d_cuda_check(cudaEventSynchronize(cx->ev1), label, err));
    U3D_TRY(u3d_cuda_check(cudaEventElapsedTime(&ms, cx->ev0, cx->ev1),
                           "cudaEventElapsedTime", err));
    prof_add(cx, label, ms);
    return U3D_OK;
}

void u3d_cudnn_prof_print(const u3d_cudnn *cx, FILE *out)
{
    if (!cx->profile || !cx->prof)
        return;
    double total = 0;
    for (const u3d_cudnn_prof *p = cx->prof; p; p = p->next)
        total += p->ms;
    fprintf(out, "%-40s %8s %12s %7s\n", "kernel", "calls", "total ms",
            "share");
    for (const u3d_cudnn_prof *p = cx->prof; p; p = p->next)
        fprintf(out, "%-40s %8ld %12.3f %6.1f%%\n", p->label, p->calls, p->ms,
                total > 0 ? 100.0 * p->ms / total : 0.0);
}

void u3d_cudnn_prof_free(u3d_cudnn *cx)
{
    for (u3d_cudnn_prof *p = cx->prof, *n; p; p = n) {
        n = p->next;
        free(p);
    }
    cx->prof = NULL;
}

u3d_status u3d_cudnn_launch(u3d_cudnn *cx, u3d_cudnn_kid id, const char *label,
                            unsigned gx, unsigned gy, const u3d_kargs *args,
                            u3d_error *err)
{
    const u3d_cudnn_kernel_info *k = &u3d_cudnn_kernels[id];
    if (strcmp(args->sig, k->sig))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "internal error in the cudnn backend: %s launches "
                          "%s with arguments '%s', it takes '%s'",
                          label, k->name, args->sig, k->sig);
    if (gy > 65535) /* CUDA's grid y limit; gy is a channel count */
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s: %u channels exceed the 65535 the cudnn "
                          "backend's kernels handle",
                          label, gy);
    dim3 grid = {gx ? gx : 1, gy ? gy : 1, 1};
    dim3 block = {U3D_CUDNN_BLOCK, 1, 1};
    if (cx->launch_hook)
        return cx->launch_hook(cx, id, grid.x, grid.y, args, err);
    U3D_TRY(u3d_cudnn_prof_begin(cx, err));
    /* a cudaKernel_t cast to a function pointer is accepted by
     * cudaLaunchKernel (CUDA 12+ runtime); the runtime copies each
     * argument's size from the kernel's parameter list */
    cudaError_t rc = cudaLaunchKernel((const void *)cx->k[id], grid, block,
                                      (void **)args->v, 0, cx->stream);
    U3D_TRY(u3d_cuda_check(rc, label, err));
    return u3d_cudnn_prof_end(cx, label, err);
}

#else
typedef int u3d_cudnn_nvrtc_unused;
#endif
