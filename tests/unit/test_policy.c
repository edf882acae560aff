/*
 * Route policy and actor globs (src/core/policy.c, src/core/glob.c).
 * Every rule alone, the pairs whose order decides the answer, the public
 * delegation cases 1-6 (../shared/cases/delegation.md) as data, shadow
 * mode, and glob edge cases including hostile patterns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/glob.h"
#include "core/policy.h"

/* ---- fixtures ---------------------------------------------------------- */

/* An identity built from literals: chain is current actor first, NULL
 * terminated; scopes space separated; claims a JSON object text. */
typedef struct {
    tr_identity id;
    char *scopes[16];
    char scope_buf[256];
    json_t *claims;
} fixture_id;

static void
make_id(fixture_id *f, const char *sub, const char *const *chain,
        const char *scopes, const char *claims_json)
{
    memset(f, 0, sizeof *f);
    f->id.sub = (char *)sub;
    f->id.issuer_name = "corp";
    for (size_t i = 0; chain != NULL && chain[i] != NULL; i++)
        f->id.chain[f->id.chain_len++] = (char *)chain[i];
    f->id.cls = f->id.chain_len > 0 ? TR_CLASS_AGENT : TR_CLASS_HUMAN;
    f->id.actor = f->id.chain_len > 0 ? f->id.chain[0] : (char *)sub;

    snprintf(f->scope_buf, sizeof f->scope_buf, "%s", scopes ? scopes : "");
    for (char *save = NULL,
              *t = strtok_r(f->scope_buf, " ", &save);
         t != NULL && f->id.n_scopes < 16; t = strtok_r(NULL, " ", &save))
        f->scopes[f->id.n_scopes++] = t;
    f->id.scopes = f->scopes;

    if (claims_json != NULL) {
        f->claims = json_loads(claims_json, 0, NULL);
        assert_non_null(f->claims);
        f->id.claims = f->claims;
    }
}

static void
drop_id(fixture_id *f)
{
    json_decref(f->claims);
}

/* A policy from literals; lists are NULL terminated. */
typedef struct {
    tr_policy_cfg p;
    char *actors[8];
    char *scopes[8];
} fixture_pol;

static void
make_pol(fixture_pol *f, const char *const *actors,
         const char *const *scopes, int depth, const char *owner,
         const char *consent, bool humans)
{
    memset(f, 0, sizeof *f);
    f->p.present = true;
    for (size_t i = 0; actors != NULL && actors[i] != NULL; i++)
        f->actors[f->p.actors.n++] = (char *)actors[i];
    f->p.actors.items = f->actors;
    for (size_t i = 0; scopes != NULL && scopes[i] != NULL; i++)
        f->scopes[f->p.scopes.n++] = (char *)scopes[i];
    f->p.scopes.items = f->scopes;
    f->p.max_delegation_depth = depth;
    f->p.owner_param = (char *)owner;
    f->p.consent_claim = (char *)consent;
    f->p.humans = humans;
}

static tr_route_param
param(const char *name, const char *value)
{
    tr_route_param p = { name, strlen(name), value, strlen(value) };
    return p;
}

#define CHAIN(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define LIST(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const char *const NO_LIST[] = { NULL };

/* The example policy of delegation.md, route mail-read and mail-send. */
static void
mail_read(fixture_pol *f)
{
    make_pol(f, LIST("agent:mailbot", "agent:planner"), LIST("mail.read"),
             2, "user", NULL, true);
}

static void
mail_send(fixture_pol *f)
{
    make_pol(f, LIST("agent:mailbot"), LIST("mail.send"), 1, "user",
             "consent_id", true);
}

static tr_policy_result
eval(const fixture_pol *pol, const fixture_id *id, const char *user)
{
    tr_policy_result r;
    tr_route_param p = param("user", user ? user : "");

    tr_policy_eval(&pol->p, id ? &id->id : NULL, user ? &p : NULL,
                   user ? 1 : 0, &r);
    return r;
}

static void
assert_allowed(const tr_policy_result *r)
{
    assert_false(r->deny);
    assert_false(r->enforce);
    assert_int_equal(r->rule, TR_PRULE_NONE);
    assert_int_equal(r->reason, TR_PREASON_ALLOWED);
}

static void
assert_denied(const tr_policy_result *r, tr_policy_rule rule,
              tr_policy_reason reason, tr_problem_kind problem)
{
    assert_true(r->deny);
    assert_true(r->enforce);
    assert_string_equal(tr_policy_rule_name(r->rule),
                        tr_policy_rule_name(rule));
    assert_string_equal(tr_policy_reason_name(r->reason),
                        tr_policy_reason_name(reason));
    assert_int_equal(r->problem, problem);
}

/* ---- glob --------------------------------------------------------------- */

static void
glob_literal_matches_only_itself(void **state)
{
    assert_true(tr_glob_match_cstr("agent:mailbot", "agent:mailbot"));
    assert_false(tr_glob_match_cstr("agent:mailbot", "agent:mailbot2"));
    assert_false(tr_glob_match_cstr("agent:mailbot", "agent:mailbo"));
    assert_false(tr_glob_match_cstr("agent:mailbot", "Agent:mailbot"));
    assert_true(tr_glob_match_cstr("", ""));
    assert_false(tr_glob_match_cstr("", "a"));
    assert_false(tr_glob_match_cstr("a", ""));
}

