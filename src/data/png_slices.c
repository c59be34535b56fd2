/* Sparse annotations painted as PNG slices: zNNNN.png (an x-y plane),
 * yNNNN.png (x-z) and xNNNN.png (y-z); gray or indexed label images where
 * 255 (or transparency) marks unlabeled pixels, as painting tools export
 * them. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/volume.h"
#include "core/files.h"

/* Label values are values, never colours: the reader applies no libpng
 * transformation that changes a stored value (no gamma from gAMA/sRGB, no
 * palette-to-RGB, no 16-to-8-bit scaling, no blending), so a slice painted
 * as 0/1/2/100 reads back as 0/1/2/100. Accepted:
 *  - gray, 1 to 16 bits: the stored values;
 *  - palette (indexed) images: the indexes, which painting tools store as
 *    labels; an index whose tRNS alpha is 0 is unannotated (and so is the
 *    one gray value or colour a tRNS chunk marks transparent);
 *  - gray+alpha: alpha 0 is unannotated, any other alpha takes the gray;
 *  - RGB(A) only where R = G = B on every pixel (with the same alpha rule);
 *    anything else is refused, naming the first pixel that is a colour. */
#define PNG_UNLABELED 255

typedef struct png_reader {
    FILE *f;
    png_structp png;
    png_infop info;
    const char *path;
    unsigned long w, h; /* from the IHDR chunk */
    char msg[200];
} png_reader;

static void png_fail(png_structp png, png_const_charp msg)
{
    png_reader *r = png_get_error_ptr(png);
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg)
{
    (void)png; /* benign chunk warnings are not the user's problem */
    (void)msg;
}

/* Opens path as a regular file (a FIFO or device would block or never
 * end) and checks the PNG signature. */
static u3d_status png_open(png_reader *r, u3d_error *err)
{
    unsigned char sig[8];
    r->f = u3d_infile_fopen(r->path, err);
    if (!r->f)
        return U3D_ERR_IO;
    if (fread(sig, 1, 8, r->f) != 8 || png_sig_cmp(sig, 0, 8))
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: not a PNG file", r->path);
    /* the size from the IHDR chunk that must come first, before libpng
     * reads (or decodes) anything: a crafted header costs nothing */
    unsigned char ihdr[16];
    if (fread(ihdr, 1, 16, r->f) != 16 || memcmp(ihdr + 4, "IHDR", 4))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s: broken PNG (no IHDR chunk first)", r->path);
    r->w = (unsigned long)ihdr[8] << 24 | (unsigned long)ihdr[9] << 16 |
           (unsigned long)ihdr[10] << 8 | ihdr[11];
    r->h = (unsigned long)ihdr[12] << 24 | (unsigned long)ihdr[13] << 16 |
           (unsigned long)ihdr[14] << 8 | ihdr[15];
    if (fseek(r->f, 8, SEEK_SET))
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot read: %m", r->path);
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, png_fail,
                                    png_warn);
    r->info = r->png ? png_create_info_struct(r->png) : NULL;
    if (!r->info)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    return U3D_OK;
}

static void png_close(png_reader *r)
{
    if (r->png)
        png_destroy_read_struct(&r->png, r->info ? &r->info : NULL, NULL);
    if (r->f)
        fclose(r->f);
}

/* One decoded pixel to a label: value, or PNG_UNLABELED for transparent;
 * -1 for a colour pixel. c: channels of the decoded row, 16-bit samples. */
static int pixel_label(const png_uint_16 *px, int c, int has_alpha,
                       int is_palette, const unsigned char *trns, int ntrns)
{
    if (is_palette)
        return px[0] < ntrns && trns[px[0]] == 0 ? PNG_UNLABELED : px[0];
    if (has_alpha && px[c - 1] == 0)
        return PNG_UNLABELED;
    if (c >= 3 && (px[1] != px[0] || px[2] != px[0]))
        return -1;
    return px[0];
}

