/* Tuning parameters as data: see tuning.h and data/tuning/FORMAT. The
 * rows once held in this file are the tables of data/tuning/ now. */
#define _POSIX_C_SOURCE 200809L
#include "backends/opencl/tuning.h"
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/opencl/runtime.h"
#include "core/files.h"

extern char **environ;

/* [a-z0-9_]+ that fits n bytes with its terminator */
static int is_name(const char *s, size_t len, size_t n)
{
    if (len == 0 || len >= n)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* A decimal integer in [1, INT_MAX] */
static int parse_value(const char *s, size_t len, int *v)
{
    if (len == 0 || len > 10 || s[0] == '0')
        return 0;
    long long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        x = x * 10 + (s[i] - '0');
    }
    if (x > 2147483647LL)
        return 0;
    *v = (int)x;
    return 1;
}

/* Splits line [s, e) at TABs into at most max fields; returns the count
 * (max + 1 when there are more). */
static int split(const char *s, const char *e, const char **f, size_t *len,
                 int max)
{
    int k = 0;
    const char *p = s;
    for (;;) {
        const char *t = memchr(p, '\t', (size_t)(e - p));
        if (k == max)
            return max + 1;
        f[k] = p;
        len[k] = (size_t)((t ? t : e) - p);
        k++;
        if (!t)
            return k;
        p = t + 1;
    }
}

static u3d_status grow(u3d_tune_row **rows, int n, int *cap, u3d_error *err)
{
    if (n < *cap)
        return U3D_OK;
    int c = *cap ? 2 * *cap : 32;
    u3d_tune_row *r = realloc(*rows, (size_t)c * sizeof *r);
    if (!r)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    *rows = r;
    *cap = c;
    return U3D_OK;
}

u3d_status u3d_tune_parse_table(const char *name, const char *text,
                                u3d_tune_row **rows, int *n, u3d_error *err)
{
    *rows = NULL;
    *n = 0;
    int cap = 0, line = 0;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        if (!e)
            e = s + strlen(s);
        line++;
        const char *f[5];
        size_t len[5];
        if (e > s && s[0] != '#') {
            int k = split(s, e, f, len, 4);
            u3d_tune_row r = {0};
            if (k != 4 || len[0] == 0 || len[0] >= sizeof r.device ||
                f[0][0] == '#' || !is_name(f[1], len[1], sizeof r.family) ||
                !is_name(f[2], len[2], sizeof r.param) ||
                !parse_value(f[3], len[3], &r.value)) {
                free(*rows);
                *rows = NULL;
                *n = 0;
                return u3d_seterr(err, U3D_ERR_FORMAT,
                                  "tuning table %s, line %d: not "
                                  "DEVICE<TAB>family<TAB>param<TAB>value "
                                  "(see data/tuning/FORMAT)",
                                  name, line);
            }
            memcpy(r.device, f[0], len[0]);
            memcpy(r.family, f[1], len[1]);
            memcpy(r.param, f[2], len[2]);
            strcpy(r.pass, U3D_TUNE_ANY);
            strcpy(r.bucket, U3D_TUNE_ANY);
            u3d_status st = grow(rows, *n, &cap, err);
            if (st) {
                free(*rows);
                *rows = NULL;
                *n = 0;
                return st;
            }
            (*rows)[(*n)++] = r;
        }
        s = *e ? e + 1 : e;
    }
    return U3D_OK;
}

