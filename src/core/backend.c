/* Backend choice by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/backend_impl.h"
#include "dist/dist.h"
#include "unet3d/cudnn.h"

/* One rank per device: a list "A,B,..." gives item i to the i-th rank of
 * a host; "auto" (or no spec) with several ranks on the host gives the
 * i-th GPU (round robin), else the first device; one process: "auto" is
 * the default device and a list its first item. */
static u3d_status rank_device(const char *spec, char *buf, size_t n,
                              const char **out, u3d_error *err)
{
    int lr = u3d_dist_local_rank(), ls = u3d_dist_local_size();
    if (!spec || !spec[0])
        spec = getenv("UNET3D_DEVICE");
    *out = spec;
    if (!spec || !spec[0] || !strcmp(spec, "auto")) {
        *out = NULL;
        if (ls > 1) {
            snprintf(buf, n, "auto:%d", lr);
            *out = buf;
        }
        return U3D_OK;
    }
    if (!strchr(spec, ','))
        return U3D_OK;
    const char *s = spec;
    for (int i = 0; i < lr && s; i++) {
        s = strchr(s, ',');
        s = s ? s + 1 : NULL;
    }
    if (!s || !*s)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "--device '%s' names fewer devices than the %d "
                          "ranks on this host (%s is local rank %d)",
                          spec, ls, u3d_dist_host(), lr);
    size_t len = strcspn(s, ",");
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), s);
    *out = buf;
    return U3D_OK;
}

u3d_status u3d_backend_create(const u3d_backend_config *cfg, u3d_backend **out,
                              u3d_error *err)
{
    u3d_backend_config c = {0};
    if (cfg)
        c = *cfg;
    *out = NULL;
    char devbuf[256];
    U3D_TRY(rank_device(c.device, devbuf, sizeof devbuf, &c.device, err));
    if (!c.backend || !c.backend[0])
        c.backend = getenv("UNET3D_BACKEND");
    if (!c.backend || !c.backend[0])
        c.backend = "opencl";
    const char *pe = getenv("UNET3D_PROFILE");
    if (pe && pe[0] && strcmp(pe, "0"))
        c.profile = 1;
    if (!strcmp(c.backend, "opencl"))
        return u3d_backend_opencl_create(c.device, c.profile, out, err);
    if (!strcmp(c.backend, "ref"))
        return u3d_backend_ref_create(out, err);
    if (!strcmp(c.backend, "cudnn")) {
        /* the per-rank forms name the CUDA device index */
        const char *num = NULL;
        if (c.device && !strncmp(c.device, "auto:", 5))
            num = c.device + 5;
        else if (c.device && !strncmp(c.device, "gpu:", 4))
            num = c.device + 4;
        if (num) {
            char idx[sizeof devbuf];
            snprintf(idx, sizeof idx, "%s", num);
            snprintf(devbuf, sizeof devbuf, "%s", idx);
            c.device = devbuf;
        }
#ifdef U3D_HAVE_CUDNN
        int index;
        u3d_status st = u3d_cudnn_parse_device(c.device, &index, err);
        return st ? st : u3d_backend_cudnn_create(index, c.profile, out, err);
#else
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "the cudnn backend is not built into this unet3d "
                          "(configure with -DUNET3D_CUDNN=ON and the CUDA "
                          "toolkit and cuDNN installed); use --backend opencl "
                          "(works on NVIDIA too)");
#endif
    }
    return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                      "unknown backend '%s' (choose opencl, ref or cudnn)",
                      c.backend);
}

void u3d_backend_destroy(u3d_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const char *u3d_backend_name(const u3d_backend *be) { return be->name; }

const char *u3d_backend_device(const u3d_backend *be) { return be->device; }

void u3d_backend_memory(const u3d_backend *be, size_t *now, size_t *peak)
{
    size_t s = be->ops->scratch_bytes
                   ? be->ops->scratch_bytes((u3d_backend *)be)
                   : 0;
    if (now)
        *now = be->tensor_bytes + s;
    if (peak)
        *peak = be->tensor_peak + s;
}

void u3d_backend_memory_reset(u3d_backend *be)
{
    be->tensor_peak = be->tensor_bytes;
}

void u3d_backend_device_memory(const u3d_backend *be, size_t *total,
                               size_t *max_alloc)
{
    *total = be->mem_total;
    *max_alloc = be->max_alloc;
}

u3d_status u3d_backend_finish(u3d_backend *be, u3d_error *err)
{
    return be->ops->finish(be, err);
}
