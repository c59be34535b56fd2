/* The tuner's two-stage search: see tune_search.h. */
#include "backends/opencl/tune_search.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet3d/rng.h"

typedef struct seen {
    int (*v)[U3D_TUNE_MAX_PARAMS];
    int n, cap;
} seen;

/* 1 when v was seen before; else records it (0) */
static int seen_add(seen *s, const int *v, int np)
{
    for (int i = 0; i < s->n; i++)
        if (!memcmp(s->v[i], v, (size_t)np * sizeof *v))
            return 1;
    if (s->n == s->cap) {
        int c = s->cap ? 2 * s->cap : 64;
        void *p = realloc(s->v, (size_t)c * sizeof *s->v);
        if (!p)
            return 1; /* out of memory: treat as seen, the search ends */
        s->v = p;
        s->cap = c;
    }
    memset(s->v[s->n], 0, sizeof s->v[s->n]);
    memcpy(s->v[s->n++], v, (size_t)np * sizeof *v);
    return 0;
}

static int nvalues(const u3d_tune_space *sp, int p)
{
    int k = 0;
    /* a leading 0 is a value (see tune_search.h), a later one the end */
    while (k < U3D_TUNE_MAX_VALUES &&
           (sp->values[p][k] || (k == 0 && sp->values[p][1])))
        k++;
    return k;
}

typedef struct run {
    const u3d_tune_space *sp;
    const u3d_tune_limits *lim;
    u3d_tune_measure_fn measure;
    u3d_tune_clock_fn clock;
    void *ctx;
    double t0, budget;
    seen s;
    u3d_tune_outcome *out;
} run;

/* Tries v; returns 1 when the budget is spent (no candidate starts). */
static int try_one(run *r, const int *v, int is_baseline)
{
    int np = r->sp->nparams;
    if (r->clock(r->ctx) - r->t0 >= r->budget && !is_baseline) {
        r->out->out_of_time = 1;
        return 1;
    }
    if (seen_add(&r->s, v, np))
        return 0;
    if (r->sp->valid && !r->sp->valid(v, r->lim)) {
        r->out->invalid++;
        return 0;
    }
    double t = 0;
    r->out->tried++;
    if (r->measure(r->ctx, v, &t) || !(t >= 0)) {
        r->out->failed++;
        return 0;
    }
    if (is_baseline)
        r->out->baseline_s = t;
    if (!r->out->found || t < r->out->best_s) {
        r->out->found = 1;
        r->out->best_s = t;
        memcpy(r->out->best, v, (size_t)np * sizeof *v);
    }
    return 0;
}

u3d_status u3d_tune_search(const u3d_tune_space *sp,
                           const u3d_tune_limits *lim,
                           const u3d_tune_search_opts *o,
                           u3d_tune_measure_fn measure,
                           u3d_tune_clock_fn clock, void *ctx,
                           u3d_tune_outcome *out, u3d_error *err)
{
    memset(out, 0, sizeof *out);
    out->baseline_s = -1;
    if (sp->nparams < 1 || sp->nparams > U3D_TUNE_MAX_PARAMS)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "tuning space %s/%s: %d parameters (1..%d)",
                          sp->family, sp->pass, sp->nparams,
                          U3D_TUNE_MAX_PARAMS);
    for (int p = 0; p < sp->nparams; p++)
        if (!nvalues(sp, p))
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "tuning space %s/%s: no values for %s",
                              sp->family, sp->pass, sp->params[p]);
    run r = {sp, lim, measure, clock, ctx, clock(ctx), o->budget_s,
             {0}, out};
    int stop = 0;
    if (o->baseline)
        stop = try_one(&r, o->baseline, 1);
    for (int i = 0; i < sp->nfixed && !stop; i++)
        stop = try_one(&r, sp->fixed[i], 0);
    /* stage 2: uniform draws over the product of the value lists; the
     * draws are bounded too, since most may be invalid or repeated */
    uint64_t rng = o->seed;
    int maxr = o->max_random > 0 ? o->max_random : 1000;
    int before = out->tried + out->invalid;
    for (int draw = 0; draw < 50 * maxr && !stop &&
                       out->tried + out->invalid - before < maxr;
         draw++) {
        int v[U3D_TUNE_MAX_PARAMS] = {0};
        for (int p = 0; p < sp->nparams; p++)
            v[p] = sp->values[p][u3d_splitmix64(&rng) %
                                 (uint64_t)nvalues(sp, p)];
        stop = try_one(&r, v, 0);
    }
    free(r.s.v);
    int np = sp->nparams;
    if (o->baseline && o->confirm > 0 && out->found &&
        out->baseline_s >= 0 &&
        memcmp(out->best, o->baseline, (size_t)np * sizeof *o->baseline)) {
        double tb = out->baseline_s, tw = out->best_s, t;
        for (int i = 0; i < o->confirm; i++) {
            if (!measure(ctx, o->baseline, &t) && t < tb)
                tb = t;
            if (!measure(ctx, out->best, &t) && t < tw)
                tw = t;
        }
        out->baseline_s = tb;
        if (tw < tb * (1 - o->margin)) {
            out->best_s = tw;
            out->confirmed = 1;
        } else { /* not clearly faster: keep what is in use */
            memcpy(out->best, o->baseline, (size_t)np * sizeof *out->best);
            out->best_s = tb;
        }
    }
    return U3D_OK;
}

void u3d_tune_format(const u3d_tune_space *sp, const int *v, char *out,
                     size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (int p = 0; p < sp->nparams && used < n; p++)
        used += (size_t)snprintf(out + used, n - used, "%s%s%d",
                                 p ? " " : "", sp->params[p], v[p]);
}
