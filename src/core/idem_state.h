/*
 * The idempotency record and every decision about it (SPEC.md §2,
 * pipeline steps 6, 8 and 10).  Pure: the record is a value, the time and
 * the owner's random bytes are arguments, results are codes.  The store
 * (src/store/idem_store.c) keeps records durable and applies the same
 * rules inside its writer transaction.
 *
 * Record states:
 *
 *   absent      no row, a released row, or a row past its expiry
 *   in flight   claimed by one attempt: owner id, lease, fingerprint
 *   unknown     in flight with the lease run out and no outcome: the
 *               owner died (kill -9) or stopped renewing; derived from
 *               the lease at lookup time, never stored as such
 *   completed   fingerprint, status, allow-listed headers, body, or only
 *               the original status when the body was over storage_cap
 *
 * Scope is (principal key, idempotency key).  The principal key is
 * tr_identity.principal_key (issuer name, NUL, sub), so a refreshed token
 * replays and another principal never sees the record.  Anonymous callers
 * are scoped by client address (tr_idem_anon_scope); see
 * docs/idempotency.md for what that does and does not protect.
 *
 * Expiry: a claim expires ttl_s after it was made; a completed record
 * ttl_s after completion.  A record whose lease is still running is never
 * expired, whatever the TTL.
 */
#ifndef TREATY_CORE_IDEM_STATE_H
#define TREATY_CORE_IDEM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/fingerprint.h"
#include "core/http_head.h"
#include "core/idem_key.h"
#include "core/problem.h"

#define TR_IDEM_OWNER_LEN 16

/* Added to the upstream timeout to make the lease (SPEC.md §2). */
#define TR_IDEM_LEASE_GRACE_MS 1000

/* Encoded allow-listed response headers kept at most; a response with
 * more is completed but not replayable, like one over storage_cap. */
#define TR_IDEM_HEADERS_MAX 16384

/* A waiting request looks the record up again at least this often (the
 * store has no change notification; see docs/idempotency.md). */
#define TR_IDEM_WAIT_POLL_MS 50

/* Room for tr_idem_anon_scope(): prefix plus an IPv6 text address. */
#define TR_IDEM_ANON_SCOPE_MAX 64

typedef enum {
    TR_IDEM_REC_ABSENT = 0,
    TR_IDEM_REC_IN_FLIGHT = 1,
    TR_IDEM_REC_COMPLETED = 2,
} tr_idem_rec_state;

/*
 * One record.  The pointers do not own: a record built by the store points
 * into the store's result, one completed by tr_idem_complete() into the
 * caller's buffers.
 */
typedef struct {
    tr_idem_rec_state state;
    uint8_t fingerprint[TR_FP_LEN];
    uint8_t owner[TR_IDEM_OWNER_LEN];
    int64_t created_ms;        /* wall clock, ms since the epoch */
    int64_t lease_until_ms;    /* in flight: the owner's lease */
    int64_t expires_ms;        /* absent (and reapable) from here on */
    int status;                /* completed: the status the client got */
    bool replayable;           /* completed: headers and body are kept */
    bool pinned;               /* completed: an ambiguous outcome */
    const uint8_t *headers;    /* tr_idem_headers_encode() form */
    size_t headers_len;
    const uint8_t *body;
    size_t body_len;
} tr_idem_record;

/* ---- lookup (pipeline step 6, and step 8 after a lost claim) ---- */

typedef enum {
    TR_IDEM_PROCEED,          /* no live record: admit, then claim */
    TR_IDEM_REPLAY,           /* answer with the stored response */
    TR_IDEM_MISMATCH,         /* 422: same key, different request */
    TR_IDEM_IN_FLIGHT,        /* 409 + Retry-After */
    TR_IDEM_WAIT,             /* wait up to wait_ms, then look up again */
    TR_IDEM_OUTCOME_UNKNOWN,  /* 409 (own type): lease ran out */
    TR_IDEM_REEXECUTE,        /* lease ran out, route re-executes: admit,
                               * then claim (taking the dead claim over) */
    TR_IDEM_NOT_REPLAYABLE,   /* 409 carrying the original status */
} tr_idem_verdict;

