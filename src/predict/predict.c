/* Overlap-tile prediction of whole volumes (see include/unet3d/predict.h):
 * each tile's input is gathered on the host (mirrored or zero-extended
 * beyond the volume), run through the network, and the kept part of its
 * logits is turned into labels and probabilities on the host. The volume
 * comes in and goes out plane-band by plane-band: tiles run in rows along
 * D (and within them along H), each reading only the window of rows its
 * tiles need from its input planes, and each row along D hands its
 * finished output planes on, so host memory holds a tile's input window
 * and one tile depth of output planes, never the volume. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "data/mirror.h"
#include "dist/dist.h"
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

/* Source index per tile position along one axis; -1: zero. */
static void axis_map(const u3d_tile_axis *a, int origin, int *map)
{
    for (int t = 0; t < a->in; t++) {
        int p = origin + t;
        if (a->same)
            map[t] = p >= 0 && p < a->size ? p : -1;
        else
            map[t] = u3d_mirror(p, a->size);
    }
}

typedef struct run {
    u3d_net *net;
    const u3d_plane_source *src;
    const u3d_plane_sink *sink;
    const u3d_tile_plan *plan;
    const u3d_predict_opts *o;
    int classes;
    float *xin;    /* C x tile input */
    float *logits; /* classes x tile output */
    float *flip;   /* tta: a mirrored tile input, then its logits */
    int *map[3];
    u3d_tensor x;
    /* the input the current row of tiles (along D and H) reads: for each
     * tile position t along D, rows [ylo, ylo + rows) of plane map[0][t] */
    float *band;
    int ylo, rows;
    /* kept output planes [out_lo, out_lo + out_cap) of the current row of
     * tiles along D, labels and probabilities (or logits) */
    uint8_t *olab; /* classes <= 256 (check_source): half of uint16 */
    float *oprob;
    int out_lo, out_cap;
} run;

static size_t plane_vox(const run *r)
{
    return (size_t)r->src->h * (size_t)r->src->w;
}

/* Reads the window of rows the tiles of this (D, H) origin read from each
 * of their input planes (map[1] is a contiguous range, clipped or
 * mirrored): host memory holds a tile's depth of row windows, not planes. */
static u3d_status load_band(run *r, u3d_error *err)
{
    const u3d_tile_axis *ah = &r->plan->ax[1];
    int lo = INT_MAX, hi = -1;
    for (int t = 0; t < ah->in; t++)
        if (r->map[1][t] >= 0) {
            lo = r->map[1][t] < lo ? r->map[1][t] : lo;
            hi = r->map[1][t] > hi ? r->map[1][t] : hi;
        }
    if (hi < 0)
        return U3D_OK; /* only zero padding */
    r->ylo = lo;
    r->rows = hi - lo + 1;
    size_t win = (size_t)r->src->c * (size_t)r->rows * (size_t)r->src->w;
    for (int t = 0; t < r->plan->ax[0].in; t++) {
        int z = r->map[0][t];
        if (z < 0)
            continue;
        int same = t > 0 && r->map[0][t - 1] == z; /* mirrored edge plane */
        float *dst = r->band + (size_t)t * win;
        if (same)
            memcpy(dst, dst - win, win * sizeof *dst);
        else
            U3D_TRY(r->src->read(r->src->user, z, lo, r->rows, dst, err));
    }
    return U3D_OK;
}

static void gather(run *r)
{
    const u3d_tile_plan *p = r->plan;
    int T[3] = {p->ax[0].in, p->ax[1].in, p->ax[2].in};
    const u3d_plane_source *v = r->src;
    size_t win = (size_t)v->c * (size_t)r->rows * (size_t)v->w;
    float *dst = r->xin;
    for (int c = 0; c < v->c; c++)
        for (int z = 0; z < T[0]; z++)
            for (int y = 0; y < T[1]; y++) {
                int sz = r->map[0][z], sy = r->map[1][y];
                if (sz < 0 || sy < 0) {
                    memset(dst, 0, (size_t)T[2] * sizeof *dst);
                    dst += T[2];
                    continue;
                }
                const float *row =
                    r->band + (size_t)z * win +
                    ((size_t)c * r->rows + (size_t)(sy - r->ylo)) * v->w;
                for (int x = 0; x < T[2]; x++, dst++)
                    *dst = r->map[2][x] < 0 ? 0.0f : row[r->map[2][x]];
            }
}

