/*
 * The idempotency state machine (src/core/idem_state.c) on a virtual
 * clock: every lookup verdict, claim, renewal, completion and release
 * with the owner-id rule, lease expiry to "unknown", TTL expiry back to
 * "proceed", every status in the release/store/pin table, the header
 * allow-list and its encoding, scopes and the derived key.  The T1, T2
 * and crash cases of ../shared/cases/idempotency.md are walked through as
 * sequences of pure calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/idem_state.h"

#define T0 1700000000000LL    /* an arbitrary wall-clock start */

static const uint8_t OWNER_A[TR_IDEM_OWNER_LEN] = { 0xa1, 1, 2, 3, 4, 5 };
static const uint8_t OWNER_B[TR_IDEM_OWNER_LEN] = { 0xb2, 1, 2, 3, 4, 5 };

static tr_idem_cfg
cfg_default(void)
{
    tr_idem_cfg c;

    memset(&c, 0, sizeof(c));
    c.mode = TR_IDEM_REQUIRED_FOR_AGENTS;
    c.ambiguous = TR_AMBIGUOUS_PIN;
    c.after_crash = TR_CRASH_UNKNOWN;
    c.ttl_s = 86400;
    c.storage_cap = 1024;
    return c;
}

static void
fp_fill(uint8_t fp[TR_FP_LEN], uint8_t v)
{
    memset(fp, v, TR_FP_LEN);
}

/* A claim by OWNER_A at T0 with a 3 s lease (upstream 2 s + grace 1 s). */
static tr_idem_record
claimed(const tr_idem_cfg *c, const uint8_t fp[TR_FP_LEN])
{
    tr_idem_record r;

    tr_idem_claim(&r, fp, OWNER_A, tr_idem_lease_ms(2000, 1000), c, T0);
    return r;
}

static tr_idem_result
result(int status, const char *body)
{
    tr_idem_result res;

    memset(&res, 0, sizeof(res));
    res.status = status;
    res.body = (const uint8_t *)body;
    res.body_len = strlen(body);
    return res;
}

/* Field by field: struct padding is not guaranteed to be copied. */
static void
assert_same_record(const tr_idem_record *a, const tr_idem_record *b)
{
    assert_int_equal(a->state, b->state);
    assert_memory_equal(a->fingerprint, b->fingerprint, TR_FP_LEN);
    assert_memory_equal(a->owner, b->owner, TR_IDEM_OWNER_LEN);
    assert_int_equal(a->created_ms, b->created_ms);
    assert_int_equal(a->lease_until_ms, b->lease_until_ms);
    assert_int_equal(a->expires_ms, b->expires_ms);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->replayable, b->replayable);
    assert_int_equal(a->pinned, b->pinned);
    assert_ptr_equal(a->headers, b->headers);
    assert_int_equal(a->headers_len, b->headers_len);
    assert_ptr_equal(a->body, b->body);
    assert_int_equal(a->body_len, b->body_len);
}

/* ---- lookup ---- */

static void
absent_record_proceeds(void **state)
{
    tr_idem_cfg c = cfg_default();
    tr_idem_record r;
    uint8_t fp[TR_FP_LEN];

    fp_fill(fp, 1);
    assert_int_equal(tr_idem_lookup(NULL, fp, &c, 0, T0).verdict,
                     TR_IDEM_PROCEED);
    memset(&r, 0, sizeof(r));
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0).verdict,
                     TR_IDEM_PROCEED);
}

static void
completed_record_replays_its_status(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(201, "{\"id\":9}");
    tr_idem_decision d;

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 100));
    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 1100);
    assert_int_equal(d.verdict, TR_IDEM_REPLAY);
    assert_int_equal(d.status, 201);
    assert_true(r.replayable);
    assert_memory_equal(r.body, "{\"id\":9}", r.body_len);
}

static void
different_fingerprint_is_a_mismatch(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN], other[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(201, "x");
    tr_idem_decision d;

    fp_fill(fp, 1);
    fp_fill(other, 2);
    r = claimed(&c, fp);
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 100));
    d = tr_idem_lookup(&r, other, &c, 0, T0 + 200);
    assert_int_equal(d.verdict, TR_IDEM_MISMATCH);
    assert_int_equal(d.problem, TR_P_IDEM_KEY_MISMATCH);
    assert_int_equal(tr_problem(d.problem)->status, 422);
}

