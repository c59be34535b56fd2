/* placeholder back ends (replaced as each format lands) */
#include "data/vio_impl.h"
u3d_status u3d_zarr_source_open(u3d_vsource *s, const char *path,
                                const char *dataset, int labels,
                                u3d_error *err)
{
    (void)s, (void)dataset, (void)labels;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "%s: Zarr not built", path);
}
u3d_status u3d_zarr_sink_open(u3d_vsink *s, const char *path, u3d_error *err)
{
    (void)s;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "%s: Zarr not built", path);
}
