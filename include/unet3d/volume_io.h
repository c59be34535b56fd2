/* One interface for volume files of every format: TIFF, HDF5, NIfTI-1/2,
 * Zarr v2/v3 (and OME-Zarr).
 *
 * A "spec" names a volume:
 *   a.tif, a.tiff                 TIFF (ImageJ hyperstacks; see volume.h)
 *   a.h5, a.hdf5[:/group/dataset] HDF5 dataset; without a name: "raw"
 *                                 (images) or "label" (labels), else the
 *                                 file's only 3D/4D dataset
 *   a.nii, a.nii.gz               NIfTI-1 or NIfTI-2
 *   a.zarr[/path]                 Zarr v2 or v3 array, or a group: its
 *                                 OME-Zarr multiscales level 0, else
 *                                 "raw"/"label", else its only array
 *   tiff:P, h5:P, nifti:P, zarr:P the format named explicitly
 *   a.nii.gz,b.nii.gz             (inputs) several volumes of the same
 *                                 D, H, W stacked as channels, in order
 * Unknown extensions: inputs are recognized by their first bytes, outputs
 * are TIFF.
 *
 * Every format gives the same contract: shape C, D, H, W (a 3D dataset is
 * one channel; 4D is C, Z, Y, X; NIfTI's x, y, z[, t] map to W, H, D[, C]),
 * the source's sample type, spacing z, y, x with its unit, Z planes read
 * on demand (whole or a window of rows) as floats, and outputs written
 * plane by plane into a temporary file (or folder, for Zarr) renamed over
 * the target at the end. Errors are one line naming the file. */
#ifndef UNET3D_VOLUME_IO_H
#define UNET3D_VOLUME_IO_H
#include <stddef.h>
#include <stdint.h>
#include "unet3d/error.h"
#include "unet3d/volume.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef enum u3d_format {
    U3D_FMT_AUTO = 0,
    U3D_FMT_TIFF,
    U3D_FMT_HDF5,
    U3D_FMT_NIFTI,
    U3D_FMT_ZARR
} u3d_format;

/* Orientation carried from an input to the outputs written from it (so
 * labels overlay their image in viewers): NIfTI qform/sform. valid = 0:
 * none (outputs get an axis-aligned geometry from their spacing). */
typedef struct u3d_vgeom {
    int valid;
    int dim[3];      /* x, y, z of the volume it came from */
    int qform_code, sform_code;
    double quatern[3], qoffset[3], qfac;
    double srow[3][4];
    double pixdim[3]; /* x, y, z */
    int xyzt_units;
} u3d_vgeom;

/* The format a spec names and its parts: the file (or folder) and, for
 * HDF5 and Zarr, the dataset path inside it ("" when not given). */
u3d_status u3d_vio_parse(const char *spec, int output, u3d_format *fmt,
                         char *path, size_t path_len, char *dataset,
                         size_t dataset_len, u3d_error *err);
const char *u3d_format_name(u3d_format f);

/* ---- Reading ---------------------------------------------------------- */
typedef struct u3d_vsource u3d_vsource;

/* Opens spec; labels != 0 selects the default dataset names of label
 * files. *shape receives C, D, H, W, spacing, unit and sample type with
 * data NULL. */
u3d_status u3d_vsource_open(const char *spec, int labels, u3d_vsource **s,
                            u3d_volume *shape, u3d_error *err);
/* Plane z as C x H x W floats; NaN/Inf refused. */
u3d_status u3d_vsource_read(u3d_vsource *s, int z, float *dst,
                            u3d_error *err);
/* Rows [y0, y0 + ny) of plane z: C x ny x W floats. */
u3d_status u3d_vsource_read_rows(u3d_vsource *s, int z, int y0, int ny,
                                 float *dst, u3d_error *err);
/* The input's orientation (valid = 0 when the format has none). */
const u3d_vgeom *u3d_vsource_geom(const u3d_vsource *s);
void u3d_vsource_close(u3d_vsource *s);

/* Whole volumes (refused above the machine's physical memory), labels as
 * integers 0..65535 (negative, fractional or larger values refused). geom
 * may be NULL. */
u3d_status u3d_vio_read_volume(const char *spec, u3d_volume *out,
                               u3d_vgeom *geom, u3d_error *err);
u3d_status u3d_vio_read_labels(const char *spec, u3d_labels *out,
                               u3d_vgeom *geom, u3d_error *err);

/* ---- Writing ---------------------------------------------------------- */
typedef struct u3d_vsink u3d_vsink;

/* bits: 8 or 16 (labels, unsigned integers), 32 (float32). vmin/vmax: the
 * display range (TIFF). geom (may be NULL): orientation of the input. */
u3d_status u3d_vsink_open(const char *spec, int c, int d, int h, int w,
                          int bits, const double spacing[3], const char *unit,
                          double vmin, double vmax, const u3d_vgeom *geom,
                          u3d_vsink **out, u3d_error *err);
/* The next Z plane, C x H x W. */
u3d_status u3d_vsink_plane_f32(u3d_vsink *s, const float *plane,
                               u3d_error *err);
u3d_status u3d_vsink_plane_u16(u3d_vsink *s, const uint16_t *plane,
                               u3d_error *err);
u3d_status u3d_vsink_plane_u8(u3d_vsink *s, const uint8_t *plane,
                              u3d_error *err);
/* Completes the output and renames it into place; abort (or finish
 * before the last plane) removes it. Both free s; NULL is ignored. */
u3d_status u3d_vsink_finish(u3d_vsink *s, u3d_error *err);
void u3d_vsink_abort(u3d_vsink *s);

/* Whole volumes: float32, labels 8-bit when every value < 256. */
u3d_status u3d_vio_write_volume(const char *spec, const u3d_volume *v,
                                const u3d_vgeom *geom, u3d_error *err);
u3d_status u3d_vio_write_labels(const char *spec, const u3d_labels *l,
                                const u3d_vgeom *geom, u3d_error *err);

/* Removes the output a spec names (the file, or a Zarr folder): a failed
 * command undoes what it wrote. 0 when removed or absent. */
int u3d_vio_remove(const char *spec);

#ifdef __cplusplus
}
#endif
#endif
