/* Overlap-tile prediction: tiled == whole-volume prediction for valid and
 * same-padded nets (tile sizes that do not divide the volume), the tiling
 * geometry, memory budgets, BN batch statistics, bad inputs, and the
 * `unet3d predict` command (files, spacing, errors, no partial output). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"
#include "unet3d/predict.h"

/* Tiled and whole-volume logits must agree to this absolute tolerance (the
 * same sums in another order only: measured ~1e-6). */
#define TILE_TOL 1e-4

static u3d_net_config cfg_of(int levels, int f, int cin, int classes,
                             u3d_padding pad)
{
    u3d_net_config c = {.levels = levels, .base_channels = f,
                        .in_channels = cin, .classes = classes,
                        .padding = pad, .bn = U3D_BN_AFFINE, .bn_eps = 1e-5f,
                        .bn_momentum = 0.1f};
    return c;
}

static void fill_random(u3d_tensor *t, uint64_t *seed, float lo, float hi)
{
    u3d_error err = {0};
    size_t n = u3d_shape_count(t->shape);
    float *v = t_rand_array(seed, n, lo, hi);
    t_ok(u3d_tensor_write(t, v, &err), &err, "tensor write");
    free(v);
}

/* He-initialized weights; random biases, BN affine and running statistics
 * so that EVAL-mode BN is not the identity. */
static u3d_net *make_net(u3d_backend *be, const u3d_net_config *cfg,
                         uint64_t seed)
{
    u3d_error err = {0};
    u3d_net *net;
    t_ok(u3d_net_create(be, cfg, &net, &err), &err, "net create");
    t_ok(u3d_net_init(net, seed, &err), &err, "net init");
    for (int i = 0; i < u3d_net_num_params(net); i++) {
        u3d_param *p = u3d_net_param(net, i);
        if (strstr(p->name, "gamma"))
            fill_random(&p->value, &seed, 0.5f, 1.5f);
        else if (!strstr(p->name, "weight"))
            fill_random(&p->value, &seed, -0.2f, 0.2f);
    }
    for (int i = 0; i < u3d_net_num_buffers(net); i++) {
        u3d_param *p = u3d_net_buffer(net, i);
        if (strstr(p->name, "running_var"))
            fill_random(&p->value, &seed, 0.5f, 2.0f);
        else
            fill_random(&p->value, &seed, -0.3f, 0.3f);
    }
    return net;
}

static u3d_volume make_image(int c, int d, int h, int w, uint64_t *seed)
{
    u3d_volume v;
    u3d_error err = {0};
    t_ok(u3d_volume_alloc(c, d, h, w, &v, &err), &err, "volume alloc");
    for (size_t i = 0; i < (size_t)c * d * h * w; i++)
        v.data[i] = t_randf(seed, -1.0f, 1.0f);
    return v;
}

/* The pooling period along axis a (1 along z for a 2D net). */
static int period_of(const u3d_net_config *cfg, int a)
{
    int P = 1;
    for (int l = 0; l < cfg->levels - 1; l++)
        P *= u3d_net_pool(cfg, l, a);
    return P;
}

/* The tile that covers axis a of size n in one piece. */
static int whole_tile(const u3d_net_config *cfg, int a, int n)
{
    int P = period_of(cfg, a);
    if (cfg->padding == U3D_PAD_SAME)
        return (n + P - 1) / P * P;
    int m = u3d_net_context_axis(cfg, a), t = 1, lo, hi;
    for (;;) {
        if (u3d_net_valid_size_axis(cfg, a, t, &lo, &hi) &&
            (t - 2 * m) / P * P >= n)
            return t;
        u3d_net_valid_size_axis(cfg, a, t, &lo, &hi);
        assert_true(hi > t);
        t = hi;
    }
}

