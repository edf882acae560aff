#include "core/verifier.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/identity.h"
#include "core/jwt.h"
#include "core/token_hash.h"

#define ASYMMETRIC (TR_JWS_ES256 | TR_JWS_RS256 | TR_JWS_PS256 | TR_JWS_EDDSA)

struct tr_verifier {
    const tr_identity_cfg *cfg;
    tr_jwt_crypto *crypto;
    tr_jwt_issuer *issuers;
    size_t n;
    tr_token_cache *cache;
    /* Issuer whose keys lacked the kid of the last token checked (cold
     * path only); SIZE_MAX otherwise. */
    size_t unknown_kid_issuer;
};

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int
check_issuer(const tr_identity_cfg *cfg, size_t i, uint32_t *algs,
             char *err, size_t errlen)
{
    const tr_issuer_cfg *c = &cfg->issuers[i];
    const char *bad;

    if (!c->name || !*c->name || !c->issuer || !*c->issuer) {
        errf(err, errlen, "identity.issuers[%zu]: name and issuer needed",
             i);
        return -1;
    }
    for (size_t j = 0; j < i; j++) {
        if (!strcmp(cfg->issuers[j].name, c->name) ||
            !strcmp(cfg->issuers[j].issuer, c->issuer)) {
            errf(err, errlen, "identity.issuers: %s repeats a name or "
                 "issuer of an earlier entry", c->name);
            return -1;
        }
    }
    if (c->audiences.n == 0) {
        errf(err, errlen, "issuer %s: no audiences", c->name);
        return -1;
    }
    *algs = tr_jwt_alg_bits(&c->algorithms, &bad);
    if (*algs == 0) {
        errf(err, errlen, "issuer %s: %s%s", c->name,
             bad ? "unsupported algorithm " : "no algorithms",
             bad ? bad : "");
        return -1;
    }
    if (((*algs & TR_JWS_HS256) != 0) != (c->hs256_secret_file != NULL)) {
        errf(err, errlen, "issuer %s: HS256 and hs256_secret_file go "
             "together", c->name);
        return -1;
    }
    if ((*algs & ASYMMETRIC) && !c->jwks_file && !c->jwks_url) {
        errf(err, errlen, "issuer %s: jwks_file or jwks_url needed",
             c->name);
        return -1;
    }
    return 0;
}

tr_verifier *
tr_verifier_new(const tr_identity_cfg *cfg, uint64_t hash_seed, char *err,
                size_t errlen)
{
    tr_verifier *v = calloc(1, sizeof(*v));

    if (!v) {
        errf(err, errlen, "out of memory");
        return NULL;
    }
    v->cfg = cfg;
    v->n = cfg->n_issuers;
    v->unknown_kid_issuer = SIZE_MAX;
    v->issuers = calloc(v->n ? v->n : 1, sizeof(tr_jwt_issuer));
    v->crypto = tr_jwt_crypto_new();
    v->cache = tr_token_cache_new(cfg->token_cache_entries,
                                  cfg->negative_cache_entries,
                                  cfg->negative_cache_s,
                                  cfg->cold_verify_per_s, hash_seed);
    if (!v->issuers || !v->crypto || !v->cache) {
        errf(err, errlen, "cannot set up token verification");
        goto fail;
    }
    for (size_t i = 0; i < v->n; i++) {
        v->issuers[i].cfg = &cfg->issuers[i];
        if (check_issuer(cfg, i, &v->issuers[i].algs, err, errlen) != 0)
            goto fail;
    }
    return v;
fail:
    tr_verifier_free(v);
    return NULL;
}

void
tr_verifier_free(tr_verifier *v)
{
    if (!v)
        return;
    for (size_t i = 0; v->issuers && i < v->n; i++) {
        tr_keyset_unref(v->issuers[i].keys);
        tr_keyset_unref(v->issuers[i].hmac);
    }
    free(v->issuers);
    tr_token_cache_free(v->cache);
    tr_jwt_crypto_free(v->crypto);
    free(v);
}

typedef struct {
    const tr_jwt_issuer *iss;
    size_t index;
} purge_arg;

static bool
still_vouched(const tr_identity *id, const uint8_t thumb[32], void *arg)
{
    const purge_arg *p = arg;

    return id->issuer_index != p->index ||
           tr_keyset_contains(p->iss->keys, thumb) ||
           tr_keyset_contains(p->iss->hmac, thumb);
}

static bool
same_keys(const tr_keyset *a, const tr_keyset *b)
{
    if (!a || !b)
        return a == b;
    return !memcmp(tr_keyset_fingerprint(a), tr_keyset_fingerprint(b), 32);
}

static void
install(tr_verifier *v, size_t i, tr_keyset **slot, tr_keyset *ks)
{
    tr_keyset *old = *slot;
    bool changed = !same_keys(old, ks);
    purge_arg arg = { &v->issuers[i], i };

    tr_keyset_ref(ks);
    *slot = ks;
    tr_keyset_unref(old);
    if (!changed)
        return;
    tr_token_cache_purge(v->cache, still_vouched, &arg);
    tr_token_cache_clear_refused(v->cache);
}

