#include "core/limiter_table.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>

_Static_assert(sizeof(tr_limiter_entry) <= 120,
               "limiter state must stay within 120 bytes per entry");
_Static_assert(TR_LIMITER_KEY_INLINE >= 32, "a SHA-256 must fit inline");

struct tr_limiter_table {
    tr_limiter_entry *entries;
    uint32_t *buckets;       /* index + 1 of the chain head, 0 = empty */
    uint32_t capacity;
    uint32_t mask;           /* bucket count - 1 */
    uint32_t high;           /* entries [0, high) have been handed out */
    uint32_t free_head;      /* index + 1, 0 = none */
    uint32_t hand;           /* clock hand for eviction and sweeping */
    uint64_t seed;
    tr_limiter_table_stats st;
};

/* Golden-ratio multiplier: spreads dimension numbers over the seed. */
#define DIM_MIX 0x9E3779B97F4A7C15ull

tr_limiter_table *
tr_limiter_table_create(uint32_t capacity, uint64_t seed)
{
    tr_limiter_table *t;
    uint64_t nb = 16;

    if (capacity == 0)
        return NULL;
    while (nb < capacity)
        nb <<= 1;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    /* calloc: untouched entries cost no resident memory until used. */
    t->entries = calloc(capacity, sizeof(*t->entries));
    t->buckets = calloc(nb, sizeof(*t->buckets));
    if (t->entries == NULL || t->buckets == NULL) {
        tr_limiter_table_free(t);
        return NULL;
    }
    t->capacity = capacity;
    t->mask = (uint32_t)(nb - 1);
    t->seed = seed;
    t->st.capacity = capacity;
    t->st.bytes = sizeof(*t) + (uint64_t)capacity * sizeof(*t->entries) +
                  nb * sizeof(*t->buckets);
    return t;
}

void
tr_limiter_table_free(tr_limiter_table *t)
{
    if (t == NULL)
        return;
    free(t->entries);
    free(t->buckets);
    free(t);
}

/* The stored form of a key: itself, or its SHA-256 when too long. */
typedef struct {
    const uint8_t *bytes;
    uint8_t len;
    uint8_t flags;
    uint8_t digest[32];
} stored_key;

