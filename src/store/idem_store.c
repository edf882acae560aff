/* The idempotency store: jobs for the idempotency worker, each one "load
 * the row, apply the pure transition, save" (store/idem_store.h). */
#include "store/idem_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite_worker.h"

#define DEFAULT_REAP_EVERY_MS 10000
#define DEFAULT_REAP_BATCH 256

/* Schema v1.  One row per (scope, key); state 1 in flight, 2 completed
 * (absent rows are deleted).  Times are wall-clock ms.  headers is the
 * tr_idem_headers_encode() form; headers and body are NULL unless
 * replayable. */
static const char schema_v1[] =
    "CREATE TABLE idem ("
    " scope BLOB NOT NULL,"
    " key BLOB NOT NULL,"
    " state INTEGER NOT NULL,"
    " fingerprint BLOB NOT NULL,"
    " owner BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " lease_until_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " status INTEGER NOT NULL DEFAULT 0,"
    " replayable INTEGER NOT NULL DEFAULT 0,"
    " pinned INTEGER NOT NULL DEFAULT 0,"
    " headers BLOB,"
    " body BLOB,"
    " PRIMARY KEY (scope, key)"
    ");"
    "CREATE INDEX idem_by_expiry ON idem(expires_ms);";

static const char *const migrations[] = { schema_v1 };

static const char sql_meta[] =
    "SELECT state, fingerprint, owner, created_ms, lease_until_ms,"
    " expires_ms, status, replayable, pinned"
    " FROM idem WHERE scope = ?1 AND key = ?2";

static const char sql_full[] =
    "SELECT state, fingerprint, owner, created_ms, lease_until_ms,"
    " expires_ms, status, replayable, pinned, headers, body"
    " FROM idem WHERE scope = ?1 AND key = ?2";

static const char sql_put[] =
    "INSERT OR REPLACE INTO idem (scope, key, state, fingerprint, owner,"
    " created_ms, lease_until_ms, expires_ms, status, replayable, pinned,"
    " headers, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0, 0,"
    " NULL, NULL)";

static const char sql_lease[] =
    "UPDATE idem SET lease_until_ms = ?3 WHERE scope = ?1 AND key = ?2";

static const char sql_complete[] =
    "UPDATE idem SET state = ?3, status = ?4, replayable = ?5,"
    " pinned = ?6, headers = ?7, body = ?8, lease_until_ms = ?9,"
    " expires_ms = ?10 WHERE scope = ?1 AND key = ?2";

static const char sql_delete[] =
    "DELETE FROM idem WHERE scope = ?1 AND key = ?2";

/* Expired exactly as tr_idem_expired() says: past expires_ms and not
 * held by a running lease. */
static const char sql_reap[] =
    "DELETE FROM idem WHERE rowid IN (SELECT rowid FROM idem"
    " WHERE expires_ms <= ?1 AND NOT (state = 1 AND lease_until_ms > ?1)"
    " LIMIT ?2)";

typedef enum {
    OP_LOOKUP,
    OP_CLAIM,
    OP_RENEW,
    OP_COMPLETE,
    OP_RELEASE,
    OP_REAP,
} op_kind;

struct tr_idem_store {
    uv_loop_t *loop;
    tr_worker *w;
    uv_timer_t timer;
    bool has_timer;
    bool reaping;              /* a reap job is queued */
    bool closing;
    uint32_t reap_every_ms;
    uint32_t reap_batch;
    tr_idem_store_stats stats; /* loop thread only (done callbacks) */
};

typedef struct {
    tr_job job;
    tr_idem_store *s;
    op_kind op;
    union {
        tr_idem_lookup_cb lookup;
        tr_idem_claim_cb claim;
        tr_idem_done_cb done;
        tr_idem_reap_cb reap;
    } cb;
    void *arg;

    /* Inputs. */
    uint8_t fp[TR_FP_LEN];
    uint8_t owner[TR_IDEM_OWNER_LEN];
    uint32_t lease_ms;
    int64_t now_ms;
    tr_idem_cfg cfg;           /* a copy: the snapshot may go first */
    tr_idem_result res;        /* headers and body point into data */
    size_t limit;
    const uint8_t *scope;
    size_t scope_len;
    const uint8_t *key;
    size_t key_len;

    /* Outputs: set afresh by every run (a rolled-back batch runs again). */
    bool ok;
    tr_idem_stored *out;
    size_t deleted;

    uint8_t data[];            /* scope, key, headers, body */
} idem_job;

