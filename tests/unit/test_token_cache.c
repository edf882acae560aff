/*
 * The token cache on a virtual clock: hits, expiry at the hit, LRU
 * eviction, the refused-token cache, the cold verification bucket, key
 * swaps, and that a hit allocates nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/identity.h"
#include "core/token_cache.h"
#include "core/verifier.h"
#include "token_fixture.h"

/* Counting allocations by interposing malloc; not under AddressSanitizer,
 * which owns the allocator. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif

#if COUNT_ALLOCS
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static volatile size_t n_allocs;

void *
malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}

void *
calloc(size_t n, size_t m)
{
    n_allocs++;
    return __libc_calloc(n, m);
}

void *
realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}
#endif

static char *auds[] = { "aud" };
static tr_issuer_cfg icfg = { .name = "corp", .issuer = "iss",
                              .audiences = { auds, 1 } };
static tr_identity_cfg idcfg = { .issuers = &icfg, .n_issuers = 1 };

static tr_identity *
ident(const char *sub, int64_t exp, int64_t nbf)
{
    char buf[128];
    json_t *p;
    tr_identity *id;
    uint8_t h[32] = { 0 };

    snprintf(buf, sizeof(buf), "{\"sub\":\"%s\"}", sub);
    p = json_loads(buf, 0, NULL);
    assert_int_equal(tr_identity_derive(&idcfg, 0, p, h, exp, nbf, &id),
                     TR_TOKEN_OK);
    json_decref(p);
    return id;
}

static void
key_of(uint8_t key[32], int n)
{
    memset(key, 0, 32);
    memcpy(key, &n, sizeof(n));
}

static const uint8_t thumb_a[32] = { 0xaa }, thumb_b[32] = { 0xbb };

static void
hit_returns_the_cached_identity_with_a_reference(void **state)
{
    tr_token_cache *c = tr_token_cache_new(4, 4, 10, 0, 7);
    tr_identity *id = ident("alice", 1000, 0), *got;
    tr_token_status st;
    uint8_t k[32];

    key_of(k, 1);
    assert_int_equal(tr_token_cache_lookup(c, k, 500, &got, &st),
                     TR_CACHE_MISS);
    tr_token_cache_put(c, k, id, 60, thumb_a);
    assert_int_equal(id->refs, 2);
    assert_int_equal(tr_token_cache_lookup(c, k, 500, &got, &st),
                     TR_CACHE_HIT);
    assert_ptr_equal(got, id);
    assert_int_equal(id->refs, 3);
    tr_identity_unref(got);
    tr_identity_unref(id);
    tr_token_cache_free(c); /* drops the cache's reference */
}

static void
exp_and_nbf_are_rechecked_at_every_hit(void **state)
{
    tr_token_cache *c = tr_token_cache_new(4, 4, 10, 0, 7);
    tr_identity *id = ident("alice", 1000, 900), *got;
    tr_token_status st;
    uint8_t k[32];

    key_of(k, 1);
    tr_token_cache_put(c, k, id, 60, thumb_a);
    tr_identity_unref(id);
    assert_int_equal(tr_token_cache_lookup(c, k, 839, &got, &st),
                     TR_CACHE_REFUSED);
    assert_int_equal(st, TR_TOKEN_NOT_YET_VALID);
    /* The refused hit dropped the entry. */
    assert_int_equal(tr_token_cache_lookup(c, k, 1059, &got, &st),
                     TR_CACHE_MISS);
    id = ident("alice", 1000, 900);
    tr_token_cache_put(c, k, id, 60, thumb_a);
    tr_identity_unref(id);
    assert_int_equal(tr_token_cache_lookup(c, k, 1059, &got, &st),
                     TR_CACHE_HIT);
    tr_identity_unref(got);
    assert_int_equal(tr_token_cache_lookup(c, k, 1060, &got, &st),
                     TR_CACHE_REFUSED);
    assert_int_equal(st, TR_TOKEN_EXPIRED);
    assert_null(got);
    tr_token_cache_free(c);
}