/* Kept voxels of the tile at origin o, kept box [lo, hi): argmax and
 * softmax (or raw logits) into the output planes. */
static void scatter(run *r, const int o[3], const int lo[3], const int hi[3])
{
    const u3d_tile_plan *p = r->plan;
    int O[3] = {p->ax[0].out, p->ax[1].out, p->ax[2].out}, K = r->classes;
    size_t ov = (size_t)O[0] * O[1] * O[2], pv = plane_vox(r);
    float e[256]; /* classes <= 256, see check_input */
    for (int z = lo[0]; z < hi[0]; z++)
        for (int y = lo[1]; y < hi[1]; y++)
            for (int x = lo[2]; x < hi[2]; x++) {
                size_t ti = ((size_t)(z - o[0] - p->ax[0].offset) * O[1] +
                             (size_t)(y - o[1] - p->ax[1].offset)) * O[2] +
                            (size_t)(x - o[2] - p->ax[2].offset);
                size_t zi = (size_t)(z - r->out_lo);
                size_t vi = (size_t)y * r->src->w + (size_t)x;
                const float *l = r->logits + ti;
                const float *cb = r->o->class_bias;
                int best = 0;
                float mx = l[0], dmx = cb ? l[0] + cb[0] : l[0];
                for (int k = 1; k < K; k++) {
                    if (l[k * ov] > mx)
                        mx = l[k * ov];
                    float v = cb ? l[k * ov] + cb[k] : l[k * ov];
                    if (v > dmx)
                        dmx = v, best = k;
                }
                if (r->olab)
                    r->olab[zi * pv + vi] = (uint8_t)best;
                if (!r->oprob)
                    continue;
                float *pd = r->oprob + zi * (size_t)K * pv + vi;
                if (r->o->raw_logits) {
                    for (int k = 0; k < K; k++)
                        pd[k * pv] = l[k * ov];
                    continue;
                }
                float sum = 0.0f;
                for (int k = 0; k < K; k++)
                    sum += e[k] = expf(l[k * ov] - mx);
                for (int k = 0; k < K; k++)
                    pd[k * pv] = e[k] / sum;
            }
}

/* Mirrors c volumes of d x h x w from src into dst along the axes whose
 * bit is set in flips (1: x, 2: y, 4: z). */
static void mirror(float *dst, const float *src, int c, const int s[3],
                   int flips)
{
    size_t vox = (size_t)s[0] * s[1] * s[2];
    for (int ch = 0; ch < c; ch++)
        for (int z = 0; z < s[0]; z++)
            for (int y = 0; y < s[1]; y++)
                for (int x = 0; x < s[2]; x++) {
                    int zz = flips & 4 ? s[0] - 1 - z : z,
                        yy = flips & 2 ? s[1] - 1 - y : y,
                        xx = flips & 1 ? s[2] - 1 - x : x;
                    dst[ch * vox + ((size_t)zz * s[1] + yy) * s[2] + xx] =
                        src[ch * vox + ((size_t)z * s[1] + y) * s[2] + x];
                }
}

/* The network on the tile input in r->xin, logits into out. */
static u3d_status forward(run *r, const float *in, float *out,
                          u3d_error *err)
{
    const u3d_tensor *logits;
    u3d_net_mode mode = r->o->batchstats ? U3D_NET_EVAL_BATCHSTATS
                                         : U3D_NET_EVAL;
    U3D_TRY(u3d_tensor_write(&r->x, in, err));
    U3D_TRY(u3d_net_forward(r->net, &r->x, mode, &logits, err));
    return u3d_tensor_read(logits, out, err);
}

/* Test-time augmentation: the mean of the logits of the tile and its 7
 * mirror images, each mirrored back (the network's output region is the
 * input's centre, so it mirrors with it). */
static u3d_status forward_tta(run *r, u3d_error *err)
{
    const u3d_tile_plan *p = r->plan;
    const int si[3] = {p->ax[0].in, p->ax[1].in, p->ax[2].in};
    const int so[3] = {p->ax[0].out, p->ax[1].out, p->ax[2].out};
    size_t nout = (size_t)so[0] * so[1] * so[2] * (size_t)r->classes;
    U3D_TRY(forward(r, r->xin, r->logits, err));
    for (int f = 1; f < 8; f++) {
        mirror(r->flip, r->xin, r->src->c, si, f);
        U3D_TRY(forward(r, r->flip, r->flip, err));
        /* the logits are smaller than the input: mirror them back into
         * the input's (free again) buffer, then add */
        float *back = r->flip + nout;
        mirror(back, r->flip, r->classes, so, f);
        for (size_t i = 0; i < nout; i++)
            r->logits[i] += back[i];
    }
    for (size_t i = 0; i < nout; i++)
        r->logits[i] *= 0.125f;
    return U3D_OK;
}

