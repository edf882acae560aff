/* The audit trail's writer: copies records on the loop, chains and inserts
 * them on the audit worker's thread (store/audit_store.h). */
#include "store/audit_store.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/audit_chain.h"
#include "core/audit_checkpoint.h"
#include "core/b64url.h"
#include "store/audit_keys.h"
#include "store/audit_query.h"
#include "store/audit_sink.h"
#include "store/sqlite_worker.h"

#define DEFAULT_BACKLOG_MAX 10000
#define AGG_SLOTS 256            /* (address, reason) pairs per window */
#define AGG_ADDR_MAX 64
#define AGG_REASON_MAX 48
#define WINDOW_MS 1000
/* Retention: the first prune a little after start, then one batch of at
 * most PRUNE_BATCH records every PRUNE_EVERY_MS, or every PRUNE_AGAIN_MS
 * while batches come back full.  A batch is one short transaction on the
 * writer thread, so requests never wait for a whole prune. */
#define PRUNE_FIRST_MS 1000
#define PRUNE_EVERY_MS 60000
#define PRUNE_AGAIN_MS 100
#define DAY_MS 86400000LL

/* Schema v1: one row per record, one column per field (docs/audit.md).
 * Hashes are lower-case hex.  audit_actor indexes every actor of a
 * delegation chain so "actor anywhere in the chain" is an index lookup;
 * it is derived from delegation_chain and not part of the hash chain. */
static const char schema_v1[] =
    "CREATE TABLE audit ("
    " seq INTEGER PRIMARY KEY,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " request_id TEXT,"
    " client_addr TEXT,"
    " principal_issuer TEXT,"
    " principal_sub TEXT,"
    " actor TEXT,"
    " delegation_chain TEXT,"
    " client_id TEXT,"
    " token_id TEXT,"
    " token_hash TEXT,"
    " token_verified INTEGER,"
    " route TEXT,"
    " tool TEXT,"
    " method TEXT,"
    " path TEXT,"
    " decision TEXT,"
    " reason TEXT,"
    " policy_rule TEXT,"
    " limiter TEXT,"
    " idem_key_hash TEXT,"
    " idem_replay INTEGER,"
    " precondition TEXT,"
    " status INTEGER,"
    " latency_us INTEGER,"
    " bytes INTEGER,"
    " config_hash TEXT,"
    " stripped_headers TEXT,"
    " completes_seq INTEGER,"
    " count INTEGER"
    ");"
    "CREATE INDEX audit_by_principal"
    " ON audit(principal_sub, principal_issuer, seq);"
    "CREATE INDEX audit_by_actor ON audit(actor, seq);"
    "CREATE INDEX audit_by_time ON audit(time_ms);"
    "CREATE INDEX audit_by_route ON audit(route, seq);"
    "CREATE INDEX audit_by_decision ON audit(decision, seq);"
    "CREATE INDEX audit_by_completes ON audit(completes_seq)"
    " WHERE completes_seq IS NOT NULL;"
    "CREATE TABLE audit_actor ("
    " actor TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " depth INTEGER NOT NULL,"
    " PRIMARY KEY (actor, seq)"
    ") WITHOUT ROWID;";

/* Schema v2: signed checkpoints (issue 8), also the anchors retention
 * leaves behind (kind 'anchor'), and an index so pruning can delete an
 * actor's rows by seq. */
static const char schema_v2[] =
    "CREATE TABLE audit_checkpoint ("
    " id INTEGER PRIMARY KEY,"
    " seq INTEGER NOT NULL,"
    " hash TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " kid TEXT NOT NULL,"
    " sig TEXT NOT NULL"
    ");"
    "CREATE INDEX audit_checkpoint_by_seq ON audit_checkpoint(seq);"
    "CREATE INDEX audit_actor_by_seq ON audit_actor(seq);";

const char *const tr_audit_migrations[] = { schema_v1, schema_v2 };
const int tr_audit_n_migrations = 2;

static const char sql_insert[] =
    "INSERT INTO audit (seq, prev_hash, hash, kind, time_ms, request_id,"
    " client_addr, principal_issuer, principal_sub, actor,"
    " delegation_chain, client_id, token_id, token_hash, token_verified,"
    " route, tool, method, path, decision, reason, policy_rule, limiter,"
    " idem_key_hash, idem_replay, precondition, status, latency_us, bytes,"
    " config_hash, stripped_headers, completes_seq, count) VALUES"
    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
    " ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28,"
    " ?29, ?30, ?31, ?32, ?33)";

static const char sql_actor[] =
    "INSERT OR IGNORE INTO audit_actor (actor, seq, depth)"
    " VALUES (?1, ?2, ?3)";

static const char sql_checkpoint[] =
    "INSERT INTO audit_checkpoint (seq, hash, kind, time_ms, kid, sig)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

static const char sql_prune_scan[] =
    "SELECT " TR_AUDIT_RECORD_COLUMNS " FROM audit a ORDER BY a.seq"
    " LIMIT ?1";

