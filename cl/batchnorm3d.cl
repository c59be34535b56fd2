/* Batch normalisation over N,D,H,W per channel (NCDHW layout).
 *
 * Every kernel walks planes p = n*C + c (S contiguous voxels) in chunks of
 * CH voxels: work-group (j, p) owns voxels [j*CH, min(S, (j+1)*CH)) of
 * plane p. Its LWS work-items take the chunk's vectors of VW floats
 * round-robin (item l: vectors l, l+LWS, ...; lanes along memory, so GPU
 * loads coalesce), then the few voxels after the last whole vector, one
 * each. With LWS = 1 (CPUs) an item walks its chunk contiguously with full
 * SIMD loads. Build options: -DVW=1|2|4|8|16, -DLWS=a power of two (the
 * launch's local size; the host checks it against the device).
 *
 * Reductions are two-level and deterministic (no atomics): stage 1 writes
 * one partial per chunk, merged in a fixed tree inside the work-group;
 * stage 2 runs one work-group per channel that merges the N*nch partials of
 * its channel in a fixed order (strided, then a tree in local memory).
 * Partials are stored channel-major: index (c*N + n)*nch + j.
 *
 * Statistics: each item computes the mean of its voxels, then the sum of
 * squared deviations from it (a second pass over the same voxels, which
 * are still in cache); items and chunks are merged with Chan et al.'s
 * pairwise formula. The variance never forms the cancelling difference
 * E[x^2] - E[x]^2 and needs no per-voxel division. */
#ifndef LWS
#define LWS 64
#endif
#include "vector_width.h"

/* Sum of the lanes of v in a fixed order. Through a private array:
 * oclgrind 21.10's --uninitialized plugin crashes on the shuffles a
 * component-wise sum compiles to. */
float hsum(const VEC v)
{
#if VW == 1
    return v;
#else
    float t[VW];
    VSTORE(v, t);
    float s = 0.0f;
    for (int i = 0; i < VW; i++)
        s += t[i];
    return s;
#endif
}

/* The voxel range of work-group j in a plane of S voxels. */
#define CHUNK_RANGE(b, e, j, CH, S)                                            \
    const uint b = (j) * (CH), e = min(b + (CH), (S))

/* Distance between consecutive vectors of one item. */
#define STEP (LWS * VW)

/* Vector loop of item l over [b, e): body sees the offset i of a vector. */
#define FOR_VECTORS(i, l, b, e)                                                \
    for (uint i = (b) + (l) * VW; i + VW <= (e); i += LWS * VW)

/* Tail loop: the voxels after the last whole vector, one per item. */
#define FOR_TAIL(t, l, b, e)                                                   \
    for (uint t = (b) + ((e) - (b)) / VW * VW + (l); t < (e); t += LWS)

/* Chan et al.: merges (mb, m2b, nb) into (*m, *m2, *n). */
void bn_merge(float *m, float *m2, uint *n, const float mb, const float m2b,
              const uint nb)
{
    if (nb == 0u)
        return;
    const uint nt = *n + nb;
    const float d = mb - *m;
    const float fb = (float)nb / (float)nt;
    *m += d * fb;
    *m2 += m2b + d * d * (float)(*n) * fb;
    *n = nt;
}

/* Merges the (mean, m2, count) of the LWS items of a work-group in a fixed
 * tree; the result is in item 0's variables. */
void bn_merge_group(float *m, float *m2, uint *n, __local float *lm,
                    __local float *lm2, __local uint *ln)
{
#if LWS > 1
    const uint l = get_local_id(0);
    lm[l] = *m;
    lm2[l] = *m2;
    ln[l] = *n;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = LWS / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            bn_merge(m, m2, n, lm[l + h], lm2[l + h], ln[l + h]);
            lm[l] = *m;
            lm2[l] = *m2;
            ln[l] = *n;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
}

/* Sums a and b over the LWS items of a work-group in a fixed tree. */
void bn_sum_group(float *a, float *b, __local float *la, __local float *lb)
{
#if LWS > 1
    const uint l = get_local_id(0);
    la[l] = *a;
    lb[l] = *b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = LWS / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            *a += la[l + h];
            *b += lb[l + h];
            la[l] = *a;
            lb[l] = *b;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
}

/* Stage 1 of the statistics. global (nch*LWS, N*C), local (LWS, 1):
 * pmean / pm2 at (c*N + n)*nch + j = mean and sum of squared deviations of
 * chunk j of plane n*C + c. */
