/* Vectors of the width VW, a build option (1, 2, 4, 8 or 16; 4 unless the
 * host or the including file sets it first): VEC (floats) and VINT (ints),
 * VLOAD(p) and VSTORE(v, p) for either (vloadn/vstoren take float and int
 * pointers). Width 1 is the scalar. Included by the kernels that move
 * groups of VW consecutive values; tools/embed_cl.cmake inlines it. */
#ifndef UNET3D_VECTOR_WIDTH_H
#define UNET3D_VECTOR_WIDTH_H
#ifndef VW
#define VW 4
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#if VW == 1
#define VEC float
#define VINT int
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#else
#define VEC CAT(float, VW)
#define VINT CAT(int, VW)
#define VLOAD(p) CAT(vload, VW)(0, (p))
#define VSTORE(v, p) CAT(vstore, VW)((v), 0, (p))
#endif

#endif
