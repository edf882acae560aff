/* Multi-dimension admission on a virtual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "budgets_fixture.h"

static budget_fixture fx;

static tr_admission *
make(void)
{
    tr_admission *adm = tr_admission_create(&fx.cfg, 0x1234);

    assert_non_null(adm);
    return adm;
}

static int
reset(void **state)
{
    fixture_common(&fx);
    return 0;
}

static const tr_ratelimit_item *
item(const tr_admit_decision *d, const char *name)
{
    size_t i;

    for (i = 0; i < d->n_items; i++) {
        if (strcmp(d->items[i].name, name) == 0)
            return &d->items[i];
    }
    return NULL;
}

static bool
violated(const tr_admit_decision *d, const char *name)
{
    size_t i;

    for (i = 0; i < d->n_violated; i++) {
        if (strcmp(d->violated[i], name) == 0)
            return true;
    }
    return false;
}

/* Admits and releases at once: a backend that answers immediately. */
static tr_admit_outcome
call(tr_admission *adm, tr_admit_request rq, uint64_t now,
     tr_admit_decision *d)
{
    tr_admit_ticket tk;
    tr_admit_outcome o;

    tr_admit_ticket_init(&tk, NULL);
    o = tr_admit(adm, &tk, &rq, now, d);
    assert_int_not_equal(o, TR_ADMIT_QUEUED);
    tr_admit_release(adm, &tk, now);
    return o;
}

static void
test_refused_request_consumes_nothing(void **state)
{
    tr_admission *adm = make();
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_ticket tk[2];
    tr_admit_decision d;
    tr_limiter_entry *budget, *quota;
    tr_gcra rate_before, quota_before;
    uint32_t inflight_before;

    tr_admit_ticket_init(&tk[0], NULL);
    tr_admit_ticket_init(&tk[1], NULL);
    assert_int_equal(call(adm, a, 0, &d), TR_ADMIT_OK);
    assert_int_equal(call(adm, a, 0, &d), TR_ADMIT_OK);
    /* hold the third one in flight */
    assert_int_equal(tr_admit(adm, &tk[0], &a, 0, &d), TR_ADMIT_OK);
    budget = tk[0].budget;
    quota = tk[0].quota[0];
    rate_before = budget->gcra;
    quota_before = quota->gcra;
    inflight_before = budget->conc.inflight;
    assert_int_equal(tr_admit(adm, &tk[1], &a, MS, &d), TR_ADMIT_REFUSED);
    assert_int_equal(d.reason, TR_ADMIT_REASON_QUOTA);
    assert_int_equal(d.problem, TR_P_QUOTA_EXCEEDED);
    assert_int_equal(budget->gcra.tat, rate_before.tat);
    assert_int_equal(budget->gcra.reserved, rate_before.reserved);
    assert_int_equal(quota->gcra.tat, quota_before.tat);
    assert_int_equal(budget->conc.inflight, inflight_before);
    assert_int_equal(budget->conc.queued, 0);
    /* nothing to release for a refusal, and releasing is harmless */
    assert_null(tr_admit_release(adm, &tk[1], MS));
    assert_int_equal(budget->conc.inflight, inflight_before);
    tr_admit_release(adm, &tk[0], MS);
    tr_admission_free(adm);
}

static void
test_every_refusing_dimension_is_named_and_the_longest_wait_wins(
    void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_decision d;
    int i;

    fx.cfg.budgets.agent.burst = 3; /* rate: 3 units, one per 100 ms */
    adm = make();
    for (i = 0; i < 3; i++)
        assert_int_equal(call(adm, a, 0, &d), TR_ADMIT_OK);
    assert_int_equal(call(adm, a, 0, &d), TR_ADMIT_REFUSED);
    assert_int_equal(d.n_violated, 2);
    assert_string_equal(d.violated[0], "email"); /* quotas first */
    assert_string_equal(d.violated[1], "rate");
    assert_int_equal(d.reason, TR_ADMIT_REASON_QUOTA);
    assert_int_equal(d.retry_after_s, 20);
    assert_true(d.retry_after_exact);
    tr_admission_free(adm);
}

