#include "core/jwks_refresh.h"

#include <string.h>

#define NS_PER_S 1000000000ull
/* Retries after a failure double from 1 s; 2^17 s is beyond the largest
 * refresh_s the configuration allows (86400), so the shift stops there. */
#define MAX_BACKOFF_SHIFT 17

void
tr_jwks_refresh_init(tr_jwks_refresh *r, uint32_t refresh_s,
                     uint32_t grace_s, uint32_t min_refetch_s, uint64_t now)
{
    memset(r, 0, sizeof(*r));
    /* A zero period would mean fetching in a tight loop. */
    r->refresh_ns = (uint64_t)(refresh_s ? refresh_s : 1) * NS_PER_S;
    r->grace_ns = (uint64_t)grace_s * NS_PER_S;
    r->min_refetch_ns = (uint64_t)min_refetch_s * NS_PER_S;
    r->next_fetch_ns = now;
}

bool
tr_jwks_refresh_due(const tr_jwks_refresh *r, uint64_t now)
{
    return !r->in_flight && now >= r->next_fetch_ns;
}

void
tr_jwks_refresh_started(tr_jwks_refresh *r, uint64_t now)
{
    r->in_flight = true;
    r->started_once = true;
    r->last_start_ns = now;
}

tr_jwks_kid_action
tr_jwks_refresh_unknown_kid(const tr_jwks_refresh *r, uint64_t now)
{
    if (r->in_flight)
        return TR_JWKS_KID_WAIT;
    if (r->started_once && now - r->last_start_ns < r->min_refetch_ns)
        return TR_JWKS_KID_REFUSE;
    return TR_JWKS_KID_FETCH;
}

void
tr_jwks_refresh_done(tr_jwks_refresh *r, bool ok, uint64_t now)
{
    uint64_t backoff;
    uint32_t shift;

    r->in_flight = false;
    if (ok) {
        r->have_keys = true;
        r->last_ok_ns = now;
        r->failures = 0;
        r->next_fetch_ns = now + r->refresh_ns;
        return;
    }
    r->failures++;
    shift = r->failures - 1 < MAX_BACKOFF_SHIFT ? r->failures - 1
                                                : MAX_BACKOFF_SHIFT;
    backoff = NS_PER_S << shift;
    if (backoff > r->refresh_ns)
        backoff = r->refresh_ns;
    r->next_fetch_ns = now + backoff;
}

static uint64_t
withdraw_at(const tr_jwks_refresh *r)
{
    if (!r->have_keys || r->in_flight)
        return TR_JWKS_NEVER;
    return r->last_ok_ns + r->refresh_ns + r->grace_ns;
}

bool
tr_jwks_refresh_expired(const tr_jwks_refresh *r, uint64_t now)
{
    return now >= withdraw_at(r);
}

void
tr_jwks_refresh_withdrawn(tr_jwks_refresh *r)
{
    r->have_keys = false;
}

tr_jwks_key_state
tr_jwks_refresh_state(const tr_jwks_refresh *r, uint64_t now)
{
    if (!r->have_keys)
        return TR_JWKS_NONE;
    return now - r->last_ok_ns < r->refresh_ns ? TR_JWKS_FRESH
                                               : TR_JWKS_STALE;
}

uint64_t
tr_jwks_refresh_next_wake(const tr_jwks_refresh *r)
{
    uint64_t fetch = r->in_flight ? TR_JWKS_NEVER : r->next_fetch_ns;
    uint64_t withdraw = withdraw_at(r);

    return fetch < withdraw ? fetch : withdraw;
}
