#include "core/txn_token.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/b64url.h"

#define ED25519_PUB 32
#define ED25519_SIG 64

static bool
is_ed25519(EVP_PKEY *pkey)
{
    return pkey != NULL && EVP_PKEY_is_a(pkey, "ED25519");
}

/* Sets key to a new value; a NULL value (jansson's answer to bad UTF-8
 * or no memory) clears *ok. */
static void
put(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        *ok = false;
}

static void
put_str(json_t *obj, const char *key, const char *value, bool *ok)
{
    put(obj, key, json_string(value), ok);
}

static void
push(json_t *arr, json_t *value, bool *ok)
{
    if (value == NULL || json_array_append_new(arr, value) != 0)
        *ok = false;
}

static bool
id_has_scope(const tr_identity *id, const char *scope)
{
    for (size_t i = 0; i < id->n_scopes; i++) {
        if (id->scopes[i] != NULL && strcmp(id->scopes[i], scope) == 0)
            return true;
    }
    return false;
}

/* The scope claim: the requested list filtered by what the inbound token
 * holds (the draft: never wider than the subject token), else the token's
 * own scopes.  Returned malloc'd, space separated. */
static char *
scope_value(const tr_identity *id, const tr_strlist *want)
{
    bool narrow = want != NULL && want->n > 0;
    size_t n = narrow ? want->n : id->n_scopes;
    size_t len = 1;
    char *s, *p;

    for (size_t i = 0; i < n; i++) {
        const char *v = narrow ? want->items[i] : id->scopes[i];

        if (v != NULL)
            len += strlen(v) + 1;
    }
    s = malloc(len);
    if (s == NULL)
        return NULL;
    p = s;
    for (size_t i = 0; i < n; i++) {
        const char *v = narrow ? want->items[i] : id->scopes[i];
        size_t vl;

        if (v == NULL || *v == '\0' || (narrow && !id_has_scope(id, v)))
            continue;
        vl = strlen(v);
        if (p != s)
            *p++ = ' ';
        memcpy(p, v, vl);
        p += vl;
    }
    *p = '\0';
    return s;
}

/* RFC 8693 §4.1: {"sub": current, "act": {"sub": previous, ...}}. */
static json_t *
act_claim(const tr_identity *id, bool *ok)
{
    json_t *inner = NULL;

    for (size_t i = id->chain_len; i-- > 0;) {
        json_t *a = json_object();

        if (a == NULL) {
            *ok = false;
            break;
        }
        put_str(a, "sub", id->chain[i], ok);
        if (inner != NULL)
            put(a, "act", inner, ok);
        inner = a;
    }
    return inner;
}

static json_t *
tctx_claim(const tr_identity *id, const tr_txn_token_req *req, bool *ok)
{
    json_t *t = json_object();
    json_t *chain = json_array();
    bool agent = id->cls == TR_CLASS_AGENT;

    if (t == NULL || chain == NULL) {
        json_decref(t);
        json_decref(chain);
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < id->chain_len; i++)
        push(chain, json_string(id->chain[i]), ok);
    /* A client-as-actor identity may carry its actor outside the chain. */
    if (agent && id->chain_len == 0 && id->actor != NULL)
        push(chain, json_string(id->actor), ok);

    if (id->issuer_name != NULL)
        put_str(t, "principal_issuer", id->issuer_name, ok);
    put_str(t, "actor", id->actor != NULL ? id->actor : id->sub, ok);
    put(t, "delegation_chain", chain, ok);
    put_str(t, "caller_class", agent ? "agent" : "human", ok);
    if (id->client_id != NULL)
        put_str(t, "client_id", id->client_id, ok);
    if (req->route != NULL)
        put_str(t, "route", req->route, ok);
    if (req->method != NULL)
        put_str(t, "method", req->method, ok);
    return t;
}