static void
glob_star_matches_any_run_including_empty(void **state)
{
    assert_true(tr_glob_match_cstr("*", ""));
    assert_true(tr_glob_match_cstr("*", "anything at all"));
    assert_true(tr_glob_match_cstr("agent:*", "agent:"));
    assert_true(tr_glob_match_cstr("agent:*", "agent:mailbot"));
    assert_false(tr_glob_match_cstr("agent:*", "agent"));
    assert_false(tr_glob_match_cstr("agent:*", "human:alice"));
    assert_true(tr_glob_match_cstr("*bot", "agent:mailbot"));
    assert_false(tr_glob_match_cstr("*bot", "agent:mailbots"));
    assert_true(tr_glob_match_cstr("a*b*c", "abc"));
    assert_true(tr_glob_match_cstr("a*b*c", "axxbyyc"));
    assert_false(tr_glob_match_cstr("a*b*c", "axxbyy"));
    assert_true(tr_glob_match_cstr("**", "x"));
    assert_true(tr_glob_match_cstr("a**b", "ab"));
    /* the star must retry after a partial literal match */
    assert_true(tr_glob_match_cstr("*aab", "aaab"));
    assert_true(tr_glob_match_cstr("agent:*:prod", "agent:x:y:prod"));
    /* '/' is not special */
    assert_true(tr_glob_match_cstr("spiffe://*", "spiffe://td/ns/a"));
}

static void
glob_question_matches_exactly_one_byte(void **state)
{
    assert_true(tr_glob_match_cstr("bot?", "bot1"));
    assert_false(tr_glob_match_cstr("bot?", "bot"));
    assert_false(tr_glob_match_cstr("bot?", "bot12"));
    assert_true(tr_glob_match_cstr("??", "ab"));
    assert_true(tr_glob_match_cstr("?*", "a"));
    assert_false(tr_glob_match_cstr("?*", ""));
    /* byte oriented: a two-byte UTF-8 character needs two '?' */
    assert_false(tr_glob_match_cstr("?", "\xc3\xa9"));
    assert_true(tr_glob_match_cstr("??", "\xc3\xa9"));
}

static void
glob_backslash_escapes_metacharacters(void **state)
{
    assert_true(tr_glob_match_cstr("a\\*", "a*"));
    assert_false(tr_glob_match_cstr("a\\*", "ab"));
    assert_true(tr_glob_match_cstr("a\\?", "a?"));
    assert_false(tr_glob_match_cstr("a\\?", "ax"));
    assert_true(tr_glob_match_cstr("a\\\\b", "a\\b"));
    /* a trailing lone backslash is a literal backslash */
    assert_true(tr_glob_match_cstr("a\\", "a\\"));
    assert_false(tr_glob_match_cstr("a\\", "a"));
}

static void
glob_embedded_nul_is_an_ordinary_byte(void **state)
{
    assert_true(tr_glob_match("a*", 2, "a\0b", 3));
    assert_false(tr_glob_match("a", 1, "a\0", 2));
}

static void
glob_hostile_patterns_stay_linear_in_practice(void **state)
{
    /* With exponential backtracking, 20 stars over 10k bytes would not
     * finish in our lifetime; a bounded matcher does it in milliseconds.
     * CPU time, not wall time, so a busy machine does not fail it. */
    static char subject[10001];
    char pat[64];
    size_t n = 0;
    clock_t t0;
    double cpu;

    memset(subject, 'a', sizeof subject - 1);
    for (int i = 0; i < 20; i++) {
        pat[n++] = 'a';
        pat[n++] = '*';
    }
    pat[n++] = 'b';
    pat[n] = '\0';

    t0 = clock();
    for (int i = 0; i < 50; i++) {
        assert_false(tr_glob_match_cstr(pat, subject));
        assert_false(tr_glob_match_cstr("a*a*a*a*a*b", subject));
        assert_false(tr_glob_match_cstr("*?*?*?*?*?*b", subject));
    }
    subject[sizeof subject - 2] = 'b';
    assert_true(tr_glob_match_cstr(pat, subject));
    cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_true(cpu < 5.0);
}

/* ---- rules alone -------------------------------------------------------- */

static void
route_without_policy_allows_everyone(void **state)
{
    fixture_pol pol;
    fixture_id shop;
    tr_policy_result r;

    memset(&pol, 0, sizeof pol);
    pol.p.max_delegation_depth = -1;
    make_id(&shop, "alice", CHAIN("agent:shopbot"), "", NULL);
    r = eval(&pol, &shop, "bob");
    assert_false(r.deny);
    assert_int_equal(r.reason, TR_PREASON_NO_POLICY);
    assert_string_equal(tr_policy_reason_name(r.reason), "no_policy");
    r = eval(&pol, NULL, NULL);
    assert_false(r.deny);
    drop_id(&shop);
}

static void
anonymous_request_on_policy_route_is_missing_token(void **state)
{
    fixture_pol pol;
    tr_policy_result r;
    char h[64];

    make_pol(&pol, NO_LIST, NO_LIST, -1, NULL, NULL, true);
    r = eval(&pol, NULL, NULL);
    assert_denied(&r, TR_PRULE_AUTHENTICATION, TR_PREASON_MISSING_TOKEN,
                  TR_P_TOKEN_MISSING);
    assert_int_equal(tr_policy_www_authenticate(&r, h, sizeof h), 6);
    assert_string_equal(h, "Bearer");
}