/* One tile; map[0] and map[1] and the band are those of its row. */
static u3d_status run_tile(run *r, const int k[3], u3d_error *err)
{
    int o[3], lo[3], hi[3];
    for (int a = 0; a < 3; a++)
        u3d_tile_axis_get(&r->plan->ax[a], k[a], &o[a], &lo[a], &hi[a]);
    axis_map(&r->plan->ax[2], o[2], r->map[2]);
    gather(r);
    u3d_status st = r->o->tta ? forward_tta(r, err)
                              : forward(r, r->xin, r->logits, err);
    if (st)
        return u3d_errprefix(err, "tile at %d,%d,%d (D,H,W): ", o[0], o[1],
                             o[2]);
    scatter(r, o, lo, hi);
    return U3D_OK;
}

/* One row of tiles along D: its input planes in, its kept planes out. */
static u3d_status run_slab(run *r, int kd, int *done, u3d_error *err)
{
    const u3d_tile_plan *p = r->plan;
    int o, lo, hi;
    u3d_tile_axis_get(&p->ax[0], kd, &o, &lo, &hi);
    axis_map(&p->ax[0], o, r->map[0]);
    r->out_lo = lo;
    for (int kh = 0; kh < p->ax[1].ntiles; kh++) {
        int oh, lh, hh;
        u3d_tile_axis_get(&p->ax[1], kh, &oh, &lh, &hh);
        axis_map(&p->ax[1], oh, r->map[1]);
        U3D_TRY(load_band(r, err));
        for (int kw = 0; kw < p->ax[2].ntiles; kw++) {
            int k[3] = {kd, kh, kw};
            U3D_TRY(run_tile(r, k, err));
            if (r->o->progress)
                r->o->progress(r->o->progress_user, ++*done, p->total);
        }
    }
    size_t pv = plane_vox(r);
    for (int z = lo; z < hi; z++) {
        size_t zi = (size_t)(z - lo);
        const uint8_t *l = r->olab ? r->olab + zi * pv : NULL;
        const float *q = r->oprob ? r->oprob + zi * (size_t)r->classes * pv
                                  : NULL;
        if (u3d_dist_rank() == 0) {
            U3D_TRY(r->sink->write(r->sink->user, z, l, q, err));
            continue;
        }
        /* another rank's row: its planes go to the writer, rank 0 */
        if (l)
            U3D_TRY(u3d_dist_send(l, pv, 0, 2, err));
        if (q)
            U3D_TRY(u3d_dist_send(q, (size_t)r->classes * pv * sizeof *q, 0,
                                  3, err));
    }
    return U3D_OK;
}

/* Rank 0 writes the planes of a row another rank computed, in order. */
static u3d_status recv_slab(run *r, int kd, int from, int *done,
                            u3d_error *err)
{
    const u3d_tile_plan *p = r->plan;
    int o, lo, hi;
    u3d_tile_axis_get(&p->ax[0], kd, &o, &lo, &hi);
    size_t pv = plane_vox(r);
    for (int z = lo; z < hi; z++) {
        if (r->olab)
            U3D_TRY(u3d_dist_recv(r->olab, pv, from, 2, err));
        if (r->oprob)
            U3D_TRY(u3d_dist_recv(r->oprob,
                                  (size_t)r->classes * pv * sizeof *r->oprob,
                                  from, 3, err));
        U3D_TRY(r->sink->write(r->sink->user, z, r->olab, r->oprob, err));
    }
    int row = p->ax[1].ntiles * p->ax[2].ntiles;
    for (int i = 0; i < row && r->o->progress; i++)
        r->o->progress(r->o->progress_user, ++*done, p->total);
    return U3D_OK;
}

/* Several ranks (MPI): row kd of tiles along D is computed by rank
 * kd mod N, which reads only the planes it needs; rank 0 writes every row's
 * planes in order, its own and those it receives. The tiles and so the
 * result are those of one process, bit for bit. A failure aborts the job
 * (its peers would wait for it forever) after printing it. */
