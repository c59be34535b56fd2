/* Line and grouped-bar charts as PNG files (report/plot.h): a white
 * canvas, axes with nice ticks, a built-in bitmap font, a colour-blind-safe
 * palette, written atomically. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "report/plot_internal.h"
#include "report/png_rgb.h"
#include "core/files.h"

#define CELL_W 6      /* glyph advance: 5 pixels and a blank column */
#define CELL_H 8
#define TICK 5        /* tick mark length */
#define MARK 3        /* marker half-size */
#define CAP 4         /* error bar cap half-width */
#define SWATCH 18     /* legend sample length */
#define BIG 1e7       /* mapped coordinates are clamped to +-BIG pixels */

/* Okabe & Ito (2008): distinguishable with the common colour-vision
 * deficiencies; black last so that the first series do not look like
 * the axes. */
static const unsigned char palette[8][3] = {
    {230, 159, 0},  {86, 180, 233}, {0, 158, 115},   {213, 94, 0},
    {0, 114, 178},  {204, 121, 167}, {240, 228, 66}, {0, 0, 0}};
static const unsigned char ink[3] = {51, 51, 51};
static const unsigned char grid[3] = {232, 232, 232};

typedef struct ticks {
    double first, step;
    int n, decimals;
} ticks;

typedef struct canvas {
    unsigned char *rgb;
    u3d_plot_frame f;
    ticks xt, yt;
    int legend_x, legend_w;
    int bars;
} canvas;

void u3d_plot_colour(int s, unsigned char rgb[3])
{
    memcpy(rgb, palette[((s % 8) + 8) % 8], 3);
}

/* ---- validation ---- */

static u3d_status check_series(const u3d_plot *p, int bars, u3d_error *err)
{
    for (int s = 0; s < p->nseries; s++) {
        const u3d_plot_series *r = &p->series[s];
        if (r->n < 1 || !r->y || (!bars && !r->x))
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "plot: series %d has no points (n = %d or no "
                              "values)", s, r->n);
        if (bars && r->n != p->ngroups)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "plot: series %d has %d values for %d groups",
                              s, r->n, p->ngroups);
    }
    return U3D_OK;
}

static u3d_status check(const u3d_plot *p, int bars, u3d_error *err)
{
    if (!p || !p->series || p->nseries < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "plot: no series to draw");
    int w = p->width ? p->width : 800, h = p->height ? p->height : 500;
    if (w < 200 || w > 4000 || h < 200 || h > 4000)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "plot: %d x %d pixels, each side must be 200..4000",
                          w, h);
    if (bars && (p->ngroups < 1 || !p->groups))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "plot: bars need at least one group name");
    if ((p->ymin != 0 || p->ymax != 0) &&
        !(isfinite(p->ymin) && isfinite(p->ymax) && p->ymin < p->ymax))
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "plot: the y range %g..%g is empty or not finite",
                          p->ymin, p->ymax);
    return check_series(p, bars, err);
}

/* ---- ranges and ticks ---- */

static int usable(const u3d_plot_series *r, int i, int bars)
{
    return isfinite(r->y[i]) && (bars || isfinite(r->x[i]));
}

static double half(const u3d_plot_series *r, int i)
{
    return r->err && isfinite(r->err[i]) ? fabs(r->err[i]) : 0;
}

/* Widens a degenerate range; pads a normal one by 5% on the sides not
 * pinned (bars keep their zero baseline on the axis). */
static void pad(double *lo, double *hi, int keep_zero)
{
    if (!(*hi - *lo > 1e-12 * fmax(1, fabs(*hi)))) {
        double d = *hi != 0 ? fabs(*hi) * 0.1 : 0.5;
        *lo = keep_zero && *lo == 0 ? 0 : *lo - d;
        *hi = keep_zero && *hi == 0 && *lo < 0 ? 0 : *hi + d;
        return;
    }
    double d = 0.05 * (*hi - *lo);
    if (!(keep_zero && *lo == 0))
        *lo -= d;
    if (!(keep_zero && *hi == 0))
        *hi += d;
}

