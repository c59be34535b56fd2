/* Augmentation parameters, per-sample draws, validation and dispatch to the
 * OpenCL kernels or the host implementation. */
#include <math.h>
#include <string.h>
#include "augment/augment_internal.h"
#include "unet3d/rng.h"

#define SB 96
static const char AX[3] = {'d', 'h', 'w'};

void u3d_augment_params_none(u3d_augment_params *p)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 3; i++)
        p->grid_spacing[i] = 32;
    p->scale_iso[0] = p->scale_iso[1] = 1.0f;
    p->scale_axis[0] = p->scale_axis[1] = 1.0f;
    p->gray_range[1] = 1.0f;
    p->gamma[0] = p->gamma[1] = 1.0f;
    p->contrast[0] = p->contrast[1] = 1.0f;
    p->fill = U3D_AUG_FILL_MIRROR;
    p->ignore_label = 255;
    p->p_deform = p->p_rotate = p->p_scale = p->p_gray = 1.0f;
}

void u3d_augment_params_paper(u3d_augment_params *p)
{
    u3d_augment_params_none(p);
    for (int i = 0; i < 3; i++) {
        p->sigma[i] = 4.0f;
        p->rotate_deg[i] = 15.0f;
    }
    p->scale_iso[0] = 0.9f;
    p->scale_iso[1] = 1.1f;
    p->gamma[0] = 0.8f;
    p->gamma[1] = 1.25f;
    p->contrast[0] = 0.9f;
    p->contrast[1] = 1.1f;
    p->brightness[0] = -0.1f;
    p->brightness[1] = 0.1f;
    p->noise_std[1] = 0.02f;
}

void u3d_augment_params_default(u3d_augment_params *p)
{
    u3d_augment_params_paper(p);
    for (int i = 0; i < 3; i++)
        p->mirror[i] = 1;
    p->p_deform = p->p_rotate = p->p_scale = p->p_gray = 0.0f;
}

u3d_status u3d_augment_params_preset(const char *name, u3d_augment_params *p,
                                     u3d_error *err)
{
    if (name && !strcmp(name, "none"))
        u3d_augment_params_none(p);
    else if (name && !strcmp(name, "paper"))
        u3d_augment_params_paper(p);
    else if (name && !strcmp(name, "default"))
        u3d_augment_params_default(p);
    else
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "unknown augmentation preset '%s'; use 'default', "
                          "'paper' or 'none'",
                          name ? name : "(null)");
    return U3D_OK;
}

/* A [lo, hi] range: finite, lo <= hi, lo >= min (strictly when strict). */
static u3d_status check_range(const char *name, const float *r, float min,
                              int strict, u3d_error *err)
{
    if (!isfinite(r[0]) || !isfinite(r[1]) || r[0] > r[1])
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: %s range [%g, %g] must be finite with "
                          "lo <= hi",
                          name, r[0], r[1]);
    if (strict ? !(r[0] > min) : !(r[0] >= min))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: %s range [%g, %g] must lie %s %g", name,
                          r[0], r[1], strict ? "above" : "at or above", min);
    return U3D_OK;
}

static u3d_status check_axes(const u3d_augment_params *p, u3d_error *err)
{
    for (int i = 0; i < 3; i++) {
        if (!isfinite(p->sigma[i]) || p->sigma[i] < 0)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "augment: sigma[%d] (%c axis) = %g; the "
                              "deformation std must be >= 0 voxels",
                              i, AX[i], p->sigma[i]);
        if (p->grid_spacing[i] < 1)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "augment: grid_spacing[%d] (%c axis) = %d; the "
                              "control-point spacing must be >= 1 voxel "
                              "(the paper uses 32)",
                              i, AX[i], p->grid_spacing[i]);
        if (!isfinite(p->rotate_deg[i]) || p->rotate_deg[i] < 0 ||
            p->rotate_deg[i] > 180)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "augment: rotate_deg[%d] (%c axis) = %g must "
                              "be in [0, 180] degrees",
                              i, AX[i], p->rotate_deg[i]);
        if (p->mirror[i] != 0 && p->mirror[i] != 1)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "augment: mirror[%d] = %d must be 0 or 1", i,
                              p->mirror[i]);
    }
    return U3D_OK;
}

