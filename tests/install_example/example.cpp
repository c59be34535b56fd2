// Every public header of an installed unet3d compiles as C++ (extern "C").
// (op_list.h is an X-macro list, included by ops.h)
#include "unet3d/augment.h"
#include "unet3d/backend.h"
#include "unet3d/checkpoint.h"
#include "unet3d/cudnn.h"
#include "unet3d/densify.h"
#include "unet3d/error.h"
#include "unet3d/model.h"
#include "unet3d/model_io.h"
#include "unet3d/names.h"
#include "unet3d/ops.h"
#include "unet3d/predict.h"
#include "unet3d/rng.h"
#include "unet3d/synth.h"
#include "unet3d/tensor.h"
#include "unet3d/train.h"
#include "unet3d/unet3d.h"
#include "unet3d/volume.h"
#include "unet3d/volume_io.h"
#include <cstdio>

int main()
{
    u3d_error e = {};
    u3d_volume v = {};
    if (u3d_volume_alloc(1, 2, 2, 2, &v, &e) != U3D_OK)
        return 1;
    u3d_volume_free(&v);
    std::printf("C++: %s\n", u3d_status_name(U3D_OK));
    return 0;
}