static void
humans_false_refuses_a_human_and_admits_an_agent(void **state)
{
    fixture_pol pol;
    fixture_id human, agent;
    tr_policy_result r;

    make_pol(&pol, LIST("agent:*"), NO_LIST, -1, NULL, NULL, false);
    make_id(&human, "alice", NULL, "", NULL);
    make_id(&agent, "alice", CHAIN("agent:mailbot"), "", NULL);
    r = eval(&pol, &human, NULL);
    assert_denied(&r, TR_PRULE_HUMANS, TR_PREASON_HUMANS_NOT_ALLOWED,
                  TR_P_HUMANS_NOT_ALLOWED);
    r = eval(&pol, &agent, NULL);
    assert_allowed(&r);
    drop_id(&human);
    drop_id(&agent);
}

static void
humans_true_admits_a_human_whatever_the_actor_list(void **state)
{
    fixture_pol pol;
    fixture_id human;
    tr_policy_result r;

    /* a human's actor is the principal: the actor list is about agents */
    make_pol(&pol, LIST("agent:mailbot"), NO_LIST, 0, NULL, NULL, true);
    make_id(&human, "alice", NULL, "", NULL);
    r = eval(&pol, &human, NULL);
    assert_allowed(&r);
    assert_int_equal(r.depth, 0);
    make_pol(&pol, NO_LIST, NO_LIST, -1, NULL, NULL, true);
    r = eval(&pol, &human, NULL);
    assert_allowed(&r);
    drop_id(&human);
}

static void
agent_on_policy_without_actors_is_denied_by_default(void **state)
{
    fixture_pol pol;
    fixture_id agent;
    tr_policy_result r;

    make_pol(&pol, NO_LIST, LIST("mail.read"), -1, NULL, NULL, true);
    make_id(&agent, "alice", CHAIN("agent:mailbot"), "mail.read", NULL);
    r = eval(&pol, &agent, NULL);
    assert_denied(&r, TR_PRULE_ACTORS, TR_PREASON_NO_ACTOR_RULE,
                  TR_P_POLICY_DENIED);
    drop_id(&agent);
}

static void
actor_must_match_one_glob(void **state)
{
    fixture_pol pol;
    fixture_id a, b, c;
    tr_policy_result r;

    make_pol(&pol, LIST("agent:mail*", "svc:reporter"), NO_LIST, -1, NULL,
             NULL, true);
    make_id(&a, "alice", CHAIN("agent:mailbot"), "", NULL);
    make_id(&b, "alice", CHAIN("svc:reporter"), "", NULL);
    make_id(&c, "alice", CHAIN("agent:shopbot"), "", NULL);
    r = eval(&pol, &a, NULL);
    assert_allowed(&r);
    r = eval(&pol, &b, NULL);
    assert_allowed(&r);
    r = eval(&pol, &c, NULL);
    assert_denied(&r, TR_PRULE_ACTORS, TR_PREASON_ACTOR_NOT_ALLOWED,
                  TR_P_ACTOR_NOT_ALLOWED);
    drop_id(&a);
    drop_id(&b);
    drop_id(&c);
}

static void
only_the_current_actor_counts(void **state)
{
    fixture_pol pol;
    fixture_id inner_ok, outer_ok;
    tr_policy_result r;

    make_pol(&pol, LIST("agent:planner"), NO_LIST, -1, NULL, NULL, true);
    /* allowlisted actor deeper in the chain does not help */
    make_id(&inner_ok, "alice", CHAIN("agent:shopbot", "agent:planner"), "",
            NULL);
    r = eval(&pol, &inner_ok, NULL);
    assert_denied(&r, TR_PRULE_ACTORS, TR_PREASON_ACTOR_NOT_ALLOWED,
                  TR_P_ACTOR_NOT_ALLOWED);
    /* an unlisted inner actor does not hurt */
    make_id(&outer_ok, "alice", CHAIN("agent:planner", "agent:shopbot"), "",
            NULL);
    r = eval(&pol, &outer_ok, NULL);
    assert_allowed(&r);
    drop_id(&inner_ok);
    drop_id(&outer_ok);
}

static void
depth_limit_is_inclusive_and_off_by_default(void **state)
{
    fixture_pol pol;
    fixture_id d3;
    tr_policy_result r;

    make_id(&d3, "alice", CHAIN("agent:a", "agent:b", "agent:c"), "", NULL);
    make_pol(&pol, LIST("agent:*"), NO_LIST, -1, NULL, NULL, true);
    r = eval(&pol, &d3, NULL);
    assert_allowed(&r);
    assert_int_equal(r.depth, 3);
    make_pol(&pol, LIST("agent:*"), NO_LIST, 3, NULL, NULL, true);
    r = eval(&pol, &d3, NULL);
    assert_allowed(&r);
    make_pol(&pol, LIST("agent:*"), NO_LIST, 2, NULL, NULL, true);
    r = eval(&pol, &d3, NULL);
    assert_denied(&r, TR_PRULE_MAX_DEPTH, TR_PREASON_DEPTH_EXCEEDED,
                  TR_P_DELEGATION_DEPTH);
    assert_int_equal(r.depth, 3);
    drop_id(&d3);
}

