#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/traffic_stats.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL
#define WIN1_STEP_NS (10 * NS_PER_MS)
#define WIN10_STEP_NS (100 * NS_PER_MS)
#define OTHER_NAME "(other)"

/* 1-2-5 steps: every emission interval is a whole number of ns. */
const double tr_traffic_rates[TR_TRAFFIC_RATES] = {
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500,
    1000,
};

static const int64_t rate_t_ns[TR_TRAFFIC_RATES] = {
    100000000000LL, 50000000000LL, 20000000000LL, 10000000000LL,
    5000000000LL, 2000000000LL, 1000000000LL, 500000000LL, 200000000LL,
    100000000LL, 50000000LL, 20000000LL, 10000000LL, 5000000LL, 2000000LL,
    1000000LL,
};

const uint32_t tr_traffic_minute_limits[TR_TRAFFIC_MINUTE_LIMITS] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000,
    50000, 100000, 200000, 500000, 1000000,
};

struct tr_traffic {
    tr_traffic_params p;
    tr_traffic_principal **v;  /* v[0] is "(other)" */
    uint64_t *hash;            /* per entry */
    size_t n, cap_v;
    uint32_t *index;           /* open addressing: entry + 1, 0 = empty */
    size_t index_mask;
    uint64_t requests;
    int64_t first_ns, last_ns;
    int64_t origin_ns;         /* timeline bin 0, a whole second */
    uint32_t tl_shift_max;
};

void
tr_traffic_params_default(tr_traffic_params *p)
{
    memset(p, 0, sizeof(*p));
    p->max_principals = 10000;
    p->burst_gap_ns = NS_PER_S;
    p->resolution_ns = NS_PER_MS;
    p->min_requests = 20;
    p->burst_agent = 50;
    p->cv_bursty = 2.0;
    p->peak_factor = 10.0;
    p->peak_min = 10;
    p->cv_periodic = 0.05;
    p->periodic_min = 100;
    p->rate_headroom = 2.0;
    p->minute_headroom = 2.0;
}

static tr_traffic_principal *
principal_new(const char *name, size_t len, int cls, bool unverified)
{
    tr_traffic_principal *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->key = malloc(len + 1);
    if (!p->key) {
        free(p);
        return NULL;
    }
    memcpy(p->key, name, len);
    p->key[len] = '\0';
    p->key_len = (uint32_t)len;
    p->cls = (int8_t)cls;
    p->unverified = unverified;
    return p;
}

static void
principal_free(tr_traffic_principal *p)
{
    if (!p)
        return;
    free(p->ends);
    free(p->key);
    free(p);
}

tr_traffic *
tr_traffic_create(const tr_traffic_params *params)
{
    if (!params || params->max_principals == 0)
        return NULL;
    tr_traffic *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->p = *params;
    if (t->p.burst_gap_ns == 0)
        t->p.burst_gap_ns = NS_PER_S;
    if (t->p.resolution_ns == 0)
        t->p.resolution_ns = 1;
    t->cap_v = 64;
    t->v = calloc(t->cap_v, sizeof(*t->v));
    t->hash = calloc(t->cap_v, sizeof(*t->hash));
    t->index_mask = 127;
    t->index = calloc(t->index_mask + 1, sizeof(*t->index));
    if (!t->v || !t->hash || !t->index)
        goto fail;
    t->v[0] = principal_new(OTHER_NAME, strlen(OTHER_NAME),
                            TR_TRAFFIC_CLASS_UNKNOWN, false);
    if (!t->v[0])
        goto fail;
    t->v[0]->other = true;
    t->n = 1;
    return t;

fail:
    tr_traffic_free(t);
    return NULL;
}

void
tr_traffic_free(tr_traffic *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        principal_free(t->v[i]);
    free(t->v);
    free(t->hash);
    free(t->index);
    free(t);
}

void
tr_traffic_set_resolution(tr_traffic *t, uint64_t resolution_ns)
{
    if (resolution_ns > t->p.resolution_ns)
        t->p.resolution_ns = resolution_ns;
}

uint64_t
tr_traffic_resolution(const tr_traffic *t)
{
    return t->p.resolution_ns;
}

