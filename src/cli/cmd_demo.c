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
#include "cli/options.h"
#include "unet3d/predict.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static u3d_status path_in(char *buf, size_t n, const char *dir,
                          const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return U3D_OK;
}

static const char ABOUT[] =
    "Generates a synthetic tubule volume (48x96x96, D x H x W, anisotropic),\n"
    "keeps a few annotated slices, trains on them, segments the volume,\n"
    "prints the IoU on the voxels that were not annotated and writes\n"
    "DIR/overview.png.\n";

typedef struct demo_args {
    u3d_backend_config bc;
    const char *dir;
    double minutes;
    int k[3], quiet;
    unsigned long long seed;
} demo_args;

/* Returns -1 when parsed, else the exit code. */
static int parse(int argc, char **argv, demo_args *a)
{
    const u3d_opt opts[] = {
        {"--out", U3D_OPT_STRING, &a->dir, 0, 0, "DIR",
         .help = "where to write (default unet3d-demo)"},
        {"--minutes", U3D_OPT_DOUBLE, &a->minutes, 0, 1e6, "M",
         .help = "training time (default 1.5)", .flags = U3D_OPT_GT},
        {"--slices", U3D_OPT_INT3, a->k, 0, 1000000, "Z,Y,X",
         .help = "annotated z, y and x slices (default 3,3,3)"},
        {"--seed", U3D_OPT_U64, &a->seed, 0, 0, "S",
         .help = "volume and training seed (default 1)"},
        {"--quiet", U3D_OPT_FLAG, &a->quiet, 0, 0, NULL,
         .help = "no progress"},
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {"demo", "[options]", ABOUT, opts};
    return u3d_opts_parse(&spec, argc, argv);
}

typedef struct demo_job {
    const demo_args *a;
    char p_img[4200], p_truth[4200], p_sparse[4200], p_dense[4200],
        p_png[4200], p_model[4200];
    u3d_volume img, shown;
    u3d_labels truth, sparse, dense;
    u3d_backend *be;
    u3d_metrics met;
    u3d_error e;
} demo_job;

/* The synthetic volume, its truth and sparse annotation, written. */
static u3d_status make_data(demo_job *j)
{
    u3d_synth_params sp;
    u3d_error *e = &j->e;
    u3d_synth_params_default(&sp);
    u3d_status st = u3d_synth_tubules(&sp, j->a->seed, &j->img, &j->truth, e);
    if (!st)
        st = u3d_tiff_write_volume(j->p_img, &j->img, e);
    if (!st)
        st = u3d_tiff_write_labels(j->p_truth, &j->truth, e);
    if (!st)
        st = u3d_labels_alloc(j->truth.d, j->truth.h, j->truth.w, &j->sparse,
                              e);
    if (!st)
        st = u3d_volume_alloc(j->img.c, j->img.d, j->img.h, j->img.w,
                              &j->shown, e);
    if (st)
        return st;
    size_t n = (size_t)j->truth.d * j->truth.h * j->truth.w, kept = 0;
    memcpy(j->sparse.data, j->truth.data, n * sizeof *j->sparse.data);
    memcpy(j->sparse.spacing, j->truth.spacing, sizeof j->sparse.spacing);
    memcpy(j->sparse.unit, j->truth.unit, sizeof j->sparse.unit);
    /* densify normalizes img in place: the overview shows it raw */
    memcpy(j->shown.data, j->img.data, n * sizeof(float) * j->img.c);
    memcpy(j->shown.spacing, j->img.spacing, sizeof j->img.spacing);
    st = u3d_labels_sparsify(&j->sparse, j->a->k, 0, 0, 255, &kept, e);
    if (!st)
        st = u3d_tiff_write_labels(j->p_sparse, &j->sparse, e);
    if (!st && !j->a->quiet)
        printf("synthetic tubules %dx%dx%d (DxHxW, z spacing %.1f), "
               "annotated %d,%d,%d slices (z,y,x) = %.1f%% of the voxels\n",
               sp.d, sp.h, sp.w, sp.z_spacing, j->a->k[0], j->a->k[1],
               j->a->k[2], 100.0 * (double)kept / (double)n);
    fflush(stdout); /* before the training progress on stderr */
    return st;
}

static u3d_status densify(demo_job *j)
{
    u3d_densify_opts o;
    u3d_densify_defaults(&o);
    o.meta.minutes = j->a->minutes;
    o.meta.net.classes = 2;
    o.meta.seed = j->a->seed;
    o.model_out = j->p_model;
    o.image_name = j->p_img;
    o.labels_name = j->p_sparse;
    o.out_name = j->p_dense;
    o.quiet = j->a->quiet;
    o.patch_cap = 76; /* smaller patches: more iterations in the budget */
    u3d_status st = u3d_densify(j->be, &o, &j->img, &j->sparse, &j->dense,
                                &j->e);
    if (!st)
        st = u3d_tiff_write_labels(j->p_dense, &j->dense, &j->e);
    return st;
}

/* IoU on the voxels that were not annotated, and the overview. */
static u3d_status score(demo_job *j)
{
    u3d_metrics_opts mo = {255,       &j->sparse, 255,        2,
                           j->p_dense, j->p_truth, j->p_sparse};
    u3d_status st = u3d_metrics_compute(&j->dense, &j->truth, &mo, &j->met,
                                        &j->e);
    u3d_overview_opts oo = {0, 255, 0};
    if (!st)
        st = u3d_overview_write(j->p_png, &j->shown, &j->dense, &j->truth,
                                &oo, &j->e);
    if (!st)
        printf("IoU of the tubules on the %zu voxels that were not "
               "annotated: %.3f (mean over classes %.3f)\n",
               j->met.voxels, j->met.iou[1], j->met.mean_iou);
    return st;
}

static u3d_status run(demo_job *j)
{
    const char *dir = j->a->dir;
    path_in(j->p_img, sizeof j->p_img, dir, "image.tif");
    path_in(j->p_truth, sizeof j->p_truth, dir, "truth.tif");
    path_in(j->p_sparse, sizeof j->p_sparse, dir, "sparse.tif");
    path_in(j->p_dense, sizeof j->p_dense, dir, "dense.tif");
    path_in(j->p_png, sizeof j->p_png, dir, "overview.png");
    path_in(j->p_model, sizeof j->p_model, dir, "model.u3d");
    if (mkdir(dir, 0755) && errno != EEXIST)
        return u3d_seterr(&j->e, U3D_ERR_IO, "%s: cannot create the folder: "
                          "%s", dir, strerror(errno));
    u3d_status st = u3d_backend_create(&j->a->bc, &j->be, &j->e);
    if (st)
        return st;
    if (!j->a->quiet)
        printf("unet3d demo on %s\n", u3d_backend_device(j->be));
    fflush(stdout);
    if (!(st = make_data(j)) && !(st = densify(j)))
        st = score(j);
    return st;
}

int u3d_cmd_demo(int argc, char **argv)
{
    demo_args a = {{0}, "unet3d-demo", 1.5, {3, 3, 3}, 0, 1};
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    double t0 = now_s();
    demo_job *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "unet3d demo: out of host memory\n");
        return 1;
    }
    j->a = &a;
    rc = run(j) ? 1 : 0;
    if (rc)
        fprintf(stderr, "unet3d demo: %s\n", j->e.msg);
    else
        printf("wrote %s, %s and %s (%.0f s in all)\n", j->p_dense, j->p_png,
               j->p_model, now_s() - t0);
    u3d_metrics_free(&j->met);
    u3d_backend_destroy(j->be);
    u3d_volume_free(&j->img);
    u3d_volume_free(&j->shown);
    u3d_labels_free(&j->truth);
    u3d_labels_free(&j->sparse);
    u3d_labels_free(&j->dense);
    free(j);
    return rc;
}
