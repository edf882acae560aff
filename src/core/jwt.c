#include "core/jwt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "core/b64url.h"

#define DEFAULT_MAX_TOKEN 8192

/* NumericDates beyond 2^53 seconds are refused: no real token needs them
 * and it keeps exp + leeway far from overflow. */
#define MAX_NUMERIC_DATE 9007199254740992LL

struct tr_jwt_crypto {
    EVP_MD *sha256;
    EVP_MAC *hmac;
};

tr_jwt_crypto *
tr_jwt_crypto_new(void)
{
    tr_jwt_crypto *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    c->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!c->sha256 || !c->hmac) {
        tr_jwt_crypto_free(c);
        return NULL;
    }
    return c;
}

void
tr_jwt_crypto_free(tr_jwt_crypto *c)
{
    if (!c)
        return;
    EVP_MD_free(c->sha256);
    EVP_MAC_free(c->hmac);
    free(c);
}

uint32_t
tr_jwt_alg_bits(const tr_strlist *names, const char **bad)
{
    uint32_t bits = 0;

    *bad = NULL;
    for (size_t i = 0; i < names->n; i++) {
        const char *s = names->items[i];
        tr_jws_alg a = tr_jws_alg_from_name(s, strlen(s));

        if (a == TR_JWS_NONE) {
            *bad = s;
            return 0;
        }
        bits |= (uint32_t)a;
    }
    return bits;
}

void
tr_jwt_clear(tr_jwt *t)
{
    json_decref(t->payload);
    tr_keyset_unref(t->keyset);
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

/* Decodes one part and parses it as a JSON object. */
static tr_token_status
decode_json(const char *part, size_t len, uint8_t *scratch, json_t **out)
{
    size_t n;
    json_error_t je;
    json_t *v;

    *out = NULL;
    if (len == 0 || tr_b64url_decode(part, len, scratch,
                                     tr_b64url_decoded_len(len), &n) != 0)
        return TR_TOKEN_MALFORMED;
    v = json_loadb((const char *)scratch, n, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        return json_error_code(&je) == json_error_duplicate_key
                   ? TR_TOKEN_DUPLICATE_MEMBER
                   : TR_TOKEN_MALFORMED;
    if (!json_is_object(v)) {
        json_decref(v);
        return TR_TOKEN_MALFORMED;
    }
    *out = v;
    return TR_TOKEN_OK;
}

/* RFC 9068 access tokens say at+jwt; plain JWT is what most issuers
 * send.  Media types compare case-insensitively and may carry the
 * "application/" prefix (RFC 7515 §4.1.9). */
static bool
typ_allowed(const char *typ)
{
    static const char *const ok[] = {
        "at+jwt", "application/at+jwt", "JWT", "application/jwt",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!strcasecmp(typ, ok[i]))
            return true;
    return false;
}

static tr_token_status
check_header(json_t *h, tr_jws_alg *alg, const char **kid, size_t *kid_len)
{
    static const char *const embedded[] = { "jwk", "jku", "x5u", "x5c" };
    json_t *a = json_object_get(h, "alg"), *typ, *k;

    /* A critical extension we would have to understand; we understand
     * none, so any crit refuses the token (RFC 7515 §4.1.11). */
    if (json_object_get(h, "crit"))
        return TR_TOKEN_CRIT;
    for (size_t i = 0; i < sizeof(embedded) / sizeof(embedded[0]); i++)
        if (json_object_get(h, embedded[i]))
            return TR_TOKEN_EMBEDDED_KEY;
    /* "enc" marks a JWE, which is not what treaty accepts. */
    if (json_object_get(h, "enc"))
        return TR_TOKEN_MALFORMED;
    if (!json_is_string(a))
        return TR_TOKEN_ALG_NOT_ALLOWED;
    /* Exact names only, so "none" is refused in every spelling. */
    *alg = tr_jws_alg_from_name(json_string_value(a), json_string_length(a));
    if (*alg == TR_JWS_NONE)
        return TR_TOKEN_ALG_NOT_ALLOWED;
    typ = json_object_get(h, "typ");
    if (typ && (!json_is_string(typ) || !typ_allowed(json_string_value(typ))))
        return TR_TOKEN_TYP_NOT_ALLOWED;
    k = json_object_get(h, "kid");
    *kid = NULL;
    *kid_len = 0;
    if (k) {
        if (!json_is_string(k))
            return TR_TOKEN_MALFORMED;
        *kid = json_string_value(k);
        *kid_len = json_string_length(k);
    }
    return TR_TOKEN_OK;
}

static tr_token_status
select_issuer(const tr_jwt_issuer *issuers, size_t n, json_t *payload,
              size_t *idx)
{
    json_t *iss = json_object_get(payload, "iss");

    if (!json_is_string(iss))
        return TR_TOKEN_UNKNOWN_ISSUER;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(issuers[i].cfg->issuer, json_string_value(iss))) {
            *idx = i;
            return TR_TOKEN_OK;
        }
    }
    return TR_TOKEN_UNKNOWN_ISSUER;
}

