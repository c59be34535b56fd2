/* The device key of the fuzz_tuning harness and of its seeds
 * (gen_seeds.c): inputs must name it to reach the rows. */
#ifndef FUZZ_TUNING_H
#define FUZZ_TUNING_H
#include "backends/opencl/tuning.h"

static const u3d_tune_key fuzz_tune_key = {"Fuzz Platform", "Fuzz Device 9",
                                           "1.2.3"};

#endif