static const char sql_prune_anchor[] =
    "SELECT hash FROM audit_checkpoint WHERE seq = ?1 AND kind = 'anchor'"
    " ORDER BY id DESC LIMIT 1";

typedef struct {
    char addr[AGG_ADDR_MAX];
    char reason[AGG_REASON_MAX];
    int64_t count;
} agg_entry;

struct tr_audit {
    uv_loop_t *loop;
    const tr_audit_cfg *cfg;
    size_t backlog_max;
    tr_worker *w;
    uv_timer_t timer;

    /* Chain state: worker thread only (and migrate, before it starts).
     * "pending" runs ahead inside a batch; batch_end settles it. */
    uint64_t pending_seq, committed_seq;
    uint8_t pending_hash[32], committed_hash[32];
    atomic_uint_least64_t last_seq;
    atomic_uint_least64_t records_written;

    /* Checkpoints.  Keys and sink are set before the thread starts and
     * used by it alone.  cp_* like the chain: "pending" inside a batch,
     * settled by batch_end; cp_lines are the batch's sink lines, written
     * once it committed. */
    tr_gateway_keys keys;
    bool signing;              /* keys[0] loaded: checkpoints, anchors */
    uint32_t every;            /* audit.checkpoint_every; 0 = none */
    tr_audit_sink *sink;
    uint64_t pending_cp_seq, committed_cp_seq; /* last periodic/shutdown */
    uint64_t pending_cps;
    char *cp_lines;
    size_t cp_len, cp_cap;
    atomic_uint_least64_t checkpoints;
    atomic_uint_least64_t checkpoint_failures;
    atomic_uint_least64_t sink_failures;
    atomic_uint_least64_t pruned;
    atomic_uint_least64_t prune_refusals;

    /* Loop thread only. */
    uint64_t records_dropped, records_failed, admit_refusals;
    uint64_t reads_unaudited, refused_tokens;
    int64_t window;            /* current refused-token window, or -1 */
    agg_entry agg[AGG_SLOTS + 1]; /* the last slot is the overflow */
    size_t n_agg;
    uv_timer_t prune_timer;
    bool prune_busy;
    bool closing;
    int open_handles;          /* timers not closed yet */
};

typedef struct {
    tr_job job;
    tr_audit *a;
    int64_t cutoff_ms;
} prune_job;

typedef struct {
    tr_job job;
    tr_audit *a;
} shutdown_job;

typedef struct {
    tr_job job;
    tr_audit *a;
    tr_audit_durable_cb cb;
    void *arg;
    tr_audit_record rec;       /* strings point into strs */
    char strs[];
} audit_job;

static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- worker thread ---------------------------------------------------- */

static int
load_chain_head(tr_audit *a, tr_sqlite *s, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;

    rc = sqlite3_prepare_v2(tr_sqlite_db(s),
                            "SELECT seq, hash FROM audit"
                            " ORDER BY seq DESC LIMIT 1", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "audit: %s", sqlite3_errmsg(tr_sqlite_db(s)));
        return tr_sqlite_status(rc);
    }
    a->committed_seq = 0;
    memset(a->committed_hash, 0, 32);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        a->committed_seq = (uint64_t)sqlite3_column_int64(st, 0);
        if (!tr_audit_unhex((const char *)sqlite3_column_text(st, 1),
                            a->committed_hash, 32)) {
            sqlite3_finalize(st);
            snprintf(err, errlen, "audit: record %llu has a malformed "
                     "hash; run treaty audit verify",
                     (unsigned long long)a->committed_seq);
            return TR_STORE_ECORRUPT;
        }
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "audit: %s", sqlite3_errmsg(tr_sqlite_db(s)));
        return tr_sqlite_status(rc);
    }
    a->pending_seq = a->committed_seq;
    memcpy(a->pending_hash, a->committed_hash, 32);
    atomic_store(&a->last_seq, a->committed_seq);
    return 0;
}

/* The newest periodic or shutdown checkpoint: where the next periodic
 * one, and the shutdown one, take over. */
static int
load_checkpoint_head(tr_audit *a, tr_sqlite *s, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc;

    rc = sqlite3_prepare_v2(tr_sqlite_db(s),
                            "SELECT max(seq) FROM audit_checkpoint"
                            " WHERE kind <> 'anchor'", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "audit: %s", sqlite3_errmsg(tr_sqlite_db(s)));
        return tr_sqlite_status(rc);
    }
    a->committed_cp_seq = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        a->committed_cp_seq = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    a->pending_cp_seq = a->committed_cp_seq;
    return 0;
}

static int
audit_migrate(void *db, void *ctx, char *err, size_t errlen)
{
    int rc = tr_sqlite_migrate(db, tr_audit_migrations,
                               tr_audit_n_migrations, err, errlen);

    if (rc != 0)
        return rc;
    rc = load_chain_head(ctx, db, err, errlen);
    if (rc != 0)
        return rc;
    return load_checkpoint_head(ctx, db, err, errlen);
}