/* Raw logits of the whole image with the given tile (NULL: whole). */
static u3d_volume predict_logits(u3d_net *net, const u3d_volume *img,
                                 const int *tile, int batchstats,
                                 u3d_tile_plan *plan, u3d_labels *labels)
{
    const u3d_net_config *cfg = u3d_net_get_config(net);
    u3d_predict_opts o;
    memset(&o, 0, sizeof o);
    o.raw_logits = 1;
    o.batchstats = batchstats;
    int dims[3] = {img->d, img->h, img->w};
    for (int a = 0; a < 3; a++)
        o.tile[a] = tile ? tile[a] : whole_tile(cfg, a, dims[a]);
    o.max_memory = (size_t)1 << 40; /* the test picks the tiles */
    u3d_volume out;
    u3d_labels lab;
    u3d_error err = {0};
    t_ok(u3d_predict(net, img, &o, labels ? labels : &lab, &out, plan, &err),
         &err, "predict");
    if (!labels)
        u3d_labels_free(&lab);
    return out;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static size_t vcount(const u3d_volume *v)
{
    return (size_t)v->c * v->d * v->h * v->w;
}

/* Tiled vs whole-volume logits and labels for one net and image. */
static void compare_tiled(u3d_net *net, const u3d_volume *img,
                          const int tile[3], int min_tiles, const char *what)
{
    u3d_tile_plan pt, pw;
    u3d_labels lt, lw;
    u3d_volume a = predict_logits(net, img, tile, 0, &pt, &lt);
    u3d_volume b = predict_logits(net, img, NULL, 0, &pw, &lw);
    assert_int_equal(pw.total, 1);
    assert_true(pt.total >= min_tiles);
    double d = max_abs_diff(a.data, b.data, vcount(&a));
    printf("  %s: %d tiles of %dx%dx%d vs one of %dx%dx%d: max |logit diff| "
           "%.3g\n", what, pt.total, pt.ax[0].in, pt.ax[1].in, pt.ax[2].in,
           pw.ax[0].in, pw.ax[1].in, pw.ax[2].in, d);
    assert_true(d <= TILE_TOL);
    /* labels agree wherever the top two logits are not within rounding */
    size_t vox = (size_t)img->d * img->h * img->w;
    for (size_t i = 0; i < vox; i++) {
        if (lt.data[i] == lw.data[i])
            continue;
        double gap = fabs((double)b.data[lt.data[i] * vox + i] -
                          (double)b.data[lw.data[i] * vox + i]);
        assert_true(gap <= 2 * TILE_TOL);
    }
    u3d_volume_free(&a);
    u3d_volume_free(&b);
    u3d_labels_free(&lt);
    u3d_labels_free(&lw);
}

/* ---- tiled == whole ---- */

static void valid_tiled_equals_whole(void **state)
{
    t_env *e = *state;
    uint64_t seed = 101;
    /* 3 levels: margin 20, pooling period 4; tile outputs 12, 8, 16 do not
     * divide 22, 26, 30 (the last tiles stick out) */
    u3d_net_config cfg = cfg_of(3, 2, 2, 3, U3D_PAD_VALID);
    int vol[3] = {22, 26, 30}, tile[3] = {52, 48, 56};
    if (t_small()) {
        /* 2 levels, f=1: margin 8, period 2; outputs 4 into 9 */
        cfg = cfg_of(2, 1, 2, 3, U3D_PAD_VALID);
        vol[0] = 9, vol[1] = 8, vol[2] = 8;
        tile[0] = 20, tile[1] = 24, tile[2] = 24;
    }
    u3d_net *net = make_net(e->cl, &cfg, 7);
    u3d_volume img = make_image(2, vol[0], vol[1], vol[2], &seed);
    compare_tiled(net, &img, tile, 3, "valid net, OpenCL");
    u3d_volume_free(&img);
    u3d_net_destroy(net);
}

/* Anisotropic nets tile per axis: a 2D net (1x3x3 / 1x2x2 everywhere)
 * slice by slice (tiles of one z-slice, context 0 along z) and a net with a
 * flat first level give the whole-volume logits. */
static void anisotropic_tiled_equals_whole(void **state)
{
    t_env *e = *state;
    uint64_t seed = 103;
    u3d_error err = {0};
    u3d_net_config flat = cfg_of(2, 1, 2, 3, U3D_PAD_VALID);
    u3d_net_set_2d(&flat);
    assert_int_equal(u3d_net_context_axis(&flat, 0), 0);
    assert_int_equal(u3d_predict_min_size_axis(&flat, 0), 1);
    u3d_net *net = make_net(e->cl, &flat, 7);
    u3d_volume img = make_image(2, 3, 9, 8, &seed);
    int tile[3] = {1, 20, 24}; /* one slice, 2x1 in-plane tiles */
    compare_tiled(net, &img, tile, 3 * 2, "2D net, slice by slice");
    u3d_volume_free(&img);
    u3d_net_destroy(net);
    u3d_net_config mixed = cfg_of(2, 1, 2, 3, U3D_PAD_VALID);
    t_ok(u3d_net_set_kernels(&mixed, "1x3x3,3x3x3", &err), &err, "kernels");
    t_ok(u3d_net_set_pools(&mixed, "1x2x2", &err), &err, "pools");
    assert_int_equal(u3d_net_context_axis(&mixed, 0), 2);
    net = make_net(e->cl, &mixed, 8);
    img = make_image(2, 7, 9, 8, &seed);
    int tile2[3] = {7, 20, 24}; /* outputs 3 along z: 3 tiles */
    compare_tiled(net, &img, tile2, 3, "1x3x3/1x2x2 first level");
    u3d_volume_free(&img);
    u3d_net_destroy(net);
}

static void same_tiled_equals_whole(void **state)
{
    t_env *e = *state;
    uint64_t seed = 202;
    /* 3 levels same: context 24, period 4; volumes not multiples of 4 are
     * zero-extended, tiles 52 give 3 x 2 tiles, W in one */
    u3d_net_config cfg = cfg_of(3, 2, 1, 2, U3D_PAD_SAME);
    int vol[3] = {57, 54, 21}, tile[3] = {52, 52, 24};
    if (t_small()) {
        cfg = cfg_of(2, 1, 1, 2, U3D_PAD_SAME); /* context 8, period 2 */
        vol[0] = 21, vol[1] = 19, vol[2] = 7;
        tile[0] = 18, tile[1] = 18, tile[2] = 8;
    }
    assert_int_equal(u3d_net_context(&cfg), t_small() ? 8 : 24);
    u3d_net *net = make_net(e->cl, &cfg, 9);
    u3d_volume img = make_image(1, vol[0], vol[1], vol[2], &seed);
    compare_tiled(net, &img, tile, 6, "same net, OpenCL");
    u3d_volume_free(&img);
    u3d_net_destroy(net);
    if (t_small())
        return;
    /* 4 levels: context 48, period 8; thin in H and W to stay fast */
    cfg = cfg_of(4, 1, 1, 2, U3D_PAD_SAME);
    assert_int_equal(u3d_net_context(&cfg), 48);
    int t4[3] = {104, 16, 16};
    net = make_net(e->cl, &cfg, 13);
    img = make_image(1, 123, 16, 13, &seed);
    compare_tiled(net, &img, t4, 3, "4-level same net, OpenCL");
    u3d_volume_free(&img);
    u3d_net_destroy(net);
}

/* Why a same net needs more context than the valid margin: one tile
 * covering the first T slices (all of H, W) agrees with the whole volume
 * only at least `band` slices away from its cut; printed: the error at the
 * valid margin (what a context of only the valid margin would give). */
static void same_net_needs_its_context(void **state)
{
    t_env *e = *state;
    uint64_t seed = 303;
    u3d_net_config cfg = cfg_of(3, 2, 1, 2, U3D_PAD_SAME);
    int T = 52, D = 76, HW = 16;
    if (t_small()) {
        cfg = cfg_of(2, 1, 1, 2, U3D_PAD_SAME);
        T = 18, D = 26, HW = 6;
    }
    int c = u3d_net_context(&cfg);
    u3d_net_config vcfg = cfg;
    vcfg.padding = U3D_PAD_VALID;
    int m = u3d_net_context(&vcfg);
    u3d_net *net = make_net(e->cl, &cfg, 11);
    u3d_volume img = make_image(1, D, HW, HW, &seed);
    u3d_volume whole = predict_logits(net, &img, NULL, 0, NULL, NULL);
    /* the first T slices through the net directly */
    u3d_error err = {0};
    size_t plane = (size_t)HW * HW;
    u3d_tensor x = t_tensor(e->cl, u3d_shape5(1, 1, T, HW, HW), img.data);
    const u3d_tensor *lg;
    t_ok(u3d_net_forward(net, &x, U3D_NET_EVAL, &lg, &err), &err, "forward");
    float *part = t_read(lg);
    double inside = 0, at_margin = 0, edge = 0;
    for (int k = 0; k < cfg.classes; k++)
        for (int z = 0; z < T; z++) {
            double dz = max_abs_diff(part + ((size_t)k * T + z) * plane,
                                     whole.data + ((size_t)k * D + z) * plane,
                                     plane);
            int dist = T - z; /* slices to the cut, 1 = last */
            if (dist > c && dz > inside)
                inside = dz;
            if (dist > m && dist <= c && dz > at_margin)
                at_margin = dz;
            if (dist <= m && dz > edge)
                edge = dz;
        }
    printf("  same net, one tile of %d slices: max |diff| farther than the "
           "context %d: %.3g; within (valid margin %d, context %d]: %.3g; "
           "within the valid margin: %.3g\n", T, c, inside, m, c, at_margin,
           edge);
    assert_true(inside <= TILE_TOL);
    assert_true(edge > 1e-3); /* the comparison is sensitive */
    free(part);
    u3d_tensor_release(&x);
    u3d_volume_free(&whole);
    u3d_volume_free(&img);
    u3d_net_destroy(net);
}

/* The reference backend gives the same tiled result, and agrees with the
 * device; probabilities are the softmax of the logits, labels their
 * argmax. */
static void reference_backend_and_probabilities(void **state)
{
    t_env *e = *state;
    uint64_t seed = 404;
    u3d_net_config cfg = cfg_of(2, 2, 1, 3, U3D_PAD_VALID);
    int vol[3] = {11, 13, 9}, tile[3] = {22, 20, 24};
    if (t_small())
        cfg.base_channels = 1;
    u3d_net *nr = make_net(e->ref, &cfg, 5), *nc = make_net(e->cl, &cfg, 5);
    u3d_volume img = make_image(1, vol[0], vol[1], vol[2], &seed);
    compare_tiled(nr, &img, tile, 8, "valid net, reference backend");
    /* under oclgrind the device runs the one whole-volume tile only */
    const int *ct = t_small() ? NULL : tile;
    u3d_volume lr = predict_logits(nr, &img, ct, 0, NULL, NULL);
    u3d_volume lc = predict_logits(nc, &img, ct, 0, NULL, NULL);
    double d = max_abs_diff(lc.data, lr.data, vcount(&lr));
    printf("  OpenCL vs reference: max |logit diff| %.3g\n", d);
    assert_true(d <= TILE_TOL);
    /* probabilities and labels of the same tiling */
    u3d_predict_opts o;
    memset(&o, 0, sizeof o);
    memcpy(o.tile, tile, sizeof o.tile);
    u3d_volume pr;
    u3d_labels lab;
    u3d_error err = {0};
    t_ok(u3d_predict(nr, &img, &o, &lab, &pr, NULL, &err), &err, "predict");
    size_t vox = (size_t)vol[0] * vol[1] * vol[2];
    for (size_t i = 0; i < vox; i++) {
        double mx = -INFINITY, s = 0;
        int arg = 0;
        for (int k = 0; k < 3; k++)
            if (lr.data[k * vox + i] > mx)
                mx = lr.data[k * vox + i], arg = k;
        for (int k = 0; k < 3; k++)
            s += exp(lr.data[k * vox + i] - mx);
        for (int k = 0; k < 3; k++)
            assert_true(fabs(pr.data[k * vox + i] -
                             exp(lr.data[k * vox + i] - mx) / s) < 1e-5);
        assert_int_equal(lab.data[i], arg);
    }
    assert_int_equal(pr.c, 3);
    u3d_volume_free(&pr);
    u3d_labels_free(&lab);
    u3d_volume_free(&lr);
    u3d_volume_free(&lc);
    u3d_volume_free(&img);
    u3d_net_destroy(nr);
    u3d_net_destroy(nc);
}

/* ---- plane-band streaming ---- */

typedef struct band_io {
    const u3d_volume *img;
    int reads, fail_at, next_z, max_rows;
    u3d_labels *labels;
    u3d_volume *logits;
} band_io;

static u3d_status band_read(void *user, int z, int y0, int ny, float *dst,
                            u3d_error *err)
{
    band_io *b = user;
    const u3d_volume *v = b->img;
    if (z == b->fail_at)
        return u3d_seterr(err, U3D_ERR_IO, "plane %d unreadable", z);
    assert_true(z >= 0 && z < v->d && y0 >= 0 && ny >= 1 && y0 + ny <= v->h);
    if (ny > b->max_rows)
        b->max_rows = ny;
    size_t hw = (size_t)v->h * v->w, n = (size_t)ny * v->w;
    for (int c = 0; c < v->c; c++)
        memcpy(dst + c * n, v->data + ((size_t)c * v->d + z) * hw + y0 * v->w,
               n * sizeof *dst);
    b->reads++;
    return U3D_OK;
}

static u3d_status band_write(void *user, int z, const uint8_t *labels,
                             const float *logits, u3d_error *err)
{
    (void)err;
    band_io *b = user;
    assert_int_equal(z, b->next_z++); /* in order, each plane once */
    size_t hw = (size_t)b->img->h * b->img->w;
    for (size_t i = 0; i < hw; i++)
        b->labels->data[z * hw + i] = labels[i];
    for (int k = 0; k < b->logits->c; k++)
        memcpy(b->logits->data + ((size_t)k * b->logits->d + z) * hw,
               logits + k * hw, hw * sizeof *logits);
    return U3D_OK;
}

/* The volume goes in by windows of rows (at most a tile's height) and out
 * plane by plane, in order, with the result of u3d_predict; a failing read
 * stops it with the reader's message. */
static void planes_stream_in_bands(void **state)
{
    t_env *e = *state;
    uint64_t seed = 303;
    u3d_net_config cfg = cfg_of(2, 1, 1, 2, U3D_PAD_VALID);
    int D = t_small() ? 9 : 21, H = t_small() ? 24 : 30;
    u3d_net *net = make_net(e->cl, &cfg, 5);
    u3d_volume img = make_image(1, D, H, 9, &seed);
    int tile[3] = {20, 20, 24}; /* outputs of 4 planes and rows per tile */
    u3d_tile_plan plan;
    u3d_labels want_l;
    u3d_volume want = predict_logits(net, &img, tile, 0, &plan, &want_l);
    assert_true(plan.ax[0].ntiles >= 3);
    u3d_labels got_l;
    u3d_volume got;
    u3d_error err = {0};
    t_ok(u3d_labels_alloc(D, H, 9, &got_l, &err), &err, "alloc");
    t_ok(u3d_volume_alloc(2, D, H, 9, &got, &err), &err, "alloc");
    band_io b = {&img, 0, -1, 0, 0, &got_l, &got};
    u3d_plane_source src = {1, D, H, 9, band_read, &b};
    u3d_plane_sink sink = {band_write, &b, 1, 1};
    u3d_predict_opts o;
    memset(&o, 0, sizeof o);
    o.raw_logits = 1;
    memcpy(o.tile, tile, sizeof tile);
    o.max_memory = (size_t)1 << 40;
    t_ok(u3d_predict_planes(net, &src, &o, &sink, NULL, &err), &err,
         "planes");
    assert_int_equal(b.next_z, D);
    printf("  %d planes of %d rows, %dx%d rows of tiles along D and H, %d "
           "window reads of at most %d rows\n", D, H, plan.ax[0].ntiles,
           plan.ax[1].ntiles, b.reads, b.max_rows);
    assert_true(plan.ax[1].ntiles >= 3);
    assert_true(b.max_rows <= tile[1] && b.max_rows < H);
    assert_true(b.reads >= D &&
                b.reads <= plan.ax[0].ntiles * plan.ax[1].ntiles * tile[0]);
    assert_memory_equal(got.data, want.data, vcount(&got) * sizeof(float));
    assert_memory_equal(got_l.data, want_l.data,
                        (size_t)D * H * 9 * sizeof *got_l.data);
    /* a failing read */
    band_io f = {&img, 0, D / 2, 0, 0, &got_l, &got};
    src.user = sink.user = &f;
    assert_int_equal(u3d_predict_planes(net, &src, &o, &sink, NULL, &err),
                     U3D_ERR_IO);
    assert_non_null(strstr(err.msg, "unreadable"));
    assert_true(f.next_z < D);
    u3d_labels_free(&got_l);
    u3d_labels_free(&want_l);
    u3d_volume_free(&got);
    u3d_volume_free(&want);
    u3d_volume_free(&img);
    u3d_net_destroy(net);
}

static void batchstats_mode(void **state)
{
    t_env *e = *state;
    uint64_t seed = 505;
    u3d_net_config cfg = cfg_of(2, 1, 1, 2, U3D_PAD_VALID);
    u3d_net *net = make_net(e->cl, &cfg, 3);
    u3d_volume img = make_image(1, 9, 10, 8, &seed);
    u3d_predict_opts o;
    memset(&o, 0, sizeof o);
    o.batchstats = 1;
    o.tile[0] = 20; /* 3 tiles along D */
    o.tile[1] = o.tile[2] = 24;
    u3d_volume pr;
    u3d_labels lab;
    u3d_tile_plan plan;
    u3d_error err = {0};
    t_ok(u3d_predict(net, &img, &o, &lab, &pr, &plan, &err), &err,
         "predict with batch statistics");
    assert_true(plan.total > 1);
    size_t vox = 9 * 10 * 8;
    for (size_t i = 0; i < vox; i++) {
        float p0 = pr.data[i], p1 = pr.data[vox + i];
        assert_true(isfinite(p0) && isfinite(p1));
        assert_true(fabs(p0 + p1 - 1.0) < 1e-5);
        assert_int_equal(lab.data[i], p1 > p0 ? 1 : 0);
    }
    u3d_volume_free(&pr);
    u3d_labels_free(&lab);
    u3d_volume_free(&img);
    u3d_net_destroy(net);
}

/* ---- geometry, budgets ---- */

/* Every voxel of every axis is kept by exactly one tile, from a tile
 * output on the whole-volume pooling grid, with enough context. */
static void check_axis(const u3d_net_config *cfg, int ax,
                       const u3d_tile_axis *a)
{
    int P = period_of(cfg, ax), next = 0;
    for (int k = 0; k < a->ntiles; k++) {
        int o, lo, hi;
        u3d_tile_axis_get(a, k, &o, &lo, &hi);
        assert_int_equal(lo, next);
        assert_true(hi > lo && hi <= a->size);
        next = hi;
        assert_true(lo >= o + a->offset && hi <= o + a->offset + a->out);
        if (a->same) {
            assert_int_equal(o % P, 0);
            assert_true(o >= 0 && o + a->in <= a->padded);
            assert_true(lo == 0 || lo - o >= a->context);
            assert_true(hi == a->size || o + a->in - hi >= a->context);
        } else {
            assert_int_equal(((o + a->offset) % P + P) % P, 0);
            assert_int_equal(a->offset, a->context);
        }
    }
    assert_int_equal(next, a->size);
}

static void tile_geometry(void **state)
{
    (void)state;
    u3d_error err = {0};
    u3d_net_config cfgs[10];
    u3d_net_preset("tiny", &cfgs[0], &err);
    u3d_net_preset("paper", &cfgs[1], &err);
    cfgs[2] = cfg_of(3, 4, 1, 2, U3D_PAD_SAME);
    cfgs[3] = cfg_of(4, 4, 1, 2, U3D_PAD_SAME);
    cfgs[4] = cfg_of(1, 4, 1, 2, U3D_PAD_VALID);
    cfgs[5] = cfg_of(1, 4, 1, 2, U3D_PAD_SAME);
    cfgs[6] = cfg_of(5, 1, 1, 2, U3D_PAD_VALID);
    cfgs[7] = cfg_of(2, 1, 1, 2, U3D_PAD_SAME);
    /* anisotropic: 2D valid, a flat first level same-padded */
    cfgs[8] = cfg_of(3, 4, 1, 2, U3D_PAD_VALID);
    u3d_net_set_2d(&cfgs[8]);
    cfgs[9] = cfg_of(3, 4, 1, 2, U3D_PAD_SAME);
    t_ok(u3d_net_set_kernels(&cfgs[9], "1x3x3,3x3x3,3x3x3", &err), &err,
         "kernels");
    t_ok(u3d_net_set_pools(&cfgs[9], "1x2x2,2x2x2", &err), &err, "pools");
    /* -1: not checked */
    int ctx[10] = {20, 44, 24, 48, 2, 2, -1, 8, 20, 24};
    for (int i = 0; i < 10; i++) {
        const u3d_net_config *c = &cfgs[i];
        if (ctx[i] >= 0)
            assert_int_equal(u3d_net_context(c), ctx[i]);
        int min = u3d_predict_min_size(c);
        for (int n = min; n < min + 150; n += 7) {
            int vol[3] = {n, n + 3, min};
            u3d_tile_plan p;
            /* automatic, then every candidate budget from small to large */
            size_t budgets[3] = {0, (size_t)400 << 20, (size_t)2 << 30};
            for (int b = 0; b < 3; b++) {
                u3d_status st = u3d_predict_plan(c, vol, NULL, budgets[b], 0,
                                                 &p, &err);
                if (st) {
                    assert_int_equal(st, U3D_ERR_OOM);
                    continue;
                }
                assert_true(!budgets[b] || p.memory <= budgets[b]);
                for (int a = 0; a < 3; a++)
                    check_axis(c, a, &p.ax[a]);
                assert_int_equal(p.total, p.ax[0].ntiles * p.ax[1].ntiles *
                                              p.ax[2].ntiles);
            }
        }
    }
}

static void paper_net_in_one_gigabyte(void **state)
{
    (void)state;
    u3d_error err = {0};
    u3d_net_config c;
    t_ok(u3d_net_preset("paper", &c, &err), &err, "preset");
    int vol[3] = {128, 256, 256};
    u3d_tile_plan p;
    size_t gb = (size_t)1 << 30;
    t_ok(u3d_predict_plan(&c, vol, NULL, gb, 0, &p, &err), &err,
         "paper net plan in 1 GiB");
    printf("  paper net, 128x256x256 in 1 GiB: %d tiles of %dx%dx%d, %.0f MiB\n",
           p.total, p.ax[0].in, p.ax[1].in, p.ax[2].in,
           (double)p.memory / 1048576.0);
    assert_true(p.memory <= gb);
    for (int a = 0; a < 3; a++) {
        check_axis(&c, a, &p.ax[a]);
        assert_int_equal(p.ax[a].step % 8, 0);
    }
    /* too small a budget: a clear error naming the need */
    assert_int_equal(u3d_predict_plan(&c, vol, NULL, (size_t)200 << 20, 0, &p,
                                      &err),
                     U3D_ERR_OOM);
    assert_non_null(strstr(err.msg, "too small"));
    assert_non_null(strstr(err.msg, "MiB"));
    /* a bad tile size names the axis and a valid size */
    int bad[3] = {117, 0, 0};
    assert_int_equal(u3d_predict_plan(&c, vol, bad, 0, 0, &p, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "tile D"));
    /* a same net's tile must hold its context */
    u3d_net_config s = cfg_of(3, 4, 1, 2, U3D_PAD_SAME);
    int small_tile[3] = {40, 0, 0}, v2[3] = {100, 50, 50};
    assert_int_equal(u3d_predict_plan(&s, v2, small_tile, 0, 0, &p, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "at least 52"));
}

/* The device memory a prediction holds, measured by the backend (tensors
 * and its own scratch), stays within the plan, and the plan within the
 * budget: --max-memory is kept, not only estimated. On every backend, for
 * valid and same padding, with budgets that force several tile sizes. */
static void device_memory_within_plan(void **state)
{
    t_env *e = *state;
    /* host-side accounting over kernels the other tests already run under
     * oclgrind, where these dozens of tiles would take minutes */
    if (t_small())
        skip();
    uint64_t seed = 99;
    u3d_backend *bes[2] = {e->cl, e->ref};
    u3d_net_config cfgs[2] = {cfg_of(2, 4, 1, 2, U3D_PAD_VALID),
                              cfg_of(2, 4, 1, 2, U3D_PAD_SAME)};
    u3d_volume img = make_image(1, 30, 40, 26, &seed);
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 2; c++) {
            size_t last = 0;
            for (size_t kib = 256; kib <= 8192; kib *= 2) {
                u3d_backend *be = bes[b];
                u3d_error err = {0};
                u3d_backend_memory_reset(be);
                size_t base;
                u3d_backend_memory(be, &base, NULL);
                u3d_net *net = make_net(be, &cfgs[c], 5);
                u3d_predict_opts o;
                memset(&o, 0, sizeof o);
                o.max_memory = kib << 10;
                u3d_tile_plan plan;
                u3d_labels lab;
                u3d_status st = u3d_predict(net, &img, &o, &lab, NULL, &plan,
                                            &err);
                if (st == U3D_ERR_OOM) { /* budget below the smallest tile */
                    u3d_net_destroy(net);
                    continue;
                }
                t_ok(st, &err, "predict within a budget");
                size_t peak;
                u3d_backend_memory(be, NULL, &peak);
                if (plan.memory != last)
                    printf("  %s, %s: budget %zu KiB, plan %.0f KiB, measured "
                           "peak %.0f KiB, %d tiles\n", u3d_backend_name(be),
                           c ? "same" : "valid", kib, plan.memory / 1024.0,
                           (peak - base) / 1024.0, plan.total);
                last = plan.memory;
                assert_true(plan.memory <= o.max_memory);
                assert_true(peak - base <= plan.memory);
                u3d_labels_free(&lab);
                u3d_net_destroy(net);
                size_t now;
                u3d_backend_memory(be, &now, NULL);
                /* everything but the grow-only scratch is given back */
                assert_true(now - base <= peak - base);
            }
            assert_true(last > 0); /* some budget fit */
        }
    u3d_volume_free(&img);
}

