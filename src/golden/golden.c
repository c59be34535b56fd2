/* Golden-fixture runner: loading, comparison and the case loop. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "golden/golden.h"

static const struct {
    const char *op;
    golden_handler fn;
} handlers[] = {
    {"relu", golden_relu},
    {"conv3d", golden_conv3d},
    {"conv_transpose3d", golden_upconv3d},
    {"maxpool3d", golden_maxpool3d},
    {"batchnorm3d", golden_batchnorm3d},
    {"softmax_cross_entropy", golden_softmax_ce},
    {"sgd", golden_sgd},
    {"adam", golden_adam},
    {"unet3d", golden_unet3d},
};

const char *golden_get(const golden_case *c, const char *key)
{
    for (int i = 0; i < c->nkv; i++)
        if (!strcmp(c->kv[i].key, key))
            return c->kv[i].value;
    return NULL;
}

/* The value of key as a number; is_int: an integer (strtol). */
static u3d_status number(const golden_case *c, const char *key, int is_int,
                         double *out, u3d_error *err)
{
    const char *v = golden_get(c, key);
    char *end;
    if (!v)
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s/case.txt: key '%s' missing",
                          c->dir, key);
    *out = is_int ? (double)strtol(v, &end, 10) : strtod(v, &end);
    if (end == v)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/case.txt: '%s' is not %s: %s", c->dir, key,
                          is_int ? "an integer" : "a number", v);
    return U3D_OK;
}

u3d_status golden_int(const golden_case *c, const char *key, int *out,
                      u3d_error *err)
{
    double x;
    U3D_TRY(number(c, key, 1, &x, err));
    *out = (int)x;
    return U3D_OK;
}

u3d_status golden_float(const golden_case *c, const char *key, float *out,
                        u3d_error *err)
{
    double x;
    U3D_TRY(number(c, key, 0, &x, err));
    *out = (float)x;
    return U3D_OK;
}

u3d_status golden_double(const golden_case *c, const char *key, double *out,
                         u3d_error *err)
{
    return number(c, key, 0, out, err);
}

u3d_status golden_int3(const golden_case *c, const char *key, int out[3],
                       u3d_error *err)
{
    const char *v = golden_get(c, key);
    if (!v)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/case.txt: key '%s' is missing", c->dir, key);
    char *end;
    long a[3];
    int n = 0;
    for (const char *p = v; n < 3; p = end + 1) {
        a[n++] = strtol(p, &end, 10);
        if (end == p || *end != ',')
            break;
    }
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
        end++;
    if ((n != 1 && n != 3) || *end || end == v)
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/case.txt: '%s' is not an integer or three "
                          "(D,H,W, e.g. 1,3,3): %s",
                          c->dir, key, v);
    for (int i = 0; i < 3; i++)
        out[i] = (int)(n == 1 ? a[0] : a[i]);
    return U3D_OK;
}

u3d_status golden_window(const golden_case *c, const char *op, int f[3],
                         u3d_error *err)
{
    int kernel[3], stride[3];
    U3D_TRY(golden_int3(c, "kernel", kernel, err));
    U3D_TRY(golden_int3(c, "stride", stride, err));
    for (int a = 0; a < 3; a++)
        if (kernel[a] != stride[a] || kernel[a] < 1 || kernel[a] > 2)
            return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                              "%s/case.txt: kernel %d stride %d along %c; %s "
                              "supports kernel = stride = 2 or 1 per axis",
                              c->dir, kernel[a], stride[a], "DHW"[a], op);
    for (int a = 0; a < 3; a++)
        f[a] = kernel[a];
    return U3D_OK;
}

u3d_status golden_npy(const golden_case *c, const char *name, u3d_npy *out,
                      u3d_error *err)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s.npy", c->dir, name);
    return u3d_npy_load(path, out, err);
}

u3d_status golden_shape(const golden_case *c, const char *name,
                        const u3d_npy *a, u3d_shape *out, u3d_error *err)
{
    const size_t *d = a->dims;
    for (int i = 0; i < a->ndim; i++)
        if (d[i] == 0 || d[i] > 0x7fffffff)
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s/%s.npy: axis %d has size %zu", c->dir, name,
                              i, d[i]);
    switch (a->ndim) {
    case 5: *out = u3d_shape5((int)d[0], (int)d[1], (int)d[2], (int)d[3], (int)d[4]); break;
    case 4: *out = u3d_shape5((int)d[0], 1, (int)d[1], (int)d[2], (int)d[3]); break;
    case 1: *out = u3d_shape5(1, (int)d[0], 1, 1, 1); break;
    case 0: *out = u3d_shape5(1, 1, 1, 1, 1); break;
    default:
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/%s.npy: %d axes; expected 5 (N,C,D,H,W), 4 "
                          "(labels N,D,H,W), 1 or 0",
                          c->dir, name, a->ndim);
    }
    return U3D_OK;
}

