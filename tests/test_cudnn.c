/* The cuDNN backend.
 *
 * Without a GPU (always): descriptor set-up from shapes (checked by cuDNN's
 * own descriptor functions, which need no device), conv geometry and shape
 * errors, the algorithm and workspace policies, the NVRTC target choice,
 * launch sizes, compilation of every kernel with NVRTC plus a check of each
 * kernel's parameter list (from the PTX) against the signature table every
 * launch is checked with, the augmentation kernels' PTX (float products
 * unfused, no fma, approximate or flush-to-zero instructions, no calls),
 * device-spec parsing, and the clear failure of
 * creation and of the device list when there is no GPU or driver. And the
 * kernels themselves: kernels.cu is compiled here as C into a small CUDA
 * emulator (256 pthreads per block, barriers), and the backend's own op code
 * (its per-op files) runs on it against the host reference: ReLU, SGD, axpy, fill,
 * max-pool (ties, NaN), crop+concat, softmax cross-entropy (multi-block
 * reductions, ignored and invalid labels), channel sums, bias addition and
 * the augmentation (kernels.cu around the shared code of cl/augment.cl,
 * bit for bit against the host implementation).
 *
 * With a GPU (skipped otherwise): the augmentation kernels bit for bit
 * against the host implementation, and bitwise determinism. Every op against
 * the host reference is test_ops.c, which runs its table on this backend
 * when it can be created (its tolerances for cuDNN: 1e-4 for forward values
 * and single sums, 1e-3 for reductions over N*D*H*W, exact data movement).
 * In the emulator: exact where the arithmetic is the reference's, 1e-6 for
 * the float softmax against the double reference. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

#ifdef U3D_HAVE_CUDNN
#include <nvrtc.h>
#include <pthread.h>
#include "backends/cudnn/cudnn_internal.h"
/* the augmentation's shared code as C (cl/augment.cl): the host
 * implementation's arithmetic, and the emulated kernels' */
#include "augment/augment_internal.h"

typedef struct env {
    u3d_backend *gpu; /* NULL without a usable device */
    u3d_backend *ref;
    u3d_error create_err;
    u3d_status create_st;
    uint64_t seed;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    u3d_error err = {0};
    if (!e || u3d_backend_ref_create(&e->ref, &err))
        return -1;
    e->create_st = u3d_backend_cudnn_create(0, 0, &e->gpu, &e->create_err);
    if (e->create_st)
        e->gpu = NULL;
    e->seed = 777;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    u3d_backend_destroy(e->gpu);
    u3d_backend_destroy(e->ref);
    free(e);
    return 0;
}

/* ------------------------------------------------------------------ */
/* host-side logic                                                     */
/* ------------------------------------------------------------------ */

static void nd_layout(void **state)
{
    (void)state;
    int d[5], s[5];
    u3d_cudnn_nd(u3d_shape5(2, 3, 4, 5, 6), d, s);
    int wd[5] = {2, 3, 4, 5, 6}, ws[5] = {360, 120, 30, 6, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d[i], wd[i]);
        assert_int_equal(s[i], ws[i]);
    }
    u3d_cudnn_nd(u3d_shape5(1, 1, 1, 1, 1), d, s);
    for (int i = 0; i < 5; i++)
        assert_true(d[i] == 1 && s[i] == 1);
}

