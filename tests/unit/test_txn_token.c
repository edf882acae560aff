/*
 * Transaction Tokens (src/core/txn_token.c): minted tokens are checked
 * independently — base64url decoded with OpenSSL's block decoder, the
 * signature verified with EVP_DigestVerify against the public key alone,
 * every claim read back with jansson — plus the JWKS document and the
 * RFC 7638 key id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "core/txn_token.h"

#define NOW 1760000000

/* ---- independent helpers ------------------------------------------------ */

/* base64url -> bytes via OpenSSL's standard-alphabet decoder. */
static size_t
unb64url(const char *in, size_t len, uint8_t *out, size_t cap)
{
    char *std = malloc(len + 4);
    size_t n = 0, pad = (4 - len % 4) % 4;
    int w;

    assert_non_null(std);
    for (size_t i = 0; i < len; i++) {
        char c = in[i];

        assert_true(c != '+' && c != '/' && c != '=');
        std[n++] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    for (size_t i = 0; i < pad; i++)
        std[n++] = '=';
    assert_true(n / 4 * 3 <= cap);
    w = EVP_DecodeBlock(out, (const unsigned char *)std, (int)n);
    free(std);
    assert_true(w >= 0);
    return (size_t)w - pad;
}

static json_t *
decode_part(const char *s, size_t len)
{
    uint8_t buf[8192];
    size_t n = unb64url(s, len, buf, sizeof buf);
    json_error_t e;
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &e);

    assert_non_null(j);
    return j;
}

typedef struct {
    const char *h, *p, *s;
    size_t hl, pl, sl;
} parts;

