/*
 * One audit record (SPEC.md §4): the types only.  Canonical encoding and
 * chain hashing are in core/audit_chain.h; storage in store/audit_store.h.
 *
 * A field that does not apply, or that a later issue fills, is NULL (or
 * has its `has_` flag false).  Strings are UTF-8 the gateway already
 * validated or encoded (SPEC.md "Security defaults"): claim values reach
 * this struct only through the verifier, and delegation_chain and
 * stripped_headers are JSON arrays of strings produced by
 * tr_audit_json_strings() (core/audit_chain.h).
 */
#ifndef TREATY_CORE_AUDIT_RECORD_H
#define TREATY_CORE_AUDIT_RECORD_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Kinds of rows in the trail, every one chained:
 *  - REQUEST: a request that reached a decision, written once when it is
 *    over (refusals, reads, replays): every field, status and timing too.
 *  - DECISION: a forwarded mutating request, written at the decision and
 *    made durable before the response is acknowledged; status, latency
 *    and bytes are NULL here and come in its COMPLETION.
 *  - COMPLETION: status, latency and bytes of a DECISION, which it names
 *    by completes_seq and request_id.  Separate chained rows (not an
 *    UPDATE) so the chain covers the final values too.
 *  - REFUSED_TOKENS: an aggregate of refused tokens from one client
 *    address for one reason in one window (count, time = window start).
 */
typedef enum {
    TR_AUDIT_REQUEST = 0,
    TR_AUDIT_DECISION = 1,
    TR_AUDIT_COMPLETION = 2,
    TR_AUDIT_REFUSED_TOKENS = 3,
    TR_AUDIT_KIND__COUNT
} tr_audit_kind;

typedef enum {
    TR_AUDIT_NONE = 0,          /* not decided (COMPLETION rows) */
    TR_AUDIT_ALLOW = 1,
    TR_AUDIT_DENY = 2,
    TR_AUDIT_ERROR = 3,         /* treaty or the upstream failed */
} tr_audit_decision;

/* Hex of the first TR_AUDIT_TOKEN_HASH_BYTES of SHA-256(token): enough to
 * correlate, never the token. */
#define TR_AUDIT_TOKEN_HASH_BYTES 16

typedef struct {
    /* Chain: assigned on the writer thread, in sequence order. */
    uint64_t seq;               /* 1, 2, 3 ... without gaps */
    uint8_t prev_hash[32];      /* hash of seq - 1; zeros for seq 1 */
    uint8_t hash[32];           /* SHA-256(prev_hash || canonical) */

    tr_audit_kind kind;
    int64_t time_ms;            /* Unix ms: the decision (window start) */
    const char *request_id;
    const char *client_addr;    /* the address treaty believes */

    /* Identity: from a verified token, or claims marked unverified. */
    const char *principal_issuer; /* configured issuer name */
    const char *principal_sub;
    const char *actor;          /* current actor */
    const char *delegation_chain; /* JSON array, current actor first */
    const char *client_id;
    const char *token_id;       /* jti */
    const char *token_hash;     /* hex prefix, TR_AUDIT_TOKEN_HASH_BYTES */
    bool has_token_verified;
    bool token_verified;

    const char *route;
    const char *tool;
    const char *method;
    const char *path;           /* the normalised path */

    tr_audit_decision decision;
    const char *reason;         /* reason code: actor_not_allowed ... */
    const char *policy_rule;    /* the rule that decided */
    const char *limiter;        /* limiter outcome: admitted, rate ... */
    const char *idem_key_hash;  /* hex SHA-256 of (principal, key) */
    bool has_idem_replay;
    bool idem_replay;
    const char *precondition;   /* precondition outcome */

    bool has_status;
    int32_t status;             /* HTTP status sent */
    bool has_latency;
    int64_t latency_us;         /* request start to last byte */
    bool has_bytes;
    int64_t bytes;              /* response bytes sent */

    const char *config_hash;    /* hex SHA-256 of the config file */
    const char *stripped_headers; /* JSON array of removed header names */

    bool has_completes_seq;
    uint64_t completes_seq;     /* COMPLETION: its DECISION's seq */
    bool has_count;
    int64_t count;              /* REFUSED_TOKENS: refusals aggregated */
} tr_audit_record;

const char *tr_audit_kind_name(tr_audit_kind kind);
const char *tr_audit_decision_name(tr_audit_decision d);

/* Parse the names above; -1 when unknown. */
int tr_audit_kind_parse(const char *name);
int tr_audit_decision_parse(const char *name);

#endif
