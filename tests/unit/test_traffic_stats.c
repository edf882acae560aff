/*
 * Traffic shape statistics (src/core/traffic_stats.c) on generated
 * timelines of known shape.  Every expected figure is recomputed here by
 * brute force from the generated requests, and the recommended rate and
 * burst are replayed through the real GCRA of src/core/gcra.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gcra.h"
#include "core/traffic_stats.h"

#define NS 1000000000LL
#define MS 1000000LL
#define T0 (1700000000LL * NS)  /* 2023-11-14T22:13:20Z */

typedef struct {
    int64_t t, dur;
} req;

typedef struct {
    req *r;
    size_t n, cap;
} timeline;

static uint64_t rng_state;

static uint64_t
rng(void)
{
    /* xorshift64*: deterministic, so every run sees the same shapes. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static int64_t
uniform(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng() % (uint64_t)(hi - lo + 1));
}

static void
push(timeline *tl, int64_t t, int64_t dur)
{
    if (tl->n == tl->cap) {
        tl->cap = tl->cap ? tl->cap * 2 : 256;
        tl->r = realloc(tl->r, tl->cap * sizeof(req));
        assert_non_null(tl->r);
    }
    tl->r[tl->n++] = (req){ t, dur };
}

static int
by_time(const void *a, const void *b)
{
    const req *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

static void
sort_timeline(timeline *tl)
{
    qsort(tl->r, tl->n, sizeof(req), by_time);
}

/* A person: one request every 3 to 7 s, each taking 50..300 ms. */
static void
gen_human(timeline *tl, int64_t start, size_t n)
{
    int64_t t = start;
    for (size_t i = 0; i < n; i++) {
        push(tl, t, uniform(50, 300) * MS);
        t += uniform(3000, 7000) * MS;
    }
}

/* A planner with 8 workers, each running requests back to back (200 ..
 * 400 ms, 0 .. 50 ms between), for `run_s` seconds, `runs` times, with
 * 10 minutes of silence between runs. */
static void
gen_planner(timeline *tl, int64_t start, int runs, int64_t run_s)
{
    for (int r = 0; r < runs; r++) {
        int64_t base = start + r * (run_s + 600) * NS;
        for (int w = 0; w < 8; w++) {
            int64_t t = base;
            while (t < base + run_s * NS) {
                int64_t d = uniform(200, 400) * MS;
                push(tl, t, d);
                t += d + uniform(0, 50) * MS;
            }
        }
    }
    sort_timeline(tl);
}

/* 500 calls spread at random over 10 s, then one more 30 min later. */
static void
gen_fanout(timeline *tl, int64_t start)
{
    for (int i = 0; i < 500; i++)
        push(tl, start + uniform(0, 9999) * MS, uniform(20, 80) * MS);
    sort_timeline(tl);
    push(tl, start + 1800 * NS, 30 * MS);
}

/* ---------------------------------------------------- brute force -- */

static void
exact_gap_stats(const timeline *tl, double *mean, double *cv)
{
    size_t n = tl->n - 1;
    double sum = 0, sq = 0;
    for (size_t i = 1; i < tl->n; i++)
        sum += (double)(tl->r[i].t - tl->r[i - 1].t) / 1e9;
    *mean = sum / (double)n;
    for (size_t i = 1; i < tl->n; i++) {
        double d = (double)(tl->r[i].t - tl->r[i - 1].t) / 1e9 - *mean;
        sq += d * d;
    }
    *cv = sqrt(sq / (double)n) / *mean;
}

/* Burst sizes with gaps < gap_ns joining. */
static size_t
exact_bursts(const timeline *tl, int64_t gap_ns, uint32_t *sizes)
{
    size_t k = 0;
    sizes[0] = 1;
    for (size_t i = 1; i < tl->n; i++) {
        if (tl->r[i].t - tl->r[i - 1].t < gap_ns)
            sizes[k]++;
        else
            sizes[++k] = 1;
    }
    return k + 1;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Most requests in any window [s, s + w): windows starting at a request
 * are enough to find the maximum. */
static uint32_t
exact_peak(const timeline *tl, int64_t w)
{
    uint32_t best = 0;
    size_t j = 0;
    for (size_t i = 0; i < tl->n; i++) {
        while (j < tl->n && tl->r[j].t < tl->r[i].t + w)
            j++;
        if (j - i > best)
            best = (uint32_t)(j - i);
    }
    return best;
}

/* Most requests in a window of w on the grid of step g. */
static uint32_t
exact_grid_peak(const timeline *tl, int64_t w, int64_t g)
{
    uint32_t best = 0;
    for (size_t i = 0; i < tl->n; i++) {
        /* Windows ending on the step of request i. */
        int64_t end = (tl->r[i].t / g + 1) * g;
        uint32_t c = 0;
        for (size_t j = 0; j < tl->n; j++)
            if (tl->r[j].t >= end - w && tl->r[j].t < end)
                c++;
        if (c > best)
            best = c;
    }
    return best;
}

static uint32_t
exact_inflight(const timeline *tl)
{
    uint32_t best = 0;
    for (size_t i = 0; i < tl->n; i++) {
        uint32_t c = 0;
        for (size_t j = 0; j < tl->n; j++)
            if (tl->r[j].t <= tl->r[i].t &&
                tl->r[i].t < tl->r[j].t + tl->r[j].dur)
                c++;
        if (c > best)
            best = c;
    }
    return best;
}

static uint64_t
exact_minute_refused(const timeline *tl, uint32_t limit)
{
    uint64_t refused = 0;
    size_t i = 0;
    while (i < tl->n) {
        int64_t m = tl->r[i].t / (60 * NS);
        uint32_t c = 0;
        while (i < tl->n && tl->r[i].t / (60 * NS) == m) {
            c++;
            i++;
        }
        if (c > limit)
            refused += c - limit;
    }
    return refused;
}

/* Requests the real GCRA refuses at `rate` with `burst`. */
static size_t
gcra_refusals(const timeline *tl, double rate, uint32_t burst)
{
    tr_gcra_params p;
    tr_gcra s;
    size_t refused = 0;
    assert_int_equal(tr_gcra_params_rate(&p, rate, burst), 0);
    tr_gcra_init(&s);
    for (size_t i = 0; i < tl->n; i++) {
        /* The GCRA clock only needs to be monotonic: start it at 1 s. */
        uint64_t now = (uint64_t)(tl->r[i].t - tl->r[0].t + NS);
        if (tr_gcra_check(&p, &s, 1, now, NULL) == TR_GCRA_OK)
            tr_gcra_charge(&p, &s, 1, now);
        else
            refused++;
    }
    return refused;
}

/* --------------------------------------------------------- fixture -- */

static tr_traffic *
feed(const timeline *tl, const char *name, tr_traffic *t, uint32_t *idx)
{
    if (!t) {
        tr_traffic_params p;
        tr_traffic_params_default(&p);
        p.seed = 42;
        t = tr_traffic_create(&p);
        assert_non_null(t);
    }
    *idx = tr_traffic_lookup(t, name, strlen(name), TR_TRAFFIC_CLASS_UNKNOWN,
                             false);
    assert_int_not_equal(*idx, UINT32_MAX);
    for (size_t i = 0; i < tl->n; i++)
        tr_traffic_add(t, *idx, tl->r[i].t, tl->r[i].dur);
    return t;
}

/* Checks every figure that has an exact brute-force counterpart. */
static void
assert_figures(const tr_traffic *t, uint32_t idx, const timeline *tl)
{
    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    assert_int_equal(s.count, tl->n);
    assert_int_equal(s.first_ns, tl->r[0].t);
    assert_int_equal(s.last_ns, tl->r[tl->n - 1].t);

    double mean, cv;
    exact_gap_stats(tl, &mean, &cv);
    assert_true(fabs(s.gap_mean_s - mean) < 1e-9 * (1 + mean));
    assert_true(fabs(s.gap_cv - cv) < 1e-9 * (1 + cv));

    assert_int_equal(s.peak_1s, exact_grid_peak(tl, NS, 10 * MS));
    assert_int_equal(s.peak_10s, exact_grid_peak(tl, 10 * NS, 100 * MS));
    assert_true(s.peak_1s <= exact_peak(tl, NS));

    uint32_t *sizes = calloc(tl->n, sizeof(uint32_t));
    size_t nb = exact_bursts(tl, NS, sizes);
    assert_int_equal(s.bursts, nb);
    qsort(sizes, nb, sizeof(uint32_t), cmp_u32);
    assert_int_equal(s.burst_max, sizes[nb - 1]);
    uint32_t p95 = sizes[(nb * 95 + 99) / 100 - 1];  /* nearest rank */
    assert_true(s.burst_p95 >= p95);
    assert_true(s.burst_p95 <= p95 + p95 / 8);
    free(sizes);

    assert_int_equal(s.peak_inflight, exact_inflight(tl));
    assert_false(s.inflight_saturated);

    /* The recommended budget admits everything; one unit less does not
     * (unless a burst of 1 already suffices). */
    assert_int_equal(gcra_refusals(tl, s.rate, s.burst), 0);
    if (s.burst > 1)
        assert_true(gcra_refusals(tl, s.rate, s.burst - 1) > 0);
    assert_int_equal(s.minute_refused,
                     exact_minute_refused(tl, s.minute_limit));

    uint32_t hours_total = 0, active = 0;
    const tr_traffic_principal *p = tr_traffic_get(t, idx);
    for (int h = 0; h < 24; h++) {
        hours_total += p->hours[h];
        active += p->hours[h] != 0;
    }
    assert_int_equal(hours_total, tl->n);
    assert_int_equal(s.hours_active, active);
}

/* ----------------------------------------------------------- tests -- */

static void
steady_human_cadence_is_human_like(void **state)
{
    timeline tl = { 0 };
    uint32_t idx;
    rng_state = 0x1234;
    gen_human(&tl, T0, 300);
    tr_traffic *t = feed(&tl, "alice", NULL, &idx);

    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    assert_int_equal(s.shape, TR_SHAPE_HUMAN);
    assert_non_null(strstr(s.reason, "person's pace"));
    assert_true(s.gap_cv > 0.1 && s.gap_cv < 0.5);
    assert_int_equal(s.burst_max, 1);       /* every gap is >= 3 s */
    assert_int_equal(s.peak_inflight, 1);
    assert_int_equal(s.concurrency, 1);
    assert_int_equal(s.concurrency_basis, TR_CAP_INFLIGHT);
    /* Mean rate over the log: about one request every 5 s. */
    assert_true(s.mean_rate > 0.18 && s.mean_rate < 0.22);
    /* rate >= 2 x mean on the ladder is 0.5/s: gaps of >= 3 s never
     * queue behind 2 s of emission interval, so a burst of 1 is enough. */
    assert_true(s.rate == 0.5);
    assert_int_equal(s.burst, 1);
    assert_figures(t, idx, &tl);
    assert_int_equal(tr_traffic_budget_class(t, idx), TR_TRAFFIC_CLASS_HUMAN);
    tr_traffic_free(t);
    free(tl.r);
}

static void
eight_worker_planner_needs_a_cap_of_eight(void **state)
{
    timeline tl = { 0 };
    uint32_t idx;
    rng_state = 0x5678;
    gen_planner(&tl, T0, 3, 30);
    tr_traffic *t = feed(&tl, "planner", NULL, &idx);

    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    assert_int_equal(s.shape, TR_SHAPE_BURSTY_AGENT);
    assert_non_null(strstr(s.reason, "a burst of"));
    assert_int_equal(s.peak_inflight, 8);
    assert_int_equal(s.concurrency, 8);
    assert_int_equal(s.concurrency_basis, TR_CAP_INFLIGHT);
    /* Three runs separated by 10 minutes: three bursts. */
    assert_int_equal(s.bursts, 3);
    /* 8 workers of ~300 ms each: about 26 requests per second. */
    assert_true(s.peak_1s >= 20 && s.peak_1s <= 40);
    assert_figures(t, idx, &tl);
    assert_int_equal(tr_traffic_budget_class(t, idx), TR_TRAFFIC_CLASS_AGENT);
    tr_traffic_free(t);
    free(tl.r);
}

static void
fanout_then_silence_is_a_bursty_agent(void **state)
{
    timeline tl = { 0 };
    uint32_t idx;
    rng_state = 0x9abc;
    gen_fanout(&tl, T0);
    tr_traffic *t = feed(&tl, "fanout", NULL, &idx);

    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    assert_int_equal(s.shape, TR_SHAPE_BURSTY_AGENT);
    assert_int_equal(s.burst_max, 500);
    assert_non_null(strstr(s.reason, "a burst of 500 requests"));
    assert_int_equal(s.bursts, 2);
    /* The 30 minute silence dominates the gaps. */
    assert_true(s.gap_cv > 10);
    assert_true(s.peak_1s >= 50);
    assert_true(s.peak_10s >= 500);
    /* 501 requests over 1800 s: 0.278/s, so the ladder rate is 1/s and
     * the burst must cover nearly the whole fan-out. */
    assert_true(s.rate == 1);
    assert_true(s.burst > 450 && s.burst <= 500);
    /* A per-minute limit at 2x the mean (34/min, ladder 50) refuses the
     * fan-out beyond 50 in its minute. */
    assert_int_equal(s.minute_limit, 50);
    assert_int_equal(s.minute_refused, 450);
    assert_figures(t, idx, &tl);
    tr_traffic_free(t);
    free(tl.r);
}

static void
three_shapes_in_one_table_keep_their_own_figures(void **state)
{
    timeline h = { 0 }, pl = { 0 }, f = { 0 };
    uint32_t ih, ip, i_f;
    rng_state = 0xdef0;
    gen_human(&h, T0, 400);
    gen_planner(&pl, T0 + 60 * NS, 2, 20);
    gen_fanout(&f, T0 + 120 * NS);

    /* Interleave the three in time order, as a log would. */
    tr_traffic_params p;
    tr_traffic_params_default(&p);
    tr_traffic *t = tr_traffic_create(&p);
    ih = tr_traffic_lookup(t, "h", 1, TR_TRAFFIC_CLASS_UNKNOWN, false);
    ip = tr_traffic_lookup(t, "p", 1, TR_TRAFFIC_CLASS_UNKNOWN, false);
    i_f = tr_traffic_lookup(t, "f", 1, TR_TRAFFIC_CLASS_UNKNOWN, false);
    size_t a = 0, b = 0, c = 0;
    while (a < h.n || b < pl.n || c < f.n) {
        int64_t ta = a < h.n ? h.r[a].t : INT64_MAX;
        int64_t tb = b < pl.n ? pl.r[b].t : INT64_MAX;
        int64_t tc = c < f.n ? f.r[c].t : INT64_MAX;
        if (ta <= tb && ta <= tc) {
            tr_traffic_add(t, ih, ta, h.r[a++].dur);
        } else if (tb <= tc) {
            tr_traffic_add(t, ip, tb, pl.r[b++].dur);
        } else {
            tr_traffic_add(t, i_f, tc, f.r[c++].dur);
        }
    }
    assert_figures(t, ih, &h);
    assert_figures(t, ip, &pl);
    assert_figures(t, i_f, &f);
    assert_int_equal(tr_traffic_requests(t), h.n + pl.n + f.n);

    tr_traffic_summary s;
    tr_traffic_summarize(t, ih, &s);
    assert_int_equal(s.shape, TR_SHAPE_HUMAN);
    tr_traffic_summarize(t, ip, &s);
    assert_int_equal(s.shape, TR_SHAPE_BURSTY_AGENT);
    tr_traffic_summarize(t, i_f, &s);
    assert_int_equal(s.shape, TR_SHAPE_BURSTY_AGENT);

    /* budgets.agent must admit both agents: replay each through GCRA. */
    tr_traffic_class_rec rec;
    tr_traffic_class_recommend(t, TR_TRAFFIC_CLASS_AGENT, &rec);
    assert_int_equal(rec.principals, 2);
    assert_int_equal(rec.requests, pl.n + f.n);
    assert_int_equal(rec.concurrency, 8);
    assert_int_equal(gcra_refusals(&pl, rec.rate, rec.burst), 0);
    assert_int_equal(gcra_refusals(&f, rec.rate, rec.burst), 0);
    assert_true(gcra_refusals(&pl, rec.rate, rec.burst - 1) > 0 ||
                gcra_refusals(&f, rec.rate, rec.burst - 1) > 0);
    assert_int_equal(rec.minute_refused,
                     exact_minute_refused(&pl, rec.minute_limit) +
                         exact_minute_refused(&f, rec.minute_limit));

    tr_traffic_class_recommend(t, TR_TRAFFIC_CLASS_HUMAN, &rec);
    assert_int_equal(rec.principals, 1);
    assert_int_equal(gcra_refusals(&h, rec.rate, rec.burst), 0);

    tr_traffic_free(t);
    free(h.r);
    free(pl.r);
    free(f.r);
}

static void
machine_regular_polling_is_a_steady_agent(void **state)
{
    timeline tl = { 0 };
    uint32_t idx;
    for (int i = 0; i < 200; i++)
        push(&tl, T0 + i * 2 * NS + (i % 3) * MS, -1);
    tr_traffic *t = feed(&tl, "poller", NULL, &idx);
    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    assert_int_equal(s.shape, TR_SHAPE_STEADY_AGENT);
    assert_non_null(strstr(s.reason, "machine-regular"));
    /* No durations: no in-flight figure, the cap comes from the peak. */
    assert_int_equal(s.peak_inflight, -1);
    assert_int_equal(s.concurrency_basis, TR_CAP_BURST);
    assert_int_equal(s.concurrency, s.peak_1s);
    tr_traffic_free(t);
    free(tl.r);
}

static void
few_requests_are_not_judged(void **state)
{
    timeline tl = { 0 };
    uint32_t idx;
    for (int i = 0; i < 5; i++)
        push(&tl, T0 + i * MS, 10 * MS);
    tr_traffic *t = feed(&tl, "x", NULL, &idx);
    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    assert_int_equal(s.shape, TR_SHAPE_TOO_FEW);
    assert_non_null(strstr(s.reason, "only 5 requests"));
    tr_traffic_free(t);
    free(tl.r);
}

static void
principals_over_the_cap_go_to_other(void **state)
{
    tr_traffic_params p;
    tr_traffic_params_default(&p);
    p.max_principals = 3;
    tr_traffic *t = tr_traffic_create(&p);
    char name[16];
    uint32_t first[3];
    for (int i = 0; i < 10; i++) {
        int n = snprintf(name, sizeof(name), "p%d", i);
        uint32_t idx = tr_traffic_lookup(t, name, (size_t)n,
                                         TR_TRAFFIC_CLASS_UNKNOWN, false);
        if (i < 3) {
            assert_int_not_equal(idx, 0);
            first[i] = idx;
        } else {
            assert_int_equal(idx, 0);
        }
        tr_traffic_add(t, idx, T0 + i * NS, -1);
        tr_traffic_add(t, idx, T0 + i * NS + MS, -1);
    }
    /* Tracked ones are still found; the rest are counted together. */
    assert_int_equal(tr_traffic_lookup(t, "p1", 2, TR_TRAFFIC_CLASS_UNKNOWN,
                                       false), first[1]);
    assert_int_equal(tr_traffic_count(t), 4);
    assert_int_equal(tr_traffic_overflow_requests(t), 14);
    assert_true(tr_traffic_get(t, 0)->other);
    tr_traffic_summary s;
    tr_traffic_summarize(t, 0, &s);
    assert_int_equal(s.shape, TR_SHAPE_AGGREGATE);
    assert_int_equal(s.count, 14);
    assert_int_equal(tr_traffic_budget_class(t, 0), TR_TRAFFIC_CLASS_UNKNOWN);
    tr_traffic_free(t);
}

static void
class_and_long_keys_keep_principals_apart(void **state)
{
    tr_traffic_params p;
    tr_traffic_params_default(&p);
    tr_traffic *t = tr_traffic_create(&p);
    uint32_t h = tr_traffic_lookup(t, "alice", 5, TR_TRAFFIC_CLASS_HUMAN,
                                   false);
    uint32_t a = tr_traffic_lookup(t, "alice", 5, TR_TRAFFIC_CLASS_AGENT,
                                   false);
    assert_int_not_equal(h, a);
    assert_int_equal(tr_traffic_lookup(t, "alice", 5, TR_TRAFFIC_CLASS_AGENT,
                                       false), a);

    char k1[600], k2[600];
    memset(k1, 'x', sizeof(k1));
    memcpy(k2, k1, sizeof(k2));
    k2[599] = 'y';
    uint32_t l1 = tr_traffic_lookup(t, k1, sizeof(k1), -1, false);
    uint32_t l2 = tr_traffic_lookup(t, k2, sizeof(k2), -1, false);
    assert_int_not_equal(l1, l2);
    assert_int_equal(tr_traffic_lookup(t, k1, sizeof(k1), -1, false), l1);
    const tr_traffic_principal *pp = tr_traffic_get(t, l1);
    assert_int_equal(pp->key_len, TR_TRAFFIC_KEY_MAX);
    assert_int_equal(pp->key[TR_TRAFFIC_KEY_MAX - 17], '~');

    /* Many keys: the index grows and every key is still found. */
    char name[32];
    uint32_t idx[2000];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(name, sizeof(name), "user-%d", i);
        idx[i] = tr_traffic_lookup(t, name, (size_t)n, -1, true);
    }
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(name, sizeof(name), "user-%d", i);
        assert_int_equal(tr_traffic_lookup(t, name, (size_t)n, -1, true),
                         idx[i]);
        assert_true(tr_traffic_get(t, idx[i])->unverified);
    }
    tr_traffic_free(t);
}

