/* Per-channel intensity normalization: z-score or percentile scaling,
 * x' = (x - a) / b, with a and b returned so a model can store them. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/volume.h"

static u3d_status check_args(const u3d_volume *v, u3d_norm_mode mode,
                             double plo, double phi, u3d_error *err)
{
    if (!v || !v->data || v->c < 1 || v->d < 1 || v->h < 1 || v->w < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "normalize: empty volume");
    if (v->c > U3D_NORM_MAX_C)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "normalize: %d channels, at most %d supported", v->c,
                          U3D_NORM_MAX_C);
    if (mode != U3D_NORM_NONE && mode != U3D_NORM_ZSCORE &&
        mode != U3D_NORM_PERCENTILE)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "normalize: unknown mode %d", (int)mode);
    if (mode == U3D_NORM_PERCENTILE &&
        !(plo >= 0 && plo < phi && phi <= 100))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "normalize: percentiles need 0 <= low < high <= 100 "
                          "(got %g, %g)", plo, phi);
    return U3D_OK;
}

/* Copies the channel's (masked) values into buf; count in *n. */
static u3d_status gather(const u3d_volume *v, int c, const uint8_t *mask,
                         float *buf, size_t *n, u3d_error *err)
{
    size_t vox = (size_t)v->d * v->h * v->w, k = 0;
    const float *x = v->data + (size_t)c * vox;
    for (size_t i = 0; i < vox; i++) {
        if (mask && !mask[i])
            continue;
        if (!isfinite(x[i]))
            return u3d_seterr(err, U3D_ERR_NUMERIC,
                              "normalize: channel %d has a NaN/Inf value at "
                              "voxel %zu", c, i);
        buf[k++] = x[i];
    }
    if (!k)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "normalize: the mask selects no voxel");
    *n = k;
    return U3D_OK;
}

static void zscore(const float *x, size_t n, float *a, float *b)
{
    double s = 0, q = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    double mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        q += (x[i] - mean) * (x[i] - mean);
    double sd = sqrt(q / (double)n);
    *a = (float)mean;
    *b = sd > 0 ? (float)sd : 1.0f;
}

static void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges x so x[k] is the k-th smallest, smaller ones before it and
 * larger after (Hoare partition: many equal values stay O(n)). */
static float select_k(float *x, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t lo = 0, hi = n - 1;
    while (lo < hi) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        if (x[mid] < x[lo]) swapf(&x[mid], &x[lo]);
        if (x[hi] < x[lo]) swapf(&x[hi], &x[lo]);
        if (x[hi] < x[mid]) swapf(&x[hi], &x[mid]);
        float pivot = x[mid];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] < pivot)
                i++;
            while (x[j] > pivot)
                j--;
            if (i <= j)
                swapf(&x[i++], &x[j--]);
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return x[k];
    }
    return x[k];
}

/* Percentile p of x[0..n) with linear interpolation between ranks. */
static double percentile(float *x, size_t n, double p)
{
    double pos = p / 100.0 * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    double frac = pos - (double)i, lo = select_k(x, (ptrdiff_t)n, (ptrdiff_t)i);
    if (frac == 0 || i + 1 >= n)
        return lo;
    float hi = x[i + 1];
    for (size_t j = i + 2; j < n; j++)
        hi = x[j] < hi ? x[j] : hi;
    return lo + frac * ((double)hi - lo);
}

u3d_status u3d_norm_compute(const u3d_volume *v, const uint8_t *mask,
                            u3d_norm_mode mode, double plo, double phi,
                            u3d_norm_params *p, u3d_error *err)
{
    u3d_status st = check_args(v, mode, plo, phi, err);
    if (st)
        return st;
    memset(p, 0, sizeof *p);
    p->c = v->c;
    p->mode = mode;
    for (int c = 0; c < v->c; c++)
        p->a[c] = 0, p->b[c] = 1;
    if (mode == U3D_NORM_NONE)
        return U3D_OK;
    size_t vox = (size_t)v->d * v->h * v->w, n = 0;
    float *buf = malloc(vox * sizeof *buf);
    if (!buf)
        return u3d_seterr(err, U3D_ERR_OOM, "normalize: out of memory");
    for (int c = 0; c < v->c && !st; c++) {
        if ((st = gather(v, c, mask, buf, &n, err)))
            break;
        if (mode == U3D_NORM_ZSCORE) {
            zscore(buf, n, &p->a[c], &p->b[c]);
        } else {
            double lo = percentile(buf, n, plo), hi = percentile(buf, n, phi);
            p->a[c] = (float)lo;
            p->b[c] = hi > lo ? (float)(hi - lo) : 1.0f;
        }
    }
    free(buf);
    return st;
}

u3d_status u3d_norm_apply(u3d_volume *v, const u3d_norm_params *p,
                          u3d_error *err)
{
    if (!v || !v->data || !p || p->c != v->c || p->c > U3D_NORM_MAX_C)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "normalize: parameters for %d channel(s) do not fit "
                          "a %d-channel volume", p ? p->c : -1, v ? v->c : -1);
    size_t vox = (size_t)v->d * v->h * v->w;
    for (int c = 0; c < v->c; c++) {
        if (!isfinite(p->a[c]) || !isfinite(p->b[c]) || p->b[c] == 0)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "normalize: channel %d has unusable parameters "
                              "a=%g b=%g", c, (double)p->a[c], (double)p->b[c]);
    }
    for (int c = 0; c < v->c; c++) {
        float a = p->a[c], b = p->b[c];
        float *x = v->data + (size_t)c * vox;
        for (size_t i = 0; i < vox; i++)
            x[i] = (x[i] - a) / b;
    }
    return U3D_OK;
}
