/* STUB: golden handler for sgd, not implemented yet. */
#include "golden/golden.h"

u3d_status golden_sgd(u3d_backend *be, const golden_case *c,
                       golden_report *rep, u3d_error *err)
{
    (void)be;
    (void)c;
    (void)rep;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "not yet supported");
}
