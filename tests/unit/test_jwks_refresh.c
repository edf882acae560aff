/* The JWKS refresh schedule on a virtual clock: when to fetch, when a
 * refetch for an unknown kid is granted, how long stale keys serve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/jwks_refresh.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (1000 * S)

/* refresh 300 s, grace 3600 s, refetch at most every 30 s (defaults) */
static tr_jwks_refresh
fetched_at_t0(void)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 300, 3600, 30, T0);
    tr_jwks_refresh_started(&r, T0);
    tr_jwks_refresh_done(&r, true, T0 + 10 * MS);
    return r;
}

static void
test_first_fetch_is_due_at_once_and_nothing_is_in_service(void **state)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 300, 3600, 30, T0);
    assert_true(tr_jwks_refresh_due(&r, T0));
    assert_int_equal(tr_jwks_refresh_next_wake(&r), T0);
    assert_int_equal(tr_jwks_refresh_state(&r, T0), TR_JWKS_NONE);
    assert_false(tr_jwks_refresh_expired(&r, T0 + 100000 * S));
}

static void
test_after_success_next_fetch_is_one_refresh_later(void **state)
{
    tr_jwks_refresh r = fetched_at_t0();
    uint64_t done = T0 + 10 * MS;

    assert_false(tr_jwks_refresh_due(&r, done + 300 * S - 1));
    assert_true(tr_jwks_refresh_due(&r, done + 300 * S));
    assert_int_equal(tr_jwks_refresh_next_wake(&r), done + 300 * S);
    assert_int_equal(tr_jwks_refresh_state(&r, done + 300 * S - 1),
                     TR_JWKS_FRESH);
    assert_int_equal(tr_jwks_refresh_state(&r, done + 300 * S),
                     TR_JWKS_STALE);
}

static void
test_nothing_is_due_while_a_fetch_is_in_flight(void **state)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 300, 3600, 30, T0);
    tr_jwks_refresh_started(&r, T0);
    assert_false(tr_jwks_refresh_due(&r, T0 + 1000 * S));
    assert_int_equal(tr_jwks_refresh_next_wake(&r), TR_JWKS_NEVER);
}

static void
test_failures_back_off_doubling_up_to_the_refresh_period(void **state)
{
    tr_jwks_refresh r;
    uint64_t now = T0;
    const uint64_t want[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300 };

    tr_jwks_refresh_init(&r, 300, 3600, 30, T0);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        tr_jwks_refresh_started(&r, now);
        tr_jwks_refresh_done(&r, false, now);
        assert_int_equal(r.next_fetch_ns - now, want[i] * S);
        assert_false(tr_jwks_refresh_due(&r, now + want[i] * S - 1));
        now += want[i] * S;
        assert_true(tr_jwks_refresh_due(&r, now));
    }
    tr_jwks_refresh_started(&r, now);
    tr_jwks_refresh_done(&r, true, now);
    assert_int_equal(r.failures, 0);
    assert_int_equal(r.next_fetch_ns, now + 300 * S);
}

static void
test_many_failures_do_not_overflow_the_backoff(void **state)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 86400, 0, 0, T0);
    for (int i = 0; i < 200; i++) {
        tr_jwks_refresh_started(&r, T0);
        tr_jwks_refresh_done(&r, false, T0);
    }
    assert_int_equal(r.next_fetch_ns, T0 + 86400 * S);
}

static void
test_stale_keys_serve_until_refresh_plus_grace_then_go(void **state)
{
    tr_jwks_refresh r;
    uint64_t ok = T0;
    uint64_t end = ok + 300 * S + 3600 * S;

    tr_jwks_refresh_init(&r, 300, 3600, 30, T0);
    tr_jwks_refresh_started(&r, T0);
    tr_jwks_refresh_done(&r, true, ok);
    /* every later fetch fails */
    for (uint64_t now = ok + 300 * S; now < end;
         now = r.next_fetch_ns) {
        assert_false(tr_jwks_refresh_expired(&r, now));
        assert_int_equal(tr_jwks_refresh_state(&r, now), TR_JWKS_STALE);
        tr_jwks_refresh_started(&r, now);
        tr_jwks_refresh_done(&r, false, now + MS);
    }
    assert_false(tr_jwks_refresh_expired(&r, end - 1));
    assert_true(tr_jwks_refresh_expired(&r, end));
    assert_true(tr_jwks_refresh_next_wake(&r) <= end);
    tr_jwks_refresh_withdrawn(&r);
    assert_int_equal(tr_jwks_refresh_state(&r, end), TR_JWKS_NONE);
    assert_false(tr_jwks_refresh_expired(&r, end + 1000 * S));
}

static void
test_a_fetch_in_flight_at_the_end_of_grace_decides(void **state)
{
    tr_jwks_refresh r = fetched_at_t0();
    uint64_t end = T0 + 10 * MS + 3900 * S;

    tr_jwks_refresh_started(&r, end - 1);
    assert_false(tr_jwks_refresh_expired(&r, end + 5 * S));
    tr_jwks_refresh_done(&r, true, end + 5 * S);
    assert_false(tr_jwks_refresh_expired(&r, end + 5 * S));
    assert_int_equal(tr_jwks_refresh_state(&r, end + 5 * S),
                     TR_JWKS_FRESH);

    r = fetched_at_t0();
    tr_jwks_refresh_started(&r, end - 1);
    tr_jwks_refresh_done(&r, false, end + 5 * S);
    assert_true(tr_jwks_refresh_expired(&r, end + 5 * S));
}

