/*
 * The Idempotency-Key request field (SPEC.md §2, pipeline step 5): its
 * syntax, and whether a request is subject to the idempotency contract.
 *
 * draft-ietf-httpapi-idempotency-key-header makes the field an RFC 9651
 * sf-string.  Clients in the wild also send UUIDs and base64 keys bare, so
 * treaty accepts both forms and treats them as one key: `"abc"` and `abc`
 * name the same record.  The key kept is the decoded string content.
 *
 * Refused (400 idempotency-key-invalid): an empty key, more than
 * TR_IDEM_KEY_MAX decoded bytes, control characters, DEL or non-ASCII
 * bytes, sf parameters (`"k";a=1`, and a bare `k;a=1`, which reads the
 * same), anything after the closing quote, an unterminated string or a bad
 * escape, and more than one field line.
 */
#ifndef TREATY_CORE_IDEM_KEY_H
#define TREATY_CORE_IDEM_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/problem.h"

#define TR_IDEM_KEY_MAX 255

typedef struct {
    size_t len;                        /* 1 .. TR_IDEM_KEY_MAX */
    char bytes[TR_IDEM_KEY_MAX + 1];   /* decoded, NUL-terminated */
} tr_idem_key;

typedef enum {
    TR_IDEM_KEY_OK = 0,
    TR_IDEM_KEY_ABSENT,      /* no field line; not an error by itself */
    TR_IDEM_KEY_MULTIPLE,    /* more than one field line */
    TR_IDEM_KEY_EMPTY,       /* empty value or "" */
    TR_IDEM_KEY_TOO_LONG,    /* over TR_IDEM_KEY_MAX decoded bytes */
    TR_IDEM_KEY_BAD_BYTE,    /* control character, DEL or non-ASCII */
    TR_IDEM_KEY_PARAMS,      /* sf parameters after the key */
    TR_IDEM_KEY_SYNTAX,      /* space, comma or quote in a bare key; bad
                              * escape; unterminated; trailing bytes */
} tr_idem_key_status;

/*
 * Parses the value of the Idempotency-Key field.  `n_lines` is how many
 * Idempotency-Key field lines the request carried (value/len is the only
 * one when n_lines == 1; ignored otherwise).  Surrounding SP and HTAB are
 * ignored.  On TR_IDEM_KEY_OK, *out holds the decoded key; otherwise *out
 * is left empty (len 0).
 */
tr_idem_key_status tr_idem_key_parse(const char *value, size_t len,
                                     size_t n_lines, tr_idem_key *out);

/* A sentence fit for a problem's detail ("... is not allowed"). */
const char *tr_idem_key_reason(tr_idem_key_status st);

bool tr_idem_key_equal(const tr_idem_key *a, const tr_idem_key *b);

/*
 * Whether the contract applies to this method on this route: the method
 * is one the route counts as mutating, and never GET, HEAD or OPTIONS
 * (keys on those are ignored).  Routes with mode off never apply.
 */
bool tr_idem_applies(const tr_route_cfg *route, uint32_t method_bit);

typedef enum {
    TR_IDEM_UNKEYED,   /* forward without idempotency handling */
    TR_IDEM_KEYED,     /* *key is valid: buffer, fingerprint, look up */
    TR_IDEM_REFUSE,    /* 400: answer with *problem, never forward */
} tr_idem_presence;

/*
 * Pipeline step 5 for the key: presence and syntax against the route's
 * mode.  `is_agent` is the caller class (anonymous callers are humans).
 *
 *   not applicable (method, mode off)      -> UNKEYED, the field ignored
 *   field absent, mode optional            -> UNKEYED
 *   field absent, required_for_agents      -> REFUSE for agents,
 *                                             UNKEYED for humans
 *   field absent, required                 -> REFUSE (key required)
 *   field present and invalid              -> REFUSE (key invalid),
 *                                             whatever the mode
 *   field present and valid                -> KEYED, also for humans on
 *                                             required_for_agents routes
 *
 * *why (may be NULL) receives the parse status for the problem detail.
 */
tr_idem_presence tr_idem_check_presence(const tr_route_cfg *route,
                                        uint32_t method_bit, bool is_agent,
                                        const char *value, size_t len,
                                        size_t n_lines, tr_idem_key *key,
                                        tr_problem_kind *problem,
                                        tr_idem_key_status *why);

#endif
