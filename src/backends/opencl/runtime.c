/* OpenCL platform/device choice, program building with an on-disk binary
 * cache, launches with optional profiling. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "backends/opencl/runtime.h"
#include "core/files.h"
#include "unet3d/cudnn.h"

struct u3d_cl_program {
    char name[64];
    char *options;
    cl_program prog;
    u3d_cl_program *next;
};

struct u3d_cl_kernel {
    u3d_cl_program *prog;
    char name[64];
    cl_kernel k;
    u3d_cl_kernel *next;
};

struct u3d_cl_prof {
    char label[64];
    double ms;
    long calls;
    u3d_cl_prof *next;
};

const char *u3d_cl_errname(cl_int code)
{
    switch (code) {
#define E(x)                                                                   \
    case x: return #x;
        E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE)
        E(CL_COMPILER_NOT_AVAILABLE) E(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
        E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP)
        E(CL_IMAGE_FORMAT_MISMATCH) E(CL_IMAGE_FORMAT_NOT_SUPPORTED)
        E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE)
        E(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        E(CL_COMPILE_PROGRAM_FAILURE) E(CL_LINKER_NOT_AVAILABLE)
        E(CL_LINK_PROGRAM_FAILURE) E(CL_DEVICE_PARTITION_FAILED)
        E(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) E(CL_INVALID_VALUE)
        E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE)
        E(CL_INVALID_CONTEXT) E(CL_INVALID_QUEUE_PROPERTIES)
        E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR)
        E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
        E(CL_INVALID_IMAGE_SIZE) E(CL_INVALID_SAMPLER) E(CL_INVALID_BINARY)
        E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_PROGRAM)
        E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME)
        E(CL_INVALID_KERNEL_DEFINITION) E(CL_INVALID_KERNEL)
        E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE)
        E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION)
        E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE)
        E(CL_INVALID_GLOBAL_OFFSET) E(CL_INVALID_EVENT_WAIT_LIST)
        E(CL_INVALID_EVENT) E(CL_INVALID_OPERATION) E(CL_INVALID_GL_OBJECT)
        E(CL_INVALID_BUFFER_SIZE) E(CL_INVALID_MIP_LEVEL)
        E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_INVALID_PROPERTY)
        E(CL_INVALID_IMAGE_DESCRIPTOR) E(CL_INVALID_COMPILER_OPTIONS)
        E(CL_INVALID_LINKER_OPTIONS) E(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL driver installed)";
    }
    return "unknown OpenCL error";
}

u3d_status u3d_cl_check(cl_int rc, const char *what, u3d_error *err)
{
    if (rc == CL_SUCCESS)
        return U3D_OK;
    u3d_status code = U3D_ERR_DEVICE;
    const char *hint = "";
    if (rc == CL_MEM_OBJECT_ALLOCATION_FAILURE || rc == CL_OUT_OF_RESOURCES ||
        rc == CL_OUT_OF_HOST_MEMORY) {
        code = U3D_ERR_OOM;
        hint = " (device out of memory: use a smaller patch, tile or "
               "--max-memory)";
    }
    return u3d_seterr(err, code, "OpenCL call %s failed: %s (%d)%s", what,
                      u3d_cl_errname(rc), (int)rc, hint);
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void dev_str(cl_device_id d, cl_device_info what, char *buf, size_t n)
{
    buf[0] = 0;
    if (clGetDeviceInfo(d, what, n, buf, NULL) != CL_SUCCESS)
        snprintf(buf, n, "?");
    buf[n - 1] = 0;
}

static void plat_str(cl_platform_id p, cl_platform_info what, char *buf,
                     size_t n)
{
    buf[0] = 0;
    if (clGetPlatformInfo(p, what, n, buf, NULL) != CL_SUCCESS)
        snprintf(buf, n, "?");
    buf[n - 1] = 0;
}

#define MAXP 16
#define MAXD 32

typedef struct devlist {
    cl_uint np;
    cl_platform_id plats[MAXP];
    cl_uint nd[MAXP];
    cl_device_id devs[MAXP][MAXD];
} devlist;

static u3d_status enumerate(devlist *L, u3d_error *err)
{
    memset(L, 0, sizeof *L);
    cl_int rc = clGetPlatformIDs(MAXP, L->plats, &L->np);
    if (rc != CL_SUCCESS || L->np == 0)
        return u3d_seterr(err, U3D_ERR_DEVICE,
                          "no OpenCL platform found (%s): install a driver, "
                          "e.g. 'apt-get install pocl-opencl-icd' for the CPU",
                          u3d_cl_errname(rc));
    if (L->np > MAXP)
        L->np = MAXP;
    for (cl_uint p = 0; p < L->np; p++) {
        cl_uint n = 0;
        if (clGetDeviceIDs(L->plats[p], CL_DEVICE_TYPE_ALL, MAXD, L->devs[p],
                           &n) != CL_SUCCESS)
            n = 0;
        L->nd[p] = n > MAXD ? MAXD : n;
    }
    return U3D_OK;
}

/* OpenCL devices, then CUDA devices when the cuDNN backend is built; a
 * machine without OpenCL still lists its CUDA devices. */
