/* Philox4x32-10 and a small stream on top of it. */
#include <math.h>
#include "unet3d/rng.h"

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void u3d_philox4x32(const uint32_t c[4], const uint32_t k[2], uint32_t out[4])
{
    uint32_t x0 = c[0], x1 = c[1], x2 = c[2], x3 = c[3];
    uint32_t k0 = k[0], k1 = k[1];
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(0xD2511F53u, x0, &hi0, &lo0);
        mulhilo(0xCD9E8D57u, x2, &hi1, &lo1);
        x0 = hi1 ^ x1 ^ k0;
        x1 = lo1;
        x2 = hi0 ^ x3 ^ k1;
        x3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = x0;
    out[1] = x1;
    out[2] = x2;
    out[3] = x3;
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
