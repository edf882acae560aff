/*
 * Admission (SPEC.md pipeline step 7): tool quotas, then rate, then a
 * concurrency slot, for one request of one principal and caller class.
 *
 * No double charging.  Every dimension is checked first; only when all
 * pass is anything charged, so a refused request consumes nothing and a
 * client that retries recovers exactly when Retry-After said.  Each GCRA
 * dimension that refuses is named in the decision, and Retry-After is the
 * largest of their exact waits, rounded up to whole seconds.
 *
 * Queued requests.  A request that passes every budget but finds all its
 * slots taken waits in its key's FIFO.  While it waits, its rate and
 * quota units are reserved, not charged: no other request can take them,
 * and nothing is consumed yet.  When a slot passes to it, the reserved
 * units are charged at that moment and it is forwarded.  When it times
 * out (503) or its client leaves, the reservation is dropped, as if it
 * never came: a refused request consumes nothing, queued or not.
 *
 * Shadow mode, per dimension (shadow_rate, shadow_concurrency, a quota's
 * shadow): the dimension decides as usual and its verdict is recorded in
 * the decision and the counters, but it refuses nothing and is left out
 * of the RateLimit fields (clients should not throttle on a budget that
 * is not enforced).  A shadow GCRA dimension is charged only when it
 * would have passed, so its state is what enforcement would have left.
 *
 * Calling it from the event loop.  The caller embeds one tr_admit_ticket
 * in its request struct and a tr_admit_decision wherever convenient (the
 * stack is fine: it is plain data).  No call allocates, except that keys
 * over TR_LIMITER_KEY_INLINE bytes are digested by OpenSSL, which
 * allocates internally.
 *
 *   tr_admit_ticket_init(&req->ticket, req);            once per request
 *   switch (tr_admit(adm, &req->ticket, &who, now, &d)) {
 *   case TR_ADMIT_OK:      forward; write d.items as RateLimit
 *   case TR_ADMIT_QUEUED:  start a timer for d.queue_deadline; wait
 *   case TR_ADMIT_REFUSED: answer d.problem with d.retry_after_s and
 *                          d.violated; nothing to release
 *   }
 *   timer fired:       if (tr_admit_timeout(adm, tk, now, &d)) answer 503
 *   lost claim race:   woken = tr_admit_refund(adm, tk, now)
 *   every exit path:   woken = tr_admit_release(adm, tk, now)
 *   woken != NULL:     stop its timer, tr_admit_describe() it, forward it
 *                      (woken->wait.owner is its request)
 *
 * tr_admit_release() is safe on a ticket in any state and exactly once
 * effective: it releases a held slot, drops a queued request (its client
 * left: it never takes a slot), or does nothing.
 */
#ifndef TREATY_CORE_ADMISSION_H
#define TREATY_CORE_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/concurrency.h"
#include "core/config.h"
#include "core/identity_t.h"
#include "core/limiter_table.h"
#include "core/problem.h"
#include "core/ratelimit_headers.h"

/* Quotas one tool may charge; a config with more is refused. */
#define TR_ADMIT_MAX_CHARGES 8
/* rate + quotas + inflight */
#define TR_ADMIT_MAX_POLICIES (TR_ADMIT_MAX_CHARGES + 2)

typedef struct tr_admission tr_admission;

/* Who asks, and for which tool. */
typedef struct {
    const char *principal_key;  /* opaque bytes: issuer name, NUL, sub */
    size_t principal_key_len;
    tr_caller_class cls;
    int32_t tool;               /* index into cfg->tools, -1 = none */
} tr_admit_request;

typedef enum {
    TR_ADMIT_OK = 0,            /* admitted: forward now */
    TR_ADMIT_QUEUED,            /* wait for a slot or the deadline */
    TR_ADMIT_REFUSED,           /* answer the problem; nothing held */
} tr_admit_outcome;

