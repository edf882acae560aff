/*
 * Identity headers towards the upstream (SPEC §3 "Propagation").
 *
 * treaty sets four headers from the verified identity, as RFC 9651
 * structured fields:
 *   principal  sf-string of the sub           X-Principal: "alice"
 *   actor      sf-string of the actor         X-Actor: "agent:planner"
 *   chain      sf-list of sf-strings, current actor first; omitted for a
 *              human request (an empty list is an absent field)
 *                  X-Delegation-Chain: "agent:planner", "agent:mailbot"
 *   class      sf-token human or agent        X-Caller-Class: agent
 * and removes every client-sent copy of them, and of Txn-Token, in any
 * spelling (case, `_` for `-`).
 */
#ifndef TREATY_CORE_PROPAGATION_H
#define TREATY_CORE_PROPAGATION_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/identity_t.h"

typedef enum {
    TR_PROP_PRINCIPAL,
    TR_PROP_ACTOR,
    TR_PROP_CHAIN,
    TR_PROP_CLASS,
    TR_PROP__COUNT
} tr_prop_field;

#define TR_PROP_DEFAULT_PRINCIPAL "X-Principal"
#define TR_PROP_DEFAULT_ACTOR "X-Actor"
#define TR_PROP_DEFAULT_CHAIN "X-Delegation-Chain"
#define TR_PROP_DEFAULT_CLASS "X-Caller-Class"
#define TR_PROP_TXN_TOKEN "Txn-Token"

/* The configured header name for f, or its default when unset. */
const char *tr_prop_header_name(const tr_propagation_cfg *cfg,
                                tr_prop_field f);

/* Is `name` one of treaty's identity headers (the four above, or
 * Txn-Token) in any spelling: ASCII case ignored and `_` taken as `-`?
 * The server removes every such header the client sent, including ones
 * named in Connection. */
bool tr_prop_is_identity_header(const tr_propagation_cfg *cfg,
                                const char *name, size_t len);

/* Size of buffer that always fits field f's value for id, NUL included. */
size_t tr_prop_value_max(const tr_identity *id, tr_prop_field f);

/* Writes field f's value for id into buf (NUL-terminated), *len without
 * the NUL.  *len == 0 means "do not send this header" (the chain of a
 * human request).  TR_SF_INVALID when a value holds a byte outside
 * printable ASCII (identity derivation already refuses such tokens with
 * bad_claim; this is the second lock), TR_SF_NOSPACE when buf is short. */
int tr_prop_format(const tr_identity *id, tr_prop_field f, char *buf,
                   size_t cap, size_t *len);

#endif
