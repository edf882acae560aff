/* Read-only access to the audit trail: filtered walks and chain
 * verification (store/audit_query.h). */
#include "store/audit_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/audit_store.h"

struct tr_audit_reader {
    sqlite3 *db;
    int version;
};

#define RECORD_COLUMNS TR_AUDIT_RECORD_COLUMNS
#define N_RECORD_COLUMNS TR_AUDIT_N_RECORD_COLUMNS

tr_audit_reader *
tr_audit_reader_open(const char *db_path, char *err, size_t errlen)
{
    tr_audit_reader *r = calloc(1, sizeof(*r));
    sqlite3_stmt *st = NULL;
    int rc, version = -1;

    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rc = sqlite3_open_v2(db_path, &r->db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db_path,
                 r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(r->db, 5000);
    rc = sqlite3_prepare_v2(r->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) {
        snprintf(err, errlen, "%s: %s", db_path, sqlite3_errmsg(r->db));
        goto fail;
    }
    if (version == 0) {
        snprintf(err, errlen, "%s: not an audit database (empty schema)",
                 db_path);
        goto fail;
    }
    if (version > tr_audit_n_migrations) {
        snprintf(err, errlen, "%s: schema version %d is newer than this "
                 "treaty reads (%d)", db_path, version,
                 tr_audit_n_migrations);
        goto fail;
    }
    r->version = version;
    return r;
fail:
    sqlite3_close_v2(r->db);
    free(r);
    return NULL;
}

void
tr_audit_reader_close(tr_audit_reader *r)
{
    if (!r)
        return;
    sqlite3_close_v2(r->db);
    free(r);
}

static const char *
text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static bool
present(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) != SQLITE_NULL;
}

sqlite3 *
tr_audit_reader_db(tr_audit_reader *r)
{
    return r->db;
}

int
tr_audit_reader_version(const tr_audit_reader *r)
{
    return r->version;
}

/* A malformed hash column decodes to zeros (prev_hash to 0xff), which the
 * chain check then reports as a mismatch. */
void
tr_audit_row_decode(sqlite3_stmt *st, tr_audit_record *r)
{
    int k, d;

    memset(r, 0, sizeof(*r));
    r->seq = (uint64_t)sqlite3_column_int64(st, 0);
    if (!tr_audit_unhex(text(st, 1), r->prev_hash, 32))
        memset(r->prev_hash, 0xff, 32);
    if (!tr_audit_unhex(text(st, 2), r->hash, 32))
        memset(r->hash, 0, 32);
    k = tr_audit_kind_parse(text(st, 3));
    /* An unknown kind cannot be re-encoded: an out-of-range value makes
     * the hash check fail, as it should. */
    r->kind = k < 0 ? TR_AUDIT_KIND__COUNT : (tr_audit_kind)k;
    r->time_ms = sqlite3_column_int64(st, 4);
    r->request_id = text(st, 5);
    r->client_addr = text(st, 6);
    r->principal_issuer = text(st, 7);
    r->principal_sub = text(st, 8);
    r->actor = text(st, 9);
    r->delegation_chain = text(st, 10);
    r->client_id = text(st, 11);
    r->token_id = text(st, 12);
    r->token_hash = text(st, 13);
    r->has_token_verified = present(st, 14);
    r->token_verified = sqlite3_column_int(st, 14) != 0;
    r->route = text(st, 15);
    r->tool = text(st, 16);
    r->method = text(st, 17);
    r->path = text(st, 18);
    if (present(st, 19)) {
        d = tr_audit_decision_parse(text(st, 19));
        r->decision = d <= 0 ? (tr_audit_decision)99
                             : (tr_audit_decision)d;
    }
    r->reason = text(st, 20);
    r->policy_rule = text(st, 21);
    r->limiter = text(st, 22);
    r->idem_key_hash = text(st, 23);
    r->has_idem_replay = present(st, 24);
    r->idem_replay = sqlite3_column_int(st, 24) != 0;
    r->precondition = text(st, 25);
    r->has_status = present(st, 26);
    r->status = sqlite3_column_int(st, 26);
    r->has_latency = present(st, 27);
    r->latency_us = sqlite3_column_int64(st, 27);
    r->has_bytes = present(st, 28);
    r->bytes = sqlite3_column_int64(st, 28);
    r->config_hash = text(st, 29);
    r->stripped_headers = text(st, 30);
    r->has_completes_seq = present(st, 31);
    r->completes_seq = (uint64_t)sqlite3_column_int64(st, 31);
    r->has_count = present(st, 32);
    r->count = sqlite3_column_int64(st, 32);
}

