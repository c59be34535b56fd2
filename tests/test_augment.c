/* Data augmentation: identity and translation exactness, device vs host,
 * labels vs source coordinates, the dense field's spread against theory,
 * gray values, reproducibility, bad parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "augment/augment_internal.h" /* the kernels' math, as C */
#include "test_util.h"
#include "unet3d/augment.h"

/* One augmentation call: shapes, patch origin; lab.n == 0: no labels. */
typedef struct acase {
    u3d_shape src, out, lab;
    float origin[3];
} acase;

static int has_lab(const acase *c) { return c->lab.n != 0; }

static int32_t *ialloc(size_t n)
{
    int32_t *a = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(a);
    return a;
}

static float *falloc(size_t n)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(a);
    return a;
}

/* Runs u3d_augment_sample on be; outputs into host arrays. */
static void run_be(u3d_backend *be, const u3d_augment_params *p, uint64_t seed,
                   uint64_t smp, const acase *c, const float *img,
                   const int32_t *lab, float *oimg, int32_t *olab)
{
    u3d_error err = {0};
    u3d_tensor si = t_tensor(be, c->src, img), oi = t_tensor(be, c->out, NULL);
    u3d_tensor sl = {0}, ol = {0};
    if (has_lab(c)) {
        sl = t_tensor_i32(be, u3d_shape5(1, 1, c->src.d, c->src.h, c->src.w),
                          lab);
        ol = t_tensor_i32(be, c->lab, NULL);
    }
    t_ok(u3d_augment_sample(be, p, seed, smp, &si, has_lab(c) ? &sl : NULL,
                            c->origin, &oi, has_lab(c) ? &ol : NULL, &err),
         &err, "augment sample");
    t_ok(u3d_tensor_read(&oi, oimg, &err), &err, "read image");
    if (has_lab(c))
        t_ok(u3d_tensor_read(&ol, olab, &err), &err, "read labels");
    u3d_tensor_release(&si);
    u3d_tensor_release(&oi);
    u3d_tensor_release(&sl);
    u3d_tensor_release(&ol);
}

static void run_host(const u3d_augment_params *p, uint64_t seed, uint64_t smp,
                     const acase *c, const float *img, const int32_t *lab,
                     float *oimg, int32_t *olab)
{
    u3d_error err = {0};
    t_ok(u3d_augment_sample_host(p, seed, smp, c->src, img,
                                 has_lab(c) ? lab : NULL, c->origin, c->out,
                                 oimg, c->lab, has_lab(c) ? olab : NULL, &err),
         &err, "augment sample host");
}

static int32_t *rand_labels(uint64_t *seed, size_t n, int classes)
{
    int32_t *a = ialloc(n);
    for (size_t i = 0; i < n; i++)
        a[i] = t_randi(seed, 0, classes - 1);
    return a;
}

static void center_origin(acase *c)
{
    c->origin[0] = 0.5f * (float)(c->src.d - 1);
    c->origin[1] = 0.5f * (float)(c->src.h - 1);
    c->origin[2] = 0.5f * (float)(c->src.w - 1);
}

/* No change requested: the patch covering the whole volume at its center
 * is the input, bit for bit, on the device and on the host. */
static void identity_is_exact(void **state)
{
    t_env *e = *state;
    u3d_augment_params p;
    u3d_augment_params_none(&p);
    int reps = t_small() ? 1 : 3;
    for (int r = 0; r < reps; r++) {
        int C = t_randi(&e->seed, 1, 3);
        int D = t_randi(&e->seed, 1, t_small() ? 5 : 13),
            H = t_randi(&e->seed, 2, t_small() ? 6 : 14),
            W = t_randi(&e->seed, 2, t_small() ? 7 : 15);
        acase c = {u3d_shape5(1, C, D, H, W), u3d_shape5(1, C, D, H, W),
                   u3d_shape5(1, 1, D, H, W), {0}};
        center_origin(&c);
        size_t n = u3d_shape_count(c.src), nv = u3d_shape_spatial(c.src);
        float *img = t_rand_array(&e->seed, n, -2, 2), *o = falloc(n);
        int32_t *lab = rand_labels(&e->seed, nv, 4), *ol = ialloc(nv);
        run_be(e->cl, &p, 7, r, &c, img, lab, o, ol);
        assert_memory_equal(o, img, n * sizeof *o);
        assert_memory_equal(ol, lab, nv * sizeof *ol);
        run_host(&p, 7, r, &c, img, lab, o, ol);
        assert_memory_equal(o, img, n * sizeof *o);
        assert_memory_equal(ol, lab, nv * sizeof *ol);
        free(img), free(o), free(lab), free(ol);
    }
}

static int sym(int i, int n)
{
    int p = 2 * n;
    i %= p;
    if (i < 0)
        i += p;
    return i < n ? i : p - 1 - i;
}

/* Checks a patch made with an integer origin shift t against the shifted
 * source: constant fill (value fv, labels ignore) or mirror. */
