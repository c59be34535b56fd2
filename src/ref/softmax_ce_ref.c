/* STUB: softmax_ce not implemented yet. */
#include "ref/ref.h"

u3d_status u3d_ref_softmax_ce(u3d_backend *be, cten *logits, cten *labels, cten *class_weights, int ignore_label, u3d_tensor *probs, u3d_tensor *dlogits, float *loss, float *weight_sum,
    u3d_error *err)
{
    (void)be; (void)logits; (void)labels; (void)class_weights; (void)ignore_label; (void)probs; (void)dlogits; (void)loss; (void)weight_sum;
    return u3d_seterr(err, U3D_ERR_UNSUPPORTED, "softmax_ce is not implemented yet");
}
