/* Option groups shared by several commands (options.h): the network, the
 * augmentation and the training setup, each turned into the library's
 * structures in one place. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/options.h"
#include "dist/dist.h"

const char *const u3d_cli_aug_presets[] = {"paper", "none", "default",
                                            NULL};
const char *const u3d_cli_onoff[] = {"off", "on", NULL};
const char *const u3d_cli_lr_schedules[] = {"constant", "poly", NULL};

void u3d_cli_net_defaults(u3d_cli_net *n, const char *preset)
{
    memset(n, 0, sizeof *n);
    n->preset = preset;
    n->padding = n->bn = -1;
}

u3d_status u3d_cli_net_config(const u3d_cli_net *n, u3d_net_config *c,
                              u3d_error *err)
{
    u3d_status st = u3d_net_preset(n->preset, c, err);
    if (st)
        return u3d_errprefix(err, "--preset: ");
    if (n->classes > 0)
        c->classes = n->classes;
    if (n->levels > 0)
        c->levels = n->levels;
    if (n->base_channels > 0)
        c->base_channels = n->base_channels;
    if (n->in_channels > 0)
        c->in_channels = n->in_channels;
    if (n->padding >= 0)
        c->padding = (u3d_padding)n->padding;
    if (n->bn >= 0)
        c->bn = (u3d_bn_mode)n->bn;
    U3D_TRY(u3d_net_config_check(c, err));
    /* auto from an image's spacing: its command applies it once the image
     * is read (u3d_cli_net_aniso) */
    if (u3d_cli_net_wants_spacing(n))
        return U3D_OK;
    return u3d_cli_net_aniso(n, NULL, c, err);
}

u3d_status u3d_cli_parse_spacing(const char *s, double sp[3], u3d_error *err)
{
    char *e1, *e2, *e3;
    sp[0] = strtod(s, &e1);
    sp[1] = *e1 == 'x' ? strtod(e1 + 1, &e2) : 0;
    e2 = *e1 == 'x' ? e2 : e1;
    sp[2] = *e2 == 'x' ? strtod(e2 + 1, &e3) : 0;
    e3 = *e2 == 'x' ? e3 : e2;
    if (*e3 || !(sp[0] > 0) || !(sp[1] > 0) || !(sp[2] > 0) ||
        !isfinite(sp[0]) || !isfinite(sp[1]) || !isfinite(sp[2]))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--spacing '%s': want ZxYxX, three positive "
                          "numbers (e.g. 5x1x1)",
                          s);
    return U3D_OK;
}

u3d_status u3d_cli_net_aniso(const u3d_cli_net *n, const double *spacing,
                             u3d_net_config *c, u3d_error *err)
{
    int autok = n->kernels && !strcmp(n->kernels, "auto");
    int autop = n->pools && !strcmp(n->pools, "auto");
    if (n->dims == 2 && (n->kernels || n->pools))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--dims 2 sets every level's kernels and pools "
                          "(1x3x3, 1x2x2); leave out --kernels and --pools");
    if (n->dims == 2)
        u3d_net_set_2d(c);
    double sp[3];
    int have = 0;
    if (n->spacing) { /* checked whenever given */
        U3D_TRY(u3d_cli_parse_spacing(n->spacing, sp, err));
        have = 1;
    } else if (spacing) {
        memcpy(sp, spacing, sizeof sp);
        have = 1;
    }
    if (autok || autop) {
        if (!have)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "--kernels/--pools auto plan from the voxel "
                              "spacing: give --spacing ZxYxX");
        u3d_net_config plan = *c;
        u3d_net_plan_spacing(&plan, sp);
        if (autok)
            memcpy(c->kernel, plan.kernel, sizeof c->kernel);
        if (autop)
            memcpy(c->pool, plan.pool, sizeof c->pool);
    }
    if (n->kernels && !autok)
        U3D_TRY(u3d_net_set_kernels(c, n->kernels, err));
    if (n->pools && !autop)
        U3D_TRY(u3d_net_set_pools(c, n->pools, err));
    return u3d_net_config_check(c, err);
}

/* 1 when an option needs the image's spacing (auto without --spacing). */
int u3d_cli_net_wants_spacing(const u3d_cli_net *n)
{
    return !n->spacing &&
           ((n->kernels && !strcmp(n->kernels, "auto")) ||
            (n->pools && !strcmp(n->pools, "auto")));
}

void u3d_cli_aug_defaults(u3d_cli_aug *a)
{
    memset(a, 0, sizeof *a);
    a->gray = 1;
}

