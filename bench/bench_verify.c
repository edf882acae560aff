/*
 * Token verification benchmark (not a test): what the verifier costs per
 * request on one core, per algorithm, cold and from its cache (issue 3).
 * bench/verify builds it against build/libtreaty.a with the Makefile's
 * flags and runs it:
 *
 *   bench_verify [tokens] [hits] [runs]
 *
 * Cold: `tokens` distinct tokens (distinct jti), all signed beforehand,
 * each checked once through tr_verifier_check_token by a verifier created
 * empty for that run, so every check misses the cache and takes the whole
 * cold path: token hash, cache lookup, parse, key selection, signature,
 * claims, identity derivation and cache insertion.  The cache holds only
 * CACHE_ENTRIES identities, so most insertions also evict, as they do in
 * a full cache.  The cold verification cap is set far above what one core
 * reaches, and the run fails if any check was refused or served from the
 * cache.
 *
 * Hit: one token checked `hits` times after a first, cold check: SHA-256
 * of the token, the cache lookup, the exp/nbf re-check and dropping the
 * returned reference.  The token's length matters (it is hashed whole),
 * hence a figure per algorithm.
 *
 * Each figure is the median of `runs` runs, min..max beside it; a first
 * run per algorithm is thrown away as a warm-up.  Token times are fixed
 * (FX_NOW), so the tokens never expire during a run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/identity.h"
#include "core/jwks.h"
#include "core/verifier.h"
#include "token_fixture.h"

#define MAX_RUNS 99
#define CACHE_ENTRIES 64
#define COLD_CAP 1000000000u   /* per second: never the limit here */
#define HASH_SEED 0x9e3779b97f4a7c15ull

typedef struct {
    const char *label;         /* table row */
    size_t alg;                /* index into fx_algs_all */
    size_t rsa_bits;           /* RSA key size, 0 for other types */
} bench_case;

static const bench_case cases[] = {
    { "ES256", 0, 0 },
    { "RS256 (2048)", 1, 2048 },
    { "PS256 (2048)", 2, 2048 },
    { "EdDSA", 3, 0 },
    { "HS256", 4, 0 },
};

typedef struct {
    tr_issuer_cfg issuer;
    tr_identity_cfg cfg;
    tr_keyset *keys;
    bool hmac;
} bench_setup;

typedef struct {
    double median, min, max;
} summary;

