/* The host reference: every op as plain C loops over host buffers (the
 * ref backend's tensors hold float* / int32_t* in buf). It is the oracle of
 * the tests, so it favours obviousness over speed (internal header). */
#ifndef UNET3D_REF_H
#define UNET3D_REF_H
#include "core/backend_impl.h"

static inline float *u3d_ref_f(const u3d_tensor *t) { return (float *)t->buf; }

/* u3d_ref_NAME for every op of include/unet3d/op_list.h */
U3D_BACKEND_DECLARE_OPS(ref)

#endif