static void
test_zero_grace_withdraws_when_the_refresh_fails(void **state)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 10, 0, 0, T0);
    tr_jwks_refresh_started(&r, T0);
    tr_jwks_refresh_done(&r, true, T0);
    tr_jwks_refresh_started(&r, T0 + 10 * S);
    assert_false(tr_jwks_refresh_expired(&r, T0 + 10 * S + 1));
    tr_jwks_refresh_done(&r, false, T0 + 10 * S + 1);
    assert_true(tr_jwks_refresh_expired(&r, T0 + 10 * S + 1));
}

static void
test_unknown_kid_refetch_is_granted_then_rate_limited(void **state)
{
    tr_jwks_refresh r = fetched_at_t0();

    /* the start-up fetch at T0 counts */
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0 + 30 * S - 1),
                     TR_JWKS_KID_REFUSE);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0 + 30 * S),
                     TR_JWKS_KID_FETCH);
    tr_jwks_refresh_started(&r, T0 + 30 * S);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0 + 31 * S),
                     TR_JWKS_KID_WAIT);
    tr_jwks_refresh_done(&r, true, T0 + 31 * S);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0 + 31 * S),
                     TR_JWKS_KID_REFUSE);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0 + 60 * S),
                     TR_JWKS_KID_FETCH);
}

static void
test_a_flood_of_unknown_kids_starts_one_fetch_per_period(void **state)
{
    tr_jwks_refresh r = fetched_at_t0();
    unsigned fetches = 0;

    /* one unknown kid every 10 ms for 95 s; each fetch takes 50 ms */
    uint64_t busy_until = 0;
    for (uint64_t now = T0 + S; now < T0 + 96 * S; now += 10 * MS) {
        if (r.in_flight && now >= busy_until)
            tr_jwks_refresh_done(&r, true, now);
        if (tr_jwks_refresh_unknown_kid(&r, now) == TR_JWKS_KID_FETCH) {
            tr_jwks_refresh_started(&r, now);
            busy_until = now + 50 * MS;
            fetches++;
        }
    }
    /* refetches at T0+30, +60, +90 */
    assert_int_equal(fetches, 3);
}

static void
test_background_refresh_also_counts_for_the_rate_limit(void **state)
{
    tr_jwks_refresh r = fetched_at_t0();
    uint64_t due = r.next_fetch_ns;

    tr_jwks_refresh_started(&r, due);
    tr_jwks_refresh_done(&r, true, due + MS);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, due + 29 * S),
                     TR_JWKS_KID_REFUSE);
}

static void
test_zero_min_refetch_still_coalesces_on_the_fetch_in_flight(void **state)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 300, 3600, 0, T0);
    tr_jwks_refresh_started(&r, T0);
    tr_jwks_refresh_done(&r, true, T0);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0),
                     TR_JWKS_KID_FETCH);
    tr_jwks_refresh_started(&r, T0);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0),
                     TR_JWKS_KID_WAIT);
}

static void
test_never_fetched_issuer_may_refetch_at_once(void **state)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 300, 3600, 30, T0);
    assert_int_equal(tr_jwks_refresh_unknown_kid(&r, T0),
                     TR_JWKS_KID_FETCH);
}

static void
test_next_wake_is_the_earlier_of_fetch_and_withdrawal(void **state)
{
    tr_jwks_refresh r;

    /* refresh 100 s, grace 50 s: after failures the retries come before
     * the withdrawal; once the backoff passes it, withdrawal is next */
    tr_jwks_refresh_init(&r, 100, 50, 0, T0);
    tr_jwks_refresh_started(&r, T0);
    tr_jwks_refresh_done(&r, true, T0);
    assert_int_equal(tr_jwks_refresh_next_wake(&r), T0 + 100 * S);
    tr_jwks_refresh_started(&r, T0 + 100 * S);
    tr_jwks_refresh_done(&r, false, T0 + 140 * S);
    assert_int_equal(tr_jwks_refresh_next_wake(&r), T0 + 141 * S);
    tr_jwks_refresh_started(&r, T0 + 141 * S);
    tr_jwks_refresh_done(&r, false, T0 + 149 * S);
    assert_int_equal(tr_jwks_refresh_next_wake(&r), T0 + 150 * S);
}

static void
test_zero_refresh_is_treated_as_one_second(void **state)
{
    tr_jwks_refresh r;

    tr_jwks_refresh_init(&r, 0, 0, 0, T0);
    tr_jwks_refresh_started(&r, T0);
    tr_jwks_refresh_done(&r, true, T0);
    assert_int_equal(r.next_fetch_ns, T0 + S);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_first_fetch_is_due_at_once_and_nothing_is_in_service),
        cmocka_unit_test(test_after_success_next_fetch_is_one_refresh_later),
        cmocka_unit_test(test_nothing_is_due_while_a_fetch_is_in_flight),
        cmocka_unit_test(
            test_failures_back_off_doubling_up_to_the_refresh_period),
        cmocka_unit_test(test_many_failures_do_not_overflow_the_backoff),
        cmocka_unit_test(
            test_stale_keys_serve_until_refresh_plus_grace_then_go),
        cmocka_unit_test(test_a_fetch_in_flight_at_the_end_of_grace_decides),
        cmocka_unit_test(test_zero_grace_withdraws_when_the_refresh_fails),
        cmocka_unit_test(
            test_unknown_kid_refetch_is_granted_then_rate_limited),
        cmocka_unit_test(
            test_a_flood_of_unknown_kids_starts_one_fetch_per_period),
        cmocka_unit_test(
            test_background_refresh_also_counts_for_the_rate_limit),
        cmocka_unit_test(
            test_zero_min_refetch_still_coalesces_on_the_fetch_in_flight),
        cmocka_unit_test(test_never_fetched_issuer_may_refetch_at_once),
        cmocka_unit_test(
            test_next_wake_is_the_earlier_of_fetch_and_withdrawal),
        cmocka_unit_test(test_zero_refresh_is_treated_as_one_second),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
