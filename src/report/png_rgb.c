/* RGB images to PNG files (png_rgb.h). */
#include "report/png_rgb.h"
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include "core/files.h"

/* libpng reports errors by longjmp; keep the jump's scope small. */
static int png_out(FILE *f, const unsigned char *rgb, int w, int h)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

u3d_status u3d_png_write_rgb(const char *path, const unsigned char *rgb,
                             int w, int h, u3d_error *err)
{
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, path, err));
    FILE *f = u3d_outfile_stream(&o, err);
    if (!f || png_out(f, rgb, w, h)) {
        u3d_outfile_abort(&o);
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot write the PNG: %s",
                          path, strerror(errno));
    }
    return u3d_outfile_commit(&o, err);
}

