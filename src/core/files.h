/* The files unet3d reads and writes (internal).
 *
 * Atomic output files: every file unet3d writes goes to a
 * temporary file beside its target, "TARGET.tmp-PID-N", renamed over the
 * target when complete, so a failure, a signal or a kill never leaves a
 * half-written output nor destroys the previous one.
 *
 *  - A target that exists but is not a regular file (a device, a FIFO, a
 *    folder) is refused: renaming over /dev/full would replace it.
 *  - Temporary files of processes that no longer run (killed with
 *    SIGKILL) are removed the next time their target is written, so they
 *    never accumulate.
 *  - With u3d_outfile_cleanup_on_signals() (the unet3d program calls it),
 *    SIGINT, SIGTERM and SIGHUP remove the open temporary files before the
 *    process dies. The list of open temporary files is the one piece of
 *    process-wide state: a signal handler has nothing else to reach. */
#ifndef UNET3D_FILES_H
#define UNET3D_FILES_H
#include <stdio.h>
#include "unet3d/error.h"

typedef struct u3d_outfile {
    char path[4096]; /* the target */
    char tmp[4200];  /* the temporary file */
    int fd;          /* open on tmp, -1 when closed */
    FILE *f;         /* from u3d_outfile_stream, or NULL */
    int slot;        /* in the signal list, -1: none */
} u3d_outfile;

/* Creates the temporary file of path (exclusively) and opens it. */
u3d_status u3d_outfile_open(u3d_outfile *o, const char *path, u3d_error *err);
/* The open file as a stdio stream (owned by o). */
FILE *u3d_outfile_stream(u3d_outfile *o, u3d_error *err);
/* Flushes, closes and renames the temporary file over the target; on
 * failure removes it. The target is then complete or untouched. */
u3d_status u3d_outfile_commit(u3d_outfile *o, u3d_error *err);
/* Closes and removes the temporary file; the target is untouched. */
void u3d_outfile_abort(u3d_outfile *o);

/* Inputs: opens path for reading only when it is a regular file, without
 * blocking on a FIFO (whose open waits for a writer forever) or reading a
 * device; returns a descriptor or -1 with err set. */
int u3d_infile_open(const char *path, u3d_error *err);
/* The same as a stdio stream, or NULL with err set. */
FILE *u3d_infile_fopen(const char *path, u3d_error *err);

/* The folder of path ("." when none, "/" for the root) into dir, and the
 * offset of its last component in path. */
size_t u3d_path_split(const char *path, char *dir, size_t n);
/* 1 when a and b name the same file: the same inode when both exist, else
 * the same last component in the same (resolved) folder. */
int u3d_same_file(const char *a, const char *b);

/* Refuses a target that exists and is not a regular file. */
u3d_status u3d_outfile_check_target(const char *path, u3d_error *err);
/* Removes path's temporary files (and folders) left by processes that no
 * longer run. */
void u3d_outfile_sweep(const char *path);
/* Installs the SIGINT/SIGTERM/SIGHUP handler that removes open temporary
 * files, then lets the signal end the process as before. */
void u3d_outfile_cleanup_on_signals(void);
/* Temporary folders (a Zarr output written beside its target): tracked
 * like the files, removed with their content on those signals. Returns
 * the slot for u3d_tmpdir_untrack (-1: not tracked). */
int u3d_tmpdir_track(const char *dir);
void u3d_tmpdir_untrack(int slot);
/* Removes a file or a folder with everything in it (not following links). */
void u3d_rm_tree(const char *path);
/* Removes every open temporary file (before an abnormal exit, such as
 * MPI_Abort). */
void u3d_outfile_remove_open(void);

#endif
