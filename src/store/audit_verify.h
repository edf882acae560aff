/*
 * The whole integrity check of an audit database (`treaty audit verify`):
 * the hash chain, the signed checkpoints in the database and, when the
 * operator gives one, in the external checkpoint file.
 *
 * 1. Every checkpoint's signature is checked against the trusted keys
 *    (store/audit_keys.h); those that fail are reported and not used.
 * 2. The trail starts at seq 1, or after the signed anchor retention left
 *    at first - 1; a trail that starts later without one lost its head.
 * 3. The chain is walked from there; the first break is classified
 *    (core/audit_findings.h).  Each checkpoint the walk passes must name
 *    the hash the record has.
 * 4. History: a checkpoint whose hash differs from the record's, or two
 *    checkpoints that disagree about one seq, mean the database is not
 *    the one that was signed (ROLLED_BACK: another or an older copy, later
 *    written on).  A checkpoint beyond the last record means records are
 *    missing at the end: TRUNCATED when the database's own checkpoint
 *    table names it (rows were deleted from this database), ROLLED_BACK
 *    when only the external file does (the database is consistent with
 *    itself, as an older copy is).  A thorough truncation that also
 *    deletes its checkpoint rows looks exactly like an older copy; both
 *    mean that records the signature covers are gone.
 */
#ifndef TREATY_STORE_AUDIT_VERIFY_H
#define TREATY_STORE_AUDIT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit_checkpoint.h"
#include "core/audit_findings.h"
#include "store/audit_query.h"

typedef struct {
    const tr_txn_key *keys;            /* trusted keys */
    size_t n_keys;
    const tr_audit_checkpoint *external; /* from the checkpoint file */
    size_t n_external;
    size_t external_malformed;         /* lines that did not parse */
} tr_audit_verify_opts;

typedef struct {
    uint64_t records;          /* rows in the database */
    uint64_t first_seq, last_seq; /* 0 when empty */
    bool anchored;             /* starts after a signed anchor */
    uint64_t start_seq;        /* ...at this seq (0 from the beginning) */
    uint64_t checked;          /* records that verified */
    uint64_t last_good_seq;
    uint8_t last_good_hash[32];
    tr_audit_break chain;      /* INTACT, or the first break */

    size_t db_checkpoints, ext_checkpoints; /* with a good signature */
    size_t bad_signatures;     /* including malformed ones and unknown kids */
    bool first_bad_external;
    uint64_t first_bad_seq;
    int first_bad_status;      /* TR_AUDIT_CP_E_* */

    bool has_good_cp;          /* the newest checkpoint the trail matches */
    tr_audit_checkpoint good_cp;
    bool good_cp_external;     /* (also) in the external file */
    uint64_t uncovered;        /* records after it, chain-protected only */

    tr_audit_finding history;  /* INTACT, TRUNCATED or ROLLED_BACK */
    uint64_t history_seq;      /* the checkpoint's seq that shows it */
    bool history_external;
} tr_audit_verify_report;

/* 0 (see the report), or -1 with a message when the database could not
 * be read. */
int tr_audit_verify(tr_audit_reader *r, const tr_audit_verify_opts *o,
                    tr_audit_verify_report *out, char *err, size_t errlen);

/* The overall finding, most serious first: a chain break, then a
 * history finding, then bad signatures; INTACT otherwise. */
tr_audit_finding tr_audit_verify_verdict(const tr_audit_verify_report *v);

/*
 * Reads an external checkpoint file (JSON lines; other lines skipped).
 * *out is malloc'd (free it); *malformed counts checkpoint lines that do
 * not parse.  0, or -1 with a message in err.
 */
int tr_audit_checkpoints_read(const char *path, tr_audit_checkpoint **out,
                              size_t *n, size_t *malformed, char *err,
                              size_t errlen);

#endif