static void conv_geometry(void **state)
{
    (void)state;
    u3d_cudnn_conv_geom g;
    u3d_error err = {0};
    u3d_shape x = u3d_shape5(2, 3, 9, 8, 7);
    const int p0[3] = {0, 0, 0}, p1[3] = {1, 1, 1}, s1[3] = {1, 1, 1};
    const int s2[3] = {2, 2, 2}, p011[3] = {0, 1, 1}, s122[3] = {1, 2, 2};
    /* valid 3x3x3 */
    t_ok(u3d_cudnn_conv_geometry(x, u3d_shape5(5, 3, 3, 3, 3), p0, s1, &g,
                                 &err),
         &err, "valid");
    assert_true(u3d_shape_eq(g.y, u3d_shape5(2, 5, 7, 6, 5)));
    /* same padding */
    t_ok(u3d_cudnn_conv_geometry(x, u3d_shape5(4, 3, 3, 3, 3), p1, s1, &g,
                                 &err),
         &err, "same");
    assert_true(u3d_shape_eq(g.y, u3d_shape5(2, 4, 9, 8, 7)));
    /* 1x1x1 */
    t_ok(u3d_cudnn_conv_geometry(x, u3d_shape5(6, 3, 1, 1, 1), p0, s1, &g,
                                 &err),
         &err, "1x1");
    assert_true(u3d_shape_eq(g.y, u3d_shape5(2, 6, 9, 8, 7)));
    /* anisotropic 1x3x3, padding 0,1,1: same size in every plane */
    t_ok(u3d_cudnn_conv_geometry(x, u3d_shape5(5, 3, 1, 3, 3), p011, s1, &g,
                                 &err),
         &err, "1x3x3 same");
    assert_true(u3d_shape_eq(g.y, u3d_shape5(2, 5, 9, 8, 7)));
    assert_true(g.pad[0] == 0 && g.pad[1] == 1 && g.pad[2] == 1);
    /* the upconv view: conv input = upconv output (N,Cout,2D,2H,2W), filter
     * = ConvTranspose weight (Cin,Cout,2,2,2), output = upconv input */
    t_ok(u3d_cudnn_conv_geometry(u3d_shape5(2, 4, 6, 10, 4),
                                 u3d_shape5(8, 4, 2, 2, 2), p0, s2, &g, &err),
         &err, "upconv view");
    assert_true(u3d_shape_eq(g.y, u3d_shape5(2, 8, 3, 5, 2)));
    /* and of a 1x2x2 up-convolution: D kept */
    t_ok(u3d_cudnn_conv_geometry(u3d_shape5(2, 4, 3, 10, 4),
                                 u3d_shape5(8, 4, 1, 2, 2), p0, s122, &g,
                                 &err),
         &err, "upconv 1x2x2 view");
    assert_true(u3d_shape_eq(g.y, u3d_shape5(2, 8, 3, 5, 2)));
    /* errors name the shapes */
    assert_int_equal(u3d_cudnn_conv_geometry(u3d_shape5(1, 3, 2, 8, 8),
                                             u3d_shape5(5, 3, 3, 3, 3), p0, s1,
                                             &g, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x3x2x8x8"));
    assert_int_equal(u3d_cudnn_conv_geometry(x, u3d_shape5(5, 2, 3, 3, 3), p1,
                                             s1, &g, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "5x2x3x3x3"));
    assert_int_equal(u3d_cudnn_conv_geometry(x, u3d_shape5(5, 3, 0, 3, 3), p1,
                                             s1, &g, &err),
                     U3D_ERR_SHAPE);
    assert_int_equal(u3d_cudnn_conv_geometry(x, u3d_shape5(5, 3, 3, 3, 3), p1,
                                             p0, &g, &err),
                     U3D_ERR_INVALID_ARG);
}

/* cuDNN's descriptor calls run without a device: they validate our dims,
 * strides and conv parameters and compute the output size themselves. */
static void conv_descriptors(void **state)
{
    (void)state;
    u3d_error err = {0};
    struct {
        u3d_shape x, w;
        int pad[3], stride[3];
    } cases[] = {
        {u3d_shape5(2, 3, 9, 8, 7), u3d_shape5(5, 3, 3, 3, 3), {0, 0, 0},
         {1, 1, 1}},
        {u3d_shape5(1, 4, 5, 6, 7), u3d_shape5(2, 4, 3, 3, 3), {1, 1, 1},
         {1, 1, 1}},
        {u3d_shape5(3, 2, 4, 4, 4), u3d_shape5(3, 2, 1, 1, 1), {0, 0, 0},
         {1, 1, 1}},
        {u3d_shape5(2, 4, 6, 10, 4), u3d_shape5(8, 4, 2, 2, 2), {0, 0, 0},
         {2, 2, 2}},
        {u3d_shape5(1, 1, 5, 5, 5), u3d_shape5(1, 1, 4, 4, 4), {2, 2, 2},
         {1, 1, 1}},
        /* anisotropic: 1x3x3 same in-plane, 1x2x2 up-convolution view */
        {u3d_shape5(2, 3, 4, 8, 7), u3d_shape5(5, 3, 1, 3, 3), {0, 1, 1},
         {1, 1, 1}},
        {u3d_shape5(2, 4, 3, 10, 4), u3d_shape5(8, 4, 1, 2, 2), {0, 0, 0},
         {1, 2, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        u3d_cudnn_conv_geom g;
        u3d_cudnn_conv_descs d;
        t_ok(u3d_cudnn_conv_geometry(cases[i].x, cases[i].w, cases[i].pad,
                                     cases[i].stride, &g, &err),
             &err, "geometry");
        t_ok(u3d_cudnn_conv_descs_init(&d, &g, &err), &err, "descriptors");
        /* the tensor descriptor reads back as set */
        cudnnDataType_t dt;
        int nb = 0, dims[5], strides[5], want_d[5], want_s[5];
        assert_int_equal(cudnnGetTensorNdDescriptor(d.y, 5, &dt, &nb, dims,
                                                    strides),
                         CUDNN_STATUS_SUCCESS);
        u3d_cudnn_nd(g.y, want_d, want_s);
        assert_int_equal(nb, 5);
        assert_int_equal(dt, CUDNN_DATA_FLOAT);
        for (int k = 0; k < 5; k++) {
            assert_int_equal(dims[k], want_d[k]);
            assert_int_equal(strides[k], want_s[k]);
        }
        u3d_cudnn_conv_descs_free(&d);
        assert_null(d.x);
        /* an inconsistent output shape is refused by the cross-check */
        g.y.d += 1;
        assert_int_equal(u3d_cudnn_conv_descs_init(&d, &g, &err),
                         U3D_ERR_SHAPE);
        char xs[96], ys[96];
        assert_non_null(strstr(err.msg, "cuDNN computes output"));
        assert_non_null(strstr(err.msg, u3d_shape_str(g.x, xs, sizeof xs)));
        assert_non_null(strstr(err.msg, u3d_shape_str(g.y, ys, sizeof ys)));
        assert_null(d.x);
    }
}

static void algo_order(void **state)
{
    (void)state;
    int order[8];
    const size_t MB = 1 << 20;
    /* cuDNN order: 0 fastest. algo 10 nondeterministic, 11 needs TF32,
     * 12 fails, 13 too big, 14 and 15 deterministic and fit */
    u3d_cudnn_algo_cand c[] = {
        {10, 1, 0, 0, 0},       {11, 1, 0, 1, 1},  {12, 0, 0, 1, 0},
        {13, 1, 900 * MB, 1, 0}, {14, 1, 10 * MB, 1, 0}, {15, 1, 0, 1, 0},
    };
    int n = u3d_cudnn_algo_order(c, 6, 100 * MB, order);
    assert_int_equal(n, 3);
    assert_int_equal(c[order[0]].algo, 14); /* deterministic first ... */
    assert_int_equal(c[order[1]].algo, 15); /* ... in cuDNN's order ... */
    assert_int_equal(c[order[2]].algo, 10); /* ... nondeterministic last */
    /* a larger limit admits 13 in its place */
    n = u3d_cudnn_algo_order(c, 6, 1000 * MB, order);
    assert_int_equal(n, 4);
    assert_int_equal(c[order[0]].algo, 13);
    /* nothing usable */
    assert_int_equal(u3d_cudnn_algo_order(c + 1, 3, 100 * MB, order), 0);
    assert_int_equal(u3d_cudnn_algo_order(c, 0, 100 * MB, order), 0);
}

static void workspace_limit(void **state)
{
    (void)state;
    const size_t MB = (size_t)1 << 20;
    /* half of what lies beyond the 256 MiB reserve, plus what is held */
    assert_true(u3d_cudnn_workspace_limit(1256 * MB, 0) == 500 * MB);
    assert_true(u3d_cudnn_workspace_limit(1256 * MB, 64 * MB) == 564 * MB);
    /* nearly full device: only what is already held */
    assert_true(u3d_cudnn_workspace_limit(100 * MB, 32 * MB) == 32 * MB);
    assert_true(u3d_cudnn_workspace_limit(0, 0) == 0);
    /* capped at 2 GiB, never below what is held */
    assert_true(u3d_cudnn_workspace_limit(80000 * MB, 0) == 2048 * MB);
    assert_true(u3d_cudnn_workspace_limit(80000 * MB, 3000 * MB) ==
                3000 * MB);
}

static void pick_arch(void **state)
{
    (void)state;
    const int sup[] = {75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121};
    int n = (int)(sizeof sup / sizeof sup[0]), arch, sass;
    u3d_error err = {0};
    t_ok(u3d_cudnn_pick_arch(9, 0, sup, n, &arch, &sass, &err), &err, "9.0");
    assert_true(arch == 90 && sass == 1);
    t_ok(u3d_cudnn_pick_arch(8, 6, sup, n, &arch, &sass, &err), &err, "8.6");
    assert_true(arch == 86 && sass == 1);
    /* unknown newer GPUs get PTX of the newest known arch below them */
    t_ok(u3d_cudnn_pick_arch(12, 5, sup, n, &arch, &sass, &err), &err, "12.5");
    assert_true(arch == 121 && sass == 0);
    t_ok(u3d_cudnn_pick_arch(9, 5, sup, n, &arch, &sass, &err), &err, "9.5");
    assert_true(arch == 90 && sass == 0);
    assert_int_equal(u3d_cudnn_pick_arch(7, 0, sup, n, &arch, &sass, &err),
                     U3D_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "7.0"));
    assert_non_null(strstr(err.msg, "7.5"));
}

static void launch_sizes(void **state)
{
    (void)state;
    assert_int_equal(u3d_cudnn_blocks(0), 1);
    assert_int_equal(u3d_cudnn_blocks(1), 1);
    assert_int_equal(u3d_cudnn_blocks(256), 1);
    assert_int_equal(u3d_cudnn_blocks(257), 2);
    assert_int_equal(u3d_cudnn_blocks(1LL << 31), 1 << 20); /* grid-stride */
    assert_int_equal(u3d_cudnn_chan_blocks(1), 1);
    assert_int_equal(u3d_cudnn_chan_blocks(8192), 1);
    assert_int_equal(u3d_cudnn_chan_blocks(8193), 2);
    assert_int_equal(u3d_cudnn_chan_blocks(1LL << 30), 128);
    assert_int_equal(u3d_cudnn_reduce_blocks(1), 1);
    assert_int_equal(u3d_cudnn_reduce_blocks(4097), 2);
    assert_int_equal(u3d_cudnn_reduce_blocks(1LL << 30), 1024);
}

/* Parameter types of `.entry name(` in PTX as signature letters. */
static int ptx_signature(const char *ptx, const char *name, char *sig,
                         size_t len)
{
    char head[128];
    snprintf(head, sizeof head, ".entry %s(", name);
    const char *p = strstr(ptx, head);
    if (!p)
        return -1;
    const char *end = strchr(p, ')');
    size_t k = 0;
    for (p += strlen(head); (p = strstr(p, ".param .")) && p < end; p += 8) {
        const char *t = p + 8;
        char c = '?';
        if (!strncmp(t, "f32", 3))
            c = 'f';
        else if (!strncmp(t, "u32", 3) || !strncmp(t, "s32", 3) ||
                 !strncmp(t, "b32", 3))
            c = 'i';
        else if (t[1] == '6' && t[2] == '4')
            c = 'l';
        else if (!strncmp(t, "align", 5)) {
            /* a struct by value, ".align 4 .b8 name[bytes]": 'k' when its
             * size is the host's aug_consts (same layout in C and CUDA) */
            const char *br = strchr(t, '[');
            if (br && br < end &&
                strtol(br + 1, NULL, 10) == (long)sizeof(aug_consts))
                c = 'k';
        }
        if (k + 1 < len)
            sig[k++] = c;
    }
    sig[k] = 0;
    return 0;
}

/* The PTX of kernel name, up to the next entry (or the end). */
static char *ptx_body(const char *ptx, const char *name)
{
    char head[128];
    snprintf(head, sizeof head, ".entry %s(", name);
    const char *p = strstr(ptx, head);
    if (!p)
        return NULL;
    const char *q = strstr(p + 1, ".entry ");
    size_t n = q ? (size_t)(q - p) : strlen(p);
    char *b = malloc(n + 1);
    assert_non_null(b);
    memcpy(b, p, n);
    b[n] = 0;
    return b;
}

/* The augmentation kernels keep the host's rounding: float products stay
 * unfused (--fmad=false makes them mul.rn, which ptxas may not contract),
 * no fma, no approximate or flush-to-zero instruction (no device math
 * library), and no calls (all shared code inlined, so the bodies checked
 * here are all of it). */
static void check_aug_ptx(const char *ptx)
{
    static const u3d_cudnn_kid aug[] = {K_AUG_CONTROL_POINTS, K_AUG_FIELD_W,
                                        K_AUG_FIELD_H, K_AUG_SAMPLE,
                                        K_AUG_GRAY};
    static const char *banned[] = {"fma.", ".approx", ".ftz", "call",
                                   "div.rn.f32", "div.full", "sqrt."};
    for (size_t i = 0; i < sizeof aug / sizeof aug[0]; i++) {
        const char *name = u3d_cudnn_kernels[aug[i]].name;
        char *b = ptx_body(ptx, name);
        if (!b)
            fail_msg("kernel %s missing from the PTX", name);
        if (!strstr(b, "mul.rn.f32") || !strstr(b, "add.rn.f32"))
            fail_msg("kernel %s: no mul.rn.f32/add.rn.f32 in its PTX (FMA "
                     "contraction not disabled?)",
                     name);
        for (size_t j = 0; j < sizeof banned / sizeof banned[0]; j++)
            if (strstr(b, banned[j]))
                fail_msg("kernel %s: '%s' in its PTX", name, banned[j]);
        free(b);
    }
}

static void kernels_compile(void **state)
{
    (void)state;
    u3d_error err = {0};
    char *img;
    size_t size;
    int n = 0;
    assert_int_equal(nvrtcGetNumSupportedArchs(&n), NVRTC_SUCCESS);
    int *archs = calloc((size_t)n, sizeof *archs);
    assert_non_null(archs);
    nvrtcGetSupportedArchs(archs);
    /* PTX for the oldest target: every kernel exists with the parameter
     * list the launch table (and so every launch) assumes */
    t_ok(u3d_cudnn_compile(u3d_cudnn_kernels_src, archs[0], 0, &img, &size,
                           &err),
         &err, "NVRTC PTX");
    for (int i = 0; i < K_COUNT; i++) {
        char sig[64];
        const u3d_cudnn_kernel_info *k = &u3d_cudnn_kernels[i];
        if (ptx_signature(img, k->name, sig, sizeof sig))
            fail_msg("kernel %s missing from the PTX", k->name);
        if (strcmp(sig, k->sig))
            fail_msg("kernel %s takes '%s' in the PTX, the table says '%s'",
                     k->name, sig, k->sig);
    }
    check_aug_ptx(img);
    free(img);
    /* SASS (cubins) as created for real devices: Ampere, Hopper and the
     * newest architecture this NVRTC knows */
    int want[] = {80, 90, archs[n - 1]};
    for (int j = 0; j < 3; j++) {
        int ok = 0;
        for (int i = 0; i < n; i++)
            ok |= archs[i] == want[j];
        if (!ok)
            continue;
        t_ok(u3d_cudnn_compile(u3d_cudnn_kernels_src, want[j], 1, &img, &size,
                               &err),
             &err, "NVRTC cubin");
        assert_true(size > 4 && !memcmp(img, "\177ELF", 4));
        free(img);
    }
    free(archs);
    /* a compile error is reported with NVRTC's log */
    assert_int_equal(u3d_cudnn_compile("extern \"C\" __global__ void k() { x; }",
                                       75, 0, &img, &size, &err),
                     U3D_ERR_DEVICE);
    assert_non_null(strstr(err.msg, "identifier \"x\" is undefined"));
    assert_null(img);
}

/* ------------------------------------------------------------------ */
/* kernels.cu on the host: a small CUDA emulator                       */
/* ------------------------------------------------------------------ */

/* Each launch runs U3D_CUDNN_BLOCK pthreads that walk the grid's blocks in
 * order, with a barrier for __syncthreads and between blocks (so the
 * static "shared" arrays serve one block at a time). The kernels keep CUDA
 * types (unsigned thread indices), hence no sign-compare warnings here. */
typedef struct emu_uint3 {
    unsigned x, y, z;
} emu_uint3;
static _Thread_local emu_uint3 threadIdx, blockIdx;
static emu_uint3 blockDim, gridDim;
static pthread_barrier_t emu_bar;

static float emu_int_as_float(unsigned v)
{
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

#define U3D_KERNEL void
#define U3D_DEVICE static
#undef __shared__ /* cuda_runtime.h defines it for nvcc */
#define __shared__ static
#define __syncthreads() pthread_barrier_wait(&emu_bar)
#define __int_as_float(v) emu_int_as_float(v)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "backends/cudnn/kernels.cu"
#pragma GCC diagnostic pop
#undef __syncthreads
#undef __shared__

/* Calls kernel id with the launch's argument array (types per signature). */
static void emu_call(u3d_cudnn_kid id, void *const *a)
{
#define A(i, T) (*(T *)a[i])
#define F A(0, float *)
    switch (id) {
    case K_FILL: u3d_fill_f32(F, A(1, long long), A(2, float)); break;
    case K_AXPY:
        u3d_axpy_f32(A(0, long long), A(1, float), A(2, float *),
                     A(3, float *));
        break;
    case K_SGD:
        u3d_sgd_f32(A(0, long long), A(1, float), A(2, float), A(3, float),
                    A(4, float *), A(5, float *), A(6, float *));
        break;
    case K_ADAM:
        u3d_adam_f32(A(0, long long), A(1, float), A(2, double), A(3, double),
                     A(4, float), A(5, float), A(6, float), A(7, float *),
                     A(8, float *), A(9, float *), A(10, float *));
        break;
    case K_RELU_FWD:
        u3d_relu_fwd(A(0, long long), A(1, float *), A(2, float *));
        break;
    case K_RELU_BWD:
        u3d_relu_bwd(A(0, long long), A(1, float *), A(2, float *),
                     A(3, float *));
        break;
    case K_BIAS_ADD:
        u3d_bias_add(F, A(1, float *), A(2, long long), A(3, int),
                     A(4, long long));
        break;
    case K_CHAN_PARTIAL:
        u3d_chan_partial(F, A(1, int), A(2, int), A(3, long long),
                         A(4, double *));
        break;
    case K_CHAN_FINAL:
        u3d_chan_final(A(0, double *), A(1, int), A(2, int), A(3, float *));
        break;
    case K_MAXPOOL_FWD:
        u3d_maxpool_fwd(F, A(1, float *), A(2, int), A(3, int), A(4, int),
                        A(5, int), A(6, int), A(7, int), A(8, long long));
        break;
    case K_MAXPOOL_BWD:
        u3d_maxpool_bwd(F, A(1, float *), A(2, float *), A(3, int), A(4, int),
                        A(5, int), A(6, int), A(7, int), A(8, int),
                        A(9, long long));
        break;
    case K_CROP_FWD:
        u3d_crop_concat_fwd(F, A(1, float *), A(2, float *), A(3, int),
                            A(4, int), A(5, int), A(6, int), A(7, int),
                            A(8, int), A(9, int), A(10, int), A(11, int),
                            A(12, int), A(13, int), A(14, int));
        break;
    case K_CROP_BWD_SKIP:
        u3d_crop_concat_bwd_skip(F, A(1, float *), A(2, int), A(3, int),
                                 A(4, int), A(5, int), A(6, int), A(7, int),
                                 A(8, int), A(9, int), A(10, int), A(11, int),
                                 A(12, int), A(13, int), A(14, int));
        break;
    case K_CROP_BWD_UP:
        u3d_crop_concat_bwd_up(F, A(1, float *), A(2, int), A(3, int),
                               A(4, int), A(5, long long));
        break;
    case K_CE_WEIGHTS:
        u3d_ce_weights(A(0, int *), A(1, long long), A(2, int), A(3, int),
                       A(4, float *), A(5, double *), A(6, long long *),
                       A(7, long long *));
        break;
    case K_CE_WEIGHTS_FINAL:
        u3d_ce_weights_final(A(0, double *), A(1, long long *),
                             A(2, long long *), A(3, int), A(4, int *),
                             A(5, long long), A(6, double *),
                             A(7, long long *));
        break;
    case K_CE_SOFTMAX:
        u3d_ce_softmax(F, A(1, int *), A(2, float *), A(3, int), A(4, int),
                       A(5, long long), A(6, int), A(7, double *),
                       A(8, float *), A(9, float *), A(10, double *));
        break;
    case K_SUM_FINAL:
        u3d_sum_final(A(0, double *), A(1, int), A(2, double *));
        break;
    case K_AUG_CONTROL_POINTS:
        u3d_aug_control_points(A(0, aug_consts), A(1, float *));
        break;
    case K_AUG_FIELD_W:
        u3d_aug_field_w(A(0, aug_consts), A(1, float *), A(2, float *));
        break;
    case K_AUG_FIELD_H:
        u3d_aug_field_h(A(0, aug_consts), A(1, float *), A(2, float *));
        break;
    case K_AUG_SAMPLE:
        u3d_aug_sample(A(0, aug_consts), A(1, float *), A(2, int *),
                       A(3, float *), A(4, float *), A(5, int *));
        break;
    case K_AUG_GRAY: u3d_aug_gray(A(0, aug_consts), A(1, float *)); break;
    case K_COUNT: break;
    }
#undef F
#undef A
}

typedef struct emu_thread {
    unsigned tid;
    u3d_cudnn_kid id;
    void *const *args;
} emu_thread;

static void *emu_thread_main(void *p)
{
    const emu_thread *t = p;
    threadIdx = (emu_uint3){t->tid, 0, 0};
    for (unsigned by = 0; by < gridDim.y; by++)
        for (unsigned bx = 0; bx < gridDim.x; bx++) {
            blockIdx = (emu_uint3){bx, by, 0};
            emu_call(t->id, t->args);
            pthread_barrier_wait(&emu_bar); /* block done everywhere */
        }
    return NULL;
}

/* Every launch of the emulated backend: logged, then run. */
typedef struct emu_log {
    int n;
    struct {
        u3d_cudnn_kid id;
        unsigned gx, gy;
    } l[64];
} emu_log;

static u3d_status emu_launch(u3d_cudnn *cx, u3d_cudnn_kid id, unsigned gx,
                             unsigned gy, const u3d_kargs *args,
                             u3d_error *err)
{
    (void)err;
    emu_log *log = cx->hook_data;
    if (log && log->n < 64) {
        log->l[log->n].id = id;
        log->l[log->n].gx = gx;
        log->l[log->n++].gy = gy;
    }
    pthread_t th[U3D_CUDNN_BLOCK];
    emu_thread t[U3D_CUDNN_BLOCK];
    gridDim = (emu_uint3){gx, gy, 1};
    blockDim = (emu_uint3){U3D_CUDNN_BLOCK, 1, 1};
    assert_int_equal(pthread_barrier_init(&emu_bar, NULL, U3D_CUDNN_BLOCK), 0);
    for (unsigned i = 0; i < U3D_CUDNN_BLOCK; i++) {
        t[i] = (emu_thread){i, id, args->v};
        assert_int_equal(pthread_create(&th[i], NULL, emu_thread_main, &t[i]),
                         0);
    }
    for (unsigned i = 0; i < U3D_CUDNN_BLOCK; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&emu_bar);
    return U3D_OK;
}

/* A backend whose buffers are host memory and whose kernel-based ops are
 * the cudnn backend's own (ops.c, launches checked against the signature
 * table) running on the emulator. Conv and batch norm need cuDNN: NULL. */
typedef struct emu {
    u3d_cudnn cx;
    u3d_backend be;
    emu_log log;
} emu;

static u3d_status emu_alloc(u3d_backend *be, size_t bytes, void **buf,
                            u3d_error *err)
{
    (void)be;
    *buf = calloc(1, bytes ? bytes : 4);
    return *buf ? U3D_OK : u3d_seterr(err, U3D_ERR_OOM, "out of memory");
}
static void emu_free(u3d_backend *be, void *buf)
{
    (void)be;
    free(buf);
}
static u3d_status emu_write(u3d_backend *be, void *buf, size_t off,
                            size_t bytes, const void *src, u3d_error *err)
{
    (void)be;
    (void)err;
    memcpy((char *)buf + off, src, bytes);
    return U3D_OK;
}
static u3d_status emu_read(u3d_backend *be, const void *buf, size_t off,
                           size_t bytes, void *dst, u3d_error *err)
{
    (void)be;
    (void)err;
    memcpy(dst, (const char *)buf + off, bytes);
    return U3D_OK;
}
static u3d_status emu_fill(u3d_backend *be, void *buf, size_t n, float v,
                           u3d_error *err)
{
    return u3d_cudnn_fill(u3d_cudnn_of(be), buf, n, v, err);
}
static u3d_status emu_finish(u3d_backend *be, u3d_error *err)
{
    (void)be;
    (void)err;
    return U3D_OK;
}
static void emu_destroy(u3d_backend *be) { (void)be; }

static const u3d_backend_ops emu_ops = {
    .buffer_alloc = emu_alloc,
    .buffer_free = emu_free,
    .buffer_write = emu_write,
    .buffer_read = emu_read,
    .buffer_fill = emu_fill,
    .finish = emu_finish,
    .destroy = emu_destroy,
    .maxpool3d_forward = u3d_cudnn_maxpool3d_forward,
    .maxpool3d_backward = u3d_cudnn_maxpool3d_backward,
    .relu_forward = u3d_cudnn_relu_forward,
    .relu_backward = u3d_cudnn_relu_backward,
    .crop_concat_forward = u3d_cudnn_crop_concat_forward,
    .crop_concat_backward = u3d_cudnn_crop_concat_backward,
    .softmax_ce = u3d_cudnn_softmax_ce,
    .sgd_step = u3d_cudnn_sgd_step,
    .adam_step = u3d_cudnn_adam_step,
    .axpy = u3d_cudnn_axpy,
    .augment_sample = u3d_cudnn_augment_sample,
};

static void emu_init(emu *m)
{
    memset(m, 0, sizeof *m);
    m->cx.host_mem = 1;
    m->cx.launch_hook = emu_launch;
    m->cx.hook_data = &m->log;
    m->be.ops = &emu_ops;
    m->be.ctx = &m->cx;
    snprintf(m->be.name, sizeof m->be.name, "cudnn-emulated");
}

static void emu_done(emu *m) { free(m->cx.scratch); }

/* Launch i of m's log was kernel id with at least `need` threads. */
static void expect(const emu *m, int i, u3d_cudnn_kid id, long long need)
{
    assert_true(i < m->log.n);
    if (m->log.l[i].id != id)
        fail_msg("launch %d ran %s, expected %s", i,
                 u3d_cudnn_kernels[m->log.l[i].id].name,
                 u3d_cudnn_kernels[id].name);
    long long threads = (long long)m->log.l[i].gx * U3D_CUDNN_BLOCK;
    assert_true(threads >= need || m->log.l[i].gx == 1u << 20);
}

/* The reference and the emulated backend on the same host data. */
typedef struct epair {
    u3d_tensor e, r;
} epair;

static epair emk(emu *m, env *v, u3d_shape s, const float *host)
{
    epair p = {t_tensor(&m->be, s, host), t_tensor(v->ref, s, host)};
    return p;
}

static epair emk_rand(emu *m, env *v, u3d_shape s, float lo, float hi)
{
    float *h = t_rand_array(&v->seed, u3d_shape_count(s), lo, hi);
    epair p = emk(m, v, s, h);
    free(h);
    return p;
}

static void erel(epair *p)
{
    u3d_tensor_release(&p->e);
    u3d_tensor_release(&p->r);
}

#define E(p, k) ((k) ? &(p).e : &(p).r)

static void emu_elementwise(void **state)
{
    env *v = *state;
    emu m;
    u3d_error err = {0};
    emu_init(&m);
    u3d_shape s = u3d_shape5(2, 3, 5, 6, 7);
    long long n = (long long)u3d_shape_count(s);
    epair x = emk_rand(&m, v, s, -1, 1), y = emk(&m, v, s, NULL);
    epair dy = emk_rand(&m, v, s, -1, 1), dx = emk(&m, v, s, NULL);
    epair w = emk_rand(&m, v, s, -1, 1), b = emk_rand(&m, v, s, -1, 1);
    epair w2 = emk_rand(&m, v, s, -1, 1), am = emk_rand(&m, v, s, -0.1f, 0.1f);
    epair av = emk_rand(&m, v, s, 0, 0.01f);
    u3d_sgd_params sp = {0.05f, 0.9f, 1e-3f};
    u3d_adam_params ap = {3e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, 17};
    m.log.n = 0;
    for (int k = 0; k < 2; k++) {
        t_ok(u3d_relu_forward(E(x, k), E(y, k), &err), &err, "relu");
        t_ok(u3d_relu_backward(E(y, k), E(dy, k), E(dx, k), &err), &err,
             "relu backward");
        t_ok(u3d_sgd_step(&sp, E(w, k), E(dy, k), E(b, k), &err), &err, "sgd");
        t_ok(u3d_adam_step(&ap, E(w2, k), E(dy, k), E(am, k), E(av, k), &err),
             &err, "adam");
        t_ok(u3d_axpy(-0.7f, E(x, k), E(dy, k), &err), &err, "axpy");
        t_ok(u3d_relu_forward(E(x, k), E(x, k), &err), &err, "relu in place");
    }
    expect(&m, 0, K_RELU_FWD, n);
    expect(&m, 1, K_RELU_BWD, n);
    expect(&m, 2, K_SGD, n);
    expect(&m, 3, K_ADAM, n);
    expect(&m, 4, K_AXPY, n);
    /* same arithmetic as the reference (double, no contraction): exact */
    t_assert_tensors_close(&y.e, &y.r, 0.0, "relu y");
    t_assert_tensors_close(&dx.e, &dx.r, 0.0, "relu dx");
    t_assert_tensors_close(&w.e, &w.r, 0.0, "sgd param");
    t_assert_tensors_close(&b.e, &b.r, 0.0, "sgd momentum buffer");
    t_assert_tensors_close(&w2.e, &w2.r, 0.0, "adam param");
    t_assert_tensors_close(&am.e, &am.r, 0.0, "adam first moment");
    t_assert_tensors_close(&av.e, &av.r, 0.0, "adam second moment");
    t_assert_tensors_close(&dy.e, &dy.r, 0.0, "axpy");
    t_assert_tensors_close(&x.e, &x.r, 0.0, "relu in place");
    t_ok(u3d_tensor_fill(&y.e, -2.5f, &err), &err, "fill");
    float *h = t_read(&y.e);
    for (long long i = 0; i < n; i++)
        assert_true(h[i] == -2.5f);
    free(h);
    epair *all[] = {&x, &y, &dy, &dx, &w, &b, &w2, &am, &av};
    for (int i = 0; i < 9; i++)
        erel(all[i]);
    emu_done(&m);
}

static void emu_maxpool(void **state)
{
    env *v = *state;
    emu m;
    u3d_error err = {0};
    emu_init(&m);
    /* rounds 3, 4: 1x2x2 windows (anisotropic levels), from a seed of
     * their own so that the later tests' draws stay as they were */
    uint64_t aseed = 2020;
    for (int r = 0; r < 5; r++) {
        uint64_t *sd = r >= 3 ? &aseed : &v->seed;
        u3d_shape xs = u3d_shape5(t_randi(sd, 1, 2), t_randi(sd, 1, 3),
                                  t_randi(sd, 2, 9), t_randi(sd, 2, 9),
                                  t_randi(sd, 2, 9));
        int fd = r >= 3 ? 1 : 2;
        u3d_shape ys = u3d_shape5(xs.n, xs.c, xs.d / fd, xs.h / 2, xs.w / 2);
        size_t n = u3d_shape_count(xs);
        float *h = malloc(n * sizeof *h);
        assert_non_null(h);
        for (size_t i = 0; i < n; i++) /* few values: many ties */
            h[i] = (float)t_randi(sd, -2, 2);
        epair x = emk(&m, v, xs, h), y = emk(&m, v, ys, NULL);
        free(h);
        float *hg = t_rand_array(sd, u3d_shape_count(ys), -1, 1);
        float *hd = t_rand_array(sd, n, 5, 6);
        epair dy = emk(&m, v, ys, hg), dx = emk(&m, v, xs, hd);
        free(hg);
        free(hd);
        for (int k = 0; k < 2; k++) {
            t_ok(u3d_maxpool3d_forward(E(x, k), E(y, k), &err), &err, "pool");
            t_ok(u3d_maxpool3d_backward(E(x, k), E(dy, k), E(dx, k), &err),
                 &err, "pool backward");
        }
        t_assert_tensors_close(&y.e, &y.r, 0.0, "maxpool y");
        t_assert_tensors_close(&dx.e, &dx.r, 0.0, "maxpool dx");
        epair *all[] = {&x, &y, &dy, &dx};
        for (int i = 0; i < 4; i++)
            erel(all[i]);
    }
    /* NaN wins, a later NaN over an earlier one; -inf windows keep voxel 0 */
    float ninf = -INFINITY, h[16] = {1, NAN, 3, NAN, 0, 0, 0, 0,
                                     ninf, ninf, ninf, ninf, ninf, ninf, ninf,
                                     ninf};
    u3d_tensor x = t_tensor(&m.be, u3d_shape5(1, 2, 2, 2, 2), h);
    u3d_tensor y = t_tensor(&m.be, u3d_shape5(1, 2, 1, 1, 1), NULL);
    float g[2] = {5, 7};
    u3d_tensor dy = t_tensor(&m.be, u3d_shape5(1, 2, 1, 1, 1), g);
    u3d_tensor dx = t_tensor(&m.be, x.shape, NULL);
    t_ok(u3d_maxpool3d_forward(&x, &y, &err), &err, "pool NaN");
    t_ok(u3d_maxpool3d_backward(&x, &dy, &dx, &err), &err, "pool NaN bwd");
    float *yy = t_read(&y), *dd = t_read(&dx);
    assert_true(isnan(yy[0]) && yy[1] == ninf);
    for (int i = 0; i < 16; i++)
        assert_true(dd[i] == (i == 3 ? 5.0f : i == 8 ? 7.0f : 0.0f));
    free(yy);
    free(dd);
    u3d_tensor *all[] = {&x, &y, &dy, &dx};
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(all[i]);
    emu_done(&m);
}

static void emu_crop_concat(void **state)
{
    env *v = *state;
    emu m;
    u3d_error err = {0};
    emu_init(&m);
    for (int r = 0; r < 4; r++) {
        u3d_shape us = u3d_shape5(t_randi(&v->seed, 1, 2),
                                  t_randi(&v->seed, 1, 3),
                                  t_randi(&v->seed, 1, 6),
                                  t_randi(&v->seed, 1, 6),
                                  t_randi(&v->seed, 1, 6));
        u3d_shape ss = u3d_shape5(us.n, t_randi(&v->seed, 1, 3),
                                  us.d + t_randi(&v->seed, 0, 5),
                                  us.h + t_randi(&v->seed, 0, 5),
                                  us.w + t_randi(&v->seed, 0, 5));
        u3d_shape cs = us;
        cs.c += ss.c;
        epair sk = emk_rand(&m, v, ss, -1, 1), up = emk_rand(&m, v, us, -1, 1);
        epair y = emk(&m, v, cs, NULL), dy = emk_rand(&m, v, cs, -1, 1);
        epair dsk = emk_rand(&m, v, ss, -1, 1), dup = emk(&m, v, us, NULL);
        int acc = r & 1;
        m.log.n = 0;
        for (int k = 0; k < 2; k++) {
            t_ok(u3d_crop_concat_forward(E(sk, k), E(up, k), E(y, k), &err),
                 &err, "crop-concat");
            t_ok(u3d_crop_concat_backward(E(dy, k), E(dsk, k), E(dup, k), acc,
                                          &err),
                 &err, "crop-concat backward");
        }
        expect(&m, 0, K_CROP_FWD, (long long)u3d_shape_count(cs));
        expect(&m, 1, K_CROP_BWD_SKIP, (long long)u3d_shape_count(ss));
        expect(&m, 2, K_CROP_BWD_UP, (long long)u3d_shape_count(us));
        t_assert_tensors_close(&y.e, &y.r, 0.0, "crop-concat y");
        t_assert_tensors_close(&dsk.e, &dsk.r, 0.0, "crop-concat dskip");
        t_assert_tensors_close(&dup.e, &dup.r, 0.0, "crop-concat dup");
        epair *all[] = {&sk, &up, &y, &dy, &dsk, &dup};
        for (int i = 0; i < 6; i++)
            erel(all[i]);
    }
    emu_done(&m);
}

static void emu_softmax_ce(void **state)
{
    env *v = *state;
    emu m;
    u3d_error err = {0};
    emu_init(&m);
    /* the last shape has several blocks per reduction level */
    u3d_shape shapes[] = {u3d_shape5(1, 2, 1, 1, 1), u3d_shape5(2, 3, 3, 4, 5),
                          u3d_shape5(1, 5, 2, 7, 3), u3d_shape5(2, 3, 16, 16, 17)};
    for (int r = 0; r < 5; r++) {
        u3d_shape s = shapes[r % 4], ls = s;
        ls.c = 1;
        int ignore = r & 1 ? 255 : -1, all_ignored = r == 4;
        size_t nv = u3d_shape_count(ls);
        int32_t *lh = malloc(nv * sizeof *lh);
        assert_non_null(lh);
        for (size_t i = 0; i < nv; i++)
            lh[i] = all_ignored || t_randi(&v->seed, 0, 5) == 0
                        ? ignore
                        : t_randi(&v->seed, 0, s.c - 1);
        epair lab = {t_tensor_i32(&m.be, ls, lh), t_tensor_i32(v->ref, ls, lh)};
        free(lh);
        epair z = emk_rand(&m, v, s, -3, 3), pr = emk(&m, v, s, NULL);
        epair w = emk_rand(&m, v, u3d_shape5(1, s.c, 1, 1, 1), 0.5f, 2);
        epair dz = emk_rand(&m, v, s, 7, 8);
        float loss[2], ws[2];
        m.log.n = 0;
        for (int k = 0; k < 2; k++)
            t_ok(u3d_softmax_ce(E(z, k), E(lab, k), E(w, k), ignore, E(pr, k),
                                E(dz, k), &loss[k], &ws[k], &err),
                 &err, "softmax cross-entropy");
        expect(&m, 0, K_CE_WEIGHTS, 1);
        expect(&m, 1, K_CE_WEIGHTS_FINAL, 1);
        expect(&m, 2, K_CE_SOFTMAX, 1);
        expect(&m, 3, K_SUM_FINAL, 1);
        assert_int_equal(m.log.l[0].gx, u3d_cudnn_reduce_blocks((long long)nv));
        /* float softmax against the double reference */
        assert_true(fabs(loss[1] - loss[0]) <= 1e-6 * fmax(1.0, fabs(loss[0])));
        assert_true(fabs(ws[1] - ws[0]) <= 1e-6 * fmax(1.0, fabs(ws[0])));
        if (all_ignored)
            assert_true(loss[1] == 0.0f && ws[1] == 0.0f);
        t_assert_tensors_close(&pr.e, &pr.r, 1e-6, "softmax probs");
        t_assert_tensors_close(&dz.e, &dz.r, 1e-6, "softmax dlogits");
        float l2 = -1;
        t_ok(u3d_softmax_ce(&z.e, &lab.e, &w.e, ignore, NULL, NULL, &l2, NULL,
                            &err),
             &err, "loss only");
        assert_true(l2 == loss[1]);
        epair *all[] = {&lab, &z, &pr, &w, &dz};
        for (int i = 0; i < 5; i++)
            erel(all[i]);
    }
    /* invalid labels: the first one (in voxel order) and the count */
    int32_t h[8] = {0, 1, 2, -1, 7, 0, 5, 1};
    float one[3] = {1, 1, 1}, loss = 0;
    u3d_tensor z = t_tensor(&m.be, u3d_shape5(1, 3, 2, 2, 2), NULL);
    u3d_tensor lab = t_tensor_i32(&m.be, u3d_shape5(1, 1, 2, 2, 2), h);
    u3d_tensor w = t_tensor(&m.be, u3d_shape5(1, 3, 1, 1, 1), one);
    assert_int_equal(
        u3d_softmax_ce(&z, &lab, &w, -1, NULL, NULL, &loss, NULL, &err),
        U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "label 7 found (2 invalid"));
    u3d_tensor_release(&z);
    u3d_tensor_release(&lab);
    u3d_tensor_release(&w);
    emu_done(&m);
}

/* Bias gradient (two-level channel sums) and bias addition of the convs. */
static void emu_channel_ops(void **state)
{
    env *v = *state;
    emu m;
    u3d_error err = {0};
    emu_init(&m);
    u3d_shape shapes[] = {u3d_shape5(1, 1, 1, 1, 1), u3d_shape5(2, 3, 5, 6, 7),
                          u3d_shape5(2, 3, 20, 21, 22)}; /* 2 blocks/channel */
    for (int r = 0; r < 3; r++) {
        u3d_shape s = shapes[r];
        size_t n = u3d_shape_count(s), S = u3d_shape_spatial(s);
        float *x = t_rand_array(&v->seed, n, -1, 1);
        float *b = t_rand_array(&v->seed, (size_t)s.c, -1, 1);
        float *sum = calloc((size_t)s.c, sizeof *sum);
        float *y = malloc(n * sizeof *y);
        assert_true(sum && y);
        memcpy(y, x, n * sizeof *y);
        m.log.n = 0;
        t_ok(u3d_cudnn_channel_sum(&m.cx, x, s, sum, &err), &err, "sums");
        t_ok(u3d_cudnn_bias_add(&m.cx, y, s, b, &err), &err, "bias add");
        expect(&m, 0, K_CHAN_PARTIAL, 1);
        assert_int_equal(m.log.l[0].gy, (unsigned)s.c);
        assert_int_equal(m.log.l[0].gx,
                         u3d_cudnn_chan_blocks((long long)s.n * (long long)S));
        expect(&m, 1, K_CHAN_FINAL, s.c);
        expect(&m, 2, K_BIAS_ADD, (long long)n);
        for (int c = 0; c < s.c; c++) {
            double want = 0;
            for (int i = 0; i < s.n; i++)
                for (size_t k = 0; k < S; k++)
                    want += x[((size_t)i * s.c + c) * S + k];
            assert_true(fabs(sum[c] - want) <= 1e-6 * fmax(1.0, fabs(want)));
        }
        for (size_t i = 0; i < n; i++)
            assert_true(y[i] == x[i] + b[(i / S) % (size_t)s.c]);
        free(x);
        free(b);
        free(sum);
        free(y);
    }
    emu_done(&m);
}

/* Augmentation case r (0..4) on be against the host implementation, bit
 * for bit (images and labels); with m (the emulator) also its launches. */
static void aug_case(u3d_backend *be, emu *m, uint64_t *seed, int r)
{
    u3d_error err = {0};
    u3d_augment_params p;
    u3d_augment_params_paper(&p);
    for (int a = 0; a < 3; a++) {
        p.sigma[a] = t_randf(seed, 1, 4);
        p.grid_spacing[a] = t_randi(seed, 2, 9);
        p.mirror[a] = 1;
    }
    p.scale_axis[0] = 0.9f, p.scale_axis[1] = 1.1f;
    p.noise_std[0] = 0.01f, p.noise_std[1] = 0.05f;
    p.fill = r % 2 ? U3D_AUG_FILL_CONSTANT : U3D_AUG_FILL_MIRROR;
    p.fill_value = -0.25f;
    p.ignore_label = 99;
    if (r == 4) { /* geometry only: the gray pass is skipped */
        p.gamma[0] = p.gamma[1] = 1.0f;
        p.contrast[0] = p.contrast[1] = 1.0f;
        p.brightness[0] = p.brightness[1] = 0.0f;
        p.noise_std[0] = p.noise_std[1] = 0.0f;
    }
    int C = r == 0 ? 5 : r == 1 ? 1 : t_randi(seed, 2, 4);
    int labels = r != 2;
    int D = t_randi(seed, 6, 16), H = t_randi(seed, 6, 16),
        W = t_randi(seed, 6, 16);
    int d = t_randi(seed, 5, D), h = t_randi(seed, 5, H),
        w = t_randi(seed, 5, W);
    u3d_shape ss = u3d_shape5(1, C, D, H, W), os = u3d_shape5(1, C, d, h, w);
    u3d_shape ls = u3d_shape5(1, 1, d - 2 * (d / 4), h - 2 * (h / 5), w);
    u3d_shape sls = u3d_shape5(1, 1, D, H, W);
    float org[3] = {t_randf(seed, 0, (float)D),
                    t_randf(seed, 0, (float)H),
                    t_randf(seed, 0, (float)W)};
    size_t no = u3d_shape_count(os), nl = u3d_shape_count(ls);
    size_t nv = u3d_shape_spatial(ss);
    float *img = t_rand_array(seed, u3d_shape_count(ss), 0, 1);
    int32_t *lab = malloc(nv * sizeof *lab);
    int32_t *lh = malloc(nl * sizeof *lh), *le = malloc(nl * sizeof *le);
    int32_t *junk = malloc(nl * sizeof *junk);
    float *oh = malloc(no * sizeof *oh);
    assert_true(lab && lh && le && junk && oh);
    for (size_t i = 0; i < nv; i++)
        lab[i] = t_randi(seed, 0, 2);
    for (size_t i = 0; i < nl; i++)
        junk[i] = -7; /* every label must be written */
    uint64_t key = 4242 + (uint64_t)r * 0x100000001ULL, smp = 3 + r;
    u3d_tensor si = t_tensor(be, ss, img), oi = t_tensor(be, os, NULL);
    u3d_tensor sl = t_tensor_i32(be, sls, lab);
    u3d_tensor ol = t_tensor_i32(be, ls, junk);
    if (m)
        m->log.n = 0;
    t_ok(u3d_augment_sample(be, &p, key, smp, &si, labels ? &sl : NULL,
                            org, &oi, labels ? &ol : NULL, &err),
         &err, "augment on the cudnn backend");
    t_ok(u3d_augment_sample_host(&p, key, smp, ss, img,
                                 labels ? lab : NULL, org, os, oh, ls,
                                 labels ? lh : NULL, &err),
         &err, "augment on the host");
    /* the launches: every pass over all its items */
    aug_consts k;
    t_ok(u3d_aug_prepare(&p, key, smp, ss, org, os, labels ? &ls : NULL,
                         &k, &err),
         &err, "prepare");
    assert_int_equal(k.use_gray, r != 4);
    if (m) {
        assert_int_equal(m->log.n, k.use_gray ? 5 : 4);
        expect(m, 0, K_AUG_CONTROL_POINTS,
               (long long)u3d_aug_phi_count(&k) / 3);
        expect(m, 1, K_AUG_FIELD_W, (long long)u3d_aug_p1_count(&k));
        expect(m, 2, K_AUG_FIELD_H, (long long)u3d_aug_p2_count(&k));
        expect(m, 3, K_AUG_SAMPLE, (long long)no / C);
        if (k.use_gray)
            expect(m, 4, K_AUG_GRAY, (long long)u3d_aug_gray_count(&k));
        assert_true(m->log.l[3].gx > 1); /* several blocks */
    }
    float *oe = t_read(&oi);
    assert_memory_equal(oe, oh, no * sizeof *oh);
    if (labels) {
        t_ok(u3d_tensor_read(&ol, le, &err), &err, "read labels");
        assert_memory_equal(le, lh, nl * sizeof *lh);
    } else { /* untouched */
        t_ok(u3d_tensor_read(&ol, le, &err), &err, "read labels");
        assert_memory_equal(le, junk, nl * sizeof *le);
    }
    free(oe);
    free(img), free(lab), free(lh), free(le), free(junk), free(oh);
    u3d_tensor *all[] = {&si, &oi, &sl, &ol};
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(all[i]);
}

/* Augmentation: the CUDA kernels (kernels.cu around the shared code of
 * cl/augment.cl) launched by the backend's own code (augment.c) against the
 * host implementation, bit for bit (images and labels), on odd shapes of
 * several blocks: deformation, rotation, scaling, mirroring, gamma,
 * contrast, noise, both fill modes, 1 to 5 channels (gray-value groups of
 * 4), with and without labels, and without gray changes (no gray pass). */
static void emu_augment(void **state)
{
    env *v = *state;
    emu m;
    u3d_error err = {0};
    emu_init(&m);
    for (int r = 0; r < 5; r++)
        aug_case(&m.be, &m, &v->seed, r);
    /* a patch beyond int indexing is refused before any launch */
    aug_consts k = {0};
    k.C = 1, k.d = k.h = k.w = 2048;
    k.ncz = k.ncy = k.ncx = 4;
    u3d_tensor dummy = {0};
    m.log.n = 0;
    assert_int_equal(u3d_cudnn_augment_sample(&m.be, &k, &dummy, NULL, &dummy,
                                              NULL, &err),
                     U3D_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "smaller patch"));
    assert_int_equal(m.log.n, 0);
    emu_done(&m);
}

static void launch_checks_arguments(void **state)
{
    (void)state;
    emu m;
    u3d_error err = {0};
    emu_init(&m);
    float *p = NULL, v = 1.0f;
    int cnt = 10; /* the kernel takes a long long count */
    u3d_kargs a = {0};
    U3D_KARG(a, p);
    U3D_KARG(a, cnt);
    U3D_KARG(a, v);
    assert_string_equal(a.sig, "lif");
    assert_int_equal(u3d_cudnn_launch(&m.cx, K_FILL, "fill", 1, 1, &a, &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "u3d_fill_f32"));
    assert_int_equal(m.log.n, 0);
    /* grid rows are channels: CUDA allows 65535 */
    u3d_shape s = u3d_shape5(1, 70000, 1, 1, 1);
    assert_int_equal(u3d_cudnn_channel_sum(&m.cx, p, s, p, &err),
                     U3D_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "70000 channels"));
    emu_done(&m);
}

static void parse_device(void **state)
{
    (void)state;
    int i = -1;
    u3d_error err = {0};
    t_ok(u3d_cudnn_parse_device(NULL, &i, &err), &err, "NULL");
    assert_int_equal(i, 0);
    t_ok(u3d_cudnn_parse_device("", &i, &err), &err, "empty");
    assert_int_equal(i, 0);
    t_ok(u3d_cudnn_parse_device("3", &i, &err), &err, "3");
    assert_int_equal(i, 3);
    t_ok(u3d_cudnn_parse_device("cuda:1", &i, &err), &err, "cuda:1");
    assert_int_equal(i, 1);
    assert_int_equal(u3d_cudnn_parse_device("0:0", &i, &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "'0:0'"));
    assert_int_equal(u3d_cudnn_parse_device("nvidia", &i, &err),
                     U3D_ERR_INVALID_ARG);
    assert_int_equal(u3d_cudnn_parse_device("-1", &i, &err),
                     U3D_ERR_INVALID_ARG);
}

/* Without a GPU or driver (this CI), creation fails with a message that
 * says what is missing and what to use instead; with one it succeeds. */
static void create_or_clear_error(void **state)
{
    env *e = *state;
    if (e->gpu) {
        assert_string_equal(u3d_backend_name(e->gpu), "cudnn");
        assert_non_null(strstr(u3d_backend_device(e->gpu), "cuDNN"));
        u3d_backend *b2 = NULL;
        u3d_error err = {0};
        assert_int_equal(u3d_backend_cudnn_create(999, 0, &b2, &err),
                         U3D_ERR_INVALID_ARG);
        assert_null(b2);
        assert_non_null(strstr(err.msg, "999"));
        return;
    }
    print_message("no GPU here, as expected: %s\n", e->create_err.msg);
    assert_int_equal(e->create_st, U3D_ERR_DEVICE);
    assert_non_null(strstr(e->create_err.msg, "needs an NVIDIA GPU"));
    assert_non_null(strstr(e->create_err.msg, "--backend opencl"));
    /* a second attempt (and any device index) fails the same way */
    u3d_backend *b = (u3d_backend *)&b;
    u3d_error err = {0};
    assert_int_equal(u3d_backend_cudnn_create(1, 1, &b, &err), U3D_ERR_DEVICE);
    assert_null(b);
}

static void list_devices(void **state)
{
    env *e = *state;
    u3d_error err = {0};
    char buf[4096] = "";
    FILE *f = tmpfile();
    assert_non_null(f);
    t_ok(u3d_cudnn_list_devices(f, &err), &err, "list devices");
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_true(!strncmp(buf, "cuda", 4));
    if (e->gpu)
        assert_non_null(strstr(buf, "compute capability"));
    else
        assert_non_null(strstr(buf, "cudnn backend is unavailable"));
}

/* Through the generic entry point: never a crash, always a message (the
 * exact status depends on whether backend.c is wired to this backend). */
static void create_by_name(void **state)
{
    env *e = *state;
    u3d_backend_config cfg = {0};
    u3d_backend *b = NULL;
    u3d_error err = {0};
    cfg.backend = "cudnn";
    u3d_status st = u3d_backend_create(&cfg, &b, &err);
    if (st == U3D_OK) {
        assert_non_null(e->gpu);
        assert_string_equal(u3d_backend_name(b), "cudnn");
        u3d_backend_destroy(b);
        return;
    }
    assert_null(b);
    assert_true(st == U3D_ERR_DEVICE || st == U3D_ERR_UNSUPPORTED);
    assert_true(strlen(err.msg) > 20);
}

/* ------------------------------------------------------------------ */
/* on a GPU (every op against the reference: test_ops.c)              */
/* ------------------------------------------------------------------ */

#define NEED_GPU(e)                                                            \
    do {                                                                       \
        if (!(e)->gpu) {                                                       \
            skip();                                                            \
            return;                                                            \
        }                                                                      \
    } while (0)

/* The augmentation kernels on the GPU: the host implementation's bits. */
static void gpu_augment(void **state)
{
    env *e = *state;
    NEED_GPU(e);
    for (int r = 0; r < 5; r++)
        aug_case(e->gpu, NULL, &e->seed, r);
}

/* Same inputs, same bits: reductions and conv algorithms are fixed. */
static void gpu_determinism(void **state)
{
    env *e = *state;
    NEED_GPU(e);
    u3d_error err = {0};
    u3d_conv3d_params p = {.kernel = 3, .pad = 0};
    u3d_shape xs = u3d_shape5(2, 8, 20, 18, 16), ws = u3d_shape5(16, 8, 3, 3, 3);
    u3d_shape ys = u3d_shape5(2, 16, 18, 16, 14);
    float *hx = t_rand_array(&e->seed, u3d_shape_count(xs), -1, 1);
    float *hy = t_rand_array(&e->seed, u3d_shape_count(ys), -1, 1);
    u3d_tensor x = t_tensor(e->gpu, xs, hx), dy = t_tensor(e->gpu, ys, hy);
    u3d_tensor dw[2] = {t_tensor(e->gpu, ws, NULL), t_tensor(e->gpu, ws, NULL)};
    u3d_tensor db[2] = {t_tensor(e->gpu, u3d_shape5(1, 16, 1, 1, 1), NULL),
                        t_tensor(e->gpu, u3d_shape5(1, 16, 1, 1, 1), NULL)};
    for (int i = 0; i < 2; i++)
        t_ok(u3d_conv3d_backward_weight(&p, &x, &dy, &dw[i], &db[i], &err),
             &err, "conv bwd weight");
    float *a = t_read(&dw[0]), *b = t_read(&dw[1]);
    assert_memory_equal(a, b, u3d_shape_count(ws) * sizeof *a);
    free(a);
    free(b);
    a = t_read(&db[0]);
    b = t_read(&db[1]);
    assert_memory_equal(a, b, 16 * sizeof *a);
    free(a);
    free(b);
    free(hx);
    free(hy);
    u3d_tensor *all[] = {&x, &dy, &dw[0], &dw[1], &db[0], &db[1]};
    for (int i = 0; i < 6; i++)
        u3d_tensor_release(all[i]);
}

/* ------------------------------------------------------------------ */
/* loading                                                             */

/* 1 when a mapping of this process names the file name (a soname). */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int hit = 0;
    if (!f)
        return -1;
    while (!hit && fgets(line, sizeof line, f))
        hit = strstr(line, name) != NULL;
    fclose(f);
    return hit;
}

