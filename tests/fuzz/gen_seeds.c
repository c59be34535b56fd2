/* Writes the fuzzers' seed corpora: gen_seeds DIR [--big]
 *   DIR/fuzz_tiff_read/   TIFFs: 8/16/32-bit integer and float, ImageJ
 *                         hyperstacks (library writer), tiled, strips,
 *                         LZW/deflate/PackBits, predictor, big-endian,
 *                         BigTIFF, planar-separate RGB, signed, palette
 *   DIR/fuzz_png_slices/  PNGs: gray 1/8/16-bit, palette with tRNS,
 *                         gray+alpha, RGB(A) gray and colour, interlaced
 *   DIR/fuzz_model/       .u3d models of small architectures (with and
 *                         without momentum) and a bare checkpoint
 *   DIR/fuzz_npy/         .npy: f4/i4/f8/i8/u1/u2, 0 to 5 axes, format
 *                         1.0 and 2.0
 *   DIR/fuzz_nifti/       NIfTI-1 (library writer): float and 8/16-bit
 *                         labels, 2 channels, .nii and .nii.gz, with and
 *                         without an input geometry
 *   DIR/fuzz_zarr/        version byte + metadata length + .zarray or
 *                         zarr.json + one chunk: raw, zlib, gzip, zstd,
 *                         blosc, crc32c, big-endian, '/' and '.' keys
 *   DIR/fuzz_hdf5/        HDF5 (libhdf5, latest format for small files):
 *                         our writer (chunked, gzip), contiguous and
 *                         compact 3D u8/i16/f64, 4D (C,Z,Y,X) float with
 *                         element_size_um, two datasets, a group path
 *   DIR/fuzz_tuning/      tuned files (u3d_tune_write) for the harness's
 *                         key: valid, empty, cut short, another device
 * Every file stays below 4 KB. --big writes only the models that are
 * larger (a 2-level net, 5 KB, and the "tiny" preset, 289 KB): tools/fuzz.sh
 * adds them to the working copy of the model corpus, never to the repo. tools/fuzz.sh --seeds rewrites
 * tests/fuzz/corpus with this program. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <blosc.h>
#include <hdf5.h>
#include <zlib.h>
#include <zstd.h>
#include "unet3d/volume_io.h"
#include "golden/npy.h"
#include "unet3d/unet3d.h"
#include "fuzz_tuning.h"

static const char *root;
static int failed;

static void die(const char *what, const char *path)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", path, what);
    failed = 1;
}

static const char *out_path(const char *sub, const char *name)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, sub);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", root, sub, name);
    return p;
}

static void check(u3d_status st, const u3d_error *err)
{
    if (st) {
        fprintf(stderr, "gen_seeds: %s\n", err->msg);
        failed = 1;
    }
}

/* ---- TIFF -------------------------------------------------------------- */

typedef struct tif_spec {
    const char *name;
    const char *mode;  /* "w" little-endian, "wb" big-endian, "w8" BigTIFF */
    int w, h, pages, spp, bps, fmt; /* fmt: SAMPLEFORMAT_* */
    int comp, predictor;            /* COMPRESSION_*, PREDICTOR_* or 0 */
    int tile;                       /* tile edge (multiple of 16) or 0 */
    int separate;                   /* PLANARCONFIG_SEPARATE */
    int photometric;                /* 0: min-is-black (RGB when spp 3) */
    const char *desc;               /* ImageDescription or NULL */
} tif_spec;

static double sample_value(const tif_spec *s, int p, int k, int y, int x)
{
    return (double)((p * 7 + k * 3 + y * 5 + x) % 50) - (s->fmt == SAMPLEFORMAT_INT ? 20 : 0);
}

static void put_sample(const tif_spec *s, unsigned char *dst, double v)
{
    int b = s->bps / 8;
    if (s->fmt == SAMPLEFORMAT_IEEEFP) {
        if (b == 4) {
            float f = (float)v / 7;
            memcpy(dst, &f, 4);
        } else {
            double d = v / 7;
            memcpy(dst, &d, 8);
        }
    } else if (b == 1) {
        dst[0] = (unsigned char)(signed char)v;
    } else if (b == 2) {
        short t = (short)(v * 300);
        memcpy(dst, &t, 2);
    } else {
        int t = (int)(v * 70000);
        memcpy(dst, &t, 4);
    }
}

