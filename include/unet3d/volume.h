/* 3D volumes on the host: TIFF reading/writing (ImageJ hyperstacks),
 * label checks, per-channel normalization and sparse-label simulation.
 *
 * Layouts: a volume is float32 in C,D,H,W order (channel planes, then z
 * slices, then rows); labels are uint16 in D,H,W order. uint16 holds every
 * uint8/uint16 label file without loss and halves the memory of int32;
 * class ids and the ignore label (typically 255 or 65535) fit in it. */
#ifndef UNET3D_VOLUME_H
#define UNET3D_VOLUME_H
#include <stddef.h>
#include <stdint.h>
#include "unet3d/error.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct u3d_volume {
    int c, d, h, w;
    float *data;       /* c*d*h*w values, C,D,H,W order, malloc'd */
    double spacing[3]; /* voxel size z, y, x in `unit` (1 when unknown) */
    char unit[16];     /* "um", "mm", "cm", "inch", or "" (pixels) */
    int bits;          /* sample depth in the source file (8, 16, 32, 64) */
    int is_float;      /* source samples were floating point */
    int is_signed;     /* source samples were signed integers */
} u3d_volume;

typedef struct u3d_labels {
    int d, h, w;
    uint16_t *data;    /* d*h*w class ids, D,H,W order, malloc'd */
    double spacing[3]; /* z, y, x in `unit` */
    char unit[16];
} u3d_labels;

/* Allocate zero-filled storage (spacing 1, unit ""); sizes must be > 0. */
u3d_status u3d_volume_alloc(int c, int d, int h, int w, u3d_volume *out,
                            u3d_error *err);
u3d_status u3d_labels_alloc(int d, int h, int w, u3d_labels *out,
                            u3d_error *err);
/* Free the data and zero the struct; safe on zeroed or freed structs. */
void u3d_volume_free(u3d_volume *v);
void u3d_labels_free(u3d_labels *l);

/* ---- TIFF reading ------------------------------------------------------
 * Pages are read as Z slices. ImageJ hyperstacks (ImageDescription starting
 * with "ImageJ=") give images=, channels=, slices=, frames= (pages ordered
 * channel fastest, then slice); frames are taken as Z when slices is 1;
 * files with both slices and frames > 1 (time series) are rejected. Without
 * ImageJ metadata every full-resolution page is a Z slice of one channel
 * (reduced-resolution pages, e.g. thumbnails, are skipped). Samples per
 * pixel > 1 (RGB, planar or interleaved) become channels. Sample types:
 * 8/16/32-bit unsigned or signed integers, 16/32/64-bit float; any
 * compression libtiff decodes, strips or tiles, classic or BigTIFF, either
 * byte order. ImageJ files > 4 GB that store only the first page's
 * directory (uncompressed, contiguous) are read too.
 * Spacing: z from ImageJ `spacing=`; y, x = 1 / Y, X resolution. The unit is
 * ImageJ `unit=` ("micron" and "\u00B5m" become "um"), else the TIFF
 * ResolutionUnit ("inch", "cm"), else "". A missing z spacing is taken equal
 * to the x spacing (isotropic), missing resolutions as 1.
 * Float data with NaN/Inf are rejected (U3D_ERR_NUMERIC) with their count and
 * the position of the first. Every error message is one line that names the
 * file. */
typedef struct u3d_tiff_read_opts {
    /* Refuse volumes whose decoded float32 (or uint16 labels) data would
     * exceed this many bytes; 0: the machine's physical memory. The check
     * happens before anything large is allocated. */
    size_t max_bytes;
} u3d_tiff_read_opts;

u3d_status u3d_tiff_read_volume(const char *path, u3d_volume *out,
                                u3d_error *err);
u3d_status u3d_tiff_read_volume_ex(const char *path,
                                   const u3d_tiff_read_opts *opts,
                                   u3d_volume *out, u3d_error *err);
/* Same from a buffer in memory; name is used in messages only. */
u3d_status u3d_tiff_read_volume_mem(const void *buf, size_t len,
                                    const char *name,
                                    const u3d_tiff_read_opts *opts,
                                    u3d_volume *out, u3d_error *err);

/* Labels: one channel of unsigned (or signed, non-negative) integers up to
 * 65535. Float, multi-channel and out-of-range files are rejected. */
u3d_status u3d_tiff_read_labels(const char *path, u3d_labels *out,
                                u3d_error *err);
u3d_status u3d_tiff_read_labels_ex(const char *path,
                                   const u3d_tiff_read_opts *opts,
                                   u3d_labels *out, u3d_error *err);
u3d_status u3d_tiff_read_labels_mem(const void *buf, size_t len,
                                    const char *name,
                                    const u3d_tiff_read_opts *opts,
                                    u3d_labels *out, u3d_error *err);

/* Plane streaming, for volumes larger than host memory: the file is
 * validated as by u3d_tiff_read_volume (every page's format, the ImageJ
 * layout, no size limit), *shape receives C, D, H, W, spacing, unit and
 * type with data NULL; then any Z plane is decoded on demand into C x H x W
 * floats (NaN/Inf rejected as above). One page is held in memory. */
