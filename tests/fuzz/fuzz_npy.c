/* libFuzzer harness for the .npy reader of the fixture runner
 * (src/golden/npy.h, internal): the input is written to a per-process
 * temporary file and loaded. Success must give count = product of dims
 * elements, all readable; failure no data and a one-line message. A loaded
 * array is saved and loaded again and must come back the same.
 * Build and run: tools/fuzz.sh [SECONDS] (seeds: tests/fuzz/corpus/). */
#include "fuzz_util.h"
#include "golden/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("in.npy", data, size);
    u3d_npy a, b;
    u3d_error err;
    memset(&a, 0xa5, sizeof a); /* the call must set what it owns */
    if (u3d_npy_load(path, &a, &err)) {
        if (a.data)
            __builtin_trap(); /* failure must leave no data and a message */
        fuzz_check_error(&err);
        return 0;
    }
    if (!a.data || a.ndim < 0 || a.ndim > 8)
        __builtin_trap();
    size_t count = 1;
    for (int i = 0; i < a.ndim; i++)
        count *= a.dims[i];
    if (count != a.count)
        __builtin_trap();
    fuzz_note("npy", "ok");
    /* int32 and float32 elements are both 4 bytes */
    fuzz_touch(a.data, a.count);
    char out[600];
    snprintf(out, sizeof out, "%s/out.npy", fuzz_tmpdir());
    if (u3d_npy_save(out, &a, &err))
        fuzz_check_error(&err);
    else if (u3d_npy_load(out, &b, &err))
        __builtin_trap(); /* what was saved must load */
    else {
        if (b.ndim != a.ndim || b.count != a.count || b.is_int != a.is_int ||
            memcmp(b.dims, a.dims, sizeof a.dims) ||
            memcmp(b.data, a.data, a.count * 4))
            __builtin_trap(); /* save + load must be the identity */
        u3d_npy_free(&b);
    }
    u3d_npy_free(&a);
    return 0;
}
