/* Key sets: what a JWKS may hold, what is skipped, what is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/jwks.h"
#include "token_fixture.h"

static EVP_PKEY *ec, *rsa, *ed;

static int
group_setup(void **state)
{
    ec = fx_gen_ec();
    rsa = fx_gen_rsa(2048);
    ed = fx_gen_ed25519();
    return 0;
}

static int
group_teardown(void **state)
{
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    return 0;
}

static tr_keyset *
parse(const char *json, char *err, size_t errlen)
{
    return tr_keyset_parse(json, strlen(json), err, errlen);
}

/* A JWKS of one key: fx_jwk text with `extra` spliced in before the
 * closing brace. */
static tr_keyset *
one_key(EVP_PKEY *k, const char *kid, const char *extra, char *err)
{
    char *j = fx_jwk(k, kid, NULL), doc[8192];
    tr_keyset *ks;

    j[strlen(j) - 1] = '\0';
    snprintf(doc, sizeof(doc), "{\"keys\":[%s%s}]}", j, extra);
    ks = parse(doc, err, 256);
    free(j);
    return ks;
}

static void
each_supported_key_type_loads(void **state)
{
    char *a = fx_jwk(ec, "e", "ES256"), *b = fx_jwk(rsa, "r", NULL);
    char *c = fx_jwk(ed, "d", NULL), doc[8192], err[256];
    tr_keyset *ks;
    bool seen;

    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", a, b, c);
    ks = parse(doc, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(tr_keyset_count(ks), 3);
    assert_int_equal(tr_keyset_key(ks, 0)->kty, TR_KTY_EC);
    assert_int_equal(tr_keyset_key(ks, 0)->alg, TR_JWS_ES256);
    assert_int_equal(tr_keyset_key(ks, 1)->bits, 2048);
    assert_ptr_equal(tr_keyset_select(ks, TR_JWS_PS256, "r", 1, &seen),
                     tr_keyset_key(ks, 1));
    assert_ptr_equal(tr_keyset_select(ks, TR_JWS_EDDSA, "d", 1, &seen),
                     tr_keyset_key(ks, 2));
    assert_null(tr_keyset_select(ks, TR_JWS_RS256, "e", 1, &seen));
    assert_true(seen);
    assert_false(tr_keyset_has_dev_key(ks));
    tr_keyset_unref(ks);
    free(a);
    free(b);
    free(c);
}

static void
private_key_material_is_refused(void **state)
{
    const char *members[] = { ",\"d\":\"AAAA\"", ",\"p\":\"AAAA\"",
                              ",\"qi\":\"AAAA\"" };
    char err[256];

    for (int i = 0; i < 3; i++) {
        assert_null(one_key(ec, "k", members[i], err));
        assert_non_null(strstr(err, "private"));
    }
}

static void
symmetric_key_in_jwks_is_refused(void **state)
{
    char err[256];

    assert_null(parse("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
                      err, sizeof(err)));
}

static void
unusable_keys_are_skipped_and_counted(void **state)
{
    char err[256];
    tr_keyset *ks = parse(
        "{\"keys\":["
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"AA\"},"
        "{\"kty\":\"PQ\",\"x\":\"AA\"},"
        "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AA\",\"e\":\"AQAB\"},"
        "{\"kty\":\"RSA\",\"alg\":\"RS512\",\"n\":\"AA\",\"e\":\"AQAB\"}"
        "]}", err, sizeof(err));

    assert_non_null(ks);
    assert_int_equal(tr_keyset_count(ks), 0);
    assert_int_equal(tr_keyset_skipped(ks), 5);
    tr_keyset_unref(ks);
    ks = one_key(ec, "k", ",\"key_ops\":[\"encrypt\"]", err);
    assert_int_equal(tr_keyset_count(ks), 0);
    tr_keyset_unref(ks);
    ks = one_key(ec, "k", ",\"key_ops\":[\"verify\"],\"use\":\"sig\"", err);
    assert_int_equal(tr_keyset_count(ks), 1);
    tr_keyset_unref(ks);
}

static void
invalid_keys_are_refused(void **state)
{
    char err[256];

    /* A point that is not on P-256. */
    assert_null(parse("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                      "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                      "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\""
                      "}]}", err, sizeof(err)));
    /* Coordinates of the wrong length. */
    assert_null(parse("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                      "\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", err, sizeof(err)));
    /* alg that does not fit kty. */
    assert_null(one_key(ec, "k", ",\"alg\":\"RS256\"", err));
    /* Not a JWKS. */
    assert_null(parse("[]", err, sizeof(err)));
    assert_null(parse("{\"keys\":{}}", err, sizeof(err)));
    assert_null(parse("{\"keys\":[],\"keys\":[]}", err, sizeof(err)));
    assert_null(parse("{\"keys\":[\"x\"]}", err, sizeof(err)));
    assert_null(parse("{\"keys\":[{\"kid\":\"k\"}]}", err, sizeof(err)));
}

static void
same_kid_and_type_twice_is_refused(void **state)
{
    char *a = fx_jwk(ec, "k", NULL), *b = fx_jwk(rsa, "k", NULL), doc[8192];
    char err[256];
    tr_keyset *ks;

    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, a);
    assert_null(parse(doc, err, sizeof(err)));
    /* Same kid, different types: each algorithm finds its own. */
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
    ks = parse(doc, err, sizeof(err));
    assert_non_null(ks);
    tr_keyset_unref(ks);
    free(a);
    free(b);
}

static void
dev_keys_are_recognised_by_kid(void **state)
{
    char err[256];
    tr_keyset *ks = one_key(ec, "treaty-dev-es256", "", err);

    assert_true(tr_keyset_has_dev_key(ks));
    tr_keyset_unref(ks);
    ks = one_key(ec, "prod-treaty-dev-x", "", err);
    assert_false(tr_keyset_has_dev_key(ks));
    tr_keyset_unref(ks);
}

static void
fingerprint_tells_equal_sets_from_changed_ones(void **state)
{
    char err[256];
    tr_keyset *a = one_key(ec, "k", "", err), *b = one_key(ec, "k", "", err);
    tr_keyset *c = one_key(ec, "k2", "", err), *d = one_key(ed, "k", "", err);

    assert_memory_equal(tr_keyset_fingerprint(a), tr_keyset_fingerprint(b),
                        32);
    assert_memory_not_equal(tr_keyset_fingerprint(a),
                            tr_keyset_fingerprint(c), 32);
    assert_memory_not_equal(tr_keyset_fingerprint(a),
                            tr_keyset_fingerprint(d), 32);
    assert_true(tr_keyset_contains(c, tr_keyset_key(a, 0)->thumb));
    assert_false(tr_keyset_contains(d, tr_keyset_key(a, 0)->thumb));
    tr_keyset_unref(a);
    tr_keyset_unref(b);
    tr_keyset_unref(c);
    tr_keyset_unref(d);
}

static void
hmac_secret_must_be_32_bytes(void **state)
{
    char err[256];
    tr_keyset *ks;

    assert_null(tr_keyset_new_hmac((const uint8_t *)"short", 5, err,
                                   sizeof(err)));
    assert_null(tr_keyset_new_hmac((const uint8_t *)FX_HMAC_SECRET, 31, err,
                                   sizeof(err)));
    ks = tr_keyset_new_hmac((const uint8_t *)FX_HMAC_SECRET, 32, err,
                            sizeof(err));
    assert_non_null(ks);
    assert_int_equal(tr_keyset_key(ks, 0)->kty, TR_KTY_OCT);
    tr_keyset_unref(ks);
}

static void
alg_names_are_exact(void **state)
{
    assert_int_equal(tr_jws_alg_from_name("ES256", 5), TR_JWS_ES256);
    assert_int_equal(tr_jws_alg_from_name("es256", 5), TR_JWS_NONE);
    assert_int_equal(tr_jws_alg_from_name("EdDSA", 5), TR_JWS_EDDSA);
    assert_int_equal(tr_jws_alg_from_name("none", 4), TR_JWS_NONE);
    assert_int_equal(tr_jws_alg_from_name("ES2560", 6), TR_JWS_NONE);
    assert_int_equal(tr_jws_alg_from_name("ES25", 4), TR_JWS_NONE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_supported_key_type_loads),
        cmocka_unit_test(private_key_material_is_refused),
        cmocka_unit_test(symmetric_key_in_jwks_is_refused),
        cmocka_unit_test(unusable_keys_are_skipped_and_counted),
        cmocka_unit_test(invalid_keys_are_refused),
        cmocka_unit_test(same_kid_and_type_twice_is_refused),
        cmocka_unit_test(dev_keys_are_recognised_by_kid),
        cmocka_unit_test(fingerprint_tells_equal_sets_from_changed_ones),
        cmocka_unit_test(hmac_secret_must_be_32_bytes),
        cmocka_unit_test(alg_names_are_exact),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
