#include "core/token_cache.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/identity.h"
#include "core/jwt.h"

#define NIL UINT32_MAX
#define NS_PER_S 1000000000ull
#define MAX_ENTRIES (1u << 24)

typedef struct {
    uint8_t key[32];
    uint32_t hnext;            /* bucket chain; free list when unused */
    uint32_t prev, next;       /* recency: head is the most recent */
    tr_identity *id;           /* positive entries */
    int64_t exp, nbf;
    uint32_t leeway;
    uint8_t thumb[32];
    int64_t until;             /* refused entries */
    tr_token_status st;
} entry;

typedef struct {
    entry *e;
    uint32_t cap, n;
    uint32_t *buckets;
    uint32_t mask;
    uint32_t head, tail, free_list;
    bool positive;
} table;

struct tr_token_cache {
    table pos, neg;
    uint64_t seed;
    uint32_t refused_ttl_s;
    uint32_t cold_per_s;
    uint64_t credit;           /* cold bucket, in nanosecond-tokens */
    uint64_t last_ns;
    bool cold_started;
    tr_token_cache_stats stats;
};

static int
table_init(table *t, uint32_t cap, bool positive)
{
    uint32_t nb = 1;

    memset(t, 0, sizeof(*t));
    t->positive = positive;
    t->head = t->tail = t->free_list = NIL;
    if (cap == 0)
        return 0;
    if (cap > MAX_ENTRIES)
        cap = MAX_ENTRIES;
    while (nb < cap * 2u)
        nb <<= 1;
    t->e = calloc(cap, sizeof(entry));
    t->buckets = malloc(nb * sizeof(uint32_t));
    if (!t->e || !t->buckets)
        return -1;
    t->cap = cap;
    t->mask = nb - 1;
    for (uint32_t i = 0; i < nb; i++)
        t->buckets[i] = NIL;
    for (uint32_t i = 0; i < cap; i++)
        t->e[i].hnext = i + 1 < cap ? i + 1 : NIL;
    t->free_list = 0;
    return 0;
}

static uint32_t
bucket(const tr_token_cache *c, const table *t, const uint8_t key[32])
{
    return (uint32_t)(XXH3_64bits_withSeed(key, 32, c->seed) & t->mask);
}

static uint32_t
find(const tr_token_cache *c, const table *t, const uint8_t key[32])
{
    if (t->cap == 0)
        return NIL;
    for (uint32_t i = t->buckets[bucket(c, t, key)]; i != NIL;
         i = t->e[i].hnext)
        if (!memcmp(t->e[i].key, key, 32))
            return i;
    return NIL;
}

static void
lru_unlink(table *t, uint32_t i)
{
    entry *e = &t->e[i];

    if (e->prev != NIL)
        t->e[e->prev].next = e->next;
    else
        t->head = e->next;
    if (e->next != NIL)
        t->e[e->next].prev = e->prev;
    else
        t->tail = e->prev;
}

static void
lru_push_head(table *t, uint32_t i)
{
    t->e[i].prev = NIL;
    t->e[i].next = t->head;
    if (t->head != NIL)
        t->e[t->head].prev = i;
    t->head = i;
    if (t->tail == NIL)
        t->tail = i;
}

static void
remove_entry(tr_token_cache *c, table *t, uint32_t i)
{
    uint32_t *link = &t->buckets[bucket(c, t, t->e[i].key)];

    while (*link != i)
        link = &t->e[*link].hnext;
    *link = t->e[i].hnext;
    lru_unlink(t, i);
    if (t->positive)
        tr_identity_unref(t->e[i].id);
    memset(&t->e[i], 0, sizeof(entry));
    t->e[i].hnext = t->free_list;
    t->free_list = i;
    t->n--;
}

/* A slot for key, evicting the least recently used entry when full. */
static uint32_t
insert(tr_token_cache *c, table *t, const uint8_t key[32])
{
    uint32_t i = find(c, t, key), b;

    if (i != NIL) {
        remove_entry(c, t, i);
    } else if (t->free_list == NIL) {
        remove_entry(c, t, t->tail);
        c->stats.evictions++;
    }
    i = t->free_list;
    t->free_list = t->e[i].hnext;
    memcpy(t->e[i].key, key, 32);
    b = bucket(c, t, key);
    t->e[i].hnext = t->buckets[b];
    t->buckets[b] = i;
    lru_push_head(t, i);
    t->n++;
    return i;
}

static void
table_clear(tr_token_cache *c, table *t)
{
    while (t->head != NIL)
        remove_entry(c, t, t->head);
}