static void
audit_batch_end(void *ctx, int status)
{
    tr_audit *a = ctx;

    if (status == 0) {
        atomic_fetch_add(&a->records_written,
                         a->pending_seq - a->committed_seq);
        a->committed_seq = a->pending_seq;
        memcpy(a->committed_hash, a->pending_hash, 32);
        atomic_store(&a->last_seq, a->committed_seq);
        a->committed_cp_seq = a->pending_cp_seq;
        atomic_fetch_add(&a->checkpoints, a->pending_cps);
        /* Only committed checkpoints leave the house: the sink never
         * names a record the database does not hold.  Its own thread
         * writes and fsyncs them; this one goes on committing. */
        if (a->sink && a->cp_len)
            tr_audit_sink_write(a->sink, a->cp_lines, a->cp_len);
    } else {
        /* Rolled back: the rows are gone, so are their numbers. */
        a->pending_seq = a->committed_seq;
        memcpy(a->pending_hash, a->committed_hash, 32);
        a->pending_cp_seq = a->committed_cp_seq;
    }
    a->pending_cps = 0;
    a->cp_len = 0;
}

static int step_done(tr_sqlite *s, sqlite3_stmt *st);

static bool
append_line(tr_audit *a, const char *line, size_t n)
{
    if (a->cp_len + n > a->cp_cap) {
        size_t cap = a->cp_cap ? 2 * a->cp_cap : 4096;
        char *p;

        while (cap < a->cp_len + n)
            cap *= 2;
        p = realloc(a->cp_lines, cap);
        if (!p)
            return false;
        a->cp_lines = p;
        a->cp_cap = cap;
    }
    memcpy(a->cp_lines + a->cp_len, line, n);
    a->cp_len += n;
    return true;
}

/*
 * Signs a checkpoint of (seq, hash), inserts it into audit_checkpoint and
 * queues its line for the sink (written when the batch commits).  A
 * checkpoint that cannot be signed is counted and skipped (0), unless
 * `required` (an anchor: retention must not delete without one), then
 * TR_STORE_EJOB.  Other failures are the insert's store status.
 */
static int
write_checkpoint(tr_audit *a, tr_sqlite *s, tr_audit_cp_kind kind,
                 uint64_t seq, const uint8_t hash[32], bool required)
{
    tr_audit_checkpoint cp;
    char hex[65], sig[96], line[TR_AUDIT_CP_LINE_MAX];
    size_t n, siglen;
    sqlite3_stmt *st;
    int rc;

    memset(&cp, 0, sizeof(cp));
    cp.kind = kind;
    cp.seq = seq;
    memcpy(cp.hash, hash, 32);
    cp.time_ms = wall_ms();
    if (!a->signing ||
        tr_audit_checkpoint_sign(&cp, a->keys.keys[0].pkey,
                                 a->keys.keys[0].kid) != TR_AUDIT_CP_OK ||
        tr_audit_checkpoint_to_json(&cp, line, sizeof(line) - 1, &n) !=
            TR_AUDIT_CP_OK ||
        tr_b64url_encode(cp.sig, sizeof(cp.sig), sig, sizeof(sig),
                         &siglen) != 0) {
        atomic_fetch_add(&a->checkpoint_failures, 1);
        return required ? TR_STORE_EJOB : 0;
    }
    tr_audit_hex(cp.hash, 32, hex);
    st = tr_sqlite_stmt(s, sql_checkpoint);
    if (!st)
        return tr_sqlite_status(sqlite3_errcode(tr_sqlite_db(s)));
    sqlite3_bind_int64(st, 1, (int64_t)seq);
    sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, tr_audit_cp_kind_name(kind), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, cp.time_ms);
    sqlite3_bind_text(st, 5, cp.kid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, sig, -1, SQLITE_STATIC);
    rc = step_done(s, st);
    if (rc != 0)
        return rc;
    line[n++] = '\n';
    if (!append_line(a, line, n))
        atomic_fetch_add(&a->sink_failures, 1);
    a->pending_cps++;
    return 0;
}

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void
bind_int(sqlite3_stmt *st, int i, bool present, int64_t v)
{
    if (present)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
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

/* One audit_actor row per chain member.  A chain that does not parse
 * (it never should: tr_audit_json_strings made it) just gets no rows. */
static int
insert_actors(tr_sqlite *s, const tr_audit_record *r)
{
    json_t *arr;
    size_t i;
    json_t *v;
    int rc = 0;

    if (!r->delegation_chain)
        return 0;
    arr = json_loads(r->delegation_chain, 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return 0;
    }
    json_array_foreach(arr, i, v) {
        sqlite3_stmt *st;

        if (!json_is_string(v))
            continue;
        st = tr_sqlite_stmt(s, sql_actor);
        if (!st) {
            rc = tr_sqlite_status(sqlite3_errcode(tr_sqlite_db(s)));
            break;
        }
        sqlite3_bind_text(st, 1, json_string_value(v), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)r->seq);
        sqlite3_bind_int64(st, 3, (int64_t)i);
        rc = step_done(s, st);
        if (rc != 0)
            break;
    }
    json_decref(arr);
    return rc;
}