/* Which conv kernels each pass and shape bucket runs on the device of
 * key (conv3d_igemm.c's u3d_cl_conv_path_at, without a context): the
 * environment, a "conv3d" "path" row, the "conv3d_igemm" "use" rows
 * (`unet3d tune` sets them), else igemm on GPUs, direct (or Winograd)
 * on CPUs. */
static void conv_paths(const u3d_tune_key *key, int gpu, char *out,
                       size_t n)
{
    const char *env = getenv("UNET3D_CONV_PATH");
    if (env && (!strcmp(env, "igemm") || !strcmp(env, "direct"))) {
        snprintf(out, n, "%s everywhere (UNET3D_CONV_PATH)", env);
        return;
    }
    char dir[900];
    u3d_cache_dir(dir, sizeof dir);
    u3d_tuning t;
    u3d_error err = {0};
    if (u3d_tuning_init(&t, key, dir, &err)) {
        snprintf(out, n, "unknown (%s)", err.msg);
        return;
    }
    int path = u3d_tuning_get(&t, "conv3d", U3D_TUNE_ANY, U3D_TUNE_ANY,
                              "path", 0, NULL);
    if (path == 1 || path == 2) {
        snprintf(out, n, "%s everywhere (tuning row conv3d path %d)",
                 path == 2 ? "igemm" : "direct", path);
        u3d_tuning_free(&t);
        return;
    }
    static const char *const passes[] = {"fwd", "data", "weight"};
    static const char *const buckets[] = {"small", "large"};
    size_t used = 0;
    out[0] = 0;
    /* Winograd (conv3d_wino.c's u3d_cl_wino_use): every 3x3x3 pass past
     * the implicit GEMM, UNET3D_WINOGRAD or the "winograd"
     * "use" rows, by default on CPUs, from "from_cin" channels */
    const char *wenv = getenv("UNET3D_WINOGRAD");
    int wforce = wenv && !strcmp(wenv, "on") ? 1
                 : wenv && !strcmp(wenv, "off") ? 0
                                                : -1;
    for (int p = 0; p < 3; p++)
        for (int b = 0; b < 2 && used < n; b++) {
            const char *src, *wsrc = "UNET3D_WINOGRAD";
            int use = u3d_tuning_get(&t, "conv3d_igemm", passes[p],
                                     buckets[b], "use", gpu, &src);
            int wino = 0, from = 16;
            if (!use) {
                wino = wforce >= 0
                           ? wforce
                           : u3d_tuning_get(&t, "winograd", passes[p],
                                            buckets[b], "use", !gpu, &wsrc);
                from = u3d_tuning_get(&t, "winograd", passes[p], buckets[b],
                                      "from_cin", p ? 8 : 16, NULL);
            }
            if (wino)
                used += (size_t)snprintf(
                    out + used, n - used,
                    "%s%s/%s winograd from %d ch, else direct (%s)",
                    used ? ", " : "", passes[p], buckets[b], from, wsrc);
            else
                used += (size_t)snprintf(out + used, n - used,
                                         "%s%s/%s %s (%s)", used ? ", " : "",
                                         passes[p], buckets[b],
                                         use ? "igemm" : "direct", src);
        }
    u3d_tuning_free(&t);
}