static void
test_shadow_rate_refuses_nothing_records_and_charges_only_passes(
    void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_HUMAN, TOOL_SEARCH);
    tr_admission_stats st;
    tr_admit_decision d;
    tr_admit_ticket tk;
    int i, shadowed = 0;

    fx.cfg.budgets.human.shadow_rate = true;
    fx.cfg.budgets.human.concurrency = 0;
    adm = make();
    for (i = 0; i < 30; i++) {
        assert_int_equal(call(adm, a, 0, &d), TR_ADMIT_OK);
        assert_null(item(&d, "rate")); /* not advertised */
        shadowed += d.n_shadow;
        if (d.n_shadow)
            assert_string_equal(d.shadow[0], "rate");
    }
    assert_int_equal(shadowed, 10);
    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.shadow_rate, 10);
    assert_int_equal(st.refused[TR_ADMIT_REASON_RATE], 0);
    /* only the 20 that would have passed were charged */
    tr_admit_ticket_init(&tk, NULL);
    tr_admit(adm, &tk, &a, 0, &d);
    assert_int_equal(tk.budget->gcra.tat, 2 * S);
    tr_admit_release(adm, &tk, 0);
    tr_admission_free(adm);
}

static void
test_shadow_quota_and_shadow_concurrency_refuse_nothing(void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admission_stats st;
    tr_admit_ticket tk[8];
    tr_admit_decision d;
    uint64_t refused, shadow;
    size_t len;
    int i;

    fx.quotas[0].shadow = true;
    fx.cfg.budgets.agent.shadow_concurrency = true;
    adm = make();
    assert_string_equal(tr_admission_policy(adm, TOOL_EMAIL,
                                            TR_CLASS_AGENT, &len),
                        "\"rate\";q=20;w=2");
    for (i = 0; i < 8; i++) {
        tr_admit_ticket_init(&tk[i], NULL);
        assert_int_equal(tr_admit(adm, &tk[i], &a, 0, &d), TR_ADMIT_OK);
    }
    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.shadow_quota, 5);       /* 3 of 8 emails fit */
    assert_int_equal(st.shadow_concurrency, 4); /* 4 of 8 fit the cap */
    assert_int_equal(st.inflight[TR_CLASS_AGENT], 8);
    tr_admission_quota_stats(adm, 0, &refused, &shadow);
    assert_int_equal(refused, 0);
    assert_int_equal(shadow, 5);
    for (i = 0; i < 8; i++)
        assert_null(tr_admit_release(adm, &tk[i], S));
    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.inflight[TR_CLASS_AGENT], 0);
    tr_admission_free(adm);
}

static void
test_replay_charges_one_rate_unit_and_nothing_else(void **state)
{
    tr_admission *adm = make();
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_ticket tk;
    tr_admit_decision d;
    tr_limiter_entry *budget, *quota;
    uint64_t tat_rate, tat_quota;

    tr_admit_ticket_init(&tk, NULL);
    assert_int_equal(tr_admit(adm, &tk, &a, 0, &d), TR_ADMIT_OK);
    budget = tk.budget;
    quota = tk.quota[0];
    tat_rate = budget->gcra.tat;
    tat_quota = quota->gcra.tat;
    assert_int_equal(tr_admit_replay(adm, &a, 0, &d), TR_ADMIT_OK);
    assert_int_equal(budget->gcra.tat, tat_rate + 100 * MS);
    assert_int_equal(quota->gcra.tat, tat_quota);
    assert_int_equal(budget->conc.inflight, 1);
    /* the replay still reports every policy of the route */
    assert_int_equal(d.n_items, 3);
    assert_int_equal(item(&d, "email")->r, 20);
    assert_int_equal(item(&d, "rate")->r, 18);
    assert_int_equal(item(&d, "inflight")->r, 3);
    tr_admit_release(adm, &tk, 0);
    tr_admission_free(adm);
}

