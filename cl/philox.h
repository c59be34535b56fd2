/* Philox4x32-10 (Salmon et al. 2011), the one source of the counter-based
 * random numbers: the host (src/core/rng.c, u3d_philox4x32), the OpenCL
 * kernels and the cuDNN backend's CUDA kernels (both through cl/augment.cl)
 * compile this same function, so a (key, counter) pair gives the same four
 * words everywhere. It is plain C that OpenCL C and NVRTC's C++ accept;
 * tools/embed_cl.cmake inlines it where a .cl file includes it (the device
 * compiler sees no files) and nvrtc.c hands it to NVRTC as "philox.h".
 *
 * PHILOX_FN, the function's qualifiers, may be set by the includer
 * (cl/augment.cl passes its AUG_FN). */
#ifndef UNET3D_PHILOX_H
#define UNET3D_PHILOX_H

#if defined(__OPENCL_VERSION__)
typedef uint philox_u32;
#define PHILOX_MULHI(a, b) ((uint)(((ulong)(a) * (ulong)(b)) >> 32))
#ifndef PHILOX_FN
#define PHILOX_FN
#endif
#elif defined(__CUDACC_RTC__)
typedef unsigned int philox_u32;
#define PHILOX_MULHI(a, b) __umulhi((a), (b))
#ifndef PHILOX_FN
#define PHILOX_FN __device__ static __forceinline__
#endif
#else
#include <stdint.h>
typedef uint32_t philox_u32;
#define PHILOX_MULHI(a, b) ((philox_u32)(((uint64_t)(a) * (b)) >> 32))
#ifndef PHILOX_FN
#define PHILOX_FN static inline
#endif
#endif

/* The four words for counter (c0, c1, c2, c3) under key (k0, k1). */
PHILOX_FN void philox4x32(philox_u32 c0, philox_u32 c1, philox_u32 c2,
                          philox_u32 c3, philox_u32 k0, philox_u32 k1,
                          philox_u32 *out)
{
    for (int r = 0; r < 10; r++) {
        philox_u32 hi0 = PHILOX_MULHI(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        philox_u32 hi1 = PHILOX_MULHI(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

#endif
