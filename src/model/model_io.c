/* Model files: a .u3d checkpoint with the architecture and training state
 * in its metadata and every parameter/statistic as a tensor. */
#include <math.h>
#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/checkpoint.h"
#include "unet3d/model_io.h"
#include "unet3d/volume.h"

/* Metadata names of the enumerations, both ways: index = enum value. */
typedef struct enum_names {
    const char *const *name;
    int n;
    int fallback; /* the name written for an out-of-range value */
} enum_names;

static const char *const padding_name[] = {"valid", "same"};
static const char *const bn_name[] = {"none", "plain", "affine"};
static const char *const norm_name[] = {"none", "zscore", "percentile"};
static const enum_names PADDING = {padding_name, 2, U3D_PAD_VALID};
static const enum_names BATCHNORM = {bn_name, 3, U3D_BN_AFFINE};
static const enum_names NORMALIZATION = {norm_name, 3, U3D_NORM_NONE};
const char *const u3d_optimizer_names[] = {"sgd", "adam", NULL};
static const enum_names OPTIMIZER = {u3d_optimizer_names, 2, U3D_OPTIM_SGD};
const char *const u3d_sampling_names[] = {"class", "voxel", "mixed", NULL};
static const enum_names SAMPLING = {u3d_sampling_names, 3, U3D_SAMPLE_CLASS};

/* Name of v; out of range: the fallback's. */
static const char *enum_str(const enum_names *t, int v)
{
    return t->name[v >= 0 && v < t->n ? v : t->fallback];
}

/* Value of name s; -1 for a name that is none of them. */
static int enum_val(const enum_names *t, const char *s)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(s, t->name[i]))
            return i;
    return -1;
}

/* A model's enumeration entry: absent keeps the default, an unknown name
 * is an error (a silent default would load another network, or normalize
 * the input otherwise than in training). */
static u3d_status meta_enum(const u3d_ckpt *c, const char *path,
                            const char *key, const enum_names *t, char *buf,
                            size_t n, int *out, u3d_error *err)
{
    if (!u3d_ckpt_meta_get(c, key, buf, n))
        return U3D_OK;
    char word[32] = "";
    sscanf(buf, "%31s", word);
    int v = enum_val(t, word);
    if (v < 0)
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: unknown %s '%s'", path,
                          key, word);
    *out = v;
    return U3D_OK;
}

int u3d_model_has_bias(const u3d_model_meta *m)
{
    for (int i = 0; i < m->net.classes && i < U3D_MAX_CLASSES; i++)
        if (m->class_bias[i] != 0.0f)
            return 1;
    return 0;
}

void u3d_model_meta_defaults(u3d_model_meta *m)
{
    memset(m, 0, sizeof *m);
    u3d_net_preset("small", &m->net, NULL);
    m->norm_mode = U3D_NORM_PERCENTILE;
    m->norm_plo = 1.0f;
    m->norm_phi = 99.8f;
    m->ignore_label = 255;
    for (int i = 0; i < U3D_MAX_CLASSES; i++)
        m->class_weights[i] = 1.0f;
    m->seed = 1;
    m->batch = 1;
    m->lr = 0.01f;
    m->momentum = 0.99f;
    m->beta1 = 0.9;
    m->beta2 = 0.999;
    m->adam_eps = 1e-8f;
    m->lr_poly = 1;
    snprintf(m->augment, sizeof m->augment, "paper");
}

u3d_status u3d_model_augment_params(const u3d_model_meta *m,
                                    u3d_augment_params *p, u3d_error *err)
{
    if (m->aug_custom)
        *p = m->aug;
    else {
        u3d_status st = u3d_augment_params_preset(m->augment, p, err);
        if (st)
            return st;
    }
    p->ignore_label = m->ignore_label;
    return u3d_augment_params_check(p, err);
}

/* The augmentation parameters as one metadata line (and back): every field
 * in declaration order. Files before the per-transform probabilities end
 * after fill_value (28 fields): every transform applied, p = 1. */
