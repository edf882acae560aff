/*
 * Deriving who calls for whom from a verified token's claims, exactly as
 * SPEC.md "Terms" defines it:
 *
 *   principal  (issuer name, sub)
 *   actor      with an RFC 8693 `act`: the outermost act.sub; without:
 *              the token's client (client_id, else azp) when that client
 *              is listed in identity.agent_clients or the issuer's
 *              actor_profile is `client`; otherwise the principal itself
 *   chain      every act.sub, current actor first, innermost last; just
 *              the client for a client actor; empty for a human
 *   class      agent when the actor differs from the principal's sub
 *
 * Claims inside `act` other than `sub` (exp, iss, ...) are recorded in the
 * payload but are not validity checks (RFC 8693 §4.1).
 */
#ifndef TREATY_CORE_IDENTITY_H
#define TREATY_CORE_IDENTITY_H

#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "core/identity_t.h"
#include "core/token_status.h"

/* Builds the identity of a token whose signature and claims have been
 * verified.  Takes its own reference on `payload`.  Refuses with
 * TR_TOKEN_BAD_ACT an `act` that is not an object, lacks a non-empty
 * string `sub`, or nests deeper than TR_MAX_CHAIN; with TR_TOKEN_BAD_CLAIM
 * a sub, actor or client id holding bytes outside printable ASCII
 * (0x20-0x7E: they become structured-field strings downstream) or a scope
 * outside RFC 6749's scope-token syntax; with TR_TOKEN_BAD_SUB a missing or
 * empty sub.  On TR_TOKEN_OK *out holds one reference. */
tr_token_status tr_identity_derive(const tr_identity_cfg *cfg,
                                   size_t issuer_index, json_t *payload,
                                   const uint8_t token_hash[32],
                                   int64_t exp, int64_t nbf,
                                   tr_identity **out);

/* Reference counting is atomic: an identity may be read on another thread
 * (the audit writer) while the cache still holds it. */
tr_identity *tr_identity_ref(tr_identity *id);
void tr_identity_unref(tr_identity *id);

/* "human" or "agent". */
const char *tr_caller_class_name(tr_caller_class cls);

/* True when id carries scope `scope` (exact match). */
bool tr_identity_has_scope(const tr_identity *id, const char *scope);

#endif