static void
test_replay_is_refused_exactly_when_the_rate_is_spent(void **state)
{
    tr_admission *adm = make();
    tr_admit_request a = who("A", TR_CLASS_HUMAN, TOOL_SEARCH);
    tr_admit_decision d;
    int i;

    for (i = 0; i < 20; i++)
        assert_int_equal(tr_admit_replay(adm, &a, 0, &d), TR_ADMIT_OK);
    assert_int_equal(tr_admit_replay(adm, &a, 10 * MS, &d),
                     TR_ADMIT_REFUSED);
    assert_int_equal(d.reason, TR_ADMIT_REASON_RATE);
    assert_int_equal(d.retry_after_s, 1);
    assert_true(d.retry_after_exact);
    assert_int_equal(tr_admit_replay(adm, &a, 100 * MS, &d), TR_ADMIT_OK);
    tr_admission_free(adm);
}

static void
test_refund_gives_back_exactly_and_passes_the_slot_on(void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_ticket t1, t2;
    tr_admit_decision d;
    tr_limiter_entry *budget, *quota;

    fx.cfg.budgets.agent.concurrency = 1;
    adm = make();
    tr_admit_ticket_init(&t1, NULL);
    tr_admit_ticket_init(&t2, NULL);
    assert_int_equal(call(adm, a, 0, &d), TR_ADMIT_OK);
    assert_int_equal(tr_admit(adm, &t1, &a, MS, &d), TR_ADMIT_OK);
    budget = t1.budget;
    quota = t1.quota[0];
    assert_int_equal(budget->gcra.tat, 200 * MS);
    assert_int_equal(quota->gcra.tat, 40 * S);
    /* refund alone: exactly the state before t1 */
    assert_null(tr_admit_refund(adm, &t1, 2 * MS));
    assert_int_equal(budget->gcra.tat, 100 * MS);
    assert_int_equal(quota->gcra.tat, 20 * S);
    assert_int_equal(budget->conc.inflight, 0);

    /* with a waiter: the refund frees the slot and the waiter's
     * reservation becomes a charge at that moment */
    tr_admit_ticket_init(&t1, NULL);
    assert_int_equal(tr_admit(adm, &t1, &a, 3 * MS, &d), TR_ADMIT_OK);
    assert_int_equal(tr_admit(adm, &t2, &a, 3 * MS, &d), TR_ADMIT_QUEUED);
    assert_ptr_equal(tr_admit_refund(adm, &t1, 4 * MS), &t2);
    assert_int_equal(budget->gcra.reserved, 0);
    assert_int_equal(quota->gcra.reserved, 0);
    assert_int_equal(budget->gcra.tat, 200 * MS);
    assert_int_equal(quota->gcra.tat, 40 * S);
    assert_int_equal(t2.state, TR_TICKET_ADMITTED);
    assert_int_equal(budget->conc.inflight, 1);
    assert_null(tr_admit_refund(adm, &t1, 5 * MS)); /* only once */
    assert_int_equal(budget->gcra.tat, 200 * MS);
    tr_admit_release(adm, &t2, 5 * MS);
    assert_int_equal(budget->conc.inflight, 0);
    tr_admission_free(adm);
}

