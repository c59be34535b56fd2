/* The processes of a multi-process run (one rank per device), behind a
 * small interface so that the trainer, the predictor and the command line
 * never call MPI themselves. dist_mpi.c implements it with the MPI
 * standard API only (Open MPI, MPICH, vendor MPIs); dist_none.c, in builds
 * without MPI (-DUNET3D_MPI=OFF), is one rank.
 *
 * MPI is started only when the process was launched by an MPI launcher
 * (mpirun/mpiexec of Open MPI, MPICH/Hydra, Intel MPI, MVAPICH, Slurm's
 * srun with PMI/PMIx): u3d_dist_init looks for OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE, PMI_RANK, PMIX_RANK or MV2_COMM_WORLD_SIZE in the environment.
 * UNET3D_MPI=1 forces MPI_Init (a singleton), UNET3D_MPI=0 never calls it.
 * So a binary built with MPI runs as one process without mpirun exactly as
 * one built without it (no singleton start-up, which some MPIs make slow or
 * refuse in containers). Until u3d_dist_init runs (the library used without
 * the program) everything below is one rank and a no-op. */
#ifndef UNET3D_DIST_H
#define UNET3D_DIST_H
#include <stddef.h>
#include "unet3d/error.h"

typedef struct u3d_dist_req u3d_dist_req;

/* Starts MPI when launched under a launcher (see above). Returns 0, or -1
 * with a message on stderr when MPI could not start. */
int u3d_dist_init(int *argc, char ***argv);
/* Ends MPI (collective, when started). */
void u3d_dist_finalize(void);

int u3d_dist_active(void);      /* MPI started and more than one rank */
int u3d_dist_rank(void);        /* 0.. size-1 */
int u3d_dist_size(void);
int u3d_dist_local_rank(void);  /* rank among the ranks of this host */
int u3d_dist_local_size(void);
const char *u3d_dist_host(void);
/* "rank R/N on HOST" (empty string when not active). */
const char *u3d_dist_where(void);
/* Whether the build has MPI. */
int u3d_dist_built(void);

/* In-place sums over the ranks (collective). */
u3d_status u3d_dist_sum_f32(float *buf, size_t n, u3d_error *err);
u3d_status u3d_dist_sum_f64(double *buf, size_t n, u3d_error *err);
u3d_status u3d_dist_max_f64(double *buf, size_t n, u3d_error *err);
/* Non-blocking in-place sum: buf must stay untouched until u3d_dist_wait;
 * *req is NULL when there is nothing to wait for (one rank). */
u3d_status u3d_dist_isum_f32(float *buf, size_t n, u3d_dist_req **req,
                             u3d_error *err);
u3d_status u3d_dist_wait(u3d_dist_req *req, u3d_error *err);
/* Lets a pending non-blocking sum progress (MPI_Test): MPIs without an
 * asynchronous progress thread only advance it inside MPI calls. */
void u3d_dist_poll(u3d_dist_req *req);
u3d_status u3d_dist_bcast(void *buf, size_t bytes, int root, u3d_error *err);
u3d_status u3d_dist_barrier(u3d_error *err);
/* Point to point (bytes), for the plane writer of distributed prediction. */
u3d_status u3d_dist_send(const void *buf, size_t bytes, int dest, int tag,
                         u3d_error *err);
u3d_status u3d_dist_recv(void *buf, size_t bytes, int src, int tag,
                         u3d_error *err);

/* Collective status check after a setup step: every rank passes its own
 * status (and err holding its message when it failed). When any failed,
 * every rank returns the status of the lowest failing rank with err set to
 * "rank R on HOST: its message", and the error counts as agreed (see
 * u3d_dist_report); else U3D_OK. */
u3d_status u3d_dist_agree(u3d_status st, u3d_error *err);

/* Reports a command's failure: without MPI prints "unet3d CMD: msg"; with
 * several ranks an agreed error is printed once (rank 0), any other error
 * is printed with the rank and host and the whole job is aborted
 * (MPI_Abort), so no rank waits forever for a dead peer. */
void u3d_dist_report(const char *cmd, const u3d_error *err);
/* Prints err with the rank and host and aborts every rank (only returns
 * when there is one rank). */
void u3d_dist_abort(const u3d_error *err);

#endif
