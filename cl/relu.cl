/* ReLU forward and backward, elementwise. Each work-item handles VW
 * consecutive floats (build option -DVW=1|2|4|8|16) with one vector load
 * per array; the last item takes the n % VW leftover floats one by one.
 * NaN maps to 0, like the reference (x > 0 is false for NaN). */
#include "vector_width.h"
/* a where v > 0, else 0 */
#if VW == 1
#define POS(v, a) ((v) > 0.0f ? (a) : 0.0f)
#else
#define POS(v, a) select((VEC)(0.0f), (a), (v) > 0.0f)
#endif

__kernel void relu_forward(__global const float *x, __global float *y,
                           const uint n)
{
    const uint gid = get_global_id(0);
    if (n == 0u || gid > (n - 1u) / VW) /* no wrap-around near 2^32 */
        return;
    const uint o = gid * VW;
    if (n - o >= VW) {
        const VEC v = VLOAD(x + o);
        VSTORE(POS(v, v), y + o);
        return;
    }
    for (uint i = o; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* The mask comes from the forward output: y > 0 exactly where x > 0. */
__kernel void relu_backward(__global const float *y, __global const float *dy,
                            __global float *dx, const uint n)
{
    const uint gid = get_global_id(0);
    if (n == 0u || gid > (n - 1u) / VW) /* no wrap-around near 2^32 */
        return;
    const uint o = gid * VW;
    if (n - o >= VW) {
        VSTORE(POS(VLOAD(y + o), VLOAD(dy + o)), dx + o);
        return;
    }
    for (uint i = o; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
