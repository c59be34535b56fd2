/* A plan from the data (plan.h): each setting train and densify default
 * to, chosen from the volumes with its reason. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "unet3d/plan.h"
#include "unet3d/train.h"

static const char *lab_name(const u3d_plan_input *in, int i)
{
    return in->label_names && in->label_names[i] ? in->label_names[i]
                                                 : "the labels";
}

static double smin3(const double s[3])
{
    double m = s[0] < s[1] ? s[0] : s[1];
    return m < s[2] ? m : s[2];
}

static double aniso(const double s[3])
{
    double mx = s[0] > s[1] ? s[0] : s[1];
    mx = mx > s[2] ? mx : s[2];
    return mx / smin3(s);
}

int u3d_plan_augment_aniso(const double spacing[3], u3d_augment_params *p)
{
    if (!(aniso(spacing) >= U3D_PLAN_ANISO_AUG))
        return 0;
    double s0 = smin3(spacing);
    /* in-plane only: about y or x a rotation tilts the coarse z axis */
    p->rotate_deg[1] = p->rotate_deg[2] = 0;
    for (int a = 0; a < 3; a++) {
        double f = s0 / spacing[a]; /* the same physical size per axis */
        int g = (int)lround(p->grid_spacing[a] * f);
        p->sigma[a] = (float)(p->sigma[a] * f);
        p->grid_spacing[a] = g > U3D_PLAN_MIN_GRID ? g : U3D_PLAN_MIN_GRID;
    }
    return 1;
}

const char *u3d_plan_aug_str(const u3d_plan *p, char *buf, size_t len)
{
    if (!p->aug_changed)
        snprintf(buf, len, "default");
    else
        snprintf(buf, len, "default (in-plane rotation, sigma %.2g,%.2g,%.2g "
                           "voxels, grid %d,%d,%d)",
                 (double)p->aug.sigma[0], (double)p->aug.sigma[1],
                 (double)p->aug.sigma[2], p->aug.grid_spacing[0],
                 p->aug.grid_spacing[1], p->aug.grid_spacing[2]);
    return buf;
}

static void plan_spacing(const u3d_plan_input *in, u3d_plan *p)
{
    const u3d_volume *v = &in->images[0];
    memcpy(p->spacing, in->spacing ? in->spacing : v->spacing,
           sizeof p->spacing);
    snprintf(p->unit, sizeof p->unit, "%s", v->unit);
    int bad = 0; /* a broken header: no rule can use it */
    for (int a = 0; a < 3; a++)
        bad |= !(p->spacing[a] > 0) || !isfinite(p->spacing[a]);
    if (bad)
        p->spacing[0] = p->spacing[1] = p->spacing[2] = 1;
    p->aniso = aniso(p->spacing);
    int differ = 0;
    for (int i = 1; i < in->n; i++)
        differ |= memcmp(in->images[i].spacing, v->spacing,
                         sizeof v->spacing) != 0;
    const char *from =
        bad ? "the file's spacing is not positive: taken as isotropic; "
              "give --spacing ZxYxX"
        : in->spacing ? "from --spacing"
        : (v->spacing[0] == 1 && v->spacing[1] == 1 && v->spacing[2] == 1 &&
           !v->unit[0])
            ? "the file gives none (or 1x1x1 voxels): taken as isotropic; "
              "give --spacing ZxYxX if it is not"
        : differ ? "from the first image (the others' differ)"
                 : "from the image file";
    snprintf(p->spacing_why, sizeof p->spacing_why,
             "anisotropy r = %.2f (largest / smallest spacing); %s", p->aniso,
             from);
}

static u3d_status plan_net(const u3d_plan_input *in, u3d_plan *p,
                           u3d_error *err)
{
    if (in->keep_net)
        snprintf(p->net_why, sizeof p->net_why,
                 "as given (--kernels/--pools/--dims)");
    else if (p->aniso < U3D_PLAN_ANISO_NET)
        snprintf(p->net_why, sizeof p->net_why,
                 "r = %.2f < %g (nnU-Net's anisotropy threshold): the "
                 "preset's isotropic kernels and pools",
                 p->aniso, U3D_PLAN_ANISO_NET);
    else {
        u3d_net_plan_spacing(&p->net, p->spacing);
        snprintf(p->net_why, sizeof p->net_why,
                 "r = %.2f >= %g (nnU-Net's anisotropy threshold): 1x3x3 "
                 "kernels and 1x2x2 pools while z is over twice in-plane "
                 "(nnU-Net's rule)",
                 p->aniso, U3D_PLAN_ANISO_NET);
    }
    return u3d_net_config_check(&p->net, err);
}

