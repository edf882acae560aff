/* Audit records as OCSF API Activity events (pure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/audit_ocsf.h"

static tr_audit_record
agent_post(void)
{
    tr_audit_record r;

    memset(&r, 0, sizeof(r));
    r.seq = 42;
    r.kind = TR_AUDIT_DECISION;
    r.time_ms = 1700000000123;
    r.request_id = "req-42";
    r.client_addr = "192.0.2.7";
    r.principal_issuer = "corp";
    r.principal_sub = "alice";
    r.actor = "agent:planner";
    r.delegation_chain =
        "[\"agent:planner\",\"agent:mailbot\",\"agent:smtp\"]";
    r.client_id = "planner-app";
    r.has_token_verified = true;
    r.token_verified = true;
    r.route = "mail-send";
    r.tool = "send_email";
    r.method = "POST";
    r.path = "/users/alice/mail/send";
    r.decision = TR_AUDIT_ALLOW;
    r.policy_rule = "mail-send";
    r.has_status = true;
    r.status = 201;
    r.has_latency = true;
    r.latency_us = 40500;
    r.has_bytes = true;
    r.bytes = 77;
    return r;
}

/* The value at a dotted path, or NULL. */
static json_t *
at(json_t *o, const char *path)
{
    char buf[128], *save = NULL, *part;

    snprintf(buf, sizeof(buf), "%s", path);
    for (part = strtok_r(buf, ".", &save); part && o;
         part = strtok_r(NULL, ".", &save))
        o = json_object_get(o, part);
    return o;
}

