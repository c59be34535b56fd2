/* The files unet3d reads and writes (files.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/files.h"

/* ---- the open temporary files, for the signal handler ---- */

enum { SLOTS = 32 };
static char slot_path[SLOTS][4200];
/* 0 free, 1 a file, 2 a folder (Zarr outputs) */
static volatile sig_atomic_t slot_used[SLOTS];

static int track_kind(const char *tmp, int kind)
{
    for (int i = 0; i < SLOTS; i++)
        if (!slot_used[i]) {
            snprintf(slot_path[i], sizeof slot_path[i], "%s", tmp);
            slot_used[i] = kind; /* after the path: the handler reads both */
            return i;
        }
    return -1; /* more open outputs than slots: no cleanup on signals */
}

static int track(const char *tmp) { return track_kind(tmp, 1); }

int u3d_tmpdir_track(const char *dir) { return track_kind(dir, 2); }

void u3d_tmpdir_untrack(int slot)
{
    if (slot >= 0)
        slot_used[slot] = 0;
}

/* A folder tree removed from a signal handler: readdir is not
 * async-signal-safe, fork, execve and waitpid are. */
static void rm_tree_async(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        char *const argv[] = {"rm", "-rf", "--", (char *)dir, NULL};
        char *const envp[] = {NULL};
        execve("/bin/rm", argv, envp);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
}

void u3d_rm_tree(const char *p)
{
    struct stat sb;
    if (lstat(p, &sb))
        return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(p);
        return;
    }
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char q[4400];
        snprintf(q, sizeof q, "%s/%s", p, e->d_name);
        u3d_rm_tree(q);
    }
    if (d)
        closedir(d);
    rmdir(p);
}

static void untrack(int slot)
{
    if (slot >= 0)
        slot_used[slot] = 0;
}

void u3d_outfile_remove_open(void)
{
    for (int i = 0; i < SLOTS; i++) {
        if (slot_used[i] == 1)
            unlink(slot_path[i]); /* async-signal-safe */
        else if (slot_used[i] == 2)
            rm_tree_async(slot_path[i]);
    }
}

static void on_signal(int sig)
{
    u3d_outfile_remove_open();
    signal(sig, SIG_DFL);
    raise(sig);
}

void u3d_outfile_cleanup_on_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        /* keep an ignored signal ignored (nohup) */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---- inputs ---- */

int u3d_infile_open(const char *path, u3d_error *err)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        u3d_seterr(err, U3D_ERR_IO, "%s: cannot open: %s", path,
                   strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        u3d_seterr(err, U3D_ERR_IO, "%s: not a regular file", path);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

FILE *u3d_infile_fopen(const char *path, u3d_error *err)
{
    int fd = u3d_infile_open(path, err);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        u3d_seterr(err, U3D_ERR_IO, "%s: cannot open: %s", path,
                   strerror(errno));
    }
    return f;
}

/* ---- targets ---- */

u3d_status u3d_outfile_check_target(const char *path, u3d_error *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return u3d_seterr(err, U3D_ERR_IO,
                          "%s: exists and is not a regular file (a folder, "
                          "device or FIFO); name a file",
                          path);
    return U3D_OK;
}

size_t u3d_path_split(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
    return slash ? (size_t)(slash - path) + 1 : 0;
}

int u3d_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea != eb)
        return 0;
    char da[4096], db[4096], ra[PATH_MAX], rb[PATH_MAX];
    const char *ba = a + u3d_path_split(a, da, sizeof da);
    const char *bb = b + u3d_path_split(b, db, sizeof db);
    if (strcmp(ba, bb))
        return 0;
    if (!realpath(da, ra) || !realpath(db, rb))
        return !strcmp(da, db);
    return !strcmp(ra, rb);
}

void u3d_outfile_sweep(const char *path)
{
    char dir[4096], prefix[4200];
    const char *base = path + u3d_path_split(path, dir, sizeof dir);
    int np = snprintf(prefix, sizeof prefix, "%s.tmp-", base);
    DIR *d = opendir(dir);
    if (!d || np <= 0 || (size_t)np >= sizeof prefix) {
        if (d)
            closedir(d);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, (size_t)np))
            continue;
        char *end;
        long pid = strtol(e->d_name + np, &end, 10);
        if (end == e->d_name + np || *end != '-' || pid <= 0 ||
            pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* its writer still runs (or is not ours to judge) */
        char stale[8400];
        snprintf(stale, sizeof stale, "%s/%s", dir, e->d_name);
        u3d_rm_tree(stale); /* a file, or a Zarr output's folder */
    }
    closedir(d);
}

/* ---- one output ---- */

u3d_status u3d_outfile_open(u3d_outfile *o, const char *path, u3d_error *err)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->slot = -1;
    if ((size_t)snprintf(o->path, sizeof o->path, "%s", path) >=
        sizeof o->path)
        return u3d_seterr(err, U3D_ERR_IO, "%.200s...: path too long", path);
    U3D_TRY(u3d_outfile_check_target(path, err));
    u3d_outfile_sweep(path);
    /* N: the first name free, so outputs open at once in one process (or
     * left by a reused pid) do not collide */
    for (int n = 0; n < 1000; n++) {
        snprintf(o->tmp, sizeof o->tmp, "%s.tmp-%ld-%d", path, (long)getpid(),
                 n);
        o->fd = open(o->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (o->fd >= 0) {
            o->slot = track(o->tmp);
            return U3D_OK;
        }
        if (errno != EEXIST)
            break;
    }
    return u3d_seterr(err, U3D_ERR_IO, "%s: cannot create a file there: %s",
                      path, strerror(errno));
}

FILE *u3d_outfile_stream(u3d_outfile *o, u3d_error *err)
{
    if (!o->f && o->fd >= 0) {
        o->f = fdopen(o->fd, "w+b");
        if (!o->f)
            u3d_seterr(err, U3D_ERR_IO, "%s: cannot write: %s", o->path,
                       strerror(errno));
    }
    return o->f;
}

/* Closes the file; 0 when everything written reached the disk (synced:
 * the rename must not publish a file a crash could leave empty). */
static int close_file(u3d_outfile *o, int sync)
{
    int ok = 1;
    if (o->f) {
        ok = fflush(o->f) == 0 && !ferror(o->f);
        ok = ok && (!sync || fsync(fileno(o->f)) == 0);
        ok = fclose(o->f) == 0 && ok;
    } else if (o->fd >= 0) {
        ok = !sync || fsync(o->fd) == 0;
        ok = close(o->fd) == 0 && ok;
    }
    o->f = NULL;
    o->fd = -1;
    return ok ? 0 : -1;
}

u3d_status u3d_outfile_commit(u3d_outfile *o, u3d_error *err)
{
    int bad = close_file(o, 1);
    int e = errno;
    /* checked again: the target may have been replaced meanwhile */
    if (!bad && u3d_outfile_check_target(o->path, err)) {
        unlink(o->tmp);
        untrack(o->slot);
        return U3D_ERR_IO;
    }
    if (!bad && rename(o->tmp, o->path))
        bad = 1, e = errno;
    if (bad) {
        unlink(o->tmp);
        untrack(o->slot);
        return u3d_seterr(err, U3D_ERR_IO, "%s: write failed: %s", o->path,
                          strerror(e));
    }
    untrack(o->slot);
    return U3D_OK;
}

void u3d_outfile_abort(u3d_outfile *o)
{
    close_file(o, 0);
    if (o->tmp[0])
        unlink(o->tmp);
    untrack(o->slot);
    o->slot = -1;
}
