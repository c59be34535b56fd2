/* unet3d augment: write augmented samples of a volume to look at. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "unet3d/predict.h"

typedef struct aargs {
    u3d_backend_config bc;
    u3d_cli_aug aug;
    const char *img, *lab, *out;
    int samples, norm;
    unsigned long long seed;
} aargs;

/* Returns -1 when parsed, else the exit code. */
static int parse(int argc, char **argv, aargs *a)
{
    u3d_cli_aug *g = &a->aug;
    const u3d_opt opts[] = {
        {"--image", U3D_OPT_STRING, &a->img, 0, 0, "A.tif",
         .help = "the volume", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--labels", U3D_OPT_STRING, &a->lab, 0, 0, "L.tif",
         .help = "its labels, transformed alike",
         .flags = U3D_OPT_IN},
        {"--out", U3D_OPT_STRING, &a->out, 0, 0, "DIR",
         .help = "the folder to write to", .flags = U3D_OPT_REQUIRED},
        {"--samples", U3D_OPT_INT, &a->samples, 1, 10000, "N",
         .help = "how many (default 4)"},
        {"--seed", U3D_OPT_U64, &a->seed, 0, 0, "S", .help = "(default 1)"},
        {"--normalize", U3D_OPT_CHOICE, &a->norm, 0, 0, NULL,
         .help = "per channel (default percentile 1..99.8 -> 0..1)",
         .choices = u3d_norm_mode_names},
        U3D_OPTS_AUG(g),
        /* the spellings before --aug-sigma, --aug-grid, --aug-rotate */
        {"--sigma", U3D_OPT_FLOAT, &g->sigma, 0, 100, "S", NULL,
         .given = &g->g_sigma},
        {"--grid", U3D_OPT_INT, &g->grid, 1, U3D_OPT_MAX_SIZE, "G", NULL,
         .given = &g->g_grid},
        {"--rotate", U3D_OPT_FLOAT, &g->rotate, 0, 180, "DEG", NULL,
         .given = &g->g_rotate},
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {
        "augment", "--image A.tif [--labels L.tif] --out DIR [options]",
        "writes DIR/sample_K_image.tif, sample_K_labels.tif and a PNG of\n"
        "their middle slices (sample_K.png), each of the image's size\n",
        opts};
    return u3d_opts_parse(&spec, argc, argv);
}

typedef struct ajob {
    const aargs *a;
    u3d_augment_params p;
    u3d_volume v, ov;
    u3d_labels l, ol;
    u3d_backend *be;
    u3d_tensor ti, tl, oi, olab;
    u3d_error e;
} ajob;

/* Image (normalized) and labels on the host; the output folder. */
static u3d_status read_inputs(ajob *j)
{
    const aargs *a = j->a;
    u3d_error *e = &j->e;
    u3d_status st = u3d_cli_aug_params(&a->aug, 255, &j->p, e);
    if (!st)
        st = u3d_vio_read_volume(a->img, &j->v, NULL, e);
    if (!st && a->lab)
        st = u3d_vio_read_labels(a->lab, &j->l, NULL, e);
    if (!st && a->lab)
        st = u3d_check_image_labels(&j->v, a->img, &j->l, a->lab, e);
    if (!st && a->norm != U3D_NORM_NONE) {
        u3d_norm_params np;
        st = u3d_norm_compute(&j->v, NULL, (u3d_norm_mode)a->norm, 1.0, 99.8,
                              &np, e);
        if (!st)
            st = u3d_norm_apply(&j->v, &np, e);
    }
    if (!st && mkdir(a->out, 0755) && errno != EEXIST)
        st = u3d_seterr(e, U3D_ERR_IO, "%s: cannot create the folder: %s",
                        a->out, strerror(errno));
    return st;
}

/* Labels as int32 on the device, and the host copy of a sample's. */
static u3d_status upload_labels(ajob *j)
{
    const u3d_volume *v = &j->v;
    size_t n = (size_t)v->d * v->h * v->w;
    u3d_shape ls = u3d_shape5(1, 1, v->d, v->h, v->w);
    int32_t *l32 = malloc(n * sizeof *l32);
    if (!l32)
        return u3d_seterr(&j->e, U3D_ERR_OOM, "out of host memory");
    for (size_t i = 0; i < n; i++)
        l32[i] = j->l.data[i];
    u3d_status st = u3d_tensor_create(j->be, ls, U3D_I32, &j->tl, &j->e);
    if (!st)
        st = u3d_tensor_write(&j->tl, l32, &j->e);
    free(l32);
    if (!st)
        st = u3d_tensor_create(j->be, ls, U3D_I32, &j->olab, &j->e);
    if (!st)
        st = u3d_labels_alloc(v->d, v->h, v->w, &j->ol, &j->e);
    memcpy(j->ol.spacing, v->spacing, sizeof v->spacing);
    memcpy(j->ol.unit, v->unit, sizeof v->unit);
    return st;
}

static u3d_status upload(ajob *j)
{
    const u3d_volume *v = &j->v;
    u3d_shape is = u3d_shape5(1, v->c, v->d, v->h, v->w);
    u3d_status st = u3d_backend_create(&j->a->bc, &j->be, &j->e);
    if (!st)
        st = u3d_tensor_create(j->be, is, U3D_F32, &j->ti, &j->e);
    if (!st)
        st = u3d_tensor_write(&j->ti, v->data, &j->e);
    if (!st)
        st = u3d_tensor_create(j->be, is, U3D_F32, &j->oi, &j->e);
    if (!st)
        st = u3d_volume_alloc(v->c, v->d, v->h, v->w, &j->ov, &j->e);
    if (st)
        return st;
    memcpy(j->ov.spacing, v->spacing, sizeof v->spacing);
    memcpy(j->ov.unit, v->unit, sizeof v->unit);
    return j->a->lab ? upload_labels(j) : U3D_OK;
}

static u3d_status read_labels(ajob *j)
{
    size_t n = (size_t)j->v.d * j->v.h * j->v.w;
    int32_t *l32 = malloc(n * sizeof *l32);
    if (!l32)
        return u3d_seterr(&j->e, U3D_ERR_OOM, "out of host memory");
    u3d_status st = u3d_tensor_read(&j->olab, l32, &j->e);
    for (size_t i = 0; !st && i < n; i++)
        j->ol.data[i] = (uint16_t)l32[i];
    free(l32);
    return st;
}

/* Sample s: its image, labels and overview PNG. */
static u3d_status write_sample(ajob *j, int s)
{
    const aargs *a = j->a;
    int lab = a->lab != NULL;
    char path[4200];
    float origin[3] = {(j->v.d - 1) / 2.0f, (j->v.h - 1) / 2.0f,
                       (j->v.w - 1) / 2.0f};
    u3d_status st = u3d_augment_sample(j->be, &j->p, a->seed, (uint64_t)s,
                                       &j->ti, lab ? &j->tl : NULL, origin,
                                       &j->oi, lab ? &j->olab : NULL, &j->e);
    if (!st)
        st = u3d_tensor_read(&j->oi, j->ov.data, &j->e);
    snprintf(path, sizeof path, "%s/sample_%d_image.tif", a->out, s);
    if (!st)
        st = u3d_tiff_write_volume(path, &j->ov, &j->e);
    if (!st && lab)
        st = read_labels(j);
    snprintf(path, sizeof path, "%s/sample_%d_labels.tif", a->out, s);
    if (!st && lab)
        st = u3d_tiff_write_labels(path, &j->ol, &j->e);
    u3d_overview_opts oo = {0, j->p.ignore_label, 0};
    snprintf(path, sizeof path, "%s/sample_%d.png", a->out, s);
    if (!st)
        st = u3d_overview_write(path, &j->ov, lab ? &j->ol : NULL, NULL, &oo,
                                &j->e);
    if (!st)
        printf("wrote %s/sample_%d_*\n", a->out, s);
    return st;
}

int u3d_cmd_augment(int argc, char **argv)
{
    aargs a;
    memset(&a, 0, sizeof a);
    u3d_cli_aug_defaults(&a.aug);
    a.samples = 4;
    a.seed = 1;
    a.norm = U3D_NORM_PERCENTILE;
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    ajob *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "unet3d augment: out of host memory\n");
        return 1;
    }
    j->a = &a;
    u3d_status st = read_inputs(j);
    if (!st)
        st = upload(j);
    for (int s = 0; !st && s < a.samples; s++)
        st = write_sample(j, s);
    if (st)
        fprintf(stderr, "unet3d augment: %s\n", j->e.msg);
    u3d_tensor *ts[] = {&j->ti, &j->tl, &j->oi, &j->olab};
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(ts[i]);
    u3d_backend_destroy(j->be);
    u3d_volume_free(&j->v);
    u3d_volume_free(&j->ov);
    u3d_labels_free(&j->l);
    u3d_labels_free(&j->ol);
    free(j);
    return st ? 1 : 0;
}
