/* The pixel mapping of src/report/plot.c, for its tests: where a value
 * lands in the PNG and which colour a series gets. Internal. */
#ifndef UNET3D_PLOT_INTERNAL_H
#define UNET3D_PLOT_INTERNAL_H
#include "report/plot.h"

typedef struct u3d_plot_frame {
    int width, height;          /* the whole image */
    int x0, y0, x1, y1;         /* the plot area, inclusive pixels */
    double xmin, xmax, ymin, ymax;
} u3d_plot_frame;

/* Validates p (as u3d_plot_lines, bars = 0, or u3d_plot_bars, bars = 1
 * do) and computes its frame. */
u3d_status u3d_plot_frame_of(const u3d_plot *p, int bars, u3d_plot_frame *f,
                             u3d_error *err);
/* Pixel column of x and row of y (not rounded, not clipped). */
double u3d_plot_map_x(const u3d_plot_frame *f, double x);
double u3d_plot_map_y(const u3d_plot_frame *f, double y);
/* Bars: the centre column of series s's bar in group g, and its width. */
double u3d_plot_bar_x(const u3d_plot_frame *f, const u3d_plot *p, int g,
                      int s);
int u3d_plot_bar_w(const u3d_plot_frame *f, const u3d_plot *p);
/* Series s's colour (a colour-blind-safe palette, cycling). */
void u3d_plot_colour(int s, unsigned char rgb[3]);

/* The 5 columns (bit 0 = top row) of character c's 5x7 glyph; '?' for
 * anything outside printable ASCII. */
const unsigned char *u3d_font_glyph(int c);

#endif
