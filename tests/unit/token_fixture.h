/*
 * Test fixture for the token tests: keys generated with OpenSSL at run
 * time, their public JWKs, tokens signed in-test from header and payload
 * JSON written by the test, and an identity configuration to verify them
 * against.  Header-only (static functions) so each test binary stays one
 * file.
 */
#ifndef TREATY_TESTS_TOKEN_FIXTURE_H
#define TREATY_TESTS_TOKEN_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/b64url.h"
#include "core/config.h"

/* Not every test uses every helper. */
#define FX static __attribute__((unused))

#define FX_NOW 1700000000LL
#define FX_ISS "https://idp.example.com/"
#define FX_AUD "https://gw.example.com"
#define FX_HMAC_SECRET "0123456789abcdef0123456789abcdef-hs256"

FX EVP_PKEY *
fx_check(EVP_PKEY *k)
{
    if (!k)
        abort();
    return k;
}

FX EVP_PKEY *
fx_gen_ec(void)
{
    return fx_check(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
}

FX EVP_PKEY *
fx_gen_rsa(size_t bits)
{
    return fx_check(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits));
}

FX EVP_PKEY *
fx_gen_ed25519(void)
{
    return fx_check(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
}

FX char *
fx_b64(const uint8_t *b, size_t n)
{
    size_t cap = tr_b64url_encoded_len(n) + 1, len;
    char *s = malloc(cap);

    if (!s || tr_b64url_encode(b, n, s, cap, &len) != 0)
        abort();
    return s;
}

FX char *
fx_bn_b64(EVP_PKEY *k, const char *name)
{
    BIGNUM *bn = NULL;
    uint8_t buf[1024];
    int n;

    if (EVP_PKEY_get_bn_param(k, name, &bn) != 1)
        abort();
    n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return fx_b64(buf, (size_t)n);
}

/* The public JWK of k as a JSON object text; alg may be NULL. */
FX char *
fx_jwk(EVP_PKEY *k, const char *kid, const char *alg)
{
    char *out = malloc(4096), *a, *b;
    char extra[256] = "";
    uint8_t pt[65];
    size_t n = sizeof(pt);

    if (kid)
        snprintf(extra, sizeof(extra), ",\"kid\":\"%s\"", kid);
    if (alg)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
                 ",\"alg\":\"%s\"", alg);
    if (EVP_PKEY_is_a(k, "EC")) {
        if (EVP_PKEY_get_octet_string_param(k,
                OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &n) != 1
            || n != 65)
            abort();
        a = fx_b64(pt + 1, 32);
        b = fx_b64(pt + 33, 32);
        snprintf(out, 4096, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
                 "\"y\":\"%s\"%s}", a, b, extra);
    } else if (EVP_PKEY_is_a(k, "RSA")) {
        a = fx_bn_b64(k, OSSL_PKEY_PARAM_RSA_N);
        b = fx_bn_b64(k, OSSL_PKEY_PARAM_RSA_E);
        snprintf(out, 4096, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}",
                 a, b, extra);
    } else {
        n = 32;
        if (EVP_PKEY_get_raw_public_key(k, pt, &n) != 1)
            abort();
        a = fx_b64(pt, n);
        b = NULL;
        snprintf(out, 4096, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                 "\"x\":\"%s\"%s}", a, extra);
    }
    free(a);
    free(b);
    return out;
}

/* Signs header.payload; alg picks the scheme.  For "HS256" secret is the
 * HMAC key; der=1 leaves an ES256 signature in DER (an attack). */
