/*
 * Per-resource write locks with FIFO waiters and deadlines: what makes
 * writes to one resource through treaty one at a time while writes to
 * different resources run side by side (SPEC.md §5).  Pure: time is an
 * argument, nothing blocks, nothing logs; the gateway drives it from the
 * loop thread and arms one timer for tr_rlock_next_deadline().
 *
 * A lock exists only while someone holds it; its key is opaque bytes
 * (tr_route_resource_key()).  Waiters are intrusive: the caller embeds a
 * tr_rlock_waiter in its own per-request state, so queueing never
 * allocates and a request that goes away takes its place in line with it
 * (tr_rlock_release() works for a waiter in any state).
 */
#ifndef TREATY_CORE_RESOURCE_LOCK_H
#define TREATY_CORE_RESOURCE_LOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_rlock_table tr_rlock_table;
struct tr_rlock_entry;

typedef enum {
    TR_RLOCK_IDLE,             /* neither holding nor waiting */
    TR_RLOCK_WAITING,
    TR_RLOCK_HOLDING
} tr_rlock_state;

typedef struct tr_rlock_waiter {
    struct tr_rlock_waiter *next;   /* the lock's FIFO */
    struct tr_rlock_waiter *dprev, *dnext; /* every waiter, by table */
    struct tr_rlock_entry *entry;
    tr_rlock_state state;
    uint64_t since_ns;         /* when it asked */
    uint64_t deadline_ns;      /* when waiting stops */
    void *owner;               /* the caller's, untouched */
} tr_rlock_waiter;

typedef enum {
    TR_RLOCK_GRANTED,          /* w holds the lock now */
    TR_RLOCK_QUEUED,           /* w waits behind the holder */
    TR_RLOCK_NOMEM
} tr_rlock_result;

/* seed: per-process random, so keys a client picks cannot be made to
 * collide on purpose.  NULL when memory runs out. */
tr_rlock_table *tr_rlock_table_new(size_t buckets, uint64_t seed);

/* Frees the table; every lock must have been released. */
void tr_rlock_table_free(tr_rlock_table *t);

/* Asks for the lock of key; w must be idle.  Queued waiters give up at
 * now_ns + timeout_ns (see tr_rlock_expire()). */
tr_rlock_result tr_rlock_acquire(tr_rlock_table *t, tr_rlock_waiter *w,
                                 const char *key, size_t len,
                                 uint64_t now_ns, uint64_t timeout_ns);

/*
 * Lets go of w in whatever state it is (a holder releases, a waiter
 * leaves the line, an idle waiter is a no-op); w is idle afterwards.
 * When a holder released and someone waited, returns the first waiter,
 * which holds the lock now; otherwise NULL.
 */
tr_rlock_waiter *tr_rlock_release(tr_rlock_table *t, tr_rlock_waiter *w);

/* One waiter whose deadline is at or before now_ns, taken out of line
 * (idle), or NULL.  Call until NULL. */
tr_rlock_waiter *tr_rlock_expire(tr_rlock_table *t, uint64_t now_ns);

/* The earliest deadline of any waiter; UINT64_MAX when nobody waits. */
uint64_t tr_rlock_next_deadline(const tr_rlock_table *t);

size_t tr_rlock_held(const tr_rlock_table *t);
size_t tr_rlock_waiting(const tr_rlock_table *t);

#endif
