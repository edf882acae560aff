/* The in-flight counter and FIFO of one key, on a virtual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/concurrency.h"

#define S 1000000000ull

/* A caller's request with an embedded node, as the server has. */
typedef struct {
    int id;
    tr_wait_node node;
} fake_req;

static fake_req reqs[64];

static void
reset_reqs(void)
{
    int i;

    for (i = 0; i < 64; i++) {
        reqs[i].id = i;
        reqs[i].node = (tr_wait_node){0};
        reqs[i].node.owner = &reqs[i];
    }
}

static int
id_of(tr_wait_node *n)
{
    return n == NULL ? -1 : ((fake_req *)n->owner)->id;
}

static void
test_cap_4_queue_4_of_12_gives_4_admitted_4_queued_4_full(void **state)
{
    tr_conc c;
    int i, adm = 0, q = 0, full = 0;

    reset_reqs();
    tr_conc_init(&c);
    for (i = 0; i < 12; i++) {
        switch (tr_conc_enter(&c, 4, 4, &reqs[i].node, 2 * S)) {
        case TR_CONC_ADMITTED:
            adm++;
            assert_true(i < 4);
            break;
        case TR_CONC_QUEUED:
            q++;
            assert_true(i >= 4 && i < 8);
            break;
        case TR_CONC_FULL:
            full++;
            assert_int_equal(reqs[i].node.state, TR_WAIT_IDLE);
            break;
        }
    }
    assert_int_equal(adm, 4);
    assert_int_equal(q, 4);
    assert_int_equal(full, 4);
    assert_int_equal(c.inflight, 4);
    assert_int_equal(c.queued, 4);
}

static void
test_release_admits_waiters_in_fifo_order(void **state)
{
    tr_conc c;
    tr_wait_list exp;
    int i;

    reset_reqs();
    tr_conc_init(&c);
    tr_wait_list_init(&exp);
    for (i = 0; i < 8; i++)
        tr_conc_enter(&c, 4, 4, &reqs[i].node, 2 * S);
    for (i = 0; i < 4; i++) {
        tr_wait_node *n = tr_conc_leave(&c, 4, S, &exp);

        assert_int_equal(id_of(n), 4 + i);
        assert_int_equal(n->state, TR_WAIT_ADMITTED);
        assert_int_equal(c.inflight, 4);
    }
    assert_int_equal(c.queued, 0);
    assert_null(tr_conc_leave(&c, 4, S, &exp));
    assert_int_equal(c.inflight, 3);
    assert_int_equal(exp.n, 0);
}

static void
test_newcomer_never_overtakes_the_queue(void **state)
{
    tr_conc c;

    reset_reqs();
    tr_conc_init(&c);
    tr_conc_enter(&c, 1, 4, &reqs[0].node, 2 * S);
    assert_int_equal(tr_conc_enter(&c, 1, 4, &reqs[1].node, 2 * S),
                     TR_CONC_QUEUED);
    /* The slot passes to the waiter; a newcomer queues behind. */
    assert_int_equal(id_of(tr_conc_leave(&c, 1, S, NULL)), 1);
    assert_int_equal(tr_conc_enter(&c, 1, 4, &reqs[2].node, 2 * S),
                     TR_CONC_QUEUED);
}

static void
test_cancelled_waiter_never_takes_a_slot(void **state)
{
    tr_conc c;

    reset_reqs();
    tr_conc_init(&c);
    tr_conc_enter(&c, 1, 4, &reqs[0].node, 2 * S);
    tr_conc_enter(&c, 1, 4, &reqs[1].node, 2 * S);
    tr_conc_enter(&c, 1, 4, &reqs[2].node, 2 * S);
    assert_true(tr_conc_cancel(&c, &reqs[1].node));
    assert_int_equal(reqs[1].node.state, TR_WAIT_CANCELLED);
    assert_false(tr_conc_cancel(&c, &reqs[1].node));
    assert_false(tr_conc_cancel(&c, &reqs[0].node)); /* holds a slot */
    assert_int_equal(c.queued, 1);
    assert_int_equal(id_of(tr_conc_leave(&c, 1, S, NULL)), 2);
    assert_null(tr_conc_leave(&c, 1, S, NULL));
    assert_int_equal(c.inflight, 0);
}

static void
test_expire_returns_waiters_past_their_deadline(void **state)
{
    tr_conc c;
    tr_wait_list exp;

    reset_reqs();
    tr_conc_init(&c);
    tr_wait_list_init(&exp);
    tr_conc_enter(&c, 1, 8, &reqs[0].node, 0);
    tr_conc_enter(&c, 1, 8, &reqs[1].node, 2 * S);
    tr_conc_enter(&c, 1, 8, &reqs[2].node, 5 * S);  /* out of order */
    tr_conc_enter(&c, 1, 8, &reqs[3].node, 1 * S);
    assert_int_equal(tr_conc_expire(&c, 2 * S - 1, &exp), 1);
    assert_int_equal(id_of(exp.head), 3);
    assert_int_equal(tr_conc_expire(&c, 2 * S, &exp), 1);
    assert_int_equal(id_of(exp.tail), 1);
    assert_int_equal(exp.n, 2);
    assert_int_equal(reqs[1].node.state, TR_WAIT_EXPIRED);
    assert_int_equal(c.queued, 1);
    assert_int_equal(c.inflight, 1);
}