static void
least_recently_used_entry_is_evicted(void **state)
{
    tr_token_cache *c = tr_token_cache_new(2, 0, 0, 0, 7);
    tr_identity *a = ident("a", 1000, 0), *b = ident("b", 1000, 0);
    tr_identity *d = ident("d", 1000, 0), *got;
    tr_token_status st;
    tr_token_cache_stats s;
    uint8_t ka[32], kb[32], kd[32];

    key_of(ka, 1);
    key_of(kb, 2);
    key_of(kd, 3);
    tr_token_cache_put(c, ka, a, 0, thumb_a);
    tr_token_cache_put(c, kb, b, 0, thumb_a);
    assert_int_equal(tr_token_cache_lookup(c, ka, 0, &got, &st),
                     TR_CACHE_HIT); /* a is now the most recent */
    tr_identity_unref(got);
    tr_token_cache_put(c, kd, d, 0, thumb_a);
    assert_int_equal(tr_token_cache_lookup(c, kb, 0, &got, &st),
                     TR_CACHE_MISS);
    assert_int_equal(tr_token_cache_lookup(c, ka, 0, &got, &st),
                     TR_CACHE_HIT);
    tr_identity_unref(got);
    assert_int_equal(tr_token_cache_lookup(c, kd, 0, &got, &st),
                     TR_CACHE_HIT);
    tr_identity_unref(got);
    assert_int_equal(b->refs, 1); /* the evicted entry let go */
    tr_token_cache_get_stats(c, &s);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.size, 2);
    tr_identity_unref(a);
    tr_identity_unref(b);
    tr_identity_unref(d);
    tr_token_cache_free(c);
}

static void
many_entries_stay_reachable(void **state)
{
    tr_token_cache *c = tr_token_cache_new(1000, 0, 0, 0, 99);
    tr_identity *id = ident("a", 1000, 0), *got;
    tr_token_status st;
    uint8_t k[32];

    for (int i = 0; i < 1000; i++) {
        key_of(k, i);
        tr_token_cache_put(c, k, id, 0, thumb_a);
    }
    for (int i = 0; i < 1000; i++) {
        key_of(k, i);
        assert_int_equal(tr_token_cache_lookup(c, k, 0, &got, &st),
                         TR_CACHE_HIT);
        tr_identity_unref(got);
    }
    key_of(k, 1000);
    assert_int_equal(tr_token_cache_lookup(c, k, 0, &got, &st),
                     TR_CACHE_MISS);
    tr_token_cache_free(c);
    assert_int_equal(id->refs, 1);
    tr_identity_unref(id);
}

static void
refusals_are_remembered_for_the_ttl(void **state)
{
    tr_token_cache *c = tr_token_cache_new(4, 4, 10, 0, 7);
    tr_identity *got;
    tr_token_status st = TR_TOKEN_OK;
    uint8_t k[32];

    key_of(k, 5);
    tr_token_cache_put_refused(c, k, TR_TOKEN_BAD_SIGNATURE, 100);
    assert_int_equal(tr_token_cache_lookup(c, k, 109, &got, &st),
                     TR_CACHE_REFUSED);
    assert_int_equal(st, TR_TOKEN_BAD_SIGNATURE);
    assert_int_equal(tr_token_cache_lookup(c, k, 110, &got, &st),
                     TR_CACHE_MISS);
    tr_token_cache_put_refused(c, k, TR_TOKEN_EXPIRED, 200);
    tr_token_cache_clear_refused(c);
    assert_int_equal(tr_token_cache_lookup(c, k, 201, &got, &st),
                     TR_CACHE_MISS);
    tr_token_cache_free(c);
}

static void
cold_bucket_caps_verifications_per_second(void **state)
{
    tr_token_cache *c = tr_token_cache_new(4, 4, 10, 3, 7);
    const uint64_t s = 1000000000ull, t0 = 5 * s;
    tr_token_cache_stats st;

    for (int i = 0; i < 3; i++)
        assert_true(tr_token_cache_take_cold(c, t0));
    assert_false(tr_token_cache_take_cold(c, t0));
    /* A third of a second buys one more, not two. */
    assert_false(tr_token_cache_take_cold(c, t0 + s / 3 - 1));
    assert_true(tr_token_cache_take_cold(c, t0 + s / 3 + 1));
    assert_false(tr_token_cache_take_cold(c, t0 + s / 3 + 1));
    /* A long idle gap refills to the burst, no further. */
    for (int i = 0; i < 3; i++)
        assert_true(tr_token_cache_take_cold(c, t0 + 100 * s));
    assert_false(tr_token_cache_take_cold(c, t0 + 100 * s));
    tr_token_cache_get_stats(c, &st);
    assert_int_equal(st.cold, 7);
    assert_int_equal(st.busy, 4);
    tr_token_cache_free(c);

    c = tr_token_cache_new(4, 4, 10, 0, 7); /* 0: no cap */
    for (int i = 0; i < 10000; i++)
        assert_true(tr_token_cache_take_cold(c, t0));
    tr_token_cache_free(c);
}

