/* The training loop: patches around labeled voxels, augmentation on the
 * device, weighted cross-entropy, SGD with momentum or Adam, checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "data/mirror.h"
#include "unet3d/unet3d.h"
#include "core/files.h"
#include "dist/dist.h"
#include "train/sample_internal.h"
#include "train/val_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void u3d_class_weights_auto(const size_t *counts, int classes, float *w)
{
    size_t total = 0;
    int present = 0;
    for (int c = 0; c < classes; c++) {
        total += counts[c];
        present += counts[c] > 0;
    }
    for (int c = 0; c < classes; c++)
        w[c] = counts[c] ? (float)((double)total / ((double)present *
                                                    (double)counts[c]))
                         : 0.0f;
}

u3d_status u3d_train_default_patch(const u3d_net_config *cfg, int cap,
                                   int patch[3], u3d_error *err)
{
    int out[3];
    for (int a = 0; a < 3; a++) { /* per axis: anisotropic nets differ */
        int below, above, s = cap;
        if (!u3d_net_valid_size_axis(cfg, a, s, &below, &above))
            s = below;
        if (s <= 0)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "no valid patch size up to %d along %c for "
                              "this network; give --patch (the smallest "
                              "valid size is %d)",
                              cap, "DHW"[a], above);
        patch[a] = s;
    }
    return u3d_net_output_size(cfg, patch, out, err);
}

/* One volume on the device plus the positions of its labeled voxels,
 * grouped by class (class-balanced patch sampling). */
typedef struct dvol {
    u3d_tensor img, lab;
    uint32_t *labeled;                  /* voxel indices sorted by class */
    size_t nlabeled;
    size_t start[U3D_MAX_CLASSES + 1];  /* class k: [start[k], start[k+1]) */
    int present[U3D_MAX_CLASSES];       /* classes with labeled voxels */
    int npresent;
    int d, h, w;
} dvol;

static void dvol_free(dvol *v)
{
    u3d_tensor_release(&v->img);
    u3d_tensor_release(&v->lab);
    free(v->labeled);
    memset(v, 0, sizeof *v);
}

/* Uploads a volume, mirror-padded (labels: ignore) to at least the patch
 * size per axis: the augmentation cuts patches from inside its source. */
static u3d_status dvol_upload(u3d_backend *be, const u3d_train_volume *tv,
                              int ignore, const int patch[3], dvol *v,
                              u3d_error *err)
{
    const u3d_volume *im = &tv->image;
    const u3d_labels *lb = &tv->labels;
    int sz[3] = {lb->d, lb->h, lb->w}, dim[3], lo[3];
    for (int a = 0; a < 3; a++) {
        dim[a] = sz[a] > patch[a] ? sz[a] : patch[a];
        lo[a] = (dim[a] - sz[a]) / 2;
    }
    size_t n = (size_t)dim[0] * dim[1] * dim[2];
    memset(v, 0, sizeof *v);
    v->d = dim[0];
    v->h = dim[1];
    v->w = dim[2];
    int32_t *l32 = malloc(n * sizeof *l32);
    float *img = malloc(n * (size_t)im->c * sizeof *img);
    v->labeled = malloc(n * sizeof *v->labeled);
    if (!l32 || !img || !v->labeled) {
        free(l32);
        free(img);
        free(v->labeled);
        v->labeled = NULL;
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    size_t cnt[U3D_MAX_CLASSES + 1] = {0};
    for (int z = 0; z < dim[0]; z++)
        for (int y = 0; y < dim[1]; y++)
            for (int x = 0; x < dim[2]; x++) {
                size_t i = ((size_t)z * dim[1] + y) * dim[2] + x;
                int sz_ = z - lo[0], sy = y - lo[1], sx = x - lo[2];
                int inside = sz_ >= 0 && sz_ < sz[0] && sy >= 0 &&
                             sy < sz[1] && sx >= 0 && sx < sz[2];
                size_t si = ((size_t)u3d_mirror(sz_, sz[0]) * sz[1] +
                             u3d_mirror(sy, sz[1])) * sz[2] +
                            u3d_mirror(sx, sz[2]);
                for (int c = 0; c < im->c; c++)
                    img[(size_t)c * n + i] =
                        im->data[(size_t)c * sz[0] * sz[1] * sz[2] + si];
                l32[i] = inside ? lb->data[si] : ignore;
                if (l32[i] != ignore && l32[i] >= 0 && l32[i] < U3D_MAX_CLASSES)
                    cnt[l32[i]]++;
            }
    for (int k = 0; k < U3D_MAX_CLASSES; k++) {
        v->start[k + 1] = v->start[k] + cnt[k];
        if (cnt[k])
            v->present[v->npresent++] = k;
    }
    v->nlabeled = v->start[U3D_MAX_CLASSES];
    size_t fillp[U3D_MAX_CLASSES];
    memcpy(fillp, v->start, sizeof fillp);
    for (size_t i = 0; i < n; i++)
        if (l32[i] != ignore && l32[i] >= 0 && l32[i] < U3D_MAX_CLASSES)
            v->labeled[fillp[l32[i]]++] = (uint32_t)i;
    u3d_status st = u3d_tensor_create(
        be, u3d_shape5(1, im->c, dim[0], dim[1], dim[2]), U3D_F32, &v->img, err);
    if (!st)
        st = u3d_tensor_write(&v->img, img, err);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, 1, dim[0], dim[1], dim[2]),
                               U3D_I32, &v->lab, err);
    if (!st)
        st = u3d_tensor_write(&v->lab, l32, err);
    free(l32);
    free(img);
    if (!st && v->nlabeled == 0)
        st = u3d_seterr(err, U3D_ERR_INVALID_ARG,
                        "%s: no labeled voxel (every voxel has the ignore "
                        "label %d)",
                        tv->labels_path, ignore);
    if (st)
        dvol_free(v);
    return st;
}