static void aug_to_str(const u3d_augment_params *a, char *buf, size_t n)
{
    snprintf(buf, n,
             "%.9g %.9g %.9g %d %d %d %.9g %.9g %.9g %.9g %.9g %.9g %.9g %d %d "
             "%d %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %d %.9g "
             "%.9g %.9g %.9g %.9g",
             a->sigma[0], a->sigma[1], a->sigma[2], a->grid_spacing[0],
             a->grid_spacing[1], a->grid_spacing[2], a->rotate_deg[0],
             a->rotate_deg[1], a->rotate_deg[2], a->scale_iso[0],
             a->scale_iso[1], a->scale_axis[0], a->scale_axis[1], a->mirror[0],
             a->mirror[1], a->mirror[2], a->gray_range[0], a->gray_range[1],
             a->gamma[0], a->gamma[1], a->contrast[0], a->contrast[1],
             a->brightness[0], a->brightness[1], a->noise_std[0],
             a->noise_std[1], (int)a->fill, a->fill_value, a->p_deform,
             a->p_rotate, a->p_scale, a->p_gray);
}

static int aug_from_str(const char *s, u3d_augment_params *a)
{
    int fill = 0, used = 0;
    a->p_deform = a->p_rotate = a->p_scale = a->p_gray = 1.0f;
    int n = sscanf(s,
                   "%f %f %f %d %d %d %f %f %f %f %f %f %f %d %d %d %f %f %f "
                   "%f %f %f %f %f %f %f %d %f %n",
                   &a->sigma[0], &a->sigma[1], &a->sigma[2], &a->grid_spacing[0],
                   &a->grid_spacing[1], &a->grid_spacing[2], &a->rotate_deg[0],
                   &a->rotate_deg[1], &a->rotate_deg[2], &a->scale_iso[0],
                   &a->scale_iso[1], &a->scale_axis[0], &a->scale_axis[1],
                   &a->mirror[0], &a->mirror[1], &a->mirror[2],
                   &a->gray_range[0], &a->gray_range[1], &a->gamma[0],
                   &a->gamma[1], &a->contrast[0], &a->contrast[1],
                   &a->brightness[0], &a->brightness[1], &a->noise_std[0],
                   &a->noise_std[1], &fill, &a->fill_value, &used);
    a->fill = fill ? U3D_AUG_FILL_CONSTANT : U3D_AUG_FILL_MIRROR;
    if (n != 28)
        return 0;
    if (!s[used])
        return 1;
    int tail = 0;
    n = sscanf(s + used, "%f %f %f %f %n", &a->p_deform, &a->p_rotate,
               &a->p_scale, &a->p_gray, &tail);
    return n == 4 && !s[used + tail];
}

static u3d_status add_tensor(u3d_ckpt *c, const char *name,
                             const u3d_tensor *t, u3d_error *err)
{
    size_t n = u3d_shape_count(t->shape);
    float *h = malloc(n * sizeof *h);
    if (!h)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_status st = u3d_tensor_read(t, h, err);
    if (!st)
        st = u3d_ckpt_add(c, name, t->shape, h, err);
    free(h);
    return st;
}