static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
tr_idem_db_path(const char *state_dir, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", state_dir, TR_IDEM_DB_FILE);

    return n > 0 && (size_t)n < len;
}

void
tr_idem_stored_free(tr_idem_stored *st)
{
    free(st);
}

/* --- worker thread ---------------------------------------------------- */

static int
db_status(tr_sqlite *s)
{
    return tr_sqlite_status(sqlite3_extended_errcode(tr_sqlite_db(s)));
}

static sqlite3_stmt *
stmt_for(tr_sqlite *s, const char *sql, const idem_job *j)
{
    sqlite3_stmt *st = tr_sqlite_stmt(s, sql);

    if (st == NULL)
        return NULL;
    sqlite3_bind_blob(st, 1, j->scope, (int)j->scope_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, j->key, (int)j->key_len, SQLITE_STATIC);
    return st;
}

static int
step_done(tr_sqlite *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    if (rc != SQLITE_DONE)
        rc = sqlite3_extended_errcode(tr_sqlite_db(s));
    sqlite3_reset(st);
    return tr_sqlite_status(rc);
}

static bool
blob_into(sqlite3_stmt *st, int col, uint8_t *dst, size_t len)
{
    const void *p = sqlite3_column_blob(st, col);

    if (p == NULL || (size_t)sqlite3_column_bytes(st, col) != len)
        return false;
    memcpy(dst, p, len);
    return true;
}

/* Copies the current row into *rec; with blobs, allocates *out holding
 * rec, headers and body.  0, or TR_STORE_EJOB for a malformed row,
 * TR_STORE_ERROR when out of memory. */
static int
row_to_record(sqlite3_stmt *st, bool blobs, tr_idem_record *rec,
              tr_idem_stored **out)
{
    size_t hl = 0, bl = 0;
    tr_idem_stored *o;
    uint8_t *p;

    memset(rec, 0, sizeof(*rec));
    rec->state = (tr_idem_rec_state)sqlite3_column_int(st, 0);
    if ((rec->state != TR_IDEM_REC_IN_FLIGHT &&
         rec->state != TR_IDEM_REC_COMPLETED) ||
        !blob_into(st, 1, rec->fingerprint, TR_FP_LEN) ||
        !blob_into(st, 2, rec->owner, TR_IDEM_OWNER_LEN))
        return TR_STORE_EJOB;
    rec->created_ms = sqlite3_column_int64(st, 3);
    rec->lease_until_ms = sqlite3_column_int64(st, 4);
    rec->expires_ms = sqlite3_column_int64(st, 5);
    rec->status = sqlite3_column_int(st, 6);
    rec->replayable = sqlite3_column_int(st, 7) != 0;
    rec->pinned = sqlite3_column_int(st, 8) != 0;
    if (!blobs)
        return 0;

    hl = (size_t)sqlite3_column_bytes(st, 9);
    bl = (size_t)sqlite3_column_bytes(st, 10);
    o = malloc(sizeof(*o) + hl + bl + 1);
    if (o == NULL)
        return TR_STORE_ERROR;
    o->rec = *rec;
    p = (uint8_t *)(o + 1);
    if (hl > 0)
        memcpy(p, sqlite3_column_blob(st, 9), hl);
    if (bl > 0)
        memcpy(p + hl, sqlite3_column_blob(st, 10), bl);
    o->rec.headers = hl > 0 ? p : NULL;
    o->rec.headers_len = hl;
    /* An empty replayable body is a real body of 0 bytes: point at the
     * allocation so replay code never sees NULL for a stored body. */
    o->rec.body = rec->replayable ? p + hl : NULL;
    o->rec.body_len = bl;
    *out = o;
    return 0;
}

/* 1 found, 0 no row, < 0 status. */
static int
load(tr_sqlite *s, const idem_job *j, bool blobs, tr_idem_record *rec,
     tr_idem_stored **out)
{
    sqlite3_stmt *st = stmt_for(s, blobs ? sql_full : sql_meta, j);
    int rc;

    if (st == NULL)
        return db_status(s);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    if (rc != SQLITE_ROW) {
        rc = db_status(s);
        sqlite3_reset(st);
        return rc;
    }
    rc = row_to_record(st, blobs, rec, out);
    sqlite3_reset(st);
    return rc < 0 ? rc : 1;
}

