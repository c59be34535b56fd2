/* CUDA C kernels of the cuDNN backend: the ops cuDNN lacks or whose cuDNN
 * rule differs from the contract (max-pool ties). Compiled at run time by
 * NVRTC for the device's architecture (see nvrtc.c); embedded into the
 * library by cmake/cudnn_embed.cmake. No system headers: NVRTC has no C
 * library (the one include, cl/augment.cl, is handed over by nvrtc.c).
 * The source is also valid C11, which tests/test_cudnn.c compiles into a
 * small CUDA emulator to check the kernels against the reference without a
 * GPU: keep it free of C++-only constructs outside the macros below.
 *
 * Conventions: every launch uses blockDim.x == U3D_BLOCK (256) and loops
 * grid-stride, so any grid size is correct; element counts are below 2^31
 * (u3d_tensor_create refuses more) but indices are computed in 64 bits.
 * Reductions are two-level with a fixed assignment of elements to threads
 * and a fixed tree, so results are bitwise reproducible for a given shape.
 * Parameter lists must match the signature table u3d_cudnn_kernels in
 * nvrtc.c: every launch is checked against it, and the tests check it
 * against the PTX NVRTC makes of this file. */

#ifndef U3D_KERNEL /* NVRTC; the tests' host emulation defines its own */
#define U3D_KERNEL extern "C" __global__ void
#define U3D_DEVICE __device__ static
#endif

#define U3D_BLOCK 256
#define GRID_STRIDE(i, n)                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;       \
         i < (n); i += (long long)blockDim.x * gridDim.x)

