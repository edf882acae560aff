/*
 * Verification keys: a JSON Web Key Set (RFC 7517) parsed once into
 * ready-to-use OpenSSL keys, plus the HS256 secret of an issuer.
 *
 * A tr_keyset is immutable after construction and reference counted with
 * atomic operations, so a JWKS fetcher thread can build a new set and hand
 * it to the thread that owns the verifier, which swaps it in
 * (tr_verifier_set_keys) while requests still verifying against the old set
 * keep their reference.  Building a set does no I/O: the caller reads the
 * bytes (src/config/keys_load.c, later a libcurl fetcher).
 */
#ifndef TREATY_CORE_JWKS_H
#define TREATY_CORE_JWKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

/* The JWS algorithms treaty verifies (RFC 7518, RFC 8037).  Values are
 * bits so an issuer's allow-list is one word. */
typedef enum {
    TR_JWS_NONE = 0,          /* unknown or not allowed */
    TR_JWS_ES256 = 1u << 0,   /* ECDSA P-256 SHA-256, raw r||s */
    TR_JWS_RS256 = 1u << 1,   /* RSASSA-PKCS1-v1_5 SHA-256 */
    TR_JWS_PS256 = 1u << 2,   /* RSASSA-PSS SHA-256, MGF1 SHA-256 */
    TR_JWS_EDDSA = 1u << 3,   /* Ed25519 */
    TR_JWS_HS256 = 1u << 4,   /* HMAC SHA-256, secret from a file */
} tr_jws_alg;

/* The algorithm named exactly (case-sensitive, as JWA names are); NONE for
 * anything else, "none" included. */
tr_jws_alg tr_jws_alg_from_name(const char *name, size_t len);
const char *tr_jws_alg_name(tr_jws_alg alg);

typedef enum {
    TR_KTY_EC,                /* P-256 only */
    TR_KTY_RSA,               /* 2048..8192 bits */
    TR_KTY_OKP,               /* Ed25519 only */
    TR_KTY_OCT                /* HS256 secret; never from a JWKS */
} tr_key_type;

/* The key type an algorithm needs. */
tr_key_type tr_jws_alg_kty(tr_jws_alg alg);

typedef struct {
    char *kid;                /* NULL when the key has none */
    tr_key_type kty;
    tr_jws_alg alg;           /* the JWK's "alg", NONE when absent */
    EVP_PKEY *pkey;           /* NULL for TR_KTY_OCT */
    uint8_t *secret;          /* TR_KTY_OCT only */
    size_t secret_len;
    int bits;
    /* SHA-256 of the SubjectPublicKeyInfo DER (of the secret for OCT):
     * tells whether a key survives a key set swap. */
    uint8_t thumb[32];
} tr_jwk;

typedef struct tr_keyset tr_keyset;

/* HS256 secrets shorter than this are refused (SPEC "Security defaults"). */
#define TR_HMAC_MIN_SECRET 32

/* Parses a JWKS document.  Duplicate JSON members are refused.  Keys
 * treaty cannot use are skipped and counted (tr_keyset_skipped): other
 * curves, Ed448, RSA under 2048 or over 8192 bits, "use" other than "sig",
 * "key_ops" without "verify", unknown "kty".  Refused outright, because
 * they mean secret material was published: a private member ("d", "p",
 * "q", "dp", "dq", "qi", "oth") or a symmetric ("oct") key.  Two keys with
 * the same kid and type are refused as ambiguous.  Returns a set holding
 * one reference, or NULL with a message in err. */
tr_keyset *tr_keyset_parse(const char *json, size_t len, char *err,
                           size_t errlen);

/* A set holding one HS256 secret (no kid), at least TR_HMAC_MIN_SECRET
 * bytes.  NULL with a message in err otherwise. */
tr_keyset *tr_keyset_new_hmac(const uint8_t *secret, size_t len, char *err,
                              size_t errlen);

void tr_keyset_ref(tr_keyset *ks);
void tr_keyset_unref(tr_keyset *ks);

size_t tr_keyset_count(const tr_keyset *ks);
const tr_jwk *tr_keyset_key(const tr_keyset *ks, size_t i);
size_t tr_keyset_skipped(const tr_keyset *ks);

/* SHA-256 over every key's kid and thumb, in order: equal fingerprints
 * mean a swap changes nothing. */
const uint8_t *tr_keyset_fingerprint(const tr_keyset *ks);

/* A key whose kid starts "treaty-dev-": the published development keys
 * under examples/dev-keys, which `treaty serve` refuses without --dev. */
#define TR_DEV_KID_PREFIX "treaty-dev-"
bool tr_keyset_has_dev_key(const tr_keyset *ks);

/* True when the key exists in the set (same kty and thumb). */
bool tr_keyset_contains(const tr_keyset *ks, const uint8_t thumb[32]);

/* Selects the key for a token signed with `alg`.  With a kid: the key
 * with that kid whose type fits alg (and whose own "alg", if any, is
 * alg).  Without a kid: the single key of the fitting type, only when the
 * set holds exactly one.  Returns NULL when nothing fits; *kid_seen tells
 * whether some key carried the kid (so the caller can tell an unknown kid
 * from a key of the wrong type). */
const tr_jwk *tr_keyset_select(const tr_keyset *ks, tr_jws_alg alg,
                               const char *kid, size_t kid_len,
                               bool *kid_seen);

#endif