u3d_status u3d_list_devices(FILE *out, u3d_error *err)
{
    devlist L;
    u3d_error cl_err = {0};
    u3d_status st = enumerate(&L, &cl_err);
    if (st)
        fprintf(out, "opencl   none: %s\n", cl_err.msg);
    for (cl_uint p = 0; !st && p < L.np; p++) {
        char pn[128];
        plat_str(L.plats[p], CL_PLATFORM_NAME, pn, sizeof pn);
        for (cl_uint d = 0; d < L.nd[p]; d++) {
            char dn[128], ver[128];
            cl_ulong mem = 0;
            cl_uint cu = 0;
            cl_device_type t = 0;
            dev_str(L.devs[p][d], CL_DEVICE_NAME, dn, sizeof dn);
            dev_str(L.devs[p][d], CL_DEVICE_VERSION, ver, sizeof ver);
            clGetDeviceInfo(L.devs[p][d], CL_DEVICE_GLOBAL_MEM_SIZE,
                            sizeof mem, &mem, NULL);
            clGetDeviceInfo(L.devs[p][d], CL_DEVICE_MAX_COMPUTE_UNITS,
                            sizeof cu, &cu, NULL);
            clGetDeviceInfo(L.devs[p][d], CL_DEVICE_TYPE, sizeof t, &t, NULL);
            fprintf(out, "opencl %u:%u  %s | %s | %s | %u compute units | "
                         "%.0f MiB | %s\n",
                    p, d, pn, dn,
                    (t & CL_DEVICE_TYPE_GPU)   ? "GPU"
                    : (t & CL_DEVICE_TYPE_CPU) ? "CPU"
                                               : "other",
                    cu, (double)mem / (1024.0 * 1024.0), ver);
            u3d_tune_key key;
            char how[2048];
            snprintf(key.platform, sizeof key.platform, "%s", pn);
            snprintf(key.device, sizeof key.device, "%s", dn);
            dev_str(L.devs[p][d], CL_DRIVER_VERSION, key.driver,
                    sizeof key.driver);
            u3d_tuning_describe(&key, how, sizeof how);
            fprintf(out, "         tuning: %s\n", how);
            conv_paths(&key,
                       (t & (CL_DEVICE_TYPE_GPU |
                             CL_DEVICE_TYPE_ACCELERATOR)) &&
                           !strstr(pn, "Oclgrind"),
                       how, sizeof how);
            fprintf(out, "         conv path (conv3d_igemm, winograd use): "
                         "%s\n",
                    how);
        }
    }
#ifdef U3D_HAVE_CUDNN
    U3D_TRY(u3d_cudnn_list_devices(out, err));
#else
    (void)err;
#endif
    return U3D_OK;
}

/* The n-th device of a type over all platforms (-1: count them). */
static int nth_of_type(const devlist *L, cl_device_type want, int n,
                       cl_uint *pp, cl_uint *dd)
{
    int k = 0;
    for (cl_uint ip = 0; ip < L->np; ip++)
        for (cl_uint id = 0; id < L->nd[ip]; id++) {
            cl_device_type t = 0;
            clGetDeviceInfo(L->devs[ip][id], CL_DEVICE_TYPE, sizeof t, &t,
                            NULL);
            if (!(t & want))
                continue;
            if (k == n) {
                *pp = ip;
                *dd = id;
            }
            k++;
        }
    return k;
}

/* Picks a device from spec: NULL/"" = first GPU else first device; "P:D";
 * "gpu:N"/"cpu:N" (the N-th GPU/CPU device); "auto:N" (the N-th GPU modulo
 * their number, else the first device: one rank per device under MPI);
 * "gpu"/"cpu"; or a substring of "platform device". */
