/* The .u3d checkpoint container: versioned, checksummed, written atomically.
 *
 * Layout (little-endian), version 1:
 *   "U3DMODEL"            8 bytes magic
 *   u32 version           1
 *   u32 reserved          0
 *   u64 meta_len          then meta_len bytes of UTF-8 text, one
 *                         "key value" pair per line (architecture,
 *                         normalization, classes, iteration, ...)
 *   u32 ntensors          then per tensor:
 *     u16 name_len, name bytes, u32 dtype (0 = float32),
 *     u32 n, c, d, h, w, then n*c*d*h*w float32 values
 *   u32 crc32             IEEE CRC-32 of every byte before it
 *   "U3D-END!"            8 bytes end marker
 * Readers reject a wrong magic, a newer version, sizes that disagree with
 * the file length, a checksum mismatch or a missing end marker. */
#ifndef UNET3D_CHECKPOINT_H
#define UNET3D_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>
#include "unet3d/tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

#define U3D_CKPT_VERSION 1

typedef struct u3d_ckpt_tensor {
    char name[64];
    u3d_shape shape;
    float *data; /* owned by the checkpoint; NULL when not read */
} u3d_ckpt_tensor;

typedef struct u3d_ckpt {
    char *meta; /* NUL-terminated "key value\n" lines */
    int ntensors;
    u3d_ckpt_tensor *tensors;
} u3d_ckpt;

void u3d_ckpt_init(u3d_ckpt *c);
void u3d_ckpt_free(u3d_ckpt *c);
/* Appends "key value\n" (value formatted printf-style). */
u3d_status u3d_ckpt_meta_set(u3d_ckpt *c, const char *key, u3d_error *err,
                             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Value of key (first occurrence) copied into buf, or NULL if absent. */
const char *u3d_ckpt_meta_get(const u3d_ckpt *c, const char *key, char *buf,
                              size_t len);
/* Adds a tensor, copying n = count(shape) floats from data. */
u3d_status u3d_ckpt_add(u3d_ckpt *c, const char *name, u3d_shape shape,
                        const float *data, u3d_error *err);
const u3d_ckpt_tensor *u3d_ckpt_find(const u3d_ckpt *c, const char *name);

/* Writes to PATH.tmp-PID then renames: a crash never leaves a half file. */
u3d_status u3d_ckpt_write(const char *path, const u3d_ckpt *c, u3d_error *err);
u3d_status u3d_ckpt_read(const char *path, u3d_ckpt *c, u3d_error *err);
/* The same, holding the values only of the tensors keep() accepts: the
 * others are listed (name, shape) with data NULL. The file is streamed,
 * so host memory holds the kept tensors, never the file; the checksum
 * and the structure are checked over all of it. */
u3d_status u3d_ckpt_read_some(const char *path,
                              int (*keep)(const char *name, void *user),
                              void *user, u3d_ckpt *c, u3d_error *err);

uint32_t u3d_crc32(uint32_t crc, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
