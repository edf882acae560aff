/* Strict base64url: the one accepted encoding of every byte string. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/b64url.h"

static int
dec(const char *in, uint8_t *out, size_t cap, size_t *n)
{
    return tr_b64url_decode(in, strlen(in), out, cap, n);
}

static void
rfc4648_vectors_round_trip(void **state)
{
    const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba",
                            "foobar" };
    const char *enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE",
                          "Zm9vYmFy" };
    char out[32];
    uint8_t back[32];
    size_t n;

    for (int i = 0; i < 7; i++) {
        assert_int_equal(tr_b64url_encode((const uint8_t *)plain[i],
                                          strlen(plain[i]), out,
                                          sizeof(out), &n), 0);
        assert_string_equal(out, enc[i]);
        assert_int_equal(dec(enc[i], back, sizeof(back), &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(back, plain[i], n);
    }
}

static void
url_alphabet_is_used_both_ways(void **state)
{
    const uint8_t bytes[] = { 0xfb, 0xff, 0xbf };
    char out[8];
    uint8_t back[8];
    size_t n;

    assert_int_equal(tr_b64url_encode(bytes, 3, out, sizeof(out), &n), 0);
    assert_string_equal(out, "-_-_");
    assert_int_equal(dec("-_-_", back, sizeof(back), &n), 0);
    assert_memory_equal(back, bytes, 3);
    assert_int_equal(dec("+/+/", back, sizeof(back), &n), -1);
}

static void
padding_whitespace_and_junk_are_refused(void **state)
{
    const char *bad[] = { "Zg==", "Zm8=", "Zm9v\n", " Zm9v", "Zm 9v",
                          "Zm9v.", "Z", "Zm9vY", "Zm9v!A", "Zm\x80v" };
    uint8_t out[16];
    size_t n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dec(bad[i], out, sizeof(out), &n), -1);
}

static void
non_zero_trailing_bits_are_refused(void **state)
{
    uint8_t out[4];
    size_t n;

    /* "Zg" is 'f'; "Zh" carries the same byte with stray low bits. */
    assert_int_equal(dec("Zg", out, sizeof(out), &n), 0);
    assert_int_equal(dec("Zh", out, sizeof(out), &n), -1);
    assert_int_equal(dec("Zm8", out, sizeof(out), &n), 0);
    assert_int_equal(dec("Zm9", out, sizeof(out), &n), -1);
}

static void
small_buffers_are_refused(void **state)
{
    uint8_t out[2];
    char enc[4];
    size_t n;

    assert_int_equal(dec("Zm9v", out, sizeof(out), &n), -1);
    assert_int_equal(tr_b64url_encode((const uint8_t *)"foo", 3, enc,
                                      sizeof(enc), &n), -1);
}

static void
long_inputs_cross_chunk_boundaries(void **state)
{
    uint8_t in[1000], back[1000];
    char enc[1400];
    size_t n, m;

    for (size_t len = 0; len < sizeof(in); len += 97) {
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)(i * 31 + len);
        assert_int_equal(tr_b64url_encode(in, len, enc, sizeof(enc), &n),
                         0);
        assert_int_equal(n, tr_b64url_encoded_len(len));
        assert_int_equal(tr_b64url_decode(enc, n, back, sizeof(back), &m),
                         0);
        assert_int_equal(m, len);
        assert_memory_equal(back, in, len);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc4648_vectors_round_trip),
        cmocka_unit_test(url_alphabet_is_used_both_ways),
        cmocka_unit_test(padding_whitespace_and_junk_are_refused),
        cmocka_unit_test(non_zero_trailing_bits_are_refused),
        cmocka_unit_test(small_buffers_are_refused),
        cmocka_unit_test(long_inputs_cross_chunk_boundaries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
