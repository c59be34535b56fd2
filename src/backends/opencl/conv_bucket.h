/* The shape bucket of a convolution layer for the tuned rows (internal):
 * one rule for the direct kernels (conv3d.c) and the implicit GEMM
 * (conv3d_igemm.c), so both families' rows split the layers alike. */
#ifndef UNET3D_CL_CONV_BUCKET_H
#define UNET3D_CL_CONV_BUCKET_H

/* The paper net's first levels (up to 64 channels) and its deeper ones,
 * whose best blockings differ (few positions, many channels). Symmetric
 * in Cin/Cout, so the data gradient of a layer falls in the layer's
 * bucket. No bucket of its own for few output channels (the final 1x1x1
 * layer, Cout 2-3): its GEMM wastes 61 of 64 tile rows, but it does
 * 3 / (64 * 27) of a 64-to-64 3x3x3 layer's work on the same positions,
 * so even 20x waste there is under 0.5 % of a forward pass; a third
 * bucket would also split the direct family's rows and cost a third of
 * every tuning run. */
static inline const char *u3d_cl_conv_bucket(int cin, int cout)
{
    return (cin > cout ? cin : cout) > 64 ? "large" : "small";
}

#endif
