/* The live top-N of bursty principals (src/core/burst_topn.c), on a
 * virtual clock. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/burst_topn.h"

#define NS 1000000000ull
#define MS 1000000ull

static tr_burst_topn *
make(uint32_t slots, uint64_t half_life)
{
    tr_burst_topn_params p;
    tr_burst_topn_params_default(&p);
    p.slots = slots;
    p.half_life_ns = half_life;
    tr_burst_topn *tn = tr_burst_topn_create(&p, 0x5eed);
    assert_non_null(tn);
    return tn;
}

static void
obs(tr_burst_topn *tn, const char *key, uint64_t t, uint32_t inflight)
{
    tr_burst_topn_observe(tn, key, strlen(key), t, inflight);
}

static bool
entry_is(const tr_burst_topn_entry *e, const char *key)
{
    return e->key_len == strlen(key) && !memcmp(e->key, key, e->key_len);
}

static void
invalid_parameters_are_refused(void **state)
{
    tr_burst_topn_params p;
    tr_burst_topn_params_default(&p);
    p.sketch_width = 1000;          /* not a power of two */
    assert_null(tr_burst_topn_create(&p, 1));
    assert_int_equal(tr_burst_topn_memory(&p), 0);
    tr_burst_topn_params_default(&p);
    p.slots = 0;
    assert_null(tr_burst_topn_create(&p, 1));
    tr_burst_topn_params_default(&p);
    p.sketch_depth = 9;
    assert_null(tr_burst_topn_create(&p, 1));
}

static void
memory_stays_fixed_however_many_principals(void **state)
{
    tr_burst_topn *tn = make(16, 0);
    tr_burst_topn_stats st;
    tr_burst_topn_stats_get(tn, &st);
    size_t bytes = st.bytes;
    tr_burst_topn_params p;
    tr_burst_topn_params_default(&p);
    p.slots = 16;
    assert_int_equal(bytes, tr_burst_topn_memory(&p));

    char key[32];
    for (int i = 0; i < 200000; i++) {
        int n = snprintf(key, sizeof(key), "principal-%d", i);
        /* Pairs of requests 1 ms apart: everyone bursts a little. */
        tr_burst_topn_observe(tn, key, (size_t)n, (uint64_t)i * 10 * MS, 1);
        tr_burst_topn_observe(tn, key, (size_t)n,
                              (uint64_t)i * 10 * MS + MS, 1);
    }
    tr_burst_topn_stats_get(tn, &st);
    assert_int_equal(st.bytes, bytes);
    assert_int_equal(st.followed, 16);
    assert_int_equal(st.observed, 400000);
    tr_burst_topn_free(tn);
}

static void
a_burst_among_many_one_off_callers_ranks_first(void **state)
{
    tr_burst_topn *tn = make(8, 0);
    char key[32];
    uint64_t t = NS;
    /* 10,000 callers with one request each, 100 ms apart, with a
     * 300-request fan-out (10 ms apart) in the middle. */
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof(key), "once-%d", i);
        tr_burst_topn_observe(tn, key, (size_t)n, t, 1);
        if (i >= 5000 && i < 5300)
            obs(tn, "fanout", t + 5 * MS, 3);
        t += 100 * MS;
    }
    tr_burst_topn_entry e[3];
    size_t k = tr_burst_topn_top(tn, t, e, 3);
    assert_true(k >= 1);
    assert_true(entry_is(&e[0], "fanout"));
    /* 100 ms apart: one burst of all 300; whatever the sketch added on
     * entry is bounded by burst_error. */
    assert_true(e[0].burst_max >= 300);
    assert_true(e[0].burst_max - e[0].burst_error <= 300);
    assert_int_equal(e[0].inflight_peak, 3);
    /* The burst ended long ago (t is far past the last request). */
    assert_int_equal(e[0].burst_now, 0);
    tr_burst_topn_free(tn);
}