/* unet3d does not link the CUDA libraries (loader.c): an OpenCL run never
 * maps them (34 MiB of resident memory); the first CUDA call loads all
 * three. Runs first, in its own group, before anything touches CUDA. */
static void libraries_load_on_first_use(void **state)
{
    (void)state;
    const char *libs[] = {"libcudart.so", "libnvrtc.so", "libcudnn.so"};
    u3d_backend *be = NULL;
    u3d_error err = {0};
    if (mapped("libc.so") != 1)
        skip(); /* no /proc here */
    /* the OpenCL backend's life leaves them unmapped */
    if (!u3d_backend_opencl_create(NULL, 0, &be, &err))
        u3d_backend_destroy(be);
    for (int i = 0; i < 3; i++)
        if (mapped(libs[i]))
            fail_msg("%s is mapped before any CUDA call", libs[i]);
    t_ok(u3d_cuda_libs_load(&err), &err, "loading the CUDA libraries");
    for (int i = 0; i < 3; i++)
        if (mapped(libs[i]) != 1)
            fail_msg("%s is not mapped after loading", libs[i]);
    /* a forwarded call reaches the real library */
    size_t v = cudnnGetVersion();
    assert_int_equal(v / 10000, CUDNN_MAJOR);
    int rt = 0;
    assert_int_equal(cudaRuntimeGetVersion(&rt), cudaSuccess);
    assert_int_equal(rt / 1000, CUDART_VERSION / 1000);
}

