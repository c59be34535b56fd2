/* libFuzzer harness for the TIFF readers: volume and labels from memory,
 * and the plane streamer (which takes a path: the input is written to a
 * per-process temporary file). Every input must give U3D_OK with usable
 * data or a clean error (no data, a one-line message); a volume read both
 * ways must give the same planes.
 * Build and run: tools/fuzz.sh [SECONDS] (seeds: tests/fuzz/corpus/). */
#include "fuzz_util.h"
#include "unet3d/volume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Planes of at most this many floats are read. u3d_tiff_stream_open has no
 * size limit by design and allocates one page (untouched until a read), so
 * tools/fuzz.sh runs this harness with -malloc_limit_mb high and ASan's
 * allocator_may_return_null=1; -rss_limit_mb still catches real use. */
#define STREAM_MAX_FLOATS ((size_t)1 << 22)

static void check_stream(const uint8_t *data, size_t size, const u3d_volume *v)
{
    const char *path = fuzz_write("in.tif", data, size);
    u3d_error err;
    u3d_tiff_stream *s = (u3d_tiff_stream *)1;
    u3d_volume shape;
    memset(&shape, 0xa5, sizeof shape);
    if (u3d_tiff_stream_open(path, &s, &shape, &err)) {
        if (s || shape.data)
            __builtin_trap();
        fuzz_check_error(&err);
        return;
    }
    if (!s || shape.data || shape.c < 1 || shape.d < 1 || shape.h < 1 ||
        shape.w < 1)
        __builtin_trap();
    if (v && (v->c != shape.c || v->d != shape.d || v->h != shape.h ||
              v->w != shape.w))
        __builtin_trap(); /* the streamer sees another shape than the reader */
    fuzz_note("stream", "open");
    size_t hw = (size_t)shape.h * shape.w, plane = hw * shape.c;
    if (plane <= STREAM_MAX_FLOATS) {
        float *buf = malloc(plane * sizeof *buf);
        if (!buf)
            __builtin_trap();
        int zs[3] = {0, shape.d / 2, shape.d - 1};
        for (int i = 0; i < 3; i++) {
            int z = zs[i];
            if (i && z == zs[i - 1])
                continue;
            /* the middle plane by its lower rows, the others whole */
            int y0 = i == 1 ? shape.h / 2 : 0, ny = shape.h - y0;
            u3d_status st = i == 1 ? u3d_tiff_stream_read_rows(s, z, y0, ny,
                                                               buf, &err)
                                   : u3d_tiff_stream_read(s, z, buf, &err);
            if (st) {
                fuzz_check_error(&err);
                continue;
            }
            size_t n = (size_t)ny * shape.w;
            fuzz_touch(buf, n * shape.c);
            if (v)
                for (int c = 0; c < shape.c; c++)
                    if (memcmp(buf + (size_t)c * n,
                               v->data + ((size_t)c * v->d + z) * hw +
                                   (size_t)y0 * shape.w,
                               n * sizeof *buf))
                        __builtin_trap(); /* streamed != read whole */
        }
        /* out-of-range requests are refused */
        if (u3d_tiff_stream_read(s, shape.d, buf, &err) == U3D_OK ||
            u3d_tiff_stream_read_rows(s, 0, shape.h, 1, buf, &err) == U3D_OK)
            __builtin_trap();
        fuzz_check_error(&err);
        free(buf);
    }
    u3d_tiff_stream_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a small limit keeps forged huge sizes from exhausting the fuzzer */
    u3d_tiff_read_opts o = {64u << 20};
    u3d_error err;
    u3d_volume v;
    u3d_labels l;
    memset(&v, 0xa5, sizeof v); /* the calls must set what they own */
    memset(&l, 0xa5, sizeof l);
    u3d_status vst = u3d_tiff_read_volume_mem(data, size, "fuzz.tif", &o, &v,
                                              &err);
    if (vst == U3D_OK) {
        if (!v.data || v.c < 1 || v.d < 1 || v.h < 1 || v.w < 1)
            __builtin_trap(); /* success must mean a usable volume */
        fuzz_note("volume", "ok");
        fuzz_touch(v.data, (size_t)v.c * v.d * v.h * v.w);
    } else {
        if (v.data)
            __builtin_trap(); /* failure must leave no data and a message */
        fuzz_check_error(&err);
    }
    if (u3d_tiff_read_labels_mem(data, size, "fuzz.tif", &o, &l, &err) ==
        U3D_OK) {
        if (!l.data || l.d < 1 || l.h < 1 || l.w < 1)
            __builtin_trap();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)l.d * l.h * l.w; i++)
            sum += l.data[i];
        (void)sum;
        fuzz_note("labels", "ok");
        u3d_labels_free(&l);
    } else {
        if (l.data)
            __builtin_trap();
        fuzz_check_error(&err);
    }
    check_stream(data, size, vst == U3D_OK ? &v : NULL);
    if (vst == U3D_OK)
        u3d_volume_free(&v);
    return 0;
}
