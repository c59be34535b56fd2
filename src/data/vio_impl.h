/* Internal: the format back ends behind include/unet3d/volume_io.h. */
#ifndef UNET3D_DATA_VIO_IMPL_H
#define UNET3D_DATA_VIO_IMPL_H
#include <stdint.h>
#include "unet3d/volume_io.h"

typedef struct u3d_vsrc_ops {
    /* Rows [y0, y0 + ny) of plane z, C x ny x W floats. */
    u3d_status (*read_rows)(u3d_vsource *s, int z, int y0, int ny,
                            float *dst, u3d_error *err);
    void (*close)(u3d_vsource *s);
} u3d_vsrc_ops;

struct u3d_vsource {
    const u3d_vsrc_ops *ops;
    void *impl;
    char name[4096];   /* the spec, for messages */
    u3d_volume shape;  /* data NULL */
    u3d_vgeom geom;
    int check_finite;  /* float sources: NaN/Inf refused */
    /* channel stacking ("a,b"): parts */
    int nparts;
    u3d_vsource **parts;
};

typedef struct u3d_vsink_ops {
    /* plane: C x H x W, float (bits 32) or uint16 (bits 8/16) */
    u3d_status (*plane)(u3d_vsink *s, const void *plane, u3d_error *err);
    u3d_status (*finish)(u3d_vsink *s, u3d_error *err);
    void (*abort)(u3d_vsink *s);
} u3d_vsink_ops;

struct u3d_vsink {
    const u3d_vsink_ops *ops;
    void *impl;
    char name[4096];
    int c, d, h, w, bits, z;
    double spacing[3];
    char unit[16];
    u3d_vgeom geom;
    uint16_t *conv; /* u8 -> u16 scratch */
};

/* Opens a source in process: fills s->shape etc., sets s->ops/impl. */
typedef u3d_status (*u3d_vsrc_open_fn)(u3d_vsource *s, void *arg,
                                       u3d_error *err);

/* Runs `opener` and every later read in a child process (isolate.c):
 * a crash of the format library on a corrupt file becomes an error naming
 * the file and `lib`. */
u3d_status u3d_vsource_isolated(u3d_vsource *s, const char *lib,
                                u3d_vsrc_open_fn opener, void *arg,
                                u3d_error *err);

/* Back ends: open with path/dataset already parsed; fill s->shape etc. */
u3d_status u3d_h5_source_open(u3d_vsource *s, const char *path,
                              const char *dataset, int labels,
                              u3d_error *err);
u3d_status u3d_h5_sink_open(u3d_vsink *s, const char *path,
                            const char *dataset, u3d_error *err);
u3d_status u3d_nifti_source_open(u3d_vsource *s, const char *path,
                                 u3d_error *err);
u3d_status u3d_nifti_sink_open(u3d_vsink *s, const char *path,
                               u3d_error *err);
u3d_status u3d_zarr_source_open(u3d_vsource *s, const char *path,
                                const char *dataset, int labels,
                                u3d_error *err);
u3d_status u3d_zarr_sink_open(u3d_vsink *s, const char *path,
                              u3d_error *err);

#endif