FX char *
fx_sign_ex(const char *alg, EVP_PKEY *k, const uint8_t *secret,
           size_t secret_len, const char *header, const char *payload,
           int der)
{
    char *h = fx_b64((const uint8_t *)header, strlen(header));
    char *p = fx_b64((const uint8_t *)payload, strlen(payload));
    size_t in_len = strlen(h) + 1 + strlen(p), sig_len = 1024;
    char *input = malloc(in_len + 1), *s, *tok;
    uint8_t sig[1024];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;

    snprintf(input, in_len + 1, "%s.%s", h, p);
    if (!strcmp(alg, "HS256")) {
        EVP_PKEY *mk = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL,
                                                    secret, secret_len);

        if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, mk) != 1 ||
            EVP_DigestSign(ctx, sig, &sig_len, (uint8_t *)input,
                           in_len) != 1)
            abort();
        EVP_PKEY_free(mk);
    } else {
        const EVP_MD *md = strcmp(alg, "EdDSA") ? EVP_sha256() : NULL;

        if (EVP_DigestSignInit(ctx, &pctx, md, NULL, k) != 1)
            abort();
        if (!strcmp(alg, "PS256") &&
            (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
             || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                 RSA_PSS_SALTLEN_DIGEST) != 1))
            abort();
        if (EVP_DigestSign(ctx, sig, &sig_len, (uint8_t *)input,
                           in_len) != 1)
            abort();
        if (!strcmp(alg, "ES256") && !der) {
            const uint8_t *q = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);

            if (!es ||
                BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) != 32 ||
                BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) != 32)
                abort();
            ECDSA_SIG_free(es);
            sig_len = 64;
        }
    }
    EVP_MD_CTX_free(ctx);
    s = fx_b64(sig, sig_len);
    tok = malloc(in_len + strlen(s) + 2);
    snprintf(tok, in_len + strlen(s) + 2, "%s.%s", input, s);
    free(h);
    free(p);
    free(input);
    free(s);
    return tok;
}

FX char *
fx_sign(const char *alg, EVP_PKEY *k, const char *header,
        const char *payload)
{
    return fx_sign_ex(alg, k, (const uint8_t *)FX_HMAC_SECRET,
                      strlen(FX_HMAC_SECRET), header, payload, 0);
}

/* Token from raw part texts, no signing: for structural attacks. */
FX char *
fx_raw(const char *header, const char *payload, const char *sig_b64)
{
    char *h = fx_b64((const uint8_t *)header, strlen(header));
    char *p = fx_b64((const uint8_t *)payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + strlen(sig_b64) + 3;
    char *t = malloc(n);

    snprintf(t, n, "%s.%s.%s", h, p, sig_b64);
    free(h);
    free(p);
    return t;
}

/* A standard payload: iss, aud, sub alice, exp FX_NOW+300, plus extra
 * members (a JSON fragment starting with ',' or ""). */
FX char *
fx_payload(const char *extra)
{
    char *s = malloc(8192);

    snprintf(s, 8192, "{\"iss\":\"" FX_ISS "\",\"aud\":\"" FX_AUD "\","
             "\"sub\":\"alice\",\"exp\":%lld%s}", FX_NOW + 300, extra);
    return s;
}

FX char *fx_algs_all[] = { "ES256", "RS256", "PS256", "EdDSA",
                               "HS256" };
FX char *fx_auds[] = { FX_AUD };

/* One issuer "corp" allowing algs (names), leeway 60. */
FX void
fx_issuer(tr_issuer_cfg *c, char **algs, size_t n_algs)
{
    memset(c, 0, sizeof(*c));
    c->name = "corp";
    c->issuer = FX_ISS;
    c->audiences.items = fx_auds;
    c->audiences.n = 1;
    c->algorithms.items = algs;
    c->algorithms.n = n_algs;
    c->jwks_file = "(in memory)";
    for (size_t i = 0; i < n_algs; i++)
        if (!strcmp(algs[i], "HS256"))
            c->hs256_secret_file = "(in memory)";
    c->leeway_s = 60;
}

FX void
fx_identity_cfg(tr_identity_cfg *cfg, tr_issuer_cfg *issuers, size_t n)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->issuers = issuers;
    cfg->n_issuers = n;
    cfg->token_cache_entries = 64;
    cfg->negative_cache_entries = 64;
    cfg->negative_cache_s = 10;
    cfg->cold_verify_per_s = 0;
    cfg->max_token_bytes = 8192;
}

#endif
