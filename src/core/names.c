/* Names of the configuration enums (names.h). */
#include <string.h>
#include "unet3d/names.h"

const char *const u3d_padding_names[] = {
    [U3D_PAD_VALID] = "valid", [U3D_PAD_SAME] = "same", NULL};
const char *const u3d_bn_mode_names[] = {
    [U3D_BN_NONE] = "none", [U3D_BN_PLAIN] = "plain",
    [U3D_BN_AFFINE] = "affine", NULL};
const char *const u3d_norm_mode_names[] = {
    [U3D_NORM_NONE] = "none", [U3D_NORM_ZSCORE] = "zscore",
    [U3D_NORM_PERCENTILE] = "percentile", NULL};

int u3d_name_index(const char *const *names, const char *name)
{
    for (int i = 0; name && names[i]; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

const char *u3d_name_of(const char *const *names, int value)
{
    for (int i = 0; names[i]; i++)
        if (i == value)
            return names[i];
    return "?";
}