/* Data-parallel gradient averaging: the gradients of each block are read
 * to the host as the backward pass finishes them (the u3d_net_hooks
 * grads_ready hook), packed in the order they come (output layer first),
 * and a non-blocking allreduce starts for every full bucket of
 * bucket_floats, so communication overlaps the rest of backward. */
typedef struct gsync {
    u3d_net *net;
    float *host;
    size_t cap, used, sent;     /* floats packed, floats handed to MPI */
    size_t *off;                /* per parameter: offset in host */
    int *order, nready;         /* parameters in the order they came */
    u3d_dist_req **req;
    int nreq, maxreq;
    int nlearn; /* parameters backward must report */
    size_t bucket_floats;
} gsync;

static u3d_status gsync_flush(gsync *g, u3d_error *err)
{
    if (g->used == g->sent)
        return U3D_OK;
    if (g->nreq == g->maxreq)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "too many buckets");
    U3D_TRY(u3d_dist_isum_f32(g->host + g->sent, g->used - g->sent,
                              &g->req[g->nreq], err));
    g->nreq++;
    g->sent = g->used;
    return U3D_OK;
}

static u3d_status gsync_ready(void *ctx, const int *params, int n,
                              u3d_error *err)
{
    gsync *g = ctx;
    for (int i = 0; i < g->nreq; i++) /* earlier buckets move on */
        u3d_dist_poll(g->req[i]);
    for (int i = 0; i < n; i++) {
        u3d_param *p = u3d_net_param(g->net, params[i]);
        size_t cnt = u3d_shape_count(p->grad.shape);
        if (g->used + cnt > g->cap)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "gradient buffer overflow at %s", p->name);
        U3D_TRY(u3d_tensor_read(&p->grad, g->host + g->used, err));
        g->off[params[i]] = g->used;
        g->order[g->nready++] = params[i];
        g->used += cnt;
    }
    if (g->used - g->sent >= g->bucket_floats)
        return gsync_flush(g, err);
    return U3D_OK;
}

static u3d_status bn_sum(void *ctx, double *buf, int n, u3d_error *err)
{
    (void)ctx;
    return u3d_dist_sum_f64(buf, (size_t)n, err);
}

static u3d_status gsync_setup(gsync *g, u3d_net *net, int sync_bn,
                              u3d_error *err)
{
    memset(g, 0, sizeof *g);
    g->net = net;
    int np = u3d_net_num_params(net);
    for (int i = 0; i < np; i++) {
        g->cap += u3d_shape_count(u3d_net_param(net, i)->value.shape);
        g->nlearn += u3d_net_param(net, i)->learnable != 0;
    }
    const char *b = getenv("UNET3D_BUCKET_MB");
    double mb = b ? atof(b) : 8.0;
    g->bucket_floats = (size_t)(mb > 0 ? mb * 262144.0 : 1);
    g->maxreq = np;
    g->host = malloc(g->cap * sizeof *g->host);
    g->off = calloc((size_t)np, sizeof *g->off);
    g->order = calloc((size_t)np, sizeof *g->order);
    g->req = calloc((size_t)np, sizeof *g->req);
    if (!g->host || !g->off || !g->order || !g->req)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_net_hooks h = {g, gsync_ready, sync_bn ? bn_sum : NULL};
    u3d_net_set_hooks(net, &h);
    return U3D_OK;
}