static bool
keep_thumb_a(const tr_identity *id, const uint8_t thumb[32], void *arg)
{
    return !memcmp(thumb, thumb_a, 32);
}

static void
purge_drops_what_keep_refuses(void **state)
{
    tr_token_cache *c = tr_token_cache_new(4, 4, 10, 0, 7);
    tr_identity *id = ident("a", 1000, 0), *got;
    tr_token_status st;
    uint8_t k1[32], k2[32];

    key_of(k1, 1);
    key_of(k2, 2);
    tr_token_cache_put(c, k1, id, 0, thumb_a);
    tr_token_cache_put(c, k2, id, 0, thumb_b);
    tr_token_cache_purge(c, keep_thumb_a, NULL);
    assert_int_equal(tr_token_cache_lookup(c, k1, 0, &got, &st),
                     TR_CACHE_HIT);
    tr_identity_unref(got);
    assert_int_equal(tr_token_cache_lookup(c, k2, 0, &got, &st),
                     TR_CACHE_MISS);
    tr_token_cache_free(c);
    tr_identity_unref(id);
}

/* ---- through the verifier ---- */

static EVP_PKEY *k1, *k2;
static char *es[] = { "ES256" };

static tr_keyset *
set_of(EVP_PKEY *a, EVP_PKEY *b)
{
    char *ja = fx_jwk(a, "k1", NULL), *jb = b ? fx_jwk(b, "k2", NULL) : NULL;
    char doc[4096], err[256];
    tr_keyset *ks;

    snprintf(doc, sizeof(doc), "{\"keys\":[%s%s%s]}", ja, jb ? "," : "",
             jb ? jb : "");
    ks = tr_keyset_parse(doc, strlen(doc), err, sizeof(err));
    assert_non_null(ks);
    free(ja);
    free(jb);
    return ks;
}

static tr_verifier *
verifier(tr_issuer_cfg *ic, tr_identity_cfg *c, uint32_t cold)
{
    char err[256];
    tr_verifier *v;
    tr_keyset *ks = set_of(k1, k2);

    fx_issuer(ic, es, 1);
    fx_identity_cfg(c, ic, 1);
    c->cold_verify_per_s = cold;
    v = tr_verifier_new(c, 3, err, sizeof(err));
    assert_non_null(v);
    tr_verifier_set_keys(v, 0, ks);
    tr_keyset_unref(ks);
    return v;
}

static char *
token(EVP_PKEY *k, const char *kid, const char *sub)
{
    char h[64], p[256];

    snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    snprintf(p, sizeof(p), "{\"iss\":\"" FX_ISS "\",\"aud\":\"" FX_AUD "\","
             "\"sub\":\"%s\",\"exp\":1700000300}", sub);
    return fx_sign("ES256", k, h, p);
}

static tr_token_status
check(tr_verifier *v, const char *t, uint64_t now_ns)
{
    tr_identity *id = NULL;
    tr_token_status st = tr_verifier_check_token(v, t, strlen(t), FX_NOW,
                                                 now_ns, &id);

    tr_identity_unref(id);
    return st;
}

static void
busy_when_the_cold_cap_is_reached_but_hits_still_served(void **state)
{
    tr_issuer_cfg ic;
    tr_identity_cfg c;
    tr_verifier *v = verifier(&ic, &c, 1);
    char *a = token(k1, "k1", "alice"), *b = token(k1, "k1", "bob");
    tr_token_cache_stats s;

    assert_int_equal(check(v, a, 0), TR_TOKEN_OK);
    assert_int_equal(check(v, b, 1), TR_TOKEN_BUSY);
    assert_int_equal(check(v, a, 2), TR_TOKEN_OK); /* cached */
    /* Cheap refusals do not spend the budget either. */
    assert_int_equal(check(v, "x.y.z", 3), TR_TOKEN_MALFORMED);
    assert_int_equal(check(v, b, 1000000000ull), TR_TOKEN_OK);
    tr_verifier_get_stats(v, &s);
    assert_int_equal(s.busy, 1);
    assert_int_equal(s.hits, 1);
    tr_verifier_free(v);
    free(a);
    free(b);
}

static void
refused_token_is_answered_from_the_cache(void **state)
{
    tr_issuer_cfg ic;
    tr_identity_cfg c;
    tr_verifier *v = verifier(&ic, &c, 0);
    char *a = token(k2, "k1", "alice"); /* signed by the wrong key */
    tr_token_cache_stats s;

    assert_int_equal(check(v, a, 0), TR_TOKEN_BAD_SIGNATURE);
    assert_int_equal(check(v, a, 0), TR_TOKEN_BAD_SIGNATURE);
    tr_verifier_get_stats(v, &s);
    assert_int_equal(s.refused_hits, 1);
    assert_int_equal(s.cold, 1);
    tr_verifier_free(v);
    free(a);
}

