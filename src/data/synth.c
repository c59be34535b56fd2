/* Synthetic volumes (synth.h): the paper's kidney tubules and
 * membrane-stained cells, with a microscope's blur, noise and uneven
 * brightness. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/rng.h"
#include "unet3d/synth.h"

typedef struct tube {
    double p0[3], dir[3];   /* start (voxel units, isotropic frame), axis */
    double amp[2], freq[2]; /* lateral wiggle */
    double phase[2];
    double r0, r1;          /* radius varies between r0 and r1 along it */
    double len;
} tube;

/* Distance-squared test of point q against a sampled tube centerline. */
static int inside(const tube *t, const double u[3], const double v[3],
                  const double q[3], double *rad_out)
{
    /* project q on the axis, evaluate the wiggled centre there */
    double rel[3] = {q[0] - t->p0[0], q[1] - t->p0[1], q[2] - t->p0[2]};
    double s = rel[0] * t->dir[0] + rel[1] * t->dir[1] + rel[2] * t->dir[2];
    if (s < 0 || s > t->len)
        return 0;
    double a = t->amp[0] * sin(t->freq[0] * s + t->phase[0]);
    double b = t->amp[1] * sin(t->freq[1] * s + t->phase[1]);
    double c[3];
    for (int k = 0; k < 3; k++)
        c[k] = t->p0[k] + s * t->dir[k] + a * u[k] + b * v[k];
    double r = t->r0 + (t->r1 - t->r0) * (0.5 + 0.5 * sin(0.05 * s + t->phase[0]));
    double d2 = 0;
    for (int k = 0; k < 3; k++)
        d2 += (q[k] - c[k]) * (q[k] - c[k]);
    *rad_out = r;
    return d2 < r * r;
}

static void unit_perp(const double d[3], double u[3], double v[3])
{
    double a[3] = {1, 0, 0};
    if (fabs(d[0]) > 0.8)
        a[0] = 0, a[1] = 1;
    u[0] = d[1] * a[2] - d[2] * a[1];
    u[1] = d[2] * a[0] - d[0] * a[2];
    u[2] = d[0] * a[1] - d[1] * a[0];
    double n = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    for (int k = 0; k < 3; k++)
        u[k] /= n;
    v[0] = d[1] * u[2] - d[2] * u[1];
    v[1] = d[2] * u[0] - d[0] * u[2];
    v[2] = d[0] * u[1] - d[1] * u[0];
}

/* In-place separable Gaussian blur along one axis of a d,h,w float grid. */
static void blur_axis(float *a, int d, int h, int w, int axis, double sigma)
{
    if (sigma <= 0)
        return;
    int r = (int)ceil(3 * sigma), n = axis == 0 ? d : axis == 1 ? h : w;
    double *k = malloc((size_t)(2 * r + 1) * sizeof *k);
    float *line = malloc((size_t)n * sizeof *line);
    if (!k || !line) {
        free(k);
        free(line);
        return;
    }
    double sum = 0;
    for (int i = -r; i <= r; i++)
        sum += k[i + r] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++)
        k[i] /= sum;
    size_t st = axis == 0 ? (size_t)h * w : axis == 1 ? (size_t)w : 1;
    int o1 = axis == 0 ? h : d, o2 = axis == 2 ? h : w;
    for (int i = 0; i < o1; i++)
        for (int j = 0; j < o2; j++) {
            size_t base = axis == 0   ? (size_t)i * w + j
                          : axis == 1 ? (size_t)i * h * w + j
                                      : ((size_t)i * h + j) * w;
            for (int x = 0; x < n; x++)
                line[x] = a[base + x * st];
            for (int x = 0; x < n; x++) {
                double acc = 0;
                for (int t = -r; t <= r; t++) {
                    int y = x + t;
                    y = y < 0 ? -y - 1 : y >= n ? 2 * n - y - 1 : y;
                    y = y < 0 ? 0 : y >= n ? n - 1 : y;
                    acc += k[t + r] * line[y];
                }
                a[base + x * st] = (float)acc;
            }
        }
    free(k);
    free(line);
}

/* What a microscope makes of an object image (0..1 contrast): blur
 * (weaker along the coarse z axis), uneven illumination, a background
 * level, noise; and the voxel spacing on image and labels. */