void u3d_cache_dir(char *dir, size_t n)
{
    const char *env = getenv("UNET3D_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    dir[0] = 0;
    if (env) {
        if (env[0] && strcmp(env, "off"))
            snprintf(dir, n, "%s", env);
    } else if (xdg && xdg[0]) {
        snprintf(dir, n, "%s/unet3d", xdg);
    } else if (home && home[0]) {
        snprintf(dir, n, "%s/.cache/unet3d", home);
    }
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ 0xff; /* separates "ab","c" from "a","bc" */
}

void u3d_tune_path(const char *dir, const u3d_tune_key *key, char *out,
                   size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    h = fnv1a(h, key->platform);
    h = fnv1a(h, key->device);
    h = fnv1a(h, key->driver);
    snprintf(out, n, "%s/tuning-%016llx.tsv", dir, (unsigned long long)h);
}

#define MAGIC "unet3d-tuning"

/* the field of a "name\tvalue" header line */
static int header(const char *s, const char *e, const char *name,
                  char *out, size_t n)
{
    size_t l = strlen(name);
    if ((size_t)(e - s) <= l || strncmp(s, name, l) || s[l] != '\t')
        return 0;
    size_t v = (size_t)(e - s) - l - 1;
    if (v >= n)
        return 0;
    memcpy(out, s + l + 1, v);
    out[v] = 0;
    return 1;
}

static u3d_status refuse(const char *path, u3d_tune_row **rows, int *n,
                         u3d_error *err, const char *why)
{
    free(*rows);
    *rows = NULL;
    *n = 0;
    return u3d_seterr(err, U3D_ERR_FORMAT, "tuning file %s refused: %s",
                      path, why);
}

/* Parses the text of a tuned file (see u3d_tune_write for the layout). */
static u3d_status parse_user(const char *path, const char *text,
                             const u3d_tune_key *key, u3d_tune_row **rows,
                             int *n, u3d_error *err)
{
    char why[600], val[128];
    u3d_tune_key got = {{0}, {0}, {0}};
    int stage = 0, cap = 0, line = 0, ended = 0;
    *rows = NULL;
    *n = 0;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        if (!e) { /* every line ends with '\n': a cut file does not */
            return refuse(path, rows, n, err,
                          "truncated (the last line is incomplete); run "
                          "'unet3d tune' again");
        }
        line++;
        if (e == s || s[0] == '#') {
            s = e + 1;
            continue;
        }
        if (ended)
            return refuse(path, rows, n, err, "text after its end line");
        if (stage == 0) {
            if (!header(s, e, MAGIC, val, sizeof val))
                return refuse(path, rows, n, err,
                              "not a unet3d tuning file");
            if (strcmp(val, "1")) {
                snprintf(why, sizeof why,
                         "format version %s (this unet3d reads %d); run "
                         "'unet3d tune' again",
                         val, U3D_TUNE_FORMAT);
                return refuse(path, rows, n, err, why);
            }
            stage = 1;
        } else if (stage == 1 || stage == 2 || stage == 3) {
            static const char *const names[] = {"platform", "device",
                                                "driver"};
            char *dst[] = {got.platform, got.device, got.driver};
            if (!header(s, e, names[stage - 1], dst[stage - 1],
                        sizeof got.platform)) {
                snprintf(why, sizeof why, "line %d: expected its %s",
                         line, names[stage - 1]);
                return refuse(path, rows, n, err, why);
            }
            stage++;
            if (stage == 4 && (strcmp(got.platform, key->platform) ||
                               strcmp(got.device, key->device) ||
                               strcmp(got.driver, key->driver))) {
                snprintf(why, sizeof why,
                         "it was tuned for '%s | %s' driver %s, not for "
                         "this device ('%s | %s' driver %s)",
                         got.platform, got.device, got.driver,
                         key->platform, key->device, key->driver);
                return refuse(path, rows, n, err, why);
            }
        } else if (header(s, e, "end", val, sizeof val)) {
            int cnt = -1;
            if (!parse_value(val, strlen(val), &cnt) ? strcmp(val, "0") || *n
                                                     : cnt != *n) {
                snprintf(why, sizeof why,
                         "its end line counts %s rows, it holds %d", val,
                         *n);
                return refuse(path, rows, n, err, why);
            }
            ended = 1;
        } else {
            const char *f[6];
            size_t len[6];
            u3d_tune_row r = {0};
            int k = split(s, e, f, len, 5);
            if (k != 5 || !is_name(f[0], len[0], sizeof r.family) ||
                !(is_name(f[1], len[1], sizeof r.pass) ||
                  (len[1] == 1 && f[1][0] == '-')) ||
                !(is_name(f[2], len[2], sizeof r.bucket) ||
                  (len[2] == 1 && f[2][0] == '-')) ||
                !is_name(f[3], len[3], sizeof r.param) ||
                !parse_value(f[4], len[4], &r.value)) {
                snprintf(why, sizeof why,
                         "line %d is not family<TAB>pass<TAB>bucket<TAB>"
                         "param<TAB>value; run 'unet3d tune' again",
                         line);
                return refuse(path, rows, n, err, why);
            }
            memcpy(r.family, f[0], len[0]);
            memcpy(r.pass, f[1], len[1]);
            memcpy(r.bucket, f[2], len[2]);
            memcpy(r.param, f[3], len[3]);
            if (grow(rows, *n, &cap, err)) {
                free(*rows);
                *rows = NULL;
                *n = 0;
                return U3D_ERR_OOM;
            }
            (*rows)[(*n)++] = r;
        }
        s = e + 1;
    }
    if (stage < 4)
        return refuse(path, rows, n, err,
                      stage ? "truncated (its header is incomplete)"
                            : "empty or not a unet3d tuning file");
    if (!ended)
        return refuse(path, rows, n, err,
                      "truncated (no end line); run 'unet3d tune' again");
    return U3D_OK;
}

