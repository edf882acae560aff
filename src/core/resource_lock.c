#include "core/resource_lock.h"

#include <stdlib.h>
#include <string.h>

typedef struct tr_rlock_entry {
    struct tr_rlock_entry *next;   /* bucket chain */
    uint64_t hash;
    tr_rlock_waiter *holder;
    tr_rlock_waiter *head, *tail;  /* waiters, FIFO */
    size_t key_len;
    char key[];
} entry;

struct tr_rlock_table {
    entry **buckets;
    size_t n_buckets;
    uint64_t seed;
    tr_rlock_waiter *waiters;      /* every waiting waiter, unordered */
    size_t held;
    size_t waiting;
};

tr_rlock_table *
tr_rlock_table_new(size_t buckets, uint64_t seed)
{
    tr_rlock_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->n_buckets = buckets ? buckets : 1;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    t->seed = seed;
    return t;
}

void
tr_rlock_table_free(tr_rlock_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_buckets; i++)
        while (t->buckets[i]) {
            entry *e = t->buckets[i];
            t->buckets[i] = e->next;
            free(e);
        }
    free(t->buckets);
    free(t);
}

/* FNV-1a over the seed, then the key. */
static uint64_t
hash_key(uint64_t seed, const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 8; i++) {
        h ^= (seed >> (8 * i)) & 0xff;
        h *= 1099511628211ull;
    }
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    return h;
}

static entry **
slot(tr_rlock_table *t, const char *key, size_t len, uint64_t h)
{
    entry **pp = &t->buckets[h % t->n_buckets];
    while (*pp && !((*pp)->hash == h && (*pp)->key_len == len &&
                    memcmp((*pp)->key, key, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

static void
waiters_unlink(tr_rlock_table *t, tr_rlock_waiter *w)
{
    if (w->dprev)
        w->dprev->dnext = w->dnext;
    else
        t->waiters = w->dnext;
    if (w->dnext)
        w->dnext->dprev = w->dprev;
    w->dprev = w->dnext = NULL;
    t->waiting--;
}

tr_rlock_result
tr_rlock_acquire(tr_rlock_table *t, tr_rlock_waiter *w, const char *key,
                 size_t len, uint64_t now_ns, uint64_t timeout_ns)
{
    uint64_t h = hash_key(t->seed, key, len);
    entry **pp = slot(t, key, len, h);
    entry *e = *pp;

    w->next = w->dprev = w->dnext = NULL;
    w->since_ns = now_ns;
    if (e == NULL) {
        e = malloc(sizeof(*e) + len);
        if (e == NULL)
            return TR_RLOCK_NOMEM;
        memset(e, 0, sizeof(*e));
        e->hash = h;
        e->key_len = len;
        memcpy(e->key, key, len);
        *pp = e;
        t->held++;
        e->holder = w;
        w->entry = e;
        w->state = TR_RLOCK_HOLDING;
        w->deadline_ns = now_ns;
        return TR_RLOCK_GRANTED;
    }
    w->entry = e;
    w->state = TR_RLOCK_WAITING;
    w->deadline_ns = timeout_ns > UINT64_MAX - now_ns ? UINT64_MAX
                                                      : now_ns + timeout_ns;
    if (e->tail)
        e->tail->next = w;
    else
        e->head = w;
    e->tail = w;
    w->dnext = t->waiters;
    if (t->waiters)
        t->waiters->dprev = w;
    t->waiters = w;
    t->waiting++;
    return TR_RLOCK_QUEUED;
}

/* Takes a waiting w out of its lock's line. */
static void
leave_line(tr_rlock_table *t, tr_rlock_waiter *w)
{
    entry *e = w->entry;
    tr_rlock_waiter *prev = NULL;

    for (tr_rlock_waiter *x = e->head; x; prev = x, x = x->next) {
        if (x != w)
            continue;
        if (prev)
            prev->next = x->next;
        else
            e->head = x->next;
        if (e->tail == x)
            e->tail = prev;
        break;
    }
    waiters_unlink(t, w);
    w->next = NULL;
    w->entry = NULL;
    w->state = TR_RLOCK_IDLE;
}

tr_rlock_waiter *
tr_rlock_release(tr_rlock_table *t, tr_rlock_waiter *w)
{
    if (w->state == TR_RLOCK_WAITING) {
        leave_line(t, w);
        return NULL;
    }
    if (w->state != TR_RLOCK_HOLDING)
        return NULL;

    entry *e = w->entry;
    w->state = TR_RLOCK_IDLE;
    w->entry = NULL;
    tr_rlock_waiter *next = e->head;
    if (next == NULL) {
        entry **pp = slot(t, e->key, e->key_len, e->hash);
        *pp = e->next;
        free(e);
        t->held--;
        return NULL;
    }
    e->head = next->next;
    if (e->head == NULL)
        e->tail = NULL;
    next->next = NULL;
    waiters_unlink(t, next);
    next->state = TR_RLOCK_HOLDING;
    e->holder = next;
    return next;
}

tr_rlock_waiter *
tr_rlock_expire(tr_rlock_table *t, uint64_t now_ns)
{
    for (tr_rlock_waiter *w = t->waiters; w; w = w->dnext)
        if (w->deadline_ns <= now_ns) {
            leave_line(t, w);
            return w;
        }
    return NULL;
}

uint64_t
tr_rlock_next_deadline(const tr_rlock_table *t)
{
    uint64_t first = UINT64_MAX;
    for (const tr_rlock_waiter *w = t->waiters; w; w = w->dnext)
        if (w->deadline_ns < first)
            first = w->deadline_ns;
    return first;
}

size_t
tr_rlock_held(const tr_rlock_table *t)
{
    return t->held;
}

size_t
tr_rlock_waiting(const tr_rlock_table *t)
{
    return t->waiting;
}
