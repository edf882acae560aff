/*
 * When to fetch an issuer's JWKS by URL, and how long fetched keys stay
 * in service: the decisions of the JWKS fetcher (src/net/jwks_fetcher.c),
 * pure and on a caller-supplied monotonic clock (nanoseconds) so they are
 * unit-tested on a virtual one.
 *
 * Rules (docs/identity.md "Keys by URL"):
 *   - the first fetch is due at once; after a success the next one is due
 *     refresh_s later; after a failure it is retried sooner, 1 s, 2 s,
 *     4 s ... (never later than refresh_s);
 *   - keys fetched at S are fresh until S + refresh_s, then stale; stale
 *     keys stay in service until S + refresh_s + grace_s, and are
 *     withdrawn after that once no fetch is under way (a fetch in flight
 *     at that moment decides: success renews, failure withdraws);
 *   - a token naming an unknown kid asks for one refetch: granted when no
 *     fetch is in flight and none started in the last min_refetch_s
 *     (whatever started it); while one is in flight the caller waits for
 *     it; otherwise the refetch is refused.  So a flood of random kids
 *     costs at most one fetch per min_refetch_s.
 */
#ifndef TREATY_CORE_JWKS_REFRESH_H
#define TREATY_CORE_JWKS_REFRESH_H

#include <stdbool.h>
#include <stdint.h>

#define TR_JWKS_NEVER UINT64_MAX

typedef struct {
    uint64_t refresh_ns;
    uint64_t grace_ns;
    uint64_t min_refetch_ns;

    bool in_flight;         /* a fetch started and has not reported */
    bool have_keys;         /* fetched keys are in service */
    bool started_once;
    uint64_t last_start_ns; /* when the latest fetch started */
    uint64_t last_ok_ns;    /* when the latest good fetch completed */
    uint64_t next_fetch_ns; /* background fetch due */
    uint32_t failures;      /* consecutive */
} tr_jwks_refresh;

/* What to do about a token whose kid no key carries. */
typedef enum {
    TR_JWKS_KID_FETCH,      /* start a refetch now (call _started) */
    TR_JWKS_KID_WAIT,       /* a fetch is under way: wait for it */
    TR_JWKS_KID_REFUSE      /* rate-limited: refuse the token now */
} tr_jwks_kid_action;

/* What the keys are, for logs and metrics. */
typedef enum {
    TR_JWKS_NONE,           /* never fetched, or withdrawn */
    TR_JWKS_FRESH,
    TR_JWKS_STALE           /* past refresh_s, within grace */
} tr_jwks_key_state;

/* A schedule whose first fetch is due at now. */
void tr_jwks_refresh_init(tr_jwks_refresh *r, uint32_t refresh_s,
                          uint32_t grace_s, uint32_t min_refetch_s,
                          uint64_t now);

/* The background fetch is due (and none is in flight). */
bool tr_jwks_refresh_due(const tr_jwks_refresh *r, uint64_t now);

/* A fetch starts now, whatever asked for it. */
void tr_jwks_refresh_started(tr_jwks_refresh *r, uint64_t now);

tr_jwks_kid_action tr_jwks_refresh_unknown_kid(const tr_jwks_refresh *r,
                                               uint64_t now);

/* The fetch in flight finished; ok means new keys were installed. */
void tr_jwks_refresh_done(tr_jwks_refresh *r, bool ok, uint64_t now);

/* The keys in service must be withdrawn now (grace is over and no fetch
 * is under way).  The caller withdraws them and calls _withdrawn. */
bool tr_jwks_refresh_expired(const tr_jwks_refresh *r, uint64_t now);
void tr_jwks_refresh_withdrawn(tr_jwks_refresh *r);

tr_jwks_key_state tr_jwks_refresh_state(const tr_jwks_refresh *r,
                                        uint64_t now);

/* When something is next to be done (a fetch due, keys to withdraw);
 * TR_JWKS_NEVER while only a fetch in flight can change anything. */
uint64_t tr_jwks_refresh_next_wake(const tr_jwks_refresh *r);

#endif