static void check_shift(const acase *c, const int t[3], int mirror, float fv,
                        int ignore, const float *img, const int32_t *lab,
                        const float *o, const int32_t *ol)
{
    u3d_shape s = c->src, q = c->out, l = c->lab;
    int lz0 = (q.d - l.d) / 2, ly0 = (q.h - l.h) / 2, lx0 = (q.w - l.w) / 2;
    for (int z = 0; z < q.d; z++)
        for (int y = 0; y < q.h; y++)
            for (int x = 0; x < q.w; x++) {
                /* patch center maps to the source center + t */
                int sz = z - (q.d - 1) / 2 + (s.d - 1) / 2 + t[0];
                int sy = y - (q.h - 1) / 2 + (s.h - 1) / 2 + t[1];
                int sx = x - (q.w - 1) / 2 + (s.w - 1) / 2 + t[2];
                int in = sz >= 0 && sz < s.d && sy >= 0 && sy < s.h &&
                         sx >= 0 && sx < s.w;
                size_t sv = ((size_t)sym(sz, s.d) * s.h + sym(sy, s.h)) * s.w +
                            sym(sx, s.w);
                size_t ov = ((size_t)z * q.h + y) * q.w + x;
                for (int ch = 0; ch < s.c; ch++) {
                    float want = in || mirror
                                     ? img[ch * u3d_shape_spatial(s) + sv]
                                     : fv;
                    assert_true(o[ch * u3d_shape_spatial(q) + ov] == want);
                }
                int lz = z - lz0, ly = y - ly0, lx = x - lx0;
                if (lz < 0 || lz >= l.d || ly < 0 || ly >= l.h || lx < 0 ||
                    lx >= l.w)
                    continue;
                assert_int_equal(ol[((size_t)lz * l.h + ly) * l.w + lx],
                                 in ? lab[sv] : ignore);
            }
}

/* A pure translation (origin shifted by whole voxels) shifts the volume;
 * voxels from outside are ignore and fill (or mirrored), also with a
 * smaller centered label patch. */
static void translation_shifts(void **state)
{
    t_env *e = *state;
    u3d_augment_params p;
    u3d_augment_params_none(&p);
    p.ignore_label = -3;
    p.fill_value = -7.5f;
    int D = t_small() ? 8 : 11, H = t_small() ? 9 : 12, W = t_small() ? 8 : 13;
    const int shifts[3][3] = {{1, -2, 3}, {-4, 0, 1}, {0, 5, -6}};
    /* patch and label sizes shrink by even amounts so that whole-voxel
     * shifts of the centers stay whole */
    const int cut[3][3] = {{2, 0, 2}, {0, 2, 0}, {4, 2, 2}};
    const int lcut[3][3] = {{2, 4, 0}, {0, 2, 2}, {2, 0, 2}};
    for (int r = 0; r < 3; r++) {
        const int *k = cut[r], *l = lcut[r];
        acase c = {u3d_shape5(1, 2, D, H, W),
                   u3d_shape5(1, 2, D - k[0], H - k[1], W - k[2]),
                   u3d_shape5(1, 1, D - k[0] - l[0], H - k[1] - l[1],
                              W - k[2] - l[2]),
                   {0}};
        center_origin(&c);
        for (int a = 0; a < 3; a++)
            c.origin[a] += (float)shifts[r][a];
        p.fill = r == 1 ? U3D_AUG_FILL_MIRROR : U3D_AUG_FILL_CONSTANT;
        size_t n = u3d_shape_count(c.src), nv = u3d_shape_spatial(c.src);
        float *img = t_rand_array(&e->seed, n, 0, 1);
        float *o = falloc(u3d_shape_count(c.out));
        int32_t *lab = rand_labels(&e->seed, nv, 5);
        int32_t *ol = ialloc(u3d_shape_count(c.lab));
        run_be(e->cl, &p, 3, r, &c, img, lab, o, ol);
        check_shift(&c, shifts[r], r == 1, p.fill_value, p.ignore_label, img,
                    lab, o, ol);
        run_host(&p, 3, r, &c, img, lab, o, ol);
        check_shift(&c, shifts[r], r == 1, p.fill_value, p.ignore_label, img,
                    lab, o, ol);
        free(img), free(o), free(lab), free(ol);
    }
}

/* Everything on: device, ref backend and host implementation agree bit for
 * bit, images and labels (the kernels use only +, -, * and bit operations
 * without contraction, see cl/augment.cl; the brief asked for images
 * within 1e-5, equality is what the design guarantees), and labels are
 * source values or ignore. */
