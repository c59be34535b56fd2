/* The 3D U-Net of Cicek et al. 2016: configuration, sizes, parameters,
 * forward and backward through the operations of ops.h (any backend).
 *
 * Architecture (../shared/golden/README.md, "The unet3d case"), f = base
 * channels, L = levels:
 *   encoder level l: conv3 -> f*2^l, BN, ReLU, conv3 -> f*2^(l+1), BN, ReLU;
 *                    2x2x2 max-pool between levels
 *   decoder step j (bottom up, matching encoder level m = L-2-j): up-conv
 *                    2x2x2 stride 2 without bias keeping the channel count,
 *                    concat [center-cropped skip of level m, up] (skip first),
 *                    conv3 -> BN -> ReLU twice to the skip's channel count
 *   output: conv1x1x1 with bias to `classes` channels (logits)
 * Convolutions keep their bias even before BN (as the PyTorch reference;
 * training-mode BN gives it a zero gradient).
 *
 * Spatial sizes are given in D,H,W order everywhere in this API. */
#ifndef UNET3D_MODEL_H
#define UNET3D_MODEL_H

#include <stdint.h>
#include "unet3d/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define U3D_NET_MAX_LEVELS 8
/* Largest network input per axis: far beyond any device's memory, and
 * small enough that no size arithmetic of the model can overflow. */
#define U3D_NET_MAX_INPUT (1 << 20)

typedef enum u3d_padding {
    U3D_PAD_VALID = 0, /* unpadded 3x3x3 convs: the output is smaller */
    U3D_PAD_SAME = 1   /* zero padding 1: the output has the input's size */
} u3d_padding;

typedef enum u3d_bn_mode {
    U3D_BN_NONE = 0,  /* conv -> ReLU */
    U3D_BN_PLAIN = 1, /* normalisation only, no scale/shift (paper's count) */
    U3D_BN_AFFINE = 2 /* with learnable gamma (scale) and beta (shift) */
} u3d_bn_mode;

typedef struct u3d_net_config {
    int levels;        /* resolution levels, 1..U3D_NET_MAX_LEVELS */
    int base_channels; /* f: channels of the first conv */
    int in_channels;
    int classes;
    u3d_padding padding;
    u3d_bn_mode bn;
    float bn_eps;      /* 1e-5 */
    float bn_momentum; /* 0.1, PyTorch convention */
    /* Anisotropic networks (voxels much longer along z): per encoder level
     * l the kernel of its convs (and of the matching decoder step's), D,H,W,
     * each 3 or 1 (1x3x3: in-plane convs); per level l < levels-1 the
     * max-pool window below it, each 2 or 1 (1x2x2), which the matching
     * up-convolution undoes. 0 entries: 3 and 2 (the paper's 3x3x3 and
     * 2x2x2), so a zeroed or positionally initialised config is isotropic.
     * The output conv is 1x1x1. */
    int kernel[U3D_NET_MAX_LEVELS][3];
    int pool[U3D_NET_MAX_LEVELS][3];
} u3d_net_config;

/* Kernel size of the convs of level l along axis a (0 D, 1 H, 2 W) and the
 * pooling (and up-conv) factor below level l. */
int u3d_net_kernel(const u3d_net_config *cfg, int l, int a);
int u3d_net_pool(const u3d_net_config *cfg, int l, int a);
/* 1 if some level is not 3x3x3 / 2x2x2. */
int u3d_net_is_anisotropic(const u3d_net_config *cfg);

/* Per-level sizes from a list in D x H x W order, comma separated:
 * kernels "1x3x3,3x3x3,3x3x3" (one per level) and pools "1x2x2,2x2x2" (one
 * per level but the last); a single entry applies to every level. Checks
 * the values (kernels 1 or 3, pools 1 or 2 per axis) and the count against
 * cfg->levels. */
u3d_status u3d_net_set_kernels(u3d_net_config *cfg, const char *list,
                               u3d_error *err);
u3d_status u3d_net_set_pools(u3d_net_config *cfg, const char *list,
                             u3d_error *err);