static void gsync_begin(gsync *g)
{
    g->used = g->sent = 0;
    g->nready = g->nreq = 0;
}

/* After backward: the last bucket, every allreduce done, the sums back on
 * the device. */
static u3d_status gsync_finish(gsync *g, u3d_error *err)
{
    u3d_status st = gsync_flush(g, err);
    for (int i = 0; i < g->nreq; i++) {
        u3d_status w = u3d_dist_wait(g->req[i], err);
        st = st ? st : w;
    }
    g->nreq = 0;
    if (!st && g->nready != g->nlearn) /* a gradient left unsummed */
        st = u3d_seterr(err, U3D_ERR_INVALID_ARG,
                        "backward reported %d of %d parameter gradients",
                        g->nready, g->nlearn);
    for (int i = 0; i < g->nready && !st; i++) {
        u3d_param *p = u3d_net_param(g->net, g->order[i]);
        st = u3d_tensor_write(&p->grad, g->host + g->off[g->order[i]], err);
    }
    return st;
}

static void gsync_free(gsync *g)
{
    if (g->net)
        u3d_net_set_hooks(g->net, NULL);
    free(g->host);
    free(g->off);
    free(g->order);
    free(g->req);
    memset(g, 0, sizeof *g);
}

typedef struct trainer {
    u3d_net *net;
    u3d_backend *be;
    u3d_model_meta *m;
    u3d_augment_params aug;
    dvol *vols;
    int nvols;
    int out[3];
    u3d_tensor x, lab, dlogits, cw, px, plab; /* batch and one-sample tensors */
    /* data parallel: this rank's items [b0, b0 + nb) of the global batch
     * m->batch; one process: all of them */
    int rank, nranks, b0, nb;
    int sync_bn;
    int consistent;  /* the last error is the same on every rank */
    int agreed_fail; /* an error all ranks know of ended the loop */
    gsync gs;
    char *log;
    size_t loglen, logcap;
    size_t lastrow;          /* log offset of the last row */
    char rowhead[96];        /* the last row's iteration, loss, seconds */
    const u3d_train_volume *val; /* NULL: no validation */
    int val_every;
    u3d_val_score best;      /* iteration 0: none yet */
    u3d_net_snapshot snap;   /* keep_best: the best parameters */
} trainer;

static void log_line(trainer *t, const char *line)
{
    size_t n = strlen(line);
    if (t->loglen + n + 1 > t->logcap) {
        size_t cap = t->logcap ? 2 * t->logcap + n : 65536 + n;
        char *p = realloc(t->log, cap);
        if (!p)
            return; /* the log is a convenience; training goes on */
        t->log = p;
        t->logcap = cap;
    }
    memcpy(t->log + t->loglen, line, n + 1);
    t->loglen += n;
}

/* Writes the CSV atomically (temp file + rename). */
/* The loss log starts with its header; a resumed run keeps the rows of
 * the iterations its checkpoint holds (later ones are run again) so the
 * file stays the whole run's curve. */
/* Ends a CSV row after its first n fields. */
static void drop_after_field(char *line, int n)
{
    char *p = line;
    for (int k = 0; k < n && p; k++)
        p = strchr(p + (k > 0), ',');
    if (p)
        strcpy(p, "\n");
}

/* With validation the header and rows have its columns, and the best
 * score of the rows kept is the one later validations must beat. */
static void resume_log(trainer *t, const char *path, long upto)
{
    char header[1024] = "iteration,loss,seconds";
    int classes = t->m->net.classes;
    if (t->val)
        u3d_val_csv_header(classes, header + strlen(header),
                           sizeof header - strlen(header));
    log_line(t, header);
    log_line(t, "\n");
    FILE *f = upto > 0 && path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char line[1024];
    u3d_val_score s;
    while (fgets(line, sizeof line, f)) {
        char *end;
        long it = strtol(line, &end, 10);
        if (end == line || *end != ',' || it < 1 || it > upto ||
            !strchr(line, '\n'))
            continue;
        if (!t->val) /* validated before, not now: the header's columns */
            drop_after_field(line, 3);
        log_line(t, line);
        if (t->val && u3d_val_csv_parse(line, classes, it, &s) &&
            u3d_val_key(&s) > u3d_val_key(&t->best))
            t->best = s;
    }
    fclose(f);
}

/* A model with NaN/Inf parameters (a diverging run: the loss of the
 * iteration was still finite, its SGD step was not) must never replace the
 * last good model on disk. */
