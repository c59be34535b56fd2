/* libFuzzer harness for the Zarr reader's own layers (src/data/zarr_io.c):
 * metadata parsing (.zarray / zarr.json through libcjson), chunk decoding
 * (raw, zlib, gzip, zstd, blosc, crc32c) and the assembly of planes from
 * chunks. Input: byte 0 selects Zarr v2 (even) or v3 (odd), bytes 1-2 the
 * metadata length (little-endian), then the metadata, then one chunk.
 * The chunk is decoded directly, then the array (metadata + the chunk
 * stored as its first key) is read through include/unet3d/volume_io.h
 * when it holds at most 2^20 voxels (Zarr arrays may be sparse: their
 * shape alone is not bounded by the input).
 * Build and run: tools/fuzz.sh [SECONDS] (seeds: tests/fuzz/corpus/). */
#include "fuzz_util.h"
#include "data/zarr_meta.h"
#include "unet3d/volume_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put(const char *dir, const char *name, const uint8_t *d, size_t n)
{
    char p[900];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int version = data[0] & 1 ? 3 : 2;
    size_t mlen = (size_t)data[1] | (size_t)data[2] << 8;
    if (mlen > size - 3)
        mlen = size - 3;
    const char *meta = (const char *)data + 3;
    const uint8_t *chunk = data + 3 + mlen;
    size_t clen = size - 3 - mlen;
    u3d_zarr_meta m;
    char why[256];
    if (u3d_zarr_parse_meta(meta, mlen, version, &m, why, sizeof why)) {
        if (!why[0] || strchr(why, '\n'))
            __builtin_trap();
        return 0;
    }
    if (m.chunk_bytes > ((size_t)64 << 20))
        return 0;
    void *out = malloc(m.chunk_bytes);
    if (!out)
        return 0;
    if (u3d_zarr_decode_chunk(&m, chunk, clen, out, why, sizeof why) == 0) {
        double s = 0;
        for (size_t i = 0; i < m.chunk_bytes / (size_t)m.size; i++)
            s += u3d_zarr_sample(&m, out, i);
        fuzz_note("chunk", s == s ? "decoded" : "decoded (NaN)");
    } else if (!why[0] || strchr(why, '\n'))
        __builtin_trap();
    free(out);
    /* the whole array through the public interface */
    double vox = 1;
    for (int i = 0; i < m.rank; i++)
        vox *= (double)m.shape[i];
    if (vox > (1 << 20))
        return 0;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/a.zarr", fuzz_tmpdir());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    mkdir(dir, 0755);
    put(dir, version == 2 ? ".zarray" : "zarr.json", (const uint8_t *)meta,
        mlen);
    /* the first chunk's key: 0.0.0 (v2 '.'), 0/0/0 (v2 '/'), c/0/0/0 (v3) */
    char key[64] = "", sub[700];
    if (version == 3 && m.v3_prefix) {
        snprintf(sub, sizeof sub, "%s/c", dir);
        mkdir(sub, 0755);
        snprintf(key, sizeof key, "c/");
    }
    for (int i = 0; i < m.rank; i++) {
        size_t k = strlen(key);
        if (i < m.rank - 1 && m.sep == '/') {
            snprintf(key + k, sizeof key - k, "0/");
            snprintf(sub, sizeof sub, "%s/%s", dir, key);
            mkdir(sub, 0755);
        } else
            snprintf(key + k, sizeof key - k, i < m.rank - 1 ? "0." : "0");
    }
    put(dir, key, chunk, clen);
    u3d_error err;
    u3d_volume v;
    memset(&v, 0, sizeof v);
    char spec[700];
    snprintf(spec, sizeof spec, "zarr:%s", dir);
    if (u3d_vio_read_volume(spec, &v, NULL, &err)) {
        if (v.data)
            __builtin_trap();
        fuzz_check_error(&err);
        return 0;
    }
    fuzz_touch(v.data, (size_t)v.c * v.d * v.h * v.w);
    fuzz_note("zarr", "ok");
    u3d_volume_free(&v);
    return 0;
}