int main(void)
{
    const struct CMUnitTest first[] = {
        cmocka_unit_test(libraries_load_on_first_use),
    };
    int failed = cmocka_run_group_tests_name("loading", first, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nd_layout),
        cmocka_unit_test(conv_geometry),
        cmocka_unit_test(conv_descriptors),
        cmocka_unit_test(algo_order),
        cmocka_unit_test(workspace_limit),
        cmocka_unit_test(pick_arch),
        cmocka_unit_test(launch_sizes),
        cmocka_unit_test(kernels_compile),
        cmocka_unit_test(launch_checks_arguments),
        cmocka_unit_test(emu_elementwise),
        cmocka_unit_test(emu_maxpool),
        cmocka_unit_test(emu_crop_concat),
        cmocka_unit_test(emu_softmax_ce),
        cmocka_unit_test(emu_channel_ops),
        cmocka_unit_test(emu_augment),
        cmocka_unit_test(parse_device),
        cmocka_unit_test(create_or_clear_error),
        cmocka_unit_test(list_devices),
        cmocka_unit_test(create_by_name),
        cmocka_unit_test(gpu_determinism),
        cmocka_unit_test(gpu_augment),
    };
    return failed + cmocka_run_group_tests(tests, setup, teardown);
}

#else /* built without the cuDNN backend: nothing to test */
int main(void)
{
    printf("the cuDNN backend is not built (UNET3D_CUDNN); skipped\n");
    return 77;
}
#endif
