/* The option parser and --help of every unet3d command (options.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/options.h"
#include "core/files.h"
#include "unet3d/volume_io.h"

int u3d_opts_fail(const u3d_cmd_spec *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "unet3d %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* strtoll/strtod accept leading blanks and stop at junk: not here. */
static int plain_start(const char *s)
{
    return *s && !isspace((unsigned char)*s);
}

int u3d_opts_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (!plain_start(s))
        return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int u3d_opts_names(const char *s, const char *const *names, int max,
                   int *idx)
{
    int n = 0;
    for (;;) {
        size_t len = strcspn(s, ",");
        int k = 0;
        while (names[k] && (strlen(names[k]) != len || strncmp(names[k], s, len)))
            k++;
        if (!names[k] || n == max)
            return 0;
        for (int i = 0; i < n; i++)
            if (idx[i] == k)
                return 0;
        idx[n++] = k;
        if (!s[len])
            return n;
        s += len + 1;
    }
}

int u3d_opts_triples(const char *s, long lo, long hi, int max, int (*t)[3])
{
    int n = 0;
    for (;;) {
        if (n == max)
            return 0;
        for (int a = 0; a < 3; a++) {
            size_t len = strcspn(s, a < 2 ? ",:" : ":");
            char part[24];
            long v;
            if (len >= sizeof part || (a < 2 && s[len] != ','))
                return 0;
            memcpy(part, s, len);
            part[len] = 0;
            if (!u3d_opts_long(part, lo, hi, &v))
                return 0;
            t[n][a] = (int)v;
            s += len + (a < 2);
        }
        n++;
        if (!*s)
            return n;
        s++; /* the ':' */
    }
}

static int parse_u64(const char *s, unsigned long long *out)
{
    char *end;
    if (!isdigit((unsigned char)*s)) /* strtoull takes "-1" as 2^64-1 */
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

static int in_range(const u3d_opt *o, double v)
{
    if (o->flags & U3D_OPT_GT)
        return v > o->lo && v <= o->hi;
    return v >= o->lo && v <= o->hi;
}

/* A finite number of the option's range, the whole of s. */
static int parse_real(const u3d_opt *o, const char *s, double *out)
{
    char *end;
    if (!plain_start(s))
        return 0;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || !in_range(o, v))
        return 0;
    *out = v;
    return 1;
}

/* n values of s separated by sep, each parsed by the option's rule. */
static int parse_tuple(const u3d_opt *o, const char *s, char sep, int n,
                       double *v)
{
    char part[64];
    for (int i = 0; i < n; i++) {
        const char *e = i < n - 1 ? strchr(s, sep) : s + strlen(s);
        size_t len = e ? (size_t)(e - s) : sizeof part;
        if (len >= sizeof part)
            return 0;
        memcpy(part, s, len);
        part[len] = 0;
        long l = 0;
        if (o->kind == U3D_OPT_FLOAT2) {
            if (!parse_real(o, part, &v[i]))
                return 0;
        } else if (u3d_opts_long(part, (long)o->lo, (long)o->hi, &l))
            v[i] = (double)l;
        else
            return 0;
        s = e + 1;
    }
    return 1;
}

static void join_choices(const char *const *c, const char *sep, char *buf,
                         size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; c[i] && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? sep : "",
                                 c[i]);
}

