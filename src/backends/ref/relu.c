/* ReLU reference. */
#include "backends/ref/ref.h"

u3d_status u3d_ref_relu_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                                u3d_error *err)
{
    (void)be;
    (void)err;
    size_t n = u3d_shape_count(x->shape);
    const float *a = u3d_ref_f(x);
    float *b = u3d_ref_f(y);
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] > 0.0f ? a[i] : 0.0f;
    return U3D_OK;
}

u3d_status u3d_ref_relu_backward(u3d_backend *be, cten *y, cten *dy,
                                 u3d_tensor *dx, u3d_error *err)
{
    (void)be;
    (void)err;
    size_t n = u3d_shape_count(y->shape);
    const float *a = u3d_ref_f(y), *g = u3d_ref_f(dy);
    float *o = u3d_ref_f(dx);
    for (size_t i = 0; i < n; i++)
        o[i] = a[i] > 0.0f ? g[i] : 0.0f;
    return U3D_OK;
}