static void
mismatch_wins_over_in_flight(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN], other[TR_FP_LEN];
    tr_idem_record r;

    fp_fill(fp, 1);
    fp_fill(other, 2);
    c.wait_ms = 3000;             /* not even a waiting route waits */
    r = claimed(&c, fp);
    assert_int_equal(
        tr_idem_lookup(&r, other, &c, T0 + 3000, T0 + 300).verdict,
        TR_IDEM_MISMATCH);
}

static void
mismatch_wins_over_unknown_and_not_replayable(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN], other[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result big = result(201, "");

    fp_fill(fp, 1);
    fp_fill(other, 2);
    r = claimed(&c, fp);
    assert_int_equal(tr_idem_lookup(&r, other, &c, 0, T0 + 60000).verdict,
                     TR_IDEM_MISMATCH);
    c.after_crash = TR_CRASH_REEXECUTE;
    assert_int_equal(tr_idem_lookup(&r, other, &c, 0, T0 + 60000).verdict,
                     TR_IDEM_MISMATCH);

    big.body_len = c.storage_cap + 1;
    assert_true(tr_idem_complete(&r, OWNER_A, &big, &c, T0 + 100));
    assert_int_equal(tr_idem_lookup(&r, other, &c, 0, T0 + 200).verdict,
                     TR_IDEM_MISMATCH);
}

static void
in_flight_answers_conflict_with_lease_left(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_decision d;

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    assert_int_equal(r.lease_until_ms, T0 + 3000);

    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 300);
    assert_int_equal(d.verdict, TR_IDEM_IN_FLIGHT);
    assert_int_equal(d.problem, TR_P_IDEM_KEY_CONFLICT);
    assert_int_equal(tr_problem(d.problem)->status, 409);
    assert_int_equal(d.retry_after_s, 3);          /* 2.7 s, rounded up */

    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 1000);
    assert_int_equal(d.retry_after_s, 2);          /* exactly 2 s */
    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 2999);
    assert_int_equal(d.retry_after_s, 1);          /* never 0 */
}

static void
waiting_route_waits_until_its_deadline(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_decision d;
    int64_t deadline;

    fp_fill(fp, 1);
    c.wait_ms = 1000;
    r = claimed(&c, fp);
    deadline = tr_idem_wait_deadline(&c, T0 + 300);
    assert_int_equal(deadline, T0 + 1300);

    d = tr_idem_lookup(&r, fp, &c, deadline, T0 + 300);
    assert_int_equal(d.verdict, TR_IDEM_WAIT);
    assert_int_equal(d.wait_ms, 1000);
    d = tr_idem_lookup(&r, fp, &c, deadline, T0 + 1250);
    assert_int_equal(d.verdict, TR_IDEM_WAIT);
    assert_int_equal(d.wait_ms, 50);
    /* The deadline passed with the original still running: 409. */
    d = tr_idem_lookup(&r, fp, &c, deadline, T0 + 1300);
    assert_int_equal(d.verdict, TR_IDEM_IN_FLIGHT);
}

static void
wait_is_capped_by_the_lease(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_decision d;

    fp_fill(fp, 1);
    c.wait_ms = 10000;
    r = claimed(&c, fp);
    d = tr_idem_lookup(&r, fp, &c, tr_idem_wait_deadline(&c, T0 + 500),
                       T0 + 500);
    assert_int_equal(d.verdict, TR_IDEM_WAIT);
    assert_int_equal(d.wait_ms, 2500);
    c.wait_ms = 0;
    assert_int_equal(tr_idem_wait_deadline(&c, T0), 0);
}

