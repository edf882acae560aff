/*
 * Per-resource locks (src/core/resource_lock.c) on a virtual clock: one
 * holder per key, FIFO hand-over, independent keys, a waiter leaving the
 * line, deadlines, and entries that disappear with their last user.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/resource_lock.h"

#define MS 1000000ull
#define S(x) (x), strlen(x)

static tr_rlock_table *t;

static int
setup(void **state)
{
    t = tr_rlock_table_new(64, 0x5eed);
    return t ? 0 : -1;
}

static int
teardown(void **state)
{
    tr_rlock_table_free(t);
    return 0;
}

static void
one_holder_then_fifo_hand_over(void **state)
{
    tr_rlock_waiter a = { 0 }, b = { 0 }, c = { 0 };

    assert_int_equal(tr_rlock_acquire(t, &a, S("s1|1:7"), 0, 5000 * MS),
                     TR_RLOCK_GRANTED);
    assert_int_equal(tr_rlock_acquire(t, &b, S("s1|1:7"), 1 * MS,
                                      5000 * MS), TR_RLOCK_QUEUED);
    assert_int_equal(tr_rlock_acquire(t, &c, S("s1|1:7"), 2 * MS,
                                      5000 * MS), TR_RLOCK_QUEUED);
    assert_int_equal(tr_rlock_held(t), 1);
    assert_int_equal(tr_rlock_waiting(t), 2);
    assert_int_equal(b.state, TR_RLOCK_WAITING);

    assert_ptr_equal(tr_rlock_release(t, &a), &b);
    assert_int_equal(a.state, TR_RLOCK_IDLE);
    assert_int_equal(b.state, TR_RLOCK_HOLDING);
    assert_int_equal(b.since_ns, 1 * MS);   /* for the wait histogram */
    assert_ptr_equal(tr_rlock_release(t, &b), &c);
    assert_null(tr_rlock_release(t, &c));
    assert_int_equal(tr_rlock_held(t), 0);
    assert_int_equal(tr_rlock_waiting(t), 0);
}

static void
different_keys_do_not_wait_for_each_other(void **state)
{
    tr_rlock_waiter a = { 0 }, b = { 0 }, c = { 0 };

    assert_int_equal(tr_rlock_acquire(t, &a, S("s1|1:1"), 0, MS),
                     TR_RLOCK_GRANTED);
    assert_int_equal(tr_rlock_acquire(t, &b, S("s1|2:10"), 0, MS),
                     TR_RLOCK_GRANTED);
    /* Same bytes up to a NUL are still another key. */
    assert_int_equal(tr_rlock_acquire(t, &c, "s1|1:1\0x", 8, 0, MS),
                     TR_RLOCK_GRANTED);
    assert_int_equal(tr_rlock_held(t), 3);
    assert_null(tr_rlock_release(t, &a));
    assert_null(tr_rlock_release(t, &b));
    assert_null(tr_rlock_release(t, &c));
    assert_int_equal(tr_rlock_held(t), 0);
}

static void
waiter_leaving_the_line_keeps_the_order(void **state)
{
    tr_rlock_waiter a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };

    tr_rlock_acquire(t, &a, S("k"), 0, MS);
    tr_rlock_acquire(t, &b, S("k"), 0, MS);
    tr_rlock_acquire(t, &c, S("k"), 0, MS);
    tr_rlock_acquire(t, &d, S("k"), 0, MS);
    assert_null(tr_rlock_release(t, &c));       /* its client left */
    assert_int_equal(c.state, TR_RLOCK_IDLE);
    assert_int_equal(tr_rlock_waiting(t), 2);
    assert_ptr_equal(tr_rlock_release(t, &a), &b);
    /* The last in line leaves too: the holder's release ends the lock. */
    assert_null(tr_rlock_release(t, &d));
    assert_null(tr_rlock_release(t, &b));
    assert_int_equal(tr_rlock_held(t), 0);
    /* Releasing an idle waiter changes nothing. */
    assert_null(tr_rlock_release(t, &c));
    assert_int_equal(tr_rlock_waiting(t), 0);
}

