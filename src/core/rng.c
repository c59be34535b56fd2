/* Philox4x32-10 (cl/philox.h, shared with the kernels), a small stream on
 * top of it, and splitmix64. */
#include <math.h>
#include "unet3d/rng.h"
#include "../../cl/philox.h"

void u3d_philox4x32(const uint32_t c[4], const uint32_t k[2], uint32_t out[4])
{
    philox4x32(c[0], c[1], c[2], c[3], k[0], k[1], out);
}

uint64_t u3d_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void u3d_rng_init(u3d_rng *r, uint64_t seed, uint64_t stream)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)stream;
    r->ctr[3] = (uint32_t)(stream >> 32);
    r->left = 0;
}

uint32_t u3d_rng_u32(u3d_rng *r)
{
    if (r->left == 0) {
        u3d_philox4x32(r->ctr, r->key, r->buf);
        if (++r->ctr[0] == 0)
            r->ctr[1]++;
        r->left = 4;
    }
    return r->buf[4 - r->left--];
}

float u3d_rng_uniform(u3d_rng *r)
{
    return (float)(u3d_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

uint32_t u3d_rng_below(u3d_rng *r, uint32_t n)
{
    uint32_t limit = (uint32_t)(0x100000000ULL - 0x100000000ULL % n);
    for (;;) {
        uint32_t v = u3d_rng_u32(r);
        if (limit == 0 || v < limit)
            return v % n;
    }
}

float u3d_rng_normal(u3d_rng *r)
{
    /* (0,1] keeps log finite */
    float u1 = ((float)(u3d_rng_u32(r) >> 8) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = u3d_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}