static json_t *
payload(const tr_txn_token_opts *o, const tr_txn_token_req *req, bool *ok)
{
    const tr_identity *id = req->id;
    uint32_t ttl = o->ttl_s ? o->ttl_s : TR_TXN_TOKEN_DEFAULT_TTL_S;
    json_t *p = json_object();
    char *scope;

    if (p == NULL) {
        *ok = false;
        return NULL;
    }
    put_str(p, "iss", o->issuer, ok);
    put_str(p, "req_wl", o->issuer, ok);
    put_str(p, "aud", o->audience, ok);
    put(p, "iat", json_integer(req->now), ok);
    put(p, "exp", json_integer(req->now + (json_int_t)ttl), ok);
    put_str(p, "txn", req->request_id, ok);
    put_str(p, "sub", id->sub, ok);
    scope = scope_value(id, req->scopes);
    if (scope == NULL)
        *ok = false;
    else
        put_str(p, "scope", scope, ok);
    free(scope);
    if (id->cls == TR_CLASS_AGENT && id->chain_len > 0)
        put(p, "act", act_claim(id, ok), ok);
    put(p, "tctx", tctx_claim(id, req, ok), ok);
    if (req->client_addr != NULL) {
        json_t *r = json_object();

        if (r != NULL)
            put_str(r, "req_ip", req->client_addr, ok);
        put(p, "rctx", r, ok);
    }
    return p;
}

/* Appends base64url(json) to out at *len. */
static int
append_b64(const char *text, char *out, size_t cap, size_t *len)
{
    size_t n = strlen(text), w;

    if (tr_b64url_encoded_len(n) + 1 > cap - *len)
        return TR_TXN_E_SPACE;
    if (tr_b64url_encode((const uint8_t *)text, n, out + *len, cap - *len,
                         &w) != 0)
        return TR_TXN_E_SPACE;
    *len += w;
    return TR_TXN_OK;
}

static int
sign(EVP_PKEY *pkey, const char *tbs, size_t len, uint8_t sig[ED25519_SIG])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t siglen = ED25519_SIG;
    int rc = TR_TXN_E_CRYPTO;

    if (ctx == NULL)
        return rc;
    /* Ed25519 is a one-shot signature: no digest, one call. */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
        EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)tbs, len) == 1 &&
        siglen == ED25519_SIG)
        rc = TR_TXN_OK;
    EVP_MD_CTX_free(ctx);
    return rc;
}

int
tr_txn_token_mint(const tr_txn_token_opts *opts, const tr_txn_key *key,
                  const tr_txn_token_req *req, char *out, size_t cap,
                  size_t *outlen)
{
    json_t *hdr = NULL, *body = NULL;
    char *htext = NULL, *btext = NULL;
    uint8_t sig[ED25519_SIG];
    size_t len = 0, w;
    bool ok = true;
    int rc;

    if (cap > 0)
        out[0] = '\0';
    if (opts == NULL || key == NULL || req == NULL || req->id == NULL ||
        opts->issuer == NULL || opts->audience == NULL ||
        req->request_id == NULL || req->id->sub == NULL ||
        key->kid[0] == '\0' || !is_ed25519(key->pkey))
        return TR_TXN_E_ARG;
    if (cap == 0)
        return TR_TXN_E_SPACE;

    hdr = json_object();
    if (hdr == NULL)
        ok = false;
    else {
        put_str(hdr, "alg", "EdDSA", &ok);
        put_str(hdr, "typ", TR_TXN_TOKEN_TYP, &ok);
        put_str(hdr, "kid", key->kid, &ok);
    }
    body = payload(opts, req, &ok);
    if (ok) {
        htext = json_dumps(hdr, JSON_COMPACT);
        btext = json_dumps(body, JSON_COMPACT);
    }
    rc = TR_TXN_E_JSON;
    if (htext == NULL || btext == NULL)
        goto out;

    if ((rc = append_b64(htext, out, cap, &len)) != TR_TXN_OK)
        goto out;
    rc = TR_TXN_E_SPACE;
    if (len + 2 > cap)
        goto out;
    out[len++] = '.';
    if ((rc = append_b64(btext, out, cap, &len)) != TR_TXN_OK)
        goto out;
    if ((rc = sign(key->pkey, out, len, sig)) != TR_TXN_OK)
        goto out;
    rc = TR_TXN_E_SPACE;
    if (len + 1 + tr_b64url_encoded_len(ED25519_SIG) + 1 > cap)
        goto out;
    out[len++] = '.';
    if (tr_b64url_encode(sig, sizeof sig, out + len, cap - len, &w) != 0)
        goto out;
    len += w;
    *outlen = len;
    rc = TR_TXN_OK;

out:
    if (rc != TR_TXN_OK)
        out[0] = '\0';
    free(htext);
    free(btext);
    json_decref(hdr);
    json_decref(body);
    return rc;
}

