/*
 * The preconditions decision (src/core/precondition.c): route mode ×
 * caller class × method × the conditions sent, and the compare-and-swap
 * verdict for every current state (RFC 9110 §13.1.1, §13.1.2, §13.2.2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/precondition.h"

#define S(x) (x), strlen(x)

static tr_route_cfg
route(tr_precond_mode mode, tr_etags_mode etags, bool inm_on_create)
{
    tr_route_cfg r;
    memset(&r, 0, sizeof(r));
    r.preconditions = mode;
    r.etags = etags;
    r.require_if_none_match_on_create = inm_on_create;
    r.etag_body_cap = 1u << 20;
    r.mutating = TR_M_MUTATING_DEFAULT;
    return r;
}

/* A header as the gateway would collect it: NULL = absent. */
static tr_etag_list im, inm;

static tr_pre_action
decide(const tr_route_cfg *r, uint32_t method, bool agent,
       const char *if_match, const char *if_none_match)
{
    tr_etag_list_init(&im);
    tr_etag_list_init(&inm);
    if (if_match)
        tr_etag_list_add(&im, S(if_match));
    if (if_none_match)
        tr_etag_list_add(&inm, S(if_none_match));
    tr_pre_request q = {
        .method_bit = method,
        .mutating = (r->mutating & method) != 0,
        .agent = agent,
        .if_match = &im,
        .if_none_match = &inm,
    };
    return tr_precondition_decide(r, &q);
}

#define PT TR_ETAGS_PASSTHROUGH
#define SY TR_ETAGS_SYNTHESIZE

/* ------------------------------------------------------------ decide */

static void
off_passthrough_route_looks_at_nothing(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_OFF, PT, false);
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, NULL), TR_PRE_NONE);
    assert_int_equal(decide(&r, TR_M_PUT, true, "garbage", NULL),
                     TR_PRE_NONE);
    assert_int_equal(decide(&r, TR_M_PUT, true, "\"a\"", NULL), TR_PRE_NONE);
    assert_int_equal(decide(&r, TR_M_GET, true, NULL, NULL), TR_PRE_NONE);
}

static void
required_blind_write_is_missing_for_everyone(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED, PT, false);
    uint32_t writes[] = { TR_M_PUT, TR_M_PATCH, TR_M_DELETE, TR_M_PROPPATCH,
                          TR_M_MOVE, TR_M_COPY };
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        assert_int_equal(decide(&r, writes[i], true, NULL, NULL),
                         TR_PRE_MISSING);
        assert_int_equal(decide(&r, writes[i], false, NULL, NULL),
                         TR_PRE_MISSING);
    }
}

static void
required_for_agents_exempts_humans_only(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED_FOR_AGENTS, PT, false);
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, NULL), TR_PRE_MISSING);
    assert_int_equal(decide(&r, TR_M_PUT, false, NULL, NULL), TR_PRE_EXEMPT);
    /* A human's condition still reaches the backend. */
    assert_int_equal(decide(&r, TR_M_PUT, false, "\"a\"", NULL),
                     TR_PRE_PASS);
}

static void
if_match_or_inm_star_satisfies_presence(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED, PT, false);
    assert_int_equal(decide(&r, TR_M_PUT, true, "\"v1\"", NULL),
                     TR_PRE_PASS);
    assert_int_equal(decide(&r, TR_M_PUT, true, "*", NULL), TR_PRE_PASS);
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, "*"), TR_PRE_PASS);
    /* An empty If-Match is a (never matching) condition, not absence. */
    assert_int_equal(decide(&r, TR_M_DELETE, true, "", NULL), TR_PRE_PASS);
}

static void
if_none_match_with_tags_does_not_satisfy_presence(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED, PT, false);
    /* "not this old version" does not stop a lost update. */
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, "\"v1\""),
                     TR_PRE_MISSING);
}

static void
creates_exempt_unless_route_requires_inm_star(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED, PT, false);
    assert_int_equal(decide(&r, TR_M_POST, true, NULL, NULL), TR_PRE_EXEMPT);
    assert_int_equal(decide(&r, TR_M_MKCOL, true, NULL, NULL),
                     TR_PRE_EXEMPT);
    r = route(TR_PRECOND_REQUIRED, PT, true);
    assert_int_equal(decide(&r, TR_M_POST, true, NULL, NULL),
                     TR_PRE_MISSING_CREATE);
    assert_int_equal(decide(&r, TR_M_MKCALENDAR, true, NULL, NULL),
                     TR_PRE_MISSING_CREATE);
    assert_int_equal(decide(&r, TR_M_MKCALENDAR, true, NULL, "\"x\""),
                     TR_PRE_MISSING_CREATE);
    assert_int_equal(decide(&r, TR_M_MKCOL, true, NULL, "*"), TR_PRE_PASS);
    /* A PUT is an update unless it says otherwise. */
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, NULL),
                     TR_PRE_MISSING);
    /* Humans under required_for_agents stay exempt. */
    r = route(TR_PRECOND_REQUIRED_FOR_AGENTS, PT, true);
    assert_int_equal(decide(&r, TR_M_POST, false, NULL, NULL),
                     TR_PRE_EXEMPT);
}