u3d_status u3d_tune_read(const char *path, const u3d_tune_key *key,
                         u3d_tune_row **rows, int *n, u3d_error *err)
{
    *rows = NULL;
    *n = 0;
    FILE *f = u3d_infile_fopen(path, err);
    if (!f)
        return U3D_ERR_IO;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap + 1);
    u3d_status st = U3D_OK;
    while (text) {
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        if (cap >= (1u << 24)) { /* a tuned file is a few kB */
            st = u3d_seterr(err, U3D_ERR_FORMAT,
                            "tuning file %s refused: larger than 16 MiB",
                            path);
            break;
        }
        char *t = realloc(text, 2 * cap + 1);
        if (!t) {
            free(text);
            text = NULL;
            break;
        }
        text = t;
        cap *= 2;
    }
    if (!text)
        st = u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    else if (!st && ferror(f))
        st = u3d_seterr(err, U3D_ERR_IO, "reading %s: %s", path,
                        strerror(errno));
    fclose(f);
    if (!st && memchr(text, 0, len))
        st = u3d_seterr(err, U3D_ERR_FORMAT,
                        "tuning file %s refused: it holds binary data", path);
    if (!st) {
        text[len] = 0;
        st = parse_user(path, text, key, rows, n, err);
    }
    free(text);
    return st;
}

u3d_status u3d_tune_write(const char *path, const u3d_tune_key *key,
                          const u3d_tune_row *rows, int n,
                          const char *comment, u3d_error *err)
{
    /* never write what u3d_tune_read would refuse */
    for (int i = 0; i < n; i++) {
        const u3d_tune_row *r = &rows[i];
        int any_pass = !strcmp(r->pass, U3D_TUNE_ANY),
            any_bucket = !strcmp(r->bucket, U3D_TUNE_ANY);
        if (!is_name(r->family, strlen(r->family), sizeof r->family) ||
            !(any_pass || is_name(r->pass, strlen(r->pass), sizeof r->pass)) ||
            !(any_bucket ||
              is_name(r->bucket, strlen(r->bucket), sizeof r->bucket)) ||
            !is_name(r->param, strlen(r->param), sizeof r->param) ||
            r->value < 1)
            return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                              "tuning row %d (%s %s %s %s %d) is not "
                              "lower-case names and a value >= 1; %s not "
                              "written",
                              i + 1, r->family, r->pass, r->bucket, r->param,
                              r->value, path);
    }
    u3d_outfile o;
    U3D_TRY(u3d_outfile_open(&o, path, err));
    FILE *f = u3d_outfile_stream(&o, err);
    if (!f) {
        u3d_outfile_abort(&o);
        return U3D_ERR_IO;
    }
    fprintf(f, "# written by 'unet3d tune'; rows: family, pass, bucket, "
               "param, value\n");
    for (const char *c = comment; c && *c;) {
        const char *e = strchr(c, '\n');
        int l = e ? (int)(e - c) : (int)strlen(c);
        fprintf(f, "# %.*s\n", l, c);
        c += l + (e != NULL);
    }
    fprintf(f, MAGIC "\t%d\nplatform\t%s\ndevice\t%s\ndriver\t%s\n",
            U3D_TUNE_FORMAT, key->platform, key->device, key->driver);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\t%s\t%s\t%s\t%d\n", rows[i].family, rows[i].pass,
                rows[i].bucket, rows[i].param, rows[i].value);
    fprintf(f, "end\t%d\n", n);
    return u3d_outfile_commit(&o, err);
}

