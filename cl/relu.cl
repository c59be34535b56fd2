/* ReLU forward and backward, elementwise. */
__kernel void relu_forward(__global const float *x, __global float *y,
                           const uint n)
{
    const uint i = get_global_id(0);
    if (i < n)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f; /* no fmax: NaN stays NaN */
}

/* The mask comes from the forward output: y > 0 exactly where x > 0. */
__kernel void relu_backward(__global const float *y, __global const float *dy,
                            __global float *dx, const uint n)
{
    const uint i = get_global_id(0);
    if (i < n)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