static void device_matches_host(void **state)
{
    t_env *e = *state;
    int reps = t_small() ? 2 : 6;
    for (int r = 0; r < reps; r++) {
        u3d_augment_params p;
        u3d_augment_params_paper(&p);
        for (int a = 0; a < 3; a++) {
            p.sigma[a] = t_randf(&e->seed, 1, 4);
            p.grid_spacing[a] = t_randi(&e->seed, 2, 9);
            p.mirror[a] = 1;
        }
        p.scale_axis[0] = 0.9f, p.scale_axis[1] = 1.1f;
        p.noise_std[0] = 0.01f;
        p.fill = r % 2 ? U3D_AUG_FILL_CONSTANT : U3D_AUG_FILL_MIRROR;
        p.ignore_label = 99;
        int C = r == 0 ? 5 : t_randi(&e->seed, 1, 3);
        int big = t_small() ? 9 : 24;
        int D = t_randi(&e->seed, 5, big), H = t_randi(&e->seed, 5, big),
            W = t_randi(&e->seed, 5, big);
        int d = t_randi(&e->seed, 4, D), h = t_randi(&e->seed, 4, H),
            w = t_randi(&e->seed, 4, W);
        acase c = {u3d_shape5(1, C, D, H, W), u3d_shape5(1, C, d, h, w),
                   u3d_shape5(1, 1, d - 2 * (d / 4), h - 2 * (h / 5), w), {0}};
        c.origin[0] = t_randf(&e->seed, 0, (float)D);
        c.origin[1] = t_randf(&e->seed, 0, (float)H);
        c.origin[2] = t_randf(&e->seed, 0, (float)W);
        size_t n = u3d_shape_count(c.src), nv = u3d_shape_spatial(c.src);
        size_t no = u3d_shape_count(c.out), nl = u3d_shape_count(c.lab);
        float *img = t_rand_array(&e->seed, n, 0, 1);
        int32_t *lab = rand_labels(&e->seed, nv, 3);
        float *oc = falloc(no), *orf = falloc(no), *oh = falloc(no);
        int32_t *lc = ialloc(nl), *lrf = ialloc(nl), *lh = ialloc(nl);
        uint64_t seed = 1000 + (uint64_t)r * 0x100000001ULL;
        run_be(e->cl, &p, seed, 5 + r, &c, img, lab, oc, lc);
        run_be(e->ref, &p, seed, 5 + r, &c, img, lab, orf, lrf);
        run_host(&p, seed, 5 + r, &c, img, lab, oh, lh);
        t_assert_close(oc, oh, no, 0.0, "augment device vs host");
        assert_memory_equal(orf, oh, no * sizeof *oh);
        assert_memory_equal(lc, lh, nl * sizeof *lh);
        assert_memory_equal(lrf, lh, nl * sizeof *lh);
        for (size_t i = 0; i < nl; i++)
            assert_true((lc[i] >= 0 && lc[i] < 3) || lc[i] == 99);
        free(img), free(lab), free(oc), free(orf), free(oh);
        free(lc), free(lrf), free(lh);
    }
}

/* Ramps: channel a of the source holds the a-th voxel coordinate, so a
 * trilinear sample returns the source point itself. */
static float *ramps(u3d_shape s)
{
    size_t nv = u3d_shape_spatial(s);
    float *img = falloc(3 * nv);
    for (int z = 0; z < s.d; z++)
        for (int y = 0; y < s.h; y++)
            for (int x = 0; x < s.w; x++) {
                size_t v = ((size_t)z * s.h + y) * s.w + x;
                img[v] = (float)z;
                img[nv + v] = (float)y;
                img[2 * nv + v] = (float)x;
            }
    return img;
}

static int32_t coord_label(int z, int y, int x) { return (7 * z + 3 * y + x) % 11; }

/* Rotation, scaling and mirroring: without deformation the sampled source
 * point is origin + A (o - c) (A from u3d_augment_draw_sample); with
 * deformation, every label is the source label of the nearest voxel of
 * the sampled point, and ignore exactly where the image is filled. */