typedef struct finite_scan {
    float *h;
    size_t cap;
    long iteration;
} finite_scan;

static u3d_status scan_tensor(finite_scan *f, const u3d_tensor *t,
                              const char *name, const char *what,
                              u3d_error *err)
{
    if (!t->buf)
        return U3D_OK;
    size_t n = u3d_shape_count(t->shape);
    if (n > f->cap) {
        float *q = realloc(f->h, n * sizeof *q);
        if (!q)
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        f->h = q;
        f->cap = n;
    }
    U3D_TRY(u3d_tensor_read(t, f->h, err));
    for (size_t j = 0; j < n; j++)
        if (!isfinite(f->h[j]))
            return u3d_seterr(err, U3D_ERR_NUMERIC,
                              "training diverged at iteration %ld: %s%s "
                              "became %s; the model file keeps the last "
                              "finite checkpoint; lower --lr",
                              f->iteration, name, what,
                              isnan(f->h[j]) ? "NaN" : "infinite");
    return U3D_OK;
}

/* Values, optimizer state and batch-norm running statistics. */
static u3d_status check_finite(u3d_net *net, long iteration, u3d_error *err)
{
    finite_scan f = {NULL, 0, iteration};
    u3d_status st = U3D_OK;
    for (int i = 0; i < u3d_net_num_params(net) && !st; i++) {
        u3d_param *p = u3d_net_param(net, i);
        st = scan_tensor(&f, &p->value, p->name, "", err);
        if (!st)
            st = scan_tensor(&f, &p->momentum, p->name, " (momentum)", err);
        if (!st)
            st = scan_tensor(&f, &p->second, p->name, " (Adam's second moment)",
                             err);
    }
    for (int i = 0; i < u3d_net_num_buffers(net) && !st; i++) {
        u3d_param *b = u3d_net_buffer(net, i);
        st = scan_tensor(&f, &b->value, b->name, "", err);
    }
    free(f.h);
    return st;
}

static u3d_status write_log(const trainer *t, const char *path, u3d_error *err)
{
    if (!path || !t->log)
        return U3D_OK;
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, path, err));
    FILE *f = u3d_outfile_stream(&o, err);
    if (!f || fputs(t->log, f) < 0) {
        u3d_outfile_abort(&o);
        return u3d_seterr(err, U3D_ERR_IO, "%s: write failed: %m", path);
    }
    return u3d_outfile_commit(&o, err);
}

/* Saves the model and the loss log, unless the parameters are not finite. */
static u3d_status save(trainer *t, u3d_net *net, const u3d_train_opts *o,
                       u3d_error *err)
{
    U3D_TRY(check_finite(net, t->m->iteration, err));
    if (o->model_path) /* NULL: the caller keeps the model in memory */
        U3D_TRY(u3d_model_save(o->model_path, net, t->m, 1, err));
    return write_log(t, o->log_path, err);
}

size_t u3d_sample_pick(int sampling, const size_t *start, const int *present,
                       int npresent, size_t nlabeled, u3d_rng *r)
{
    /* mixed: the draw is the item's own, so a batch mixes both kinds */
    int by_voxel = sampling == U3D_SAMPLE_VOXEL ||
                   (sampling == U3D_SAMPLE_MIXED && u3d_rng_below(r, 3) != 0);
    if (by_voxel) /* classes as annotated */
        return u3d_rng_below(r, (uint32_t)nlabeled);
    /* class first, then a voxel of it: rare foreground is seen as often
     * as the background that dominates sparse annotations */
    int k = present[u3d_rng_below(r, (uint32_t)npresent)];
    size_t nk = start[k + 1] - start[k];
    return start[k] + u3d_rng_below(r, (uint32_t)nk);
}

/* Draws the patch of batch item b of iteration it and augments it into
 * item b of the batch tensors. */
