/* STUB: crop_concat not implemented yet. */
#include "ref/ref.h"

u3d_status u3d_ref_crop_concat_forward(u3d_backend *be, cten *skip, cten *up, u3d_tensor *y,
    u3d_error *err)
{
    (void)be; (void)skip; (void)up; (void)y;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "crop_concat_forward is not implemented yet");
}

u3d_status u3d_ref_crop_concat_backward(u3d_backend *be, cten *dy, u3d_tensor *dskip, u3d_tensor *dup, int accumulate_skip,
    u3d_error *err)
{
    (void)be; (void)dy; (void)dskip; (void)dup; (void)accumulate_skip;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "crop_concat_backward is not implemented yet");
}