static json_int_t
num(json_t *o, const char *path)
{
    json_t *v = at(o, path);

    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static const char *
str(json_t *o, const char *path)
{
    json_t *v = at(o, path);

    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void
test_activity_follows_the_method(void **state)
{
    assert_int_equal(tr_audit_ocsf_activity("POST"), 1);
    assert_int_equal(tr_audit_ocsf_activity("MKCOL"), 1);
    assert_int_equal(tr_audit_ocsf_activity("GET"), 2);
    assert_int_equal(tr_audit_ocsf_activity("HEAD"), 2);
    assert_int_equal(tr_audit_ocsf_activity("PROPFIND"), 2);
    assert_int_equal(tr_audit_ocsf_activity("PUT"), 3);
    assert_int_equal(tr_audit_ocsf_activity("PATCH"), 3);
    assert_int_equal(tr_audit_ocsf_activity("DELETE"), 4);
    assert_int_equal(tr_audit_ocsf_activity("MOVE"), 99);
    assert_int_equal(tr_audit_ocsf_activity("OPTIONS"), 99);
    assert_int_equal(tr_audit_ocsf_activity(NULL), 0);
}

static void
test_event_carries_the_api_activity_fields(void **state)
{
    tr_audit_record r = agent_post();
    json_t *e = tr_audit_ocsf_event(&r, 43);

    assert_non_null(e);
    assert_int_equal(num(e, "class_uid"), 6003);
    assert_int_equal(num(e, "category_uid"), 6);
    assert_int_equal(num(e, "activity_id"), 1);
    assert_int_equal(num(e, "type_uid"), 600301);
    assert_int_equal(num(e, "time"), 1700000000123);
    assert_int_equal(num(e, "severity_id"), 1);
    assert_int_equal(num(e, "status_id"), 1);
    assert_string_equal(str(e, "status"), "Success");
    assert_int_equal(num(e, "duration"), 40);
    assert_string_equal(str(e, "metadata.version"), TR_AUDIT_OCSF_VERSION);
    assert_string_equal(str(e, "metadata.product.name"), "treaty");
    assert_string_equal(str(e, "metadata.product.vendor_name"), "treaty");
    assert_string_equal(str(e, "metadata.product.version"),
                        TR_AUDIT_PRODUCT_VERSION);
    assert_string_equal(str(e, "metadata.uid"), "42");
    assert_string_equal(str(e, "actor.user.uid"), "alice");
    assert_string_equal(str(e, "actor.user.name"), "alice");
    assert_string_equal(str(e, "actor.user.domain"), "corp");
    assert_string_equal(str(e, "actor.idp.name"), "corp");
    assert_string_equal(str(e, "actor.app_name"), "agent:planner");
    assert_string_equal(str(e, "actor.app_uid"), "planner-app");
    assert_string_equal(str(e, "api.operation"), "mail-send");
    assert_string_equal(str(e, "api.request.uid"), "req-42");
    assert_int_equal(num(e, "api.response.code"), 201);
    assert_string_equal(str(e, "src_endpoint.ip"), "192.0.2.7");
    assert_string_equal(str(e, "http_request.http_method"), "POST");
    assert_string_equal(str(e, "http_request.url.path"),
                        "/users/alice/mail/send");
    assert_int_equal(num(e, "http_response.code"), 201);
    assert_int_equal(num(e, "http_response.length"), 77);
    assert_int_equal(num(e, "unmapped.completed_by_seq"), 43);
    assert_string_equal(str(e, "unmapped.caller_class"), "agent");
    json_decref(e);
}

static void
test_three_level_chain_keeps_its_order(void **state)
{
    tr_audit_record r = agent_post();
    json_t *e = tr_audit_ocsf_event(&r, 0);
    json_t *chain = at(e, "unmapped.delegation_chain");
    json_t *auth = json_array_get(at(e, "actor.authorizations"), 0);

    assert_true(json_is_array(chain));
    assert_int_equal(json_array_size(chain), 3);
    assert_string_equal(json_string_value(json_array_get(chain, 0)),
                        "agent:planner");
    assert_string_equal(json_string_value(json_array_get(chain, 1)),
                        "agent:mailbot");
    assert_string_equal(json_string_value(json_array_get(chain, 2)),
                        "agent:smtp");
    assert_string_equal(str(auth, "decision"), "allow");
    assert_string_equal(str(auth, "policy.name"), "mail-send");
    assert_null(at(e, "unmapped.completed_by_seq"));
    json_decref(e);
}

static void
test_denied_request_is_a_failure_with_its_reason(void **state)
{
    tr_audit_record r = agent_post();
    json_t *e;

    r.kind = TR_AUDIT_REQUEST;
    r.decision = TR_AUDIT_DENY;
    r.reason = "actor_not_allowed";
    r.status = 403;
    r.method = "DELETE";
    e = tr_audit_ocsf_event(&r, 0);
    assert_int_equal(num(e, "activity_id"), 4);
    assert_int_equal(num(e, "type_uid"), 600304);
    assert_int_equal(num(e, "status_id"), 2);
    assert_int_equal(num(e, "severity_id"), 2);
    assert_string_equal(str(e, "status_detail"), "actor_not_allowed");
    assert_string_equal(str(e, "api.response.error"), "actor_not_allowed");
    assert_string_equal(str(e, "status_code"), "403");
    json_decref(e);
}

static void
test_pending_decision_has_unknown_status(void **state)
{
    tr_audit_record r = agent_post();
    json_t *e;

    r.has_status = r.has_latency = r.has_bytes = false;
    e = tr_audit_ocsf_event(&r, 0);
    assert_int_equal(num(e, "status_id"), 0);
    assert_null(at(e, "http_response"));
    json_decref(e);
}

static void
test_human_request_has_no_agent(void **state)
{
    tr_audit_record r = agent_post();
    json_t *e;

    r.actor = "alice";
    r.delegation_chain = "[]";
    r.client_id = NULL;
    e = tr_audit_ocsf_event(&r, 0);
    assert_null(at(e, "actor.app_name"));
    assert_string_equal(str(e, "unmapped.caller_class"), "human");
    assert_int_equal(json_array_size(at(e, "unmapped.delegation_chain")),
                     0);
    json_decref(e);
}

static void
test_refused_token_aggregate_counts_and_names_nobody(void **state)
{
    tr_audit_record r;
    json_t *e;

    memset(&r, 0, sizeof(r));
    r.seq = 7;
    r.kind = TR_AUDIT_REFUSED_TOKENS;
    r.time_ms = 1700000000000;
    r.client_addr = "198.51.100.9";
    r.reason = "bad_signature";
    r.decision = TR_AUDIT_DENY;
    r.has_count = true;
    r.count = 250;
    e = tr_audit_ocsf_event(&r, 0);
    assert_int_equal(num(e, "count"), 250);
    assert_int_equal(num(e, "activity_id"), 0);
    assert_int_equal(num(e, "status_id"), 2);
    assert_string_equal(str(e, "actor.user.name"), "unauthenticated");
    assert_string_equal(str(e, "api.operation"), "refused_token");
    assert_string_equal(str(e, "src_endpoint.ip"), "198.51.100.9");
    json_decref(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activity_follows_the_method),
        cmocka_unit_test(test_event_carries_the_api_activity_fields),
        cmocka_unit_test(test_three_level_chain_keeps_its_order),
        cmocka_unit_test(test_denied_request_is_a_failure_with_its_reason),
        cmocka_unit_test(test_pending_decision_has_unknown_status),
        cmocka_unit_test(test_human_request_has_no_agent),
        cmocka_unit_test(
            test_refused_token_aggregate_counts_and_names_nobody),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
