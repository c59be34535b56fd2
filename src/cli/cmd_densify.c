/* unet3d densify: the semi-automatic workflow in one command — train on the
 * annotated voxels of one volume, predict the whole volume, keep the
 * user's labels where they annotated. Also the engine of `unet3d demo`. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"
#include "unet3d/predict.h"

void u3d_densify_defaults(u3d_densify_opts *o)
{
    memset(o, 0, sizeof *o);
    o->preset = "small";
    o->augment = "paper";
    o->ignore_label = 255;
    o->lr = 0.01f;
    o->momentum = 0.99f;
    o->seed = 1;
    o->patch_cap = 96;
}

static void progress(void *user, int done, int total)
{
    double *t0 = user;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double el = (double)ts.tv_sec + 1e-9 * ts.tv_nsec - *t0;
    fprintf(stderr, "\rpredicting: tile %d/%d  ETA %.0f s   ", done, total,
            done ? el / done * (total - done) : 0.0);
    if (done == total)
        fprintf(stderr, "\n");
}

/* Largest valid patch per axis <= min(cap, size + 2*context). */
static u3d_status densify_patch(const u3d_net_config *c, const int vol[3],
                                int cap, int patch[3], u3d_error *err)
{
    int ctx = u3d_net_context(c);
    for (int a = 0; a < 3; a++) {
        int want = vol[a] + 2 * ctx, below, above;
        if (want > cap)
            want = cap;
        if (!u3d_net_valid_size(c, want, &below, &above))
            want = below > 0 ? below : above;
        patch[a] = want;
    }
    int out[3];
    return u3d_net_output_size(c, patch, out, err);
}

