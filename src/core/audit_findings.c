#include "core/audit_findings.h"

#include <string.h>

#include "core/audit_chain.h"

static const char *const names[TR_AUDIT_FINDING__COUNT] = {
    [TR_AUDIT_INTACT] = "intact",
    [TR_AUDIT_EDITED] = "edited",
    [TR_AUDIT_DELETED] = "deleted",
    [TR_AUDIT_REORDERED] = "reordered",
    [TR_AUDIT_INSERTED] = "inserted",
    [TR_AUDIT_TRUNCATED] = "truncated",
    [TR_AUDIT_ROLLED_BACK] = "rolled back",
    [TR_AUDIT_BAD_SIGNATURE] = "bad signature",
};

const char *
tr_audit_finding_name(tr_audit_finding f)
{
    if ((unsigned)f >= TR_AUDIT_FINDING__COUNT)
        return "unknown";
    return names[f];
}

bool
tr_audit_fits_at(const tr_audit_record *r, uint64_t seq)
{
    tr_audit_record at = *r;
    uint8_t h[TR_AUDIT_HASH_LEN];

    at.seq = seq;
    if (tr_audit_chain_hash(r->prev_hash, &at, h) != 0)
        return false;
    return memcmp(h, r->hash, sizeof(h)) == 0;
}

/* Is r a genuine record from a position in [from, to]? */
static bool
fits_between(const tr_audit_record *r, uint64_t from, uint64_t to)
{
    for (uint64_t s = from; s <= to && s != 0; s++)
        if (tr_audit_fits_at(r, s))
            return true;
    return false;
}

static tr_audit_break
found(tr_audit_finding f, uint64_t seq, uint64_t count)
{
    tr_audit_break b;

    memset(&b, 0, sizeof(b));
    b.finding = f;
    b.seq = seq;
    b.count = count;
    return b;
}

tr_audit_break
tr_audit_classify_break(uint64_t last_seq, const uint8_t last_hash[32],
                        bool from_anchor, const tr_audit_record *bad,
                        const tr_audit_record *displaced)
{
    uint64_t next = last_seq + 1;
    tr_audit_break b;

    /* The record that belongs next sits further on: whatever is in front
     * of it was either moved there from elsewhere (a genuine record) or
     * never written by treaty. */
    if (displaced && displaced->seq > bad->seq &&
        tr_audit_fits_at(displaced, next)) {
        if (tr_audit_fits_at(bad, displaced->seq) ||
            fits_between(bad, bad->seq, bad->seq + TR_AUDIT_SEARCH_MAX))
            return found(TR_AUDIT_REORDERED, next, 0);
        return found(TR_AUDIT_INSERTED, bad->seq,
                     displaced->seq - bad->seq);
    }
    if (bad->seq > next)
        return found(TR_AUDIT_DELETED, next, bad->seq - next);
    if (memcmp(bad->prev_hash, last_hash, 32) == 0)
        return found(TR_AUDIT_EDITED, bad->seq, 0);
    if (tr_audit_fits_at(bad, bad->seq)) {
        /* A genuine record whose predecessor changed hash: that one was
         * edited and its hash recomputed.  Right after a signed anchor
         * there is no predecessor to blame: the record itself does not
         * continue the signed history. */
        if (from_anchor)
            return found(TR_AUDIT_EDITED, bad->seq, 0);
        b = found(TR_AUDIT_EDITED, last_seq, 0);
        b.rehashed = true;
        return b;
    }
    for (uint64_t d = 1; d <= TR_AUDIT_SEARCH_MAX; d++) {
        if (tr_audit_fits_at(bad, bad->seq + d)) {
            b = found(TR_AUDIT_DELETED, bad->seq, d);
            b.renumbered = true;
            return b;
        }
    }
    for (uint64_t j = 1; j <= TR_AUDIT_SEARCH_MAX && j < bad->seq; j++)
        if (tr_audit_fits_at(bad, bad->seq - j))
            return found(TR_AUDIT_INSERTED, bad->seq - j, j);
    return found(TR_AUDIT_EDITED, bad->seq, 0);
}
