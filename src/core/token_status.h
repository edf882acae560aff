/*
 * Why a bearer token was accepted or refused.  Each status has a stable
 * snake_case name: it is the `reason` of the 401 problem, the access log
 * and the audit record, and docs/identity.md lists them all.
 */
#ifndef TREATY_CORE_TOKEN_STATUS_H
#define TREATY_CORE_TOKEN_STATUS_H

#include <stdbool.h>

#include "core/problem.h"

typedef enum {
    TR_TOKEN_OK = 0,
    TR_TOKEN_MISSING,          /* no Authorization, or not Bearer */
    TR_TOKEN_MALFORMED,        /* not three base64url JSON parts */
    TR_TOKEN_TOO_LARGE,        /* over max_token_bytes */
    TR_TOKEN_DUPLICATE_MEMBER, /* a JSON member twice */
    TR_TOKEN_ALG_NOT_ALLOWED,  /* none, unknown, or not in the list */
    TR_TOKEN_TYP_NOT_ALLOWED,
    TR_TOKEN_CRIT,             /* crit present: we understand none */
    TR_TOKEN_EMBEDDED_KEY,     /* jwk, jku, x5u or x5c in the header */
    TR_TOKEN_UNKNOWN_ISSUER,   /* iss missing or not configured */
    TR_TOKEN_UNKNOWN_KID,
    TR_TOKEN_KEY_MISMATCH,     /* the kid names a key of another type */
    TR_TOKEN_BAD_SIGNATURE,
    TR_TOKEN_MISSING_EXP,
    TR_TOKEN_BAD_TIME_CLAIM,   /* exp, nbf or iat not a sane number */
    TR_TOKEN_EXPIRED,
    TR_TOKEN_NOT_YET_VALID,
    TR_TOKEN_WRONG_AUDIENCE,
    TR_TOKEN_BAD_SUB,          /* sub missing, empty or not a string */
    TR_TOKEN_BAD_ACT,
    TR_TOKEN_BAD_CLAIM,        /* a value unfit for headers and logs */
    TR_TOKEN_BUSY,             /* cold verification cap reached: 503 */
    TR_TOKEN_INTERNAL,         /* out of memory, OpenSSL failure: 500 */
    TR_TOKEN__COUNT
} tr_token_status;

/* The stable name: "ok", "missing_token", "malformed", ... */
const char *tr_token_status_name(tr_token_status st);

/* The refusal kind: TOKEN_MISSING, TOKEN_INVALID, VERIFICATION_BUSY or
 * INTERNAL (never called with TR_TOKEN_OK). */
tr_problem_kind tr_token_status_problem(tr_token_status st);

/* The RFC 6750 §3.1 error code for WWW-Authenticate: NULL when the request
 * carried no bearer token (a bare `Bearer` challenge), "invalid_token"
 * for every refused token, NULL for BUSY and INTERNAL (not 401s). */
const char *tr_token_status_bearer_error(tr_token_status st);

/* Worth remembering in the negative cache: the same bytes will be refused
 * the same way for a while. */
bool tr_token_status_cacheable(tr_token_status st);

#endif