static u3d_status run_all(run *r, u3d_error *err)
{
    int done = 0;
    int n = u3d_dist_active() ? u3d_dist_size() : 1, me = u3d_dist_rank();
    for (int kd = 0; kd < r->plan->ax[0].ntiles; kd++) {
        u3d_status st = U3D_OK;
        if (kd % n == me)
            st = run_slab(r, kd, &done, err);
        else if (me == 0)
            st = recv_slab(r, kd, kd % n, &done, err);
        if (st && n > 1)
            u3d_dist_abort(err);
        if (st)
            return st;
    }
    return U3D_OK;
}

static void *alloc_n(size_t n, size_t size)
{
    return n && size <= SIZE_MAX / n ? malloc(n * size) : NULL;
}

static u3d_status host_buffers(run *r, u3d_error *err)
{
    const u3d_tile_plan *p = r->plan;
    size_t in = 1, out = 1, pv = plane_vox(r);
    for (int a = 0; a < 3; a++) {
        in *= (size_t)p->ax[a].in;
        out *= (size_t)p->ax[a].out;
        r->map[a] = malloc((size_t)p->ax[a].in * sizeof *r->map[a]);
        if (!r->map[a])
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    r->xin = alloc_n(in * (size_t)r->src->c, sizeof *r->xin);
    r->logits = alloc_n(out * (size_t)r->classes, sizeof *r->logits);
    /* tta: a mirrored input, or its logits and their mirror image */
    size_t nf = in * (size_t)r->src->c;
    if (2 * out * (size_t)r->classes > nf)
        nf = 2 * out * (size_t)r->classes;
    if (r->o->tta && !(r->flip = alloc_n(nf, sizeof *r->flip)))
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory for the "
                          "mirrored tiles");
    /* a window of at most min(tile, H) rows per tile position along D */
    int rows = p->ax[1].in < r->src->h ? p->ax[1].in : r->src->h;
    r->band = alloc_n((size_t)p->ax[0].in * (size_t)r->src->c,
                      (size_t)rows * (size_t)r->src->w * sizeof(float));
    for (int k = 0; k < p->ax[0].ntiles; k++) {
        int o, lo, hi;
        u3d_tile_axis_get(&p->ax[0], k, &o, &lo, &hi);
        if (hi - lo > r->out_cap)
            r->out_cap = hi - lo;
    }
    if (r->sink->labels)
        r->olab = alloc_n((size_t)r->out_cap * pv, sizeof *r->olab);
    if (r->sink->probs)
        r->oprob = alloc_n((size_t)r->out_cap * (size_t)r->classes * pv,
                           sizeof *r->oprob);
    if (!r->xin || !r->logits || !r->band || (r->sink->labels && !r->olab) ||
        (r->sink->probs && !r->oprob))
        return u3d_seterr(err, U3D_ERR_OOM,
                          "out of host memory for a tile's data and %d "
                          "output planes", r->out_cap);
    return U3D_OK;
}

static u3d_status check_source(const u3d_net_config *cfg,
                               const u3d_plane_source *v, u3d_error *err)
{
    if (!v || !v->read || v->c < 1 || v->d < 1 || v->h < 1 || v->w < 1)
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

u3d_status u3d_predict_planes(u3d_net *net, const u3d_plane_source *src,
                              const u3d_predict_opts *opts,
                              const u3d_plane_sink *sink,
                              u3d_tile_plan *plan_out, u3d_error *err)
{
    static const u3d_predict_opts defaults;
    const u3d_predict_opts *o = opts ? opts : &defaults;
    const u3d_net_config *cfg = u3d_net_get_config(net);
    U3D_TRY(check_source(cfg, src, err));
    if (!sink || !sink->write)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "predict: no output");
    size_t budget, max_alloc;
    u3d_predict_device_memory(u3d_net_backend(net), &budget, &max_alloc);
    if (o->max_memory)
        budget = o->max_memory;
    u3d_tile_plan plan;
    int vol[3] = {src->d, src->h, src->w};
    u3d_status pst = u3d_predict_plan_backend(u3d_net_backend(net), cfg, vol,
                                              o->tile, budget, &plan, err);
    if (u3d_dist_active()) {
        /* every rank plans for its own device; rank 0's plan is used by
         * all, so the rows (and the result) do not depend on the ranks */
        U3D_TRY(u3d_dist_agree(pst, err));
        U3D_TRY(u3d_dist_bcast(&plan, sizeof plan, 0, err));
    }
    U3D_TRY(pst);
    run r;
    memset(&r, 0, sizeof r);
    r.net = net;
    r.src = src;
    r.sink = sink;
    r.plan = &plan;
    r.o = o;
    r.classes = cfg->classes;
    u3d_status st = host_buffers(&r, err);
    if (!st)
        st = u3d_tensor_create(u3d_net_backend(net),
                               u3d_shape5(1, src->c, plan.ax[0].in,
                                          plan.ax[1].in, plan.ax[2].in),
                               U3D_F32, &r.x, err);
    if (u3d_dist_active())
        st = u3d_dist_agree(st, err);
    if (!st)
        st = run_all(&r, err);
    u3d_tensor_release(&r.x);
    u3d_net_free_activations(net);
    free(r.xin);
    free(r.logits);
    free(r.flip);
    free(r.band);
    free(r.olab);
    free(r.oprob);
    for (int a = 0; a < 3; a++)
        free(r.map[a]);
    if (!st && plan_out)
        *plan_out = plan;
    return st;
}

