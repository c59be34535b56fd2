/* Overlap-tile geometry and the choice of the tile size from a memory
 * budget (no device needed). See include/unet3d/predict.h. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backends/opencl/runtime.h"
#include "unet3d/predict.h"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }
static int period(const u3d_net_config *c) { return 1 << (c->levels - 1); }

static const char *mib(size_t b, char *buf, size_t len)
{
    snprintf(buf, len, "%.1f MiB", (double)b / 1048576.0);
    return buf;
}

/* Width of the band next to a tile border whose values differ from the
 * whole-volume pass in a same-padded net (level-0 voxels): every padded
 * conv widens it by one voxel of its level; pools halve it (rounding up,
 * tiles start on the pooling grid), up-convs double it; a concat takes the
 * wider of skip and up path. */
static int same_band(const u3d_net_config *c)
{
    int L = c->levels, b = 0, skip[U3D_NET_MAX_LEVELS];
    for (int l = 0; l < L; l++) {
        b += 2;
        skip[l] = b;
        if (l < L - 1)
            b = (b + 1) / 2;
    }
    for (int j = 0; j < L - 1; j++) {
        int m = L - 2 - j;
        b *= 2;
        if (skip[m] > b)
            b = skip[m];
        b += 2;
    }
    return b;
}

static int smallest_valid(const u3d_net_config *c)
{
    int lo, hi;
    if (u3d_net_valid_size(c, 1, &lo, &hi))
        return 1;
    return hi;
}

int u3d_net_context(const u3d_net_config *cfg)
{
    if (u3d_net_config_check(cfg, NULL))
        return 0;
    if (cfg->padding == U3D_PAD_SAME) {
        int P = period(cfg);
        return ceil_div(same_band(cfg), P) * P;
    }
    int t = smallest_valid(cfg), in[3] = {t, t, t}, out[3];
    if (!t || u3d_net_output_size(cfg, in, out, NULL))
        return 0;
    return (t - out[0]) / 2;
}

int u3d_predict_min_size(const u3d_net_config *cfg)
{
    if (cfg->padding == U3D_PAD_SAME)
        return period(cfg);
    int m = u3d_net_context(cfg);
    return m > 1 ? m : 1;
}

void u3d_tile_axis_get(const u3d_tile_axis *a, int k, int *origin,
                       int *keep_lo, int *keep_hi)
{
    if (!a->same) {
        *origin = k * a->step - a->context;
        *keep_lo = k * a->step;
        *keep_hi = *keep_lo + a->step < a->size ? *keep_lo + a->step : a->size;
        return;
    }
    int s = a->step, c = a->context;
    if (a->ntiles == 1) {
        *origin = 0;
        *keep_lo = 0;
        *keep_hi = a->size;
        return;
    }
    /* first tile clipped at 0, interior tiles every s voxels, the last one
     * clipped at the (zero-extended) end; neighbours' kept parts abut */
    *origin = k < a->ntiles - 1 ? k * s : a->padded - a->in;
    *keep_lo = k == 0 ? 0 : k * s + c;
    *keep_hi = k < a->ntiles - 1 ? k * s + a->in - c : a->size;
}

/* ---- memory ---- */

/* Largest channel count of any buffer at level l. */
static size_t level_channels(const u3d_net_config *c, int l)
{
    size_t f = (size_t)c->base_channels, ch = f << (l + 1);
    if (l < c->levels - 1)
        ch = 6 * f << l; /* concat of skip (2f 2^l) and up path (4f 2^l) */
    if (l == 0) {
        if ((size_t)c->in_channels > ch)
            ch = (size_t)c->in_channels;
        if ((size_t)c->classes > ch)
            ch = (size_t)c->classes;
    }
    return ch;
}

/* Conv scratch the OpenCL backend allocates besides the planned buffers
 * (rearranged weights of a layer, output channels padded to blocks, and
 * for same nets a zero-padded copy of the conv input), twice because a
 * released scratch buffer lives until its kernels are done; and the
 * largest single buffer in elements. Spatial sizes per level are bounded
 * by ceil(in / 2^l). */
