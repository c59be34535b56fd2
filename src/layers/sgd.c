/* STUB: sgd not implemented yet. */
#include "layers/layers.h"

u3d_status u3d_cl_sgd_step(u3d_backend *be, const u3d_sgd_params *p, u3d_tensor *param, cten *grad, u3d_tensor *buf,
    u3d_error *err)
{
    (void)be; (void)p; (void)param; (void)grad; (void)buf;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "sgd_step is not implemented yet");
}

u3d_status u3d_cl_axpy(u3d_backend *be, float alpha, cten *x, u3d_tensor *y,
    u3d_error *err)
{
    (void)be; (void)alpha; (void)x; (void)y;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "axpy is not implemented yet");
}
