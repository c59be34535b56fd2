/* unet3d synth and unet3d boundaries: the development set's synthetic and
 * derived volumes (tubules, membranes; thin boundaries of instances), so
 * every default can be measured on every kind of structure. */
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/options.h"

typedef struct synth_args {
    int kind; /* index in kinds */
    const char *img, *lab;
    int size[3], g_size, ncells, g_ncells;
    double wall, faint;
    int g_wall, g_faint;
    unsigned long long seed;
} synth_args;

static const char *const kinds[] = {"tubules", "membranes", NULL};

static int parse_synth(int argc, char **argv, synth_args *a)
{
    const u3d_opt opts[] = {
        {"--kind", U3D_OPT_CHOICE, &a->kind, 0, 0, NULL,
         .help = "tubules (the demo's) or membranes (thin cell\n"
                 "walls of a membrane stain)",
         .choices = kinds},
        {"--out", U3D_OPT_STRING, &a->img, 0, 0, "IMG.tif",
         .help = "the image to write", .flags = U3D_OPT_REQUIRED | U3D_OPT_OUT},
        {"--labels", U3D_OPT_STRING, &a->lab, 0, 0, "LAB.tif",
         .help = "its dense labels", .flags = U3D_OPT_REQUIRED | U3D_OPT_OUT},
        {"--size", U3D_OPT_SIZE3, a->size, 8, U3D_OPT_MAX_SIZE, "DxHxW",
         .help = "(default tubules 48x96x96, membranes\n32x128x128)",
         .given = &a->g_size},
        {"--cells", U3D_OPT_INT, &a->ncells, 2, 4096, "N",
         .help = "membranes: number of cells (default 60)",
         .given = &a->g_ncells},
        {"--wall", U3D_OPT_DOUBLE, &a->wall, 0, 20, "V",
         .help = "membranes: wall thickness in x/y voxels (1.5)",
         .given = &a->g_wall, .flags = U3D_OPT_GT},
        {"--faint", U3D_OPT_DOUBLE, &a->faint, 0, 1, "F",
         .help = "membranes: the dimmest wall's contrast (0.35)",
         .given = &a->g_faint},
        {"--seed", U3D_OPT_U64, &a->seed, 0, 0, "S", .help = "(default 1)"},
        {0}};
    const u3d_cmd_spec spec = {"synth", "--out IMG.tif --labels LAB.tif "
                                        "[options]", NULL, opts};
    return u3d_opts_parse(&spec, argc, argv);
}

static u3d_status make(const synth_args *a, u3d_volume *v, u3d_labels *l,
                       u3d_error *e)
{
    if (a->kind == 0) {
        u3d_synth_params p;
        u3d_synth_params_default(&p);
        if (a->g_size)
            p.d = a->size[0], p.h = a->size[1], p.w = a->size[2];
        return u3d_synth_tubules(&p, a->seed, v, l, e);
    }
    u3d_membrane_params p;
    u3d_membrane_params_default(&p);
    if (a->g_size)
        p.d = a->size[0], p.h = a->size[1], p.w = a->size[2];
    if (a->g_ncells)
        p.ncells = a->ncells;
    if (a->g_wall)
        p.wall = a->wall;
    if (a->g_faint)
        p.faint = a->faint;
    return u3d_synth_membranes(&p, a->seed, v, l, e);
}

int u3d_cmd_synth(int argc, char **argv)
{
    synth_args a;
    memset(&a, 0, sizeof a);
    a.seed = 1;
    int rc = parse_synth(argc, argv, &a);
    if (rc >= 0)
        return rc;
    u3d_volume v = {0};
    u3d_labels l = {0};
    u3d_error e = {0};
    u3d_status st = make(&a, &v, &l, &e);
    if (!st)
        st = u3d_tiff_write_volume(a.img, &v, &e);
    if (!st && (st = u3d_tiff_write_labels(a.lab, &l, &e)))
        remove(a.img); /* a failed command leaves none of its outputs */
    if (st) {
        fprintf(stderr, "unet3d synth: %s\n", e.msg);
    } else {
        size_t n = (size_t)l.d * l.h * l.w, on = 0;
        for (size_t i = 0; i < n; i++)
            on += l.data[i] == 1;
        printf("wrote %s and %s: %s %dx%dx%d (DxHxW), label 1 on %.1f%% of "
               "the voxels\n", a.img, a.lab, kinds[a.kind], l.d, l.h, l.w,
               100.0 * (double)on / (double)n);
    }
    u3d_volume_free(&v);
    u3d_labels_free(&l);
    return st ? 1 : 0;
}

int u3d_cmd_boundaries(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    const u3d_opt opts[] = {
        {"--instances", U3D_OPT_STRING, &in, 0, 0, "INST.tif",
         .help = "instance labels (one id per object, 0 background)",
         .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--out", U3D_OPT_STRING, &out, 0, 0, "BOUNDARIES.tif",
         .help = "1 on the walls between and around objects (2\n"
                 "voxels wide), 0 elsewhere",
         .flags = U3D_OPT_REQUIRED | U3D_OPT_OUT},
        {0}};
    const u3d_cmd_spec spec = {"boundaries", "--instances INST.tif --out "
                                             "BOUNDARIES.tif", NULL, opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    u3d_labels l = {0}, b = {0};
    u3d_error e = {0};
    if (u3d_tiff_read_labels(in, &l, &e) ||
        u3d_labels_boundaries(&l, &b, &e) ||
        u3d_tiff_write_labels(out, &b, &e)) {
        fprintf(stderr, "unet3d boundaries: %s\n", e.msg);
        rc = 1;
    } else {
        size_t n = (size_t)b.d * b.h * b.w, on = 0;
        for (size_t i = 0; i < n; i++)
            on += b.data[i];
        printf("wrote %s: boundaries on %.1f%% of the voxels\n", out,
               100.0 * (double)on / (double)n);
        rc = 0;
    }
    u3d_labels_free(&l);
    u3d_labels_free(&b);
    return rc;
}
