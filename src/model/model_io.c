/* Model files: a .u3d checkpoint with the architecture and training state
 * in its metadata and every parameter/statistic as a tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/checkpoint.h"
#include "unet3d/train.h"

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
 * in declaration order. */
static void aug_to_str(const u3d_augment_params *a, char *buf, size_t n)
{
    snprintf(buf, n,
             "%.9g %.9g %.9g %d %d %d %.9g %.9g %.9g %.9g %.9g %.9g %.9g %d %d "
             "%d %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %d %.9g",
             a->sigma[0], a->sigma[1], a->sigma[2], a->grid_spacing[0],
             a->grid_spacing[1], a->grid_spacing[2], a->rotate_deg[0],
             a->rotate_deg[1], a->rotate_deg[2], a->scale_iso[0],
             a->scale_iso[1], a->scale_axis[0], a->scale_axis[1], a->mirror[0],
             a->mirror[1], a->mirror[2], a->gray_range[0], a->gray_range[1],
             a->gamma[0], a->gamma[1], a->contrast[0], a->contrast[1],
             a->brightness[0], a->brightness[1], a->noise_std[0],
             a->noise_std[1], (int)a->fill, a->fill_value);
}

static int aug_from_str(const char *s, u3d_augment_params *a)
{
    int fill = 0;
    int n = sscanf(s,
                   "%f %f %f %d %d %d %f %f %f %f %f %f %f %d %d %d %f %f %f "
                   "%f %f %f %f %f %f %f %d %f",
                   &a->sigma[0], &a->sigma[1], &a->sigma[2], &a->grid_spacing[0],
                   &a->grid_spacing[1], &a->grid_spacing[2], &a->rotate_deg[0],
                   &a->rotate_deg[1], &a->rotate_deg[2], &a->scale_iso[0],
                   &a->scale_iso[1], &a->scale_axis[0], &a->scale_axis[1],
                   &a->mirror[0], &a->mirror[1], &a->mirror[2],
                   &a->gray_range[0], &a->gray_range[1], &a->gamma[0],
                   &a->gamma[1], &a->contrast[0], &a->contrast[1],
                   &a->brightness[0], &a->brightness[1], &a->noise_std[0],
                   &a->noise_std[1], &fill, &a->fill_value);
    a->fill = fill ? U3D_AUG_FILL_CONSTANT : U3D_AUG_FILL_MIRROR;
    return n == 28;
}

#define TRY(x)                                                                 \
    do {                                                                       \
        st = (x);                                                              \
        if (st)                                                                \
            goto done;                                                         \
    } while (0)

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