/* x: the raw 32-byte public key, base64url (RFC 8037 §2). */
static int
public_x(EVP_PKEY *pkey, char x[48])
{
    uint8_t raw[ED25519_PUB];
    size_t rawlen = sizeof raw, w;

    if (!is_ed25519(pkey))
        return TR_TXN_E_ARG;
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 ||
        rawlen != ED25519_PUB)
        return TR_TXN_E_CRYPTO;
    if (tr_b64url_encode(raw, rawlen, x, 48, &w) != 0)
        return TR_TXN_E_CRYPTO;
    return TR_TXN_OK;
}

int
tr_txn_key_thumbprint(EVP_PKEY *pkey, char kid[TR_TXN_KID_MAX])
{
    char x[48], canon[128];
    uint8_t h[32];
    unsigned hlen = 0;
    size_t w;
    int n, rc;

    kid[0] = '\0';
    if ((rc = public_x(pkey, x)) != TR_TXN_OK)
        return rc;
    /* RFC 7638 §3.2: required members only, sorted, no whitespace.  x is
     * base64url, so nothing in it needs JSON escaping. */
    n = snprintf(canon, sizeof canon,
                 "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    if (n < 0 || (size_t)n >= sizeof canon)
        return TR_TXN_E_CRYPTO;
    if (EVP_Digest(canon, (size_t)n, h, &hlen, EVP_sha256(), NULL) != 1 ||
        hlen != sizeof h)
        return TR_TXN_E_CRYPTO;
    if (tr_b64url_encode(h, sizeof h, kid, TR_TXN_KID_MAX, &w) != 0)
        return TR_TXN_E_CRYPTO;
    return TR_TXN_OK;
}

int
tr_txn_jwks(const tr_txn_key *keys, size_t n, char *out, size_t cap,
            size_t *outlen)
{
    json_t *doc = json_object();
    json_t *arr = json_array();
    char *text = NULL;
    bool ok = doc != NULL && arr != NULL;
    int rc = TR_TXN_OK;
    size_t len;

    if (cap > 0)
        out[0] = '\0';
    for (size_t i = 0; ok && i < n; i++) {
        json_t *k = json_object();
        char x[48];

        if (k == NULL) {
            ok = false;
            break;
        }
        rc = public_x(keys[i].pkey, x);
        put_str(k, "kty", "OKP", &ok);
        put_str(k, "crv", "Ed25519", &ok);
        put_str(k, "x", x, &ok);
        put_str(k, "kid", keys[i].kid, &ok);
        put_str(k, "use", "sig", &ok);
        put_str(k, "alg", "EdDSA", &ok);
        push(arr, k, &ok);
        if (rc != TR_TXN_OK)
            break;
    }
    if (rc != TR_TXN_OK)
        goto out;
    if (ok) {
        /* jansson takes the reference even when setting fails */
        ok = json_object_set_new(doc, "keys", arr) == 0;
        arr = NULL;
    }
    if (ok)
        text = json_dumps(doc, JSON_COMPACT);
    rc = TR_TXN_E_JSON;
    if (text == NULL)
        goto out;
    len = strlen(text);
    rc = TR_TXN_E_SPACE;
    if (len + 1 > cap)
        goto out;
    memcpy(out, text, len + 1);
    *outlen = len;
    rc = TR_TXN_OK;

out:
    free(text);
    json_decref(arr);
    json_decref(doc);
    return rc;
}
