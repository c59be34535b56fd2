/* Golden case: batchnorm3d. Training forward (y, running_*_out), backward
 * (dx, dgamma, dbeta) and inference with running_*_in (y_eval). */
#include <string.h>
#include "golden/golden.h"

typedef struct bn_case {
    u3d_tensor x, dy, gamma, beta, rm_in, rv_in, rm, rv;
    u3d_tensor y, dx, dgamma, dbeta, mean, invstd, y_eval;
} bn_case;

static void release_all(bn_case *t)
{
    u3d_tensor *all[] = {&t->x,    &t->dy,     &t->gamma,  &t->beta,
                         &t->rm_in, &t->rv_in, &t->rm,     &t->rv,
                         &t->y,    &t->dx,     &t->dgamma, &t->dbeta,
                         &t->mean, &t->invstd, &t->y_eval};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        u3d_tensor_release(all[i]);
}

/* Loads NAME.npy, which must be float32 of shape s. */
static u3d_status load(u3d_backend *be, const golden_case *c,
                       const char *name, u3d_shape s, u3d_tensor *t,
                       u3d_error *err)
{
    return golden_load(be, c, name, U3D_F32, &s, t, err);
}

static u3d_status load_inputs(u3d_backend *be, const golden_case *c,
                              int affine, bn_case *t, u3d_error *err)
{
    U3D_TRY(golden_load(be, c, "x", U3D_F32, NULL, &t->x, err));
    u3d_shape xs = t->x.shape, cs = u3d_shape5(1, xs.c, 1, 1, 1);
    U3D_TRY(load(be, c, "dy", xs, &t->dy, err));
    U3D_TRY(load(be, c, "running_mean_in", cs, &t->rm_in, err));
    U3D_TRY(load(be, c, "running_var_in", cs, &t->rv_in, err));
    U3D_TRY(load(be, c, "running_mean_in", cs, &t->rm, err));
    U3D_TRY(load(be, c, "running_var_in", cs, &t->rv, err));
    if (affine) {
        U3D_TRY(load(be, c, "gamma", cs, &t->gamma, err));
        U3D_TRY(load(be, c, "beta", cs, &t->beta, err));
        U3D_TRY(u3d_tensor_create(be, cs, U3D_F32, &t->dgamma, err));
        U3D_TRY(u3d_tensor_create(be, cs, U3D_F32, &t->dbeta, err));
    }
    U3D_TRY(u3d_tensor_create(be, xs, U3D_F32, &t->y, err));
    U3D_TRY(u3d_tensor_create(be, xs, U3D_F32, &t->dx, err));
    U3D_TRY(u3d_tensor_create(be, xs, U3D_F32, &t->y_eval, err));
    U3D_TRY(u3d_tensor_create(be, cs, U3D_F32, &t->mean, err));
    return u3d_tensor_create(be, cs, U3D_F32, &t->invstd, err);
}

static u3d_status run(u3d_backend *be, const golden_case *c,
                      golden_report *rep, bn_case *t, u3d_error *err)
{
    u3d_bn_params p;
    int affine;
    U3D_TRY(golden_float(c, "eps", &p.eps, err));
    U3D_TRY(golden_float(c, "momentum", &p.momentum, err));
    U3D_TRY(golden_int(c, "affine", &affine, err));
    U3D_TRY(load_inputs(be, c, affine, t, err));
    u3d_tensor *g = affine ? &t->gamma : NULL, *b = affine ? &t->beta : NULL;
    U3D_TRY(u3d_batchnorm3d_forward_train(&p, &t->x, g, b, &t->rm, &t->rv,
                                          &t->y, &t->mean, &t->invstd, err));
    U3D_TRY(u3d_batchnorm3d_backward(&t->x, &t->dy, g, &t->mean, &t->invstd,
                                     &t->dx, affine ? &t->dgamma : NULL,
                                     affine ? &t->dbeta : NULL, err));
    U3D_TRY(u3d_batchnorm3d_forward_infer(&p, &t->x, g, b, &t->rm_in,
                                          &t->rv_in, &t->y_eval, err));
    const golden_expect rows[] = {
        {"y", &t->y, U3D_GOLDEN_TOL_FWD},
        {"running_mean_out", &t->rm, U3D_GOLDEN_TOL_FWD},
        {"running_var_out", &t->rv, U3D_GOLDEN_TOL_FWD},
        {"y_eval", &t->y_eval, U3D_GOLDEN_TOL_FWD},
        {"dx", &t->dx, U3D_GOLDEN_TOL_GRAD},
        {"dgamma", affine ? &t->dgamma : NULL, U3D_GOLDEN_TOL_GRAD},
        {"dbeta", affine ? &t->dbeta : NULL, U3D_GOLDEN_TOL_GRAD}};
    return golden_check_all(c, rep, rows, sizeof rows / sizeof rows[0], err);
}

u3d_status golden_batchnorm3d(u3d_backend *be, const golden_case *c,
                              golden_report *rep, u3d_error *err)
{
    bn_case t;
    memset(&t, 0, sizeof t);
    u3d_status st = run(be, c, rep, &t, err);
    release_all(&t);
    return st;
}
