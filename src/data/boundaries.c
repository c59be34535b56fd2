/* Thin boundaries from instance labels (volume.h). */
#include <string.h>
#include "unet3d/volume.h"

u3d_status u3d_labels_boundaries(const u3d_labels *in, u3d_labels *out,
                                 u3d_error *err)
{
    memset(out, 0, sizeof *out);
    U3D_TRY(u3d_labels_alloc(in->d, in->h, in->w, out, err));
    memcpy(out->spacing, in->spacing, sizeof in->spacing);
    memcpy(out->unit, in->unit, sizeof in->unit);
    const int d = in->d, h = in->h, w = in->w;
    const size_t hw = (size_t)h * w;
    for (int z = 0; z < d; z++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = z * hw + (size_t)y * w + x;
                uint16_t v = in->data[i];
                /* the 6 neighbours inside the volume */
                const int has[6] = {z > 0, z < d - 1, y > 0,
                                    y < h - 1, x > 0, x < w - 1};
                const ptrdiff_t off[6] = {-(ptrdiff_t)hw, (ptrdiff_t)hw, -w,
                                          w, -1, 1};
                int edge = 0;
                for (int k = 0; k < 6 && !edge; k++) {
                    if (!has[k])
                        continue;
                    uint16_t n = in->data[(ptrdiff_t)i + off[k]];
                    edge = n != v && (n || v);
                }
                out->data[i] = (uint16_t)edge;
            }
    return U3D_OK;
}
