/* STUB: batchnorm3d not implemented yet. */
#include "ref/ref.h"

u3d_status u3d_ref_batchnorm3d_forward_train(u3d_backend *be, const u3d_bn_params *p, cten *x, cten *gamma, cten *beta, u3d_tensor *running_mean, u3d_tensor *running_var, u3d_tensor *y, u3d_tensor *save_mean, u3d_tensor *save_invstd,
    u3d_error *err)
{
    (void)be; (void)p; (void)x; (void)gamma; (void)beta; (void)running_mean; (void)running_var; (void)y; (void)save_mean; (void)save_invstd;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "batchnorm3d_forward_train is not implemented yet");
}

u3d_status u3d_ref_batchnorm3d_forward_infer(u3d_backend *be, const u3d_bn_params *p, cten *x, cten *gamma, cten *beta, cten *running_mean, cten *running_var, u3d_tensor *y,
    u3d_error *err)
{
    (void)be; (void)p; (void)x; (void)gamma; (void)beta; (void)running_mean; (void)running_var; (void)y;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "batchnorm3d_forward_infer is not implemented yet");
}

u3d_status u3d_ref_batchnorm3d_backward(u3d_backend *be, cten *x, cten *dy, cten *gamma, cten *save_mean, cten *save_invstd, u3d_tensor *dx, u3d_tensor *dgamma, u3d_tensor *dbeta,
    u3d_error *err)
{
    (void)be; (void)x; (void)dy; (void)gamma; (void)save_mean; (void)save_invstd; (void)dx; (void)dgamma; (void)dbeta;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "batchnorm3d_backward is not implemented yet");
}
