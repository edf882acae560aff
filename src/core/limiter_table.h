/*
 * Limiter state per key, in a table of fixed capacity (SPEC.md §1
 * "Memory").
 *
 * A key is a dimension number plus opaque bytes: (budget class,
 * principal key) for rate and concurrency, (quota, principal key) for a
 * per-principal quota, and (quota, no bytes) for a quota shared by all.
 * Each entry holds one GCRA state, one concurrency state and a pin count,
 * in 120 bytes (asserted at compile time); the bucket array adds 4 bytes
 * per entry of capacity, so a key costs at most 124 bytes plus the
 * bucket array's rounding up to a power of two.
 *
 * Keys of up to TR_LIMITER_KEY_INLINE bytes are stored as they are.
 * Longer ones are stored as their SHA-256 (32 bytes), which stands for
 * the key: two different long keys never share an entry in practice.
 * Hashing for the bucket uses XXH3 with a seed chosen at creation, so a
 * caller who does not know the seed cannot aim keys at one bucket.  The
 * hash only picks the bucket: identity is always the full key compare.
 *
 * Memory is allocated once, at creation.  Entries never move, so the
 * admission layer may hold pointers to them while they are pinned.
 *
 * Eviction.  An entry is reused for another key only when it is equal to
 * a fresh one: GCRA full (TAT <= now) with nothing reserved, nothing in
 * flight, nobody queued, and no pins.  Forgetting such an entry changes
 * no decision.  Only the slot-hold average used for Retry-After estimates
 * is lost.
 *
 * Overflow.  When no free or fresh entry is found for a new key (every
 * entry is live), the lookup fails with TR_LT_FULL and the overflow
 * counter grows; the admission layer refuses that request with 503
 * (temporary-reduced-capacity).  Keys already in the table keep working,
 * and nothing is ever let through unlimited.  Finding a fresh entry is
 * bounded work: at most TR_LIMITER_EVICT_PROBES entries are examined per
 * new key, from a clock hand that walks the table, so a new key can be
 * refused while a fresh entry sits elsewhere; tr_limiter_table_sweep()
 * on a timer keeps free entries in stock so that stays rare.
 */
#ifndef TREATY_CORE_LIMITER_TABLE_H
#define TREATY_CORE_LIMITER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/concurrency.h"
#include "core/gcra.h"

#define TR_LIMITER_KEY_INLINE 56
#define TR_LIMITER_EVICT_PROBES 64

/* Entry flags. */
#define TR_LE_USED 0x01u
#define TR_LE_DIGEST 0x02u   /* key holds SHA-256 of a long key */

typedef struct tr_limiter_entry {
    uint64_t hash;
    tr_gcra gcra;
    tr_conc conc;
    uint32_t pins;           /* admissions holding a pointer to this */
    uint32_t next;           /* chain or free list: index + 1, 0 = end */
    uint32_t hold_ms;        /* average slot hold, 0 = unknown */
    uint16_t dim;
    uint8_t key_len;
    uint8_t flags;
    uint8_t key[TR_LIMITER_KEY_INLINE];
} tr_limiter_entry;

typedef struct tr_limiter_table tr_limiter_table;

typedef struct {
    uint64_t capacity;       /* entries */
    uint64_t used;           /* entries holding a key */
    uint64_t inserts;        /* keys added */
    uint64_t evictions;      /* fresh entries reused for a new key */
    uint64_t swept;          /* fresh entries freed by the sweep */
    uint64_t overflows;      /* new keys refused: table full of live keys */
    uint64_t long_keys;      /* lookups of keys stored as a digest */
    uint64_t bytes;          /* memory held by the table */
} tr_limiter_table_stats;

typedef enum {
    TR_LT_FOUND = 0,
    TR_LT_CREATED,           /* a fresh entry for a new key */
    TR_LT_ABSENT,            /* find only: no entry */
    TR_LT_FULL,              /* no room for a new key (counted) */
    TR_LT_ERROR,             /* digest failure (out of memory) */
} tr_lt_status;

/* NULL when out of memory or capacity is 0. */
tr_limiter_table *tr_limiter_table_create(uint32_t capacity, uint64_t seed);
void tr_limiter_table_free(tr_limiter_table *t);

/*
 * The entry for (dim, key), created in a fresh state if absent.  `now`
 * decides which entries are fresh enough to evict.  Returns NULL with
 * *st TR_LT_FULL or TR_LT_ERROR when it cannot; *st may be NULL.
 */
tr_limiter_entry *tr_limiter_table_get(tr_limiter_table *t, uint16_t dim,
                                       const void *key, size_t len,
                                       uint64_t now, tr_lt_status *st);

/* The entry for (dim, key) or NULL; never creates. */
tr_limiter_entry *tr_limiter_table_find(tr_limiter_table *t, uint16_t dim,
                                        const void *key, size_t len);

/* Whether forgetting the entry changes no decision at `now`. */
bool tr_limiter_entry_is_fresh(const tr_limiter_entry *e, uint64_t now);

/*
 * Frees up to `max_free` fresh entries, examining at most `max_probes`
 * entries from the clock hand.  Returns how many were freed.
 */
size_t tr_limiter_table_sweep(tr_limiter_table *t, uint64_t now,
                              size_t max_probes, size_t max_free);

void tr_limiter_table_stats_get(const tr_limiter_table *t,
                                tr_limiter_table_stats *out);

#endif
