/*
 * Who is calling for whom: the verified identity of one request.
 *
 * Built by the token verifier (src/core/identity.c) from a verified token
 * only, then shared read-only: the token cache hands the same tr_identity to
 * every request that presents the same token, so it is reference counted
 * and never modified after creation.
 */
#ifndef TREATY_CORE_IDENTITY_T_H
#define TREATY_CORE_IDENTITY_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nested act claims deeper than this are refused with 401 (a hard cap,
 * independent of any route's max_delegation_depth). */
#define TR_MAX_CHAIN 8

typedef enum { TR_CLASS_HUMAN = 0, TR_CLASS_AGENT = 1 } tr_caller_class;

typedef struct tr_identity {
    _Atomic unsigned refs;   /* tr_identity_ref/unref (src/core/identity.h) */
    size_t issuer_index;     /* into cfg->identity.issuers */
    const char *issuer_name; /* the configured name, not iss */
    char *sub;               /* the principal's sub */
    /* Canonical principal key: issuer name, NUL, sub.  Limiter keys,
     * idempotency scope and audit use this pair, never the token. */
    char *principal_key;
    size_t principal_key_len;
    char *actor;             /* current actor; == sub for humans.  Points
                              * at chain[0] or sub, not owned apart. */
    char *chain[TR_MAX_CHAIN]; /* current actor first, innermost last */
    size_t chain_len;        /* 0 for a human request */
    tr_caller_class cls;
    char *client_id;         /* client_id, else azp; may be NULL */
    char **scopes;           /* from scope (space separated) or scp */
    size_t n_scopes;
    char *jti;               /* may be NULL */
    uint8_t token_hash[32];  /* SHA-256 of the whole token */
    int64_t exp;
    int64_t nbf;             /* 0 when absent */
    void *claims;            /* json_t * of the verified payload */
} tr_identity;

#endif
