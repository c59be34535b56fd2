/* NumPy .npy files (format 1.0/2.0, little-endian <f4 / <i4, C order). */
#ifndef UNET3D_NPY_H
#define UNET3D_NPY_H
#include <stddef.h>
#include "unet3d/error.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct u3d_npy {
    int ndim;
    size_t dims[8];
    int is_int;   /* 1: int32 data, 0: float32 data */
    size_t count; /* product of dims */
    void *data;   /* count elements, malloc'd */
} u3d_npy;

u3d_status u3d_npy_load(const char *path, u3d_npy *out, u3d_error *err);
/* Writes atomically (temporary file, then rename). */
u3d_status u3d_npy_save(const char *path, const u3d_npy *a, u3d_error *err);
void u3d_npy_free(u3d_npy *a);

#ifdef __cplusplus
}
#endif
#endif
