/* Sparse annotations painted as PNG slices: zNNNN.png (an x-y plane),
 * yNNNN.png (x-z) and xNNNN.png (y-z); 8-bit gray label images where 255
 * marks unlabeled pixels, as painting tools export them. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/volume.h"

/* Reads an 8-bit gray PNG into a malloc'd buffer. */
static u3d_status read_gray_png(const char *path, int *w, int *h,
                                unsigned char **out, u3d_error *err)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    *out = NULL;
    if (!png_image_begin_read_from_file(&im, path))
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: not a readable PNG (%s)",
                          path, im.message);
    if (im.format & (PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)) {
        /* color-mapped gray is fine: libpng converts; real color is not */
        if ((im.format & PNG_FORMAT_FLAG_COLOR) &&
            !(im.format & PNG_FORMAT_FLAG_COLORMAP)) {
            png_image_free(&im);
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: a color PNG; annotation slices must be "
                              "8-bit gray label images (255 = unlabeled)",
                              path);
        }
    }
    im.format = PNG_FORMAT_GRAY;
    size_t n = (size_t)im.width * im.height;
    *out = malloc(n ? n : 1);
    if (!*out) {
        png_image_free(&im);
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    if (!png_image_finish_read(&im, NULL, *out, 0, NULL)) {
        free(*out);
        *out = NULL;
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: cannot decode (%s)", path,
                          im.message);
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return U3D_OK;
}

static int parse_name(const char *name, char *axis, int *index)
{
    size_t n = strlen(name);
    if (n < 6 || strcmp(name + n - 4, ".png") || !strchr("zyx", name[0]))
        return 0;
    for (size_t i = 1; i < n - 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    *axis = name[0];
    *index = atoi(name + 1);
    return 1;
}

u3d_status u3d_labels_from_png_slices(const char *dir, int d, int h, int w,
                                      int *nslices, size_t *conflicts,
                                      u3d_labels *out, u3d_error *err)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot open the folder: %m",
                          dir);
    u3d_status st = u3d_labels_alloc(d, h, w, out, err);
    if (st) {
        closedir(dh);
        return st;
    }
    size_t hw = (size_t)h * w;
    for (size_t i = 0; i < (size_t)d * hw; i++)
        out->data[i] = 255;
    *nslices = 0;
    *conflicts = 0;
    struct dirent *de;
    while (!st && (de = readdir(dh))) {
        char axis;
        int idx, pw = 0, ph = 0;
        if (!parse_name(de->d_name, &axis, &idx))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        int lim = axis == 'z' ? d : axis == 'y' ? h : w;
        int ww = axis == 'x' ? h : w, hh = axis == 'z' ? h : d;
        if (idx >= lim) {
            st = u3d_seterr(err, U3D_ERR_INVALID_ARG,
                            "%s: %c slice %d is outside the volume (%c has %d "
                            "slices, 0..%d)",
                            path, axis, idx, axis, lim, lim - 1);
            break;
        }
        unsigned char *px;
        st = read_gray_png(path, &pw, &ph, &px, err);
        if (st)
            break;
        if (pw != ww || ph != hh) {
            free(px);
            st = u3d_seterr(err, U3D_ERR_SHAPE,
                            "%s: %dx%d pixels; a %c slice of this %dx%dx%d "
                            "(WxHxD) volume must be %dx%d",
                            path, pw, ph, axis, w, h, d, ww, hh);
            break;
        }
        for (int r = 0; r < hh; r++)
            for (int c = 0; c < ww; c++) {
                unsigned char v = px[(size_t)r * ww + c];
                if (v == 255)
                    continue;
                size_t i = axis == 'z'   ? (size_t)idx * hw + (size_t)r * w + c
                           : axis == 'y' ? (size_t)r * hw + (size_t)idx * w + c
                                         : (size_t)r * hw + (size_t)c * w + idx;
                if (out->data[i] != 255 && out->data[i] != v)
                    (*conflicts)++;
                out->data[i] = v;
            }
        free(px);
        (*nslices)++;
    }
    closedir(dh);
    if (!st && *nslices == 0)
        st = u3d_seterr(err, U3D_ERR_INVALID_ARG,
                        "%s: no annotation slices (files named like z0042.png, "
                        "y0100.png, x0031.png)",
                        dir);
    if (st)
        u3d_labels_free(out);
    return st;
}

u3d_status u3d_png_write_gray(const char *path, int w, int h,
                              const unsigned char *px, u3d_error *err)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = PNG_FORMAT_GRAY;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!png_image_write_to_file(&im, tmp, 0, px, 0, NULL)) {
        remove(tmp);
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot write PNG (%s)", path,
                          im.message);
    }
    if (rename(tmp, path)) {
        remove(tmp);
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot write: %m", path);
    }
    return U3D_OK;
}
