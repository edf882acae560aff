#include "core/jwks.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "core/b64url.h"

#define MAX_KEYS 256
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define RSA_MAX_BYTES (RSA_MAX_BITS / 8)

struct tr_keyset {
    atomic_uint refs;
    size_t n;
    size_t skipped;
    bool has_dev;
    uint8_t fingerprint[32];
    tr_jwk keys[];
};

/* What parse_key concluded about one JWK. */
enum { KEY_ERROR = -1, KEY_SKIPPED = 0, KEY_OK = 1 };

static const struct {
    const char *name;
    tr_jws_alg alg;
    tr_key_type kty;
} algs[] = {
    { "ES256", TR_JWS_ES256, TR_KTY_EC },
    { "RS256", TR_JWS_RS256, TR_KTY_RSA },
    { "PS256", TR_JWS_PS256, TR_KTY_RSA },
    { "EdDSA", TR_JWS_EDDSA, TR_KTY_OKP },
    { "HS256", TR_JWS_HS256, TR_KTY_OCT },
};

tr_jws_alg
tr_jws_alg_from_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strlen(algs[i].name) == len && !memcmp(algs[i].name, name, len))
            return algs[i].alg;
    return TR_JWS_NONE;
}

const char *
tr_jws_alg_name(tr_jws_alg alg)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (algs[i].alg == alg)
            return algs[i].name;
    return "none";
}

tr_key_type
tr_jws_alg_kty(tr_jws_alg alg)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (algs[i].alg == alg)
            return algs[i].kty;
    return TR_KTY_OCT;
}

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

static void
jwk_clear(tr_jwk *k)
{
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    memset(k, 0, sizeof(*k));
}

/* Decodes the base64url string member `name` into buf (exactly `want`
 * bytes when want != 0, else up to cap).  -1 when absent or invalid. */
static int
member_bytes(json_t *obj, const char *name, uint8_t *buf, size_t cap,
             size_t want, size_t *len)
{
    json_t *v = json_object_get(obj, name);

    if (!json_is_string(v))
        return -1;
    if (tr_b64url_decode(json_string_value(v), json_string_length(v), buf,
                         cap, len) != 0)
        return -1;
    if (want && *len != want)
        return -1;
    return 0;
}

/* Builds a public key from OSSL_PARAMs and checks it (for EC: the point
 * lies on the curve). */
static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    EVP_PKEY *pkey = NULL;

    if (!params)
        return NULL;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *
ec_p256_key(json_t *obj)
{
    uint8_t pt[65], *x = pt + 1, *y = pt + 33;
    size_t len;
    OSSL_PARAM_BLD *bld;
    EVP_PKEY *pkey = NULL;

    if (member_bytes(obj, "x", x, 32, 32, &len) != 0 ||
        member_bytes(obj, "y", y, 32, 32, &len) != 0)
        return NULL;
    pt[0] = 0x04; /* uncompressed point: 04 || x || y */
    bld = OSSL_PARAM_BLD_new();
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        "P-256", 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                         sizeof(pt)) == 1)
        pkey = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static EVP_PKEY *