u3d_status golden_tensor(u3d_backend *be, const golden_case *c,
                         const char *name, u3d_tensor *out, u3d_error *err)
{
    u3d_npy a;
    u3d_shape s;
    memset(out, 0, sizeof *out);

    u3d_status st = golden_npy(c, name, &a, err);
    if (st)
        return st;
    st = golden_shape(c, name, &a, &s, err);
    if (!st)
        st = u3d_tensor_create(be, s, a.is_int ? U3D_I32 : U3D_F32, out, err);
    if (!st)
        st = u3d_tensor_write(out, a.data, err);
    if (st) {
        u3d_tensor_release(out);
        u3d_errprefix(err, "%s/%s.npy: ", c->dir, name);
    }
    u3d_npy_free(&a);
    return st;
}

u3d_status golden_want_shape(const golden_case *c, const char *name,
                             u3d_shape have, u3d_shape want, u3d_error *err)
{
    char a[96], b[96];
    if (u3d_shape_eq(have, want))
        return U3D_OK;
    return u3d_seterr(err, U3D_ERR_SHAPE, "%s/%s.npy has shape %s, expected %s",
                      c->dir, name, u3d_shape_str(have, a, sizeof a),
                      u3d_shape_str(want, b, sizeof b));
}

u3d_status golden_load(u3d_backend *be, const golden_case *c, const char *name,
                       u3d_dtype dt, const u3d_shape *s, u3d_tensor *out,
                       u3d_error *err)
{
    U3D_TRY(golden_tensor(be, c, name, out, err));
    if (out->dtype != dt)
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s/%s.npy must hold %s",
                          c->dir, name, dt == U3D_I32 ? "int32" : "float32");
    return s ? golden_want_shape(c, name, out->shape, *s, err) : U3D_OK;
}

u3d_status golden_check_host(const golden_case *c, golden_report *rep,
                             const char *name, const float *got, size_t n,
                             double tol, u3d_error *err)
{
    u3d_npy want;
    u3d_status st = golden_npy(c, name, &want, err);
    if (st)
        return st;
    if (want.count != n || want.is_int) {
        /* formatted before the free, which clears the count */
        u3d_seterr(err, U3D_ERR_SHAPE,
                   "%s/%s.npy holds %zu %s values, the result has %zu floats",
                   c->dir, name, want.count, want.is_int ? "integer" : "float",
                   n);
        u3d_npy_free(&want);
        return U3D_ERR_SHAPE;
    }
    const float *w = want.data;
    double amax = 0, emax = 0;
    int nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)w[i]);
        /* NaN compares false: a non-finite value on either side fails the
         * case rather than vanishing from the maxima */
        if (!isfinite(got[i]) || !isfinite(w[i]))
            nonfinite = 1;
        if (e > emax)
            emax = e;
        if (fabs(w[i]) > amax)
            amax = fabs(w[i]);
    }
    double rel = emax / (amax > 1e-30 ? amax : 1e-30);
    if (amax <= 1e-30)
        rel = emax; /* all-zero reference: absolute error */
    rep->checked++;
    if (emax > rep->max_abs)
        rep->max_abs = emax;
    if (rel > rep->max_rel)
        rep->max_rel = rel;
    if (nonfinite || !(rel <= tol)) {
        if (!rep->failed)
            snprintf(rep->first_fail, sizeof rep->first_fail,
                     "%s: max abs %.3g, rel %.3g > tol %.0e%s", name, emax, rel,
                     tol, nonfinite ? " (non-finite values)" : "");
        rep->failed++;
    }
    u3d_npy_free(&want);
    return U3D_OK;
}

u3d_status golden_check(const golden_case *c, golden_report *rep,
                        const char *name, const u3d_tensor *got, double tol,
                        u3d_error *err)
{
    size_t n = u3d_shape_count(got->shape);
    float *h = malloc(n * sizeof *h);
    if (!h)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    u3d_status st = u3d_tensor_read(got, h, err);
    if (!st)
        st = golden_check_host(c, rep, name, h, n, tol, err);
    free(h);
    return st;
}

u3d_status golden_check_all(const golden_case *c, golden_report *rep,
                            const golden_expect *rows, size_t n,
                            u3d_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].got)
            U3D_TRY(golden_check(c, rep, rows[i].name, rows[i].got,
                                 rows[i].tol, err));
    return U3D_OK;
}

