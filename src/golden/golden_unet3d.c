/* Golden case: the whole 3D U-Net, one training-mode forward and backward
 * (x, labels, class_weights, every parameter -> logits, loss, d_NAME). The
 * architecture comes from case.txt (levels, base_channels, in_channels,
 * classes, optional padding and batchnorm keys); sizes from the arrays. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "golden/golden.h"
#include "unet3d/model.h"

#define MAX_NAMES 256

static u3d_status read_config(const golden_case *c, u3d_net_config *cfg,
                              int *ignore, u3d_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bn = U3D_BN_AFFINE;
    cfg->bn_eps = 1e-5f;
    cfg->bn_momentum = 0.1f;
    u3d_status st = golden_int(c, "levels", &cfg->levels, err);
    if (!st)
        st = golden_int(c, "base_channels", &cfg->base_channels, err);
    if (!st)
        st = golden_int(c, "in_channels", &cfg->in_channels, err);
    if (!st)
        st = golden_int(c, "classes", &cfg->classes, err);
    if (!st)
        st = golden_int(c, "ignore_label", ignore, err);
    if (st)
        return st;
    const char *pad = golden_get(c, "padding");
    if (pad && (!strcmp(pad, "same") || !strcmp(pad, "1")))
        cfg->padding = U3D_PAD_SAME;
    /* e.g. "training mode, eps 1e-5, affine" */
    const char *bn = golden_get(c, "batchnorm");
    if (bn) {
        const char *eps = strstr(bn, "eps ");
        if (eps)
            cfg->bn_eps = strtof(eps + 4, NULL);
        if (strstr(bn, "none"))
            cfg->bn = U3D_BN_NONE;
        else if (!strstr(bn, "affine") || strstr(bn, "no affine") ||
                 strstr(bn, "non-affine"))
            cfg->bn = U3D_BN_PLAIN;
    }
    st = u3d_net_config_check(cfg, err);
    if (st)
        return u3d_errprefix(err, "%s/case.txt: ", c->dir);
    return U3D_OK;
}

/* parameter_order (comma or space separated) split in place into names. */
static u3d_status read_order(const golden_case *c, char *list, char **names,
                             int *n, u3d_error *err)
{
    *n = 0;
    for (char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            *p++ = 0;
        if (!*p)
            break;
        if (*n == MAX_NAMES)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s/case.txt: more than %d parameters", c->dir,
                              MAX_NAMES);
        names[(*n)++] = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
    }
    return U3D_OK;
}

/* Every fixture parameter into the net; the two sets of names must agree. */
static u3d_status load_params(u3d_backend *be, const golden_case *c,
                              u3d_net *net, char **names, int n,
                              u3d_error *err)
{
    char a[96], b[96];
    if (n != u3d_net_num_params(net))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/case.txt: parameter_order lists %d parameters, "
                          "the configured network has %d",
                          c->dir, n, u3d_net_num_params(net));
    for (int i = 0; i < n; i++) {
        u3d_param *p = u3d_net_find(net, names[i]);
        if (!p || !p->learnable)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s/case.txt: the network has no parameter "
                              "'%s'", c->dir, names[i]);
        u3d_tensor t;
        u3d_status st = golden_tensor(be, c, names[i], &t, err);
        if (st)
            return st;
        if (!u3d_shape_eq(t.shape, p->value.shape) || t.dtype != U3D_F32)
            st = u3d_seterr(err, U3D_ERR_SHAPE,
                            "%s/%s.npy has shape %s, the network's parameter "
                            "is %s", c->dir, names[i],
                            u3d_shape_str(t.shape, a, sizeof a),
                            u3d_shape_str(p->value.shape, b, sizeof b));
        if (!st)
            st = u3d_tensor_copy(&p->value, &t, err);
        u3d_tensor_release(&t);
        if (st)
            return st;
    }
    return U3D_OK;
}

static u3d_status check_input(const golden_case *c, const u3d_tensor *x,
                              const u3d_tensor *labels, int cin,
                              u3d_error *err)
{
    char a[96];
    if (x->dtype != U3D_F32 || x->shape.c != cin)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "%s/x.npy: shape %s (%s), want float32 N x %d x D x "
                          "H x W", c->dir, u3d_shape_str(x->shape, a, sizeof a),
                          x->dtype == U3D_F32 ? "float32" : "int32", cin);
    if (labels->dtype != U3D_I32)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/labels.npy must hold int32 labels", c->dir);
    return U3D_OK;
}

/* A conv bias followed by training-mode BN: its gradient is zero in exact
 * arithmetic (BN removes the per-channel mean), and the fixture holds
 * rounding residue (~1e-16), so a relative error against it means nothing.
 * Such a bias is checked as part of its conv's parameter gradient: the
 * error, normwise relative to max|d_weight| of the same conv, must stay
 * within the gradient tolerance. */
static int bias_before_bn(u3d_net *net, const char *name)
{
    char bn[64];
    size_t len = strlen(name);
    if (u3d_net_get_config(net)->bn == U3D_BN_NONE || len < 8 ||
        len >= sizeof bn || strcmp(name + len - 5, "_bias"))
        return 0;
    /* NAME = PFX_I_bias with PFX_I a conv; its BN is PFX_(I+1) */
    memcpy(bn, name, len - 5);
    bn[len - 5] = 0;
    char *last = strrchr(bn, '_');
    if (!last || last[1] < '0' || last[1] > '8' || last[2])
        return 0;
    last[1]++;
    strcat(bn, "_running_mean");
    return u3d_net_find(net, bn) != NULL;
}

