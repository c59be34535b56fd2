/* Overlap-tile geometry and the choice of the tile size from a memory
 * budget (no device needed). See include/unet3d/predict.h. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "unet3d/predict.h"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }
/* The pooling period along axis a: the product of the pool factors (1
 * along z for a 2D net). */
static int period(const u3d_net_config *c, int a)
{
    int P = 1;
    for (int l = 0; l < c->levels - 1; l++)
        P *= u3d_net_pool(c, l, a);
    return P;
}

static const char *mib(size_t b, char *buf, size_t len)
{
    snprintf(buf, len, "%.1f MiB", (double)b / 1048576.0);
    return buf;
}

static int smallest_valid(const u3d_net_config *c, int a)
{
    int lo, hi;
    if (u3d_net_valid_size_axis(c, a, 1, &lo, &hi))
        return 1;
    return hi;
}

int u3d_predict_min_size_axis(const u3d_net_config *cfg, int a)
{
    if (cfg->padding == U3D_PAD_SAME)
        return period(cfg, a);
    int m = u3d_net_context_axis(cfg, a);
    return m > 1 ? m : 1;
}

int u3d_predict_min_size(const u3d_net_config *cfg)
{
    int m = 1;
    for (int a = 0; a < 3; a++) {
        int v = u3d_predict_min_size_axis(cfg, a);
        m = v > m ? v : m;
    }
    return m;
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

typedef struct mem_ctx {
    const u3d_net_config *cfg;
    u3d_backend *be; /* its convolution scratch counts; NULL: none */
    size_t budget, max_alloc;
} mem_ctx;

/* Device bytes of one tile's inference: the network's buffers and the
 * backend's convolution scratch; 0 when the tile cannot run (a buffer
 * over the device's or the kernels' limits). */
static size_t tile_memory(const mem_ctx *mc, const int in[3])
{
    u3d_net_mem m;
    if (u3d_net_memory(mc->cfg, 1, in, &m, NULL))
        return 0;
    if (m.infer_largest / 4 > (size_t)INT_MAX ||
        (mc->max_alloc && m.infer_largest > mc->max_alloc))
        return 0;
    return m.infer_total + u3d_net_backend_scratch(mc->be, mc->cfg, 1, in);
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
static u3d_status axis_candidates(const u3d_net_config *cfg, int a, int n,
                                  axis_list *l, u3d_error *err)
{
    int P = period(cfg, a), m = u3d_net_context_axis(cfg, a), last = INT_MAX;
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
    for (int T = smallest_valid(cfg, a); T > 0 && last > 1 && !st;) {
        int out = T - 2 * m, step = out / P * P;
        if (step >= P) {
            int nt = ceil_div(n, step);
            if (nt < last)
                st = push(l, (cand){T, out, step, nt}, err);
            if (nt < last)
                last = nt;
        }
        int lo, hi;
        u3d_net_valid_size_axis(cfg, a, T, &lo, &hi);
        T = hi;
    }
    return st;
}

/* A user-given tile size along one axis. */
static u3d_status axis_given(const u3d_net_config *cfg, int a, int n, int T,
                             cand *out, u3d_error *err)
{
    char axis = "DHW"[a];
    int P = period(cfg, a), m = u3d_net_context_axis(cfg, a);
    if (cfg->padding == U3D_PAD_SAME) {
        int N = ceil_div(n, P) * P;
        if (T % P)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "tile %c=%d: this same-padded %d-level net "
                              "needs a multiple of %d",
                              axis, T, cfg->levels, P);
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
    int lo, hi, o[1];
    if (!u3d_net_valid_size_axis(cfg, a, T, &lo, &hi)) {
        if (lo)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "tile %c=%d is not a valid input size of this "
                              "network; nearest valid: %d or %d", axis, T, lo,
                              hi);
        return u3d_seterr(err, U3D_ERR_SHAPE,
                          "tile %c=%d is smaller than the network's smallest "
                          "input %d", axis, T, hi);
    }
    o[0] = T - 2 * m; /* a valid net's output along this axis */
    int step = o[0] / P * P;
    if (step < P) {
        int t = T;
        while (t > 0 && (t - 2 * m) / P * P < P) {
            u3d_net_valid_size_axis(cfg, a, t, &lo, &hi);
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

static void fill_axis(const u3d_net_config *cfg, int ax, int n,
                      const cand *c, u3d_tile_axis *a)
{
    int P = period(cfg, ax), same = cfg->padding == U3D_PAD_SAME;
    a->size = n;
    a->same = same;
    a->in = c->in;
    a->out = c->out;
    a->step = c->step;
    a->context = u3d_net_context_axis(cfg, ax);
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
    for (int a = 0; a < 3; a++) {
        int min = u3d_predict_min_size_axis(cfg, a);
        if (vol[a] < min)
            return u3d_seterr(
                err, U3D_ERR_SHAPE,
                "image %dx%dx%d (D x H x W) is too small for the network: "
                "%c=%d, it needs at least %d voxels along %c (%s)",
                vol[0], vol[1], vol[2], ax[a], vol[a], min, ax[a],
                cfg->padding == U3D_PAD_SAME
                    ? "the smallest input of a same-padded net"
                    : "its context margin, mirrored at the border");
    }
    return U3D_OK;
}

static u3d_status plan_tiles(u3d_backend *be, const u3d_net_config *cfg,
                             const int vol[3], const int *tile, size_t budget,
                             size_t max_alloc, u3d_tile_plan *plan,
                             u3d_error *err)
{
    memset(plan, 0, sizeof *plan);
    u3d_status st = u3d_net_config_check(cfg, err);
    if (!st)
        st = check_volume(cfg, vol, err);
    if (st)
        return st;
    mem_ctx mc = {cfg, be, budget, max_alloc};
    axis_list l[3];
    memset(l, 0, sizeof l);
    int given = 0;
    for (int a = 0; a < 3 && !st; a++) {
        if (tile && tile[a] > 0) {
            cand c = {0, 0, 0, 0};
            given = 1;
            st = axis_given(cfg, a, vol[a], tile[a], &c, err);
            if (!st)
                st = push(&l[a], c, err);
        } else {
            st = axis_candidates(cfg, a, vol[a], &l[a], err);
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
            fill_axis(cfg, a, vol[a], &b.c[a], &plan->ax[a]);
        plan->total = b.tiles;
        plan->memory = b.mem;
        plan->budget = budget;
        plan->efficiency = (double)vol[0] * vol[1] * vol[2] / b.cost;
    }
    for (int a = 0; a < 3; a++)
        free(l[a].c);
    return st;
}

u3d_status u3d_predict_plan(const u3d_net_config *cfg, const int vol[3],
                            const int *tile, size_t budget, size_t max_alloc,
                            u3d_tile_plan *plan, u3d_error *err)
{
    return plan_tiles(NULL, cfg, vol, tile, budget, max_alloc, plan, err);
}

u3d_status u3d_predict_plan_backend(u3d_backend *be,
                                    const u3d_net_config *cfg,
                                    const int vol[3], const int *tile,
                                    size_t budget, u3d_tile_plan *plan,
                                    u3d_error *err)
{
    size_t total = 0, max_alloc = 0;
    if (be)
        u3d_backend_device_memory(be, &total, &max_alloc);
    return plan_tiles(be, cfg, vol, tile, budget, max_alloc, plan, err);
}

void u3d_predict_device_memory(u3d_backend *be, size_t *budget,
                               size_t *max_alloc)
{
    size_t total = 0;
    *budget = 0;
    *max_alloc = 0;
    if (be)
        u3d_backend_device_memory(be, &total, max_alloc);
    if (total) {
        /* leave room for the driver, other programs and fragmentation */
        *budget = total / 10 * 8;
        return;
    }
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0)
        *budget = (size_t)pages * (size_t)psize / 2;
}