rsa_key(json_t *obj)
{
    uint8_t nbuf[RSA_MAX_BYTES + 1], ebuf[16];
    size_t nlen, elen;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (member_bytes(obj, "n", nbuf, sizeof(nbuf), 0, &nlen) != 0 ||
        member_bytes(obj, "e", ebuf, sizeof(ebuf), 0, &elen) != 0 ||
        nlen == 0 || elen == 0)
        return NULL;
    n = BN_bin2bn(nbuf, (int)nlen, NULL);
    e = BN_bin2bn(ebuf, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (n && e && bld &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
        pkey = pkey_fromdata("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *
ed25519_key(json_t *obj)
{
    uint8_t x[32];
    size_t len;

    if (member_bytes(obj, "x", x, sizeof(x), 32, &len) != 0)
        return NULL;
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, len);
}

static int
thumb_pkey(tr_jwk *k)
{
    int len = i2d_PUBKEY(k->pkey, NULL);
    unsigned char *der, *p;

    if (len <= 0 || !(der = malloc((size_t)len)))
        return -1;
    p = der;
    if (i2d_PUBKEY(k->pkey, &p) != len) {
        free(der);
        return -1;
    }
    SHA256(der, (size_t)len, k->thumb);
    free(der);
    return 0;
}

/* Optional string member: 0 absent, 1 present (in *out), -1 wrong type. */
static int
opt_string(json_t *obj, const char *name, const char **out)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 1;
}

static const char *const private_members[] = {
    "d", "p", "q", "dp", "dq", "qi", "oth", "k",
};

/* "use" and "key_ops" (RFC 7517 §4.2, §4.3): is this key for verifying? */
static int
meant_for_verify(json_t *obj, size_t i, char *err, size_t errlen)
{
    const char *use;
    json_t *ops = json_object_get(obj, "key_ops"), *op;
    size_t j;
    bool verify = false;

    if (opt_string(obj, "use", &use) < 0) {
        errf(err, errlen, "keys[%zu]: \"use\" is not a string", i);
        return KEY_ERROR;
    }
    if (use && strcmp(use, "sig") != 0)
        return KEY_SKIPPED;
    if (!ops)
        return KEY_OK;
    if (!json_is_array(ops)) {
        errf(err, errlen, "keys[%zu]: \"key_ops\" is not an array", i);
        return KEY_ERROR;
    }
    json_array_foreach(ops, j, op) {
        if (!json_is_string(op)) {
            errf(err, errlen, "keys[%zu]: \"key_ops\" holds a non-string",
                 i);
            return KEY_ERROR;
        }
        if (!strcmp(json_string_value(op), "verify"))
            verify = true;
    }
    return verify ? KEY_OK : KEY_SKIPPED;
}

static int
parse_key(json_t *obj, size_t i, tr_jwk *k, char *err, size_t errlen)
{
    const char *kty, *kid, *alg, *crv;
    int rc;

    if (!json_is_object(obj)) {
        errf(err, errlen, "keys[%zu] is not an object", i);
        return KEY_ERROR;
    }
    for (size_t j = 0; j < sizeof(private_members) / sizeof(char *); j++) {
        if (json_object_get(obj, private_members[j])) {
            errf(err, errlen,
                 "keys[%zu] holds private key material (\"%s\"): a "
                 "verification key set must hold public keys only",
                 i, private_members[j]);
            return KEY_ERROR;
        }
    }
    if (opt_string(obj, "kty", &kty) != 1) {
        errf(err, errlen, "keys[%zu]: \"kty\" missing or not a string", i);
        return KEY_ERROR;
    }
    if (opt_string(obj, "kid", &kid) < 0 || opt_string(obj, "alg", &alg) < 0
        || opt_string(obj, "crv", &crv) < 0) {
        errf(err, errlen, "keys[%zu]: kid, alg or crv is not a string", i);
        return KEY_ERROR;
    }
    rc = meant_for_verify(obj, i, err, errlen);
    if (rc != KEY_OK)
        return rc;
    if (!strcmp(kty, "oct")) {
        errf(err, errlen,
             "keys[%zu] is a symmetric (\"oct\") key: HS256 secrets come "
             "from hs256_secret_file, never from a JWKS", i);
        return KEY_ERROR;
    }
    k->alg = alg ? tr_jws_alg_from_name(alg, strlen(alg)) : TR_JWS_NONE;
    if (alg && k->alg == TR_JWS_NONE)
        return KEY_SKIPPED; /* for an algorithm treaty does not verify */

    if (!strcmp(kty, "EC")) {
        if (!crv || strcmp(crv, "P-256") != 0)
            return KEY_SKIPPED;
        k->kty = TR_KTY_EC;
        k->pkey = ec_p256_key(obj);
    } else if (!strcmp(kty, "RSA")) {
        k->kty = TR_KTY_RSA;
        k->pkey = rsa_key(obj);
    } else if (!strcmp(kty, "OKP")) {
        if (!crv || strcmp(crv, "Ed25519") != 0)
            return KEY_SKIPPED;
        k->kty = TR_KTY_OKP;
        k->pkey = ed25519_key(obj);
    } else {
        return KEY_SKIPPED;
    }
    if (!k->pkey) {
        errf(err, errlen, "keys[%zu]%s%s: invalid %s public key", i,
             kid ? " kid " : "", kid ? kid : "", kty);
        return KEY_ERROR;
    }
    if (k->alg != TR_JWS_NONE && tr_jws_alg_kty(k->alg) != k->kty) {
        errf(err, errlen, "keys[%zu]: alg %s does not fit kty %s", i, alg,
             kty);
        return KEY_ERROR;
    }
    k->bits = EVP_PKEY_get_bits(k->pkey);
    if (k->kty == TR_KTY_RSA &&
        (k->bits < RSA_MIN_BITS || k->bits > RSA_MAX_BITS))
        return KEY_SKIPPED;
    if (kid && !(k->kid = strdup(kid))) {
        errf(err, errlen, "out of memory");
        return KEY_ERROR;
    }
    if (thumb_pkey(k) != 0) {
        errf(err, errlen, "keys[%zu]: cannot encode the public key", i);
        return KEY_ERROR;
    }
    return KEY_OK;
}

static bool
same_kid(const tr_jwk *a, const tr_jwk *b)
{
    return a->kid && b->kid && !strcmp(a->kid, b->kid);
}

/* Fills the set-wide facts once all keys are in. */
static int
finish_set(tr_keyset *ks)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    int rc = -1;

    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t i = 0; i < ks->n; i++) {
        const tr_jwk *k = &ks->keys[i];
        const char *kid = k->kid ? k->kid : "";

        /* The kid with its NUL, so "ab"+"c" differs from "a"+"bc". */
        if (EVP_DigestUpdate(md, kid, strlen(kid) + 1) != 1 ||
            EVP_DigestUpdate(md, k->thumb, sizeof(k->thumb)) != 1)
            goto out;
        if (k->kid && !strncmp(k->kid, TR_DEV_KID_PREFIX,
                               strlen(TR_DEV_KID_PREFIX)))
            ks->has_dev = true;
    }
    if (EVP_DigestFinal_ex(md, ks->fingerprint, &len) == 1)
        rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

tr_keyset *
tr_keyset_parse(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc, *keys, *obj;
    tr_keyset *ks = NULL;
    size_t i, n;

    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        errf(err, errlen, "JWKS: %s (line %d)", je.text, je.line);
        return NULL;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_object(doc) || !json_is_array(keys)) {
        errf(err, errlen, "JWKS: not an object with a \"keys\" array");
        goto fail;
    }
    n = json_array_size(keys);
    if (n > MAX_KEYS) {
        errf(err, errlen, "JWKS: %zu keys, more than %d", n, MAX_KEYS);
        goto fail;
    }
    ks = calloc(1, sizeof(*ks) + n * sizeof(tr_jwk));
    if (!ks) {
        errf(err, errlen, "out of memory");
        goto fail;
    }
    atomic_init(&ks->refs, 1);
    json_array_foreach(keys, i, obj) {
        tr_jwk *k = &ks->keys[ks->n];
        int rc = parse_key(obj, i, k, err, errlen);

        if (rc == KEY_ERROR) {
            jwk_clear(k);
            goto fail;
        }
        if (rc == KEY_SKIPPED) {
            jwk_clear(k);
            ks->skipped++;
            continue;
        }
        for (size_t j = 0; j < ks->n; j++) {
            if (same_kid(&ks->keys[j], k) && ks->keys[j].kty == k->kty) {
                errf(err, errlen, "JWKS: two keys of one type with kid %s",
                     k->kid);
                jwk_clear(k);
                goto fail;
            }
        }
        ks->n++;
    }
    if (finish_set(ks) != 0) {
        errf(err, errlen, "JWKS: cannot fingerprint the key set");
        goto fail;
    }
    json_decref(doc);
    return ks;
fail:
    tr_keyset_unref(ks);
    json_decref(doc);
    return NULL;
}

