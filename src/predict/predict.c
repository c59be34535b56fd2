/* Overlap-tile prediction of whole volumes (see include/unet3d/predict.h):
 * each tile's input is gathered on the host (mirrored or zero-extended
 * beyond the volume), run through the network, and the kept part of its
 * logits is turned into labels and probabilities on the host. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/predict.h"

u3d_status u3d_model_normalize_input(u3d_volume *v, const u3d_model_meta *m,
                                     u3d_error *err)
{
    if (m->norm_mode == U3D_NORM_NONE)
        return U3D_OK;
    u3d_norm_params p;
    u3d_status st = u3d_norm_compute(v, NULL, (u3d_norm_mode)m->norm_mode,
                                     m->norm_plo, m->norm_phi, &p, err);
    if (!st)
        st = u3d_norm_apply(v, &p, err);
    return st;
}

/* Symmetric reflection (edge repeated), for any offset. */
static int mirror(int i, int n)
{
    int p = 2 * n, r = i % p;
    if (r < 0)
        r += p;
    return r < n ? r : p - 1 - r;
}

/* Source index per tile position along one axis; -1: zero. */
static void axis_map(const u3d_tile_axis *a, int origin, int *map)
{
    for (int t = 0; t < a->in; t++) {
        int p = origin + t;
        if (a->same)
            map[t] = p >= 0 && p < a->size ? p : -1;
        else
            map[t] = mirror(p, a->size);
    }
}

typedef struct run {
    u3d_net *net;
    const u3d_volume *img;
    const u3d_tile_plan *plan;
    const u3d_predict_opts *o;
    u3d_labels *labels;
    u3d_volume *probs;
    int classes;
    float *xin;    /* C x tile input */
    float *logits; /* classes x tile output */
    int *map[3];
    u3d_tensor x;
} run;

static void gather(run *r)
{
    const u3d_tile_plan *p = r->plan;
    int T[3] = {p->ax[0].in, p->ax[1].in, p->ax[2].in};
    const u3d_volume *v = r->img;
    size_t vox = (size_t)v->d * v->h * v->w;
    float *dst = r->xin;
    for (int c = 0; c < v->c; c++) {
        const float *src = v->data + (size_t)c * vox;
        for (int z = 0; z < T[0]; z++)
            for (int y = 0; y < T[1]; y++) {
                int sz = r->map[0][z], sy = r->map[1][y];
                if (sz < 0 || sy < 0) {
                    memset(dst, 0, (size_t)T[2] * sizeof *dst);
                    dst += T[2];
                    continue;
                }
                const float *row = src + ((size_t)sz * v->h + sy) * v->w;
                for (int x = 0; x < T[2]; x++, dst++)
                    *dst = r->map[2][x] < 0 ? 0.0f : row[r->map[2][x]];
            }
    }
}

/* Kept voxels of the tile at origin o, kept box [lo, hi): argmax and
 * softmax (or raw logits) into the outputs. */
static void scatter(run *r, const int o[3], const int lo[3], const int hi[3])
{
    const u3d_tile_plan *p = r->plan;
    int O[3] = {p->ax[0].out, p->ax[1].out, p->ax[2].out}, K = r->classes;
    size_t ov = (size_t)O[0] * O[1] * O[2];
    size_t vv = (size_t)r->img->d * r->img->h * r->img->w;
    float e[256]; /* classes <= 256, see check_input */
    for (int z = lo[0]; z < hi[0]; z++)
        for (int y = lo[1]; y < hi[1]; y++)
            for (int x = lo[2]; x < hi[2]; x++) {
                size_t ti = ((size_t)(z - o[0] - p->ax[0].offset) * O[1] +
                             (size_t)(y - o[1] - p->ax[1].offset)) * O[2] +
                            (size_t)(x - o[2] - p->ax[2].offset);
                size_t vi = ((size_t)z * r->img->h + y) * r->img->w + x;
                const float *l = r->logits + ti;
                int best = 0;
                float mx = l[0];
                for (int k = 1; k < K; k++)
                    if (l[k * ov] > mx)
                        mx = l[k * ov], best = k;
                if (r->labels)
                    r->labels->data[vi] = (uint16_t)best;
                if (!r->probs)
                    continue;
                float *pd = r->probs->data + vi;
                if (r->o->raw_logits) {
                    for (int k = 0; k < K; k++)
                        pd[k * vv] = l[k * ov];
                    continue;
                }
                float sum = 0.0f;
                for (int k = 0; k < K; k++)
                    sum += e[k] = expf(l[k * ov] - mx);
                for (int k = 0; k < K; k++)
                    pd[k * vv] = e[k] / sum;
            }
}

static u3d_status run_tile(run *r, int kd, int kh, int kw, u3d_error *err)
{
    int k[3] = {kd, kh, kw}, o[3], lo[3], hi[3];
    for (int a = 0; a < 3; a++) {
        u3d_tile_axis_get(&r->plan->ax[a], k[a], &o[a], &lo[a], &hi[a]);
        axis_map(&r->plan->ax[a], o[a], r->map[a]);
    }
    gather(r);
    const u3d_tensor *logits;
    u3d_net_mode mode = r->o->batchstats ? U3D_NET_EVAL_BATCHSTATS
                                         : U3D_NET_EVAL;
    u3d_status st = u3d_tensor_write(&r->x, r->xin, err);
    if (!st)
        st = u3d_net_forward(r->net, &r->x, mode, &logits, err);
    if (!st)
        st = u3d_tensor_read(logits, r->logits, err);
    if (st)
        return u3d_errprefix(err, "tile at %d,%d,%d (D,H,W): ", o[0], o[1],
                             o[2]);
    scatter(r, o, lo, hi);
    return U3D_OK;
}

