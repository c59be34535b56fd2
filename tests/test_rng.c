/* Philox4x32-10 against the Random123 known answers; stream statistics. */
#include <math.h>
#include "test_util.h"

static void philox_known_answers(void **state)
{
    (void)state;
    uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0}, o[4];
    u3d_philox4x32(c0, k0, o);
    assert_int_equal(o[0], 0x6627e8d5u);
    assert_int_equal(o[1], 0xe169c58du);
    assert_int_equal(o[2], 0xbc57ac4cu);
    assert_int_equal(o[3], 0x9b00dbd8u);
    uint32_t c1[4] = {~0u, ~0u, ~0u, ~0u}, k1[2] = {~0u, ~0u};
    u3d_philox4x32(c1, k1, o);
    assert_int_equal(o[0], 0x408f276du);
    assert_int_equal(o[1], 0x41c83b0eu);
    assert_int_equal(o[2], 0xa20bc7c6u);
    assert_int_equal(o[3], 0x6d5451fdu);
    uint32_t c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    uint32_t k2[2] = {0xa4093822u, 0x299f31d0u};
    u3d_philox4x32(c2, k2, o);
    assert_int_equal(o[0], 0xd16cfe09u);
    assert_int_equal(o[1], 0x94fdccebu);
    assert_int_equal(o[2], 0x5001e420u);
    assert_int_equal(o[3], 0x24126ea1u);
}

static void streams_are_reproducible_and_distinct(void **state)
{
    (void)state;
    u3d_rng a, b, c;
    u3d_rng_init(&a, 42, 7);
    u3d_rng_init(&b, 42, 7);
    u3d_rng_init(&c, 42, 8);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = u3d_rng_u32(&a), y = u3d_rng_u32(&b), z = u3d_rng_u32(&c);
        assert_int_equal(x, y);
        same += x == z;
    }
    assert_true(same < 3);
}

static void normal_moments(void **state)
{
    (void)state;
    u3d_rng r;
    u3d_rng_init(&r, 1, 0);
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = u3d_rng_normal(&r);
        s += v;
        s2 += v * v;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    /* 5 standard errors: 5/sqrt(n) = 0.011 for the mean, ~0.016 for var */
    assert_true(fabs(mean) < 0.012);
    assert_true(fabs(var - 1.0) < 0.016);
    for (int i = 0; i < 10000; i++) {
        uint32_t v = u3d_rng_below(&r, 7);
        assert_true(v < 7);
        float u = u3d_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(philox_known_answers),
        cmocka_unit_test(streams_are_reproducible_and_distinct),
        cmocka_unit_test(normal_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
