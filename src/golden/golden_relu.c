/* Golden case: relu (x, y, dy, dx). */
#include "golden/golden.h"

u3d_status golden_relu(u3d_backend *be, const golden_case *c,
                       golden_report *rep, u3d_error *err)
{
    u3d_tensor x = {0}, dy = {0}, y = {0}, dx = {0};
    u3d_status st = golden_tensor(be, c, "x", &x, err);
    if (!st)
        st = golden_tensor(be, c, "dy", &dy, err);
    if (!st)
        st = u3d_tensor_create(be, x.shape, U3D_F32, &y, err);
    if (!st)
        st = u3d_tensor_create(be, x.shape, U3D_F32, &dx, err);
    if (!st)
        st = u3d_relu_forward(&x, &y, err);
    if (!st)
        st = u3d_relu_backward(&y, &dy, &dx, err);
    const golden_expect rows[] = {{"y", &y, U3D_GOLDEN_TOL_FWD},
                                  {"dx", &dx, U3D_GOLDEN_TOL_GRAD}};
    if (!st)
        st = golden_check_all(c, rep, rows, 2, err);
    u3d_tensor_release(&x);
    u3d_tensor_release(&dy);
    u3d_tensor_release(&y);
    u3d_tensor_release(&dx);
    return st;
}