static void labels_follow_coordinates(void **state)
{
    t_env *e = *state;
    int S = t_small() ? 12 : 30, P = t_small() ? 10 : 24;
    acase c = {u3d_shape5(1, 3, S, S + 1, S + 2), u3d_shape5(1, 3, P, P + 1, P),
               u3d_shape5(1, 1, P, P + 1, P), {0}};
    float *img = ramps(c.src);
    size_t nv = u3d_shape_spatial(c.src), no = u3d_shape_spatial(c.out);
    int32_t *lab = ialloc(nv);
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S + 1; y++)
            for (int x = 0; x < S + 2; x++)
                lab[((size_t)z * (S + 1) + y) * (S + 2) + x] = coord_label(z, y, x);
    float *o = falloc(3 * no);
    int32_t *ol = ialloc(no);
    u3d_augment_params p;
    u3d_augment_params_none(&p);
    for (int a = 0; a < 3; a++) {
        p.rotate_deg[a] = 30;
        p.mirror[a] = 1;
    }
    p.scale_iso[0] = 0.7f, p.scale_iso[1] = 1.3f;
    p.scale_axis[0] = 0.9f, p.scale_axis[1] = 1.1f;
    p.fill = U3D_AUG_FILL_CONSTANT;
    p.fill_value = -1000;
    p.ignore_label = -1;
    for (int r = 0; r < 4; r++) {
        center_origin(&c);
        c.origin[r % 3] += r < 2 ? 0.3f * S : -0.25f * S; /* partly outside */
        for (int a = 0; a < 3; a++)
            p.sigma[a] = r == 0 ? 0.0f : 3.0f;
        p.grid_spacing[0] = 5, p.grid_spacing[1] = 8, p.grid_spacing[2] = 6;
        run_be(e->cl, &p, 77, r, &c, img, lab, o, ol);
        u3d_augment_draw dr;
        u3d_augment_draw_sample(&p, 77, r, &dr);
        int n_in = 0, n_out = 0;
        for (int z = 0; z < P; z++)
            for (int y = 0; y < P + 1; y++)
                for (int x = 0; x < P; x++) {
                    size_t v = ((size_t)z * (P + 1) + y) * P + x;
                    float q[3] = {o[v], o[no + v], o[2 * no + v]};
                    if (ol[v] == -1) { /* outside: filled */
                        n_out++;
                        for (int a = 0; a < 3; a++)
                            assert_true(q[a] == -1000.0f);
                        continue;
                    }
                    n_in++;
                    int rr[3], n3[3] = {S, S + 1, S + 2}, edge = 0;
                    for (int a = 0; a < 3; a++) {
                        assert_true(q[a] >= -1e-4f && q[a] <= n3[a] - 1 + 1e-4f);
                        rr[a] = (int)floorf(q[a] + 0.5f);
                        /* the half-voxel rim is clamped; ties ambiguous */
                        edge |= q[a] < 1e-3f || q[a] > n3[a] - 1 - 1e-3f ||
                                fabsf(q[a] - floorf(q[a]) - 0.5f) < 1e-3f;
                    }
                    if (!edge)
                        assert_int_equal(ol[v], coord_label(rr[0], rr[1], rr[2]));
                    if (r == 0 && !edge) {
                        float vo[3] = {z - 0.5f * (P - 1), y - 0.5f * P,
                                       x - 0.5f * (P - 1)};
                        for (int a = 0; a < 3; a++) {
                            float want = c.origin[a] + dr.matrix[3 * a] * vo[0] +
                                         dr.matrix[3 * a + 1] * vo[1] +
                                         dr.matrix[3 * a + 2] * vo[2];
                            assert_true(fabsf(q[a] - want) < 1e-3f);
                        }
                    }
                }
        assert_true(n_in > 0 && n_out > 0); /* both cases exercised */
    }
    free(img), free(lab), free(o), free(ol);
}

/* Exact mean square of one field component over a patch side of n voxels
 * with spacing s, per unit sigma^2, factored per axis: tr(Q_a) / n and
 * tr(Q_a^2) / n^2 with Q_a = sum_i b(i) b(i)^T over the axis' voxels. */
static void axis_traces(int n, int s, double *tq, double *tq2)
{
    int nc = (n - 1) / s + 4;
    double *Q = calloc((size_t)nc * nc, sizeof *Q);
    assert_non_null(Q);
    for (int i = 0; i < n; i++) {
        double t = (double)(i % s) / s, u = 1 - t, b[4];
        b[0] = u * u * u / 6;
        b[1] = (3 * t * t * t - 6 * t * t + 4) / 6;
        b[2] = (-3 * t * t * t + 3 * t * t + 3 * t + 1) / 6;
        b[3] = t * t * t / 6;
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 4; k++)
                Q[(i / s + j) * nc + i / s + k] += b[j] * b[k];
    }
    *tq = *tq2 = 0;
    for (int j = 0; j < nc; j++) {
        *tq += Q[j * nc + j];
        for (int k = 0; k < nc; k++)
            *tq2 += Q[j * nc + k] * Q[j * nc + k];
    }
    *tq /= n;
    *tq2 /= (double)n * n;
    free(Q);
}

/* Checks the mean square sum2 / (3 samples V) of a field over patches of
 * n[3] voxels with spacings sp[3] against the exact expectation (per unit
 * sigma^2: prod_a tr(Q_a)/n_a) with 5 standard errors. */
static void check_mean_square(const char *what, double sum2, int samples,
                              const int n[3], const int sp[3], double sigma)
{
    double tq[3], tq2[3];
    for (int a = 0; a < 3; a++)
        axis_traces(n[a], sp[a], &tq[a], &tq2[a]);
    double s2 = sigma * sigma, V = (double)n[0] * n[1] * n[2];
    double want = s2 * tq[0] * tq[1] * tq[2];
    double se = s2 * sqrt(2 * tq2[0] * tq2[1] * tq2[2] / (3.0 * samples));
    double got = sum2 / (3.0 * samples * V);
    print_message("%s: field rms %.4f voxels, expected %.4f +- %.4f (sigma "
                  "%.1f, %d samples; sigma (151/315)^1.5 = %.4f)\n",
                  what, sqrt(got), sqrt(want), se / (2 * sqrt(want)), sigma,
                  samples, sigma * pow(151.0 / 315.0, 1.5));
    /* sides multiples of a spacing >= 4: the discrete mean over t = r/s is
     * the integral 151/315 within 1e-4 per axis (7e-5 for s = 4, 1.5e-8
     * for s = 32) */
    for (int a = 0; a < 3; a++)
        assert_true(fabs(tq[a] / (151.0 / 315.0) - 1) < 1e-4);
    assert_true(fabs(got - want) < 5 * se);
}