static u3d_status make_sample(trainer *t, long it, int lb, u3d_error *err)
{
    const u3d_model_meta *m = t->m;
    /* item lb of this rank is item b of the global batch: its patch is the
     * one a single process with the whole batch draws */
    int b = t->b0 + lb;
    u3d_rng r;
    u3d_rng_init(&r, m->seed, ((uint64_t)it << 8) | (uint64_t)b);
    int vi = (int)u3d_rng_below(&r, (uint32_t)t->nvols);
    dvol *v = &t->vols[vi];
    uint32_t idx = v->labeled[u3d_sample_pick(m->sampling, v->start,
                                              v->present, v->npresent,
                                              v->nlabeled, &r)];
    int p[3] = {(int)(idx / ((uint32_t)v->h * v->w)),
                (int)(idx / (uint32_t)v->w % (uint32_t)v->h),
                (int)(idx % (uint32_t)v->w)};
    float origin[3];
    /* the labeled voxel lands anywhere inside the predicted (output) part */
    /* whole voxels: without deformation a patch is an exact crop, never an
     * interpolated (smoothed) one that would differ from inference input */
    for (int a = 0; a < 3; a++) {
        int jitter = (int)u3d_rng_below(&r, (uint32_t)t->out[a]) - t->out[a] / 2;
        int size = a == 0 ? m->patch[0] : a == 1 ? m->patch[1] : m->patch[2];
        /* patch center (size-1)/2 lands on a voxel centre when size is odd;
         * for even sizes shift by half a voxel */
        origin[a] = (float)(p[a] + jitter) + ((size % 2) ? 0.0f : 0.5f);
    }
    uint64_t sample = (uint64_t)it * (uint64_t)m->batch + (uint64_t)b;
    u3d_status st =
        u3d_augment_sample(t->be, &t->aug, m->seed, sample, &v->img, &v->lab,
                           origin, &t->px, &t->plab, err);
    if (!st)
        st = u3d_tensor_copy_sample(&t->x, lb, &t->px, 0, err);
    if (!st)
        st = u3d_tensor_copy_sample(&t->lab, lb, &t->plab, 0, err);
    return st;
}

static u3d_status step(trainer *t, long it, float *loss, u3d_error *err)
{
    u3d_model_meta *m = t->m;
    u3d_status st = U3D_OK;
    for (int b = 0; b < t->nb && !st; b++)
        st = make_sample(t, it, b, err);
    const u3d_tensor *logits;
    float wsum = 0;
    if (!st)
        st = u3d_net_forward(t->net, &t->x, U3D_NET_TRAIN, &logits, err);
    if (!st)
        st = u3d_softmax_ce(logits, &t->lab, &t->cw, m->ignore_label, NULL,
                            &t->dlogits, loss, &wsum, err);
    if (st)
        return st;
    if (t->nranks > 1) {
        /* the loss of the global batch is sum_r w_r loss_r / W, W = sum_r
         * w_r; each rank's dlogits (normalized by its w_r) scaled by w_r / W
         * make the summed gradients those of the global batch */
        double lw[2] = {isfinite(*loss) && wsum > 0 ? (double)*loss * wsum
                                                    : (double)*loss,
                        wsum};
        U3D_TRY(u3d_dist_sum_f64(lw, 2, err));
        float local_w = wsum;
        wsum = (float)lw[1];
        *loss = lw[1] > 0 ? (float)(lw[0] / lw[1]) : 0.0f;
        if (!isfinite(lw[0]))
            *loss = (float)lw[0];
        if (isfinite(*loss) && wsum > 0) {
            float s = (float)((double)local_w / lw[1]);
            if (local_w > 0)
                st = u3d_axpy(s - 1.0f, &t->dlogits, &t->dlogits, err);
            else /* nothing labeled here: contribute zero */
                st = u3d_axpy(-1.0f, &t->dlogits, &t->dlogits, err);
            if (st)
                return st;
        }
    }
    t->consistent = 1; /* the loss is the global batch's on every rank */
    if (!isfinite(*loss))
        return u3d_seterr(err, U3D_ERR_NUMERIC,
                          "training diverged at iteration %ld (loss %g): "
                          "lower --lr",
                          it + 1, *loss);
    t->consistent = 0;
    if (wsum <= 0)
        return U3D_OK; /* augmentation moved every label out: skip */
    if (t->nranks > 1)
        gsync_begin(&t->gs);
    st = u3d_net_backward(t->net, &t->dlogits, err);
    if (!st && t->nranks > 1)
        st = gsync_finish(&t->gs, err);
    if (!st) {
        /* poly decay: a stable model at the end of any budget */
        double prog = m->iterations > 0 ? (double)it / (double)m->iterations
                                        : m->elapsed_s / (m->minutes * 60.0);
        prog = prog < 0 ? 0 : prog > 1 ? 1 : prog;
        float lr = m->lr_poly ? (float)(m->lr * pow(1.0 - prog, 0.9)) : m->lr;
        if (m->optimizer == U3D_OPTIM_ADAM) {
            u3d_adam_params ap = {lr,          m->beta1,        m->beta2,
                                  m->adam_eps, m->weight_decay, m->adam_step + 1};
            st = u3d_net_adam_step(t->net, &ap, err);
            if (!st)
                m->adam_step++;
        } else {
            u3d_sgd_params sp = {lr, m->momentum, m->weight_decay};
            st = u3d_net_sgd_step(t->net, &sp, err);
        }
    }
    return st;
}

