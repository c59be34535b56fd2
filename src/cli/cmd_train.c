/* unet3d train: train a 3D U-Net on sparsely labeled volumes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: unet3d train --image A.tif --labels A_labels.tif [--image B.tif "
        "--labels ...]\n"
        "                    --model out.u3d [options]\n\n"
        "  --preset P            small (default), paper or tiny; the input\n"
        "                        channels are taken from the images\n"
        "  --classes K           number of classes (default: the preset's)\n"
        "  --levels L, --base-channels F, --padding valid|same,\n"
        "  --batchnorm none|plain|affine   override the preset\n"
        "  --iterations N        train N iterations in total, or\n"
        "  --minutes M           train for M minutes of wall time\n"
        "  --patch DxHxW         input patch (default: largest valid <= 96)\n"
        "  --batch B             patches per iteration (default 1)\n"
        "  --lr X                learning rate (default 0.01)\n"
        "  --lr-schedule poly|constant  poly (default): lr (1 - done)^0.9\n"
        "  --momentum X          SGD momentum (default 0.99, as the paper)\n"
        "  --weight-decay X      (default 0)\n"
        "  --class-weights auto|sqrt|w0,w1,...  auto (default): balanced,\n"
        "                        w_c = n / (K n_c); sqrt: its square root\n"
        "  --ignore-label L      label of unannotated voxels (default 255)\n"
        "  --normalize percentile|zscore|none  per channel (default\n"
        "                        percentile 1..99.8 -> 0..1)\n"
        "  --augment paper|none  on-the-fly augmentation (default paper), then\n"
        "                        per transform: --aug-sigma S (voxels),\n"
        "                        --aug-grid G (control-point spacing),\n"
        "                        --aug-rotate DEG, --aug-scale LO,HI,\n"
        "                        --aug-mirror zyx|none (axes to flip),\n"
        "                        --aug-gray on|off (gamma/contrast/noise)\n"
        "  --seed S              (default 1): same seed, same model\n"
        "  --checkpoint-every N  write the model every N iterations (50)\n"
        "  --log FILE.csv        loss curve (default MODEL.csv)\n"
        "  --resume              continue the run saved in --model\n"
        "  --device D, --backend B, --profile, --quiet\n");
}

#define MAXV 32

static int parse_dims(const char *s, int d[3])
{
    char x;
    return sscanf(s, "%dx%dx%d%c", &d[0], &d[1], &d[2], &x) == 3 && d[0] > 0 &&
           d[1] > 0 && d[2] > 0;
}

static int fail(const char *msg)
{
    fprintf(stderr, "unet3d train: %s\n", msg);
    return 1;
}

/* Loads, checks and normalizes one image/labels pair. */
static u3d_status load_pair(const char *img, const char *lab,
                            const u3d_model_meta *m, u3d_train_volume *v,
                            size_t *counts, u3d_error *err)
{
    memset(v, 0, sizeof *v);
    snprintf(v->image_path, sizeof v->image_path, "%s", img);
    snprintf(v->labels_path, sizeof v->labels_path, "%s", lab);
    u3d_status st = u3d_tiff_read_volume(img, &v->image, err);
    if (!st)
        st = u3d_tiff_read_labels(lab, &v->labels, err);
    if (!st)
        st = u3d_check_image_labels(&v->image, img, &v->labels, lab, err);
    size_t c[U3D_MAX_CLASSES] = {0};
    if (!st) {
        st = u3d_labels_check(&v->labels, m->net.classes, m->ignore_label, c,
                              NULL, err);
        if (st)
            u3d_errprefix(err, "%s: ", lab);
    }
    for (int k = 0; !st && k < m->net.classes; k++)
        counts[k] += c[k];
    if (!st && m->norm_mode != U3D_NORM_NONE) {
        u3d_norm_params np;
        st = u3d_norm_compute(&v->image, NULL, (u3d_norm_mode)m->norm_mode,
                              m->norm_plo, m->norm_phi, &np, err);
        if (!st)
            st = u3d_norm_apply(&v->image, &np, err);
    }
    return st;
}