static void
lease_expiry_without_outcome_is_unknown(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_decision d;

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 3000);
    assert_int_equal(d.verdict, TR_IDEM_OUTCOME_UNKNOWN);
    assert_int_equal(d.problem, TR_P_IDEM_OUTCOME_UNKNOWN);
    assert_int_equal(tr_problem(d.problem)->status, 409);
    assert_string_not_equal(tr_problem(d.problem)->type,
                            tr_problem(TR_P_IDEM_KEY_CONFLICT)->type);
    /* Still unknown an hour later, well inside the TTL. */
    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 3600 * 1000);
    assert_int_equal(d.verdict, TR_IDEM_OUTCOME_UNKNOWN);
    /* A waiting route does not wait on a dead owner. */
    c.wait_ms = 5000;
    d = tr_idem_lookup(&r, fp, &c, T0 + 9000, T0 + 4000);
    assert_int_equal(d.verdict, TR_IDEM_OUTCOME_UNKNOWN);
}

static void
lease_expiry_reexecutes_where_the_route_says(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;

    fp_fill(fp, 1);
    c.after_crash = TR_CRASH_REEXECUTE;
    r = claimed(&c, fp);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 2999).verdict,
                     TR_IDEM_IN_FLIGHT);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 3000).verdict,
                     TR_IDEM_REEXECUTE);
}

static void
over_cap_outcome_is_not_replayable_and_keeps_status(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result big = result(201, "");
    tr_idem_decision d;
    static uint8_t body[2048];

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    big.body = body;
    big.body_len = c.storage_cap + 1;
    big.headers = (const uint8_t *)"h";
    big.headers_len = 1;
    assert_true(tr_idem_complete(&r, OWNER_A, &big, &c, T0 + 100));
    assert_int_equal(r.state, TR_IDEM_REC_COMPLETED);
    assert_false(r.replayable);
    assert_null(r.body);
    assert_int_equal(r.body_len, 0);
    assert_null(r.headers);

    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 200);
    assert_int_equal(d.verdict, TR_IDEM_NOT_REPLAYABLE);
    assert_int_equal(d.problem, TR_P_IDEM_NOT_REPLAYABLE);
    assert_int_equal(d.status, 201);
}

static void
body_exactly_at_cap_is_replayable(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(200, "");
    static uint8_t body[1024];

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    res.body = body;
    res.body_len = c.storage_cap;
    assert_true(tr_idem_body_fits(&c, c.storage_cap));
    assert_false(tr_idem_body_fits(&c, (uint64_t)c.storage_cap + 1));
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 100));
    assert_true(r.replayable);
    assert_int_equal(r.body_len, 1024);
}

static void
dropped_body_or_huge_headers_are_not_replayable(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(200, "small");

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    res.body_dropped = true;
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 100));
    assert_false(r.replayable);

    r = claimed(&c, fp);
    res.body_dropped = false;
    res.headers = (const uint8_t *)"x";
    res.headers_len = TR_IDEM_HEADERS_MAX + 1;
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 100));
    assert_false(r.replayable);
}

/* ---- expiry ---- */

static void
ttl_expiry_proceeds_and_allows_a_new_claim(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN], other[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(201, "x");

    fp_fill(fp, 1);
    fp_fill(other, 2);
    c.ttl_s = 5;
    r = claimed(&c, fp);
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 1000));
    assert_int_equal(r.expires_ms, T0 + 6000);  /* ttl from completion */

    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 5999).verdict,
                     TR_IDEM_REPLAY);
    assert_false(tr_idem_claimable(&r, fp, false, T0 + 5999));
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 6000).verdict,
                     TR_IDEM_PROCEED);
    /* Expired means forgotten: even another request may use the key. */
    assert_int_equal(tr_idem_lookup(&r, other, &c, 0, T0 + 6000).verdict,
                     TR_IDEM_PROCEED);
    assert_true(tr_idem_expired(&r, T0 + 6000));
    assert_true(tr_idem_claimable(&r, other, false, T0 + 6000));
}

static void
unknown_outcome_expires_with_the_ttl(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    int64_t ttl = (int64_t)c.ttl_s * 1000;

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + ttl - 1).verdict,
                     TR_IDEM_OUTCOME_UNKNOWN);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + ttl).verdict,
                     TR_IDEM_PROCEED);
}

static void
live_lease_outlives_a_shorter_ttl(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;

    fp_fill(fp, 1);
    c.ttl_s = 1;                        /* shorter than the 3 s lease */
    r = claimed(&c, fp);
    assert_false(tr_idem_expired(&r, T0 + 2000));
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 2000).verdict,
                     TR_IDEM_IN_FLIGHT);
    assert_false(tr_idem_claimable(&r, fp, true, T0 + 2000));
    assert_true(tr_idem_expired(&r, T0 + 3000));
}

