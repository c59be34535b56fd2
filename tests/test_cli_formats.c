/* Every command reads and writes every volume format: train on two NIfTI
 * channels with HDF5 labels, predict the same volume given as HDF5 (4D),
 * OME-Zarr and stacked NIfTI files into Zarr, NIfTI and HDF5 outputs (the
 * same labels each time), sparsify and evaluate across formats, outputs
 * replacing a previous Zarr folder, and a missing HDF5 dataset named in a
 * one-line error listing the file's datasets. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

static char dir[128];
static const char *exe = U3D_BINARY_DIR "/unet3d";
enum { S = 24 };

static const char *P(const char *name) { return t_join(dir, name); }

static int inside(int z, int y, int x) { return ((x / 6 + y / 6 + z / 6) % 3) == 0; }

static int group_setup(void **state)
{
    (void)state;
    t_mkdtemp(dir, sizeof dir, "clifmt");
    u3d_volume v, c0, c1;
    u3d_labels l;
    u3d_error err = {0};
    uint64_t s = 5;
    t_ok(u3d_volume_alloc(2, S, S, S, &v, &err), &err, "alloc");
    t_ok(u3d_labels_alloc(S, S, S, &l, &err), &err, "alloc");
    size_t n = (size_t)S * S * S;
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t i = ((size_t)z * S + y) * S + x;
                v.data[i] = 100.0f * inside(z, y, x) + t_randf(&s, 0, 30);
                v.data[n + i] = 50.0f * inside(z, y, x) + t_randf(&s, 0, 60);
                l.data[i] = (uint16_t)inside(z, y, x);
            }
    t_ok(u3d_volume_alloc(1, S, S, S, &c0, &err), &err, "alloc");
    t_ok(u3d_volume_alloc(1, S, S, S, &c1, &err), &err, "alloc");
    memcpy(c0.data, v.data, n * sizeof(float));
    memcpy(c1.data, v.data + n, n * sizeof(float));
    t_ok(u3d_vio_write_volume(P("img.h5:/volumes/raw"), &v, NULL, &err), &err,
         "h5");
    t_ok(u3d_vio_write_volume(P("img.zarr"), &v, NULL, &err), &err, "zarr");
    t_ok(u3d_vio_write_volume(P("c0.nii.gz"), &c0, NULL, &err), &err, "nii");
    t_ok(u3d_vio_write_volume(P("c1.nii"), &c1, NULL, &err), &err, "nii");
    t_ok(u3d_vio_write_labels(P("lab.h5"), &l, NULL, &err), &err, "labels");
    u3d_volume_free(&v);
    u3d_volume_free(&c0);
    u3d_volume_free(&c1);
    u3d_labels_free(&l);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

static void same_labels(const char *a, const char *b)
{
    u3d_labels x, y;
    u3d_error err = {0};
    t_ok(u3d_vio_read_labels(a, &x, NULL, &err), &err, a);
    t_ok(u3d_vio_read_labels(b, &y, NULL, &err), &err, b);
    assert_int_equal(x.d, y.d);
    assert_int_equal(x.h, y.h);
    assert_int_equal(x.w, y.w);
    assert_memory_equal(x.data, y.data, (size_t)x.d * x.h * x.w * 2);
    u3d_labels_free(&x);
    u3d_labels_free(&y);
}

static void train_predict_every_format(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s train --image %s,%s --labels %s --model %s --iterations 2 "
             "--preset tiny --levels 2 --classes 2 --patch 28x28x28 "
             "--augment none --quiet",
             exe, P("c0.nii.gz"), P("c1.nii"), P("lab.h5"), P("m.u3d"));
    assert_int_equal(t_run(cmd), 0);
    const char *in[3][2] = {{"img.h5:/volumes/raw", "seg.zarr"},
                            {"img.zarr", "seg.nii.gz"},
                            {NULL, "seg.h5:/out/seg"}};
    for (int k = 0; k < 3; k++) {
        char image[600];
        if (in[k][0])
            snprintf(image, sizeof image, "%s", P(in[k][0]));
        else
            snprintf(image, sizeof image, "%s,%s", P("c0.nii.gz"), P("c1.nii"));
        snprintf(cmd, sizeof cmd,
                 "%s predict --model %s --image %s --out %s --quiet", exe,
                 P("m.u3d"), image, P(in[k][1]));
        assert_int_equal(t_run(cmd), 0);
    }
    same_labels(P("seg.zarr"), P("seg.nii.gz"));
    same_labels(P("seg.zarr"), P("seg.h5:/out/seg"));
    /* a Zarr output replaces the previous folder */
    snprintf(cmd, sizeof cmd,
             "%s predict --model %s --image %s --out %s --probabilities %s "
             "--quiet",
             exe, P("m.u3d"), P("img.zarr"), P("seg.zarr/"), P("p.zarr/"));
    assert_int_equal(t_run(cmd), 0);
    same_labels(P("seg.zarr"), P("seg.nii.gz"));
    u3d_volume pv;
    u3d_error err = {0};
    t_ok(u3d_vio_read_volume(P("p.zarr"), &pv, NULL, &err), &err, "probs");
    assert_int_equal(pv.c, 2);
    u3d_volume_free(&pv);
    /* sparsify and evaluate across formats */
    snprintf(cmd, sizeof cmd,
             "%s sparsify --labels %s --slices 2,2,2 --out %s > /dev/null",
             exe, P("lab.h5"), P("sparse.nii.gz"));
    assert_int_equal(t_run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "%s evaluate --prediction %s --truth %s --exclude %s --json "
             "> %s",
             exe, P("seg.zarr"), P("seg.h5:/out/seg"), P("sparse.nii.gz"),
             P("eval.json"));
    assert_int_equal(t_run(cmd), 0);
    FILE *f = fopen(P("eval.json"), "r");
    char buf[2048] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(buf, "\"mean_iou\": 1.000000"));
}

static void missing_dataset(void **state)
{
    (void)state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s sparsify --labels %s --slices 1,1,1 --out %s 2> %s", exe,
             P("img.h5:/nope"), P("x.tif"), P("err.txt"));
    assert_int_equal(t_run(cmd), 1);
    FILE *f = fopen(P("err.txt"), "r");
    char buf[2048] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(buf, "no dataset /nope"));
    assert_non_null(strstr(buf, "/volumes/raw (2x24x24x24)"));
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1); /* one line */
    assert_int_not_equal(access(P("x.tif"), F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(train_predict_every_format),
        cmocka_unit_test(missing_dataset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
