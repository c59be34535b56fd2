/* 3D convolution reference: direct loops, sums in double. Every output is
 * gathered (no scatter), so each formula reads as its definition. */
#include "backends/ref/ref.h"

typedef struct dims {
    int n, c, d, h, w;
} dims;

static dims dims_of(const u3d_tensor *t)
{
    dims r = {t->shape.n, t->shape.c, t->shape.d, t->shape.h, t->shape.w};
    return r;
}

static size_t at(dims s, int n, int c, int z, int y, int x)
{
    return ((((size_t)n * s.c + c) * s.d + z) * s.h + y) * s.w + x;
}

static int inside(int v, int n) { return v >= 0 && v < n; }

/* y[n,co,z,y,x] = b[co] + sum w[co,ci,kz,ky,kx] * x[n,ci,z+kz-pd,...],
 * kernel and padding per axis (u3d_conv3d_axes) */
u3d_status u3d_ref_conv3d_forward(u3d_backend *be, const u3d_conv3d_params *p,
                                  cten *x, cten *w, cten *b, u3d_tensor *y,
                                  u3d_error *err)
{
    (void)be;
    (void)err;
    const float *X = u3d_ref_f(x), *Wt = u3d_ref_f(w);
    const float *B = b ? u3d_ref_f(b) : NULL;
    float *Y = u3d_ref_f(y);
    dims xs = dims_of(x), ws = dims_of(w), ys = dims_of(y);
    int K[3], P[3];
    u3d_conv3d_axes(p, K, P);
    for (int n = 0; n < ys.n; n++)
        for (int co = 0; co < ys.c; co++)
            for (int z = 0; z < ys.d; z++)
                for (int yy = 0; yy < ys.h; yy++)
                    for (int xx = 0; xx < ys.w; xx++) {
                        double s = B ? B[co] : 0.0;
                        for (int ci = 0; ci < xs.c; ci++)
                            for (int kz = 0; kz < K[0]; kz++)
                                for (int ky = 0; ky < K[1]; ky++)
                                    for (int kx = 0; kx < K[2]; kx++) {
                                        int iz = z + kz - P[0],
                                            iy = yy + ky - P[1],
                                            ix = xx + kx - P[2];
                                        if (!inside(iz, xs.d) ||
                                            !inside(iy, xs.h) ||
                                            !inside(ix, xs.w))
                                            continue;
                                        s += (double)Wt[at(ws, co, ci, kz, ky,
                                                           kx)] *
                                             X[at(xs, n, ci, iz, iy, ix)];
                                    }
                        if (p->relu && s < 0)
                            s = 0;
                        Y[at(ys, n, co, z, yy, xx)] = (float)s;
                    }
    return U3D_OK;
}

/* dx[n,ci,iz,iy,ix] = sum over taps of w[co,ci,kz,ky,kx] * dy[n,co,z,y,x]
 * with z = iz - kz + p (and likewise y, x) inside dy. */
u3d_status u3d_ref_conv3d_backward_data(u3d_backend *be,
                                        const u3d_conv3d_params *p, cten *dy,
                                        cten *w, u3d_tensor *dx,
                                        u3d_error *err)
{
    (void)be;
    (void)err;
    const float *G = u3d_ref_f(dy), *Wt = u3d_ref_f(w);
    float *DX = u3d_ref_f(dx);
    dims gs = dims_of(dy), ws = dims_of(w), xs = dims_of(dx);
    int K[3], P[3];
    u3d_conv3d_axes(p, K, P);
    for (int n = 0; n < xs.n; n++)
        for (int ci = 0; ci < xs.c; ci++)
            for (int iz = 0; iz < xs.d; iz++)
                for (int iy = 0; iy < xs.h; iy++)
                    for (int ix = 0; ix < xs.w; ix++) {
                        double s = 0.0;
                        for (int co = 0; co < gs.c; co++)
                            for (int kz = 0; kz < K[0]; kz++)
                                for (int ky = 0; ky < K[1]; ky++)
                                    for (int kx = 0; kx < K[2]; kx++) {
                                        int z = iz - kz + P[0],
                                            y = iy - ky + P[1],
                                            x = ix - kx + P[2];
                                        if (!inside(z, gs.d) ||
                                            !inside(y, gs.h) ||
                                            !inside(x, gs.w))
                                            continue;
                                        s += (double)Wt[at(ws, co, ci, kz, ky,
                                                           kx)] *
                                             G[at(gs, n, co, z, y, x)];
                                    }
                        DX[at(xs, n, ci, iz, iy, ix)] = (float)s;
                    }
    return U3D_OK;
}

/* dw[co,ci,kz,ky,kx] = sum over n and outputs of dy * x at the tap;
 * db[co] = sum of dy[n,co,...]. */
u3d_status u3d_ref_conv3d_backward_weight(u3d_backend *be,
                                          const u3d_conv3d_params *p, cten *x,
                                          cten *dy, u3d_tensor *dw,
                                          u3d_tensor *db, u3d_error *err)
{
    (void)be;
    (void)err;
    const float *X = u3d_ref_f(x), *G = u3d_ref_f(dy);
    float *DW = u3d_ref_f(dw);
    dims xs = dims_of(x), gs = dims_of(dy), ws = dims_of(dw);
    int K[3], P[3];
    u3d_conv3d_axes(p, K, P);
    for (int co = 0; co < ws.n; co++)
        for (int ci = 0; ci < ws.c; ci++)
            for (int kz = 0; kz < K[0]; kz++)
                for (int ky = 0; ky < K[1]; ky++)
                    for (int kx = 0; kx < K[2]; kx++) {
                        double s = 0.0;
                        for (int n = 0; n < gs.n; n++)
                            for (int z = 0; z < gs.d; z++)
                                for (int y = 0; y < gs.h; y++)
                                    for (int xx = 0; xx < gs.w; xx++) {
                                        int iz = z + kz - P[0],
                                            iy = y + ky - P[1],
                                            ix = xx + kx - P[2];
                                        if (!inside(iz, xs.d) ||
                                            !inside(iy, xs.h) ||
                                            !inside(ix, xs.w))
                                            continue;
                                        s += (double)G[at(gs, n, co, z, y,
                                                          xx)] *
                                             X[at(xs, n, ci, iz, iy, ix)];
                                    }
                        DW[at(ws, co, ci, kz, ky, kx)] = (float)s;
                    }
    if (db) {
        float *DB = u3d_ref_f(db);
        size_t sp = (size_t)gs.d * gs.h * gs.w;
        for (int co = 0; co < gs.c; co++) {
            double s = 0.0;
            for (int n = 0; n < gs.n; n++) {
                const float *g = G + at(gs, n, co, 0, 0, 0);
                for (size_t i = 0; i < sp; i++)
                    s += g[i];
            }
            DB[co] = (float)s;
        }
    }
    return U3D_OK;
}