static void
test_queued_request_reserves_and_its_timeout_consumes_nothing(void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_ticket t1, t2;
    tr_admit_decision d;
    tr_gcra rate0, quota0;

    fx.cfg.budgets.agent.concurrency = 1;
    adm = make();
    tr_admit_ticket_init(&t1, NULL);
    tr_admit_ticket_init(&t2, NULL);
    assert_int_equal(tr_admit(adm, &t1, &a, 0, &d), TR_ADMIT_OK);
    rate0 = t1.budget->gcra;
    quota0 = t1.quota[0]->gcra;
    assert_int_equal(tr_admit(adm, &t2, &a, 0, &d), TR_ADMIT_QUEUED);
    assert_int_equal(d.queue_deadline, 2 * S);
    /* reserved: others see the units gone, nothing charged yet */
    assert_int_equal(item(&d, "email")->r, 10);
    assert_int_equal(item(&d, "rate")->r, 18);
    assert_int_equal(t1.quota[0]->gcra.tat, quota0.tat);
    assert_int_equal(t1.quota[0]->gcra.reserved, 10);
    /* the deadline passes: 503, never forwarded, units back */
    assert_true(tr_admit_timeout(adm, &t2, 2 * S, &d));
    assert_int_equal(d.outcome, TR_ADMIT_REFUSED);
    assert_int_equal(d.reason, TR_ADMIT_REASON_QUEUE_TIMEOUT);
    assert_int_equal(d.problem, TR_P_REDUCED_CAPACITY);
    assert_true(d.retry_after_s >= 1);
    assert_false(d.retry_after_exact);
    assert_true(violated(&d, "inflight"));
    assert_int_equal(t1.budget->gcra.tat, rate0.tat);
    assert_int_equal(t1.budget->gcra.reserved, 0);
    assert_int_equal(t1.quota[0]->gcra.tat, quota0.tat);
    assert_int_equal(t1.quota[0]->gcra.reserved, 0);
    assert_int_equal(t1.budget->conc.queued, 0);
    /* its slot never comes */
    assert_null(tr_admit_release(adm, &t1, 3 * S));
    assert_null(tr_admit_release(adm, &t2, 3 * S));
    assert_false(tr_admit_timeout(adm, &t2, 3 * S, &d));
    tr_admission_free(adm);
}

static void
test_client_leaving_the_queue_never_takes_a_slot(void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_SEARCH);
    tr_admit_ticket t1, t2, t3;
    tr_admission_stats st;
    tr_admit_decision d;

    fx.cfg.budgets.agent.concurrency = 1;
    adm = make();
    tr_admit_ticket_init(&t1, NULL);
    tr_admit_ticket_init(&t2, NULL);
    tr_admit_ticket_init(&t3, NULL);
    tr_admit(adm, &t1, &a, 0, &d);
    assert_int_equal(tr_admit(adm, &t2, &a, 0, &d), TR_ADMIT_QUEUED);
    assert_int_equal(tr_admit(adm, &t3, &a, 0, &d), TR_ADMIT_QUEUED);
    assert_null(tr_admit_release(adm, &t2, 100 * MS)); /* client left */
    assert_int_equal(t1.budget->gcra.reserved, 1);
    assert_ptr_equal(tr_admit_release(adm, &t1, S), &t3);
    assert_int_equal(t2.state, TR_TICKET_DONE);
    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.admitted_from_queue, 1);
    assert_int_equal(st.wait_count, 1);
    assert_int_equal(st.wait_sum_ns, S);
    assert_int_equal(st.wait_hist[8], 1); /* <= 1000 ms */
    tr_admit_release(adm, &t3, S);
    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.inflight[TR_CLASS_AGENT], 0);
    assert_int_equal(st.waiting[TR_CLASS_AGENT], 0);
    tr_admission_free(adm);
}

static void
test_waiter_past_its_deadline_is_passed_over_and_answered_503(void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_SEARCH);
    tr_admit_ticket t1, t2;
    tr_admit_decision d;

    fx.cfg.budgets.agent.concurrency = 1;
    adm = make();
    tr_admit_ticket_init(&t1, NULL);
    tr_admit_ticket_init(&t2, NULL);
    tr_admit(adm, &t1, &a, 0, &d);
    tr_admit(adm, &t2, &a, 0, &d);
    /* the slot frees after t2's deadline, before its timer ran */
    assert_null(tr_admit_release(adm, &t1, 2500 * MS));
    assert_int_equal(t2.state, TR_TICKET_EXPIRED);
    assert_true(tr_admit_timeout(adm, &t2, 2500 * MS, &d));
    assert_int_equal(d.problem, TR_P_REDUCED_CAPACITY);
    assert_null(tr_admit_release(adm, &t2, 2500 * MS));
    assert_int_equal(call(adm, a, 2600 * MS, &d), TR_ADMIT_OK);
    tr_admission_free(adm);
}