static u3d_status put_meta(u3d_ckpt *c, const u3d_model_meta *m,
                           u3d_error *err)
{
    const u3d_net_config *n = &m->net;
    char w[U3D_MAX_CLASSES * 16] = "";
    for (int i = 0, o = 0; i < n->classes && i < U3D_MAX_CLASSES; i++)
        o += snprintf(w + o, sizeof w - (size_t)o, "%s%.9g", i ? "," : "",
                      m->class_weights[i]);
    U3D_TRY(u3d_ckpt_meta_set(c, "format", err, "unet3d-model"));
    U3D_TRY(u3d_ckpt_meta_set(c, "levels", err, "%d", n->levels));
    U3D_TRY(u3d_ckpt_meta_set(c, "base_channels", err, "%d",
                              n->base_channels));
    U3D_TRY(u3d_ckpt_meta_set(c, "in_channels", err, "%d", n->in_channels));
    U3D_TRY(u3d_ckpt_meta_set(c, "classes", err, "%d", n->classes));
    U3D_TRY(u3d_ckpt_meta_set(c, "padding", err, "%s",
                              enum_str(&PADDING, n->padding)));
    U3D_TRY(u3d_ckpt_meta_set(c, "batchnorm", err, "%s",
                              enum_str(&BATCHNORM, n->bn)));
    U3D_TRY(u3d_ckpt_meta_set(c, "bn_eps", err, "%.9g", n->bn_eps));
    U3D_TRY(u3d_ckpt_meta_set(c, "bn_momentum", err, "%.9g", n->bn_momentum));
    if (u3d_net_is_anisotropic(n)) { /* isotropic files stay as they were */
        char k[U3D_NET_MAX_LEVELS * 8] = "", p[U3D_NET_MAX_LEVELS * 8] = "";
        for (int l = 0, o = 0, q = 0; l < n->levels; l++) {
            o += snprintf(k + o, sizeof k - (size_t)o, "%s%dx%dx%d",
                          l ? "," : "", u3d_net_kernel(n, l, 0),
                          u3d_net_kernel(n, l, 1), u3d_net_kernel(n, l, 2));
            if (l < n->levels - 1)
                q += snprintf(p + q, sizeof p - (size_t)q, "%s%dx%dx%d",
                              l ? "," : "", u3d_net_pool(n, l, 0),
                              u3d_net_pool(n, l, 1), u3d_net_pool(n, l, 2));
        }
        U3D_TRY(u3d_ckpt_meta_set(c, "kernels", err, "%s", k));
        if (n->levels > 1)
            U3D_TRY(u3d_ckpt_meta_set(c, "pools", err, "%s", p));
    }
    U3D_TRY(u3d_ckpt_meta_set(c, "normalization", err, "%s %.9g %.9g",
                              enum_str(&NORMALIZATION, m->norm_mode),
                              m->norm_plo, m->norm_phi));
    U3D_TRY(u3d_ckpt_meta_set(c, "ignore_label", err, "%d", m->ignore_label));
    U3D_TRY(u3d_ckpt_meta_set(c, "class_weights", err, "%s", w));
    U3D_TRY(u3d_ckpt_meta_set(c, "class_names", err, "%s", m->class_names));
    if (u3d_model_has_bias(m)) { /* files without one stay as they were */
        char b[U3D_MAX_CLASSES * 16] = "";
        for (int i = 0, o = 0; i < n->classes && i < U3D_MAX_CLASSES; i++)
            o += snprintf(b + o, sizeof b - (size_t)o, "%s%.9g", i ? "," : "",
                          m->class_bias[i]);
        U3D_TRY(u3d_ckpt_meta_set(c, "class_bias", err, "%s", b));
    }
    if (m->holdout > 0) /* files without one: none */
        U3D_TRY(u3d_ckpt_meta_set(c, "holdout", err, "%.9g", m->holdout));
    U3D_TRY(u3d_ckpt_meta_set(c, "iteration", err, "%ld", m->iteration));
    U3D_TRY(u3d_ckpt_meta_set(c, "iterations", err, "%ld", m->iterations));
    U3D_TRY(u3d_ckpt_meta_set(c, "minutes", err, "%.9g", m->minutes));
    U3D_TRY(u3d_ckpt_meta_set(c, "elapsed_s", err, "%.6f", m->elapsed_s));
    U3D_TRY(u3d_ckpt_meta_set(c, "seed", err, "%llu",
                              (unsigned long long)m->seed));
    U3D_TRY(u3d_ckpt_meta_set(c, "patch", err, "%dx%dx%d", m->patch[0],
                              m->patch[1], m->patch[2]));
    U3D_TRY(u3d_ckpt_meta_set(c, "batch", err, "%d", m->batch));
    U3D_TRY(u3d_ckpt_meta_set(c, "lr", err, "%.9g", m->lr));
    U3D_TRY(u3d_ckpt_meta_set(c, "momentum", err, "%.9g", m->momentum));
    U3D_TRY(u3d_ckpt_meta_set(c, "optimizer", err, "%s",
                              enum_str(&OPTIMIZER, m->optimizer)));
    U3D_TRY(u3d_ckpt_meta_set(c, "sampling", err, "%s",
                              enum_str(&SAMPLING, m->sampling)));
    if (m->optimizer == U3D_OPTIM_ADAM) {
        U3D_TRY(u3d_ckpt_meta_set(c, "adam", err, "%.17g,%.17g,%.9g",
                                  m->beta1, m->beta2, m->adam_eps));
        U3D_TRY(u3d_ckpt_meta_set(c, "adam_step", err, "%ld", m->adam_step));
    }
    U3D_TRY(u3d_ckpt_meta_set(c, "weight_decay", err, "%.9g",
                              m->weight_decay));
    U3D_TRY(u3d_ckpt_meta_set(c, "lr_schedule", err, "%s",
                              m->lr_poly ? "poly" : "constant"));
    U3D_TRY(u3d_ckpt_meta_set(c, "augment", err, "%s", m->augment));
    if (m->aug_custom) {
        char ab[1024];
        aug_to_str(&m->aug, ab, sizeof ab);
        U3D_TRY(u3d_ckpt_meta_set(c, "augment_params", err, "%s", ab));
    }
    return U3D_OK;
}