/* The dense field's spread. On the device (ramp source: output minus the
 * undeformed point is the field, equal to u3d_augment_field_host's) over a
 * few patches, on the host over many (anisotropic spacing there), as the
 * mean square over all voxels, 3 components and the patches. Expectation
 * and standard error are exact for Gaussian control values: mean square
 * m = phi^T Q phi / V with Q = sum_v b(v) b(v)^T = Q_d x Q_h x Q_w, so
 * E m = sigma^2 tr Q / V and Var m = 2 sigma^4 tr(Q^2) / V^2 per component
 * and patch (all independent); tolerance 5 standard errors (about 5% of the
 * rms for the host run). E m / sigma^2 is about (151/315)^3, so the rms is
 * 0.3319 sigma (see augment.h). */
static void field_std_matches_theory(void **state)
{
    t_env *e = *state;
    int P = t_small() ? 16 : 64, s = t_small() ? 8 : 32;
    int samples = t_small() ? 2 : 8, host_samples = t_small() ? 24 : 1024;
    float sigma = t_small() ? 1.0f : 4.0f;
    /* a component's std is at most sigma / 2^1.5: the margin is > 8 stds */
    int margin = (int)ceilf(3 * sigma) + 2, S = P + 2 * margin;
    acase c = {u3d_shape5(1, 3, S, S, S), u3d_shape5(1, 3, P, P, P),
               {0, 0, 0, 0, 0}, {0}};
    center_origin(&c);
    u3d_augment_params p;
    u3d_augment_params_none(&p);
    for (int a = 0; a < 3; a++) {
        p.sigma[a] = sigma;
        p.grid_spacing[a] = s;
    }
    p.fill = U3D_AUG_FILL_CONSTANT;
    p.fill_value = -1000;
    float *img = ramps(c.src);
    size_t no = u3d_shape_spatial(c.out);
    float *o = falloc(3 * no), *f = falloc(3 * no);
    u3d_error err = {0};
    double sum2 = 0;
    for (int r = 0; r < samples; r++) {
        run_be(e->cl, &p, 2024, r, &c, img, NULL, o, NULL);
        t_ok(u3d_augment_field_host(&p, 2024, r, P, P, P, f, &err), &err,
             "field host");
        for (int a = 0; a < 3; a++)
            for (size_t v = 0; v < no; v++) {
                int i = a == 0 ? (int)(v / ((size_t)P * P))
                               : a == 1 ? (int)(v / P % P) : (int)(v % P);
                double u = o[a * no + v] - (margin + i);
                assert_true(o[a * no + v] > -999.0f); /* never outside */
                assert_true(fabs(u - f[a * no + v]) < 1e-4);
                sum2 += u * u;
            }
    }
    const int n[3] = {P, P, P}, sp[3] = {s, s, s};
    check_mean_square("device", sum2, samples, n, sp, sigma);
    /* host: anisotropic grid, many patches */
    const int n2[3] = {P / 2, P, P}, sp2[3] = {s / 2, s, s};
    p.grid_spacing[0] = sp2[0];
    sum2 = 0;
    for (int r = 0; r < host_samples; r++) {
        t_ok(u3d_augment_field_host(&p, 99, r, n2[0], n2[1], n2[2], f, &err),
             &err, "field host");
        for (size_t i = 0; i < 3 * no / 2; i++)
            sum2 += (double)f[i] * f[i];
    }
    check_mean_square("host", sum2, host_samples, n2, sp2, sigma);
    free(img), free(o), free(f);
}

/* Gray values on a constant image (no geometry change): the mean follows
 * gamma, contrast and brightness of the draw; the noise has the drawn
 * std and is independent between channels (6 channels: two Philox groups). */