static void write_tif(const tif_spec *s)
{
    const char *path = out_path("fuzz_tiff_read", s->name);
    TIFF *t = TIFFOpen(path, s->mode);
    if (!t) {
        die("cannot create", path);
        return;
    }
    int sep = s->separate && s->spp > 1;
    int bsz = s->bps / 8;
    for (int p = 0; p < s->pages; p++) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, s->w);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, s->h);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, s->bps);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, s->spp);
        TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, s->fmt);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC,
                     s->photometric ? s->photometric
                     : s->spp == 3  ? PHOTOMETRIC_RGB
                                    : PHOTOMETRIC_MINISBLACK);
        if (s->photometric == PHOTOMETRIC_PALETTE) {
            uint16_t map[3][256];
            for (int i = 0; i < 256; i++)
                map[0][i] = map[1][i] = map[2][i] = (uint16_t)(i * 257);
            TIFFSetField(t, TIFFTAG_COLORMAP, map[0], map[1], map[2]);
        }
        if (s->spp == 2 || s->spp == 4) {
            uint16_t extra = EXTRASAMPLE_UNSPECIFIED;
            TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
        }
        TIFFSetField(t, TIFFTAG_PLANARCONFIG,
                     sep ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, s->comp ? s->comp : COMPRESSION_NONE);
        if (s->predictor)
            TIFFSetField(t, TIFFTAG_PREDICTOR, s->predictor);
        TIFFSetField(t, TIFFTAG_XRESOLUTION, 2.0);
        TIFFSetField(t, TIFFTAG_YRESOLUTION, 2.0);
        TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
        if (s->desc && p == 0)
            TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, s->desc);
        if (s->pages > 1) {
            TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
            TIFFSetField(t, TIFFTAG_PAGENUMBER, p, s->pages);
        }
        int nplanes = sep ? s->spp : 1, per = sep ? 1 : s->spp;
        if (s->tile) {
            TIFFSetField(t, TIFFTAG_TILEWIDTH, s->tile);
            TIFFSetField(t, TIFFTAG_TILELENGTH, s->tile);
            size_t tb = (size_t)s->tile * s->tile * per * bsz;
            unsigned char *buf = calloc(1, tb);
            for (int pl = 0; pl < nplanes; pl++)
                for (int ty = 0; ty < s->h; ty += s->tile)
                    for (int tx = 0; tx < s->w; tx += s->tile) {
                        memset(buf, 0, tb);
                        for (int y = 0; y < s->tile; y++)
                            for (int x = 0; x < s->tile; x++)
                                for (int k = 0; k < per; k++)
                                    put_sample(s, buf + (((size_t)y * s->tile + x) * per + k) * bsz,
                                               sample_value(s, p, pl + k, ty + y, tx + x));
                        if (TIFFWriteTile(t, buf, (uint32_t)tx, (uint32_t)ty, 0,
                                          (uint16_t)pl) < 0)
                            die("TIFFWriteTile failed", path);
                    }
            free(buf);
        } else {
            TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 3); /* several strips */
            size_t rb = (size_t)s->w * per * bsz;
            unsigned char *row = malloc(rb);
            for (int pl = 0; pl < nplanes; pl++)
                for (int y = 0; y < s->h; y++) {
                    for (int x = 0; x < s->w; x++)
                        for (int k = 0; k < per; k++)
                            put_sample(s, row + ((size_t)x * per + k) * bsz,
                                       sample_value(s, p, pl + k, y, x));
                    if (TIFFWriteScanline(t, row, (uint32_t)y, (uint16_t)pl) < 0)
                        die("TIFFWriteScanline failed", path);
                }
            free(row);
        }
        if (!TIFFWriteDirectory(t))
            die("TIFFWriteDirectory failed", path);
    }
    TIFFClose(t);
}