u3d_status u3d_model_save(const char *path, u3d_net *net,
                          const u3d_model_meta *m, int with_optimizer,
                          u3d_error *err)
{
    u3d_ckpt c;
    u3d_status st = U3D_OK;
    u3d_ckpt_init(&c);
    U3D_TRY_GOTO(st, done, put_meta(&c, m, err));
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(net, i);
        U3D_TRY_GOTO(st, done, add_tensor(&c, p->name, &p->value, err));
        char nm[64];
        if (with_optimizer && p->momentum.buf) {
            snprintf(nm, sizeof nm, "%s.momentum", p->name);
            U3D_TRY_GOTO(st, done, add_tensor(&c, nm, &p->momentum, err));
        }
        if (with_optimizer && p->second.buf &&
            m->optimizer == U3D_OPTIM_ADAM) {
            snprintf(nm, sizeof nm, "%s.adam_v", p->name);
            U3D_TRY_GOTO(st, done, add_tensor(&c, nm, &p->second, err));
        }
    }
    for (int i = 0; i < u3d_net_num_buffers(net); i++) {
        u3d_param *p = u3d_net_buffer(net, i);
        U3D_TRY_GOTO(st, done, add_tensor(&c, p->name, &p->value, err));
    }
    U3D_TRY_GOTO(st, done, u3d_ckpt_write(path, &c, err));
done:
    u3d_ckpt_free(&c);
    return st;
}

static u3d_status meta_int(const u3d_ckpt *c, const char *path,
                           const char *key, long *out, u3d_error *err)
{
    char buf[64], *end;
    if (!u3d_ckpt_meta_get(c, key, buf, sizeof buf))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: model metadata lacks '%s'", path, key);
    errno = 0;
    *out = strtol(buf, &end, 10);
    /* whole numbers within int (the fields are ints but iteration) */
    if (end == buf || *end || errno || *out < INT_MIN || *out > INT_MAX)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: model metadata '%s' is not a number in range: "
                          "%s", path, key, buf);
    return U3D_OK;
}

static float meta_float(const u3d_ckpt *c, const char *key, float dflt)
{
    char buf[64];
    return u3d_ckpt_meta_get(c, key, buf, sizeof buf) ? strtof(buf, NULL)
                                                      : dflt;
}

/* The values parse_meta read must be ones training can have written: an
 * edited or damaged number (NaN percentiles, a negative class weight)
 * would otherwise give silently wrong labels. */