static int
run_insert(tr_job *job, void *db)
{
    audit_job *j = (audit_job *)job;
    tr_audit *a = j->a;
    tr_audit_record *r = &j->rec;
    tr_sqlite *s = db;
    char prev[65], hash[65];
    sqlite3_stmt *st;
    int rc;

    if (tr_audit_chain_link(r, a->pending_seq, a->pending_hash) != 0)
        return TR_STORE_ERROR;
    tr_audit_hex(r->prev_hash, 32, prev);
    tr_audit_hex(r->hash, 32, hash);
    st = tr_sqlite_stmt(s, sql_insert);
    if (!st)
        return tr_sqlite_status(sqlite3_errcode(tr_sqlite_db(s)));
    sqlite3_bind_int64(st, 1, (int64_t)r->seq);
    bind_text(st, 2, prev);
    bind_text(st, 3, hash);
    bind_text(st, 4, tr_audit_kind_name(r->kind));
    sqlite3_bind_int64(st, 5, r->time_ms);
    bind_text(st, 6, r->request_id);
    bind_text(st, 7, r->client_addr);
    bind_text(st, 8, r->principal_issuer);
    bind_text(st, 9, r->principal_sub);
    bind_text(st, 10, r->actor);
    bind_text(st, 11, r->delegation_chain);
    bind_text(st, 12, r->client_id);
    bind_text(st, 13, r->token_id);
    bind_text(st, 14, r->token_hash);
    bind_int(st, 15, r->has_token_verified, r->token_verified);
    bind_text(st, 16, r->route);
    bind_text(st, 17, r->tool);
    bind_text(st, 18, r->method);
    bind_text(st, 19, r->path);
    bind_text(st, 20, r->decision == TR_AUDIT_NONE
                          ? NULL
                          : tr_audit_decision_name(r->decision));
    bind_text(st, 21, r->reason);
    bind_text(st, 22, r->policy_rule);
    bind_text(st, 23, r->limiter);
    bind_text(st, 24, r->idem_key_hash);
    bind_int(st, 25, r->has_idem_replay, r->idem_replay);
    bind_text(st, 26, r->precondition);
    bind_int(st, 27, r->has_status, r->status);
    bind_int(st, 28, r->has_latency, r->latency_us);
    bind_int(st, 29, r->has_bytes, r->bytes);
    bind_text(st, 30, r->config_hash);
    bind_text(st, 31, r->stripped_headers);
    bind_int(st, 32, r->has_completes_seq, (int64_t)r->completes_seq);
    bind_int(st, 33, r->has_count, r->count);
    rc = step_done(s, st);
    if (rc != 0)
        return rc;
    rc = insert_actors(s, r);
    if (rc == 0 && a->every && r->seq % a->every == 0) {
        rc = write_checkpoint(a, s, TR_AUDIT_CP_PERIODIC, r->seq, r->hash,
                              false);
        if (rc == 0)
            a->pending_cp_seq = r->seq;
    }
    if (rc != 0) {
        /* The row is in the batch already: failing this job alone would
         * leave a record the chain state does not know.  Roll back. */
        return rc == TR_STORE_EJOB ? TR_STORE_ERROR : rc;
    }
    /* Only a row really in the batch moves the chain forward. */
    a->pending_seq = r->seq;
    memcpy(a->pending_hash, r->hash, 32);
    return 0;
}

/* --- retention and the shutdown checkpoint (worker thread) ------------- */

/* The hash the trail continues from before record `first`: zeros before
 * seq 1, else the anchor retention left at first - 1.  False when there
 * is no anchor (the head of the trail is not what retention left). */
static bool
prune_start(tr_sqlite *s, uint64_t first, uint8_t hash[32])
{
    sqlite3_stmt *st;
    bool ok = false;

    memset(hash, 0, 32);
    if (first == 1)
        return true;
    st = tr_sqlite_stmt(s, sql_prune_anchor);
    if (!st)
        return false;
    sqlite3_bind_int64(st, 1, (int64_t)(first - 1));
    if (sqlite3_step(st) == SQLITE_ROW)
        ok = tr_audit_unhex((const char *)sqlite3_column_text(st, 0), hash,
                            32);
    sqlite3_reset(st);
    return ok;
}

static int
exec_seq(tr_sqlite *s, const char *sql, uint64_t seq, int *changes)
{
    sqlite3_stmt *st = tr_sqlite_stmt(s, sql);
    int rc;

    if (!st)
        return tr_sqlite_status(sqlite3_errcode(tr_sqlite_db(s)));
    sqlite3_bind_int64(st, 1, (int64_t)seq);
    rc = step_done(s, st);
    if (changes)
        *changes = sqlite3_changes(tr_sqlite_db(s));
    return rc;
}

