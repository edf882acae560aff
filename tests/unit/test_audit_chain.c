/* The audit record's canonical encoding and the hash chain (pure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/audit_chain.h"
#include "core/audit_identity.h"

static tr_audit_record
sample(void)
{
    tr_audit_record r;

    memset(&r, 0, sizeof(r));
    r.kind = TR_AUDIT_REQUEST;
    r.time_ms = 1700000000123;
    r.request_id = "req-1";
    r.client_addr = "192.0.2.7";
    r.principal_issuer = "corp";
    r.principal_sub = "alice";
    r.actor = "agent:planner";
    r.delegation_chain = "[\"agent:planner\",\"agent:mailbot\"]";
    r.client_id = "planner-app";
    r.token_id = "jti-9";
    r.token_hash = "00112233445566778899aabbccddeeff";
    r.has_token_verified = true;
    r.token_verified = true;
    r.route = "mail-read";
    r.tool = "mail";
    r.method = "GET";
    r.path = "/users/alice/mail/inbox";
    r.decision = TR_AUDIT_ALLOW;
    r.reason = "ok";
    r.policy_rule = "mail-read";
    r.limiter = "admitted";
    r.idem_key_hash = "abcd";
    r.has_idem_replay = true;
    r.idem_replay = false;
    r.precondition = "none";
    r.has_status = true;
    r.status = 200;
    r.has_latency = true;
    r.latency_us = 1234;
    r.has_bytes = true;
    r.bytes = 99;
    r.config_hash = "cafe";
    r.stripped_headers = "[\"x-principal\"]";
    r.has_completes_seq = true;
    r.completes_seq = 7;
    r.has_count = true;
    r.count = 3;
    return r;
}

static void
hash_of(const tr_audit_record *r, uint8_t out[32])
{
    static const uint8_t zeros[32];

    assert_int_equal(tr_audit_chain_hash(zeros, r, out), 0);
}

static void
test_encoding_starts_with_version_and_big_endian_seq(void **state)
{
    tr_audit_record r;
    uint8_t buf[64];
    static const uint8_t head[] = {
        'T', 'R', 'A', '1',
        0, 0, 0, 0, 0, 0, 0x01, 0x02,      /* seq 258 */
        0x02, 0, 0, 0, 0, 0, 0, 0, 1,      /* kind DECISION */
        0x02, 0, 0, 0, 0, 0, 0, 0x03, 0xe8, /* time_ms 1000 */
        0x01, 0, 0, 0, 2, 'r', '1',        /* request_id "r1" */
        0x00,                              /* client_addr NULL */
    };

    memset(&r, 0, sizeof(r));
    r.seq = 258;
    r.kind = TR_AUDIT_DECISION;
    r.time_ms = 1000;
    r.request_id = "r1";
    assert_true(tr_audit_canonical(&r, buf, sizeof(buf)) > sizeof(head));
    assert_memory_equal(buf, head, sizeof(head));
}

static void
test_encoding_sizes_without_writing_when_cap_is_small(void **state)
{
    tr_audit_record r = sample();
    size_t n = tr_audit_canonical(&r, NULL, 0);
    uint8_t *buf = malloc(n + 1);
    uint8_t small[8] = { 0 };

    assert_non_null(buf);
    buf[n] = 0xaa;
    assert_int_equal(tr_audit_canonical(&r, buf, n), n);
    assert_int_equal(buf[n], 0xaa);
    assert_int_equal(tr_audit_canonical(&r, small, sizeof(small)), n);
    for (size_t i = 0; i < sizeof(small); i++)
        assert_int_equal(small[i], 0);
    free(buf);
}

static void
test_null_and_empty_string_encode_differently(void **state)
{
    tr_audit_record a = sample(), b = sample();
    uint8_t ha[32], hb[32];

    a.reason = NULL;
    b.reason = "";
    hash_of(&a, ha);
    hash_of(&b, hb);
    assert_memory_not_equal(ha, hb, 32);
}

static void
test_moving_bytes_between_fields_changes_hash(void **state)
{
    tr_audit_record a = sample(), b = sample();
    uint8_t ha[32], hb[32];

    a.route = "ab";
    a.tool = "c";
    b.route = "a";
    b.tool = "bc";
    hash_of(&a, ha);
    hash_of(&b, hb);
    assert_memory_not_equal(ha, hb, 32);
}

static void
test_chain_hash_is_sha256_of_prev_then_canonical(void **state)
{
    tr_audit_record r = sample();
    uint8_t prev[32], got[32], want[32];
    size_t n = tr_audit_canonical(&r, NULL, 0);
    uint8_t *buf = malloc(32 + n);
    unsigned int len = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    for (int i = 0; i < 32; i++)
        prev[i] = (uint8_t)(i * 7);
    memcpy(buf, prev, 32);
    tr_audit_canonical(&r, buf + 32, n);
    assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(md, buf, 32 + n), 1);
    assert_int_equal(EVP_DigestFinal_ex(md, want, &len), 1);
    EVP_MD_CTX_free(md);
    free(buf);
    assert_int_equal(tr_audit_chain_hash(prev, &r, got), 0);
    assert_memory_equal(got, want, 32);
}