typedef enum {
    TR_ADMIT_REASON_NONE = 0,
    TR_ADMIT_REASON_QUOTA,         /* 429, a named quota; exact wait */
    TR_ADMIT_REASON_RATE,          /* 429, the rate; exact wait */
    TR_ADMIT_REASON_TOO_COSTLY,    /* 429, cost above a burst: never */
    TR_ADMIT_REASON_QUEUE_FULL,    /* 429, slots and queue full */
    TR_ADMIT_REASON_QUEUE_TIMEOUT, /* 503, waited queue_timeout_ms */
    TR_ADMIT_REASON_TABLE_FULL,    /* 503, no room for a new key */
    TR_ADMIT_REASON_INTERNAL,      /* 500, bad tool index */
    TR_ADMIT_REASON__COUNT
} tr_admit_reason;

typedef struct {
    tr_admit_outcome outcome;
    tr_admit_reason reason;
    tr_problem_kind problem;      /* when REFUSED */
    uint32_t retry_after_s;       /* when REFUSED: >= 1 */
    bool retry_after_exact;       /* rate/quota waits with nobody queued */
    uint64_t queue_deadline;      /* when QUEUED: ns, caller's clock */
    /* RateLimit items for every enforced policy of the route, in the
     * order of the RateLimit-Policy field; r and t as of the decision. */
    size_t n_items;
    tr_ratelimit_item items[TR_ADMIT_MAX_POLICIES];
    /* Policies that refused ("rate", "inflight" or a quota name). */
    size_t n_violated;
    const char *violated[TR_ADMIT_MAX_POLICIES];
    /* Shadow policies that would have refused or queued this request. */
    size_t n_shadow;
    const char *shadow[TR_ADMIT_MAX_POLICIES];
} tr_admit_decision;

typedef enum {
    TR_TICKET_IDLE = 0,
    TR_TICKET_QUEUED,
    TR_TICKET_ADMITTED,
    TR_TICKET_EXPIRED,          /* passed over at its deadline */
    TR_TICKET_DONE,
} tr_ticket_state;

/* Embedded in the caller's request; opaque apart from wait.owner. */
typedef struct tr_admit_ticket {
    tr_wait_node wait;
    tr_limiter_entry *budget;   /* (principal, class): rate, slots */
    tr_limiter_entry *quota[TR_ADMIT_MAX_CHARGES];
    uint64_t enqueued_at;
    uint64_t admitted_at;
    int32_t tool;
    uint16_t charged;           /* bit 0 rate, bit 1 + i quota charge i */
    uint8_t cls;
    uint8_t n_quota;
    uint8_t state;              /* tr_ticket_state */
    bool holds_slot;            /* counted in budget->conc.inflight */
} tr_admit_ticket;

/* Queue wait histogram: upper bounds in ms, then +Inf. */
#define TR_ADMIT_WAIT_BUCKETS 13
extern const uint32_t tr_admit_wait_bounds_ms[TR_ADMIT_WAIT_BUCKETS - 1];

typedef struct {
    uint64_t admitted;             /* forwarded at once */
    uint64_t admitted_from_queue;  /* forwarded after waiting */
    uint64_t queued;               /* entered a queue */
    uint64_t cancelled;            /* left the queue: client gone */
    uint64_t replays;              /* replay admissions that passed */
    uint64_t refunds;              /* lost claim races */
    uint64_t refused[TR_ADMIT_REASON__COUNT];
    uint64_t shadow_rate;          /* shadow verdicts: would refuse */
    uint64_t shadow_quota;
    uint64_t shadow_concurrency;   /* would have queued or refused */
    uint64_t wait_hist[TR_ADMIT_WAIT_BUCKETS]; /* not cumulative */
    uint64_t wait_sum_ns;
    uint64_t wait_count;
    uint64_t inflight[2];          /* by tr_caller_class, now */
    uint64_t waiting[2];           /* by tr_caller_class, now */
    tr_limiter_table_stats table;
} tr_admission_stats;