/* Decodes r's image (header already read and checked) into labels. */
static u3d_status png_decode(png_reader *r, int w, int h, uint16_t *out,
                             u3d_error *err)
{
    png_structp png = r->png;
    png_infop info = r->info;
    int type = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    unsigned char *trns = NULL;
    int ntrns = 0;
    png_color_16p tc = NULL; /* gray or RGB: the one transparent value */
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_get_tRNS(png, info, &trns, &ntrns, &tc);
    if (type != PNG_COLOR_TYPE_GRAY && type != PNG_COLOR_TYPE_RGB)
        tc = NULL;
    if (depth < 8)
        png_set_packing(png); /* one value per byte, not scaled */
    if (depth == 16)
        png_set_swap(png); /* host-order 16-bit samples */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int wide = depth == 16;
    unsigned char *img = malloc(rowbytes * (size_t)h);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    png_uint_16 px[4];
    u3d_status st = U3D_OK;
    if (!img || !rows) {
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        goto done;
    }
    for (int y = 0; y < h; y++)
        rows[y] = img + rowbytes * (size_t)y;
    /* a broken stream jumps back here, so the buffers are freed */
    if (setjmp(png_jmpbuf(png))) {
        st = u3d_seterr(err, U3D_ERR_FORMAT, "%s: broken PNG (%s)", r->path,
                        r->msg);
        goto done;
    }
    png_read_image(png, rows);
    for (int y = 0; y < h && !st; y++)
        for (int x = 0; x < w; x++) {
            for (int k = 0; k < c; k++) {
                size_t i = (size_t)x * c + k;
                px[k] = wide ? ((png_uint_16 *)rows[y])[i] : rows[y][i];
            }
            int v = pixel_label(px, c, type & PNG_COLOR_MASK_ALPHA,
                                type == PNG_COLOR_TYPE_PALETTE, trns, ntrns);
            if (tc && px[0] == (c == 1 ? tc->gray : tc->red) &&
                (c == 1 || (px[1] == tc->green && px[2] == tc->blue)))
                v = PNG_UNLABELED; /* the tRNS colour: transparent */
            if (v < 0) {
                st = u3d_seterr(err, U3D_ERR_FORMAT,
                                "%s: pixel (x %d, y %d) is a colour (R, G, B "
                                "differ); labels must be gray values or "
                                "palette indexes", r->path, x, y);
                break;
            }
            out[(size_t)y * w + x] = (uint16_t)v;
        }
done:
    free(rows);
    free(img);
    return st;
}

/* Reads an annotation slice of exactly w x h pixels into out (w*h labels),
 * checking the size before anything is decoded. */
static u3d_status read_label_png(const char *path, int w, int h,
                                 uint16_t *out, u3d_error *err)
{
    png_reader r = {.path = path};
    u3d_status st = png_open(&r, err);
    if (st)
        goto done;
    if (r.w != (unsigned long)w || r.h != (unsigned long)h) {
        st = u3d_seterr(err, U3D_ERR_SHAPE, "%s: %lux%lu pixels, expected %dx%d",
                        path, r.w, r.h, w, h);
        goto done;
    }
    if (setjmp(png_jmpbuf(r.png))) {
        st = u3d_seterr(err, U3D_ERR_FORMAT, "%s: broken PNG (%s)", path,
                        r.msg);
        goto done;
    }
    png_set_user_limits(r.png, 1u << 24, 1u << 24);
    /* ancillary chunks other than tRNS (text, profiles, gamma) are never
     * needed: skipped unread, so a crafted one cannot make libpng allocate
     * or inflate gigabytes (a 106-byte zTXt claiming 2 GB did) */
    static const png_byte skip[] =
        "zTXt\0tEXt\0iTXt\0iCCP\0sPLT\0eXIf\0gAMA\0sRGB\0cHRM\0bKGD\0"
        "hIST\0pHYs\0sBIT\0tIME\0oFFs\0pCAL\0sCAL";
    png_set_keep_unknown_chunks(r.png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(r.png, PNG_HANDLE_CHUNK_NEVER, skip,
                                (int)(sizeof skip / 5));
    png_set_chunk_malloc_max(r.png, 8u << 20);
    png_set_chunk_cache_max(r.png, 1000);
    png_init_io(r.png, r.f);
    png_set_sig_bytes(r.png, 8);
    png_read_info(r.png, r.info);
    png_uint_32 pw = png_get_image_width(r.png, r.info),
                ph = png_get_image_height(r.png, r.info);
    if (pw != (png_uint_32)w || ph != (png_uint_32)h) {
        st = u3d_seterr(err, U3D_ERR_SHAPE, "%s: %lux%lu pixels, expected %dx%d",
                        path, (unsigned long)pw, (unsigned long)ph, w, h);
        goto done;
    }
    st = png_decode(&r, w, h, out, err);
done:
    png_close(&r);
    return st;
}

/* zNNNN.png: axis and index, digits only, at most 9 of them (so the index
 * fits an int); 0 for names that are not annotation slices, -1 for a slice
 * name whose index is too long. */
static int parse_name(const char *name, char *axis, int *index)
{
    size_t n = strlen(name);
    if (n < 6 || strcmp(name + n - 4, ".png") || !name[0] ||
        !strchr("zyx", name[0]))
        return 0;
    long v = 0;
    for (size_t i = 1; i < n - 4; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        if (i > 9) {
            *axis = name[0];
            return -1;
        }
        v = v * 10 + (name[i] - '0');
    }
    *axis = name[0];
    *index = (int)v;
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
        char axis = 0;
        int idx = 0;
        int kind = parse_name(de->d_name, &axis, &idx);
        if (!kind)
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        int lim = axis == 'z' ? d : axis == 'y' ? h : w;
        int ww = axis == 'x' ? h : w, hh = axis == 'z' ? h : d;
        if (kind < 0 || idx >= lim) {
            st = u3d_seterr(err, U3D_ERR_INVALID_ARG,
                            "%s: %c slice %.*s is outside the volume (%c has "
                            "%d slices, 0..%d)",
                            path, axis, (int)strlen(de->d_name) - 5,
                            de->d_name + 1, axis, lim, lim - 1);
            break;
        }
        uint16_t *px = malloc((size_t)ww * hh * sizeof *px);
        if (!px) {
            st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
            break;
        }
        st = read_label_png(path, ww, hh, px, err);
        if (st) {
            free(px);
            break;
        }
        for (int r = 0; r < hh; r++)
            for (int c = 0; c < ww; c++) {
                uint16_t v = px[(size_t)r * ww + c];
                if (v == PNG_UNLABELED)
                    continue;
                size_t i = axis == 'z'   ? (size_t)idx * hw + (size_t)r * w + c
                           : axis == 'y' ? (size_t)r * hw + (size_t)idx * w + c
                                         : (size_t)r * hw + (size_t)c * w + idx;
                if (out->data[i] != PNG_UNLABELED && out->data[i] != v)
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
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, path, err));
    FILE *f = u3d_outfile_stream(&o, err);
    if (!f || !png_image_write_to_stdio(&im, f, 0, px, 0, NULL)) {
        u3d_outfile_abort(&o);
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot write PNG (%s)", path,
                          im.message);
    }
    return u3d_outfile_commit(&o, err);
}

