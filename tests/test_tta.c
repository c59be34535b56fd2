/* Test-time augmentation (predict --tta mirror): the mean of the 8 mirror
 * images' logits is equivariant to mirroring the tile, so for a volume that
 * one valid-convolution tile covers exactly (the max-pooling grid then
 * sits the same way from either end) the prediction of the mirrored
 * volume is the mirror image of the prediction; without TTA a random
 * network's is not. (Where tiles overhang the volume's end, the pooling
 * grid's phase differs between a volume and its mirror image.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"

enum { D = 56, H = 56, W = 56 }; /* the tiny net's output for 96^3 */

/* Mirror of v along x. */
static void flip_x(const float *src, float *dst, int c)
{
    for (int ch = 0; ch < c; ch++)
        for (int z = 0; z < D; z++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    size_t base = (((size_t)ch * D + z) * H + y) * W;
                    dst[base + W - 1 - x] = src[base + x];
                }
}

/* Max |p(mirrored volume) - mirror(p(volume))| over the probabilities. */
static double asymmetry(t_env *e, u3d_net *net, int tta)
{
    u3d_error err = {0};
    uint64_t s = 3;
    u3d_volume v, vf, p, pf;
    t_ok(u3d_volume_alloc(1, D, H, W, &v, &err), &err, "volume");
    t_ok(u3d_volume_alloc(1, D, H, W, &vf, &err), &err, "volume");
    for (size_t i = 0; i < (size_t)D * H * W; i++)
        v.data[i] = t_randf(&s, -1, 1);
    flip_x(v.data, vf.data, 1);
    u3d_predict_opts o = {0};
    o.tta = tta;
    o.tile[0] = o.tile[1] = o.tile[2] = 96; /* one tile, output 56^3 */
    (void)e;
    t_ok(u3d_predict(net, &v, &o, NULL, &p, NULL, &err), &err, "predict");
    t_ok(u3d_predict(net, &vf, &o, NULL, &pf, NULL, &err), &err, "flipped");
    float *back = malloc((size_t)p.c * D * H * W * sizeof *back);
    flip_x(pf.data, back, p.c);
    double worst = 0;
    for (size_t i = 0; i < (size_t)p.c * D * H * W; i++) {
        double d = fabs((double)back[i] - p.data[i]);
        worst = d > worst ? d : worst;
    }
    free(back);
    u3d_volume_free(&v);
    u3d_volume_free(&vf);
    u3d_volume_free(&p);
    u3d_volume_free(&pf);
    return worst;
}

static void mirror_tta_is_equivariant(void **state)
{
    t_env *e = *state;
    if (t_small()) /* host-side averaging; its kernels are the predict */
        skip();    /* tests' (a tiny net on a 58^3 volume, 16 passes) */
    u3d_error err = {0};
    u3d_net_config c;
    t_ok(u3d_net_preset("tiny", &c, &err), &err, "preset");
    c.in_channels = 1;
    /* valid convolutions: the volume's border is mirrored, so mirroring
     * the volume mirrors every tile's input (same-padded tiles meet the
     * border differently at its start and its end) */
    c.padding = U3D_PAD_VALID;
    u3d_net *net;
    t_ok(u3d_net_create(e->cl, &c, &net, &err), &err, "net");
    t_ok(u3d_net_init(net, 4, &err), &err, "init");
    double with = asymmetry(e, net, 1), without = asymmetry(e, net, 0);
    u3d_net_destroy(net);
    if (!(with < 1e-5))
        fail_msg("tta mirror: mirrored volume's probabilities differ from "
                 "the mirror image by %g", with);
    if (!(without > 1e-3)) /* else the test could not fail */
        fail_msg("without tta the random net is already symmetric (%g)",
                 without);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mirror_tta_is_equivariant),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