static void
late_requests_are_clamped_and_counted(void **state)
{
    tr_traffic_params p;
    tr_traffic_params_default(&p);
    tr_traffic *t = tr_traffic_create(&p);
    uint32_t i = tr_traffic_lookup(t, "a", 1, -1, false);
    tr_traffic_add(t, i, T0 + 10 * NS, -1);
    tr_traffic_add(t, i, T0 + 5 * NS, -1);     /* 5 s late */
    tr_traffic_add(t, i, T0 + 12 * NS, -1);
    const tr_traffic_principal *pp = tr_traffic_get(t, i);
    assert_int_equal(pp->late, 1);
    assert_int_equal(pp->last_ns, T0 + 12 * NS);
    tr_traffic_summary s;
    tr_traffic_summarize(t, i, &s);
    /* Gaps 0 and 2 s. */
    assert_true(fabs(s.gap_mean_s - 1.0) < 1e-12);
    assert_int_equal(s.first_ns, T0 + 10 * NS);
    tr_traffic_free(t);
}

static void
one_second_timestamps_join_bursts_across_seconds(void **state)
{
    for (int coarse = 0; coarse < 2; coarse++) {
        tr_traffic_params p;
        tr_traffic_params_default(&p);
        tr_traffic *t = tr_traffic_create(&p);
        if (coarse)
            tr_traffic_set_resolution(t, NS);
        tr_traffic_set_resolution(t, MS);   /* never makes it finer */
        uint32_t i = tr_traffic_lookup(t, "a", 1, -1, false);
        for (int k = 0; k < 60; k++)
            tr_traffic_add(t, i, T0 + k * NS, -1);
        tr_traffic_summary s;
        tr_traffic_summarize(t, i, &s);
        assert_int_equal(s.burst_max, coarse ? 60 : 1);
        assert_int_equal(s.bursts, coarse ? 1 : 60);
        assert_int_equal(tr_traffic_resolution(t), coarse ? NS : MS);
        tr_traffic_free(t);
    }
}