/* Flips one field at a time: each must change the hash, or an edit of
 * that column would go unnoticed by verify. */
static void
test_every_field_is_covered_by_the_hash(void **state)
{
    tr_audit_record base = sample();
    uint8_t h0[32];
    int n_cases = 0;

    hash_of(&base, h0);
    for (int f = 0; f < 33; f++) {
        tr_audit_record r = base;
        uint8_t h[32];

        switch (f) {
        case 0: r.seq = 1; break;
        case 1: r.kind = TR_AUDIT_COMPLETION; break;
        case 2: r.time_ms++; break;
        case 3: r.request_id = "req-2"; break;
        case 4: r.client_addr = "192.0.2.8"; break;
        case 5: r.principal_issuer = "other"; break;
        case 6: r.principal_sub = "bob"; break;
        case 7: r.actor = "agent:x"; break;
        case 8: r.delegation_chain = "[\"agent:planner\"]"; break;
        case 9: r.client_id = NULL; break;
        case 10: r.token_id = "jti-8"; break;
        case 11: r.token_hash = "ff"; break;
        case 12: r.token_verified = false; break;
        case 13: r.route = "mail-send"; break;
        case 14: r.tool = NULL; break;
        case 15: r.method = "POST"; break;
        case 16: r.path = "/users/bob/mail/inbox"; break;
        case 17: r.decision = TR_AUDIT_DENY; break;
        case 18: r.reason = "actor_not_allowed"; break;
        case 19: r.policy_rule = "x"; break;
        case 20: r.limiter = "rate"; break;
        case 21: r.idem_key_hash = "abce"; break;
        case 22: r.idem_replay = true; break;
        case 23: r.precondition = "matched"; break;
        case 24: r.status = 201; break;
        case 25: r.latency_us = 1; break;
        case 26: r.bytes = 100; break;
        case 27: r.config_hash = "cafd"; break;
        case 28: r.stripped_headers = "[]"; break;
        case 29: r.completes_seq = 8; break;
        case 30: r.count = 4; break;
        case 31: r.has_status = false; break;
        case 32: r.has_token_verified = false; break;
        }
        hash_of(&r, h);
        assert_memory_not_equal(h, h0, 32);
        n_cases++;
    }
    assert_int_equal(n_cases, 33);
}

static void
test_link_numbers_without_gaps_and_chains_hashes(void **state)
{
    tr_audit_record r1 = sample(), r2 = sample(), r3 = sample();
    static const uint8_t zeros[32];
    uint8_t garbage[32];

    memset(garbage, 0x5a, sizeof(garbage));
    /* The first record starts from zeros whatever "last hash" says. */
    assert_int_equal(tr_audit_chain_link(&r1, 0, garbage), 0);
    assert_int_equal(r1.seq, 1);
    assert_memory_equal(r1.prev_hash, zeros, 32);
    assert_int_equal(tr_audit_chain_link(&r2, r1.seq, r1.hash), 0);
    assert_int_equal(r2.seq, 2);
    assert_memory_equal(r2.prev_hash, r1.hash, 32);
    assert_int_equal(tr_audit_chain_link(&r3, r2.seq, r2.hash), 0);
    assert_int_equal(r3.seq, 3);
    assert_memory_equal(r3.prev_hash, r2.hash, 32);
    /* Same content, different position: different hashes. */
    assert_memory_not_equal(r2.hash, r3.hash, 32);

    assert_int_equal(tr_audit_chain_verify(&r1, 0, NULL), TR_CHAIN_OK);
    assert_int_equal(tr_audit_chain_verify(&r2, 1, r1.hash), TR_CHAIN_OK);
    assert_int_equal(tr_audit_chain_verify(&r3, 2, r2.hash), TR_CHAIN_OK);
}

static void
test_verify_names_edit_gap_and_reorder(void **state)
{
    tr_audit_record r1 = sample(), r2 = sample(), r3 = sample();
    tr_audit_record edited;

    tr_audit_chain_link(&r1, 0, NULL);
    tr_audit_chain_link(&r2, 1, r1.hash);
    tr_audit_chain_link(&r3, 2, r2.hash);

    edited = r2;
    edited.status = 500;
    assert_int_equal(tr_audit_chain_verify(&edited, 1, r1.hash),
                     TR_CHAIN_HASH_MISMATCH);
    /* r2 deleted: r3 follows r1. */
    assert_int_equal(tr_audit_chain_verify(&r3, 1, r1.hash),
                     TR_CHAIN_SEQ_GAP);
    /* r2 deleted and r3 renumbered to 2: its prev no longer matches. */
    edited = r3;
    edited.seq = 2;
    assert_int_equal(tr_audit_chain_verify(&edited, 1, r1.hash),
                     TR_CHAIN_PREV_MISMATCH);
}