static void
die(const char *what)
{
    fprintf(stderr, "bench_verify: %s\n", what);
    exit(1);
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long
arg_long(int argc, char **argv, int i, long dflt, long max)
{
    char *end;
    long v;

    if (argc <= i)
        return dflt;
    v = strtol(argv[i], &end, 10);
    if (*argv[i] == '\0' || *end != '\0' || v < 1 || v > max)
        die("usage: bench_verify [tokens] [hits] [runs (1..99)]");
    return v;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static summary
summarise(double *v, size_t n)
{
    summary s;

    qsort(v, n, sizeof(*v), cmp_double);
    s.min = v[0];
    s.max = v[n - 1];
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return s;
}

static EVP_PKEY *
gen_key(const bench_case *c)
{
    const char *alg = fx_algs_all[c->alg];

    if (!strcmp(alg, "ES256"))
        return fx_gen_ec();
    if (!strcmp(alg, "EdDSA"))
        return fx_gen_ed25519();
    if (c->rsa_bits)
        return fx_gen_rsa(c->rsa_bits);
    return NULL;               /* HS256: the fixture's secret */
}

/* One issuer allowing only this algorithm, its key parsed from a JWKS
 * document (or the HMAC secret), as treaty serve would set it up. */
static void
setup_init(bench_setup *s, const bench_case *c, EVP_PKEY *k)
{
    char err[256], doc[4400], *jwk;

    fx_issuer(&s->issuer, &fx_algs_all[c->alg], 1);
    fx_identity_cfg(&s->cfg, &s->issuer, 1);
    s->cfg.token_cache_entries = CACHE_ENTRIES;
    s->cfg.cold_verify_per_s = COLD_CAP;
    s->hmac = k == NULL;
    if (s->hmac) {
        s->keys = tr_keyset_new_hmac((const uint8_t *)FX_HMAC_SECRET,
                                     strlen(FX_HMAC_SECRET), err,
                                     sizeof(err));
    } else {
        jwk = fx_jwk(k, "k1", NULL);
        snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
        free(jwk);
        s->keys = tr_keyset_parse(doc, strlen(doc), err, sizeof(err));
    }
    if (!s->keys)
        die(err);
}

static tr_verifier *
verifier_new(bench_setup *s)
{
    char err[256];
    tr_verifier *v = tr_verifier_new(&s->cfg, HASH_SEED, err, sizeof(err));
    int rc;

    if (!v)
        die(err);
    rc = s->hmac ? tr_verifier_set_hmac(v, 0, s->keys)
                 : tr_verifier_set_keys(v, 0, s->keys);
    if (rc != 0)
        die("cannot install the keys");
    return v;
}

/* An access token as an authorization server issues them (RFC 9068
 * claims), distinct by jti. */
static char *
make_token(const bench_case *c, EVP_PKEY *k, size_t i)
{
    const char *alg = fx_algs_all[c->alg];
    char header[128], extra[256], *payload, *tok;

    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"at+jwt\"%s}",
             alg, k ? ",\"kid\":\"k1\"" : "");
    snprintf(extra, sizeof(extra), ",\"iat\":%lld,\"jti\":\"bench-%08zu\","
             "\"client_id\":\"bench-app\",\"scope\":\"mail.read "
             "mail.send\"", FX_NOW - 10, i);
    payload = fx_payload(extra);
    tok = fx_sign_ex(alg, k, (const uint8_t *)FX_HMAC_SECRET,
                     strlen(FX_HMAC_SECRET), header, payload, 0);
    free(payload);
    return tok;
}

static void
check_ok(tr_verifier *v, const char *tok, size_t len, uint64_t now_ns)
{
    tr_identity *id = NULL;

    if (tr_verifier_check_token(v, tok, len, FX_NOW, now_ns, &id) !=
        TR_TOKEN_OK)
        die("a benchmark token was refused");
    tr_identity_unref(id);
}

/* Nanoseconds per cold verification over n distinct tokens. */
static double
cold_run(bench_setup *s, char **toks, const size_t *lens, size_t n)
{
    tr_verifier *v = verifier_new(s);
    tr_token_cache_stats st;
    uint64_t t0, t1;

    t0 = mono_ns();
    for (size_t i = 0; i < n; i++)
        check_ok(v, toks[i], lens[i], t0 + i);
    t1 = mono_ns();
    tr_verifier_get_stats(v, &st);
    if (st.misses != n || st.cold != n || st.hits != 0 || st.busy != 0)
        die("a cold run was not all cold verifications");
    tr_verifier_free(v);
    return (double)(t1 - t0) / (double)n;
}

/* Nanoseconds per check of a token already in the cache. */
static double
hit_run(bench_setup *s, const char *tok, size_t len, size_t hits)
{
    tr_verifier *v = verifier_new(s);
    tr_token_cache_stats st;
    uint64_t t0, t1;

    check_ok(v, tok, len, 1);
    t0 = mono_ns();
    for (size_t i = 0; i < hits; i++)
        check_ok(v, tok, len, 1);
    t1 = mono_ns();
    tr_verifier_get_stats(v, &st);
    if (st.hits != hits || st.misses != 1)
        die("a hit run missed the cache");
    tr_verifier_free(v);
    return (double)(t1 - t0) / (double)hits;
}

static void
bench_one(const bench_case *c, size_t n, size_t hits, size_t runs)
{
    EVP_PKEY *k = gen_key(c);
    bench_setup s;
    char **toks = calloc(n, sizeof(*toks));
    size_t *lens = calloc(n, sizeof(*lens));
    double cold[MAX_RUNS], hit[MAX_RUNS];
    summary sc, sh;

    if (!toks || !lens)
        die("out of memory");
    setup_init(&s, c, k);
    for (size_t i = 0; i < n; i++) {
        toks[i] = make_token(c, k, i);
        lens[i] = strlen(toks[i]);
    }
    cold_run(&s, toks, lens, n);
    hit_run(&s, toks[0], lens[0], hits);
    for (size_t r = 0; r < runs; r++) {
        cold[r] = cold_run(&s, toks, lens, n) / 1e3;
        hit[r] = hit_run(&s, toks[0], lens[0], hits);
    }
    sc = summarise(cold, runs);
    sh = summarise(hit, runs);
    printf("| %s | %zu | %.1f | %.1f..%.1f | %.0f | %.0f..%.0f |\n",
           c->label, lens[0], sc.median, sc.min, sc.max, sh.median, sh.min,
           sh.max);
    fflush(stdout);
    for (size_t i = 0; i < n; i++)
        free(toks[i]);
    free(toks);
    free(lens);
    tr_keyset_unref(s.keys);
    EVP_PKEY_free(k);
}

int
main(int argc, char **argv)
{
    size_t n = (size_t)arg_long(argc, argv, 1, 1000, 10000000);
    size_t hits = (size_t)arg_long(argc, argv, 2, 200000, 1000000000);
    size_t runs = (size_t)arg_long(argc, argv, 3, 5, MAX_RUNS);

    printf("%s; %zu distinct tokens per cold run, %zu checks per hit run, "
           "median of %zu runs (min..max), one thread\n\n",
           OpenSSL_version(OPENSSL_VERSION), n, hits, runs);
    printf("| algorithm | token bytes | µs per cold verification "
           "| min..max | ns per cache hit | min..max |\n"
           "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        bench_one(&cases[i], n, hits, runs);
    return 0;
}