static void
inflight_saturates_at_its_cap(void **state)
{
    tr_traffic_params p;
    tr_traffic_params_default(&p);
    tr_traffic *t = tr_traffic_create(&p);
    uint32_t i = tr_traffic_lookup(t, "a", 1, -1, false);
    for (int k = 0; k < TR_TRAFFIC_INFLIGHT_MAX + 10; k++)
        tr_traffic_add(t, i, T0 + k * MS, 3600 * NS);
    tr_traffic_summary s;
    tr_traffic_summarize(t, i, &s);
    assert_int_equal(s.peak_inflight, TR_TRAFFIC_INFLIGHT_MAX);
    assert_true(s.inflight_saturated);
    tr_traffic_free(t);
}

static void
timelines_share_one_bin_width(void **state)
{
    tr_traffic_params p;
    tr_traffic_params_default(&p);
    tr_traffic *t = tr_traffic_create(&p);
    uint32_t a = tr_traffic_lookup(t, "a", 1, -1, false);
    uint32_t b = tr_traffic_lookup(t, "b", 1, -1, false);
    /* a: 100 requests in the first 100 s; b: 10 over 2 hours. */
    for (int k = 0; k < 100; k++)
        tr_traffic_add(t, a, T0 + k * NS, -1);
    for (int k = 0; k < 10; k++)
        tr_traffic_add(t, b, T0 + 100 * NS + k * 720 * NS, -1);
    uint32_t ta[TR_TRAFFIC_TIMELINE_BINS], tb[TR_TRAFFIC_TIMELINE_BINS];
    uint64_t wa = tr_traffic_timeline(t, a, ta);
    uint64_t wb = tr_traffic_timeline(t, b, tb);
    assert_int_equal(wa, wb);
    /* 100 + 9 * 720 s = 6580 s over 120 bins: 64 s per bin. */
    assert_int_equal(wa, 64 * NS);
    uint32_t sa = 0, sb = 0;
    for (int k = 0; k < TR_TRAFFIC_TIMELINE_BINS; k++) {
        sa += ta[k];
        sb += tb[k];
    }
    assert_int_equal(sa, 100);
    assert_int_equal(sb, 10);
    assert_int_equal(ta[0], 64);
    assert_int_equal(ta[1], 36);
    tr_traffic_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steady_human_cadence_is_human_like),
        cmocka_unit_test(eight_worker_planner_needs_a_cap_of_eight),
        cmocka_unit_test(fanout_then_silence_is_a_bursty_agent),
        cmocka_unit_test(three_shapes_in_one_table_keep_their_own_figures),
        cmocka_unit_test(machine_regular_polling_is_a_steady_agent),
        cmocka_unit_test(few_requests_are_not_judged),
        cmocka_unit_test(principals_over_the_cap_go_to_other),
        cmocka_unit_test(class_and_long_keys_keep_principals_apart),
        cmocka_unit_test(late_requests_are_clamped_and_counted),
        cmocka_unit_test(one_second_timestamps_join_bursts_across_seconds),
        cmocka_unit_test(inflight_saturates_at_its_cap),
        cmocka_unit_test(timelines_share_one_bin_width),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
