/* The bounded limiter table: identity, eviction, overflow, size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/limiter_table.h"

#define S 1000000000ull

static tr_gcra_params rate;

static int
setup(void **state)
{
    return tr_gcra_params_rate(&rate, 10.0, 20);
}

static size_t
key_of(char *buf, size_t cap, unsigned i)
{
    /* A principal key as identity builds it: issuer name, NUL, sub. */
    int n = snprintf(buf, cap, "corp%cuser-%07u", 0, i);

    return (size_t)n;
}

static void
test_same_key_same_entry_other_dim_other_entry(void **state)
{
    tr_limiter_table *t = tr_limiter_table_create(64, 1);
    tr_limiter_entry *a, *b, *c;
    tr_lt_status st;

    a = tr_limiter_table_get(t, 0, "corp\0alice", 10, 0, &st);
    assert_int_equal(st, TR_LT_CREATED);
    b = tr_limiter_table_get(t, 0, "corp\0alice", 10, 0, &st);
    assert_int_equal(st, TR_LT_FOUND);
    assert_ptr_equal(a, b);
    c = tr_limiter_table_get(t, 1, "corp\0alice", 10, 0, &st);
    assert_int_equal(st, TR_LT_CREATED);
    assert_ptr_not_equal(a, c);
    /* The NUL matters: "corp\0alice" is not "corp\0alic". */
    assert_ptr_not_equal(tr_limiter_table_get(t, 0, "corp\0alic", 9, 0,
                                              NULL),
                         a);
    assert_ptr_equal(tr_limiter_table_find(t, 1, "corp\0alice", 10), c);
    assert_null(tr_limiter_table_find(t, 2, "corp\0alice", 10));
    /* A new entry is a fresh one. */
    assert_true(tr_limiter_entry_is_fresh(c, 0));
    tr_limiter_table_free(t);
}

static void
test_long_keys_are_stored_as_digest_and_stay_distinct(void **state)
{
    tr_limiter_table *t = tr_limiter_table_create(64, 7);
    tr_limiter_table_stats ts;
    char k1[200], k2[200];
    tr_limiter_entry *a, *b, *inl;
    tr_lt_status st;

    memset(k1, 'x', sizeof(k1));
    memcpy(k2, k1, sizeof(k2));
    k2[199] = 'y';
    a = tr_limiter_table_get(t, 0, k1, sizeof(k1), 0, &st);
    assert_int_equal(st, TR_LT_CREATED);
    assert_true(a->flags & TR_LE_DIGEST);
    assert_int_equal(a->key_len, 32);
    b = tr_limiter_table_get(t, 0, k2, sizeof(k2), 0, &st);
    assert_int_equal(st, TR_LT_CREATED);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(tr_limiter_table_get(t, 0, k1, sizeof(k1), 0, &st), a);
    assert_int_equal(st, TR_LT_FOUND);
    /* The inline limit: 56 bytes stay as they are, 57 are digested. */
    inl = tr_limiter_table_get(t, 0, k1, TR_LIMITER_KEY_INLINE, 0, NULL);
    assert_false(inl->flags & TR_LE_DIGEST);
    assert_int_equal(inl->key_len, TR_LIMITER_KEY_INLINE);
    assert_true(tr_limiter_table_get(t, 0, k1, TR_LIMITER_KEY_INLINE + 1, 0,
                                     NULL)->flags & TR_LE_DIGEST);
    tr_limiter_table_stats_get(t, &ts);
    assert_int_equal(ts.long_keys, 4);
    assert_int_equal(ts.used, 4);
    tr_limiter_table_free(t);
}