static void tiff_seeds(void)
{
    const int U = SAMPLEFORMAT_UINT, I = SAMPLEFORMAT_INT, F = SAMPLEFORMAT_IEEEFP;
    const tif_spec specs[] = {
        {"u8_strips.tif", "w", 9, 7, 3, 1, 8, U, 0, 0, 0, 0, 0, NULL},
        {"u16_lzw_pred.tif", "w", 8, 6, 2, 1, 16, U, COMPRESSION_LZW,
         PREDICTOR_HORIZONTAL, 0, 0, 0, NULL},
        {"i16_bigendian.tif", "wb", 6, 5, 2, 1, 16, I, 0, 0, 0, 0, 0, NULL},
        {"f32_deflate_fpred.tif", "w", 8, 4, 2, 1, 32, F, COMPRESSION_ADOBE_DEFLATE,
         PREDICTOR_FLOATINGPOINT, 0, 0, 0, NULL},
        {"f64_bigendian.tif", "wb", 4, 3, 2, 1, 64, F, 0, 0, 0, 0, 0, NULL},
        {"u8_tiled_packbits.tif", "w", 20, 18, 2, 1, 8, U, COMPRESSION_PACKBITS,
         0, 16, 0, 0, NULL},
        {"u16_bigtiff.tif", "w8", 6, 5, 2, 1, 16, U, 0, 0, 0, 0, 0, NULL},
        {"f32_bigtiff_be_tiled.tif", "w8b", 17, 16, 1, 1, 32, F, COMPRESSION_ADOBE_DEFLATE,
         0, 16, 0, 0, NULL},
        {"rgb8_separate.tif", "w", 5, 4, 2, 3, 8, U, 0, 0, 0, 1, 0, NULL},
        {"i32_2ch_contig.tif", "w", 4, 4, 2, 2, 32, I, 0, 0, 0, 0, 0, NULL},
        {"u8_palette.tif", "w", 6, 4, 1, 1, 8, U, 0, 0, 0, 0, PHOTOMETRIC_PALETTE,
         NULL},
        {"u8_imagej_2ch.tif", "w", 5, 4, 6, 1, 8, U, 0, 0, 0, 0, 0,
         "ImageJ=1.53t\nimages=6\nchannels=2\nslices=3\nhyperstack=true\n"
         "mode=composite\nunit=micron\nspacing=2.5\nloop=false\n"},
        {"u16_imagej_frames.tif", "w", 4, 3, 4, 1, 16, U, 0, 0, 0, 0, 0,
         "ImageJ=1.53t\nimages=4\nslices=2\nframes=2\nunit=um\nspacing=1.5\n"},
        {"u8_imagej_contig.tif", "w", 4, 4, 1, 1, 8, U, 0, 0, 0, 0, 0,
         "ImageJ=1.53t\nimages=3\nslices=3\nunit=um\nspacing=4\nloop=false\n"},
    };
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++)
        write_tif(&specs[i]);
    /* ImageJ "contiguous" stack: one directory, the other planes raw
     * after page 0's data (what ImageJ writes past 4 GB); images=3 above
     * has only page 0, so append two more planes to it */
    {
        const char *path = out_path("fuzz_tiff_read", "u8_imagej_contig.tif");
        FILE *f = fopen(path, "ab");
        unsigned char px[32];
        for (int i = 0; i < 32; i++)
            px[i] = (unsigned char)(i * 7);
        if (!f || fwrite(px, 1, 32, f) != 32 || fclose(f))
            die("cannot append", path);
    }
    /* the library's own writer: ImageJ hyperstack float, labels */
    u3d_error err;
    u3d_volume v;
    check(u3d_volume_alloc(2, 3, 5, 4, &v, &err), &err);
    if (v.data) {
        for (size_t i = 0; i < (size_t)2 * 3 * 5 * 4; i++)
            v.data[i] = (float)sin((double)i) * 3;
        v.spacing[0] = 2, v.spacing[1] = v.spacing[2] = 0.5;
        snprintf(v.unit, sizeof v.unit, "um");
        u3d_tiff_write_opts o = {1, 6, -1};
        check(u3d_tiff_write_volume_ex(out_path("fuzz_tiff_read", "lib_f32_2ch_zlib.tif"),
                                       &v, &o, &err), &err);
        o.compress = 0;
        o.bigtiff = 1;
        check(u3d_tiff_write_volume_ex(out_path("fuzz_tiff_read", "lib_f32_2ch_bigtiff.tif"),
                                       &v, &o, &err), &err);
        u3d_volume_free(&v);
    }
    u3d_labels l;
    check(u3d_labels_alloc(3, 6, 5, &l, &err), &err);
    if (l.data) {
        for (size_t i = 0; i < (size_t)3 * 6 * 5; i++)
            l.data[i] = i % 7 == 0 ? 255 : (uint16_t)(i % 3);
        check(u3d_tiff_write_labels(out_path("fuzz_tiff_read", "lib_labels_u8.tif"), &l,
                                    &err), &err);
        l.data[5] = 300; /* uint16 */
        check(u3d_tiff_write_labels(out_path("fuzz_tiff_read", "lib_labels_u16.tif"), &l,
                                    &err), &err);
        u3d_labels_free(&l);
    }
}

/* ---- PNG --------------------------------------------------------------- */

