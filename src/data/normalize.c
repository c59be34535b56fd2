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

u3d_status u3d_norm_channel_stats(const u3d_volume *v, int c, double plo,
                                  double phi, double out[6], u3d_error *err)
{
    U3D_TRY(check_args(v, U3D_NORM_PERCENTILE, plo, phi, err));
    if (c < 0 || c >= v->c)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "normalize: channel %d of a %d-channel volume", c,
                          v->c);
    size_t vox = (size_t)v->d * v->h * v->w, n = 0;
    float *buf = malloc(vox * sizeof *buf);
    if (!buf)
        return u3d_seterr(err, U3D_ERR_OOM, "normalize: out of memory");
    u3d_status st = gather(v, c, NULL, buf, &n, err);
    if (!st) {
        float mean, sd;
        zscore(buf, n, &mean, &sd);
        double lo = buf[0], hi = buf[0];
        for (size_t i = 1; i < n; i++) {
            lo = buf[i] < lo ? buf[i] : lo;
            hi = buf[i] > hi ? buf[i] : hi;
        }
        out[0] = lo;
        out[5] = hi;
        out[3] = mean;
        /* zscore's b is 1 for a constant channel: the std is 0 there */
        out[4] = lo == hi ? 0.0 : sd;
        out[1] = percentile(buf, n, plo);
        out[2] = percentile(buf, n, phi);
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

/* ---- volumes read plane by plane ----------------------------------------
 * The same parameters without the volume in memory: two passes over the
 * planes. z-score sums in the same order as above (identical results);
 * percentiles are exact order statistics found through a histogram of the
 * upper 16 bits of an order-preserving integer key of each float, then one
 * of the lower 16 bits inside the bins that hold the wanted ranks. */

typedef struct rank_q {
    uint64_t rank;   /* wanted order statistic */
    uint32_t bin;    /* its upper key bits, after pass 1 */
    uint64_t before; /* values in lower bins */
    uint64_t *fine;  /* pass 2: histogram of the lower key bits */
    float value;
} rank_q;

static uint32_t fkey(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static float fval(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? k & 0x7fffffffu : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef struct plane_pass {
    int c, d;
    size_t hw;
    u3d_plane_read_fn read;
    void *user;
    float *buf;
} plane_pass;

/* Pass 1 over one channel of a plane: sums (z-score) or the coarse
 * histogram (percentiles); rejects NaN/Inf. */
static u3d_status first_pass(const float *x, size_t n, u3d_norm_mode mode,
                             double *sum, uint64_t *coarse, int c, int z,
                             u3d_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return u3d_seterr(err, U3D_ERR_NUMERIC,
                              "normalize: channel %d has a NaN/Inf value in "
                              "plane %d", c, z);
        if (mode == U3D_NORM_ZSCORE)
            *sum += x[i];
        else
            coarse[fkey(x[i]) >> 16]++;
    }
    return U3D_OK;
}

/* Pass 2: squared deviations (z-score) or the fine histograms of the bins
 * holding the wanted ranks. */
static void second_pass(const float *x, size_t n, u3d_norm_mode mode,
                        double mean, double *sq, rank_q *q)
{
    for (size_t i = 0; i < n; i++) {
        if (mode == U3D_NORM_ZSCORE) {
            *sq += (x[i] - mean) * (x[i] - mean);
            continue;
        }
        uint32_t k = fkey(x[i]);
        for (int r = 0; r < 4; r++)
            if (k >> 16 == q[r].bin)
                q[r].fine[k & 0xffffu]++;
    }
}

/* One pass over all planes (second: 0 or 1), channel by channel. */
static u3d_status scan_planes(plane_pass *pp, int second, u3d_norm_mode mode,
                              double *sum, uint64_t *coarse,
                              const double *mean, double *sq, rank_q *q,
                              u3d_error *err)
{
    for (int z = 0; z < pp->d; z++) {
        u3d_status st = pp->read(pp->user, z, pp->buf, err);
        for (int c = 0; c < pp->c && !st; c++) {
            const float *x = pp->buf + (size_t)c * pp->hw;
            if (second)
                second_pass(x, pp->hw, mode, mean[c], &sq[c], q + 4 * c);
            else
                st = first_pass(x, pp->hw, mode, &sum[c],
                                coarse ? coarse + (size_t)c * 65536 : NULL,
                                c, z, err);
        }
        if (st)
            return st;
    }
    return U3D_OK;
}

static void locate_bins(const uint64_t *h, rank_q *q)
{
    uint64_t cum = 0;
    uint32_t b = 0;
    for (; b < 65536; b++) {
        if (cum + h[b] > q->rank)
            break;
        cum += h[b];
    }
    q->bin = b;
    q->before = cum;
}

static void locate_value(rank_q *q)
{
    uint64_t cum = q->before;
    uint32_t lo = 0;
    for (; lo < 65535; lo++) {
        if (cum + q->fine[lo] > q->rank)
            break;
        cum += q->fine[lo];
    }
    q->value = fval(q->bin << 16 | lo);
}

u3d_status u3d_norm_compute_planes(int c, int d, int h, int w,
                                   u3d_plane_read_fn read, void *user,
                                   u3d_norm_mode mode, double plo, double phi,
                                   u3d_norm_params *p, u3d_error *err)
{
    u3d_volume shape = {0};
    float one = 0;
    shape.c = c, shape.d = d, shape.h = h, shape.w = w, shape.data = &one;
    u3d_status st = check_args(&shape, mode, plo, phi, err);
    if (st)
        return st;
    memset(p, 0, sizeof *p);
    p->c = c;
    p->mode = mode;
    for (int k = 0; k < c; k++)
        p->a[k] = 0, p->b[k] = 1;
    if (mode == U3D_NORM_NONE)
        return U3D_OK;
    plane_pass pp = {c, d, (size_t)h * w, read, user, NULL};
    uint64_t n = (uint64_t)d * pp.hw;
    double sum[U3D_NORM_MAX_C] = {0}, sq[U3D_NORM_MAX_C] = {0};
    double mean[U3D_NORM_MAX_C] = {0};
    rank_q q[4 * U3D_NORM_MAX_C];
    memset(q, 0, sizeof q);
    uint64_t *coarse = NULL;
    pp.buf = malloc((size_t)c * pp.hw * sizeof *pp.buf);
    if (mode == U3D_NORM_PERCENTILE) {
        coarse = calloc((size_t)c * 65536, sizeof *coarse);
        for (int k = 0; k < 4 * c; k++)
            if (!(q[k].fine = calloc(65536, sizeof *q[k].fine)))
                st = U3D_ERR_OOM;
    }
    if (st || !pp.buf || (mode == U3D_NORM_PERCENTILE && !coarse))
        st = u3d_seterr(err, U3D_ERR_OOM, "normalize: out of memory");
    if (!st)
        st = scan_planes(&pp, 0, mode, sum, coarse, NULL, NULL, NULL, err);
    /* ranks floor(pos) and floor(pos) + 1 of each percentile, as above */
    double pos[2] = {plo / 100.0 * (double)(n - 1),
                     phi / 100.0 * (double)(n - 1)};
    for (int k = 0; !st && k < c; k++) {
        mean[k] = sum[k] / (double)n;
        if (mode != U3D_NORM_PERCENTILE)
            continue;
        for (int r = 0; r < 4; r++) {
            uint64_t i = (uint64_t)floor(pos[r / 2]) + (uint64_t)(r % 2);
            q[4 * k + r].rank = i < n ? i : n - 1;
            locate_bins(coarse + (size_t)k * 65536, &q[4 * k + r]);
        }
    }
    if (!st)
        st = scan_planes(&pp, 1, mode, NULL, NULL, mean, sq, q, err);
    for (int k = 0; !st && k < c; k++) {
        if (mode == U3D_NORM_ZSCORE) {
            double sd = sqrt(sq[k] / (double)n);
            p->a[k] = (float)mean[k];
            p->b[k] = sd > 0 ? (float)sd : 1.0f;
            continue;
        }
        double v[2];
        for (int j = 0; j < 2; j++) {
            rank_q *lo = &q[4 * k + 2 * j], *hi = lo + 1;
            locate_value(lo);
            locate_value(hi);
            double frac = pos[j] - floor(pos[j]);
            v[j] = frac == 0 || lo->rank + 1 >= n
                       ? lo->value
                       : lo->value + frac * ((double)hi->value - lo->value);
        }
        p->a[k] = (float)v[0];
        p->b[k] = v[1] > v[0] ? (float)(v[1] - v[0]) : 1.0f;
    }
    free(pp.buf);
    free(coarse);
    for (int k = 0; k < 4 * c; k++)
        free(q[k].fine);
    return st;
}