u3d_status u3d_augment_params_check(const u3d_augment_params *p,
                                    u3d_error *err)
{
    if (!p)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: no parameters given");
    U3D_TRY(check_axes(p, err));
    U3D_TRY(check_range("scale_iso", p->scale_iso, 0, 1, err));
    U3D_TRY(check_range("scale_axis", p->scale_axis, 0, 1, err));
    U3D_TRY(check_range("gamma", p->gamma, 0, 1, err));
    U3D_TRY(check_range("contrast", p->contrast, 0, 0, err));
    U3D_TRY(check_range("brightness", p->brightness, -INFINITY, 0, err));
    U3D_TRY(check_range("noise_std", p->noise_std, 0, 0, err));
    const float pr[4] = {p->p_deform, p->p_rotate, p->p_scale, p->p_gray};
    static const char *const pn[4] = {"p_deform", "p_rotate", "p_scale",
                                      "p_gray"};
    for (int i = 0; i < 4; i++)
        if (!(pr[i] >= 0.0f && pr[i] <= 1.0f))
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "augment: %s = %g must be a probability in "
                              "[0, 1]",
                              pn[i], pr[i]);
    if (!isfinite(p->gray_range[0]) || !isfinite(p->gray_range[1]) ||
        !(p->gray_range[0] < p->gray_range[1]))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: gray_range [%g, %g] must be finite with "
                          "lo < hi",
                          p->gray_range[0], p->gray_range[1]);
    if (p->fill != U3D_AUG_FILL_MIRROR && p->fill != U3D_AUG_FILL_CONSTANT)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: fill mode %d is neither "
                          "U3D_AUG_FILL_MIRROR nor U3D_AUG_FILL_CONSTANT",
                          (int)p->fill);
    if (!isfinite(p->fill_value))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: fill_value must be finite");
    return U3D_OK;
}

static float draw_in(u3d_rng *r, const float *range)
{
    return range[0] + (range[1] - range[0]) * u3d_rng_uniform(r);
}

/* A = R_d(a0) R_h(a1) R_w(a2) diag(m / s), in double, then rounded. */
static void draw_matrix(u3d_augment_draw *o)
{
    double R[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    for (int ax = 0; ax < 3; ax++) {
        double a = o->angle_deg[ax] * (3.14159265358979323846 / 180.0);
        double c = cos(a), s = sin(a), G[3][3] = {{0}}, T[3][3];
        int i = (ax + 1) % 3, j = (ax + 2) % 3; /* the rotated plane */
        G[ax][ax] = 1;
        G[i][i] = c;
        G[i][j] = -s;
        G[j][i] = s;
        G[j][j] = c;
        for (int r = 0; r < 3; r++)
            for (int q = 0; q < 3; q++)
                T[r][q] = R[r][0] * G[0][q] + R[r][1] * G[1][q] +
                          R[r][2] * G[2][q];
        memcpy(R, T, sizeof R);
    }
    for (int r = 0; r < 3; r++)
        for (int q = 0; q < 3; q++)
            o->matrix[3 * r + q] =
                (float)(R[r][q] * (o->mirror[q] ? -1.0 : 1.0) / o->scale[q]);
}

void u3d_augment_draw_sample(const u3d_augment_params *p, uint64_t seed,
                             uint64_t sample_index, u3d_augment_draw *o)
{
    u3d_rng r;
    u3d_rng_init(&r, seed, sample_index);
    memset(o, 0, sizeof *o);
    /* fixed order, every draw always taken */
    for (int i = 0; i < 3; i++)
        o->angle_deg[i] = p->rotate_deg[i] * (2.0f * u3d_rng_uniform(&r) - 1.0f);
    float iso = draw_in(&r, p->scale_iso);
    for (int i = 0; i < 3; i++)
        o->scale[i] = iso * draw_in(&r, p->scale_axis);
    for (int i = 0; i < 3; i++)
        o->mirror[i] = p->mirror[i] && (u3d_rng_u32(&r) >> 31);
    o->gamma = draw_in(&r, p->gamma);
    o->contrast = draw_in(&r, p->contrast);
    o->brightness = draw_in(&r, p->brightness);
    o->noise_std = draw_in(&r, p->noise_std);
    /* which transforms this sample gets: drawn after the values above, so
     * the probabilities change no value, only whether it applies */
    float u[4];
    for (int i = 0; i < 4; i++)
        u[i] = u3d_rng_uniform(&r);
    o->deform = (p->sigma[0] > 0 || p->sigma[1] > 0 || p->sigma[2] > 0) &&
                u[0] < p->p_deform;
    if (!(u[1] < p->p_rotate))
        o->angle_deg[0] = o->angle_deg[1] = o->angle_deg[2] = 0.0f;
    if (!(u[2] < p->p_scale))
        o->scale[0] = o->scale[1] = o->scale[2] = 1.0f;
    if (!(u[3] < p->p_gray)) {
        o->gamma = o->contrast = 1.0f;
        o->brightness = o->noise_std = 0.0f;
    }
    draw_matrix(o);
}

/* Image patch within the source, label patch centered within the image. */
static u3d_status check_shapes(u3d_shape src, u3d_shape out,
                               const u3d_shape *lab, u3d_error *err)
{
    char a[SB], b[SB];
    if (src.n != 1 || src.c < 1 || u3d_shape_count(src) == 0)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "augment: source image %s must be 1xCxDxHxW",
                          u3d_shape_str(src, a, SB));
    if (src.d >= (1 << 30) || src.h >= (1 << 30) || src.w >= (1 << 30))
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "augment: source %s has a side of 2^30 voxels or "
                          "more",
                          u3d_shape_str(src, a, SB));
    if (out.n != 1 || out.c != src.c || u3d_shape_count(out) == 0)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "augment: output image %s must be 1x%dxdxhxw (the "
                          "source %s has %d channels)",
                          u3d_shape_str(out, a, SB), src.c,
                          u3d_shape_str(src, b, SB), src.c);
    if (out.d > src.d || out.h > src.h || out.w > src.w)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "augment: output patch %s is larger than the "
                          "source %s; pad the source or take a smaller patch",
                          u3d_shape_str(out, a, SB), u3d_shape_str(src, b, SB));
    if (!lab)
        return U3D_OK;
    if (lab->n != 1 || lab->c != 1 || u3d_shape_count(*lab) == 0 ||
        lab->d > out.d || lab->h > out.h || lab->w > out.w ||
        (out.d - lab->d) % 2 || (out.h - lab->h) % 2 || (out.w - lab->w) % 2)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "augment: label patch %s must be 1x1xdxhxw, at most "
                          "the image patch %s and centered in it (even size "
                          "differences)",
                          u3d_shape_str(*lab, a, SB), u3d_shape_str(out, b, SB));
    return U3D_OK;
}

