/* dist.h without MPI: one rank. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dist/dist.h"

int u3d_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *v = getenv("UNET3D_MPI");
    if (v && !strcmp(v, "1")) {
        fprintf(stderr, "unet3d: UNET3D_MPI=1 but this build has no MPI "
                        "(configure with -DUNET3D_MPI=ON)\n");
        return -1;
    }
    /* several copies started by an MPI launcher would each do the whole
     * work and write the same outputs */
    static const char *sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                  "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const char *n = getenv(sizes[i]);
        if ((!v || strcmp(v, "0")) && n && atoi(n) > 1) {
            fprintf(stderr, "unet3d: started as one of %d MPI processes, "
                            "but this build has no MPI (configure with "
                            "-DUNET3D_MPI=ON, or set UNET3D_MPI=0 to run "
                            "independent copies)\n", atoi(n));
            return -1;
        }
    }
    return 0;
}

void u3d_dist_finalize(void) {}
int u3d_dist_active(void) { return 0; }
int u3d_dist_rank(void) { return 0; }
int u3d_dist_size(void) { return 1; }
int u3d_dist_local_rank(void) { return 0; }
int u3d_dist_local_size(void) { return 1; }
int u3d_dist_built(void) { return 0; }
const char *u3d_dist_where(void) { return ""; }

const char *u3d_dist_host(void)
{
    static char h[256];
    if (!h[0] && gethostname(h, sizeof h - 1))
        snprintf(h, sizeof h, "localhost");
    return h;
}

u3d_status u3d_dist_sum_f32(float *buf, size_t n, u3d_error *err)
{
    (void)buf, (void)n, (void)err;
    return U3D_OK;
}

u3d_status u3d_dist_sum_f64(double *buf, size_t n, u3d_error *err)
{
    (void)buf, (void)n, (void)err;
    return U3D_OK;
}

u3d_status u3d_dist_max_f64(double *buf, size_t n, u3d_error *err)
{
    (void)buf, (void)n, (void)err;
    return U3D_OK;
}

u3d_status u3d_dist_isum_f32(float *buf, size_t n, u3d_dist_req **req,
                             u3d_error *err)
{
    (void)buf, (void)n, (void)err;
    *req = NULL;
    return U3D_OK;
}

u3d_status u3d_dist_wait(u3d_dist_req *req, u3d_error *err)
{
    (void)req, (void)err;
    return U3D_OK;
}

void u3d_dist_poll(u3d_dist_req *req) { (void)req; }

u3d_status u3d_dist_bcast(void *buf, size_t bytes, int root, u3d_error *err)
{
    (void)buf, (void)bytes, (void)root, (void)err;
    return U3D_OK;
}

u3d_status u3d_dist_barrier(u3d_error *err)
{
    (void)err;
    return U3D_OK;
}

u3d_status u3d_dist_send(const void *buf, size_t bytes, int dest, int tag,
                         u3d_error *err)
{
    (void)buf, (void)bytes, (void)tag;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "no rank %d: one process",
                      dest);
}

u3d_status u3d_dist_recv(void *buf, size_t bytes, int src, int tag,
                         u3d_error *err)
{
    (void)buf, (void)bytes, (void)tag;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "no rank %d: one process",
                      src);
}

u3d_status u3d_dist_agree(u3d_status st, u3d_error *err)
{
    (void)err;
    return st;
}

void u3d_dist_report(const char *cmd, const u3d_error *err)
{
    fprintf(stderr, "unet3d %s: %s\n", cmd, err->msg);
}

void u3d_dist_abort(const u3d_error *err) { (void)err; }
