/*
 * The audit trail's store: what the server calls (on the loop thread) to
 * record every request that reached a decision.  Records are copied at
 * submission, chained and written on the audit worker's own thread
 * (store/worker.h) in group-committed batches; the loop never waits.
 *
 * How the server uses it (SPEC.md pipeline step 11, §4):
 *
 *   at each decision, before forwarding or refusing:
 *       if (tr_audit_admit(a, mutating) < 0) -> 503 TR_P_AUDIT_UNAVAILABLE
 *   identity fields: tr_audit_set_identity() (core/audit_identity.h);
 *   stripped_headers: tr_audit_json_strings() (core/audit_chain.h);
 *   config_hash: cfg->hash_hex.
 *   a refusal, a read, a replay, anything not a forwarded mutation:
 *       when the response is done, fill one record with every field
 *       (status, latency, bytes too) and tr_audit_write(a, &rec);
 *       it trails by at most audit.flush_ms.
 *   a forwarded mutating request:
 *       tr_audit_write_decision(a, &rec, cb, arg) at the decision; cb(arg,
 *       status, seq) comes on the loop once the record is committed (or
 *       failed: status < 0 -> answer 503, never acknowledge).  Do not write
 *       the response head before cb said 0.  Waiting for cb before
 *       forwarding is stronger (no mutation runs unrecorded, and a failed
 *       commit refuses a request the backend never saw) and costs one
 *       group commit; waiting only before the response head overlaps the
 *       commit with the upstream round trip, but then a failed commit
 *       answers 503 for a mutation that did run.  Both satisfy SPEC.md;
 *       we recommend waiting before forwarding.
 *       When the response is over: tr_audit_write_completion(a, seq, ...).
 *   a refused token (401 before identity):
 *       tr_audit_note_refused_token(a, now_ms, addr, reason) instead of a
 *       record: one REFUSED_TOKENS row per (address, reason, second).
 *
 * Every function accepts a NULL tr_audit (audit disabled): admit says yes,
 * writes do nothing and return 0, a decision's cb is called at once with
 * status 0 and seq 0.
 *
 * Durability: SQLite WAL.  With audit.sync normal a committed record
 * survives kill -9 of treaty but not a power cut or kernel crash; with
 * full it survives those too.  tr_audit_close() (SIGTERM) commits every
 * accepted record before returning.
 */
#ifndef TREATY_STORE_AUDIT_STORE_H
#define TREATY_STORE_AUDIT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/audit_record.h"
#include "core/config.h"
#include "store/worker.h"

#define TR_AUDIT_DB_FILE "audit.db"
#define TR_AUDIT_SCHEMA_VERSION 2
/* Records one retention batch deletes at most (one short transaction). */
#define TR_AUDIT_PRUNE_BATCH 1000

typedef struct tr_audit tr_audit;

/*
 * Opens (creating and migrating) state_dir/audit.db and starts the audit
 * worker.  The caller has already made and locked state_dir
 * (store/state_dir.h).  NULL with a message in err on failure.
 * cfg must outlive the tr_audit.
 *
 * Signed checkpoints (issue 8): with audit.checkpoint_every N, the record
 * whose seq is a multiple of N gets a signed checkpoint in the same
 * transaction (table audit_checkpoint), and once committed its JSON line
 * goes to audit.checkpoint_file (store/audit_sink.h); at close a last one
 * covers the head.  The key: store/audit_keys.h (created in state_dir
 * when audit.signing_key_file is unset; a key that cannot be loaded
 * refuses start-up, and so does a checkpoint_file inside state_dir).
 *
 * Retention: with audit.retention_days D, a timer queues tr_audit_prune()
 * with now - D days (1 s after open, then every minute, and again at once
 * while batches come back full).
 */
tr_audit *tr_audit_open(uv_loop_t *loop, const char *state_dir,
                        const tr_audit_cfg *cfg, char *err, size_t errlen);

/* Writes the refused-token aggregates, commits everything queued and a
 * shutdown checkpoint, calls pending callbacks, stops the thread.  Run
 * the loop once afterwards so the handles close.  NULL is a no-op. */
void tr_audit_close(tr_audit *a);

/*
 * Queues one retention batch (on the writer thread, like a record):
 * deletes at most TR_AUDIT_PRUNE_BATCH of the oldest records whose time
 * is before cutoff_ms, after verifying them, and leaves a signed anchor
 * at the last one so the rest verifies from there (docs/audit.md
 * "Retention").  The timer calls it; tests call it with any cutoff.
 * 0 (also when nothing signs: retention needs a key), TR_STORE_EAGAIN
 * while a batch is still running, or a TR_STORE_E* code.
 */
