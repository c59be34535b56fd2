/* unet3d predict: segment a whole volume with a trained model by
 * overlap-tile inference. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/options.h"
#include "dist/dist.h"
#include "unet3d/predict.h"

typedef struct progress {
    struct timespec t0;
    int tty, last, quiet;
} progress;

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (t.tv_nsec - t0->tv_nsec);
}

/* Tile counter with an ETA: rewritten in place on a terminal, else a line
 * per 10% (or per tile for few tiles). */
static void on_tile(void *user, int done, int total)
{
    progress *p = user;
    if (p->quiet)
        return;
    int pct = (int)(100LL * done / total);
    if (!p->tty && total > 10 && pct / 10 == p->last / 10 && done < total)
        return;
    p->last = pct;
    double el = since(&p->t0), eta = el / done * (total - done);
    fprintf(stderr, "%stile %d/%d (%d%%), %.0f s elapsed, ETA %.0f s%s",
            p->tty ? "\r" : "", done, total, pct, el, eta,
            p->tty && done < total ? "   " : "\n");
    fflush(stderr);
}

/* Fails early (before hours of inference) when an output cannot be
 * created: its folder must exist and be writable. */
static int check_writable(const char *path, u3d_error *e)
{
    if (!path)
        return 0;
    char dir[4096], ds[1024];
    u3d_format f; /* the file of "a.h5:/dataset" */
    if (u3d_vio_parse(path, 1, &f, dir, sizeof dir, ds, sizeof ds, e))
        return 1;
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/';)
        dir[--n] = 0; /* "out.zarr/" */
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    if (access(dir, W_OK) == 0)
        return 0;
    u3d_seterr(e, U3D_ERR_IO, "cannot write %s: folder %s: %s", path, dir,
               strerror(errno));
    return 1;
}

typedef struct pargs {
    u3d_backend_config bc;
    const char *model, *image, *out, *probs, *overview;
    double max_mb;
    int tile[3], batchstats, logits, quiet, tta;
} pargs;

/* Returns -1 when parsed, else the exit code. */
static const char *const tta_names[] = {"none", "mirror", NULL};

static int parse(int argc, char **argv, pargs *a)
{
    const u3d_opt opts[] = {
        {"--model", U3D_OPT_STRING, &a->model, 0, 0, "M.u3d",
         .help = "a model written by unet3d train", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--image", U3D_OPT_STRING, &a->image, 0, 0, "IMG.tif",
         .help = "the volume to segment", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--out", U3D_OPT_STRING, &a->out, 0, 0, "SEG.tif",
         .help = "the labels to write", .flags = U3D_OPT_REQUIRED | U3D_OPT_OUT},
        {"--probabilities", U3D_OPT_STRING, &a->probs, 0, 0, "P.tif",
         .help = "float32 probabilities, one channel per class",
         .flags = U3D_OPT_OUT},
        {"--logits", U3D_OPT_FLAG, &a->logits, 0, 0, NULL,
         .help = "write logits instead of probabilities"},
        {"--max-memory", U3D_OPT_DOUBLE, &a->max_mb, 0, 1e9, "MB",
         .help = "device-memory budget in MiB (default: 80% of\n"
                 "the device's global memory)",
         .flags = U3D_OPT_GT},
        {"--tile", U3D_OPT_SIZE3, a->tile, 1, U3D_OPT_MAX_SIZE, "DxHxW",
         .help = "network input tile (default: the cheapest\n"
                 "tiling that fits the budget)"},
        {"--batchstats", U3D_OPT_FLAG, &a->batchstats, 0, 0, NULL,
         .help = "batch norm with each tile's statistics (the\n"
                 "paper) instead of the running statistics"},
        {"--tta", U3D_OPT_CHOICE, &a->tta, 0, 0, NULL,
         .help = "test-time augmentation: mirror averages the\n"
                 "logits of the 8 mirror images (8x the time)",
         .choices = tta_names},
        {"--overview", U3D_OPT_STRING, &a->overview, 0, 0, "OUT.png",
         .help = "orthogonal middle slices with the result",
         .flags = U3D_OPT_OUT},
        {"--quiet", U3D_OPT_FLAG, &a->quiet, 0, 0, NULL,
         .help = "no progress"},
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {
        "predict", "--model M.u3d --image IMG.tif --out SEG.tif [options]",
        "The labels (and probabilities) get the image's voxel spacing.\n",
        opts};
    return u3d_opts_parse(&spec, argc, argv);
}

static void print_plan(const u3d_tile_plan *p, const u3d_backend *be)
{
    const u3d_tile_axis *x = p->ax;
    fprintf(stderr,
            "device: %s\ntiles: %dx%dx%d = %d of %dx%dx%d voxels (D x H x W), "
            "keeping up to %dx%dx%d each; ~%.0f MiB device memory "
            "(budget %.0f MiB), %.0f%% of the computed voxels kept\n",
            u3d_backend_device(be), x[0].ntiles, x[1].ntiles, x[2].ntiles, p->total,
            x[0].in, x[1].in, x[2].in, x[0].step, x[1].step, x[2].step,
            (double)p->memory / 1048576.0, (double)p->budget / 1048576.0,
            100.0 * p->efficiency);
}

/* The image is read plane by plane (three passes: two for its
 * normalization statistics, one for the prediction, in windows of rows)
 * and the results are written plane by plane, so host memory holds a band
 * of planes, not the volume; --overview alone reads image and result back
 * whole. */
typedef struct job {
    pargs a;
    u3d_backend *be;
    u3d_net *net;
    u3d_model_meta meta;
    u3d_vsource *in;
    u3d_volume shape; /* of the image, no data */
    u3d_norm_params norm;
    u3d_vsink *seg, *probs;
    u3d_error e;
} job;

static u3d_status read_raw(void *user, int z, float *dst, u3d_error *err)
{
    return u3d_vsource_read(((job *)user)->in, z, dst, err);
}

/* Rows of plane z normalized the way the model was trained (as
 * u3d_norm_apply). */
static u3d_status read_norm(void *user, int z, int y0, int ny, float *dst,
                            u3d_error *err)
{
    job *j = user;
    u3d_status st = u3d_vsource_read_rows(j->in, z, y0, ny, dst, err);
    if (st || j->norm.mode == U3D_NORM_NONE)
        return st;
    size_t hw = (size_t)ny * j->shape.w;
    for (int c = 0; c < j->shape.c; c++) {
        float a = j->norm.a[c], b = j->norm.b[c], *x = dst + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++)
            x[i] = (x[i] - a) / b;
    }
    return U3D_OK;
}