typedef struct u3d_tiff_stream u3d_tiff_stream;
u3d_status u3d_tiff_stream_open(const char *path, u3d_tiff_stream **s,
                                u3d_volume *shape, u3d_error *err);
u3d_status u3d_tiff_stream_read(u3d_tiff_stream *s, int z, float *dst,
                                u3d_error *err);
/* Rows [y0, y0 + ny) of plane z only: C x ny x W floats (the page is still
 * decoded whole; only the window is converted and kept). */
u3d_status u3d_tiff_stream_read_rows(u3d_tiff_stream *s, int z, int y0,
                                     int ny, float *dst, u3d_error *err);
void u3d_tiff_stream_close(u3d_tiff_stream *s);

/* ---- TIFF writing ------------------------------------------------------
 * ImageJ hyperstack layout (pages z-major, channel fastest; ImageJ=1.11a,
 * images, channels, slices, hyperstack=true when channels > 1, spacing,
 * unit), X/Y resolution = 1 / spacing with ResolutionUnit none. Volumes are
 * written as float32, labels as uint8 when every value < 256, else uint16.
 * Atomic: the data go to a temporary file in the target's folder that is
 * renamed over the target at the end; on failure it is removed and the
 * target is untouched. */
typedef struct u3d_tiff_write_opts {
    int compress; /* 0: none, 1: zlib (deflate) */
    int level;    /* zlib level 1..9; 0: default (6) */
    int bigtiff;  /* 0: automatic (data > 3.9 GB), 1: always, -1: never */
} u3d_tiff_write_opts;

/* The plain calls use zlib and automatic BigTIFF. */
u3d_status u3d_tiff_write_volume(const char *path, const u3d_volume *v,
                                 u3d_error *err);
u3d_status u3d_tiff_write_volume_ex(const char *path, const u3d_volume *v,
                                    const u3d_tiff_write_opts *opts,
                                    u3d_error *err);
u3d_status u3d_tiff_write_labels(const char *path, const u3d_labels *l,
                                 u3d_error *err);
u3d_status u3d_tiff_write_labels_ex(const char *path, const u3d_labels *l,
                                    const u3d_tiff_write_opts *opts,
                                    u3d_error *err);

/* Plane-by-plane writing (same layout, atomic): the shape, sample type
 * and the display range of the ImageJ description are fixed at open; each
 * call appends the next Z plane (C x H x W). bits: 8 or 16 for labels
 * (values must fit), 32 for float data. BigTIFF as opts->bigtiff says (0:
 * when the data exceed 3.9 GB). finish syncs and renames the file into
 * place; abort (or finish before the last plane) removes it. Both free w. */
typedef struct u3d_tiff_writer u3d_tiff_writer;
u3d_status u3d_tiff_writer_open(const char *path, int c, int d, int h, int w,
                                int bits, const double spacing[3],
                                const char *unit, double vmin, double vmax,
                                const u3d_tiff_write_opts *opts,
                                u3d_tiff_writer **out, u3d_error *err);
u3d_status u3d_tiff_writer_plane_f32(u3d_tiff_writer *w, const float *plane,
                                     u3d_error *err);
u3d_status u3d_tiff_writer_plane_u16(u3d_tiff_writer *w,
                                     const uint16_t *plane, u3d_error *err);
/* 8-bit labels, for an 8- or 16-bit label file. */
u3d_status u3d_tiff_writer_plane_u8(u3d_tiff_writer *w, const uint8_t *plane,
                                    u3d_error *err);
u3d_status u3d_tiff_writer_finish(u3d_tiff_writer *w, u3d_error *err);
void u3d_tiff_writer_abort(u3d_tiff_writer *w);

/* ---- Labels ------------------------------------------------------------ */
#define U3D_NO_IGNORE (-1)

/* Checks every value is < classes or equal to ignore_label (U3D_NO_IGNORE:
 * none), and that at least one voxel is labeled. counts (may be NULL)
 * receives `classes` voxel counts; n_ignored (may be NULL) the number of
 * ignored voxels. Errors name the first bad value and its z, y, x. */
u3d_status u3d_labels_check(const u3d_labels *l, int classes, int ignore_label,
                            size_t *counts, size_t *n_ignored, u3d_error *err);

/* U3D_ERR_SHAPE unless image and labels have the same D, H, W; the message
 * gives both shapes and names (file names, may be NULL). */
u3d_status u3d_check_image_labels(const u3d_volume *img, const char *img_name,
                                  const u3d_labels *l, const char *lab_name,
                                  u3d_error *err);

/* Simulates sparse annotation (paper, sec. 3): keeps the labels of k[0]
 * z-slices, k[1] y-slices and k[2] x-slices (orthogonal planes; a voxel is
 * kept when it lies on any of them) and sets every other voxel to
 * ignore_label. Slices are evenly spaced (centred: floor((i + 0.5) n / k))
 * or, when random != 0, drawn without repetition from `seed`. k[i] > size
 * keeps the whole axis; k[i] == 0 keeps no plane of that axis. kept (may be
 * NULL) receives the number of voxels not set to ignore. */
