/*
 * The concurrency budget of one key (SPEC.md §1): a count of requests in
 * flight and a bounded FIFO of requests waiting for a slot.
 *
 * Pure data structure: no clock, no allocation.  Waiters are intrusive
 * nodes the caller embeds in its own request struct, so queueing costs
 * no malloc and a waiter can be removed in O(1) when its client leaves.
 * Limits are passed to every call rather than stored, so the state stays
 * small and a new configuration applies at once.
 *
 * A slot freed while someone waits passes straight to the head waiter
 * (in-flight stays the same), so a newcomer can never overtake the queue.
 */
#ifndef TREATY_CORE_CONCURRENCY_H
#define TREATY_CORE_CONCURRENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TR_WAIT_IDLE = 0,  /* not in any queue */
    TR_WAIT_QUEUED,    /* waiting for a slot */
    TR_WAIT_ADMITTED,  /* left the queue holding a slot */
    TR_WAIT_EXPIRED,   /* left the queue at its deadline, no slot */
    TR_WAIT_CANCELLED, /* left the queue because its client left */
} tr_wait_state;

typedef struct tr_wait_node {
    struct tr_wait_node *prev;
    struct tr_wait_node *next;
    uint64_t deadline;         /* ns, the caller's monotonic clock */
    void *owner;               /* the caller's, never touched here */
    tr_wait_state state;
} tr_wait_node;

/* Nodes handed back, linked through `next` (oldest first). */
typedef struct {
    tr_wait_node *head;
    tr_wait_node *tail;
    size_t n;
} tr_wait_list;

typedef struct {
    tr_wait_node *head;        /* oldest waiter */
    tr_wait_node *tail;
    uint32_t inflight;         /* slots held */
    uint32_t queued;           /* waiters */
} tr_conc;

typedef enum {
    TR_CONC_ADMITTED = 0,      /* holds a slot now */
    TR_CONC_QUEUED,            /* waits; the node is in the queue */
    TR_CONC_FULL,              /* no slot and the queue is full */
} tr_conc_result;

void tr_conc_init(tr_conc *c);
void tr_wait_list_init(tr_wait_list *l);

/*
 * A request asks for a slot.  `limit` 0 means unlimited.  When every slot
 * is taken, the node joins the queue if it holds fewer than `queue_max`
 * waiters, with `deadline`; otherwise TR_CONC_FULL and the node is left
 * alone.  A request never takes a free slot while others wait.
 */
tr_conc_result tr_conc_enter(tr_conc *c, uint32_t limit, uint32_t queue_max,
                             tr_wait_node *node, uint64_t deadline);

/*
 * A request holding a slot is done with it.  If a waiter is due, the slot
 * passes to the oldest one whose deadline is still ahead of `now`; it is
 * returned (state ADMITTED) and the caller forwards its request.
 * Waiters passed over because their deadline is <= now are removed,
 * marked EXPIRED and appended to `expired` (may be NULL only if the
 * caller never sets deadlines in the past).  Returns NULL when no waiter
 * takes the slot.
 */
tr_wait_node *tr_conc_leave(tr_conc *c, uint32_t limit, uint64_t now,
                            tr_wait_list *expired);

/*
 * The client of a queued request went away: the node leaves the queue
 * (state CANCELLED) and never takes a slot.  Returns false, changing
 * nothing, if the node was not queued.
 */
bool tr_conc_cancel(tr_conc *c, tr_wait_node *node);

/*
 * Removes every waiter whose deadline is <= now, marks it EXPIRED and
 * appends it to `expired` (to be answered 503).  Returns how many.
 */
size_t tr_conc_expire(tr_conc *c, uint64_t now, tr_wait_list *expired);

/* Slots left under `limit` (0 when unlimited: nothing to advertise). */
uint32_t tr_conc_free_slots(const tr_conc *c, uint32_t limit);

bool tr_conc_is_idle(const tr_conc *c);

#endif