static int finite_in(double v, double lo, double hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

static u3d_status check_meta(const u3d_model_meta *m, const char *path,
                             u3d_error *err)
{
    const char *bad = NULL;
    const u3d_net_config *n = &m->net;
    if (!finite_in(n->bn_eps, 1e-12, 1) || !finite_in(n->bn_momentum, 0, 1))
        bad = "batch-norm eps or momentum";
    else if (m->norm_mode == U3D_NORM_PERCENTILE &&
             !(finite_in(m->norm_plo, 0, 100) &&
               finite_in(m->norm_phi, 0, 100) && m->norm_plo < m->norm_phi))
        bad = "normalization percentiles";
    else if (m->ignore_label < 0 || m->ignore_label > 65535)
        bad = "ignore_label";
    else if (m->iteration < 0 || m->iterations < 0 ||
             !finite_in(m->minutes, 0, 1e9) ||
             !finite_in(m->elapsed_s, 0, 1e12))
        bad = "iteration count or time budget";
    else if (m->batch < 1 || m->batch > 4096)
        bad = "batch";
    else if (!finite_in(m->lr, 0, 1e6) || !finite_in(m->momentum, 0, 1) ||
             !finite_in(m->weight_decay, 0, 1e6) ||
             !finite_in(m->beta1, 0, 0.999999) ||
             !finite_in(m->beta2, 0, 0.999999999) ||
             !finite_in(m->adam_eps, 1e-30, 1) || m->adam_step < 0)
        bad = "optimizer settings";
    for (int a = 0; a < 3 && !bad; a++)
        if (m->patch[a] < 0 || m->patch[a] > U3D_NET_MAX_INPUT)
            bad = "patch";
    for (int k = 0; k < n->classes && !bad; k++)
        if (!finite_in(m->class_weights[k], 0, 1e9))
            bad = "class_weights";
    u3d_error aerr = {0};
    if (!bad && m->aug_custom && u3d_augment_params_check(&m->aug, &aerr))
        bad = "augmentation parameters";
    if (bad)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: the model's %s are out of range (edited or "
                          "damaged metadata)", path, bad);
    return U3D_OK;
}