static u3d_status choose(const devlist *L, const char *spec, cl_uint *pp,
                         cl_uint *dd, u3d_error *err)
{
    unsigned p, d;
    char c, kind[8];
    if (spec && sscanf(spec, "%7[a-z]:%u%c", kind, &d, &c) == 2 &&
        (!strcmp(kind, "gpu") || !strcmp(kind, "cpu") ||
         !strcmp(kind, "auto"))) {
        cl_device_type t = kind[0] == 'c' ? CL_DEVICE_TYPE_CPU
                                          : CL_DEVICE_TYPE_GPU;
        int n = nth_of_type(L, t, -1, pp, dd);
        if (kind[0] == 'a' && n > 0) {
            nth_of_type(L, t, (int)(d % (unsigned)n), pp, dd);
            return U3D_OK;
        }
        if (kind[0] == 'a')
            return choose(L, NULL, pp, dd, err);
        if ((int)d >= n)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "OpenCL device '%s' does not exist (%d %s "
                              "device(s)); 'unet3d devices' lists them",
                              spec, n, kind);
        nth_of_type(L, t, (int)d, pp, dd);
        return U3D_OK;
    }
    if (spec && sscanf(spec, "%u:%u%c", &p, &d, &c) == 2) {
        if (p >= L->np || d >= L->nd[p])
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "OpenCL device '%s' does not exist; "
                              "'unet3d devices' lists them",
                              spec);
        *pp = p;
        *dd = d;
        return U3D_OK;
    }
    char want[256] = "";
    if (spec)
        snprintf(want, sizeof want, "%s", spec);
    lower(want);
    for (int pass = 0; pass < 2; pass++) {
        for (cl_uint ip = 0; ip < L->np; ip++) {
            for (cl_uint id = 0; id < L->nd[ip]; id++) {
                cl_device_type t = 0;
                clGetDeviceInfo(L->devs[ip][id], CL_DEVICE_TYPE, sizeof t, &t,
                                NULL);
                int ok;
                if (!want[0])
                    ok = pass == 1 || (t & CL_DEVICE_TYPE_GPU);
                else if (!strcmp(want, "gpu"))
                    ok = (t & CL_DEVICE_TYPE_GPU) != 0;
                else if (!strcmp(want, "cpu"))
                    ok = (t & CL_DEVICE_TYPE_CPU) != 0;
                else {
                    char pn[128], dn[128], full[300];
                    plat_str(L->plats[ip], CL_PLATFORM_NAME, pn, sizeof pn);
                    dev_str(L->devs[ip][id], CL_DEVICE_NAME, dn, sizeof dn);
                    snprintf(full, sizeof full, "%s %s", pn, dn);
                    lower(full);
                    ok = strstr(full, want) != NULL;
                }
                if (ok) {
                    *pp = ip;
                    *dd = id;
                    return U3D_OK;
                }
            }
        }
    }
    if (!want[0])
        return u3d_seterr(err, U3D_ERR_DEVICE,
                          "no OpenCL device found on %u platform(s)", L->np);
    return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                      "no OpenCL device matches '%s'; 'unet3d devices' lists "
                      "them (give P:D or part of the name)",
                      spec);
}

static int mkdir_p(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST)
                return -1;
            *s = '/';
        }
    }
    return (mkdir(tmp, 0755) && errno != EEXIST) ? -1 : 0;
}

static void init_cache_dir(u3d_cl *cl)
{
    cl->cache_dir[0] = 0;
    if (cl->is_oclgrind)
        return; /* the simulator's binaries are not worth keeping */
    u3d_cache_dir(cl->cache_dir, sizeof cl->cache_dir);
    if (cl->cache_dir[0] && mkdir_p(cl->cache_dir))
        cl->cache_dir[0] = 0; /* unwritable: build from source every time */
}

u3d_status u3d_cl_create(const char *spec, int profile, u3d_cl **out,
                         u3d_error *err)
{
    devlist L;
    cl_uint p = 0, d = 0;
    cl_int rc;
    *out = NULL;
    if (!spec || !spec[0])
        spec = getenv("UNET3D_DEVICE");
    U3D_TRY(enumerate(&L, err));
    U3D_TRY(choose(&L, spec, &p, &d, err));
    u3d_cl *cl = calloc(1, sizeof *cl);
    if (!cl)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    cl->platform = L.plats[p];
    cl->device = L.devs[p][d];
    cl->profile = profile;
    plat_str(cl->platform, CL_PLATFORM_NAME, cl->platform_name,
             sizeof cl->platform_name);
    dev_str(cl->device, CL_DEVICE_NAME, cl->device_name,
            sizeof cl->device_name);
    dev_str(cl->device, CL_DEVICE_VENDOR, cl->device_vendor,
            sizeof cl->device_vendor);
    dev_str(cl->device, CL_DRIVER_VERSION, cl->driver_version,
            sizeof cl->driver_version);
    clGetDeviceInfo(cl->device, CL_DEVICE_TYPE, sizeof cl->type, &cl->type,
                    NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_GLOBAL_MEM_SIZE,
                    sizeof cl->global_mem, &cl->global_mem, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE,
                    sizeof cl->max_alloc, &cl->max_alloc, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_MAX_WORK_GROUP_SIZE,
                    sizeof cl->max_wg, &cl->max_wg, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_MAX_COMPUTE_UNITS,
                    sizeof cl->compute_units, &cl->compute_units, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_LOCAL_MEM_SIZE,
                    sizeof cl->local_mem, &cl->local_mem, NULL);
    cl->is_oclgrind = strstr(cl->platform_name, "Oclgrind") != NULL;
    cl->is_cpu = (cl->type & CL_DEVICE_TYPE_CPU) != 0;
    init_cache_dir(cl);
    u3d_tune_key key;
    snprintf(key.platform, sizeof key.platform, "%s", cl->platform_name);
    snprintf(key.device, sizeof key.device, "%s", cl->device_name);
    snprintf(key.driver, sizeof key.driver, "%s", cl->driver_version);
    char tdir[512];
    u3d_cache_dir(tdir, sizeof tdir);
    u3d_status tst = u3d_tuning_init(&cl->tuning, &key, tdir, err);
    if (tst) {
        free(cl);
        return tst;
    }
    if (cl->tuning.note[0]) /* a refused tuned file: said once, then ignored */
        fprintf(stderr, "unet3d: %s\n", cl->tuning.note);

    cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                      (cl_context_properties)cl->platform, 0};
    cl->ctx = clCreateContext(props, 1, &cl->device, NULL, NULL, &rc);
    if (rc != CL_SUCCESS) {
        u3d_tuning_free(&cl->tuning);
        free(cl);
        return u3d_cl_check(rc, "clCreateContext", err);
    }
    cl->queue = clCreateCommandQueue(
        cl->ctx, cl->device, profile ? CL_QUEUE_PROFILING_ENABLE : 0, &rc);
    if (rc != CL_SUCCESS) {
        clReleaseContext(cl->ctx);
        u3d_tuning_free(&cl->tuning);
        free(cl);
        return u3d_cl_check(rc, "clCreateCommandQueue", err);
    }
    *out = cl;
    return U3D_OK;
}

