/* The audit trail's integrity check (store/audit_verify.h). */
#include "store/audit_verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/audit_chain.h"
#include "core/b64url.h"

typedef struct {
    tr_audit_checkpoint cp;
    bool external;
} cp_ent;

typedef struct {
    const tr_audit_verify_opts *o;
    tr_audit_verify_report *out;
    cp_ent *v;                 /* checkpoints with a good signature */
    size_t n, cap;
} vctx;

static int
push(vctx *c, const tr_audit_checkpoint *cp, bool external)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        cp_ent *p = realloc(c->v, cap * sizeof(*p));

        if (!p)
            return -1;
        c->v = p;
        c->cap = cap;
    }
    c->v[c->n].cp = *cp;
    c->v[c->n].external = external;
    c->n++;
    return 0;
}

static void
note_bad(vctx *c, uint64_t seq, bool external, int status)
{
    if (c->out->bad_signatures++ == 0) {
        c->out->first_bad_seq = seq;
        c->out->first_bad_external = external;
        c->out->first_bad_status = status;
    }
}

/* Keeps cp when its signature verifies; counts it otherwise. */
static int
consider(vctx *c, const tr_audit_checkpoint *cp, bool external)
{
    int st = tr_audit_checkpoint_verify(cp, c->o->keys, c->o->n_keys);

    if (st != TR_AUDIT_CP_OK) {
        note_bad(c, cp->seq, external, st);
        return 0;
    }
    if (external)
        c->out->ext_checkpoints++;
    else
        c->out->db_checkpoints++;
    return push(c, cp, external);
}

/* A row of audit_checkpoint -> checkpoint; false when malformed. */
static bool
decode_cp(sqlite3_stmt *st, tr_audit_checkpoint *cp)
{
    const char *hash = (const char *)sqlite3_column_text(st, 1);
    const char *kind = (const char *)sqlite3_column_text(st, 2);
    const char *kid = (const char *)sqlite3_column_text(st, 4);
    const char *sig = (const char *)sqlite3_column_text(st, 5);
    size_t siglen;
    int k = tr_audit_cp_kind_parse(kind);

    memset(cp, 0, sizeof(*cp));
    cp->seq = (uint64_t)sqlite3_column_int64(st, 0);
    cp->time_ms = sqlite3_column_int64(st, 3);
    if (k < 0 || !tr_audit_unhex(hash, cp->hash, 32) || !kid ||
        strlen(kid) >= sizeof(cp->kid) || !sig ||
        tr_b64url_decode(sig, strlen(sig), cp->sig, sizeof(cp->sig),
                         &siglen) != 0 ||
        siglen != sizeof(cp->sig))
        return false;
    cp->kind = (tr_audit_cp_kind)k;
    memcpy(cp->kid, kid, strlen(kid) + 1);
    return true;
}