static u3d_status parse_meta(const u3d_ckpt *c, const char *path,
                             u3d_model_meta *m, u3d_error *err)
{
    char buf[U3D_MAX_CLASSES * 16];
    long v = 0;
    u3d_model_meta_defaults(m);
    if (!u3d_ckpt_meta_get(c, "format", buf, sizeof buf) ||
        strcmp(buf, "unet3d-model"))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: a .u3d file but not a unet3d model", path);
    u3d_net_config *n = &m->net;
    U3D_TRY(meta_int(c, path, "levels", &v, err));
    n->levels = (int)v;
    U3D_TRY(meta_int(c, path, "base_channels", &v, err));
    n->base_channels = (int)v;
    U3D_TRY(meta_int(c, path, "in_channels", &v, err));
    n->in_channels = (int)v;
    U3D_TRY(meta_int(c, path, "classes", &v, err));
    n->classes = (int)v;
    if (n->classes < 1 || n->classes > U3D_MAX_CLASSES)
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: %d classes is out of range",
                          path, n->classes);
    int e = n->padding;
    U3D_TRY(meta_enum(c, path, "padding", &PADDING, buf, sizeof buf, &e, err));
    n->padding = (u3d_padding)e;
    e = n->bn;
    U3D_TRY(meta_enum(c, path, "batchnorm", &BATCHNORM, buf, sizeof buf, &e,
                      err));
    n->bn = (u3d_bn_mode)e;
    n->bn_eps = meta_float(c, "bn_eps", 1e-5f);
    n->bn_momentum = meta_float(c, "bn_momentum", 0.1f);
    /* anisotropic networks only; older files: 3x3x3 / 2x2x2 */
    if (u3d_ckpt_meta_get(c, "kernels", buf, sizeof buf) &&
        u3d_net_set_kernels(n, buf, err))
        return u3d_errprefix(err, "%s: ", path);
    if (u3d_ckpt_meta_get(c, "pools", buf, sizeof buf) &&
        u3d_net_set_pools(n, buf, err))
        return u3d_errprefix(err, "%s: ", path);
    e = m->norm_mode;
    U3D_TRY(meta_enum(c, path, "normalization", &NORMALIZATION, buf,
                      sizeof buf, &e, err));
    if (u3d_ckpt_meta_get(c, "normalization", buf, sizeof buf)) {
        char mode[32] = "";
        float lo = 1, hi = 99.8f;
        sscanf(buf, "%31s %f %f", mode, &lo, &hi);
        m->norm_mode = e;
        m->norm_plo = lo;
        m->norm_phi = hi;
    }
    U3D_TRY(meta_int(c, path, "ignore_label", &v, err));
    m->ignore_label = (int)v;
    if (u3d_ckpt_meta_get(c, "class_weights", buf, sizeof buf)) {
        char *p = buf;
        for (int i = 0; i < n->classes; i++) {
            m->class_weights[i] = strtof(p, &p);
            if (*p == ',')
                p++;
        }
    }
    u3d_ckpt_meta_get(c, "class_names", m->class_names, sizeof m->class_names);
    if (u3d_ckpt_meta_get(c, "class_bias", buf, sizeof buf)) {
        /* exactly one finite number per class */
        char *p = buf, *end;
        for (int i = 0; i < n->classes; i++) {
            m->class_bias[i] = strtof(p, &end);
            int last = i == n->classes - 1;
            if (end == p || !finite_in(m->class_bias[i], -20, 20) ||
                *end != (last ? 0 : ','))
                return u3d_seterr(err, U3D_ERR_FORMAT,
                                  "%s: model metadata 'class_bias' is not %d "
                                  "numbers in -20..20: %s", path, n->classes,
                                  buf);
            p = end + 1;
        }
    }
    if (u3d_ckpt_meta_get(c, "holdout", buf, sizeof buf)) {
        char *end;
        m->holdout = strtod(buf, &end);
        if (end == buf || *end || !finite_in(m->holdout, 0, 0.5))
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: model metadata 'holdout' is not a share "
                              "in 0..0.5: %s", path, buf);
    }
    U3D_TRY(meta_int(c, path, "iteration", &v, err));
    m->iteration = v;
    if (!meta_int(c, path, "iterations", &v, NULL))
        m->iterations = v;
    m->minutes = meta_float(c, "minutes", 0);
    m->elapsed_s = meta_float(c, "elapsed_s", 0);
    if (u3d_ckpt_meta_get(c, "seed", buf, sizeof buf))
        m->seed = strtoull(buf, NULL, 10);
    if (u3d_ckpt_meta_get(c, "patch", buf, sizeof buf))
        sscanf(buf, "%dx%dx%d", &m->patch[0], &m->patch[1], &m->patch[2]);
    if (!meta_int(c, path, "batch", &v, NULL))
        m->batch = (int)v;
    m->lr = meta_float(c, "lr", m->lr);
    m->momentum = meta_float(c, "momentum", m->momentum);
    int opt = m->optimizer;
    U3D_TRY(meta_enum(c, path, "optimizer", &OPTIMIZER, buf, sizeof buf, &opt,
                      err));
    m->optimizer = opt;
    int smp = m->sampling;
    U3D_TRY(meta_enum(c, path, "sampling", &SAMPLING, buf, sizeof buf, &smp,
                      err));
    m->sampling = smp;
    if (u3d_ckpt_meta_get(c, "adam", buf, sizeof buf)) {
        char tail;
        if (sscanf(buf, "%lf,%lf,%f%c", &m->beta1, &m->beta2, &m->adam_eps,
                   &tail) != 3)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: model metadata 'adam' is not three "
                              "numbers: %s", path, buf);
    }
    if (u3d_ckpt_meta_get(c, "adam_step", buf, sizeof buf)) {
        char *end;
        errno = 0;
        m->adam_step = strtol(buf, &end, 10);
        if (end == buf || *end || errno || m->adam_step < 0)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: model metadata 'adam_step' is not a "
                              "count: %s", path, buf);
    }
    m->weight_decay = meta_float(c, "weight_decay", 0);
    if (u3d_ckpt_meta_get(c, "lr_schedule", buf, sizeof buf))
        m->lr_poly = !strcmp(buf, "poly");
    u3d_ckpt_meta_get(c, "augment", m->augment, sizeof m->augment);
    char ab[1024];
    if (u3d_ckpt_meta_get(c, "augment_params", ab, sizeof ab)) {
        u3d_augment_params_none(&m->aug);
        if (!aug_from_str(ab, &m->aug))
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: unreadable augmentation parameters", path);
        m->aug_custom = 1;
    }
    return check_meta(m, path, err);
}