static void gray_values(void **state)
{
    t_env *e = *state;
    int P = t_small() ? 10 : 24, C = 6;
    acase c = {u3d_shape5(1, C, P, P, P), u3d_shape5(1, C, P, P, P),
               {0, 0, 0, 0, 0}, {0}};
    center_origin(&c);
    size_t nv = u3d_shape_spatial(c.src), n = C * nv;
    float *img = falloc(n), *o = falloc(n);
    for (size_t i = 0; i < n; i++)
        img[i] = 0.3f;
    u3d_augment_params p;
    u3d_augment_params_none(&p);
    p.gray_range[0] = -0.5f, p.gray_range[1] = 1.5f;
    p.gamma[0] = 0.5f, p.gamma[1] = 2.0f;
    p.contrast[0] = 0.5f, p.contrast[1] = 1.5f;
    p.brightness[0] = -0.2f, p.brightness[1] = 0.2f;
    for (int r = 0; r < 4; r++) {
        p.noise_std[0] = r == 0 ? 0.0f : 0.05f;
        p.noise_std[1] = r == 0 ? 0.0f : 0.1f;
        run_be(e->cl, &p, 9, r, &c, img, NULL, o, NULL);
        u3d_augment_draw dr;
        u3d_augment_draw_sample(&p, 9, r, &dr);
        double t = pow((0.3 + 0.5) / 2.0, dr.gamma) * 2.0 - 0.5;
        double want = (t - 0.5) * dr.contrast + 0.5 + dr.brightness;
        double sx = 0, sxx = 0, s04 = 0;
        for (size_t i = 0; i < n; i++) {
            sx += o[i] - want;
            sxx += (o[i] - want) * (o[i] - want);
        }
        for (size_t v = 0; v < nv; v++)
            s04 += (o[v] - want) * (o[4 * nv + v] - want);
        double mean = sx / n, sd = sqrt(fmax(sxx / n - mean * mean, 0));
        if (r == 0) {
            assert_true(fabs(mean) < 1e-5 && sd < 1e-5);
            continue;
        }
        /* 5 standard errors: mean sd/sqrt(n), sd sd/sqrt(2n), corr 1/sqrt(nv) */
        assert_true(fabs(mean) < 5 * dr.noise_std / sqrt((double)n));
        assert_true(fabs(sd - dr.noise_std) < 5 * dr.noise_std / sqrt(2.0 * n));
        assert_true(fabs(s04 / nv) / (sd * sd) < 5 / sqrt((double)nv));
    }
    free(img), free(o);
}

/* Same (seed, sample) gives the same patch; another sample or seed not. */
static void same_seed_same_patch(void **state)
{
    t_env *e = *state;
    int P = t_small() ? 8 : 20;
    acase c = {u3d_shape5(1, 2, P + 3, P + 2, P + 1), u3d_shape5(1, 2, P, P, P),
               u3d_shape5(1, 1, P - 2, P - 4, P), {0}};
    center_origin(&c);
    u3d_augment_params p;
    u3d_augment_params_paper(&p);
    for (int a = 0; a < 3; a++)
        p.grid_spacing[a] = 6;
    size_t n = u3d_shape_count(c.src), nv = u3d_shape_spatial(c.src);
    size_t no = u3d_shape_count(c.out), nl = u3d_shape_count(c.lab);
    float *img = t_rand_array(&e->seed, n, 0, 1);
    int32_t *lab = rand_labels(&e->seed, nv, 4);
    float *o[4];
    int32_t *l[4];
    const uint64_t seeds[4] = {5, 5, 5, 6}, smps[4] = {1, 1, 2, 1};
    for (int i = 0; i < 4; i++) {
        o[i] = falloc(no);
        l[i] = ialloc(nl);
        run_be(e->cl, &p, seeds[i], smps[i], &c, img, lab, o[i], l[i]);
    }
    assert_memory_equal(o[0], o[1], no * sizeof(float));
    assert_memory_equal(l[0], l[1], nl * sizeof(int32_t));
    assert_true(memcmp(o[0], o[2], no * sizeof(float)) != 0);
    assert_true(memcmp(o[0], o[3], no * sizeof(float)) != 0);
    for (int i = 0; i < 4; i++)
        free(o[i]), free(l[i]);
    free(img), free(lab);
}

/* Per-transform probabilities: p = 0 turns the paper's transforms into an
 * exact crop (bit for bit, device and host); p = 1 is the paper preset's
 * patch; p only decides whether a transform applies (the drawn values stay)
 * and each applies in about p of the samples (5 standard errors). */
