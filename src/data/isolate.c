/* A volume source whose format library runs in a child process.
 *
 * libhdf5 (1.10, Debian 12) crashes, leaks or aborts on some corrupt files,
 * and no layer of ours can validate an HDF5 file completely before handing
 * it over. So the library only ever sees an untrusted file in a forked
 * child: the child opens the source with the in-process back end and
 * answers row requests over a socket pair; whatever happens to it (a
 * signal, an abort, an exit), the parent reports one line naming the file
 * and goes on with nothing written. The cost is one copy of each row
 * through the socket, nothing next to the reading itself.
 *
 * The child is forked from a process that may run OpenCL threads: it only
 * calls the format library and libc (glibc's malloc is fork-safe), never
 * returns into the caller, and leaves with _exit (no atexit handlers, no
 * stdio flushes of the parent's buffers). Its stderr goes to /dev/null
 * unless UNET3D_VERBOSE is set. When fork fails (a memory limit), the
 * source opens in process, as before isolation existed. */
#define _DEFAULT_SOURCE /* syscall, close_range */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "data/vio_impl.h"

typedef struct iso {
    pid_t pid;
    int fd;
    const char *lib; /* "HDF5": for messages */
} iso;

/* what the child sends after opening */
typedef struct iso_hello {
    u3d_error err; /* err.code U3D_OK: opened */
    u3d_volume shape;
    u3d_vgeom geom;
    int check_finite;
    char name[sizeof ((u3d_vsource *)0)->name];
} iso_hello;

typedef struct iso_req {
    int32_t z, y0, ny;
} iso_req;

/* send/recv of exactly n bytes; MSG_NOSIGNAL: a dead peer is an error, not
 * a SIGPIPE that kills this process */
static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k, n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t k = recv(fd, c, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k, n -= (size_t)k;
    }
    return 0;
}

/* ---- child ---------------------------------------------------------------- */

/* Closes descriptors from `first` on (close_range where the kernel has
 * it, else one by one up to the limit). */
static void close_from(int first)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0u, 0) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
        close((int)fd);
}

static void child_serve(int fd, u3d_vsource *s)
{
    float *buf = NULL;
    size_t cap = 0;
    iso_req r;
    while (!recv_all(fd, &r, sizeof r)) {
        u3d_error e;
        memset(&e, 0, sizeof e);
        size_t n = (size_t)s->shape.c * (size_t)r.ny * (size_t)s->shape.w;
        if (n > cap) {
            free(buf);
            cap = n;
            buf = malloc(cap * sizeof *buf);
            if (!buf)
                _exit(3);
        }
        e.code = s->ops->read_rows(s, r.z, r.y0, r.ny, buf, &e);
        if (send_all(fd, &e, sizeof e) ||
            (!e.code && send_all(fd, buf, n * sizeof *buf)))
            break;
    }
    /* the parent closed its end: done (the library's handles are released
     * with the process) */
    _exit(0);
}

static void child_main(int fd, u3d_vsource *s, u3d_vsrc_open_fn opener,
                       void *arg)
{
    /* a crash ends the child, whatever handler the parent set (a test
     * framework's or a sanitizer's would go on running the parent's code
     * here); the parent alone cleans up after SIGINT/SIGTERM/SIGHUP */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
                               SIGINT,  SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], SIG_DFL);
    if (!getenv("UNET3D_VERBOSE")) {
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0)
            dup2(nul, 2);
    }
    iso_hello *h = calloc(1, sizeof *h);
    if (!h)
        _exit(3);
    h->err.code = opener(s, arg, &h->err);
    h->shape = s->shape;
    h->shape.data = NULL;
    h->geom = s->geom;
    h->check_finite = s->check_finite;
    memcpy(h->name, s->name, sizeof h->name);
    if (send_all(fd, h, sizeof *h) || h->err.code)
        _exit(0);
    child_serve(fd, s);
}

/* ---- parent --------------------------------------------------------------- */

