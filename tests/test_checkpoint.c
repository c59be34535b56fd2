/* The .u3d container: round trip, and every kind of damage is rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_util.h"

static void make(u3d_ckpt *c)
{
    u3d_error err = {0};
    u3d_ckpt_init(c);
    t_ok(u3d_ckpt_meta_set(c, "arch", &err, "unet3d levels=%d", 3), &err, "meta");
    t_ok(u3d_ckpt_meta_set(c, "iteration", &err, "%d", 1234), &err, "meta");
    float a[24], b[3] = {1.5f, -2.0f, 3.25f};
    for (int i = 0; i < 24; i++)
        a[i] = (float)i * 0.5f - 3.0f;
    t_ok(u3d_ckpt_add(c, "enc_0_0_weight", u3d_shape5(2, 3, 1, 2, 2), a, &err),
         &err, "add");
    t_ok(u3d_ckpt_add(c, "enc_0_0_bias", u3d_shape5(1, 3, 1, 1, 1), b, &err),
         &err, "add");
}

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)*len);
    assert_int_equal(fread(b, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return b;
}

static void spit(const char *path, const char *b, long len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
}

static void round_trip(void **state)
{
    (void)state;
    u3d_ckpt c, d;
    u3d_error err = {0};
    char path[64], buf[64];
    snprintf(path, sizeof path, "/tmp/u3d_ckpt_%d.u3d", (int)getpid());
    make(&c);
    t_ok(u3d_ckpt_write(path, &c, &err), &err, "write");
    t_ok(u3d_ckpt_read(path, &d, &err), &err, "read");
    assert_string_equal(u3d_ckpt_meta_get(&d, "iteration", buf, sizeof buf), "1234");
    assert_string_equal(u3d_ckpt_meta_get(&d, "arch", buf, sizeof buf), "unet3d levels=3");
    assert_null(u3d_ckpt_meta_get(&d, "iter", buf, sizeof buf));
    assert_int_equal(d.ntensors, 2);
    const u3d_ckpt_tensor *t = u3d_ckpt_find(&d, "enc_0_0_weight");
    assert_non_null(t);
    assert_true(u3d_shape_eq(t->shape, u3d_shape5(2, 3, 1, 2, 2)));
    assert_memory_equal(t->data, c.tensors[0].data, 24 * sizeof(float));
    u3d_ckpt_free(&c);
    u3d_ckpt_free(&d);
    remove(path);
}

static int only_bias(const char *name, void *user)
{
    ++*(int *)user;
    return strstr(name, "bias") != NULL;
}

/* A filtered read: the rejected tensors are listed with their shapes and
 * no values; damage inside one of them is still caught by the checksum. */
static void read_some_tensors(void **state)
{
    (void)state;
    u3d_ckpt c, d;
    u3d_error err = {0};
    char path[64];
    snprintf(path, sizeof path, "/tmp/u3d_ckpt_some_%d.u3d", (int)getpid());
    make(&c);
    t_ok(u3d_ckpt_write(path, &c, &err), &err, "write");
    int asked = 0;
    t_ok(u3d_ckpt_read_some(path, only_bias, &asked, &d, &err), &err, "read");
    assert_int_equal(asked, 2);
    assert_int_equal(d.ntensors, 2);
    const u3d_ckpt_tensor *w = u3d_ckpt_find(&d, "enc_0_0_weight");
    const u3d_ckpt_tensor *b = u3d_ckpt_find(&d, "enc_0_0_bias");
    assert_true(w && b);
    assert_null(w->data);
    assert_true(u3d_shape_eq(w->shape, u3d_shape5(2, 3, 1, 2, 2)));
    assert_memory_equal(b->data, c.tensors[1].data, 3 * sizeof(float));
    u3d_ckpt_free(&d);
    /* a flipped byte in the weight's values (skipped, not read) */
    long len;
    char *bytes = slurp(path, &len);
    const char *at = memchr(bytes, 'w', (size_t)len); /* "enc_0_0_weight" */
    assert_non_null(at);
    long off = (long)(at - bytes) + 10 + 4 + 20 + 8; /* into the values */
    bytes[off] ^= 0x21;
    spit(path, bytes, len);
    assert_int_equal(u3d_ckpt_read_some(path, only_bias, &asked, &d, &err),
                     U3D_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "checksum"));
    free(bytes);
    u3d_ckpt_free(&c);
    remove(path);
}

static void damage_is_rejected(void **state)
{
    (void)state;
    u3d_ckpt c, d;
    u3d_error err = {0};
    char path[64], bad[80];
    snprintf(path, sizeof path, "/tmp/u3d_ckpt_%d.u3d", (int)getpid());
    snprintf(bad, sizeof bad, "%s.bad", path);
    make(&c);
    t_ok(u3d_ckpt_write(path, &c, &err), &err, "write");
    u3d_ckpt_free(&c);
    long len;
    char *b = slurp(path, &len);
    /* every truncation */
    for (long cut = 0; cut < len; cut += (cut < 64 ? 1 : 7)) {
        spit(bad, b, cut);
        assert_int_equal(u3d_ckpt_read(bad, &d, &err), U3D_ERR_FORMAT);
        assert_non_null(strstr(err.msg, bad));
    }
    /* every single flipped byte */
    for (long i = 0; i < len; i++) {
        b[i] ^= 0x5a;
        spit(bad, b, len);
        assert_int_not_equal(u3d_ckpt_read(bad, &d, &err), U3D_OK);
        b[i] ^= 0x5a;
    }
    /* a foreign file */
    spit(bad, "hello world, this is not a model file at all....", 48);
    assert_int_equal(u3d_ckpt_read(bad, &d, &err), U3D_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a unet3d"));
    /* a newer version with a valid checksum */
    b[8] = 9;
    uint32_t crc = u3d_crc32(0, b, (size_t)len - 12);
    for (int k = 0; k < 4; k++)
        b[len - 12 + k] = (char)(crc >> (8 * k));
    spit(bad, b, len);
    assert_int_equal(u3d_ckpt_read(bad, &d, &err), U3D_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "version 9"));
    /* missing file */
    assert_int_equal(u3d_ckpt_read("/nonexistent/x.u3d", &d, &err), U3D_ERR_IO);
    free(b);
    remove(bad);
    remove(path);
}

static void failed_write_leaves_nothing(void **state)
{
    (void)state;
    u3d_ckpt c;
    u3d_error err = {0};
    make(&c);
    assert_int_equal(u3d_ckpt_write("/nonexistent-dir/m.u3d", &c, &err), U3D_ERR_IO);
    assert_int_equal(access("/nonexistent-dir/m.u3d", F_OK), -1);
    u3d_ckpt_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(read_some_tensors),
        cmocka_unit_test(damage_is_rejected),
        cmocka_unit_test(failed_write_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
