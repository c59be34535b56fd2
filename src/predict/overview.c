/* Overview PNGs: orthogonal middle slices of an image with segmentations
 * alpha-blended on top (see include/unet3d/predict.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "unet3d/predict.h"
#include "core/files.h"
#include "report/png_rgb.h"

#define GAP 4           /* pixels between panels and rows */
#define MAX_ZOOM 8      /* small volumes are enlarged up to this factor */
#define MIN_SIDE 256    /* ... until the xy panel is about this large */
#define MAX_RATIO 16.0  /* z stretch limit for extreme spacings */

static const unsigned char palette[][3] = {
    {230, 25, 75},  {60, 180, 75},  {0, 130, 200},  {255, 225, 25},
    {145, 30, 180}, {70, 240, 240}, {240, 50, 230}, {245, 130, 48},
    {210, 245, 60}, {250, 190, 212}, {0, 128, 128}, {170, 110, 40}};
#define NPAL (int)(sizeof palette / sizeof palette[0])

/* Row and panel labels in a 5x7 pixel font: the characters they use. */
#define FONT_W 6 /* advance: 5 pixels and a space */
#define FONT_H 7
#define LABEL_W (6 * FONT_W + GAP) /* "result", the longest row label */
#define LABEL_H (FONT_H + GAP)
static const struct {
    char c;
    unsigned char rows[FONT_H]; /* bit 4 = leftmost pixel */
} font[] = {
    {'a', {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f}},
    {'e', {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e}},
    {'g', {0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e}},
    {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'i', {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e}},
    {'l', {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'m', {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11}},
    {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e}},
    {'t', {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d}},
    {'x', {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11}},
    {'y', {0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e}},
    {'z', {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f}},
    {'=', {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}},
    {'0', {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}},
    {'1', {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'2', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}},
    {'3', {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}},
    {'4', {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}},
    {'5', {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}},
    {'6', {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}},
    {'7', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}},
    {'9', {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}},
};

/* One panel: a plane through the volume. axis[0] is fixed at `at`; rows
 * run along axis[1], columns along axis[2] (0 = z, 1 = y, 2 = x). */
typedef struct panel {
    int axis[3], at;
    int rows, cols; /* before zoom; z may be stretched */
    int x0;         /* left edge in the output, after zoom */
} panel;

typedef struct canvas {
    const u3d_volume *img;
    const u3d_overview_opts *o;
    panel p[3];
    int zoom, width, row_h; /* row_h: one row's height after zoom */
    int left, top;          /* the label column and band */
    float lo, hi;           /* gray window */
    unsigned char *rgb;
} canvas;

static int dim(const u3d_volume *v, int a)
{
    return a == 0 ? v->d : a == 1 ? v->h : v->w;
}

static double ratio(const u3d_volume *v, int other)
{
    double sz = v->spacing[0], so = v->spacing[other];
    if (!(sz > 0) || !(so > 0))
        return 1.0;
    double r = sz / so;
    return r < 1.0 / MAX_RATIO ? 1.0 / MAX_RATIO : r > MAX_RATIO ? MAX_RATIO : r;
}

/* Displayed length of volume axis a in a panel whose other in-plane axis
 * is `other` (z is stretched by its spacing relative to that axis). */
static int shown(const u3d_volume *v, int a, int other)
{
    if (a != 0)
        return dim(v, a);
    int n = (int)lround(v->d * ratio(v, other));
    return n < 1 ? 1 : n;
}

static void layout(canvas *cv)
{
    const u3d_volume *v = cv->img;
    static const int ax[3][3] = {{0, 1, 2}, {1, 0, 2}, {2, 1, 0}};
    int x = 0, h = 0, big = v->h > v->w ? v->h : v->w;
    cv->zoom = big >= MIN_SIDE ? 1 : MIN_SIDE / big;
    if (cv->zoom > MAX_ZOOM)
        cv->zoom = MAX_ZOOM;
    for (int i = 0; i < 3; i++) {
        panel *p = &cv->p[i];
        memcpy(p->axis, ax[i], sizeof p->axis);
        p->at = dim(v, p->axis[0]) / 2;
        p->rows = shown(v, p->axis[1], p->axis[2]);
        p->cols = shown(v, p->axis[2], p->axis[1]);
        p->x0 = x;
        x += p->cols * cv->zoom + GAP;
        if (p->rows > h)
            h = p->rows;
    }
    cv->left = LABEL_W;
    cv->top = LABEL_H;
    cv->width = cv->left + x - GAP;
    cv->row_h = h * cv->zoom;
}

