/* libFuzzer harness for the PNG annotation slices: the input is written as
 * the only slice of a per-process folder and read by
 * u3d_labels_from_png_slices. The axis (z, y or x slice) is the input size
 * modulo 3; the volume size is taken from the PNG's IHDR when it is
 * plausible (1..64 pixels), so decoding is reached, else 8. The slice index
 * is the last possible one along its axis (the input size / 3 chooses the
 * depth of that axis, 1..4), so writes at the far edge are checked too.
 * Build and run: tools/fuzz.sh [SECONDS] (seeds: tests/fuzz/corpus/). */
#include "fuzz_util.h"
#include "unet3d/volume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int be32_dim(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                 (uint32_t)p[2] << 8 | p[3];
    return v >= 1 && v <= 64 ? (int)v : 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_tmpdir();
    char path[600];
    static const char axes[3] = {'z', 'y', 'x'};
    char axis = axes[size % 3];
    /* PNG signature (8), IHDR length + type (8), width, height */
    int pw = size >= 24 ? be32_dim(data + 16) : 8;
    int ph = size >= 24 ? be32_dim(data + 20) : 8;
    int n = 1 + (int)(size / 3 % 4); /* slices along the slice's axis */
    int d, h, w;
    if (axis == 'z') { /* W x H */
        w = pw, h = ph, d = n;
    } else if (axis == 'y') { /* W x D */
        w = pw, d = ph, h = n;
    } else { /* H x D */
        h = pw, d = ph, w = n;
    }
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) {
            snprintf(path, sizeof path, "%s/%c%04d.png", dir, axes[i], k);
            unlink(path);
        }
    char name[16];
    snprintf(name, sizeof name, "%c%04d.png", axis, n - 1);
    fuzz_write(name, data, size);

    u3d_labels l;
    u3d_error err;
    memset(&l, 0xa5, sizeof l); /* the call must set every field it owns */
    int ns = -1;
    size_t conflicts = 1;
    if (u3d_labels_from_png_slices(dir, d, h, w, &ns, &conflicts, &l, &err) ==
        U3D_OK) {
        if (!l.data || l.d != d || l.h != h || l.w != w || ns != 1 ||
            conflicts != 0)
            __builtin_trap(); /* success must mean one slice, read whole */
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)d * h * w; i++)
            sum += l.data[i];
        (void)sum;
        fuzz_note("slices", "ok");
        u3d_labels_free(&l);
    } else {
        if (l.data)
            __builtin_trap(); /* failure must leave no data and a message */
        fuzz_check_error(&err);
    }
    return 0;
}