tr_token_status
tr_jwt_parse(const tr_jwt_issuer *issuers, size_t n, size_t max_bytes,
             const char *token, size_t len, tr_jwt *out)
{
    const char *d1, *d2, *s;
    size_t hlen, plen, slen, kid_len;
    const char *kid;
    json_t *header = NULL;
    const tr_jwt_issuer *iss;
    tr_keyset *ks;
    bool kid_seen;
    tr_token_status st;

    memset(out, 0, sizeof(*out));
    if (len > (max_bytes ? max_bytes : DEFAULT_MAX_TOKEN))
        return TR_TOKEN_TOO_LARGE;
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2)
        return TR_TOKEN_MALFORMED;
    s = d2 + 1;
    hlen = (size_t)(d1 - token);
    plen = (size_t)(d2 - d1 - 1);
    slen = len - (size_t)(s - token);
    if (memchr(s, '.', slen))
        return TR_TOKEN_MALFORMED; /* JWE or junk: exactly three parts */

    /* One scratch buffer for header, payload and signature. */
    out->buf = malloc(tr_b64url_decoded_len(len) + 3);
    if (!out->buf)
        return TR_TOKEN_INTERNAL;

    st = decode_json(token, hlen, out->buf, &header);
    if (st == TR_TOKEN_OK)
        st = check_header(header, &out->alg, &kid, &kid_len);
    if (st == TR_TOKEN_OK)
        st = decode_json(d1 + 1, plen, out->buf, &out->payload);
    if (st == TR_TOKEN_OK)
        st = select_issuer(issuers, n, out->payload, &out->issuer);
    if (st != TR_TOKEN_OK)
        goto fail;

    iss = &issuers[out->issuer];
    if (!(iss->algs & (uint32_t)out->alg)) {
        st = TR_TOKEN_ALG_NOT_ALLOWED;
        goto fail;
    }
    /* HS256 verifies only with the issuer's secret file, never with a
     * JWKS key: the RS256/HS256 confusion has nowhere to start. */
    ks = out->alg == TR_JWS_HS256 ? iss->hmac : iss->keys;
    out->key = tr_keyset_select(ks, out->alg, kid, kid_len, &kid_seen);
    if (!out->key) {
        st = kid_seen ? TR_TOKEN_KEY_MISMATCH : TR_TOKEN_UNKNOWN_KID;
        goto fail;
    }
    tr_keyset_ref(ks);
    out->keyset = ks;

    out->sig = out->buf; /* header and payload are parsed: reuse */
    if (tr_b64url_decode(s, slen, out->sig, tr_b64url_decoded_len(len),
                         &out->sig_len) != 0) {
        st = TR_TOKEN_MALFORMED;
        goto fail;
    }
    out->signing_input = token;
    out->signing_input_len = (size_t)(d2 - token);
    json_decref(header);
    return TR_TOKEN_OK;