tr_token_cache *
tr_token_cache_new(uint32_t entries, uint32_t refused_entries,
                   uint32_t refused_ttl_s, uint32_t cold_per_s,
                   uint64_t seed)
{
    tr_token_cache *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->seed = seed;
    c->refused_ttl_s = refused_ttl_s;
    c->cold_per_s = cold_per_s;
    if (refused_ttl_s == 0)
        refused_entries = 0;
    if (table_init(&c->pos, entries, true) != 0 ||
        table_init(&c->neg, refused_entries, false) != 0) {
        tr_token_cache_free(c);
        return NULL;
    }
    return c;
}

void
tr_token_cache_free(tr_token_cache *c)
{
    if (!c)
        return;
    if (c->pos.e)
        table_clear(c, &c->pos);
    free(c->pos.e);
    free(c->pos.buckets);
    free(c->neg.e);
    free(c->neg.buckets);
    free(c);
}

tr_cache_result
tr_token_cache_lookup(tr_token_cache *c, const uint8_t key[32],
                      int64_t now_s, tr_identity **id, tr_token_status *st)
{
    uint32_t i = find(c, &c->pos, key);

    *id = NULL;
    if (i != NIL) {
        entry *e = &c->pos.e[i];

        *st = tr_jwt_check_times(e->exp, e->nbf, e->leeway, now_s);
        if (*st != TR_TOKEN_OK) {
            /* Expired stays expired; not yet valid may come back, but
             * is rare enough to verify again. */
            remove_entry(c, &c->pos, i);
            c->stats.expired_hits++;
            return TR_CACHE_REFUSED;
        }
        lru_unlink(&c->pos, i);
        lru_push_head(&c->pos, i);
        *id = tr_identity_ref(e->id);
        c->stats.hits++;
        return TR_CACHE_HIT;
    }
    i = find(c, &c->neg, key);
    if (i != NIL) {
        if (now_s < c->neg.e[i].until) {
            *st = c->neg.e[i].st;
            c->stats.refused_hits++;
            return TR_CACHE_REFUSED;
        }
        remove_entry(c, &c->neg, i);
    }
    c->stats.misses++;
    return TR_CACHE_MISS;
}

void
tr_token_cache_put(tr_token_cache *c, const uint8_t key[32],
                   tr_identity *id, uint32_t leeway_s,
                   const uint8_t thumb[32])
{
    uint32_t i;
    entry *e;

    if (c->pos.cap == 0)
        return;
    i = insert(c, &c->pos, key);
    e = &c->pos.e[i];
    e->id = tr_identity_ref(id);
    e->exp = id->exp;
    e->nbf = id->nbf;
    e->leeway = leeway_s;
    memcpy(e->thumb, thumb, sizeof(e->thumb));
}

void
tr_token_cache_put_refused(tr_token_cache *c, const uint8_t key[32],
                           tr_token_status st, int64_t now_s)
{
    uint32_t i;

    if (c->neg.cap == 0)
        return;
    i = insert(c, &c->neg, key);
    c->neg.e[i].st = st;
    c->neg.e[i].until = now_s + (int64_t)c->refused_ttl_s;
}

bool
tr_token_cache_take_cold(tr_token_cache *c, uint64_t now_ns)
{
    uint64_t full = (uint64_t)c->cold_per_s * NS_PER_S;

    if (c->cold_per_s == 0) {
        c->stats.cold++;
        return true;
    }
    if (!c->cold_started) {
        c->cold_started = true;
        c->credit = full;
        c->last_ns = now_ns;
    } else if (now_ns > c->last_ns) {
        /* One second refills the bucket: longer gaps add nothing and
         * would overflow the product. */
        uint64_t dt = now_ns - c->last_ns;

        if (dt > NS_PER_S)
            dt = NS_PER_S;
        c->credit += dt * c->cold_per_s;
        if (c->credit > full)
            c->credit = full;
        c->last_ns = now_ns;
    }
    if (c->credit < NS_PER_S) {
        c->stats.busy++;
        return false;
    }
    c->credit -= NS_PER_S;
    c->stats.cold++;
    return true;
}

void
tr_token_cache_purge(tr_token_cache *c,
                     bool (*keep)(const tr_identity *id,
                                  const uint8_t thumb[32], void *arg),
                     void *arg)
{
    uint32_t i = c->pos.head;

    while (i != NIL) {
        uint32_t next = c->pos.e[i].next;

        if (!keep(c->pos.e[i].id, c->pos.e[i].thumb, arg))
            remove_entry(c, &c->pos, i);
        i = next;
    }
}

void
tr_token_cache_clear_refused(tr_token_cache *c)
{
    table_clear(c, &c->neg);
}

void
tr_token_cache_get_stats(const tr_token_cache *c, tr_token_cache_stats *out)
{
    *out = c->stats;
    out->size = c->pos.n;
    out->refused_size = c->neg.n;
}
