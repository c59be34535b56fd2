/* libFuzzer harness for the NIfTI reader (src/data/nifti_io.c behind
 * include/unet3d/volume_io.h): the input is written to a file (.nii; gzip
 * input is recognized by its bytes) and read as an image and as labels,
 * whole and as a plane stream. Success must give a consistent shape and
 * readable data; failure a one-line message. A volume read is written
 * back (.nii.gz) and must read back the same.
 * Build and run: tools/fuzz.sh [SECONDS] (seeds: tests/fuzz/corpus/). */
#include "fuzz_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("in.nii", data, size);
    char spec[600];
    snprintf(spec, sizeof spec, "nifti:%s", path);
    u3d_error err;
    u3d_volume v;
    memset(&v, 0, sizeof v);
    u3d_vgeom g;
    if (u3d_vio_read_volume(spec, &v, &g, &err)) {
        if (v.data)
            __builtin_trap();
        fuzz_check_error(&err);
    } else {
        if (!v.data || v.c < 1 || v.d < 1 || v.h < 1 || v.w < 1)
            __builtin_trap();
        size_t n = (size_t)v.c * v.d * v.h * v.w;
        fuzz_touch(v.data, n);
        fuzz_note("nifti", "ok");
        char out[600];
        snprintf(out, sizeof out, "%s/out.nii.gz", fuzz_tmpdir());
        u3d_volume b;
        if (v.w > 32767 || v.h > 32767 || v.d > 32767 ||
            u3d_vio_write_volume(out, &v, &g, &err))
            fuzz_check_error(&err);
        else if (u3d_vio_read_volume(out, &b, NULL, &err))
            __builtin_trap(); /* what was written must read */
        else {
            if (b.c != v.c || b.d != v.d || b.h != v.h || b.w != v.w ||
                memcmp(b.data, v.data, n * sizeof(float)))
                __builtin_trap();
            u3d_volume_free(&b);
        }
        u3d_volume_free(&v);
    }
    u3d_labels l;
    memset(&l, 0, sizeof l);
    if (u3d_vio_read_labels(spec, &l, NULL, &err))
        fuzz_check_error(&err);
    else
        u3d_labels_free(&l);
    fuzz_stream(spec);
    return 0;
}
