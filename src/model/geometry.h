/* The network's geometry: its layers in forward order and their sizes.
 *
 * The one description of the 3D U-Net's shape (model.h, "Architecture"):
 * the net object (net.c) is built from this layer list, and the parameter
 * count, the size checks, the context margin, the memory estimate (through
 * the net's activation plan) and the backend's convolution scratch are all
 * derived from it. No file of src/model depends on net.c from here. */
#ifndef UNET3D_MODEL_GEOMETRY_H
#define UNET3D_MODEL_GEOMETRY_H
#include <stddef.h>
#include "unet3d/model.h"

#define NET_MAXL U3D_NET_MAX_LEVELS
/* 2 convs per level and L-1 pools; up-conv, concat and 2 convs per decoder
 * step; the output conv: 7L - 4 */
#define NET_MAXLAYERS (7 * NET_MAXL)

typedef enum net_op {
    NET_CONV, /* kd x kh x kw conv with bias, then BN (if enabled) and ReLU
                 (if set) */
    NET_POOL, /* max-pool of window f (2x2x2, 1x2x2) */
    NET_UP,   /* up-conv, kernel = stride = f, without bias, channels kept */
    NET_CAT   /* concat [center-cropped skip, input] (skip first) */
} net_op;

typedef enum net_part { NET_ENC, NET_DEC, NET_OUT } net_part;

typedef struct net_layer {
    net_op op;
    net_part part;
    int stage;       /* encoder level l or decoder step j (0: output) */
    int i;           /* CONV: conv 0 or 1 of its stage */
    int cin, cout;   /* channels of its input and output */
    int k[3], pad[3]; /* CONV: kernel size and zero padding per axis */
    int f[3];        /* POOL, UP: window / factor per axis */
    int bn, relu;    /* CONV: followed by BN (unless cfg.bn is NONE), ReLU */
    int in;          /* layer whose output it reads, -1: the network input */
    int skip;        /* CAT: layer of the skip features */
    char name[16];   /* CONV, UP: parameter prefix (enc_0_0, up_1, out) */
    char bn_name[16]; /* CONV with bn: BN prefix (enc_0_1) */
} net_layer;

typedef struct net_geom {
    u3d_net_config cfg;
    int n;
    net_layer l[NET_MAXLAYERS];
} net_geom;

/* The layers of cfg (which the caller has checked). */
void net_geometry(const u3d_net_config *cfg, net_geom *g);

/* Output size of every layer along axis a (0 D, 1 H, 2 W) for input size
 * `in`: 1 when `in` passes through the network; otherwise 0 and `why` says
 * at which layer it fails. */
int net_trace(const net_geom *g, int a, int in, int size[NET_MAXLAYERS],
              char *why, size_t len);

/* The conv parameters of layer y (cubic when it is). */
u3d_conv3d_params net_conv_params(const net_layer *y);

/* Sizes along one spatial axis at every stage of the network. */
typedef struct net_axis {
    int in;
    int enc[NET_MAXL][2]; /* conv outputs of encoder level l */
    int pool[NET_MAXL];   /* after the max-pool of level l (l < L-1) */
    int up[NET_MAXL];     /* up-conv output of decoder step j */
    int dec[NET_MAXL][2]; /* conv outputs of decoder step j */
    int out;
} net_axis;

/* net_trace by stage. */
int net_axis_trace(const u3d_net_config *cfg, int a, int in, net_axis *s,
                   char *why, size_t len);

#endif
