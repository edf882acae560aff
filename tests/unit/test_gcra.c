/* GCRA on a virtual clock: every time below is an argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/gcra.h"

#define MS 1000000ull
#define S 1000000000ull

/* rate 10/s, burst 20: T = 100 ms, tau = 2 s (cases/budgets.md) */
static tr_gcra_params
rate_10_burst_20(void)
{
    tr_gcra_params p;

    assert_int_equal(tr_gcra_params_rate(&p, 10.0, 20), 0);
    return p;
}

/* A tiny deterministic generator, so failures reproduce. */
static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static bool
try_take(const tr_gcra_params *p, tr_gcra *s, uint32_t cost, uint64_t now)
{
    if (tr_gcra_check(p, s, cost, now, NULL) != TR_GCRA_OK)
        return false;
    tr_gcra_charge(p, s, cost, now);
    return true;
}

static void
test_params_rate_10_burst_20_is_100ms_and_2s(void **state)
{
    tr_gcra_params p = rate_10_burst_20();

    assert_int_equal(p.t_ns, 100 * MS);
    assert_int_equal(p.tau_ns, 2 * S);
    assert_int_equal(p.burst, 20);
}

static void
test_params_quota_30_per_60s_is_one_unit_every_2s(void **state)
{
    tr_gcra_params p;

    assert_int_equal(tr_gcra_params_quota(&p, 30, 60), 0);
    assert_int_equal(p.t_ns, 2 * S);
    assert_int_equal(p.tau_ns, 60 * S);
    /* 7 per 60 s does not divide: T rounds down, tau just under 60 s. */
    assert_int_equal(tr_gcra_params_quota(&p, 7, 60), 0);
    assert_int_equal(p.t_ns, 8571428571ull);
    assert_int_equal(p.tau_ns, 7 * 8571428571ull);
}

static void
test_params_refuse_nonsense(void **state)
{
    tr_gcra_params p;

    assert_int_equal(tr_gcra_params_rate(&p, 0.0, 20), -1);
    assert_int_equal(tr_gcra_params_rate(&p, -1.0, 20), -1);
    assert_int_equal(tr_gcra_params_rate(&p, 0.0 / 0.0, 20), -1);
    assert_int_equal(tr_gcra_params_rate(&p, 10.0, 0), -1);
    assert_int_equal(tr_gcra_params_quota(&p, 0, 60), -1);
    assert_int_equal(tr_gcra_params_quota(&p, 30, 0), -1);
    /* tau over 2^60 ns */
    assert_int_equal(tr_gcra_params_rate(&p, 1e-9, 4000000000u), -1);
    /* 3/s rounds T to the nearest ns */
    assert_int_equal(tr_gcra_params_rate(&p, 3.0, 1), 0);
    assert_int_equal(p.t_ns, 333333333ull);
    assert_int_equal(tr_gcra_params_rate(&p, 0.5, 1), 0);
    assert_int_equal(p.t_ns, 2 * S);
}

static void
test_bucket_starts_full_20_simultaneous_pass_21st_refused(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    uint64_t wait = 0;
    int i;

    tr_gcra_init(&s);
    assert_int_equal(tr_gcra_remaining(&p, &s, 0), 20);
    for (i = 0; i < 20; i++)
        assert_true(try_take(&p, &s, 1, 0));
    assert_int_equal(tr_gcra_check(&p, &s, 1, 0, &wait), TR_GCRA_LIMITED);
    assert_int_equal(wait, 100 * MS);
    assert_int_equal(tr_gcra_remaining(&p, &s, 0), 0);
}

static void
test_wait_is_exact_to_the_nanosecond(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    uint64_t t0 = 7 * S + 123, wait = 0, now = t0 + 5 * MS;
    int i;

    tr_gcra_init(&s);
    for (i = 0; i < 20; i++)
        assert_true(try_take(&p, &s, 1, t0));
    assert_int_equal(tr_gcra_check(&p, &s, 1, now, &wait), TR_GCRA_LIMITED);
    assert_int_equal(wait, 95 * MS);
    assert_int_equal(tr_gcra_check(&p, &s, 1, now + wait - 1, NULL),
                     TR_GCRA_LIMITED);
    assert_int_equal(tr_gcra_check(&p, &s, 1, now + wait, NULL),
                     TR_GCRA_OK);
}