/* ------------------------------------------------------------ table -- */

static uint64_t
key_hash(const tr_traffic *t, const char *key, size_t len, int cls)
{
    uint64_t h = XXH3_64bits_withSeed(key, len, t->p.seed);
    return h ^ ((uint64_t)(cls + 2) * 0x9e3779b97f4a7c15ull);
}

/*
 * The stored form of a key: itself, or for a long one a prefix, "~" and
 * the 16 hex digits of the whole key's hash (so two long keys sharing a
 * prefix stay apart in practice).
 */
static size_t
stored_name(const tr_traffic *t, const char *key, size_t len,
            char out[TR_TRAFFIC_KEY_MAX])
{
    if (len <= TR_TRAFFIC_KEY_MAX) {
        memcpy(out, key, len);
        return len;
    }
    size_t keep = TR_TRAFFIC_KEY_MAX - 17;
    memcpy(out, key, keep);
    char tail[18];
    snprintf(tail, sizeof(tail), "~%016llx",
             (unsigned long long)XXH3_64bits_withSeed(key, len, 0));
    memcpy(out + keep, tail, 17);
    return TR_TRAFFIC_KEY_MAX;
}

static int
index_grow(tr_traffic *t)
{
    size_t size = (t->index_mask + 1) * 2;
    uint32_t *ix = calloc(size, sizeof(*ix));
    if (!ix)
        return -1;
    for (size_t e = 1; e < t->n; e++) {
        size_t i = t->hash[e] & (size - 1);
        while (ix[i])
            i = (i + 1) & (size - 1);
        ix[i] = (uint32_t)e + 1;
    }
    free(t->index);
    t->index = ix;
    t->index_mask = size - 1;
    return 0;
}

uint32_t
tr_traffic_lookup(tr_traffic *t, const char *key, size_t len, int cls,
                  bool unverified)
{
    char name[TR_TRAFFIC_KEY_MAX];
    size_t nlen = stored_name(t, key, len, name);
    uint64_t h = key_hash(t, name, nlen, cls);
    size_t i = h & t->index_mask;

    for (; t->index[i]; i = (i + 1) & t->index_mask) {
        uint32_t e = t->index[i] - 1;
        const tr_traffic_principal *p = t->v[e];
        if (t->hash[e] == h && p->cls == cls && p->key_len == nlen &&
            !memcmp(p->key, name, nlen))
            return e;
    }
    if (t->n - 1 >= t->p.max_principals)
        return 0;

    if (t->n == t->cap_v) {
        size_t cap = t->cap_v * 2;
        tr_traffic_principal **v = realloc(t->v, cap * sizeof(*v));
        if (!v)
            return UINT32_MAX;
        t->v = v;
        uint64_t *hs = realloc(t->hash, cap * sizeof(*hs));
        if (!hs)
            return UINT32_MAX;
        t->hash = hs;
        t->cap_v = cap;
    }
    tr_traffic_principal *p = principal_new(name, nlen, cls, unverified);
    if (!p)
        return UINT32_MAX;
    uint32_t e = (uint32_t)t->n;
    t->v[e] = p;
    t->hash[e] = h;
    t->n++;
    t->index[i] = e + 1;
    /* Keep the load under one half so probes stay short. */
    if (t->n * 2 > t->index_mask + 1 && index_grow(t) != 0) {
        /* The entry is in place; a later grow will retry. */
    }
    return e;
}

size_t
tr_traffic_count(const tr_traffic *t)
{
    return t->n;
}

const tr_traffic_principal *
tr_traffic_get(const tr_traffic *t, uint32_t idx)
{
    return idx < t->n ? t->v[idx] : NULL;
}

uint64_t
tr_traffic_overflow_requests(const tr_traffic *t)
{
    return t->v[0]->count;
}

uint64_t
tr_traffic_requests(const tr_traffic *t)
{
    return t->requests;
}

int64_t
tr_traffic_first_ns(const tr_traffic *t)
{
    return t->requests ? t->first_ns : 0;
}