static void y_range(const u3d_plot *p, int bars, double *lo, double *hi)
{
    if (p->ymin != 0 || p->ymax != 0) {
        *lo = p->ymin;
        *hi = p->ymax;
        return;
    }
    *lo = bars ? 0 : INFINITY;
    *hi = bars ? 0 : -INFINITY;
    for (int s = 0; s < p->nseries; s++)
        for (int i = 0; i < p->series[s].n; i++)
            if (usable(&p->series[s], i, bars)) {
                double v = p->series[s].y[i], e = half(&p->series[s], i);
                *lo = fmin(*lo, v - e);
                *hi = fmax(*hi, v + e);
            }
    if (!isfinite(*lo) || !isfinite(*hi) || (bars && *lo == 0 && *hi == 0)) {
        *lo = 0;
        *hi = 1;
        return;
    }
    pad(lo, hi, bars);
}

/* The x range of a line chart; *integer: every x is a whole number. */
static void x_range(const u3d_plot *p, double *lo, double *hi, int *integer)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    *integer = 1;
    for (int s = 0; s < p->nseries; s++)
        for (int i = 0; i < p->series[s].n; i++)
            if (usable(&p->series[s], i, 0)) {
                double x = p->series[s].x[i];
                *lo = fmin(*lo, x);
                *hi = fmax(*hi, x);
                *integer &= x == floor(x) && fabs(x) < 1e15;
            }
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0;
        *hi = 1;
        return;
    }
    if (*integer && *hi - *lo < 1) {
        *lo -= 1;
        *hi += 1;
        return;
    }
    pad(lo, hi, 0);
}

/* About five ticks at 1, 2 or 5 times a power of ten inside lo..hi. */
static ticks make_ticks(double lo, double hi, int integer)
{
    ticks t = {0, 1, 0, 0};
    double raw = (hi - lo) / 4;
    if (!(raw > 0) || !isfinite(raw))
        return t; /* a range too wide for ticks: none */
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    t.step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    if (integer && t.step < 1)
        t.step = 1;
    t.first = ceil(lo / t.step - 1e-9) * t.step;
    double n = floor((hi - t.first) / t.step + 1e-9) + 1;
    t.n = n < 0 ? 0 : n > 20 ? 20 : (int)n;
    t.decimals = 0;
    for (double v = t.step; t.decimals < 6 && fabs(v - round(v)) > 1e-6 * v;
         v *= 10)
        t.decimals++;
    return t;
}

static void tick_label(const ticks *t, int i, char *buf, size_t n)
{
    double v = t->first + i * t->step;
    if (fabs(v) < t->step * 1e-6)
        v = 0; /* no "-0.0" */
    if (fabs(v) >= 1e6)
        snprintf(buf, n, "%.3g", v);
    else
        snprintf(buf, n, "%.*f", t->decimals, v);
}

/* ---- text ---- */

/* The next character of s as a glyph code: one '?' per non-ASCII
 * character (its UTF-8 continuation bytes skipped) or control byte. */
static int next_char(const unsigned char **s)
{
    int c = *(*s)++;
    if (c >= 0x80)
        while ((**s & 0xC0) == 0x80)
            (*s)++;
    return c >= 32 && c <= 126 ? c : '?';
}

static int text_len(const char *s)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; n++)
        next_char(&p);
    return n;
}

static void put(canvas *c, int x, int y, const unsigned char col[3])
{
    if (x < 0 || y < 0 || x >= c->f.width || y >= c->f.height)
        return;
    memcpy(c->rgb + ((size_t)y * c->f.width + x) * 3, col, 3);
}

/* Filled rectangle, inclusive corners, clipped to the image or, with
 * inside, to the plot area. */
static void fill(canvas *c, double ax, double ay, double bx, double by,
                 const unsigned char col[3], int inside)
{
    int lx = inside ? c->f.x0 : 0, ly = inside ? c->f.y0 : 0;
    int hx = inside ? c->f.x1 : c->f.width - 1;
    int hy = inside ? c->f.y1 : c->f.height - 1;
    int x0 = (int)fmax(fmin(ax, bx), lx), x1 = (int)fmin(fmax(ax, bx), hx);
    int y0 = (int)fmax(fmin(ay, by), ly), y1 = (int)fmin(fmax(ay, by), hy);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put(c, x, y, col);
}

/* At most max characters of s from (x, y), top left, scale 1 or 2. */
static void text(canvas *c, int x, int y, const char *s, int scale, int max)
{
    const unsigned char *p = (const unsigned char *)s;
    for (int k = 0; p && *p && k < max; k++, x += CELL_W * scale) {
        const unsigned char *g = u3d_font_glyph(next_char(&p));
        for (int cx = 0; cx < 5; cx++)
            for (int ry = 0; ry < 7; ry++)
                if (g[cx] >> ry & 1)
                    fill(c, x + cx * scale, y + ry * scale,
                         x + cx * scale + scale - 1,
                         y + ry * scale + scale - 1, ink, 0);
    }
}