static void
test_human_clicks_never_wait_behind_agents(void **state)
{
    tr_admission *adm = make();
    tr_admit_request agent = who("A", TR_CLASS_AGENT, TOOL_SEARCH);
    tr_admit_request human = who("A", TR_CLASS_HUMAN, TOOL_SEARCH);
    tr_admit_ticket tk[12];
    tr_admit_decision d;
    int i;

    for (i = 0; i < 12; i++) {
        tr_admit_ticket_init(&tk[i], NULL);
        tr_admit(adm, &tk[i], &agent, 0, &d);
    }
    assert_int_equal(d.outcome, TR_ADMIT_REFUSED);
    assert_int_equal(call(adm, human, MS, &d), TR_ADMIT_OK);
    /* r counts the slot and unit this request just took */
    assert_int_equal(item(&d, "inflight")->r, 3);
    assert_int_equal(item(&d, "rate")->r, 19);
    for (i = 0; i < 12; i++)
        tr_admit_release(adm, &tk[i], S);
    tr_admission_free(adm);
}

static void
test_quota_per_all_is_shared_per_principal_is_not(void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_request b = who("B", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_decision d;

    adm = make();
    call(adm, a, 0, &d);
    call(adm, a, 0, &d);
    call(adm, a, 0, &d);
    assert_int_equal(call(adm, a, 0, &d), TR_ADMIT_REFUSED);
    assert_int_equal(call(adm, b, 0, &d), TR_ADMIT_OK);
    tr_admission_free(adm);

    fx.quotas[0].per = TR_QUOTA_PER_ALL;
    adm = make();
    call(adm, a, 0, &d);
    call(adm, b, 0, &d);
    call(adm, a, 0, &d);
    assert_int_equal(call(adm, b, 0, &d), TR_ADMIT_REFUSED);
    assert_true(violated(&d, "email"));
    tr_admission_free(adm);
}

static void
test_full_table_refuses_new_keys_503_and_counts(void **state)
{
    tr_admission *adm;
    tr_admission_stats st;
    tr_admit_decision d;
    char name[8];
    int i;

    fx.cfg.budgets.table_capacity = 4;
    adm = make();
    for (i = 0; i < 4; i++) {
        name[0] = (char)('a' + i);
        name[1] = '\0';
        assert_int_equal(call(adm, who(name, TR_CLASS_HUMAN, TOOL_SEARCH),
                              0, &d),
                         TR_ADMIT_OK);
    }
    /* all four keys are live (buckets not full again yet) */
    assert_int_equal(call(adm, who("z", TR_CLASS_HUMAN, TOOL_SEARCH),
                          50 * MS, &d),
                     TR_ADMIT_REFUSED);
    assert_int_equal(d.reason, TR_ADMIT_REASON_TABLE_FULL);
    assert_int_equal(d.problem, TR_P_REDUCED_CAPACITY);
    assert_int_equal(d.retry_after_s, 1);
    assert_true(violated(&d, "rate"));
    /* known keys keep working */
    assert_int_equal(call(adm, who("a", TR_CLASS_HUMAN, TOOL_SEARCH),
                          50 * MS, &d),
                     TR_ADMIT_OK);
    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.refused[TR_ADMIT_REASON_TABLE_FULL], 1);
    assert_int_equal(st.table.overflows, 1);
    /* once keys are fresh again, new ones get in by eviction */
    assert_int_equal(call(adm, who("z", TR_CLASS_HUMAN, TOOL_SEARCH),
                          S, &d),
                     TR_ADMIT_OK);
    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.table.evictions, 1);
    tr_admission_free(adm);
}