/* Classes 0: the largest annotated label + 1 (at least 2), as densify. */
static u3d_status plan_classes(const u3d_plan_input *in, u3d_plan *p,
                               u3d_error *err)
{
    if (p->net.classes > 0)
        return U3D_OK;
    int maxl = 1, at = 0;
    for (int i = 0; i < in->n; i++) {
        const u3d_labels *l = &in->labels[i];
        size_t n = (size_t)l->d * l->h * l->w;
        for (size_t k = 0; k < n; k++)
            if (l->data[k] != in->ignore_label && l->data[k] > maxl)
                maxl = l->data[k], at = i;
    }
    if (maxl + 1 > U3D_MAX_CLASSES)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "%s: label value %d: at most %d classes are "
                          "supported (is the ignore label %d right?)",
                          lab_name(in, at), maxl, U3D_MAX_CLASSES,
                          in->ignore_label);
    p->net.classes = maxl + 1;
    return U3D_OK;
}

static u3d_status plan_patch(const u3d_plan_input *in, u3d_plan *p,
                             u3d_error *err)
{
    int cap = in->patch_cap > 0 ? in->patch_cap : 96;
    const u3d_volume *v = &in->images[0];
    int vol[3] = {v->d, v->h, v->w};
    for (int i = 1; i < in->n; i++) { /* train: the smallest volume's */
        const u3d_volume *w = &in->images[i];
        vol[0] = w->d < vol[0] ? w->d : vol[0];
        vol[1] = w->h < vol[1] ? w->h : vol[1];
        vol[2] = w->w < vol[2] ? w->w : vol[2];
    }
    U3D_TRY(u3d_train_default_patch(&p->net, cap, p->patch_train, err));
    if (in->keep_padding) {
        p->padding_densify = p->padding_train = p->net.padding;
        U3D_TRY(u3d_densify_patch(&p->net, vol, cap, p->patch_densify, err));
        snprintf(p->patch_why, sizeof p->patch_why,
                 "train: the largest valid size <= %d per axis; densify "
                 "(padding given): also <= the volume %dx%dx%d + 2 x the "
                 "context %d,%d,%d",
                 cap, v->d, v->h, v->w, u3d_net_context_axis(&p->net, 0),
                 u3d_net_context_axis(&p->net, 1),
                 u3d_net_context_axis(&p->net, 2));
        return U3D_OK;
    }
    /* densify: same padding, densify's rule with the cap 48 (8 slices
     * along an axis the net never looks across), then no side beyond the
     * volume's where a size the net takes fits in it */
    u3d_net_config same = p->net;
    same.padding = U3D_PAD_SAME;
    p->padding_densify = U3D_PAD_SAME;
    U3D_TRY(u3d_densify_patch(&same, vol, U3D_PLAN_DENSIFY_PATCH,
                              p->patch_densify, err));
    for (int a = 0; a < 3; a++) {
        int below, above;
        if (p->patch_densify[a] > vol[a] &&
            !u3d_net_valid_size_axis(&same, a, vol[a], &below, &above) &&
            below > 0)
            p->patch_densify[a] = below;
        else if (p->patch_densify[a] > vol[a] &&
                 u3d_net_valid_size_axis(&same, a, vol[a], &below, &above))
            p->patch_densify[a] = vol[a];
    }
    int out[3];
    U3D_TRY(u3d_net_output_size(&same, p->patch_densify, out, err));
    /* train the same way: measured on the development set's fully
     * automatic protocol (README) */
    p->padding_train = U3D_PAD_SAME;
    memcpy(p->patch_train, p->patch_densify, sizeof p->patch_train);
    snprintf(p->patch_why, sizeof p->patch_why,
             "same padding, <= %d and the %svolume %dx%dx%d (3x the "
             "iterations of valid 72x96x96 patches per minute; more IoU on "
             "thin structures)",
             U3D_PLAN_DENSIFY_PATCH, in->n > 1 ? "smallest " : "", vol[0],
             vol[1], vol[2]);
    return U3D_OK;
}

/* densify predicts the volume it trains on, so augmentation buys it no
 * invariance the voxels it segments need. Measured (3 min, same binary,
 * one seed, semi-automatic): mirroring cost the nuclei's boundaries 0.079
 * and the nuclei 0.053 IoU, tied on membranes and tubules (15 min,
 * boundaries: 0.545 against 0.595), but gained 0.088 on BraTS's 4 rare
 * tumour classes; so densify mirrors for 3 or more classes only. */
static void plan_augment(const u3d_plan_input *in, u3d_plan *p)
{
    u3d_augment_params_default(&p->aug);
    p->aug.ignore_label = in->ignore_label;
    p->aug_changed = u3d_plan_augment_aniso(p->spacing, &p->aug);
    p->aug_densify_none = p->net.classes <= 2;
    if (!p->aug_changed)
        snprintf(p->aug_why, sizeof p->aug_why,
                 "'default': every axis mirrored at random; deformation, "
                 "rotation, scaling, gray changes at probability %g "
                 "(--aug-prob): each cost IoU on thin walls at minutes' "
                 "budgets (README)%s",
                 (double)p->aug.p_deform,
                 p->aug_densify_none
                     ? "; densify none: 2 classes (on its own volume "
                       "mirroring cost boundaries 0.08, nuclei 0.05 IoU)"
                     : "");
    else
        snprintf(p->aug_why, sizeof p->aug_why,
                 "'default' (mirroring; other transforms at --aug-prob, "
                 "default 0); r = %.2f >= %g: rotation about z only (about y "
                 "or x it would mix the coarse axis into the plane), "
                 "deformation in physical units%s",
                 p->aniso, U3D_PLAN_ANISO_AUG,
                 p->aug_densify_none ? "; densify none: 2 classes (README)"
                                     : "");
}