int
tr_verifier_set_keys(tr_verifier *v, size_t issuer, tr_keyset *ks)
{
    if (issuer >= v->n)
        return -1;
    install(v, issuer, &v->issuers[issuer].keys, ks);
    return 0;
}

int
tr_verifier_set_hmac(tr_verifier *v, size_t issuer, tr_keyset *ks)
{
    if (issuer >= v->n || !(v->issuers[issuer].algs & TR_JWS_HS256))
        return -1;
    install(v, issuer, &v->issuers[issuer].hmac, ks);
    return 0;
}

bool
tr_verifier_ready(const tr_verifier *v)
{
    for (size_t i = 0; i < v->n; i++) {
        const tr_jwt_issuer *iss = &v->issuers[i];

        if ((iss->algs & ASYMMETRIC) && tr_keyset_count(iss->keys) == 0)
            return false;
        if ((iss->algs & TR_JWS_HS256) && !iss->hmac)
            return false;
    }
    return true;
}

bool
tr_verifier_has_dev_key(const tr_verifier *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (tr_keyset_has_dev_key(v->issuers[i].keys))
            return true;
    return false;
}

/* The cold path: everything the cache could not answer. */
static tr_token_status
verify_cold(tr_verifier *v, const char *token, size_t len,
            const uint8_t hash[32], int64_t now_s, uint64_t now_ns,
            tr_identity **out)
{
    tr_jwt t;
    const tr_jwt_issuer *iss;
    int64_t exp, nbf;
    tr_token_status st;

    st = tr_jwt_parse(v->issuers, v->n, v->cfg->max_token_bytes, token, len,
                      &t);
    if (st == TR_TOKEN_UNKNOWN_KID)
        v->unknown_kid_issuer = t.issuer;
    if (st != TR_TOKEN_OK)
        goto refused;
    /* Only tokens that survived the cheap checks spend the budget. */
    if (!tr_token_cache_take_cold(v->cache, now_ns)) {
        tr_jwt_clear(&t);
        return TR_TOKEN_BUSY;
    }
    iss = &v->issuers[t.issuer];
    st = tr_jwt_verify_signature(v->crypto, &t);
    if (st == TR_TOKEN_OK)
        st = tr_jwt_check_claims(iss, &t, now_s, &exp, &nbf);
    if (st == TR_TOKEN_OK)
        st = tr_identity_derive(v->cfg, t.issuer, t.payload, hash, exp, nbf,
                                out);
    if (st == TR_TOKEN_OK)
        tr_token_cache_put(v->cache, hash, *out, iss->cfg->leeway_s,
                           t.key->thumb);
    tr_jwt_clear(&t);
    if (st == TR_TOKEN_OK)
        return st;
refused:
    if (tr_token_status_cacheable(st))
        tr_token_cache_put_refused(v->cache, hash, st, now_s);
    return st;
}

tr_token_status
tr_verifier_check_token(tr_verifier *v, const char *token, size_t len,
                        int64_t now_s, uint64_t now_ns, tr_identity **out)
{
    uint8_t hash[32];
    size_t max = v->cfg->max_token_bytes ? v->cfg->max_token_bytes : 8192;
    tr_token_status st;

    *out = NULL;
    v->unknown_kid_issuer = SIZE_MAX;
    if (len == 0)
        return TR_TOKEN_MALFORMED;
    /* Before hashing: an oversized token costs nothing more. */
    if (len > max)
        return TR_TOKEN_TOO_LARGE;
    tr_token_hash(token, len, hash);
    switch (tr_token_cache_lookup(v->cache, hash, now_s, out, &st)) {
    case TR_CACHE_HIT:
        return TR_TOKEN_OK;
    case TR_CACHE_REFUSED:
        return st;
    case TR_CACHE_MISS:
        break;
    }
    return verify_cold(v, token, len, hash, now_s, now_ns, out);
}

tr_token_status
tr_verifier_check(tr_verifier *v, const char *authz, size_t len,
                  int64_t now_s, uint64_t now_ns, tr_identity **out)
{
    size_t i = 6;

    *out = NULL;
    v->unknown_kid_issuer = SIZE_MAX;
    if (!authz)
        return TR_TOKEN_MISSING;
    /* RFC 7235 §2.1: the scheme is case-insensitive; RFC 6750 §2.1:
     * "Bearer" 1*SP b64token. */
    if (len < 6 || strncasecmp(authz, "Bearer", 6) != 0 ||
        (len > 6 && authz[6] != ' '))
        return TR_TOKEN_MISSING;
    while (i < len && authz[i] == ' ')
        i++;
    if (i == len)
        return TR_TOKEN_MALFORMED;
    return tr_verifier_check_token(v, authz + i, len - i, now_s, now_ns,
                                   out);
}

bool
tr_verifier_unknown_kid_issuer(const tr_verifier *v, size_t *issuer)
{
    if (v->unknown_kid_issuer >= v->n)
        return false;
    *issuer = v->unknown_kid_issuer;
    return true;
}

void
tr_verifier_get_stats(const tr_verifier *v, tr_token_cache_stats *out)
{
    tr_token_cache_get_stats(v->cache, out);
}