static void
ranking_follows_burst_size(void **state)
{
    tr_burst_topn *tn = make(8, 0);
    const char *names[] = { "five", "fifty", "twenty" };
    const int sizes[] = { 5, 50, 20 };
    uint64_t t = NS;
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < sizes[k]; i++)
            obs(tn, names[k], t + (uint64_t)i * 100 * MS, 1);
        t += 60 * NS;
    }
    tr_burst_topn_entry e[8];
    size_t n = tr_burst_topn_top(tn, t, e, 8);
    assert_int_equal(n, 3);
    assert_true(entry_is(&e[0], "fifty"));
    assert_true(entry_is(&e[1], "twenty"));
    assert_true(entry_is(&e[2], "five"));
    assert_int_equal(e[0].burst_max, 50);
    assert_int_equal(e[0].burst_error, 0);
    assert_int_equal(e[0].requests, 50);
    assert_true(e[0].score == 50.0);
    /* Asking for fewer gives the first ones. */
    assert_int_equal(tr_burst_topn_top(tn, t, e, 2), 2);
    assert_true(entry_is(&e[1], "twenty"));
    tr_burst_topn_free(tn);
}

static void
old_bursts_decay_and_give_way(void **state)
{
    uint64_t half = 600 * NS;
    tr_burst_topn *tn = make(4, half);
    for (int i = 0; i < 100; i++)
        obs(tn, "old", NS + (uint64_t)i * 10 * MS, 1);
    uint64_t later = 3600 * NS;
    for (int i = 0; i < 30; i++)
        obs(tn, "recent", later + (uint64_t)i * 10 * MS, 1);
    uint64_t now = later + NS;
    tr_burst_topn_entry e[2];
    assert_int_equal(tr_burst_topn_top(tn, now, e, 2), 2);
    assert_true(entry_is(&e[0], "recent"));
    assert_true(entry_is(&e[1], "old"));
    /* 100 decayed over (now - last request of "old") / 10 min. */
    double age = (double)(now - (NS + 99 * 10 * MS));
    assert_true(fabs(e[1].score - 100 * exp2(-age / (double)half)) < 1e-9);
    /* The reported figure is not decayed. */
    assert_int_equal(e[1].burst_max, 100);
    tr_burst_topn_free(tn);
}

static void
lone_requests_never_evict(void **state)
{
    tr_burst_topn *tn = make(2, 0);
    obs(tn, "a", NS, 1);
    obs(tn, "a", NS + MS, 1);
    obs(tn, "b", NS, 1);
    obs(tn, "b", NS + MS, 1);
    /* Far apart in time, each newcomer is a burst of one. */
    char key[16];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof(key), "c%d", i);
        tr_burst_topn_observe(tn, key, (size_t)n, (uint64_t)(10 + i) * NS, 1);
    }
    tr_burst_topn_stats st;
    tr_burst_topn_stats_get(tn, &st);
    assert_int_equal(st.admitted, 2);
    assert_int_equal(st.evicted, 0);
    /* In-flight alone is reason enough to enter. */
    obs(tn, "wide", 200 * NS, 5);
    tr_burst_topn_stats_get(tn, &st);
    assert_int_equal(st.evicted, 1);
    tr_burst_topn_entry e[1];
    tr_burst_topn_top(tn, 200 * NS, e, 1);
    assert_true(entry_is(&e[0], "wide"));
    assert_int_equal(e[0].inflight_peak, 5);
    tr_burst_topn_free(tn);
}

