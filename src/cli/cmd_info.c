/* unet3d info: parameter count, output size and device memory of a network
 * configuration. Needs no device.
 *
 * --input is D x H x W like every size of unet3d (Z, Y, X: numpy, ImageJ
 * and TIFF order), so `unet3d info --preset paper --input 116x132x132` is
 * the paper's tile (116 slices of 132 x 132); sizes are printed in both
 * orders, as the paper writes them X x Y x Z. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "unet3d/model.h"

typedef struct info_opts {
    u3d_cli_net net;
    u3d_net_config cfg;
    int have_input;
    int input[3]; /* D, H, W */
    int batch;
} info_opts;

/* Returns -1 when parsed, else the exit code. */
static int parse_args(int argc, char **argv, info_opts *o)
{
    u3d_cli_net *n = &o->net;
    const u3d_opt opts[] = {
        U3D_OPTS_NET(n),
        {"--in-channels", U3D_OPT_INT, &n->in_channels, 1, U3D_NORM_MAX_C,
         "C", .help = "input channels (default: the preset's)"},
        {"--input", U3D_OPT_SIZE3, o->input, 1, U3D_OPT_MAX_SIZE, "DxHxW",
         .help = "input tile (default: the preset's tile)",
         .given = &o->have_input},
        {"--batch", U3D_OPT_INT, &o->batch, 1, U3D_OPT_MAX_BATCH, "B",
         .help = "tiles per iteration (default 1)"},
        /* the spellings before --batchnorm */
        {"--no-bn", U3D_OPT_SET, &n->bn, U3D_BN_NONE, 0, NULL, .help = NULL},
        {"--bn-plain", U3D_OPT_SET, &n->bn, U3D_BN_PLAIN, 0, NULL, .help = NULL},
        {"--bn-affine", U3D_OPT_SET, &n->bn, U3D_BN_AFFINE, 0, NULL, .help = NULL},
        {0}};
    const u3d_cmd_spec spec = {
        "info", "[--preset paper|small|tiny] [--input DxHxW] [options]",
        "The default preset is paper. Sizes are D x H x W (Z, Y, X).\n", opts};
    memset(o, 0, sizeof *o);
    u3d_cli_net_defaults(n, "paper");
    o->batch = 1;
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    u3d_error e = {0};
    if (u3d_cli_net_config(n, &o->cfg, &e) ||
        (u3d_cli_net_wants_spacing(n) &&
         u3d_cli_net_aniso(n, NULL, &o->cfg, &e))) /* no image: --spacing */
        return u3d_opts_fail(&spec, "%s", e.msg);
    return -1;
}

/* Default tile of a preset (D,H,W) when --input is not given. */
static int default_input(const info_opts *o, int dhw[3])
{
    static const struct {
        const char *preset;
        int d, h, w;
    } t[] = {{"paper", 116, 132, 132}, {"small", 92, 92, 92}, {"tiny", 44, 44, 44}};
    /* the preset's tile does not fit other levels, padding or kernels */
    if (o->net.levels > 0 || o->net.padding >= 0 ||
        u3d_net_is_anisotropic(&o->cfg))
        return 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(o->net.preset, t[i].preset)) {
            dhw[0] = t[i].d, dhw[1] = t[i].h, dhw[2] = t[i].w;
            return 1;
        }
    return 0;
}

static double mib(size_t b) { return b / 1048576.0; }

/* Sizes as D x H x W, then in the paper's order X x Y x Z. */
static void print_size(const char *what, const int dhw[3])
{
    printf("%-7s (D x H x W) %dx%dx%d   [X x Y x Z: %dx%dx%d]\n", what, dhw[0],
           dhw[1], dhw[2], dhw[2], dhw[1], dhw[0]);
}

static void print_memory(const u3d_net_mem *m, int batch)
{
    printf("device memory, training iteration (batch %d): %.1f MiB\n", batch,
           mib(m->train_total));
    printf("  parameters and BN statistics    %10.1f MiB\n", mib(m->params));
    printf("  gradients and SGD momentum      %10.1f MiB\n", mib(m->grads));
    printf("  (--optimizer adam: +%.1f MiB)\n", mib(m->adam));
    printf("  activations and grad scratch    %10.1f MiB\n", mib(m->train_acts));
    printf("  input, labels, dlogits          %10.1f MiB\n", mib(m->train_io));
    printf("device memory, inference (batch %d): %.1f MiB\n", batch,
           mib(m->infer_total));
    printf("  parameters and BN statistics    %10.1f MiB\n", mib(m->params));
    printf("  activations                     %10.1f MiB\n", mib(m->infer_acts));
    printf("  input                           %10.1f MiB\n", mib(m->infer_io));
    printf("(convolution workspace of the backend, if any, not included)\n");
}

int u3d_cmd_info(int argc, char **argv)
{
    info_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    u3d_error e = {0};
    char desc[256];
    printf("network: 3D U-Net, %s\n",
           u3d_net_config_str(&o.cfg, desc, sizeof desc));
    if (o.cfg.bn == U3D_BN_NONE)
        printf("learnable parameters: %zu\n", u3d_net_param_count(&o.cfg, 0));
    else
        printf("learnable parameters: %zu (batch norm without scale/shift, "
               "as counted in the paper)\n"
               "                      %zu (with batch-norm gamma and beta)\n",
               u3d_net_param_count(&o.cfg, 0), u3d_net_param_count(&o.cfg, 1));
    if (u3d_net_is_anisotropic(&o.cfg)) {
        int ctx[3];
        for (int a = 0; a < 3; a++)
            ctx[a] = u3d_net_context_axis(&o.cfg, a);
        printf("context per side (D x H x W): %dx%dx%d\n", ctx[0], ctx[1],
               ctx[2]);
    }
    int in[3], out[3];
    if (o.have_input)
        memcpy(in, o.input, sizeof in);
    else if (!default_input(&o, in)) {
        printf("give --input DxHxW for the output size and memory\n");
        return 0;
    }
    if (u3d_net_output_size(&o.cfg, in, out, &e)) {
        fprintf(stderr, "unet3d info: %s\n", e.msg);
        return 1;
    }
    print_size("input", in);
    print_size("output", out);
    u3d_net_mem m;
    if (u3d_net_memory(&o.cfg, o.batch, in, &m, &e)) {
        fprintf(stderr, "unet3d info: %s\n", e.msg);
        return 1;
    }
    print_memory(&m, o.batch);
    return 0;
}