void u3d_cl_destroy(u3d_cl *cl)
{
    if (!cl)
        return;
    if (cl->queue)
        clFinish(cl->queue);
    for (u3d_cl_kernel *k = cl->kernels, *n; k; k = n) {
        n = k->next;
        clReleaseKernel(k->k);
        free(k);
    }
    for (u3d_cl_program *p = cl->programs, *n; p; p = n) {
        n = p->next;
        clReleaseProgram(p->prog);
        free(p->options);
        free(p);
    }
    for (u3d_cl_prof *p = cl->prof, *n; p; p = n) {
        n = p->next;
        free(p);
    }
    for (int i = 0; i < U3D_CL_SCRATCH_SLOTS; i++)
        if (cl->scratch[i])
            clReleaseMemObject(cl->scratch[i]);
    for (size_t i = 0; i < cl->nwcache; i++)
        clReleaseMemObject(cl->wcache[i].u);
    free(cl->wcache);
    for (size_t i = 0; i < cl->ngrave; i++)
        clReleaseMemObject(cl->graveyard[i]);
    free(cl->graveyard);
    if (cl->queue)
        clReleaseCommandQueue(cl->queue);
    if (cl->ctx)
        clReleaseContext(cl->ctx);
    u3d_tuning_free(&cl->tuning);
    free(cl);
}

/* Releases m, or under oclgrind keeps it until destroy (see graveyard). */
static void retire(u3d_cl *cl, cl_mem m)
{
    if (cl->is_oclgrind && cl->ngrave == cl->capgrave) {
        size_t cap = cl->capgrave ? 2 * cl->capgrave : 64;
        cl_mem *g = realloc(cl->graveyard, cap * sizeof *g);
        if (g) {
            cl->graveyard = g;
            cl->capgrave = cap;
        }
    }
    if (cl->is_oclgrind && cl->ngrave < cl->capgrave)
        cl->graveyard[cl->ngrave++] = m;
    else
        clReleaseMemObject(m);
}

u3d_status u3d_cl_scratch(u3d_cl *cl, int slot, size_t bytes, cl_mem *out,
                          u3d_error *err)
{
    if (slot < 0 || slot >= U3D_CL_SCRATCH_SLOTS)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "scratch slot %d out of range [0, %d)", slot,
                          U3D_CL_SCRATCH_SLOTS);
    if (bytes == 0)
        bytes = 4;
    if (cl->scratch[slot] && cl->scratch_bytes[slot] >= bytes) {
        *out = cl->scratch[slot];
        return U3D_OK;
    }
    /* grow geometrically so that slowly growing requests stay cheap */
    size_t want = bytes < 2 * cl->scratch_bytes[slot]
                      ? 2 * cl->scratch_bytes[slot]
                      : bytes;
    if (want > cl->max_alloc)
        want = bytes;
    cl_int rc;
    cl_mem m = clCreateBuffer(cl->ctx, CL_MEM_READ_WRITE, want, NULL, &rc);
    if (rc != CL_SUCCESS)
        return u3d_cl_check(rc, "clCreateBuffer(scratch)", err);
    if (cl->scratch[slot])
        retire(cl, cl->scratch[slot]);
    cl->scratch[slot] = m;
    cl->scratch_bytes[slot] = want;
    *out = m;
    return U3D_OK;
}