static void
depth_zero_refuses_every_agent(void **state)
{
    fixture_pol pol;
    fixture_id agent, human;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), NO_LIST, 0, NULL, NULL, true);
    make_id(&agent, "alice", CHAIN("agent:a"), "", NULL);
    make_id(&human, "alice", NULL, "", NULL);
    r = eval(&pol, &agent, NULL);
    assert_denied(&r, TR_PRULE_MAX_DEPTH, TR_PREASON_DEPTH_EXCEEDED,
                  TR_P_DELEGATION_DEPTH);
    r = eval(&pol, &human, NULL);
    assert_allowed(&r);
    drop_id(&agent);
    drop_id(&human);
}

static void
client_as_actor_without_chain_counts_as_depth_one(void **state)
{
    fixture_pol pol;
    fixture_id agent;
    tr_policy_result r;

    make_id(&agent, "alice", NULL, "", NULL);
    agent.id.cls = TR_CLASS_AGENT;
    agent.id.actor = "client:reporter";
    make_pol(&pol, LIST("client:*"), NO_LIST, 1, NULL, NULL, true);
    r = eval(&pol, &agent, NULL);
    assert_allowed(&r);
    assert_int_equal(r.depth, 1);
    make_pol(&pol, LIST("client:*"), NO_LIST, 0, NULL, NULL, true);
    r = eval(&pol, &agent, NULL);
    assert_denied(&r, TR_PRULE_MAX_DEPTH, TR_PREASON_DEPTH_EXCEEDED,
                  TR_P_DELEGATION_DEPTH);
    drop_id(&agent);
}

static void
every_required_scope_must_be_present(void **state)
{
    fixture_pol pol;
    fixture_id both, one, none;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), LIST("mail.read", "mail.send"), -1, NULL,
             NULL, true);
    make_id(&both, "alice", CHAIN("agent:a"), "mail.send profile mail.read",
            NULL);
    make_id(&one, "alice", CHAIN("agent:a"), "mail.read", NULL);
    make_id(&none, "alice", NULL, "", NULL);

    r = eval(&pol, &both, NULL);
    assert_allowed(&r);
    r = eval(&pol, &one, NULL);
    assert_denied(&r, TR_PRULE_SCOPES, TR_PREASON_INSUFFICIENT_SCOPE,
                  TR_P_INSUFFICIENT_SCOPE);
    assert_ptr_equal(r.required_scopes, &pol.p.scopes);
    assert_int_equal(r.missing_scopes, 2); /* bit 1: mail.send */
    /* scopes apply to humans too */
    r = eval(&pol, &none, NULL);
    assert_denied(&r, TR_PRULE_SCOPES, TR_PREASON_INSUFFICIENT_SCOPE,
                  TR_P_INSUFFICIENT_SCOPE);
    assert_int_equal(r.missing_scopes, 3);
    drop_id(&both);
    drop_id(&one);
    drop_id(&none);
}

static void
scope_match_is_exact_not_prefix(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), LIST("mail"), -1, NULL, NULL, true);
    make_id(&id, "alice", NULL, "mail.read Mail mai", NULL);
    r = eval(&pol, &id, NULL);
    assert_denied(&r, TR_PRULE_SCOPES, TR_PREASON_INSUFFICIENT_SCOPE,
                  TR_P_INSUFFICIENT_SCOPE);
    drop_id(&id);
}

static void
challenge_names_all_required_scopes(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;
    char h[128];
    int n;

    make_pol(&pol, LIST("*"), LIST("mail.read", "mail.send"), -1, NULL,
             NULL, true);
    make_id(&id, "alice", NULL, "mail.read", NULL);
    r = eval(&pol, &id, NULL);
    n = tr_policy_www_authenticate(&r, h, sizeof h);
    assert_string_equal(h, "Bearer error=\"insufficient_scope\", "
                           "scope=\"mail.read mail.send\"");
    assert_int_equal(n, (int)strlen(h));
    drop_id(&id);
}

static void
challenge_refuses_small_buffer_and_unsafe_scope(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;
    char h[128];

    make_pol(&pol, LIST("*"), LIST("mail.send"), -1, NULL, NULL, true);
    make_id(&id, "alice", NULL, "", NULL);
    r = eval(&pol, &id, NULL);
    /* exactly enough: 52 bytes + NUL */
    assert_int_equal(tr_policy_www_authenticate(&r, h, 53), 52);
    assert_int_equal(tr_policy_www_authenticate(&r, h, 52), -1);
    assert_string_equal(h, "");
    assert_int_equal(tr_policy_www_authenticate(&r, h, 0), -1);

    make_pol(&pol, LIST("*"), LIST("a\"b"), -1, NULL, NULL, true);
    r = eval(&pol, &id, NULL);
    assert_int_equal(tr_policy_www_authenticate(&r, h, sizeof h), -1);
    make_pol(&pol, LIST("*"), LIST("a\r\nX-Evil: 1"), -1, NULL, NULL, true);
    r = eval(&pol, &id, NULL);
    assert_int_equal(tr_policy_www_authenticate(&r, h, sizeof h), -1);
    drop_id(&id);
}

