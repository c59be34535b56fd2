/* unet3d info: parameter count, output size and device memory of a network
 * configuration. Needs no device.
 *
 * --input is read as W x H x D by default, the paper's X x Y x Z order, so
 * `unet3d info --preset paper --input 132x132x116` is the paper's tile
 * (D = 116 slices of 132 x 132) and prints its 44x44x28 output in the same
 * order; `--input-order dhw` reads (and prints) D x H x W instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "unet3d/model.h"

typedef struct info_opts {
    u3d_net_config cfg;
    const char *preset;
    int custom_sizes; /* levels or padding changed from the preset */
    int have_input;
    int input[3]; /* as typed */
    int dhw;      /* input typed as D x H x W */
    int batch;
} info_opts;

static void info_usage(FILE *f)
{
    fprintf(f,
            "usage: unet3d info [--preset paper|small|tiny] [--levels L]\n"
            "                   [--base-channels F] [--in-channels C]\n"
            "                   [--classes K] [--padding valid|same]\n"
            "                   [--no-bn | --bn-plain | --bn-affine]\n"
            "                   [--input WxHxD] [--input-order whd|dhw]\n"
            "                   [--batch B]\n"
            "--input is W x H x D (X x Y x Z, the paper's order) unless\n"
            "--input-order dhw; the default preset is paper.\n");
}

static int parse_int(const char *opt, const char *s, int lo, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > 1 << 30) {
        fprintf(stderr, "unet3d info: %s needs an integer >= %d, got '%s'\n",
                opt, lo, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_size(const char *s, int out[3])
{
    char tail;
    if (sscanf(s, "%dx%dx%d%c", &out[0], &out[1], &out[2], &tail) != 3 ||
        out[0] < 1 || out[1] < 1 || out[2] < 1) {
        fprintf(stderr, "unet3d info: --input wants three positive sizes "
                        "like 132x132x116, got '%s'\n", s);
        return 0;
    }
    return 1;
}

/* One option at argv[*i]; returns 0 on a bad option. */
static int parse_opt(int argc, char **argv, int *i, info_opts *o)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    u3d_net_config *c = &o->cfg;
    if (!strcmp(a, "--no-bn"))
        c->bn = U3D_BN_NONE;
    else if (!strcmp(a, "--bn-plain"))
        c->bn = U3D_BN_PLAIN;
    else if (!strcmp(a, "--bn-affine"))
        c->bn = U3D_BN_AFFINE;
    else if (!v) {
        fprintf(stderr, "unet3d info: unknown option or missing value: %s\n",
                a);
        return 0;
    } else {
        int ok = 1;
        ++*i;
        if (!strcmp(a, "--levels"))
            ok = parse_int(a, v, 1, &c->levels), o->custom_sizes = 1;
        else if (!strcmp(a, "--base-channels"))
            ok = parse_int(a, v, 1, &c->base_channels);
        else if (!strcmp(a, "--in-channels"))
            ok = parse_int(a, v, 1, &c->in_channels);
        else if (!strcmp(a, "--classes"))
            ok = parse_int(a, v, 1, &c->classes);
        else if (!strcmp(a, "--batch"))
            ok = parse_int(a, v, 1, &o->batch);
        else if (!strcmp(a, "--input"))
            ok = o->have_input = parse_size(v, o->input);
        else if (!strcmp(a, "--padding") &&
                 (!strcmp(v, "valid") || !strcmp(v, "same"))) {
            c->padding = !strcmp(v, "same") ? U3D_PAD_SAME : U3D_PAD_VALID;
            o->custom_sizes = 1;
        } else if (!strcmp(a, "--input-order") &&
                   (!strcmp(v, "whd") || !strcmp(v, "dhw")))
            o->dhw = !strcmp(v, "dhw");
        else {
            fprintf(stderr, "unet3d info: unknown option or bad value: %s %s\n",
                    a, v);
            return 0;
        }
        return ok;
    }
    return 1;
}

/* The preset must be known before the options that override it. */
static int parse_args(int argc, char **argv, info_opts *o)
{
    u3d_error e = {0};
    memset(o, 0, sizeof *o);
    o->preset = "paper";
    o->batch = 1;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset"))
            o->preset = argv[i + 1];
    if (u3d_net_preset(o->preset, &o->cfg, &e)) {
        fprintf(stderr, "unet3d info: %s\n", e.msg);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset")) {
            i++;
            continue;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            info_usage(stdout);
            exit(0);
        }
        if (!parse_opt(argc, argv, &i, o))
            return 0;
    }
    return 1;
}

