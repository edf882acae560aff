/*
 * The catalogue of refusals treaty generates.  Each kind has a stable
 * `type` URI (docs/problems.md), an HTTP status and a title; the detail is
 * written per response.  Types registered with IANA are used where one
 * fits (the rate-limit ones); the rest live under TR_PROBLEM_BASE.
 */
#ifndef TREATY_CORE_PROBLEM_H
#define TREATY_CORE_PROBLEM_H

#include <stddef.h>

#define TR_PROBLEM_BASE "https://treaty.example/problems#"

typedef enum {
    TR_P_MALFORMED_REQUEST,      /* 400 framing, smuggling, bad fields */
    TR_P_INVALID_TARGET,         /* 400 %2F, dot segments, other hosts */
    TR_P_HEADERS_TOO_LARGE,      /* 431 */
    TR_P_BODY_TOO_LARGE,         /* 413 */
    TR_P_REQUEST_TIMEOUT,        /* 408 */
    TR_P_NOT_FOUND,              /* 404 no route */
    TR_P_METHOD_NOT_ALLOWED,     /* 405 + Allow */
    TR_P_UPGRADE_NOT_SUPPORTED,  /* 501 WebSocket and friends */
    TR_P_EXPECTATION_FAILED,     /* 417 Expect other than 100-continue */
    TR_P_UPSTREAM_UNAVAILABLE,   /* 502 connect failure, bad response */
    TR_P_UPSTREAM_TIMEOUT,       /* 504 */
    TR_P_TOO_MANY_CONNECTIONS,   /* 503 connection caps */
    TR_P_SHUTTING_DOWN,          /* 503 draining */

    TR_P_TOKEN_MISSING,          /* 401 */
    TR_P_TOKEN_INVALID,          /* 401, reason extension */
    TR_P_VERIFICATION_BUSY,      /* 503 cold verification cap */

    TR_P_ACTOR_NOT_ALLOWED,      /* 403 */
    TR_P_INSUFFICIENT_SCOPE,     /* 403 + WWW-Authenticate */
    TR_P_DELEGATION_DEPTH,       /* 403 */
    TR_P_RESOURCE_MISMATCH,      /* 403 owner_param */
    TR_P_CONSENT_REQUIRED,       /* 403 */
    TR_P_HUMANS_NOT_ALLOWED,     /* 403 */
    TR_P_POLICY_DENIED,          /* 403 default deny */

    TR_P_QUOTA_EXCEEDED,         /* 429 rate, quota, full queue */
    TR_P_REDUCED_CAPACITY,       /* 503 queue timeout, limiter full */

    TR_P_IDEM_KEY_INVALID,       /* 400 */
    TR_P_IDEM_KEY_REQUIRED,      /* 400 */
    TR_P_IDEM_KEY_MISMATCH,      /* 422 */
    TR_P_IDEM_KEY_CONFLICT,      /* 409 in flight */
    TR_P_IDEM_OUTCOME_UNKNOWN,   /* 409 after a crash */
    TR_P_IDEM_NOT_REPLAYABLE,    /* outcome over the storage cap */
    TR_P_IDEM_STORE_UNAVAILABLE, /* 503 */

    TR_P_PRECONDITION_REQUIRED,  /* 428 */
    TR_P_PRECONDITION_FAILED,    /* 412 */
    TR_P_RESOURCE_LOCK_TIMEOUT,  /* 503 */

    TR_P_AUDIT_UNAVAILABLE,      /* 503 backlog or disk full */
    TR_P_INTERNAL,               /* 500 a bug: never on purpose */

    TR_P__COUNT
} tr_problem_kind;

typedef struct {
    const char *slug;  /* the fragment after TR_PROBLEM_BASE, or "" */
    const char *type;  /* full type URI */
    int status;
    const char *title;
} tr_problem_info;

const tr_problem_info *tr_problem(tr_problem_kind kind);

#endif