static void
challenge_is_empty_for_other_outcomes(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;
    char h[64] = "x";

    make_pol(&pol, LIST("agent:mailbot"), NO_LIST, -1, NULL, NULL, true);
    make_id(&id, "alice", CHAIN("agent:shopbot"), "", NULL);
    r = eval(&pol, &id, NULL);
    assert_true(r.deny);
    assert_int_equal(tr_policy_www_authenticate(&r, h, sizeof h), 0);
    assert_string_equal(h, "");
    make_pol(&pol, LIST("agent:shopbot"), NO_LIST, -1, NULL, NULL, true);
    r = eval(&pol, &id, NULL);
    assert_false(r.deny);
    assert_int_equal(tr_policy_www_authenticate(&r, h, sizeof h), 0);
    drop_id(&id);
}

static void
owner_param_must_equal_sub(void **state)
{
    fixture_pol pol;
    fixture_id agent, human;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), NO_LIST, -1, "user", NULL, true);
    make_id(&agent, "alice", CHAIN("agent:a"), "", NULL);
    make_id(&human, "alice", NULL, "", NULL);
    r = eval(&pol, &agent, "alice");
    assert_allowed(&r);
    r = eval(&pol, &agent, "bob");
    assert_denied(&r, TR_PRULE_OWNER_PARAM, TR_PREASON_RESOURCE_MISMATCH,
                  TR_P_RESOURCE_MISMATCH);
    /* no prefix or case games */
    r = eval(&pol, &agent, "alic");
    assert_true(r.deny);
    r = eval(&pol, &agent, "alicex");
    assert_true(r.deny);
    r = eval(&pol, &agent, "Alice");
    assert_true(r.deny);
    r = eval(&pol, &agent, "");
    assert_true(r.deny);
    /* humans are held to ownership too */
    r = eval(&pol, &human, "bob");
    assert_denied(&r, TR_PRULE_OWNER_PARAM, TR_PREASON_RESOURCE_MISMATCH,
                  TR_P_RESOURCE_MISMATCH);
    drop_id(&agent);
    drop_id(&human);
}

static void
owner_param_compares_percent_decoded(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), NO_LIST, -1, "user", NULL, true);
    make_id(&id, "alice@example.com", NULL, "", NULL);
    r = eval(&pol, &id, "alice%40example.com");
    assert_allowed(&r);
    r = eval(&pol, &id, "alice%40Example.com");
    assert_true(r.deny);
    r = eval(&pol, &id, "alice@example.com");
    assert_allowed(&r);
    /* malformed or truncated escapes never match */
    r = eval(&pol, &id, "alice%4");
    assert_true(r.deny);
    r = eval(&pol, &id, "alice%zz%40example.com");
    assert_true(r.deny);
    drop_id(&id);

    make_id(&id, "a%b", NULL, "", NULL);
    r = eval(&pol, &id, "a%b");   /* "%b" is not an escape */
    assert_true(r.deny);
    r = eval(&pol, &id, "a%25b");
    assert_allowed(&r);
    drop_id(&id);
}

static void
owner_param_absent_from_match_is_denied(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;
    tr_route_param other = param("account", "alice");

    make_pol(&pol, LIST("*"), NO_LIST, -1, "user", NULL, true);
    make_id(&id, "alice", NULL, "", NULL);
    tr_policy_eval(&pol.p, &id.id, &other, 1, &r);
    assert_denied(&r, TR_PRULE_OWNER_PARAM, TR_PREASON_OWNER_PARAM_MISSING,
                  TR_P_POLICY_DENIED);
    tr_policy_eval(&pol.p, &id.id, NULL, 0, &r);
    assert_int_equal(r.reason, TR_PREASON_OWNER_PARAM_MISSING);
    /* a name that is a prefix of the configured one does not count */
    other = param("use", "alice");
    tr_policy_eval(&pol.p, &id.id, &other, 1, &r);
    assert_int_equal(r.reason, TR_PREASON_OWNER_PARAM_MISSING);
    drop_id(&id);
}

static void
owner_param_picks_the_named_parameter(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;
    tr_route_param ps[3] = { param("org", "bob"), param("user", "alice"),
                            param("rest", "bob") };

    make_pol(&pol, LIST("*"), NO_LIST, -1, "user", NULL, true);
    make_id(&id, "alice", NULL, "", NULL);
    tr_policy_eval(&pol.p, &id.id, ps, 3, &r);
    assert_allowed(&r);
    ps[1] = param("user", "bob");
    ps[0] = param("org", "alice");
    tr_policy_eval(&pol.p, &id.id, ps, 3, &r);
    assert_int_equal(r.reason, TR_PREASON_RESOURCE_MISMATCH);
    drop_id(&id);
}

