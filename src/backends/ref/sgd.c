/* SGD and Adam steps and axpy, reference (double arithmetic). */
#include <math.h>
#include "backends/ref/ref.h"

u3d_status u3d_ref_sgd_step(u3d_backend *be, const u3d_sgd_params *p,
                            u3d_tensor *param, cten *grad, u3d_tensor *buf,
                            u3d_error *err)
{
    (void)be;
    (void)err;
    size_t n = u3d_shape_count(param->shape);
    float *w = u3d_ref_f(param), *b = u3d_ref_f(buf);
    const float *g = u3d_ref_f(grad);
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] + (double)p->weight_decay * w[i];
        b[i] = (float)((double)p->momentum * b[i] + d);
        w[i] = (float)(w[i] - (double)p->lr * b[i]);
    }
    return U3D_OK;
}

u3d_status u3d_ref_adam_step(u3d_backend *be, const u3d_adam_params *p,
                             u3d_tensor *param, cten *grad, u3d_tensor *m,
                             u3d_tensor *v, u3d_error *err)
{
    (void)be;
    (void)err;
    size_t n = u3d_shape_count(param->shape);
    float *w = u3d_ref_f(param), *a = u3d_ref_f(m), *b = u3d_ref_f(v);
    const float *g = u3d_ref_f(grad);
    float step_size, bc2;
    u3d_adam_corrections(p, &step_size, &bc2);
    double b1 = p->beta1, b2 = p->beta2;
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] + (double)p->weight_decay * w[i];
        a[i] = (float)(b1 * a[i] + (1.0 - b1) * d);
        b[i] = (float)(b2 * b[i] + (1.0 - b2) * d * d);
        double den = sqrt((double)b[i]) / bc2 + (double)p->eps;
        w[i] = (float)(w[i] - (double)step_size * a[i] / den);
    }
    return U3D_OK;
}

u3d_status u3d_ref_axpy(u3d_backend *be, float alpha, cten *x, u3d_tensor *y,
                        u3d_error *err)
{
    (void)be;
    (void)err;
    size_t n = u3d_shape_count(x->shape);
    const float *a = u3d_ref_f(x);
    float *b = u3d_ref_f(y);
    for (size_t i = 0; i < n; i++)
        b[i] = (float)(b[i] + (double)alpha * a[i]);
    return U3D_OK;
}
