/* libFuzzer harness for the user's tuned file (u3d_tune_read,
 * src/backends/opencl/tuning.h): the input is written to a per-process
 * temporary file and read for the key of fuzz_tuning.h. A refused file
 * must leave no rows and a one-line message; an accepted one must have
 * rows that are NUL-terminated names, and writing them (u3d_tune_write)
 * and reading that again must give the same rows.
 * Build and run: tools/fuzz.sh [SECONDS] (seeds: tests/fuzz/corpus/). */
#include "fuzz_util.h"
#include "fuzz_tuning.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every name of r ends inside its field (memchr: no read past it). */
static int row_ok(const u3d_tune_row *r)
{
    return memchr(r->device, 0, sizeof r->device) &&
           memchr(r->family, 0, sizeof r->family) && r->family[0] &&
           memchr(r->pass, 0, sizeof r->pass) && r->pass[0] &&
           memchr(r->bucket, 0, sizeof r->bucket) && r->bucket[0] &&
           memchr(r->param, 0, sizeof r->param) && r->param[0];
}

static int same_rows(const u3d_tune_row *a, const u3d_tune_row *b, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].family, b[i].family) || strcmp(a[i].pass, b[i].pass) ||
            strcmp(a[i].bucket, b[i].bucket) ||
            strcmp(a[i].param, b[i].param) || a[i].value != b[i].value)
            return 0;
    return 1;
}

/* Writes the rows read and reads them back: the identity. */
static void round_trip(const u3d_tune_row *rows, int n)
{
    char out[600];
    u3d_error err;
    u3d_tune_row *back = NULL;
    int nb = -1;
    snprintf(out, sizeof out, "%s/out.tsv", fuzz_tmpdir());
    if (u3d_tune_write(out, &fuzz_tune_key, rows, n, "fuzz\nround trip",
                       &err)) {
        fuzz_check_error(&err);
        return;
    }
    if (u3d_tune_read(out, &fuzz_tune_key, &back, &nb, &err)) {
        fuzz_note("round trip", err.msg);
        __builtin_trap(); /* what was written must read */
    }
    if (nb != n || !same_rows(rows, back, n))
        __builtin_trap(); /* write + read must be the identity */
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("in.tsv", data, size);
    u3d_tune_row *rows = (u3d_tune_row *)&rows; /* must be set */
    int n = -7;
    u3d_error err;
    if (u3d_tune_read(path, &fuzz_tune_key, &rows, &n, &err)) {
        if (rows || n)
            __builtin_trap(); /* a refusal leaves no rows */
        fuzz_check_error(&err);
        return 0;
    }
    if (n < 0 || (n > 0 && !rows))
        __builtin_trap();
    for (int i = 0; i < n; i++)
        if (!row_ok(&rows[i]))
            __builtin_trap();
    fuzz_note("tuning", "ok");
    round_trip(rows, n);
    free(rows);
    return 0;
}
