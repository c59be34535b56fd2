/* Internals of the 3D U-Net shared by the files of src/model. */
#ifndef UNET3D_NET_INTERNAL_H
#define UNET3D_NET_INTERNAL_H
#include "core/backend_impl.h"
#include "model/geometry.h"
#include "unet3d/model.h"

#define NET_MAXP (16 * NET_MAXL + 8)
#define NET_MAXB (8 * NET_MAXL)
#define NET_MAXOWN (16 * NET_MAXL + 8)

/* conv (k^3) -> [BN] -> [ReLU]; the output conv has neither. */
typedef struct net_block {
    char name[16];         /* conv parameter prefix, e.g. enc_0_0 */
    u3d_conv3d_params cp;
    int cin, cout;
    int relu;
    int bn;                /* BN follows the conv */
    int w, b, gamma, beta; /* parameter indices, -1: none */
    int rmean, rvar;       /* buffer indices, -1: none */
    u3d_tensor save_mean, save_invstd; /* owned, (1,C,1,1,1) */
    const u3d_tensor *in;  /* input view */
    u3d_tensor z;          /* conv output view */
    u3d_tensor a;          /* block output view (z's buffer without BN) */
    double bn_count;       /* synchronized BN: values per channel, all
                              processes */
} net_block;

/* Activation plans. A "view" is a u3d_tensor copy whose buf belongs to an
 * owned tensor at least as large as the view's shape: ops only touch
 * shape-count elements, so several views can share a work buffer. */
enum { NET_PLAN_NONE = 0, NET_PLAN_TRAIN = 1, NET_PLAN_INFER = 2 };

struct u3d_net {
    u3d_backend *be; /* NULL: layout only, for memory estimates */
    u3d_net_config cfg;
    int nparams, nbufs;
    u3d_param params[NET_MAXP];
    u3d_param bufs[NET_MAXB];
    net_block enc[NET_MAXL][2];
    net_block dec[NET_MAXL][2];
    net_block out;
    int up_w[NET_MAXL];
    const u3d_tensor *up_in[NET_MAXL];
    /* activation views of the current plan */
    u3d_tensor pool[NET_MAXL], up[NET_MAXL], cat[NET_MAXL];
    u3d_tensor dskip[NET_MAXL]; /* skip gradients (training plan) */
    u3d_tensor g[2];            /* gradient scratch views' buffers */
    u3d_tensor x;               /* input of the last forward */
    /* the plan: which buffers exist, for which input shape */
    int plan;
    u3d_shape plan_x;
    int nowned;
    u3d_tensor owned[NET_MAXOWN];
    size_t plan_bytes;
    size_t plan_largest; /* bytes of its largest buffer */
    int fwd_train;      /* the last forward was TRAIN and succeeded */
    /* the weights_version of the convolutions of the last TRAIN forward
     * and its backward (u3d_conv3d_params), one per forward: a training
     * step's data gradients reuse its forward's weight transforms */
    unsigned long long wversion, wversion_seq;
    int bn_folded;      /* batch norm folded into the convs (inference) */
    int training_ready; /* grads and momentum allocated */
    u3d_net_hooks hooks;
    /* synchronized batch norm scratch (net_pass.c): one activation-sized
     * and four channel-sized buffers, used through views */
    u3d_tensor sbn_big, sbn_c[4];
    size_t sbn_big_n, sbn_c_n;
};

/* Fills names, shapes and blocks from the layers of cfg (geometry.h), no
 * allocation. */
void net_layout(u3d_net *net, const u3d_net_config *cfg);
/* Plans activation buffers for input shape x: allocates them when net->be
 * is set, else only counts net->plan_bytes. */
u3d_status net_plan(u3d_net *net, u3d_shape x, int kind, u3d_error *err);
void net_plan_free(u3d_net *net);
/* Bytes of parameter values, buffers and saved BN statistics. */
size_t net_param_bytes(const u3d_net *net);
size_t net_learnable_bytes(const u3d_net *net);

#endif
