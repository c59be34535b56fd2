/* Internal: Zarr array metadata and chunk decoding, separate from the file
 * access so the fuzz harness can drive them on bytes. */
#ifndef UNET3D_DATA_ZARR_META_H
#define UNET3D_DATA_ZARR_META_H
#include <stddef.h>
#include <stdint.h>

enum { U3D_ZC_NONE, U3D_ZC_ZLIB, U3D_ZC_GZIP, U3D_ZC_ZSTD, U3D_ZC_BLOSC };
enum { U3D_ZT_U8, U3D_ZT_I8, U3D_ZT_U16, U3D_ZT_I16, U3D_ZT_U32, U3D_ZT_I32,
       U3D_ZT_U64, U3D_ZT_I64, U3D_ZT_F32, U3D_ZT_F64 };

#define U3D_ZARR_MAX_CODECS 4

typedef struct u3d_zarr_meta {
    int version; /* 2 or 3 */
    int rank;    /* 3, 4 or 5 (leading 1) */
    int64_t shape[5], chunks[5];
    int type, size; /* U3D_ZT_*, bytes per sample */
    int big_endian;
    int ncodecs, codec[U3D_ZARR_MAX_CODECS]; /* bytes -> bytes, in order */
    int crc32c;   /* v3: a 4-byte checksum follows the data */
    double fill;
    char sep;     /* chunk key separator: '.' or '/' */
    int v3_prefix; /* v3 default encoding: keys start with "c/" */
    size_t chunk_bytes; /* decoded size of one chunk */
} u3d_zarr_meta;

/* Parses .zarray (version 2) or zarr.json (version 3, node_type array);
 * 0 on success, else -1 with the reason in why. Sizes checked: every
 * dimension and chunk > 0, a chunk's bytes fit size_t and 2 GiB. */
int u3d_zarr_parse_meta(const char *json, size_t len, int version,
                        u3d_zarr_meta *m, char *why, size_t why_len);

/* Decodes one stored chunk (src, n bytes) into m->chunk_bytes bytes of
 * native-endian samples at dst; 0 on success, -1 with why. */
int u3d_zarr_decode_chunk(const u3d_zarr_meta *m, const void *src, size_t n,
                          void *dst, char *why, size_t why_len);

/* Sample i of a decoded chunk as double. */
double u3d_zarr_sample(const u3d_zarr_meta *m, const void *chunk, size_t i);

#endif