static u3d_status check_zero_grad(const golden_case *c, golden_report *rep,
                                  const char *name, const u3d_tensor *g,
                                  u3d_error *err)
{
    char wname[80], bname[80];
    size_t n = u3d_shape_count(g->shape), len = strlen(name) - 5;
    snprintf(wname, sizeof wname, "d_%.*s_weight", (int)len, name);
    snprintf(bname, sizeof bname, "d_%s", name);
    u3d_npy w = {0}, b = {0};
    float *got = malloc(n * sizeof *got);
    u3d_status st = got ? U3D_OK : u3d_seterr(err, U3D_ERR_OOM, "out of memory");
    if (!st)
        st = u3d_tensor_read(g, got, err);
    if (!st)
        st = golden_npy(c, wname, &w, err);
    if (!st)
        st = golden_npy(c, bname, &b, err);
    if (!st && (w.is_int || b.is_int || b.count != n))
        st = u3d_seterr(err, U3D_ERR_SHAPE,
                        "%s/%s.npy: want %zu float values", c->dir, bname, n);
    if (!st) {
        double scale = 0, emax = 0;
        for (size_t i = 0; i < w.count; i++)
            scale = fmax(scale, fabs(((const float *)w.data)[i]));
        for (size_t i = 0; i < n; i++) {
            double want = ((const float *)b.data)[i];
            scale = fmax(scale, fabs(want));
            emax = fmax(emax, isfinite(got[i]) ? fabs(got[i] - want) : INFINITY);
        }
        double rel = emax / fmax(scale, 1e-30);
        rep->checked++;
        rep->max_abs = fmax(rep->max_abs, emax);
        rep->max_rel = fmax(rep->max_rel, rel);
        if (!(rel <= U3D_GOLDEN_TOL_GRAD)) {
            if (!rep->failed)
                snprintf(rep->first_fail, sizeof rep->first_fail,
                         "%s: max abs %.3g, rel to %s %.3g > tol %.0e", bname,
                         emax, wname, rel, U3D_GOLDEN_TOL_GRAD);
            rep->failed++;
        }
    }
    u3d_npy_free(&w);
    u3d_npy_free(&b);
    free(got);
    return st;
}

/* Forward (TRAIN), loss, backward, then the comparisons. */
static u3d_status run(u3d_backend *be, const golden_case *c, golden_report *rep,
                      u3d_net *net, int ignore, char **names, int n,
                      u3d_error *err)
{
    u3d_tensor x = {0}, labels = {0}, cw = {0}, dlogits = {0};
    const u3d_tensor *logits;
    float loss = 0;
    u3d_status st = golden_tensor(be, c, "x", &x, err);
    if (!st)
        st = golden_tensor(be, c, "labels", &labels, err);
    if (!st)
        st = golden_tensor(be, c, "class_weights", &cw, err);
    if (!st)
        st = check_input(c, &x, &labels, u3d_net_get_config(net)->in_channels,
                         err);
    if (!st)
        st = u3d_net_forward(net, &x, U3D_NET_TRAIN, &logits, err);
    if (!st)
        st = u3d_tensor_create(be, logits->shape, U3D_F32, &dlogits, err);
    if (!st)
        st = u3d_softmax_ce(logits, &labels, &cw, ignore, NULL, &dlogits,
                            &loss, NULL, err);
    if (!st)
        st = u3d_net_backward(net, &dlogits, err);
    if (!st)
        st = golden_check(c, rep, "logits", logits, U3D_GOLDEN_TOL_FWD, err);
    if (!st)
        st = golden_check_host(c, rep, "loss", &loss, 1, U3D_GOLDEN_TOL_FWD,
                               err);
    for (int i = 0; i < n && !st; i++) {
        char dname[80];
        snprintf(dname, sizeof dname, "d_%s", names[i]);
        const u3d_tensor *g = &u3d_net_find(net, names[i])->grad;
        if (bias_before_bn(net, names[i]))
            st = check_zero_grad(c, rep, names[i], g, err);
        else
            st = golden_check(c, rep, dname, g, U3D_GOLDEN_TOL_GRAD, err);
    }
    u3d_tensor_release(&x);
    u3d_tensor_release(&labels);
    u3d_tensor_release(&cw);
    u3d_tensor_release(&dlogits);
    return st;
}

u3d_status golden_unet3d(u3d_backend *be, const golden_case *c,
                         golden_report *rep, u3d_error *err)
{
    u3d_net_config cfg;
    int ignore, n;
    char *names[MAX_NAMES];
    u3d_status st = read_config(c, &cfg, &ignore, err);
    if (st)
        return st;
    const char *order = golden_get(c, "parameter_order");
    if (!order)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/case.txt: key 'parameter_order' missing", c->dir);
    size_t len = strlen(order) + 1;
    char *list = malloc(len);
    if (list)
        memcpy(list, order, len);
    if (!list)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_net *net = NULL;
    st = read_order(c, list, names, &n, err);
    if (!st)
        st = u3d_net_create(be, &cfg, &net, err);
    if (!st)
        st = load_params(be, c, net, names, n, err);
    if (!st)
        st = run(be, c, rep, net, ignore, names, n, err);
    u3d_net_destroy(net);
    free(list);
    return st;
}