fail:
    json_decref(header);
    {
        /* The issuer of an unknown kid outlives the clear: the caller
         * may ask that issuer's key source for fresh keys. */
        size_t issuer = out->issuer;

        tr_jwt_clear(out);
        if (st == TR_TOKEN_UNKNOWN_KID)
            out->issuer = issuer;
    }
    return st;
}

/* JWS carries ECDSA signatures as fixed-width r || s (RFC 7518 §3.4);
 * OpenSSL wants DER. */
static int
es256_to_der(const uint8_t *raw, uint8_t *der, size_t cap, size_t *len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    unsigned char *p = der;
    int n = -1;

    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return -1;
    }
    if (i2d_ECDSA_SIG(sig, NULL) <= (int)cap)
        n = i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig); /* frees r and s */
    if (n <= 0)
        return -1;
    *len = (size_t)n;
    return 0;
}

static tr_token_status
verify_hs256(const tr_jwt_crypto *c, const tr_jwt *t)
{
    OSSL_PARAM params[2];
    uint8_t mac[32];
    size_t mac_len = 0;
    EVP_MAC_CTX *ctx;
    int ok;

    if (t->sig_len != sizeof(mac))
        return TR_TOKEN_BAD_SIGNATURE;
    ctx = EVP_MAC_CTX_new(c->hmac);
    if (!ctx)
        return TR_TOKEN_INTERNAL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA2-256", 0);
    params[1] = OSSL_PARAM_construct_end();
    ok = EVP_MAC_init(ctx, t->key->secret, t->key->secret_len, params) == 1
         && EVP_MAC_update(ctx, (const unsigned char *)t->signing_input,
                           t->signing_input_len) == 1
         && EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) == 1
         && mac_len == sizeof(mac);
    EVP_MAC_CTX_free(ctx);
    if (!ok)
        return TR_TOKEN_INTERNAL;
    return CRYPTO_memcmp(mac, t->sig, sizeof(mac)) == 0
               ? TR_TOKEN_OK
               : TR_TOKEN_BAD_SIGNATURE;
}

tr_token_status
tr_jwt_verify_signature(const tr_jwt_crypto *c, const tr_jwt *t)
{
    EVP_MD_CTX *mctx;
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = c->sha256;
    uint8_t der[80];
    const uint8_t *sig = t->sig;
    size_t sig_len = t->sig_len;
    int rc;

    switch (t->alg) {
    case TR_JWS_HS256:
        return verify_hs256(c, t);
    case TR_JWS_ES256:
        /* A DER signature, a truncated or an extended one: all refused
         * here, before OpenSSL sees them. */
        if (t->sig_len != 64 || es256_to_der(t->sig, der, sizeof(der),
                                             &sig_len) != 0)
            return TR_TOKEN_BAD_SIGNATURE;
        sig = der;
        break;
    case TR_JWS_RS256:
    case TR_JWS_PS256:
        /* RFC 8017 §8.2.2: exactly as long as the modulus. */
        if (t->sig_len != (size_t)EVP_PKEY_get_size(t->key->pkey))
            return TR_TOKEN_BAD_SIGNATURE;
        break;
    case TR_JWS_EDDSA:
        if (t->sig_len != 64)
            return TR_TOKEN_BAD_SIGNATURE;
        md = NULL; /* Ed25519 hashes internally */
        break;
    default:
        return TR_TOKEN_ALG_NOT_ALLOWED;
    }

    mctx = EVP_MD_CTX_new();
    if (!mctx)
        return TR_TOKEN_INTERNAL;
    rc = EVP_DigestVerifyInit(mctx, &pctx, md, NULL, t->key->pkey);
    if (rc == 1 && t->alg == TR_JWS_PS256) {
        /* RFC 7518 §3.5: MGF1 with SHA-256, salt as long as the hash. */
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, c->sha256) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
                != 1)
            rc = 0;
    }
    if (rc == 1)
        rc = EVP_DigestVerify(mctx, sig, sig_len,
                              (const unsigned char *)t->signing_input,
                              t->signing_input_len);
    EVP_MD_CTX_free(mctx);
    /* A failed verification leaves reasons on the thread's error queue;
     * they are not ours to report. */
    ERR_clear_error();
    return rc == 1 ? TR_TOKEN_OK : TR_TOKEN_BAD_SIGNATURE;
}

