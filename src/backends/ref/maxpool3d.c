/* Max-pool 2x2x2 stride 2 reference, floor mode, PyTorch's scan rule: the
 * window is scanned d-major, then h, then w, and a voxel becomes the
 * maximum when it is greater than the current one or NaN. So ties go to the
 * first maximum, a NaN wins over numbers (and a later NaN over an earlier
 * one), and an all -inf window keeps its first voxel. */
#include <math.h>
#include <string.h>
#include "backends/ref/ref.h"

/* Offset in the channel plane of the maximum of window (oz, oy, ox). */
static size_t window_argmax(const float *plane, u3d_shape s, int oz, int oy,
                            int ox)
{
    size_t best =
        ((size_t)(2 * oz) * s.h + (size_t)(2 * oy)) * s.w + (size_t)(2 * ox);
    float m = -INFINITY;
    for (int dz = 0; dz < 2; dz++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
                size_t i =
                    ((size_t)(2 * oz + dz) * s.h + (size_t)(2 * oy + dy)) *
                        s.w +
                    (size_t)(2 * ox + dx);
                float v = plane[i];
                if (v > m || isnan(v)) {
                    m = v;
                    best = i;
                }
            }
    return best;
}

u3d_status u3d_ref_maxpool3d_forward(u3d_backend *be, cten *x, u3d_tensor *y,
                                     u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape s = x->shape, o = y->shape;
    size_t p = u3d_shape_spatial(s), po = u3d_shape_spatial(o);
    const float *xd = u3d_ref_f(x);
    float *yd = u3d_ref_f(y);
    for (size_t nc = 0; nc < (size_t)s.n * s.c; nc++) {
        const float *plane = xd + nc * p;
        for (int oz = 0; oz < o.d; oz++)
            for (int oy = 0; oy < o.h; oy++)
                for (int ox = 0; ox < o.w; ox++)
                    yd[nc * po + ((size_t)oz * o.h + oy) * o.w + ox] =
                        plane[window_argmax(plane, s, oz, oy, ox)];
    }
    return U3D_OK;
}

u3d_status u3d_ref_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy,
                                      u3d_tensor *dx, u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape s = x->shape, o = dy->shape;
    size_t p = u3d_shape_spatial(s), po = u3d_shape_spatial(o);
    const float *xd = u3d_ref_f(x), *g = u3d_ref_f(dy);
    float *dd = u3d_ref_f(dx);
    memset(dd, 0, u3d_shape_count(s) * sizeof *dd);
    for (size_t nc = 0; nc < (size_t)s.n * s.c; nc++) {
        const float *plane = xd + nc * p;
        for (int oz = 0; oz < o.d; oz++)
            for (int oy = 0; oy < o.h; oy++)
                for (int ox = 0; ox < o.w; ox++)
                    dd[nc * p + window_argmax(plane, s, oz, oy, ox)] =
                        g[nc * po + ((size_t)oz * o.h + oy) * o.w + ox];
    }
    return U3D_OK;
}
