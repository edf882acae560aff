/*
 * Principal, actor, chain and class, exactly as SPEC.md "Terms" defines
 * them, including the delegation scenarios of cases/delegation.md.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/identity.h"

static char *auds[] = { "https://gw.example.com" };
static char *algs[] = { "ES256" };
static char *agents[] = { "mail-agent-client", "svc:indexer" };
static tr_issuer_cfg issuers[2];
static tr_identity_cfg cfg;
static const uint8_t hash[32] = { 1, 2, 3 };

static int
setup(void **state)
{
    memset(issuers, 0, sizeof(issuers));
    issuers[0].name = "corp";
    issuers[0].issuer = "https://idp.example.com/";
    issuers[0].audiences = (tr_strlist){ auds, 1 };
    issuers[0].algorithms = (tr_strlist){ algs, 1 };
    issuers[1] = issuers[0];
    issuers[1].name = "agents-idp";
    issuers[1].actor_profile = TR_ACTOR_PROFILE_CLIENT;
    memset(&cfg, 0, sizeof(cfg));
    cfg.issuers = issuers;
    cfg.n_issuers = 2;
    cfg.agent_clients = (tr_strlist){ agents, 2 };
    return 0;
}

static tr_token_status
derive_from(size_t issuer, const char *json, tr_identity **id)
{
    json_error_t je;
    json_t *p = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    tr_token_status st;

    assert_non_null(p);
    st = tr_identity_derive(&cfg, issuer, p, hash, 1700000300, 0, id);
    json_decref(p); /* the identity keeps its own reference */
    if (st != TR_TOKEN_OK)
        assert_null(*id);
    return st;
}

static tr_identity *
derive_ok(size_t issuer, const char *json)
{
    tr_identity *id = NULL;

    assert_int_equal(derive_from(issuer, json, &id), TR_TOKEN_OK);
    return id;
}

/* delegation.md #1: one act. */
static void
case1_single_act_makes_mailbot_the_actor(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"scope\":\"mail.read"
                                "\",\"act\":{\"sub\":\"agent:mailbot\"}}");

    assert_string_equal(id->sub, "alice");
    assert_string_equal(id->actor, "agent:mailbot");
    assert_int_equal(id->chain_len, 1);
    assert_string_equal(id->chain[0], "agent:mailbot");
    assert_int_equal(id->cls, TR_CLASS_AGENT);
    assert_string_equal(tr_caller_class_name(id->cls), "agent");
    assert_int_equal(id->n_scopes, 1);
    assert_string_equal(id->scopes[0], "mail.read");
    tr_identity_unref(id);
}

/* delegation.md #2: planner acting through mailbot; the outermost act
 * is the current actor. */
static void
case2_nested_act_makes_the_outermost_the_actor(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"act\":{\"sub\":"
                                "\"agent:planner\",\"act\":{\"sub\":"
                                "\"agent:mailbot\"}}}");

    assert_string_equal(id->actor, "agent:planner");
    assert_int_equal(id->chain_len, 2);
    assert_string_equal(id->chain[0], "agent:planner");
    assert_string_equal(id->chain[1], "agent:mailbot");
    assert_int_equal(id->cls, TR_CLASS_AGENT);
    tr_identity_unref(id);
}

/* delegation.md #3: three levels derive fine (policy refuses depth). */
static void
case3_three_levels_keep_the_whole_chain(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"act\":{\"sub\":"
                                "\"agent:planner\",\"act\":{\"sub\":"
                                "\"agent:router\",\"act\":{\"sub\":"
                                "\"agent:mailbot\"}}}}");

    assert_int_equal(id->chain_len, 3);
    assert_string_equal(id->chain[0], "agent:planner");
    assert_string_equal(id->chain[1], "agent:router");
    assert_string_equal(id->chain[2], "agent:mailbot");
    assert_string_equal(id->actor, "agent:planner");
    tr_identity_unref(id);
}