__kernel void bn_stats_partial(__global const float *x, __global float *pmean,
                               __global float *pm2, const uint S,
                               const uint C, const uint N, const uint CH,
                               const uint nch, __local float *lm,
                               __local float *lm2, __local uint *ln)
{
    const uint l = get_local_id(0), j = get_group_id(0);
    const uint p = get_global_id(1);
    if (j >= nch || p >= N * C) /* uniform over the work-group */
        return;
    CHUNK_RANGE(b, e, j, CH, S);
    __global const float *xp = x + p * S;
    /* four independent accumulators hide the latency of the adds */
    VEC a0 = (VEC)(0.0f), a1 = a0, a2 = a0, a3 = a0;
    float s = 0.0f;
    uint cnt = 0;
    uint i = b + l * VW;
    for (; i + 3u * STEP + VW <= e; i += 4u * STEP) {
        a0 += VLOAD(xp + i);
        a1 += VLOAD(xp + i + STEP);
        a2 += VLOAD(xp + i + 2u * STEP);
        a3 += VLOAD(xp + i + 3u * STEP);
        cnt += 4u * VW;
    }
    for (; i + VW <= e; i += STEP) {
        a0 += VLOAD(xp + i);
        cnt += VW;
    }
    FOR_TAIL(t, l, b, e) {
        s += xp[t];
        cnt++;
    }
    const float mean = cnt ? (hsum((a0 + a1) + (a2 + a3)) + s) / (float)cnt
                           : 0.0f;
    a0 = a1 = a2 = a3 = (VEC)(0.0f);
    for (i = b + l * VW; i + 3u * STEP + VW <= e; i += 4u * STEP) {
        const VEC d0 = VLOAD(xp + i) - mean;
        const VEC d1 = VLOAD(xp + i + STEP) - mean;
        const VEC d2 = VLOAD(xp + i + 2u * STEP) - mean;
        const VEC d3 = VLOAD(xp + i + 3u * STEP) - mean;
        a0 += d0 * d0;
        a1 += d1 * d1;
        a2 += d2 * d2;
        a3 += d3 * d3;
    }
    for (; i + VW <= e; i += STEP) {
        const VEC d = VLOAD(xp + i) - mean;
        a0 += d * d;
    }
    float s2 = 0.0f;
    FOR_TAIL(t, l, b, e) {
        const float d = xp[t] - mean;
        s2 += d * d;
    }
    float m = mean, m2 = hsum((a0 + a1) + (a2 + a3)) + s2;
    uint n = cnt;
    bn_merge_group(&m, &m2, &n, lm, lm2, ln);
    if (l == 0u) {
        const uint img = p / C, o = ((p - img * C) * N + img) * nch + j;
        pmean[o] = m;
        pm2[o] = m2;
    }
}

/* Stage 2 of the statistics. global (L, C), local (L, 1), L a power of two
 * (not LWS). Writes the batch mean and 1/sqrt(biased var + eps); with
 * update != 0 also the running statistics (running variance from the
 * unbiased one). */
__kernel void bn_stats_final(__global const float *pmean,
                             __global const float *pm2, const uint S,
                             const uint C, const uint N, const uint CH,
                             const uint nch, const float eps,
                             const float momentum, const int update,
                             __global float *save_mean,
                             __global float *save_invstd,
                             __global float *run_mean, __global float *run_var,
                             __local float *lm, __local float *lm2,
                             __local uint *ln)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    const uint c = get_global_id(1), P = N * nch;
    float m = 0.0f, m2 = 0.0f;
    uint n = 0;
    for (uint i = l; i < P; i += L) {
        const uint j = i % nch;
        bn_merge(&m, &m2, &n, pmean[c * P + i], pm2[c * P + i],
                 min(CH, S - j * CH));
    }
    lm[l] = m;
    lm2[l] = m2;
    ln[l] = n;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = L / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            bn_merge(&m, &m2, &n, lm[l + h], lm2[l + h], ln[l + h]);
            lm[l] = m;
            lm2[l] = m2;
            ln[l] = n;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0u) {
        const float M = (float)N * (float)S;
        const float var = fmax(m2, 0.0f) / M;
        save_mean[c] = m;
        save_invstd[c] = 1.0f / sqrt(var + eps);
        if (update) {
            const float unbiased = fmax(m2, 0.0f) / (M - 1.0f);
            run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * m;
            run_var[c] = (1.0f - momentum) * run_var[c] + momentum * unbiased;
        }
    }
}

/* y = (x - mean) * invstd * gamma + beta. global (nch*LWS, N*C), local
 * (LWS, 1). With stat_is_var the statistic is a variance (inference with
 * running statistics) and invstd = 1/sqrt(var + eps). Absent gamma/beta
 * are dummy buffers with has_* = 0. y may be x. */
__kernel void bn_apply(__global const float *x, __global float *y,
                       __global const float *mean, __global const float *stat,
                       const int stat_is_var, const float eps,
                       __global const float *gamma, const int has_gamma,
                       __global const float *beta, const int has_beta,
                       const uint S, const uint C, const uint NC,
                       const uint CH)
{
    const uint l = get_local_id(0), j = get_group_id(0);
    const uint p = get_global_id(1), c = p - p / C * C;
    if (j * CH >= S || p >= NC)
        return;
    CHUNK_RANGE(b, e, j, CH, S);
    const float inv = stat_is_var ? 1.0f / sqrt(stat[c] + eps) : stat[c];
    const float mu = mean[c];
    const float g = has_gamma ? gamma[c] : 1.0f;
    const float be = has_beta ? beta[c] : 0.0f;
    __global const float *xp = x + p * S;
    __global float *yp = y + p * S;
    FOR_VECTORS(i, l, b, e)
        VSTORE((VLOAD(xp + i) - mu) * inv * g + be, yp + i);
    FOR_TAIL(t, l, b, e)
        yp[t] = (xp[t] - mu) * inv * g + be;
}