typedef struct {
    tr_idem_verdict verdict;
    tr_problem_kind problem;   /* for the refusing verdicts */
    int status;                /* REPLAY and NOT_REPLAYABLE: original */
    uint32_t retry_after_s;    /* IN_FLIGHT: lease left, whole s, >= 1 */
    uint32_t wait_ms;          /* WAIT: longest useful wait from now */
} tr_idem_decision;

/*
 * Decides what a keyed request does given the stored record (NULL =
 * none).  `fp` is the request's fingerprint.  `wait_deadline_ms` is when a
 * bounded wait for an in-flight original ends (tr_idem_wait_deadline();
 * 0 = never wait).  Order: expired or absent -> PROCEED; a different
 * fingerprint -> MISMATCH, before anything else, in flight included; then
 * by state.
 */
tr_idem_decision tr_idem_lookup(const tr_idem_record *rec,
                                const uint8_t fp[TR_FP_LEN],
                                const tr_idem_cfg *cfg,
                                int64_t wait_deadline_ms, int64_t now_ms);

/* When the route's bounded wait ends for a request first looked up at
 * first_lookup_ms; 0 when the route answers 409 at once. */
int64_t tr_idem_wait_deadline(const tr_idem_cfg *cfg,
                              int64_t first_lookup_ms);

const char *tr_idem_verdict_name(tr_idem_verdict v);

/*
 * The store is unavailable (a lookup or claim failed with an outage
 * status): true -> refuse with 503 TR_P_IDEM_STORE_UNAVAILABLE; false ->
 * forward without idempotency (fail open).  Routes that require keys
 * (required, required_for_agents) refuse unless fail_open is set;
 * optional routes always fail open.
 */
bool tr_idem_store_down_refuses(const tr_idem_cfg *cfg);

/* True when the record no longer counts (TTL over, no live lease). */
bool tr_idem_expired(const tr_idem_record *rec, int64_t now_ms);

/* ---- claim (pipeline step 8) ---- */

/* The lease length: upstream timeout + grace, saturating. */
uint32_t tr_idem_lease_ms(uint32_t upstream_timeout_ms, uint32_t grace_ms);

/* How often a live owner should renew: a third of the lease, >= 10 ms. */
uint32_t tr_idem_renew_every_ms(uint32_t lease_ms);

/*
 * Whether a new claim may replace `existing` (NULL = no row): no row, an
 * expired row, or, when the route re-executes after a crash, an in-flight
 * row with the same fingerprint whose lease ran out.
 */
bool tr_idem_claimable(const tr_idem_record *existing,
                       const uint8_t fp[TR_FP_LEN], bool reexecute,
                       int64_t now_ms);

/*
 * Fills *rec with a fresh in-flight claim.  `owner` is 16 random bytes
 * the caller read from the OS (the core reads no randomness).
 */
void tr_idem_claim(tr_idem_record *rec, const uint8_t fp[TR_FP_LEN],
                   const uint8_t owner[TR_IDEM_OWNER_LEN], uint32_t lease_ms,
                   const tr_idem_cfg *cfg, int64_t now_ms);

/* Extends the lease if `owner` still holds the record.  false when the
 * claim was lost (taken over or gone): keep serving the client, but the
 * outcome will not be stored. */
bool tr_idem_renew(tr_idem_record *rec,
                   const uint8_t owner[TR_IDEM_OWNER_LEN], uint32_t lease_ms,
                   int64_t now_ms);

/* ---- outcome (pipeline step 10) ---- */

typedef enum {
    TR_IDEM_FAIL_NONE,         /* a response came back: use its status */
    TR_IDEM_FAIL_CONNECT,      /* no connection: nothing was sent */
    TR_IDEM_FAIL_REFUSED,      /* treaty refused after the claim and before
                                * forwarding (preconditions, lock, audit) */
    TR_IDEM_FAIL_RESET,        /* connection lost after sending began */
    TR_IDEM_FAIL_TIMEOUT,      /* no (whole) response in time after
                                * sending began */
    TR_IDEM_FAIL_BAD_RESPONSE, /* unparsable response after sending */
} tr_idem_failure;