static u3d_status write_planes(void *user, int z, const uint8_t *labels,
                               const float *probs, u3d_error *err)
{
    job *j = user;
    (void)z; /* planes arrive in order */
    u3d_status st = u3d_vsink_plane_u8(j->seg, labels, err);
    if (!st && probs)
        st = u3d_vsink_plane_f32(j->probs, probs, err);
    return st;
}

/* Model and image header, checked against each other; the image's
 * normalization statistics. */
static u3d_status load(job *j)
{
    u3d_error *e = &j->e;
    u3d_status st = u3d_model_load_inference(j->a.model, j->be, &j->net,
                                              &j->meta, e);
    /* running statistics: batch norm folded into the convolutions */
    if (!st && !j->a.batchstats)
        st = u3d_net_fold_batchnorm(j->net, e);
    if (st)
        return st;
    st = u3d_vsource_open(j->a.image, 0, &j->in, &j->shape, e);
    if (st)
        return st;
    const u3d_net_config *c = &j->meta.net;
    if (j->shape.c != c->in_channels)
        return u3d_seterr(e, U3D_ERR_SHAPE,
                          "%s has %d channel%s but the model %s expects %d",
                          j->a.image, j->shape.c, j->shape.c == 1 ? "" : "s",
                          j->a.model, c->in_channels);
    return U3D_OK;
}

/* The image's normalization statistics; under mpirun rank 0 reads the
 * image for them and the ranks receive them (each then reads only the
 * planes of its rows of tiles). */
static u3d_status norm_stats(job *j)
{
    u3d_error *e = &j->e;
    const u3d_volume *v = &j->shape;
    u3d_status st = U3D_OK;
    if (u3d_dist_rank() == 0) {
        st = u3d_norm_compute_planes(v->c, v->d, v->h, v->w, read_raw, j,
                                     (u3d_norm_mode)j->meta.norm_mode,
                                     j->meta.norm_plo, j->meta.norm_phi,
                                     &j->norm, e);
        if (st)
            u3d_errprefix(e, "%s: ", j->a.image);
    }
    if (u3d_dist_active() && !(st = u3d_dist_agree(st, e)))
        st = u3d_dist_bcast(&j->norm, sizeof j->norm, 0, e);
    return st;
}

static u3d_status open_outputs(job *j)
{
    const u3d_volume *v = &j->shape;
    int k = j->meta.net.classes;
    const u3d_vgeom *g = u3d_vsource_geom(j->in);
    u3d_status st = u3d_vsink_open(
        j->a.out, 1, v->d, v->h, v->w, k <= 256 ? 8 : 16, v->spacing, v->unit,
        0, k - 1, g, &j->seg, &j->e);
    if (!st && j->a.probs)
        st = u3d_vsink_open(j->a.probs, k, v->d, v->h, v->w, 32, v->spacing,
                            v->unit, 0, 1, g, &j->probs, &j->e);
    return st;
}