static void
consent_claim_must_be_present_and_non_empty(void **state)
{
    static const struct {
        const char *claims;
        bool ok;
    } cases[] = {
        { "{}", false },
        { "{\"consent_id\": null}", false },
        { "{\"consent_id\": false}", false },
        { "{\"consent_id\": \"\"}", false },
        { "{\"consent_id\": []}", false },
        { "{\"consent_id\": {}}", false },
        { "{\"other\": \"c-1\"}", false },
        { "{\"consent_id\": \"c-1\"}", true },
        { "{\"consent_id\": 17}", true },
        { "{\"consent_id\": 0}", true },
        { "{\"consent_id\": true}", true },
        { "{\"consent_id\": [\"c-1\"]}", true },
        { "{\"consent_id\": {\"id\": \"c-1\"}}", true },
    };
    fixture_pol pol;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), NO_LIST, -1, NULL, "consent_id", true);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture_id id;

        make_id(&id, "alice", CHAIN("agent:a"), "", cases[i].claims);
        r = eval(&pol, &id, NULL);
        if (cases[i].ok) {
            assert_allowed(&r);
        } else {
            assert_denied(&r, TR_PRULE_CONSENT_CLAIM,
                          TR_PREASON_CONSENT_REQUIRED,
                          TR_P_CONSENT_REQUIRED);
        }
        drop_id(&id);
    }
}

static void
consent_without_claims_object_is_denied(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), NO_LIST, -1, NULL, "consent_id", true);
    make_id(&id, "alice", CHAIN("agent:a"), "", NULL);
    r = eval(&pol, &id, NULL);
    assert_int_equal(r.reason, TR_PREASON_CONSENT_REQUIRED);
    drop_id(&id);
}

static void
consent_is_not_asked_of_humans(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, NO_LIST, NO_LIST, -1, NULL, "consent_id", true);
    make_id(&id, "alice", NULL, "", "{}");
    r = eval(&pol, &id, NULL);
    assert_allowed(&r);
    drop_id(&id);
}

/* ---- order: pairs of failing rules -------------------------------------- */

static void
order_authentication_before_everything(void **state)
{
    fixture_pol pol;
    tr_policy_result r;

    make_pol(&pol, NO_LIST, LIST("x"), 0, "user", "consent_id", false);
    r = eval(&pol, NULL, "bob");
    assert_int_equal(r.reason, TR_PREASON_MISSING_TOKEN);
}

static void
order_humans_before_scopes_and_owner(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), LIST("x"), -1, "user", NULL, false);
    make_id(&id, "alice", NULL, "", NULL);
    r = eval(&pol, &id, "bob");
    assert_int_equal(r.reason, TR_PREASON_HUMANS_NOT_ALLOWED);
    drop_id(&id);
}

static void
order_actors_before_depth(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("agent:mailbot"), NO_LIST, 1, NULL, NULL, true);
    make_id(&id, "alice", CHAIN("agent:shopbot", "agent:mailbot"), "",
            NULL);
    r = eval(&pol, &id, NULL);
    assert_int_equal(r.reason, TR_PREASON_ACTOR_NOT_ALLOWED);
    drop_id(&id);
}

static void
order_no_actor_rule_before_depth(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, NO_LIST, NO_LIST, 0, NULL, NULL, true);
    make_id(&id, "alice", CHAIN("agent:a", "agent:b"), "", NULL);
    r = eval(&pol, &id, NULL);
    assert_int_equal(r.reason, TR_PREASON_NO_ACTOR_RULE);
    drop_id(&id);
}

static void
order_actors_before_scopes(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("agent:mailbot"), LIST("mail.send"), -1, NULL, NULL,
             true);
    make_id(&id, "alice", CHAIN("agent:shopbot"), "", NULL);
    r = eval(&pol, &id, NULL);
    assert_int_equal(r.reason, TR_PREASON_ACTOR_NOT_ALLOWED);
    assert_null(r.required_scopes);
    drop_id(&id);
}

static void
order_depth_before_scopes(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), LIST("mail.send"), 1, NULL, NULL, true);
    make_id(&id, "alice", CHAIN("agent:a", "agent:b"), "", NULL);
    r = eval(&pol, &id, NULL);
    assert_int_equal(r.reason, TR_PREASON_DEPTH_EXCEEDED);
    drop_id(&id);
}

static void
order_scopes_before_owner(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), LIST("mail.send"), -1, "user", NULL, true);
    make_id(&id, "alice", CHAIN("agent:a"), "mail.read", NULL);
    r = eval(&pol, &id, "bob");
    assert_int_equal(r.reason, TR_PREASON_INSUFFICIENT_SCOPE);
    drop_id(&id);
}

static void
order_scopes_before_consent(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), LIST("mail.send"), -1, NULL, "consent_id",
             true);
    make_id(&id, "alice", CHAIN("agent:a"), "mail.read", "{}");
    r = eval(&pol, &id, NULL);
    assert_int_equal(r.reason, TR_PREASON_INSUFFICIENT_SCOPE);
    drop_id(&id);
}

static void
order_owner_before_consent(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), NO_LIST, -1, "user", "consent_id", true);
    make_id(&id, "alice", CHAIN("agent:a"), "", "{}");
    r = eval(&pol, &id, "bob");
    assert_int_equal(r.reason, TR_PREASON_RESOURCE_MISMATCH);
    drop_id(&id);
}

static void
order_depth_before_consent(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    make_pol(&pol, LIST("*"), NO_LIST, 1, NULL, "consent_id", true);
    make_id(&id, "alice", CHAIN("agent:a", "agent:b"), "", "{}");
    r = eval(&pol, &id, NULL);
    assert_int_equal(r.reason, TR_PREASON_DEPTH_EXCEEDED);
    drop_id(&id);
}

/* Every pair of agent rules made to fail together: the earlier rule in
 * the documented order must be the one reported. */
