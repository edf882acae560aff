#include "core/token_status.h"

static const char *const names[TR_TOKEN__COUNT] = {
    [TR_TOKEN_OK] = "ok",
    [TR_TOKEN_MISSING] = "missing_token",
    [TR_TOKEN_MALFORMED] = "malformed",
    [TR_TOKEN_TOO_LARGE] = "token_too_large",
    [TR_TOKEN_DUPLICATE_MEMBER] = "duplicate_member",
    [TR_TOKEN_ALG_NOT_ALLOWED] = "alg_not_allowed",
    [TR_TOKEN_TYP_NOT_ALLOWED] = "typ_not_allowed",
    [TR_TOKEN_CRIT] = "crit_not_understood",
    [TR_TOKEN_EMBEDDED_KEY] = "embedded_key",
    [TR_TOKEN_UNKNOWN_ISSUER] = "unknown_issuer",
    [TR_TOKEN_UNKNOWN_KID] = "unknown_kid",
    [TR_TOKEN_KEY_MISMATCH] = "key_mismatch",
    [TR_TOKEN_BAD_SIGNATURE] = "bad_signature",
    [TR_TOKEN_MISSING_EXP] = "missing_exp",
    [TR_TOKEN_BAD_TIME_CLAIM] = "bad_time_claim",
    [TR_TOKEN_EXPIRED] = "expired",
    [TR_TOKEN_NOT_YET_VALID] = "not_yet_valid",
    [TR_TOKEN_WRONG_AUDIENCE] = "wrong_audience",
    [TR_TOKEN_BAD_SUB] = "bad_sub",
    [TR_TOKEN_BAD_ACT] = "bad_act",
    [TR_TOKEN_BAD_CLAIM] = "bad_claim",
    [TR_TOKEN_BUSY] = "verification_busy",
    [TR_TOKEN_INTERNAL] = "internal",
};

const char *
tr_token_status_name(tr_token_status st)
{
    if ((unsigned)st >= TR_TOKEN__COUNT)
        return "internal";
    return names[st];
}

tr_problem_kind
tr_token_status_problem(tr_token_status st)
{
    switch (st) {
    case TR_TOKEN_MISSING:
        return TR_P_TOKEN_MISSING;
    case TR_TOKEN_BUSY:
        return TR_P_VERIFICATION_BUSY;
    case TR_TOKEN_OK:
    case TR_TOKEN_INTERNAL:
    case TR_TOKEN__COUNT:
        return TR_P_INTERNAL;
    default:
        return TR_P_TOKEN_INVALID;
    }
}

const char *
tr_token_status_bearer_error(tr_token_status st)
{
    switch (st) {
    case TR_TOKEN_OK:
    case TR_TOKEN_MISSING:
    case TR_TOKEN_BUSY:
    case TR_TOKEN_INTERNAL:
    case TR_TOKEN__COUNT:
        return NULL;
    default:
        return "invalid_token";
    }
}

bool
tr_token_status_cacheable(tr_token_status st)
{
    switch (st) {
    case TR_TOKEN_OK:
    case TR_TOKEN_MISSING:
    case TR_TOKEN_BUSY:
    case TR_TOKEN_INTERNAL:
    case TR_TOKEN__COUNT:
    /* Soon valid: caching the refusal would outlast the reason. */
    case TR_TOKEN_NOT_YET_VALID:
        return false;
    default:
        return true;
    }
}