static void
no_act_and_no_listed_client_is_a_human(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"client_id\":"
                                "\"web-app\"}");

    assert_string_equal(id->actor, "alice");
    assert_ptr_equal(id->actor, id->sub);
    assert_int_equal(id->chain_len, 0);
    assert_int_equal(id->cls, TR_CLASS_HUMAN);
    assert_string_equal(id->client_id, "web-app");
    tr_identity_unref(id);
}

static void
listed_agent_client_is_the_actor(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"client_id\":"
                                "\"mail-agent-client\"}");

    assert_string_equal(id->actor, "mail-agent-client");
    assert_int_equal(id->chain_len, 1);
    assert_string_equal(id->chain[0], "mail-agent-client");
    assert_int_equal(id->cls, TR_CLASS_AGENT);
    tr_identity_unref(id);
}

static void
azp_stands_in_for_a_missing_client_id(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"azp\":"
                                "\"svc:indexer\"}");

    assert_string_equal(id->actor, "svc:indexer");
    assert_int_equal(id->cls, TR_CLASS_AGENT);
    tr_identity_unref(id);
    /* client_id wins over azp. */
    id = derive_ok(0, "{\"sub\":\"alice\",\"client_id\":\"web-app\","
                   "\"azp\":\"svc:indexer\"}");
    assert_int_equal(id->cls, TR_CLASS_HUMAN);
    assert_string_equal(id->client_id, "web-app");
    tr_identity_unref(id);
}

static void
act_wins_over_a_listed_client(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"client_id\":"
                                "\"mail-agent-client\",\"act\":{\"sub\":"
                                "\"agent:planner\"}}");

    assert_string_equal(id->actor, "agent:planner");
    assert_int_equal(id->chain_len, 1);
    tr_identity_unref(id);
}

static void
client_actor_profile_makes_any_client_the_actor(void **state)
{
    tr_identity *id = derive_ok(1, "{\"sub\":\"alice\",\"client_id\":"
                                "\"unlisted-bot\"}");

    assert_string_equal(id->actor, "unlisted-bot");
    assert_int_equal(id->cls, TR_CLASS_AGENT);
    assert_string_equal(id->issuer_name, "agents-idp");
    tr_identity_unref(id);
    /* ...and without a client it is still a human. */
    id = derive_ok(1, "{\"sub\":\"alice\"}");
    assert_int_equal(id->cls, TR_CLASS_HUMAN);
    tr_identity_unref(id);
}

static void
act_naming_the_subject_itself_is_human(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"act\":{\"sub\":"
                                "\"alice\"}}");

    assert_int_equal(id->cls, TR_CLASS_HUMAN);
    assert_int_equal(id->chain_len, 1);
    tr_identity_unref(id);
}

static void
claims_inside_act_are_not_validity_checks(void **state)
{
    /* An expired, foreign-issued act still names the actor. */
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"act\":{\"sub\":"
                                "\"agent:mailbot\",\"exp\":1,\"iss\":"
                                "\"https://elsewhere/\",\"aud\":\"x\"}}");

    assert_string_equal(id->actor, "agent:mailbot");
    tr_identity_unref(id);
}

static void
principal_key_is_issuer_name_nul_sub(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\"}");

    assert_int_equal(id->principal_key_len, strlen("corp") + 1 + 5);
    assert_memory_equal(id->principal_key, "corp\0alice", 10);
    assert_memory_equal(id->token_hash, hash, 32);
    assert_int_equal(id->exp, 1700000300);
    tr_identity_unref(id);
}

static void
scopes_come_from_scope_or_scp(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"a\",\"scope\":\" mail.read "
                                " mail.send\",\"scp\":[\"ignored\"]}");

    assert_int_equal(id->n_scopes, 2);
    assert_true(tr_identity_has_scope(id, "mail.send"));
    assert_false(tr_identity_has_scope(id, "ignored"));
    tr_identity_unref(id);
    id = derive_ok(0, "{\"sub\":\"a\",\"scp\":[\"x\",\"y.z\"]}");
    assert_int_equal(id->n_scopes, 2);
    assert_string_equal(id->scopes[1], "y.z");
    tr_identity_unref(id);
    id = derive_ok(0, "{\"sub\":\"a\",\"scp\":\"x y\"}");
    assert_int_equal(id->n_scopes, 2);
    tr_identity_unref(id);
    id = derive_ok(0, "{\"sub\":\"a\"}");
    assert_int_equal(id->n_scopes, 0);
    tr_identity_unref(id);
}