/* ---- layout ---- */

static int y_label_width(const ticks *t)
{
    int w = 0;
    char buf[64];
    for (int i = 0; i < t->n; i++) {
        tick_label(t, i, buf, sizeof buf);
        int n = text_len(buf) * CELL_W;
        w = n > w ? n : w;
    }
    return w;
}

static int legend_width(const u3d_plot *p, int width)
{
    int n = 0;
    for (int s = 0; s < p->nseries; s++) {
        int k = text_len(p->series[s].name);
        n = k > n ? k : n;
    }
    int w = 8 + SWATCH + 6 + n * CELL_W + 8;
    return w > width / 3 ? width / 3 : w;
}

static void layout(canvas *c, const u3d_plot *p, int bars)
{
    u3d_plot_frame *f = &c->f;
    f->width = p->width ? p->width : 800;
    f->height = p->height ? p->height : 500;
    int integer = 1;
    if (bars) {
        f->xmin = 0;
        f->xmax = p->ngroups;
    } else {
        x_range(p, &f->xmin, &f->xmax, &integer);
    }
    y_range(p, bars, &f->ymin, &f->ymax);
    c->xt = make_ticks(f->xmin, f->xmax, integer);
    c->yt = make_ticks(f->ymin, f->ymax, 0);
    c->bars = bars;
    c->legend_w = legend_width(p, f->width);
    int left = 10 + y_label_width(&c->yt) + TICK + 4;
    f->x0 = left > f->width / 3 ? f->width / 3 : left;
    f->y0 = 2 * CELL_H + 12 + CELL_H + 8; /* title, y label */
    f->x1 = f->width - c->legend_w - 16;
    f->y1 = f->height - (TICK + 4 + CELL_H + 8 + CELL_H + 8);
    c->legend_x = f->x1 + 8;
}

u3d_status u3d_plot_frame_of(const u3d_plot *p, int bars, u3d_plot_frame *f,
                             u3d_error *err)
{
    U3D_TRY(check(p, bars, err));
    canvas c;
    layout(&c, p, bars);
    *f = c.f;
    return U3D_OK;
}

static double clamp(double v)
{
    return isnan(v) ? 0 : v < -BIG ? -BIG : v > BIG ? BIG : v;
}

double u3d_plot_map_x(const u3d_plot_frame *f, double x)
{
    return clamp(f->x0 + (x - f->xmin) / (f->xmax - f->xmin) *
                             (f->x1 - f->x0));
}

double u3d_plot_map_y(const u3d_plot_frame *f, double y)
{
    return clamp(f->y1 - (y - f->ymin) / (f->ymax - f->ymin) *
                             (f->y1 - f->y0));
}

static double group_w(const u3d_plot_frame *f, const u3d_plot *p)
{
    return (double)(f->x1 - f->x0 + 1) / p->ngroups;
}

double u3d_plot_bar_x(const u3d_plot_frame *f, const u3d_plot *p, int g,
                      int s)
{
    double gw = group_w(f, p), bw = 0.8 * gw / p->nseries;
    return f->x0 + g * gw + 0.1 * gw + (s + 0.5) * bw;
}

int u3d_plot_bar_w(const u3d_plot_frame *f, const u3d_plot *p)
{
    int w = (int)(0.8 * group_w(f, p) / p->nseries) - 1;
    return w < 1 ? 1 : w;
}

/* ---- axes, title, legend ---- */

static void draw_y_axis(canvas *c, const char *label)
{
    const u3d_plot_frame *f = &c->f;
    char buf[64];
    for (int i = 0; i < c->yt.n; i++) {
        int y = (int)lround(u3d_plot_map_y(f, c->yt.first + i * c->yt.step));
        fill(c, f->x0 + 1, y, f->x1, y, grid, 1);
        fill(c, f->x0 - TICK, y, f->x0 - 1, y, ink, 0);
        tick_label(&c->yt, i, buf, sizeof buf);
        int w = text_len(buf) * CELL_W;
        text(c, f->x0 - TICK - 3 - w, y - 3, buf, 1, 64);
    }
    fill(c, f->x0, f->y0, f->x0, f->y1, ink, 0);
    if (label) /* horizontal, above the axis: no rotated text needed */
        text(c, 10, f->y0 - CELL_H - 6, label, 1, (f->width - 20) / CELL_W);
}

