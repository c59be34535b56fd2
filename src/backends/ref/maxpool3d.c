/* Max-pool reference, window = stride = 2 or 1 per axis (2x2x2, 1x2x2: the
 * window of an axis is 1 where y keeps x's size), floor mode, PyTorch's
 * scan rule: the window is scanned d-major, then h, then w, and a voxel
 * becomes the maximum when it is greater than the current one or NaN. So
 * ties go to the first maximum, a NaN wins over numbers (and a later NaN
 * over an earlier one), and an all -inf window keeps its first voxel. */
#include <math.h>
#include <string.h>
#include "backends/ref/ref.h"

/* Window size per axis: 1 where the output keeps the input's size. */
typedef struct win {
    int d, h, w;
} win;

static win win_of(u3d_shape s, u3d_shape o)
{
    win f = {o.d == s.d ? 1 : 2, o.h == s.h ? 1 : 2, o.w == s.w ? 1 : 2};
    return f;
}

/* Offset in the channel plane of the maximum of window (oz, oy, ox). */
static size_t window_argmax(const float *plane, u3d_shape s, win f, int oz,
                            int oy, int ox)
{
    size_t best = ((size_t)(f.d * oz) * s.h + (size_t)(f.h * oy)) * s.w +
                  (size_t)(f.w * ox);
    float m = -INFINITY;
    for (int dz = 0; dz < f.d; dz++)
        for (int dy = 0; dy < f.h; dy++)
            for (int dx = 0; dx < f.w; dx++) {
                size_t i = ((size_t)(f.d * oz + dz) * s.h +
                            (size_t)(f.h * oy + dy)) *
                               s.w +
                           (size_t)(f.w * ox + dx);
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
    win f = win_of(s, o);
    size_t p = u3d_shape_spatial(s), po = u3d_shape_spatial(o);
    const float *xd = u3d_ref_f(x);
    float *yd = u3d_ref_f(y);
    for (size_t nc = 0; nc < (size_t)s.n * s.c; nc++) {
        const float *plane = xd + nc * p;
        for (int oz = 0; oz < o.d; oz++)
            for (int oy = 0; oy < o.h; oy++)
                for (int ox = 0; ox < o.w; ox++)
                    yd[nc * po + ((size_t)oz * o.h + oy) * o.w + ox] =
                        plane[window_argmax(plane, s, f, oz, oy, ox)];
    }
    return U3D_OK;
}

u3d_status u3d_ref_maxpool3d_backward(u3d_backend *be, cten *x, cten *dy,
                                      u3d_tensor *dx, u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape s = x->shape, o = dy->shape;
    win f = win_of(s, o);
    size_t p = u3d_shape_spatial(s), po = u3d_shape_spatial(o);
    const float *xd = u3d_ref_f(x), *g = u3d_ref_f(dy);
    float *dd = u3d_ref_f(dx);
    memset(dd, 0, u3d_shape_count(s) * sizeof *dd);
    for (size_t nc = 0; nc < (size_t)s.n * s.c; nc++) {
        const float *plane = xd + nc * p;
        for (int oz = 0; oz < o.d; oz++)
            for (int oy = 0; oy < o.h; oy++)
                for (int ox = 0; ox < o.w; ox++)
                    dd[nc * p + window_argmax(plane, s, f, oz, oy, ox)] =
                        g[nc * po + ((size_t)oz * o.h + oy) * o.w + ox];
    }
    return U3D_OK;
}