int64_t
tr_traffic_last_ns(const tr_traffic *t)
{
    return t->requests ? t->last_ns : 0;
}

/* ------------------------------------------------------- streaming -- */

static size_t
gap_bin(int64_t gap_ns)
{
    uint64_t ms = (uint64_t)(gap_ns / NS_PER_MS);
    if (ms == 0)
        return 0;
    size_t b = 1 + (size_t)(63 - __builtin_clzll(ms));
    return b < TR_TRAFFIC_GAP_BINS ? b : TR_TRAFFIC_GAP_BINS - 1;
}

void
tr_traffic_gap_bin(size_t i, uint64_t *lo_ms, uint64_t *hi_ms)
{
    if (i == 0) {
        *lo_ms = 0;
        *hi_ms = 1;
        return;
    }
    *lo_ms = 1ull << (i - 1);
    *hi_ms = i + 1 < TR_TRAFFIC_GAP_BINS ? 1ull << i : 0;
}

/* Exact below 16, then 8 bins per power of two. */
static size_t
burst_bin(uint32_t v)
{
    if (v < 16)
        return v;
    unsigned e = 31u - (unsigned)__builtin_clz(v);
    unsigned sub = (v >> (e - 3)) & 7u;
    return 16 + (e - 4) * 8 + sub;
}

static uint64_t
burst_bin_high(size_t b)
{
    if (b < 16)
        return b;
    unsigned e = 4 + (unsigned)(b - 16) / 8;
    unsigned sub = (unsigned)(b - 16) % 8;
    uint64_t lo = (uint64_t)(8 + sub) << (e - 3);
    return lo + (1ull << (e - 3)) - 1;
}

static void
burst_close(tr_traffic_principal *p)
{
    if (!p->burst_cur)
        return;
    p->burst_hist[burst_bin(p->burst_cur)]++;
    p->bursts++;
    p->burst_cur = 0;
}

/* Adds one request at grid step `step` to a ring of `n` steps; returns
 * the count in the window ending at that step. */
static uint32_t
window_add(uint32_t *ring, size_t n, int64_t *head, uint32_t *sum,
           int64_t step, bool first)
{
    if (first) {
        memset(ring, 0, n * sizeof(*ring));
        *sum = 0;
    } else if (step - *head >= (int64_t)n) {
        /* The whole window moved on.  A sparse caller's window holds
         * just its last request: clearing that slot is enough. */
        if (*sum == 1 && ring[*head % (int64_t)n] == 1)
            ring[*head % (int64_t)n] = 0;
        else
            memset(ring, 0, n * sizeof(*ring));
        *sum = 0;
    } else {
        for (int64_t s = *head + 1; s <= step; s++) {
            *sum -= ring[s % (int64_t)n];
            ring[s % (int64_t)n] = 0;
        }
    }
    ring[step % (int64_t)n]++;
    (*sum)++;
    *head = step;
    return *sum;
}

static void
heap_pop(int64_t *h, uint32_t *n)
{
    int64_t x = h[--*n];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (h[c] >= x)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = x;
}

