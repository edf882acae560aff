/* Signed audit checkpoints (pure): the signed bytes, signing and
 * verification, the JSON line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/audit_checkpoint.h"

static tr_txn_key key_a, key_b;

static void
make_key(tr_txn_key *k)
{
    memset(k, 0, sizeof(*k));
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k->pkey);
    assert_int_equal(tr_txn_key_thumbprint(k->pkey, k->kid), TR_TXN_OK);
}

static int
setup(void **state)
{
    make_key(&key_a);
    make_key(&key_b);
    return 0;
}

static int
teardown(void **state)
{
    EVP_PKEY_free(key_a.pkey);
    EVP_PKEY_free(key_b.pkey);
    return 0;
}

static tr_audit_checkpoint
sample(void)
{
    tr_audit_checkpoint cp;

    memset(&cp, 0, sizeof(cp));
    cp.kind = TR_AUDIT_CP_PERIODIC;
    cp.seq = 0x0102030405060708ULL;
    for (int i = 0; i < 32; i++)
        cp.hash[i] = (uint8_t)(0xa0 + i);
    cp.time_ms = 1714564800123;
    return cp;
}

static void
test_message_is_the_documented_byte_layout(void **state)
{
    tr_audit_checkpoint cp = sample();
    uint8_t m[TR_AUDIT_CP_MSG_LEN];
    static const uint8_t seq_be[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    static const uint8_t t_be[8] = {
        0x00, 0x00, 0x01, 0x8f, 0x34, 0x06, 0x9e, 0x7b,
    };

    cp.kind = TR_AUDIT_CP_ANCHOR;
    tr_audit_checkpoint_message(&cp, m);
    assert_int_equal(TR_AUDIT_CP_MSG_LEN, 53);
    assert_memory_equal(m, "TRC1", 4);
    assert_int_equal(m[4], 2);
    assert_memory_equal(m + 5, seq_be, 8);
    assert_memory_equal(m + 13, cp.hash, 32);
    assert_memory_equal(m + 45, t_be, 8);
}

static void
test_signed_checkpoint_verifies_with_its_key_only(void **state)
{
    tr_audit_checkpoint cp = sample();
    tr_txn_key both[2] = { key_b, key_a };
    tr_txn_key impostor = key_b;

    assert_int_equal(tr_audit_checkpoint_sign(&cp, key_a.pkey, key_a.kid),
                     TR_AUDIT_CP_OK);
    assert_string_equal(cp.kid, key_a.kid);
    assert_int_equal(tr_audit_checkpoint_verify(&cp, both, 2),
                     TR_AUDIT_CP_OK);
    assert_int_equal(tr_audit_checkpoint_verify(&cp, &key_b, 1),
                     TR_AUDIT_CP_E_UNKNOWN_KID);
    assert_int_equal(tr_audit_checkpoint_verify(&cp, NULL, 0),
                     TR_AUDIT_CP_E_UNKNOWN_KID);
    /* Another key under the signer's kid: the signature decides. */
    memcpy(impostor.kid, key_a.kid, sizeof(impostor.kid));
    assert_int_equal(tr_audit_checkpoint_verify(&cp, &impostor, 1),
                     TR_AUDIT_CP_E_SIGNATURE);
}

static void
test_every_signed_field_is_covered(void **state)
{
    tr_audit_checkpoint cp = sample(), x;

    assert_int_equal(tr_audit_checkpoint_sign(&cp, key_a.pkey, key_a.kid),
                     TR_AUDIT_CP_OK);
    x = cp;
    x.seq++;
    assert_int_equal(tr_audit_checkpoint_verify(&x, &key_a, 1),
                     TR_AUDIT_CP_E_SIGNATURE);
    x = cp;
    x.hash[31] ^= 1;
    assert_int_equal(tr_audit_checkpoint_verify(&x, &key_a, 1),
                     TR_AUDIT_CP_E_SIGNATURE);
    x = cp;
    x.time_ms--;
    assert_int_equal(tr_audit_checkpoint_verify(&x, &key_a, 1),
                     TR_AUDIT_CP_E_SIGNATURE);
    x = cp;
    x.kind = TR_AUDIT_CP_SHUTDOWN;
    assert_int_equal(tr_audit_checkpoint_verify(&x, &key_a, 1),
                     TR_AUDIT_CP_E_SIGNATURE);
    x = cp;
    x.sig[0] ^= 0x80;
    assert_int_equal(tr_audit_checkpoint_verify(&x, &key_a, 1),
                     TR_AUDIT_CP_E_SIGNATURE);
}

