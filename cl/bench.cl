/* Benchmark kernels of `unet3d bench`.
 *
 * fma_peak: register-resident FMA throughput. Each work-item keeps NACC
 * independent vector accumulators of width VW (so the FMA latency is hidden
 * by independent chains) and runs `iters` x UNROLL rounds of acc = acc*a + b
 * on all of them; their sum (VW floats per work-item) is written at the end
 * so nothing is optimised away.
 * a and b are kernel arguments, so the compiler cannot fold the chain.
 * Build options: -DVW=4|8|16 -DNACC=4|8|12|16 [-DUNROLL=1|2|4|8|16].
 *
 * stream_copy: device memory bandwidth (float4 copy). */
#ifndef VW
#define VW 8
#endif
#ifndef NACC
#define NACC 16
#endif
#ifndef UNROLL
#define UNROLL 8
#endif

#include "vector_width.h"

#define A4(M) M(0) M(1) M(2) M(3)
#define A8(M) A4(M) M(4) M(5) M(6) M(7)
#define A12(M) A8(M) M(8) M(9) M(10) M(11)
#define A16(M) A12(M) M(12) M(13) M(14) M(15)
#define ALL(M) CAT(A, NACC)(M)

/* UNROLL rounds written out: no reliance on #pragma unroll. */
#define R1(x) x
#define R2(x) x x
#define R4(x) R2(x) R2(x)
#define R8(x) R4(x) R4(x)
#define R16(x) R8(x) R8(x)

#define DECL(j) VEC acc##j = (VEC)(seed + 0.001f * (float)(j));
#define STEP(j) acc##j = fma(acc##j, va, vb);
#define SUM(j) s += acc##j;

__kernel void fma_peak(__global float *out, const uint n, const int iters,
                       const float a, const float b)
{
    const uint gid = get_global_id(0);
    const float seed = (float)(gid & 255u) * 1e-3f;
    const VEC va = (VEC)(a), vb = (VEC)(b);
    ALL(DECL)
    for (int i = 0; i < iters; i++) {
        CAT(R, UNROLL)(ALL(STEP))
    }
    VEC s = (VEC)(0.0f);
    ALL(SUM)
    /* the whole vector is stored: a horizontal sum becomes a shuffle that
     * crashes oclgrind's --uninitialized plugin (21.10) */
    if (gid < n)
        CAT(vstore, VW)(s, gid, out);
}

__kernel void stream_copy(__global const float4 *x, __global float4 *y,
                          const uint n)
{
    const uint i = get_global_id(0);
    if (i < n)
        y[i] = x[i];
}