static void microscope(u3d_volume *img, u3d_labels *lab, double z_spacing,
                       double blur, double noise, double uneven, u3d_rng *r)
{
    int d = img->d, h = img->h, w = img->w;
    size_t hw = (size_t)h * w;
    blur_axis(img->data, d, h, w, 0, blur / z_spacing);
    blur_axis(img->data, d, h, w, 1, blur);
    blur_axis(img->data, d, h, w, 2, blur);
    double gx = u3d_rng_uniform(r) - 0.5, gy = u3d_rng_uniform(r) - 0.5;
    for (int z = 0; z < d; z++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = z * hw + (size_t)y * w + x;
                double bright = 1.0 + uneven * (gx * (2.0 * x / w - 1) +
                                                gy * (2.0 * y / h - 1));
                img->data[i] = (float)(100.0 * bright * (0.15 + img->data[i]) +
                                       noise * 100.0 * u3d_rng_normal(r));
            }
    img->spacing[0] = z_spacing;
    img->spacing[1] = img->spacing[2] = 1.0;
    memcpy(lab->spacing, img->spacing, sizeof img->spacing);
    snprintf(img->unit, sizeof img->unit, "um");
    snprintf(lab->unit, sizeof lab->unit, "um");
    img->bits = 32;
    img->is_float = 1;
}

/* The image and labels of a d,h,w volume, given the generator's own
 * allocation `own` (freed, with them, on failure). */
static u3d_status alloc_pair(void *own, int d, int h, int w, u3d_volume *img,
                             u3d_labels *lab, u3d_error *err)
{
    u3d_status st = own ? u3d_volume_alloc(1, d, h, w, img, err)
                        : u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    if (!st)
        st = u3d_labels_alloc(d, h, w, lab, err);
    if (st) {
        free(own);
        u3d_volume_free(img);
        u3d_labels_free(lab);
    }
    return st;
}

u3d_status u3d_synth_tubules(const u3d_synth_params *p, uint64_t seed,
                             u3d_volume *img, u3d_labels *lab, u3d_error *err)
{
    if (p->d < 8 || p->h < 8 || p->w < 8 || p->ntubes < 1 || p->z_spacing <= 0)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "synthetic volume: sizes >= 8, at least one tube, "
                          "z spacing > 0");
    memset(img, 0, sizeof *img);
    memset(lab, 0, sizeof *lab);
    tube *tb = calloc((size_t)p->ntubes, sizeof *tb);
    u3d_status st = alloc_pair(tb, p->d, p->h, p->w, img, lab, err);
    if (st)
        return st;
    u3d_rng r;
    u3d_rng_init(&r, seed, 0x7ab);
    /* isotropic frame: z coordinates scaled by the voxel aspect */
    double ext[3] = {p->d * p->z_spacing, p->h, p->w};
    double diag = sqrt(ext[0] * ext[0] + ext[1] * ext[1] + ext[2] * ext[2]);
    for (int i = 0; i < p->ntubes; i++) {
        tube *t = &tb[i];
        double d[3], n = 0;
        for (int k = 0; k < 3; k++) {
            d[k] = u3d_rng_normal(&r);
            n += d[k] * d[k];
        }
        n = sqrt(n);
        for (int k = 0; k < 3; k++) {
            t->dir[k] = d[k] / n;
            /* start outside so the tube crosses the volume */
            t->p0[k] = ext[k] * u3d_rng_uniform(&r) - 0.5 * diag * t->dir[k];
        }
        t->len = 1.5 * diag;
        for (int k = 0; k < 2; k++) {
            t->amp[k] = 2 + 6 * u3d_rng_uniform(&r);
            t->freq[k] = 0.03 + 0.08 * u3d_rng_uniform(&r);
            t->phase[k] = 6.283 * u3d_rng_uniform(&r);
        }
        t->r0 = p->r_min + (p->r_max - p->r_min) * u3d_rng_uniform(&r) * 0.5;
        t->r1 = p->r_min + (p->r_max - p->r_min) * (0.5 + 0.5 * u3d_rng_uniform(&r));
    }
    double u[64][3], v[64][3];
    for (int i = 0; i < p->ntubes && i < 64; i++)
        unit_perp(tb[i].dir, u[i], v[i]);
    size_t hw = (size_t)p->h * p->w;
    for (int z = 0; z < p->d; z++)
        for (int y = 0; y < p->h; y++)
            for (int x = 0; x < p->w; x++) {
                double q[3] = {(z + 0.5) * p->z_spacing, y + 0.5, x + 0.5};
                int in = 0;
                double rad;
                for (int i = 0; i < p->ntubes && i < 64 && !in; i++)
                    in = inside(&tb[i], u[i], v[i], q, &rad);
                lab->data[z * hw + (size_t)y * p->w + x] = (uint16_t)in;
                img->data[z * hw + (size_t)y * p->w + x] = (float)in;
            }
    microscope(img, lab, p->z_spacing, p->blur, p->noise, p->uneven, &r);
    free(tb);
    return U3D_OK;
}