static void draw_x_axis(canvas *c, const u3d_plot *p, const char *label)
{
    const u3d_plot_frame *f = &c->f;
    char buf[64];
    int ty = f->y1 + TICK + 4;
    for (int i = 0; !c->bars && i < c->xt.n; i++) {
        int x = (int)lround(u3d_plot_map_x(f, c->xt.first + i * c->xt.step));
        fill(c, x, f->y1 + 1, x, f->y1 + TICK, ink, 0);
        tick_label(&c->xt, i, buf, sizeof buf);
        text(c, x - text_len(buf) * CELL_W / 2, ty, buf, 1, 64);
    }
    for (int g = 0; c->bars && g < p->ngroups; g++) {
        double gw = group_w(f, p);
        int max = (int)(gw / CELL_W), n = text_len(p->groups[g]);
        n = n < max ? n : max;
        text(c, (int)(f->x0 + (g + 0.5) * gw) - n * CELL_W / 2, ty,
             p->groups[g], 1, n);
    }
    fill(c, f->x0, f->y1, f->x1, f->y1, ink, 0);
    if (label) {
        int n = text_len(label);
        text(c, (f->x0 + f->x1) / 2 - n * CELL_W / 2, ty + CELL_H + 6, label,
             1, n);
    }
}

static void draw_title(canvas *c, const char *title)
{
    if (!title)
        return;
    int max = (c->f.width - 20) / (2 * CELL_W), n = text_len(title);
    n = n < max ? n : max;
    text(c, c->f.width / 2 - n * CELL_W, 8, title, 2, n);
}

static void draw_legend(canvas *c, const u3d_plot *p)
{
    int x = c->legend_x, y = c->f.y0, w = c->legend_w, row = CELL_H + 6;
    int h = p->nseries * row + 8, max = (w - 8 - SWATCH - 6 - 4) / CELL_W;
    fill(c, x, y, x + w - 1, y, ink, 0);
    fill(c, x, y + h, x + w - 1, y + h, ink, 0);
    fill(c, x, y, x, y + h, ink, 0);
    fill(c, x + w - 1, y, x + w - 1, y + h, ink, 0);
    for (int s = 0; s < p->nseries; s++) {
        unsigned char col[3];
        u3d_plot_colour(s, col);
        int cy = y + 4 + s * row + row / 2 - 1, sx = x + 6;
        if (c->bars) {
            fill(c, sx + 4, cy - 4, sx + SWATCH - 4, cy + 4, col, 0);
        } else {
            fill(c, sx, cy, sx + SWATCH, cy + 1, col, 0);
            fill(c, sx + SWATCH / 2 - MARK, cy - MARK + 1,
                 sx + SWATCH / 2 + MARK, cy + MARK + 1, col, 0);
        }
        text(c, sx + SWATCH + 6, cy - 3, p->series[s].name, 1, max);
    }
}

/* ---- series ---- */

/* Liang-Barsky: clips the segment a-b to the plot area; 0 if outside. */
static int clip_segment(const u3d_plot_frame *f, double a[2], double b[2])
{
    double t0 = 0, t1 = 1, dx = b[0] - a[0], dy = b[1] - a[1];
    double pq[4][2] = {{-dx, a[0] - f->x0}, {dx, f->x1 - a[0]},
                       {-dy, a[1] - f->y0}, {dy, f->y1 - a[1]}};
    for (int i = 0; i < 4; i++) {
        double p = pq[i][0], r = p != 0 ? pq[i][1] / p : 0;
        if (p == 0) {
            if (pq[i][1] < 0)
                return 0;
        } else if (p < 0) {
            if (r > t1)
                return 0;
            t0 = r > t0 ? r : t0;
        } else {
            if (r < t0)
                return 0;
            t1 = r < t1 ? r : t1;
        }
    }
    b[0] = a[0] + t1 * dx;
    b[1] = a[1] + t1 * dy;
    a[0] += t0 * dx;
    a[1] += t0 * dy;
    return 1;
}