static void
test_policy_field_is_exact_and_byte_identical(void **state)
{
    tr_admission *adm = make();
    const char *p1, *p2;
    size_t len;

    p1 = tr_admission_policy(adm, TOOL_EMAIL, TR_CLASS_AGENT, &len);
    assert_string_equal(p1, "\"rate\";q=20;w=2, \"email\";q=30;w=60, "
                            "\"inflight\";q=4;qu=\"concurrent-requests\"");
    assert_int_equal(len, strlen(p1));
    p2 = tr_admission_policy(adm, TOOL_EMAIL, TR_CLASS_AGENT, &len);
    assert_ptr_equal(p1, p2);
    assert_string_equal(tr_admission_policy(adm, TOOL_SEARCH,
                                            TR_CLASS_HUMAN, &len),
                        "\"rate\";q=20;w=2, "
                        "\"inflight\";q=4;qu=\"concurrent-requests\"");
    assert_string_equal(tr_admission_policy(adm, -1, TR_CLASS_HUMAN, &len),
                        "\"rate\";q=20;w=2, "
                        "\"inflight\";q=4;qu=\"concurrent-requests\"");
    assert_null(tr_admission_policy(adm, 7, TR_CLASS_HUMAN, &len));
    tr_admission_free(adm);

    /* nothing limited: no field at all */
    fx.cfg.budgets.human.rate = 0;
    fx.cfg.budgets.human.concurrency = 0;
    adm = make();
    assert_null(tr_admission_policy(adm, TOOL_SEARCH, TR_CLASS_HUMAN, &len));
    assert_int_equal(len, 0);
    tr_admission_free(adm);
}

static void
test_queue_full_estimate_follows_observed_slot_holds(void **state)
{
    tr_admission *adm;
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_SEARCH);
    tr_admit_ticket t1, t2;
    tr_admit_decision d;

    fx.cfg.budgets.agent.concurrency = 1;
    fx.cfg.budgets.agent.queue = 0;
    adm = make();
    tr_admit_ticket_init(&t1, NULL);
    tr_admit_ticket_init(&t2, NULL);
    tr_admit(adm, &t1, &a, 0, &d);
    assert_int_equal(tr_admit(adm, &t2, &a, 0, &d), TR_ADMIT_REFUSED);
    assert_int_equal(d.reason, TR_ADMIT_REASON_QUEUE_FULL);
    assert_int_equal(d.problem, TR_P_QUOTA_EXCEEDED);
    assert_int_equal(d.retry_after_s, 1); /* nothing observed yet */
    assert_false(d.retry_after_exact);
    assert_int_equal(item(&d, "inflight")->r, 0);
    tr_admit_release(adm, &t1, 2500 * MS); /* held 2.5 s */
    tr_admit_ticket_init(&t1, NULL);
    tr_admit(adm, &t1, &a, 3 * S, &d);
    tr_admit(adm, &t2, &a, 3 * S, &d);
    assert_int_equal(d.retry_after_s, 3);
    tr_admit_release(adm, &t1, 4 * S);
    tr_admission_free(adm);
}

static void
test_bad_tool_index_is_an_internal_error(void **state)
{
    tr_admission *adm = make();
    tr_admit_request a = who("A", TR_CLASS_AGENT, 5);
    tr_admit_ticket tk;
    tr_admit_decision d;

    tr_admit_ticket_init(&tk, NULL);
    assert_int_equal(tr_admit(adm, &tk, &a, 0, &d), TR_ADMIT_REFUSED);
    assert_int_equal(d.reason, TR_ADMIT_REASON_INTERNAL);
    assert_int_equal(d.problem, TR_P_INTERNAL);
    /* a ticket holding an admission is not admitted twice */
    a.tool = TOOL_SEARCH;
    assert_int_equal(tr_admit(adm, &tk, &a, 0, &d), TR_ADMIT_OK);
    assert_int_equal(tr_admit(adm, &tk, &a, 0, &d), TR_ADMIT_REFUSED);
    assert_int_equal(d.reason, TR_ADMIT_REASON_INTERNAL);
    tr_admit_release(adm, &tk, 0);
    assert_int_equal(tr_admit(adm, &tk, &a, 0, &d), TR_ADMIT_OK);
    tr_admit_release(adm, &tk, 0);
    tr_admission_free(adm);
}