typedef struct {
    char sql[2048];
    size_t len;
    bool overflow;
} sqlbuf;

static void
add(sqlbuf *b, const char *s)
{
    size_t n = strlen(s);

    if (b->len + n >= sizeof(b->sql)) {
        b->overflow = true;
        return;
    }
    memcpy(b->sql + b->len, s, n + 1);
    b->len += n;
}

/* Binding slots, in the order the conditions are added. */
typedef struct {
    const char *text[16];
    int64_t num[16];
    bool is_num[16];
    int n;
} binds;

static void
cond_text(sqlbuf *b, binds *bs, const char *sql, const char *v, int uses)
{
    if (!v)
        return;
    add(b, sql);
    for (int i = 0; i < uses; i++) {
        bs->text[bs->n] = v;
        bs->is_num[bs->n] = false;
        bs->n++;
    }
}

static void
cond_num(sqlbuf *b, binds *bs, const char *sql, int64_t v)
{
    add(b, sql);
    bs->num[bs->n] = v;
    bs->is_num[bs->n] = true;
    bs->n++;
}

/* The filter's conditions, appended to a WHERE clause on `audit a`. */
static void
add_filters(sqlbuf *b, binds *bs, const tr_audit_filter *f)
{
    cond_text(b, bs, " AND a.principal_sub = ?", f->principal, 1);
    cond_text(b, bs, " AND a.principal_issuer = ?", f->issuer, 1);
    cond_text(b, bs, " AND (a.actor = ? OR a.seq IN (SELECT seq FROM"
                     " audit_actor WHERE actor = ?))", f->actor, 2);
    cond_text(b, bs, " AND a.route = ?", f->route, 1);
    cond_text(b, bs, " AND a.tool = ?", f->tool, 1);
    cond_text(b, bs, " AND a.decision = ?", f->decision, 1);
    cond_text(b, bs, " AND a.reason = ?", f->reason, 1);
    cond_text(b, bs, " AND a.kind = ?", f->kind, 1);
    cond_text(b, bs, " AND a.method = ?", f->method, 1);
    if (f->has_since)
        cond_num(b, bs, " AND a.time_ms >= ?", f->since_ms);
    if (f->has_until)
        cond_num(b, bs, " AND a.time_ms < ?", f->until_ms);
    if (f->after_seq)
        cond_num(b, bs, " AND a.seq > ?", (int64_t)f->after_seq);
}

/* Prepares b with its bindings; NULL with a message in err. */
static sqlite3_stmt *
prepare(tr_audit_reader *r, const sqlbuf *b, const binds *bs, char *err,
        size_t errlen)
{
    sqlite3_stmt *st;

    if (b->overflow) {
        snprintf(err, errlen, "query too long");
        return NULL;
    }
    if (sqlite3_prepare_v2(r->db, b->sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "query: %s", sqlite3_errmsg(r->db));
        return NULL;
    }
    for (int i = 0; i < bs->n; i++) {
        if (bs->is_num[i])
            sqlite3_bind_int64(st, i + 1, bs->num[i]);
        else
            sqlite3_bind_text(st, i + 1, bs->text[i], -1, SQLITE_STATIC);
    }
    return st;
}