static void
test_release_passes_over_expired_waiters(void **state)
{
    tr_conc c;
    tr_wait_list exp;

    reset_reqs();
    tr_conc_init(&c);
    tr_wait_list_init(&exp);
    tr_conc_enter(&c, 1, 8, &reqs[0].node, 0);
    tr_conc_enter(&c, 1, 8, &reqs[1].node, 1 * S);
    tr_conc_enter(&c, 1, 8, &reqs[2].node, 1 * S);
    tr_conc_enter(&c, 1, 8, &reqs[3].node, 3 * S);
    /* At exactly the deadline the waiter is out: a hard upper bound. */
    assert_int_equal(id_of(tr_conc_leave(&c, 1, 1 * S, &exp)), 3);
    assert_int_equal(exp.n, 2);
    assert_int_equal(id_of(exp.head), 1);
    assert_int_equal(id_of(exp.tail), 2);
    assert_int_equal(c.inflight, 1);
    assert_int_equal(c.queued, 0);
}

static void
test_unlimited_admits_everyone_and_counts(void **state)
{
    tr_conc c;
    int i;

    reset_reqs();
    tr_conc_init(&c);
    for (i = 0; i < 50; i++)
        assert_int_equal(tr_conc_enter(&c, 0, 0, &reqs[i].node, 0),
                         TR_CONC_ADMITTED);
    assert_int_equal(c.inflight, 50);
    assert_int_equal(tr_conc_free_slots(&c, 0), 0);
    for (i = 0; i < 50; i++)
        assert_null(tr_conc_leave(&c, 0, 0, NULL));
    assert_true(tr_conc_is_idle(&c));
}

static void
test_zero_queue_refuses_at_once(void **state)
{
    tr_conc c;

    reset_reqs();
    tr_conc_init(&c);
    assert_int_equal(tr_conc_enter(&c, 1, 0, &reqs[0].node, 0),
                     TR_CONC_ADMITTED);
    assert_int_equal(tr_conc_enter(&c, 1, 0, &reqs[1].node, 0),
                     TR_CONC_FULL);
    assert_int_equal(tr_conc_free_slots(&c, 1), 0);
}

/* Random enter/leave/cancel/expire: in-flight never exceeds the cap, the
 * counts match the nodes, and everything drains to idle. */
static void
test_random_operations_keep_the_invariants(void **state)
{
    enum { N = 64, CAP = 3, QMAX = 5 };
    tr_conc c;
    tr_wait_list exp;
    uint64_t x = 99, now = 0;
    int step, i, held, waiting;

    reset_reqs();
    tr_conc_init(&c);
    for (step = 0; step < 200000; step++) {
        fake_req *r = &reqs[x % N];

        x = x * 6364136223846793005ull + 1442695040888963407ull;
        now += (x >> 40) % (S / 10);
        tr_wait_list_init(&exp);
        switch ((x >> 20) % 4) {
        case 0:
            if (r->node.state == TR_WAIT_QUEUED ||
                r->node.state == TR_WAIT_ADMITTED)
                break;
            tr_conc_enter(&c, CAP, QMAX, &r->node, now + S);
            break;
        case 1:
            if (r->node.state != TR_WAIT_ADMITTED)
                break;
            r->node.state = TR_WAIT_IDLE;
            tr_conc_leave(&c, CAP, now, &exp);
            break;
        case 2:
            tr_conc_cancel(&c, &r->node);
            break;
        case 3:
            tr_conc_expire(&c, now, &exp);
            break;
        }
        held = waiting = 0;
        for (i = 0; i < N; i++) {
            held += reqs[i].node.state == TR_WAIT_ADMITTED;
            waiting += reqs[i].node.state == TR_WAIT_QUEUED;
        }
        assert_true(c.inflight <= CAP);
        assert_int_equal(c.inflight, held);
        assert_int_equal(c.queued, waiting);
        assert_true(c.queued <= QMAX);
        /* someone waits only while every slot is taken */
        assert_true(c.queued == 0 || c.inflight == CAP);
    }
    for (i = 0; i < N; i++)
        tr_conc_cancel(&c, &reqs[i].node);
    for (i = 0; i < N; i++) {
        if (reqs[i].node.state == TR_WAIT_ADMITTED)
            tr_conc_leave(&c, CAP, now, NULL);
    }
    assert_true(tr_conc_is_idle(&c));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_cap_4_queue_4_of_12_gives_4_admitted_4_queued_4_full),
        cmocka_unit_test(test_release_admits_waiters_in_fifo_order),
        cmocka_unit_test(test_newcomer_never_overtakes_the_queue),
        cmocka_unit_test(test_cancelled_waiter_never_takes_a_slot),
        cmocka_unit_test(test_expire_returns_waiters_past_their_deadline),
        cmocka_unit_test(test_release_passes_over_expired_waiters),
        cmocka_unit_test(test_unlimited_admits_everyone_and_counts),
        cmocka_unit_test(test_zero_queue_refuses_at_once),
        cmocka_unit_test(test_random_operations_keep_the_invariants),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