static void write_png(const char *name, int w, int h, int type, int depth,
                      int interlace, int ntrns)
{
    const char *path = out_path("fuzz_png_slices", name);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!f || !info || setjmp(png_jmpbuf(png))) {
        die("cannot write PNG", path);
        if (png)
            png_destroy_write_struct(&png, info ? &info : NULL);
        if (f)
            fclose(f);
        return;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        unsigned char trns[256];
        for (int i = 0; i < 256; i++) {
            pal[i].red = pal[i].green = pal[i].blue = (png_byte)i;
            trns[i] = i == 3 ? 0 : 255;
        }
        png_set_PLTE(png, info, pal, 1 << depth);
        if (ntrns)
            png_set_tRNS(png, info, trns, ntrns, NULL);
    }
    png_set_gAMA(png, info, 0.45455);
    png_write_info(png, info);
    if (depth == 16)
        png_set_swap(png);
    int ch = png_get_channels(png, info);
    size_t rb = png_get_rowbytes(png, info);
    unsigned char *img = calloc((size_t)h, rb);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) {
        rows[y] = img + (size_t)y * rb;
        for (int x = 0; x < w; x++) {
            int v = (x + y * 3) % 5;
            if (x == w - 1)
                v = 255; /* unlabeled column */
            for (int k = 0; k < ch; k++) {
                int s = v;
                if ((type & PNG_COLOR_MASK_ALPHA) && k == ch - 1)
                    s = (x + y) % 4 ? 255 : 0; /* alpha */
                if (!strcmp(name, "rgb8_colour.png") && k == 1 && x == 2 && y == 1)
                    s = v + 1; /* one colour pixel: refused */
                if (depth < 8) {
                    int per = 8 / depth, mask = (1 << depth) - 1;
                    int sh = 8 - depth * (x % per + 1);
                    rows[y][x / per] |= (unsigned char)((s & mask) << sh);
                } else if (depth == 8) {
                    rows[y][(size_t)x * ch + k] = (unsigned char)s;
                } else {
                    uint16_t t = (uint16_t)(s == 255 ? 255 : s * 1000);
                    memcpy(rows[y] + ((size_t)x * ch + k) * 2, &t, 2);
                }
            }
        }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(rows);
    free(img);
}

static void png_seeds(void)
{
    write_png("gray8.png", 7, 5, PNG_COLOR_TYPE_GRAY, 8, 0, 0);
    write_png("gray16.png", 6, 4, PNG_COLOR_TYPE_GRAY, 16, 0, 0);
    write_png("gray2_interlaced.png", 9, 6, PNG_COLOR_TYPE_GRAY, 2, 1, 0);
    write_png("gray1.png", 10, 3, PNG_COLOR_TYPE_GRAY, 1, 0, 0);
    write_png("palette4_trns.png", 6, 6, PNG_COLOR_TYPE_PALETTE, 4, 0, 4);
    write_png("palette8.png", 5, 4, PNG_COLOR_TYPE_PALETTE, 8, 1, 0);
    write_png("gray_alpha8.png", 5, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0);
    write_png("gray_alpha16.png", 4, 3, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 0);
    write_png("rgb8.png", 6, 5, PNG_COLOR_TYPE_RGB, 8, 0, 0);
    write_png("rgb8_colour.png", 6, 5, PNG_COLOR_TYPE_RGB, 8, 0, 0);
    write_png("rgba16.png", 4, 4, PNG_COLOR_TYPE_RGB_ALPHA, 16, 1, 0);
}

/* ---- models ------------------------------------------------------------ */

static void save_model(const char *name, const u3d_net_config *cfg,
                       int optimizer, const char *dir)
{
    u3d_backend *be = NULL;
    u3d_net *net = NULL;
    u3d_error err;
    u3d_model_meta m;
    u3d_model_meta_defaults(&m);
    m.net = *cfg;
    m.iteration = 3;
    m.patch[0] = m.patch[1] = m.patch[2] = 20;
    snprintf(m.class_names, sizeof m.class_names, "bg,cell");
    if (optimizer) {
        m.aug_custom = 1;
        u3d_augment_params_none(&m.aug);
    }
    u3d_status st = u3d_backend_ref_create(&be, &err);
    if (!st)
        st = u3d_net_create(be, cfg, &net, &err);
    if (!st)
        st = u3d_net_init(net, 7, &err);
    if (!st && optimizer)
        st = u3d_net_prepare_training(net, &err);
    if (!st)
        st = u3d_model_save(out_path(dir, name), net, &m, optimizer, &err);
    check(st, &err);
    u3d_net_destroy(net);
    u3d_backend_destroy(be);
}

