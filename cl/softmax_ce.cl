/* Softmax over channels and weighted, ignore-aware cross-entropy.
 *
 * Voxel v = (n, s) of logits (N,C,S) and labels (N,S). Work-group (j, n)
 * owns voxels [j*CH, min(S, (j+1)*CH)) of image n; its LWS work-items take
 * groups of VW consecutive voxels round-robin (lanes along memory: GPU
 * loads coalesce; with LWS = 1 on CPUs an item walks its chunk with full
 * SIMD loads). A group cut by the chunk end is loaded lane by lane, its
 * missing lanes as ignored voxels. Build options: -DVW=1|2|4|8|16,
 * -DLWS=a power of two (the launch's local size).
 *
 * Reductions are two-level and deterministic: one partial per chunk
 * (merged in a fixed tree inside the work-group), then one work-group sums
 * the G = N*nch partials in a fixed order. Pass A sums the weights (needed
 * to scale dlogits) and counts invalid labels; pass B writes probs/dlogits
 * and sums the loss. Partials: pf[0..G) weights, pf[G..2G) losses;
 * pi[0..G) invalid counts, pi[G..2G) the first invalid label of the chunk.
 * res (4 ints): [0] loss and [1] weight sum as float bits, [2] number of
 * invalid labels, [3] the first invalid label in voxel order. */
#ifndef LWS
#define LWS 64
#endif
#include "vector_width.h"
#if VW == 1
#define ANY(m) (m)
#else
#define ANY(m) any(m)
#endif

#define STEP (LWS * VW)

/* The first cnt <= VW floats at p, the other lanes 0 (through a private
 * array: no out-of-range access at a chunk's end). */
VEC load_part(__global const float *p, const uint cnt)
{
    if (cnt == VW)
        return VLOAD(p);
    float t[VW];
    for (uint k = 0; k < VW; k++)
        t[k] = k < cnt ? p[k] : 0.0f;
    return VLOAD(t);
}

/* Labels of the first cnt lanes, the other lanes `fill`. */
VINT load_labels(__global const int *p, const uint cnt, const int fill)
{
    if (cnt == VW)
        return VLOAD(p);
    int t[VW];
    for (uint k = 0; k < VW; k++)
        t[k] = k < cnt ? p[k] : fill;
    return VLOAD(t);
}

/* Stores the first cnt lanes of v at p. */
void store_part(const VEC v, __global float *p, const uint cnt)
{
    if (cnt == VW) {
        VSTORE(v, p);
        return;
    }
    float t[VW];
    VSTORE(v, t);
    for (uint k = 0; k < cnt; k++)
        p[k] = t[k];
}

/* Lane sums in a fixed order, through private arrays: oclgrind 21.10's
 * --uninitialized plugin crashes on the shuffles of component-wise sums. */
float hsum(const VEC v)
{
    float t[VW];
    VSTORE(v, t);
    float s = 0.0f;
    for (int i = 0; i < VW; i++)
        s += t[i];
    return s;
}

uint hcount(const VINT m) /* lanes whose mask is set (nonzero) */
{
    int t[VW];
    VSTORE(m, t);
    uint s = 0;
    for (int i = 0; i < VW; i++)
        s += t[i] != 0;
    return s;
}

/* w[label] per lane (0 for a lane that is no class) and the mask of lanes
 * holding a class index. */
VEC class_weight(const VINT lab, __global const float *w, const uint C,
                 VINT *is_class)
{
    VEC wl = (VEC)(0.0f);
    VINT hit = (VINT)(0);
    for (uint c = 0; c < C; c++) {
        const VINT m = lab == (VINT)((int)c);
        wl = select(wl, (VEC)(w[c]), m);
        hit |= m;
    }
    *is_class = hit;
    return wl;
}

/* Pass A, stage 1. global (nch*LWS, N), local (LWS, 1). */
__kernel void ce_weight_partial(__global const int *labels,
                                __global const float *w, const int ignore,
                                const uint S, const uint C, const uint N,
                                const uint CH, const uint nch,
                                __global float *pf, __global int *pi,
                                __local float *lw, __local uint *lbad,
                                __local uint *lpos, __local int *lval)
{
    const uint l = get_local_id(0), j = get_group_id(0);
    const uint n = get_global_id(1);
    if (j >= nch || n >= N) /* uniform over the work-group */
        return;
    const uint b = j * CH, e = min(b + CH, S);
    __global const int *lp = labels + n * S;
    VEC sw = (VEC)(0.0f);
    uint bad = 0, pos = UINT_MAX;
    int val = 0;
    for (uint i = b + l * VW; i < e; i += STEP) {
        const uint cnt = min((uint)VW, e - i);
        const VINT lab = load_labels(lp + i, cnt, ignore);
        VINT is_class;
        const VEC wl = class_weight(lab, w, C, &is_class);
        const VINT used = lab != (VINT)(ignore);
        sw += select((VEC)(0.0f), wl, used);
        const VINT inval = used & ~is_class;
        if (ANY(inval)) { /* rare: count, and note the first */
            bad += hcount(inval);
            for (uint k = 0; k < cnt && pos == UINT_MAX; k++)
                if (lp[i + k] != ignore &&
                    (lp[i + k] < 0 || lp[i + k] >= (int)C)) {
                    pos = i + k;
                    val = lp[i + k];
                }
        }
    }
    float s = hsum(sw);
#if LWS > 1
    lw[l] = s;
    lbad[l] = bad;
    lpos[l] = pos;
    lval[l] = val;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = LWS / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            s += lw[l + h];
            bad += lbad[l + h];
            if (lpos[l + h] < pos) {
                pos = lpos[l + h];
                val = lval[l + h];
            }
            lw[l] = s;
            lbad[l] = bad;
            lpos[l] = pos;
            lval[l] = val;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
    if (l == 0u) {
        const uint G = N * nch, o = n * nch + j;
        pf[o] = s;
        pi[o] = (int)bad;
        pi[G + o] = val;
    }
}