/* White text with its top left corner at (x, y); unknown characters are
 * blanks. */
static void draw_text(const canvas *cv, int x, int y, const char *s)
{
    for (; *s; s++, x += FONT_W) {
        for (size_t f = 0; f < sizeof font / sizeof *font; f++) {
            if (font[f].c != *s)
                continue;
            for (int r = 0; r < FONT_H; r++)
                for (int c = 0; c < 5; c++)
                    if (font[f].rows[r] & (0x10 >> c) && x + c < cv->width) {
                        unsigned char *px =
                            cv->rgb + ((size_t)(y + r) * cv->width + x + c) * 3;
                        px[0] = px[1] = px[2] = 255;
                    }
        }
    }
}

/* Each panel's plane above it ("z=24": the z slice, y down, x across;
 * "y=50": z down; "x=50": y down, z across) and each row's name. */
static void draw_labels(const canvas *cv, int rows, int has_seg)
{
    static const char axis[3] = {'z', 'y', 'x'};
    for (int i = 0; i < 3; i++) {
        char t[32];
        snprintf(t, sizeof t, "%c=%d", axis[cv->p[i].axis[0]], cv->p[i].at);
        draw_text(cv, cv->left + cv->p[i].x0, 1, t);
    }
    for (int row = 0; row < rows; row++)
        draw_text(cv, 1, cv->top + row * (cv->row_h + GAP) + 1,
                  row ? "truth" : has_seg ? "result" : "image");
}

/* Voxel index (z, y, x) under display pixel (r, c) of panel p. */
static size_t voxel(const canvas *cv, const panel *p, int r, int c)
{
    int q[3];
    q[p->axis[0]] = p->at;
    q[p->axis[1]] = (int)((long long)r * dim(cv->img, p->axis[1]) / p->rows);
    q[p->axis[2]] = (int)((long long)c * dim(cv->img, p->axis[2]) / p->cols);
    return ((size_t)q[0] * cv->img->h + q[1]) * cv->img->w + q[2];
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 1 .. 99.8 percentile window of the shown pixels. */
static u3d_status window(canvas *cv, u3d_error *err)
{
    size_t n = 0, cap = 0;
    for (int i = 0; i < 3; i++)
        cap += (size_t)cv->p[i].rows * cv->p[i].cols;
    float *buf = malloc(cap * sizeof *buf);
    if (!buf)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    const float *ch = cv->img->data + (size_t)cv->o->channel *
                                          cv->img->d * cv->img->h * cv->img->w;
    for (int i = 0; i < 3; i++)
        for (int r = 0; r < cv->p[i].rows; r++)
            for (int c = 0; c < cv->p[i].cols; c++) {
                float v = ch[voxel(cv, &cv->p[i], r, c)];
                if (isfinite(v))
                    buf[n++] = v;
            }
    qsort(buf, n, sizeof *buf, cmp_float);
    cv->lo = n ? buf[(size_t)(0.01 * (double)(n - 1))] : 0.0f;
    cv->hi = n ? buf[(size_t)(0.998 * (double)(n - 1))] : 1.0f;
    if (!(cv->hi > cv->lo))
        cv->hi = cv->lo + 1.0f;
    free(buf);
    return U3D_OK;
}

/* Display pixel (r, c) of panel i in row `row`, zoomed. */
static void fill(const canvas *cv, int row, int i, int r, int c,
                 const float rgb[3])
{
    int z = cv->zoom;
    for (int dy = 0; dy < z; dy++) {
        size_t y = (size_t)cv->top + (size_t)row * (cv->row_h + GAP) +
                   (size_t)r * z + dy;
        unsigned char *px = cv->rgb + (y * cv->width + cv->left +
                                       cv->p[i].x0 + (size_t)c * z) * 3;
        for (int dx = 0; dx < z; dx++, px += 3)
            for (int j = 0; j < 3; j++)
                px[j] = (unsigned char)lroundf(rgb[j]);
    }
}

static void put(const canvas *cv, const u3d_labels *lab, int row, int i,
                int r, int c)
{
    const panel *p = &cv->p[i];
    size_t vi = voxel(cv, p, r, c);
    size_t vox = (size_t)cv->img->d * cv->img->h * cv->img->w;
    float v = cv->img->data[(size_t)cv->o->channel * vox + vi];
    float g = isfinite(v) ? (v - cv->lo) / (cv->hi - cv->lo) : 0.0f;
    g = g < 0 ? 0 : g > 1 ? 1 : g;
    float rgb[3] = {255 * g, 255 * g, 255 * g};
    int k = lab ? lab->data[vi] : 0;
    if (k != 0 && k != cv->o->ignore_label) {
        const unsigned char *col = palette[(k - 1) % NPAL];
        for (int j = 0; j < 3; j++)
            rgb[j] = (1 - cv->o->alpha) * rgb[j] + cv->o->alpha * col[j];
    }
    fill(cv, row, i, r, c, rgb);
}

/* A marked slice: a dashed yellow line across each panel that cuts it,
 * at every display row or column showing that slice. */
static void draw_mark(const canvas *cv, const u3d_slice_score *m)
{
    static const float yellow[3] = {255, 230, 0};
    int a = m->axis == 'z' ? 0 : m->axis == 'y' ? 1 : 2;
    for (int i = 0; i < 3; i++)
        for (int j = 1; j < 3; j++) {
            const panel *p = &cv->p[i];
            if (p->axis[j] != a)
                continue;
            int n = j == 1 ? p->rows : p->cols, len = j == 1 ? p->cols : p->rows;
            for (int t = 0; t < n; t++) {
                if ((int)((long long)t * dim(cv->img, a) / n) != m->index)
                    continue;
                for (int u = 0; u < len; u++)
                    if (u / 2 % 2 == 0)
                        fill(cv, 0, i, j == 1 ? t : u, j == 1 ? u : t, yellow);
            }
        }
}

static void draw_row(const canvas *cv, const u3d_labels *lab, int row)
{
    for (int i = 0; i < 3; i++)
        for (int r = 0; r < cv->p[i].rows; r++)
            for (int c = 0; c < cv->p[i].cols; c++)
                put(cv, lab, row, i, r, c);
}

static u3d_status check(const u3d_volume *img, const u3d_labels *l,
                        const char *what, u3d_error *err)
{
    if (!l)
        return U3D_OK;
    if (!l->data || l->d != img->d || l->h != img->h || l->w != img->w)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "overview: the %s is %dx%dx%d (D x H x W) but the "
                          "image %dx%dx%d", what, l->d, l->h, l->w, img->d,
                          img->h, img->w);
    return U3D_OK;
}