static tr_idem_stored *
stored_copy(const tr_idem_record *rec)
{
    tr_idem_stored *o = malloc(sizeof(*o));

    if (o != NULL) {
        o->rec = *rec;
        o->rec.headers = NULL;
        o->rec.headers_len = 0;
        o->rec.body = NULL;
        o->rec.body_len = 0;
    }
    return o;
}

static void
reset_outputs(idem_job *j)
{
    free(j->out);
    j->out = NULL;
    j->ok = false;
    j->deleted = 0;
}

static int
run_lookup(idem_job *j, tr_sqlite *s)
{
    tr_idem_record rec;
    int rc = load(s, j, true, &rec, &j->out);

    return rc < 0 ? rc : 0;
}

static int
run_claim(idem_job *j, tr_sqlite *s)
{
    tr_idem_record cur, mine;
    bool reexec = j->cfg.after_crash == TR_CRASH_REEXECUTE;
    sqlite3_stmt *st;
    int rc;

    rc = load(s, j, false, &cur, NULL);
    if (rc < 0)
        return rc;
    if (!tr_idem_claimable(rc == 1 ? &cur : NULL, j->fp, reexec,
                           j->now_ms)) {
        rc = load(s, j, true, &cur, &j->out);
        return rc < 0 ? rc : 0;
    }

    tr_idem_claim(&mine, j->fp, j->owner, j->lease_ms, &j->cfg, j->now_ms);
    st = stmt_for(s, sql_put, j);
    if (st == NULL)
        return db_status(s);
    sqlite3_bind_int(st, 3, (int)mine.state);
    sqlite3_bind_blob(st, 4, mine.fingerprint, TR_FP_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, mine.owner, TR_IDEM_OWNER_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, mine.created_ms);
    sqlite3_bind_int64(st, 7, mine.lease_until_ms);
    sqlite3_bind_int64(st, 8, mine.expires_ms);
    rc = step_done(s, st);
    if (rc != 0)
        return rc;
    j->out = stored_copy(&mine);
    if (j->out == NULL)
        return TR_STORE_ERROR;
    j->ok = true;
    return 0;
}

static int
run_renew(idem_job *j, tr_sqlite *s)
{
    tr_idem_record cur;
    sqlite3_stmt *st;
    int rc;

    rc = load(s, j, false, &cur, NULL);
    if (rc <= 0)
        return rc;
    if (!tr_idem_renew(&cur, j->owner, j->lease_ms, j->now_ms))
        return 0;
    st = stmt_for(s, sql_lease, j);
    if (st == NULL)
        return db_status(s);
    sqlite3_bind_int64(st, 3, cur.lease_until_ms);
    rc = step_done(s, st);
    j->ok = rc == 0;
    return rc;
}