u3d_status u3d_cl_wcache_get(u3d_cl *cl, cl_mem w, const int key[4],
                             size_t bytes, u3d_cl_wcache **out,
                             u3d_error *err)
{
    *out = NULL;
    u3d_cl_wcache *e = NULL;
    for (size_t i = 0; i < cl->nwcache && !e; i++)
        if (cl->wcache[i].w == w)
            e = &cl->wcache[i];
    if (e && e->bytes == bytes && !memcmp(e->key, key, sizeof e->key)) {
        *out = e;
        return U3D_OK;
    }
    if (e) /* another layout (tuning changed): remade */
        u3d_cl_wcache_drop(cl, w);
    size_t budget = (size_t)u3d_cl_tune(cl, "winograd", "wcache_mb", 1024)
                    << 20;
    if (bytes > cl->max_alloc || cl->wcache_bytes + bytes > budget)
        return U3D_OK;
    if (cl->nwcache == cl->capwcache) {
        size_t cap = cl->capwcache ? 2 * cl->capwcache : 16;
        u3d_cl_wcache *g = realloc(cl->wcache, cap * sizeof *g);
        if (!g)
            return u3d_seterr(err, U3D_ERR_OOM,
                              "out of host memory (weight cache)");
        cl->wcache = g;
        cl->capwcache = cap;
    }
    cl_int rc;
    cl_mem m = clCreateBuffer(cl->ctx, CL_MEM_READ_WRITE, bytes, NULL, &rc);
    if (rc != CL_SUCCESS) /* the cache is optional: transform into scratch */
        return U3D_OK;
    e = &cl->wcache[cl->nwcache++];
    e->w = w;
    e->version = 0;
    memcpy(e->key, key, sizeof e->key);
    e->u = m;
    e->bytes = bytes;
    cl->wcache_bytes += bytes;
    *out = e;
    return U3D_OK;
}

void u3d_cl_wcache_drop(u3d_cl *cl, cl_mem w)
{
    for (size_t i = 0; i < cl->nwcache; i++)
        if (cl->wcache[i].w == w) {
            retire(cl, cl->wcache[i].u);
            cl->wcache_bytes -= cl->wcache[i].bytes;
            cl->wcache[i] = cl->wcache[--cl->nwcache];
            return;
        }
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ 0xff; /* separator so ("ab","c") != ("a","bc") */
}

static void cache_path(const u3d_cl *cl, const char *src, const char *opts,
                       char *path, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    h = fnv1a(h, src);
    h = fnv1a(h, opts);
    h = fnv1a(h, cl->platform_name);
    h = fnv1a(h, cl->device_name);
    h = fnv1a(h, cl->driver_version);
    snprintf(path, n, "%s/%016llx.bin", cl->cache_dir, (unsigned long long)h);
}

/* Tries the cached binary; returns NULL when absent or unusable. */
static cl_program load_cached(u3d_cl *cl, const char *path, const char *opts)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bin = len > 0 ? malloc((size_t)len) : NULL;
    if (!bin || fread(bin, 1, (size_t)len, f) != (size_t)len) {
        free(bin);
        fclose(f);
        return NULL;
    }
    fclose(f);
    size_t sz = (size_t)len;
    cl_int rc, st;
    const unsigned char *b = bin;
    cl_program prog = clCreateProgramWithBinary(cl->ctx, 1, &cl->device, &sz,
                                                &b, &st, &rc);
    free(bin);
    if (rc != CL_SUCCESS || st != CL_SUCCESS)
        return NULL;
    if (clBuildProgram(prog, 1, &cl->device, opts, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    return prog;
}

/* Stores the program binary atomically (temp file + rename); best effort. */
static void save_cached(u3d_cl *cl, cl_program prog, const char *path)
{
    size_t sz = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof sz, &sz,
                         NULL) != CL_SUCCESS ||
        sz == 0)
        return;
    unsigned char *bin = malloc(sz);
    if (!bin)
        return;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) ==
        CL_SUCCESS) {
        /* a cache: a file that cannot be written is simply not cached */
        u3d_outfile o;
        if (!u3d_outfile_open(&o, path, NULL)) {
            FILE *f = u3d_outfile_stream(&o, NULL);
            if (f && fwrite(bin, 1, sz, f) == sz)
                u3d_outfile_commit(&o, NULL);
            else
                u3d_outfile_abort(&o);
        }
    }
    free(bin);
    (void)cl;
}