static parts
split(const char *tok)
{
    parts r;
    const char *d1 = strchr(tok, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

    assert_non_null(d1);
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    r.h = tok;
    r.hl = (size_t)(d1 - tok);
    r.p = d1 + 1;
    r.pl = (size_t)(d2 - r.p);
    r.s = d2 + 1;
    r.sl = strlen(r.s);
    return r;
}

/* A key holding only the public half of k. */
static EVP_PKEY *
public_only(EVP_PKEY *k)
{
    uint8_t raw[32];
    size_t len = sizeof raw;

    assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
}

static bool
verify(EVP_PKEY *pub, const char *tok)
{
    parts p = split(tok);
    uint8_t sig[128];
    size_t sl = unb64url(p.s, p.sl, sig, sizeof sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    assert_non_null(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub), 1);
    ok = EVP_DigestVerify(ctx, sig, sl, (const uint8_t *)tok,
                          p.hl + 1 + p.pl);
    EVP_MD_CTX_free(ctx);
    return ok == 1;
}

static EVP_PKEY *
ed25519(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

    assert_non_null(k);
    return k;
}

static void
make_key(tr_txn_key *k, EVP_PKEY *pkey)
{
    memset(k, 0, sizeof *k);
    k->pkey = pkey;
    assert_int_equal(tr_txn_key_thumbprint(pkey, k->kid), TR_TXN_OK);
}

/* ---- identities --------------------------------------------------------- */

static char *agent_scopes[] = { "mail.read", "profile" };

static tr_identity
agent_identity(void)
{
    tr_identity id;

    memset(&id, 0, sizeof id);
    id.issuer_name = "corp";
    id.sub = "alice";
    id.actor = "agent:planner";
    id.chain[0] = "agent:planner";
    id.chain[1] = "agent:router";
    id.chain[2] = "agent:mailbot";
    id.chain_len = 3;
    id.cls = TR_CLASS_AGENT;
    id.client_id = "planner-app";
    id.scopes = agent_scopes;
    id.n_scopes = 2;
    return id;
}

static tr_identity
human_identity(void)
{
    tr_identity id;

    memset(&id, 0, sizeof id);
    id.issuer_name = "corp";
    id.sub = "bob";
    id.actor = "bob";
    id.cls = TR_CLASS_HUMAN;
    return id;
}

static const tr_txn_token_opts OPTS = {
    .issuer = "https://gw.example.com",
    .audience = "trust-domain.example",
    .ttl_s = 0,
};

static json_t *
mint_payload(const tr_txn_token_opts *o, tr_txn_key *k,
             const tr_txn_token_req *rq)
{
    char tok[TR_TXN_TOKEN_BUF];
    size_t len = 0;

    assert_int_equal(tr_txn_token_mint(o, k, rq, tok, sizeof tok, &len),
                     TR_TXN_OK);
    assert_int_equal(len, strlen(tok));
    {
        parts p = split(tok);
        return decode_part(p.p, p.pl);
    }
}

/* ---- tests -------------------------------------------------------------- */

static void
minted_token_verifies_with_the_public_key_and_carries_every_claim(
    void **state)
{
    EVP_PKEY *pkey = ed25519(), *pub = public_only(pkey);
    tr_txn_key k;
    tr_identity id = agent_identity();
    tr_txn_token_req rq = {
        .id = &id, .request_id = "req-0001", .client_addr = "192.0.2.7",
        .route = "mail-read", .method = "GET", .now = NOW,
    };
    char tok[TR_TXN_TOKEN_BUF];
    size_t len;
    json_t *h, *p, *t, *a;

    make_key(&k, pkey);
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, sizeof tok,
                                       &len), TR_TXN_OK);
    assert_true(verify(pub, tok));

    parts s = split(tok);
    h = decode_part(s.h, s.hl);
    assert_string_equal(json_string_value(json_object_get(h, "alg")),
                        "EdDSA");
    assert_string_equal(json_string_value(json_object_get(h, "typ")),
                        "txntoken+jwt");
    assert_string_equal(json_string_value(json_object_get(h, "kid")),
                        k.kid);
    assert_int_equal(json_object_size(h), 3);

    p = decode_part(s.p, s.pl);
    assert_string_equal(json_string_value(json_object_get(p, "iss")),
                        "https://gw.example.com");
    assert_string_equal(json_string_value(json_object_get(p, "req_wl")),
                        "https://gw.example.com");
    assert_string_equal(json_string_value(json_object_get(p, "aud")),
                        "trust-domain.example");
    assert_int_equal(json_integer_value(json_object_get(p, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(p, "exp")),
                     NOW + 300);
    assert_string_equal(json_string_value(json_object_get(p, "txn")),
                        "req-0001");
    assert_string_equal(json_string_value(json_object_get(p, "sub")),
                        "alice");
    assert_string_equal(json_string_value(json_object_get(p, "scope")),
                        "mail.read profile");

    /* RFC 8693 act: current actor outermost */
    a = json_object_get(p, "act");
    assert_string_equal(json_string_value(json_object_get(a, "sub")),
                        "agent:planner");
    a = json_object_get(a, "act");
    assert_string_equal(json_string_value(json_object_get(a, "sub")),
                        "agent:router");
    a = json_object_get(a, "act");
    assert_string_equal(json_string_value(json_object_get(a, "sub")),
                        "agent:mailbot");
    assert_null(json_object_get(a, "act"));

    t = json_object_get(p, "tctx");
    assert_string_equal(
        json_string_value(json_object_get(t, "principal_issuer")), "corp");
    assert_string_equal(json_string_value(json_object_get(t, "actor")),
                        "agent:planner");
    assert_string_equal(
        json_string_value(json_object_get(t, "caller_class")), "agent");
    assert_string_equal(json_string_value(json_object_get(t, "client_id")),
                        "planner-app");
    assert_string_equal(json_string_value(json_object_get(t, "route")),
                        "mail-read");
    assert_string_equal(json_string_value(json_object_get(t, "method")),
                        "GET");
    {
        json_t *c = json_object_get(t, "delegation_chain");

        assert_int_equal(json_array_size(c), 3);
        assert_string_equal(json_string_value(json_array_get(c, 0)),
                            "agent:planner");
        assert_string_equal(json_string_value(json_array_get(c, 1)),
                            "agent:router");
        assert_string_equal(json_string_value(json_array_get(c, 2)),
                            "agent:mailbot");
    }
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(p, "rctx"), "req_ip")),
                        "192.0.2.7");
    /* nothing else: the inbound access token must never ride along */
    assert_int_equal(json_object_size(p), 11);

    json_decref(h);
    json_decref(p);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(pkey);
}

static void
tampering_with_any_part_breaks_the_signature(void **state)
{
    EVP_PKEY *pkey = ed25519(), *pub = public_only(pkey);
    EVP_PKEY *other = ed25519(), *other_pub = public_only(other);
    tr_txn_key k;
    tr_identity id = agent_identity();
    tr_txn_token_req rq = { .id = &id, .request_id = "r1", .now = NOW };
    char tok[TR_TXN_TOKEN_BUF], bad[TR_TXN_TOKEN_BUF];
    size_t len;
    parts s;

    make_key(&k, pkey);
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, sizeof tok,
                                       &len), TR_TXN_OK);
    assert_true(verify(pub, tok));
    assert_false(verify(other_pub, tok));
    s = split(tok);

    /* a payload character changed (stays valid base64url) */
    memcpy(bad, tok, len + 1);
    bad[s.p - tok + 5] = bad[s.p - tok + 5] == 'A' ? 'B' : 'A';
    assert_false(verify(pub, bad));
    /* a header character changed */
    memcpy(bad, tok, len + 1);
    bad[2] = bad[2] == 'A' ? 'B' : 'A';
    assert_false(verify(pub, bad));
    /* a signature character changed */
    memcpy(bad, tok, len + 1);
    bad[s.s - tok + 3] = bad[s.s - tok + 3] == 'A' ? 'B' : 'A';
    assert_false(verify(pub, bad));

    EVP_PKEY_free(pub);
    EVP_PKEY_free(pkey);
    EVP_PKEY_free(other_pub);
    EVP_PKEY_free(other);
}