u3d_status u3d_tuning_init(u3d_tuning *t, const u3d_tune_key *key,
                           const char *dir, u3d_error *err)
{
    memset(t, 0, sizeof *t);
    t->key = *key;
    const char *name, *text;
    int cap = 0;
    for (int i = 0; u3d_tune_shipped(i, &name, &text); i++) {
        u3d_tune_row *r;
        int n;
        u3d_status st = u3d_tune_parse_table(name, text, &r, &n, err);
        for (int j = 0; !st && j < n; j++) {
            st = grow(&t->shipped, t->nshipped, &cap, err);
            if (!st)
                t->shipped[t->nshipped++] = r[j];
        }
        free(r);
        if (st) {
            u3d_tuning_free(t);
            return st;
        }
    }
    if (!dir || !dir[0])
        return U3D_OK;
    u3d_tune_path(dir, key, t->user_path, sizeof t->user_path);
    u3d_error e = {0};
    FILE *probe = fopen(t->user_path, "rb");
    if (!probe && errno == ENOENT)
        return U3D_OK; /* not tuned: nothing to say */
    if (probe)
        fclose(probe);
    if (u3d_tune_read(t->user_path, key, &t->user, &t->nuser, &e))
        snprintf(t->note, sizeof t->note, "%s; using the shipped tuning",
                 e.msg);
    return U3D_OK;
}

void u3d_tuning_free(u3d_tuning *t)
{
    free(t->shipped);
    free(t->user);
    t->shipped = t->user = NULL;
    t->nshipped = t->nuser = 0;
}

static int matches(const char *row, const char *want)
{
    return !strcmp(row, U3D_TUNE_ANY) || !strcmp(row, want);
}

/* UNET3D_TUNE_<FAMILY>_<PARAM>, or for conv3d UNET3D_CONV3D_<PARAM> (the
 * older name); 0 when unset or not a positive number. */
static int env_value(const char *family, const char *param)
{
    char name[96];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0)
            snprintf(name, sizeof name, "UNET3D_TUNE_%s_%s", family, param);
        else if (!strcmp(family, "conv3d"))
            snprintf(name, sizeof name, "UNET3D_CONV3D_%s", param);
        else
            break;
        for (char *c = name; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        const char *env = getenv(name);
        if (env && atoi(env) > 0)
            return atoi(env);
    }
    return 0;
}

static int device_match(const u3d_tune_key *k, const char *sub)
{
    return strstr(k->device, sub) || strstr(k->platform, sub);
}

int u3d_tuning_get(const u3d_tuning *t, const char *family, const char *pass,
                   const char *bucket, const char *param, int fallback,
                   const char **src)
{
    const char *dummy;
    if (!src)
        src = &dummy;
    for (int i = 0; i < t->nforced; i++)
        if (!strcmp(t->forced[i].family, family) &&
            !strcmp(t->forced[i].param, param)) {
            *src = "tuner";
            return t->forced[i].value;
        }
    int v = env_value(family, param);
    if (v > 0) {
        *src = "env";
        return v;
    }
    for (int i = 0; i < t->nuser; i++) {
        const u3d_tune_row *r = &t->user[i];
        if (!strcmp(r->family, family) && !strcmp(r->param, param) &&
            matches(r->pass, pass) && matches(r->bucket, bucket)) {
            *src = "user";
            return r->value;
        }
    }
    /* rows naming the device first, then the "*" rows */
    for (int any = 0; any < 2; any++)
        for (int i = 0; i < t->nshipped; i++) {
            const u3d_tune_row *r = &t->shipped[i];
            int star = !strcmp(r->device, "*");
            if (star != any || strcmp(r->family, family) ||
                strcmp(r->param, param))
                continue;
            if (!star && !device_match(&t->key, r->device))
                continue;
            *src = "shipped";
            return r->value;
        }
    *src = "default";
    return fallback;
}

