/*
 * The burstiest principals, live (SPEC.md §7): a fixed-memory top-N fed
 * by the gateway once per admitted request, read by the /metrics
 * renderer.
 *
 * Memory is allocated once, at creation, and never grows however many
 * principals appear (tr_burst_topn_memory() says how much).  Two parts:
 *
 *   - a count-min style sketch of `depth` rows x `width` cells.  Each
 *     cell holds a last-arrival time and a run length: the length of the
 *     current burst (requests each less than `burst_gap_ns` after the
 *     previous) of whatever principals hash there.  A principal's burst
 *     estimate is the minimum over its cells; collisions can only make
 *     it larger, never smaller.
 *   - `slots` principals followed exactly (key, request count, Welford
 *     inter-arrival mean and variance, current and largest burst, peak
 *     in flight), indexed by an XXH3 hash with a secret seed.
 *
 * A principal not followed enters when its estimated current burst (or
 * its in-flight count) beats the lowest score followed, which it evicts
 * (the space-saving rule).  It starts with the sketch's estimate as its
 * current and largest burst; `burst_error` records that estimate, so the
 * exact part of burst_max is burst_max - burst_error at worst.  A single
 * request (burst 1, in flight 1) never evicts anyone.
 *
 * Score and decay.  A principal's score is the larger of its current
 * burst, its peak in flight, and its largest burst decayed by half every
 * `half_life_ns` since that burst ended (0: no decay).  So a principal
 * that burst once long ago gives way to one bursting now, while the
 * figures reported (burst_max, inflight_peak) stay "since followed".
 *
 * Time is the caller's monotonic clock in ns.  Not thread-safe: call
 * every function from one thread (the event loop), or hold a lock.
 * Never allocates after creation; no call blocks.
 */
#ifndef TREATY_CORE_BURST_TOPN_H
#define TREATY_CORE_BURST_TOPN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TR_BURST_TOPN_KEY_MAX 64      /* key bytes kept per principal */

typedef struct {
    uint32_t slots;          /* principals followed exactly; default 64 */
    uint32_t sketch_width;   /* cells per row, power of 2; default 2048 */
    uint32_t sketch_depth;   /* rows, 1..8; default 4 */
    uint64_t burst_gap_ns;   /* a gap this long ends a burst; 1 s */
    uint64_t half_life_ns;   /* score decay; default 10 min; 0 = none */
} tr_burst_topn_params;

typedef struct tr_burst_topn tr_burst_topn;

/* One followed principal, as the renderer sees it (a copy). */
typedef struct {
    char key[TR_BURST_TOPN_KEY_MAX]; /* bytes as observed, not NUL-ended */
    size_t key_len;          /* <= TR_BURST_TOPN_KEY_MAX */
    bool key_truncated;      /* the observed key was longer */
    uint64_t requests;       /* since followed */
    double interarrival_cv;  /* stddev / mean of gaps; -1 if < 2 gaps */
    double interarrival_mean_s; /* -1 if no gap yet */
    uint32_t burst_now;      /* the current burst (0 once it ended) */
    uint32_t burst_max;      /* largest burst since followed */
    uint32_t burst_error;    /* burst_max may overcount by up to this */
    uint32_t inflight_peak;  /* largest in-flight count reported */
    double score;            /* the ranking score at the iterator's now */
    uint64_t since_ns;       /* followed since */
    uint64_t last_ns;        /* last request */
} tr_burst_topn_entry;

/* Iterates the N highest scores, highest first (ties: older slot). */
typedef struct {
    const tr_burst_topn *tn;
    uint64_t now_ns;
    size_t left;             /* entries still to hand out */
    double last_score;       /* bound for the next: strictly below, or */
    uint32_t last_slot;      /* equal with a higher slot number */
    bool started;
} tr_burst_topn_iter;

typedef struct {
    uint64_t observed;       /* requests seen */
    uint64_t admitted;       /* principals that entered the top table */
    uint64_t evicted;        /* ... of which replaced another */
    uint32_t followed;       /* slots in use */
    size_t bytes;            /* memory held */
} tr_burst_topn_stats;

void tr_burst_topn_params_default(tr_burst_topn_params *p);

/* Bytes tr_burst_topn_create() allocates for p (0 if p is invalid). */
size_t tr_burst_topn_memory(const tr_burst_topn_params *p);

/*
 * NULL when out of memory or p is invalid (slots 0 or over 65536, width
 * not a power of 2 or 0, depth 0 or over 8).  `seed` keys the hash:
 * take it from a CSPRNG so clients cannot aim keys at one cell.
 */
tr_burst_topn *tr_burst_topn_create(const tr_burst_topn_params *p,
                                    uint64_t seed);
void tr_burst_topn_free(tr_burst_topn *tn);

/*
 * One request of principal `key` (opaque bytes, e.g. the canonical
 * principal key "issuer\0sub") arrived at now_ns with `inflight` of its
 * requests in flight counting itself.  Times should not go backwards; a
 * time earlier than the principal's last counts as a gap of 0.
 */
void tr_burst_topn_observe(tr_burst_topn *tn, const void *key, size_t len,
                           uint64_t now_ns, uint32_t inflight);

/*
 * Iteration, for the renderer:
 *
 *   tr_burst_topn_iter it;
 *   tr_burst_topn_entry e;
 *   tr_burst_topn_iter_init(&it, tn, now_ns, 10);
 *   while (tr_burst_topn_iter_next(&it, &e))
 *       ... e.key[0..e.key_len) (escape it for a label), e.burst_max ...
 *
 * Each next() costs O(slots).  The table must not change while an
 * iteration runs (no observe() in between).
 */
void tr_burst_topn_iter_init(tr_burst_topn_iter *it, const tr_burst_topn *tn,
                             uint64_t now_ns, size_t n);
bool tr_burst_topn_iter_next(tr_burst_topn_iter *it,
                             tr_burst_topn_entry *out);

/* Copies up to n entries, highest score first; returns how many. */
size_t tr_burst_topn_top(const tr_burst_topn *tn, uint64_t now_ns,
                         tr_burst_topn_entry *out, size_t n);

void tr_burst_topn_stats_get(const tr_burst_topn *tn,
                             tr_burst_topn_stats *out);

#endif
