/* STUB: conv3d not implemented yet. */
#include "ref/ref.h"

u3d_status u3d_ref_conv3d_forward(u3d_backend *be, const u3d_conv3d_params *p, cten *x, cten *w, cten *b, u3d_tensor *y,
    u3d_error *err)
{
    (void)be; (void)p; (void)x; (void)w; (void)b; (void)y;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "conv3d_forward is not implemented yet");
}

u3d_status u3d_ref_conv3d_backward_data(u3d_backend *be, const u3d_conv3d_params *p, cten *dy, cten *w, u3d_tensor *dx,
    u3d_error *err)
{
    (void)be; (void)p; (void)dy; (void)w; (void)dx;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "conv3d_backward_data is not implemented yet");
}

u3d_status u3d_ref_conv3d_backward_weight(u3d_backend *be, const u3d_conv3d_params *p, cten *x, cten *dy, u3d_tensor *dw, u3d_tensor *db,
    u3d_error *err)
{
    (void)be; (void)p; (void)x; (void)dy; (void)dw; (void)db;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "conv3d_backward_weight is not implemented yet");
}