static void
interarrival_cv_is_exact_once_followed(void **state)
{
    tr_burst_topn *tn = make(4, 0);
    const uint64_t gaps_ms[] = { 100, 300, 100, 900, 100, 500 };
    uint64_t t = NS;
    obs(tn, "p", t, 1);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < 6; i++) {
        t += gaps_ms[i] * MS;
        obs(tn, "p", t, 1);
        sum += (double)gaps_ms[i] / 1000;
    }
    double mean = sum / 6;
    for (size_t i = 0; i < 6; i++) {
        double d = (double)gaps_ms[i] / 1000 - mean;
        sq += d * d;
    }
    tr_burst_topn_entry e;
    tr_burst_topn_iter it;
    tr_burst_topn_iter_init(&it, tn, t, 5);
    assert_true(tr_burst_topn_iter_next(&it, &e));
    assert_false(tr_burst_topn_iter_next(&it, &e));
    assert_true(fabs(e.interarrival_mean_s - mean) < 1e-12);
    assert_true(fabs(e.interarrival_cv - sqrt(sq / 6) / mean) < 1e-12);
    assert_int_equal(e.requests, 7);
    assert_int_equal(e.burst_now, 7);
    tr_burst_topn_free(tn);
}

static void
evictions_keep_every_followed_key_findable(void **state)
{
    /* Few slots, many contenders with growing bursts: every eviction
     * reshuffles the index.  A followed key observed again must count
     * on its slot, not be admitted a second time. */
    tr_burst_topn *tn = make(4, 0);
    char key[16];
    uint64_t t = NS;
    for (int round = 1; round <= 40; round++) {
        int n = snprintf(key, sizeof(key), "k%d", round);
        for (int i = 0; i < round + 1; i++)
            tr_burst_topn_observe(tn, key, (size_t)n, t + (uint64_t)i * MS,
                                  1);
        t += 10 * NS;
    }
    tr_burst_topn_stats st;
    tr_burst_topn_stats_get(tn, &st);
    uint64_t admitted = st.admitted;
    tr_burst_topn_entry e[4];
    assert_int_equal(tr_burst_topn_top(tn, t, e, 4), 4);
    for (int i = 0; i < 4; i++) {
        /* The four largest bursts: k40, k39, k38, k37. */
        snprintf(key, sizeof(key), "k%d", 40 - i);
        assert_true(entry_is(&e[i], key));
        uint64_t before = e[i].requests;
        tr_burst_topn_observe(tn, e[i].key, e[i].key_len, t, 1);
        tr_burst_topn_entry again[4];
        tr_burst_topn_top(tn, t, again, 4);
        bool found = false;
        for (int j = 0; j < 4; j++)
            if (entry_is(&again[j], key)) {
                assert_int_equal(again[j].requests, before + 1);
                found = true;
            }
        assert_true(found);
    }
    tr_burst_topn_stats_get(tn, &st);
    assert_int_equal(st.admitted, admitted);
    tr_burst_topn_free(tn);
}