static void model_seeds(int big)
{
    u3d_error err;
    u3d_net_config c = {.levels = 1, .base_channels = 1, .in_channels = 1,
                        .classes = 2, .padding = U3D_PAD_VALID,
                        .bn = U3D_BN_NONE, .bn_eps = 1e-5f,
                        .bn_momentum = 0.1f};
    if (big) { /* more than 4 KB: written where the fuzzer runs only */
        c.levels = 2;
        save_model("l2_f1_nobn.u3d", &c, 0, "fuzz_model");
        u3d_net_config tiny;
        check(u3d_net_preset("tiny", &tiny, &err), &err);
        save_model("tiny_preset.u3d", &tiny, 0, "fuzz_model");
        return;
    }
    save_model("l1_f1_nobn.u3d", &c, 0, "fuzz_model");
    c.bn = U3D_BN_AFFINE;
    c.padding = U3D_PAD_SAME;
    save_model("l1_f1_affine_momentum.u3d", &c, 1, "fuzz_model");
    c.bn = U3D_BN_PLAIN;
    c.padding = U3D_PAD_VALID;
    c.in_channels = 2;
    c.classes = 3;
    save_model("l1_f1_plain_2in_3cls.u3d", &c, 0, "fuzz_model");
    /* a bare container: no model metadata */
    u3d_ckpt k;
    float x[6] = {1, 2, 3, 4, 5, 6};
    u3d_ckpt_init(&k);
    check(u3d_ckpt_meta_set(&k, "note", &err, "%s", "not a model"), &err);
    check(u3d_ckpt_add(&k, "t", u3d_shape5(1, 1, 1, 2, 3), x, &err), &err);
    check(u3d_ckpt_write(out_path("fuzz_model", "bare_ckpt.u3d"), &k, &err), &err);
    u3d_ckpt_free(&k);
}

/* ---- .npy -------------------------------------------------------------- */

static void npy_save(const char *name, int is_int, int ndim, const size_t *dims)
{
    u3d_npy a;
    u3d_error err;
    memset(&a, 0, sizeof a);
    a.ndim = ndim;
    a.count = 1;
    for (int i = 0; i < ndim; i++)
        a.count *= a.dims[i] = dims[i];
    a.is_int = is_int;
    a.data = calloc(a.count + 1, 4);
    for (size_t i = 0; i < a.count; i++) {
        if (is_int)
            ((int32_t *)a.data)[i] = (int32_t)i * 3 - 5;
        else
            ((float *)a.data)[i] = (float)i / 3 - 1;
    }
    check(u3d_npy_save(out_path("fuzz_npy", name), &a, &err), &err);
    free(a.data);
}

/* A hand-made file: version 1 or 2 header, any dtype, raw payload. */
static void npy_raw(const char *name, int version, const char *descr,
                    const char *shape, const void *payload, size_t n)
{
    char dict[256];
    int dl = snprintf(dict, sizeof dict,
                      "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }",
                      descr, strstr(name, "fortran") ? "True" : "False", shape);
    size_t pre = version == 1 ? 10 : 12;
    size_t total = pre + (size_t)dl + 1, pad = (64 - total % 64) % 64;
    size_t hl = (size_t)dl + pad + 1;
    const char *path = out_path("fuzz_npy", name);
    FILE *f = fopen(path, "wb");
    unsigned char p[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)version, 0};
    p[8] = (unsigned char)hl;
    p[9] = (unsigned char)(hl >> 8);
    p[10] = p[11] = 0;
    int ok = f && fwrite(p, 1, pre, f) == pre &&
             fwrite(dict, 1, (size_t)dl, f) == (size_t)dl;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(payload, 1, n, f) == n;
    if (!f || fclose(f) || !ok)
        die("cannot write", path);
}

static void npy_seeds(void)
{
    size_t d1[] = {7}, d2[] = {3, 4}, d3[] = {2, 3, 4}, d5[] = {1, 2, 1, 3, 2};
    npy_save("f4_1d.npy", 0, 1, d1);
    npy_save("i4_2d.npy", 1, 2, d2);
    npy_save("f4_3d.npy", 0, 3, d3);
    npy_save("i4_5d.npy", 1, 5, d5);
    npy_save("f4_scalar.npy", 0, 0, NULL);
    double f8[4] = {1.5, -2, 1e30, 0.25};
    int64_t i8[3] = {1, -7, 1LL << 40};
    unsigned char u1[6] = {0, 1, 2, 250, 255, 7};
    uint16_t u2[4] = {0, 65535, 300, 2};
    float f4[6] = {1, 2, 3, 4, 5, 6};
    npy_raw("f8_v2.npy", 2, "<f8", "(2, 2)", f8, sizeof f8);
    npy_raw("i8.npy", 1, "<i8", "(3,)", i8, sizeof i8);
    npy_raw("u1_v2.npy", 2, "|u1", "(2, 3)", u1, sizeof u1);
    npy_raw("b1.npy", 1, "|b1", "(6,)", u1, sizeof u1);
    npy_raw("u2.npy", 1, "<u2", "(1, 4)", u2, sizeof u2);
    npy_raw("f4_v2_4d.npy", 2, "<f4", "(1, 2, 3, 1)", f4, sizeof f4);
    npy_raw("f4_empty.npy", 1, "<f4", "(0, 3)", f4, 0);
    npy_raw("f4_fortran.npy", 1, "<f4", "(2, 3)", f4, sizeof f4);
}