int u3d_cli_aug_custom(const u3d_cli_aug *a)
{
    return a->g_sigma || a->g_grid || a->g_rotate || a->g_scale ||
           a->g_mirror || a->g_gray || a->g_prob;
}

/* "none" or letters of "zyx": the axes flipped at random. */
static u3d_status set_mirror(const char *s, int mirror[3], u3d_error *err)
{
    if (!strcmp(s, "none"))
        s = "";
    if (strspn(s, "zyx") != strlen(s))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--aug-mirror wants axes among z, y, x (e.g. zyx) "
                          "or none, got '%s'", s);
    for (int k = 0; k < 3; k++)
        mirror[k] = strchr(s, "zyx"[k]) != NULL;
    return U3D_OK;
}

u3d_status u3d_cli_aug_params(const u3d_cli_aug *a, int ignore_label,
                              u3d_augment_params *p, u3d_error *err)
{
    u3d_status st =
        u3d_augment_params_preset(u3d_cli_aug_presets[a->preset], p, err);
    if (!st && a->g_mirror)
        st = set_mirror(a->mirror, p->mirror, err);
    if (st)
        return st;
    for (int k = 0; k < 3; k++) {
        if (a->g_sigma)
            p->sigma[k] = a->sigma;
        if (a->g_grid)
            p->grid_spacing[k] = a->grid;
        if (a->g_rotate)
            p->rotate_deg[k] = a->rotate;
    }
    if (a->g_scale)
        memcpy(p->scale_iso, a->scale, sizeof p->scale_iso);
    if (a->g_prob)
        p->p_deform = p->p_rotate = p->p_scale = p->p_gray = a->prob;
    if (a->g_gray && !a->gray) {
        p->gamma[0] = p->gamma[1] = 1;
        p->contrast[0] = p->contrast[1] = 1;
        p->brightness[0] = p->brightness[1] = 0;
        p->noise_std[0] = p->noise_std[1] = 0;
    }
    p->ignore_label = ignore_label;
    return u3d_augment_params_check(p, err);
}

void u3d_cli_train_defaults(u3d_cli_train *t)
{
    u3d_model_meta m;
    u3d_model_meta_defaults(&m);
    memset(t, 0, sizeof *t);
    u3d_cli_net_defaults(&t->net, "small");
    u3d_cli_aug_defaults(&t->aug);
    t->batch = m.batch;
    t->lr = m.lr;
    t->momentum = m.momentum;
    t->optimizer = m.optimizer;
    t->sampling = m.sampling;
    t->weight_decay = m.weight_decay;
    t->lr_poly = m.lr_poly;
    t->ignore_label = m.ignore_label;
    t->norm = m.norm_mode;
    t->seed = m.seed;
    t->every = 50;
    t->class_weights = "auto";
    t->plan = 1;
}

u3d_status u3d_cli_class_weights(const char *s, int classes,
                                 u3d_class_weighting *mode, float *w,
                                 u3d_error *err)
{
    *mode = !strcmp(s, "auto")   ? U3D_WEIGHTS_BALANCED
            : !strcmp(s, "sqrt") ? U3D_WEIGHTS_SQRT
                                 : U3D_WEIGHTS_GIVEN;
    if (*mode != U3D_WEIGHTS_GIVEN)
        return U3D_OK;
    const char *p = s;
    for (int k = 0; k < classes; k++) {
        char *end;
        double v = strtod(p, &end);
        int last = k == classes - 1;
        if (end == p || !(v >= 0 && v <= 1e6) || *end != (last ? 0 : ','))
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "--class-weights wants auto, sqrt or %d "
                              "numbers in 0..1e6 separated by commas, got "
                              "'%s'", classes, s);
        w[k] = (float)v;
        p = end + 1;
    }
    return U3D_OK;
}

/* Network and normalization of a new model. */
static u3d_status meta_net(const u3d_cli_train *t, int classes_auto,
                           u3d_model_meta *m, u3d_error *err)
{
    u3d_status st = u3d_cli_net_config(&t->net, &m->net, err);
    if (st)
        return st;
    if (classes_auto && t->net.classes <= 0)
        m->net.classes = 0;
    m->norm_mode = t->norm;
    m->ignore_label = t->ignore_label;
    return U3D_OK;
}

