/* Telling an edit from a deletion, insertion or reordering in a broken
 * hash chain (pure).  Each test tampers with an in-memory trail the way
 * someone with write access to the table would (rows keep their stored
 * prev_hash and hash; `seq` is the position), then walks it as
 * treaty audit verify does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/audit_chain.h"
#include "core/audit_findings.h"

#define N 10

static char paths[N + 4][32];

/* A genuine trail of n records, seq 1..n. */
static void
build(tr_audit_record *t, size_t n)
{
    uint8_t zeros[32] = { 0 };

    for (size_t i = 0; i < n; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        snprintf(paths[i], sizeof(paths[i]), "/items/%zu", i + 1);
        t[i].kind = TR_AUDIT_REQUEST;
        t[i].time_ms = 1700000000000 + (int64_t)i;
        t[i].principal_sub = "alice";
        t[i].actor = "agent:mailbot";
        t[i].method = "GET";
        t[i].path = paths[i];
        t[i].decision = TR_AUDIT_ALLOW;
        assert_int_equal(tr_audit_chain_link(&t[i], i,
                                             i ? t[i - 1].hash : zeros),
                         0);
    }
}

/* The verify walk over rows in table order (t[i] sits at t[i].seq). */
static tr_audit_break
walk(const tr_audit_record *t, size_t n)
{
    uint64_t last = 0;
    uint8_t hash[32] = { 0 };
    tr_audit_break none = { 0 };

    for (size_t i = 0; i < n; i++) {
        const tr_audit_record *displaced = NULL;

        if (tr_audit_chain_verify(&t[i], last, hash) == TR_CHAIN_OK) {
            last = t[i].seq;
            memcpy(hash, t[i].hash, 32);
            continue;
        }
        for (size_t j = i + 1; j < n && !displaced; j++)
            if (!memcmp(t[j].prev_hash, hash, 32))
                displaced = &t[j];
        return tr_audit_classify_break(last, hash, false, &t[i],
                                       displaced);
    }
    return none;
}

static void
test_intact_trail_has_no_break(void **state)
{
    tr_audit_record t[N];

    build(t, N);
    assert_int_equal(walk(t, N).finding, TR_AUDIT_INTACT);
}

static void
test_edited_field_is_named_at_its_record(void **state)
{
    tr_audit_record t[N];
    tr_audit_break b;

    build(t, N);
    t[4].actor = "agent:someone-else";
    b = walk(t, N);
    assert_int_equal(b.finding, TR_AUDIT_EDITED);
    assert_int_equal(b.seq, 5);
    assert_false(b.rehashed);
}

static void
test_edited_and_rehashed_record_is_named_not_its_successor(void **state)
{
    tr_audit_record t[N];
    tr_audit_break b;

    build(t, N);
    t[4].status = 500;
    t[4].has_status = true;
    assert_int_equal(tr_audit_chain_hash(t[4].prev_hash, &t[4], t[4].hash),
                     0);
    b = walk(t, N);
    assert_int_equal(b.finding, TR_AUDIT_EDITED);
    assert_int_equal(b.seq, 5);
    assert_true(b.rehashed);
}

static void
test_deleted_record_leaves_a_gap(void **state)
{
    tr_audit_record t[N];
    tr_audit_break b;

    build(t, N);
    memmove(&t[3], &t[5], (N - 5) * sizeof(t[0])); /* seq 4, 5 gone */
    b = walk(t, N - 2);
    assert_int_equal(b.finding, TR_AUDIT_DELETED);
    assert_int_equal(b.seq, 4);
    assert_int_equal(b.count, 2);
    assert_false(b.renumbered);
}

static void
test_deleted_and_renumbered_is_still_a_deletion(void **state)
{
    tr_audit_record t[N];
    tr_audit_break b;

    build(t, N);
    memmove(&t[3], &t[4], (N - 4) * sizeof(t[0])); /* seq 4 gone */
    for (size_t i = 3; i < N - 1; i++)
        t[i].seq = i + 1;
    b = walk(t, N - 1);
    assert_int_equal(b.finding, TR_AUDIT_DELETED);
    assert_int_equal(b.seq, 4);
    assert_int_equal(b.count, 1);
    assert_true(b.renumbered);
}