/* Default tile of a preset (D,H,W) when --input is not given. */
static int default_input(const info_opts *o, int dhw[3])
{
    static const struct {
        const char *preset;
        int d, h, w;
    } t[] = {{"paper", 116, 132, 132}, {"small", 92, 92, 92}, {"tiny", 44, 44, 44}};
    if (o->custom_sizes)
        return 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(o->preset, t[i].preset)) {
            dhw[0] = t[i].d, dhw[1] = t[i].h, dhw[2] = t[i].w;
            return 1;
        }
    return 0;
}

static double mib(size_t b) { return b / 1048576.0; }

/* Sizes in the order the user typed them, then D, H, W explicitly. */
static void print_size(const char *what, const info_opts *o, const int dhw[3])
{
    if (o->dhw)
        printf("%-7s (D x H x W) %dx%dx%d\n", what, dhw[0], dhw[1], dhw[2]);
    else
        printf("%-7s (W x H x D) %dx%dx%d   [D=%d H=%d W=%d]\n", what, dhw[2],
               dhw[1], dhw[0], dhw[0], dhw[1], dhw[2]);
}

static void print_memory(const u3d_net_mem *m, int batch)
{
    printf("device memory, training iteration (batch %d): %.1f MiB\n", batch,
           mib(m->train_total));
    printf("  parameters and BN statistics    %10.1f MiB\n", mib(m->params));
    printf("  gradients and SGD momentum      %10.1f MiB\n", mib(m->grads));
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
    u3d_backend_config bcfg = {0};
    argc = u3d_cli_common(argc, argv, &bcfg); /* device options: unused */
    info_opts o;
    if (!parse_args(argc, argv, &o)) {
        info_usage(stderr);
        return 2;
    }
    u3d_error e = {0};
    char desc[256];
    if (u3d_net_config_check(&o.cfg, &e)) {
        fprintf(stderr, "unet3d info: %s\n", e.msg);
        return 2;
    }
    printf("network: 3D U-Net, %s\n",
           u3d_net_config_str(&o.cfg, desc, sizeof desc));
    if (o.cfg.bn == U3D_BN_NONE)
        printf("learnable parameters: %zu\n", u3d_net_param_count(&o.cfg, 0));
    else
        printf("learnable parameters: %zu (batch norm without scale/shift, "
               "as counted in the paper)\n"
               "                      %zu (with batch-norm gamma and beta)\n",
               u3d_net_param_count(&o.cfg, 0), u3d_net_param_count(&o.cfg, 1));
    int in[3], out[3];
    if (o.have_input) {
        for (int a = 0; a < 3; a++)
            in[a] = o.dhw ? o.input[a] : o.input[2 - a];
    } else if (!default_input(&o, in)) {
        printf("give --input WxHxD for the output size and memory\n");
        return 0;
    }
    if (u3d_net_output_size(&o.cfg, in, out, &e)) {
        fprintf(stderr, "unet3d info: %s\n", e.msg);
        return 1;
    }
    print_size("input", &o, in);
    print_size("output", &o, out);
    u3d_net_mem m;
    if (u3d_net_memory(&o.cfg, o.batch, in, &m, &e)) {
        fprintf(stderr, "unet3d info: %s\n", e.msg);
        return 1;
    }
    print_memory(&m, o.batch);
    return 0;
}
