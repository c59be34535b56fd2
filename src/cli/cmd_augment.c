/* unet3d augment: write augmented samples of a volume to look at. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "unet3d/predict.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: unet3d augment --image A.tif [--labels L.tif] --out DIR\n"
        "                      [--samples N] [--seed S] [--augment paper|none]\n"
        "                      [--sigma S] [--grid G] [--rotate DEG]\n"
        "                      [--normalize percentile|zscore|none]\n"
        "writes DIR/sample_K_image.tif, sample_K_labels.tif and a PNG of\n"
        "their middle slices (sample_K.png), each of the image's size\n");
}

int u3d_cmd_augment(int argc, char **argv)
{
    u3d_backend_config bc = {0};
    argc = u3d_cli_common(argc, argv, &bc);
    const char *img = NULL, *lab = NULL, *out = NULL, *preset = "paper";
    const char *norm = "percentile";
    int samples = 4;
    float sigma = -1, rotate = -1;
    int grid = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
        if (ARG("--image")) img = v;
        else if (ARG("--labels")) lab = v;
        else if (ARG("--out")) out = v;
        else if (ARG("--samples")) samples = atoi(v);
        else if (ARG("--seed")) seed = strtoull(v, NULL, 10);
        else if (ARG("--augment")) preset = v;
        else if (ARG("--sigma")) sigma = strtof(v, NULL);
        else if (ARG("--grid")) grid = atoi(v);
        else if (ARG("--rotate")) rotate = strtof(v, NULL);
        else if (ARG("--normalize")) norm = v;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unet3d augment: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
#undef ARG
    }
    if (!img || !out || samples < 1) {
        usage(stderr);
        return 2;
    }
    u3d_error e = {0};
    u3d_augment_params p;
    u3d_volume v = {0}, ov = {0};
    u3d_labels l = {0}, ol = {0};
    u3d_backend *be = NULL;
    u3d_tensor ti = {0}, tl = {0}, oi = {0}, olab = {0};
    int rc = 1;
    if (u3d_augment_params_preset(preset, &p, &e))
        goto done;
    for (int a = 0; a < 3; a++) {
        if (sigma >= 0)
            p.sigma[a] = sigma;
        if (grid != 0)
            p.grid_spacing[a] = grid;
        if (rotate >= 0)
            p.rotate_deg[a] = rotate;
    }
    if (u3d_augment_params_check(&p, &e))
        goto done;
    if (u3d_tiff_read_volume(img, &v, &e))
        goto done;
    if (lab && (u3d_tiff_read_labels(lab, &l, &e) ||
                u3d_check_image_labels(&v, img, &l, lab, &e)))
        goto done;
    int mode = !strcmp(norm, "zscore")       ? U3D_NORM_ZSCORE
               : !strcmp(norm, "percentile") ? U3D_NORM_PERCENTILE
               : !strcmp(norm, "none")       ? U3D_NORM_NONE
                                             : -1;
    if (mode < 0) {
        u3d_seterr(&e, U3D_ERR_INVALID_ARG,
                   "--normalize must be percentile, zscore or none");
        goto done;
    }
    if (mode != U3D_NORM_NONE) {
        u3d_norm_params np;
        if (u3d_norm_compute(&v, NULL, (u3d_norm_mode)mode, 1.0, 99.8, &np, &e) ||
            u3d_norm_apply(&v, &np, &e))
            goto done;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        u3d_seterr(&e, U3D_ERR_IO, "%s: cannot create the folder: %s", out,
                   strerror(errno));
        goto done;
    }
    if (u3d_backend_create(&bc, &be, &e))
        goto done;
    u3d_shape is = u3d_shape5(1, v.c, v.d, v.h, v.w);
    u3d_shape ls = u3d_shape5(1, 1, v.d, v.h, v.w);
    if (u3d_tensor_create(be, is, U3D_F32, &ti, &e) ||
        u3d_tensor_write(&ti, v.data, &e) ||
        u3d_tensor_create(be, is, U3D_F32, &oi, &e) ||
        u3d_volume_alloc(v.c, v.d, v.h, v.w, &ov, &e))
        goto done;
    memcpy(ov.spacing, v.spacing, sizeof v.spacing);
    memcpy(ov.unit, v.unit, sizeof v.unit);
    if (lab) {
        size_t n = (size_t)v.d * v.h * v.w;
        int32_t *l32 = malloc(n * sizeof *l32);
        if (!l32) {
            u3d_seterr(&e, U3D_ERR_OOM, "out of host memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            l32[i] = l.data[i];
        u3d_status st = u3d_tensor_create(be, ls, U3D_I32, &tl, &e);
        if (!st)
            st = u3d_tensor_write(&tl, l32, &e);
        free(l32);
        if (st || u3d_tensor_create(be, ls, U3D_I32, &olab, &e) ||
            u3d_labels_alloc(v.d, v.h, v.w, &ol, &e))
            goto done;
        memcpy(ol.spacing, v.spacing, sizeof v.spacing);
        memcpy(ol.unit, v.unit, sizeof v.unit);
    }
    float origin[3] = {(v.d - 1) / 2.0f, (v.h - 1) / 2.0f, (v.w - 1) / 2.0f};
    for (int s = 0; s < samples; s++) {
        char path[4200];
        if (u3d_augment_sample(be, &p, seed, (uint64_t)s, &ti, lab ? &tl : NULL,
                               origin, &oi, lab ? &olab : NULL, &e) ||
            u3d_tensor_read(&oi, ov.data, &e))
            goto done;
        snprintf(path, sizeof path, "%s/sample_%d_image.tif", out, s);
        if (u3d_tiff_write_volume(path, &ov, &e))
            goto done;
        if (lab) {
            size_t n = (size_t)v.d * v.h * v.w;
            int32_t *l32 = malloc(n * sizeof *l32);
            if (!l32 || u3d_tensor_read(&olab, l32, &e)) {
                free(l32);
                if (!e.msg[0])
                    u3d_seterr(&e, U3D_ERR_OOM, "out of host memory");
                goto done;
            }
            for (size_t i = 0; i < n; i++)
                ol.data[i] = (uint16_t)l32[i];
            free(l32);
            snprintf(path, sizeof path, "%s/sample_%d_labels.tif", out, s);
            if (u3d_tiff_write_labels(path, &ol, &e))
                goto done;
        }
        u3d_overview_opts oo = {0, p.ignore_label, 0};
        snprintf(path, sizeof path, "%s/sample_%d.png", out, s);
        if (u3d_overview_write(path, &ov, lab ? &ol : NULL, NULL, &oo, &e))
            goto done;
        printf("wrote %s/sample_%d_*\n", out, s);
    }
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "unet3d augment: %s\n", e.msg);
    u3d_tensor *ts[] = {&ti, &tl, &oi, &olab};
    for (int i = 0; i < 4; i++)
        u3d_tensor_release(ts[i]);
    u3d_backend_destroy(be);
    u3d_volume_free(&v);
    u3d_volume_free(&ov);
    u3d_labels_free(&l);
    u3d_labels_free(&ol);
    return rc;
}