u3d_status u3d_densify(u3d_backend *be, const u3d_densify_opts *o,
                       u3d_volume *image, const u3d_labels *sparse,
                       u3d_labels *dense, u3d_error *err)
{
    u3d_model_meta m;
    u3d_train_volume tv;
    u3d_net *net = NULL;
    char tmpmodel[4200];
    u3d_status st;
    memset(&tv, 0, sizeof tv);
    memset(dense, 0, sizeof *dense);
    u3d_model_meta_defaults(&m);
    if ((st = u3d_net_preset(o->preset, &m.net, err)))
        return st;
    m.net.in_channels = image->c;
    if (o->levels > 0)
        m.net.levels = o->levels;
    if (o->base_channels > 0)
        m.net.base_channels = o->base_channels;
    /* classes: as given, else the largest annotated label + 1 (>= 2) */
    int maxl = 1;
    size_t n = (size_t)sparse->d * sparse->h * sparse->w;
    for (size_t i = 0; i < n; i++)
        if (sparse->data[i] != o->ignore_label && sparse->data[i] > maxl)
            maxl = sparse->data[i];
    m.net.classes = o->classes > 0 ? o->classes : maxl + 1;
    if (m.net.classes > U3D_MAX_CLASSES)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "label value %d: at most %d classes are supported "
                          "(is the ignore label %d right?)",
                          maxl, U3D_MAX_CLASSES, o->ignore_label);
    if ((st = u3d_net_config_check(&m.net, err)))
        return st;
    m.ignore_label = o->ignore_label;
    m.lr = o->lr;
    m.momentum = o->momentum;
    m.seed = o->seed;
    m.iterations = o->iterations;
    m.minutes = o->iterations ? 0 : (o->minutes > 0 ? o->minutes : 10);
    snprintf(m.augment, sizeof m.augment, "%s", o->augment);
    size_t counts[U3D_MAX_CLASSES] = {0};
    if ((st = u3d_labels_check(sparse, m.net.classes, o->ignore_label, counts,
                               NULL, err)))
        return u3d_errprefix(err, "%s: ", o->labels_name);
    u3d_class_weights_auto(counts, m.net.classes, m.class_weights);
    size_t annotated = 0;
    for (int k = 0; k < m.net.classes; k++)
        annotated += counts[k];
    int vol[3] = {image->d, image->h, image->w};
    if (o->patch[0])
        memcpy(m.patch, o->patch, sizeof m.patch);
    else if ((st = densify_patch(&m.net, vol, o->patch_cap, m.patch, err)))
        return st;
    /* normalize as prediction will (the model stores the mode) */
    if ((st = u3d_model_normalize_input(image, &m, err)))
        return st;
    tv.image = *image;
    tv.labels = *sparse;
    snprintf(tv.image_path, sizeof tv.image_path, "%s", o->image_name);
    snprintf(tv.labels_path, sizeof tv.labels_path, "%s", o->labels_name);
    const char *model = o->model_out;
    if (!model) {
        snprintf(tmpmodel, sizeof tmpmodel, "%s.model-%ld.u3d.tmp",
                 o->out_name ? o->out_name : "densify", (long)getpid());
        model = tmpmodel;
    }
    if ((st = u3d_net_create(be, &m.net, &net, err)) ||
        (st = u3d_net_init(net, m.seed, err)))
        goto done;
    if (!o->quiet) {
        char cs[200];
        int out[3];
        u3d_net_output_size(&m.net, m.patch, out, NULL);
        fprintf(stderr, "training %s on %zu annotated voxels (%s), patch %dx%dx%d "
                        "(DxHxW)%s\n",
                u3d_net_config_str(&m.net, cs, sizeof cs),
                annotated, o->labels_name, m.patch[0], m.patch[1],
                m.patch[2], m.iterations ? "" : ", time budget");
    }
    u3d_train_opts to = {model, NULL, o->model_out ? 50 : 0, 0, o->quiet, 0,
                         stderr};
    if ((st = u3d_train_run(net, &m, &tv, 1, &to, err)))
        goto done;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t0 = (double)ts.tv_sec + 1e-9 * ts.tv_nsec;
    u3d_predict_opts po = {0};
    po.max_memory = o->max_memory;
    po.progress = o->quiet ? NULL : progress;
    po.progress_user = &t0;
    if ((st = u3d_predict(net, image, &po, dense, NULL, NULL, err)))
        goto done;
    /* the user's annotations are ground truth: keep them */
    for (size_t i = 0; i < n; i++)
        if (sparse->data[i] != o->ignore_label)
            dense->data[i] = sparse->data[i];
    memcpy(dense->spacing, image->spacing, sizeof dense->spacing);
    memcpy(dense->unit, image->unit, sizeof dense->unit);
done:
    if (!o->model_out)
        remove(tmpmodel);
    u3d_net_destroy(net);
    if (st)
        u3d_labels_free(dense);
    return st;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: unet3d densify --image IMG.tif (--labels SPARSE.tif |\n"
        "                      --annotation-slices DIR) --out DENSE.tif\n"
        "                      [--model-out M.u3d] [--iterations N | --minutes M]\n"
        "                      [--overview OUT.png] [--preset P] [--classes K]\n"
        "                      [--levels L] [--base-channels F]\n"
        "                      [--patch DxHxW] [--lr X] [--momentum X] [--seed S]\n"
        "                      [--augment paper|none] [--ignore-label L]\n"
        "                      [--max-memory MB] [--device D] [--quiet]\n"
        "Trains on the annotated voxels of this volume (default 10 minutes),\n"
        "segments the whole volume and keeps the annotated voxels' labels.\n"
        "--annotation-slices: PNG label slices zNNNN.png, yNNNN.png, xNNNN.png\n"
        "(8-bit gray, 255 = unlabeled).\n");
}