/* ---- bad inputs ---- */

static void bad_inputs(void **state)
{
    t_env *e = *state;
    uint64_t seed = 606;
    u3d_net_config cfg = cfg_of(2, 1, 2, 2, U3D_PAD_VALID);
    u3d_net *net = make_net(e->ref, &cfg, 1);
    u3d_volume img = make_image(1, 10, 10, 10, &seed);
    u3d_labels lab;
    u3d_volume pr;
    u3d_error err = {0};
    assert_int_equal(u3d_predict(net, &img, NULL, &lab, &pr, NULL, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "1 channel"));
    assert_non_null(strstr(err.msg, "expects 2"));
    assert_null(lab.data);
    assert_null(pr.data);
    u3d_volume_free(&img);
    img = make_image(2, 10, 5, 10, &seed); /* margin 8 > 5 */
    assert_int_equal(u3d_predict(net, &img, NULL, &lab, &pr, NULL, &err),
                     U3D_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "H=5"));
    assert_non_null(strstr(err.msg, "at least 8"));
    assert_null(lab.data);
    u3d_volume_free(&img);
    u3d_net_destroy(net);
}

/* ---- the command ---- */

static const char *cli(void)
{
    const char *p = getenv("UNET3D_CLI");
    return p ? p : U3D_BINARY_DIR "/unet3d";
}