/* ---- NIfTI ------------------------------------------------------------- */

static void nifti_seeds(void)
{
    u3d_error e;
    u3d_volume v;
    check(u3d_volume_alloc(2, 3, 4, 5, &v, &e), &e);
    for (int i = 0; i < 120; i++)
        v.data[i] = (float)i * 0.5f - 3;
    v.spacing[0] = 2, v.spacing[1] = 0.5, v.spacing[2] = 0.5;
    snprintf(v.unit, sizeof v.unit, "mm");
    check(u3d_vio_write_volume(out_path("fuzz_nifti", "f32_2ch.nii"), &v,
                               NULL, &e), &e);
    v.c = 1;
    check(u3d_vio_write_volume(out_path("fuzz_nifti", "f32.nii.gz"), &v,
                               NULL, &e), &e);
    u3d_vgeom g = {1, {5, 4, 3}, 1, 2, {0, 0, 1}, {-1, 3, 5}, -1,
                   {{-1, 0, 0, 4}, {0, -1, 0, 3}, {0, 0, 2, 1}}, {1, 1, 2},
                   2};
    check(u3d_vio_write_volume(out_path("fuzz_nifti", "f32_geom.nii"), &v,
                               &g, &e), &e);
    u3d_volume_free(&v);
    u3d_labels l;
    check(u3d_labels_alloc(3, 4, 5, &l, &e), &e);
    for (int i = 0; i < 60; i++)
        l.data[i] = (uint16_t)(i % 4);
    check(u3d_vio_write_labels(out_path("fuzz_nifti", "u8.nii"), &l, NULL,
                               &e), &e);
    l.data[7] = 1000;
    check(u3d_vio_write_labels(out_path("fuzz_nifti", "u16.nii.gz"), &l,
                               NULL, &e), &e);
    u3d_labels_free(&l);
}

/* ---- Zarr --------------------------------------------------------------- */

static void zarr_seed(const char *name, int version, const char *meta,
                      const void *chunk, size_t clen)
{
    size_t m = strlen(meta);
    FILE *f = fopen(out_path("fuzz_zarr", name), "wb");
    unsigned char h[3] = {(unsigned char)(version == 3), (unsigned char)m,
                          (unsigned char)(m >> 8)};
    if (!f || fwrite(h, 1, 3, f) != 3 || fwrite(meta, 1, m, f) != m ||
        (clen && fwrite(chunk, 1, clen, f) != clen) || fclose(f))
        die("cannot write", name);
}

static size_t deflate_to(const void *src, size_t n, unsigned char *dst,
                         size_t cap, int gzip)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, gzip ? 31 : 15, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)(uintptr_t)src, z.avail_in = (uInt)n;
    z.next_out = dst, z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t r = z.total_out;
    deflateEnd(&z);
    return r;
}

