/* STUB: maxpool3d not implemented yet. */
#include "layers/layers.h"

u3d_status u3d_cl_maxpool3d_forward(u3d_backend *be, cten *x, u3d_tensor *y,
    u3d_error *err)
{
    (void)be; (void)x; (void)y;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "maxpool3d_forward is not implemented yet");
}

u3d_status u3d_cl_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy, u3d_tensor *dx,
    u3d_error *err)
{
    (void)be; (void)x; (void)dy; (void)dx;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "maxpool3d_backward is not implemented yet");
}