/* ---- claim, renew ---- */

static void
claim_sets_owner_lease_and_expiry(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;

    fp_fill(fp, 7);
    r = claimed(&c, fp);
    assert_int_equal(r.state, TR_IDEM_REC_IN_FLIGHT);
    assert_memory_equal(r.owner, OWNER_A, TR_IDEM_OWNER_LEN);
    assert_memory_equal(r.fingerprint, fp, TR_FP_LEN);
    assert_int_equal(r.created_ms, T0);
    assert_int_equal(r.lease_until_ms, T0 + 3000);
    assert_int_equal(r.expires_ms, T0 + 86400LL * 1000);
    assert_false(r.replayable);
}

static void
lease_length_saturates_and_renewal_interval_is_bounded(void **state)
{
    assert_int_equal(tr_idem_lease_ms(30000, TR_IDEM_LEASE_GRACE_MS),
                     31000);
    assert_int_equal(tr_idem_lease_ms(UINT32_MAX - 5, 10), UINT32_MAX);
    assert_int_equal(tr_idem_renew_every_ms(3000), 1000);
    assert_int_equal(tr_idem_renew_every_ms(6), 10);
}

static void
claimable_only_when_absent_expired_or_reexecutable(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN], other[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(201, "x");

    fp_fill(fp, 1);
    fp_fill(other, 2);
    assert_true(tr_idem_claimable(NULL, fp, false, T0));

    r = claimed(&c, fp);
    assert_false(tr_idem_claimable(&r, fp, false, T0 + 100));
    assert_false(tr_idem_claimable(&r, fp, true, T0 + 100));
    /* Lease over: only a re-executing route takes over, same request. */
    assert_false(tr_idem_claimable(&r, fp, false, T0 + 3000));
    assert_true(tr_idem_claimable(&r, fp, true, T0 + 3000));
    assert_false(tr_idem_claimable(&r, other, true, T0 + 3000));

    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 100));
    assert_false(tr_idem_claimable(&r, fp, true, T0 + 5000));
}

static void
renewal_extends_only_the_owners_lease(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(200, "x");

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    assert_true(tr_idem_renew(&r, OWNER_A, 3000, T0 + 2500));
    assert_int_equal(r.lease_until_ms, T0 + 5500);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 4000).verdict,
                     TR_IDEM_IN_FLIGHT);

    assert_false(tr_idem_renew(&r, OWNER_B, 3000, T0 + 2600));
    assert_int_equal(r.lease_until_ms, T0 + 5500);

    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 3000));
    assert_false(tr_idem_renew(&r, OWNER_A, 3000, T0 + 3100));
}

/* ---- complete, release ---- */

static void
owner_mismatch_refuses_the_write(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r, before;
    tr_idem_result res = result(201, "x");

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    before = r;
    assert_false(tr_idem_complete(&r, OWNER_B, &res, &c, T0 + 100));
    assert_same_record(&r, &before);
    assert_false(tr_idem_release(&r, OWNER_B));
    assert_same_record(&r, &before);
    assert_false(tr_idem_renew(&r, OWNER_B, 9000, T0 + 100));
    assert_same_record(&r, &before);
}

static void
taken_over_claim_refuses_the_old_owners_outcome(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result late = result(201, "late"), fresh = result(201, "new");

    fp_fill(fp, 1);
    c.after_crash = TR_CRASH_REEXECUTE;
    r = claimed(&c, fp);
    /* A stalled owner lets the lease run out; a retry takes over. */
    assert_true(tr_idem_claimable(&r, fp, true, T0 + 4000));
    tr_idem_claim(&r, fp, OWNER_B, 3000, &c, T0 + 4000);
    assert_false(tr_idem_complete(&r, OWNER_A, &late, &c, T0 + 4500));
    assert_int_equal(r.state, TR_IDEM_REC_IN_FLIGHT);
    assert_true(tr_idem_complete(&r, OWNER_B, &fresh, &c, T0 + 5000));
    assert_memory_equal(r.body, "new", 3);
}