static void
unparseable_condition_is_invalid_where_looked_at(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED_FOR_AGENTS, PT, false);
    assert_int_equal(decide(&r, TR_M_PUT, true, "v1", NULL),
                     TR_PRE_INVALID);
    /* Also for a human, who needs no condition: a broken one is not
     * silently dropped. */
    assert_int_equal(decide(&r, TR_M_PUT, false, NULL, "*, \"a\""),
                     TR_PRE_INVALID);
    r = route(TR_PRECOND_OFF, SY, false);
    assert_int_equal(decide(&r, TR_M_PATCH, false, "W/ \"a\"", NULL),
                     TR_PRE_INVALID);
}

static void
synthesize_turns_every_conditional_write_into_cas(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED_FOR_AGENTS, SY, false);
    assert_int_equal(decide(&r, TR_M_PUT, true, "\"v1\"", NULL),
                     TR_PRE_CAS);
    assert_int_equal(decide(&r, TR_M_PUT, false, "\"v1\"", NULL),
                     TR_PRE_CAS);
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, "*"), TR_PRE_CAS);
    assert_int_equal(decide(&r, TR_M_DELETE, true, "*", NULL), TR_PRE_CAS);
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, NULL),
                     TR_PRE_MISSING);
    assert_int_equal(decide(&r, TR_M_PUT, false, NULL, NULL),
                     TR_PRE_EXEMPT);
    /* preconditions: off still honours a condition the backend would
     * ignore; a blind write is left alone. */
    r = route(TR_PRECOND_OFF, SY, false);
    assert_int_equal(decide(&r, TR_M_PUT, true, "\"v1\"", NULL),
                     TR_PRE_CAS);
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, NULL), TR_PRE_NONE);
    /* A POST with only If-None-Match tags on an exempt create. */
    r = route(TR_PRECOND_REQUIRED, SY, false);
    assert_int_equal(decide(&r, TR_M_POST, true, NULL, "\"v1\""),
                     TR_PRE_CAS);
}

static void
synthesize_tags_get_responses_only(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_OFF, SY, false);
    assert_int_equal(decide(&r, TR_M_GET, true, NULL, NULL),
                     TR_PRE_SYNTH_READ);
    assert_int_equal(decide(&r, TR_M_HEAD, true, NULL, NULL), TR_PRE_NONE);
    assert_int_equal(decide(&r, TR_M_OPTIONS, true, NULL, NULL),
                     TR_PRE_NONE);
    r.etag_body_cap = 0;
    assert_int_equal(decide(&r, TR_M_GET, true, NULL, NULL), TR_PRE_NONE);
    r = route(TR_PRECOND_REQUIRED, PT, false);
    assert_int_equal(decide(&r, TR_M_GET, true, NULL, NULL), TR_PRE_NONE);
}

static void
route_mutating_set_decides_what_is_a_write(void **state)
{
    tr_route_cfg r = route(TR_PRECOND_REQUIRED, PT, false);
    r.mutating = TR_M_PUT;     /* DELETE declared harmless here */
    assert_int_equal(decide(&r, TR_M_DELETE, true, NULL, NULL),
                     TR_PRE_NONE);
    assert_int_equal(decide(&r, TR_M_PUT, true, NULL, NULL),
                     TR_PRE_MISSING);
}

/* ------------------------------------------------------------ reread */

static void
reread_status_classes(void **state)
{
    assert_int_equal(tr_precondition_reread_class(200), TR_REREAD_PRESENT);
    assert_int_equal(tr_precondition_reread_class(204), TR_REREAD_PRESENT);
    assert_int_equal(tr_precondition_reread_class(404), TR_REREAD_ABSENT);
    assert_int_equal(tr_precondition_reread_class(410), TR_REREAD_ABSENT);
    assert_int_equal(tr_precondition_reread_class(301), TR_REREAD_REFUSED);
    assert_int_equal(tr_precondition_reread_class(401), TR_REREAD_REFUSED);
    assert_int_equal(tr_precondition_reread_class(403), TR_REREAD_REFUSED);
    assert_int_equal(tr_precondition_reread_class(500), TR_REREAD_ERROR);
    assert_int_equal(tr_precondition_reread_class(503), TR_REREAD_ERROR);
    assert_int_equal(tr_precondition_reread_class(0), TR_REREAD_ERROR);
}

