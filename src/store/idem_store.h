/*
 * The idempotency store: records of src/core/idem_state.h kept durable in
 * their own SQLite file (state_dir/idempotency.db) with their own writer
 * thread (store/worker.h), so an audit batch never delays a claim.
 *
 * Every call is made on the loop thread and returns at once; results come
 * back through a callback on the loop.  A call that returns < 0 was not
 * queued and its callback will not run: TR_STORE_EUNAVAILABLE (the last
 * batch failed: disk full, read-only, I/O error), TR_STORE_EAGAIN (queue
 * full), TR_STORE_ESTOPPED (closing) or TR_STORE_ERROR (out of memory).
 * A callback's status < 0 means the same kind of failure happened while
 * the job ran.  For lookup and claim any such failure is "store
 * unavailable": see tr_idem_store_down_refuses() in core/idem_state.h.
 *
 * Each job reads its row and applies the pure transition from
 * core/idem_state.c inside the writer's transaction, then writes the
 * result: the claim's "is the key free" test (tr_idem_claimable), the
 * owner-id rule of renew, complete and release.  One writer, one
 * transaction per batch: two claims for one key can never both win.
 *
 * Times are wall-clock milliseconds passed by the caller (tests drive a
 * virtual clock); only the background reaper reads the clock itself.
 *
 * Where the server calls what (SPEC.md "Request pipeline"):
 *   step 6   tr_idem_store_lookup, then tr_idem_lookup() on the record
 *   step 8   tr_idem_store_claim after admission; lost -> refund the
 *            admission and answer tr_idem_lookup() on the winner's record
 *   step 10  tr_idem_store_renew every tr_idem_renew_every_ms() while the
 *            request is alive; at the end tr_idem_classify(), then
 *            tr_idem_store_complete (STORE, PIN) or tr_idem_store_release
 *            (RELEASE)
 *   always   the reaper deletes expired rows in bounded batches
 *
 * Durability: WAL with synchronous=NORMAL by default (a committed claim
 * survives kill -9 of treaty, not a power cut), FULL on request.
 */
#ifndef TREATY_STORE_IDEM_STORE_H
#define TREATY_STORE_IDEM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/config.h"
#include "core/idem_key.h"
#include "core/idem_state.h"
#include "store/worker.h"

#define TR_IDEM_DB_FILE "idempotency.db"

typedef struct tr_idem_store tr_idem_store;

typedef struct {
    tr_sync_level sync;        /* default normal */
    size_t queue_max;          /* jobs queued at most; 0 = 65536 */
    uint32_t reap_every_ms;    /* reaper period; 0 = 10000; the reaper
                                * runs again at once while batches are
                                * full */
    uint32_t reap_batch;       /* rows per reap job; 0 = 256 */
    bool no_reaper;            /* tests: only explicit tr_idem_store_reap */
} tr_idem_store_opts;

/*
 * Opens (creating and migrating) DIR/idempotency.db and starts its worker
 * and reaper.  The caller has made and locked state_dir.  opts may be
 * NULL.  NULL with a message in err on failure.
 */
tr_idem_store *tr_idem_store_open(uv_loop_t *loop, const char *state_dir,
                                  const tr_idem_store_opts *opts, char *err,
                                  size_t errlen);

/* Finishes every queued job (their callbacks run here, on the loop),
 * stops the thread and the reaper.  Run the loop once afterwards so the
 * handles close.  NULL is a no-op. */
void tr_idem_store_close(tr_idem_store *s);

/* For /readyz and the 503 decision before even trying. */
bool tr_idem_store_available(const tr_idem_store *s);

/*
 * A record read from the store.  rec's headers and body point into this
 * allocation; free it with tr_idem_stored_free().
 */
typedef struct {
    tr_idem_record rec;
} tr_idem_stored;

void tr_idem_stored_free(tr_idem_stored *st);

/* ---- step 6 ---- */

/* found: the record (yours to free), or NULL when there is no row.  An
 * expired row is returned as is; tr_idem_lookup() treats it as absent. */
typedef void (*tr_idem_lookup_cb)(void *arg, int status,
                                  tr_idem_stored *found);