/* What the option wants, for its error message. */
static void wanted(const u3d_opt *o, char *buf, size_t n)
{
    int whole = o->kind == U3D_OPT_INT || o->kind == U3D_OPT_LONG ||
                o->kind == U3D_OPT_SIZE3 || o->kind == U3D_OPT_INT3;
    const char *lo = o->flags & U3D_OPT_GT ? "> %.*g and <= %.*g"
                                           : "in %.*g..%.*g";
    char range[80];
    /* integers in full (1000000, not 1e+06) */
    snprintf(range, sizeof range, lo, whole ? 17 : 6, o->lo, whole ? 17 : 6,
             o->hi);
    switch (o->kind) {
    case U3D_OPT_INT:
    case U3D_OPT_LONG:
        snprintf(buf, n, "an integer %s", range);
        break;
    case U3D_OPT_U64:
        snprintf(buf, n, "an integer in 0..18446744073709551615");
        break;
    case U3D_OPT_DOUBLE:
    case U3D_OPT_FLOAT:
        snprintf(buf, n, "a number %s", range);
        break;
    case U3D_OPT_FLOAT2:
        snprintf(buf, n, "two numbers %s, each %s", o->meta, range);
        break;
    case U3D_OPT_SIZE3:
        snprintf(buf, n, "sizes DxHxW (depth x height x width), each %s",
                 range);
        break;
    case U3D_OPT_INT3:
        snprintf(buf, n, "three integers Z,Y,X, each %s", range);
        break;
    case U3D_OPT_CHOICE: {
        char c[200];
        join_choices(o->choices, ", ", c, sizeof c);
        snprintf(buf, n, "one of %s", c);
        break;
    }
    default:
        snprintf(buf, n, "a value");
    }
}

/* Stores value v of option o; 0 when v is not valid for it. */
static int store(const u3d_opt *o, const char *v)
{
    double t[3];
    long l;
    switch (o->kind) {
    case U3D_OPT_INT:
    case U3D_OPT_LONG:
        if (!u3d_opts_long(v, (long)o->lo, (long)o->hi, &l))
            return 0;
        if (o->kind == U3D_OPT_INT)
            *(int *)o->dest = (int)l;
        else
            *(long *)o->dest = l;
        return 1;
    case U3D_OPT_U64:
        return parse_u64(v, o->dest);
    case U3D_OPT_DOUBLE:
        return parse_real(o, v, o->dest);
    case U3D_OPT_FLOAT:
        if (!parse_real(o, v, t))
            return 0;
        *(float *)o->dest = (float)t[0];
        return 1;
    case U3D_OPT_FLOAT2:
        if (!parse_tuple(o, v, ',', 2, t))
            return 0;
        for (int i = 0; i < 2; i++)
            ((float *)o->dest)[i] = (float)t[i];
        return 1;
    case U3D_OPT_SIZE3:
    case U3D_OPT_INT3:
        if (!parse_tuple(o, v, o->kind == U3D_OPT_SIZE3 ? 'x' : ',', 3, t))
            return 0;
        for (int i = 0; i < 3; i++)
            ((int *)o->dest)[i] = (int)t[i];
        return 1;
    case U3D_OPT_CHOICE:
        l = u3d_name_index(o->choices, v);
        if (l < 0)
            return 0;
        *(int *)o->dest = (int)l;
        return 1;
    default:
        *(const char **)o->dest = v;
        return 1;
    }
}

static const u3d_opt *find(const u3d_cmd_spec *c, const char *name,
                           size_t len)
{
    for (const u3d_opt *o = c->opts; o->name; o++)
        if (o->name[0] == '-' && strlen(o->name) == len &&
            !strncmp(o->name, name, len))
            return o;
    return NULL;
}

static const u3d_opt *positional(const u3d_cmd_spec *c)
{
    for (const u3d_opt *o = c->opts; o->name; o++)
        if (o->name[0] != '-')
            return o;
    return NULL;
}

/* Appends v to a LIST option. */
static int add(const u3d_cmd_spec *c, const u3d_opt *o, const char *v)
{
    int n = o->given ? *o->given : 0;
    if (n >= (int)o->hi)
        return u3d_opts_fail(c, "%s: at most %d, got more ('%s')", o->name,
                             (int)o->hi, v);
    ((const char **)o->dest)[n] = v;
    *o->given = n + 1;
    return 0;
}

/* One option with its value v (NULL: none given). */
static int apply(const u3d_cmd_spec *c, const u3d_opt *o, const char *v)
{
    if (o->kind == U3D_OPT_LIST)
        return add(c, o, v);
    if (o->kind != U3D_OPT_FLAG && o->kind != U3D_OPT_SET && !store(o, v)) {
        char w[300];
        wanted(o, w, sizeof w);
        return u3d_opts_fail(c, "%s wants %s, got '%s'", o->name, w, v);
    }
    if (o->kind == U3D_OPT_FLAG || o->kind == U3D_OPT_SET)
        *(int *)o->dest = o->kind == U3D_OPT_FLAG ? 1 : (int)o->lo;
    if (o->given)
        *o->given = 1;
    return 0;
}

