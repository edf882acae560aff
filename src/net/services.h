/*
 * The long-lived parts a running gateway needs besides the server: the
 * token verifier and its keys, limiter tables, the stores (audit,
 * idempotency) and their worker threads, the state_dir lock, the
 * Transaction Token signing keys.  Started before listening, stopped
 * after the loop ends, in reverse order.
 */
#ifndef TREATY_NET_SERVICES_H
#define TREATY_NET_SERVICES_H

#include "net/gateway.h"

struct tr_verifier;
struct tr_budget_svc;
struct tr_audit;
struct tr_state_dir;
struct tr_idem_store;
struct tr_jwks_fetcher;
struct tr_txn_tokens;

typedef struct tr_services {
    tr_server *srv;
    struct tr_verifier *verifier;   /* NULL when no issuer is configured */
    struct tr_budget_svc *budget;
    struct tr_state_dir *state_dir;  /* locked for this process */
    struct tr_audit *audit;          /* NULL when audit.enabled is off */
    struct tr_idem_store *idem_store; /* NULL: no keyed route, or down */
    struct tr_jwks_fetcher *jwks;    /* NULL: no issuer has a jwks_url */
    struct tr_txn_tokens *txn;       /* NULL: propagation.txn_token off */
} tr_services;

int tr_services_start(tr_services *svc, tr_server *srv);
void tr_services_stop(tr_services *svc);

/* stage_idempotency.c: the idempotency store, opened when a route uses
 * keys (reopened in the background if it cannot be), its /readyz check
 * and metrics; stopped before the state_dir lock goes. */
int tr_idem_service_start(tr_services *svc);
void tr_idem_service_stop(tr_services *svc);

/* A refused token, for the aggregated audit record. */
void tr_services_note_refused_token(tr_services *svc, tr_request *req,
                                    const char *reason);

/* Txn-Token towards the upstream, when propagation.txn_token is on
 * (txn_tokens.c). */
int tr_services_append_txn_token(tr_services *svc, tr_request *req,
                                 tr_buf *b);

#endif