static void
human_token_has_no_act_and_an_empty_chain(void **state)
{
    EVP_PKEY *pkey = ed25519();
    tr_txn_key k;
    tr_identity id = human_identity();
    tr_txn_token_req rq = { .id = &id, .request_id = "r2", .now = NOW };
    json_t *p, *t;

    make_key(&k, pkey);
    p = mint_payload(&OPTS, &k, &rq);
    assert_null(json_object_get(p, "act"));
    assert_null(json_object_get(p, "rctx"));
    assert_string_equal(json_string_value(json_object_get(p, "sub")), "bob");
    assert_string_equal(json_string_value(json_object_get(p, "scope")), "");
    t = json_object_get(p, "tctx");
    assert_string_equal(json_string_value(json_object_get(t, "actor")),
                        "bob");
    assert_string_equal(
        json_string_value(json_object_get(t, "caller_class")), "human");
    assert_int_equal(json_array_size(json_object_get(t, "delegation_chain")),
                     0);
    assert_null(json_object_get(t, "client_id"));
    assert_null(json_object_get(t, "route"));
    json_decref(p);
    EVP_PKEY_free(pkey);
}

static void
client_as_actor_without_chain_still_names_the_actor(void **state)
{
    EVP_PKEY *pkey = ed25519();
    tr_txn_key k;
    tr_identity id = human_identity();
    tr_txn_token_req rq = { .id = &id, .request_id = "r3", .now = NOW };
    json_t *p, *c;

    id.cls = TR_CLASS_AGENT;
    id.actor = "reporter-client";
    make_key(&k, pkey);
    p = mint_payload(&OPTS, &k, &rq);
    c = json_object_get(json_object_get(p, "tctx"), "delegation_chain");
    assert_int_equal(json_array_size(c), 1);
    assert_string_equal(json_string_value(json_array_get(c, 0)),
                        "reporter-client");
    json_decref(p);
    EVP_PKEY_free(pkey);
}

static void
scope_is_narrowed_but_never_widened(void **state)
{
    EVP_PKEY *pkey = ed25519();
    tr_txn_key k;
    tr_identity id = agent_identity();
    char *want_items[] = { "mail.send", "mail.read" };
    tr_strlist want = { want_items, 2 };
    tr_strlist none = { NULL, 0 };
    tr_txn_token_req rq = { .id = &id, .request_id = "r4", .now = NOW,
                            .scopes = &want };
    json_t *p;

    make_key(&k, pkey);
    /* mail.send was asked for but the token lacks it */
    p = mint_payload(&OPTS, &k, &rq);
    assert_string_equal(json_string_value(json_object_get(p, "scope")),
                        "mail.read");
    json_decref(p);
    rq.scopes = &none;
    p = mint_payload(&OPTS, &k, &rq);
    assert_string_equal(json_string_value(json_object_get(p, "scope")),
                        "mail.read profile");
    json_decref(p);
    EVP_PKEY_free(pkey);
}

static void
ttl_sets_exp(void **state)
{
    EVP_PKEY *pkey = ed25519();
    tr_txn_key k;
    tr_identity id = human_identity();
    tr_txn_token_opts o = OPTS;
    tr_txn_token_req rq = { .id = &id, .request_id = "r5", .now = NOW };
    json_t *p;

    o.ttl_s = 60;
    make_key(&k, pkey);
    p = mint_payload(&o, &k, &rq);
    assert_int_equal(json_integer_value(json_object_get(p, "exp")),
                     NOW + 60);
    json_decref(p);
    EVP_PKEY_free(pkey);
}

static void
claim_values_are_json_escaped(void **state)
{
    EVP_PKEY *pkey = ed25519();
    tr_txn_key k;
    tr_identity id = human_identity();
    tr_txn_token_req rq = { .id = &id, .request_id = "r\"6\n", .now = NOW };
    json_t *p;

    id.sub = "evil\",\"sub\":\"root";
    make_key(&k, pkey);
    p = mint_payload(&OPTS, &k, &rq);
    assert_string_equal(json_string_value(json_object_get(p, "sub")),
                        "evil\",\"sub\":\"root");
    assert_string_equal(json_string_value(json_object_get(p, "txn")),
                        "r\"6\n");
    json_decref(p);
    EVP_PKEY_free(pkey);
}

