/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011): the
 * same (key, counter) gives the same numbers on the host and in every
 * OpenCL kernel, so results are reproducible on any device and a resumed
 * training draws exactly what an uninterrupted one would. */
#ifndef UNET3D_RNG_H
#define UNET3D_RNG_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* Four 32-bit random words for counter c (128 bits) under key k (64). */
void u3d_philox4x32(const uint32_t c[4], const uint32_t k[2], uint32_t out[4]);

/* A stream: key from (seed, stream id), counter advanced per draw. */
typedef struct u3d_rng {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int left;
} u3d_rng;

void u3d_rng_init(u3d_rng *r, uint64_t seed, uint64_t stream);
uint32_t u3d_rng_u32(u3d_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float u3d_rng_uniform(u3d_rng *r);
/* Uniform integer in [0, n), n > 0 (rejection: no modulo bias). */
uint32_t u3d_rng_below(u3d_rng *r, uint32_t n);
/* Standard normal (Box-Muller). */
float u3d_rng_normal(u3d_rng *r);

/* splitmix64 (Steele et al. 2014): the next 64-bit value of a sequence whose
 * whole state is *state; for seeding and cheap host-side draws (shuffles,
 * test data) where no counter-based stream is needed. */
uint64_t u3d_splitmix64(uint64_t *state);

#ifdef __cplusplus
}
#endif
#endif