static void fmt_time(double s, char *buf, size_t n)
{
    if (s < 0 || !isfinite(s))
        snprintf(buf, n, "?");
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s / 60 % 60);
}

static u3d_status setup(trainer *t, u3d_train_volume *vols, int nvols,
                        u3d_error *err)
{
    u3d_model_meta *m = t->m;
    const u3d_net_config *c = &m->net;
    u3d_status st = u3d_net_output_size(c, m->patch, t->out, err);
    if (st)
        return u3d_errprefix(err, "--patch %dx%dx%d (DxHxW): ", m->patch[0],
                             m->patch[1], m->patch[2]);
    st = u3d_model_augment_params(m, &t->aug, err);
    if (st)
        return st;
    t->aug.ignore_label = m->ignore_label;
    t->vols = calloc((size_t)nvols, sizeof *t->vols);
    if (!t->vols)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    for (int i = 0; i < nvols; i++) {
        if (vols[i].image.c != c->in_channels)
            return u3d_seterr(err, U3D_ERR_SHAPE,
                              "%s has %d channel(s), the network takes %d",
                              vols[i].image_path, vols[i].image.c,
                              c->in_channels);
        st = dvol_upload(t->be, &vols[i], m->ignore_label, m->patch,
                         &t->vols[i], err);
        if (st)
            return st;
        t->nvols++;
    }
    int B = t->nb, C = c->in_channels, K = c->classes;
    u3d_shape xs = u3d_shape5(B, C, m->patch[0], m->patch[1], m->patch[2]);
    u3d_shape ls = u3d_shape5(B, 1, t->out[0], t->out[1], t->out[2]);
    u3d_shape ds = u3d_shape5(B, K, t->out[0], t->out[1], t->out[2]);
    if ((st = u3d_tensor_create(t->be, xs, U3D_F32, &t->x, err)) ||
        (st = u3d_tensor_create(t->be, ls, U3D_I32, &t->lab, err)) ||
        (st = u3d_tensor_create(t->be, ds, U3D_F32, &t->dlogits, err)) ||
        (st = u3d_tensor_create(t->be, u3d_shape5(1, K, 1, 1, 1), U3D_F32,
                                &t->cw, err)))
        return st;
    xs.n = ls.n = 1;
    if ((st = u3d_tensor_create(t->be, xs, U3D_F32, &t->px, err)) ||
        (st = u3d_tensor_create(t->be, ls, U3D_I32, &t->plab, err)))
        return st;
    if ((st = u3d_tensor_write(&t->cw, m->class_weights, err)))
        return st;
    st = u3d_net_prepare_training(t->net, err);
    /* Adam's moments exist on every rank before rank 0's are broadcast */
    if (!st && m->optimizer == U3D_OPTIM_ADAM)
        st = u3d_net_prepare_adam(t->net, err);
    if (!st && t->nranks > 1)
        st = gsync_setup(&t->gs, t->net, t->sync_bn, err);
    return st;
}

/* Every rank starts from rank 0's parameters, momentum and statistics (the
 * same file or seed gives the same values; this makes sure of it). */
static u3d_status bcast_tensor(u3d_tensor *x, float **h, size_t *cap,
                               u3d_error *err)
{
    if (!x->buf)
        return U3D_OK;
    size_t n = u3d_shape_count(x->shape);
    if (n > *cap) {
        float *q = realloc(*h, n * sizeof *q);
        if (!q)
            return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
        *h = q;
        *cap = n;
    }
    U3D_TRY(u3d_tensor_read(x, *h, err));
    U3D_TRY(u3d_dist_bcast(*h, n * sizeof **h, 0, err));
    return u3d_tensor_write(x, *h, err);
}

static u3d_status bcast_state(u3d_net *net, u3d_error *err)
{
    float *h = NULL;
    size_t cap = 0;
    u3d_status st = U3D_OK;
    for (int i = 0; i < u3d_net_num_params(net) && !st; i++) {
        u3d_param *p = u3d_net_param(net, i);
        st = bcast_tensor(&p->value, &h, &cap, err);
        if (!st)
            st = bcast_tensor(&p->momentum, &h, &cap, err);
        if (!st)
            st = bcast_tensor(&p->second, &h, &cap, err);
    }
    for (int i = 0; i < u3d_net_num_buffers(net) && !st; i++)
        st = bcast_tensor(&u3d_net_buffer(net, i)->value, &h, &cap, err);
    free(h);
    return st;
}

