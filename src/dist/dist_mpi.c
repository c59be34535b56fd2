/* dist.h over MPI (the MPI-3 standard API only). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/files.h"
#include "dist/dist.h"

static int g_started, g_rank, g_size = 1, g_lrank, g_lsize = 1, g_agreed;
static char g_host[MPI_MAX_PROCESSOR_NAME + 1], g_where[MPI_MAX_PROCESSOR_NAME + 48];

struct u3d_dist_req {
    MPI_Request r;
};

/* Environment variables set by MPI launchers for the processes they start. */
static int launched(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                 "PMI_RANK", "PMIX_RANK",
                                 "MV2_COMM_WORLD_SIZE"};
    const char *force = getenv("UNET3D_MPI");
    if (force && !strcmp(force, "0"))
        return 0;
    if (force && !strcmp(force, "1"))
        return 1;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

int u3d_dist_init(int *argc, char ***argv)
{
    if (gethostname(g_host, sizeof g_host - 1))
        snprintf(g_host, sizeof g_host, "localhost");
    if (!launched())
        return 0;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) !=
        MPI_SUCCESS) {
        fprintf(stderr, "unet3d: MPI_Init_thread failed\n");
        return -1;
    }
    g_started = 1;
    /* errors come back as codes and become messages naming the rank */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank,
                            MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &g_lrank);
        MPI_Comm_size(node, &g_lsize);
        MPI_Comm_free(&node);
    }
    int len = 0;
    char pn[MPI_MAX_PROCESSOR_NAME + 1] = "";
    if (MPI_Get_processor_name(pn, &len) == MPI_SUCCESS && len > 0)
        snprintf(g_host, sizeof g_host, "%s", pn);
    snprintf(g_where, sizeof g_where, "rank %d/%d on %s", g_rank, g_size,
             g_host);
    return 0;
}

void u3d_dist_finalize(void)
{
    if (g_started)
        MPI_Finalize();
    g_started = 0;
}

int u3d_dist_active(void) { return g_started && g_size > 1; }
int u3d_dist_rank(void) { return g_rank; }
int u3d_dist_size(void) { return g_size; }
int u3d_dist_local_rank(void) { return g_lrank; }
int u3d_dist_local_size(void) { return g_lsize; }
int u3d_dist_built(void) { return 1; }
const char *u3d_dist_where(void) { return g_started ? g_where : ""; }

const char *u3d_dist_host(void)
{
    if (!g_host[0] && gethostname(g_host, sizeof g_host - 1))
        snprintf(g_host, sizeof g_host, "localhost");
    return g_host;
}

static u3d_status mpierr(u3d_error *err, int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING + 1] = "";
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return u3d_seterr(err, U3D_ERR_DEVICE, "%s: %s failed: %s", g_where, what,
                      s);
}

/* MPI counts are int: large buffers go in pieces. */
#define CHUNK ((size_t)1 << 28)

static u3d_status reduce(void *buf, size_t n, MPI_Datatype t, size_t esz,
                         MPI_Op op, u3d_error *err)
{
    if (!g_started || g_size < 2)
        return U3D_OK;
    for (size_t o = 0; o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * esz, (int)k, t,
                               op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpierr(err, rc, "MPI_Allreduce");
    }
    return U3D_OK;
}

u3d_status u3d_dist_sum_f32(float *buf, size_t n, u3d_error *err)
{
    return reduce(buf, n, MPI_FLOAT, sizeof *buf, MPI_SUM, err);
}

u3d_status u3d_dist_sum_f64(double *buf, size_t n, u3d_error *err)
{
    return reduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_SUM, err);
}

u3d_status u3d_dist_max_f64(double *buf, size_t n, u3d_error *err)
{
    return reduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_MAX, err);
}

u3d_status u3d_dist_isum_f32(float *buf, size_t n, u3d_dist_req **req,
                             u3d_error *err)
{
    *req = NULL;
    if (!g_started || g_size < 2 || n == 0)
        return U3D_OK;
    if (n > (size_t)INT_MAX) /* blocking in pieces */
        return u3d_dist_sum_f32(buf, n, err);
    u3d_dist_req *r = malloc(sizeof *r);
    if (!r)
        return u3d_seterr(err, U3D_ERR_OOM, "out of host memory");
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM,
                            MPI_COMM_WORLD, &r->r);
    if (rc != MPI_SUCCESS) {
        free(r);
        return mpierr(err, rc, "MPI_Iallreduce");
    }
    *req = r;
    return U3D_OK;
}