static int check_required(const u3d_cmd_spec *c, const int *seen)
{
    int i = 0;
    for (const u3d_opt *o = c->opts; o->name; o++, i++)
        if ((o->flags & U3D_OPT_REQUIRED) && !seen[i])
            return u3d_opts_fail(c, "%s is required (see unet3d %s --help)",
                                 o->name, c->name);
    return 0;
}

/* ---- files named by options ---- */

typedef struct named_file {
    const char *opt, *path;
    int out, folder; /* folder: a Zarr output (replaced as a whole) */
    char file[4096]; /* the file of a volume spec ("a.h5:/raw" -> a.h5) */
} named_file;

/* Volume specs ("h5:a.h5:/raw", "b.zarr") name files through
 * u3d_vio_parse; anything else is taken as it is. */
static void file_of(named_file *f, const char *opt, const char *spec, int out)
{
    u3d_format fmt = U3D_FMT_TIFF;
    char ds[1024];
    f->opt = opt;
    f->out = out;
    f->path = spec;
    f->folder = 0;
    if (spec[0] && !strchr(spec, ',') &&
        u3d_vio_parse(spec, out, &fmt, f->file, sizeof f->file, ds,
                      sizeof ds, NULL) == U3D_OK) {
        f->path = f->file;
        f->folder = fmt == U3D_FMT_ZARR;
        size_t n = strlen(f->file); /* "out.zarr/" names out.zarr */
        while (f->folder && n > 1 && f->file[n - 1] == '/')
            f->file[--n] = 0;
    }
}

/* The IN/OUT files given, at most cap. */
static int named_files(const u3d_cmd_spec *c, named_file *f, int cap)
{
    int n = 0;
    for (const u3d_opt *o = c->opts; o->name; o++) {
        if (!(o->flags & (U3D_OPT_IN | U3D_OPT_OUT)))
            continue;
        int out = (o->flags & U3D_OPT_OUT) != 0;
        if (o->kind == U3D_OPT_STRING) {
            const char *p = *(const char **)o->dest;
            if (p && n < cap)
                file_of(&f[n++], o->name, p, out);
        } else if (o->kind == U3D_OPT_LIST && o->given) {
            const char **v = o->dest;
            for (int k = 0; k < *o->given && n < cap; k++)
                file_of(&f[n++], o->name, v[k], out);
        }
    }
    return n;
}

/* An output must be (or become) a regular file in a writable folder. */
static int check_output(const u3d_cmd_spec *c, const named_file *f)
{
    struct stat sb;
    char dir[4096];
    const char *base;
    if (!f->path[0])
        return u3d_opts_fail(c, "%s: empty file name", f->opt);
    if (stat(f->path, &sb) == 0 && !S_ISREG(sb.st_mode) &&
        !(f->folder && S_ISDIR(sb.st_mode)))
        return u3d_opts_fail(c, "%s %s: exists and is not a regular file "
                                "(a folder, device or FIFO); name a file",
                             f->opt, f->path);
    base = f->path + u3d_path_split(f->path, dir, sizeof dir);
    if (!base[0])
        return u3d_opts_fail(c, "%s %s: names a folder; name a file", f->opt,
                             f->path);
    if (access(dir, W_OK | X_OK))
        return u3d_opts_fail(c, "%s %s: cannot write to folder %s: %s",
                             f->opt, f->path, dir, strerror(errno));
    return 0;
}

