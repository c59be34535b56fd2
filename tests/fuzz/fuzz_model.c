/* libFuzzer harness for the .u3d container and model files: the input is
 * written to a per-process temporary file, read with u3d_ckpt_read, and
 * loaded onto the host reference backend with u3d_model_load (odd input
 * sizes) or u3d_model_load_inference (even). Success must give usable
 * results; failure no data and a one-line message.
 * The CRC-32 in front of the end marker is recomputed before the file is
 * written (when the input is long enough to hold it): a random mutation
 * would otherwise never get past the checksum to the parser.
 * Build and run: tools/fuzz.sh [SECONDS] (seeds: tests/fuzz/corpus/). */
#include "fuzz_util.h"
#include "unet3d/unet3d.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static u3d_backend *be;

static void free_backend(void)
{
    u3d_backend_destroy(be);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u3d_error err;
    if (!be) {
        if (u3d_backend_ref_create(&be, &err))
            __builtin_trap();
        atexit(free_backend);
    }
    uint8_t *copy = malloc(size + 1);
    if (!copy)
        __builtin_trap();
    memcpy(copy, data, size);
    if (size >= 12) {
        uint32_t crc = u3d_crc32(0, copy, size - 12);
        for (int i = 0; i < 4; i++)
            copy[size - 12 + i] = (uint8_t)(crc >> 8 * i);
    }
    const char *path = fuzz_write("in.u3d", copy, size);
    free(copy);

    u3d_ckpt c;
    memset(&c, 0xa5, sizeof c); /* the call must set what it owns */
    if (u3d_ckpt_read(path, &c, &err) == U3D_OK) {
        if (!c.meta || c.ntensors < 0 || (c.ntensors && !c.tensors))
            __builtin_trap();
        for (int i = 0; i < c.ntensors; i++) {
            const u3d_ckpt_tensor *t = &c.tensors[i];
            if (!t->data || !memchr(t->name, 0, sizeof t->name) ||
                u3d_ckpt_find(&c, t->name) == NULL)
                __builtin_trap();
            fuzz_touch(t->data, u3d_shape_count(t->shape));
        }
        fuzz_note("checkpoint", "ok");
        char buf[64];
        u3d_ckpt_meta_get(&c, "format", buf, sizeof buf);
        u3d_ckpt_free(&c);
    } else {
        if (c.meta || c.tensors || c.ntensors)
            __builtin_trap(); /* failure must leave no data and a message */
        fuzz_check_error(&err);
    }

    u3d_net *net = (u3d_net *)1;
    u3d_model_meta m;
    u3d_status st = size & 1 ? u3d_model_load(path, be, &net, &m, &err)
                             : u3d_model_load_inference(path, be, &net, &m,
                                                        &err);
    if (st == U3D_OK) {
        if (!net || u3d_net_config_check(u3d_net_get_config(net), &err))
            __builtin_trap(); /* success must mean a usable network */
        for (int i = 0; i < u3d_net_num_params(net); i++) {
            u3d_param *p = u3d_net_param(net, i);
            if (!p->value.buf)
                __builtin_trap();
        }
        fuzz_note("model", "ok");
        u3d_net_destroy(net);
    } else {
        if (net)
            __builtin_trap();
        fuzz_check_error(&err);
    }
    return 0;
}