/* Tree sum of sh[0..U3D_BLOCK) into sh[0]; all threads must call it. */
U3D_DEVICE void block_sum(volatile double *sh)
{
    __syncthreads();
    for (int s = U3D_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
}

U3D_KERNEL u3d_fill_f32(float *p, long long n, float v)
{
    GRID_STRIDE(i, n) p[i] = v;
}

/* y += alpha * x, in double like the reference. */
U3D_KERNEL u3d_axpy_f32(long long n, float alpha, const float *x, float *y)
{
    GRID_STRIDE(i, n) y[i] = (float)((double)y[i] + (double)alpha * x[i]);
}

/* buf = m*buf + g + wd*w; w -= lr*buf (PyTorch SGD, dampening 0). */
U3D_KERNEL u3d_sgd_f32(long long n, float lr, float m, float wd, float *w,
                       const float *g, float *buf)
{
    GRID_STRIDE(i, n)
    {
        double d = (double)g[i] + (double)wd * w[i];
        float b = (float)((double)m * buf[i] + d);
        buf[i] = b;
        w[i] = (float)(w[i] - (double)lr * b);
    }
}

/* PyTorch Adam in double like the reference: g += wd*w; m = b1*m +
 * (1-b1)*g; v = b2*v + (1-b2)*g*g; w -= step_size*m / (sqrt(v)/bc2 + eps)
 * (step_size, bc2: the host's bias corrections). */
U3D_KERNEL u3d_adam_f32(long long n, float step_size, double b1, double b2,
                        float eps, float wd, float bc2, float *w,
                        const float *g, float *m, float *v)
{
    GRID_STRIDE(i, n)
    {
        double d = (double)g[i] + (double)wd * w[i];
        float a = (float)(b1 * m[i] + (1.0 - b1) * d);
        float b = (float)(b2 * v[i] + (1.0 - b2) * d * d);
        m[i] = a;
        v[i] = b;
        double den = sqrt((double)b) / (double)bc2 + (double)eps;
        w[i] = (float)(w[i] - (double)step_size * a / den);
    }
}

U3D_KERNEL u3d_relu_fwd(long long n, const float *x, float *y)
{
    GRID_STRIDE(i, n)
    {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

U3D_KERNEL u3d_relu_bwd(long long n, const float *y, const float *dy, float *dx)
{
    GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* y[n,c,s] += b[c] over an N,C,S view of total elements. */
U3D_KERNEL u3d_bias_add(float *y, const float *b, long long S, int C,
                        long long total)
{
    GRID_STRIDE(i, total) y[i] += b[(i / S) % C];
}

/* Per-channel sums of an N,C,S tensor, level 1: block (bx, c) sums the
 * elements m = n*S + s with m = bx*256 + t (mod gridDim.x*256). */
U3D_KERNEL u3d_chan_partial(const float *x, int N, int C, long long S,
                            double *part)
{
    __shared__ double sh[U3D_BLOCK];
    int c = blockIdx.y;
    long long M = (long long)N * S, step = (long long)gridDim.x * U3D_BLOCK;
    double acc = 0.0;
    for (long long m = (long long)blockIdx.x * U3D_BLOCK + threadIdx.x; m < M;
         m += step) {
        long long n = m / S, s = m - n * S;
        acc += x[(n * C + c) * S + s];
    }
    sh[threadIdx.x] = acc;
    block_sum(sh);
    if (threadIdx.x == 0)
        part[(long long)c * gridDim.x + blockIdx.x] = sh[0];
}

/* Level 2: out[c] = sum of the B partials of channel c, in order. */
U3D_KERNEL u3d_chan_final(const double *part, int C, int B, float *out)
{
    GRID_STRIDE(c, C)
    {
        double s = 0.0;
        for (int b = 0; b < B; b++)
            s += part[c * B + b];
        out[c] = (float)s;
    }
}

/* Offset (in one D,H,W plane) of the maximum of window (oz,oy,ox), with
 * PyTorch's scan rule: d-major, then h, then w; a voxel wins when it is
 * greater than the current maximum or NaN (ties: the first one). */
U3D_DEVICE long long window_argmax(const float *plane, int H, int W, int fd,
                                   int fh, int fw, int oz, int oy, int ox)
{
    long long best = ((long long)(fd * oz) * H + fh * oy) * W + fw * ox;
    float m = __int_as_float(0xff800000); /* -inf */
    for (int dz = 0; dz < fd; dz++)
        for (int dy = 0; dy < fh; dy++)
            for (int dx = 0; dx < fw; dx++) {
                long long i =
                    ((long long)(fd * oz + dz) * H + (fh * oy + dy)) * W +
                    (fw * ox + dx);
                float v = plane[i];
                if (v > m || v != v) {
                    m = v;
                    best = i;
                }
            }
    return best;
}

/* One thread per output voxel of the N*C planes (od x oh x ow each). */
U3D_KERNEL u3d_maxpool_fwd(const float *x, float *y, int D, int H, int W,
                           int od, int oh, int ow, long long total)
{
    GRID_STRIDE(i, total)
    {
        long long po = (long long)od * oh * ow, nc = i / po, r = i - nc * po;
        int oz = (int)(r / ((long long)oh * ow));
        int oy = (int)((r / ow) % oh), ox = (int)(r % ow);
        const float *plane = x + nc * ((long long)D * H * W);
        /* window 1 along an axis the output keeps (1x2x2), else 2 */
        y[i] = plane[window_argmax(plane, H, W, od == D ? 1 : 2,
                                   oh == H ? 1 : 2, ow == W ? 1 : 2, oz, oy,
                                   ox)];
    }
}

/* dx must be zero beforehand; windows do not overlap, so no races. */
U3D_KERNEL u3d_maxpool_bwd(const float *x, const float *dy, float *dx, int D,
                           int H, int W, int od, int oh, int ow,
                           long long total)
{
    GRID_STRIDE(i, total)
    {
        long long po = (long long)od * oh * ow, nc = i / po, r = i - nc * po;
        int oz = (int)(r / ((long long)oh * ow));
        int oy = (int)((r / ow) % oh), ox = (int)(r % ow);
        long long p = (long long)D * H * W;
        dx[nc * p + window_argmax(x + nc * p, H, W, od == D ? 1 : 2,
                                  oh == H ? 1 : 2, ow == W ? 1 : 2, oz, oy,
                                  ox)] = dy[i];
    }
}

/* y[n, c] = c < Cs ? skip[n, c] cropped at (oz,oy,ox) : up[n, c - Cs];
 * one thread per element of y (N, Cs+Cu, D, H, W). */
U3D_KERNEL u3d_crop_concat_fwd(const float *skip, const float *up, float *y,
                               int N, int Cs, int Ds, int Hs, int Ws, int Cu,
                               int D, int H, int W, int oz, int oy, int ox)
{
    long long P = (long long)D * H * W, Ct = Cs + Cu;
    GRID_STRIDE(i, (long long)N * Ct * P)
    {
        long long nc = i / P, p = i - nc * P;
        long long n = nc / Ct;
        int c = (int)(nc - n * Ct);
        if (c < Cs) {
            int z = (int)(p / ((long long)H * W)), yy = (int)((p / W) % H);
            int xx = (int)(p % W);
            y[i] = skip[(((n * Cs + c) * Ds + z + oz) * Hs + yy + oy) * Ws +
                        xx + ox];
        } else {
            y[i] = up[(n * Cu + (c - Cs)) * P + p];
        }
    }
}

/* dskip from the first Cs channels of dy: inside the crop window dy (added
 * when accumulate), outside 0 (kept when accumulate). One thread per
 * element of dskip (N, Cs, Ds, Hs, Ws). */
U3D_KERNEL u3d_crop_concat_bwd_skip(const float *dy, float *dskip, int N,
                                    int Cs, int Ds, int Hs, int Ws, int Cu,
                                    int D, int H, int W, int oz, int oy, int ox,
                                    int accumulate)
{
    long long Ps = (long long)Ds * Hs * Ws, Ct = Cs + Cu;
    GRID_STRIDE(i, (long long)N * Cs * Ps)
    {
        long long nc = i / Ps, p = i - nc * Ps;
        long long n = nc / Cs, c = nc - n * Cs;
        int z = (int)(p / ((long long)Hs * Ws)) - oz;
        int yy = (int)((p / Ws) % Hs) - oy, xx = (int)(p % Ws) - ox;
        int in = z >= 0 && z < D && yy >= 0 && yy < H && xx >= 0 && xx < W;
        float v = 0.0f;
        if (in)
            v = dy[(((n * Ct + c) * D + z) * H + yy) * W + xx];
        if (accumulate)
            dskip[i] += v;
        else
            dskip[i] = 0.0f + v;
    }
}

/* dup[n, c] = dy[n, Cs + c]; one thread per element of dup (N, Cu, P). */
U3D_KERNEL u3d_crop_concat_bwd_up(const float *dy, float *dup, int N, int Cs,
                                  int Cu, long long P)
{
    long long Ct = Cs + Cu;
    GRID_STRIDE(i, (long long)N * Cu * P)
    {
        long long nc = i / P, p = i - nc * P;
        long long n = nc / Cu, c = nc - n * Cu;
        dup[i] = dy[(n * Ct + Cs + c) * P + p];
    }
}

/* Softmax cross-entropy, pass 1 over the V labels: per block the sum of
 * w[label] of labeled voxels, the number of invalid labels and the lowest
 * voxel index holding one (V when none). */
U3D_KERNEL u3d_ce_weights(const int *lab, long long V, int C, int ignore,
                          const float *w, double *part_sw, long long *part_bad,
                          long long *part_first)
{
    __shared__ double sh[U3D_BLOCK];
    __shared__ long long bad[U3D_BLOCK], first[U3D_BLOCK];
    double sw = 0.0;
    long long nb = 0, f = V;
    GRID_STRIDE(v, V)
    {
        int y = lab[v];
        if (y == ignore)
            continue;
        if (y < 0 || y >= C) {
            nb++;
            f = v < f ? v : f;
        } else {
            sw += w[y];
        }
    }
    sh[threadIdx.x] = sw;
    bad[threadIdx.x] = nb;
    first[threadIdx.x] = f;
    block_sum(sh);
    for (int s = U3D_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            bad[threadIdx.x] += bad[threadIdx.x + s];
            long long o = first[threadIdx.x + s];
            if (o < first[threadIdx.x])
                first[threadIdx.x] = o;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        part_sw[blockIdx.x] = sh[0];
        part_bad[blockIdx.x] = bad[0];
        part_first[blockIdx.x] = first[0];
    }
}

/* Pass 2, one block: dout[0] = sum of weights; iout = {invalid count,
 * first invalid voxel (V when none), its label}. */
U3D_KERNEL u3d_ce_weights_final(const double *part_sw,
                                const long long *part_bad,
                                const long long *part_first, int G,
                                const int *lab, long long V, double *dout,
                                long long *iout)
{
    __shared__ double sh[U3D_BLOCK];
    __shared__ long long bad[U3D_BLOCK], first[U3D_BLOCK];
    double sw = 0.0;
    long long nb = 0, f = V;
    for (int g = threadIdx.x; g < G; g += U3D_BLOCK) {
        sw += part_sw[g];
        nb += part_bad[g];
        f = part_first[g] < f ? part_first[g] : f;
    }
    sh[threadIdx.x] = sw;
    bad[threadIdx.x] = nb;
    first[threadIdx.x] = f;
    block_sum(sh);
    for (int s = U3D_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            bad[threadIdx.x] += bad[threadIdx.x + s];
            long long o = first[threadIdx.x + s];
            if (o < first[threadIdx.x])
                first[threadIdx.x] = o;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        dout[0] = sh[0];
        iout[0] = bad[0];
        iout[1] = first[0];
        iout[2] = first[0] < V ? lab[first[0]] : 0;
    }
}

/* Pass 3 over voxels v = n*S + s: softmax over C, probs, dlogits =
 * w[y]/sum_w * (p - onehot(y)) (0 for ignored voxels) and per block the
 * loss sum of w[y] * -log p[y]. probs/dlogits may be NULL. Labels were
 * validated by pass 1 and 2. */
U3D_KERNEL u3d_ce_softmax(const float *z, const int *lab, const float *w, int N,
                          int C, long long S, int ignore, const double *dsw,
                          float *probs, float *dlogits, double *part_loss)
{
    __shared__ double sh[U3D_BLOCK];
    double sw = dsw[0], scale = sw != 0.0 ? 1.0 / sw : 0.0, loss = 0.0;
    GRID_STRIDE(v, (long long)N * S)
    {
        long long n = v / S, s = v - n * S;
        const float *zv = z + n * C * S + s;
        int y = lab[v];
        int use = y != ignore && y >= 0 && y < C;
        float mx = zv[0];
        for (int c = 1; c < C; c++)
            mx = fmaxf(mx, zv[(long long)c * S]);
        float se = 0.0f;
        for (int c = 0; c < C; c++)
            se += expf(zv[(long long)c * S] - mx);
        if (use)
            loss += (double)w[y] *
                    ((double)logf(se) - (double)(zv[(long long)y * S] - mx));
        double g = use ? (double)w[y] * scale : 0.0;
        for (int c = 0; c < C; c++) {
            long long o = (n * C + c) * S + s;
            float p = expf(zv[(long long)c * S] - mx) / se;
            if (probs)
                probs[o] = p;
            if (dlogits)
                dlogits[o] = use ? (float)(g * ((double)p - (c == y))) : 0.0f;
        }
    }
    sh[threadIdx.x] = loss;
    block_sum(sh);
    if (threadIdx.x == 0)
        part_loss[blockIdx.x] = sh[0];
}

/* One block: out[0] = sum of part[0..G) (fixed order per thread, then the
 * tree). */
U3D_KERNEL u3d_sum_final(const double *part, int G, double *out)
{
    __shared__ double sh[U3D_BLOCK];
    double s = 0.0;
    for (int g = threadIdx.x; g < G; g += U3D_BLOCK)
        s += part[g];
    sh[threadIdx.x] = s;
    block_sum(sh);
    if (threadIdx.x == 0)
        out[0] = sh[0];
}

/* ---- augmentation (augment.c) ----
 * The arithmetic is the shared part of cl/augment.cl, the very source the
 * OpenCL kernels and the host implementation compile, so a patch is bit
 * for bit the host's: only +, -, * and bit operations, our own ln, exp,
 * sqrt, sin and cos, and no FMA (nvrtc.c compiles with --fmad=false).
 * NVRTC gets that file as the header "augment.cl" and the Philox it
 * includes as "philox.h" (nvrtc.c); the tests' emulator has them already,
 * compiled as C by augment_internal.h. The constants travel by value
 * (kernel parameters live in constant memory, like OpenCL's __constant
 * buffer) and are copied to a local, so stores to out cannot alias them.
 * Same passes and guards as the OpenCL kernels; element counts are below
 * 2^31 (checked by augment.c). */
#ifdef __CUDACC_RTC__
#include "augment.cl"
#endif

U3D_KERNEL u3d_aug_control_points(aug_consts k, float *phi)
{
    const aug_consts kp = k;
    GRID_STRIDE(i, (long long)kp.ncz * kp.ncy * kp.ncx)
    {
        aug_control_point(&kp, phi, (int)i);
    }
}

/* p1 (3, ncz, ncy, w) from phi (3, ncz, ncy, ncx) */
U3D_KERNEL u3d_aug_field_w(aug_consts k, const float *phi, float *p1)
{
    const aug_consts kp = k;
    GRID_STRIDE(i, 3LL * kp.ncz * kp.ncy * kp.w)
    {
        aug_field_w(&kp, phi, p1, (int)i);
    }
}

/* p2 (3, ncz, h, w) from p1 */
U3D_KERNEL u3d_aug_field_h(aug_consts k, const float *p1, float *p2)
{
    const aug_consts kp = k;
    GRID_STRIDE(i, 3LL * kp.ncz * kp.h * kp.w)
    {
        aug_field_h(&kp, p1, p2, (int)i);
    }
}

/* One thread per output voxel; the label pointers are NULL (never read)
 * without labels. */
U3D_KERNEL u3d_aug_sample(aug_consts k, const float *src, const int *src_lab,
                          const float *field, float *out, int *out_lab)
{
    const aug_consts kp = k;
    GRID_STRIDE(i, (long long)kp.d * kp.h * kp.w)
    {
        int row = (int)i / kp.w, x = (int)i - row * kp.w;
        int z = row / kp.h, y = row - z * kp.h;
        aug_voxel(&kp, src, src_lab, field, out, out_lab, z, y, x);
    }
}

/* Gray values, one thread per group of 4 channels of a voxel. */
U3D_KERNEL u3d_aug_gray(aug_consts k, float *out)
{
    const aug_consts kp = k;
    GRID_STRIDE(i, (long long)((kp.C + 3) / 4) * kp.d * kp.h * kp.w)
    {
        aug_gray_group(&kp, out, (int)i);
    }
}