static void
completion_twice_is_refused(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result a = result(201, "a"), b = result(500, "b");

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    assert_true(tr_idem_complete(&r, OWNER_A, &a, &c, T0 + 100));
    assert_false(tr_idem_complete(&r, OWNER_A, &b, &c, T0 + 200));
    assert_int_equal(r.status, 201);
    assert_false(tr_idem_release(&r, OWNER_A));
    assert_int_equal(r.state, TR_IDEM_REC_COMPLETED);
}

static void
release_makes_the_key_free_again(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    assert_true(tr_idem_release(&r, OWNER_A));
    assert_int_equal(r.state, TR_IDEM_REC_ABSENT);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 10).verdict,
                     TR_IDEM_PROCEED);
    assert_true(tr_idem_claimable(&r, fp, false, T0 + 10));
    assert_false(tr_idem_release(&r, OWNER_A));
}

static void
pinned_outcome_is_stored_and_replayed(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(502, "{\"type\":\"upstream\"}");

    fp_fill(fp, 1);
    r = claimed(&c, fp);
    res.pinned = tr_idem_classify(TR_IDEM_FAIL_RESET, 0, c.ambiguous) ==
                 TR_IDEM_OUT_PIN;
    assert_true(res.pinned);
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 100));
    assert_true(r.pinned);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 200).status, 502);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 200).verdict,
                     TR_IDEM_REPLAY);
}

/* ---- the release/store/pin table ---- */

static tr_idem_outcome
expected_for(int status, tr_ambiguous_mode amb)
{
    tr_idem_outcome a = amb == TR_AMBIGUOUS_RELEASE ? TR_IDEM_OUT_RELEASE
                                                    : TR_IDEM_OUT_PIN;

    switch (status) {
    case 401: case 403: case 407: case 408: case 409: case 425: case 429:
    case 503:
        return TR_IDEM_OUT_RELEASE;
    case 500: case 502: case 504:
        return a;
    }
    return status < 200 ? a : TR_IDEM_OUT_STORE;
}

static void
every_status_follows_the_table(void **state)
{
    tr_ambiguous_mode modes[] = { TR_AMBIGUOUS_PIN, TR_AMBIGUOUS_RELEASE };

    for (size_t m = 0; m < 2; m++) {
        for (int s = 100; s <= 599; s++)
            assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, s,
                                              modes[m]),
                             expected_for(s, modes[m]));
    }
}

static void
table_spot_checks(void **state)
{
    const tr_ambiguous_mode P = TR_AMBIGUOUS_PIN;

    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 201, P),
                     TR_IDEM_OUT_STORE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 302, P),
                     TR_IDEM_OUT_STORE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 400, P),
                     TR_IDEM_OUT_STORE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 404, P),
                     TR_IDEM_OUT_STORE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 412, P),
                     TR_IDEM_OUT_STORE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 422, P),
                     TR_IDEM_OUT_STORE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 501, P),
                     TR_IDEM_OUT_STORE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 429, P),
                     TR_IDEM_OUT_RELEASE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 503, P),
                     TR_IDEM_OUT_RELEASE);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 500, P),
                     TR_IDEM_OUT_PIN);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 504,
                                      TR_AMBIGUOUS_RELEASE),
                     TR_IDEM_OUT_RELEASE);
    /* Out of range: the exchange is in an unknown state. */
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 0, P),
                     TR_IDEM_OUT_PIN);
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 600, P),
                     TR_IDEM_OUT_PIN);
}

static void
failure_kinds_follow_the_table(void **state)
{
    tr_ambiguous_mode modes[] = { TR_AMBIGUOUS_PIN, TR_AMBIGUOUS_RELEASE };

    for (size_t m = 0; m < 2; m++) {
        tr_idem_outcome amb = m == 0 ? TR_IDEM_OUT_PIN
                                     : TR_IDEM_OUT_RELEASE;

        /* Status is ignored when there was no response. */
        assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_CONNECT, 201,
                                          modes[m]),
                         TR_IDEM_OUT_RELEASE);
        assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_REFUSED, 412,
                                          modes[m]),
                         TR_IDEM_OUT_RELEASE);
        assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_RESET, 201,
                                          modes[m]), amb);
        assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_TIMEOUT, 0,
                                          modes[m]), amb);
        assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_BAD_RESPONSE, 0,
                                          modes[m]), amb);
    }
    assert_string_equal(tr_idem_outcome_name(TR_IDEM_OUT_PIN), "pin");
    assert_string_equal(tr_idem_outcome_name(TR_IDEM_OUT_RELEASE),
                        "release");
    assert_string_equal(tr_idem_outcome_name(TR_IDEM_OUT_STORE), "store");
}