/* Stage 1 of backward. global (nch*LWS, N*C), local (LWS, 1): pa / pb at
 * (c*N + n)*nch + j = sum dy and sum dy*(x-mean) over chunk j of plane
 * n*C + c. */
__kernel void bn_bwd_partial(__global const float *x, __global const float *dy,
                             __global const float *mean, __global float *pa,
                             __global float *pb, const uint S, const uint C,
                             const uint N, const uint CH, const uint nch,
                             __local float *la, __local float *lb)
{
    const uint l = get_local_id(0), j = get_group_id(0);
    const uint p = get_global_id(1), img = p / C, c = p - img * C;
    if (j >= nch || p >= N * C) /* uniform over the work-group */
        return;
    CHUNK_RANGE(b, e, j, CH, S);
    const float mu = mean[c];
    __global const float *xp = x + p * S;
    __global const float *gp = dy + p * S;
    /* two independent pairs of accumulators hide the latency of the adds */
    VEC a0 = (VEC)(0.0f), a1 = a0, b0 = a0, b1 = a0;
    uint i = b + l * VW;
    for (; i + STEP + VW <= e; i += 2u * STEP) {
        const VEC g0 = VLOAD(gp + i), g1 = VLOAD(gp + i + STEP);
        a0 += g0;
        a1 += g1;
        b0 += g0 * (VLOAD(xp + i) - mu);
        b1 += g1 * (VLOAD(xp + i + STEP) - mu);
    }
    for (; i + VW <= e; i += STEP) {
        const VEC g = VLOAD(gp + i);
        a0 += g;
        b0 += g * (VLOAD(xp + i) - mu);
    }
    float sa = 0.0f, sb = 0.0f;
    FOR_TAIL(t, l, b, e) {
        sa += gp[t];
        sb += gp[t] * (xp[t] - mu);
    }
    float a = hsum(a0 + a1) + sa, bb = hsum(b0 + b1) + sb;
    bn_sum_group(&a, &bb, la, lb);
    if (l == 0u) {
        const uint o = (c * N + img) * nch + j;
        pa[o] = a;
        pb[o] = bb;
    }
}

/* Stage 2 of backward. global (L, C), local (L, 1), L a power of two.
 * sums[c] = sum dy, sums[C+c] = sum dy*xhat; dgamma/dbeta when flagged. */
__kernel void bn_bwd_final(__global const float *pa, __global const float *pb,
                           __global const float *invstd, const uint C,
                           const uint P, __global float *sums,
                           __global float *dgamma, const int has_dgamma,
                           __global float *dbeta, const int has_dbeta,
                           __local float *la, __local float *lb)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    const uint c = get_global_id(1);
    float a = 0.0f, b = 0.0f;
    for (uint i = l; i < P; i += L) {
        a += pa[c * P + i];
        b += pb[c * P + i];
    }
    la[l] = a;
    lb[l] = b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = L / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            la[l] += la[l + h];
            lb[l] += lb[l + h];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0u) {
        const float sdyx = lb[0] * invstd[c];
        sums[c] = la[0];
        sums[C + c] = sdyx;
        if (has_dgamma)
            dgamma[c] = sdyx;
        if (has_dbeta)
            dbeta[c] = la[0];
    }
}

/* dx = gamma*invstd*(dy - sum(dy)/M - xhat*sum(dy*xhat)/M). global
 * (nch*LWS, N*C), local (LWS, 1). dx may be dy: each element is read
 * before it is written, by one item. */
__kernel void bn_bwd_apply(__global const float *x, __global const float *dy,
                           __global float *dx, __global const float *mean,
                           __global const float *invstd,
                           __global const float *sums,
                           __global const float *gamma, const int has_gamma,
                           const uint S, const uint C, const uint N,
                           const uint CH)
{
    const uint l = get_local_id(0), j = get_group_id(0);
    const uint p = get_global_id(1), c = p - p / C * C;
    if (j * CH >= S || p >= N * C)
        return;
    CHUNK_RANGE(b, e, j, CH, S);
    const float inv_m = 1.0f / ((float)N * (float)S);
    const float inv = invstd[c], mu = mean[c];
    const float g = has_gamma ? gamma[c] : 1.0f;
    const float k = g * inv, ma = sums[c] * inv_m, mb = sums[C + c] * inv_m;
    __global const float *xp = x + p * S;
    __global const float *gp = dy + p * S;
    __global float *op = dx + p * S;
    FOR_VECTORS(i, l, b, e) {
        const VEC xhat = (VLOAD(xp + i) - mu) * inv;
        VSTORE(k * (VLOAD(gp + i) - ma - xhat * mb), op + i);
    }
    FOR_TAIL(t, l, b, e) {
        const float xhat = (xp[t] - mu) * inv;
        op[t] = k * (gp[t] - ma - xhat * mb);
    }
}