static void transform_probabilities(void **state)
{
    t_env *e = *state;
    int P = t_small() ? 8 : 14;
    acase c = {u3d_shape5(1, 1, P, P, P), u3d_shape5(1, 1, P, P, P),
               u3d_shape5(1, 1, P, P, P), {0}};
    center_origin(&c);
    u3d_augment_params paper, p0, p1;
    u3d_augment_params_paper(&paper);
    for (int a = 0; a < 3; a++)
        paper.grid_spacing[a] = 4;
    p0 = paper, p1 = paper;
    p0.p_deform = p0.p_rotate = p0.p_scale = p0.p_gray = 0.0f;
    size_t n = u3d_shape_count(c.src);
    float *img = t_rand_array(&e->seed, n, 0, 1), *o = falloc(n),
          *o1 = falloc(n);
    int32_t *lab = rand_labels(&e->seed, n, 3), *ol = ialloc(n),
            *ol1 = ialloc(n);
    for (uint64_t smp = 0; smp < 3; smp++) {
        run_be(e->cl, &p0, 9, smp, &c, img, lab, o, ol);
        assert_memory_equal(o, img, n * sizeof *o);
        assert_memory_equal(ol, lab, n * sizeof *ol);
        run_host(&p0, 9, smp, &c, img, lab, o, ol);
        assert_memory_equal(o, img, n * sizeof *o);
        run_be(e->cl, &paper, 9, smp, &c, img, lab, o, ol);
        run_be(e->cl, &p1, 9, smp, &c, img, lab, o1, ol1);
        assert_memory_equal(o, o1, n * sizeof *o);
        assert_memory_equal(ol, ol1, n * sizeof *ol);
        assert_true(memcmp(o, img, n * sizeof *o) != 0);
    }
    /* frequencies and independence of the drawn values */
    u3d_augment_params q = paper;
    q.p_deform = 0.2f, q.p_rotate = 0.5f, q.p_scale = 0.3f, q.p_gray = 0.7f;
    const int N = 4000;
    int cnt[4] = {0};
    for (int i = 0; i < N; i++) {
        u3d_augment_draw a, b;
        u3d_augment_draw_sample(&paper, 3, (uint64_t)i, &a);
        u3d_augment_draw_sample(&q, 3, (uint64_t)i, &b);
        assert_true(a.deform);
        cnt[0] += b.deform;
        if (b.angle_deg[0] != 0.0f) {
            cnt[1]++;
            assert_true(b.angle_deg[0] == a.angle_deg[0]);
        }
        if (b.scale[0] != 1.0f) {
            cnt[2]++;
            assert_true(b.scale[0] == a.scale[0]);
        }
        if (b.gamma != 1.0f) {
            cnt[3]++;
            assert_true(b.gamma == a.gamma);
        }
    }
    const float want[4] = {0.2f, 0.5f, 0.3f, 0.7f};
    for (int k = 0; k < 4; k++) {
        double f = (double)cnt[k] / N,
               se = sqrt(want[k] * (1.0 - want[k]) / N);
        if (fabs(f - want[k]) > 5 * se)
            fail_msg("transform %d applied in %.3f of samples, want %.2f", k,
                     f, want[k]);
    }
    u3d_augment_params d;
    u3d_augment_params_default(&d);
    u3d_error err = {0};
    t_ok(u3d_augment_params_check(&d, &err), &err, "default preset");
    assert_true(d.mirror[0] && d.mirror[1] && d.mirror[2] &&
                d.p_deform < 1.0f && d.p_gray < 1.0f);
    free(img), free(o), free(o1), free(lab), free(ol), free(ol1);
}

static void expect_param_error(const u3d_augment_params *p, const char *word)
{
    u3d_error err = {0};
    assert_int_equal(u3d_augment_params_check(p, &err), U3D_ERR_INVALID_ARG);
    if (!strstr(err.msg, word))
        fail_msg("message '%s' does not name '%s'", err.msg, word);
}