static int
load_db_checkpoints(tr_audit_reader *r, vctx *c, char *err, size_t errlen)
{
    sqlite3 *db = tr_audit_reader_db(r);
    sqlite3_stmt *st;
    int rc;

    if (tr_audit_reader_version(r) < 2)
        return 0;
    rc = sqlite3_prepare_v2(db, "SELECT seq, hash, kind, time_ms, kid, sig"
                            " FROM audit_checkpoint ORDER BY seq, id", -1,
                            &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "verify: %s", sqlite3_errmsg(db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tr_audit_checkpoint cp;

        if (!decode_cp(st, &cp))
            note_bad(c, cp.seq, false, TR_AUDIT_CP_E_FORMAT);
        else if (consider(c, &cp, false) != 0)
            rc = SQLITE_NOMEM;
        if (rc != SQLITE_ROW)
            break;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "verify: %s", rc == SQLITE_NOMEM
                 ? "out of memory" : sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static int
cmp_ent(const void *pa, const void *pb)
{
    const cp_ent *a = pa, *b = pb;

    if (a->cp.seq != b->cp.seq)
        return a->cp.seq < b->cp.seq ? -1 : 1;
    return (int)a->external - (int)b->external;
}

static void
set_history(tr_audit_verify_report *out, tr_audit_finding f, uint64_t seq,
            bool external)
{
    if (out->history != TR_AUDIT_INTACT)
        return;
    out->history = f;
    out->history_seq = seq;
    out->history_external = external;
}

/* Two good signatures over different hashes for one seq: a fork. */
static void
find_forks(vctx *c)
{
    for (size_t i = 0; i + 1 < c->n; i++) {
        if (c->v[i].cp.seq == c->v[i + 1].cp.seq &&
            memcmp(c->v[i].cp.hash, c->v[i + 1].cp.hash, 32) != 0) {
            set_history(c->out, TR_AUDIT_ROLLED_BACK, c->v[i].cp.seq,
                        c->v[i].external || c->v[i + 1].external);
            return;
        }
    }
}

static int
db_bounds(sqlite3 *db, tr_audit_verify_report *out, char *err,
          size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT min(seq), max(seq), count(*)"
                                " FROM audit", -1, &st, NULL);

    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        out->first_seq = (uint64_t)sqlite3_column_int64(st, 0);
        out->last_seq = (uint64_t)sqlite3_column_int64(st, 1);
        out->records = (uint64_t)sqlite3_column_int64(st, 2);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "verify: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/*
 * Where the chain starts: seq 1 from zeros, or after a signed checkpoint
 * at first - 1 (retention's anchor).  Without one the head is missing:
 * reported as deleted, from the last signed point before it.
 */
static bool
find_start(vctx *c, uint64_t *seq, uint8_t hash[32])
{
    tr_audit_verify_report *out = c->out;
    uint64_t first = out->first_seq, below = 0;

    *seq = 0;
    memset(hash, 0, 32);
    if (first <= 1)
        return true;
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].cp.seq == first - 1) {
            *seq = first - 1;
            memcpy(hash, c->v[i].cp.hash, 32);
            out->anchored = true;
            out->start_seq = *seq;
            out->has_good_cp = true;
            out->good_cp = c->v[i].cp;
            out->good_cp_external = c->v[i].external;
            return true;
        }
        if (c->v[i].cp.seq < first - 1)
            below = c->v[i].cp.seq;
    }
    out->chain.finding = TR_AUDIT_DELETED;
    out->chain.seq = below + 1;
    out->chain.count = first - below - 1;
    return false;
}

/* The record elsewhere whose prev_hash is `hash`: the one that belonged
 * after the last good record.  Found: decoded into rec (strings valid
 * until the statement is finalized). */
static sqlite3_stmt *
find_displaced(sqlite3 *db, const uint8_t hash[32], uint64_t after,
               tr_audit_record *rec)
{
    sqlite3_stmt *st;
    char hex[65];

    tr_audit_hex(hash, 32, hex);
    if (sqlite3_prepare_v2(db, "SELECT " TR_AUDIT_RECORD_COLUMNS
                           " FROM audit a WHERE a.prev_hash = ?1"
                           " AND a.seq > ?2 ORDER BY a.seq LIMIT 1", -1,
                           &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (int64_t)after);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return NULL;
    }
    tr_audit_row_decode(st, rec);
    return st;
}

/* The checkpoints at rec's seq must name its hash. */
static size_t
match_checkpoints(vctx *c, size_t i, const tr_audit_record *rec)
{
    tr_audit_verify_report *out = c->out;

    while (i < c->n && c->v[i].cp.seq < rec->seq)
        i++;
    for (; i < c->n && c->v[i].cp.seq == rec->seq; i++) {
        if (memcmp(c->v[i].cp.hash, rec->hash, 32) != 0) {
            set_history(out, TR_AUDIT_ROLLED_BACK, rec->seq,
                        c->v[i].external);
            continue;
        }
        if (!out->has_good_cp || out->good_cp.seq != rec->seq)
            out->good_cp_external = false;
        out->has_good_cp = true;
        out->good_cp = c->v[i].cp;
        out->good_cp_external |= c->v[i].external;
    }
    return i;
}

static int
walk(tr_audit_reader *r, vctx *c, uint64_t seq, const uint8_t start[32],
     char *err, size_t errlen)
{
    tr_audit_verify_report *out = c->out;
    sqlite3 *db = tr_audit_reader_db(r);
    uint64_t last_seq = seq;
    uint8_t last_hash[32];
    sqlite3_stmt *st;
    size_t i = 0;
    int rc;

    memcpy(last_hash, start, 32);
    out->last_good_seq = seq;
    memcpy(out->last_good_hash, start, 32);
    rc = sqlite3_prepare_v2(db, "SELECT " TR_AUDIT_RECORD_COLUMNS
                            " FROM audit a ORDER BY a.seq", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "verify: %s", sqlite3_errmsg(db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tr_audit_record rec, moved;
        sqlite3_stmt *dst;
        tr_chain_check check;

        tr_audit_row_decode(st, &rec);
        check = tr_audit_chain_verify(&rec, last_seq, last_hash);
        if (check == TR_CHAIN_CRYPTO_ERROR) {
            snprintf(err, errlen, "verify: hashing failed");
            sqlite3_finalize(st);
            return -1;
        }
        if (check != TR_CHAIN_OK) {
            dst = find_displaced(db, last_hash, rec.seq, &moved);
            out->chain = tr_audit_classify_break(
                last_seq, last_hash, out->anchored && last_seq == seq,
                &rec, dst ? &moved : NULL);
            sqlite3_finalize(dst);
            rc = SQLITE_DONE;
            break;
        }
        out->checked++;
        i = match_checkpoints(c, i, &rec);
        last_seq = rec.seq;
        memcpy(last_hash, rec.hash, 32);
        out->last_good_seq = last_seq;
        memcpy(out->last_good_hash, last_hash, 32);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "verify: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Checkpoints beyond the last record of an intact chain. */
static void
beyond_end(vctx *c)
{
    tr_audit_verify_report *out = c->out;
    uint64_t ext_seq = 0;

    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].cp.seq <= out->last_good_seq)
            continue;
        if (!c->v[i].external) {
            set_history(out, TR_AUDIT_TRUNCATED, c->v[i].cp.seq, false);
            return;
        }
        if (!ext_seq)
            ext_seq = c->v[i].cp.seq;
    }
    if (ext_seq)
        set_history(out, TR_AUDIT_ROLLED_BACK, ext_seq, true);
}

int
tr_audit_verify(tr_audit_reader *r, const tr_audit_verify_opts *o,
                tr_audit_verify_report *out, char *err, size_t errlen)
{
    vctx c = { o, out, NULL, 0, 0 };
    uint8_t start[32];
    uint64_t seq;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < o->external_malformed; i++)
        note_bad(&c, 0, true, TR_AUDIT_CP_E_FORMAT);
    /* One read transaction: every statement below sees the same
     * snapshot while the gateway keeps writing. */
    if (sqlite3_exec(tr_audit_reader_db(r), "BEGIN", NULL, NULL, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "verify: %s",
                 sqlite3_errmsg(tr_audit_reader_db(r)));
        goto done;
    }
    if (load_db_checkpoints(r, &c, err, errlen) != 0)
        goto done;
    for (size_t i = 0; i < o->n_external; i++) {
        if (consider(&c, &o->external[i], true) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    if (c.n)
        qsort(c.v, c.n, sizeof(*c.v), cmp_ent);
    find_forks(&c);
    if (db_bounds(tr_audit_reader_db(r), out, err, errlen) != 0)
        goto done;
    if (find_start(&c, &seq, start)) {
        if (walk(r, &c, seq, start, err, errlen) != 0)
            goto done;
        if (out->chain.finding == TR_AUDIT_INTACT)
            beyond_end(&c);
    }
    out->uncovered = out->last_good_seq -
                     (out->has_good_cp ? out->good_cp.seq : out->start_seq);
    rc = 0;
done:
    if (!sqlite3_get_autocommit(tr_audit_reader_db(r)))
        sqlite3_exec(tr_audit_reader_db(r), "COMMIT", NULL, NULL, NULL);
    free(c.v);
    return rc;
}

tr_audit_finding
tr_audit_verify_verdict(const tr_audit_verify_report *v)
{
    if (v->chain.finding != TR_AUDIT_INTACT)
        return v->chain.finding;
    if (v->history != TR_AUDIT_INTACT)
        return v->history;
    if (v->bad_signatures)
        return TR_AUDIT_BAD_SIGNATURE;
    return TR_AUDIT_INTACT;
}

int
tr_audit_checkpoints_read(const char *path, tr_audit_checkpoint **out,
                          size_t *n, size_t *malformed, char *err,
                          size_t errlen)
{
    FILE *f = fopen(path, "r");
    tr_audit_checkpoint *v = NULL, cp;
    size_t cap = 0, linecap = 0;
    char *line = NULL;
    ssize_t len;

    *out = NULL;
    *n = *malformed = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while ((len = getline(&line, &linecap, f)) >= 0) {
        int st;

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        st = tr_audit_checkpoint_from_json(line, (size_t)len, &cp);
        if (st == TR_AUDIT_CP_NOT_CHECKPOINT)
            continue;
        if (st != TR_AUDIT_CP_OK) {
            (*malformed)++;
            continue;
        }
        if (*n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            tr_audit_checkpoint *p = realloc(v, ncap * sizeof(*p));

            if (!p) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            v = p;
            cap = ncap;
        }
        v[(*n)++] = cp;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    free(line);
    fclose(f);
    *out = v;
    return 0;
fail:
    free(line);
    free(v);
    fclose(f);
    *n = 0;
    return -1;
}