static const char sql_del_audit[] = "DELETE FROM audit WHERE seq <= ?1";
static const char sql_del_actor[] =
    "DELETE FROM audit_actor WHERE seq <= ?1";
static const char sql_del_cps[] =
    "DELETE FROM audit_checkpoint WHERE seq < ?1";

/*
 * One retention batch: the oldest records, at most TR_AUDIT_PRUNE_BATCH,
 * up to the first one not older than the cutoff, never the newest record
 * (it carries the chain head across restarts).  They are verified first
 * (from seq 1 or the previous anchor): retention never signs over, nor
 * deletes, a part of the trail that does not verify; it stops before it
 * and counts a refusal.  Then, in a savepoint: a signed ANCHOR of the
 * last one, the records, their audit_actor rows, and the checkpoints they
 * made obsolete.  Returns how many records it deleted (a positive job
 * result), 0, or a store status.
 */
static int
run_prune(tr_job *job, void *db)
{
    prune_job *j = (prune_job *)job;
    tr_audit *a = j->a;
    tr_sqlite *s = db;
    uint64_t last = 0, upto = 0;
    uint8_t last_hash[32], upto_hash[32];
    size_t cp_len = a->cp_len;
    uint64_t cps = a->pending_cps;
    sqlite3_stmt *st;
    int rc, deleted = 0;

    if (!a->signing)
        return 0;
    st = tr_sqlite_stmt(s, sql_prune_scan);
    if (!st)
        return tr_sqlite_status(sqlite3_errcode(tr_sqlite_db(s)));
    sqlite3_bind_int64(st, 1, TR_AUDIT_PRUNE_BATCH);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tr_audit_record rec;

        tr_audit_row_decode(st, &rec);
        if (rec.time_ms >= j->cutoff_ms || rec.seq >= a->pending_seq)
            break;
        if (!upto) {
            last = rec.seq - 1;
            if (!prune_start(s, rec.seq, last_hash)) {
                atomic_fetch_add(&a->prune_refusals, 1);
                break;
            }
        }
        if (tr_audit_chain_verify(&rec, last, last_hash) != TR_CHAIN_OK) {
            atomic_fetch_add(&a->prune_refusals, 1);
            break;
        }
        last = upto = rec.seq;
        memcpy(last_hash, rec.hash, 32);
        memcpy(upto_hash, rec.hash, 32);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tr_sqlite_status(sqlite3_extended_errcode(
            tr_sqlite_db(s)));
    if (!upto)
        return 0;
    rc = tr_sqlite_status(sqlite3_exec(tr_sqlite_db(s), "SAVEPOINT prune",
                                       NULL, NULL, NULL));
    if (rc != 0)
        return rc;
    rc = write_checkpoint(a, s, TR_AUDIT_CP_ANCHOR, upto, upto_hash, true);
    if (rc == 0)
        rc = exec_seq(s, sql_del_audit, upto, &deleted);
    if (rc == 0)
        rc = exec_seq(s, sql_del_actor, upto, NULL);
    if (rc == 0)
        rc = exec_seq(s, sql_del_cps, upto, NULL);
    if (rc != 0) {
        sqlite3_exec(tr_sqlite_db(s), "ROLLBACK TO prune", NULL, NULL,
                     NULL);
        a->cp_len = cp_len;
        a->pending_cps = cps;
        deleted = 0;
    }
    sqlite3_exec(tr_sqlite_db(s), "RELEASE prune", NULL, NULL, NULL);
    return rc != 0 ? rc : deleted;
}

/* The last job before the worker stops: a checkpoint of the head, so
 * that after a clean stop nothing is outside a signature. */
static int
run_shutdown(tr_job *job, void *db)
{
    tr_audit *a = ((shutdown_job *)job)->a;
    int rc;

    if (!a->every || a->pending_seq == 0 ||
        a->pending_seq == a->pending_cp_seq)
        return 0;
    rc = write_checkpoint(a, db, TR_AUDIT_CP_SHUTDOWN, a->pending_seq,
                          a->pending_hash, false);
    if (rc == 0)
        a->pending_cp_seq = a->pending_seq;
    return rc;
}

/* --- loop thread ------------------------------------------------------ */

static void
job_done(tr_job *job, int status)
{
    audit_job *j = (audit_job *)job;

    if (status < 0)
        j->a->records_failed++;
    if (j->cb)
        j->cb(j->arg, status, status < 0 ? 0 : j->rec.seq);
    free(j);
}

static size_t
str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static const char *
copy_str(char **p, const char *s)
{
    size_t n;
    char *out;

    if (!s)
        return NULL;
    n = strlen(s) + 1;
    out = *p;
    memcpy(out, s, n);
    *p += n;
    return out;
}