int
tr_audit_reader_each(tr_audit_reader *r, const tr_audit_filter *f,
                     tr_audit_row_fn fn, void *arg, char *err,
                     size_t errlen)
{
    sqlbuf b = { .len = 0 };
    binds bs = { .n = 0 };
    sqlite3_stmt *st;
    int rc, ret = 0;

    if (f->last)
        add(&b, "SELECT * FROM (");
    add(&b, "SELECT " RECORD_COLUMNS ", c.seq, c.time_ms, c.status,"
            " c.latency_us, c.bytes FROM audit a");
    if (f->merge_completions)
        add(&b, " LEFT JOIN audit c ON c.completes_seq = a.seq"
                " AND c.kind = 'completion' WHERE a.kind <> 'completion'");
    else
        add(&b, " LEFT JOIN audit c ON 0 WHERE 1");
    add_filters(&b, &bs, f);
    if (f->last) {
        add(&b, " ORDER BY a.seq DESC LIMIT ?) ORDER BY 1");
        cond_num(&b, &bs, "", (int64_t)f->last);
    } else {
        add(&b, " ORDER BY a.seq");
    }
    st = prepare(r, &b, &bs, err, errlen);
    if (!st)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tr_audit_record rec;
        tr_audit_completion c;
        int base = N_RECORD_COLUMNS;

        tr_audit_row_decode(st, &rec);
        memset(&c, 0, sizeof(c));
        c.present = present(st, base);
        c.seq = (uint64_t)sqlite3_column_int64(st, base);
        c.time_ms = sqlite3_column_int64(st, base + 1);
        c.has_status = present(st, base + 2);
        c.status = sqlite3_column_int(st, base + 2);
        c.has_latency = present(st, base + 3);
        c.latency_us = sqlite3_column_int64(st, base + 3);
        c.has_bytes = present(st, base + 4);
        c.bytes = sqlite3_column_int64(st, base + 4);
        ret = fn(arg, &rec, &c);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        snprintf(err, errlen, "query: %s", sqlite3_errmsg(r->db));
        ret = -1;
    }
    sqlite3_finalize(st);
    return ret;
}

int
tr_audit_reader_summary(tr_audit_reader *r, const tr_audit_filter *f,
                        tr_audit_summary_fn fn, void *arg, char *err,
                        size_t errlen)
{
    sqlbuf b = { .len = 0 };
    binds bs = { .n = 0 };
    sqlite3_stmt *st;
    int rc, ret = 0;

    /* One row per request: a decision stands for its completion too. */
    add(&b, "SELECT a.actor, a.delegation_chain, a.route, a.decision,"
            " count(*), min(a.time_ms), max(a.time_ms) FROM audit a"
            " WHERE a.kind IN ('request', 'decision')");
    add_filters(&b, &bs, f);
    add(&b, " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4");
    st = prepare(r, &b, &bs, err, errlen);
    if (!st)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tr_audit_summary_row row;

        row.actor = text(st, 0);
        row.delegation_chain = text(st, 1);
        row.route = text(st, 2);
        row.decision = text(st, 3);
        row.count = (uint64_t)sqlite3_column_int64(st, 4);
        row.first_ms = sqlite3_column_int64(st, 5);
        row.last_ms = sqlite3_column_int64(st, 6);
        ret = fn(arg, &row);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        snprintf(err, errlen, "summary: %s", sqlite3_errmsg(r->db));
        ret = -1;
    }
    sqlite3_finalize(st);
    return ret;
}

int
tr_audit_reader_verify(tr_audit_reader *r, tr_audit_verify_result *out,
                       char *err, size_t errlen)
{
    sqlite3_stmt *st;
    uint64_t last_seq = 0;
    uint8_t last_hash[32] = { 0 };
    int rc;

    memset(out, 0, sizeof(*out));
    rc = sqlite3_prepare_v2(r->db,
                            "SELECT " RECORD_COLUMNS
                            " FROM audit a ORDER BY a.seq", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "verify: %s", sqlite3_errmsg(r->db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tr_audit_record rec;
        tr_chain_check c;

        tr_audit_row_decode(st, &rec);
        out->records++;
        c = tr_audit_chain_verify(&rec, last_seq, last_hash);
        if (c != TR_CHAIN_OK) {
            out->finding = c;
            out->bad_seq = rec.seq;
            break;
        }
        out->last_good_seq = rec.seq;
        memcpy(out->last_good_hash, rec.hash, 32);
        last_seq = rec.seq;
        memcpy(last_hash, rec.hash, 32);
    }
    if (out->finding == TR_CHAIN_OK && rc != SQLITE_DONE) {
        snprintf(err, errlen, "verify: %s", sqlite3_errmsg(r->db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}