u3d_status u3d_model_save(const char *path, u3d_net *net,
                          const u3d_model_meta *m, int with_optimizer,
                          u3d_error *err)
{
    u3d_ckpt c;
    u3d_status st = U3D_OK;
    const u3d_net_config *n = &m->net;
    char w[U3D_MAX_CLASSES * 16] = "";
    u3d_ckpt_init(&c);
    for (int i = 0, o = 0; i < n->classes && i < U3D_MAX_CLASSES; i++)
        o += snprintf(w + o, sizeof w - (size_t)o, "%s%.9g", i ? "," : "",
                      m->class_weights[i]);
    TRY(u3d_ckpt_meta_set(&c, "format", err, "unet3d-model"));
    TRY(u3d_ckpt_meta_set(&c, "levels", err, "%d", n->levels));
    TRY(u3d_ckpt_meta_set(&c, "base_channels", err, "%d", n->base_channels));
    TRY(u3d_ckpt_meta_set(&c, "in_channels", err, "%d", n->in_channels));
    TRY(u3d_ckpt_meta_set(&c, "classes", err, "%d", n->classes));
    TRY(u3d_ckpt_meta_set(&c, "padding", err, "%s",
                          n->padding == U3D_PAD_SAME ? "same" : "valid"));
    TRY(u3d_ckpt_meta_set(&c, "batchnorm", err, "%s",
                          n->bn == U3D_BN_NONE    ? "none"
                          : n->bn == U3D_BN_PLAIN ? "plain"
                                                  : "affine"));
    TRY(u3d_ckpt_meta_set(&c, "bn_eps", err, "%.9g", n->bn_eps));
    TRY(u3d_ckpt_meta_set(&c, "bn_momentum", err, "%.9g", n->bn_momentum));
    TRY(u3d_ckpt_meta_set(&c, "normalization", err, "%s %.9g %.9g",
                          m->norm_mode == U3D_NORM_ZSCORE ? "zscore"
                          : m->norm_mode == U3D_NORM_PERCENTILE
                              ? "percentile"
                              : "none",
                          m->norm_plo, m->norm_phi));
    TRY(u3d_ckpt_meta_set(&c, "ignore_label", err, "%d", m->ignore_label));
    TRY(u3d_ckpt_meta_set(&c, "class_weights", err, "%s", w));
    TRY(u3d_ckpt_meta_set(&c, "class_names", err, "%s", m->class_names));
    TRY(u3d_ckpt_meta_set(&c, "iteration", err, "%ld", m->iteration));
    TRY(u3d_ckpt_meta_set(&c, "iterations", err, "%ld", m->iterations));
    TRY(u3d_ckpt_meta_set(&c, "minutes", err, "%.9g", m->minutes));
    TRY(u3d_ckpt_meta_set(&c, "elapsed_s", err, "%.6f", m->elapsed_s));
    TRY(u3d_ckpt_meta_set(&c, "seed", err, "%llu",
                          (unsigned long long)m->seed));
    TRY(u3d_ckpt_meta_set(&c, "patch", err, "%dx%dx%d", m->patch[0],
                          m->patch[1], m->patch[2]));
    TRY(u3d_ckpt_meta_set(&c, "batch", err, "%d", m->batch));
    TRY(u3d_ckpt_meta_set(&c, "lr", err, "%.9g", m->lr));
    TRY(u3d_ckpt_meta_set(&c, "momentum", err, "%.9g", m->momentum));
    TRY(u3d_ckpt_meta_set(&c, "weight_decay", err, "%.9g", m->weight_decay));
    TRY(u3d_ckpt_meta_set(&c, "lr_schedule", err, "%s",
                          m->lr_poly ? "poly" : "constant"));
    TRY(u3d_ckpt_meta_set(&c, "augment", err, "%s", m->augment));
    if (m->aug_custom) {
        char ab[1024];
        aug_to_str(&m->aug, ab, sizeof ab);
        TRY(u3d_ckpt_meta_set(&c, "augment_params", err, "%s", ab));
    }
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(net, i);
        TRY(add_tensor(&c, p->name, &p->value, err));
        if (with_optimizer && p->momentum.buf) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s.momentum", p->name);
            TRY(add_tensor(&c, nm, &p->momentum, err));
        }
    }
    for (int i = 0; i < u3d_net_num_buffers(net); i++) {
        u3d_param *p = u3d_net_buffer(net, i);
        TRY(add_tensor(&c, p->name, &p->value, err));
    }
    TRY(u3d_ckpt_write(path, &c, err));
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
    *out = strtol(buf, &end, 10);
    if (end == buf)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: model metadata '%s' is not a number: %s", path,
                          key, buf);
    return U3D_OK;
}

static float meta_float(const u3d_ckpt *c, const char *key, float dflt)
{
    char buf[64];
    return u3d_ckpt_meta_get(c, key, buf, sizeof buf) ? strtof(buf, NULL)
                                                      : dflt;
}

