/* SGD step and axpy reference. */
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