/* Checks that tensor name is present (or not required), of the shape
 * the architecture needs and finite; *out is NULL when absent. */
static u3d_status check_tensor(const u3d_ckpt *c, const char *path,
                               const char *name, u3d_shape shape,
                               int required, const u3d_ckpt_tensor **out,
                               u3d_error *err)
{
    char a[64], b[64];
    const u3d_ckpt_tensor *ct = u3d_ckpt_find(c, name);
    *out = ct;
    if (!ct)
        return required ? u3d_seterr(err, U3D_ERR_FORMAT,
                                     "%s: tensor %s is missing", path, name)
                        : U3D_OK;
    if (!u3d_shape_eq(ct->shape, shape))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: tensor %s has shape %s, the architecture needs "
                          "%s",
                          path, name, u3d_shape_str(ct->shape, a, sizeof a),
                          u3d_shape_str(shape, b, sizeof b));
    size_t n = ct->data ? u3d_shape_count(ct->shape) : 0; /* data: if read */
    for (size_t i = 0; i < n; i++)
        if (!isfinite(ct->data[i]))
            return u3d_seterr(err, U3D_ERR_NUMERIC,
                              "%s: tensor %s holds NaN/Inf (the training "
                              "diverged; lower --lr)",
                              path, name);
    return U3D_OK;
}

static u3d_status load_tensor(const u3d_ckpt *c, const char *path,
                              const char *name, u3d_tensor *t, int required,
                              u3d_error *err)
{
    const u3d_ckpt_tensor *ct;
    u3d_status st = check_tensor(c, path, name, t->shape, required, &ct, err);
    if (st || !ct)
        return st;
    return u3d_tensor_write(t, ct->data, err);
}

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && !strcmp(name + n - k, suffix);
}

/* The optimizer's state tensors: what inference does not read. */
static int no_optimizer_state(const char *name, void *user)
{
    (void)user;
    return !has_suffix(name, ".momentum") && !has_suffix(name, ".adam_v");
}

/* 1 when some parameter has the state tensor NAME.suffix. */
static int have_state(const u3d_ckpt *c, u3d_net *net, const char *suffix)
{
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s%s", u3d_net_param(net, i)->name, suffix);
        if (u3d_ckpt_find(c, nm))
            return 1;
    }
    return 0;
}

/* The optimizer state NAME.suffix of p into t (optimizer != 0) or only
 * checked. */
static u3d_status load_state(const u3d_ckpt *c, const char *path,
                             const u3d_param *p, const char *suffix,
                             u3d_tensor *t, int optimizer, u3d_error *err)
{
    char nm[64];
    const u3d_ckpt_tensor *ct;
    snprintf(nm, sizeof nm, "%s%s", p->name, suffix);
    return optimizer ? load_tensor(c, path, nm, t, 1, err)
                     : check_tensor(c, path, nm, p->value.shape, 1, &ct, err);
}

/* Every parameter and buffer of net from c; the optimizer's state (each
 * kind all or none: momentum buffers, Adam's second moments, the latter
 * only in an Adam model) restored with optimizer != 0, else only
 * checked. */
static u3d_status load_tensors(const u3d_ckpt *c, const char *path,
                               u3d_net *net, const u3d_model_meta *m,
                               int optimizer, u3d_error *err)
{
    int have_momentum = have_state(c, net, ".momentum");
    int have_v = have_state(c, net, ".adam_v");
    if (have_v && m->optimizer != U3D_OPTIM_ADAM)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: Adam's state in a model trained with %s "
                          "(edited or damaged)", path,
                          enum_str(&OPTIMIZER, m->optimizer));
    if (have_momentum && optimizer)
        U3D_TRY(u3d_net_prepare_training(net, err));
    if (have_v && optimizer)
        U3D_TRY(u3d_net_prepare_adam(net, err));
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(net, i);
        U3D_TRY(load_tensor(c, path, p->name, &p->value, 1, err));
        if (have_momentum)
            U3D_TRY(load_state(c, path, p, ".momentum", &p->momentum,
                               optimizer, err));
        if (have_v)
            U3D_TRY(load_state(c, path, p, ".adam_v", &p->second, optimizer,
                               err));
    }
    for (int i = 0; i < u3d_net_num_buffers(net); i++) {
        u3d_param *p = u3d_net_buffer(net, i);
        U3D_TRY(load_tensor(c, path, p->name, &p->value, 1, err));
    }
    return U3D_OK;
}

