/*
 * Transaction Tokens (draft-ietf-oauth-transaction-tokens; claims as in
 * revision -10, which agrees with -07 on everything used here): a short
 * JWT that carries who the request is for, who is acting, and the
 * delegation chain to the services behind treaty, signed with the
 * gateway's Ed25519 key.  Also the JWKS document that publishes the
 * gateway's public keys.  Pure apart from the signature (OpenSSL EVP) and
 * JSON building (jansson).
 *
 * Header:  {"alg":"EdDSA","typ":"txntoken+jwt","kid":KID}
 * Payload:
 *   iss      the gateway's id (opts.issuer)
 *   req_wl   the requesting workload: the gateway's id again
 *   aud      the trust domain (opts.audience)
 *   iat, exp now, now + ttl (default 300 s)
 *   txn      the request id
 *   sub      the principal's sub (unique per issuer; see tctx)
 *   scope    space-separated: the requested scopes that the inbound
 *            token holds (never more than the token had), else all of
 *            the token's scopes; "" when it had none
 *   act      RFC 8693 nested actor claim, current actor outermost
 *            (agent requests only)
 *   tctx     { principal_issuer, actor, delegation_chain: [current
 *            first], caller_class: "agent"|"human", client_id?, route?,
 *            method? }
 *   rctx     { req_ip }   (when the client address is known)
 * docs/downstream.md is the user-facing description.
 */
#ifndef TREATY_CORE_TXN_TOKEN_H
#define TREATY_CORE_TXN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "core/config.h"
#include "core/identity_t.h"

#define TR_TXN_TOKEN_TYP "txntoken+jwt"
#define TR_TXN_TOKEN_HEADER "Txn-Token"
#define TR_TXN_TOKEN_DEFAULT_TTL_S 300
/* A kid: 43 characters of base64url SHA-256 plus the NUL fit easily. */
#define TR_TXN_KID_MAX 64
/* A buffer this size holds any token whose strings (sub, actors, scopes,
 * ids) add up to under ~2 KiB; larger ones get TR_TXN_E_SPACE. */
#define TR_TXN_TOKEN_BUF 4096

typedef enum {
    TR_TXN_OK = 0,
    TR_TXN_E_ARG = -1,     /* missing input, or not an Ed25519 key */
    TR_TXN_E_SPACE = -2,   /* the output buffer is too small */
    TR_TXN_E_JSON = -3,    /* a string is not UTF-8, or memory ran out */
    TR_TXN_E_CRYPTO = -4   /* OpenSSL failed to sign or export */
} tr_txn_status;

/* One gateway key.  For signing pkey holds the private key; for the JWKS
 * only the public half is read. */
typedef struct {
    EVP_PKEY *pkey;               /* Ed25519 */
    char kid[TR_TXN_KID_MAX];
    int64_t created;              /* unix seconds; 0 when unknown */
} tr_txn_key;

typedef struct {
    const char *issuer;    /* iss and req_wl; required */
    const char *audience;  /* aud, the trust domain; required */
    uint32_t ttl_s;        /* 0 = TR_TXN_TOKEN_DEFAULT_TTL_S */
} tr_txn_token_opts;

typedef struct {
    const tr_identity *id;     /* the verified identity; required */
    const char *request_id;    /* txn; required */
    const char *client_addr;   /* rctx.req_ip; NULL = no rctx */
    const char *route;         /* tctx.route; NULL = omitted */
    const char *method;        /* tctx.method; NULL = omitted */
    /* Narrow `scope` to these (typically the route's policy.scopes);
     * scopes the inbound token lacks are dropped, never added.  NULL or
     * empty = the token's scopes. */
    const tr_strlist *scopes;
    int64_t now;               /* iat, unix seconds */
} tr_txn_token_req;

/*
 * Mints and signs one Txn-Token into out (cap bytes, NUL-terminated).
 * @return TR_TXN_OK and *outlen (without the NUL), or a tr_txn_status
 *         error; out is "" on error (when cap > 0).
 */
int tr_txn_token_mint(const tr_txn_token_opts *opts, const tr_txn_key *key,
                      const tr_txn_token_req *req, char *out, size_t cap,
                      size_t *outlen);

/*
 * The JWKS document (RFC 7517) publishing keys[0..n): each an OKP/Ed25519
 * key with "kid", "use":"sig" and "alg":"EdDSA"; only public members.
 * Same return convention as tr_txn_token_mint().  n may be 0.
 */
int tr_txn_jwks(const tr_txn_key *keys, size_t n, char *out, size_t cap,
                size_t *outlen);

/*
 * The RFC 7638 JWK thumbprint of an Ed25519 public key: base64url of the
 * SHA-256 of {"crv":"Ed25519","kty":"OKP","x":"..."}; 43 characters.
 * This is the kid treaty gives its keys.
 * @return TR_TXN_OK, TR_TXN_E_ARG for a non-Ed25519 key, or
 *         TR_TXN_E_CRYPTO.
 */
int tr_txn_key_thumbprint(EVP_PKEY *pkey, char kid[TR_TXN_KID_MAX]);

#endif