int u3d_cmd_densify(int argc, char **argv)
{
    u3d_backend_config bc = {0};
    argc = u3d_cli_common(argc, argv, &bc);
    u3d_densify_opts o;
    u3d_densify_defaults(&o);
    const char *img = NULL, *lab = NULL, *slices = NULL, *out = NULL,
               *overview = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
        char x;
        if (ARG("--image")) img = v;
        else if (ARG("--labels")) lab = v;
        else if (ARG("--annotation-slices")) slices = v;
        else if (ARG("--out")) out = v;
        else if (ARG("--model-out")) o.model_out = v;
        else if (ARG("--iterations")) o.iterations = atol(v);
        else if (ARG("--minutes")) o.minutes = atof(v);
        else if (ARG("--overview")) overview = v;
        else if (ARG("--preset")) o.preset = v;
        else if (ARG("--classes")) o.classes = atoi(v);
        else if (ARG("--levels")) o.levels = atoi(v);
        else if (ARG("--base-channels")) o.base_channels = atoi(v);
        else if (ARG("--patch")) {
            if (sscanf(v, "%dx%dx%d%c", &o.patch[0], &o.patch[1], &o.patch[2], &x) != 3) {
                fprintf(stderr, "unet3d densify: --patch wants DxHxW\n");
                return 2;
            }
        } else if (ARG("--lr")) o.lr = strtof(v, NULL);
        else if (ARG("--momentum")) o.momentum = strtof(v, NULL);
        else if (ARG("--seed")) o.seed = strtoull(v, NULL, 10);
        else if (ARG("--augment")) o.augment = v;
        else if (ARG("--ignore-label")) o.ignore_label = atoi(v);
        else if (ARG("--max-memory")) o.max_memory = (size_t)(atof(v) * 1048576.0);
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unet3d densify: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
#undef ARG
    }
    if (!img || !out || (!lab == !slices)) {
        usage(stderr);
        return 2;
    }
    o.image_name = img;
    o.labels_name = lab ? lab : slices;
    o.out_name = out;
    u3d_error e = {0};
    /* declared before the first goto: done: frees them */
    u3d_volume v = {0}, shown = {0};
    u3d_labels sp = {0}, dense = {0};
    u3d_backend *be = NULL;
    int rc = 1;
    if (u3d_tiff_read_volume(img, &v, &e))
        goto done;
    if (lab) {
        if (u3d_tiff_read_labels(lab, &sp, &e) ||
            u3d_check_image_labels(&v, img, &sp, lab, &e))
            goto done;
    } else {
        int ns;
        size_t conflicts;
        if (u3d_labels_from_png_slices(slices, v.d, v.h, v.w, &ns, &conflicts,
                                       &sp, &e))
            goto done;
        if (!o.quiet)
            fprintf(stderr, "read %d annotation slices from %s%s\n", ns, slices,
                    conflicts ? " (crossing slices disagree on some voxels: "
                                "the later file wins)"
                              : "");
    }
    if (overview && u3d_volume_alloc(v.c, v.d, v.h, v.w, &shown, &e) == U3D_OK) {
        memcpy(shown.data, v.data, sizeof(float) * v.c * (size_t)v.d * v.h * v.w);
        memcpy(shown.spacing, v.spacing, sizeof v.spacing);
    }
    if (u3d_backend_create(&bc, &be, &e))
        goto done;
    if (u3d_densify(be, &o, &v, &sp, &dense, &e) ||
        u3d_tiff_write_labels(out, &dense, &e))
        goto done;
    if (overview) {
        u3d_overview_opts oo = {0, o.ignore_label, 0};
        if (u3d_overview_write(overview, shown.data ? &shown : &v, &dense, NULL,
                               &oo, &e))
            goto done;
    }
    if (!o.quiet)
        fprintf(stderr, "wrote %s%s%s\n", out, overview ? " and " : "",
                overview ? overview : "");
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "unet3d densify: %s\n", e.msg);
    u3d_backend_destroy(be);
    u3d_volume_free(&v);
    u3d_volume_free(&shown);
    u3d_labels_free(&sp);
    u3d_labels_free(&dense);
    return rc;
}