/* The file must hold at least the values the architecture in its
 * metadata needs, checked before the network is allocated (a few edited
 * metadata bytes must not make the loader allocate gigabytes). */
static u3d_status check_size(const u3d_ckpt *c, const char *path,
                             const u3d_net_config *cfg, u3d_error *err)
{
    size_t have = 0, need = u3d_net_param_count(cfg, 0);
    for (int i = 0; i < c->ntensors; i++)
        have += u3d_shape_count(c->tensors[i].shape);
    if (have < need)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: its metadata describes a network of %zu "
                          "parameters, but the file holds only %zu values "
                          "(edited or damaged)", path, need, have);
    return U3D_OK;
}

/* 1 when name is a tensor of net (a parameter, its optimizer state or a
 * buffer). */
static int net_has(u3d_net *net, const char *name)
{
    char nm[64], nv[64];
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        const char *p = u3d_net_param(net, i)->name;
        snprintf(nm, sizeof nm, "%s.momentum", p);
        snprintf(nv, sizeof nv, "%s.adam_v", p);
        if (!strcmp(name, p) || !strcmp(name, nm) || !strcmp(name, nv))
            return 1;
    }
    for (int i = 0; i < u3d_net_num_buffers(net); i++)
        if (!strcmp(name, u3d_net_buffer(net, i)->name))
            return 1;
    return 0;
}

/* A tensor the architecture does not use means the metadata describes
 * another network than the one stored (levels or batch norm edited). */
static u3d_status check_no_extra(const u3d_ckpt *c, const char *path,
                                 u3d_net *net, u3d_error *err)
{
    for (int i = 0; i < c->ntensors; i++)
        if (!net_has(net, c->tensors[i].name))
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: tensor %s is not part of the network its "
                              "metadata describes (edited or damaged)",
                              path, c->tensors[i].name);
    return U3D_OK;
}

static u3d_status load_model(const char *path, u3d_backend *be, u3d_net **net,
                             u3d_model_meta *m, int optimizer,
                             u3d_error *err)
{
    u3d_ckpt c;
    *net = NULL;
    /* for inference the optimizer state's values are not even read */
    u3d_status st = u3d_ckpt_read_some(path,
                                       optimizer ? NULL : no_optimizer_state,
                                       NULL, &c, err);
    if (st)
        return st;
    u3d_net *nt = NULL;
    U3D_TRY_GOTO(st, done, parse_meta(&c, path, m, err));
    st = u3d_net_config_check(&m->net, err);
    if (st) {
        u3d_errprefix(err, "%s: ", path);
        goto done;
    }
    U3D_TRY_GOTO(st, done, check_size(&c, path, &m->net, err));
    U3D_TRY_GOTO(st, done, u3d_net_create(be, &m->net, &nt, err));
    U3D_TRY_GOTO(st, done, check_no_extra(&c, path, nt, err));
    U3D_TRY_GOTO(st, done, load_tensors(&c, path, nt, m, optimizer, err));
    *net = nt;
    nt = NULL;
done:
    u3d_net_destroy(nt);
    u3d_ckpt_free(&c);
    return st;
}

u3d_status u3d_model_load(const char *path, u3d_backend *be, u3d_net **net,
                          u3d_model_meta *m, u3d_error *err)
{
    return load_model(path, be, net, m, 1, err);
}

u3d_status u3d_model_load_inference(const char *path, u3d_backend *be,
                                    u3d_net **net, u3d_model_meta *m,
                                    u3d_error *err)
{
    return load_model(path, be, net, m, 0, err);
}