u3d_status u3d_cli_train_meta(const u3d_cli_train *t, int classes_auto,
                              u3d_model_meta *m, u3d_error *err)
{
    u3d_model_meta_defaults(m);
    u3d_status st = meta_net(t, classes_auto, m, err);
    if (st)
        return st;
    if (t->g_patch)
        memcpy(m->patch, t->patch, sizeof m->patch);
    m->batch = t->batch;
    if (t->optimizer == U3D_OPTIM_ADAM && t->g_momentum)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--momentum is SGD's; Adam's betas are fixed at "
                          "0.9, 0.999");
    m->optimizer = t->optimizer;
    m->sampling = t->sampling;
    /* Adam's step is normalized per weight: PyTorch's default 1e-3 */
    m->lr = t->g_lr ? t->lr : t->optimizer == U3D_OPTIM_ADAM ? 1e-3f : t->lr;
    m->momentum = t->momentum;
    m->weight_decay = t->weight_decay;
    m->lr_poly = t->lr_poly;
    m->seed = t->seed;
    m->iterations = t->iterations;
    m->minutes = t->iterations ? 0 : t->minutes;
    snprintf(m->augment, sizeof m->augment, "%s",
             u3d_cli_aug_presets[t->aug.preset]);
    if (!u3d_cli_aug_custom(&t->aug))
        return U3D_OK;
    m->aug_custom = 1;
    return u3d_cli_aug_params(&t->aug, t->ignore_label, &m->aug, err);
}

u3d_status u3d_cli_densify_setup(const u3d_cli_train *t, u3d_densify_opts *o,
                                 u3d_error *err)
{
    u3d_densify_defaults(o);
    U3D_TRY(u3d_cli_train_meta(t, 1, &o->meta, err));
    if (u3d_cli_net_wants_spacing(&t->net)) /* densify: give --spacing */
        U3D_TRY(u3d_cli_net_aniso(&t->net, NULL, &o->meta.net, err));
    U3D_TRY(u3d_cli_class_weights(t->class_weights, o->meta.net.classes,
                                  &o->weights, o->meta.class_weights, err));
    /* the classes come from the labels unless given */
    if (o->weights == U3D_WEIGHTS_GIVEN && !t->net.classes)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--class-weights with numbers needs --classes");
    o->log_path = t->log;
    o->checkpoint_every = t->every;
    o->quiet = t->quiet;
    return U3D_OK;
}

int u3d_cli_one_annotation(const u3d_cmd_spec *c, const char *labels,
                           const char *slices)
{
    if (!labels == !slices)
        return u3d_opts_fail(c, "give either --labels or "
                                "--annotation-slices");
    return -1;
}

u3d_status u3d_cli_read_annotation(const u3d_volume *img, const char *img_name,
                                   const char *labels, const char *slices,
                                   int quiet, u3d_labels *out,
                                   u3d_error *err)
{
    if (labels) {
        U3D_TRY(u3d_vio_read_labels(labels, out, NULL, err));
        return u3d_check_image_labels(img, img_name, out, labels, err);
    }
    int ns;
    size_t conflicts;
    U3D_TRY(u3d_labels_from_png_slices(slices, img->d, img->h, img->w, &ns,
                                       &conflicts, out, err));
    if (!quiet)
        fprintf(stderr, "read %d annotation slices from %s%s\n", ns, slices,
                conflicts ? " (crossing slices disagree on some voxels: the "
                            "later file wins)"
                          : "");
    return U3D_OK;
}

u3d_status u3d_cli_suggest(const u3d_volume *probs, const u3d_labels *sparse,
                           int count, int ignore_label, u3d_slice_score **out,
                           int *n, u3d_error *err)
{
    *n = 0;
    *out = calloc((size_t)count, sizeof **out);
    if (!*out)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_suggest_opts so;
    u3d_suggest_opts_default(&so);
    so.count = count;
    so.ignore_label = ignore_label;
    return u3d_suggest_slices(probs, sparse, &so, *out, n, err);
}

void u3d_cli_suggest_print(FILE *f, const u3d_slice_score *s, int n)
{
    for (int i = 0; i < n; i++)
        fprintf(f, "%c%04d  %.4f\n", s[i].axis, s[i].index, s[i].score);
}

/* 1 when the user chose the network's kernels or pools. */
static int net_given(const u3d_cli_net *n)
{
    return n->kernels || n->pools || n->dims == 2;
}

