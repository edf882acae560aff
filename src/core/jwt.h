/*
 * Verifying a compact JWS bearer token (RFC 7515, RFC 7519) the way
 * RFC 8725 asks: the algorithm comes from the issuer's allow-list, never
 * from the token alone; the key type is bound to the algorithm; no key is
 * taken from the token; duplicate JSON members are refused.
 *
 * Verification runs in three steps so the caller can put its cap on cold
 * verifications between the cheap checks and the costly one:
 *   tr_jwt_parse            size, structure, header, issuer, key choice
 *   tr_jwt_verify_signature the signature (the expensive part)
 *   tr_jwt_check_claims     exp, nbf, iat, aud, sub at time `now`
 * tr_jwt_verify runs all three.  Nothing here reads a clock or a file.
 */
#ifndef TREATY_CORE_JWT_H
#define TREATY_CORE_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "core/jwks.h"
#include "core/token_status.h"

/* Digest and MAC implementations fetched once (OpenSSL 3 fetching is not
 * free); shared read-only by every verification. */
typedef struct tr_jwt_crypto tr_jwt_crypto;
tr_jwt_crypto *tr_jwt_crypto_new(void);
void tr_jwt_crypto_free(tr_jwt_crypto *c);

/* One configured issuer as the verifier sees it. */
typedef struct {
    const tr_issuer_cfg *cfg;
    uint32_t algs;             /* allowed TR_JWS_* bits */
    tr_keyset *keys;           /* from the JWKS; NULL until loaded */
    tr_keyset *hmac;           /* the HS256 secret; NULL when none */
} tr_jwt_issuer;

/* The allow-list bits for the names in cfg->algorithms; 0 with the
 * offending name in *bad when one is not a supported algorithm. */
uint32_t tr_jwt_alg_bits(const tr_strlist *names, const char **bad);

/* A token past tr_jwt_parse.  Owns its payload and signature bytes and a
 * reference on the key set `key` belongs to; release with tr_jwt_clear. */
typedef struct {
    size_t issuer;             /* index into the issuer array */
    tr_jws_alg alg;
    const tr_jwk *key;
    tr_keyset *keyset;
    json_t *payload;
    const char *signing_input; /* points into the token */
    size_t signing_input_len;
    uint8_t *sig;
    size_t sig_len;
    uint8_t *buf;              /* decoding scratch, owned */
} tr_jwt;

/* Checks everything that needs no signature operation.  On TR_TOKEN_OK
 * *out holds the parsed token; otherwise *out is clear, except that on
 * TR_TOKEN_UNKNOWN_KID out->issuer still names the token's issuer.
 * max_bytes caps the token's length (0 means the default 8192). */
tr_token_status tr_jwt_parse(const tr_jwt_issuer *issuers, size_t n,
                             size_t max_bytes, const char *token,
                             size_t len, tr_jwt *out);

tr_token_status tr_jwt_verify_signature(const tr_jwt_crypto *c,
                                        const tr_jwt *t);

/* exp (required), nbf and iat (optional) must be numbers; exp and nbf are
 * checked against now with the issuer's leeway; aud must name one of the
 * issuer's audiences; sub must be a non-empty string.  *exp and *nbf
 * receive the times (nbf 0 when absent). */
tr_token_status tr_jwt_check_claims(const tr_jwt_issuer *iss,
                                    const tr_jwt *t, int64_t now,
                                    int64_t *exp, int64_t *nbf);

/* The time rule alone, shared with the token cache's re-check: valid while
 * now < exp + leeway and now >= nbf - leeway. */
tr_token_status tr_jwt_check_times(int64_t exp, int64_t nbf,
                                   uint32_t leeway_s, int64_t now);

void tr_jwt_clear(tr_jwt *t);

/* parse + verify_signature + check_claims; on success *out is parsed and
 * must be cleared by the caller. */
tr_token_status tr_jwt_verify(const tr_jwt_crypto *c,
                              const tr_jwt_issuer *issuers, size_t n,
                              size_t max_bytes, const char *token,
                              size_t len, int64_t now, tr_jwt *out);

#endif