typedef enum {
    TR_IDEM_OUT_RELEASE,  /* the backend certainly did not act: delete */
    TR_IDEM_OUT_STORE,    /* a definite answer: keep and replay it */
    TR_IDEM_OUT_PIN,      /* ambiguous, kept and replayed (counted apart) */
} tr_idem_outcome;

/*
 * The release/store/pin table:
 *   RELEASE  connect failure, refusal by treaty before forwarding,
 *            401 403 407 408 409 425 429 503
 *   PIN      500 502 504, reset, timeout or bad response after sending;
 *            RELEASE instead when the route says `ambiguous: release`
 *   STORE    every other status (1xx is not final and is treated as
 *            ambiguous)
 * `status` is the upstream's final status (only read with FAIL_NONE).
 */
tr_idem_outcome tr_idem_classify(tr_idem_failure failure, int status,
                                 tr_ambiguous_mode ambiguous);

const char *tr_idem_outcome_name(tr_idem_outcome o);

/* What the first client got, to be kept. */
typedef struct {
    int status;
    bool pinned;               /* tr_idem_classify() said PIN */
    const uint8_t *headers;    /* tr_idem_headers_encode() output */
    size_t headers_len;
    const uint8_t *body;
    size_t body_len;
    bool body_dropped;         /* the body outgrew storage_cap while it
                                * streamed and was not kept whole */
} tr_idem_result;

/* Whether a body of this size (so far) may still be kept whole. */
bool tr_idem_body_fits(const tr_idem_cfg *cfg, uint64_t body_len);

/*
 * Completes the record if `owner` still holds it: status, and headers and
 * body when they fit (storage_cap, TR_IDEM_HEADERS_MAX); otherwise the
 * record keeps only the status and is not replayable.  Expiry restarts at
 * now + ttl.  false (record untouched) when the owner does not match or
 * the record is not in flight.
 */
bool tr_idem_complete(tr_idem_record *rec,
                      const uint8_t owner[TR_IDEM_OWNER_LEN],
                      const tr_idem_result *res, const tr_idem_cfg *cfg,
                      int64_t now_ms);

/* Deletes the claim (a true retry is allowed) if `owner` holds it. */
bool tr_idem_release(tr_idem_record *rec,
                     const uint8_t owner[TR_IDEM_OWNER_LEN]);

/* ---- stored headers ---- */

/*
 * The replay allow-list: Location, Content-Type, Content-Encoding,
 * Content-Location, ETag, Last-Modified, Link (case-insensitive).
 * Everything else is dropped: Set-Cookie, Authorization, hop-by-hop
 * fields, Date, request ids, rate-limit fields.
 */
bool tr_idem_header_storable(const char *name, size_t len);

/*
 * Encodes the storable fields among h[0..n) (skipping any the response's
 * Connection field names) as: name length (1 byte), value length (4 bytes,
 * big-endian), name, value; repeated.  Returns the encoded size.  With
 * out == NULL, or cap too small, writes nothing and only returns the size
 * needed, so call once to size and once to write.
 */
size_t tr_idem_headers_encode(const tr_header *h, size_t n, uint8_t *out,
                              size_t cap);

/*
 * Iterates an encoded header block: 1 and *h filled (pointing into buf),
 * 0 at the end, -1 when the block is malformed.  Start with *off = 0.
 */
int tr_idem_headers_next(const uint8_t *buf, size_t len, size_t *off,
                         tr_header *h);

/* ---- scope and derived key ---- */

/*
 * The scope of an anonymous caller: two NUL bytes, "anon:", the client
 * address text.  Cannot equal a principal key (issuer name, NUL, sub;
 * neither part can start with NUL).  Returns the length, 0 if cap is too
 * small.
 */
size_t tr_idem_anon_scope(const char *client_addr, uint8_t *out,
                          size_t cap);

/*
 * Lower-case hex SHA-256 of (scope, key), each length-prefixed: the key
 * forwarded downstream when the route asks for it, and the key hash for
 * audit and logs.  0, or -1 on a libcrypto failure.
 */
int tr_idem_derived_key(const void *scope, size_t scope_len,
                        const tr_idem_key *key, char out[65]);

#endif
