/* unet3d demo: the whole semi-automatic workflow on a synthetic volume like
 * the paper's kidney tubules — annotate a few slices, densify, score the
 * voxels the network had to infer, and draw an overview. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cli/cli.h"
#include "unet3d/predict.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: unet3d demo [--out DIR] [--minutes M] [--slices Z,Y,X]\n"
        "                   [--seed S] [--device D] [--quiet]\n"
        "Generates a synthetic tubule volume (48x96x96, anisotropic), keeps\n"
        "a few annotated slices (default 3,3,3), trains on them for M minutes\n"
        "(default 1.5), segments the volume, prints the IoU on the voxels that\n"
        "were not annotated and writes DIR/overview.png (default DIR:\n"
        "unet3d-demo).\n");
}

static u3d_status path_in(char *buf, size_t n, const char *dir,
                          const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return U3D_OK;
}

int u3d_cmd_demo(int argc, char **argv)
{
    u3d_backend_config bc = {0};
    argc = u3d_cli_common(argc, argv, &bc);
    const char *dir = "unet3d-demo";
    double minutes = 1.5;
    int k[3] = {3, 3, 3}, quiet = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char x;
        if (!strcmp(a, "--out") && v) dir = argv[++i];
        else if (!strcmp(a, "--minutes") && v) minutes = atof(argv[++i]);
        else if (!strcmp(a, "--seed") && v) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--slices") && v) {
            if (sscanf(argv[++i], "%d,%d,%d%c", &k[0], &k[1], &k[2], &x) != 3) {
                fprintf(stderr, "unet3d demo: --slices wants Z,Y,X\n");
                return 2;
            }
        } else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unet3d demo: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    double t0 = now_s();
    u3d_error e = {0};
    u3d_synth_params sp;
    u3d_volume img = {0}, shown = {0};
    u3d_labels truth = {0}, sparse = {0}, dense = {0};
    u3d_backend *be = NULL;
    u3d_metrics met;
    memset(&met, 0, sizeof met);
    int rc = 1;
    char p_img[4200], p_truth[4200], p_sparse[4200], p_dense[4200], p_png[4200],
        p_model[4200];
    path_in(p_img, sizeof p_img, dir, "image.tif");
    path_in(p_truth, sizeof p_truth, dir, "truth.tif");
    path_in(p_sparse, sizeof p_sparse, dir, "sparse.tif");
    path_in(p_dense, sizeof p_dense, dir, "dense.tif");
    path_in(p_png, sizeof p_png, dir, "overview.png");
    path_in(p_model, sizeof p_model, dir, "model.u3d");
    if (mkdir(dir, 0755) && errno != EEXIST) {
        u3d_seterr(&e, U3D_ERR_IO, "%s: cannot create the folder: %s", dir,
                   strerror(errno));
        goto done;
    }
    u3d_synth_params_default(&sp);
    if (u3d_backend_create(&bc, &be, &e))
        goto done;
    if (!quiet)
        printf("unet3d demo on %s\n", u3d_backend_device(be));
    fflush(stdout);
    if (u3d_synth_tubules(&sp, seed, &img, &truth, &e) ||
        u3d_tiff_write_volume(p_img, &img, &e) ||
        u3d_tiff_write_labels(p_truth, &truth, &e) ||
        u3d_labels_alloc(truth.d, truth.h, truth.w, &sparse, &e) ||
        u3d_volume_alloc(img.c, img.d, img.h, img.w, &shown, &e))
        goto done;
    size_t n = (size_t)truth.d * truth.h * truth.w, kept = 0;
    memcpy(sparse.data, truth.data, n * sizeof *sparse.data);
    memcpy(sparse.spacing, truth.spacing, sizeof sparse.spacing);
    memcpy(sparse.unit, truth.unit, sizeof sparse.unit);
    memcpy(shown.data, img.data, n * sizeof(float) * img.c);
    memcpy(shown.spacing, img.spacing, sizeof img.spacing);
    if (u3d_labels_sparsify(&sparse, k, 0, 0, 255, &kept, &e) ||
        u3d_tiff_write_labels(p_sparse, &sparse, &e))
        goto done;
    if (!quiet)
        printf("synthetic tubules %dx%dx%d (WxHxD, z spacing %.1f), "
               "annotated %d,%d,%d slices (z,y,x) = %.1f%% of the voxels\n",
               sp.w, sp.h, sp.d, sp.z_spacing, k[0], k[1], k[2],
               100.0 * (double)kept / (double)n);
    fflush(stdout); /* before the training progress on stderr */
    u3d_densify_opts o;
    u3d_densify_defaults(&o);
    o.minutes = minutes;
    o.model_out = p_model;
    o.image_name = p_img;
    o.labels_name = p_sparse;
    o.out_name = p_dense;
    o.classes = 2;
    o.seed = seed;
    o.quiet = quiet;
    o.patch_cap = 76; /* smaller patches: more iterations in the budget */
    if (u3d_densify(be, &o, &img, &sparse, &dense, &e) ||
        u3d_tiff_write_labels(p_dense, &dense, &e))
        goto done;
    u3d_metrics_opts mo = {255, &sparse, 255, 2, p_dense, p_truth, p_sparse};
    if (u3d_metrics_compute(&dense, &truth, &mo, &met, &e))
        goto done;
    u3d_overview_opts oo = {0, 255, 0};
    if (u3d_overview_write(p_png, &shown, &dense, &truth, &oo, &e))
        goto done;
    printf("IoU of the tubules on the %zu voxels that were not annotated: "
           "%.3f (mean over classes %.3f)\n",
           met.voxels, met.iou[1], met.mean_iou);
    printf("wrote %s, %s and %s (%.0f s in all)\n", p_dense, p_png, p_model,
           now_s() - t0);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "unet3d demo: %s\n", e.msg);
    u3d_metrics_free(&met);
    u3d_backend_destroy(be);
    u3d_volume_free(&img);
    u3d_volume_free(&shown);
    u3d_labels_free(&truth);
    u3d_labels_free(&sparse);
    u3d_labels_free(&dense);
    return rc;
}