/* The paper's 2D baseline: every level 1x3x3 convs and 1x2x2 pooling, so
 * each z-slice is segmented alone (context 0 along z; train and predict
 * then work slice by slice through the ordinary tiles). */
void u3d_net_set_2d(u3d_net_config *cfg);
/* nnU-Net's plan from the voxel spacing (D, H, W, any unit): while the z
 * spacing is more than twice the in-plane spacing (the finer of H, W), a
 * level gets 1x3x3 convs and 1x2x2 pooling (the in-plane spacing doubles
 * below it); from the first level where it is not, 3x3x3 and 2x2x2. */
void u3d_net_plan_spacing(u3d_net_config *cfg, const double spacing[3]);
/* "1x3x3,3x3x3,3x3x3 / pools 1x2x2,2x2x2" into buf, or "isotropic". */
const char *u3d_net_aniso_str(const u3d_net_config *cfg, char *buf,
                              size_t len);

/* Presets:
 *   "paper": f=32, 4 levels, 3 in channels, 3 classes, valid, BN (plain):
 *            19,069,955 parameters; input 116x132x132 (DxHxW) -> 28x44x44.
 *   "small": f=8, 3 levels, 1 in channel, 2 classes, valid, BN (affine).
 *            ~11 GMAC forward for a 92^3 patch (-> 52^3 output): one
 *            training iteration (forward, backward, SGD) took ~4 s with
 *            PoCL on 2 (shared) CPU cores, 388 MiB of activations.
 *   "tiny":  f=4, 3 levels, 2 in channels, 3 classes, valid, BN (affine):
 *            the unet3d_tiny golden case (72,223 parameters, 44^3 -> 4^3). */
u3d_status u3d_net_preset(const char *name, u3d_net_config *cfg,
                          u3d_error *err);
/* "paper, small, tiny" */
const char *u3d_net_preset_names(void);
/* Checks ranges (levels, channels, padding, bn, eps, momentum). */
u3d_status u3d_net_config_check(const u3d_net_config *cfg, u3d_error *err);
/* One-line description ("4 levels, f=32, 3 -> 3 classes, valid, BN ..."). */
const char *u3d_net_config_str(const u3d_net_config *cfg, char *buf,
                               size_t len);

/* Output spatial size (D,H,W) for an input of in[3] (D,H,W). An input that
 * does not max-pool evenly at every level or becomes too small is rejected
 * with U3D_ERR_SHAPE and a message naming, per failing axis, the nearest
 * valid sizes below and above. */
u3d_status u3d_net_output_size(const u3d_net_config *cfg, const int in[3],
                               int out[3], u3d_error *err);
/* Nearest valid input sizes along one axis: *below < size < *above (0 when
 * none exists below). Returns 1 when size itself is valid (0 and both 0
 * for an invalid configuration). */
int u3d_net_valid_size(const u3d_net_config *cfg, int size, int *below,
                       int *above);
/* The same along axis a (0 D, 1 H, 2 W) of an anisotropic network (they
 * differ per axis); u3d_net_valid_size is axis 2 (W). */
int u3d_net_valid_size_axis(const u3d_net_config *cfg, int a, int size,
                            int *below, int *above);

/* Learnable parameters: conv weights and biases, up-conv weights, and with
 * count_bn_affine != 0 the BN gamma and beta (whatever cfg->bn says, so
 * both numbers can be printed; 0 adds nothing when cfg->bn is NONE). */
size_t u3d_net_param_count(const u3d_net_config *cfg, int count_bn_affine);

/* Device memory in bytes, as this implementation allocates it (backend
 * workspace of the convolutions, if any, not included: see
 * u3d_net_backend_scratch). */