static void extra_memory(const u3d_net_config *c, const int in[3],
                         size_t *scratch, size_t *largest)
{
    size_t f = (size_t)c->base_channels, wmax = 0, pmax = 0, big = 0;
    int same = c->padding == U3D_PAD_SAME;
    for (int l = 0; l < c->levels; l++) {
        size_t vox = 1, pvox = 1;
        for (int a = 0; a < 3; a++) {
            size_t s = (size_t)ceil_div(in[a], 1 << l);
            vox *= s;
            pvox *= s + 2;
        }
        size_t cin_enc = l ? f << l : (size_t)c->in_channels;
        size_t convs[4][2] = {{cin_enc, f << l}, {f << l, f << (l + 1)},
                              {6 * f << l, f << (l + 1)},
                              {f << (l + 1), f << (l + 1)}};
        int nconv = l < c->levels - 1 ? 4 : 2;
        for (int i = 0; i < nconv; i++) {
            size_t w = (convs[i][1] + 15) / 16 * 16 * convs[i][0] * 27;
            if (w > wmax)
                wmax = w;
            if (same && convs[i][0] * pvox > pmax)
                pmax = convs[i][0] * pvox;
        }
        size_t b = level_channels(c, l) * (same ? pvox : vox);
        if (b > big)
            big = b;
    }
    *scratch = 2 * 4 * (wmax + pmax);
    *largest = big;
}

typedef struct mem_ctx {
    const u3d_net_config *cfg;
    size_t budget, max_alloc;
} mem_ctx;

/* Device bytes of one tile's inference; 0 when the tile cannot run
 * (a buffer over the device's or the kernels' limits). */
static size_t tile_memory(const mem_ctx *mc, const int in[3])
{
    u3d_net_mem m;
    if (u3d_net_memory(mc->cfg, 1, in, &m, NULL))
        return 0;
    size_t scratch, largest;
    extra_memory(mc->cfg, in, &scratch, &largest);
    if (largest > (size_t)INT_MAX ||
        (mc->max_alloc && largest * 4 > mc->max_alloc))
        return 0;
    return m.infer_total + scratch;
}

static int fits(const mem_ctx *mc, const int in[3], size_t *mem)
{
    size_t b = tile_memory(mc, in);
    if (mem)
        *mem = b;
    return b && (!mc->budget || b <= mc->budget);
}

/* ---- candidates per axis ---- */

typedef struct cand {
    int in, out, step, ntiles;
} cand;

typedef struct axis_list {
    cand *c;
    int n;
} axis_list;

static u3d_status push(axis_list *l, cand c, u3d_error *err)
{
    cand *p = realloc(l->c, (size_t)(l->n + 1) * sizeof *p);
    if (!p)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    l->c = p;
    l->c[l->n++] = c;
    return U3D_OK;
}

static int same_tiles(int N, int T, int c)
{
    return T >= N ? 1 : 1 + ceil_div(N - T, T - 2 * c);
}

/* Candidate tiles of one axis of size n, by increasing input size, only
 * the smallest input for each tile count (a larger one costs more and
 * saves nothing). */
static u3d_status axis_candidates(const u3d_net_config *cfg, int n,
                                  axis_list *l, u3d_error *err)
{
    int P = period(cfg), m = u3d_net_context(cfg), last = INT_MAX;
    u3d_status st = U3D_OK;
    if (cfg->padding == U3D_PAD_SAME) {
        int N = ceil_div(n, P) * P;
        for (int T = 2 * m + P; T < N && !st; T += P) {
            int nt = same_tiles(N, T, m);
            if (nt < last)
                st = push(l, (cand){T, T, T - 2 * m, nt}, err);
            last = nt;
        }
        return st ? st : push(l, (cand){N, N, N, 1}, err);
    }
    for (int T = smallest_valid(cfg); T > 0 && last > 1 && !st;) {
        int out = T - 2 * m, step = out / P * P;
        if (step >= P) {
            int nt = ceil_div(n, step);
            if (nt < last)
                st = push(l, (cand){T, out, step, nt}, err);
            if (nt < last)
                last = nt;
        }
        int lo, hi;
        u3d_net_valid_size(cfg, T, &lo, &hi);
        T = hi;
    }
    return st;
}