/* Reaps the child; "killed by signal 11 (Segmentation fault)" etc. */
static void child_end(iso *c, char *how, size_t n)
{
    int status = 0;
    pid_t r;
    do
        r = waitpid(c->pid, &status, 0);
    while (r < 0 && errno == EINTR);
    c->pid = -1;
    if (r < 0)
        snprintf(how, n, "lost");
    else if (WIFSIGNALED(status))
        snprintf(how, n, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(how, n, "exited with status %d", WEXITSTATUS(status));
}

static u3d_status child_failed(iso *c, const char *name, const char *when,
                               u3d_error *err)
{
    char how[128];
    close(c->fd);
    c->fd = -1;
    child_end(c, how, sizeof how);
    return u3d_seterr(err, U3D_ERR_FORMAT,
                      "%s: the %s library failed %s (its process %s): the "
                      "file is corrupt or truncated",
                      name, c->lib, when, how);
}

static u3d_status iso_rows(u3d_vsource *s, int z, int y0, int ny, float *dst,
                           u3d_error *err)
{
    iso *c = s->impl;
    if (c->fd < 0)
        return u3d_seterr(err, U3D_ERR_IO, "%s: the %s reader has stopped",
                          s->name, c->lib);
    iso_req r = {z, y0, ny};
    u3d_error e;
    char when[64];
    snprintf(when, sizeof when, "reading plane %d", z);
    if (send_all(c->fd, &r, sizeof r) || recv_all(c->fd, &e, sizeof e))
        return child_failed(c, s->name, when, err);
    e.msg[sizeof e.msg - 1] = 0;
    if (e.code) {
        if (err)
            *err = e;
        return e.code;
    }
    size_t n = (size_t)s->shape.c * (size_t)ny * (size_t)s->shape.w;
    if (recv_all(c->fd, dst, n * sizeof *dst))
        return child_failed(c, s->name, when, err);
    return U3D_OK;
}

static void iso_close(u3d_vsource *s)
{
    iso *c = s->impl;
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd); /* the child sees EOF and exits */
    if (c->pid > 0) {
        /* it has nothing left to do; a library stuck in a loop on a
         * damaged file must not keep close() waiting */
        kill(c->pid, SIGKILL);
        char how[128];
        child_end(c, how, sizeof how);
    }
    free(c);
    s->impl = NULL;
}

static const u3d_vsrc_ops iso_ops = {iso_rows, iso_close};

u3d_status u3d_vsource_isolated(u3d_vsource *s, const char *lib,
                                u3d_vsrc_open_fn opener, void *arg,
                                u3d_error *err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return opener(s, arg, err);
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return opener(s, arg, err); /* no isolation rather than no reading */
    }
    if (pid == 0) {
        /* only our end of the socket: a copy of another isolated source's
         * parent end held here would keep that child from seeing EOF */
        int fd = sv[1] == 3 ? 3 : dup2(sv[1], 3);
        if (fd != 3)
            _exit(3);
        close_from(4);
        child_main(3, s, opener, arg);
        _exit(0);
    }
    close(sv[1]);
    iso *c = calloc(1, sizeof *c);
    iso_hello *h = calloc(1, sizeof *h);
    if (!c || !h) {
        free(h);
        iso tmp = {pid, sv[0], lib};
        child_failed(&tmp, s->name, "", NULL);
        free(c);
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    }
    *c = (iso){pid, sv[0], lib};
    s->impl = c;
    s->ops = &iso_ops;
    if (recv_all(c->fd, h, sizeof *h)) {
        free(h);
        return child_failed(c, s->name, "opening it", err);
    }
    h->err.msg[sizeof h->err.msg - 1] = 0;
    h->name[sizeof h->name - 1] = 0;
    u3d_status st = h->err.code;
    if (st) {
        if (err)
            *err = h->err;
    } else {
        s->shape = h->shape;
        s->geom = h->geom;
        s->check_finite = h->check_finite;
        memcpy(s->name, h->name, sizeof s->name);
    }
    free(h);
    return st;
}