typedef struct u3d_net_mem {
    size_t params;       /* parameter values, BN running and saved stats */
    size_t grads;        /* gradients + SGD momentum / Adam's first moment
                            (training only) */
    size_t adam;         /* Adam's second moments (training with Adam only;
                            not in train_total) */
    size_t train_acts;   /* activations kept for backward + gradient scratch */
    size_t infer_acts;   /* lean inference buffers (skips + 2 work buffers) */
    size_t train_io;     /* input, int32 labels, dlogits */
    size_t infer_io;     /* input */
    size_t train_total;  /* params + grads + train_acts + train_io */
    size_t infer_total;  /* params + infer_acts + infer_io */
    size_t train_largest; /* the largest single activation buffer */
    size_t infer_largest;
} u3d_net_mem;
u3d_status u3d_net_memory(const u3d_net_config *cfg, int batch,
                          const int in[3], u3d_net_mem *out, u3d_error *err);

/* Device bytes of backend scratch (u3d_backend_ops.conv3d_scratch_bytes)
 * the network's convolutions hold on be for an input of batch x in[3]
 * (D,H,W): what u3d_net_memory leaves out. 0 for a backend without such
 * scratch, a NULL be, or an input the network does not take. */
size_t u3d_net_backend_scratch(u3d_backend *be, const u3d_net_config *cfg,
                               int batch, const int in[3]);

/* Context margin per axis, the voxels of input a tile needs beyond its
 * output on each side: valid nets (in - out) / 2 (44 for the paper net,
 * 20 for "tiny"); same nets the band next to a tile border that differs
 * from the whole-volume pass (see predict.h), rounded up to a multiple of
 * 2^(levels-1). 0 for an invalid configuration. */
int u3d_net_context(const u3d_net_config *cfg);
/* The context margin along axis a (0 D, 1 H, 2 W): an anisotropic net's
 * differ (0 along z for the 2D net of u3d_net_set_2d); u3d_net_context is
 * the largest of the three. */
int u3d_net_context_axis(const u3d_net_config *cfg, int a);
/* Floating-point operations of one forward pass of batch 1 with input in
 * (D, H, W): 2 per multiply-add of the convolutions and up-convolutions
 * (batch norm, ReLU and pooling, a fraction of a percent, not counted);
 * 0 for an invalid configuration or size. */
double u3d_net_forward_flops(const u3d_net_config *cfg, const int in[3]);

/* ---- the network object ---- */

typedef struct u3d_net u3d_net;

/* A named tensor of the network. Learnable parameters have value, grad and
 * momentum (grad/momentum are empty, buf NULL, until the first backward,
 * optimizer step or u3d_net_prepare_training); momentum is SGD's buffer or
 * Adam's first moment, second Adam's second moment (empty until the first
 * Adam step). Buffers (BN running mean/var, named like
 * enc_0_1_running_mean) have a value only. */
typedef struct u3d_param {
    char name[48];
    u3d_tensor value;
    u3d_tensor grad;
    u3d_tensor momentum;
    u3d_tensor second;
    int learnable;
} u3d_param;

/* Folds every batch norm (running statistics) into the convolution before
 * it, in place: per output channel w' = w s, b' = (b - mean) s + beta with
 * s = gamma / sqrt(var + eps). The net then runs U3D_NET_EVAL only, one
 * pass over memory less per layer (predict does this unless --batchstats);
 * training and batch-statistics modes are refused. No-op without batch
 * norm. */
u3d_status u3d_net_fold_batchnorm(u3d_net *net, u3d_error *err);

typedef enum u3d_net_mode {
    U3D_NET_TRAIN = 0,          /* BN batch statistics, running-stat update */
    U3D_NET_EVAL = 1,           /* BN running statistics */
    U3D_NET_EVAL_BATCHSTATS = 2 /* batch statistics, no update (the paper) */
} u3d_net_mode;

/* Parameters are created zero; call u3d_net_init or set them. */
u3d_status u3d_net_create(u3d_backend *be, const u3d_net_config *cfg,
                          u3d_net **out, u3d_error *err);
void u3d_net_destroy(u3d_net *net);
const u3d_net_config *u3d_net_get_config(const u3d_net *net);
u3d_backend *u3d_net_backend(const u3d_net *net);

/* Learnable parameters in the reference order (parameter_order of the
 * golden case): enc_l_i_*, up_j_weight, dec_j_i_*, out_weight, out_bias. */
