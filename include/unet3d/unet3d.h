/* unet3d public API: include this one header. */
#ifndef UNET3D_UNET3D_H
#define UNET3D_UNET3D_H
#include "unet3d/error.h"
#include "unet3d/tensor.h"
#include "unet3d/ops.h"
#include "unet3d/backend.h"
#include "unet3d/rng.h"
#include "unet3d/checkpoint.h"
#include "unet3d/model.h"
#include "unet3d/model_io.h"
#include "unet3d/volume.h"
#include "unet3d/volume_io.h"
#include "unet3d/augment.h"
#include "unet3d/train.h"
#include "unet3d/synth.h"
#include "unet3d/predict.h"
#include "unet3d/densify.h"
#include "unet3d/plan.h"
#include "unet3d/suggest.h"
#include "unet3d/names.h"
#define U3D_VERSION "0.1.0"
#endif