static void
test_config_errors_are_reported(void **state)
{
    assert_null(tr_admission_config_error(&fx.cfg));

    fx.charges[TOOL_EMAIL][0].cost = 31;
    assert_non_null(tr_admission_config_error(&fx.cfg));
    assert_null(tr_admission_create(&fx.cfg, 1));
    fixture_common(&fx);

    fx.quotas[0].name = (char *)"rate";
    assert_non_null(tr_admission_config_error(&fx.cfg));
    fx.quotas[0].name = (char *)"bad\"\x01name";
    assert_non_null(tr_admission_config_error(&fx.cfg));
    fixture_common(&fx);

    fx.cfg.budgets.agent.rate = 0.0 / 0.0;
    assert_non_null(tr_admission_config_error(&fx.cfg));
    fx.cfg.budgets.agent.rate = 5;
    fx.cfg.budgets.agent.burst = 0;
    assert_non_null(tr_admission_config_error(&fx.cfg));
    fixture_common(&fx);

    fx.tools[TOOL_SEARCH].rate_cost = 21;
    assert_non_null(tr_admission_config_error(&fx.cfg));
    fixture_common(&fx);

    fx.charges[TOOL_EMAIL][1] = (tr_tool_charge){0, 1};
    fx.tools[TOOL_EMAIL].n_charges = 2; /* email twice */
    assert_non_null(tr_admission_config_error(&fx.cfg));
    fx.tools[TOOL_EMAIL].n_charges = TR_ADMIT_MAX_CHARGES + 1;
    assert_non_null(tr_admission_config_error(&fx.cfg));
    fixture_common(&fx);

    fx.quotas[0].period_s = 0;
    assert_non_null(tr_admission_config_error(&fx.cfg));
}

static void
test_names_for_logs_are_stable(void **state)
{
    assert_string_equal(tr_admit_reason_name(TR_ADMIT_REASON_NONE),
                        "admitted");
    assert_string_equal(tr_admit_reason_name(TR_ADMIT_REASON_QUEUE_FULL),
                        "queue_full");
    assert_string_equal(tr_admit_reason_name((tr_admit_reason)99),
                        "internal");
    assert_string_equal(tr_admit_outcome_name(TR_ADMIT_QUEUED), "queued");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_refused_request_consumes_nothing,
                               reset),
        cmocka_unit_test_setup(
            test_every_refusing_dimension_is_named_and_the_longest_wait_wins,
            reset),
        cmocka_unit_test_setup(
            test_shadow_rate_refuses_nothing_records_and_charges_only_passes,
            reset),
        cmocka_unit_test_setup(
            test_shadow_quota_and_shadow_concurrency_refuse_nothing, reset),
        cmocka_unit_test_setup(
            test_replay_charges_one_rate_unit_and_nothing_else, reset),
        cmocka_unit_test_setup(
            test_replay_is_refused_exactly_when_the_rate_is_spent, reset),
        cmocka_unit_test_setup(
            test_refund_gives_back_exactly_and_passes_the_slot_on, reset),
        cmocka_unit_test_setup(
            test_queued_request_reserves_and_its_timeout_consumes_nothing,
            reset),
        cmocka_unit_test_setup(
            test_client_leaving_the_queue_never_takes_a_slot, reset),
        cmocka_unit_test_setup(
            test_waiter_past_its_deadline_is_passed_over_and_answered_503,
            reset),
        cmocka_unit_test_setup(test_human_clicks_never_wait_behind_agents,
                               reset),
        cmocka_unit_test_setup(
            test_quota_per_all_is_shared_per_principal_is_not, reset),
        cmocka_unit_test_setup(
            test_full_table_refuses_new_keys_503_and_counts, reset),
        cmocka_unit_test_setup(test_policy_field_is_exact_and_byte_identical,
                               reset),
        cmocka_unit_test_setup(
            test_queue_full_estimate_follows_observed_slot_holds, reset),
        cmocka_unit_test_setup(test_bad_tool_index_is_an_internal_error,
                               reset),
        cmocka_unit_test_setup(test_config_errors_are_reported, reset),
        cmocka_unit_test(test_names_for_logs_are_stable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
