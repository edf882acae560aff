/*
 * What a broken audit trail means: from the first record that does not
 * continue the chain (core/audit_chain.h), tell an edited record from a
 * deleted, inserted or reordered one.  Pure: the caller reads the rows.
 *
 * The clues, each a hash computation:
 *   - a record "fits at" position s when its fields, hashed as if its seq
 *     were s after its own prev_hash, give its stored hash: it is a
 *     genuine record written at s, wherever it sits now;
 *   - the "displaced" record is the one elsewhere in the table whose
 *     prev_hash is the last good record's hash: the record that should
 *     have come next, found further on.
 * The finding names the first affected position; the whole table is not
 * searched, so a mix of several tamperings is named by the first one.
 */
#ifndef TREATY_CORE_AUDIT_FINDINGS_H
#define TREATY_CORE_AUDIT_FINDINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/audit_record.h"

typedef enum {
    TR_AUDIT_INTACT = 0,
    TR_AUDIT_EDITED,       /* fields changed (maybe the hash recomputed) */
    TR_AUDIT_DELETED,      /* records missing (with or without renumbering) */
    TR_AUDIT_REORDERED,    /* records moved or swapped */
    TR_AUDIT_INSERTED,     /* records that were never written by treaty */
    TR_AUDIT_TRUNCATED,    /* newest records removed (checkpoint beyond end) */
    TR_AUDIT_ROLLED_BACK,  /* the database is another or an older copy */
    TR_AUDIT_BAD_SIGNATURE, /* a checkpoint's signature does not verify */
    TR_AUDIT_FINDING__COUNT
} tr_audit_finding;

/* How far (in positions) a record is tried at other sequence numbers. */
#define TR_AUDIT_SEARCH_MAX 64

typedef struct {
    tr_audit_finding finding;
    uint64_t seq;     /* first affected position (original numbering) */
    uint64_t count;   /* records deleted or inserted; 0 when unknown */
    bool renumbered;  /* DELETED: the later records were renumbered */
    bool rehashed;    /* EDITED: its hash was recomputed, so the break
                       * shows at the next record */
} tr_audit_break;

/* "edited", "deleted", ...; "intact" for TR_AUDIT_INTACT. */
const char *tr_audit_finding_name(tr_audit_finding f);

/* Does r hash to its stored hash when placed at seq (after its own
 * prev_hash)?  False also when hashing fails. */
bool tr_audit_fits_at(const tr_audit_record *r, uint64_t seq);

/*
 * Classifies the first break of a chain walk.  last_seq, last_hash: the
 * last record that verified (or the start: 0 and zeros, or the signed
 * anchor the trail starts after; then from_anchor is true).  bad: the
 * first record that did not verify after it.  displaced: the record with
 * seq > bad->seq whose prev_hash equals last_hash, or NULL when there is
 * none.
 */
tr_audit_break tr_audit_classify_break(uint64_t last_seq,
                                       const uint8_t last_hash[32],
                                       bool from_anchor,
                                       const tr_audit_record *bad,
                                       const tr_audit_record *displaced);

#endif