/* The plan's input: the volumes, m's network, the user's choices in t. */
static void plan_input(const u3d_cli_train *t, const u3d_model_meta *m,
                       const u3d_volume *imgs, const u3d_labels *labs,
                       const char *const *lab_names, int n,
                       const double *spacing, u3d_plan_input *in)
{
    memset(in, 0, sizeof *in);
    in->images = imgs;
    in->labels = labs;
    in->label_names = lab_names;
    in->n = n;
    in->net = m->net;
    in->keep_net = net_given(&t->net);
    in->keep_padding = t->net.padding >= 0;
    in->ignore_label = m->ignore_label;
    in->spacing = spacing;
}

static const char *weights_name(u3d_class_weighting w)
{
    return w == U3D_WEIGHTS_SQRT ? "sqrt" : "auto";
}

void u3d_cli_plan_apply(const u3d_cli_train *t, const u3d_plan *p,
                        int densify, u3d_model_meta *m,
                        u3d_class_weighting *w)
{
    if (!net_given(&t->net)) {
        memcpy(m->net.kernel, p->net.kernel, sizeof m->net.kernel);
        memcpy(m->net.pool, p->net.pool, sizeof m->net.pool);
    }
    m->net.padding =
        (u3d_padding)(densify ? p->padding_densify : p->padding_train);
    if (!t->g_patch)
        memcpy(m->patch, densify ? p->patch_densify : p->patch_train,
               sizeof m->patch);
    /* any augmentation option but --aug-prob alone: the user's preset
     * and changes, no plan; --aug-prob alone sets the plan's chances */
    const u3d_cli_aug *ua = &t->aug;
    int only_prob = ua->g_prob && !ua->g_sigma && !ua->g_grid &&
                    !ua->g_rotate && !ua->g_scale && !ua->g_mirror &&
                    !ua->g_gray;
    int aug = !ua->g_preset && (!u3d_cli_aug_custom(ua) || only_prob);
    /* --aug-prob alone asks for the transforms: then densify mirrors too */
    int aug_none = aug && densify && p->aug_densify_none && !only_prob;
    if (aug_none) {
        snprintf(m->augment, sizeof m->augment, "none");
        m->aug_custom = 0;
    } else if (aug) {
        snprintf(m->augment, sizeof m->augment, "default");
        /* the model records what is used */
        m->aug_custom = p->aug_changed || only_prob;
        if (m->aug_custom)
            m->aug = p->aug;
        if (only_prob)
            m->aug.p_deform = m->aug.p_rotate = m->aug.p_scale =
                m->aug.p_gray = ua->prob;
    }
    if (!t->g_weights)
        *w = p->weights;
    /* --momentum is SGD's: given, the user wants SGD */
    int optim = !t->g_optim && !t->g_momentum;
    if (optim) {
        m->optimizer = p->optimizer;
        if (!t->g_lr)
            m->lr = p->lr;
    }
    if (t->quiet || u3d_dist_rank() != 0) /* under mpirun: said once */
        return;
    char net[160], augs[160];
    fprintf(stderr,
            "plan: patch %dx%dx%d%s, %s padding, network %s%s, augment "
            "%s%s, class weights %s%s, %s%s, lr %g%s (--plan off: preset "
            "defaults; 'unet3d plan' explains)\n",
            m->patch[0], m->patch[1], m->patch[2], t->g_patch ? " (given)" : "",
            m->net.padding == U3D_PAD_SAME ? "same" : "valid",
            u3d_net_aniso_str(&m->net, net, sizeof net),
            net_given(&t->net) ? " (given)" : "",
            aug_none ? "none (2 classes)"
            : aug    ? u3d_plan_aug_str(p, augs, sizeof augs)
                     : m->augment,
            aug ? "" : " (given)",
            t->g_weights ? t->class_weights : weights_name(*w),
            t->g_weights ? " (given)" : "",
            u3d_name_of(u3d_optimizer_names, m->optimizer),
            optim ? "" : " (given)", (double)m->lr,
            t->g_lr ? " (given)" : "");
}

u3d_status u3d_cli_plan_run(const u3d_cli_train *t, const u3d_volume *imgs,
                            const u3d_labels *labs,
                            const char *const *lab_names, int n, int densify,
                            u3d_model_meta *m, u3d_class_weighting *w,
                            u3d_error *err)
{
    double sp[3];
    if (t->net.spacing)
        U3D_TRY(u3d_cli_parse_spacing(t->net.spacing, sp, err));
    u3d_plan_input in;
    plan_input(t, m, imgs, labs, lab_names, n, t->net.spacing ? sp : NULL,
               &in);
    u3d_plan p;
    U3D_TRY(u3d_plan_make(&in, &p, err));
    u3d_cli_plan_apply(t, &p, densify, m, w);
    return U3D_OK;
}