int u3d_cmd_train(int argc, char **argv)
{
    u3d_backend_config bc = {0};
    argc = u3d_cli_common(argc, argv, &bc);
    const char *imgs[MAXV], *labs[MAXV], *model = NULL, *logp = NULL;
    const char *preset = "small", *cw = "auto", *norm = "percentile";
    int nimg = 0, nlab = 0, resume = 0, quiet = 0, every = 50, classes = 0;
    int levels = 0, basech = 0;
    const char *padding = NULL, *bnmode = NULL;
    u3d_model_meta m;
    u3d_model_meta_defaults(&m);
    long iterations = 0;
    double minutes = 0;
    int have_patch = 0, have_lr = 0, have_mom = 0, have_seed = 0, have_aug = 0;
    char augname[32] = "paper";
    const char *aug_sigma = NULL, *aug_grid = NULL, *aug_rot = NULL,
               *aug_scale = NULL, *aug_mirror = NULL, *aug_gray = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
        if (ARG("--image")) {
            if (nimg == MAXV)
                return fail("too many --image");
            imgs[nimg++] = v;
        } else if (ARG("--labels")) {
            if (nlab == MAXV)
                return fail("too many --labels");
            labs[nlab++] = v;
        } else if (ARG("--model")) model = v;
        else if (ARG("--preset")) preset = v;
        else if (ARG("--classes")) classes = atoi(v);
        else if (ARG("--levels")) levels = atoi(v);
        else if (ARG("--base-channels")) basech = atoi(v);
        else if (ARG("--padding")) padding = v;
        else if (ARG("--batchnorm")) bnmode = v;
        else if (ARG("--iterations")) iterations = atol(v);
        else if (ARG("--minutes")) minutes = atof(v);
        else if (ARG("--patch")) {
            if (!parse_dims(v, m.patch))
                return fail("--patch wants DxHxW, e.g. 92x92x92");
            have_patch = 1;
        } else if (ARG("--batch")) m.batch = atoi(v);
        else if (ARG("--lr")) m.lr = strtof(v, NULL), have_lr = 1;
        else if (ARG("--momentum")) m.momentum = strtof(v, NULL), have_mom = 1;
        else if (ARG("--weight-decay")) m.weight_decay = strtof(v, NULL);
        else if (ARG("--lr-schedule")) {
            if (strcmp(v, "poly") && strcmp(v, "constant"))
                return fail("--lr-schedule must be poly or constant");
            m.lr_poly = !strcmp(v, "poly");
        }
        else if (ARG("--class-weights")) cw = v;
        else if (ARG("--ignore-label")) m.ignore_label = atoi(v);
        else if (ARG("--normalize")) norm = v;
        else if (ARG("--augment")) snprintf(augname, sizeof augname, "%s", v), have_aug = 1;
        else if (ARG("--aug-sigma")) aug_sigma = v;
        else if (ARG("--aug-grid")) aug_grid = v;
        else if (ARG("--aug-rotate")) aug_rot = v;
        else if (ARG("--aug-scale")) aug_scale = v;
        else if (ARG("--aug-mirror")) aug_mirror = v;
        else if (ARG("--aug-gray")) aug_gray = v;
        else if (ARG("--seed")) m.seed = strtoull(v, NULL, 10), have_seed = 1;
        else if (ARG("--checkpoint-every")) every = atoi(v);
        else if (ARG("--log")) logp = v;
        else if (!strcmp(a, "--resume")) resume = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unet3d train: unknown or incomplete option %s\n\n", a);
            usage(stderr);
            return 2;
        }
