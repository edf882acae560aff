#include "core/problem.h"

#define IANA "https://iana.org/assignments/http-problem-types#"

#define P(kind, slug, status, title) \
    [kind] = { slug, TR_PROBLEM_BASE slug, status, title }
#define P_IANA(kind, slug, status, title) \
    [kind] = { slug, IANA slug, status, title }

static const tr_problem_info catalogue[TR_P__COUNT] = {
    P(TR_P_MALFORMED_REQUEST, "malformed-request", 400,
      "Malformed request"),
    P(TR_P_INVALID_TARGET, "invalid-target", 400,
      "Request target refused"),
    P(TR_P_HEADERS_TOO_LARGE, "headers-too-large", 431,
      "Request header fields too large"),
    P(TR_P_BODY_TOO_LARGE, "body-too-large", 413,
      "Request body too large"),
    P(TR_P_REQUEST_TIMEOUT, "request-timeout", 408,
      "Request not received in time"),
    P(TR_P_NOT_FOUND, "no-route", 404, "No route matches this path"),
    P(TR_P_METHOD_NOT_ALLOWED, "method-not-allowed", 405,
      "Method not allowed on this route"),
    P(TR_P_UPGRADE_NOT_SUPPORTED, "upgrade-not-supported", 501,
      "Protocol upgrade not supported"),
    P(TR_P_EXPECTATION_FAILED, "expectation-failed", 417,
      "Expectation not supported"),
    P(TR_P_UPSTREAM_UNAVAILABLE, "upstream-unavailable", 502,
      "Upstream unavailable"),
    P(TR_P_UPSTREAM_TIMEOUT, "upstream-timeout", 504,
      "Upstream did not answer in time"),
    P(TR_P_TOO_MANY_CONNECTIONS, "too-many-connections", 503,
      "Too many connections"),
    P(TR_P_SHUTTING_DOWN, "shutting-down", 503,
      "Gateway is shutting down"),

    P(TR_P_TOKEN_MISSING, "token-missing", 401, "Bearer token required"),
    P(TR_P_TOKEN_INVALID, "token-invalid", 401, "Bearer token refused"),
    P(TR_P_VERIFICATION_BUSY, "verification-busy", 503,
      "Token verification capacity exhausted"),

    P(TR_P_ACTOR_NOT_ALLOWED, "actor-not-allowed", 403,
      "Actor may not call this route"),
    P(TR_P_INSUFFICIENT_SCOPE, "insufficient-scope", 403,
      "Token lacks a required scope"),
    P(TR_P_DELEGATION_DEPTH, "delegation-depth-exceeded", 403,
      "Delegation chain too deep"),
    P(TR_P_RESOURCE_MISMATCH, "principal-resource-mismatch", 403,
      "Resource belongs to another principal"),
    P(TR_P_CONSENT_REQUIRED, "consent-required", 403,
      "Consent claim required"),
    P(TR_P_HUMANS_NOT_ALLOWED, "humans-not-allowed", 403,
      "Route is for agents only"),
    P(TR_P_POLICY_DENIED, "policy-denied", 403, "Denied by policy"),

    P_IANA(TR_P_QUOTA_EXCEEDED, "quota-exceeded", 429,
           "Request exceeds a budget"),
    P_IANA(TR_P_REDUCED_CAPACITY, "temporary-reduced-capacity", 503,
           "Capacity temporarily reduced"),

    P(TR_P_IDEM_KEY_INVALID, "idempotency-key-invalid", 400,
      "Idempotency-Key is malformed"),
    P(TR_P_IDEM_KEY_REQUIRED, "idempotency-key-required", 400,
      "Idempotency-Key required"),
    P(TR_P_IDEM_KEY_MISMATCH, "idempotency-key-mismatch", 422,
      "Idempotency-Key reused for a different request"),
    P(TR_P_IDEM_KEY_CONFLICT, "idempotency-key-conflict", 409,
      "A request with this Idempotency-Key is in flight"),
    P(TR_P_IDEM_OUTCOME_UNKNOWN, "idempotency-outcome-unknown", 409,
      "Outcome of the original request is unknown"),
    P(TR_P_IDEM_NOT_REPLAYABLE, "idempotency-response-not-stored", 409,
      "Original response too large to replay"),
    P(TR_P_IDEM_STORE_UNAVAILABLE, "idempotency-store-unavailable", 503,
      "Idempotency store unavailable"),

    P(TR_P_PRECONDITION_REQUIRED, "precondition-required", 428,
      "Conditional request required"),
    P(TR_P_PRECONDITION_FAILED, "precondition-failed", 412,
      "Resource changed since it was read"),
    P(TR_P_RESOURCE_LOCK_TIMEOUT, "resource-busy", 503,
      "Resource busy with another write"),

    P(TR_P_AUDIT_UNAVAILABLE, "audit-unavailable", 503,
      "Audit trail cannot record this request now"),
    P(TR_P_INTERNAL, "internal-error", 500, "Internal gateway error"),
};

const tr_problem_info *
tr_problem(tr_problem_kind kind)
{
    if ((unsigned)kind >= TR_P__COUNT)
        kind = TR_P_INTERNAL;
    return &catalogue[kind];
}