u3d_status u3d_overview_write(const char *path, const u3d_volume *img,
                              const u3d_labels *seg, const u3d_labels *truth,
                              const u3d_overview_opts *opts, u3d_error *err)
{
    return u3d_overview_write_marked(path, img, seg, truth, opts, NULL, 0,
                                     err);
}

u3d_status u3d_overview_write_marked(const char *path, const u3d_volume *img,
                                     const u3d_labels *seg,
                                     const u3d_labels *truth,
                                     const u3d_overview_opts *opts,
                                     const u3d_slice_score *marks,
                                     int nmarks, u3d_error *err)
{
    u3d_overview_opts o = {0.45f, U3D_NO_IGNORE, 0};
    if (opts)
        o = *opts;
    if (!(o.alpha > 0))
        o.alpha = 0.45f;
    if (o.alpha > 1)
        o.alpha = 1;
    if (!img || !img->data || img->c < 1 || img->d < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "overview: empty image");
    if (o.channel < 0 || o.channel >= img->c)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "overview: channel %d, the image has %d", o.channel,
                          img->c);
    u3d_status st = check(img, seg, "segmentation", err);
    if (!st)
        st = check(img, truth, "truth", err);
    if (st)
        return st;
    canvas cv;
    memset(&cv, 0, sizeof cv);
    cv.img = img;
    cv.o = &o;
    layout(&cv);
    int rows = truth ? 2 : 1;
    int height = cv.top + rows * cv.row_h + (rows - 1) * GAP;
    cv.rgb = calloc((size_t)cv.width * height * 3, 1);
    if (!cv.rgb)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    st = window(&cv, err);
    if (!st) {
        draw_row(&cv, seg, 0);
        if (truth)
            draw_row(&cv, truth, 1);
        for (int k = 0; k < nmarks; k++)
            draw_mark(&cv, &marks[k]);
        draw_labels(&cv, rows, seg != NULL);
        st = u3d_png_write_rgb(path, cv.rgb, cv.width, height, err);
    }
    free(cv.rgb);
    return st;
}