static u3d_status predict(job *j)
{
    u3d_error *e = &j->e;
    u3d_predict_opts o;
    memset(&o, 0, sizeof o);
    o.batchstats = j->a.batchstats;
    o.tta = j->a.tta;
    o.raw_logits = j->a.logits;
    /* the decision densify calibrated on held-out slices, if any */
    o.class_bias = u3d_model_has_bias(&j->meta) ? j->meta.class_bias : NULL;
    memcpy(o.tile, j->a.tile, sizeof o.tile);
    size_t budget, max_alloc;
    u3d_predict_device_memory(j->be, &budget, &max_alloc);
    if (j->a.max_mb > 0)
        budget = (size_t)(j->a.max_mb * 1048576.0);
    o.max_memory = budget;
    /* plan first: size and budget errors come before any work */
    u3d_tile_plan plan;
    int vol[3] = {j->shape.d, j->shape.h, j->shape.w};
    u3d_status st = u3d_predict_plan_backend(j->be, &j->meta.net, vol,
                                             o.tile, budget, &plan, e);
    if (st)
        return u3d_errprefix(e, "%s: ", j->a.image);
    int lead = u3d_dist_rank() == 0; /* the writer */
    if (!j->a.quiet && lead)
        print_plan(&plan, j->be);
    if (lead)
        st = open_outputs(j);
    if (u3d_dist_active())
        st = u3d_dist_agree(st, e);
    if (st)
        return st;
    progress pr = {{0, 0}, isatty(2), -1, j->a.quiet || !lead};
    clock_gettime(CLOCK_MONOTONIC, &pr.t0);
    o.progress = on_tile;
    o.progress_user = &pr;
    u3d_plane_source src = {j->shape.c, j->shape.d, j->shape.h, j->shape.w,
                            read_norm, j};
    u3d_plane_sink sink = {write_planes, j, 1, j->a.probs != NULL};
    st = u3d_predict_planes(j->net, &src, &o, &sink, NULL, e);
    if (!st && !j->a.quiet && lead) {
        size_t peak; /* measured, tensors and scratch: the budget holds */
        u3d_backend_memory(j->be, NULL, &peak);
        fprintf(stderr, "device memory: peak %.1f MiB (plan %.1f MiB, "
                        "budget %.0f MiB)\n",
                (double)peak / 1048576.0, (double)plan.memory / 1048576.0,
                (double)plan.budget / 1048576.0);
    }
    if (!st && lead) {
        u3d_vsink *w = j->seg;
        j->seg = NULL;
        st = u3d_vsink_finish(w, e);
    }
    if (!st && j->probs) {
        u3d_vsink *w = j->probs;
        j->probs = NULL;
        st = u3d_vsink_finish(w, e);
    }
    if (u3d_dist_active()) /* the outputs are complete, or why not */
        st = u3d_dist_agree(st, e);
    return st;
}

/* The overview needs whole slices through the volume: image and result
 * are read back (the only step that holds them in memory). */
static u3d_status overview(job *j)
{
    u3d_volume img = {0};
    u3d_labels seg = {0};
    u3d_error *e = &j->e;
    u3d_status st = u3d_vio_read_volume(j->a.image, &img, NULL, e);
    if (!st)
        st = u3d_vio_read_labels(j->a.out, &seg, NULL, e);
    if (!st) {
        u3d_overview_opts oo = {0.45f, U3D_NO_IGNORE, 0};
        st = u3d_overview_write(j->a.overview, &img, &seg, NULL, &oo, e);
    }
    u3d_volume_free(&img);
    u3d_labels_free(&seg);
    return st;
}

int u3d_cmd_predict(int argc, char **argv)
{
    job j;
    memset(&j, 0, sizeof j);
    int rc = parse(argc, argv, &j.a);
    if (rc >= 0)
        return rc;
    rc = 1;
    if (check_writable(j.a.out, &j.e) || check_writable(j.a.probs, &j.e) ||
        check_writable(j.a.overview, &j.e))
        goto done;
    u3d_status st = u3d_backend_create(&j.a.bc, &j.be, &j.e);
    if (!st)
        st = load(&j);
    if (u3d_dist_active()) /* a rank without its device or file stops all */
        st = u3d_dist_agree(st, &j.e);
    if (st || norm_stats(&j) || predict(&j))
        goto done;
    if (u3d_dist_rank() != 0) {
        rc = 0; /* rank 0 writes */
        goto done;
    }
    if (j.a.overview && overview(&j)) {
        /* a failed command leaves none of its outputs */
        u3d_vio_remove(j.a.out);
        if (j.a.probs)
            u3d_vio_remove(j.a.probs);
        goto done;
    }
    if (!j.a.quiet)
        fprintf(stderr, "wrote %s%s%s%s%s\n", j.a.out,
                j.a.probs ? ", " : "", j.a.probs ? j.a.probs : "",
                j.a.overview ? ", " : "", j.a.overview ? j.a.overview : "");
    rc = 0;
done:
    if (rc)
        u3d_dist_report("predict", &j.e);
    u3d_vsink_abort(j.seg); /* no partial output on failure */
    u3d_vsink_abort(j.probs);
    u3d_vsource_close(j.in);
    u3d_net_destroy(j.net);
    u3d_backend_destroy(j.be);
    return rc;
}