/* One allocation: the job and every string of the record. */
static audit_job *
job_new(tr_audit *a, const tr_audit_record *rec)
{
    const char *const *fields[] = {
        &rec->request_id, &rec->client_addr, &rec->principal_issuer,
        &rec->principal_sub, &rec->actor, &rec->delegation_chain,
        &rec->client_id, &rec->token_id, &rec->token_hash, &rec->route,
        &rec->tool, &rec->method, &rec->path, &rec->reason,
        &rec->policy_rule, &rec->limiter, &rec->idem_key_hash,
        &rec->precondition, &rec->config_hash, &rec->stripped_headers,
    };
    size_t nf = sizeof(fields) / sizeof(fields[0]);
    size_t total = 0;
    audit_job *j;
    char *p;

    for (size_t i = 0; i < nf; i++)
        total += str_size(*fields[i]);
    j = malloc(sizeof(*j) + total);
    if (!j)
        return NULL;
    memset(j, 0, sizeof(*j));
    j->a = a;
    j->job.run = run_insert;
    j->job.done = job_done;
    j->rec = *rec;
    p = j->strs;
    /* Same order as fields[]: rewrite each pointer to its copy. */
    {
        const char **dst[] = {
            &j->rec.request_id, &j->rec.client_addr,
            &j->rec.principal_issuer, &j->rec.principal_sub,
            &j->rec.actor, &j->rec.delegation_chain, &j->rec.client_id,
            &j->rec.token_id, &j->rec.token_hash, &j->rec.route,
            &j->rec.tool, &j->rec.method, &j->rec.path, &j->rec.reason,
            &j->rec.policy_rule, &j->rec.limiter, &j->rec.idem_key_hash,
            &j->rec.precondition, &j->rec.config_hash,
            &j->rec.stripped_headers,
        };

        for (size_t i = 0; i < nf; i++)
            *dst[i] = copy_str(&p, *fields[i]);
    }
    return j;
}

static int
submit(tr_audit *a, const tr_audit_record *rec, tr_audit_kind kind,
       unsigned flags, size_t limit, tr_audit_durable_cb cb, void *arg)
{
    audit_job *j;
    int rc;

    if (tr_worker_backlog(a->w) >= limit) {
        a->records_dropped++;
        return TR_STORE_EAGAIN;
    }
    j = job_new(a, rec);
    if (!j) {
        a->records_dropped++;
        return TR_STORE_ERROR;
    }
    j->rec.kind = kind;
    j->job.flags = flags;
    j->cb = cb;
    j->arg = arg;
    rc = tr_worker_submit(a->w, &j->job);
    if (rc != 0) {
        a->records_dropped++;
        free(j);
    }
    return rc;
}

int
tr_audit_admit(tr_audit *a, bool mutating)
{
    int rc = 0;

    if (!a)
        return 0;
    if (!tr_worker_available(a->w))
        rc = TR_STORE_EUNAVAILABLE;
    else if (tr_worker_backlog(a->w) >= a->backlog_max)
        rc = TR_STORE_EAGAIN;
    if (rc != 0 && !mutating && a->cfg->reads_fail_open) {
        a->reads_unaudited++;
        return 0;
    }
    if (rc != 0)
        a->admit_refusals++;
    return rc;
}

int
tr_audit_write(tr_audit *a, const tr_audit_record *rec)
{
    if (!a)
        return 0;
    return submit(a, rec, TR_AUDIT_REQUEST, 0, a->backlog_max, NULL, NULL);
}

int
tr_audit_write_decision(tr_audit *a, const tr_audit_record *rec,
                        tr_audit_durable_cb cb, void *arg)
{
    tr_audit_record r;

    if (!a) {
        cb(arg, 0, 0);
        return 0;
    }
    r = *rec;
    /* Completed later by a COMPLETION row: never half-filled here. */
    r.has_status = r.has_latency = r.has_bytes = false;
    return submit(a, &r, TR_AUDIT_DECISION, TR_JOB_SYNC | TR_JOB_FAIL_FAST,
                  a->backlog_max, cb, arg);
}

int
tr_audit_write_completion(tr_audit *a, uint64_t decision_seq,
                          const char *request_id, int64_t time_ms,
                          int status, int64_t latency_us, int64_t bytes)
{
    tr_audit_record r;

    if (!a)
        return 0;
    memset(&r, 0, sizeof(r));
    r.time_ms = time_ms;
    r.request_id = request_id;
    r.has_completes_seq = true;
    r.completes_seq = decision_seq;
    r.has_status = status > 0;
    r.status = status;
    r.has_latency = true;
    r.latency_us = latency_us;
    r.has_bytes = true;
    r.bytes = bytes;
    return submit(a, &r, TR_AUDIT_COMPLETION, 0, 2 * a->backlog_max, NULL,
                  NULL);
}

/* --- retention (loop thread) ------------------------------------------ */

static void on_prune_timer(uv_timer_t *t);