/*
 * NULL when cfg is acceptable to the limiter, else a sentence saying
 * what is not (for `treaty check`): a negative or non-finite rate, a
 * burst of 0 with a rate, a quota with a 0 limit or period, a tool with
 * more than TR_ADMIT_MAX_CHARGES charges or the same quota twice, a cost
 * above the burst it is charged against (it could never pass), a quota
 * named "rate" or "inflight", or a name that cannot be a header string.
 */
const char *tr_admission_config_error(const tr_config *cfg);

/*
 * Builds the limiter for a configuration snapshot, which must outlive it.
 * `seed` keys the table's hash (take it from a CSPRNG).  All memory is
 * allocated here.  NULL when cfg has an error above or out of memory.
 */
tr_admission *tr_admission_create(const tr_config *cfg, uint64_t seed);
void tr_admission_free(tr_admission *adm);

void tr_admit_ticket_init(tr_admit_ticket *tk, void *owner);

/* Pipeline step 7.  The ticket must be fresh (init) or released. */
tr_admit_outcome tr_admit(tr_admission *adm, tr_admit_ticket *tk,
                          const tr_admit_request *rq, uint64_t now,
                          tr_admit_decision *out);

/*
 * Pipeline step 6, a stored outcome is replayed: charges one rate unit
 * and nothing else (no quota, no slot).  Refused (429, exact) only when
 * the rate has not one unit left.  Holds nothing afterwards: no release
 * needed.  The items describe every policy of the route.
 */
tr_admit_outcome tr_admit_replay(tr_admission *adm,
                                 const tr_admit_request *rq, uint64_t now,
                                 tr_admit_decision *out);

/*
 * The queue deadline of a QUEUED ticket passed.  Returns true, with a
 * 503 decision in *out, when the ticket was still waiting (or had been
 * passed over at its deadline); it never forwards and holds nothing.
 * Returns false when the ticket holds a slot by now (ignore the timer).
 */
bool tr_admit_timeout(tr_admission *adm, tr_admit_ticket *tk, uint64_t now,
                      tr_admit_decision *out);

/*
 * Ends the ticket's admission on any exit path: releases its slot (and
 * returns the ticket that takes it, if any), or drops it from the queue
 * if it waits, or does nothing if it holds nothing.
 */
tr_admit_ticket *tr_admit_release(tr_admission *adm, tr_admit_ticket *tk,
                                  uint64_t now);

/*
 * Another attempt won the idempotency claim (pipeline step 8): gives back
 * exactly the rate and quota units this admission charged, then releases
 * it as tr_admit_release() does.  No-op unless ADMITTED.
 */
tr_admit_ticket *tr_admit_refund(tr_admission *adm, tr_admit_ticket *tk,
                                 uint64_t now);

/*
 * An OK decision with current RateLimit items for an ADMITTED ticket
 * (e.g. one just woken from the queue).
 */
void tr_admit_describe(tr_admission *adm, const tr_admit_ticket *tk,
                       uint64_t now, tr_admit_decision *out);

/*
 * The RateLimit-Policy value for (tool, class), computed once at
 * creation: byte-identical on every response.  NULL (and *len 0) when
 * no policy applies.
 */
const char *tr_admission_policy(const tr_admission *adm, int32_t tool,
                                tr_caller_class cls, size_t *len);

/* Frees up fresh table entries; call from a timer (e.g. every 100 ms). */
size_t tr_admission_sweep(tr_admission *adm, uint64_t now, size_t probes);

void tr_admission_stats_get(const tr_admission *adm,
                            tr_admission_stats *out);

/* Per quota (index into cfg->quotas): refusals and shadow verdicts. */
void tr_admission_quota_stats(const tr_admission *adm, size_t quota,
                              uint64_t *refused, uint64_t *shadow);

/* Short names for logs, audit and metric labels. */
const char *tr_admit_reason_name(tr_admit_reason reason);
const char *tr_admit_outcome_name(tr_admit_outcome outcome);

#endif
