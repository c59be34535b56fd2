#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "unet3d/error.h"

/* Messages are one line whatever they quote (a file name, a metadata
 * string): control characters become '?'. */
void u3d_msg_oneline(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

u3d_status u3d_seterr(u3d_error *err, u3d_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        u3d_msg_oneline(err->msg);
    }
    return code;
}

u3d_status u3d_errprefix(u3d_error *err, const char *fmt, ...)
{
    if (!err)
        return U3D_ERR_INVALID_ARG;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", prefix, old);
    u3d_msg_oneline(err->msg);
    return err->code;
}

const char *u3d_status_name(u3d_status s)
{
    switch (s) {
    case U3D_OK: return "ok";
    case U3D_ERR_INVALID_ARG: return "invalid argument";
    case U3D_ERR_SHAPE: return "shape mismatch";
    case U3D_ERR_IO: return "I/O error";
    case U3D_ERR_FORMAT: return "bad file format";
    case U3D_ERR_DEVICE: return "device error";
    case U3D_ERR_OOM: return "out of memory";
    case U3D_ERR_UNSUPPORTED: return "unsupported";
    case U3D_ERR_NUMERIC: return "numeric error";
    }
    return "unknown status";
}
