/* Runtime helpers. fill is a kernel rather than clEnqueueFillBuffer because
 * oclgrind's shadow memory mis-tracks filled buffers (false "uninitialized"
 * reports) and a kernel behaves the same on every device. */
__kernel void fill_f32(__global float *a, const float v, const uint n)
{
    const uint i = get_global_id(0);
    if (i < n)
        a[i] = v;
}
