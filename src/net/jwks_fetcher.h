/*
 * Verification keys fetched by URL (identity.issuers[].jwks_url).
 *
 * Each issuer with a jwks_url gets a thread of its own that fetches with
 * libcurl (never the event loop, never libuv's threadpool, which also
 * resolves names) and parses the document with tr_keyset_parse there.
 * The new immutable key set crosses to the loop through a uv_async_t; the
 * loop installs it with tr_verifier_set_keys.  When to fetch and how long
 * keys serve is decided by src/core/jwks_refresh.c on the loop.
 *
 * A token naming an unknown kid asks for one refetch, rate-limited per
 * issuer (jwks_min_refetch_s) and coalesced with any fetch in flight.
 * The request waits for that fetch, at most TR_JWKS_HOLD_MS from the
 * fetch's start, and is then verified once more; if the kid is still
 * unknown (or the refetch was refused by the rate limit) it gets 401
 * unknown_kid at once.  docs/identity.md "Keys by URL" is the user-facing
 * description.
 */
#ifndef TREATY_NET_JWKS_FETCHER_H
#define TREATY_NET_JWKS_FETCHER_H

#include <stdbool.h>
#include <stddef.h>

#include "net/gateway.h"

struct tr_verifier;

typedef struct tr_jwks_fetcher tr_jwks_fetcher;

/* How long a request with an unknown kid waits for the fetch under way,
 * counted from the fetch's start. */
#define TR_JWKS_HOLD_MS 3000
/* Requests held per issuer at most; more are refused at once. */
#define TR_JWKS_MAX_HELD 256
#define TR_JWKS_MAX_BYTES (1024 * 1024)
#define TR_JWKS_CONNECT_TIMEOUT_MS 5000
#define TR_JWKS_TIMEOUT_MS 10000

/*
 * Starts one fetch thread per issuer with a jwks_url; the first fetches
 * begin at once (before the gateway listens, finishing whenever they
 * finish: /readyz stays false until every issuer has keys).  *out is NULL
 * when no issuer has a URL.  v must outlive the fetcher.
 * @return 0, or -1 (logged) when a thread or handle cannot be set up.
 */
int tr_jwks_fetcher_start(tr_server *srv, struct tr_verifier *v,
                          tr_jwks_fetcher **out);

/* Stops the threads (a fetch under way is aborted), closes the handles
 * and frees.  Called after the loop ended; NULL is a no-op. */
void tr_jwks_fetcher_stop(tr_jwks_fetcher *f);

/*
 * The identity stage saw TR_TOKEN_UNKNOWN_KID for a token of issuer
 * `issuer`.  Returns true when req is now held: the stage returns
 * TR_AGAIN and the fetcher later runs tr_pipeline_continue(req), which
 * verifies the token again (at most once per request).  False when the
 * issuer has no URL, the refetch is rate-limited, too many requests wait
 * already, or req was held once: refuse it now.
 */
bool tr_jwks_fetcher_unknown_kid(tr_jwks_fetcher *f, size_t issuer,
                                 tr_request *req);

#endif