static void
key_swap_drops_what_a_withdrawn_key_vouched_for(void **state)
{
    tr_issuer_cfg ic;
    tr_identity_cfg c;
    tr_verifier *v = verifier(&ic, &c, 0);
    char *a = token(k1, "k1", "alice"), *b = token(k2, "k2", "bob");
    tr_keyset *only_k2 = set_of(k2, NULL), *same;
    tr_token_cache_stats s;

    assert_int_equal(check(v, a, 0), TR_TOKEN_OK);
    assert_int_equal(check(v, b, 0), TR_TOKEN_OK);
    /* Re-installing an identical set keeps the cache. */
    same = set_of(k1, k2);
    tr_verifier_set_keys(v, 0, same);
    tr_keyset_unref(same);
    tr_verifier_get_stats(v, &s);
    assert_int_equal(s.size, 2);
    /* k1 withdrawn: alice's token must verify again, and fails; the set
     * names k2's key "k1" now, so bob's cached entry survives. */
    tr_verifier_set_keys(v, 0, only_k2);
    tr_verifier_get_stats(v, &s);
    assert_int_equal(s.size, 1);
    assert_int_equal(check(v, a, 0), TR_TOKEN_BAD_SIGNATURE);
    assert_int_equal(check(v, b, 0), TR_TOKEN_OK);
    tr_keyset_unref(only_k2);
    tr_verifier_free(v);
    free(a);
    free(b);
}

static void
new_keys_forget_cached_refusals(void **state)
{
    tr_issuer_cfg ic;
    tr_identity_cfg c;
    tr_verifier *v = verifier(&ic, &c, 0);
    char *t = token(k1, "k3", "carol");
    char *j = fx_jwk(k1, "k3", NULL), doc[2048], err[128];
    tr_keyset *ks;

    assert_int_equal(check(v, t, 0), TR_TOKEN_UNKNOWN_KID);
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", j);
    ks = tr_keyset_parse(doc, strlen(doc), err, sizeof(err));
    tr_verifier_set_keys(v, 0, ks);
    tr_keyset_unref(ks);
    assert_int_equal(check(v, t, 0), TR_TOKEN_OK);
    tr_verifier_free(v);
    free(t);
    free(j);
}

static void
cache_hit_allocates_nothing(void **state)
{
#if COUNT_ALLOCS
    tr_issuer_cfg ic;
    tr_identity_cfg c;
    tr_verifier *v = verifier(&ic, &c, 0);
    char *a = token(k1, "k1", "alice"), authz[1024];
    tr_identity *id;
    size_t before, after;

    snprintf(authz, sizeof(authz), "Bearer %s", a);
    assert_int_equal(check(v, a, 0), TR_TOKEN_OK);
    before = n_allocs;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tr_verifier_check(v, authz, strlen(authz), FX_NOW,
                                           0, &id), TR_TOKEN_OK);
        tr_identity_unref(id);
    }
    after = n_allocs;
    assert_int_equal(after, before);
    /* The counter does count: a cold verification allocates. */
    free(a);
    a = token(k1, "k1", "bob");
    assert_int_equal(check(v, a, 0), TR_TOKEN_OK);
    assert_true(n_allocs > after);
    tr_verifier_free(v);
    free(a);
#else
    skip();
#endif
}

static int
group_setup(void **state)
{
    k1 = fx_gen_ec();
    k2 = fx_gen_ec();
    return 0;
}

static int
group_teardown(void **state)
{
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hit_returns_the_cached_identity_with_a_reference),
        cmocka_unit_test(exp_and_nbf_are_rechecked_at_every_hit),
        cmocka_unit_test(least_recently_used_entry_is_evicted),
        cmocka_unit_test(many_entries_stay_reachable),
        cmocka_unit_test(refusals_are_remembered_for_the_ttl),
        cmocka_unit_test(cold_bucket_caps_verifications_per_second),
        cmocka_unit_test(purge_drops_what_keep_refuses),
        cmocka_unit_test(
            busy_when_the_cold_cap_is_reached_but_hits_still_served),
        cmocka_unit_test(refused_token_is_answered_from_the_cache),
        cmocka_unit_test(key_swap_drops_what_a_withdrawn_key_vouched_for),
        cmocka_unit_test(new_keys_forget_cached_refusals),
        cmocka_unit_test(cache_hit_allocates_nothing),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