#undef ARG
    }
    if (!nimg || nimg != nlab || !model) {
        usage(stderr);
        return 2;
    }
    if (!iterations && minutes <= 0 && !resume)
        return fail("give --iterations N or --minutes M");
    char logbuf[4200];
    if (!logp) {
        snprintf(logbuf, sizeof logbuf, "%s.csv", model);
        logp = logbuf;
    }
    u3d_error e = {0};
    u3d_backend *be = NULL;
    u3d_net *net = NULL;
    u3d_train_volume vols[MAXV];
    int nv = 0, rc = 1;
    size_t counts[U3D_MAX_CLASSES] = {0};
    if (u3d_backend_create(&bc, &be, &e))
        goto fail;
    if (resume) {
        u3d_model_meta saved;
        if (u3d_model_load(model, be, &net, &saved, &e)) {
            u3d_errprefix(&e, "cannot resume: ");
            goto fail;
        }
        if (have_patch || have_lr || have_mom || have_seed || have_aug)
            fprintf(stderr, "unet3d train: --resume keeps the saved patch, "
                            "lr, momentum, seed and augmentation\n");
        m = saved;
        if (iterations)
            m.iterations = iterations;
        if (minutes > 0)
            m.minutes = minutes;
        fprintf(stderr, "resuming %s at iteration %ld\n", model, m.iteration);
    } else {
        if (u3d_net_preset(preset, &m.net, &e))
            goto fail;
        if (classes > 0)
            m.net.classes = classes;
        if (levels > 0)
            m.net.levels = levels;
        if (basech > 0)
            m.net.base_channels = basech;
        if (padding && strcmp(padding, "valid") && strcmp(padding, "same")) {
            u3d_seterr(&e, U3D_ERR_INVALID_ARG, "--padding must be valid or same");
            goto fail;
        }
        if (padding)
            m.net.padding = !strcmp(padding, "same") ? U3D_PAD_SAME : U3D_PAD_VALID;
        if (bnmode) {
            if (!strcmp(bnmode, "none")) m.net.bn = U3D_BN_NONE;
            else if (!strcmp(bnmode, "plain")) m.net.bn = U3D_BN_PLAIN;
            else if (!strcmp(bnmode, "affine")) m.net.bn = U3D_BN_AFFINE;
            else {
                u3d_seterr(&e, U3D_ERR_INVALID_ARG,
                           "--batchnorm must be none, plain or affine");
                goto fail;
            }
        }
        if (u3d_net_config_check(&m.net, &e))
            goto fail;
        if (classes > U3D_MAX_CLASSES) {
            u3d_seterr(&e, U3D_ERR_INVALID_ARG, "at most %d classes", U3D_MAX_CLASSES);
            goto fail;
        }
        m.norm_mode = !strcmp(norm, "zscore")       ? U3D_NORM_ZSCORE
                      : !strcmp(norm, "percentile") ? U3D_NORM_PERCENTILE
                      : !strcmp(norm, "none")       ? U3D_NORM_NONE
                                                    : -1;
        if (m.norm_mode < 0) {
            u3d_seterr(&e, U3D_ERR_INVALID_ARG,
                       "--normalize must be percentile, zscore or none");
            goto fail;
        }
        snprintf(m.augment, sizeof m.augment, "%s", augname);
        if (aug_sigma || aug_grid || aug_rot || aug_scale || aug_mirror ||
            aug_gray) {
            u3d_augment_params *a = &m.aug;
            if (u3d_augment_params_preset(augname, a, &e))
                goto fail;
            for (int k = 0; k < 3; k++) {
                if (aug_sigma)
                    a->sigma[k] = strtof(aug_sigma, NULL);
                if (aug_grid)
                    a->grid_spacing[k] = atoi(aug_grid);
                if (aug_rot)
                    a->rotate_deg[k] = strtof(aug_rot, NULL);
                if (aug_mirror)
                    a->mirror[k] = strchr(aug_mirror, "zyx"[k]) != NULL;
            }
            if (aug_scale &&
                sscanf(aug_scale, "%f,%f", &a->scale_iso[0], &a->scale_iso[1]) != 2) {
                u3d_seterr(&e, U3D_ERR_INVALID_ARG, "--aug-scale wants LO,HI");
                goto fail;
            }
            if (aug_gray && !strcmp(aug_gray, "off")) {
                a->gamma[0] = a->gamma[1] = 1;
                a->contrast[0] = a->contrast[1] = 1;
                a->brightness[0] = a->brightness[1] = 0;
                a->noise_std[0] = a->noise_std[1] = 0;
            }
            a->ignore_label = m.ignore_label;
            if (u3d_augment_params_check(a, &e))
                goto fail;
            m.aug_custom = 1;
        }
        m.iterations = iterations;
        m.minutes = iterations ? 0 : minutes;
    }
    for (nv = 0; nv < nimg; nv++) {
        if (load_pair(imgs[nv], labs[nv], &m, &vols[nv], counts, &e)) {
            nv++;
            goto fail;
        }
        if (!resume && nv == 0)
            m.net.in_channels = vols[0].image.c;
    }
    if (!resume) {
        if (!have_patch && u3d_train_default_patch(&m.net, 96, m.patch, &e))
            goto fail;
        if (!strcmp(cw, "auto")) {
            u3d_class_weights_auto(counts, m.net.classes, m.class_weights);
        } else if (!strcmp(cw, "sqrt")) {
            /* half-way (geometric) between no weighting and balanced */
            u3d_class_weights_auto(counts, m.net.classes, m.class_weights);
            for (int k = 0; k < m.net.classes; k++)
                m.class_weights[k] = sqrtf(m.class_weights[k]);
        } else {
            char *p = (char *)cw;
            for (int k = 0; k < m.net.classes; k++) {
                char *end;
                m.class_weights[k] = strtof(p, &end);
                if (end == p || m.class_weights[k] < 0) {
                    u3d_seterr(&e, U3D_ERR_INVALID_ARG,
                               "--class-weights needs %d non-negative numbers "
                               "separated by commas, or auto",
                               m.net.classes);
                    goto fail;
                }
                p = *end == ',' ? end + 1 : end;
            }
        }
        if (u3d_net_create(be, &m.net, &net, &e) ||
            u3d_net_init(net, m.seed, &e))
            goto fail;
    }
    if (!quiet) {
        char cfgs[256];
        int out[3] = {0};
        u3d_net_output_size(&m.net, m.patch, out, NULL);
        fprintf(stderr,
                "device: %s\nnetwork: %s\npatch %dx%dx%d -> %dx%dx%d (DxHxW), "
                "batch %d, lr %g, momentum %g, augment %s\nclass weights:",
                u3d_backend_device(be), u3d_net_config_str(&m.net, cfgs, sizeof cfgs),
                m.patch[0], m.patch[1], m.patch[2], out[0], out[1], out[2],
                m.batch, m.lr, m.momentum, m.augment);
        for (int k = 0; k < m.net.classes; k++)
            fprintf(stderr, " %.3g", m.class_weights[k]);
        fprintf(stderr, "\n");
    }
    u3d_train_opts o = {model, logp, every, 0, quiet, 0, stderr};
    if (u3d_train_run(net, &m, vols, nv, &o, &e))
        goto fail;
    if (!quiet)
        fprintf(stderr, "saved %s after %ld iterations (%.1f s)\n", model,
                m.iteration, m.elapsed_s);
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "unet3d train: %s\n", e.msg);
    for (int i = 0; i < nv; i++) {
        u3d_volume_free(&vols[i].image);
        u3d_labels_free(&vols[i].labels);
    }
    u3d_net_destroy(net);
    u3d_backend_destroy(be);
    return rc;
}