int u3d_net_num_params(const u3d_net *net);
u3d_param *u3d_net_param(u3d_net *net, int i);
/* Non-trained buffers: BN running mean and variance per BN layer. */
int u3d_net_num_buffers(const u3d_net *net);
u3d_param *u3d_net_buffer(u3d_net *net, int i);
/* A parameter or buffer by name, or NULL. */
u3d_param *u3d_net_find(u3d_net *net, const char *name);

/* He-normal conv and up-conv weights (std sqrt(2/fan_in), fan_in = Cin*k^3
 * for convs and Cin for the stride-2 up-conv, whose outputs each see one
 * tap per input channel) from a deterministic host RNG, zero biases, BN
 * gamma 1, beta 0, running mean 0, var 1. Same seed, same values on every
 * backend. */
u3d_status u3d_net_init(u3d_net *net, uint64_t seed, u3d_error *err);

/* Allocates gradients and momentum buffers (idempotent). */
u3d_status u3d_net_prepare_training(u3d_net *net, u3d_error *err);

/* Forward pass of x (N, in_channels, D, H, W). *logits points to a tensor
 * owned by the net (N, classes, output size), valid until the next forward
 * or u3d_net_free_activations. Activations are allocated for x's shape on
 * first use and reused while it stays the same: TRAIN keeps everything
 * backward needs; EVAL modes use lean buffers unless the training ones for
 * this shape exist. In TRAIN mode x and the parameters must stay unchanged
 * until backward (the backend may keep what the forward derived from the
 * weights for it). */
u3d_status u3d_net_forward(u3d_net *net, const u3d_tensor *x,
                           u3d_net_mode mode, const u3d_tensor **logits,
                           u3d_error *err);
/* Hooks of data-parallel training (every member optional; NULL hooks:
 * none). grads_ready is called during u3d_net_backward as soon as the
 * gradients of these parameters (indices) are final: the backward pass runs
 * from the output layer to the input, so communication of the late layers'
 * gradients can overlap the rest of it. A failing hook fails the pass. */
typedef struct u3d_net_hooks {
    void *ctx;
    u3d_status (*grads_ready)(void *ctx, const int *params, int n,
                              u3d_error *err);
    /* Synchronized batch norm: when set, TRAIN-mode batch norm normalizes
     * with the statistics of the whole batch of every process (bn_sum
     * replaces buf[0..n) by its sum over the processes) and its backward
     * pass uses the sums over all of them too, so N processes with batch b
     * compute what one computes with batch N*b; the running statistics
     * follow the global batch. */
    u3d_status (*bn_sum)(void *ctx, double *buf, int n, u3d_error *err);
} u3d_net_hooks;
void u3d_net_set_hooks(u3d_net *net, const u3d_net_hooks *hooks);

/* Backward of the last TRAIN forward: dlogits has the logits' shape. Every
 * learnable parameter's grad is overwritten. */
u3d_status u3d_net_backward(u3d_net *net, const u3d_tensor *dlogits,
                            u3d_error *err);
/* One SGD step (ops.h semantics) on every learnable parameter. */
u3d_status u3d_net_sgd_step(u3d_net *net, const u3d_sgd_params *p,
                            u3d_error *err);
/* One Adam step (ops.h semantics, p->step counts the steps including this
 * one) on every learnable parameter; the second moments are allocated
 * (zero) on the first call. */
u3d_status u3d_net_adam_step(u3d_net *net, const u3d_adam_params *p,
                             u3d_error *err);
/* Allocates Adam's second moments (zero; idempotent), e.g. before loading
 * them from a checkpoint. */
u3d_status u3d_net_prepare_adam(u3d_net *net, u3d_error *err);
/* Frees activation buffers (the next forward reallocates them). */
void u3d_net_free_activations(u3d_net *net);
/* Bytes of activation buffers held now (matches u3d_net_memory's
 * train_acts / infer_acts for the shape in use). */
size_t u3d_net_activation_bytes(const u3d_net *net);

#ifdef __cplusplus
}
#endif
#endif