/* A user-given tile size along one axis. */
static u3d_status axis_given(const u3d_net_config *cfg, int n, int T,
                             char axis, cand *out, u3d_error *err)
{
    int P = period(cfg), m = u3d_net_context(cfg);
    if (cfg->padding == U3D_PAD_SAME) {
        int N = ceil_div(n, P) * P;
        if (T % P)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "tile %c=%d: a same-padded %d-level net needs "
                              "a multiple of %d", axis, T, cfg->levels, P);
        if (T >= N) {
            *out = (cand){N, N, N, 1};
            return U3D_OK;
        }
        if (T < 2 * m + P)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "tile %c=%d is too small for the context of %d "
                              "voxels per side: use at least %d, or %d to "
                              "cover the axis", axis, T, m, 2 * m + P, N);
        *out = (cand){T, T, T - 2 * m, same_tiles(N, T, m)};
        return U3D_OK;
    }
    int lo, hi, in[3] = {T, T, T}, o[3];
    if (!u3d_net_valid_size(cfg, T, &lo, &hi)) {
        if (lo)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "tile %c=%d is not a valid input size of this "
                              "network; nearest valid: %d or %d", axis, T, lo,
                              hi);
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "tile %c=%d is smaller than the network's smallest "
                          "input %d", axis, T, hi);
    }
    u3d_net_output_size(cfg, in, o, NULL);
    int step = o[0] / P * P;
    if (step < P) {
        int t = T;
        while (t > 0 && (t - 2 * m) / P * P < P) {
            u3d_net_valid_size(cfg, t, &lo, &hi);
            t = hi;
        }
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "tile %c=%d gives %d output voxels, fewer than the "
                          "pooling period %d: use at least %d", axis, T, o[0],
                          P, t);
    }
    *out = (cand){T, o[0], step, ceil_div(n, step)};
    return U3D_OK;
}

/* ---- the search ---- */

typedef struct best {
    int found;
    cand c[3];
    double cost;
    int tiles;
    size_t mem;
} best;

static void consider(best *b, const cand *d, const cand *h, const cand *w)
{
    int tiles = d->ntiles * h->ntiles * w->ntiles;
    double cost = (double)tiles * d->in * h->in * w->in;
    if (b->found && (cost > b->cost || (cost == b->cost && tiles >= b->tiles)))
        return;
    *b = (best){1, {*d, *h, *w}, cost, tiles, 0};
}

/* Largest index k < n of w-candidates with (d, h, w[k]) fitting, or -1;
 * memory grows with the tile. */
static int last_fit(const mem_ctx *mc, const cand *d, const cand *h,
                    const axis_list *w)
{
    int lo = 0, hi = w->n - 1, r = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, in[3] = {d->in, h->in, w->c[mid].in};
        if (fits(mc, in, NULL))
            r = mid, lo = mid + 1;
        else
            hi = mid - 1;
    }
    return r;
}

static void search(const mem_ctx *mc, const axis_list *l, best *b)
{
    for (int i = 0; i < l[0].n; i++) {
        int any = 0;
        for (int j = 0; j < l[1].n; j++) {
            int k = last_fit(mc, &l[0].c[i], &l[1].c[j], &l[2]);
            if (k < 0)
                break;
            any = 1;
            for (; k >= 0; k--)
                consider(b, &l[0].c[i], &l[1].c[j], &l[2].c[k]);
        }
        if (!any)
            break;
    }
}

static void fill_axis(const u3d_net_config *cfg, int n, const cand *c,
                      u3d_tile_axis *a)
{
    int P = period(cfg), same = cfg->padding == U3D_PAD_SAME;
    a->size = n;
    a->same = same;
    a->in = c->in;
    a->out = c->out;
    a->step = c->step;
    a->context = u3d_net_context(cfg);
    a->offset = same ? 0 : a->context;
    a->padded = same ? ceil_div(n, P) * P : n;
    a->ntiles = c->ntiles;
}

