/*
 * The one entry point the server calls to turn an Authorization header
 * into a verified identity: header parsing, the token cache, the cap on
 * cold verifications, JWS verification and identity derivation.
 *
 * Threading: a verifier belongs to one thread (the event loop that owns
 * it); its calls are not synchronised.  Key sets are immutable and
 * atomically reference counted, so a JWKS fetcher thread builds a
 * tr_keyset and passes it to the owning thread (uv_async), which calls
 * tr_verifier_set_keys.  Identities handed out are atomically reference
 * counted and may travel to other threads.
 */
#ifndef TREATY_CORE_VERIFIER_H
#define TREATY_CORE_VERIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/identity_t.h"
#include "core/jwks.h"
#include "core/token_cache.h"
#include "core/token_status.h"

typedef struct tr_verifier tr_verifier;

/* Checks the issuers' settings (names and iss values unique, audiences
 * present, algorithms known, HS256 only with hs256_secret_file, a JWKS
 * source for the other algorithms) and builds an empty verifier: no keys
 * yet.  cfg must outlive the verifier.  NULL with a message in err. */
tr_verifier *tr_verifier_new(const tr_identity_cfg *cfg, uint64_t hash_seed,
                             char *err, size_t errlen);
void tr_verifier_free(tr_verifier *v);

/* Installs ks (the verifier takes its own reference; ks may be NULL to
 * withdraw all keys) as issuer `issuer`'s public keys.  When the set
 * really changes, cached identities verified by a key no longer present
 * are dropped and all cached refusals forgotten.  -1 for a bad index. */
int tr_verifier_set_keys(tr_verifier *v, size_t issuer, tr_keyset *ks);

/* Installs issuer `issuer`'s HS256 secret (tr_keyset_new_hmac), same
 * rules.  -1 for a bad index or when the issuer does not allow HS256. */
int tr_verifier_set_hmac(tr_verifier *v, size_t issuer, tr_keyset *ks);

/* Every issuer has the keys its algorithms need (for /readyz). */
bool tr_verifier_ready(const tr_verifier *v);

/* True when some installed key is a development key. */
bool tr_verifier_has_dev_key(const tr_verifier *v);

/* authz is the Authorization field value (NULL when the request has
 * none).  "Bearer" is matched case-insensitively and must be followed by
 * one or more spaces and the token; another scheme counts as no bearer
 * token (TR_TOKEN_MISSING), a bare "Bearer" is TR_TOKEN_MALFORMED.
 * now_s is the wall clock in seconds (token times), now_ns a monotonic
 * clock (the cold verification bucket).  On TR_TOKEN_OK *out holds a
 * reference the caller drops with tr_identity_unref.  A cache hit does not
 * allocate. */
tr_token_status tr_verifier_check(tr_verifier *v, const char *authz,
                                  size_t len, int64_t now_s,
                                  uint64_t now_ns, tr_identity **out);

/* The same for a bare token (no scheme). */
tr_token_status tr_verifier_check_token(tr_verifier *v, const char *token,
                                        size_t len, int64_t now_s,
                                        uint64_t now_ns, tr_identity **out);

void tr_verifier_get_stats(const tr_verifier *v, tr_token_cache_stats *out);

/* After a check that answered TR_TOKEN_UNKNOWN_KID: true, with the index
 * of the issuer whose key set lacks the token's kid in *issuer, so the
 * caller can ask that issuer's JWKS source for fresh keys.  False after
 * any other answer, and after a refusal served from the negative cache
 * (which does not remember the issuer). */
bool tr_verifier_unknown_kid_issuer(const tr_verifier *v, size_t *issuer);

#endif