static void
test_same_instant_arrivals_counted_exactly(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    int i, passed = 0;

    tr_gcra_init(&s);
    for (i = 0; i < 100; i++)
        passed += try_take(&p, &s, 1, 42 * S);
    assert_int_equal(passed, 20);
}

static void
test_cost_above_burst_never_passes_cost_equal_burst_does(void **state)
{
    tr_gcra_params p;
    tr_gcra s;

    assert_int_equal(tr_gcra_params_quota(&p, 30, 60), 0);
    tr_gcra_init(&s);
    assert_int_equal(tr_gcra_check(&p, &s, 31, 0, NULL), TR_GCRA_NEVER);
    assert_int_equal(tr_gcra_check(&p, &s, 31, 1000 * S, NULL),
                     TR_GCRA_NEVER);
    assert_true(try_take(&p, &s, 30, 0));
    assert_int_equal(tr_gcra_remaining(&p, &s, 0), 0);
}

static void
test_cost_zero_always_passes_and_charges_nothing(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    int i;

    tr_gcra_init(&s);
    for (i = 0; i < 20; i++)
        assert_true(try_take(&p, &s, 1, 0));
    assert_true(try_take(&p, &s, 0, 0));
    assert_int_equal(s.tat, 2 * S);
}

static void
test_steady_rate_with_jitter_is_never_refused(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    uint64_t x = 0x9e3779b97f4a7c15ull, t;
    int i;

    tr_gcra_init(&s);
    /* One hour at exactly the rate. */
    for (i = 0; i < 36000; i++)
        assert_true(try_take(&p, &s, 1, (uint64_t)i * 100 * MS));
    /* Then ten minutes with +-20 ms jitter on each arrival: requests
     * 60 ms apart must pass (the nginx burst=0 failure). */
    for (i = 0; i < 6000; i++) {
        t = 3601 * S + (uint64_t)i * 100 * MS + rnd(&x) % (40 * MS + 1);
        assert_true(try_take(&p, &s, 1, t - 20 * MS));
    }
}

/*
 * Over random traffic, the units admitted in every interval [a, b] are at
 * most burst + (b - a) / T: no window edge lets two bursts through.
 */
static void
test_no_interval_admits_more_than_burst_plus_rate(void **state)
{
    enum { N = 3000 };
    static uint64_t at[N];
    static uint32_t cost[N];
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    uint64_t x = 12345, now = 0, units;
    size_t n = 0, i, j;

    tr_gcra_init(&s);
    for (i = 0; i < N; i++) {
        /* Bursts and lulls: many arrivals in the same instant, then
         * gaps up to 3 s. */
        if (rnd(&x) % 4 == 0)
            now += rnd(&x) % (3 * S);
        uint32_t c = (uint32_t)(1 + rnd(&x) % 3);
        if (try_take(&p, &s, c, now)) {
            at[n] = now;
            cost[n] = c;
            n++;
        }
    }
    assert_true(n > 100);
    for (i = 0; i < n; i++) {
        units = 0;
        for (j = i; j < n; j++) {
            units += cost[j];
            assert_true(units <= p.burst + (at[j] - at[i]) / p.t_ns);
        }
    }
}

static void
test_boundary_20_before_20_after_lets_at_most_one_more(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    uint64_t edge = 60 * S;
    int i, first = 0, second = 0;

    tr_gcra_init(&s);
    for (i = 0; i < 20; i++)
        first += try_take(&p, &s, 1, edge - 10 * MS);
    for (i = 0; i < 20; i++)
        second += try_take(&p, &s, 1, edge + 10 * MS);
    assert_int_equal(first, 20);
    assert_true(second <= 1);
}

