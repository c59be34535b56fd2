/* Softmax over channels and weighted, ignore-aware cross-entropy.
 *
 * Voxel v = (n, s) of logits (N,C,S) and labels (N,S). Reductions are
 * two-level and deterministic: G items each visit s = i, i+G, ... of every
 * image and write a partial; one work-group then sums the partials in a
 * fixed tree order. Pass A sums the weights (needed to scale dlogits) and
 * counts invalid labels; pass B writes probs/dlogits and sums the loss.
 * res (4 ints): [0] loss and [1] weight sum as float bits, [2] number of
 * invalid labels, [3] the first invalid label (in item order). */

/* A class index (ignore_label is tested before). */
int ce_valid(const int lab, const int C) { return lab >= 0 && lab < C; }

/* Pass A, stage 1. global (G): pw[i] = sum of w[label] over labeled voxels,
 * pbad[i] = invalid labels seen, pval[i] = the first one. */
__kernel void ce_weight_partial(__global const int *labels,
                                __global const float *w, const int ignore,
                                const uint S, const uint C, const uint N,
                                const uint G, __global float *pw,
                                __global uint *pbad, __global int *pval)
{
    const uint i = get_global_id(0);
    if (i >= G)
        return;
    float sw = 0.0f;
    uint bad = 0;
    int val = 0;
    for (uint n = 0; n < N; n++)
        for (uint s = i; s < S; s += G) {
            const int lab = labels[n * S + s];
            if (lab == ignore)
                continue;
            if (ce_valid(lab, (int)C)) {
                sw += w[lab];
            } else {
                if (bad == 0u)
                    val = lab;
                bad++;
            }
        }
    pw[i] = sw;
    pbad[i] = bad;
    pval[i] = val;
}

/* Pass A, stage 2. global (L), local (L), L a power of two. */
__kernel void ce_weight_final(__global const float *pw,
                              __global const uint *pbad,
                              __global const int *pval, const uint G,
                              __global int *res, __local float *lw,
                              __local uint *lbad, __local uint *lfirst)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    float sw = 0.0f;
    uint bad = 0, first = G; /* lowest item index with an invalid label */
    for (uint j = l; j < G; j += L) {
        sw += pw[j];
        bad += pbad[j];
        if (pbad[j] != 0u && j < first)
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
        res[3] = lfirst[0] < G ? pval[lfirst[0]] : 0;
    }
}

/* Pass B, stage 1. global (G). Softmax with the maximum subtracted; the
 * loss term uses log-sum-exp directly rather than log(p), which keeps
 * precision when p underflows. Ignored and invalid voxels get dlogits 0. */
__kernel void ce_loss_partial(__global const float *logits,
                              __global const int *labels,
                              __global const float *w, const int ignore,
                              const uint S, const uint C, const uint N,
                              const uint G, __global const int *res,
                              __global float *probs, const int has_probs,
                              __global float *dlogits, const int has_dlogits,
                              __global float *pl)
{
    const uint i = get_global_id(0);
    if (i >= G)
        return;
    const float sw = as_float(res[1]);
    const float scale = sw != 0.0f ? 1.0f / sw : 0.0f;
    float loss = 0.0f;
    for (uint n = 0; n < N; n++) {
        __global const float *z = logits + n * C * S;
        for (uint s = i; s < S; s += G) {
            float mx = z[s];
            for (uint c = 1; c < C; c++)
                mx = fmax(mx, z[c * S + s]);
            float se = 0.0f;
            for (uint c = 0; c < C; c++)
                se += exp(z[c * S + s] - mx);
            const int lab = labels[n * S + s];
            const int use = lab != ignore && ce_valid(lab, (int)C);
            const float wl = use ? w[lab] : 0.0f;
            if (use)
                loss += wl * (log(se) - (z[(uint)lab * S + s] - mx));
            if (!has_probs && !has_dlogits)
                continue;
            const float rse = 1.0f / se;
            for (uint c = 0; c < C; c++) {
                const uint o = (n * C + c) * S + s;
                const float p = exp(z[c * S + s] - mx) * rse;
                if (has_probs)
                    probs[o] = p;
                if (has_dlogits)
                    dlogits[o] = use ? wl * scale *
                                           (p - ((int)c == lab ? 1.0f : 0.0f))
                                     : 0.0f;
            }
        }
    }
    pl[i] = loss;
}

/* Pass B, stage 2. global (L), local (L): res[0] = loss / weight sum, 0
 * when the weight sum is 0 (no labeled voxel). */
__kernel void ce_loss_final(__global const float *pl, const uint G,
                            __global int *res, __local float *ll)
{
    const uint l = get_local_id(0), L = get_local_size(0);
    float s = 0.0f;
    for (uint j = l; j < G; j += L)
        s += pl[j];
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