/* Runs the command line tool; stderr into *errtext (malloc'd). */
static int run_cli(const char *args, const char *dir, char **errtext)
{
    char cmd[4096], errf[1024];
    snprintf(errf, sizeof errf, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "%s %s > /dev/null 2> %s", cli(), args, errf);
    int rc = system(cmd);
    FILE *f = fopen(errf, "rb");
    *errtext = calloc(1, 8192);
    if (f) {
        size_t n = fread(*errtext, 1, 8191, f);
        (*errtext)[n] = 0;
        fclose(f);
    }
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* No file, and no leftover temporary file, in dir starting with name. */
static void assert_absent(const char *dir, const char *name)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '^%s'", dir, name);
    assert_int_not_equal(system(cmd), 0);
}

static void png_size(const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL,
                                             NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("%s is not a readable PNG", path);
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
}

typedef struct clifix {
    char dir[256], model[512], image[512], image2[512], tiny[512];
} clifix;

static void cli_setup(t_env *e, clifix *fx, u3d_net **net,
                      u3d_model_meta *m)
{
    u3d_error err = {0};
    snprintf(fx->dir, sizeof fx->dir, "/tmp/u3d_predict_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->model, sizeof fx->model, "%s/m.u3d", fx->dir);
    snprintf(fx->image, sizeof fx->image, "%s/img.tif", fx->dir);
    snprintf(fx->image2, sizeof fx->image2, "%s/image2.tif", fx->dir);
    snprintf(fx->tiny, sizeof fx->tiny, "%s/tiny.tif", fx->dir);
    u3d_model_meta_defaults(m);
    m->net = cfg_of(2, 1, 1, 2, U3D_PAD_VALID);
    *net = make_net(e->ref, &m->net, 21);
    t_ok(u3d_model_save(fx->model, *net, m, 0, &err), &err, "model save");
    uint64_t seed = 707;
    u3d_volume img = make_image(1, 9, 12, 10, &seed);
    img.spacing[0] = 2.5, img.spacing[1] = 0.5, img.spacing[2] = 0.5;
    snprintf(img.unit, sizeof img.unit, "um");
    t_ok(u3d_tiff_write_volume(fx->image, &img, &err), &err, "write image");
    u3d_volume_free(&img);
    img = make_image(2, 9, 12, 10, &seed);
    t_ok(u3d_tiff_write_volume(fx->image2, &img, &err), &err, "write image");
    u3d_volume_free(&img);
    img = make_image(1, 4, 12, 10, &seed);
    t_ok(u3d_tiff_write_volume(fx->tiny, &img, &err), &err, "write image");
    u3d_volume_free(&img);
}

static void cli_predict(void **state)
{
    t_env *e = *state;
    char *msg, args[4096];
    clifix fx;
    u3d_net *net;
    u3d_model_meta m;
    cli_setup(e, &fx, &net, &m);
    if (run_cli("predict --help", fx.dir, &msg) != 0) {
        free(msg);
        printf("  %s has no predict command yet: skipped\n", cli());
        u3d_net_destroy(net);
        snprintf(args, sizeof args, "rm -rf %s", fx.dir);
        assert_int_equal(system(args), 0);
        skip();
    }
    free(msg);
    snprintf(args, sizeof args,
             "predict --backend ref --model %s --image %s --out %s/seg.tif "
             "--probabilities %s/p.tif --overview %s/ov.png --max-memory 64",
             fx.model, fx.image, fx.dir, fx.dir, fx.dir);
    int rc = run_cli(args, fx.dir, &msg);
    if (rc)
        fail_msg("predict failed (%d): %s", rc, msg);
    assert_non_null(strstr(msg, "ETA"));
    free(msg);
    /* labels and probabilities keep the spacing; labels = library result */
    char p[1024];
    u3d_labels seg;
    u3d_volume pr, img;
    u3d_error err = {0};
    snprintf(p, sizeof p, "%s/seg.tif", fx.dir);
    t_ok(u3d_tiff_read_labels(p, &seg, &err), &err, "read seg");
    snprintf(p, sizeof p, "%s/p.tif", fx.dir);
    t_ok(u3d_tiff_read_volume(p, &pr, &err), &err, "read probabilities");
    assert_int_equal(pr.c, 2);
    assert_int_equal(seg.d, 9);
    assert_int_equal(seg.h, 12);
    assert_int_equal(seg.w, 10);
    for (int a = 0; a < 3; a++) {
        double want = a ? 0.5 : 2.5;
        assert_true(fabs(seg.spacing[a] - want) < 1e-6);
        assert_true(fabs(pr.spacing[a] - want) < 1e-6);
    }
    assert_string_equal(seg.unit, "um");
    t_ok(u3d_tiff_read_volume(fx.image, &img, &err), &err, "read image");
    t_ok(u3d_model_normalize_input(&img, &m, &err), &err, "normalize");
    u3d_labels want;
    u3d_volume wp;
    t_ok(u3d_predict(net, &img, NULL, &want, &wp, NULL, &err), &err,
         "predict");
    size_t vox = 9 * 12 * 10;
    assert_true(max_abs_diff(pr.data, wp.data, 2 * vox) < 1e-5);
    assert_memory_equal(seg.data, want.data, vox * sizeof *seg.data);
    int w, h;
    snprintf(p, sizeof p, "%s/ov.png", fx.dir);
    png_size(p, &w, &h);
    assert_true(w > 3 * 10 && h >= 12);
    u3d_labels_free(&seg);
    u3d_labels_free(&want);
    u3d_volume_free(&pr);
    u3d_volume_free(&wp);
    u3d_volume_free(&img);

    /* errors: one line naming the file, exit != 0, no output file */
    static const char *bad[][2] = {
        {"image2", "expects 1"},  /* channel mismatch */
        {"tiny", "at least 8"},   /* D=4 < margin 8 */
        {"missing", "missing.tif"} /* unreadable */
    };
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args,
                 "predict --backend ref --model %s --image %s/%s.tif "
                 "--out %s/bad.tif --probabilities %s/badp.tif",
                 fx.model, fx.dir, bad[i][0], fx.dir, fx.dir);
        rc = run_cli(args, fx.dir, &msg);
        assert_int_equal(rc, 1); /* an error, not a crash */
        if (!strstr(msg, bad[i][1]) || !strstr(msg, bad[i][0]))
            fail_msg("message for %s: %s", bad[i][0], msg);
        /* one line */
        assert_true(strchr(msg, '\n') == msg + strlen(msg) - 1);
        free(msg);
        assert_absent(fx.dir, "bad");
    }
    snprintf(args, sizeof args,
             "predict --backend ref --model %s/nomodel.u3d --image %s "
             "--out %s/bad.tif", fx.dir, fx.image, fx.dir);
    rc = run_cli(args, fx.dir, &msg);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(msg, "nomodel.u3d"));
    free(msg);
    assert_absent(fx.dir, "bad");
    u3d_net_destroy(net);
    snprintf(args, sizeof args, "rm -rf %s", fx.dir);
    assert_int_equal(system(args), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tile_geometry),
        cmocka_unit_test(paper_net_in_one_gigabyte),
        cmocka_unit_test(device_memory_within_plan),
        cmocka_unit_test(valid_tiled_equals_whole),
        cmocka_unit_test(anisotropic_tiled_equals_whole),
        cmocka_unit_test(same_tiled_equals_whole),
        cmocka_unit_test(same_net_needs_its_context),
        cmocka_unit_test(reference_backend_and_probabilities),
        cmocka_unit_test(batchstats_mode),
        cmocka_unit_test(planes_stream_in_bands),
        cmocka_unit_test(bad_inputs),
        cmocka_unit_test(cli_predict),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
