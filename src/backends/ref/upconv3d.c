/* Transposed convolution reference, kernel = stride = f per axis (the
 * weight's spatial size: 2x2x2, 1x2x2), PyTorch semantics:
 *   y[n,co,fd z+a,fh y+b,fw x+c] = sum_ci x[n,ci,z,y,x] * w[ci,co,a,b,c]
 *                                  + b[co]
 * The kernel never overlaps itself (stride = size), so every output voxel
 * has exactly one input voxel and one tap. Sums are kept in double. */
#include "backends/ref/ref.h"

/* Offset of tap t = (a*fh + b)*fw + c (f = the weight's spatial shape ws)
 * of input voxel (z,y,x) in one output channel plane. */
static size_t out_off(u3d_shape xs, u3d_shape ws, int z, int y, int x, int t)
{
    int c = t % ws.w, b = (t / ws.w) % ws.h, a = t / (ws.w * ws.h);
    return ((size_t)(ws.d * z + a) * (size_t)(ws.h * xs.h) +
            (size_t)(ws.h * y + b)) *
               (size_t)(ws.w * xs.w) +
           (size_t)(ws.w * x + c);
}

u3d_status u3d_ref_upconv3d_forward(u3d_backend *be, cten *x, cten *w, cten *b,
                                    u3d_tensor *y, u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape xs = x->shape;
    int cin = xs.c, cout = w->shape.c;
    u3d_shape ws = w->shape;
    int nt = ws.d * ws.h * ws.w; /* taps */
    size_t p = u3d_shape_spatial(xs), po = (size_t)nt * p;
    const float *xd = u3d_ref_f(x), *wd = u3d_ref_f(w);
    const float *bd = b ? u3d_ref_f(b) : NULL;
    float *yd = u3d_ref_f(y);
    for (int n = 0; n < xs.n; n++)
        for (int co = 0; co < cout; co++)
            for (int z = 0; z < xs.d; z++)
                for (int yy = 0; yy < xs.h; yy++)
                    for (int xx = 0; xx < xs.w; xx++) {
                        size_t q = ((size_t)z * xs.h + yy) * xs.w + xx;
                        for (int t = 0; t < nt; t++) {
                            double s = bd ? bd[co] : 0.0;
                            for (int ci = 0; ci < cin; ci++)
                                s +=
                                    (double)xd[((size_t)n * cin + ci) * p + q] *
                                    wd[((size_t)ci * cout + co) * nt + t];
                            yd[((size_t)n * cout + co) * po +
                               out_off(xs, ws, z, yy, xx, t)] = (float)s;
                        }
                    }
    return U3D_OK;
}

u3d_status u3d_ref_upconv3d_backward_data(u3d_backend *be, cten *dy, cten *w,
                                          u3d_tensor *dx, u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape xs = dx->shape;
    int cin = xs.c, cout = w->shape.c;
    u3d_shape ws = w->shape;
    int nt = ws.d * ws.h * ws.w; /* taps */
    size_t p = u3d_shape_spatial(xs), po = (size_t)nt * p;
    const float *g = u3d_ref_f(dy), *wd = u3d_ref_f(w);
    float *o = u3d_ref_f(dx);
    for (int n = 0; n < xs.n; n++)
        for (int ci = 0; ci < cin; ci++)
            for (int z = 0; z < xs.d; z++)
                for (int yy = 0; yy < xs.h; yy++)
                    for (int xx = 0; xx < xs.w; xx++) {
                        double s = 0.0;
                        for (int co = 0; co < cout; co++)
                            for (int t = 0; t < nt; t++)
                                s += (double)g[((size_t)n * cout + co) * po +
                                               out_off(xs, ws, z, yy, xx, t)] *
                                     wd[((size_t)ci * cout + co) * nt + t];
                        o[((size_t)n * cin + ci) * p +
                          ((size_t)z * xs.h + yy) * xs.w + xx] = (float)s;
                    }
    return U3D_OK;
}

u3d_status u3d_ref_upconv3d_backward_weight(u3d_backend *be, cten *x, cten *dy,
                                            u3d_tensor *dw, u3d_tensor *db,
                                            u3d_error *err)
{
    (void)be;
    (void)err;
    u3d_shape xs = x->shape;
    int cin = xs.c, cout = dw->shape.c;
    u3d_shape ws = dw->shape;
    int nt = ws.d * ws.h * ws.w; /* taps */
    size_t p = u3d_shape_spatial(xs), po = (size_t)nt * p;
    const float *xd = u3d_ref_f(x), *g = u3d_ref_f(dy);
    float *o = u3d_ref_f(dw);
    for (int ci = 0; ci < cin; ci++)
        for (int co = 0; co < cout; co++)
            for (int t = 0; t < nt; t++) {
                double s = 0.0;
                for (int n = 0; n < xs.n; n++)
                    for (int z = 0; z < xs.d; z++)
                        for (int yy = 0; yy < xs.h; yy++)
                            for (int xx = 0; xx < xs.w; xx++)
                                s += (double)xd[((size_t)n * cin + ci) * p +
                                                ((size_t)z * xs.h + yy) * xs.w +
                                                xx] *
                                     g[((size_t)n * cout + co) * po +
                                       out_off(xs, ws, z, yy, xx, t)];
                o[((size_t)ci * cout + co) * nt + t] = (float)s;
            }
    if (db) {
        float *bo = u3d_ref_f(db);
        for (int co = 0; co < cout; co++) {
            double s = 0.0;
            for (int n = 0; n < xs.n; n++)
                for (size_t q = 0; q < po; q++)
                    s += g[((size_t)n * cout + co) * po + q];
            bo[co] = (float)s;
        }
    }
    return U3D_OK;
}