static void
test_swapped_records_are_reordered_not_edited(void **state)
{
    tr_audit_record t[N], tmp;
    tr_audit_break b;

    build(t, N);
    tmp = t[2];
    t[2] = t[7];
    t[7] = tmp;
    t[2].seq = 3;
    t[7].seq = 8;
    b = walk(t, N);
    assert_int_equal(b.finding, TR_AUDIT_REORDERED);
    assert_int_equal(b.seq, 3);
}

static void
test_record_moved_to_the_end_is_reordered(void **state)
{
    tr_audit_record t[N], moved;
    tr_audit_break b;

    build(t, N);
    moved = t[2];
    memmove(&t[2], &t[3], (N - 3) * sizeof(t[0]));
    t[N - 1] = moved;
    t[N - 1].seq = 100; /* UPDATE audit SET seq=100 WHERE seq=3 */
    b = walk(t, N);
    assert_int_equal(b.finding, TR_AUDIT_REORDERED);
    assert_int_equal(b.seq, 3);
}

static void
test_forged_row_slipped_in_is_inserted(void **state)
{
    tr_audit_record t[N + 1], forged;
    tr_audit_break b;

    build(t, N);
    forged = t[1];             /* a copy of record 2, placed at 5 */
    forged.path = "/items/forged";
    memmove(&t[5], &t[4], (N - 4) * sizeof(t[0]));
    t[4] = forged;
    for (size_t i = 4; i < N + 1; i++)
        t[i].seq = i + 1;
    b = walk(t, N + 1);
    assert_int_equal(b.finding, TR_AUDIT_INSERTED);
    assert_int_equal(b.seq, 5);
    assert_int_equal(b.count, 1);
}

static void
test_inserted_row_with_a_valid_hash_is_still_found(void **state)
{
    tr_audit_record t[N + 1], forged;
    tr_audit_break b;

    build(t, N);
    /* Someone who knows the format computes a proper link for record 5;
     * the records after it were written for other positions. */
    forged = t[4];
    forged.path = "/items/forged";
    assert_int_equal(tr_audit_chain_link(&forged, 4, t[3].hash), 0);
    memmove(&t[5], &t[4], (N - 4) * sizeof(t[0]));
    t[4] = forged;
    for (size_t i = 5; i < N + 1; i++)
        t[i].seq = i + 1;
    b = walk(t, N + 1);
    assert_int_equal(b.finding, TR_AUDIT_INSERTED);
    assert_int_equal(b.seq, 5);
    assert_int_equal(b.count, 1);
}

static void
test_record_that_does_not_continue_its_anchor_is_named(void **state)
{
    tr_audit_record t[N];
    uint8_t anchor[32];
    tr_audit_break b;

    build(t, N);
    memset(anchor, 0x5a, sizeof(anchor));
    /* The trail "starts" after a signed anchor at 3 whose hash is not
     * what record 4 chains to. */
    b = tr_audit_classify_break(3, anchor, true, &t[3], NULL);
    assert_int_equal(b.finding, TR_AUDIT_EDITED);
    assert_int_equal(b.seq, 4);
    assert_false(b.rehashed);
}

static void
test_fits_at_tells_where_a_record_was_written(void **state)
{
    tr_audit_record t[N];

    build(t, N);
    assert_true(tr_audit_fits_at(&t[6], 7));
    assert_false(tr_audit_fits_at(&t[6], 6));
    assert_false(tr_audit_fits_at(&t[6], 8));
    assert_string_equal(tr_audit_finding_name(TR_AUDIT_ROLLED_BACK),
                        "rolled back");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact_trail_has_no_break),
        cmocka_unit_test(test_edited_field_is_named_at_its_record),
        cmocka_unit_test(
            test_edited_and_rehashed_record_is_named_not_its_successor),
        cmocka_unit_test(test_deleted_record_leaves_a_gap),
        cmocka_unit_test(test_deleted_and_renumbered_is_still_a_deletion),
        cmocka_unit_test(test_swapped_records_are_reordered_not_edited),
        cmocka_unit_test(test_record_moved_to_the_end_is_reordered),
        cmocka_unit_test(test_forged_row_slipped_in_is_inserted),
        cmocka_unit_test(test_inserted_row_with_a_valid_hash_is_still_found),
        cmocka_unit_test(
            test_record_that_does_not_continue_its_anchor_is_named),
        cmocka_unit_test(test_fits_at_tells_where_a_record_was_written),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