/* PoCL's compiler runs in this process and prints its diagnostics ("4
 * warnings generated.") on stderr, which is the user's terminal: while a
 * program builds, stderr goes to a temporary file, shown only when the
 * build fails or UNET3D_VERBOSE=1 (the build log is in the error message
 * too). *saved receives the real stderr, -1 when nothing was redirected. */
static FILE *hush_begin(int *saved)
{
    *saved = -1;
    FILE *t = tmpfile();
    if (!t)
        return NULL;
    fflush(stderr);
    *saved = dup(2);
    if (*saved < 0 || dup2(fileno(t), 2) < 0) {
        if (*saved >= 0)
            close(*saved);
        *saved = -1;
        fclose(t);
        return NULL;
    }
    return t;
}

static void hush_end(FILE *t, int saved, int show)
{
    if (saved < 0)
        return;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    const char *v = getenv("UNET3D_VERBOSE");
    if (show || (v && v[0] == '1')) {
        char buf[4096];
        size_t n;
        rewind(t);
        while ((n = fread(buf, 1, sizeof buf, t)) > 0)
            fwrite(buf, 1, n, stderr);
    }
    fclose(t);
}

static u3d_status build_program(u3d_cl *cl, const char *name,
                                const char *options, cl_program *out,
                                u3d_error *err)
{
    const char *src = u3d_cl_source(name);
    if (!src)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "no OpenCL program cl/%s.cl is built into unet3d",
                          name);
    char opts[1024];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 %s", options ? options : "");
    char path[600] = "";
    if (cl->cache_dir[0]) {
        cache_path(cl, src, opts, path, sizeof path);
        cl_program p = load_cached(cl, path, opts);
        if (p) {
            *out = p;
            return U3D_OK;
        }
    }
    cl_int rc;
    cl_program prog = clCreateProgramWithSource(cl->ctx, 1, &src, NULL, &rc);
    if (rc != CL_SUCCESS)
        return u3d_cl_check(rc, "clCreateProgramWithSource", err);
    int saved;
    FILE *hush = hush_begin(&saved);
    rc = clBuildProgram(prog, 1, &cl->device, opts, NULL, NULL);
    hush_end(hush, saved, rc != CL_SUCCESS);
    if (rc != CL_SUCCESS) {
        char log[700] = "";
        clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG,
                              sizeof log - 1, log, NULL);
        log[sizeof log - 1] = 0;
        clReleaseProgram(prog);
        return u3d_seterr(err, U3D_ERR_DEVICE,
                          "building cl/%s.cl for %s failed (%s), options "
                          "'%s': %s",
                          name, cl->device_name, u3d_cl_errname(rc), opts,
                          log);
    }
    if (path[0])
        save_cached(cl, prog, path);
    *out = prog;
    return U3D_OK;
}

u3d_status u3d_cl_kernel_get(u3d_cl *cl, const char *program,
                             const char *kernel, const char *options,
                             cl_kernel *out, u3d_error *err)
{
    const char *o = options ? options : "";
    u3d_cl_program *p;
    for (p = cl->programs; p; p = p->next)
        if (!strcmp(p->name, program) && !strcmp(p->options, o))
            break;
    if (p) {
        for (u3d_cl_kernel *k = cl->kernels; k; k = k->next)
            if (k->prog == p && !strcmp(k->name, kernel)) {
                *out = k->k;
                return U3D_OK;
            }
    } else {
        cl_program prog;
        U3D_TRY(build_program(cl, program, o, &prog, err));
        p = calloc(1, sizeof *p);
        if (!p || !(p->options = strdup(o))) {
            free(p);
            clReleaseProgram(prog);
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        }
        snprintf(p->name, sizeof p->name, "%s", program);
        p->prog = prog;
        p->next = cl->programs;
        cl->programs = p;
    }
    cl_int rc;
    cl_kernel k = clCreateKernel(p->prog, kernel, &rc);
    if (rc != CL_SUCCESS)
        return u3d_seterr(err, U3D_ERR_DEVICE,
                          "kernel %s not found in cl/%s.cl: %s", kernel,
                          program, u3d_cl_errname(rc));
    u3d_cl_kernel *e = calloc(1, sizeof *e);
    if (!e) {
        clReleaseKernel(k);
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    e->prog = p;
    snprintf(e->name, sizeof e->name, "%s", kernel);
    e->k = k;
    e->next = cl->kernels;
    cl->kernels = e;
    *out = k;
    return U3D_OK;
}

static void prof_add(u3d_cl *cl, const char *label, double ms)
{
    u3d_cl_prof *p;
    for (p = cl->prof; p; p = p->next)
        if (!strcmp(p->label, label))
            break;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p)
            return;
        snprintf(p->label, sizeof p->label, "%s", label);
        p->next = cl->prof;
        cl->prof = p;
    }
    p->ms += ms;
    p->calls++;
}