static void
test_full_of_live_entries_overflows_and_evicts_nothing(void **state)
{
    enum { CAP = 16 };
    tr_limiter_table *t = tr_limiter_table_create(CAP, 3);
    tr_limiter_table_stats ts;
    tr_limiter_entry *e[CAP];
    char k[64];
    tr_lt_status st;
    unsigned i;

    for (i = 0; i < CAP; i++) {
        e[i] = tr_limiter_table_get(t, 0, k, key_of(k, sizeof(k), i), 0,
                                    &st);
        assert_int_equal(st, TR_LT_CREATED);
        tr_gcra_charge(&rate, &e[i]->gcra, 1, 0); /* live for 100 ms */
    }
    assert_null(tr_limiter_table_get(t, 0, k, key_of(k, sizeof(k), 99),
                                     S / 20, &st));
    assert_int_equal(st, TR_LT_FULL);
    tr_limiter_table_stats_get(t, &ts);
    assert_int_equal(ts.overflows, 1);
    assert_int_equal(ts.evictions, 0);
    /* Every live key kept its state. */
    for (i = 0; i < CAP; i++) {
        assert_ptr_equal(
            tr_limiter_table_find(t, 0, k, key_of(k, sizeof(k), i)), e[i]);
        assert_int_equal(e[i]->gcra.tat, S / 10);
    }
    /* Once the buckets are full again, a new key takes a fresh entry. */
    assert_non_null(tr_limiter_table_get(t, 0, k, key_of(k, sizeof(k), 99),
                                         S / 10, &st));
    assert_int_equal(st, TR_LT_CREATED);
    tr_limiter_table_stats_get(t, &ts);
    assert_int_equal(ts.evictions, 1);
    assert_int_equal(ts.used, CAP);
    tr_limiter_table_free(t);
}

static void
test_pinned_inflight_queued_or_reserved_entries_are_never_evicted(
    void **state)
{
    tr_limiter_table *t = tr_limiter_table_create(4, 5);
    tr_limiter_entry *e[4];
    tr_wait_node n0 = {0}, n1 = {0};
    char k[64];
    tr_lt_status st;
    unsigned i;

    for (i = 0; i < 4; i++)
        e[i] = tr_limiter_table_get(t, 0, k, key_of(k, sizeof(k), i), 0,
                                    NULL);
    e[0]->pins = 1;
    tr_conc_enter(&e[1]->conc, 1, 1, &n0, 0);          /* in flight */
    e[2]->conc.inflight = 1;
    tr_conc_enter(&e[2]->conc, 1, 1, &n1, 10 * S);     /* and queued */
    tr_gcra_reserve(&e[3]->gcra, 1);                   /* reserved */
    for (i = 0; i < 4; i++)
        assert_false(tr_limiter_entry_is_fresh(e[i], 100 * S));
    assert_null(tr_limiter_table_get(t, 0, k, key_of(k, sizeof(k), 9),
                                     100 * S, &st));
    assert_int_equal(st, TR_LT_FULL);
    assert_int_equal(tr_limiter_table_sweep(t, 100 * S, 100, 100), 0);
    /* Unpin one: that one (and only it) can go. */
    e[0]->pins = 0;
    assert_non_null(tr_limiter_table_get(t, 0, k, key_of(k, sizeof(k), 9),
                                         100 * S, &st));
    assert_null(tr_limiter_table_find(t, 0, k, key_of(k, sizeof(k), 0)));
    assert_non_null(tr_limiter_table_find(t, 0, k, key_of(k, sizeof(k), 1)));
    tr_limiter_table_free(t);
}

static void
test_sweep_frees_fresh_entries_for_reuse(void **state)
{
    tr_limiter_table *t = tr_limiter_table_create(8, 11);
    tr_limiter_table_stats ts;
    tr_limiter_entry *e;
    char k[64];
    unsigned i;

    for (i = 0; i < 8; i++) {
        e = tr_limiter_table_get(t, 0, k, key_of(k, sizeof(k), i), 0, NULL);
        if (i % 2)
            tr_gcra_charge(&rate, &e->gcra, 20, 0); /* busy for 2 s */
    }
    assert_int_equal(tr_limiter_table_sweep(t, S, 8, 8), 4);
    tr_limiter_table_stats_get(t, &ts);
    assert_int_equal(ts.used, 4);
    assert_int_equal(ts.swept, 4);
    for (i = 0; i < 8; i++) {
        e = tr_limiter_table_find(t, 0, k, key_of(k, sizeof(k), i));
        if (i % 2)
            assert_non_null(e);
        else
            assert_null(e);
    }
    /* Freed entries are taken before anything is evicted. */
    for (i = 100; i < 104; i++)
        assert_non_null(tr_limiter_table_get(
            t, 0, k, key_of(k, sizeof(k), i), S, NULL));
    tr_limiter_table_stats_get(t, &ts);
    assert_int_equal(ts.evictions, 0);
    assert_int_equal(ts.used, 8);
    tr_limiter_table_free(t);
}