static void bad_parameters(void **state)
{
    t_env *e = *state;
    u3d_augment_params p, q;
    u3d_error err = {0};
    u3d_augment_params_paper(&p);
    t_ok(u3d_augment_params_check(&p, &err), &err, "paper preset");
    assert_true(p.sigma[0] == 4.0f && p.grid_spacing[2] == 32);
    t_ok(u3d_augment_params_preset("none", &q, &err), &err, "none preset");
    t_ok(u3d_augment_params_check(&q, &err), &err, "none preset check");
    assert_int_equal(u3d_augment_params_preset("wild", &q, &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "wild"));
    q = p, q.sigma[1] = -1;
    expect_param_error(&q, "sigma");
    q = p, q.grid_spacing[2] = 0;
    expect_param_error(&q, "grid_spacing");
    q = p, q.scale_iso[0] = 0;
    expect_param_error(&q, "scale_iso");
    q = p, q.gamma[0] = 2, q.gamma[1] = 1;
    expect_param_error(&q, "gamma");
    q = p, q.noise_std[0] = -0.1f;
    expect_param_error(&q, "noise_std");
    q = p, q.rotate_deg[0] = NAN;
    expect_param_error(&q, "rotate_deg");
    q = p, q.gray_range[1] = q.gray_range[0];
    expect_param_error(&q, "gray_range");
    q = p, q.p_rotate = 1.5f;
    expect_param_error(&q, "p_rotate");
    q = p, q.p_gray = NAN;
    expect_param_error(&q, "p_gray");

    /* shapes, through the device call */
    u3d_tensor si = t_tensor(e->cl, u3d_shape5(1, 2, 6, 7, 8), NULL);
    u3d_tensor big = t_tensor(e->cl, u3d_shape5(1, 2, 6, 9, 8), NULL);
    u3d_tensor oi = t_tensor(e->cl, u3d_shape5(1, 2, 6, 7, 6), NULL);
    u3d_tensor sl = t_tensor_i32(e->cl, u3d_shape5(1, 1, 6, 7, 8), NULL);
    u3d_tensor odd = t_tensor_i32(e->cl, u3d_shape5(1, 1, 6, 6, 6), NULL);
    u3d_tensor fl = t_tensor(e->cl, u3d_shape5(1, 1, 6, 7, 6), NULL);
    const float org[3] = {3, 3, 4}, nan_org[3] = {3, NAN, 4};
    assert_int_equal(u3d_augment_sample(e->cl, &p, 1, 0, &si, NULL, org, &big,
                                        NULL, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x2x6x9x8"));
    assert_non_null(strstr(err.msg, "1x2x6x7x8"));
    assert_int_equal(u3d_augment_sample(e->cl, &p, 1, 0, &si, &sl, org, &oi,
                                        &odd, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1x1x6x6x6"));
    assert_int_equal(u3d_augment_sample(e->cl, &p, 1, 0, &si, &sl, org, &oi,
                                        &fl, &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "int32"));
    assert_int_equal(u3d_augment_sample(e->cl, &p, 1, 0, &si, &sl, org, &oi,
                                        NULL, &err),
                     U3D_ERR_INVALID_ARG);
    assert_int_equal(u3d_augment_sample(e->cl, &p, 1, 0, &si, NULL, nan_org,
                                        &oi, NULL, &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "origin"));
    q = p, q.sigma[0] = -2;
    assert_int_equal(u3d_augment_sample(e->cl, &q, 1, 0, &si, NULL, org, &oi,
                                        NULL, &err),
                     U3D_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "sigma"));
    /* the host implementation checks the same */
    float *h = falloc(6 * 9 * 8 * 2);
    assert_int_equal(u3d_augment_sample_host(&p, 1, 0, si.shape, h, NULL, org,
                                             big.shape, h, big.shape, NULL,
                                             &err),
                     U3D_ERR_SHAPE);
    free(h);
    u3d_tensor *all[] = {&si, &big, &oi, &sl, &odd, &fl};
    for (int i = 0; i < 6; i++)
        u3d_tensor_release(all[i]);
}

/* The kernels' own math (compiled as C here, the same source the device
 * runs): Philox equals u3d_philox4x32, ln/exp/sqrt/sin/cos are accurate to
 * a few float ulp (relative 1e-6; sin/cos absolute 1e-6), and the normals
 * have mean 0, variance 1 (5 standard errors) and Gaussian tails. */
static void kernel_math_is_accurate(void **state)
{
    (void)state;
    uint64_t s = 99;
    for (int i = 0; i < 2000; i++) {
        uint32_t c[4], k[2], a[4], b[4];
        for (int j = 0; j < 4; j++)
            c[j] = (uint32_t)t_randi(&s, 0, 0xffff) << 16 |
                   (uint32_t)t_randi(&s, 0, 0xffff);
        k[0] = c[1] ^ 0x9e3779b9u, k[1] = c[3] * 3u;
        u3d_philox4x32(c, k, a);
        aug_philox(c[0], c[1], c[2], c[3], k[0], k[1], b);
        assert_memory_equal(a, b, sizeof a);
        float x = ldexpf(t_randf(&s, 1, 2), t_randi(&s, -60, 60));
        assert_true(fabs(aug_ln(x) - log((double)x)) <=
                    1e-6 * fmax(1, fabs(log((double)x))));
        float y = t_randf(&s, -80, 80);
        assert_true(fabs(aug_exp(y) / exp((double)y) - 1) < 1e-6);
        assert_true(fabs(aug_sqrt(x) / sqrt((double)x) - 1) < 1e-6);
        float t = (float)((uint32_t)t_randi(&s, 0, (1 << 24) - 1)) / 16777216.0f;
        float co, si;
        aug_cossin_turn(t, &co, &si);
        assert_true(fabs(co - cos(6.283185307179586 * t)) < 1e-6);
        assert_true(fabs(si - sin(6.283185307179586 * t)) < 1e-6);
    }
    assert_true(aug_exp(-100.0f) == 0.0f && aug_sqrt(0.0f) == 0.0f);
    assert_true(aug_ln(1.0f) == 0.0f);
    double m = 0, v = 0;
    int n = 400000, tail = 0;
    for (int i = 0; i < n / 4; i++) {
        uint32_t c[4] = {(uint32_t)i, 7, 0, 0}, k[2] = {1, 2}, w[4];
        float g[4];
        u3d_philox4x32(c, k, w);
        aug_normals4(w, g);
        for (int j = 0; j < 4; j++) {
            m += g[j];
            v += (double)g[j] * g[j];
            tail += fabs(g[j]) > 3;
        }
    }
    m /= n, v = v / n - m * m;
    assert_true(fabs(m) < 5 / sqrt((double)n));
    assert_true(fabs(v - 1) < 5 * sqrt(2.0 / n));
    /* P(|N| > 3) = 0.0026998, binomial standard error */
    assert_true(fabs(tail / (double)n - 0.0026998) < 5 * sqrt(0.0027 / n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernel_math_is_accurate),
        cmocka_unit_test(identity_is_exact),
        cmocka_unit_test(translation_shifts),
        cmocka_unit_test(device_matches_host),
        cmocka_unit_test(labels_follow_coordinates),
        cmocka_unit_test(field_std_matches_theory),
        cmocka_unit_test(gray_values),
        cmocka_unit_test(same_seed_same_patch),
        cmocka_unit_test(transform_probabilities),
        cmocka_unit_test(bad_parameters),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