/* The log row of the iteration just done, with its validation if any. */
static void log_row(trainer *t, const u3d_val_score *v)
{
    char line[1024];
    size_t k = (size_t)snprintf(line, sizeof line, "%s", t->rowhead);
    if (t->val)
        u3d_val_csv_fields(v, t->m->net.classes, line + k, sizeof line - k);
    t->lastrow = t->loglen;
    log_line(t, line);
    log_line(t, "\n");
}

static void say_val(const u3d_val_score *s, int better, FILE *pf)
{
    fprintf(pf, "validation at iteration %ld: IoU", s->iteration);
    for (int c = 0; c < s->classes; c++)
        fprintf(pf, " %.4f", s->iou[c]);
    fprintf(pf, ", mean foreground %.4f%s\n", s->mean_fg,
            better ? " (best so far)" : "");
    fflush(pf);
}

/* Scores the net on the validation volume; a better score than any before
 * is kept: the model file (rank 0) and/or the host copy. Every rank calls
 * it at the same iteration (u3d_validate shares the prediction). */
static u3d_status validate(trainer *t, const u3d_train_opts *o,
                           u3d_val_score *s, u3d_error *err)
{
    /* the training's buffers stay on the device: the prediction gets half
     * the usual budget (its result does not depend on the tiling) */
    size_t budget, max_alloc;
    u3d_predict_device_memory(t->be, &budget, &max_alloc);
    U3D_TRY(u3d_validate(t->net, t->val, t->m->ignore_label, budget / 2, s,
                         err));
    s->iteration = t->m->iteration;
    int better = u3d_val_key(s) > u3d_val_key(&t->best);
    if (better)
        t->best = *s;
    if (!o->quiet && t->rank == 0)
        say_val(s, better, o->progress ? o->progress : stderr);
    if (!better)
        return U3D_OK;
    if (o->keep_best)
        U3D_TRY(u3d_net_snapshot_take(t->net, &t->snap, err));
    if (!o->best_path || t->rank != 0)
        return U3D_OK;
    U3D_TRY(check_finite(t->net, t->m->iteration, err));
    return u3d_model_save(o->best_path, t->net, t->m, 1, err);
}

/* After the loop: the last iteration validated (a time budget ends where
 * no one knew in advance: its row is written again with the score), then
 * the best parameters back in the net when asked. */
static u3d_status validate_last(trainer *t, const u3d_train_opts *o,
                                u3d_error *err)
{
    if (!t->val || t->m->iteration == 0)
        return U3D_OK;
    u3d_val_score s;
    if (t->lastrow && t->log && t->m->iteration % t->val_every != 0) {
        U3D_TRY(validate(t, o, &s, err));
        t->loglen = t->lastrow;
        t->log[t->loglen] = 0;
        log_row(t, &s);
    }
    if (o->best)
        *o->best = t->best;
    if (o->keep_best && t->snap.h && t->best.iteration != t->m->iteration)
        return u3d_net_snapshot_restore(t->net, &t->snap, err);
    return U3D_OK;
}

static void teardown(trainer *t)
{
    u3d_net_snapshot_free(&t->snap);
    for (int i = 0; i < t->nvols; i++)
        dvol_free(&t->vols[i]);
    free(t->vols);
    u3d_tensor *all[] = {&t->x, &t->lab, &t->dlogits, &t->cw, &t->px, &t->plab};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        u3d_tensor_release(all[i]);
    gsync_free(&t->gs);
    free(t->log);
}