static void
bind_blob_or_null(sqlite3_stmt *st, int i, const uint8_t *p, size_t len,
                  bool present)
{
    if (present)
        sqlite3_bind_blob64(st, i, p != NULL ? (const void *)p : "", len,
                            SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int
run_complete(idem_job *j, tr_sqlite *s)
{
    tr_idem_record cur;
    sqlite3_stmt *st;
    int rc;

    rc = load(s, j, false, &cur, NULL);
    if (rc <= 0)
        return rc;
    if (!tr_idem_complete(&cur, j->owner, &j->res, &j->cfg, j->now_ms))
        return 0;
    st = stmt_for(s, sql_complete, j);
    if (st == NULL)
        return db_status(s);
    sqlite3_bind_int(st, 3, (int)cur.state);
    sqlite3_bind_int(st, 4, cur.status);
    sqlite3_bind_int(st, 5, cur.replayable);
    sqlite3_bind_int(st, 6, cur.pinned);
    bind_blob_or_null(st, 7, cur.headers, cur.headers_len, cur.replayable);
    bind_blob_or_null(st, 8, cur.body, cur.body_len, cur.replayable);
    sqlite3_bind_int64(st, 9, cur.lease_until_ms);
    sqlite3_bind_int64(st, 10, cur.expires_ms);
    rc = step_done(s, st);
    j->ok = rc == 0;
    return rc;
}

static int
run_release(idem_job *j, tr_sqlite *s)
{
    tr_idem_record cur;
    sqlite3_stmt *st;
    int rc;

    rc = load(s, j, false, &cur, NULL);
    if (rc <= 0)
        return rc;
    if (!tr_idem_release(&cur, j->owner))
        return 0;
    st = stmt_for(s, sql_delete, j);
    if (st == NULL)
        return db_status(s);
    rc = step_done(s, st);
    j->ok = rc == 0;
    return rc;
}

static int
run_reap(idem_job *j, tr_sqlite *s)
{
    sqlite3_stmt *st = tr_sqlite_stmt(s, sql_reap);
    int rc;

    if (st == NULL)
        return db_status(s);
    sqlite3_bind_int64(st, 1, j->now_ms);
    sqlite3_bind_int64(st, 2, (int64_t)j->limit);
    rc = step_done(s, st);
    if (rc == 0)
        j->deleted = (size_t)sqlite3_changes(tr_sqlite_db(s));
    return rc;
}

static int
run_job(tr_job *job, void *db)
{
    idem_job *j = (idem_job *)job;
    tr_sqlite *s = db;

    reset_outputs(j);
    switch (j->op) {
    case OP_LOOKUP:
        return run_lookup(j, s);
    case OP_CLAIM:
        return run_claim(j, s);
    case OP_RENEW:
        return run_renew(j, s);
    case OP_COMPLETE:
        return run_complete(j, s);
    case OP_RELEASE:
        return run_release(j, s);
    case OP_REAP:
        return run_reap(j, s);
    }
    return TR_STORE_ERROR;
}

static int
idem_migrate(void *db, void *ctx, char *err, size_t errlen)
{
    return tr_sqlite_migrate(db, migrations, 1, err, errlen);
}

/* --- loop thread ------------------------------------------------------ */

static void submit_reap(tr_idem_store *s);

static void
count(tr_idem_store *s, const idem_job *j, int status)
{
    tr_idem_store_stats *st = &s->stats;

    if (status < 0) {
        st->failures++;
        return;
    }
    switch (j->op) {
    case OP_LOOKUP:
        st->lookups++;
        break;
    case OP_CLAIM:
        if (j->ok)
            st->claims_won++;
        else
            st->claims_lost++;
        break;
    case OP_RENEW:
        if (!j->ok)
            st->renewals_refused++;
        break;
    case OP_COMPLETE:
        if (j->ok)
            st->completions++;
        else
            st->completions_refused++;
        break;
    case OP_RELEASE:
        if (j->ok)
            st->releases++;
        break;
    case OP_REAP:
        st->reaped += j->deleted;
        break;
    }
}

static void
job_done(tr_job *job, int status)
{
    idem_job *j = (idem_job *)job;
    tr_idem_store *s = j->s;
    tr_idem_stored *out = status < 0 ? NULL : j->out;

    count(s, j, status);
    if (status < 0) {
        free(j->out);
        j->ok = false;
        j->deleted = 0;
    }
    switch (j->op) {
    case OP_LOOKUP:
        if (j->cb.lookup != NULL)
            j->cb.lookup(j->arg, status, out);
        else
            free(out);
        break;
    case OP_CLAIM:
        if (j->cb.claim != NULL)
            j->cb.claim(j->arg, status, j->ok, out);
        else
            free(out);
        break;
    case OP_RENEW:
    case OP_COMPLETE:
    case OP_RELEASE:
        if (j->cb.done != NULL)
            j->cb.done(j->arg, status, j->ok);
        break;
    case OP_REAP:
        if (j->cb.reap != NULL)
            j->cb.reap(j->arg, status, j->deleted);
        break;
    }
    free(j);
}

/* Allocates a job with scope, key and extra bytes copied behind it. */
static idem_job *
new_job(tr_idem_store *s, op_kind op, const void *scope, size_t scope_len,
        const tr_idem_key *key, size_t extra)
{
    size_t klen = key != NULL ? key->len : 0;
    idem_job *j = calloc(1, sizeof(*j) + scope_len + klen + extra);

    if (j == NULL)
        return NULL;
    j->s = s;
    j->op = op;
    j->job.run = run_job;
    j->job.done = job_done;
    if (scope_len > 0)
        memcpy(j->data, scope, scope_len);
    if (klen > 0)
        memcpy(j->data + scope_len, key->bytes, klen);
    j->scope = j->data;
    j->scope_len = scope_len;
    j->key = j->data + scope_len;
    j->key_len = klen;
    return j;
}

static int
submit(tr_idem_store *s, idem_job *j, unsigned flags)
{
    int rc;

    j->job.flags = flags;
    rc = tr_worker_submit(s->w, &j->job);
    if (rc != TR_STORE_OK)
        free(j);
    return rc;
}

int
tr_idem_store_lookup(tr_idem_store *s, const void *scope, size_t scope_len,
                     const tr_idem_key *key, tr_idem_lookup_cb cb, void *arg)
{
    idem_job *j = new_job(s, OP_LOOKUP, scope, scope_len, key, 0);

    if (j == NULL)
        return TR_STORE_ERROR;
    j->cb.lookup = cb;
    j->arg = arg;
    return submit(s, j, TR_JOB_SYNC | TR_JOB_FAIL_FAST);
}

int
tr_idem_store_claim(tr_idem_store *s, const void *scope, size_t scope_len,
                    const tr_idem_key *key, const uint8_t fp[TR_FP_LEN],
                    const uint8_t owner[TR_IDEM_OWNER_LEN],
                    uint32_t lease_ms, const tr_idem_cfg *cfg,
                    int64_t now_ms, tr_idem_claim_cb cb, void *arg)
{
    idem_job *j = new_job(s, OP_CLAIM, scope, scope_len, key, 0);

    if (j == NULL)
        return TR_STORE_ERROR;
    memcpy(j->fp, fp, TR_FP_LEN);
    memcpy(j->owner, owner, TR_IDEM_OWNER_LEN);
    j->lease_ms = lease_ms;
    j->cfg = *cfg;
    j->now_ms = now_ms;
    j->cb.claim = cb;
    j->arg = arg;
    return submit(s, j, TR_JOB_SYNC | TR_JOB_FAIL_FAST);
}

int
tr_idem_store_renew(tr_idem_store *s, const void *scope, size_t scope_len,
                    const tr_idem_key *key,
                    const uint8_t owner[TR_IDEM_OWNER_LEN],
                    uint32_t lease_ms, int64_t now_ms, tr_idem_done_cb cb,
                    void *arg)
{
    idem_job *j = new_job(s, OP_RENEW, scope, scope_len, key, 0);

    if (j == NULL)
        return TR_STORE_ERROR;
    memcpy(j->owner, owner, TR_IDEM_OWNER_LEN);
    j->lease_ms = lease_ms;
    j->now_ms = now_ms;
    j->cb.done = cb;
    j->arg = arg;
    /* Fail fast: a missed renewal is made up by the next one. */
    return submit(s, j, TR_JOB_SYNC | TR_JOB_FAIL_FAST);
}

int
tr_idem_store_complete(tr_idem_store *s, const void *scope,
                       size_t scope_len, const tr_idem_key *key,
                       const uint8_t owner[TR_IDEM_OWNER_LEN],
                       const tr_idem_result *res, const tr_idem_cfg *cfg,
                       int64_t now_ms, tr_idem_done_cb cb, void *arg)
{
    /* Copy only what tr_idem_complete() can keep: a body over the cap is
     * not stored, so it is not copied either. */
    bool keep = !res->body_dropped && tr_idem_body_fits(cfg, res->body_len)
                && res->headers_len <= TR_IDEM_HEADERS_MAX;
    size_t hl = keep ? res->headers_len : 0;
    size_t bl = keep ? res->body_len : 0;
    idem_job *j = new_job(s, OP_COMPLETE, scope, scope_len, key, hl + bl);
    uint8_t *p;

    if (j == NULL)
        return TR_STORE_ERROR;
    p = j->data + j->scope_len + j->key_len;
    if (hl > 0)
        memcpy(p, res->headers, hl);
    if (bl > 0)
        memcpy(p + hl, res->body, bl);
    j->res = *res;
    j->res.headers = p;
    j->res.body = p + hl;
    if (!keep)
        j->res.body_dropped = true;    /* lengths kept for the record */
    memcpy(j->owner, owner, TR_IDEM_OWNER_LEN);
    j->cfg = *cfg;
    j->now_ms = now_ms;
    j->cb.done = cb;
    j->arg = arg;
    return submit(s, j, TR_JOB_SYNC);
}

int
tr_idem_store_release(tr_idem_store *s, const void *scope,
                      size_t scope_len, const tr_idem_key *key,
                      const uint8_t owner[TR_IDEM_OWNER_LEN],
                      tr_idem_done_cb cb, void *arg)
{
    idem_job *j = new_job(s, OP_RELEASE, scope, scope_len, key, 0);

    if (j == NULL)
        return TR_STORE_ERROR;
    memcpy(j->owner, owner, TR_IDEM_OWNER_LEN);
    j->cb.done = cb;
    j->arg = arg;
    return submit(s, j, TR_JOB_SYNC);
}

int
tr_idem_store_reap(tr_idem_store *s, int64_t now_ms, size_t limit,
                   tr_idem_reap_cb cb, void *arg)
{
    idem_job *j = new_job(s, OP_REAP, NULL, 0, NULL, 0);

    if (j == NULL)
        return TR_STORE_ERROR;
    j->now_ms = now_ms;
    j->limit = limit;
    j->cb.reap = cb;
    j->arg = arg;
    return submit(s, j, TR_JOB_FAIL_FAST);
}

/* The background reaper: one bounded job at a time; a full batch means
 * more may be waiting, so the next one is queued when it completes. */
static void
on_reaped(void *arg, int status, size_t deleted)
{
    tr_idem_store *s = arg;

    s->reaping = false;
    if (status == 0 && deleted >= s->reap_batch && !s->closing)
        submit_reap(s);
}

static void
submit_reap(tr_idem_store *s)
{
    if (s->reaping || s->closing)
        return;
    if (tr_idem_store_reap(s, wall_ms(), s->reap_batch, on_reaped, s) == 0)
        s->reaping = true;
}

static void
on_timer(uv_timer_t *t)
{
    submit_reap(t->data);
}

tr_idem_store *
tr_idem_store_open(uv_loop_t *loop, const char *state_dir,
                   const tr_idem_store_opts *opts, char *err, size_t errlen)
{
    tr_idem_store_opts o = { 0 };
    tr_worker_opts wo = { 0 };
    tr_idem_store *s;
    char path[4096];

    if (opts != NULL)
        o = *opts;
    if (!tr_idem_db_path(state_dir, path, sizeof(path))) {
        snprintf(err, errlen, "idempotency: state_dir path too long");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "idempotency: out of memory");
        return NULL;
    }
    s->loop = loop;
    s->reap_every_ms = o.reap_every_ms ? o.reap_every_ms
                                       : DEFAULT_REAP_EVERY_MS;
    s->reap_batch = o.reap_batch ? o.reap_batch : DEFAULT_REAP_BATCH;

    wo.name = "idempotency";
    wo.db_path = path;
    wo.sync = o.sync;
    wo.migrate = idem_migrate;
    wo.ctx = s;
    wo.queue_max = o.queue_max;
    wo.flush_ms = 0;           /* every job commits at once */
    s->w = tr_worker_start(loop, &wo, err, errlen);
    if (s->w == NULL) {
        free(s);
        return NULL;
    }

    if (!o.no_reaper) {
        uv_timer_init(loop, &s->timer);
        s->timer.data = s;
        s->has_timer = true;
        uv_timer_start(&s->timer, on_timer, s->reap_every_ms,
                       s->reap_every_ms);
        /* The reaper alone never keeps the loop running. */
        uv_unref((uv_handle_t *)&s->timer);
    }
    return s;
}

static void
on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void
tr_idem_store_close(tr_idem_store *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    if (s->has_timer)
        uv_timer_stop(&s->timer);
    tr_worker_stop(s->w);
    s->w = NULL;
    if (s->has_timer)
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    else
        free(s);
}

bool
tr_idem_store_available(const tr_idem_store *s)
{
    return s != NULL && s->w != NULL && tr_worker_available(s->w);
}

void
tr_idem_store_get_stats(const tr_idem_store *s, tr_idem_store_stats *out)
{
    *out = s->stats;
    out->backlog = s->w != NULL ? tr_worker_backlog(s->w) : 0;
    out->available = tr_idem_store_available(s);
}