int tr_audit_prune(tr_audit *a, int64_t cutoff_ms);

/*
 * May a request go ahead as far as the audit is concerned?  0 yes;
 * otherwise TR_STORE_EAGAIN (backlog over audit.backlog_max) or
 * TR_STORE_EUNAVAILABLE (the last batch failed: disk full, read-only...),
 * and the server answers 503 TR_P_AUDIT_UNAVAILABLE.  Reads get 0 anyway
 * when audit.reads_fail_open is set.  Each refusal is counted.
 */
int tr_audit_admit(tr_audit *a, bool mutating);

/*
 * Queues a complete REQUEST record (rec->kind is ignored; seq and hashes
 * are assigned by the writer).  The record and its strings are copied.
 * 0, or TR_STORE_EAGAIN when the backlog is full (the record is dropped and
 * counted), or TR_STORE_ERROR (out of memory).
 */
int tr_audit_write(tr_audit *a, const tr_audit_record *rec);

/* status 0 and the record's sequence number once committed; < 0 when it
 * could not be written (the request must then be refused with 503). */
typedef void (*tr_audit_durable_cb)(void *arg, int status, uint64_t seq);

/*
 * Queues the DECISION record of a forwarded mutating request, to be
 * committed at once.  0: cb will be called exactly once, on the loop
 * (also if tr_audit_close() comes first).  < 0 (TR_STORE_EAGAIN,
 * TR_STORE_EUNAVAILABLE, TR_STORE_ERROR): not queued, cb is not called,
 * answer 503.
 */
int tr_audit_write_decision(tr_audit *a, const tr_audit_record *rec,
                            tr_audit_durable_cb cb, void *arg);

/*
 * Queues the COMPLETION of the decision `decision_seq` (from its cb).
 * status is the HTTP status sent (or 0 when the client went away before
 * a status line), latency from request start to last byte, bytes of the
 * response.  Allowed past backlog_max (up to twice it) because the
 * request it completes was already admitted.  0 or a TR_STORE_E* code.
 */
int tr_audit_write_completion(tr_audit *a, uint64_t decision_seq,
                              const char *request_id, int64_t time_ms,
                              int status, int64_t latency_us,
                              int64_t bytes);

/*
 * Counts one refused token (bad signature, expired, unknown issuer...)
 * from client_addr in the one-second window of now_ms (wall clock, Unix
 * ms, like record times).  Windows are
 * written as REFUSED_TOKENS rows when a later window starts, by a
 * once-a-second timer, and on close.  At most 256 (address, reason) pairs
 * per window; the rest are counted in one row with address and reason
 * "*".  Claims of a refused token are never recorded here.
 */
void tr_audit_note_refused_token(tr_audit *a, int64_t now_ms,
                                 const char *client_addr,
                                 const char *reason);

/* Writes every aggregate of a window that ended before now_ms. */
void tr_audit_flush_refused(tr_audit *a, int64_t now_ms);

/* For /readyz: the store works and the backlog is under backlog_max. */
bool tr_audit_available(const tr_audit *a);

typedef struct {
    uint64_t records_written;   /* committed rows, all kinds */
    uint64_t batches;           /* committed transactions */
    uint64_t batch_failures;    /* rolled-back transactions */
    size_t max_batch;           /* most records in one transaction */
    uint64_t records_dropped;   /* not queued: backlog full, no memory */
    uint64_t records_failed;    /* decision records that failed */
    uint64_t admit_refusals;    /* tr_audit_admit() said no (503s) */
    uint64_t reads_unaudited;   /* reads let through while it said no */
    uint64_t refused_tokens;    /* refusals noted (aggregated) */
    size_t backlog;             /* records queued, not yet committed */
    uint64_t last_seq;          /* last committed sequence number */
    int last_error;             /* TR_STORE_E* of the last failure */
    bool available;
    uint64_t checkpoints;       /* committed signed checkpoints, anchors */
    uint64_t checkpoint_failures; /* checkpoints not signed (skipped) */
    uint64_t sink_failures;     /* failed writes to checkpoint_file */
    uint64_t sink_dropped;      /* checkpoint line bytes given up */
    uint64_t records_pruned;    /* deleted by retention */
    uint64_t prune_refusals;    /* batches stopped at a record that does
                                 * not verify: retention is stuck there */
} tr_audit_stats;

void tr_audit_get_stats(const tr_audit *a, tr_audit_stats *out);

/* "DIR/audit.db" into buf; false if it does not fit. */
bool tr_audit_db_path(const char *state_dir, char *buf, size_t len);

/* The schema migrations, for tools that open the file themselves. */
extern const char *const tr_audit_migrations[];
extern const int tr_audit_n_migrations;

#endif
