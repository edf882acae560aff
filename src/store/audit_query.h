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

#endif