static int check_files(const u3d_cmd_spec *c)
{
    enum { CAP = 64 };
    named_file f[CAP];
    int n = named_files(c, f, CAP);
    for (int i = 0; i < n; i++) {
        if (!f[i].out)
            continue;
        if (check_output(c, &f[i]))
            return 1;
        for (int j = 0; j < n; j++)
            if (j != i && (j > i || !f[j].out) &&
                u3d_same_file(f[i].path, f[j].path))
                return u3d_opts_fail(
                    c, "%s %s is the same file as %s %s: it would be %s; "
                       "choose another name",
                    f[i].opt, f[i].path, f[j].opt, f[j].path,
                    f[j].out ? "written twice" : "overwritten");
    }
    return 0;
}

/* Option argv[*i]; moves *i past its value. */
static int one(const u3d_cmd_spec *c, int argc, char **argv, int *i,
               int *seen)
{
    const char *a = argv[*i], *eq = strchr(a, '=');
    const u3d_opt *o = find(c, a, eq ? (size_t)(eq - a) : strlen(a));
    if (!o)
        return u3d_opts_fail(c, "unknown option '%s' (see unet3d %s --help)",
                             a, c->name);
    seen[o - c->opts] = 1;
    int flag = o->kind == U3D_OPT_FLAG || o->kind == U3D_OPT_SET;
    if (flag && eq)
        return u3d_opts_fail(c, "%s takes no value, got '%s'", o->name, a);
    if (flag)
        return apply(c, o, NULL);
    if (eq)
        return apply(c, o, eq + 1);
    if (*i + 1 >= argc)
        return u3d_opts_fail(c, "%s needs a value (%s)", o->name,
                             o->meta ? o->meta : "see --help");
    return apply(c, o, argv[++*i]);
}

int u3d_opts_parse(const u3d_cmd_spec *c, int argc, char **argv)
{
    int n = 0;
    while (c->opts[n].name)
        n++;
    int *seen = calloc((size_t)n + 1, sizeof *seen);
    if (!seen)
        return u3d_opts_fail(c, "out of host memory");
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        const u3d_opt *pos = positional(c);
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            u3d_opts_help(c, stdout);
            free(seen);
            return 0;
        }
        if (a[0] == '-' && a[1])
            rc = one(c, argc, argv, &i, seen);
        else if (pos)
            rc = add(c, pos, a), seen[pos - c->opts] = 1;
        else
            rc = u3d_opts_fail(c, "unexpected argument '%s' (see unet3d %s "
                                  "--help)", a, c->name);
    }
    if (!rc)
        rc = check_required(c, seen);
    if (!rc)
        rc = check_files(c);
    free(seen);
    return rc ? 1 : -1;
}

/* "--name META" as the help's first column. */
static void left_column(const u3d_opt *o, char *buf, size_t n)
{
    char c[200];
    const char *meta = o->meta;
    if (o->kind == U3D_OPT_CHOICE && !meta) {
        join_choices(o->choices, "|", c, sizeof c);
        meta = c;
    }
    if (o->name[0] != '-')
        snprintf(buf, n, "%s...", o->name);
    else if (o->kind == U3D_OPT_FLAG || o->kind == U3D_OPT_SET || !meta)
        snprintf(buf, n, "%s", o->name);
    else
        snprintf(buf, n, "%s %s", o->name, meta);
}

void u3d_opts_help(const u3d_cmd_spec *c, FILE *f)
{
    enum { COL = 26 };
    fprintf(f, "usage: unet3d %s %s\n\n", c->name, c->synopsis);
    for (const u3d_opt *o = c->opts; o->name; o++) {
        if (!o->help)
            continue;
        char left[256];
        left_column(o, left, sizeof left);
        int w = fprintf(f, "  %s", left);
        const char *h = o->help;
        if (w >= COL - 1) {
            fputc('\n', f);
            w = 0;
        }
        for (int first = 1; *h; first = 0) {
            const char *nl = strchr(h, '\n');
            int len = nl ? (int)(nl - h) : (int)strlen(h);
            fprintf(f, "%*s%.*s%s\n", first ? COL - w : COL, "", len, h,
                    (o->flags & U3D_OPT_REQUIRED) && !nl ? " (required)" : "");
            h += len + (nl != NULL);
        }
    }
    if (c->about)
        fprintf(f, "\n%s", c->about);
}
