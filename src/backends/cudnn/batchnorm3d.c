/* Batch norm through cuDNN (CUDNN_BATCHNORM_SPATIAL: statistics per channel
 * over N, D, H, W), checked against the contract of ops.h:
 *  - cuDNN's resultSaveInvVariance is 1/sqrt(var + eps), i.e. the contract's
 *    save_invstd, and its backward uses the saved mean/invstd as given.
 *  - cuDNN updates the running variance with the unbiased batch variance
 *    (what PyTorch relies on when it hands running_var to cuDNN), and
 *    running = (1-factor)*running + factor*batch, so factor = momentum.
 *  - gamma/beta may be NULL: ones/zeros stand in; NULL dgamma/dbeta go to
 *    scratch (cuDNN always writes them).
 *  - Training needs N*D*H*W > 1 (unbiased variance), as in the reference. */
#ifdef U3D_HAVE_CUDNN
#include "backends/cudnn/cudnn_internal.h"

/* x/y and the 1xCx1x1x1 parameter descriptors of one call (cheap host
 * objects: no caching needed). */
typedef struct bn_descs {
    cudnnTensorDescriptor_t x, p;
} bn_descs;

static void bn_free(bn_descs *d)
{
    if (d->x)
        cudnnDestroyTensorDescriptor(d->x);
    if (d->p)
        cudnnDestroyTensorDescriptor(d->p);
}

static u3d_status bn_init(bn_descs *d, u3d_shape s, u3d_error *err)
{
    d->x = d->p = NULL;
    U3D_TRY(u3d_cudnn_tensor_desc(&d->x, s, err));
    U3D_TRY(u3d_dnn_check(cudnnCreateTensorDescriptor(&d->p),
                          "cudnnCreateTensorDescriptor", err));
    return u3d_dnn_check(
        cudnnDeriveBNTensorDescriptor(d->p, d->x, CUDNN_BATCHNORM_SPATIAL),
        "cudnnDeriveBNTensorDescriptor", err);
}

static u3d_status check_eps(double eps, u3d_error *err)
{
    if (eps < CUDNN_BN_MIN_EPSILON)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "batchnorm3d: eps %g is below cuDNN's minimum %g; "
                          "use a larger eps or another backend",
                          eps, (double)CUDNN_BN_MIN_EPSILON);
    return U3D_OK;
}

static const float *param_or(const u3d_tensor *t, const float *dflt)
{
    return t ? u3d_cudnn_f(t) : dflt;
}

static u3d_status train(u3d_cudnn *cx, const bn_descs *d,
                        const u3d_bn_params *p, cten *x, cten *gamma,
                        cten *beta, u3d_tensor *rm, u3d_tensor *rv,
                        u3d_tensor *y, u3d_tensor *save_mean,
                        u3d_tensor *save_invstd, u3d_error *err)
{
    const float one = 1.0f, zero = 0.0f;
    const char *label = "cudnn batchnorm forward (training)";
    U3D_TRY(u3d_cudnn_prof_begin(cx, err));
    U3D_TRY(u3d_dnn_check(
        cudnnBatchNormalizationForwardTraining(
            cx->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d->x,
            u3d_cudnn_f(x), d->x, u3d_cudnn_f(y), d->p,
            param_or(gamma, cx->ones), param_or(beta, cx->zeros),
            (double)p->momentum, rm ? u3d_cudnn_f(rm) : NULL,
            rv ? u3d_cudnn_f(rv) : NULL, (double)p->eps,
            u3d_cudnn_f(save_mean), u3d_cudnn_f(save_invstd)),
        label, err));
    return u3d_cudnn_prof_end(cx, label, err);
}