u3d_status u3d_cl_launch(u3d_cl *cl, cl_kernel k, const char *label,
                         cl_uint dims, const size_t *gws, const size_t *lws,
                         u3d_error *err)
{
    size_t g[3];
    for (cl_uint i = 0; i < dims; i++) {
        if (gws[i] == 0)
            return U3D_OK; /* nothing to do */
        g[i] = lws ? u3d_round_up(gws[i], lws[i]) : gws[i];
    }
    cl_event ev = NULL;
    cl_int rc = clEnqueueNDRangeKernel(cl->queue, k, dims, NULL, g, lws, 0,
                                       NULL, cl->profile ? &ev : NULL);
    if (rc != CL_SUCCESS) {
        char what[128];
        snprintf(what, sizeof what, "clEnqueueNDRangeKernel(%s)", label);
        return u3d_cl_check(rc, what, err);
    }
    if (ev) {
        cl_ulong t0 = 0, t1 = 0;
        rc = clWaitForEvents(1, &ev);
        if (rc == CL_SUCCESS) {
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0,
                                    &t0, NULL);
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1,
                                    &t1, NULL);
            prof_add(cl, label, (double)(t1 - t0) * 1e-6);
        }
        clReleaseEvent(ev);
        if (rc != CL_SUCCESS) {
            char what[128];
            snprintf(what, sizeof what, "kernel %s", label);
            return u3d_cl_check(rc, what, err);
        }
    }
    return U3D_OK;
}

void u3d_cl_profile_print(const u3d_cl *cl, FILE *out)
{
    if (!cl->profile || !cl->prof)
        return;
    double total = 0;
    for (const u3d_cl_prof *p = cl->prof; p; p = p->next)
        total += p->ms;
    fprintf(out, "%-40s %8s %12s %7s\n", "kernel", "calls", "total ms", "share");
    for (const u3d_cl_prof *p = cl->prof; p; p = p->next)
        fprintf(out, "%-40s %8ld %12.3f %6.1f%%\n", p->label, p->calls, p->ms,
                total > 0 ? 100.0 * p->ms / total : 0.0);
}

u3d_status u3d_cl_set_profiling(u3d_cl *cl, int on, u3d_error *err)
{
    cl_int rc = clFinish(cl->queue);
    if (rc != CL_SUCCESS)
        return u3d_cl_check(rc, "clFinish", err);
    cl_command_queue q = clCreateCommandQueue(
        cl->ctx, cl->device, on ? CL_QUEUE_PROFILING_ENABLE : 0, &rc);
    if (rc != CL_SUCCESS)
        return u3d_cl_check(rc, "clCreateCommandQueue", err);
    clReleaseCommandQueue(cl->queue);
    cl->queue = q;
    cl->profile = on;
    return U3D_OK;
}

void u3d_cl_profile_reset(u3d_cl *cl)
{
    for (u3d_cl_prof *p = cl->prof, *n; p; p = n) {
        n = p->next;
        free(p);
    }
    cl->prof = NULL;
}

int u3d_cl_profile_entry(const u3d_cl *cl, int i, const char **label,
                         double *ms, long *calls)
{
    const u3d_cl_prof *p = cl->prof;
    for (; p && i > 0; i--)
        p = p->next;
    if (!p)
        return 0;
    *label = p->label;
    *ms = p->ms;
    *calls = p->calls;
    return 1;
}
