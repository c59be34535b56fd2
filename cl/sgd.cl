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

/* PyTorch Adam: g += wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 * p -= step_size * m / (sqrt(v) * inv_bc2 + eps), with the host's bias
 * corrections step_size = lr / (1 - b1^t), inv_bc2 = 1 / sqrt(1 - b2^t),
 * and c1 = 1 - b1, c2 = 1 - b2 computed in double there. */
__kernel void adam_step(__global float *param, __global const float *grad,
                        __global float *m1, __global float *m2,
                        const float step_size, const float beta1,
                        const float c1, const float beta2, const float c2,
                        const float eps, const float weight_decay,
                        const float inv_bc2, const uint n)
{
    const uint gid = get_global_id(0);
    if (n == 0u || gid > (n - 1u) / VW) /* no wrap-around near 2^32 */
        return;
    const uint o = gid * VW;
    if (n - o >= VW) {
        const VEC p = VLOAD(param + o);
        const VEC g = VLOAD(grad + o) + weight_decay * p;
        const VEC a = beta1 * VLOAD(m1 + o) + c1 * g;
        const VEC b = beta2 * VLOAD(m2 + o) + c2 * g * g;
        VSTORE(a, m1 + o);
        VSTORE(b, m2 + o);
        VSTORE(p - step_size * a / (sqrt(b) * inv_bc2 + eps), param + o);
        return;
    }
    for (uint i = o; i < n; i++) {
        const float p = param[i];
        const float g = grad[i] + weight_decay * p;
        const float a = beta1 * m1[i] + c1 * g;
        const float b = beta2 * m2[i] + c2 * g * g;
        m1[i] = a;
        m2[i] = b;
        param[i] = p - step_size * a / (sqrt(b) * inv_bc2 + eps);
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