static u3d_status run_all(run *r, u3d_error *err)
{
    const u3d_tile_plan *p = r->plan;
    int done = 0;
    for (int kd = 0; kd < p->ax[0].ntiles; kd++)
        for (int kh = 0; kh < p->ax[1].ntiles; kh++)
            for (int kw = 0; kw < p->ax[2].ntiles; kw++) {
                u3d_status st = run_tile(r, kd, kh, kw, err);
                if (st)
                    return st;
                if (r->o->progress)
                    r->o->progress(r->o->progress_user, ++done, p->total);
            }
    return U3D_OK;
}

static u3d_status host_buffers(run *r, u3d_error *err)
{
    const u3d_tile_plan *p = r->plan;
    size_t in = 1, out = 1;
    for (int a = 0; a < 3; a++) {
        in *= (size_t)p->ax[a].in;
        out *= (size_t)p->ax[a].out;
        r->map[a] = malloc((size_t)p->ax[a].in * sizeof *r->map[a]);
        if (!r->map[a])
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    r->xin = malloc(in * (size_t)r->img->c * sizeof *r->xin);
    r->logits = malloc(out * (size_t)r->classes * sizeof *r->logits);
    if (!r->xin || !r->logits)
        return u3d_seterr(err, U3D_ERR_OOM,
                          "out of host memory for a tile's data");
    return U3D_OK;
}

static u3d_status alloc_outputs(run *r, u3d_labels *labels, u3d_volume *probs,
                                u3d_error *err)
{
    const u3d_volume *v = r->img;
    u3d_status st = U3D_OK;
    if (labels) {
        st = u3d_labels_alloc(v->d, v->h, v->w, labels, err);
        if (st)
            return st;
        memcpy(labels->spacing, v->spacing, sizeof v->spacing);
        memcpy(labels->unit, v->unit, sizeof v->unit);
        r->labels = labels;
    }
    if (probs) {
        st = u3d_volume_alloc(r->classes, v->d, v->h, v->w, probs, err);
        if (st)
            return st;
        memcpy(probs->spacing, v->spacing, sizeof v->spacing);
        memcpy(probs->unit, v->unit, sizeof v->unit);
        probs->bits = 32;
        probs->is_float = 1;
        r->probs = probs;
    }
    return st;
}

static u3d_status check_input(const u3d_net_config *cfg, const u3d_volume *v,
                              u3d_error *err)
{
    if (!v || !v->data || v->c < 1 || v->d < 1 || v->h < 1 || v->w < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "predict: empty image");
    if (v->c != cfg->in_channels)
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "the image has %d channel%s but the model expects "
                          "%d input channel%s", v->c, v->c == 1 ? "" : "s",
                          cfg->in_channels, cfg->in_channels == 1 ? "" : "s");
    if (cfg->classes > 256)
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "predict supports at most 256 classes, the model "
                          "has %d", cfg->classes);
    return U3D_OK;
}

u3d_status u3d_predict(u3d_net *net, const u3d_volume *img,
                       const u3d_predict_opts *opts, u3d_labels *labels,
                       u3d_volume *probs, u3d_tile_plan *plan_out,
                       u3d_error *err)
{
    static const u3d_predict_opts defaults;
    const u3d_predict_opts *o = opts ? opts : &defaults;
    const u3d_net_config *cfg = u3d_net_get_config(net);
    if (labels)
        memset(labels, 0, sizeof *labels);
    if (probs)
        memset(probs, 0, sizeof *probs);
    u3d_status st = check_input(cfg, img, err);
    if (st)
        return st;
    size_t budget, max_alloc;
    u3d_predict_device_memory(u3d_net_backend(net), &budget, &max_alloc);
    if (o->max_memory)
        budget = o->max_memory;
    u3d_tile_plan plan;
    int vol[3] = {img->d, img->h, img->w};
    st = u3d_predict_plan(cfg, vol, o->tile, budget, max_alloc, &plan, err);
    if (st)
        return st;
    run r;
    memset(&r, 0, sizeof r);
    r.net = net;
    r.img = img;
    r.plan = &plan;
    r.o = o;
    r.classes = cfg->classes;
    st = host_buffers(&r, err);
    if (!st)
        st = alloc_outputs(&r, labels, probs, err);
    if (!st)
        st = u3d_tensor_create(u3d_net_backend(net),
                               u3d_shape5(1, img->c, plan.ax[0].in,
                                          plan.ax[1].in, plan.ax[2].in),
                               U3D_F32, &r.x, err);
    if (!st)
        st = run_all(&r, err);
    u3d_tensor_release(&r.x);
    u3d_net_free_activations(net);
    free(r.xin);
    free(r.logits);
    for (int a = 0; a < 3; a++)
        free(r.map[a]);
    if (st) {
        if (labels)
            u3d_labels_free(labels);
        if (probs)
            u3d_volume_free(probs);
        return st;
    }
    if (plan_out)
        *plan_out = plan;
    return U3D_OK;
}