static void
test_hash_depends_on_the_seed(void **state)
{
    tr_limiter_table *a = tr_limiter_table_create(8, 1);
    tr_limiter_table *b = tr_limiter_table_create(8, 1);
    tr_limiter_table *c = tr_limiter_table_create(8, 2);
    tr_limiter_entry *ea, *eb, *ec;

    ea = tr_limiter_table_get(a, 0, "k", 1, 0, NULL);
    eb = tr_limiter_table_get(b, 0, "k", 1, 0, NULL);
    ec = tr_limiter_table_get(c, 0, "k", 1, 0, NULL);
    assert_int_equal(ea->hash, eb->hash);
    assert_int_not_equal(ea->hash, ec->hash);
    tr_limiter_table_free(a);
    tr_limiter_table_free(b);
    tr_limiter_table_free(c);
}

static void
test_entry_fits_the_128_byte_target(void **state)
{
    tr_limiter_table *t = tr_limiter_table_create(1000000, 9);
    tr_limiter_table_stats ts;

    assert_true(sizeof(tr_limiter_entry) <= 120);
    tr_limiter_table_stats_get(t, &ts);
    /* entries + power-of-two bucket array, per key of capacity */
    assert_true(ts.bytes / ts.capacity <= 128);
    print_message("entry %zu bytes, %llu bytes per key at 1M capacity\n",
                  sizeof(tr_limiter_entry),
                  (unsigned long long)(ts.bytes / ts.capacity));
    tr_limiter_table_free(t);
}

static void
test_one_million_keys_fit_a_one_million_table(void **state)
{
    enum { N = 1000000 };
    tr_limiter_table *t = tr_limiter_table_create(N, 0x5eed);
    tr_limiter_table_stats ts;
    tr_limiter_entry *e;
    char k[64];
    tr_lt_status st;
    unsigned i;

    assert_non_null(t);
    for (i = 0; i < N; i++) {
        e = tr_limiter_table_get(t, (uint16_t)(i % 3), k,
                                 key_of(k, sizeof(k), i), 0, &st);
        assert_int_equal(st, TR_LT_CREATED);
        /* keep them live so nothing could be evicted */
        tr_gcra_charge(&rate, &e->gcra, 1, 0);
    }
    tr_limiter_table_stats_get(t, &ts);
    assert_int_equal(ts.used, N);
    assert_int_equal(ts.overflows, 0);
    assert_int_equal(ts.evictions, 0);
    for (i = 0; i < N; i += 997)
        assert_non_null(tr_limiter_table_find(t, (uint16_t)(i % 3), k,
                                              key_of(k, sizeof(k), i)));
    /* one more live key: refused and counted, never admitted unlimited */
    assert_null(tr_limiter_table_get(t, 0, "new", 3, 0, &st));
    assert_int_equal(st, TR_LT_FULL);
    tr_limiter_table_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_key_same_entry_other_dim_other_entry),
        cmocka_unit_test(
            test_long_keys_are_stored_as_digest_and_stay_distinct),
        cmocka_unit_test(
            test_full_of_live_entries_overflows_and_evicts_nothing),
        cmocka_unit_test(
            test_pinned_inflight_queued_or_reserved_entries_are_never_evicted),
        cmocka_unit_test(test_sweep_frees_fresh_entries_for_reuse),
        cmocka_unit_test(test_hash_depends_on_the_seed),
        cmocka_unit_test(test_entry_fits_the_128_byte_target),
        cmocka_unit_test(test_one_million_keys_fit_a_one_million_table),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
