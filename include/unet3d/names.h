/* The names of the configuration enums, as the command line and the model
 * files spell them: one table each, indexed by the enum's value, so a name
 * and its value cannot drift apart between the places that use them. */
#ifndef UNET3D_NAMES_H
#define UNET3D_NAMES_H
#include "unet3d/model.h"
#include "unet3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NULL-terminated; entry i names the enum value i. */
extern const char *const u3d_padding_names[];   /* valid, same */
extern const char *const u3d_bn_mode_names[];   /* none, plain, affine */
extern const char *const u3d_norm_mode_names[]; /* none, zscore, percentile */

/* Index of name in a NULL-terminated table, or -1 (also for NULL). */
int u3d_name_index(const char *const *names, const char *name);
/* The name of value in a table, "?" when out of range. */
const char *u3d_name_of(const char *const *names, int value);

#ifdef __cplusplus
}
#endif
#endif