static void
test_json_strings_encode_and_refuse_bad_utf8(void **state)
{
    const char *chain[] = { "agent:planner", "a\"b\n" };
    const char *bad[] = { "\xff\xfe" };
    char *s = tr_audit_json_strings(chain, 2);

    assert_non_null(s);
    assert_string_equal(s, "[\"agent:planner\",\"a\\\"b\\n\"]");
    free(s);
    s = tr_audit_json_strings(NULL, 0);
    assert_string_equal(s, "[]");
    free(s);
    assert_null(tr_audit_json_strings(bad, 1));
}

static void
test_hex_round_trips_and_refuses_junk(void **state)
{
    uint8_t in[4] = { 0x00, 0xab, 0x10, 0xff }, out[4];
    char hex[9];

    tr_audit_hex(in, 4, hex);
    assert_string_equal(hex, "00ab10ff");
    assert_true(tr_audit_unhex(hex, out, 4));
    assert_memory_equal(in, out, 4);
    assert_false(tr_audit_unhex("00ab10f", out, 4));
    assert_false(tr_audit_unhex("00ab10fg", out, 4));
    assert_false(tr_audit_unhex(NULL, out, 4));
}

static void
test_kind_and_decision_names_round_trip(void **state)
{
    for (int k = 0; k < TR_AUDIT_KIND__COUNT; k++)
        assert_int_equal(tr_audit_kind_parse(tr_audit_kind_name(k)), k);
    for (int d = TR_AUDIT_NONE; d <= TR_AUDIT_ERROR; d++)
        assert_int_equal(
            tr_audit_decision_parse(tr_audit_decision_name(d)), d);
    assert_int_equal(tr_audit_decision_parse("maybe"), -1);
}

static void
test_identity_fills_principal_actor_chain_and_token_prefix(void **state)
{
    tr_identity id;
    tr_audit_record r;
    char *chain = NULL, hash[TR_AUDIT_TOKEN_HASH_HEX];

    memset(&id, 0, sizeof(id));
    memset(&r, 0, sizeof(r));
    id.issuer_name = "corp";
    id.sub = "alice";
    id.actor = "agent:planner";
    id.chain[0] = "agent:planner";
    id.chain[1] = "agent:mailbot";
    id.chain_len = 2;
    id.client_id = "app";
    id.jti = "j1";
    for (int i = 0; i < 32; i++)
        id.token_hash[i] = (uint8_t)(0xa0 + i);
    assert_int_equal(tr_audit_set_identity(&r, &id, &chain, hash), 0);
    assert_string_equal(r.principal_issuer, "corp");
    assert_string_equal(r.principal_sub, "alice");
    assert_string_equal(r.actor, "agent:planner");
    assert_string_equal(r.delegation_chain,
                        "[\"agent:planner\",\"agent:mailbot\"]");
    assert_string_equal(r.client_id, "app");
    assert_string_equal(r.token_id, "j1");
    /* 16 bytes of the hash, never more: the token cannot be matched
     * against other systems' full hashes. */
    assert_string_equal(r.token_hash, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    assert_true(r.has_token_verified && r.token_verified);
    free(chain);

    id.chain_len = 0; /* a human request */
    id.actor = "alice";
    assert_int_equal(tr_audit_set_identity(&r, &id, &chain, hash), 0);
    assert_string_equal(r.delegation_chain, "[]");
    free(chain);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_starts_with_version_and_big_endian_seq),
        cmocka_unit_test(
            test_encoding_sizes_without_writing_when_cap_is_small),
        cmocka_unit_test(test_null_and_empty_string_encode_differently),
        cmocka_unit_test(test_moving_bytes_between_fields_changes_hash),
        cmocka_unit_test(test_chain_hash_is_sha256_of_prev_then_canonical),
        cmocka_unit_test(test_every_field_is_covered_by_the_hash),
        cmocka_unit_test(test_link_numbers_without_gaps_and_chains_hashes),
        cmocka_unit_test(test_verify_names_edit_gap_and_reorder),
        cmocka_unit_test(test_json_strings_encode_and_refuse_bad_utf8),
        cmocka_unit_test(test_hex_round_trips_and_refuses_junk),
        cmocka_unit_test(test_kind_and_decision_names_round_trip),
        cmocka_unit_test(
            test_identity_fills_principal_actor_chain_and_token_prefix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