/* ---- headers ---- */

static tr_header
hdr(const char *n, const char *v)
{
    tr_header h = { n, strlen(n), v, strlen(v) };

    return h;
}

static void
allow_list_keeps_only_replayable_fields(void **state)
{
    const char *keep[] = { "Location", "content-type", "CONTENT-ENCODING",
                           "Content-Location", "ETag", "Last-Modified",
                           "link" };
    const char *drop[] = { "Set-Cookie", "Authorization", "Connection",
                           "Keep-Alive", "Transfer-Encoding", "Date",
                           "X-Request-Id", "Request-Id", "Content-Length",
                           "Server", "RateLimit", "Retry-After", "Vary",
                           "Locations", "Link2", "" };

    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        assert_true(tr_idem_header_storable(keep[i], strlen(keep[i])));
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        assert_false(tr_idem_header_storable(drop[i], strlen(drop[i])));
}

static void
headers_encode_and_decode_round_trip(void **state)
{
    tr_header in[] = {
        hdr("Location", "/v1/orders/9"),
        hdr("Set-Cookie", "s=1"),
        hdr("X-Request-Id", "r1"),
        hdr("Content-Type", "application/json"),
        hdr("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        hdr("Link", "</a>; rel=\"next\""),
        hdr("Link", "</b>; rel=\"prev\""),
        hdr("ETag", ""),
    };
    size_t n = sizeof(in) / sizeof(in[0]);
    uint8_t buf[512];
    size_t need, len, off = 0;
    tr_header h;
    const char *want[][2] = {
        { "Location", "/v1/orders/9" },
        { "Content-Type", "application/json" },
        { "Link", "</a>; rel=\"next\"" },
        { "Link", "</b>; rel=\"prev\"" },
        { "ETag", "" },
    };

    need = tr_idem_headers_encode(in, n, NULL, 0);
    assert_int_equal(tr_idem_headers_encode(in, n, buf, need - 1), need);
    len = tr_idem_headers_encode(in, n, buf, sizeof(buf));
    assert_int_equal(len, need);

    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(tr_idem_headers_next(buf, len, &off, &h), 1);
        assert_int_equal(h.name_len, strlen(want[i][0]));
        assert_memory_equal(h.name, want[i][0], h.name_len);
        assert_int_equal(h.value_len, strlen(want[i][1]));
        assert_memory_equal(h.value, want[i][1], h.value_len);
    }
    assert_int_equal(tr_idem_headers_next(buf, len, &off, &h), 0);
}

static void
headers_named_in_connection_are_not_stored(void **state)
{
    tr_header in[] = {
        hdr("Connection", "close, ETag"),
        hdr("ETag", "\"v1\""),
        hdr("Location", "/x"),
    };
    uint8_t buf[128];
    size_t len, off = 0;
    tr_header h;

    len = tr_idem_headers_encode(in, 3, buf, sizeof(buf));
    assert_int_equal(tr_idem_headers_next(buf, len, &off, &h), 1);
    assert_memory_equal(h.name, "Location", 8);
    assert_int_equal(tr_idem_headers_next(buf, len, &off, &h), 0);
}

