/* Per-device tuning parameters, kept as data (CLBlast style). The first
 * row whose device substring matches (case-sensitive, "" matches any) and
 * whose family/param match wins. Rows were measured with `unet3d bench`. */
#include <string.h>
#include "backends/opencl/runtime.h"

typedef struct tune_row {
    const char *device; /* substring of "platform device" */
    const char *family; /* kernel family, e.g. "conv3d" */
    const char *param;
    int value;
} tune_row;

static const tune_row rows[] = {
    /* filled per layer family as kernels are tuned; the first match wins,
     * so device rows come before catch-all ones */

    /* Memory-bound layers on PoCL's CPU device: one work-item per
     * work-group walking a contiguous chunk with full SIMD loads beats
     * PoCL's vectorisation across work-items (which gives up on loops
     * inside work-items). maxpool3d: vx windows per vector, per vectors
     * per work-item (capped at the row: whole rows), lws items per group.
     * batchnorm, softmax_ce: vw floats per load, lws items per group,
     * chunk voxels per group. */
    {"Portable Computing Language", "maxpool3d", "vx", 8},
    {"Portable Computing Language", "maxpool3d", "per", 1 << 20},
    {"Portable Computing Language", "maxpool3d", "lws", 8},
    {"Portable Computing Language", "batchnorm", "vw", 16},
    {"Portable Computing Language", "batchnorm", "lws", 1},
    {"Portable Computing Language", "batchnorm", "chunk", 16384},
    {"Portable Computing Language", "softmax_ce", "vw", 16},
    {"Portable Computing Language", "softmax_ce", "lws", 1},
    {"Portable Computing Language", "softmax_ce", "chunk", 1024},
    /* elementwise (relu, sgd, fill, crop-concat slabs): vw floats per
     * work-item; crop_concat: whole rows per work-item (per = groups of vw
     * floats, capped at the row) in work-groups of lws */
    {"Portable Computing Language", "elementwise", "vw", 8},
    {"Portable Computing Language", "elementwise", "lws", 64},
    {"Portable Computing Language", "crop_concat", "per", 1 << 20},
    {"Portable Computing Language", "crop_concat", "lws", 8},
    {"", "elementwise", "lws", 256},

    /* conv3d (conv3d.c, cl/conv3d.cl). Forward / data gradient:
     * vw = vector width along positions, cob = most output channels per
     * work-item, acc = most accumulator vectors (cob * nv), nv = most
     * vectors per work-item, lws = work-group size, tapout_cin = input
     * channels from which tap rows loop outside the channels (skipping
     * rows of zero padding; default 16). Weight gradient: bw_vw,
     * bw_cob, bw_lws; positions split in chunks of bw_chunk..bw_maxchunk
     * until there are bw_items work-items. slab_kb: size of the input of
     * one slab of output planes; the convolutions run slab by slab (and
     * make their zero-padded copies per slab).
     * Unlisted devices (GPUs) get the defaults in conv3d.c: vw 4, cob 8,
     * acc 8, lws 64, bw_vw 4, bw_cob 4, bw_chunk 4096, bw_maxchunk 65536,
     * bw_items 4096, slab_kb 262144.
     * PoCL on AVX-512 (2-core EPYC, measured): zmm vectors, 16
     * accumulators; chunks of 16k positions keep a work-group's dy chunk in
     * L2; 8 MiB slabs stay in L3 while all channel blocks read them. */
    {"avx512", "conv3d", "vw", 16},
    {"avx512", "conv3d", "cob", 8},
    {"avx512", "conv3d", "acc", 16},
    {"avx512", "conv3d", "lws", 64},
    {"avx512", "conv3d", "bw_vw", 16},
    {"avx512", "conv3d", "bw_cob", 8},
    {"avx512", "conv3d", "bw_chunk", 1024},
    {"avx512", "conv3d", "bw_maxchunk", 16384},
    {"avx512", "conv3d", "bw_items", 256},
    {"avx512", "conv3d", "slab_kb", 8192},
    /* other PoCL CPUs (AVX2: ymm vectors); not measured here */
    {"pthread", "conv3d", "vw", 8},
    {"pthread", "conv3d", "acc", 12},
    {"pthread", "conv3d", "bw_vw", 8},
    {"pthread", "conv3d", "bw_cob", 6},
    {"pthread", "conv3d", "bw_chunk", 1024},
    {"pthread", "conv3d", "bw_maxchunk", 16384},
    {"pthread", "conv3d", "bw_items", 256},
    {"pthread", "conv3d", "slab_kb", 8192},
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
