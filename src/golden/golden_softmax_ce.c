/* Golden case: softmax_cross_entropy (logits, labels, class_weights ->
 * loss, probabilities, dlogits; ignore_label in case.txt). */
#include <string.h>
#include "golden/golden.h"

typedef struct ce_case {
    u3d_tensor logits, labels, weights, probs, dlogits;
} ce_case;

static u3d_status run(u3d_backend *be, const golden_case *c,
                      golden_report *rep, ce_case *t, u3d_error *err)
{
    int ignore;
    const char *red = golden_get(c, "reduction");
    if (red && strcmp(red, "weighted_mean"))
        return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                          "%s/case.txt: reduction '%s' (only weighted_mean "
                          "is implemented)",
                          c->dir, red);
    U3D_TRY(golden_int(c, "ignore_label", &ignore, err));
    U3D_TRY(golden_load(be, c, "logits", U3D_F32, NULL, &t->logits, err));
    u3d_shape zs = t->logits.shape, ls = zs, ws = u3d_shape5(1, zs.c, 1, 1, 1);
    ls.c = 1;
    U3D_TRY(golden_load(be, c, "labels", U3D_I32, &ls, &t->labels, err));
    U3D_TRY(golden_load(be, c, "class_weights", U3D_F32, &ws, &t->weights,
                        err));
    U3D_TRY(u3d_tensor_create(be, zs, U3D_F32, &t->probs, err));
    U3D_TRY(u3d_tensor_create(be, zs, U3D_F32, &t->dlogits, err));
    float loss = 0;
    U3D_TRY(u3d_softmax_ce(&t->logits, &t->labels, &t->weights, ignore,
                           &t->probs, &t->dlogits, &loss, NULL, err));
    U3D_TRY(
        golden_check_host(c, rep, "loss", &loss, 1, U3D_GOLDEN_TOL_FWD, err));
    U3D_TRY(golden_check(c, rep, "probabilities", &t->probs, U3D_GOLDEN_TOL_FWD,
                         err));
    return golden_check(c, rep, "dlogits", &t->dlogits, U3D_GOLDEN_TOL_GRAD,
                        err);
}

u3d_status golden_softmax_ce(u3d_backend *be, const golden_case *c,
                             golden_report *rep, u3d_error *err)
{
    ce_case t;
    memset(&t, 0, sizeof t);
    u3d_status st = run(be, c, rep, &t, err);
    u3d_tensor *all[] = {&t.logits, &t.labels, &t.weights, &t.probs,
                         &t.dlogits};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        u3d_tensor_release(all[i]);
    return st;
}