static void
waiters_expire_at_their_own_deadlines(void **state)
{
    tr_rlock_waiter a = { 0 }, b = { 0 }, c = { 0 };

    assert_int_equal(tr_rlock_next_deadline(t), UINT64_MAX);
    tr_rlock_acquire(t, &a, S("k"), 0, 300 * MS);  /* holder: no deadline */
    tr_rlock_acquire(t, &b, S("k"), 0, 300 * MS);
    tr_rlock_acquire(t, &c, S("k"), 100 * MS, 1000 * MS);
    assert_int_equal(tr_rlock_next_deadline(t), 300 * MS);
    assert_null(tr_rlock_expire(t, 300 * MS - 1));
    assert_ptr_equal(tr_rlock_expire(t, 300 * MS), &b);
    assert_int_equal(b.state, TR_RLOCK_IDLE);
    assert_null(tr_rlock_expire(t, 300 * MS));
    assert_int_equal(tr_rlock_next_deadline(t), 1100 * MS);
    /* An expired waiter is out of line: the holder hands over past it. */
    assert_ptr_equal(tr_rlock_release(t, &a), &c);
    assert_int_equal(tr_rlock_next_deadline(t), UINT64_MAX);
    /* A holder never expires, however long it holds. */
    assert_null(tr_rlock_expire(t, UINT64_MAX));
    assert_null(tr_rlock_release(t, &b));
    assert_null(tr_rlock_release(t, &c));
    assert_int_equal(tr_rlock_held(t), 0);
}

static void
huge_timeout_saturates(void **state)
{
    tr_rlock_waiter a = { 0 }, b = { 0 };

    tr_rlock_acquire(t, &a, S("k"), 5 * MS, 0);
    tr_rlock_acquire(t, &b, S("k"), 5 * MS, UINT64_MAX);
    assert_int_equal(b.deadline_ns, UINT64_MAX);
    assert_null(tr_rlock_expire(t, UINT64_MAX - 1));
    tr_rlock_release(t, &b);
    tr_rlock_release(t, &a);
    assert_int_equal(tr_rlock_held(t), 0);
}

static void
many_keys_in_few_buckets(void **state)
{
    static tr_rlock_waiter w[1000], x[1000];
    tr_rlock_table *small = tr_rlock_table_new(7, 1);
    char key[32];

    assert_non_null(small);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "s0|%d:%d", i > 99 ? 3 : 2, i);
        assert_int_equal(tr_rlock_acquire(small, &w[i], key, (size_t)n, 0,
                                          MS), TR_RLOCK_GRANTED);
        assert_int_equal(tr_rlock_acquire(small, &x[i], key, (size_t)n, 0,
                                          MS), TR_RLOCK_QUEUED);
    }
    assert_int_equal(tr_rlock_held(small), 1000);
    assert_int_equal(tr_rlock_waiting(small), 1000);
    for (int i = 999; i >= 0; i--) {
        assert_ptr_equal(tr_rlock_release(small, &w[i]), &x[i]);
        assert_null(tr_rlock_release(small, &x[i]));
    }
    assert_int_equal(tr_rlock_held(small), 0);
    tr_rlock_table_free(small);
}

static void
lock_is_free_again_after_last_release(void **state)
{
    tr_rlock_waiter a = { 0 }, b = { 0 };

    tr_rlock_acquire(t, &a, S("k"), 0, MS);
    tr_rlock_release(t, &a);
    assert_int_equal(tr_rlock_acquire(t, &b, S("k"), 0, MS),
                     TR_RLOCK_GRANTED);
    /* A waiter struct is reusable once idle. */
    assert_int_equal(tr_rlock_acquire(t, &a, S("k"), 0, MS),
                     TR_RLOCK_QUEUED);
    assert_ptr_equal(tr_rlock_release(t, &b), &a);
    tr_rlock_release(t, &a);
    assert_int_equal(tr_rlock_held(t), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_holder_then_fifo_hand_over,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            different_keys_do_not_wait_for_each_other, setup, teardown),
        cmocka_unit_test_setup_teardown(
            waiter_leaving_the_line_keeps_the_order, setup, teardown),
        cmocka_unit_test_setup_teardown(
            waiters_expire_at_their_own_deadlines, setup, teardown),
        cmocka_unit_test_setup_teardown(huge_timeout_saturates, setup,
                                        teardown),
        cmocka_unit_test(many_keys_in_few_buckets),
        cmocka_unit_test_setup_teardown(
            lock_is_free_again_after_last_release, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
