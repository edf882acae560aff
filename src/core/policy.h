/*
 * Route policy: may this caller, acting for this principal, make this
 * request?  Pure evaluation over the route's tr_policy_cfg, the verified
 * identity and the route match's path parameters.  No I/O, no allocation.
 *
 * Evaluation order (fixed; the first failing rule decides; docs/policy.md):
 *
 *   0. no policy block on the route          -> allow (rule none)
 *   1. authentication: no identity           -> deny missing_token (401)
 *   2. humans:  human caller, humans: false  -> deny humans_not_allowed
 *   3. actors:  agent caller, list empty     -> deny no_actor_rule
 *               current actor matches no glob -> deny actor_not_allowed
 *   4. max_delegation_depth: agent caller, chain longer than the limit
 *                                            -> deny delegation_depth_exceeded
 *   5. scopes:  a required scope missing     -> deny insufficient_scope
 *   6. owner_param: path parameter != sub    -> deny
 *                                               principal_resource_mismatch
 *               (parameter absent from the match -> deny owner_param_missing)
 *   7. consent_claim: agent caller, claim absent or empty
 *                                            -> deny consent_required
 *   otherwise                                -> allow
 *
 * Rules 3, 4 and 7 concern delegation and apply to agent requests only; a
 * human's actor is the principal itself.  Rules 5 and 6 apply to both.
 *
 * Shadow mode (policy.shadow): the verdict is computed and reported in
 * full, but `enforce` stays false, so the request proceeds.
 */
#ifndef TREATY_CORE_POLICY_H
#define TREATY_CORE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/identity_t.h"
#include "core/problem.h"
#include "core/route.h"

typedef enum {
    TR_PRULE_NONE = 0,        /* allowed: no rule fired */
    TR_PRULE_AUTHENTICATION,
    TR_PRULE_HUMANS,
    TR_PRULE_ACTORS,
    TR_PRULE_MAX_DEPTH,
    TR_PRULE_SCOPES,
    TR_PRULE_OWNER_PARAM,
    TR_PRULE_CONSENT_CLAIM,
    TR_PRULE__COUNT
} tr_policy_rule;

typedef enum {
    TR_PREASON_ALLOWED = 0,   /* every rule passed */
    TR_PREASON_NO_POLICY,     /* the route declares no policy */
    TR_PREASON_MISSING_TOKEN,
    TR_PREASON_HUMANS_NOT_ALLOWED,
    TR_PREASON_NO_ACTOR_RULE,
    TR_PREASON_ACTOR_NOT_ALLOWED,
    TR_PREASON_DEPTH_EXCEEDED,
    TR_PREASON_INSUFFICIENT_SCOPE,
    TR_PREASON_RESOURCE_MISMATCH,
    TR_PREASON_OWNER_PARAM_MISSING,
    TR_PREASON_CONSENT_REQUIRED,
    TR_PREASON__COUNT
} tr_policy_reason;

typedef struct {
    /* The policy's verdict: true when a rule failed, shadow or not. */
    bool deny;
    /* True when the request must be refused: deny and not shadow. */
    bool enforce;
    /* The route's policy is in shadow mode (a deny is only recorded). */
    bool shadow;
    tr_policy_rule rule;       /* the rule that failed; NONE on allow */
    tr_policy_reason reason;
    tr_problem_kind problem;   /* meaningful when deny */
    /* insufficient_scope: every scope the route requires (RFC 6750 lists
     * the scope needed for the resource, not only the missing part) and
     * which of them the token lacks (bit i = required->items[i]; only the
     * first 64 are tracked).  NULL/0 otherwise. */
    const tr_strlist *required_scopes;
    uint64_t missing_scopes;
    /* Delegation depth the decision saw (chain length; 0 for humans). */
    size_t depth;
} tr_policy_result;

/*
 * Evaluate `pol` for one request.
 *
 * id:       the verified identity, or NULL when the request carries no
 *           token (possible on auth: optional routes).
 * params:   the route match's path parameters (tr_route_match.params;
 *           may be NULL when n_params is 0).  Values are still
 *           percent-encoded, as the router hands them over; the owner
 *           check decodes %XX before comparing with the sub, so
 *           "alice%40example.com" is owned by the sub "alice@example.com".
 *
 * Never fails: every outcome, including a misconfigured owner_param, is a
 * result.  The result points into `pol`, so it lives as long as the config
 * snapshot.
 */
void tr_policy_eval(const tr_policy_cfg *pol, const tr_identity *id,
                    const tr_route_param *params, size_t n_params,
                    tr_policy_result *out);

/* snake_case names for audit records, problems and logs: the rule is the
 * config key ("actors", "max_delegation_depth"...; "" for NONE), the
 * reason e.g. "actor_not_allowed". */
const char *tr_policy_rule_name(tr_policy_rule rule);
const char *tr_policy_reason_name(tr_policy_reason reason);

/*
 * The WWW-Authenticate value that goes with a denied result:
 *   insufficient_scope: Bearer error="insufficient_scope", scope="a b"
 *   missing_token:      Bearer
 * Other reasons need no challenge: returns 0 and writes "" (if cap > 0).
 *
 * @return the length written (excluding the NUL), 0 when no header is
 *         due, or -1 when `cap` is too small or a scope contains a byte
 *         RFC 6750 does not allow in a scope token (space, '"', '\',
 *         controls, non-ASCII).
 */
int tr_policy_www_authenticate(const tr_policy_result *r, char *out,
                               size_t cap);

#endif