u3d_status u3d_train_run(u3d_net *net, u3d_model_meta *m,
                         u3d_train_volume *vols, int nvols,
                         const u3d_train_opts *o, u3d_error *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.net = net;
    t.be = u3d_net_backend(net);
    t.m = m;
    FILE *pf = o->progress ? o->progress : stderr;
    if (nvols < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "no training volume given");
    if (m->iterations <= 0 && m->minutes <= 0)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "give --iterations N or --minutes M");
    if (m->batch < 1)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG, "--batch must be >= 1");
    t.sync_bn = o->sync_bn;
    t.rank = u3d_dist_rank();
    t.nranks = u3d_dist_active() ? u3d_dist_size() : 1;
    if (t.nranks > m->batch)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "the batch of %d patches per iteration cannot be "
                          "shared by %d ranks (give --batch per rank; a "
                          "resumed run keeps its batch: resume with at most "
                          "%d ranks)",
                          m->batch, t.nranks, m->batch);
    t.b0 = (int)((long)t.rank * m->batch / t.nranks);
    t.nb = (int)((long)(t.rank + 1) * m->batch / t.nranks) - t.b0;
    t.val = o->val;
    t.val_every = o->val_every > 0          ? o->val_every
                  : o->checkpoint_every > 0 ? o->checkpoint_every
                                            : 50;
    u3d_status st = t.val ? u3d_val_check(&m->net, t.val, m->ignore_label,
                                          err)
                          : U3D_OK;
    if (!st)
        st = setup(&t, vols, nvols, err);
    /* setup failed on one rank (a device, memory, a volume): all stop here
     * with its message */
    if (t.nranks > 1) {
        st = u3d_dist_agree(st, err);
        t.agreed_fail = st != U3D_OK;
        if (!st && (st = bcast_state(net, err)))
            u3d_dist_abort(err);
    }
    if (!st)
        resume_log(&t, o->log_path, m->iteration);
    double t0 = now_s(), last_print = 0, base = m->elapsed_s;
    long first = m->iteration, done_here = 0;
    size_t vox = (size_t)m->batch * m->patch[0] * m->patch[1] * m->patch[2];
    float ema = NAN;
    /* several ranks: rank 0 prints and writes; a failure of one rank in
     * the loop aborts them all (its peers would wait for it forever) */
    int lead = t.rank == 0;
    while (!st) {
        double el = base + (now_s() - t0);
        if (m->iterations > 0 && m->iteration >= m->iterations)
            break;
        if (m->iterations <= 0 && t.nranks > 1 &&
            (st = u3d_dist_bcast(&el, sizeof el, 0, err)))
            break; /* rank 0's clock decides */
        if (m->iterations <= 0 && el >= m->minutes * 60.0)
            break;
        float loss = 0;
        t.consistent = 0;
        st = step(&t, m->iteration, &loss, err);
        if (st && t.nranks > 1) {
            if (t.consistent) { /* every rank saw the same global loss */
                st = u3d_dist_agree(st, err);
                t.agreed_fail = 1;
            }
            else
                u3d_dist_abort(err);
        }
        if (st)
            break;
        m->iteration++;
        done_here++;
        m->elapsed_s = base + (now_s() - t0);
        ema = isnan(ema) ? loss : 0.95f * ema + 0.05f * loss;
        snprintf(t.rowhead, sizeof t.rowhead, "%ld,%.6g,%.3f", m->iteration,
                 loss, m->elapsed_s);
        u3d_val_score vs;
        int val_now = t.val && m->iteration % t.val_every == 0;
        if (val_now && (st = validate(&t, o, &vs, err))) {
            if (t.nranks > 1)
                u3d_dist_abort(err);
            break;
        }
        log_row(&t, val_now ? &vs : NULL);
        double run = now_s() - t0;
        if (!o->quiet && lead &&
            (run - last_print > 5.0 || m->iteration == 1 ||
                          m->iteration == m->iterations)) {
            double per = run / (double)done_here;
            double left = m->iterations > 0
                              ? per * (double)(m->iterations - m->iteration)
                              : m->minutes * 60.0 - m->elapsed_s;
            char eta[32];
            fmt_time(left, eta, sizeof eta);
            char itb[48];
            if (m->iterations > 0)
                snprintf(itb, sizeof itb, "%ld/%ld", m->iteration,
                         m->iterations);
            else
                snprintf(itb, sizeof itb, "%ld", m->iteration);
            fprintf(pf,
                    "iter %-12s loss %.4f (avg %.4f)  %.0f vox/s  "
                    "%.2f s/iter  ETA %s\n",
                    itb, loss, ema, (double)vox / per, per, eta);
            fflush(pf);
            last_print = run;
        }
        if (o->checkpoint_every > 0 && lead &&
            m->iteration % o->checkpoint_every == 0) {
            st = save(&t, net, o, err);
            if (st && t.nranks > 1)
                u3d_dist_abort(err);
        }
        if (o->stop_after > 0 && done_here >= o->stop_after)
            goto out; /* testing hook: as if the process died here */
        if (t.nranks > 1 && t.rank == t.nranks - 1 &&
            getenv("UNET3D_TEST_SIGKILL_AT") &&
            atol(getenv("UNET3D_TEST_SIGKILL_AT")) == m->iteration)
            raise(SIGKILL); /* testing hook (tests/test_mpi.c): a rank dies */
    }
    (void)first;
    if (!st && (st = validate_last(&t, o, err)) && t.nranks > 1)
        u3d_dist_abort(err);
    if (!st && lead)
        st = save(&t, net, o, err);
    if (t.nranks > 1 && !t.agreed_fail)
        st = u3d_dist_agree(st, err); /* the model is written, or why not */
out:
    teardown(&t);
    return st;
}