static int
stored_key_make(tr_limiter_table *t, stored_key *sk, const void *key,
                size_t len)
{
    unsigned int dlen = 0;

    if (len <= TR_LIMITER_KEY_INLINE) {
        sk->bytes = key;
        sk->len = (uint8_t)len;
        sk->flags = 0;
        return 0;
    }
    /* Known cost: OpenSSL allocates inside EVP_Digest, so a long key
     * costs one allocation per lookup.  Principal keys (issuer name and
     * sub) rarely exceed the inline size. */
    t->st.long_keys++;
    if (EVP_Digest(key, len, sk->digest, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen != sizeof(sk->digest))
        return -1;
    sk->bytes = sk->digest;
    sk->len = sizeof(sk->digest);
    sk->flags = TR_LE_DIGEST;
    return 0;
}

static uint64_t
key_hash(const tr_limiter_table *t, uint16_t dim, const void *key,
         size_t len)
{
    return XXH3_64bits_withSeed(key, len, t->seed ^ (dim * DIM_MIX));
}

static bool
entry_matches(const tr_limiter_entry *e, uint64_t h, uint16_t dim,
              const stored_key *sk)
{
    return e->hash == h && e->dim == dim && e->key_len == sk->len &&
           (e->flags & TR_LE_DIGEST) == sk->flags &&
           memcmp(e->key, sk->bytes, sk->len) == 0;
}

static tr_limiter_entry *
lookup(tr_limiter_table *t, uint64_t h, uint16_t dim, const stored_key *sk)
{
    uint32_t i = t->buckets[h & t->mask];
    tr_limiter_entry *e;

    while (i != 0) {
        e = &t->entries[i - 1];
        if (entry_matches(e, h, dim, sk))
            return e;
        i = e->next;
    }
    return NULL;
}

bool
tr_limiter_entry_is_fresh(const tr_limiter_entry *e, uint64_t now)
{
    return e->pins == 0 && tr_conc_is_idle(&e->conc) &&
           tr_gcra_is_fresh(&e->gcra, now);
}

/* Takes a used entry out of its bucket chain. */
static void
chain_unlink(tr_limiter_table *t, tr_limiter_entry *e)
{
    uint32_t idx = (uint32_t)(e - t->entries) + 1;
    uint32_t *link = &t->buckets[e->hash & t->mask];

    while (*link != 0 && *link != idx)
        link = &t->entries[*link - 1].next;
    if (*link == idx)
        *link = e->next;
    e->next = 0;
    e->flags = 0;
    t->st.used--;
}

/* Looks for a fresh entry from the clock hand; unlinks and returns it. */
static tr_limiter_entry *
evict_one(tr_limiter_table *t, uint64_t now)
{
    tr_limiter_entry *e;
    uint32_t n;

    for (n = 0; n < TR_LIMITER_EVICT_PROBES && n < t->high; n++) {
        e = &t->entries[t->hand];
        t->hand = t->hand + 1 < t->high ? t->hand + 1 : 0;
        if ((e->flags & TR_LE_USED) && tr_limiter_entry_is_fresh(e, now)) {
            chain_unlink(t, e);
            t->st.evictions++;
            return e;
        }
    }
    return NULL;
}

static tr_limiter_entry *
take_entry(tr_limiter_table *t, uint64_t now)
{
    tr_limiter_entry *e;

    if (t->free_head != 0) {
        e = &t->entries[t->free_head - 1];
        t->free_head = e->next;
        return e;
    }
    if (t->high < t->capacity)
        return &t->entries[t->high++];
    return evict_one(t, now);
}

tr_limiter_entry *
tr_limiter_table_get(tr_limiter_table *t, uint16_t dim, const void *key,
                     size_t len, uint64_t now, tr_lt_status *st)
{
    tr_lt_status dummy;
    stored_key sk;
    tr_limiter_entry *e;
    uint64_t h;
    uint32_t b;

    if (st == NULL)
        st = &dummy;
    if (stored_key_make(t, &sk, key, len) != 0) {
        *st = TR_LT_ERROR;
        return NULL;
    }
    h = key_hash(t, dim, key, len);
    e = lookup(t, h, dim, &sk);
    if (e != NULL) {
        *st = TR_LT_FOUND;
        return e;
    }
    e = take_entry(t, now);
    if (e == NULL) {
        t->st.overflows++;
        *st = TR_LT_FULL;
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    tr_gcra_init(&e->gcra);
    tr_conc_init(&e->conc);
    e->hash = h;
    e->dim = dim;
    e->key_len = sk.len;
    e->flags = TR_LE_USED | sk.flags;
    memcpy(e->key, sk.bytes, sk.len);
    b = (uint32_t)(h & t->mask);
    e->next = t->buckets[b];
    t->buckets[b] = (uint32_t)(e - t->entries) + 1;
    t->st.used++;
    t->st.inserts++;
    *st = TR_LT_CREATED;
    return e;
}

tr_limiter_entry *
tr_limiter_table_find(tr_limiter_table *t, uint16_t dim, const void *key,
                      size_t len)
{
    stored_key sk;

    if (stored_key_make(t, &sk, key, len) != 0)
        return NULL;
    return lookup(t, key_hash(t, dim, key, len), dim, &sk);
}

size_t
tr_limiter_table_sweep(tr_limiter_table *t, uint64_t now, size_t max_probes,
                       size_t max_free)
{
    tr_limiter_entry *e;
    size_t n, freed = 0;

    for (n = 0; n < max_probes && n < t->high && freed < max_free; n++) {
        e = &t->entries[t->hand];
        t->hand = t->hand + 1 < t->high ? t->hand + 1 : 0;
        if ((e->flags & TR_LE_USED) && tr_limiter_entry_is_fresh(e, now)) {
            chain_unlink(t, e);
            e->next = t->free_head;
            t->free_head = (uint32_t)(e - t->entries) + 1;
            freed++;
        }
    }
    t->st.swept += freed;
    return freed;
}

void
tr_limiter_table_stats_get(const tr_limiter_table *t,
                           tr_limiter_table_stats *out)
{
    *out = t->st;
}