static void
bad_scopes_are_refused(void **state)
{
    const char *bad[] = {
        "{\"sub\":\"a\",\"scope\":42}",
        "{\"sub\":\"a\",\"scp\":[\"x\",1]}",
        "{\"sub\":\"a\",\"scope\":\"a\\\\b\"}",
        "{\"sub\":\"a\",\"scope\":\"a\\tb\"}",
        "{\"sub\":\"a\",\"scope\":\"caf\\u00e9\"}",
    };
    tr_identity *id;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(derive_from(0, bad[i], &id), TR_TOKEN_BAD_CLAIM);
}

static void
bad_act_and_bad_values_are_refused(void **state)
{
    tr_identity *id;

    assert_int_equal(derive_from(0, "{\"sub\":\"a\",\"act\":\"x\"}", &id),
                     TR_TOKEN_BAD_ACT);
    assert_int_equal(derive_from(0, "{\"sub\":\"a\",\"act\":{\"sub\":\"b\","
                                 "\"act\":[]}}", &id), TR_TOKEN_BAD_ACT);
    assert_int_equal(derive_from(0, "{\"sub\":\"a\",\"act\":{\"sub\":"
                                 "\"b\\r\\n\"}}", &id), TR_TOKEN_BAD_CLAIM);
    assert_int_equal(derive_from(0, "{\"sub\":\"\"}", &id),
                     TR_TOKEN_BAD_SUB);
    assert_int_equal(derive_from(0, "{\"sub\":\"a\\u0001\"}", &id),
                     TR_TOKEN_BAD_CLAIM);
    assert_int_equal(derive_from(0, "{\"sub\":\"a\",\"client_id\":"
                                 "\"c\\n\"}", &id), TR_TOKEN_BAD_CLAIM);
}

static void
identity_outlives_the_payload_and_counts_references(void **state)
{
    tr_identity *id = derive_ok(0, "{\"sub\":\"alice\",\"consent_id\":"
                                "\"c-1\"}");
    json_t *claims = id->claims;

    assert_ptr_equal(tr_identity_ref(id), id);
    assert_int_equal(id->refs, 2);
    tr_identity_unref(id);
    assert_int_equal(id->refs, 1);
    assert_string_equal(json_string_value(json_object_get(claims,
                                                          "consent_id")),
                        "c-1");
    tr_identity_unref(id);
    tr_identity_unref(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(case1_single_act_makes_mailbot_the_actor),
        cmocka_unit_test(case2_nested_act_makes_the_outermost_the_actor),
        cmocka_unit_test(case3_three_levels_keep_the_whole_chain),
        cmocka_unit_test(no_act_and_no_listed_client_is_a_human),
        cmocka_unit_test(listed_agent_client_is_the_actor),
        cmocka_unit_test(azp_stands_in_for_a_missing_client_id),
        cmocka_unit_test(act_wins_over_a_listed_client),
        cmocka_unit_test(client_actor_profile_makes_any_client_the_actor),
        cmocka_unit_test(act_naming_the_subject_itself_is_human),
        cmocka_unit_test(claims_inside_act_are_not_validity_checks),
        cmocka_unit_test(principal_key_is_issuer_name_nul_sub),
        cmocka_unit_test(scopes_come_from_scope_or_scp),
        cmocka_unit_test(bad_scopes_are_refused),
        cmocka_unit_test(bad_act_and_bad_values_are_refused),
        cmocka_unit_test(identity_outlives_the_payload_and_counts_references),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
