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

typedef struct tr_services {
    tr_server *srv;
    struct tr_verifier *verifier;   /* NULL when no issuer is configured */
    struct tr_budget_svc *budget;
    void *state_lock;
} tr_services;

int tr_services_start(tr_services *svc, tr_server *srv);
void tr_services_stop(tr_services *svc);

/* A refused token, for the aggregated audit record. */
void tr_services_note_refused_token(tr_services *svc, tr_request *req,
                                    const char *reason);

/* Txn-Token towards the upstream, when propagation.txn_token is on. */
int tr_services_append_txn_token(tr_services *svc, tr_request *req,
                                 tr_buf *b);

#endif