static void free_case(golden_case *c)
{
    for (int i = 0; i < c->nkv; i++)
        free(c->kv[i].value);
    c->nkv = 0;
}

static u3d_status load_case(const char *dir, golden_case *c, u3d_error *err)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    const char *slash = strrchr(dir, '/');
    snprintf(c->name, sizeof c->name, "%s", slash ? slash + 1 : dir);
    char path[1100];
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return u3d_seterr(err, U3D_ERR_IO, "%s: cannot open: %m", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        if (c->nkv >= 64) {
            free(line);
            fclose(f);
            free_case(c);
            return u3d_seterr(err, U3D_ERR_FORMAT,
                              "%s: more than 64 key lines", path);
        }
        golden_kv *kv = &c->kv[c->nkv];
        if (sp)
            *sp = 0;
        snprintf(kv->key, sizeof kv->key, "%s", line);
        kv->value = strdup(sp ? sp + 1 : "");
        if (!kv->value)
            break;
        c->nkv++;
    }
    free(line);
    fclose(f);
    if (!golden_get(c, "op")) {
        free_case(c);
        return u3d_seterr(err, U3D_ERR_FORMAT, "%s: no 'op' line", path);
    }
    return U3D_OK;
}

static int is_case_dir(const char *dir)
{
    char path[1100];
    struct stat sb;
    snprintf(path, sizeof path, "%s/case.txt", dir);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_case(u3d_backend *be, const char *dir, FILE *out, int *passed,
                     int *failed)
{
    golden_case c;
    golden_report rep = {0};
    u3d_error e = {0};
    u3d_status st = load_case(dir, &c, &e);
    if (st) {
        fprintf(out, "FAIL %-24s error: %s\n", dir, e.msg);
        (*failed)++;
        return;
    }
    const char *op = golden_get(&c, "op");
    golden_handler fn = NULL;
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (!strcmp(handlers[i].op, op))
            fn = handlers[i].fn;
    if (!fn)
        st = u3d_seterr(&e, U3D_ERR_UNSUPPORTED, "unknown op '%s'", op);
    else
        st = fn(be, &c, &rep, &e);
    if (st == U3D_ERR_UNSUPPORTED) {
        fprintf(out, "UNSUPPORTED %-24s op %s: %s\n", c.name, op, e.msg);
        (*failed)++;
    } else if (st) {
        fprintf(out, "FAIL %-24s op %s: error: %s\n", c.name, op, e.msg);
        (*failed)++;
    } else if (rep.failed || !rep.checked) {
        fprintf(out, "FAIL %-24s %-22s max_abs %.3e max_rel %.3e  %s\n",
                c.name, op, rep.max_abs, rep.max_rel,
                rep.checked ? rep.first_fail : "nothing compared");
        (*failed)++;
    } else {
        fprintf(out, "PASS %-24s %-22s max_abs %.3e max_rel %.3e (%d tensors)\n",
                c.name, op, rep.max_abs, rep.max_rel, rep.checked);
        (*passed)++;
    }
    fflush(out);
    free_case(&c);
}

u3d_status u3d_golden_run(u3d_backend *be, char **paths, int npaths,
                          FILE *out, int *passed, int *failed, u3d_error *err)
{
    *passed = *failed = 0;
    for (int i = 0; i < npaths; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) || !S_ISDIR(sb.st_mode))
            return u3d_seterr(err, U3D_ERR_IO,
                              "%s: not a folder of golden cases", paths[i]);
        if (is_case_dir(paths[i])) {
            run_case(be, paths[i], out, passed, failed);
            continue;
        }
        DIR *d = opendir(paths[i]);
        if (!d)
            return u3d_seterr(err, U3D_ERR_IO, "%s: cannot list: %m", paths[i]);
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char sub[1100];
            snprintf(sub, sizeof sub, "%s/%s", paths[i], de->d_name);
            if (!is_case_dir(sub))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                char **nn = realloc(names, cap * sizeof *names);
                if (!nn)
                    break;
                names = nn;
            }
            names[n] = strdup(sub);
            if (names[n])
                n++;
        }
        closedir(d);
        if (n == 0) {
            free(names);
            return u3d_seterr(err, U3D_ERR_IO,
                              "%s: no case folders (with case.txt) found",
                              paths[i]);
        }
        qsort(names, n, sizeof *names, cmpstr);
        for (size_t j = 0; j < n; j++) {
            run_case(be, names[j], out, passed, failed);
            free(names[j]);
        }
        free(names);
    }
    return U3D_OK;
}