static void fill_grid(const u3d_augment_params *p, int deform, aug_consts *k)
{
    const int n[3] = {k->d, k->h, k->w};
    int *nc[3] = {&k->ncz, &k->ncy, &k->ncx}, *sp[3] = {&k->sz, &k->sy, &k->sx};
    float *inv[3] = {&k->inv_sz, &k->inv_sy, &k->inv_sx};
    float *sig[3] = {&k->sig_z, &k->sig_y, &k->sig_x};
    for (int i = 0; i < 3; i++) {
        *sp[i] = p->grid_spacing[i];
        *nc[i] = (n[i] - 1) / p->grid_spacing[i] + 4;
        *inv[i] = 1.0f / (float)p->grid_spacing[i];
        *sig[i] = deform ? p->sigma[i] : 0.0f;
    }
}

static void fill_gray(const u3d_augment_params *p, const u3d_augment_draw *dr,
                      aug_consts *k)
{
    float lo = p->gray_range[0], hi = p->gray_range[1];
    k->gamma = dr->gamma;
    k->use_gamma = dr->gamma != 1.0f;
    k->gray_lo = lo;
    k->gray_hi = hi;
    k->gray_range = hi - lo;
    k->gray_inv_range = 1.0f / (hi - lo);
    /* contrast about the range center: v c + (mid (1 - c) + b), exactly v
     * for c = 1, b = 0 */
    k->contrast = dr->contrast;
    k->offset = 0.5f * (lo + hi) * (1.0f - dr->contrast) + dr->brightness;
    k->noise_std = dr->noise_std;
    k->use_noise = dr->noise_std > 0.0f;
    k->use_gray = k->use_gamma || k->use_noise || k->contrast != 1.0f ||
                  k->offset != 0.0f;
    k->fill_mirror = p->fill == U3D_AUG_FILL_MIRROR;
    k->fill_value = p->fill_value;
    k->ignore_label = p->ignore_label;
}