static void
non_utf8_claim_is_refused(void **state)
{
    EVP_PKEY *pkey = ed25519();
    tr_txn_key k;
    tr_identity id = human_identity();
    tr_txn_token_req rq = { .id = &id, .request_id = "r7", .now = NOW };
    char tok[TR_TXN_TOKEN_BUF] = "x";
    size_t len;

    id.sub = "\xff\xfe";
    make_key(&k, pkey);
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, sizeof tok,
                                       &len), TR_TXN_E_JSON);
    assert_string_equal(tok, "");
    EVP_PKEY_free(pkey);
}

static void
small_buffer_is_refused_whole(void **state)
{
    EVP_PKEY *pkey = ed25519();
    tr_txn_key k;
    tr_identity id = agent_identity();
    tr_txn_token_req rq = { .id = &id, .request_id = "r8", .now = NOW };
    char tok[TR_TXN_TOKEN_BUF];
    size_t len, full;

    make_key(&k, pkey);
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, sizeof tok,
                                       &full), TR_TXN_OK);
    /* exactly enough works; one byte less fails at every stage */
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, full + 1, &len),
                     TR_TXN_OK);
    for (size_t cap = 1; cap <= full; cap += 37) {
        assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, cap, &len),
                         TR_TXN_E_SPACE);
        assert_string_equal(tok, "");
    }
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, full, &len),
                     TR_TXN_E_SPACE);
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, 0, &len),
                     TR_TXN_E_SPACE);
    EVP_PKEY_free(pkey);
}

static void
bad_arguments_are_refused(void **state)
{
    EVP_PKEY *ed = ed25519();
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    tr_txn_key k, eck;
    tr_identity id = human_identity();
    tr_txn_token_opts o = OPTS;
    tr_txn_token_req rq = { .id = &id, .request_id = "r9", .now = NOW };
    char tok[TR_TXN_TOKEN_BUF];
    size_t len;

    assert_non_null(ec);
    make_key(&k, ed);
    memset(&eck, 0, sizeof eck);
    eck.pkey = ec;
    memcpy(eck.kid, "ec", 3);
    assert_int_equal(tr_txn_key_thumbprint(ec, eck.kid), TR_TXN_E_ARG);
    memcpy(eck.kid, "ec", 3);
    assert_int_equal(tr_txn_token_mint(&OPTS, &eck, &rq, tok, sizeof tok,
                                       &len), TR_TXN_E_ARG);
    o.audience = NULL;
    assert_int_equal(tr_txn_token_mint(&o, &k, &rq, tok, sizeof tok, &len),
                     TR_TXN_E_ARG);
    o = OPTS;
    o.issuer = NULL;
    assert_int_equal(tr_txn_token_mint(&o, &k, &rq, tok, sizeof tok, &len),
                     TR_TXN_E_ARG);
    rq.request_id = NULL;
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, sizeof tok,
                                       &len), TR_TXN_E_ARG);
    rq.request_id = "r9";
    rq.id = NULL;
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, sizeof tok,
                                       &len), TR_TXN_E_ARG);
    rq.id = &id;
    k.kid[0] = '\0';
    assert_int_equal(tr_txn_token_mint(&OPTS, &k, &rq, tok, sizeof tok,
                                       &len), TR_TXN_E_ARG);
    assert_int_equal(tr_txn_jwks(&eck, 1, tok, sizeof tok, &len),
                     TR_TXN_E_ARG);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
}

static void
thumbprint_matches_rfc8037_example(void **state)
{
    /* RFC 8037 appendix A.1 key; A.3 gives its RFC 7638 thumbprint. */
    static const char x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    uint8_t raw[64];
    size_t n = unb64url(x, strlen(x), raw, sizeof raw);
    EVP_PKEY *pub;
    char kid[TR_TXN_KID_MAX];

    assert_int_equal(n, 32);
    pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, n);
    assert_non_null(pub);
    assert_int_equal(tr_txn_key_thumbprint(pub, kid), TR_TXN_OK);
    assert_string_equal(kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    EVP_PKEY_free(pub);
}

