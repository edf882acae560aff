/*
 * The time shape of one principal's traffic (SPEC.md §7, offline part):
 * streaming statistics with bounded memory, a classification (human-like
 * or agent) with its reason, and budget recommendations computed with the
 * same GCRA convention as core/gcra.h.
 *
 * Pure: no I/O, no clock.  Times are nanoseconds since the Unix epoch,
 * passed in.  Feed each principal's requests in non-decreasing time
 * order; logs are only mostly ordered (treaty writes a line when a
 * request ends but stamps it with its start), so the caller should sort
 * them within a window first (src/cli/analyze_reorder.c does).  What
 * still arrives earlier than the principal's previous request is counted
 * in `late` and taken as arriving at that previous time (a gap of 0):
 * the figures stay defined and the count says how much to distrust them.
 *
 * Memory.  A principal costs about 3 KiB plus its key, plus 8 bytes per
 * request in flight at once when durations are logged (up to
 * TR_TRAFFIC_INFLIGHT_MAX).  At most `max_principals` are tracked; the
 * requests of any further principal are counted into one aggregate entry
 * named "(other)", so memory is bounded however many principals a log
 * holds.  Lookups use XXH3 with a caller-chosen seed.
 *
 * Figures and their precision:
 *   - peak_1s / peak_10s: the most requests in any window of 1 s (10 s)
 *     starting on a 10 ms (100 ms) grid.  A window at an arbitrary start
 *     can hold more by at most the requests of one grid step.
 *   - inter-arrival mean and coefficient of variation (standard deviation
 *     over mean): Welford's running algorithm over every gap, exact.
 *   - bursts: maximal runs of requests each less than `burst_gap_ns`
 *     after the previous one (or at most the timestamp resolution apart
 *     when that is coarser, so 1 s timestamps still join a run).  The
 *     largest is exact; p95 comes from a log-scale histogram, exact up to
 *     16 and within 12.5 % above.
 *   - peak in-flight: the most requests whose [start, start + duration)
 *     intervals overlap, exact while below TR_TRAFFIC_INFLIGHT_MAX.
 *   - hour of day: UTC.
 *   - rate/burst: for each rate of a fixed ladder, the smallest GCRA
 *     burst with which no request would have been refused (exact, see
 *     tr_traffic_min_burst()).
 *   - per-minute limit: requests a fixed-window limit (calendar minutes)
 *     of each value of a 1-2-5 ladder would have refused (exact).
 */
#ifndef TREATY_CORE_TRAFFIC_STATS_H
#define TREATY_CORE_TRAFFIC_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TR_TRAFFIC_KEY_MAX 256        /* longer keys are shortened */
#define TR_TRAFFIC_HOURS 24
#define TR_TRAFFIC_GAP_BINS 28        /* inter-arrival histogram */
#define TR_TRAFFIC_TIMELINE_BINS 120  /* request-rate timeline */
#define TR_TRAFFIC_BURST_BINS 240     /* burst-size histogram */
#define TR_TRAFFIC_RATES 16           /* GCRA rate ladder */
#define TR_TRAFFIC_MINUTE_LIMITS 19   /* per-minute limit ladder */
#define TR_TRAFFIC_INFLIGHT_MAX 4096  /* overlapping requests followed */
#define TR_TRAFFIC_WIN1_SLOTS 100     /* 1 s as 100 steps of 10 ms */
#define TR_TRAFFIC_WIN10_SLOTS 100    /* 10 s as 100 steps of 100 ms */

/* Class as logged: treaty logs say human or agent; other logs nothing. */
#define TR_TRAFFIC_CLASS_UNKNOWN (-1)
#define TR_TRAFFIC_CLASS_HUMAN 0
#define TR_TRAFFIC_CLASS_AGENT 1

/* The rates of the ladder, requests per second (1-2-5 steps). */
extern const double tr_traffic_rates[TR_TRAFFIC_RATES];
/* The per-minute limits of the ladder (1-2-5 steps, 1 .. 1e6). */
extern const uint32_t tr_traffic_minute_limits[TR_TRAFFIC_MINUTE_LIMITS];

