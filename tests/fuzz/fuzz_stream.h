/* The plane stream of a volume reader, as the harnesses exercise it: the
 * last plane, then the first row of plane 0 (a seek backwards). Success
 * gives readable data, failure a one-line message. */
#ifndef FUZZ_STREAM_H
#define FUZZ_STREAM_H
#include "fuzz_util.h"
#include "unet3d/volume_io.h"

static inline void fuzz_stream(const char *spec)
{
    u3d_error err;
    u3d_vsource *s;
    u3d_volume sh;
    if (u3d_vsource_open(spec, 0, &s, &sh, &err)) {
        fuzz_check_error(&err);
        return;
    }
    size_t plane = (size_t)sh.c * sh.h * sh.w;
    float *p = plane <= (1u << 24) ? malloc(plane * sizeof *p) : NULL;
    if (p) {
        if (u3d_vsource_read(s, sh.d - 1, p, &err) == U3D_OK)
            fuzz_touch(p, plane);
        else
            fuzz_check_error(&err);
        if (u3d_vsource_read_rows(s, 0, 0, 1, p, &err))
            fuzz_check_error(&err);
    }
    free(p);
    u3d_vsource_close(s);
}

#endif
