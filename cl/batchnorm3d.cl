/* Batch normalisation over N,D,H,W per channel (NCDHW layout).
 *
 * Every per-channel reduction is two-level and deterministic (no atomics):
 * stage 1 runs G work-items per channel, item i visiting the voxels
 * s = i, i+G, ... of every image, and writes one partial per item; stage 2
 * runs one work-group per channel that merges the G partials in a fixed
 * order (strided, then a tree in local memory). The statistics use Welford
 * per item and Chan's pairwise merge, so the variance never forms the
 * cancelling difference E[x^2] - E[x]^2, even over millions of voxels. */

/* How many voxels of one image item i of G visits (S voxels per image). */
uint bn_item_count(const uint i, const uint G, const uint S)
{
    return i < S ? (S - 1u - i) / G + 1u : 0u;
}

/* Chan et al.: merges (mb, m2b, nb) into (*m, *m2, *n). */
void bn_merge(float *m, float *m2, uint *n, const float mb,
                     const float m2b, const uint nb)
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

/* Stage 1 of the statistics. global (G, C): part[c*G+i] = mean and
 * part[(C+c)*G+i] = sum of squared deviations of item i's voxels. */
__kernel void bn_stats_partial(__global const float *x, __global float *part,
                               const uint S, const uint C, const uint N,
                               const uint G)
{
    const uint i = get_global_id(0), c = get_global_id(1);
    if (i >= G || c >= C)
        return;
    float mean = 0.0f, m2 = 0.0f;
    uint k = 0;
    for (uint n = 0; n < N; n++) {
        __global const float *p = x + (n * C + c) * S;
        for (uint s = i; s < S; s += G) {
            const float v = p[s];
            k++;
            const float d = v - mean;
            mean += d / (float)k;
            m2 += d * (v - mean);
        }
    }
    part[c * G + i] = mean;
    part[(C + c) * G + i] = m2;
}

/* Stage 2 of the statistics. global (L, C), local (L, 1), L a power of two.
 * Writes the batch mean and 1/sqrt(biased var + eps); with update != 0
 * also the running statistics (running variance from the unbiased one). */
__kernel void bn_stats_final(__global const float *part, const uint S,
                             const uint C, const uint N, const uint G,
                             const float eps, const float momentum,
                             const int update, __global float *save_mean,
                             __global float *save_invstd,
                             __global float *run_mean, __global float *run_var,
                             __local float *lm, __local float *lm2,
                             __local uint *ln)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    const uint c = get_global_id(1);
    float m = 0.0f, m2 = 0.0f;
    uint n = 0;
    for (uint j = l; j < G; j += L)
        bn_merge(&m, &m2, &n, part[c * G + j], part[(C + c) * G + j],
                 N * bn_item_count(j, G, S));
    lm[l] = m;
    lm2[l] = m2;
    ln[l] = n;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = L / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            m = lm[l];
            m2 = lm2[l];
            n = ln[l];
            bn_merge(&m, &m2, &n, lm[l + h], lm2[l + h], ln[l + h]);
            lm[l] = m;
            lm2[l] = m2;
            ln[l] = n;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0u) {
        const float M = (float)(N * S);
        const float var = fmax(lm2[0], 0.0f) / M;
        save_mean[c] = lm[0];
        save_invstd[c] = 1.0f / sqrt(var + eps);
        if (update) {
            const float unbiased = fmax(lm2[0], 0.0f) / (M - 1.0f);
            run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * lm[0];
            run_var[c] = (1.0f - momentum) * run_var[c] + momentum * unbiased;
        }
    }
}

/* y = (x - mean) * invstd * gamma + beta. global (S, C, N). With
 * stat_is_var the statistic is a variance (inference with running
 * statistics) and invstd = 1/sqrt(var + eps). Absent gamma/beta are dummy
 * buffers with has_* = 0. */
__kernel void bn_apply(__global const float *x, __global float *y,
                       __global const float *mean, __global const float *stat,
                       const int stat_is_var, const float eps,
                       __global const float *gamma, const int has_gamma,
                       __global const float *beta, const int has_beta,
                       const uint S, const uint C)
{
    const uint s = get_global_id(0), c = get_global_id(1);
    const uint n = get_global_id(2);
    if (s >= S)
        return;
    const float inv = stat_is_var ? 1.0f / sqrt(stat[c] + eps) : stat[c];
    const float g = has_gamma ? gamma[c] : 1.0f;
    const float b = has_beta ? beta[c] : 0.0f;
    const uint o = (n * C + c) * S + s;
    y[o] = (x[o] - mean[c]) * inv * g + b;
}

/* Stage 1 of backward. global (G, C): part[c*G+i] = sum dy and
 * part[(C+c)*G+i] = sum dy*(x-mean) over item i's voxels. */
__kernel void bn_bwd_partial(__global const float *x, __global const float *dy,
                             __global const float *mean, __global float *part,
                             const uint S, const uint C, const uint N,
                             const uint G)
{
    const uint i = get_global_id(0), c = get_global_id(1);
    if (i >= G || c >= C)
        return;
    const float mu = mean[c];
    float sdy = 0.0f, sdyx = 0.0f;
    for (uint n = 0; n < N; n++) {
        const uint base = (n * C + c) * S;
        for (uint s = i; s < S; s += G) {
            const float g = dy[base + s];
            sdy += g;
            sdyx += g * (x[base + s] - mu);
        }
    }
    part[c * G + i] = sdy;
    part[(C + c) * G + i] = sdyx;
}

/* Stage 2 of backward. global (L, C), local (L, 1), L a power of two.
 * sums[c] = sum dy, sums[C+c] = sum dy*xhat; dgamma/dbeta when flagged. */
__kernel void bn_bwd_final(__global const float *part,
                           __global const float *invstd, const uint C,
                           const uint G, __global float *sums,
                           __global float *dgamma, const int has_dgamma,
                           __global float *dbeta, const int has_dbeta,
                           __local float *la, __local float *lb)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    const uint c = get_global_id(1);
    float a = 0.0f, b = 0.0f;
    for (uint j = l; j < G; j += L) {
        a += part[c * G + j];
        b += part[(C + c) * G + j];
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

/* dx = gamma*invstd*(dy - sum(dy)/M - xhat*sum(dy*xhat)/M). global (S,C,N).
 * dx may be dy: each element is read before it is written by one item. */
__kernel void bn_bwd_apply(__global const float *x, __global const float *dy,
                           __global float *dx, __global const float *mean,
                           __global const float *invstd,
                           __global const float *sums,
                           __global const float *gamma, const int has_gamma,
                           const uint S, const uint C, const uint N)
{
    const uint s = get_global_id(0), c = get_global_id(1);
    const uint n = get_global_id(2);
    if (s >= S)
        return;
    const float inv_m = 1.0f / (float)(N * S);
    const float inv = invstd[c];
    const float g = has_gamma ? gamma[c] : 1.0f;
    const uint o = (n * C + c) * S + s;
    const float xhat = (x[o] - mean[c]) * inv;
    dx[o] = g * inv * (dy[o] - sums[c] * inv_m - xhat * sums[C + c] * inv_m);
}
