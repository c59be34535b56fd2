/* An RGB image to a PNG file, written to a temporary file renamed at the
 * end (no partial output): overviews and charts. Internal. */
#ifndef UNET3D_PNG_RGB_H
#define UNET3D_PNG_RGB_H
#include "unet3d/error.h"

/* rgb: h rows of w pixels, 3 bytes each. */
u3d_status u3d_png_write_rgb(const char *path, const unsigned char *rgb,
                             int w, int h, u3d_error *err);

#endif
