/*
 * Filling an audit record's identity fields from the verified identity of
 * a request (core/identity_t.h), so every caller records the principal,
 * actor, chain and token reference the same way.  Pure.
 */
#ifndef TREATY_CORE_AUDIT_IDENTITY_H
#define TREATY_CORE_AUDIT_IDENTITY_H

#include "core/audit_record.h"
#include "core/identity_t.h"

#define TR_AUDIT_TOKEN_HASH_HEX (2 * TR_AUDIT_TOKEN_HASH_BYTES + 1)

/*
 * Sets principal_issuer, principal_sub, actor, delegation_chain ("[]" for
 * a human request), client_id, token_id, token_hash and token_verified
 * (true: tr_identity only exists for verified tokens).  The record then
 * points into id, *chain_json and token_hash_hex: keep them until the
 * record is submitted (the store copies it), then free(*chain_json).
 * 0, or -1 when out of memory (the record is left without identity).
 */
int tr_audit_set_identity(tr_audit_record *r, const tr_identity *id,
                          char **chain_json,
                          char token_hash_hex[TR_AUDIT_TOKEN_HASH_HEX]);

#endif