u3d_status u3d_cudnn_batchnorm3d_forward_train(u3d_backend *be,
                                      const u3d_bn_params *p, cten *x,
                                      cten *gamma, cten *beta,
                                      u3d_tensor *running_mean,
                                      u3d_tensor *running_var, u3d_tensor *y,
                                      u3d_tensor *save_mean,
                                      u3d_tensor *save_invstd, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    if ((size_t)x->shape.n * u3d_shape_spatial(x->shape) < 2)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "batchnorm3d (training): each channel needs more "
                          "than one value (N*D*H*W = 1); use a larger batch "
                          "or patch, or inference mode");
    U3D_TRY(check_eps(p->eps, err));
    U3D_TRY(u3d_cudnn_consts(cx, x->shape.c, err));
    bn_descs d;
    u3d_status st = bn_init(&d, x->shape, err);
    if (!st)
        st = train(cx, &d, p, x, gamma, beta, running_mean, running_var, y,
                   save_mean, save_invstd, err);
    bn_free(&d);
    return st;
}

u3d_status u3d_cudnn_batchnorm3d_forward_infer(u3d_backend *be,
                                      const u3d_bn_params *p, cten *x,
                                      cten *gamma, cten *beta,
                                      cten *running_mean, cten *running_var,
                                      u3d_tensor *y, u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    const float one = 1.0f, zero = 0.0f;
    const char *label = "cudnn batchnorm forward (inference)";
    U3D_TRY(check_eps(p->eps, err));
    U3D_TRY(u3d_cudnn_consts(cx, x->shape.c, err));
    bn_descs d;
    u3d_status st = bn_init(&d, x->shape, err);
    if (!st)
        st = u3d_cudnn_prof_begin(cx, err);
    if (!st)
        st = u3d_dnn_check(
            cudnnBatchNormalizationForwardInference(
                cx->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x,
                u3d_cudnn_f(x), d.x, u3d_cudnn_f(y), d.p,
                param_or(gamma, cx->ones), param_or(beta, cx->zeros),
                u3d_cudnn_f(running_mean), u3d_cudnn_f(running_var),
                (double)p->eps),
            label, err);
    if (!st)
        st = u3d_cudnn_prof_end(cx, label, err);
    bn_free(&d);
    return st;
}

u3d_status u3d_cudnn_batchnorm3d_backward(u3d_backend *be, cten *x, cten *dy,
                                 cten *gamma, cten *save_mean,
                                 cten *save_invstd, u3d_tensor *dx,
                                 u3d_tensor *dgamma, u3d_tensor *dbeta,
                                 u3d_error *err)
{
    u3d_cudnn *cx = u3d_cudnn_of(be);
    const float one = 1.0f, zero = 0.0f;
    const char *label = "cudnn batchnorm backward";
    int C = x->shape.c;
    U3D_TRY(u3d_cudnn_consts(cx, C, err));
    float *dg = dgamma ? u3d_cudnn_f(dgamma) : cx->dparam;
    float *dbt = dbeta ? u3d_cudnn_f(dbeta) : cx->dparam + C;
    /* eps only matters when cuDNN recomputes the statistics, which it does
     * not with the saved mean/invstd given; any valid value will do */
    double eps = CUDNN_BN_MIN_EPSILON > 1e-5 ? CUDNN_BN_MIN_EPSILON : 1e-5;
    bn_descs d;
    u3d_status st = bn_init(&d, x->shape, err);
    if (!st)
        st = u3d_cudnn_prof_begin(cx, err);
    if (!st)
        st = u3d_dnn_check(
            cudnnBatchNormalizationBackward(
                cx->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero,
                d.x, u3d_cudnn_f(x), d.x, u3d_cudnn_f(dy), d.x,
                u3d_cudnn_f(dx), d.p, param_or(gamma, cx->ones), dg, dbt, eps,
                u3d_cudnn_f(save_mean), u3d_cudnn_f(save_invstd)),
            label, err);
    if (!st)
        st = u3d_cudnn_prof_end(cx, label, err);
    bn_free(&d);
    return st;
}

#else
typedef int u3d_cudnn_bn_unused;
#endif