int tr_idem_store_lookup(tr_idem_store *s, const void *scope,
                         size_t scope_len, const tr_idem_key *key,
                         tr_idem_lookup_cb cb, void *arg);

/* ---- step 8 ---- */

/*
 * won: the key is ours; rec is our fresh claim.  Lost: rec is the record
 * that holds the key (the winner's claim or outcome), to be answered as
 * step 6 would.  rec is yours to free in both cases (NULL when status <
 * 0).
 */
typedef void (*tr_idem_claim_cb)(void *arg, int status, bool won,
                                 tr_idem_stored *rec);

/*
 * Claims (scope, key) for `owner` (16 random bytes from the OS) with
 * fingerprint fp, a lease of lease_ms from now_ms, and the route's TTL.
 * The claim wins when no live record holds the key: none, an expired one,
 * or (route after_crash: reexecute) an in-flight one with the same
 * fingerprint whose lease ran out.  cfg is read at the call only.
 */
int tr_idem_store_claim(tr_idem_store *s, const void *scope,
                        size_t scope_len, const tr_idem_key *key,
                        const uint8_t fp[TR_FP_LEN],
                        const uint8_t owner[TR_IDEM_OWNER_LEN],
                        uint32_t lease_ms, const tr_idem_cfg *cfg,
                        int64_t now_ms, tr_idem_claim_cb cb, void *arg);

/* ---- step 10 ---- */

/* ok: the owner still holds the record and the write was made; false:
 * the claim was lost (taken over, released, completed) and nothing was
 * written. */
typedef void (*tr_idem_done_cb)(void *arg, int status, bool ok);

/* Extends the lease to now_ms + lease_ms.  cb may be NULL. */
int tr_idem_store_renew(tr_idem_store *s, const void *scope,
                        size_t scope_len, const tr_idem_key *key,
                        const uint8_t owner[TR_IDEM_OWNER_LEN],
                        uint32_t lease_ms, int64_t now_ms,
                        tr_idem_done_cb cb, void *arg);

/*
 * Stores the outcome (tr_idem_complete() rules: over storage_cap or
 * body_dropped -> completed but not replayable).  res's headers and body
 * are copied at the call.  Not fail-fast: while the store is down the
 * write waits in the queue and is retried.  cb may be NULL.
 */
int tr_idem_store_complete(tr_idem_store *s, const void *scope,
                           size_t scope_len, const tr_idem_key *key,
                           const uint8_t owner[TR_IDEM_OWNER_LEN],
                           const tr_idem_result *res,
                           const tr_idem_cfg *cfg, int64_t now_ms,
                           tr_idem_done_cb cb, void *arg);

/* Deletes the claim so a true retry may run.  Retried like complete.
 * cb may be NULL. */
int tr_idem_store_release(tr_idem_store *s, const void *scope,
                          size_t scope_len, const tr_idem_key *key,
                          const uint8_t owner[TR_IDEM_OWNER_LEN],
                          tr_idem_done_cb cb, void *arg);

/* ---- expiry ---- */

typedef void (*tr_idem_reap_cb)(void *arg, int status, size_t deleted);

/* Deletes at most `limit` rows expired at now_ms (a running lease keeps
 * its row).  The background reaper uses this; cb may be NULL. */
int tr_idem_store_reap(tr_idem_store *s, int64_t now_ms, size_t limit,
                       tr_idem_reap_cb cb, void *arg);

typedef struct {
    uint64_t lookups;
    uint64_t claims_won;
    uint64_t claims_lost;
    uint64_t renewals_refused;  /* owner no longer held the record */
    uint64_t completions;
    uint64_t completions_refused;
    uint64_t releases;
    uint64_t reaped;            /* rows deleted by expiry */
    uint64_t failures;          /* jobs that ended with status < 0 */
    size_t backlog;
    bool available;
} tr_idem_store_stats;

void tr_idem_store_get_stats(const tr_idem_store *s,
                             tr_idem_store_stats *out);

/* "DIR/idempotency.db" into buf; false if it does not fit. */
bool tr_idem_db_path(const char *state_dir, char *buf, size_t len);

#endif