/* Slice idx of l along axis as an image of ww x hh pixels (the layout the
 * reader above uses): px gets its labels; returns 0 when a pixel is
 * `ignore` (the slice is not fully annotated). */
static int slice_get(const u3d_labels *l, char axis, int idx, uint16_t ignore,
                     unsigned char *px)
{
    size_t hw = (size_t)l->h * l->w;
    int ww = axis == 'x' ? l->h : l->w, hh = axis == 'z' ? l->h : l->d;
    for (int r = 0; r < hh; r++)
        for (int c = 0; c < ww; c++) {
            size_t i = axis == 'z'   ? (size_t)idx * hw + (size_t)r * l->w + c
                       : axis == 'y' ? (size_t)r * hw + (size_t)idx * l->w + c
                                     : (size_t)r * hw + (size_t)c * l->w + idx;
            if (l->data[i] == ignore)
                return 0;
            px[(size_t)r * ww + c] = (unsigned char)l->data[i];
        }
    return 1;
}

static u3d_status slice_write(const u3d_labels *l, char axis, int idx,
                              const char *dir, const unsigned char *px,
                              u3d_error *err)
{
    int ww = axis == 'x' ? l->h : l->w, hh = axis == 'z' ? l->h : l->d;
    char path[4200];
    snprintf(path, sizeof path, "%s/%c%04d.png", dir, axis, idx);
    return u3d_png_write_gray(path, ww, hh, px, err);
}

u3d_status u3d_labels_to_png_slices(const u3d_labels *l, uint16_t ignore,
                                    const char *dir, int *nslices,
                                    u3d_error *err)
{
    *nslices = 0;
    size_t n = (size_t)l->d * l->h * l->w;
    for (size_t i = 0; i < n; i++)
        if (l->data[i] != ignore && l->data[i] >= PNG_UNLABELED)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "%s: label %u does not fit an 8-bit PNG slice "
                              "(at most %d; %d marks unlabeled pixels)",
                              dir, l->data[i], PNG_UNLABELED - 1,
                              PNG_UNLABELED);
    struct stat sb;
    if (mkdir(dir, 0755) && (stat(dir, &sb) || !S_ISDIR(sb.st_mode)))
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot create the folder: %m",
                          dir);
    int big = l->d > l->h ? l->d : l->h;
    big = big > l->w ? big : l->w;
    unsigned char *px = malloc((size_t)big * big);
    if (!px)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    static const char axes[3] = {'z', 'y', 'x'};
    u3d_status st = U3D_OK;
    for (int a = 0; a < 3 && !st; a++) {
        int lim = a == 0 ? l->d : a == 1 ? l->h : l->w;
        for (int k = 0; k < lim && !st; k++)
            if (slice_get(l, axes[a], k, ignore, px)) {
                st = slice_write(l, axes[a], k, dir, px, err);
                (*nslices)++;
            }
    }
    free(px);
    return st;
}
