/*
 * Reading the audit trail: a read-only connection for `treaty audit` (and
 * tests).  Works while the gateway writes: WAL readers see the last commit
 * and never block the writer.
 */
#ifndef TREATY_STORE_AUDIT_QUERY_H
#define TREATY_STORE_AUDIT_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "core/audit_chain.h"
#include "core/audit_record.h"

typedef struct tr_audit_reader tr_audit_reader;

/* Opens db_path read-only; NULL with a message when it is missing, not
 * an audit database, or of a newer schema. */
tr_audit_reader *tr_audit_reader_open(const char *db_path, char *err,
                                      size_t errlen);
void tr_audit_reader_close(tr_audit_reader *r);

typedef struct {
    const char *principal;     /* principal sub */
    const char *issuer;        /* principal's issuer name */
    const char *actor;         /* current actor or anywhere in the chain */
    const char *route;
    const char *tool;
    const char *decision;      /* allow | deny | error */
    const char *reason;
    const char *kind;          /* request | decision | completion | ... */
    const char *method;        /* GET, POST, ... (exact) */
    bool has_since;
    int64_t since_ms;          /* time_ms >= since */
    bool has_until;
    int64_t until_ms;          /* time_ms < until */
    uint64_t after_seq;        /* seq > after_seq (follow mode) */
    size_t last;               /* only the newest N (still in seq order) */
    /* Leave completion rows out and attach each to its decision. */
    bool merge_completions;
} tr_audit_filter;

/* The completion row attached to a decision (merge_completions). */
typedef struct {
    bool present;
    uint64_t seq;
    int64_t time_ms;
    bool has_status;
    int32_t status;
    bool has_latency;
    int64_t latency_us;
    bool has_bytes;
    int64_t bytes;
} tr_audit_completion;

/* Called per record in sequence order; strings are valid during the call
 * only.  A non-zero return stops the walk and is returned. */
typedef int (*tr_audit_row_fn)(void *arg, const tr_audit_record *rec,
                               const tr_audit_completion *completion);

/* 0, the callback's non-zero value, or -1 with a message in err. */
int tr_audit_reader_each(tr_audit_reader *r, const tr_audit_filter *f,
                         tr_audit_row_fn fn, void *arg, char *err,
                         size_t errlen);

/* Per (current actor, delegation chain, route, decision): how many
 * requests, and the first and last time.  Strings valid during the
 * callback only. */
typedef struct {
    const char *actor;
    const char *delegation_chain; /* JSON text, current actor first */
    const char *route;
    const char *decision;      /* allow | deny | error | NULL */
    uint64_t count;
    int64_t first_ms, last_ms;
} tr_audit_summary_row;

typedef int (*tr_audit_summary_fn)(void *arg,
                                   const tr_audit_summary_row *row);

/*
 * "What each actor did": request and decision records matching f (the
 * after_seq, last and merge_completions members are ignored), grouped
 * as above, ordered by actor, chain, route, decision.  0, the callback's
 * non-zero value, or -1 with a message in err.
 */
int tr_audit_reader_summary(tr_audit_reader *r, const tr_audit_filter *f,
                            tr_audit_summary_fn fn, void *arg, char *err,
                            size_t errlen);

/* The plain chain walk (no checkpoints; see store/audit_verify.h for the
 * full check). */
typedef struct {
    uint64_t records;          /* rows checked */
    uint64_t last_good_seq;    /* last record that verified */
    uint8_t last_good_hash[32];
    uint64_t bad_seq;          /* first bad record's seq, 0 when intact */
    tr_chain_check finding;    /* TR_CHAIN_OK when intact */
} tr_audit_verify_result;

/* Walks the whole chain from seq 1.  0 (see out->finding), or -1 with a
 * message when the database could not be read. */
int tr_audit_reader_verify(tr_audit_reader *r, tr_audit_verify_result *out,
                           char *err, size_t errlen);

/* --- for the other store/audit_*.c files ------------------------------ */

/* The record columns of `audit a`, in the order the decoder reads them;
 * a statement selecting them first can be decoded row by row. */
#define TR_AUDIT_RECORD_COLUMNS                                           \
    "a.seq, a.prev_hash, a.hash, a.kind, a.time_ms, a.request_id,"         \
    " a.client_addr, a.principal_issuer, a.principal_sub, a.actor,"        \
    " a.delegation_chain, a.client_id, a.token_id, a.token_hash,"          \
    " a.token_verified, a.route, a.tool, a.method, a.path, a.decision,"    \
    " a.reason, a.policy_rule, a.limiter, a.idem_key_hash, a.idem_replay," \
    " a.precondition, a.status, a.latency_us, a.bytes, a.config_hash,"     \
    " a.stripped_headers, a.completes_seq, a.count"
#define TR_AUDIT_N_RECORD_COLUMNS 33

/* Current row -> record; strings point into the statement's row. */
void tr_audit_row_decode(sqlite3_stmt *st, tr_audit_record *r);

sqlite3 *tr_audit_reader_db(tr_audit_reader *r);

/* PRAGMA user_version of the file (1: no checkpoints table). */
int tr_audit_reader_version(const tr_audit_reader *r);

#endif