static void
malformed_header_block_is_detected(void **state)
{
    const uint8_t short_hdr[] = { 4, 0, 0 };
    const uint8_t long_name[] = { 9, 0, 0, 0, 0, 'a', 'b' };
    const uint8_t long_value[] = { 1, 0, 0, 0, 9, 'a', 'b' };
    const uint8_t zero_name[] = { 0, 0, 0, 0, 0 };
    size_t off;
    tr_header h;

    off = 0;
    assert_int_equal(tr_idem_headers_next(short_hdr, 3, &off, &h), -1);
    off = 0;
    assert_int_equal(tr_idem_headers_next(long_name, 7, &off, &h), -1);
    off = 0;
    assert_int_equal(tr_idem_headers_next(long_value, 7, &off, &h), -1);
    off = 0;
    assert_int_equal(tr_idem_headers_next(zero_name, 5, &off, &h), -1);
    off = 9;
    assert_int_equal(tr_idem_headers_next(long_value, 7, &off, &h), -1);
    off = 0;
    assert_int_equal(tr_idem_headers_next(NULL, 0, &off, &h), 0);
}

/* ---- scope, derived key ---- */

static void
anonymous_scope_never_equals_a_principal_key(void **state)
{
    uint8_t buf[TR_IDEM_ANON_SCOPE_MAX];
    size_t n;

    n = tr_idem_anon_scope("192.0.2.7", buf, sizeof(buf));
    assert_int_equal(n, 7 + 9);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[1], 0);
    assert_memory_equal(buf + 2, "anon:192.0.2.7", 14);
    assert_int_equal(tr_idem_anon_scope("192.0.2.7", buf, 10), 0);
    n = tr_idem_anon_scope("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
                           buf, sizeof(buf));
    assert_true(n > 0);
}

static void
derived_key_matches_independent_digest(void **state)
{
    tr_idem_key k;
    char a[65], b[65];

    assert_int_equal(tr_idem_key_parse("\"k-1\"", 5, 1, &k),
                     TR_IDEM_KEY_OK);
    assert_int_equal(tr_idem_derived_key("corp\0alice", 10, &k, a), 0);
    assert_string_equal(a, "b37abba831c08398e592d195166c2eda"
                           "3fd583522360f2afea821ad15d1f16fa");
    /* Another principal, same key: another derived key. */
    assert_int_equal(tr_idem_derived_key("corp\0bob", 8, &k, b), 0);
    assert_string_not_equal(a, b);
    /* Length prefixes: ("corp\0alice", "k-1") != ("corp\0alicek", "-1"). */
    assert_int_equal(tr_idem_key_parse("-1", 2, 1, &k), TR_IDEM_KEY_OK);
    assert_int_equal(tr_idem_derived_key("corp\0alicek", 11, &k, b), 0);
    assert_string_not_equal(a, b);
}

/* ---- scenarios as sequences ---- */

static void
t2_concurrent_duplicate_then_replay(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;
    tr_idem_result res = result(201, "{\"id\":2}");
    tr_idem_decision d;

    fp_fill(fp, 0x22);
    /* A at t=0: lookup, claim. */
    assert_int_equal(tr_idem_lookup(NULL, fp, &c, 0, T0).verdict,
                     TR_IDEM_PROCEED);
    assert_true(tr_idem_claimable(NULL, fp, false, T0));
    r = claimed(&c, fp);
    /* B at t=0.3 s. */
    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 300);
    assert_int_equal(d.verdict, TR_IDEM_IN_FLIGHT);
    assert_true(d.retry_after_s >= 1);
    /* A completes at t=1.5 s with 201. */
    assert_int_equal(tr_idem_classify(TR_IDEM_FAIL_NONE, 201, c.ambiguous),
                     TR_IDEM_OUT_STORE);
    assert_true(tr_idem_complete(&r, OWNER_A, &res, &c, T0 + 1500));
    /* C at t=2 s: replay. */
    d = tr_idem_lookup(&r, fp, &c, 0, T0 + 2000);
    assert_int_equal(d.verdict, TR_IDEM_REPLAY);
    assert_int_equal(d.status, 201);
}

static void
crash_then_conflict_then_unknown_then_expiry(void **state)
{
    tr_idem_cfg c = cfg_default();
    uint8_t fp[TR_FP_LEN];
    tr_idem_record r;

    fp_fill(fp, 0x33);
    c.ttl_s = 60;
    r = claimed(&c, fp);
    /* The owner is killed: nobody renews or completes. */
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 1000).verdict,
                     TR_IDEM_IN_FLIGHT);
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 3500).verdict,
                     TR_IDEM_OUTCOME_UNKNOWN);
    assert_false(tr_idem_claimable(&r, fp, false, T0 + 3500));
    assert_int_equal(tr_idem_lookup(&r, fp, &c, 0, T0 + 60000).verdict,
                     TR_IDEM_PROCEED);
    assert_true(tr_idem_claimable(&r, fp, false, T0 + 60000));
}

