/* Per-device tuning parameters, kept as data (CLBlast style). The first
 * row whose device substring matches (case-sensitive, "" matches any) and
 * whose family/param match wins. Rows were measured with `unet3d bench`. */
#include <string.h>
#include "runtime/cl_runtime.h"

typedef struct tune_row {
    const char *device; /* substring of "platform device" */
    const char *family; /* kernel family, e.g. "conv3d" */
    const char *param;
    int value;
} tune_row;

static const tune_row rows[] = {
    /* filled per layer family as kernels are tuned */
    {"", "elementwise", "lws", 256},
};

int u3d_cl_tune(const u3d_cl *cl, const char *family, const char *param,
                int fallback)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const tune_row *r = &rows[i];
        if (strcmp(r->family, family) || strcmp(r->param, param))
            continue;
        if (r->device[0] && !strstr(cl->device_name, r->device) &&
            !strstr(cl->platform_name, r->device))
            continue;
        return r->value;
    }
    return fallback;
}
