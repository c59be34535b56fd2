/* Charts as PNG files for the experiments' reports (libpng; a built-in
 * bitmap font for titles, ticks and legends). Internal to unet3d. */
#ifndef UNET3D_PLOT_H
#define UNET3D_PLOT_H
#include "unet3d/error.h"

typedef struct u3d_plot_series {
    const char *name;    /* legend entry */
    int n;               /* points (lines) or groups (bars) */
    const double *x;     /* lines: n x values; bars: unused (NULL) */
    const double *y;     /* n values; NaN: no point / no bar */
    const double *err;   /* NULL, or n half-widths drawn as error bars
                            (the spread over seeds) */
} u3d_plot_series;

typedef struct u3d_plot {
    const char *title, *xlabel, *ylabel;
    int width, height;              /* pixels; 0: 800 x 500 */
    double ymin, ymax;              /* both 0: from the data */
    const u3d_plot_series *series;
    int nseries;
    const char *const *groups;      /* bars: the ngroups category names */
    int ngroups;
} u3d_plot;

/* Lines with markers, one colour per series, legend, axes with ticks.
 * Written to a temporary file renamed at the end (no partial output). */
u3d_status u3d_plot_lines(const char *path, const u3d_plot *p,
                          u3d_error *err);
/* Grouped bars: one group per groups[g], one bar per series (y[g]), with
 * error bars where err is given. */
u3d_status u3d_plot_bars(const char *path, const u3d_plot *p,
                         u3d_error *err);

#endif