u3d_status u3d_labels_sparsify(u3d_labels *l, const int k[3], int random,
                               uint64_t seed, uint16_t ignore_label,
                               size_t *kept, u3d_error *err);

/* Thin boundaries from instance labels (one id per object, 0 background):
 * 1 where a voxel and one of its 6 neighbours differ in id and one of them
 * is an object — the walls between touching objects and around every
 * object, 2 voxels wide (one on each side); 0 elsewhere. The development
 * set's thin-structure volume is made this way from nuclei instances. */
u3d_status u3d_labels_boundaries(const u3d_labels *instances,
                                 u3d_labels *out, u3d_error *err);

/* ---- Annotation slices as PNG ------------------------------------------
 * Files zNNNN.png (x-y plane z=NNNN, W x H pixels), yNNNN.png (x-z plane,
 * W x D) and xNNNN.png (y-z plane, H x D) in dir: label images, 255 =
 * unlabeled. Values are taken as stored, never as colours: gray (1-16 bits)
 * as its values, palette images as their indexes, alpha 0 (or a palette
 * entry with tRNS alpha 0) as unlabeled, RGB only where R = G = B; gAMA
 * and sRGB are ignored. Builds a d,h,w label volume, 255 where nothing was
 * painted. A slice index outside the volume (or too long to be one), a
 * wrong image size (checked from the header, before decoding), a colour
 * pixel, a file that is not a regular file, or a broken PNG is an error
 * naming the file. conflicts counts voxels painted with different labels
 * on crossing slices (the later file wins). */
u3d_status u3d_labels_from_png_slices(const char *dir, int d, int h, int w,
                                      int *nslices, size_t *conflicts,
                                      u3d_labels *out, u3d_error *err);
/* The fully annotated slices of l (those without an `ignore` voxel, as
 * sparsify keeps them) as the PNG slices u3d_labels_from_png_slices
 * reads: DIR/zNNNN.png, yNNNN.png, xNNNN.png, 8-bit gray label values
 * (labels must be < 255). DIR is created if missing. */
u3d_status u3d_labels_to_png_slices(const u3d_labels *l, uint16_t ignore,
                                    const char *dir, int *nslices,
                                    u3d_error *err);
/* An 8-bit gray PNG, written atomically. */
u3d_status u3d_png_write_gray(const char *path, int w, int h,
                              const unsigned char *px, u3d_error *err);

/* ---- Normalization -----------------------------------------------------
 * Per channel x' = (x - a[c]) / b[c], so a model can store a and b and apply
 * them at inference. z-score: a = mean, b = std (population). Percentile:
 * a = p_lo, b = p_hi - p_lo (maps [p_lo, p_hi] to [0, 1], no clipping;
 * percentiles interpolate linearly between ranks like numpy's default).
 * A constant channel gets b = 1. */
#define U3D_NORM_MAX_C 64

typedef enum u3d_norm_mode {
    U3D_NORM_NONE = 0,
    U3D_NORM_ZSCORE = 1,
    U3D_NORM_PERCENTILE = 2
} u3d_norm_mode;

typedef struct u3d_norm_params {
    int c;
    int mode; /* u3d_norm_mode */
    float a[U3D_NORM_MAX_C], b[U3D_NORM_MAX_C];
} u3d_norm_params;

/* Statistics over the whole volume, or over the voxels where mask (d*h*w
 * bytes, may be NULL) is non-zero. plo/phi: percentiles in [0, 100],
 * plo < phi, used by U3D_NORM_PERCENTILE only (e.g. 1 and 99.8). */
u3d_status u3d_norm_compute(const u3d_volume *v, const uint8_t *mask,
                            u3d_norm_mode mode, double plo, double phi,
                            u3d_norm_params *p, u3d_error *err);
/* Reads plane z (0 <= z < d) of a C x D x H x W volume into dst (C x H x
 * W floats). */
typedef u3d_status (*u3d_plane_read_fn)(void *user, int z, float *dst,
                                        u3d_error *err);
/* u3d_norm_compute (no mask) for a volume read plane by plane, in two
 * passes: the same parameters without the volume in memory (z-score:
 * identical sums; percentiles: exact order statistics). */
u3d_status u3d_norm_compute_planes(int c, int d, int h, int w,
                                   u3d_plane_read_fn read, void *user,
                                   u3d_norm_mode mode, double plo, double phi,
                                   u3d_norm_params *p, u3d_error *err);
/* Channel c's statistics over the whole volume, for reports (unet3d
 * plan): out = min, percentile plo, percentile phi (as u3d_norm_compute
 * finds them), mean, std (population), max. */
u3d_status u3d_norm_channel_stats(const u3d_volume *v, int c, double plo,
                                  double phi, double out[6], u3d_error *err);
/* Applies p in place; p->c must equal v->c. */
u3d_status u3d_norm_apply(u3d_volume *v, const u3d_norm_params *p,
                          u3d_error *err);

#ifdef __cplusplus
}
#endif
#endif
