/* Center crop + channel concatenation reference:
 *   y[n, c]        = skip[n, c, z+oz, y+oy, x+ox]   for c < Cs
 *   y[n, Cs + c]   = up[n, c, z, y, x]
 * with the crop offset per axis (skip size - up size) / 2. */
#include <string.h>
#include "backends/ref/ref.h"

/* Offset of voxel (z,y,x) of the crop window in one skip channel plane. */
static size_t skip_off(u3d_shape sk, u3d_shape up, int z, int y, int x)
{
    int oz = (sk.d - up.d) / 2, oy = (sk.h - up.h) / 2, ox = (sk.w - up.w) / 2;
    return ((size_t)(z + oz) * sk.h + (size_t)(y + oy)) * sk.w +
           (size_t)(x + ox);
}

u3d_status u3d_ref_crop_concat_forward(u3d_backend *be, cten *skip, cten *up,
                                       u3d_tensor *y, u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape sk = skip->shape, us = up->shape;
    size_t ps = u3d_shape_spatial(sk), pu = u3d_shape_spatial(us);
    int ct = sk.c + us.c;
    const float *sd = u3d_ref_f(skip), *ud = u3d_ref_f(up);
    float *yd = u3d_ref_f(y);
    for (int n = 0; n < us.n; n++) {
        for (int c = 0; c < sk.c; c++) {
            const float *src = sd + ((size_t)n * sk.c + c) * ps;
            float *dst = yd + ((size_t)n * ct + c) * pu;
            for (int z = 0; z < us.d; z++)
                for (int yy = 0; yy < us.h; yy++)
                    for (int xx = 0; xx < us.w; xx++)
                        dst[((size_t)z * us.h + yy) * us.w + xx] =
                            src[skip_off(sk, us, z, yy, xx)];
        }
        memcpy(yd + ((size_t)n * ct + sk.c) * pu, ud + (size_t)n * us.c * pu,
               (size_t)us.c * pu * sizeof *yd);
    }
    return U3D_OK;
}

u3d_status u3d_ref_crop_concat_backward(u3d_backend *be, cten *dy,
                                        u3d_tensor *dskip, u3d_tensor *dup,
                                        int accumulate_skip, u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape sk = dskip->shape, us = dup->shape;
    size_t ps = u3d_shape_spatial(sk), pu = u3d_shape_spatial(us);
    int ct = sk.c + us.c;
    const float *g = u3d_ref_f(dy);
    float *ds = u3d_ref_f(dskip), *du = u3d_ref_f(dup);
    if (!accumulate_skip)
        memset(ds, 0, u3d_shape_count(sk) * sizeof *ds);
    for (int n = 0; n < us.n; n++) {
        for (int c = 0; c < sk.c; c++) {
            const float *src = g + ((size_t)n * ct + c) * pu;
            float *dst = ds + ((size_t)n * sk.c + c) * ps;
            for (int z = 0; z < us.d; z++)
                for (int yy = 0; yy < us.h; yy++)
                    for (int xx = 0; xx < us.w; xx++)
                        dst[skip_off(sk, us, z, yy, xx)] +=
                            src[((size_t)z * us.h + yy) * us.w + xx];
        }
        memcpy(du + (size_t)n * us.c * pu, g + ((size_t)n * ct + sk.c) * pu,
               (size_t)us.c * pu * sizeof *du);
    }
    return U3D_OK;
}