/* --------------------------------------------------------------- cas */

static tr_cas_verdict
cas(const char *if_match, const char *if_none_match, tr_current_state st,
    const char *current)
{
    tr_etag cur = { 0 };
    tr_etag_list_init(&im);
    tr_etag_list_init(&inm);
    if (if_match)
        tr_etag_list_add(&im, S(if_match));
    if (if_none_match)
        tr_etag_list_add(&inm, S(if_none_match));
    if (current)
        assert_true(tr_etag_parse(S(current), &cur));
    return tr_precondition_cas(&im, &inm, st, current ? &cur : NULL);
}

#define P TR_CUR_PRESENT
#define A TR_CUR_ABSENT
#define N TR_CUR_PRESENT_NO_ETAG
#define OK TR_CAS_FORWARD
#define NO TR_CAS_FAILED

static void
cas_if_match_strong_comparison(void **state)
{
    assert_int_equal(cas("\"v2\"", NULL, P, "\"v2\""), OK);
    assert_int_equal(cas("\"v1\", \"v2\"", NULL, P, "\"v2\""), OK);
    assert_int_equal(cas("\"v1\"", NULL, P, "\"v2\""), NO);
    /* Weak tags never pass If-Match. */
    assert_int_equal(cas("W/\"v2\"", NULL, P, "\"v2\""), NO);
    assert_int_equal(cas("", NULL, P, "\"v2\""), NO);
}

static void
cas_if_match_needs_a_current_representation(void **state)
{
    assert_int_equal(cas("\"v1\"", NULL, A, NULL), NO);
    assert_int_equal(cas("*", NULL, A, NULL), NO);
    assert_int_equal(cas("*", NULL, P, "\"v9\""), OK);
    /* Too large to tag: only "*" can be checked. */
    assert_int_equal(cas("*", NULL, N, NULL), OK);
    assert_int_equal(cas("\"v1\"", NULL, N, NULL), NO);
}

static void
cas_if_none_match_star_is_create_only(void **state)
{
    assert_int_equal(cas(NULL, "*", A, NULL), OK);
    assert_int_equal(cas(NULL, "*", P, "\"v1\""), NO);
    assert_int_equal(cas(NULL, "*", N, NULL), NO);
}

static void
cas_if_none_match_tags_weak_comparison(void **state)
{
    assert_int_equal(cas(NULL, "W/\"v1\"", P, "\"v1\""), NO);
    assert_int_equal(cas(NULL, "\"v1\"", P, "\"v2\""), OK);
    assert_int_equal(cas(NULL, "\"v1\"", A, NULL), OK);
    assert_int_equal(cas(NULL, "\"v1\"", N, NULL), OK);
}

static void
cas_both_conditions_must_hold(void **state)
{
    assert_int_equal(cas("\"v1\"", "\"v1\"", P, "\"v1\""), NO);
    assert_int_equal(cas("\"v1\"", "\"v0\"", P, "\"v1\""), OK);
    assert_int_equal(cas("\"v0\"", "\"v0\"", P, "\"v1\""), NO);
}

static void
cas_invalid_list_never_forwards(void **state)
{
    assert_int_equal(cas("nope", NULL, P, "\"v1\""), NO);
    assert_int_equal(cas(NULL, "*, \"x\"", A, NULL), NO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(off_passthrough_route_looks_at_nothing),
        cmocka_unit_test(required_blind_write_is_missing_for_everyone),
        cmocka_unit_test(required_for_agents_exempts_humans_only),
        cmocka_unit_test(if_match_or_inm_star_satisfies_presence),
        cmocka_unit_test(if_none_match_with_tags_does_not_satisfy_presence),
        cmocka_unit_test(creates_exempt_unless_route_requires_inm_star),
        cmocka_unit_test(unparseable_condition_is_invalid_where_looked_at),
        cmocka_unit_test(synthesize_turns_every_conditional_write_into_cas),
        cmocka_unit_test(synthesize_tags_get_responses_only),
        cmocka_unit_test(route_mutating_set_decides_what_is_a_write),
        cmocka_unit_test(reread_status_classes),
        cmocka_unit_test(cas_if_match_strong_comparison),
        cmocka_unit_test(cas_if_match_needs_a_current_representation),
        cmocka_unit_test(cas_if_none_match_star_is_create_only),
        cmocka_unit_test(cas_if_none_match_tags_weak_comparison),
        cmocka_unit_test(cas_both_conditions_must_hold),
        cmocka_unit_test(cas_invalid_list_never_forwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