static void
store_outage_refuses_only_where_keys_are_required(void **state)
{
    tr_idem_cfg c = cfg_default();

    c.mode = TR_IDEM_REQUIRED;
    assert_true(tr_idem_store_down_refuses(&c));
    c.mode = TR_IDEM_REQUIRED_FOR_AGENTS;
    assert_true(tr_idem_store_down_refuses(&c));
    c.fail_open = true;
    assert_false(tr_idem_store_down_refuses(&c));
    c.fail_open = false;
    c.mode = TR_IDEM_OPTIONAL;
    assert_false(tr_idem_store_down_refuses(&c));
    assert_int_equal(tr_problem(TR_P_IDEM_STORE_UNAVAILABLE)->status, 503);
}

static void
verdict_names_are_total(void **state)
{
    for (int v = TR_IDEM_PROCEED; v <= TR_IDEM_NOT_REPLAYABLE; v++)
        assert_string_not_equal(tr_idem_verdict_name((tr_idem_verdict)v),
                                "invalid");
    assert_string_equal(tr_idem_verdict_name((tr_idem_verdict)42),
                        "invalid");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(absent_record_proceeds),
        cmocka_unit_test(completed_record_replays_its_status),
        cmocka_unit_test(different_fingerprint_is_a_mismatch),
        cmocka_unit_test(mismatch_wins_over_in_flight),
        cmocka_unit_test(mismatch_wins_over_unknown_and_not_replayable),
        cmocka_unit_test(in_flight_answers_conflict_with_lease_left),
        cmocka_unit_test(waiting_route_waits_until_its_deadline),
        cmocka_unit_test(wait_is_capped_by_the_lease),
        cmocka_unit_test(lease_expiry_without_outcome_is_unknown),
        cmocka_unit_test(lease_expiry_reexecutes_where_the_route_says),
        cmocka_unit_test(
            over_cap_outcome_is_not_replayable_and_keeps_status),
        cmocka_unit_test(body_exactly_at_cap_is_replayable),
        cmocka_unit_test(dropped_body_or_huge_headers_are_not_replayable),
        cmocka_unit_test(ttl_expiry_proceeds_and_allows_a_new_claim),
        cmocka_unit_test(unknown_outcome_expires_with_the_ttl),
        cmocka_unit_test(live_lease_outlives_a_shorter_ttl),
        cmocka_unit_test(claim_sets_owner_lease_and_expiry),
        cmocka_unit_test(
            lease_length_saturates_and_renewal_interval_is_bounded),
        cmocka_unit_test(
            claimable_only_when_absent_expired_or_reexecutable),
        cmocka_unit_test(renewal_extends_only_the_owners_lease),
        cmocka_unit_test(owner_mismatch_refuses_the_write),
        cmocka_unit_test(taken_over_claim_refuses_the_old_owners_outcome),
        cmocka_unit_test(completion_twice_is_refused),
        cmocka_unit_test(release_makes_the_key_free_again),
        cmocka_unit_test(pinned_outcome_is_stored_and_replayed),
        cmocka_unit_test(every_status_follows_the_table),
        cmocka_unit_test(table_spot_checks),
        cmocka_unit_test(failure_kinds_follow_the_table),
        cmocka_unit_test(allow_list_keeps_only_replayable_fields),
        cmocka_unit_test(headers_encode_and_decode_round_trip),
        cmocka_unit_test(headers_named_in_connection_are_not_stored),
        cmocka_unit_test(malformed_header_block_is_detected),
        cmocka_unit_test(anonymous_scope_never_equals_a_principal_key),
        cmocka_unit_test(derived_key_matches_independent_digest),
        cmocka_unit_test(t2_concurrent_duplicate_then_replay),
        cmocka_unit_test(crash_then_conflict_then_unknown_then_expiry),
        cmocka_unit_test(store_outage_refuses_only_where_keys_are_required),
        cmocka_unit_test(verdict_names_are_total),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