static void zarr_seeds(void)
{
    float f4[2 * 3 * 4];
    uint16_t u2[2 * 3 * 4];
    uint8_t u1[2 * 3 * 4];
    for (int i = 0; i < 24; i++)
        f4[i] = (float)i - 5.5f, u2[i] = (uint16_t)(i * 300), u1[i] = (uint8_t)i;
    unsigned char c[1024];
    const char *v2 = "{\"zarr_format\":2,\"shape\":[2,3,4],\"chunks\":[2,3,4],"
                     "\"dtype\":\"%s\",\"compressor\":%s,\"fill_value\":0,"
                     "\"order\":\"C\",\"filters\":null%s}";
    char m[1024];
    snprintf(m, sizeof m, v2, "<f4", "null", "");
    zarr_seed("v2_raw_f4", 2, m, f4, sizeof f4);
    snprintf(m, sizeof m, v2, "|u1", "{\"id\":\"zlib\",\"level\":5}",
             ",\"dimension_separator\":\"/\"");
    zarr_seed("v2_zlib_u1_slash", 2, m, c, deflate_to(u1, sizeof u1, c, sizeof c, 0));
    snprintf(m, sizeof m, v2, "<u2", "{\"id\":\"gzip\",\"level\":1}", "");
    zarr_seed("v2_gzip_u2", 2, m, c, deflate_to(u2, sizeof u2, c, sizeof c, 1));
    snprintf(m, sizeof m, v2, "<f4", "{\"id\":\"zstd\",\"level\":3}", "");
    zarr_seed("v2_zstd_f4", 2, m, c, ZSTD_compress(c, sizeof c, f4, sizeof f4, 3));
    snprintf(m, sizeof m, v2, "<u2", "{\"id\":\"blosc\",\"cname\":\"lz4\"}", "");
    zarr_seed("v2_blosc_u2", 2, m, c,
              (size_t)blosc_compress(5, 1, 2, sizeof u2, u2, c, sizeof c));
    uint16_t be[24];
    for (int i = 0; i < 24; i++)
        be[i] = (uint16_t)(u2[i] >> 8 | u2[i] << 8);
    snprintf(m, sizeof m, v2, ">u2", "null", "");
    zarr_seed("v2_raw_be", 2, m, be, sizeof be);
    const char *v3 =
        "{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":[1,2,3,4],"
        "\"data_type\":\"%s\",\"chunk_grid\":{\"name\":\"regular\","
        "\"configuration\":{\"chunk_shape\":[1,2,3,4]}},"
        "\"chunk_key_encoding\":{\"name\":\"%s\"},\"fill_value\":0,"
        "\"codecs\":[{\"name\":\"bytes\",\"configuration\":"
        "{\"endian\":\"little\"}}%s]}";
    snprintf(m, sizeof m, v3, "float32", "default", "");
    zarr_seed("v3_raw_f4", 3, m, f4, sizeof f4);
    snprintf(m, sizeof m, v3, "uint8", "v2",
             ",{\"name\":\"gzip\",\"configuration\":{\"level\":5}}");
    zarr_seed("v3_gzip_u1_v2keys", 3, m, c, deflate_to(u1, sizeof u1, c, sizeof c, 1));
    snprintf(m, sizeof m, v3, "uint16", "default",
             ",{\"name\":\"zstd\",\"configuration\":{\"level\":0}},"
             "{\"name\":\"crc32c\"}");
    size_t n = ZSTD_compress(c, sizeof c, u2, sizeof u2, 1);
    memset(c + n, 0, 4);
    zarr_seed("v3_zstd_crc_u2", 3, m, c, n + 4);
    snprintf(m, sizeof m, v3, "float64", "default",
             ",{\"name\":\"blosc\",\"configuration\":{}}");
    double f8[24];
    for (int i = 0; i < 24; i++)
        f8[i] = f4[i];
    zarr_seed("v3_blosc_f8", 3, m, c,
              (size_t)blosc_compress(5, 1, 8, sizeof f8, f8, c, sizeof c));
}

/* ---- HDF5 ------------------------------------------------------------- */

/* One dataset NAME of type t and rank dims in a new file (latest format:
 * the smallest headers), with layout 0 contiguous, 1 compact, 2 chunked +
 * gzip, and optionally element_size_um. */
static void h5_dataset(hid_t f, const char *name, hid_t t, int rank,
                       const hsize_t *dims, int layout, const void *data,
                       int spacing)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (layout == 1)
        H5Pset_layout(dcpl, H5D_COMPACT);
    if (layout == 2) {
        H5Pset_chunk(dcpl, rank, dims);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, name, t, sp, lcpl, dcpl, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        die("cannot write the HDF5 dataset", name);
    if (spacing) {
        double um[3] = {2.0, 0.5, 0.25};
        hsize_t three = 3;
        hid_t as = H5Screate_simple(1, &three, NULL);
        hid_t a = H5Acreate2(d, "element_size_um", H5T_NATIVE_DOUBLE, as,
                             H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_DOUBLE, um);
        H5Aclose(a);
        H5Sclose(as);
    }
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(sp);
}

static hid_t h5_create(const char *name)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(out_path("fuzz_hdf5", name), H5F_ACC_TRUNC,
                        H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        die("cannot create", name);
    return f;
}

