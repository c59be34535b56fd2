/* An installed unet3d used from outside its tree: describes the paper's
 * network and writes a small volume through the format-independent
 * interface (HDF5, NIfTI, OME-Zarr, TIFF), reading each back. Needs no
 * OpenCL device. Usage: example DIR */
#include <stdio.h>
#include <string.h>
#include "unet3d/unet3d.h"

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    u3d_error e = {0};
    u3d_volume v;
    if (u3d_volume_alloc(1, 4, 5, 6, &v, &e)) {
        fprintf(stderr, "example: %s\n", e.msg);
        return 1;
    }
    for (int i = 0; i < 120; i++)
        v.data[i] = (float)i;
    const char *ext[] = {"h5", "nii.gz", "zarr", "tif"};
    for (int k = 0; k < 4; k++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/example.%s", dir, ext[k]);
        u3d_volume r;
        if (u3d_vio_write_volume(p, &v, NULL, &e) ||
            u3d_vio_read_volume(p, &r, NULL, &e)) {
            fprintf(stderr, "example: %s\n", e.msg);
            return 1;
        }
        int same = r.d == 4 && r.h == 5 && r.w == 6 &&
                   !memcmp(r.data, v.data, sizeof(float) * 120);
        printf("%-8s %s\n", ext[k], same ? "round trip ok" : "DIFFERS");
        u3d_volume_free(&r);
        if (!same)
            return 1;
    }
    u3d_volume_free(&v);
    printf("unet3d %s\n", U3D_VERSION);
    return 0;
}