static void
prune_done(tr_job *job, int status)
{
    prune_job *j = (prune_job *)job;
    tr_audit *a = j->a;

    a->prune_busy = false;
    if (status > 0)
        atomic_fetch_add(&a->pruned, (uint64_t)status);
    /* A full batch: more old records are waiting; come back soon. */
    if (status >= TR_AUDIT_PRUNE_BATCH && a->cfg->retention_days &&
        !a->closing)
        uv_timer_start(&a->prune_timer, on_prune_timer, PRUNE_AGAIN_MS,
                       PRUNE_EVERY_MS);
    free(j);
}

int
tr_audit_prune(tr_audit *a, int64_t cutoff_ms)
{
    prune_job *j;
    int rc;

    if (!a || !a->signing)
        return 0;
    if (a->prune_busy)
        return TR_STORE_EAGAIN;
    j = calloc(1, sizeof(*j));
    if (!j)
        return TR_STORE_ERROR;
    j->job.run = run_prune;
    j->job.done = prune_done;
    j->a = a;
    j->cutoff_ms = cutoff_ms;
    rc = tr_worker_submit(a->w, &j->job);
    if (rc != 0) {
        free(j);
        return rc;
    }
    a->prune_busy = true;
    return 0;
}

static void
on_prune_timer(uv_timer_t *t)
{
    tr_audit *a = t->data;

    tr_audit_prune(a, wall_ms() - (int64_t)a->cfg->retention_days * DAY_MS);
}

static void
shutdown_done(tr_job *job, int status)
{
    free(job);
}

/* --- refused tokens ----------------------------------------------------- */

static void
agg_flush(tr_audit *a)
{
    for (size_t i = 0; i < AGG_SLOTS + 1; i++) {
        agg_entry *e = &a->agg[i];
        tr_audit_record r;

        if (e->count == 0)
            continue;
        memset(&r, 0, sizeof(r));
        r.time_ms = a->window * WINDOW_MS;
        r.client_addr = e->addr;
        r.reason = e->reason;
        r.decision = TR_AUDIT_DENY;
        r.has_token_verified = true;
        r.token_verified = false;
        r.has_count = true;
        r.count = e->count;
        r.config_hash = NULL;
        /* Trailing like any record; dropped and counted when full. */
        submit(a, &r, TR_AUDIT_REFUSED_TOKENS, 0, 2 * a->backlog_max,
               NULL, NULL);
        e->count = 0;
    }
    a->n_agg = 0;
}

static uint32_t
fnv1a(const char *s, uint32_t h)
{
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

static bool
agg_matches(const agg_entry *e, const char *addr, const char *reason)
{
    return !strncmp(e->addr, addr, sizeof(e->addr) - 1) &&
           !strncmp(e->reason, reason, sizeof(e->reason) - 1);
}

void
tr_audit_note_refused_token(tr_audit *a, int64_t now_ms,
                            const char *client_addr, const char *reason)
{
    int64_t window = now_ms / WINDOW_MS;
    uint32_t h;
    agg_entry *e = NULL;

    if (!a)
        return;
    if (!client_addr)
        client_addr = "";
    if (!reason)
        reason = "";
    a->refused_tokens++;
    if (window != a->window) {
        if (a->n_agg)
            agg_flush(a);
        a->window = window;
    }
    h = fnv1a(reason, fnv1a(client_addr, 2166136261u));
    for (size_t i = 0; i < AGG_SLOTS; i++) {
        agg_entry *c = &a->agg[(h + i) % AGG_SLOTS];

        if (c->count == 0) {
            if (a->n_agg >= AGG_SLOTS)
                break;
            snprintf(c->addr, sizeof(c->addr), "%s", client_addr);
            snprintf(c->reason, sizeof(c->reason), "%s", reason);
            a->n_agg++;
            e = c;
            break;
        }
        if (agg_matches(c, client_addr, reason)) {
            e = c;
            break;
        }
    }
    if (!e) {
        /* A table full of distinct sources: one row carries the rest. */
        e = &a->agg[AGG_SLOTS];
        snprintf(e->addr, sizeof(e->addr), "*");
        snprintf(e->reason, sizeof(e->reason), "*");
        if (e->count == 0)
            a->n_agg++;
    }
    e->count++;
}

void
tr_audit_flush_refused(tr_audit *a, int64_t now_ms)
{
    if (!a || !a->n_agg)
        return;
    if (now_ms / WINDOW_MS > a->window)
        agg_flush(a);
}

static void
on_timer(uv_timer_t *t)
{
    tr_audit_flush_refused(t->data, wall_ms());
}

/* --- life cycle ------------------------------------------------------- */

bool
tr_audit_db_path(const char *state_dir, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", state_dir, TR_AUDIT_DB_FILE);

    return n > 0 && (size_t)n < len;
}

tr_audit *
tr_audit_open(uv_loop_t *loop, const char *state_dir,
              const tr_audit_cfg *cfg, char *err, size_t errlen)
{
    tr_audit *a = calloc(1, sizeof(*a));
    tr_worker_opts o;
    char path[4096];

    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!tr_audit_db_path(state_dir, path, sizeof(path))) {
        snprintf(err, errlen, "audit: state_dir path too long");
        free(a);
        return NULL;
    }
    a->loop = loop;
    a->cfg = cfg;
    a->backlog_max = cfg->backlog_max ? cfg->backlog_max
                                      : DEFAULT_BACKLOG_MAX;
    a->window = -1;
    a->every = cfg->checkpoint_every;
    /* Checkpoints and retention's anchors are signed: no key, no start. */
    if (cfg->checkpoint_every || cfg->retention_days) {
        if (tr_audit_keys_load_signing(state_dir, cfg->signing_key_file,
                                       wall_ms() / 1000, &a->keys, err,
                                       errlen) != 0)
            goto fail;
        a->signing = true;
    }
    if (cfg->checkpoint_file) {
        a->sink = tr_audit_sink_open(cfg->checkpoint_file, state_dir, err,
                                     errlen);
        if (!a->sink)
            goto fail;
    }
    memset(&o, 0, sizeof(o));
    o.name = "audit";
    o.db_path = path;
    o.sync = cfg->sync;
    o.migrate = audit_migrate;
    o.batch_end = audit_batch_end;
    o.ctx = a;
    /* Room above backlog_max for completions of admitted requests and
     * refused-token rows. */
    o.queue_max = 2 * a->backlog_max + AGG_SLOTS + 1;
    o.flush_ms = cfg->flush_ms;
    a->w = tr_worker_start(loop, &o, err, errlen);
    if (!a->w)
        goto fail;
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, on_timer, WINDOW_MS, WINDOW_MS);
    /* The flush timer alone must not keep a loop alive. */
    uv_unref((uv_handle_t *)&a->timer);
    uv_timer_init(loop, &a->prune_timer);
    a->prune_timer.data = a;
    if (cfg->retention_days)
        uv_timer_start(&a->prune_timer, on_prune_timer, PRUNE_FIRST_MS,
                       PRUNE_EVERY_MS);
    uv_unref((uv_handle_t *)&a->prune_timer);
    a->open_handles = 2;
    return a;

