#include "core/audit_identity.h"

#include <stddef.h>

#include "core/audit_chain.h"

int
tr_audit_set_identity(tr_audit_record *r, const tr_identity *id,
                      char **chain_json,
                      char token_hash_hex[TR_AUDIT_TOKEN_HASH_HEX])
{
    *chain_json = tr_audit_json_strings((const char *const *)id->chain,
                                        id->chain_len);
    if (!*chain_json)
        return -1;
    tr_audit_hex(id->token_hash, TR_AUDIT_TOKEN_HASH_BYTES, token_hash_hex);
    r->principal_issuer = id->issuer_name;
    r->principal_sub = id->sub;
    r->actor = id->actor;
    r->delegation_chain = *chain_json;
    r->client_id = id->client_id;
    r->token_id = id->jti;
    r->token_hash = token_hash_hex;
    r->has_token_verified = true;
    r->token_verified = true;
    return 0;
}
