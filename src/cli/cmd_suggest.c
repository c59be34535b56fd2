/* unet3d suggest: which unannotated slices to annotate next, ranked by
 * how unsure the model is there (u3d_suggest_slices, suggest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/options.h"

typedef struct sg_args {
    u3d_backend_config bc;
    const char *model, *img, *lab, *slices, *overview;
    int count, ignore;
    double max_mb;
} sg_args;

static int parse(int argc, char **argv, sg_args *a)
{
    const u3d_opt opts[] = {
        {"--model", U3D_OPT_STRING, &a->model, 0, 0, "M.u3d",
         .help = "the model trained on the annotation so far",
         .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--image", U3D_OPT_STRING, &a->img, 0, 0, "IMG.tif",
         .help = "the volume", .flags = U3D_OPT_REQUIRED | U3D_OPT_IN},
        {"--labels", U3D_OPT_STRING, &a->lab, 0, 0, "SPARSE.tif",
         .help = "its sparse labels, or", .flags = U3D_OPT_IN},
        {"--annotation-slices", U3D_OPT_STRING, &a->slices, 0, 0, "DIR",
         .help = "a folder of annotated PNG slices", .flags = U3D_OPT_IN},
        {"--count", U3D_OPT_INT, &a->count, 1, 10000, "K",
         .help = "slices to suggest (default 8)"},
        {"--ignore-label", U3D_OPT_INT, &a->ignore, 0, 65535, "L",
         .help = "unannotated voxels' label (default 255)"},
        {"--overview", U3D_OPT_STRING, &a->overview, 0, 0, "OUT.png",
         .help = "middle slices with the annotation, the\n"
                 "suggested slices marked (dashed yellow)",
         .flags = U3D_OPT_OUT},
        {"--max-memory", U3D_OPT_DOUBLE, &a->max_mb, 0, 1e9, "MB",
         .help = "device budget of the prediction (default: the\n"
                 "device's)"},
        U3D_OPTS_DEVICE(&a->bc),
        {0}};
    const u3d_cmd_spec spec = {
        "suggest",
        "--model M.u3d --image IMG.tif (--labels SPARSE.tif |\n"
        "                      --annotation-slices DIR) [--count K]",
        "Prints the slices to annotate next, best first, as the names\n"
        "densify's --annotation-slices reads (z0042 = z0042.png), with\n"
        "their scores: the model's mean normalized entropy over the\n"
        "slice's unannotated voxels, weighted towards foreground, lower\n"
        "next to annotated or already suggested slices.\n"
        "suggest --simulate TRUTH.tif --help: the annotation loop simulated.\n",
        opts};
    int rc = u3d_opts_parse(&spec, argc, argv);
    if (rc >= 0)
        return rc;
    return u3d_cli_one_annotation(&spec, a->lab, a->slices);
}

typedef struct sg_job {
    u3d_backend *be;
    u3d_net *net;
    u3d_model_meta meta;
    u3d_volume img, probs;
    u3d_labels sparse;
    u3d_slice_score *s;
    int n;
    u3d_error e;
} sg_job;

/* Any volume format, as densify reads them. */
static u3d_status read_inputs(const sg_args *a, sg_job *j)
{
    U3D_TRY(u3d_vio_read_volume(a->img, &j->img, NULL, &j->e));
    return u3d_cli_read_annotation(&j->img, a->img, a->lab, a->slices, 1,
                                   &j->sparse, &j->e);
}

static u3d_status run(const sg_args *a, sg_job *j)
{
    U3D_TRY(u3d_backend_create(&a->bc, &j->be, &j->e));
    U3D_TRY(u3d_model_load_inference(a->model, j->be, &j->net, &j->meta,
                                     &j->e));
    U3D_TRY(u3d_net_fold_batchnorm(j->net, &j->e));
    U3D_TRY(read_inputs(a, j));
    if (j->img.c != j->meta.net.in_channels)
        return u3d_seterr(&j->e, U3D_ERR_SHAPE,
                          "%s has %d channels but the model %s expects %d",
                          a->img, j->img.c, a->model,
                          j->meta.net.in_channels);
    U3D_TRY(u3d_model_normalize_input(&j->img, &j->meta, &j->e));
    u3d_predict_opts po = {0};
    po.max_memory = (size_t)(a->max_mb * 1048576.0);
    U3D_TRY(u3d_predict(j->net, &j->img, &po, NULL, &j->probs, NULL, &j->e));
    U3D_TRY(u3d_cli_suggest(&j->probs, &j->sparse, a->count, a->ignore,
                            &j->s, &j->n, &j->e));
    if (!a->overview)
        return U3D_OK;
    u3d_overview_opts oo = {0, a->ignore, 0};
    return u3d_overview_write_marked(a->overview, &j->img, &j->sparse, NULL,
                                     &oo, j->s, j->n, &j->e);
}

/* --simulate has options of its own (cmd_simulate.c). */
static int wants_simulate(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--simulate") ||
            !strncmp(argv[i], "--simulate=", 11))
            return 1;
    return 0;
}

int u3d_cmd_suggest(int argc, char **argv)
{
    if (wants_simulate(argc, argv))
        return u3d_cmd_suggest_simulate(argc, argv);
    sg_args a = {.count = 8, .ignore = 255};
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    sg_job j;
    memset(&j, 0, sizeof j);
    u3d_status st = run(&a, &j);
    if (st)
        fprintf(stderr, "unet3d suggest: %s\n", j.e.msg);
    else
        u3d_cli_suggest_print(stdout, j.s, j.n);
    free(j.s);
    u3d_volume_free(&j.img);
    u3d_volume_free(&j.probs);
    u3d_labels_free(&j.sparse);
    u3d_net_destroy(j.net);
    u3d_backend_destroy(j.be);
    return st ? 1 : 0;
}
