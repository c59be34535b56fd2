/* The plan from the data (plan.h): each rule at its threshold, the
 * class-weight switch, labels above the classes, determinism. Plain C, no
 * device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test_util.h"
#include "unet3d/plan.h"

enum { D = 12, H = 20, W = 20 };

typedef struct fixture {
    u3d_volume v;
    u3d_labels l;
    u3d_plan_input in;
} fixture;

/* A volume with the given spacing; fg of every `every` annotated voxels
 * on z slice 3 is class 1, the rest 0; the other slices unannotated. */
static void make(fixture *f, double sz, double sy, double sx, int every)
{
    u3d_error err = {0};
    uint64_t s = 9;
    memset(f, 0, sizeof *f);
    t_ok(u3d_volume_alloc(1, D, H, W, &f->v, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(D, H, W, &f->l, &err), &err, "alloc");
    f->v.spacing[0] = sz, f->v.spacing[1] = sy, f->v.spacing[2] = sx;
    size_t n = (size_t)D * H * W, k = 0;
    for (size_t i = 0; i < n; i++) {
        f->v.data[i] = t_randf(&s, 0, 200);
        int z = (int)(i / ((size_t)H * W));
        f->l.data[i] = z != 3 ? 255 : (k++ % (size_t)every) == 0 ? 1 : 0;
    }
    u3d_net_config c;
    t_ok(u3d_net_preset("tiny", &c, &err), &err, "preset");
    f->in.images = &f->v;
    f->in.labels = &f->l;
    f->in.n = 1;
    f->in.net = c;
    f->in.ignore_label = 255;
}

static void drop(fixture *f)
{
    u3d_volume_free(&f->v);
    u3d_labels_free(&f->l);
}

static void plan(fixture *f, u3d_plan *p)
{
    u3d_error err = {0};
    t_ok(u3d_plan_make(&f->in, p, &err), &err, "plan");
}

static int isotropic_net(const u3d_net_config *c)
{
    return !u3d_net_is_anisotropic(c);
}

static void isotropic_keeps_defaults(void **state)
{
    (void)state;
    fixture f;
    make(&f, 1, 1, 1, 3);
    u3d_plan *p = malloc(sizeof *p);
    plan(&f, p);
    assert_true(isotropic_net(&p->net));
    assert_int_equal(p->aug_changed, 0);
    u3d_augment_params d;
    u3d_augment_params_default(&d);
    d.ignore_label = 255;
    assert_memory_equal(&d, &p->aug, sizeof d);
    assert_int_equal(p->norm_mode, U3D_NORM_PERCENTILE);
    assert_int_equal(p->weights, U3D_WEIGHTS_BALANCED);
    /* 3 classes: densify mirrors as train does; 2: without augmentation,
     * and the reason says so */
    assert_int_equal(p->net.classes, 3);
    assert_int_equal(p->aug_densify_none, 0);
    assert_null(strstr(p->aug_why, "densify none"));
    f.in.net.classes = 2;
    plan(&f, p);
    assert_int_equal(p->aug_densify_none, 1);
    assert_non_null(strstr(p->aug_why, "densify none"));
    f.in.net.classes = 3;
    plan(&f, p);
    assert_non_null(strstr(p->spacing_why, "the file gives none"));
    /* densify: same padding, each side <= 48 and the volume's */
    assert_int_equal(p->padding_densify, U3D_PAD_SAME);
    for (int a = 0; a < 3; a++) {
        int side = a == 0 ? f.v.d : a == 1 ? f.v.h : f.v.w;
        assert_true(p->patch_densify[a] <= 48 &&
                    p->patch_densify[a] <= (side < 4 ? 4 : side));
        assert_true(p->patch_densify[a] % 4 == 0);
    }
    /* train the same way (one volume: the same patch) */
    assert_int_equal(p->padding_train, U3D_PAD_SAME);
    assert_memory_equal(p->patch_train, p->patch_densify,
                        sizeof p->patch_train);
    /* --padding given: both keep it, patch by their own rules */
    f.in.keep_padding = 1;
    plan(&f, p);
    assert_int_equal(p->padding_densify, f.in.net.padding);
    assert_int_equal(p->padding_train, f.in.net.padding);
    /* one slice of 400 voxels, every third class 1 */
    assert_int_equal(p->counts[0] + p->counts[1], (size_t)H * W);
    assert_int_equal(p->counts[1], (size_t)(H * W + 2) / 3);
    assert_int_equal(p->nstats, 1);
    assert_true(p->stats[0].min >= 0 && p->stats[0].max <= 200);
    assert_true(p->stats[0].plo <= p->stats[0].phi);
    free(p);
    drop(&f);
}

/* r = 2.2: in-plane rotation, deformation scaled to physical units; the
 * network stays isotropic (r < 3). */
static void moderate_anisotropy_augments_in_plane(void **state)
{
    (void)state;
    fixture f;
    make(&f, 2.2, 1, 1, 3);
    snprintf(f.v.unit, sizeof f.v.unit, "um");
    u3d_plan *p = malloc(sizeof *p);
    plan(&f, p);
    assert_true(isotropic_net(&p->net));
    assert_int_equal(p->aug_changed, 1);
    assert_true(p->aug.rotate_deg[0] == 15.0f);
    assert_true(p->aug.rotate_deg[1] == 0 && p->aug.rotate_deg[2] == 0);
    assert_true(fabsf(p->aug.sigma[0] - 4.0f / 2.2f) < 1e-5f);
    assert_true(p->aug.sigma[1] == 4.0f && p->aug.sigma[2] == 4.0f);
    assert_int_equal(p->aug.grid_spacing[0], 15); /* round(32 / 2.2) */
    assert_int_equal(p->aug.grid_spacing[1], 32);
    assert_non_null(strstr(p->aug_why, "r = 2.20"));
    assert_non_null(strstr(p->net_why, "< 3"));
    free(p);
    drop(&f);
}

/* r = 4: nnU-Net's anisotropic kernels (1x3x3 on the first level); the
 * grid stays at least U3D_PLAN_MIN_GRID even for r = 10. */
static void strong_anisotropy_changes_kernels(void **state)
{
    (void)state;
    fixture f;
    make(&f, 4, 1, 1, 3);
    u3d_plan *p = malloc(sizeof *p);
    plan(&f, p);
    assert_false(isotropic_net(&p->net));
    assert_int_equal(u3d_net_kernel(&p->net, 0, 0), 1);
    assert_int_equal(u3d_net_pool(&p->net, 0, 0), 1);
    assert_int_equal(p->aug.grid_spacing[0], 8);
    assert_non_null(strstr(p->net_why, ">= 3"));
    u3d_augment_params a;
    u3d_augment_params_default(&a);
    const double sp[3] = {10, 1, 1};
    assert_int_equal(u3d_plan_augment_aniso(sp, &a), 1);
    assert_int_equal(a.grid_spacing[0], U3D_PLAN_MIN_GRID);
    /* --kernels given: kept */
    f.in.keep_net = 1;
    plan(&f, p);
    assert_true(isotropic_net(&p->net));
    free(p);
    drop(&f);
}

/* 1 foreground voxel in 400: balanced weight 200 > 50 -> sqrt. */
static void imbalance_takes_sqrt(void **state)
{
    (void)state;
    fixture f;
    make(&f, 1, 1, 1, 400);
    u3d_plan *p = malloc(sizeof *p);
    plan(&f, p);
    assert_int_equal(p->counts[1], 1);
    assert_true(p->balanced[1] > U3D_PLAN_MAX_WEIGHT);
    assert_int_equal(p->weights, U3D_WEIGHTS_SQRT);
    assert_true(fabsf(p->class_weights[1] - sqrtf(p->balanced[1])) < 1e-4f);
    assert_non_null(strstr(p->weights_why, "sqrt"));
    free(p);
    drop(&f);
}

static void deterministic(void **state)
{
    (void)state;
    fixture f;
    make(&f, 2.5, 1, 1.2, 5);
    u3d_plan *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    plan(&f, a);
    plan(&f, b);
    assert_memory_equal(a, b, sizeof *a);
    free(a);
    free(b);
    drop(&f);
}

/* A label above --classes: the error names the labels file. */
static void label_above_classes(void **state)
{
    (void)state;
    fixture f;
    make(&f, 1, 1, 1, 3);
    f.l.data[5 * H * W] = 7;
    f.in.net.classes = 2;
    const char *names[] = {"lab.tif"};
    f.in.label_names = names;
    u3d_plan *p = malloc(sizeof *p);
    u3d_error err = {0};
    assert_int_not_equal(u3d_plan_make(&f.in, p, &err), U3D_OK);
    assert_non_null(strstr(err.msg, "lab.tif"));
    /* classes 0: from the labels, 8 */
    f.in.net.classes = 0;
    plan(&f, p);
    assert_int_equal(p->net.classes, 8);
    assert_int_equal(p->aug_densify_none, 0);
    free(p);
    drop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(isotropic_keeps_defaults),
        cmocka_unit_test(moderate_anisotropy_augments_in_plane),
        cmocka_unit_test(strong_anisotropy_changes_kernels),
        cmocka_unit_test(imbalance_takes_sqrt),
        cmocka_unit_test(deterministic),
        cmocka_unit_test(label_above_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