static u3d_status plan_intensity(const u3d_plan_input *in, u3d_plan *p,
                                 u3d_error *err)
{
    p->norm_mode = U3D_NORM_PERCENTILE;
    snprintf(p->norm_why, sizeof p->norm_why,
             "percentile %g..%g -> 0..1 per volume and channel: robust to "
             "hot pixels and to the file's value range",
             U3D_PLAN_PLO, U3D_PLAN_PHI);
    for (int i = 0; i < in->n; i++)
        for (int c = 0; c < in->images[i].c; c++) {
            if (p->nstats == U3D_PLAN_MAX_STATS) {
                p->stats_left_out++;
                continue;
            }
            u3d_plan_stats *s = &p->stats[p->nstats++];
            double o[6];
            U3D_TRY(u3d_norm_channel_stats(&in->images[i], c, U3D_PLAN_PLO,
                                           U3D_PLAN_PHI, o, err));
            s->volume = i;
            s->channel = c;
            s->min = o[0], s->plo = o[1], s->phi = o[2];
            s->mean = o[3], s->std = o[4], s->max = o[5];
        }
    return U3D_OK;
}

static u3d_status plan_weights(const u3d_plan_input *in, u3d_plan *p,
                               u3d_error *err)
{
    int k = p->net.classes;
    for (int i = 0; i < in->n; i++) {
        size_t c[U3D_MAX_CLASSES] = {0};
        if (u3d_labels_check(&in->labels[i], k, in->ignore_label, c, NULL,
                             err))
            return u3d_errprefix(err, "%s: ", lab_name(in, i));
        for (int j = 0; j < k; j++)
            p->counts[j] += c[j];
    }
    u3d_class_weights_auto(p->counts, k, p->balanced);
    double most = 0;
    for (int j = 0; j < k; j++)
        most = p->balanced[j] > most ? p->balanced[j] : most;
    /* balanced, unless a weight that large would make one patch's loss
     * hang on a handful of voxels. Measured (3 min, same padding): sqrt won
     * on the membranes (0.819 vs 0.785) and lost badly on the nuclei's
     * boundaries (0.212 vs 0.351), so balanced stays the rule (README) */
    p->weights = most > U3D_PLAN_MAX_WEIGHT ? U3D_WEIGHTS_SQRT
                                            : U3D_WEIGHTS_BALANCED;
    u3d_class_weights_set(p->weights, p->counts, k, p->class_weights);
    if (p->weights == U3D_WEIGHTS_SQRT)
        snprintf(p->weights_why, sizeof p->weights_why,
                 "sqrt: the largest balanced weight %.3g > %g would make one "
                 "patch's loss depend on a handful of voxels",
                 most, U3D_PLAN_MAX_WEIGHT);
    else
        snprintf(p->weights_why, sizeof p->weights_why,
                 "auto (balanced): the largest weight %.3g <= %g (sqrt helped "
                 "on membranes, hurt more on boundaries: README)",
                 most, U3D_PLAN_MAX_WEIGHT);
    return U3D_OK;
}

u3d_status u3d_plan_make(const u3d_plan_input *in, u3d_plan *p,
                         u3d_error *err)
{
    memset(p, 0, sizeof *p);
    if (!in || in->n < 1 || !in->images || !in->labels)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "plan: give at least one image with its labels");
    for (int i = 0; i < in->n; i++)
        U3D_TRY(u3d_check_image_labels(&in->images[i], NULL, &in->labels[i],
                                       lab_name(in, i), err));
    plan_spacing(in, p);
    p->net = in->net;
    U3D_TRY(plan_classes(in, p, err));
    U3D_TRY(plan_net(in, p, err));
    U3D_TRY(plan_patch(in, p, err));
    plan_augment(in, p);
    U3D_TRY(plan_intensity(in, p, err));
    p->optimizer = U3D_OPTIM_ADAM;
    p->lr = U3D_PLAN_LR_ADAM;
    snprintf(p->optim_why, sizeof p->optim_why,
             "adam: beat SGD 0.99 on every volume of the development set "
             "(3 min: membranes +0.035, boundaries +0.009, nuclei +0.031 IoU)");
    p->holdout = U3D_PLAN_HOLDOUT;
    if (p->net.classes <= 2)
        snprintf(p->decision_why, sizeof p->decision_why,
                 "the argmax over-segments thin walls: offsets tuned on slices "
                 "the model did not train on (fully automatic: boundaries "
                 "+0.042, membranes +0.063 IoU)");
    else
        snprintf(p->decision_why, sizeof p->decision_why,
                 "train with %d classes: the argmax on every slice (fully "
                 "automatic BraTS: holding slices out cost IoU on 3 of 3 "
                 "seeds, the offsets did not carry)", p->net.classes);
    return plan_weights(in, p, err);
}