static void
test_remaining_and_reset_follow_the_bucket(void **state)
{
    tr_gcra_params p = rate_10_burst_20(), q;
    tr_gcra s;
    int i;

    tr_gcra_init(&s);
    assert_int_equal(tr_gcra_reset_s(&p, &s, 1, 0), -1); /* full */
    for (i = 0; i < 20; i++)
        tr_gcra_charge(&p, &s, 1, 0);
    /* 5 ms later: 0 left, the next unit in 95 ms -> t=1 */
    assert_int_equal(tr_gcra_remaining(&p, &s, 5 * MS), 0);
    assert_int_equal(tr_gcra_reset_s(&p, &s, 1, 5 * MS), 1);
    /* 0.5 s later: 5 units */
    assert_int_equal(tr_gcra_remaining(&p, &s, 500 * MS), 5);
    /* 2 s later: full again */
    assert_int_equal(tr_gcra_remaining(&p, &s, 2 * S), 20);
    assert_int_equal(tr_gcra_reset_s(&p, &s, 1, 2 * S), -1);

    /* email: 30 units per 60 s, requests of 10 units */
    assert_int_equal(tr_gcra_params_quota(&q, 30, 60), 0);
    tr_gcra_init(&s);
    tr_gcra_charge(&q, &s, 10, 0);
    assert_int_equal(tr_gcra_remaining(&q, &s, 0), 20);
    /* one more 10-unit request than now possible: 30 units, in 20 s */
    assert_int_equal(tr_gcra_reset_s(&q, &s, 10, 0), 20);
    tr_gcra_charge(&q, &s, 10, 0);
    tr_gcra_charge(&q, &s, 10, 0);
    assert_int_equal(tr_gcra_remaining(&q, &s, 0), 0);
    assert_int_equal(tr_gcra_reset_s(&q, &s, 10, 0), 20);
    /* 5 units back (10 s): still one request away, 10 s to go */
    assert_int_equal(tr_gcra_remaining(&q, &s, 10 * S), 5);
    assert_int_equal(tr_gcra_reset_s(&q, &s, 10, 10 * S), 10);
    /* 25 units (50 s): two requests now, a third only when full */
    assert_int_equal(tr_gcra_reset_s(&q, &s, 10, 50 * S), 10);
}

static void
test_reservation_counts_against_others_until_dropped(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;
    uint64_t r;

    tr_gcra_init(&s);
    tr_gcra_reserve(&s, 15);
    assert_int_equal(tr_gcra_remaining(&p, &s, 0), 5);
    assert_int_equal(tr_gcra_check(&p, &s, 6, 0, NULL), TR_GCRA_LIMITED);
    assert_int_equal(tr_gcra_check(&p, &s, 5, 0, NULL), TR_GCRA_OK);
    assert_false(tr_gcra_is_fresh(&s, 0));
    /* Confirming at a later time: what is available does not jump. */
    r = tr_gcra_remaining(&p, &s, 3 * S);
    tr_gcra_confirm(&p, &s, 15, 3 * S);
    assert_int_equal(tr_gcra_remaining(&p, &s, 3 * S), r);
    assert_int_equal(s.reserved, 0);
    /* Dropping a reservation is as if it never came. */
    tr_gcra_init(&s);
    tr_gcra_charge(&p, &s, 4, 0);
    r = tr_gcra_remaining(&p, &s, 0);
    tr_gcra_reserve(&s, 10);
    tr_gcra_unreserve(&s, 10);
    assert_int_equal(tr_gcra_remaining(&p, &s, 0), r);
    assert_int_equal(s.tat, 400 * MS);
}

static void
test_refund_gives_back_exactly_what_was_charged(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s, before;

    tr_gcra_init(&s);
    tr_gcra_charge(&p, &s, 7, S);
    before = s;
    tr_gcra_charge(&p, &s, 3, S + 1000);
    tr_gcra_refund(&p, &s, 3);
    assert_int_equal(s.tat, before.tat);
    assert_int_equal(tr_gcra_remaining(&p, &s, S + 2000),
                     tr_gcra_remaining(&p, &before, S + 2000));
}

static void
test_fresh_means_full_and_nothing_reserved(void **state)
{
    tr_gcra_params p = rate_10_burst_20();
    tr_gcra s;

    tr_gcra_init(&s);
    assert_true(tr_gcra_is_fresh(&s, 0));
    tr_gcra_charge(&p, &s, 1, 10 * S);
    assert_false(tr_gcra_is_fresh(&s, 10 * S));
    assert_false(tr_gcra_is_fresh(&s, 10 * S + 100 * MS - 1));
    assert_true(tr_gcra_is_fresh(&s, 10 * S + 100 * MS));
}

