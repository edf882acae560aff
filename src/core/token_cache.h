/*
 * The cache in front of signature verification (SPEC "Security
 * defaults"):
 *   - verified identities, keyed by SHA-256 of the whole token, bounded
 *     and evicted least recently used; exp and nbf are re-checked at every
 *     hit, so a cached token expires on time;
 *   - refused tokens, keyed the same way, remembered with their reason for
 *     a short while so a replayed bad token costs a hash, not a verify;
 *   - a token bucket capping cold verifications per second.
 * Tables are allocated once at creation: a hit allocates nothing and costs
 * one seeded XXH3 hash and a bucket walk.  Not thread-safe: one cache per
 * verifier, one verifier per thread.
 */
#ifndef TREATY_CORE_TOKEN_CACHE_H
#define TREATY_CORE_TOKEN_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/identity_t.h"
#include "core/token_status.h"

typedef struct tr_token_cache tr_token_cache;

/* entries: verified identities kept (0 = no positive cache);
 * refused_entries and refused_ttl_s: the negative cache (0 = none);
 * cold_per_s: cold verifications per second, burst of one second's worth
 * (0 = no cap); seed: keys the table hash so bucket placement cannot be
 * predicted from outside. */
tr_token_cache *tr_token_cache_new(uint32_t entries, uint32_t refused_entries,
                                   uint32_t refused_ttl_s,
                                   uint32_t cold_per_s, uint64_t seed);
void tr_token_cache_free(tr_token_cache *c);

typedef enum {
    TR_CACHE_MISS,     /* verify the token */
    TR_CACHE_HIT,      /* *id holds a new reference */
    TR_CACHE_REFUSED   /* *st is why (also for a cached token now expired) */
} tr_cache_result;

tr_cache_result tr_token_cache_lookup(tr_token_cache *c,
                                      const uint8_t key[32], int64_t now_s,
                                      tr_identity **id, tr_token_status *st);

/* Remembers a verified identity (the cache takes its own reference);
 * thumb names the key that verified it (tr_jwk.thumb), so a key set swap
 * can drop what only a withdrawn key vouched for. */
void tr_token_cache_put(tr_token_cache *c, const uint8_t key[32],
                        tr_identity *id, uint32_t leeway_s,
                        const uint8_t thumb[32]);

/* Remembers a refusal until now_s + refused_ttl_s. */
void tr_token_cache_put_refused(tr_token_cache *c, const uint8_t key[32],
                                tr_token_status st, int64_t now_s);

/* Takes one cold verification from the bucket; false when the cap is
 * reached (the request gets 503 verification-busy).  now_ns is any
 * monotonic nanosecond clock. */
bool tr_token_cache_take_cold(tr_token_cache *c, uint64_t now_ns);

/* Drops every positive entry for which keep() is false. */
void tr_token_cache_purge(tr_token_cache *c,
                          bool (*keep)(const tr_identity *id,
                                       const uint8_t thumb[32], void *arg),
                          void *arg);

/* Forgets every refusal (new keys may accept what was refused). */
void tr_token_cache_clear_refused(tr_token_cache *c);

typedef struct {
    uint64_t hits;
    uint64_t misses;
    uint64_t refused_hits;
    uint64_t expired_hits;     /* cached, but exp or nbf failed at the hit */
    uint64_t evictions;
    uint64_t cold;             /* cold verifications allowed */
    uint64_t busy;             /* cold verifications refused */
    uint32_t size;
    uint32_t refused_size;
} tr_token_cache_stats;

void tr_token_cache_get_stats(const tr_token_cache *c,
                              tr_token_cache_stats *out);

#endif
