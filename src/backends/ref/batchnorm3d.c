/* Batch norm reference: per-channel statistics in double, two passes
 * (mean, then squared deviations). */
#include <math.h>
#include "backends/ref/ref.h"

/* x[n][c][s] of an N,C,S view. */
#define AT(p, n, c, s) ((p)[((size_t)(n) * C + (c)) * S + (s)])

u3d_status u3d_ref_batchnorm3d_forward_train(
    u3d_backend *be, const u3d_bn_params *p, cten *x, cten *gamma, cten *beta,
    u3d_tensor *running_mean, u3d_tensor *running_var, u3d_tensor *y,
    u3d_tensor *save_mean, u3d_tensor *save_invstd, u3d_error *err)
{
    (void)be;
    size_t N = (size_t)x->shape.n, C = (size_t)x->shape.c;
    size_t S = u3d_shape_spatial(x->shape), M = N * S;
    if (M < 2)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "batchnorm3d (training): each channel needs more "
                          "than one value (N*D*H*W = 1); use a larger batch "
                          "or patch, or inference mode");
    const float *a = u3d_ref_f(x);
    float *b = u3d_ref_f(y);
    for (size_t c = 0; c < C; c++) {
        double sum = 0, sq = 0;
        for (size_t n = 0; n < N; n++)
            for (size_t s = 0; s < S; s++)
                sum += AT(a, n, c, s);
        double mean = sum / (double)M;
        for (size_t n = 0; n < N; n++)
            for (size_t s = 0; s < S; s++) {
                double d = AT(a, n, c, s) - mean;
                sq += d * d;
            }
        double var = sq / (double)M, inv = 1.0 / sqrt(var + p->eps);
        double g = gamma ? u3d_ref_f(gamma)[c] : 1.0;
        double bt = beta ? u3d_ref_f(beta)[c] : 0.0;
        for (size_t n = 0; n < N; n++)
            for (size_t s = 0; s < S; s++)
                AT(b, n, c, s) = (float)((AT(a, n, c, s) - mean) * inv * g + bt);
        u3d_ref_f(save_mean)[c] = (float)mean;
        u3d_ref_f(save_invstd)[c] = (float)inv;
        if (running_mean) {
            double m = p->momentum;
            float *rm = u3d_ref_f(running_mean), *rv = u3d_ref_f(running_var);
            rm[c] = (float)((1.0 - m) * rm[c] + m * mean);
            rv[c] = (float)((1.0 - m) * rv[c] + m * sq / (double)(M - 1));
        }
    }
    return U3D_OK;
}

u3d_status u3d_ref_batchnorm3d_forward_infer(u3d_backend *be,
                                             const u3d_bn_params *p, cten *x,
                                             cten *gamma, cten *beta,
                                             cten *running_mean,
                                             cten *running_var, u3d_tensor *y,
                                             u3d_error *err)
{
    (void)be;
    (void)err;
    size_t N = (size_t)x->shape.n, C = (size_t)x->shape.c;
    size_t S = u3d_shape_spatial(x->shape);
    const float *a = u3d_ref_f(x);
    float *b = u3d_ref_f(y);
    for (size_t c = 0; c < C; c++) {
        double mean = u3d_ref_f(running_mean)[c];
        double inv = 1.0 / sqrt((double)u3d_ref_f(running_var)[c] + p->eps);
        double g = gamma ? u3d_ref_f(gamma)[c] : 1.0;
        double bt = beta ? u3d_ref_f(beta)[c] : 0.0;
        for (size_t n = 0; n < N; n++)
            for (size_t s = 0; s < S; s++)
                AT(b, n, c, s) = (float)((AT(a, n, c, s) - mean) * inv * g + bt);
    }
    return U3D_OK;
}

/* With xhat = (x-mean)*invstd and M values per channel:
 * dx = gamma*invstd*(dy - sum(dy)/M - xhat*sum(dy*xhat)/M),
 * dgamma = sum(dy*xhat), dbeta = sum(dy). */
u3d_status u3d_ref_batchnorm3d_backward(u3d_backend *be, cten *x, cten *dy,
                                        cten *gamma, cten *save_mean,
                                        cten *save_invstd, u3d_tensor *dx,
                                        u3d_tensor *dgamma, u3d_tensor *dbeta,
                                        u3d_error *err)
{
    (void)be;
    (void)err;
    size_t N = (size_t)x->shape.n, C = (size_t)x->shape.c;
    size_t S = u3d_shape_spatial(x->shape), M = N * S;
    const float *a = u3d_ref_f(x), *g = u3d_ref_f(dy);
    float *o = u3d_ref_f(dx);
    for (size_t c = 0; c < C; c++) {
        double mean = u3d_ref_f(save_mean)[c], inv = u3d_ref_f(save_invstd)[c];
        double gm = gamma ? u3d_ref_f(gamma)[c] : 1.0;
        double sdy = 0, sdyx = 0;
        for (size_t n = 0; n < N; n++)
            for (size_t s = 0; s < S; s++) {
                sdy += AT(g, n, c, s);
                sdyx += AT(g, n, c, s) * (AT(a, n, c, s) - mean) * inv;
            }
        for (size_t n = 0; n < N; n++)
            for (size_t s = 0; s < S; s++) {
                double xh = (AT(a, n, c, s) - mean) * inv;
                AT(o, n, c, s) = (float)(gm * inv *
                                         (AT(g, n, c, s) - sdy / (double)M -
                                          xh * sdyx / (double)M));
            }
        if (dgamma)
            u3d_ref_f(dgamma)[c] = (float)sdyx;
        if (dbeta)
            u3d_ref_f(dbeta)[c] = (float)sdy;
    }
    return U3D_OK;
}