static void
test_signing_refuses_a_key_that_is_not_ed25519(void **state)
{
    tr_audit_checkpoint cp = sample();
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

    assert_non_null(ec);
    assert_int_equal(tr_audit_checkpoint_sign(&cp, ec, "x"),
                     TR_AUDIT_CP_E_ARG);
    assert_int_equal(tr_audit_checkpoint_sign(&cp, NULL, "x"),
                     TR_AUDIT_CP_E_ARG);
    EVP_PKEY_free(ec);
}

static void
test_json_line_round_trips_and_still_verifies(void **state)
{
    tr_audit_checkpoint cp = sample(), back;
    char line[TR_AUDIT_CP_LINE_MAX];
    size_t n = 0;

    cp.kind = TR_AUDIT_CP_SHUTDOWN;
    cp.seq = 1000;
    assert_int_equal(tr_audit_checkpoint_sign(&cp, key_a.pkey, key_a.kid),
                     TR_AUDIT_CP_OK);
    assert_int_equal(tr_audit_checkpoint_to_json(&cp, line, sizeof(line),
                                                 &n), TR_AUDIT_CP_OK);
    assert_int_equal(strlen(line), n);
    assert_null(strchr(line, '\n'));
    assert_non_null(strstr(line, "\"type\":\"treaty.audit.checkpoint\""));
    assert_non_null(strstr(line, "\"kind\":\"shutdown\""));
    assert_non_null(strstr(line, "\"seq\":1000"));
    assert_non_null(strstr(line, "\"time\":\"2024-05-01T12:00:00.123Z\""));
    assert_int_equal(tr_audit_checkpoint_from_json(line, n, &back),
                     TR_AUDIT_CP_OK);
    assert_memory_equal(&back, &cp, sizeof(cp));
    assert_int_equal(tr_audit_checkpoint_verify(&back, &key_a, 1),
                     TR_AUDIT_CP_OK);
    /* Too small a buffer is an error, not a cut line. */
    assert_int_equal(tr_audit_checkpoint_to_json(&cp, line, 40, &n),
                     TR_AUDIT_CP_E_ARG);
}

static void
test_other_lines_on_a_shared_stream_are_not_checkpoints(void **state)
{
    static const char *const lines[] = {
        "{\"time\":1,\"request_id\":\"r\",\"status\":200}",
        "not json at all",
        "[1,2,3]",
        "{\"type\":\"something.else\",\"seq\":1}",
        "",
    };
    tr_audit_checkpoint cp;

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_int_equal(tr_audit_checkpoint_from_json(lines[i],
                                                       strlen(lines[i]),
                                                       &cp),
                         TR_AUDIT_CP_NOT_CHECKPOINT);
}

static void
test_malformed_checkpoint_lines_are_errors(void **state)
{
    tr_audit_checkpoint cp = sample();
    char good[TR_AUDIT_CP_LINE_MAX], bad[TR_AUDIT_CP_LINE_MAX];
    size_t n;
    static const struct {
        const char *from, *to;
    } edits[] = {
        { "\"seq\":1000", "\"seq\":-1" },
        { "\"seq\":1000", "\"seq\":\"1000\"" },
        { "\"v\":1", "\"v\":2" },
        { "\"kind\":\"periodic\"", "\"kind\":\"daily\"" },
        { "\"hash\":\"a0", "\"hash\":\"zz" },
        { "\"sig\":\"", "\"sig\":\"AAAA" },
        { "\"alg\":\"EdDSA\"", "\"seq\":1" }, /* duplicate key */
    };

    cp.seq = 1000;
    assert_int_equal(tr_audit_checkpoint_sign(&cp, key_a.pkey, key_a.kid),
                     TR_AUDIT_CP_OK);
    assert_int_equal(tr_audit_checkpoint_to_json(&cp, good, sizeof(good),
                                                 &n), TR_AUDIT_CP_OK);
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        const char *at = strstr(good, edits[i].from);
        size_t pre, fl = strlen(edits[i].from), tl = strlen(edits[i].to);

        assert_non_null(at);
        pre = (size_t)(at - good);
        memcpy(bad, good, pre);
        memcpy(bad + pre, edits[i].to, tl);
        memcpy(bad + pre + tl, at + fl, strlen(at + fl) + 1);
        assert_int_equal(tr_audit_checkpoint_from_json(bad, strlen(bad),
                                                       &cp),
                         TR_AUDIT_CP_E_FORMAT);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_is_the_documented_byte_layout),
        cmocka_unit_test(test_signed_checkpoint_verifies_with_its_key_only),
        cmocka_unit_test(test_every_signed_field_is_covered),
        cmocka_unit_test(test_signing_refuses_a_key_that_is_not_ed25519),
        cmocka_unit_test(test_json_line_round_trips_and_still_verifies),
        cmocka_unit_test(
            test_other_lines_on_a_shared_stream_are_not_checkpoints),
        cmocka_unit_test(test_malformed_checkpoint_lines_are_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
