/*
 * GCRA (the generic cell rate algorithm) for one key: the rate and quota
 * budgets of SPEC.md §1.
 *
 * State is one theoretical arrival time (TAT) in nanoseconds of the
 * caller's monotonic clock, plus units reserved by queued requests.
 *
 * Convention.  A budget of `burst` units that comes back at one unit per
 * emission interval T has tolerance tau = burst * T.  A request of `cost`
 * units arriving at `now` passes when
 *
 *     max(TAT, now) + reserved * T + cost * T - now <= tau
 *
 * and then TAT becomes max(TAT, now) + cost * T.  A fresh state (TAT 0,
 * or any TAT <= now) is a full bucket: with burst 20 and rate 10/s
 * (T = 100 ms, tau = 2 s), 20 simultaneous requests pass and the 21st is
 * refused, and one unit comes back every 100 ms.  There are no windows,
 * so there is no double burst at a window edge: over any interval of
 * length d at most burst + d / T units pass.
 *
 * All arithmetic is on 64-bit integer nanoseconds.  T is fixed once, when
 * the parameters are built; the only rounding is there (see the two
 * constructors), so nothing drifts while the limiter runs, and every
 * decision, wait and header value is computed from the same integers.
 *
 * Times must stay below 2^62 ns (146 years of monotonic clock).
 */
#ifndef TREATY_CORE_GCRA_H
#define TREATY_CORE_GCRA_H

#include <stdbool.h>
#include <stdint.h>

#define TR_NS_PER_S 1000000000ull

/* The largest tolerance accepted (about 36 years): keeps every sum of a
 * time and a few tolerances inside 64 bits. */
#define TR_GCRA_TAU_MAX (1ull << 60)

typedef struct {
    uint64_t t_ns;     /* emission interval: one unit back every t_ns */
    uint64_t tau_ns;   /* tolerance: burst * t_ns */
    uint32_t burst;    /* units a full bucket holds */
} tr_gcra_params;

typedef struct {
    uint64_t tat;      /* theoretical arrival time, ns; 0 = fresh */
    uint32_t reserved; /* units held by queued requests, not yet charged */
} tr_gcra;

typedef enum {
    TR_GCRA_OK = 0,    /* passes now */
    TR_GCRA_LIMITED,   /* passes after *wait_ns, if nothing else is charged */
    TR_GCRA_NEVER,     /* cost > burst: can never pass */
} tr_gcra_verdict;

/*
 * Rate budget: `per_second` units per second (> 0, finite), `burst` units
 * (>= 1).  T = 1e9 / per_second rounded to the nearest nanosecond (at
 * least 1): 10/s and 0.5/s are exact; 3/s runs at 3.000000003/s.
 * Returns 0, or -1 for values out of range (tau over TR_GCRA_TAU_MAX).
 */
int tr_gcra_params_rate(tr_gcra_params *p, double per_second,
                        uint32_t burst);

/*
 * Quota budget: `limit` units that come back over `period_s` seconds
 * ("email: 30 per 60 s" = burst 30, one unit every 2 s).  T =
 * period_s * 1e9 / limit rounded down (exact whenever the division is).
 * Returns 0, or -1 for a zero limit or period or an overflow.
 */
int tr_gcra_params_quota(tr_gcra_params *p, uint32_t limit,
                         uint32_t period_s);

/* A fresh state: a full bucket. */
void tr_gcra_init(tr_gcra *s);

/*
 * Would `cost` units pass at `now`?  Charges nothing.  On TR_GCRA_LIMITED
 * and wait_ns != NULL, *wait_ns is the exact time after which the same
 * request passes if nothing else is charged or reserved meanwhile (so a
 * client that waits it out and retries alone succeeds, and one that
 * retries earlier does not).  Cost 0 always passes.
 */
tr_gcra_verdict tr_gcra_check(const tr_gcra_params *p, const tr_gcra *s,
                              uint32_t cost, uint64_t now,
                              uint64_t *wait_ns);

/* Charges `cost` units at `now`.  The caller checked TR_GCRA_OK. */
void tr_gcra_charge(const tr_gcra_params *p, tr_gcra *s, uint32_t cost,
                    uint64_t now);

/*
 * Gives back `cost` units charged a moment ago (an admission whose
 * idempotency claim was lost).  Exact as long as the bucket has not
 * refilled completely since the charge; if it has, the refund can credit
 * up to `cost` units more than a world without the charge (the state
 * keeps no history to tell the two apart).
 */
void tr_gcra_refund(const tr_gcra_params *p, tr_gcra *s, uint32_t cost);

/*
 * Reservations, for requests waiting for a concurrency slot: reserve on
 * entering the queue (after TR_GCRA_OK), then either confirm (the request
 * is forwarded: the units are charged at that moment) or unreserve (it
 * timed out or its client left: as if it never came).  While reserved,
 * the units count against every other request, so the bucket never
 * promises the same units twice, and confirming never overdraws it.
 */
void tr_gcra_reserve(tr_gcra *s, uint32_t cost);
void tr_gcra_unreserve(tr_gcra *s, uint32_t cost);
void tr_gcra_confirm(const tr_gcra_params *p, tr_gcra *s, uint32_t cost,
                     uint64_t now);

/* Whole units available now (the `r` of the RateLimit field). */
uint64_t tr_gcra_remaining(const tr_gcra_params *p, const tr_gcra *s,
                           uint64_t now);

/*
 * The `t` of the RateLimit field, in whole seconds rounded up: the time
 * until the bucket holds enough for one more request of `cost` units
 * than it does now (cost 0 counts as 1), or until it is full if it can
 * never hold that much.  For a request just refused this is exactly its
 * wait, rounded up.  Returns -1 when the bucket is full (no more quota
 * will come, so `t` is left out).
 */
int64_t tr_gcra_reset_s(const tr_gcra_params *p, const tr_gcra *s,
                        uint32_t cost, uint64_t now);

/* Equal to a fresh state at `now`: full and nothing reserved. */
bool tr_gcra_is_fresh(const tr_gcra *s, uint64_t now);

/* Whole seconds, rounded up. */
uint64_t tr_ns_to_s_ceil(uint64_t ns);

#endif
