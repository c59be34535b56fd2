/* Golden cases of the optimizers: sgd (param_in, grad, buf_in ->
 * param_out, buf_out) and adam (param_in, grad, m_in, v_in -> param_out,
 * m_out, v_out). The updates are elementwise, so arrays of any rank are
 * loaded flat. */
#include <stdlib.h>
#include <string.h>
#include "golden/golden.h"

/* NAME.npy as a flat float tensor; *n = 0 accepts any size and sets *n,
 * otherwise the element count must equal *n. */
static u3d_status flat(u3d_backend *be, const golden_case *c,
                       const char *name, size_t *n, u3d_tensor *t,
                       u3d_error *err)
{
    u3d_npy a;
    memset(t, 0, sizeof *t);
    u3d_status st = golden_npy(c, name, &a, err);
    if (st)
        return st;
    if (a.is_int || a.count == 0 || a.count > 0x7fffffff)
        st = u3d_seterr(err, U3D_ERR_FORMAT,
                        "%s/%s.npy must hold float32 values (has %zu %s)",
                        c->dir, name, a.count, a.is_int ? "int32" : "float32");
    else if (*n && a.count != *n)
        st = u3d_seterr(err, U3D_ERR_SHAPE,
                        "%s/%s.npy has %zu elements, param_in.npy has %zu",
                        c->dir, name, a.count, *n);
    if (!st)
        st = u3d_tensor_create(be, u3d_shape5(1, 1, 1, 1, (int)a.count),
                               U3D_F32, t, err);
    if (!st)
        st = u3d_tensor_write(t, a.data, err);
    if (!st)
        *n = a.count;
    else
        u3d_tensor_release(t);
    u3d_npy_free(&a);
    return st;
}

/* unet3d's optimizers are PyTorch's plain SGD and Adam, by design: a
 * fixture of another variant (sgd: dampening, nesterov; adam: amsgrad,
 * maximize) is refused as unsupported unless the key is absent or 0. */
static u3d_status only_plain(const golden_case *c, const char *const keys[2],
                             u3d_error *err)
{
    for (int i = 0; i < 2; i++) {
        const char *v = golden_get(c, keys[i]);
        if (v && strtod(v, NULL) != 0.0)
            return u3d_seterr(err, U3D_ERR_UNSUPPORTED,
                              "%s/case.txt: %s %s (only 0 is implemented)",
                              c->dir, keys[i], v);
    }
    return U3D_OK;
}

u3d_status golden_sgd(u3d_backend *be, const golden_case *c,
                      golden_report *rep, u3d_error *err)
{
    u3d_sgd_params p;
    u3d_status st = golden_float(c, "lr", &p.lr, err);
    if (!st)
        st = golden_float(c, "momentum", &p.momentum, err);
    if (!st)
        st = golden_float(c, "weight_decay", &p.weight_decay, err);
    if (!st)
        st = only_plain(c, (const char *const[]){"dampening", "nesterov"},
                        err);
    if (st)
        return st;
    size_t n = 0;
    u3d_tensor param = {0}, grad = {0}, buf = {0};
    st = flat(be, c, "param_in", &n, &param, err);
    if (!st)
        st = flat(be, c, "grad", &n, &grad, err);
    if (!st)
        st = flat(be, c, "buf_in", &n, &buf, err);
    if (!st)
        st = u3d_sgd_step(&p, &param, &grad, &buf, err);
    const golden_expect rows[] = {{"param_out", &param, U3D_GOLDEN_TOL_FWD},
                                  {"buf_out", &buf, U3D_GOLDEN_TOL_FWD}};
    if (!st)
        st = golden_check_all(c, rep, rows, 2, err);
    u3d_tensor_release(&param);
    u3d_tensor_release(&grad);
    u3d_tensor_release(&buf);
    return st;
}

u3d_status golden_adam(u3d_backend *be, const golden_case *c,
                       golden_report *rep, u3d_error *err)
{
    u3d_adam_params p;
    double step = 0;
    u3d_status st = golden_float(c, "lr", &p.lr, err);
    if (!st)
        st = golden_double(c, "beta1", &p.beta1, err);
    if (!st)
        st = golden_double(c, "beta2", &p.beta2, err);
    if (!st)
        st = golden_float(c, "eps", &p.eps, err);
    if (!st)
        st = golden_float(c, "weight_decay", &p.weight_decay, err);
    if (!st)
        st = golden_double(c, "step", &step, err);
    if (!st)
        st = only_plain(c, (const char *const[]){"amsgrad", "maximize"},
                        err);
    if (st)
        return st;
    if (!(step >= 1 && step <= 1e9 && step == (double)(long)step))
        return u3d_seterr(err, U3D_ERR_FORMAT,
                          "%s/case.txt: step %g is not a count >= 1", c->dir,
                          step);
    p.step = (long)step;
    size_t n = 0;
    u3d_tensor param = {0}, grad = {0}, m = {0}, v = {0};
    st = flat(be, c, "param_in", &n, &param, err);
    if (!st)
        st = flat(be, c, "grad", &n, &grad, err);
    if (!st)
        st = flat(be, c, "m_in", &n, &m, err);
    if (!st)
        st = flat(be, c, "v_in", &n, &v, err);
    if (!st)
        st = u3d_adam_step(&p, &param, &grad, &m, &v, err);
    const golden_expect rows[] = {{"param_out", &param, U3D_GOLDEN_TOL_FWD},
                                  {"m_out", &m, U3D_GOLDEN_TOL_FWD},
                                  {"v_out", &v, U3D_GOLDEN_TOL_FWD}};
    if (!st)
        st = golden_check_all(c, rep, rows, 3, err);
    u3d_tensor_release(&param);
    u3d_tensor_release(&grad);
    u3d_tensor_release(&m);
    u3d_tensor_release(&v);
    return st;
}