fail:
    tr_audit_sink_close(a->sink);
    tr_gateway_keys_free(&a->keys);
    free(a);
    return NULL;
}

static void
on_timer_closed(uv_handle_t *h)
{
    tr_audit *a = h->data;

    if (--a->open_handles == 0)
        free(a);
}

void
tr_audit_close(tr_audit *a)
{
    shutdown_job *j;

    if (!a)
        return;
    a->closing = true;
    if (a->n_agg)
        agg_flush(a);
    /* Queued last, after every record: the head is then covered. */
    if (a->every && a->signing && (j = calloc(1, sizeof(*j)))) {
        j->job.run = run_shutdown;
        j->job.done = shutdown_done;
        j->a = a;
        if (tr_worker_submit(a->w, &j->job) != 0)
            free(j);
    }
    uv_timer_stop(&a->timer);
    uv_timer_stop(&a->prune_timer);
    tr_worker_stop(a->w);
    a->w = NULL;
    tr_audit_sink_close(a->sink);
    a->sink = NULL;
    tr_gateway_keys_free(&a->keys);
    free(a->cp_lines);
    a->cp_lines = NULL;
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
    uv_close((uv_handle_t *)&a->prune_timer, on_timer_closed);
}

bool
tr_audit_available(const tr_audit *a)
{
    if (!a)
        return true;
    return tr_worker_available(a->w) &&
           tr_worker_backlog(a->w) < a->backlog_max;
}

void
tr_audit_get_stats(const tr_audit *ca, tr_audit_stats *out)
{
    tr_audit *a = (tr_audit *)ca;
    tr_worker_stats ws;

    memset(out, 0, sizeof(*out));
    if (!a) {
        out->available = true;
        return;
    }
    tr_worker_get_stats(a->w, &ws);
    out->records_written = atomic_load(&a->records_written);
    out->batches = ws.batches;
    out->batch_failures = ws.batch_failures;
    out->max_batch = ws.max_batch;
    out->records_dropped = a->records_dropped;
    out->records_failed = a->records_failed;
    out->admit_refusals = a->admit_refusals;
    out->reads_unaudited = a->reads_unaudited;
    out->refused_tokens = a->refused_tokens;
    out->backlog = ws.backlog;
    out->last_seq = atomic_load(&a->last_seq);
    out->last_error = ws.last_error;
    out->available = ws.available && ws.backlog < a->backlog_max;
    out->checkpoints = atomic_load(&a->checkpoints);
    out->checkpoint_failures = atomic_load(&a->checkpoint_failures);
    out->sink_failures = atomic_load(&a->sink_failures) +
                         tr_audit_sink_failures(a->sink);
    out->sink_dropped = tr_audit_sink_dropped(a->sink);
    out->records_pruned = atomic_load(&a->pruned);
    out->prune_refusals = atomic_load(&a->prune_refusals);
}
