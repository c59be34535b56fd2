/* Softmax + weighted cross-entropy reference, in double per voxel. */
#include <math.h>
#include <stdint.h>
#include "backends/ref/ref.h"

/* First label that is neither a class nor ignore, and how many there are. */
static size_t count_invalid(const int32_t *lab, size_t nv, int C, int ignore,
                            int *first)
{
    size_t bad = 0;
    for (size_t v = 0; v < nv; v++)
        if (lab[v] != ignore && (lab[v] < 0 || lab[v] >= C)) {
            if (!bad)
                *first = lab[v];
            bad++;
        }
    return bad;
}

u3d_status u3d_ref_softmax_ce(u3d_backend *be, cten *logits, cten *labels,
                              cten *class_weights, int ignore_label,
                              u3d_tensor *probs, u3d_tensor *dlogits,
                              float *loss, float *weight_sum, u3d_error *err)
{
    (void)be;
    size_t N = (size_t)logits->shape.n, S = u3d_shape_spatial(logits->shape);
    int C = logits->shape.c;
    const float *z = u3d_ref_f(logits), *w = u3d_ref_f(class_weights);
    const int32_t *lab = (const int32_t *)labels->buf;
    int first = 0;
    size_t bad = count_invalid(lab, N * S, C, ignore_label, &first);
    if (bad)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "softmax cross-entropy: label %d found (%zu invalid "
                          "voxel labels): labels must be >= 0 and < classes "
                          "(%d), or the ignore label %d",
                          first, bad, C, ignore_label);
    double sw = 0, sl = 0;
    for (size_t v = 0; v < N * S; v++)
        if (lab[v] != ignore_label)
            sw += w[lab[v]];
    double scale = sw != 0 ? 1.0 / sw : 0.0; /* no labeled voxel: all zero */
    for (size_t n = 0; n < N; n++)
        for (size_t s = 0; s < S; s++) {
            const float *zv = z + n * C * S + s;
            int y = lab[n * S + s];
            int use = y != ignore_label;
            double mx = zv[0], se = 0;
            for (int c = 1; c < C; c++)
                mx = fmax(mx, zv[(size_t)c * S]);
            for (int c = 0; c < C; c++)
                se += exp(zv[(size_t)c * S] - mx);
            if (use)
                sl += w[y] * (log(se) - (zv[(size_t)y * S] - mx));
            for (int c = 0; c < C; c++) {
                size_t o = (n * C + c) * S + s;
                double p = exp(zv[(size_t)c * S] - mx) / se;
                if (probs)
                    u3d_ref_f(probs)[o] = (float)p;
                if (dlogits)
                    u3d_ref_f(dlogits)[o] =
                        use ? (float)(w[y] * scale * (p - (c == y))) : 0.0f;
            }
        }
    *loss = (float)(sl * scale);
    if (weight_sum)
        *weight_sum = (float)sw;
    return U3D_OK;
}