/* Pass A, stage 2. global (L), local (L), L a power of two. */
__kernel void ce_weight_final(__global const float *pf,
                              __global const int *pi, const uint G,
                              __global int *res, __local float *lw,
                              __local uint *lbad, __local uint *lfirst)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    float sw = 0.0f;
    uint bad = 0, first = G; /* lowest partial with an invalid label */
    for (uint j = l; j < G; j += L) {
        sw += pf[j];
        bad += (uint)pi[j];
        if (pi[j] != 0 && j < first)
            first = j;
    }
    lw[l] = sw;
    lbad[l] = bad;
    lfirst[l] = first;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = L / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            lw[l] += lw[l + h];
            lbad[l] += lbad[l + h];
            lfirst[l] = min(lfirst[l], lfirst[l + h]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0u) {
        res[1] = as_int(lw[0]);
        res[2] = (int)lbad[0];
        res[3] = lfirst[0] < G ? pi[G + lfirst[0]] : 0;
    }
}

/* Pass B, stage 1. global (nch*LWS, N), local (LWS, 1). Softmax with the
 * maximum subtracted; the loss term uses log-sum-exp directly rather than
 * log(p), which keeps precision when p underflows. Ignored and invalid
 * voxels get dlogits 0. */
__kernel void ce_loss_partial(__global const float *logits,
                              __global const int *labels,
                              __global const float *w, const int ignore,
                              const uint S, const uint C, const uint N,
                              const uint CH, const uint nch,
                              __global const int *res, __global float *probs,
                              const int has_probs, __global float *dlogits,
                              const int has_dlogits, __global float *pf,
                              __local float *ll)
{
    const uint l = get_local_id(0), j = get_group_id(0);
    const uint n = get_global_id(1);
    if (j >= nch || n >= N) /* uniform over the work-group */
        return;
    const float swt = as_float(res[1]);
    const float scale = swt != 0.0f ? 1.0f / swt : 0.0f;
    const uint b = j * CH, e = min(b + CH, S);
    __global const float *z = logits + n * C * S;
    VEC loss = (VEC)(0.0f);
    for (uint i = b + l * VW; i < e; i += STEP) {
        const uint cnt = min((uint)VW, e - i);
        const VINT lab = load_labels(labels + n * S + i, cnt, ignore);
        VEC mx = load_part(z + i, cnt);
        for (uint c = 1; c < C; c++)
            mx = fmax(mx, load_part(z + c * S + i, cnt));
        VEC se = (VEC)(0.0f), zl = (VEC)(0.0f), wl = (VEC)(0.0f);
        VINT is_class = (VINT)(0);
        for (uint c = 0; c < C; c++) {
            const VEC zc = load_part(z + c * S + i, cnt);
            se += exp(zc - mx);
            const VINT m = lab == (VINT)((int)c);
            zl = select(zl, zc, m);
            wl = select(wl, (VEC)(w[c]), m);
            is_class |= m;
        }
        const VINT use = (lab != (VINT)(ignore)) & is_class;
        loss += select((VEC)(0.0f), wl * (log(se) - (zl - mx)), use);
        if (!has_probs && !has_dlogits)
            continue;
        const VEC rse = 1.0f / se;
        const VEC k = wl * scale;
        for (uint c = 0; c < C; c++) {
            const uint o = (n * C + c) * S + i;
            const VEC p = exp(load_part(z + c * S + i, cnt) - mx) * rse;
            if (has_probs)
                store_part(p, probs + o, cnt);
            if (has_dlogits) {
                const VEC hot = select((VEC)(0.0f), (VEC)(1.0f),
                                       lab == (VINT)((int)c));
                store_part(select((VEC)(0.0f), k * (p - hot), use),
                           dlogits + o, cnt);
            }
        }
    }
    float s = hsum(loss);
#if LWS > 1
    ll[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = LWS / 2u; h > 0u; h >>= 1) {
        if (l < h) {
            s += ll[l + h];
            ll[l] = s;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
    if (l == 0u)
        pf[N * nch + n * nch + j] = s;
}

/* Pass B, stage 2. global (L), local (L): res[0] = loss / weight sum, 0
 * when the weight sum is 0 (no labeled voxel). */
__kernel void ce_loss_final(__global const float *pf, const uint G,
                            __global int *res, __local float *ll)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    float s = 0.0f;
    for (uint j = l; j < G; j += L)
        s += pf[G + j];
    ll[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = L / 2u; h > 0u; h >>= 1) {
        if (l < h)
            ll[l] += ll[l + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0u) {
        const float sw = as_float(res[1]);
        res[0] = as_int(sw != 0.0f ? ll[0] / sw : 0.0f);
    }
}