typedef struct {
    uint32_t max_principals;   /* tracked; default 10000 */
    uint64_t burst_gap_ns;     /* a gap this long ends a burst; 1 s */
    uint64_t resolution_ns;    /* timestamp resolution; default 1 ms */
    /* Classification thresholds (see tr_traffic_shape). */
    uint32_t min_requests;     /* fewer: TR_SHAPE_TOO_FEW; default 20 */
    uint32_t burst_agent;      /* a burst this large is an agent; 50 */
    double cv_bursty;          /* inter-arrival CV above this ... 2.0 */
    double peak_factor;        /* ... with peak 1 s >= this x mean; 10 */
    uint32_t peak_min;         /* ... and peak 1 s >= this; 10 */
    double cv_periodic;        /* CV below this is machine regular; .05 */
    uint32_t periodic_min;     /* ... over at least this many; 100 */
    /* Recommendations. */
    double rate_headroom;      /* rate >= this x mean rate; default 2 */
    double minute_headroom;    /* per-minute limit = this x mean; 2 */
    uint64_t seed;             /* XXH3 seed of the principal table */
} tr_traffic_params;

typedef enum {
    TR_SHAPE_TOO_FEW = 0,      /* under min_requests: not judged */
    TR_SHAPE_HUMAN,            /* human-like */
    TR_SHAPE_BURSTY_AGENT,     /* bursts or peaks no person produces */
    TR_SHAPE_STEADY_AGENT,     /* machine-regular cadence */
    TR_SHAPE_AGGREGATE,        /* the "(other)" entry: not one caller */
} tr_traffic_shape;

typedef enum {
    TR_CAP_NONE = 0,           /* not computed (too few requests) */
    TR_CAP_INFLIGHT,           /* peak in-flight from logged durations */
    TR_CAP_BURST,              /* busiest 1 s: no durations logged */
} tr_traffic_cap_basis;

/*
 * One principal (or the "(other)" aggregate).  Fields are read-only for
 * callers; tr_traffic_summarize() turns them into figures.
 */
typedef struct {
    char *key;                 /* display name, NUL-terminated */
    uint32_t key_len;
    int8_t cls;                /* TR_TRAFFIC_CLASS_* as logged */
    bool other;                /* the overflow aggregate */
    bool unverified;           /* the name came from an unverified JWT */

    uint64_t count;
    int64_t first_ns, last_ns;
    uint64_t late;             /* earlier than the previous: clamped */

    /* Inter-arrival gaps in seconds (Welford). */
    uint64_t n_gaps;
    double gap_mean, gap_m2;
    uint32_t gap_hist[TR_TRAFFIC_GAP_BINS];

    /* Sliding windows: counts per grid step, ring of steps. */
    int64_t win1_step, win10_step;
    uint32_t win1_sum, win10_sum;
    uint32_t peak_1s, peak_10s;
    uint32_t win1[TR_TRAFFIC_WIN1_SLOTS];
    uint32_t win10[TR_TRAFFIC_WIN10_SLOTS];

    /* Bursts: the open one and the closed ones' sizes. */
    uint32_t burst_cur;
    uint32_t burst_max;
    uint64_t bursts;           /* closed bursts */
    uint32_t burst_hist[TR_TRAFFIC_BURST_BINS];

    /* In flight: min-heap of end times of overlapping requests. */
    int64_t *ends;
    uint32_t n_ends, cap_ends;
    uint32_t peak_inflight;
    uint64_t with_duration;    /* requests that logged a duration */
    bool inflight_saturated;

    /* GCRA ladder: TAT per rate and the largest backlog seen, in ns. */
    int64_t tat[TR_TRAFFIC_RATES];
    int64_t backlog_max[TR_TRAFFIC_RATES];

    /* Fixed windows of one calendar minute. */
    int64_t minute;
    uint32_t minute_count;
    uint64_t minute_refused[TR_TRAFFIC_MINUTE_LIMITS];

    uint32_t hours[TR_TRAFFIC_HOURS];

    /* Timeline: bins of width 1 s * 2^tl_shift from the table's start. */
    uint32_t tl_shift;
    uint32_t timeline[TR_TRAFFIC_TIMELINE_BINS];
} tr_traffic_principal;

typedef struct tr_traffic tr_traffic;

/* Figures for one principal, as reported. */
typedef struct {
    uint64_t count;
    int64_t first_ns, last_ns;
    double mean_rate;          /* count / the whole log's span, per s */
    double active_rate;        /* count / its own first..last, per s */
    uint32_t peak_1s, peak_10s;
    double gap_mean_s;         /* -1 with fewer than 2 requests */
    double gap_cv;             /* -1 when undefined (< 2 gaps or mean 0) */
    uint64_t bursts;           /* including the open one */
    uint32_t burst_max, burst_p95;
    int64_t peak_inflight;     /* -1 when no duration was logged */
    bool inflight_saturated;
    uint32_t hours_active;     /* hours of day with any request */
    tr_traffic_shape shape;
    char reason[200];
    /* Recommendation. */
    uint32_t concurrency;
    tr_traffic_cap_basis concurrency_basis;
    double rate;               /* per second, from the ladder */
    uint32_t burst;            /* smallest burst admitting all at rate */
    uint32_t minute_limit;     /* from the ladder */
    uint64_t minute_refused;   /* what that limit would have refused */
} tr_traffic_summary;