u3d_status u3d_dist_wait(u3d_dist_req *req, u3d_error *err)
{
    if (!req)
        return U3D_OK;
    int rc = MPI_Wait(&req->r, MPI_STATUS_IGNORE);
    free(req);
    return rc == MPI_SUCCESS ? U3D_OK : mpierr(err, rc, "MPI_Wait");
}

void u3d_dist_poll(u3d_dist_req *req)
{
    int done = 0;
    if (req) /* a completed request becomes MPI_REQUEST_NULL: Wait returns */
        MPI_Test(&req->r, &done, MPI_STATUS_IGNORE);
}

u3d_status u3d_dist_bcast(void *buf, size_t bytes, int root, u3d_error *err)
{
    if (!g_started || g_size < 2)
        return U3D_OK;
    for (size_t o = 0; o < bytes; o += CHUNK) {
        size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
        int rc = MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, root,
                           MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpierr(err, rc, "MPI_Bcast");
    }
    return U3D_OK;
}

u3d_status u3d_dist_barrier(u3d_error *err)
{
    if (!g_started || g_size < 2)
        return U3D_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? U3D_OK : mpierr(err, rc, "MPI_Barrier");
}

u3d_status u3d_dist_send(const void *buf, size_t bytes, int dest, int tag,
                         u3d_error *err)
{
    for (size_t o = 0; o < bytes || (o == 0 && bytes == 0); o += CHUNK) {
        size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
        int rc = MPI_Send((const char *)buf + o, (int)k, MPI_BYTE, dest, tag,
                          MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpierr(err, rc, "MPI_Send");
        if (bytes == 0)
            break;
    }
    return U3D_OK;
}

u3d_status u3d_dist_recv(void *buf, size_t bytes, int src, int tag,
                         u3d_error *err)
{
    for (size_t o = 0; o < bytes || (o == 0 && bytes == 0); o += CHUNK) {
        size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
        int rc = MPI_Recv((char *)buf + o, (int)k, MPI_BYTE, src, tag,
                          MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpierr(err, rc, "MPI_Recv");
        if (bytes == 0)
            break;
    }
    return U3D_OK;
}

u3d_status u3d_dist_agree(u3d_status st, u3d_error *err)
{
    int known = g_agreed && st; /* err already names the rank */
    g_agreed = 0;
    if (!g_started || g_size < 2)
        return st;
    int mine = st ? g_rank : g_size, first = g_size;
    int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        u3d_error e;
        mpierr(&e, rc, "MPI_Allreduce");
        u3d_dist_abort(&e);
    }
    if (first == g_size)
        return U3D_OK;
    struct {
        int32_t code;
        char msg[sizeof err->msg];
    } m;
    memset(&m, 0, sizeof m);
    if (g_rank == first) {
        m.code = (int32_t)st;
        if (known)
            snprintf(m.msg, sizeof m.msg, "%s", err->msg);
        else
            snprintf(m.msg, sizeof m.msg, "rank %d on %s: %s", g_rank,
                     g_host, err ? err->msg : "failed");
    }
    rc = MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        u3d_error e;
        mpierr(&e, rc, "MPI_Bcast");
        u3d_dist_abort(&e);
    }
    g_agreed = 1;
    return u3d_seterr(err, m.code ? (u3d_status)m.code : U3D_ERR_DEVICE, "%s",
                      m.msg);
}

void u3d_dist_report(const char *cmd, const u3d_error *err)
{
    if (!u3d_dist_active()) {
        fprintf(stderr, "unet3d %s: %s\n", cmd, err->msg);
        return;
    }
    if (g_agreed) {
        if (g_rank == 0)
            fprintf(stderr, "unet3d %s: %s\n", cmd, err->msg);
        return;
    }
    fprintf(stderr, "unet3d %s: rank %d on %s: %s\n", cmd, g_rank, g_host,
            err->msg);
    fflush(stderr);
    u3d_outfile_remove_open(); /* no partial output */
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

void u3d_dist_abort(const u3d_error *err)
{
    if (!u3d_dist_active())
        return;
    fprintf(stderr, "unet3d: rank %d on %s: %s\n", g_rank, g_host, err->msg);
    fflush(stderr);
    u3d_outfile_remove_open(); /* no partial output */
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}
