#include "core/concurrency.h"

void
tr_conc_init(tr_conc *c)
{
    c->head = NULL;
    c->tail = NULL;
    c->inflight = 0;
    c->queued = 0;
}

void
tr_wait_list_init(tr_wait_list *l)
{
    l->head = NULL;
    l->tail = NULL;
    l->n = 0;
}

static void
list_push(tr_wait_list *l, tr_wait_node *node)
{
    node->next = NULL;
    node->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = node;
    else
        l->head = node;
    l->tail = node;
    l->n++;
}

static void
unlink_node(tr_conc *c, tr_wait_node *node)
{
    if (node->prev != NULL)
        node->prev->next = node->next;
    else
        c->head = node->next;
    if (node->next != NULL)
        node->next->prev = node->prev;
    else
        c->tail = node->prev;
    node->prev = NULL;
    node->next = NULL;
    c->queued--;
}

tr_conc_result
tr_conc_enter(tr_conc *c, uint32_t limit, uint32_t queue_max,
              tr_wait_node *node, uint64_t deadline)
{
    if (limit == 0 || (c->inflight < limit && c->queued == 0)) {
        c->inflight++;
        node->state = TR_WAIT_ADMITTED;
        return TR_CONC_ADMITTED;
    }
    if (c->queued >= queue_max)
        return TR_CONC_FULL;
    node->deadline = deadline;
    node->state = TR_WAIT_QUEUED;
    node->next = NULL;
    node->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = node;
    else
        c->head = node;
    c->tail = node;
    c->queued++;
    return TR_CONC_QUEUED;
}

tr_wait_node *
tr_conc_leave(tr_conc *c, uint32_t limit, uint64_t now,
              tr_wait_list *expired)
{
    tr_wait_node *node;

    if (c->inflight > 0)
        c->inflight--;
    /* A slot is free only under the limit; a lowered limit drains
     * in-flight requests before anyone waiting moves. */
    while (c->head != NULL && (limit == 0 || c->inflight < limit)) {
        node = c->head;
        unlink_node(c, node);
        if (node->deadline <= now) {
            node->state = TR_WAIT_EXPIRED;
            if (expired != NULL)
                list_push(expired, node);
            continue;
        }
        node->state = TR_WAIT_ADMITTED;
        c->inflight++;
        return node;
    }
    return NULL;
}

bool
tr_conc_cancel(tr_conc *c, tr_wait_node *node)
{
    if (node->state != TR_WAIT_QUEUED)
        return false;
    unlink_node(c, node);
    node->state = TR_WAIT_CANCELLED;
    return true;
}

size_t
tr_conc_expire(tr_conc *c, uint64_t now, tr_wait_list *expired)
{
    tr_wait_node *node = c->head, *next;
    size_t n = 0;

    /* Deadlines need not be in queue order (the timeout can differ
     * between requests), so the whole queue is scanned; it is bounded
     * by queue_max. */
    while (node != NULL) {
        next = node->next;
        if (node->deadline <= now) {
            unlink_node(c, node);
            node->state = TR_WAIT_EXPIRED;
            list_push(expired, node);
            n++;
        }
        node = next;
    }
    return n;
}

uint32_t
tr_conc_free_slots(const tr_conc *c, uint32_t limit)
{
    if (limit == 0 || c->inflight >= limit)
        return 0;
    return limit - c->inflight;
}

bool
tr_conc_is_idle(const tr_conc *c)
{
    return c->inflight == 0 && c->queued == 0;
}