void u3d_synth_params_default(u3d_synth_params *p)
{
    p->d = 48;
    p->h = 96;
    p->w = 96;
    p->z_spacing = 2.0;
    p->ntubes = 14;
    p->r_min = 3.0;
    p->r_max = 7.0;
    p->blur = 1.2;
    p->noise = 0.12;
    p->uneven = 0.5;
}

/* ---- membranes ---- */

void u3d_membrane_params_default(u3d_membrane_params *p)
{
    p->d = 32;
    p->h = 128;
    p->w = 128;
    p->z_spacing = 0.235 / 0.15;
    p->ncells = 60;
    p->wall = 1.5;
    p->blur = 0.8;
    p->noise = 0.15;
    p->uneven = 0.4;
    p->faint = 0.35;
}

/* Contrast of the wall between cells a and b: the same for (b, a). */
static double wall_contrast(uint64_t seed, int a, int b, double faint)
{
    uint64_t s = seed ^ ((uint64_t)(a < b ? a : b) << 32) ^
                 (uint64_t)(a < b ? b : a);
    double u = (double)(u3d_splitmix64(&s) >> 11) / 9007199254740992.0;
    return faint + (1.0 - faint) * u;
}

/* Nearest and second-nearest cell centres of q (isotropic frame): the
 * wall is where the two are about equally far. */
static void two_nearest(const double (*c)[3], int n, const double q[3],
                        int *i1, int *i2, double *gap)
{
    double d1 = INFINITY, d2 = INFINITY;
    *i1 = *i2 = 0;
    for (int i = 0; i < n; i++) {
        double e = 0;
        for (int k = 0; k < 3; k++)
            e += (q[k] - c[i][k]) * (q[k] - c[i][k]);
        if (e < d1) {
            d2 = d1, *i2 = *i1;
            d1 = e, *i1 = i;
        } else if (e < d2) {
            d2 = e, *i2 = i;
        }
    }
    /* distance from q to the bisecting plane of the two centres */
    double len = 0;
    for (int k = 0; k < 3; k++)
        len += (c[*i2][k] - c[*i1][k]) * (c[*i2][k] - c[*i1][k]);
    *gap = (d2 - d1) / (2.0 * sqrt(len > 1e-12 ? len : 1e-12));
}

u3d_status u3d_synth_membranes(const u3d_membrane_params *p, uint64_t seed,
                               u3d_volume *img, u3d_labels *lab,
                               u3d_error *err)
{
    if (p->d < 8 || p->h < 8 || p->w < 8 || p->ncells < 2 ||
        p->ncells > 4096 || !(p->z_spacing > 0) || !(p->wall > 0) ||
        !(p->faint >= 0 && p->faint <= 1))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "synthetic membranes: sizes >= 8, 2..4096 cells, "
                          "z spacing and wall > 0, faint in 0..1");
    memset(img, 0, sizeof *img);
    memset(lab, 0, sizeof *lab);
    double(*c)[3] = calloc((size_t)p->ncells, sizeof *c);
    u3d_status st = alloc_pair(c, p->d, p->h, p->w, img, lab, err);
    if (st)
        return st;
    u3d_rng r;
    u3d_rng_init(&r, seed, 0x3e3b);
    double ext[3] = {p->d * p->z_spacing, p->h, p->w};
    for (int i = 0; i < p->ncells; i++)
        for (int k = 0; k < 3; k++) /* centres also just outside */
            c[i][k] = ext[k] * (1.2 * u3d_rng_uniform(&r) - 0.1);
    size_t hw = (size_t)p->h * p->w;
    for (int z = 0; z < p->d; z++)
        for (int y = 0; y < p->h; y++)
            for (int x = 0; x < p->w; x++) {
                double q[3] = {(z + 0.5) * p->z_spacing, y + 0.5, x + 0.5};
                int a, b;
                double gap;
                two_nearest((const double(*)[3])c, p->ncells, q, &a, &b, &gap);
                size_t i = z * hw + (size_t)y * p->w + x;
                int on = gap < 0.5 * p->wall;
                lab->data[i] = (uint16_t)on;
                img->data[i] =
                    on ? (float)wall_contrast(seed, a, b, p->faint) : 0.0f;
            }
    microscope(img, lab, p->z_spacing, p->blur, p->noise, p->uneven, &r);
    free(c);
    return U3D_OK;
}
