/*
 * Identity headers downstream: client copies recognised in every
 * spelling, and the values treaty sets for delegation.md #1 and #2.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/identity.h"
#include "core/propagation.h"
#include "core/sfv.h"

static bool
is_id(const tr_propagation_cfg *cfg, const char *name)
{
    return tr_prop_is_identity_header(cfg, name, strlen(name));
}

static void
identity_headers_are_recognised_in_every_spelling(void **state)
{
    tr_propagation_cfg defaults = { 0 };
    const char *spoofed[] = {
        "X-Principal", "x-principal", "X_Principal", "x_PRINCIPAL",
        "X-PRINCIPAL", "x-actor", "X_ACTOR", "X-Delegation-Chain",
        "x_delegation_chain", "X-DELEGATION_CHAIN", "X-Caller-Class",
        "x_caller_class", "Txn-Token", "txn_token", "TXN-TOKEN",
    };
    const char *other[] = {
        "X-Principals", "X-Princip", "Principal", "X-Forwarded-For",
        "X-Actor-Id", "Authorization", "X--Principal", "",
        "X-Principal ",
    };

    for (size_t i = 0; i < sizeof(spoofed) / sizeof(spoofed[0]); i++)
        assert_true(is_id(&defaults, spoofed[i]));
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        assert_false(is_id(&defaults, other[i]));
    assert_true(is_id(NULL, "x_principal"));
}

static void
renamed_headers_and_the_defaults_are_both_stripped(void **state)
{
    tr_propagation_cfg cfg = { .principal_header = "X-Auth-User",
                               .actor_header = "X_Auth_Agent" };

    assert_true(is_id(&cfg, "x-auth-user"));
    assert_true(is_id(&cfg, "X-AUTH-AGENT"));
    assert_true(is_id(&cfg, "X-Principal"));
    assert_string_equal(tr_prop_header_name(&cfg, TR_PROP_PRINCIPAL),
                        "X-Auth-User");
    assert_string_equal(tr_prop_header_name(&cfg, TR_PROP_CHAIN),
                        "X-Delegation-Chain");
    assert_string_equal(tr_prop_header_name(NULL, TR_PROP_CLASS),
                        "X-Caller-Class");
}

static char *auds[] = { "aud" };
static tr_issuer_cfg icfg = { .name = "corp", .issuer = "iss",
                              .audiences = { auds, 1 } };
static tr_identity_cfg idcfg = { .issuers = &icfg, .n_issuers = 1 };

static tr_identity *
ident(const char *json)
{
    json_t *p = json_loads(json, 0, NULL);
    uint8_t h[32] = { 0 };
    tr_identity *id;

    assert_non_null(p);
    assert_int_equal(tr_identity_derive(&idcfg, 0, p, h, 1, 0, &id),
                     TR_TOKEN_OK);
    json_decref(p);
    return id;
}

static const char *
value(const tr_identity *id, tr_prop_field f, char *buf, size_t cap)
{
    size_t len;

    assert_true(tr_prop_value_max(id, f) <= cap);
    assert_int_equal(tr_prop_format(id, f, buf, cap, &len), TR_SF_OK);
    assert_int_equal(len, strlen(buf));
    return buf;
}

static void
case1_headers(void **state)
{
    tr_identity *id = ident("{\"sub\":\"alice\",\"act\":{\"sub\":"
                            "\"agent:mailbot\"}}");
    char buf[256];

    assert_string_equal(value(id, TR_PROP_PRINCIPAL, buf, sizeof(buf)),
                        "\"alice\"");
    assert_string_equal(value(id, TR_PROP_ACTOR, buf, sizeof(buf)),
                        "\"agent:mailbot\"");
    assert_string_equal(value(id, TR_PROP_CHAIN, buf, sizeof(buf)),
                        "\"agent:mailbot\"");
    assert_string_equal(value(id, TR_PROP_CLASS, buf, sizeof(buf)),
                        "agent");
    tr_identity_unref(id);
}

static void
case2_chain_lists_current_actor_first(void **state)
{
    tr_identity *id = ident("{\"sub\":\"alice\",\"act\":{\"sub\":"
                            "\"agent:planner\",\"act\":{\"sub\":"
                            "\"agent:mailbot\"}}}");
    char buf[256];

    assert_string_equal(value(id, TR_PROP_ACTOR, buf, sizeof(buf)),
                        "\"agent:planner\"");
    assert_string_equal(value(id, TR_PROP_CHAIN, buf, sizeof(buf)),
                        "\"agent:planner\", \"agent:mailbot\"");
    tr_identity_unref(id);
}

static void
human_request_has_no_chain_header(void **state)
{
    tr_identity *id = ident("{\"sub\":\"bob \\\"the\\\" builder\"}");
    char buf[256];
    size_t len = 99;

    assert_int_equal(tr_prop_format(id, TR_PROP_CHAIN, buf, sizeof(buf),
                                     &len), TR_SF_OK);
    assert_int_equal(len, 0);
    assert_string_equal(value(id, TR_PROP_ACTOR, buf, sizeof(buf)),
                        "\"bob \\\"the\\\" builder\"");
    assert_string_equal(value(id, TR_PROP_CLASS, buf, sizeof(buf)),
                        "human");
    tr_identity_unref(id);
}

static void
unsafe_values_and_short_buffers_are_refused(void **state)
{
    tr_identity *id = ident("{\"sub\":\"alice\"}");
    char buf[256], *saved = id->sub, evil[] = "alice\r\nX-Principal: root";
    size_t len;

    assert_int_equal(tr_prop_format(id, TR_PROP_PRINCIPAL, buf, 4, &len),
                     TR_SF_NOSPACE);
    /* Second lock: even an identity built around the checks cannot put
     * CR LF into a header. */
    id->sub = evil;
    assert_int_equal(tr_prop_format(id, TR_PROP_PRINCIPAL, buf,
                                    sizeof(buf), &len), TR_SF_INVALID);
    id->sub = saved;
    tr_identity_unref(id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identity_headers_are_recognised_in_every_spelling),
        cmocka_unit_test(renamed_headers_and_the_defaults_are_both_stripped),
        cmocka_unit_test(case1_headers),
        cmocka_unit_test(case2_chain_lists_current_actor_first),
        cmocka_unit_test(human_request_has_no_chain_header),
        cmocka_unit_test(unsafe_values_and_short_buffers_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
