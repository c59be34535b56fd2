/* libFuzzer harness for the TIFF read path (volumes and labels, from
 * memory). Not built by default. Build and run from the repository root: */
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc tests/fuzz/fuzz_tiff_read.c src/data/*.c src/core/error.c $(pkg-config --cflags --libs libtiff-4) -lm -o fuzz_tiff_read && ./fuzz_tiff_read -max_total_time=120 -rss_limit_mb=2048  CORPUS_DIR
/* Seed CORPUS_DIR with a few small TIFFs (e.g. from u3d_tiff_write_volume
 * and tifffile); every input must give U3D_OK or a clean error. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "unet3d/volume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a small limit keeps forged huge sizes from exhausting the fuzzer */
    u3d_tiff_read_opts o = {64u << 20};
    u3d_error err;
    u3d_volume v;
    u3d_labels l;
    if (u3d_tiff_read_volume_mem(data, size, "fuzz.tif", &o, &v, &err) == U3D_OK) {
        if (!v.data || v.c < 1 || v.d < 1 || v.h < 1 || v.w < 1)
            __builtin_trap(); /* success must mean a usable volume */
        u3d_volume_free(&v);
    } else if (v.data || !memchr(err.msg, 0, sizeof err.msg) || !err.msg[0]) {
        __builtin_trap(); /* failure must leave no data and a message */
    }
    if (u3d_tiff_read_labels_mem(data, size, "fuzz.tif", &o, &l, &err) == U3D_OK)
        u3d_labels_free(&l);
    return 0;
}
