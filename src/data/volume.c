/* Host volumes and labels: allocation, label checks, sparse annotation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/tiff_io.h"
#include "unet3d/rng.h"
#include "unet3d/volume.h"

static size_t count4(int c, int d, int h, int w)
{
    return u3d_mul_sz(u3d_mul_sz((size_t)c, (size_t)d),
                      u3d_mul_sz((size_t)h, (size_t)w));
}

static void default_meta(double spacing[3], char unit[16])
{
    spacing[0] = spacing[1] = spacing[2] = 1.0;
    unit[0] = 0;
}

u3d_status u3d_volume_alloc(int c, int d, int h, int w, u3d_volume *out,
                            u3d_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = (c > 0 && d > 0 && h > 0 && w > 0) ? count4(c, d, h, w) : 0;
    if (!n || !u3d_mul_sz(n, sizeof(float)))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "invalid volume size %dx%dx%dx%d (CxDxHxW)", c, d, h, w);
    out->data = calloc(n, sizeof(float));
    if (!out->data)
        return u3d_seterr(err, U3D_ERR_OOM,
                          "out of memory for a %dx%dx%dx%d volume", c, d, h, w);
    out->c = c, out->d = d, out->h = h, out->w = w;
    out->bits = 32;
    out->is_float = 1;
    default_meta(out->spacing, out->unit);
    return U3D_OK;
}

u3d_status u3d_labels_alloc(int d, int h, int w, u3d_labels *out, u3d_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = (d > 0 && h > 0 && w > 0) ? count4(1, d, h, w) : 0;
    if (!n || !u3d_mul_sz(n, sizeof(uint16_t)))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "invalid label volume size %dx%dx%d (DxHxW)", d, h, w);
    out->data = calloc(n, sizeof(uint16_t));
    if (!out->data)
        return u3d_seterr(err, U3D_ERR_OOM,
                          "out of memory for %dx%dx%d labels", d, h, w);
    out->d = d, out->h = h, out->w = w;
    default_meta(out->spacing, out->unit);
    return U3D_OK;
}

void u3d_volume_free(u3d_volume *v)
{
    if (!v)
        return;
    free(v->data);
    memset(v, 0, sizeof *v);
}

void u3d_labels_free(u3d_labels *l)
{
    if (!l)
        return;
    free(l->data);
    memset(l, 0, sizeof *l);
}

u3d_status u3d_labels_check(const u3d_labels *l, int classes, int ignore_label,
                            size_t *counts, size_t *n_ignored, u3d_error *err)
{
    if (!l || !l->data || classes < 1 || classes > 65536 ||
        ignore_label < U3D_NO_IGNORE || ignore_label > 65535)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "label check: need labels, 1..65536 classes (got %d) "
                          "and an ignore label in 0..65535 or U3D_NO_IGNORE "
                          "(got %d)", classes, ignore_label);
    size_t hw = (size_t)l->h * l->w, n = hw * l->d, ign = 0;
    if (counts)
        memset(counts, 0, (size_t)classes * sizeof *counts);
    for (size_t i = 0; i < n; i++) {
        int v = l->data[i];
        if (v == ignore_label) {
            ign++;
        } else if (v >= classes) {
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "label %d at z %zu, y %zu, x %zu is not a class "
                              "(0..%d)%s", v, i / hw, i % hw / l->w, i % l->w,
                              classes - 1,
                              ignore_label >= 0 ? " nor the ignore label" : "");
        } else if (counts) {
            counts[v]++;
        }
    }
    if (n_ignored)
        *n_ignored = ign;
    if (ign == n)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "no labeled voxel: all %zu voxels carry the ignore "
                          "label %d", n, ignore_label);
    return U3D_OK;
}

u3d_status u3d_check_image_labels(const u3d_volume *img, const char *img_name,
                                  const u3d_labels *l, const char *lab_name,
                                  u3d_error *err)
{
    if (img->d == l->d && img->h == l->h && img->w == l->w)
        return U3D_OK;
    return u3d_seterr(err, U3D_ERR_SHAPE,
                      "image %s is %dx%dx%d (DxHxW, %d channel(s)) but labels "
                      "%s are %dx%dx%d: they must cover the same voxels",
                      img_name ? img_name : "(memory)", img->d, img->h, img->w,
                      img->c, lab_name ? lab_name : "(memory)", l->d, l->h, l->w);
}

/* ---- sparse annotation -------------------------------------------------- */

/* Marks k of n positions in keep[]: evenly spaced or random. */
static u3d_status pick(unsigned char *keep, int n, int k, int random,
                       uint64_t *seed, u3d_error *err)
{
    if (k >= n) {
        memset(keep, 1, (size_t)n);
        return U3D_OK;
    }
    if (!random) {
        for (int i = 0; i < k; i++)
            keep[(int)(((double)i + 0.5) * n / k)] = 1;
        return U3D_OK;
    }
    int *idx = malloc((size_t)n * sizeof *idx);
    if (!idx)
        return u3d_seterr(err, U3D_ERR_OOM, "sparsify: out of memory");
    for (int i = 0; i < n; i++)
        idx[i] = i;
    for (int i = 0; i < k; i++) { /* partial Fisher-Yates */
        int j = i + (int)(u3d_splitmix64(seed) % (uint64_t)(n - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        keep[idx[i]] = 1;
    }
    free(idx);
    return U3D_OK;
}

u3d_status u3d_labels_sparsify(u3d_labels *l, const int k[3], int random,
                               uint64_t seed, uint16_t ignore_label,
                               size_t *kept, u3d_error *err)
{
    if (!l || !l->data || k[0] < 0 || k[1] < 0 || k[2] < 0)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "sparsify: need labels and slice counts >= 0");
    int dims[3] = {l->d, l->h, l->w};
    unsigned char *keep[3] = {0};
    u3d_status st = U3D_OK;
    for (int a = 0; a < 3 && !st; a++) {
        keep[a] = calloc((size_t)dims[a], 1);
        st = keep[a] ? pick(keep[a], dims[a], k[a], random, &seed, err)
                     : u3d_seterr(err, U3D_ERR_OOM, "sparsify: out of memory");
    }
    size_t nkept = 0, i = 0;
    for (int z = 0; z < l->d && !st; z++)
        for (int y = 0; y < l->h; y++)
            for (int x = 0; x < l->w; x++, i++) {
                if (keep[0][z] || keep[1][y] || keep[2][x])
                    nkept += l->data[i] != ignore_label;
                else
                    l->data[i] = ignore_label;
            }
    for (int a = 0; a < 3; a++)
        free(keep[a]);
    if (!st && kept)
        *kept = nkept;
    return st;
}