static void
jwks_publishes_public_okp_keys_only(void **state)
{
    EVP_PKEY *a = ed25519(), *b = ed25519();
    tr_txn_key keys[2];
    char doc[4096];
    size_t len;
    json_t *j, *arr;

    make_key(&keys[0], a);
    make_key(&keys[1], b);
    assert_string_not_equal(keys[0].kid, keys[1].kid);
    assert_int_equal(tr_txn_jwks(keys, 2, doc, sizeof doc, &len), TR_TXN_OK);
    assert_int_equal(len, strlen(doc));
    j = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 1);
    arr = json_object_get(j, "keys");
    assert_int_equal(json_array_size(arr), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *k = json_array_get(arr, i);
        const char *x = json_string_value(json_object_get(k, "x"));
        uint8_t raw[64], want[32];
        size_t rl, wl = sizeof want;

        assert_string_equal(json_string_value(json_object_get(k, "kty")),
                            "OKP");
        assert_string_equal(json_string_value(json_object_get(k, "crv")),
                            "Ed25519");
        assert_string_equal(json_string_value(json_object_get(k, "use")),
                            "sig");
        assert_string_equal(json_string_value(json_object_get(k, "alg")),
                            "EdDSA");
        assert_string_equal(json_string_value(json_object_get(k, "kid")),
                            keys[i].kid);
        assert_null(json_object_get(k, "d"));
        assert_int_equal(json_object_size(k), 6);
        assert_non_null(x);
        assert_int_equal(strlen(x), 43);
        rl = unb64url(x, strlen(x), raw, sizeof raw);
        assert_int_equal(rl, 32);
        EVP_PKEY_get_raw_public_key(keys[i].pkey, want, &wl);
        assert_memory_equal(raw, want, 32);
    }
    json_decref(j);

    assert_int_equal(tr_txn_jwks(keys, 0, doc, sizeof doc, &len), TR_TXN_OK);
    assert_string_equal(doc, "{\"keys\":[]}");
    assert_int_equal(tr_txn_jwks(keys, 2, doc, 20, &len), TR_TXN_E_SPACE);
    assert_string_equal(doc, "");
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
}

static void
token_kid_selects_its_key_in_the_jwks(void **state)
{
    /* What a backend does: find the kid in the JWKS, rebuild the key from
     * x, verify. */
    EVP_PKEY *old = ed25519(), *cur = ed25519();
    tr_txn_key keys[2];
    tr_identity id = agent_identity();
    tr_txn_token_req rq = { .id = &id, .request_id = "r10", .now = NOW };
    char tok[TR_TXN_TOKEN_BUF], doc[4096];
    size_t len;
    json_t *h, *j, *arr;
    EVP_PKEY *pub = NULL;
    parts s;

    make_key(&keys[0], cur);
    make_key(&keys[1], old);
    assert_int_equal(tr_txn_jwks(keys, 2, doc, sizeof doc, &len), TR_TXN_OK);
    assert_int_equal(tr_txn_token_mint(&OPTS, &keys[0], &rq, tok,
                                       sizeof tok, &len), TR_TXN_OK);
    s = split(tok);
    h = decode_part(s.h, s.hl);
    j = json_loads(doc, 0, NULL);
    arr = json_object_get(j, "keys");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *k = json_array_get(arr, i);

        if (strcmp(json_string_value(json_object_get(k, "kid")),
                   json_string_value(json_object_get(h, "kid"))) == 0) {
            const char *x = json_string_value(json_object_get(k, "x"));
            uint8_t raw[64];
            size_t rl = unb64url(x, strlen(x), raw, sizeof raw);

            pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw,
                                              rl);
        }
    }
    assert_non_null(pub);
    assert_true(verify(pub, tok));
    EVP_PKEY_free(pub);
    json_decref(h);
    json_decref(j);
    EVP_PKEY_free(old);
    EVP_PKEY_free(cur);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            minted_token_verifies_with_the_public_key_and_carries_every_claim),
        cmocka_unit_test(tampering_with_any_part_breaks_the_signature),
        cmocka_unit_test(human_token_has_no_act_and_an_empty_chain),
        cmocka_unit_test(client_as_actor_without_chain_still_names_the_actor),
        cmocka_unit_test(scope_is_narrowed_but_never_widened),
        cmocka_unit_test(ttl_sets_exp),
        cmocka_unit_test(claim_values_are_json_escaped),
        cmocka_unit_test(non_utf8_claim_is_refused),
        cmocka_unit_test(small_buffer_is_refused_whole),
        cmocka_unit_test(bad_arguments_are_refused),
        cmocka_unit_test(thumbprint_matches_rfc8037_example),
        cmocka_unit_test(jwks_publishes_public_okp_keys_only),
        cmocka_unit_test(token_kid_selects_its_key_in_the_jwks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