u3d_status u3d_aug_prepare(const u3d_augment_params *p, uint64_t seed,
                           uint64_t sample_index, u3d_shape src,
                           const float origin[3], u3d_shape out,
                           const u3d_shape *lab, aug_consts *k, u3d_error *err)
{
    U3D_TRY(u3d_augment_params_check(p, err));
    U3D_TRY(check_shapes(src, out, lab, err));
    if (!origin || !isfinite(origin[0]) || !isfinite(origin[1]) ||
        !isfinite(origin[2]))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: the patch origin must be 3 finite source "
                          "coordinates (z, y, x)");
    memset(k, 0, sizeof *k);
    k->C = src.c, k->D = src.d, k->H = src.h, k->W = src.w;
    k->d = out.d, k->h = out.h, k->w = out.w;
    if (lab) {
        k->has_labels = 1;
        k->ld = lab->d, k->lh = lab->h, k->lw = lab->w;
        k->lz0 = (out.d - lab->d) / 2;
        k->ly0 = (out.h - lab->h) / 2;
        k->lx0 = (out.w - lab->w) / 2;
    }
    u3d_augment_draw dr;
    u3d_augment_draw_sample(p, seed, sample_index, &dr);
    fill_grid(p, dr.deform, k);
    /* kernels index with int: the field p2 is the largest buffer */
    if (u3d_aug_p2_count(k) > 0x7fffffff || u3d_aug_gray_count(k) > 0x7fffffff)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "augment: patch %dx%dx%d with grid spacing %dx%dx%d "
                          "needs more than 2^31 field values; use a larger "
                          "spacing or a smaller patch",
                          out.d, out.h, out.w, p->grid_spacing[0],
                          p->grid_spacing[1], p->grid_spacing[2]);
    memcpy(k->a, dr.matrix, sizeof k->a);
    k->oz = origin[0], k->oy = origin[1], k->ox = origin[2];
    k->cz = 0.5f * (float)(out.d - 1);
    k->cy = 0.5f * (float)(out.h - 1);
    k->cx = 0.5f * (float)(out.w - 1);
    fill_gray(p, &dr, k);
    k->key0 = (uint32_t)seed, k->key1 = (uint32_t)(seed >> 32);
    k->smp0 = (uint32_t)sample_index, k->smp1 = (uint32_t)(sample_index >> 32);
    return U3D_OK;
}

static u3d_status check_tensor(const char *name, const u3d_tensor *t,
                               u3d_backend *be, u3d_dtype dt, u3d_error *err)
{
    if (!t || !t->buf)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: tensor %s is missing", name);
    if (t->be != be)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: tensor %s lives on another backend", name);
    if (t->dtype != dt)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: tensor %s must be %s", name,
                          dt == U3D_F32 ? "float32" : "int32");
    return U3D_OK;
}

static u3d_status check_tensors(u3d_backend *be, const u3d_tensor *si,
                                const u3d_tensor *sl, const u3d_tensor *oi,
                                const u3d_tensor *ol, u3d_error *err)
{
    char a[SB], b[SB];
    U3D_TRY(check_tensor("src_image", si, be, U3D_F32, err));
    U3D_TRY(check_tensor("out_image", oi, be, U3D_F32, err));
    if (!sl != !ol)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "augment: give both src_labels and out_labels or "
                          "neither");
    if (!sl)
        return U3D_OK;
    U3D_TRY(check_tensor("src_labels", sl, be, U3D_I32, err));
    U3D_TRY(check_tensor("out_labels", ol, be, U3D_I32, err));
    u3d_shape s = si->shape;
    if (!u3d_shape_eq(sl->shape, u3d_shape5(1, 1, s.d, s.h, s.w)))
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "augment: source labels %s do not fit the source "
                          "image %s (want 1x1x%dx%dx%d)",
                          u3d_shape_str(sl->shape, a, SB),
                          u3d_shape_str(s, b, SB), s.d, s.h, s.w);
    return U3D_OK;
}

u3d_status u3d_augment_sample(u3d_backend *be, const u3d_augment_params *p,
                              uint64_t seed, uint64_t sample_index,
                              const u3d_tensor *src_image,
                              const u3d_tensor *src_labels,
                              const float origin[3], u3d_tensor *out_image,
                              u3d_tensor *out_labels, u3d_error *err)
{
    if (!be)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "augment: no backend");
    U3D_TRY(check_tensors(be, src_image, src_labels, out_image, out_labels,
                          err));
    aug_consts k;
    U3D_TRY(u3d_aug_prepare(p, seed, sample_index, src_image->shape, origin,
                            out_image->shape,
                            out_labels ? &out_labels->shape : NULL, &k, err));
    return be->ops->augment_sample(be, &k, src_image, src_labels, out_image,
                                   out_labels, err);
}