static void hdf5_seeds(void)
{
    u3d_error e;
    u3d_volume v;
    check(u3d_volume_alloc(1, 3, 4, 5, &v, &e), &e);
    for (int i = 0; i < 60; i++)
        v.data[i] = (float)i * 0.25f - 2;
    v.spacing[0] = 2, v.spacing[1] = 0.5, v.spacing[2] = 0.5;
    check(u3d_vio_write_volume(out_path("fuzz_hdf5", "writer_f32.h5"), &v,
                               NULL, &e), &e);
    u3d_volume_free(&v);
    unsigned char u1[60];
    short i2[60];
    double f8[60];
    float f4[120];
    for (int i = 0; i < 60; i++)
        u1[i] = (unsigned char)(i % 4), i2[i] = (short)(i * 97 - 3000),
        f8[i] = i * 0.5 - 7;
    for (int i = 0; i < 120; i++)
        f4[i] = (float)i / 7.0f;
    hsize_t d3[3] = {3, 4, 5}, d4[4] = {2, 3, 4, 5};
    hid_t f = h5_create("contig_u8.h5");
    h5_dataset(f, "label", H5T_NATIVE_UCHAR, 3, d3, 0, u1, 0);
    H5Fclose(f);
    f = h5_create("compact_i16_spacing.h5");
    h5_dataset(f, "raw", H5T_NATIVE_SHORT, 3, d3, 1, i2, 1);
    H5Fclose(f);
    f = h5_create("chunked_f64.h5");
    h5_dataset(f, "raw", H5T_NATIVE_DOUBLE, 3, d3, 2, f8, 0);
    H5Fclose(f);
    f = h5_create("czyx_f32.h5");
    h5_dataset(f, "raw", H5T_NATIVE_FLOAT, 4, d4, 0, f4, 1);
    H5Fclose(f);
    f = h5_create("two_datasets_group.h5");
    h5_dataset(f, "volumes/a", H5T_NATIVE_UCHAR, 3, d3, 0, u1, 0);
    h5_dataset(f, "volumes/b", H5T_NATIVE_DOUBLE, 3, d3, 1, f8, 0);
    H5Fclose(f);
}

/* ---- the user's tuned file -------------------------------------------- */

static void tune_cut(const char *from, const char *to, long keep)
{
    char buf[4096];
    FILE *f = fopen(from, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    FILE *g = fopen(to, "wb");
    if (!g || fwrite(buf, 1, (size_t)keep < n ? (size_t)keep : n, g) == 0)
        die("cannot write", to);
    if (g)
        fclose(g);
}

static void tuning_seeds(void)
{
    static const u3d_tune_row rows[] = {
        {"", "conv3d", "fwd", "large", "mwg", 64},
        {"", "conv3d", "bwd_data", "-", "vwn", 4},
        {"", "maxpool3d", "-", "-", "lws", 2147483647},
        {"", "elementwise", "-", "small", "lws", 1},
    };
    u3d_error err;
    u3d_tune_key other = fuzz_tune_key;
    snprintf(other.device, sizeof other.device, "Another Device");
    char valid[1024];
    snprintf(valid, sizeof valid, "%s", out_path("fuzz_tuning", "valid"));
    check(u3d_tune_write(valid, &fuzz_tune_key, rows, 4, "quick: 12 s\nok",
                         &err), &err);
    check(u3d_tune_write(out_path("fuzz_tuning", "empty"), &fuzz_tune_key,
                         rows, 0, NULL, &err), &err);
    check(u3d_tune_write(out_path("fuzz_tuning", "foreign"), &other, rows, 2,
                         NULL, &err), &err);
    tune_cut(valid, out_path("fuzz_tuning", "truncated"), 210);
}

/* ---- command-line options (text) -------------------------------------- */

static void options_seeds(void)
{
    static const struct {
        const char *name, *text;
    } seeds[] = {
        {"basic", "--int\n7\n--size\n16x32x32\n--choice\nplain"},
        {"numbers", "--double=2.5\n--float2\n1,2\n--int3\n5,5,3\n--flag"},
        {"files", "--in\n/tmp/a.tif\n--out\n/tmp/b.tif\n--list\nx\n--list\n"
                  "y\n--string\nz"},
        {"help", "--help"},
        {"bad", "--long\n99999999999\n--u64\nabc\n--size\n2147483647x1x1"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        const char *p = out_path("fuzz_options", seeds[i].name);
        FILE *f = fopen(p, "wb");
        if (!f || fputs(seeds[i].text, f) < 0)
            die("cannot write", p);
        if (f)
            fclose(f);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || (argc == 3 && strcmp(argv[2], "--big")) || argc > 3) {
        fprintf(stderr, "usage: gen_seeds DIR [--big]\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    int big = argc == 3;
    if (!big) {
        tiff_seeds();
        png_seeds();
        npy_seeds();
        nifti_seeds();
        zarr_seeds();
        hdf5_seeds();
        options_seeds();
        tuning_seeds();
    }
    model_seeds(big);
    return failed;
}
