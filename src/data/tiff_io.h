/* Internal helpers shared by the TIFF reader and writer: libtiff opened on
 * a file descriptor or a memory buffer with per-handle error capture (no
 * global handlers), ImageJ description parsing, overflow-safe sizes. */
#ifndef UNET3D_DATA_TIFF_IO_H
#define UNET3D_DATA_TIFF_IO_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <tiffio.h>
#include "unet3d/error.h"

/* Where the bytes come from: an open file (fd >= 0) or memory. */
typedef struct u3d_tsrc {
    int fd;
    const unsigned char *mem;
    uint64_t size, pos;
} u3d_tsrc;

/* libtiff's first error message for one handle, on one line. */
typedef struct u3d_tmsg {
    char first[512];
    int count;
} u3d_tmsg;

/* Opens src with a TIFFOpen mode ("rm" to read; "w"/"w8" to write, fd
 * only); NULL on failure with msg filled. TIFFClose leaves the fd open. */
TIFF *u3d_tiff_open_src(u3d_tsrc *src, const char *name, const char *mode,
                        u3d_tmsg *msg, size_t max_alloc);
/* Reads len bytes at off from src; 0 on success. */
int u3d_tsrc_pread(u3d_tsrc *src, uint64_t off, void *buf, size_t len);

/* " (libtiff: ...)" when libtiff said something, else ""; a leading
 * "name: " in libtiff's text is dropped (the caller names the file). */
const char *u3d_tmsg_suffix(const u3d_tmsg *m, const char *name, char *buf,
                            size_t len);
/* Sets err to "name: what (libtiff: ...)" on one line, what formatted
 * from fmt and ap, m's text as in u3d_tmsg_suffix; returns code. The
 * reader's and the writer's failures all end here. */
u3d_status u3d_tmsg_fail(u3d_error *err, u3d_status code, const char *name,
                         const u3d_tmsg *m, const char *fmt, va_list ap);

#if defined(__GNUC__)
#define U3D_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define U3D_PRINTF(a, b)
#endif

/* "12.3 MB", "4.1 GB": sizes in messages. */
const char *u3d_human_bytes(double bytes, char *buf, size_t len);

typedef struct u3d_imagej {
    int present; /* description starts with "ImageJ=" */
    long images, channels, slices, frames; /* 0 when absent */
    double spacing;                        /* 0 when absent */
    char unit[16];
} u3d_imagej;

/* Parses an ImageJ description; 0 on success, -1 with a message in why
 * (e.g. "channels=abc is not a positive integer"). */
int u3d_imagej_parse(const char *desc, u3d_imagej *ij, char *why, size_t len);
/* Canonical unit spelling: "micron", "microns", "\u00B5m", "µm" -> "um". */
void u3d_unit_canon(const char *in, char out[16]);

/* a*b; 0 when it overflows (callers reject zero sizes separately). */
size_t u3d_mul_sz(size_t a, size_t b);
/* The limit a volume's data may take: max_bytes or physical memory. */
size_t u3d_mem_limit(size_t max_bytes);

#endif