tr_keyset *
tr_keyset_new_hmac(const uint8_t *secret, size_t len, char *err,
                   size_t errlen)
{
    tr_keyset *ks;
    tr_jwk *k;

    if (len < TR_HMAC_MIN_SECRET) {
        errf(err, errlen, "HS256 secret is %zu bytes; at least %d needed",
             len, TR_HMAC_MIN_SECRET);
        return NULL;
    }
    ks = calloc(1, sizeof(*ks) + sizeof(tr_jwk));
    if (!ks || !(ks->keys[0].secret = malloc(len))) {
        free(ks);
        errf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&ks->refs, 1);
    k = &ks->keys[0];
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    k->kty = TR_KTY_OCT;
    k->alg = TR_JWS_HS256;
    k->bits = (int)(len * 8);
    SHA256(secret, len, k->thumb);
    ks->n = 1;
    if (finish_set(ks) != 0) {
        tr_keyset_unref(ks);
        errf(err, errlen, "cannot fingerprint the key set");
        return NULL;
    }
    return ks;
}

void
tr_keyset_ref(tr_keyset *ks)
{
    if (ks)
        atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
}

void
tr_keyset_unref(tr_keyset *ks)
{
    if (!ks ||
        atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++)
        jwk_clear(&ks->keys[i]);
    free(ks);
}

size_t
tr_keyset_count(const tr_keyset *ks)
{
    return ks ? ks->n : 0;
}

const tr_jwk *
tr_keyset_key(const tr_keyset *ks, size_t i)
{
    return ks && i < ks->n ? &ks->keys[i] : NULL;
}

size_t
tr_keyset_skipped(const tr_keyset *ks)
{
    return ks ? ks->skipped : 0;
}

const uint8_t *
tr_keyset_fingerprint(const tr_keyset *ks)
{
    return ks->fingerprint;
}

bool
tr_keyset_has_dev_key(const tr_keyset *ks)
{
    return ks && ks->has_dev;
}

bool
tr_keyset_contains(const tr_keyset *ks, const uint8_t thumb[32])
{
    for (size_t i = 0; ks && i < ks->n; i++)
        if (!memcmp(ks->keys[i].thumb, thumb, 32))
            return true;
    return false;
}

static bool
fits(const tr_jwk *k, tr_jws_alg alg)
{
    return k->kty == tr_jws_alg_kty(alg) &&
           (k->alg == TR_JWS_NONE || k->alg == alg);
}

const tr_jwk *
tr_keyset_select(const tr_keyset *ks, tr_jws_alg alg, const char *kid,
                 size_t kid_len, bool *kid_seen)
{
    const tr_jwk *found = NULL;
    size_t n_fit = 0;

    *kid_seen = false;
    for (size_t i = 0; ks && i < ks->n; i++) {
        const tr_jwk *k = &ks->keys[i];

        if (kid) {
            if (!k->kid || strlen(k->kid) != kid_len ||
                memcmp(k->kid, kid, kid_len) != 0)
                continue;
            *kid_seen = true;
            if (fits(k, alg))
                return k;
        } else if (fits(k, alg)) {
            found = k;
            n_fit++;
        }
    }
    /* No kid: only an unambiguous key will do; trying each key in turn
     * would turn one forged token into several verification attempts. */
    return n_fit == 1 ? found : NULL;
}