/* A NumericDate (RFC 7519 §2): a JSON number of seconds, possibly with a
 * fraction, which is dropped. */
static int
numeric_date(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);

        if (i > MAX_NUMERIC_DATE || i < -MAX_NUMERIC_DATE)
            return -1;
        *out = (int64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);

        if (!(d <= (double)MAX_NUMERIC_DATE &&
              d >= -(double)MAX_NUMERIC_DATE))
            return -1;
        *out = (int64_t)floor(d);
        return 0;
    }
    return -1;
}

tr_token_status
tr_jwt_check_times(int64_t exp, int64_t nbf, uint32_t leeway_s, int64_t now)
{
    /* exp and nbf are within ±2^53, so neither sum overflows. */
    if (now >= exp + (int64_t)leeway_s)
        return TR_TOKEN_EXPIRED;
    if (now < nbf - (int64_t)leeway_s)
        return TR_TOKEN_NOT_YET_VALID;
    return TR_TOKEN_OK;
}

static bool
audience_ok(const tr_issuer_cfg *cfg, json_t *aud)
{
    json_t *v;
    size_t i;

    if (json_is_string(aud)) {
        for (size_t j = 0; j < cfg->audiences.n; j++)
            if (!strcmp(cfg->audiences.items[j], json_string_value(aud)))
                return true;
        return false;
    }
    if (!json_is_array(aud))
        return false;
    /* Every member must be a string; one of them must be ours. */
    json_array_foreach(aud, i, v)
        if (!json_is_string(v))
            return false;
    json_array_foreach(aud, i, v)
        if (audience_ok(cfg, v))
            return true;
    return false;
}

tr_token_status
tr_jwt_check_claims(const tr_jwt_issuer *iss, const tr_jwt *t, int64_t now,
                    int64_t *exp, int64_t *nbf)
{
    json_t *p = t->payload, *e = json_object_get(p, "exp");
    json_t *nb = json_object_get(p, "nbf"), *iat = json_object_get(p, "iat");
    json_t *sub = json_object_get(p, "sub");
    int64_t ignored;
    tr_token_status st;

    *nbf = 0;
    if (!e)
        return TR_TOKEN_MISSING_EXP;
    if (numeric_date(e, exp) != 0 || (nb && numeric_date(nb, nbf) != 0) ||
        (iat && numeric_date(iat, &ignored) != 0))
        return TR_TOKEN_BAD_TIME_CLAIM;
    st = tr_jwt_check_times(*exp, *nbf, iss->cfg->leeway_s, now);
    if (st != TR_TOKEN_OK)
        return st;
    if (!audience_ok(iss->cfg, json_object_get(p, "aud")))
        return TR_TOKEN_WRONG_AUDIENCE;
    if (!json_is_string(sub) || json_string_length(sub) == 0)
        return TR_TOKEN_BAD_SUB;
    return TR_TOKEN_OK;
}

tr_token_status
tr_jwt_verify(const tr_jwt_crypto *c, const tr_jwt_issuer *issuers,
              size_t n, size_t max_bytes, const char *token, size_t len,
              int64_t now, tr_jwt *out)
{
    int64_t exp, nbf;
    tr_token_status st = tr_jwt_parse(issuers, n, max_bytes, token, len,
                                      out);

    if (st == TR_TOKEN_OK)
        st = tr_jwt_verify_signature(c, out);
    if (st == TR_TOKEN_OK)
        st = tr_jwt_check_claims(&issuers[out->issuer], out, now, &exp,
                                 &nbf);
    if (st != TR_TOKEN_OK)
        tr_jwt_clear(out);
    return st;
}