/* A 2 pixel wide segment between two data points. */
static void segment(canvas *c, double ax, double ay, double bx, double by,
                    const unsigned char col[3])
{
    double a[2] = {ax, ay}, b[2] = {bx, by};
    if (!clip_segment(&c->f, a, b))
        return;
    double dx = b[0] - a[0], dy = b[1] - a[1];
    int steps = (int)ceil(fmax(fabs(dx), fabs(dy)));
    for (int k = 0; k <= steps; k++) {
        double t = steps ? (double)k / steps : 0;
        int x = (int)lround(a[0] + t * dx), y = (int)lround(a[1] + t * dy);
        fill(c, x, y, x + 1, y + 1, col, 1);
    }
}

/* A vertical error bar with caps centred on column x. */
static void error_bar(canvas *c, double x, double y, double e,
                      const unsigned char col[3])
{
    double top = u3d_plot_map_y(&c->f, y + e);
    double bottom = u3d_plot_map_y(&c->f, y - e);
    x = round(x);
    fill(c, x, top, x + 1, bottom, col, 1);
    fill(c, x - CAP, top, x + 1 + CAP, top, col, 1);
    fill(c, x - CAP, bottom, x + 1 + CAP, bottom, col, 1);
}

static void draw_line_series(canvas *c, const u3d_plot_series *r,
                             const unsigned char col[3])
{
    const u3d_plot_frame *f = &c->f;
    for (int i = 0; i < r->n; i++) {
        if (!usable(r, i, 0))
            continue;
        double x = u3d_plot_map_x(f, r->x[i]), y = u3d_plot_map_y(f, r->y[i]);
        if (half(r, i) > 0)
            error_bar(c, x, r->y[i], half(r, i), col);
        if (i + 1 < r->n && usable(r, i + 1, 0)) /* NaN: a gap */
            segment(c, x, y, u3d_plot_map_x(f, r->x[i + 1]),
                    u3d_plot_map_y(f, r->y[i + 1]), col);
        x = round(x);
        y = round(y);
        fill(c, x - MARK, y - MARK, x + MARK, y + MARK, col, 1);
    }
}

static void draw_bar_series(canvas *c, const u3d_plot *p, int s)
{
    const u3d_plot_series *r = &p->series[s];
    const u3d_plot_frame *f = &c->f;
    unsigned char col[3];
    u3d_plot_colour(s, col);
    double base = fmin(fmax(0, f->ymin), f->ymax);
    int bw = u3d_plot_bar_w(f, p);
    for (int g = 0; g < r->n; g++) {
        if (!usable(r, g, 1))
            continue;
        double x = round(u3d_plot_bar_x(f, p, g, s) - bw / 2.0);
        fill(c, x, u3d_plot_map_y(f, base), x + bw - 1,
             u3d_plot_map_y(f, r->y[g]), col, 1);
        if (half(r, g) > 0) /* dark, to show on the bar */
            error_bar(c, u3d_plot_bar_x(f, p, g, s) - 0.5, r->y[g],
                      half(r, g), ink);
    }
}

/* ---- output ---- */

static u3d_status plot(const char *path, const u3d_plot *p, int bars,
                       u3d_error *err)
{
    if (!path || !*path)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "plot: no output path");
    U3D_TRY(check(p, bars, err));
    canvas c;
    layout(&c, p, bars);
    size_t n = (size_t)c.f.width * c.f.height * 3;
    c.rgb = malloc(n);
    if (!c.rgb)
        return u3d_seterr(err, U3D_ERR_OOM, "plot: out of memory");
    memset(c.rgb, 255, n);
    draw_y_axis(&c, p->ylabel);
    draw_x_axis(&c, p, p->xlabel);
    draw_title(&c, p->title);
    for (int s = 0; s < p->nseries; s++) {
        unsigned char col[3];
        u3d_plot_colour(s, col);
        if (bars)
            draw_bar_series(&c, p, s);
        else
            draw_line_series(&c, &p->series[s], col);
    }
    fill(&c, c.f.x0, c.f.y0, c.f.x0, c.f.y1, ink, 0); /* axes on top */
    fill(&c, c.f.x0, c.f.y1, c.f.x1, c.f.y1, ink, 0);
    draw_legend(&c, p);
    u3d_status st = u3d_png_write_rgb(path, c.rgb, c.f.width, c.f.height, err);
    free(c.rgb);
    return st;
}

u3d_status u3d_plot_lines(const char *path, const u3d_plot *p, u3d_error *err)
{
    return plot(path, p, 0, err);
}

u3d_status u3d_plot_bars(const char *path, const u3d_plot *p, u3d_error *err)
{
    return plot(path, p, 1, err);
}
