/* Shared by the harnesses: a per-process scratch folder for the readers
 * that take paths, and the checks every reader call must pass. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "unet3d/error.h"

/* Files of this process live in $TMPDIR/u3d-fuzz-PID/ (removed at exit). */
static char fuzz_dir[256];

static inline void fuzz_cleanup(void)
{
    char cmd[300];
    if (fuzz_dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
        if (system(cmd)) {
        }
    }
}

static inline const char *fuzz_tmpdir(void)
{
    if (!fuzz_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/u3d-fuzz-%ld",
                 t && *t ? t : "/tmp", (long)getpid());
        if (mkdir(fuzz_dir, 0700) && access(fuzz_dir, W_OK))
            __builtin_trap(); /* no scratch folder: nothing can be fuzzed */
        atexit(fuzz_cleanup);
    }
    return fuzz_dir;
}

/* Writes data to fuzz_tmpdir()/name and returns the path (static buffer). */
static inline const char *fuzz_write(const char *name, const uint8_t *data,
                              size_t size)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
        __builtin_trap();
    return path;
}

/* FUZZ_VERBOSE=1 in the environment prints every call's outcome (to see
 * which seeds decode): ./fuzz_x -runs=0 CORPUS */
static inline void fuzz_note(const char *what, const char *msg)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "  %s: %s\n", what, msg);
}

/* A failed call must leave a one-line, NUL-terminated, non-empty message. */
static inline void fuzz_check_error(const u3d_error *err)
{
    fuzz_note("error", err->msg);
    if (!memchr(err->msg, 0, sizeof err->msg) || !err->msg[0] ||
        strchr(err->msg, '\n'))
        __builtin_trap();
}

/* Reads every float (ASan catches a short buffer) and returns a sum so
 * the loop is not optimized away. */
static inline float fuzz_touch(const float *p, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

#endif