static u3d_status no_fit(const mem_ctx *mc, const axis_list *l, int given,
                         u3d_error *err)
{
    const char *what = given ? "the tile" : "the smallest tile";
    int in[3] = {l[0].c[0].in, l[1].c[0].in, l[2].c[0].in};
    u3d_net_mem m;
    char a[32], b[32], c[32];
    size_t need = tile_memory(mc, in);
    u3d_net_memory(mc->cfg, 1, in, &m, NULL);
    if (!need)
        return u3d_seterr(err, U3D_ERR_OOM,
                          "%s %dx%dx%d (D x H x W) needs a buffer larger "
                          "than the device allows (max allocation %s)",
                          what, in[0], in[1], in[2],
                          mib(mc->max_alloc, a, sizeof a));
    return u3d_seterr(err, U3D_ERR_OOM,
                      "a device-memory budget of %s is too small: %s "
                      "%dx%dx%d (D x H x W) needs %s (network parameters "
                      "%s); raise --max-memory or use a smaller %s",
                      mib(mc->budget, a, sizeof a), what, in[0], in[1],
                      in[2], mib(need, b, sizeof b), mib(m.params, c, sizeof c),
                      given ? "tile" : "network");
}

static u3d_status check_volume(const u3d_net_config *cfg, const int vol[3],
                               u3d_error *err)
{
    static const char ax[3] = {'D', 'H', 'W'};
    int min = u3d_predict_min_size(cfg);
    for (int a = 0; a < 3; a++)
        if (vol[a] < min)
            return u3d_seterr(
                err, U3D_ERR_SHAPE,
                "image %dx%dx%d (D x H x W) is too small for the network: "
                "%c=%d, it needs at least %d voxels along every axis (%s)",
                vol[0], vol[1], vol[2], ax[a], vol[a], min,
                cfg->padding == U3D_PAD_SAME
                    ? "the smallest input of a same-padded net"
                    : "its context margin, mirrored at the border");
    return U3D_OK;
}

u3d_status u3d_predict_plan(const u3d_net_config *cfg, const int vol[3],
                            const int *tile, size_t budget, size_t max_alloc,
                            u3d_tile_plan *plan, u3d_error *err)
{
    static const char ax[3] = {'D', 'H', 'W'};
    memset(plan, 0, sizeof *plan);
    u3d_status st = u3d_net_config_check(cfg, err);
    if (!st)
        st = check_volume(cfg, vol, err);
    if (st)
        return st;
    mem_ctx mc = {cfg, budget, max_alloc};
    axis_list l[3];
    memset(l, 0, sizeof l);
    int given = 0;
    for (int a = 0; a < 3 && !st; a++) {
        if (tile && tile[a] > 0) {
            cand c = {0, 0, 0, 0};
            given = 1;
            st = axis_given(cfg, vol[a], tile[a], ax[a], &c, err);
            if (!st)
                st = push(&l[a], c, err);
        } else {
            st = axis_candidates(cfg, vol[a], &l[a], err);
        }
    }
    best b = {0};
    if (!st) {
        search(&mc, l, &b);
        if (!b.found) {
            st = no_fit(&mc, l, given, err);
        } else {
            int in[3] = {b.c[0].in, b.c[1].in, b.c[2].in};
            b.mem = tile_memory(&mc, in);
        }
    }
    if (!st) {
        for (int a = 0; a < 3; a++)
            fill_axis(cfg, vol[a], &b.c[a], &plan->ax[a]);
        plan->total = b.tiles;
        plan->memory = b.mem;
        plan->budget = budget;
        plan->efficiency = (double)vol[0] * vol[1] * vol[2] / b.cost;
    }
    for (int a = 0; a < 3; a++)
        free(l[a].c);
    return st;
}

void u3d_predict_device_memory(u3d_backend *be, size_t *budget,
                               size_t *max_alloc)
{
    *budget = 0;
    *max_alloc = 0;
    if (be && !strcmp(be->name, "opencl") && be->ctx) {
        const u3d_cl *cl = u3d_cl_of(be);
        /* leave room for the driver, other programs and fragmentation */
        *budget = (size_t)(cl->global_mem / 10 * 8);
        *max_alloc = (size_t)cl->max_alloc;
        return;
    }
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0)
        *budget = (size_t)pages * (size_t)psize / 2;
}