static u3d_status parse_meta(const u3d_ckpt *c, const char *path,
                             u3d_model_meta *m, u3d_error *err)
{
    char buf[U3D_MAX_CLASSES * 16];
    long v = 0;
    u3d_status st = U3D_OK;
    u3d_model_meta_defaults(m);
    if (!u3d_ckpt_meta_get(c, "format", buf, sizeof buf) ||
        strcmp(buf, "unet3d-model"))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: a .u3d file but not a unet3d model", path);
    u3d_net_config *n = &m->net;
    TRY(meta_int(c, path, "levels", &v, err));
    n->levels = (int)v;
    TRY(meta_int(c, path, "base_channels", &v, err));
    n->base_channels = (int)v;
    TRY(meta_int(c, path, "in_channels", &v, err));
    n->in_channels = (int)v;
    TRY(meta_int(c, path, "classes", &v, err));
    n->classes = (int)v;
    if (n->classes < 1 || n->classes > U3D_MAX_CLASSES)
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: %d classes is out of range",
                          path, n->classes);
    u3d_ckpt_meta_get(c, "padding", buf, sizeof buf);
    n->padding = !strcmp(buf, "same") ? U3D_PAD_SAME : U3D_PAD_VALID;
    u3d_ckpt_meta_get(c, "batchnorm", buf, sizeof buf);
    n->bn = !strcmp(buf, "none")    ? U3D_BN_NONE
            : !strcmp(buf, "plain") ? U3D_BN_PLAIN
                                    : U3D_BN_AFFINE;
    n->bn_eps = meta_float(c, "bn_eps", 1e-5f);
    n->bn_momentum = meta_float(c, "bn_momentum", 0.1f);
    if (u3d_ckpt_meta_get(c, "normalization", buf, sizeof buf)) {
        char mode[32] = "";
        float lo = 1, hi = 99.8f;
        sscanf(buf, "%31s %f %f", mode, &lo, &hi);
        m->norm_mode = !strcmp(mode, "zscore")       ? U3D_NORM_ZSCORE
                       : !strcmp(mode, "percentile") ? U3D_NORM_PERCENTILE
                                                     : U3D_NORM_NONE;
        m->norm_plo = lo;
        m->norm_phi = hi;
    }
    TRY(meta_int(c, path, "ignore_label", &v, err));
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
    TRY(meta_int(c, path, "iteration", &v, err));
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
done:
    return st;
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

static int no_momentum(const char *name, void *user)
{
    (void)user;
    size_t n = strlen(name), k = strlen(".momentum");
    return !(n > k && !strcmp(name + n - k, ".momentum"));
}

static u3d_status load_model(const char *path, u3d_backend *be, u3d_net **net,
                             u3d_model_meta *m, int optimizer,
                             u3d_error *err)
{
    u3d_ckpt c;
    *net = NULL;
    /* for inference the momentum buffers' values are not even read */
    u3d_status st = u3d_ckpt_read_some(path, optimizer ? NULL : no_momentum,
                                       NULL, &c, err);
    if (st)
        return st;
    u3d_net *nt = NULL;
    TRY(parse_meta(&c, path, m, err));
    st = u3d_net_config_check(&m->net, err);
    if (st) {
        u3d_errprefix(err, "%s: ", path);
        goto done;
    }
    TRY(u3d_net_create(be, &m->net, &nt, err));
    int have_momentum = 0;
    for (int i = 0; i < u3d_net_num_params(nt); i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s.momentum", u3d_net_param(nt, i)->name);
        if (u3d_ckpt_find(&c, nm))
            have_momentum = 1;
    }
    const u3d_ckpt_tensor *ct;
    if (have_momentum && optimizer)
        TRY(u3d_net_prepare_training(nt, err));
    for (int i = 0; i < u3d_net_num_params(nt); i++) {
        u3d_param *p = u3d_net_param(nt, i);
        TRY(load_tensor(&c, path, p->name, &p->value, 1, err));
        if (have_momentum) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s.momentum", p->name);
            TRY(optimizer ? load_tensor(&c, path, nm, &p->momentum, 1, err)
                          : check_tensor(&c, path, nm, p->value.shape, 1, &ct,
                                         err));
        }
    }
    for (int i = 0; i < u3d_net_num_buffers(nt); i++) {
        u3d_param *p = u3d_net_buffer(nt, i);
        TRY(load_tensor(&c, path, p->name, &p->value, 1, err));
    }
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
