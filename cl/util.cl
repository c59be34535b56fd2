/* Runtime helpers. fill is a kernel rather than clEnqueueFillBuffer because
 * oclgrind's shadow memory mis-tracks filled buffers (false "uninitialized"
 * reports) and a kernel behaves the same on every device. Each work-item
 * writes VW consecutive floats (build option -DVW=1|2|4|8|16), the last one
 * the n % VW leftover floats one by one. */
#include "vector_width.h"

__kernel void fill_f32(__global float *a, const float v, const uint n)
{
    const uint gid = get_global_id(0);
    if (n == 0u || gid > (n - 1u) / VW) /* no wrap-around near 2^32 */
        return;
    const uint o = gid * VW;
    if (n - o >= VW) {
        VSTORE((VEC)(v), a + o);
        return;
    }
    for (uint i = o; i < n; i++)
        a[i] = v;
}