static void
test_large_clock_values_do_not_overflow(void **state)
{
    tr_gcra_params p;
    tr_gcra s;
    uint64_t now = (1ull << 62) - 10 * S, wait = 0;

    assert_int_equal(tr_gcra_params_quota(&p, 1000, 86400), 0);
    tr_gcra_init(&s);
    assert_true(try_take(&p, &s, 1000, now));
    assert_int_equal(tr_gcra_check(&p, &s, 1, now, &wait), TR_GCRA_LIMITED);
    assert_int_equal(wait, p.t_ns);
    assert_int_equal(tr_gcra_remaining(&p, &s, now + 86400 * S), 1000);
}

/*
 * Honesty: for random states, waiting ceil(wait) whole seconds always
 * passes, and one second less always fails.
 */
static void
test_retry_after_rounded_up_is_honest_both_ways(void **state)
{
    tr_gcra_params p;
    tr_gcra s;
    uint64_t x = 777, now, wait, ra;
    int trial, i, n, limited = 0;

    for (trial = 0; trial < 1000; trial++) {
        uint32_t burst = (uint32_t)(1 + rnd(&x) % 50);
        uint32_t cost = (uint32_t)(1 + rnd(&x) % burst);

        if (trial % 2)
            assert_int_equal(
                tr_gcra_params_rate(&p, 0.1 + (double)(rnd(&x) % 1000) / 7,
                                    burst),
                0);
        else
            assert_int_equal(tr_gcra_params_quota(
                                 &p, burst, (uint32_t)(1 + rnd(&x) % 3600)),
                             0);
        tr_gcra_init(&s);
        now = rnd(&x) % (1000 * S);
        n = (int)(rnd(&x) % (burst * 2));
        for (i = 0; i < n; i++)
            try_take(&p, &s, 1, now + (uint64_t)i * (rnd(&x) % p.t_ns));
        now += (uint64_t)n * p.t_ns / 2;
        if (tr_gcra_check(&p, &s, cost, now, &wait) != TR_GCRA_LIMITED)
            continue;
        limited++;
        ra = tr_ns_to_s_ceil(wait);
        assert_true(ra >= 1);
        assert_int_equal(tr_gcra_check(&p, &s, cost, now + ra * S, NULL),
                         TR_GCRA_OK);
        assert_int_equal(
            tr_gcra_check(&p, &s, cost, now + (ra - 1) * S, NULL),
            TR_GCRA_LIMITED);
        /* and t for the refused cost never exceeds Retry-After */
        assert_true(tr_gcra_reset_s(&p, &s, cost, now) <= (int64_t)ra);
    }
    /* the trials must mostly land on an exhausted bucket */
    assert_true(limited >= 300);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_rate_10_burst_20_is_100ms_and_2s),
        cmocka_unit_test(test_params_quota_30_per_60s_is_one_unit_every_2s),
        cmocka_unit_test(test_params_refuse_nonsense),
        cmocka_unit_test(
            test_bucket_starts_full_20_simultaneous_pass_21st_refused),
        cmocka_unit_test(test_wait_is_exact_to_the_nanosecond),
        cmocka_unit_test(test_same_instant_arrivals_counted_exactly),
        cmocka_unit_test(
            test_cost_above_burst_never_passes_cost_equal_burst_does),
        cmocka_unit_test(test_cost_zero_always_passes_and_charges_nothing),
        cmocka_unit_test(test_steady_rate_with_jitter_is_never_refused),
        cmocka_unit_test(test_no_interval_admits_more_than_burst_plus_rate),
        cmocka_unit_test(
            test_boundary_20_before_20_after_lets_at_most_one_more),
        cmocka_unit_test(test_remaining_and_reset_follow_the_bucket),
        cmocka_unit_test(
            test_reservation_counts_against_others_until_dropped),
        cmocka_unit_test(test_refund_gives_back_exactly_what_was_charged),
        cmocka_unit_test(test_fresh_means_full_and_nothing_reserved),
        cmocka_unit_test(test_large_clock_values_do_not_overflow),
        cmocka_unit_test(test_retry_after_rounded_up_is_honest_both_ways),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
