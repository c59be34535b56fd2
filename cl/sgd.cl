/* Optimizer updates, elementwise. */

/* PyTorch SGD, dampening 0: buf = m*buf + (g + wd*p); p -= lr*buf. */
__kernel void sgd_step(__global float *param, __global const float *grad,
                       __global float *buf, const float lr,
                       const float momentum, const float weight_decay,
                       const uint n)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    const float p = param[i];
    const float b = momentum * buf[i] + (grad[i] + weight_decay * p);
    buf[i] = b;
    param[i] = p - lr * b;
}

/* y += alpha * x */
__kernel void axpy(const float alpha, __global const float *x,
                   __global float *y, const uint n)
{
    const uint i = get_global_id(0);
    if (i < n)
        y[i] += alpha * x[i];
}