static void
long_keys_are_kept_truncated_and_told_apart(void **state)
{
    tr_burst_topn *tn = make(4, 0);
    char a[100], b[100];
    memset(a, 'a', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[99] = 'b';
    tr_burst_topn_observe(tn, a, sizeof(a), NS, 1);
    tr_burst_topn_observe(tn, b, sizeof(b), NS, 1);
    tr_burst_topn_observe(tn, a, sizeof(a), NS + MS, 1);
    tr_burst_topn_entry e[4];
    assert_int_equal(tr_burst_topn_top(tn, NS + MS, e, 4), 2);
    assert_true(e[0].key_truncated);
    assert_int_equal(e[0].key_len, TR_BURST_TOPN_KEY_MAX);
    assert_int_equal(e[0].requests, 2);
    assert_int_equal(e[1].requests, 1);
    tr_burst_topn_free(tn);
}

static void
empty_table_iterates_nothing(void **state)
{
    tr_burst_topn *tn = make(4, 0);
    tr_burst_topn_iter it;
    tr_burst_topn_entry e;
    tr_burst_topn_iter_init(&it, tn, NS, 10);
    assert_false(tr_burst_topn_iter_next(&it, &e));
    tr_burst_topn_free(tn);
}

static void
entering_mid_burst_carries_the_sketch_estimate(void **state)
{
    tr_burst_topn *tn = make(2, 0);
    /* Two followed principals with bursts of 3. */
    for (int i = 0; i < 3; i++) {
        obs(tn, "a", NS + (uint64_t)i * MS, 1);
        obs(tn, "b", NS + (uint64_t)i * MS, 1);
    }
    /* "c" bursts 10 requests: it can only enter once the sketch says
     * its run (4) beats the lowest score (3). */
    for (int i = 0; i < 10; i++)
        obs(tn, "c", 10 * NS + (uint64_t)i * MS, 1);
    tr_burst_topn_entry e[2];
    assert_int_equal(tr_burst_topn_top(tn, 10 * NS + 9 * MS, e, 2), 2);
    assert_true(entry_is(&e[0], "c"));
    assert_int_equal(e[0].burst_max, 10);
    assert_int_equal(e[0].burst_error, 3);
    assert_int_equal(e[0].requests, 7);
    tr_burst_topn_free(tn);
}

static void
lone_requests_do_not_evict_decayed_principals(void **state)
{
    tr_burst_topn *tn = make(1, 60 * NS);
    obs(tn, "a", NS, 1);
    obs(tn, "a", NS + MS, 1);
    /* An hour later "a" scores 2 / 2^60: still a lone request is no
     * reason to replace it. */
    obs(tn, "z", 3600 * NS, 1);
    tr_burst_topn_entry e[1];
    tr_burst_topn_top(tn, 3600 * NS, e, 1);
    assert_true(entry_is(&e[0], "a"));
    assert_true(e[0].score < 1e-12);
    /* A second request 1 ms later makes it a burst: now it enters. */
    obs(tn, "z", 3600 * NS + MS, 1);
    tr_burst_topn_top(tn, 3600 * NS + MS, e, 1);
    assert_true(entry_is(&e[0], "z"));
    tr_burst_topn_free(tn);
}

static void
index_survives_thousands_of_evictions(void **state)
{
    tr_burst_topn *tn = make(8, 0);
    char key[24];
    uint64_t t = NS;
    for (int round = 0; round < 3000; round++) {
        int n = snprintf(key, sizeof(key), "r%d", round);
        /* Growing bursts: every round evicts the lowest. */
        for (int i = 0; i < round / 4 + 3; i++)
            tr_burst_topn_observe(tn, key, (size_t)n, t + (uint64_t)i, 1);
        t += 10 * NS;
        if (round % 7)
            continue;
        /* Every followed key must still be found on its slot. */
        tr_burst_topn_stats st0, st1;
        tr_burst_topn_stats_get(tn, &st0);
        tr_burst_topn_entry e[8];
        size_t k = tr_burst_topn_top(tn, t, e, 8);
        for (size_t j = 0; j < k; j++)
            tr_burst_topn_observe(tn, e[j].key, e[j].key_len, t, 1);
        tr_burst_topn_stats_get(tn, &st1);
        assert_int_equal(st1.admitted, st0.admitted);
        assert_int_equal(st1.followed, k);
        t += 10 * NS;
    }
    tr_burst_topn_stats st;
    tr_burst_topn_stats_get(tn, &st);
    assert_true(st.evicted > 500);
    tr_burst_topn_free(tn);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invalid_parameters_are_refused),
        cmocka_unit_test(memory_stays_fixed_however_many_principals),
        cmocka_unit_test(a_burst_among_many_one_off_callers_ranks_first),
        cmocka_unit_test(ranking_follows_burst_size),
        cmocka_unit_test(old_bursts_decay_and_give_way),
        cmocka_unit_test(lone_requests_never_evict),
        cmocka_unit_test(interarrival_cv_is_exact_once_followed),
        cmocka_unit_test(evictions_keep_every_followed_key_findable),
        cmocka_unit_test(long_keys_are_kept_truncated_and_told_apart),
        cmocka_unit_test(empty_table_iterates_nothing),
        cmocka_unit_test(entering_mid_burst_carries_the_sketch_estimate),
        cmocka_unit_test(lone_requests_do_not_evict_decayed_principals),
        cmocka_unit_test(index_survives_thousands_of_evictions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