u3d_status u3d_tuning_force(u3d_tuning *t, const char *family,
                            const char *const *params, const int *values,
                            int n, u3d_error *err)
{
    if (n > U3D_TUNE_MAX_FORCED)
        return u3d_seterr(err, U3D_ERR_INVALID_ARG,
                          "tuning: %d parameters, at most %d", n,
                          U3D_TUNE_MAX_FORCED);
    t->nforced = 0;
    for (int i = 0; i < n; i++) {
        u3d_tune_row *r = &t->forced[t->nforced++];
        memset(r, 0, sizeof *r);
        snprintf(r->family, sizeof r->family, "%s", family);
        snprintf(r->param, sizeof r->param, "%s", params[i]);
        r->value = values[i];
    }
    return U3D_OK;
}

void u3d_tuning_unforce(u3d_tuning *t) { t->nforced = 0; }

void u3d_tuning_describe(const u3d_tune_key *key, char *out, size_t n)
{
    size_t used = 0;
#define PUT(...)                                                               \
    do {                                                                       \
        if (used < n)                                                          \
            used += (size_t)snprintf(out + used, n - used, __VA_ARGS__);       \
    } while (0)
    out[0] = 0;
    char dir[900];
    u3d_cache_dir(dir, sizeof dir);
    u3d_tuning t;
    u3d_error e = {0};
    if (u3d_tuning_init(&t, key, dir, &e)) {
        PUT("shipped tables broken: %s", e.msg);
        return;
    }
    if (t.nuser)
        PUT("user file %s (%d rows), then ", t.user_path, t.nuser);
    else if (t.note[0])
        PUT("%s; ", t.note);
    else if (t.user_path[0])
        PUT("not tuned (no %s), ", t.user_path);
    /* which shipped tables have rows for this device */
    const char *name, *text;
    int shown = 0;
    for (int i = 0; u3d_tune_shipped(i, &name, &text); i++) {
        u3d_tune_row *r;
        int nr, hit = 0;
        if (u3d_tune_parse_table(name, text, &r, &nr, &e))
            continue;
        for (int j = 0; j < nr && !hit; j++)
            hit = !strcmp(r[j].device, "*") || device_match(key, r[j].device);
        free(r);
        if (hit)
            PUT("%s%s", shown++ ? ", " : "shipped ", name);
    }
    PUT("%sdefaults in code", shown ? ", then " : "");
    int nenv = 0;
    for (char **v = environ; v && *v; v++)
        if (!strncmp(*v, "UNET3D_TUNE_", 12) ||
            !strncmp(*v, "UNET3D_CONV3D_", 14)) {
            const char *eq = strchr(*v, '=');
            PUT("%s%.*s", nenv++ ? ", " : "; overridden by ",
                eq ? (int)(eq - *v) : (int)strlen(*v), *v);
        }
    u3d_tuning_free(&t);
#undef PUT
}

int u3d_cl_tune(const u3d_cl *cl, const char *family, const char *param,
                int fallback)
{
    return u3d_tuning_get(&cl->tuning, family, U3D_TUNE_ANY, U3D_TUNE_ANY,
                          param, fallback, NULL);
}

int u3d_cl_tune_at(const u3d_cl *cl, const char *family, const char *pass,
                   const char *bucket, const char *param, int fallback)
{
    return u3d_tuning_get(&cl->tuning, family, pass, bucket, param, fallback,
                          NULL);
}