static void
heap_push(int64_t *h, uint32_t *n, int64_t x)
{
    uint32_t i = (*n)++;
    while (i) {
        uint32_t parent = (i - 1) / 2;
        if (h[parent] <= x)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static void
inflight_add(tr_traffic_principal *p, int64_t start, int64_t dur)
{
    p->with_duration++;
    while (p->n_ends && p->ends[0] <= start)
        heap_pop(p->ends, &p->n_ends);
    if (p->n_ends == p->cap_ends) {
        uint32_t cap = p->cap_ends ? p->cap_ends * 2 : 8;
        int64_t *e = NULL;
        if (cap <= TR_TRAFFIC_INFLIGHT_MAX)
            e = realloc(p->ends, cap * sizeof(*e));
        if (!e) {
            /* Too many overlap to follow: the peak is a lower bound. */
            p->inflight_saturated = true;
            return;
        }
        p->ends = e;
        p->cap_ends = cap;
    }
    heap_push(p->ends, &p->n_ends, start + dur);
    if (p->n_ends > p->peak_inflight)
        p->peak_inflight = p->n_ends;
}

static void
minute_close(tr_traffic_principal *p)
{
    for (size_t j = 0; j < TR_TRAFFIC_MINUTE_LIMITS; j++) {
        if (p->minute_count <= tr_traffic_minute_limits[j])
            break;
        p->minute_refused[j] +=
            p->minute_count - tr_traffic_minute_limits[j];
    }
    p->minute_count = 0;
}

static void
timeline_add(tr_traffic *t, tr_traffic_principal *p, int64_t t_ns)
{
    int64_t rel = t_ns > t->origin_ns ? t_ns - t->origin_ns : 0;
    uint64_t bin = (uint64_t)(rel / NS_PER_S) >> p->tl_shift;
    while (bin >= TR_TRAFFIC_TIMELINE_BINS) {
        /* Out of range: halve the resolution by merging pairs. */
        for (size_t i = 0; i < TR_TRAFFIC_TIMELINE_BINS / 2; i++)
            p->timeline[i] = p->timeline[2 * i] + p->timeline[2 * i + 1];
        memset(p->timeline + TR_TRAFFIC_TIMELINE_BINS / 2, 0,
               TR_TRAFFIC_TIMELINE_BINS / 2 * sizeof(p->timeline[0]));
        p->tl_shift++;
        bin >>= 1;
    }
    p->timeline[bin]++;
    if (p->tl_shift > t->tl_shift_max)
        t->tl_shift_max = p->tl_shift;
}

void
tr_traffic_add(tr_traffic *t, uint32_t idx, int64_t t_ns, int64_t dur_ns)
{
    if (idx >= t->n)
        return;
    tr_traffic_principal *p = t->v[idx];
    if (t_ns < 0)
        t_ns = 0;

    bool first = p->count == 0;
    if (!first && t_ns < p->last_ns) {
        p->late++;
        t_ns = p->last_ns;
    }
    if (!t->requests) {
        t->first_ns = t->last_ns = t_ns;
        t->origin_ns = t_ns - t_ns % NS_PER_S;
    }
    if (t_ns < t->first_ns)
        t->first_ns = t_ns;
    if (t_ns > t->last_ns)
        t->last_ns = t_ns;
    t->requests++;

    if (first) {
        p->first_ns = t_ns;
        p->minute = t_ns / (60 * NS_PER_S);
    } else {
        int64_t gap = t_ns - p->last_ns;
        double g = (double)gap / 1e9;
        p->n_gaps++;
        double d = g - p->gap_mean;
        p->gap_mean += d / (double)p->n_gaps;
        p->gap_m2 += d * (g - p->gap_mean);
        p->gap_hist[gap_bin(gap)]++;

        uint64_t join = t->p.burst_gap_ns;
        if (t->p.resolution_ns + 1 > join)
            join = t->p.resolution_ns + 1;
        if ((uint64_t)gap >= join)
            burst_close(p);
    }
    if (p->burst_cur < UINT32_MAX)
        p->burst_cur++;
    if (p->burst_cur > p->burst_max)
        p->burst_max = p->burst_cur;

    uint32_t w = window_add(p->win1, TR_TRAFFIC_WIN1_SLOTS, &p->win1_step,
                            &p->win1_sum, t_ns / WIN1_STEP_NS, first);
    if (w > p->peak_1s)
        p->peak_1s = w;
    w = window_add(p->win10, TR_TRAFFIC_WIN10_SLOTS, &p->win10_step,
                   &p->win10_sum, t_ns / WIN10_STEP_NS, first);
    if (w > p->peak_10s)
        p->peak_10s = w;

    if (dur_ns >= 0)
        inflight_add(p, t_ns, dur_ns);

    /* GCRA with every ladder rate, as if nothing were ever refused: the
     * backlog max(TAT, t) - t does not depend on the burst. */
    for (size_t j = 0; j < TR_TRAFFIC_RATES; j++) {
        int64_t tat = p->tat[j] > t_ns ? p->tat[j] : t_ns;
        if (tat - t_ns > p->backlog_max[j])
            p->backlog_max[j] = tat - t_ns;
        p->tat[j] = tat + rate_t_ns[j];
    }

    int64_t minute = t_ns / (60 * NS_PER_S);
    if (minute != p->minute) {
        minute_close(p);
        p->minute = minute;
    }
    p->minute_count++;

    p->hours[(t_ns / (3600 * NS_PER_S)) % 24]++;
    timeline_add(t, p, t_ns);

    p->count++;
    p->last_ns = t_ns;
}

/* --------------------------------------------------------- figures -- */

uint32_t
tr_traffic_min_burst(const tr_traffic_principal *p, size_t j)
{
    if (j >= TR_TRAFFIC_RATES || !p->count)
        return 1;
    int64_t x = p->backlog_max[j];
    int64_t need = (x + rate_t_ns[j] - 1) / rate_t_ns[j] + 1;
    return need > UINT32_MAX ? UINT32_MAX : (uint32_t)need;
}

static size_t
rate_index_for(double want)
{
    for (size_t j = 0; j < TR_TRAFFIC_RATES; j++)
        if (tr_traffic_rates[j] >= want)
            return j;
    return TR_TRAFFIC_RATES - 1;
}

static size_t
minute_index_for(double want)
{
    for (size_t j = 0; j < TR_TRAFFIC_MINUTE_LIMITS; j++)
        if ((double)tr_traffic_minute_limits[j] >= want)
            return j;
    return TR_TRAFFIC_MINUTE_LIMITS - 1;
}

/* What limit j would have refused, the open minute included. */
static uint64_t
minute_refused(const tr_traffic_principal *p, size_t j)
{
    uint64_t r = p->minute_refused[j];
    if (p->minute_count > tr_traffic_minute_limits[j])
        r += p->minute_count - tr_traffic_minute_limits[j];
    return r;
}

static double
span_s(int64_t first, int64_t last)
{
    double s = (double)(last - first) / 1e9;
    return s < 1.0 ? 1.0 : s;
}

static uint32_t
burst_p95(const tr_traffic_principal *p)
{
    uint64_t total = p->bursts + (p->burst_cur ? 1 : 0);
    if (!total)
        return 0;
    uint64_t want = (total * 95 + 99) / 100;
    size_t open = p->burst_cur ? burst_bin(p->burst_cur) : SIZE_MAX;
    uint64_t seen = 0;
    for (size_t b = 0; b < TR_TRAFFIC_BURST_BINS; b++) {
        seen += p->burst_hist[b] + (b == open ? 1 : 0);
        if (seen >= want) {
            uint64_t hi = burst_bin_high(b);
            return hi > p->burst_max ? p->burst_max : (uint32_t)hi;
        }
    }
    return p->burst_max;
}

static size_t
rate_index_of(const tr_traffic *t, const tr_traffic_principal *p)
{
    double mean = (double)p->count /
                  span_s(t->first_ns, t->last_ns);
    return rate_index_for(t->p.rate_headroom * mean);
}

static size_t
minute_index_of(const tr_traffic *t, const tr_traffic_principal *p)
{
    double mean = (double)p->count /
                  span_s(t->first_ns, t->last_ns);
    double want = t->p.minute_headroom * mean * 60.0;
    return minute_index_for(want < 1.0 ? 1.0 : ceil(want));
}

static void
classify(const tr_traffic *t, const tr_traffic_principal *p,
         tr_traffic_summary *s)
{
    const tr_traffic_params *k = &t->p;
    double gap_s = (double)(k->burst_gap_ns > k->resolution_ns
                                ? k->burst_gap_ns
                                : k->resolution_ns) / 1e9;

    if (p->other) {
        s->shape = TR_SHAPE_AGGREGATE;
        snprintf(s->reason, sizeof(s->reason),
                 "principals beyond the tracking cap of %u, counted "
                 "together: not one caller's shape", k->max_principals);
        return;
    }
    if (p->count < k->min_requests) {
        s->shape = TR_SHAPE_TOO_FEW;
        snprintf(s->reason, sizeof(s->reason),
                 "only %llu request%s (fewer than %u): not judged",
                 (unsigned long long)p->count, p->count == 1 ? "" : "s",
                 k->min_requests);
        return;
    }
    if (s->burst_max >= k->burst_agent) {
        s->shape = TR_SHAPE_BURSTY_AGENT;
        snprintf(s->reason, sizeof(s->reason),
                 "a burst of %u requests, each %s%g s after the previous "
                 "(threshold %u)", s->burst_max,
                 k->resolution_ns >= k->burst_gap_ns ? "at most " : "under ",
                 gap_s, k->burst_agent);
        return;
    }
    if (s->gap_cv > k->cv_bursty && s->peak_1s >= k->peak_min &&
        s->peak_1s >= k->peak_factor * s->mean_rate) {
        s->shape = TR_SHAPE_BURSTY_AGENT;
        snprintf(s->reason, sizeof(s->reason),
                 "inter-arrival CV %.2f > %g with %u requests in 1 s, "
                 "%.0fx its mean rate", s->gap_cv, k->cv_bursty, s->peak_1s,
                 s->peak_1s / s->mean_rate);
        return;
    }
    if (s->gap_cv >= 0 && s->gap_cv < k->cv_periodic &&
        p->count >= k->periodic_min) {
        s->shape = TR_SHAPE_STEADY_AGENT;
        snprintf(s->reason, sizeof(s->reason),
                 "inter-arrival CV %.3f < %g over %llu requests: a "
                 "machine-regular cadence of one every %.3g s", s->gap_cv,
                 k->cv_periodic, (unsigned long long)p->count,
                 s->gap_mean_s);
        return;
    }
    s->shape = TR_SHAPE_HUMAN;
    if (s->gap_cv >= 0)
        snprintf(s->reason, sizeof(s->reason),
                 "inter-arrival CV %.2f, at most %u request%s in 1 s, "
                 "largest burst %u: within a person's pace", s->gap_cv,
                 s->peak_1s, s->peak_1s == 1 ? "" : "s", s->burst_max);
    else
        snprintf(s->reason, sizeof(s->reason),
                 "at most %u request%s in 1 s, largest burst %u: within "
                 "a person's pace", s->peak_1s, s->peak_1s == 1 ? "" : "s",
                 s->burst_max);
}

void
tr_traffic_summarize(const tr_traffic *t, uint32_t idx,
                     tr_traffic_summary *s)
{
    memset(s, 0, sizeof(*s));
    s->gap_mean_s = -1;
    s->gap_cv = -1;
    s->peak_inflight = -1;
    if (idx >= t->n)
        return;
    const tr_traffic_principal *p = t->v[idx];

    s->count = p->count;
    s->first_ns = p->first_ns;
    s->last_ns = p->last_ns;
    if (!p->count)
        return;
    s->mean_rate = (double)p->count / span_s(t->first_ns, t->last_ns);
    s->active_rate = (double)p->count / span_s(p->first_ns, p->last_ns);
    s->peak_1s = p->peak_1s;
    s->peak_10s = p->peak_10s;
    if (p->n_gaps) {
        s->gap_mean_s = p->gap_mean;
        /* Population standard deviation over the mean. */
        if (p->n_gaps >= 2 && p->gap_mean > 0)
            s->gap_cv = sqrt(p->gap_m2 / (double)p->n_gaps) / p->gap_mean;
    }
    s->bursts = p->bursts + (p->burst_cur ? 1 : 0);
    s->burst_max = p->burst_max;
    s->burst_p95 = burst_p95(p);
    if (p->with_duration) {
        s->peak_inflight = p->peak_inflight;
        s->inflight_saturated = p->inflight_saturated;
    }
    for (size_t h = 0; h < TR_TRAFFIC_HOURS; h++)
        if (p->hours[h])
            s->hours_active++;

    classify(t, p, s);
    if (p->other)
        return;

    if (p->with_duration) {
        s->concurrency = p->peak_inflight;
        s->concurrency_basis = TR_CAP_INFLIGHT;
    } else {
        s->concurrency = p->peak_1s;
        s->concurrency_basis = TR_CAP_BURST;
    }
    if (!s->concurrency)
        s->concurrency = 1;
    size_t j = rate_index_of(t, p);
    s->rate = tr_traffic_rates[j];
    s->burst = tr_traffic_min_burst(p, j);
    size_t m = minute_index_of(t, p);
    s->minute_limit = tr_traffic_minute_limits[m];
    s->minute_refused = minute_refused(p, m);
}

int
tr_traffic_budget_class(const tr_traffic *t, uint32_t idx)
{
    if (idx >= t->n || t->v[idx]->other)
        return TR_TRAFFIC_CLASS_UNKNOWN;
    const tr_traffic_principal *p = t->v[idx];
    if (p->cls != TR_TRAFFIC_CLASS_UNKNOWN)
        return p->cls;
    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    if (s.shape == TR_SHAPE_BURSTY_AGENT || s.shape == TR_SHAPE_STEADY_AGENT)
        return TR_TRAFFIC_CLASS_AGENT;
    return TR_TRAFFIC_CLASS_HUMAN;
}

void
tr_traffic_class_recommend(const tr_traffic *t, int cls,
                           tr_traffic_class_rec *out)
{
    memset(out, 0, sizeof(*out));
    size_t rate_j = 0, minute_j = 0;

    /* First the largest rate and limit any principal needs ... */
    for (uint32_t i = 1; i < t->n; i++) {
        const tr_traffic_principal *p = t->v[i];
        if (!p->count || tr_traffic_budget_class(t, i) != cls)
            continue;
        tr_traffic_summary s;
        tr_traffic_summarize(t, i, &s);
        out->principals++;
        out->requests += p->count;
        if (s.concurrency > out->concurrency)
            out->concurrency = s.concurrency;
        size_t j = rate_index_of(t, p);
        if (j > rate_j)
            rate_j = j;
        size_t m = minute_index_of(t, p);
        if (m > minute_j)
            minute_j = m;
    }
    if (!out->principals)
        return;
    out->rate = tr_traffic_rates[rate_j];
    out->minute_limit = tr_traffic_minute_limits[minute_j];

    /* ... then the burst that admits every one of them at that rate. */
    out->burst = 1;
    for (uint32_t i = 1; i < t->n; i++) {
        const tr_traffic_principal *p = t->v[i];
        if (!p->count || tr_traffic_budget_class(t, i) != cls)
            continue;
        uint32_t b = tr_traffic_min_burst(p, rate_j);
        if (b > out->burst)
            out->burst = b;
        out->minute_refused += minute_refused(p, minute_j);
    }
}

uint64_t
tr_traffic_timeline(const tr_traffic *t, uint32_t idx,
                    uint32_t out[TR_TRAFFIC_TIMELINE_BINS])
{
    memset(out, 0, TR_TRAFFIC_TIMELINE_BINS * sizeof(out[0]));
    uint64_t width = (uint64_t)NS_PER_S << t->tl_shift_max;
    if (idx >= t->n)
        return width;
    const tr_traffic_principal *p = t->v[idx];
    /* Both widths are 1 s times a power of two from the same origin, so
     * merging runs of bins is exact. */
    uint32_t d = t->tl_shift_max - p->tl_shift;
    for (size_t i = 0; i < TR_TRAFFIC_TIMELINE_BINS; i++)
        if (d < 32 && (i >> d) < TR_TRAFFIC_TIMELINE_BINS)
            out[i >> d] += p->timeline[i];
    return width;
}

const char *
tr_traffic_shape_name(tr_traffic_shape s)
{
    switch (s) {
    case TR_SHAPE_TOO_FEW:
        return "too-few";
    case TR_SHAPE_HUMAN:
        return "human-like";
    case TR_SHAPE_BURSTY_AGENT:
        return "bursty-agent";
    case TR_SHAPE_STEADY_AGENT:
        return "steady-agent";
    case TR_SHAPE_AGGREGATE:
        return "aggregate";
    }
    return "?";
}

const char *
tr_traffic_class_name(int cls)
{
    if (cls == TR_TRAFFIC_CLASS_HUMAN)
        return "human";
    if (cls == TR_TRAFFIC_CLASS_AGENT)
        return "agent";
    return NULL;
}