static void
order_every_pair_of_failing_rules_reports_the_earlier(void **state)
{
    static const tr_policy_reason order[] = {
        TR_PREASON_ACTOR_NOT_ALLOWED, TR_PREASON_DEPTH_EXCEEDED,
        TR_PREASON_INSUFFICIENT_SCOPE, TR_PREASON_RESOURCE_MISMATCH,
        TR_PREASON_CONSENT_REQUIRED,
    };
    const size_t n = sizeof order / sizeof order[0];
    fixture_pol pol;

    make_pol(&pol, LIST("agent:ok"), LIST("s"), 1, "user", "c", true);
    for (unsigned mask = 0; mask < (1u << n); mask++) {
        const char *chain[3] = { "agent:ok", NULL, NULL };
        fixture_id id;
        tr_policy_result r;
        size_t first = n;

        for (size_t i = n; i-- > 0;) {
            if (mask & (1u << i))
                first = i;
        }
        if (mask & 1u)
            chain[0] = "agent:bad";
        if (mask & 2u)
            chain[1] = "agent:inner";
        make_id(&id, "alice", chain, (mask & 4u) ? "" : "s",
                (mask & 16u) ? "{}" : "{\"c\": \"yes\"}");
        r = eval(&pol, &id, (mask & 8u) ? "bob" : "alice");
        if (first == n) {
            assert_allowed(&r);
        } else {
            assert_true(r.deny);
            assert_string_equal(tr_policy_reason_name(r.reason),
                                tr_policy_reason_name(order[first]));
        }
        drop_id(&id);
    }
}

/* ---- shadow mode ------------------------------------------------------- */

static void
shadow_records_the_deny_but_does_not_enforce(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;
    char h[96];

    mail_send(&pol);
    pol.p.shadow = true;
    make_id(&id, "alice", CHAIN("agent:mailbot"), "mail.read",
            "{\"consent_id\": \"c-1\"}");
    r = eval(&pol, &id, "alice");
    assert_true(r.deny);
    assert_false(r.enforce);
    assert_true(r.shadow);
    assert_int_equal(r.rule, TR_PRULE_SCOPES);
    assert_int_equal(r.reason, TR_PREASON_INSUFFICIENT_SCOPE);
    assert_int_equal(r.problem, TR_P_INSUFFICIENT_SCOPE);
    /* the would-be challenge is still available for the record */
    assert_true(tr_policy_www_authenticate(&r, h, sizeof h) > 0);
    drop_id(&id);
}

static void
shadow_allow_is_a_plain_allow(void **state)
{
    fixture_pol pol;
    fixture_id id;
    tr_policy_result r;

    mail_read(&pol);
    pol.p.shadow = true;
    make_id(&id, "alice", CHAIN("agent:mailbot"), "mail.read", NULL);
    r = eval(&pol, &id, "alice");
    assert_false(r.deny);
    assert_false(r.enforce);
    assert_true(r.shadow);
    assert_int_equal(r.reason, TR_PREASON_ALLOWED);
    drop_id(&id);
}

static void
shadow_covers_missing_token_too(void **state)
{
    fixture_pol pol;
    tr_policy_result r;

    make_pol(&pol, NO_LIST, NO_LIST, -1, NULL, NULL, true);
    pol.p.shadow = true;
    r = eval(&pol, NULL, NULL);
    assert_true(r.deny);
    assert_false(r.enforce);
    assert_int_equal(r.reason, TR_PREASON_MISSING_TOKEN);
}

/* ---- delegation.md cases 1-6 -------------------------------------------- */

static void
delegation_cases_1_to_6(void **state)
{
    static const struct {
        int n;
        bool send;             /* route mail-send, else mail-read */
        const char *chain[4];
        const char *scope;
        const char *claims;
        const char *user;
        bool deny;
        const char *reason;
        size_t depth;
    } cases[] = {
        { 1, false, { "agent:mailbot" }, "mail.read", NULL, "alice",
          false, "allowed", 1 },
        { 2, false, { "agent:planner", "agent:mailbot" }, "mail.read",
          NULL, "alice", false, "allowed", 2 },
        { 3, false, { "agent:planner", "agent:router", "agent:mailbot" },
          "mail.read", NULL, "alice", true, "delegation_depth_exceeded",
          3 },
        { 4, false, { "agent:shopbot" }, "mail.read", NULL, "alice", true,
          "actor_not_allowed", 1 },
        { 5, true, { "agent:mailbot" }, "mail.read",
          "{\"consent_id\": \"c-42\"}", "alice", true,
          "insufficient_scope", 1 },
        { 6, false, { "agent:mailbot" }, "mail.read", NULL, "bob", true,
          "principal_resource_mismatch", 1 },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture_pol pol;
        fixture_id id;
        tr_policy_result r;

        if (cases[i].send)
            mail_send(&pol);
        else
            mail_read(&pol);
        make_id(&id, "alice", cases[i].chain, cases[i].scope,
                cases[i].claims);
        r = eval(&pol, &id, cases[i].user);
        print_message("case %d: %s\n", cases[i].n,
                      tr_policy_reason_name(r.reason));
        assert_int_equal(r.deny, cases[i].deny);
        assert_int_equal(r.enforce, cases[i].deny);
        assert_string_equal(tr_policy_reason_name(r.reason),
                            cases[i].reason);
        assert_int_equal(r.depth, cases[i].depth);
        if (cases[i].n == 5) {
            char h[96];

            assert_string_equal(tr_policy_rule_name(r.rule), "scopes");
            assert_int_equal(r.problem, TR_P_INSUFFICIENT_SCOPE);
            assert_int_equal(tr_problem(r.problem)->status, 403);
            tr_policy_www_authenticate(&r, h, sizeof h);
            assert_string_equal(h, "Bearer error=\"insufficient_scope\", "
                                   "scope=\"mail.send\"");
        }
        if (r.deny)
            assert_int_equal(tr_problem(r.problem)->status, 403);
        drop_id(&id);
    }
}