/* ---- whole volumes in memory ------------------------------------------ */

typedef struct mem_io {
    const u3d_volume *img;
    u3d_labels *labels;
    u3d_volume *probs;
} mem_io;

static u3d_status mem_read(void *user, int z, int y0, int ny, float *dst,
                           u3d_error *err)
{
    (void)err;
    const u3d_volume *v = ((mem_io *)user)->img;
    size_t pv = (size_t)v->h * v->w, n = (size_t)ny * v->w;
    for (int c = 0; c < v->c; c++)
        memcpy(dst + (size_t)c * n,
               v->data + ((size_t)c * v->d + (size_t)z) * pv +
                   (size_t)y0 * v->w,
               n * sizeof *dst);
    return U3D_OK;
}

static u3d_status mem_write(void *user, int z, const uint8_t *labels,
                            const float *probs, u3d_error *err)
{
    (void)err;
    mem_io *m = user;
    size_t pv = (size_t)m->img->h * m->img->w;
    if (labels)
        for (size_t i = 0; i < pv; i++)
            m->labels->data[(size_t)z * pv + i] = labels[i];
    if (probs)
        for (int k = 0; k < m->probs->c; k++)
            memcpy(m->probs->data + ((size_t)k * m->probs->d + (size_t)z) * pv,
                   probs + (size_t)k * pv, pv * sizeof *probs);
    return U3D_OK;
}

static u3d_status alloc_outputs(const u3d_volume *v, int classes,
                                u3d_labels *labels, u3d_volume *probs,
                                u3d_error *err)
{
    if (labels) {
        U3D_TRY(u3d_labels_alloc(v->d, v->h, v->w, labels, err));
        memcpy(labels->spacing, v->spacing, sizeof v->spacing);
        memcpy(labels->unit, v->unit, sizeof v->unit);
    }
    if (probs) {
        U3D_TRY(u3d_volume_alloc(classes, v->d, v->h, v->w, probs, err));
        memcpy(probs->spacing, v->spacing, sizeof v->spacing);
        memcpy(probs->unit, v->unit, sizeof v->unit);
        probs->bits = 32;
        probs->is_float = 1;
    }
    return U3D_OK;
}

u3d_status u3d_predict(u3d_net *net, const u3d_volume *img,
                       const u3d_predict_opts *opts, u3d_labels *labels,
                       u3d_volume *probs, u3d_tile_plan *plan_out,
                       u3d_error *err)
{
    const u3d_net_config *cfg = u3d_net_get_config(net);
    if (labels)
        memset(labels, 0, sizeof *labels);
    if (probs)
        memset(probs, 0, sizeof *probs);
    if (!img || !img->data)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "predict: empty image");
    mem_io m = {img, labels, probs};
    u3d_plane_source src = {img->c, img->d, img->h, img->w, mem_read, &m};
    u3d_plane_sink sink = {mem_write, &m, labels != NULL, probs != NULL};
    u3d_status st = check_source(cfg, &src, err);
    if (!st)
        st = alloc_outputs(img, cfg->classes, labels, probs, err);
    if (!st)
        st = u3d_predict_planes(net, &src, opts, &sink, plan_out, err);
    if (st) {
        if (labels)
            u3d_labels_free(labels);
        if (probs)
            u3d_volume_free(probs);
    }
    return st;
}
