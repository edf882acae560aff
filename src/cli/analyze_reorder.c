/*
 * Putting requests back in time order.  Logs are mostly ordered, but not
 * quite: treaty writes a line when a request ends and stamps it with its
 * start, so a slow request appears after faster ones that started later;
 * nginx workers interleave their writes.
 *
 * The buffer is a ring kept sorted by time.  A request at or after the
 * newest is appended (the usual case, O(1)); an earlier one is moved
 * back into place (O(distance), small for the usual disorder).  Requests
 * leave, oldest first, once they are `window` older than the newest seen,
 * or when the ring is full.  Memory is fixed at creation.
 *
 * Ties.  Within one timestamp (a millisecond for treaty, a second for
 * nginx combined) the order of arrival is not logged, and a log written
 * at each request's end lists quick ones first.  Among equal times the
 * longer request is taken to have come first: one refused at once is
 * most often one that came after the slots and the queue had filled.
 */
#include <stdlib.h>

#include "cli/analyze.h"

struct tr_reorder {
    tr_analyze_event *ring;
    size_t mask;               /* capacity - 1, a power of two */
    size_t head, n;
    int64_t window;
    int64_t newest;
    int64_t released;          /* time of the last request handed on */
    bool any_released;
    uint64_t moved, late;
    tr_event_fn fn;
    void *ctx;
};

#define AT(r, i) ((r)->ring[((r)->head + (i)) & (r)->mask])

static bool
before(const tr_analyze_event *a, const tr_analyze_event *b)
{
    return a->t_ns < b->t_ns || (a->t_ns == b->t_ns && a->dur_ns > b->dur_ns);
}

tr_reorder *
tr_reorder_create(int64_t window_ns, size_t cap, tr_event_fn fn, void *ctx)
{
    tr_reorder *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    size_t c = 2;
    while (c < cap)
        c *= 2;
    r->ring = malloc(c * sizeof(*r->ring));
    if (!r->ring) {
        free(r);
        return NULL;
    }
    r->mask = c - 1;
    r->window = window_ns;
    r->fn = fn;
    r->ctx = ctx;
    return r;
}

static void
release_one(tr_reorder *r)
{
    tr_analyze_event e = AT(r, 0);
    r->head = (r->head + 1) & r->mask;
    r->n--;
    r->released = e.t_ns;
    r->any_released = true;
    r->fn(r->ctx, &e);
}

void
tr_reorder_push(tr_reorder *r, const tr_analyze_event *ev)
{
    if (r->n == r->mask + 1)
        release_one(r);
    if (r->any_released && ev->t_ns < r->released) {
        /* Too late to sort in: hand it on as of the time reached. */
        tr_analyze_event e = *ev;
        e.t_ns = r->released;
        r->late++;
        r->fn(r->ctx, &e);
        return;
    }

    if (!r->n || !before(ev, &AT(r, r->n - 1))) {
        AT(r, r->n) = *ev;
    } else if (before(ev, &AT(r, 0))) {
        r->head = (r->head - 1) & r->mask;
        AT(r, 0) = *ev;
        r->moved++;
    } else {
        size_t i = r->n;
        while (i > 0 && before(ev, &AT(r, i - 1))) {
            AT(r, i) = AT(r, i - 1);
            i--;
        }
        AT(r, i) = *ev;
        r->moved++;
    }
    r->n++;

    if (ev->t_ns > r->newest)
        r->newest = ev->t_ns;
    while (r->n && AT(r, 0).t_ns <= r->newest - r->window)
        release_one(r);
}

void
tr_reorder_flush(tr_reorder *r)
{
    while (r->n)
        release_one(r);
}

uint64_t
tr_reorder_moved(const tr_reorder *r)
{
    return r->moved;
}

uint64_t
tr_reorder_late(const tr_reorder *r)
{
    return r->late;
}

void
tr_reorder_free(tr_reorder *r)
{
    if (!r)
        return;
    free(r->ring);
    free(r);
}