/* ---- names -------------------------------------------------------------- */

static void
names_are_snake_case_and_total(void **state)
{
    for (int i = 0; i < TR_PREASON__COUNT; i++) {
        const char *n = tr_policy_reason_name((tr_policy_reason)i);

        assert_true(strlen(n) > 0);
        for (const char *c = n; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
    }
    for (int i = 1; i < TR_PRULE__COUNT; i++)
        assert_true(strlen(tr_policy_rule_name((tr_policy_rule)i)) > 0);
    assert_string_equal(tr_policy_rule_name(TR_PRULE_NONE), "");
    assert_string_equal(tr_policy_rule_name(TR_PRULE__COUNT), "");
    assert_string_equal(tr_policy_reason_name(TR_PREASON__COUNT), "");
    /* rule names are the config keys of SPEC.md "Interfaces" */
    assert_string_equal(tr_policy_rule_name(TR_PRULE_ACTORS), "actors");
    assert_string_equal(tr_policy_rule_name(TR_PRULE_SCOPES), "scopes");
    assert_string_equal(tr_policy_rule_name(TR_PRULE_MAX_DEPTH),
                        "max_delegation_depth");
    assert_string_equal(tr_policy_rule_name(TR_PRULE_OWNER_PARAM),
                        "owner_param");
    assert_string_equal(tr_policy_rule_name(TR_PRULE_CONSENT_CLAIM),
                        "consent_claim");
    assert_string_equal(tr_policy_rule_name(TR_PRULE_HUMANS), "humans");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glob_literal_matches_only_itself),
        cmocka_unit_test(glob_star_matches_any_run_including_empty),
        cmocka_unit_test(glob_question_matches_exactly_one_byte),
        cmocka_unit_test(glob_backslash_escapes_metacharacters),
        cmocka_unit_test(glob_embedded_nul_is_an_ordinary_byte),
        cmocka_unit_test(glob_hostile_patterns_stay_linear_in_practice),
        cmocka_unit_test(route_without_policy_allows_everyone),
        cmocka_unit_test(anonymous_request_on_policy_route_is_missing_token),
        cmocka_unit_test(humans_false_refuses_a_human_and_admits_an_agent),
        cmocka_unit_test(humans_true_admits_a_human_whatever_the_actor_list),
        cmocka_unit_test(agent_on_policy_without_actors_is_denied_by_default),
        cmocka_unit_test(actor_must_match_one_glob),
        cmocka_unit_test(only_the_current_actor_counts),
        cmocka_unit_test(depth_limit_is_inclusive_and_off_by_default),
        cmocka_unit_test(depth_zero_refuses_every_agent),
        cmocka_unit_test(client_as_actor_without_chain_counts_as_depth_one),
        cmocka_unit_test(every_required_scope_must_be_present),
        cmocka_unit_test(scope_match_is_exact_not_prefix),
        cmocka_unit_test(challenge_names_all_required_scopes),
        cmocka_unit_test(challenge_refuses_small_buffer_and_unsafe_scope),
        cmocka_unit_test(challenge_is_empty_for_other_outcomes),
        cmocka_unit_test(owner_param_must_equal_sub),
        cmocka_unit_test(owner_param_compares_percent_decoded),
        cmocka_unit_test(owner_param_absent_from_match_is_denied),
        cmocka_unit_test(owner_param_picks_the_named_parameter),
        cmocka_unit_test(consent_claim_must_be_present_and_non_empty),
        cmocka_unit_test(consent_without_claims_object_is_denied),
        cmocka_unit_test(consent_is_not_asked_of_humans),
        cmocka_unit_test(order_authentication_before_everything),
        cmocka_unit_test(order_humans_before_scopes_and_owner),
        cmocka_unit_test(order_actors_before_depth),
        cmocka_unit_test(order_no_actor_rule_before_depth),
        cmocka_unit_test(order_actors_before_scopes),
        cmocka_unit_test(order_depth_before_scopes),
        cmocka_unit_test(order_scopes_before_owner),
        cmocka_unit_test(order_scopes_before_consent),
        cmocka_unit_test(order_owner_before_consent),
        cmocka_unit_test(order_depth_before_consent),
        cmocka_unit_test(
            order_every_pair_of_failing_rules_reports_the_earlier),
        cmocka_unit_test(shadow_records_the_deny_but_does_not_enforce),
        cmocka_unit_test(shadow_allow_is_a_plain_allow),
        cmocka_unit_test(shadow_covers_missing_token_too),
        cmocka_unit_test(delegation_cases_1_to_6),
        cmocka_unit_test(names_are_snake_case_and_total),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
