/* Optimizer updates, elementwise. Each work-item handles VW consecutive
 * floats (build option -DVW=1|2|4|8|16) with one vector load per array;
 * the last item takes the n % VW leftover floats one by one. */
#include "vector_width.h"

/* PyTorch SGD, dampening 0: buf = m*buf + (g + wd*p); p -= lr*buf. */
__kernel void sgd_step(__global float *param, __global const float *grad,
                       __global float *buf, const float lr,
                       const float momentum, const float weight_decay,
                       const uint n)
{
    const uint gid = get_global_id(0);
    if (n == 0u || gid > (n - 1u) / VW) /* no wrap-around near 2^32 */
        return;
    const uint o = gid * VW;
    if (n - o >= VW) {
        const VEC p = VLOAD(param + o);
        const VEC b = momentum * VLOAD(buf + o) +
                      (VLOAD(grad + o) + weight_decay * p);
        VSTORE(b, buf + o);
        VSTORE(p - lr * b, param + o);
        return;
    }
    for (uint i = o; i < n; i++) {
        const float p = param[i];
        const float b = momentum * buf[i] + (grad[i] + weight_decay * p);
        buf[i] = b;
        param[i] = p - lr * b;
    }
}

/* y += alpha * x */
__kernel void axpy(const float alpha, __global const float *x,
                   __global float *y, const uint n)
{
    const uint gid = get_global_id(0);
    if (n == 0u || gid > (n - 1u) / VW) /* no wrap-around near 2^32 */
        return;
    const uint o = gid * VW;
    if (n - o >= VW) {
        VSTORE(VLOAD(y + o) + alpha * VLOAD(x + o), y + o);
        return;
    }
    for (uint i = o; i < n; i++)
        y[i] += alpha * x[i];
}
