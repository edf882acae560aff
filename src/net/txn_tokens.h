/*
 * Transaction Tokens in the running gateway (propagation.txn_token): the
 * gateway's Ed25519 keys loaded (or created) at start, one Txn-Token
 * minted per forwarded authenticated request and sent upstream in
 * `Txn-Token`, and the public keys served as a JWKS at
 * /.well-known/jwks.json on the admin listener, which backends reach.
 *
 * Minting is src/core/txn_token.c; the keys on disk are
 * src/store/gateway_keys.c; docs/downstream.md is what backend teams read.
 */
#ifndef TREATY_NET_TXN_TOKENS_H
#define TREATY_NET_TXN_TOKENS_H

#include "net/gateway.h"

typedef struct tr_txn_tokens tr_txn_tokens;

#define TR_TXN_JWKS_PATH "/.well-known/jwks.json"
#define TR_TXN_DEFAULT_ISSUER "treaty"

/*
 * With propagation.txn_token on: loads the signing keys from
 * propagation.txn_token_key_file, else from STATE_DIR/txn-keys (creating
 * the first key there), builds the JWKS document and registers its admin
 * path.  *out is NULL when the feature is off.  Needs
 * propagation.txn_token_audience (the backends' trust domain).
 * @return 0, or -1 (logged) when the keys cannot be had.
 */
int tr_txn_tokens_start(tr_server *srv, tr_txn_tokens **out);

void tr_txn_tokens_stop(tr_txn_tokens *t);

/* Pipeline step before forwarding: has the token signed on the signing
 * thread (TR_AGAIN; the pipeline goes on when it is back), or TR_NEXT
 * when no token is due. */
tr_step tr_txn_tokens_stage(tr_txn_tokens *t, tr_request *req);

/* Drops the request's token, or orphans a job still being signed. */
void tr_txn_tokens_release(tr_request *req);

/*
 * Appends `Txn-Token: <jwt>\r\n` for req to b when req carries a verified
 * identity (nothing otherwise, and nothing when t is NULL).
 * @return 0, or -1 when the token cannot be minted: the request then
 *         fails rather than reach a backend without its token.
 */
int tr_txn_tokens_append(tr_txn_tokens *t, tr_request *req, tr_buf *b);

#endif