/* Per-class recommendation: budgets.{human,agent} admit every principal
 * of the class. */
typedef struct {
    uint32_t principals;       /* principals counted in the class */
    uint64_t requests;
    uint32_t concurrency;
    double rate;
    uint32_t burst;
    uint32_t minute_limit;     /* per principal */
    uint64_t minute_refused;   /* summed over the class's principals */
} tr_traffic_class_rec;

void tr_traffic_params_default(tr_traffic_params *p);

/* NULL when out of memory or max_principals is 0. */
tr_traffic *tr_traffic_create(const tr_traffic_params *p);
void tr_traffic_free(tr_traffic *t);

/*
 * The resolution of the timestamps that follow (e.g. 1 s for nginx
 * combined).  Only ever coarsens: the report states the coarsest.
 */
void tr_traffic_set_resolution(tr_traffic *t, uint64_t resolution_ns);
uint64_t tr_traffic_resolution(const tr_traffic *t);

/*
 * The index of the principal (key, cls), created on first sight.  Keys
 * are bytes (any value, NUL included); over TR_TRAFFIC_KEY_MAX bytes the
 * stored name is shortened and ends in a hash of the whole key.  Once
 * max_principals are tracked, a new key gets the "(other)" index.
 * `unverified` marks names decoded from unverified tokens.  Returns
 * UINT32_MAX only when out of memory.
 */
uint32_t tr_traffic_lookup(tr_traffic *t, const char *key, size_t len,
                           int cls, bool unverified);

/* One request of principal `idx` starting at t_ns, lasting dur_ns (-1
 * when not logged). */
void tr_traffic_add(tr_traffic *t, uint32_t idx, int64_t t_ns,
                    int64_t dur_ns);

size_t tr_traffic_count(const tr_traffic *t);   /* entries, incl. other */
const tr_traffic_principal *tr_traffic_get(const tr_traffic *t,
                                           uint32_t idx);
/* Requests counted into "(other)" (their principals are not counted:
 * that would take memory per principal). */
uint64_t tr_traffic_overflow_requests(const tr_traffic *t);
uint64_t tr_traffic_requests(const tr_traffic *t);
/* The first and last request time over every principal; 0 when none. */
int64_t tr_traffic_first_ns(const tr_traffic *t);
int64_t tr_traffic_last_ns(const tr_traffic *t);

/* Figures, classification and recommendation of principal idx. */
void tr_traffic_summarize(const tr_traffic *t, uint32_t idx,
                          tr_traffic_summary *out);

/*
 * The class a principal's budget falls under: as logged, else from its
 * shape (agent shapes are agents, everything else human).
 */
int tr_traffic_budget_class(const tr_traffic *t, uint32_t idx);

/* The recommendation for budgets.<cls> over every tracked principal whose
 * tr_traffic_budget_class() is cls. */
void tr_traffic_class_recommend(const tr_traffic *t, int cls,
                                tr_traffic_class_rec *out);

/*
 * The smallest GCRA burst at ladder rate `rate_index` with which none of
 * the principal's requests would have been refused: with emission
 * interval T and the backlog X = max(TAT, t) - t before each request, a
 * request passes when X + T <= burst * T (core/gcra.h), so the answer is
 * ceil(max X / T) + 1.  1 for a principal without requests.
 */
uint32_t tr_traffic_min_burst(const tr_traffic_principal *p,
                              size_t rate_index);

/*
 * The timeline of principal idx re-binned to the table's common width
 * (every principal's bins then line up): fills out[0..BINS) with
 * requests per bin and returns the bin width in ns.  Bin 0 starts at
 * tr_traffic_first_ns() rounded down to the second.
 */
uint64_t tr_traffic_timeline(const tr_traffic *t, uint32_t idx,
                             uint32_t out[TR_TRAFFIC_TIMELINE_BINS]);

/* The bounds of gap histogram bin i, in ms: [lo, hi); hi 0 = no bound. */
void tr_traffic_gap_bin(size_t i, uint64_t *lo_ms, uint64_t *hi_ms);

const char *tr_traffic_shape_name(tr_traffic_shape s);
const char *tr_traffic_class_name(int cls);   /* "human", "agent", NULL */

#endif
