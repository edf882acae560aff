/* The audit store on a real SQLite file and a real uv loop: migrations,
 * chaining, durability callbacks, group commit, backpressure, refused-
 * token aggregation, queries, disk full and kill -9. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/audit_chain.h"
#include "store/audit_keys.h"
#include "store/audit_query.h"
#include "store/audit_store.h"
#include "store/audit_verify.h"

static char dir[256];
static char outside[256];      /* a directory outside state_dir */
static char db_path[300];
static uv_loop_t loop;

static int
setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/tr_audit_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(outside, sizeof(outside), "/tmp/tr_audit_cp_XXXXXX");
    assert_non_null(mkdtemp(outside));
    snprintf(db_path, sizeof(db_path), "%s/%s", dir, TR_AUDIT_DB_FILE);
    assert_int_equal(uv_loop_init(&loop), 0);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[600];
    int closed;

    /* Not UV_RUN_DEFAULT: after a failed assertion a store may still be
     * open and its handle would keep the loop running for ever. */
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    closed = uv_loop_close(&loop);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, outside);
    if (system(cmd) != 0 || closed != 0)
        return -1; /* a handle left open: a leak in the store */
    return 0;
}

static bool wait_stats(tr_audit *a, bool want_available,
                       uint64_t min_written, uint64_t timeout_ms);

static tr_audit_cfg
cfg_default(void)
{
    tr_audit_cfg c;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.sync = TR_SYNC_NORMAL;
    c.backlog_max = 1000;
    c.flush_ms = 0;
    return c;
}

static uint64_t
now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* Runs the loop without blocking until *flag becomes true or the timeout
 * passes: the worker's async handle keeps a blocking uv_run alive. */
static bool
run_until(volatile int *flag, int want, uint64_t timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;

    while (*flag < want) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (now_ms() > end)
            return false;
        usleep(500);
    }
    return true;
}

static void
close_audit(tr_audit *a)
{
    tr_audit_close(a);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static tr_audit_record
rec_for(const char *sub, const char *actor, const char *chain)
{
    tr_audit_record r;

    memset(&r, 0, sizeof(r));
    r.time_ms = 1700000000000;
    r.request_id = "rid";
    r.client_addr = "192.0.2.1";
    r.principal_issuer = "corp";
    r.principal_sub = sub;
    r.actor = actor;
    r.delegation_chain = chain;
    r.route = "mail-read";
    r.method = "GET";
    r.path = "/users/alice/mail/inbox";
    r.decision = TR_AUDIT_ALLOW;
    r.has_status = true;
    r.status = 200;
    r.has_latency = true;
    r.latency_us = 1500;
    r.has_bytes = true;
    r.bytes = 42;
    return r;
}

static sqlite3_int64
scalar(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    sqlite3_int64 v = -1;

    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY,
                                     NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static tr_audit_verify_result
verify(void)
{
    char err[256];
    tr_audit_reader *r = tr_audit_reader_open(db_path, err, sizeof(err));
    tr_audit_verify_result v;

    assert_non_null(r);
    assert_int_equal(tr_audit_reader_verify(r, &v, err, sizeof(err)), 0);
    tr_audit_reader_close(r);
    return v;
}

static void
test_empty_file_is_migrated_to_current_schema(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit *a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    struct stat st;

    assert_non_null(a);
    close_audit(a);
    assert_int_equal(scalar("PRAGMA user_version"),
                     TR_AUDIT_SCHEMA_VERSION);
    assert_int_equal(scalar("SELECT count(*) FROM sqlite_master WHERE "
                            "name IN ('audit','audit_actor',"
                            "'audit_checkpoint')"), 3);
    assert_int_equal(scalar("SELECT count(*) FROM pragma_table_info"
                            "('audit')"), 33);
    assert_int_equal(stat(db_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void
test_newer_schema_is_refused(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    sqlite3 *db;

    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_null(tr_audit_open(&loop, dir, &c, err, sizeof(err)));
    assert_non_null(strstr(err, "newer"));
}

static void
test_records_are_chained_without_gaps_across_restarts(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit_record r = rec_for("alice", "alice", NULL);
    tr_audit_verify_result v;
    tr_audit *a;

    for (int round = 0; round < 2; round++) {
        a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
        assert_non_null(a);
        for (int i = 0; i < 10; i++)
            assert_int_equal(tr_audit_write(a, &r), 0);
        close_audit(a);
    }
    assert_int_equal(scalar("SELECT count(*) FROM audit"), 20);
    assert_int_equal(scalar("SELECT max(seq) FROM audit"), 20);
    v = verify();
    assert_int_equal(v.finding, TR_CHAIN_OK);
    assert_int_equal(v.records, 20);
    assert_int_equal(v.last_good_seq, 20);
}

static void
test_verify_reports_first_edited_and_deleted_record(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit_record r = rec_for("alice", "alice", NULL);
    tr_audit_verify_result v;
    tr_audit *a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    sqlite3 *db;

    assert_non_null(a);
    for (int i = 0; i < 6; i++)
        tr_audit_write(a, &r);
    close_audit(a);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE audit SET status=500 "
                                  "WHERE seq=4", NULL, NULL, NULL), 0);
    sqlite3_close(db);
    v = verify();
    assert_int_equal(v.finding, TR_CHAIN_HASH_MISMATCH);
    assert_int_equal(v.bad_seq, 4);
    assert_int_equal(v.last_good_seq, 3);

    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM audit WHERE seq=2",
                                  NULL, NULL, NULL), 0);
    sqlite3_close(db);
    v = verify();
    assert_int_equal(v.finding, TR_CHAIN_SEQ_GAP);
    assert_int_equal(v.bad_seq, 3);
}

typedef struct {
    int calls;
    int status[64];
    uint64_t seq[64];
    int64_t visible[64];       /* row count for seq, read in the cb */
} durable_log;

static void
on_durable(void *arg, int status, uint64_t seq)
{
    durable_log *d = arg;
    char sql[96];

    d->status[d->calls] = status;
    d->seq[d->calls] = seq;
    /* What a crash right now would leave: another connection sees it. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit WHERE seq=%llu"
             " AND kind='decision'", (unsigned long long)seq);
    d->visible[d->calls] = status == 0 && seq ? scalar(sql) : -1;
    d->calls++;
}

static void
test_decision_is_committed_before_its_callback_in_order(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    durable_log d = { 0 };
    tr_audit_record r = rec_for("alice", "agent:mailbot",
                                "[\"agent:mailbot\"]");
    tr_audit *a;

    c.flush_ms = 60000; /* trailing records would wait; decisions not */
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    r.method = "POST";
    for (int i = 0; i < 5; i++)
        assert_int_equal(tr_audit_write_decision(a, &r, on_durable, &d), 0);
    assert_int_equal(d.calls, 0); /* never synchronously */
    assert_true(run_until(&d.calls, 5, 5000));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d.status[i], 0);
        assert_int_equal(d.seq[i], (uint64_t)i + 1);
        assert_int_equal(d.visible[i], 1);
    }
    /* The status was not stored on the decision: it comes later. */
    assert_int_equal(scalar("SELECT count(*) FROM audit WHERE status IS "
                            "NOT NULL"), 0);
    assert_int_equal(tr_audit_write_completion(a, d.seq[0], "rid",
                                               1700000000100, 201, 2500,
                                               17), 0);
    close_audit(a);
    assert_int_equal(scalar("SELECT status FROM audit WHERE "
                            "kind='completion' AND completes_seq=1"), 201);
    assert_int_equal(verify().finding, TR_CHAIN_OK);
}

static void
test_trailing_records_are_group_committed(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit_record r = rec_for("alice", "alice", NULL);
    tr_audit_stats s;
    tr_audit *a;

    c.flush_ms = 100;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    for (int i = 0; i < 300; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    tr_audit_get_stats(a, &s);
    while (s.records_written < 300) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
        tr_audit_get_stats(a, &s);
    }
    /* 300 submissions in microseconds, one flush window: a handful of
     * transactions at most, not 300. */
    assert_true(s.batches >= 1);
    assert_true(s.batches <= 3);
    close_audit(a);
}

static void
test_a_transaction_holds_at_most_512_records(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit_record r = rec_for("alice", "alice", NULL);
    tr_audit_stats s;
    tr_audit *a;

    c.flush_ms = 200; /* all 2000 are queued before the first batch */
    c.backlog_max = 5000;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    assert_true(wait_stats(a, true, 2000, 20000));
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.max_batch, 512);
    assert_true(s.batches >= 4);
    close_audit(a);
    assert_int_equal(scalar("SELECT count(*) FROM audit"), 2000);
}

static void
test_decision_flushes_waiting_trailing_records(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    durable_log d = { 0 };
    tr_audit_record r = rec_for("alice", "alice", NULL);
    uint64_t t0;
    tr_audit_stats s;
    tr_audit *a;

    c.flush_ms = 60000;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(tr_audit_write(a, &r), 0);
    t0 = now_ms();
    assert_int_equal(tr_audit_write_decision(a, &r, on_durable, &d), 0);
    assert_true(run_until(&d.calls, 1, 5000));
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(d.seq[0], 2); /* after the trailing one */
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.records_written, 2);
    assert_int_equal(s.batches, 1);
    close_audit(a);
}

static void
test_backlog_over_limit_refuses_and_counts(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    durable_log d = { 0 };
    tr_audit_record r = rec_for("alice", "alice", NULL);
    tr_audit_stats s;
    tr_audit *a;

    c.backlog_max = 5;
    c.flush_ms = 60000; /* keep them queued */
    c.reads_fail_open = true;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(tr_audit_admit(a, true), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    assert_false(tr_audit_available(a));
    assert_int_equal(tr_audit_write(a, &r), TR_STORE_EAGAIN);
    assert_int_equal(tr_audit_admit(a, true), TR_STORE_EAGAIN);
    assert_int_equal(tr_audit_write_decision(a, &r, on_durable, &d),
                     TR_STORE_EAGAIN);
    /* Reads pass when configured so, and are counted. */
    assert_int_equal(tr_audit_admit(a, false), 0);
    /* The completion of an admitted request still goes in. */
    assert_int_equal(tr_audit_write_completion(a, 1, "rid", 1, 200, 1, 1),
                     0);
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.records_dropped, 2);
    assert_int_equal(s.admit_refusals, 1);
    assert_int_equal(s.reads_unaudited, 1);
    assert_int_equal(s.backlog, 6);
    assert_false(s.available);
    /* Closing commits everything accepted, flush delay or not. */
    close_audit(a);
    assert_int_equal(d.calls, 0);
    assert_int_equal(scalar("SELECT count(*) FROM audit"), 6);
}

static void
test_reads_fail_closed_unless_configured(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit_record r = rec_for("alice", "alice", NULL);
    tr_audit *a;

    c.backlog_max = 1;
    c.flush_ms = 60000;
    c.reads_fail_open = false;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(tr_audit_write(a, &r), 0);
    assert_int_equal(tr_audit_admit(a, false), TR_STORE_EAGAIN);
    close_audit(a);
}

typedef struct {
    int n;
    uint64_t seqs[64];
    char subs[64][16];
} collected;

static int
collect(void *arg, const tr_audit_record *rec, const tr_audit_completion *c)
{
    collected *col = arg;

    col->seqs[col->n] = rec->seq;
    snprintf(col->subs[col->n], sizeof(col->subs[0]), "%s",
             rec->principal_sub ? rec->principal_sub : "-");
    col->n++;
    return 0;
}

static collected
query(const tr_audit_filter *f)
{
    char err[256];
    collected col = { 0 };
    tr_audit_reader *r = tr_audit_reader_open(db_path, err, sizeof(err));

    assert_non_null(r);
    assert_int_equal(tr_audit_reader_each(r, f, collect, &col, err,
                                          sizeof(err)), 0);
    tr_audit_reader_close(r);
    return col;
}

static void
test_query_by_principal_and_actor_anywhere_in_chain(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit *a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    tr_audit_record r1 = rec_for("alice", "agent:planner",
                                 "[\"agent:planner\",\"agent:mailbot\"]");
    tr_audit_record r2 = rec_for("bob", "agent:mailbot",
                                 "[\"agent:mailbot\"]");
    tr_audit_record r3 = rec_for("alice", "alice", NULL);
    tr_audit_record r4 = rec_for("carol", "agent:shopbot",
                                 "[\"agent:shopbot\"]");
    tr_audit_filter f;
    collected col;

    assert_non_null(a);
    r3.time_ms = 1700000100000;
    r4.decision = TR_AUDIT_DENY;
    r4.reason = "actor_not_allowed";
    tr_audit_write(a, &r1);
    tr_audit_write(a, &r2);
    tr_audit_write(a, &r3);
    tr_audit_write(a, &r4);
    close_audit(a);

    memset(&f, 0, sizeof(f));
    f.actor = "agent:mailbot"; /* inner in #1, current in #2 */
    col = query(&f);
    assert_int_equal(col.n, 2);
    assert_int_equal(col.seqs[0], 1);
    assert_int_equal(col.seqs[1], 2);

    memset(&f, 0, sizeof(f));
    f.principal = "alice";
    col = query(&f);
    assert_int_equal(col.n, 2);
    assert_int_equal(col.seqs[0], 1);
    assert_int_equal(col.seqs[1], 3);

    memset(&f, 0, sizeof(f));
    f.actor = "alice"; /* a human request: the actor is the principal */
    col = query(&f);
    assert_int_equal(col.n, 1);
    assert_int_equal(col.seqs[0], 3);

    memset(&f, 0, sizeof(f));
    f.decision = "deny";
    col = query(&f);
    assert_int_equal(col.n, 1);
    assert_string_equal(col.subs[0], "carol");

    memset(&f, 0, sizeof(f));
    f.has_since = true;
    f.since_ms = 1700000050000;
    col = query(&f);
    assert_int_equal(col.n, 1);
    assert_int_equal(col.seqs[0], 3);

    memset(&f, 0, sizeof(f));
    f.last = 2;
    col = query(&f);
    assert_int_equal(col.n, 2);
    assert_int_equal(col.seqs[0], 3); /* newest two, oldest first */
    assert_int_equal(col.seqs[1], 4);
}

typedef struct {
    int n;
    char addr[300][64];
    char reason[300][64];
    int64_t count[300];
    int64_t time_ms[300];
} agg_rows;

static int
collect_agg(void *arg, const tr_audit_record *rec,
            const tr_audit_completion *c)
{
    agg_rows *g = arg;

    snprintf(g->addr[g->n], 64, "%s", rec->client_addr);
    snprintf(g->reason[g->n], 64, "%s", rec->reason);
    g->count[g->n] = rec->count;
    g->time_ms[g->n] = rec->time_ms;
    g->n++;
    return 0;
}

static void
test_refused_tokens_become_one_row_per_source_and_second(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit *a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    tr_audit_reader *rd;
    tr_audit_filter f;
    static agg_rows g;
    tr_audit_stats s;

    assert_non_null(a);
    for (int i = 0; i < 1000; i++)
        tr_audit_note_refused_token(a, 5000 + i % 1000, "192.0.2.9",
                                    "bad_signature");
    for (int i = 0; i < 10; i++)
        tr_audit_note_refused_token(a, 5500, "192.0.2.10", "expired");
    /* Nothing written within the window... */
    tr_audit_flush_refused(a, 5999);
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.backlog, 0);
    /* ...the next window's first refusal writes the previous one. */
    tr_audit_note_refused_token(a, 6001, "192.0.2.9", "bad_signature");
    close_audit(a);

    memset(&f, 0, sizeof(f));
    f.kind = "refused_tokens";
    memset(&g, 0, sizeof(g));
    rd = tr_audit_reader_open(db_path, err, sizeof(err));
    assert_non_null(rd);
    assert_int_equal(tr_audit_reader_each(rd, &f, collect_agg, &g, err,
                                          sizeof(err)), 0);
    tr_audit_reader_close(rd);
    assert_int_equal(g.n, 3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g.time_ms[i], 5000);
        if (!strcmp(g.addr[i], "192.0.2.9")) {
            assert_string_equal(g.reason[i], "bad_signature");
            assert_int_equal(g.count[i], 1000);
        } else {
            assert_string_equal(g.addr[i], "192.0.2.10");
            assert_int_equal(g.count[i], 10);
        }
    }
    assert_int_equal(g.time_ms[2], 6000);
    assert_int_equal(g.count[2], 1);
}

static void
test_refused_token_flood_from_many_sources_is_bounded(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256], addr[64];
    tr_audit *a = tr_audit_open(&loop, dir, &c, err, sizeof(err));

    assert_non_null(a);
    for (int i = 0; i < 300; i++) {
        snprintf(addr, sizeof(addr), "198.51.100.%d/%d", i % 250, i);
        tr_audit_note_refused_token(a, 7000, addr, "bad_signature");
    }
    close_audit(a);
    assert_int_equal(scalar("SELECT count(*) FROM audit"), 257);
    assert_int_equal(scalar("SELECT count FROM audit WHERE "
                            "client_addr='*'"), 44);
    assert_int_equal(scalar("SELECT sum(count) FROM audit"), 300);
}

static void
test_disabled_audit_is_a_no_op(void **state)
{
    durable_log d = { 0 };
    tr_audit_record r = rec_for("alice", "alice", NULL);

    assert_int_equal(tr_audit_admit(NULL, true), 0);
    assert_int_equal(tr_audit_write(NULL, &r), 0);
    assert_int_equal(tr_audit_write_decision(NULL, &r, on_durable, &d), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status[0], 0);
    assert_true(tr_audit_available(NULL));
    tr_audit_close(NULL);
}

/* --- signed checkpoints ------------------------------------------------- */

static void
exec_sql(const char *sql)
{
    sqlite3 *db;

    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* The full verify, with the state_dir's keys and an optional external
 * checkpoint file. */
static tr_audit_verify_report
verify_full(const char *cp_file)
{
    char err[256];
    tr_gateway_keys keys;
    tr_audit_checkpoint *ext = NULL;
    tr_audit_verify_opts o;
    tr_audit_verify_report v;
    tr_audit_reader *r;

    memset(&o, 0, sizeof(o));
    assert_int_equal(tr_audit_keys_load_trusted(NULL, dir, NULL,
                                                time(NULL), &keys, err,
                                                sizeof(err)), 0);
    if (cp_file)
        assert_int_equal(tr_audit_checkpoints_read(cp_file, &ext,
                                                   &o.n_external,
                                                   &o.external_malformed,
                                                   err, sizeof(err)), 0);
    o.external = ext;
    o.keys = keys.keys;
    o.n_keys = keys.n;
    r = tr_audit_reader_open(db_path, err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(tr_audit_verify(r, &o, &v, err, sizeof(err)), 0);
    tr_audit_reader_close(r);
    free(ext);
    tr_gateway_keys_free(&keys);
    return v;
}

static size_t
count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c;

    assert_non_null(f);
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void
test_checkpoints_every_n_records_and_at_close_are_signed(void **state)
{
    tr_audit_cfg c = cfg_default();
    tr_audit_record r = rec_for("alice", "alice", NULL);
    char err[256], cp_file[300], keys_dir[300];
    tr_audit_verify_report v;
    tr_audit_stats st;
    struct stat sb;
    tr_audit *a;

    snprintf(cp_file, sizeof(cp_file), "%s/checkpoints.jsonl", outside);
    c.checkpoint_every = 5;
    c.checkpoint_file = cp_file;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    for (int i = 0; i < 12; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    assert_true(wait_stats(a, true, 12, 5000));
    tr_audit_get_stats(a, &st);
    assert_int_equal(st.checkpoints, 2);
    close_audit(a);

    assert_int_equal(scalar("SELECT count(*) FROM audit_checkpoint WHERE"
                            " (seq=5 AND kind='periodic') OR (seq=10 AND"
                            " kind='periodic') OR (seq=12 AND"
                            " kind='shutdown')"), 3);
    assert_int_equal(scalar("SELECT count(*) FROM audit_checkpoint"), 3);
    assert_int_equal(count_lines(cp_file), 3);
    snprintf(keys_dir, sizeof(keys_dir), "%s/audit-keys", dir);
    assert_int_equal(stat(keys_dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    v = verify_full(cp_file);
    assert_int_equal(tr_audit_verify_verdict(&v), TR_AUDIT_INTACT);
    assert_int_equal(v.db_checkpoints, 3);
    assert_int_equal(v.ext_checkpoints, 3);
    assert_int_equal(v.bad_signatures, 0);
    assert_true(v.has_good_cp);
    assert_int_equal(v.good_cp.seq, 12);
    assert_true(v.good_cp_external);
    assert_int_equal(v.uncovered, 0);

    /* Restarting continues the count: the next periodic one is at 15. */
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    close_audit(a);
    assert_int_equal(scalar("SELECT count(*) FROM audit_checkpoint WHERE"
                            " seq=15 AND kind='periodic'"), 1);
    assert_int_equal(scalar("SELECT count(*) FROM audit_checkpoint WHERE"
                            " seq=15"), 1);
    assert_int_equal(count_lines(cp_file), 4);
}

static void
test_checkpoint_file_inside_state_dir_is_refused(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256], cp_file[300];

    snprintf(cp_file, sizeof(cp_file), "%s/checkpoints.jsonl", dir);
    c.checkpoint_every = 5;
    c.checkpoint_file = cp_file;
    assert_null(tr_audit_open(&loop, dir, &c, err, sizeof(err)));
    assert_non_null(strstr(err, "inside state_dir"));
}

static void
test_tampered_external_checkpoint_is_a_bad_signature(void **state)
{
    tr_audit_cfg c = cfg_default();
    tr_audit_record r = rec_for("alice", "alice", NULL);
    char err[256], cp_file[300], cmd[700];
    tr_audit_verify_report v;
    tr_audit *a;

    snprintf(cp_file, sizeof(cp_file), "%s/checkpoints.jsonl", outside);
    c.checkpoint_every = 4;
    c.checkpoint_file = cp_file;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    for (int i = 0; i < 8; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    close_audit(a);
    /* Claim the first checkpoint covers seq 3 instead of 4. */
    snprintf(cmd, sizeof(cmd), "sed -i '1s/\"seq\":4,/\"seq\":3,/' '%s'",
             cp_file);
    assert_int_equal(system(cmd), 0);
    v = verify_full(cp_file);
    assert_int_equal(v.bad_signatures, 1);
    assert_true(v.first_bad_external);
    assert_int_equal(v.first_bad_seq, 3);
    assert_int_equal(tr_audit_verify_verdict(&v), TR_AUDIT_BAD_SIGNATURE);
}

static void
test_truncated_tail_is_found_by_the_database_own_checkpoint(void **state)
{
    tr_audit_cfg c = cfg_default();
    tr_audit_record r = rec_for("alice", "alice", NULL);
    char err[256];
    tr_audit_verify_report v;
    tr_audit *a;

    c.checkpoint_every = 5;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    for (int i = 0; i < 12; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    close_audit(a);
    exec_sql("DELETE FROM audit WHERE seq > 7");
    v = verify_full(NULL);
    assert_int_equal(v.chain.finding, TR_AUDIT_INTACT);
    assert_int_equal(v.history, TR_AUDIT_TRUNCATED);
    assert_int_equal(v.history_seq, 10);
    assert_int_equal(v.good_cp.seq, 5);
    assert_int_equal(tr_audit_verify_verdict(&v), TR_AUDIT_TRUNCATED);
}

/* --- retention ----------------------------------------------------------- */

static bool
wait_pruned(tr_audit *a, uint64_t want, uint64_t timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    tr_audit_stats s;

    for (;;) {
        uv_run(&loop, UV_RUN_NOWAIT);
        tr_audit_get_stats(a, &s);
        if (s.records_pruned >= want)
            return true;
        if (now_ms() > end)
            return false;
        usleep(2000);
    }
}

/* n records at time_ms = base + i, committed. */
static void
write_aged(tr_audit *a, int n, int64_t base)
{
    tr_audit_record r = rec_for("alice", "agent:x", "[\"agent:x\"]");
    tr_audit_stats s;

    tr_audit_get_stats(a, &s);
    for (int i = 0; i < n; i++) {
        r.time_ms = base + i;
        assert_int_equal(tr_audit_write(a, &r), 0);
    }
    assert_true(wait_stats(a, true, s.records_written + (uint64_t)n, 10000));
}

static void
test_prune_deletes_old_records_in_batches_and_leaves_an_anchor(
    void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256], cp_file[300];
    tr_audit_verify_report v;
    tr_audit_stats s;
    tr_audit *a;

    snprintf(cp_file, sizeof(cp_file), "%s/checkpoints.jsonl", outside);
    c.retention_days = 1;      /* the timer waits 1 s; the test is sooner */
    c.checkpoint_every = 100;
    c.checkpoint_file = cp_file;
    c.backlog_max = 5000;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    write_aged(a, TR_AUDIT_PRUNE_BATCH + 200, 1000);
    write_aged(a, 5, (int64_t)time(NULL) * 1000);

    assert_int_equal(tr_audit_prune(a, 1000000), 0);
    assert_int_equal(tr_audit_prune(a, 1000000), TR_STORE_EAGAIN);
    assert_true(wait_pruned(a, TR_AUDIT_PRUNE_BATCH, 5000));
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.records_pruned, TR_AUDIT_PRUNE_BATCH);
    /* The batch came back full: the next one follows by itself. */
    assert_true(wait_pruned(a, TR_AUDIT_PRUNE_BATCH + 200, 5000));
    close_audit(a);

    assert_int_equal(scalar("SELECT min(seq) FROM audit"),
                     TR_AUDIT_PRUNE_BATCH + 201);
    assert_int_equal(scalar("SELECT count(*) FROM audit"), 5);
    assert_int_equal(scalar("SELECT count(*) FROM audit_actor WHERE seq <="
                            " 1200"), 0);
    /* Only the newest anchor and what it did not make obsolete stay. */
    assert_int_equal(scalar("SELECT count(*) FROM audit_checkpoint WHERE"
                            " kind='anchor'"), 1);
    assert_int_equal(scalar("SELECT seq FROM audit_checkpoint WHERE"
                            " kind='anchor'"), TR_AUDIT_PRUNE_BATCH + 200);
    v = verify_full(cp_file);
    assert_int_equal(tr_audit_verify_verdict(&v), TR_AUDIT_INTACT);
    assert_true(v.anchored);
    assert_int_equal(v.start_seq, TR_AUDIT_PRUNE_BATCH + 200);
    assert_int_equal(v.checked, 5);

    /* Deleting the first record left after retention is still found. */
    exec_sql("DELETE FROM audit WHERE seq = 1201");
    v = verify_full(cp_file);
    assert_int_equal(v.chain.finding, TR_AUDIT_DELETED);
    assert_int_equal(v.chain.seq, 1201);
}

static void
test_prune_keeps_the_newest_record(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit *a;

    c.retention_days = 1;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    write_aged(a, 10, 1000);
    assert_int_equal(tr_audit_prune(a, INT64_MAX), 0);
    assert_true(wait_pruned(a, 9, 5000));
    close_audit(a);
    assert_int_equal(scalar("SELECT count(*) FROM audit"), 1);
    assert_int_equal(scalar("SELECT seq FROM audit"), 10);
    assert_int_equal(verify_full(NULL).checked, 1);
}

static void
test_prune_stops_before_a_record_that_does_not_verify(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit_stats s;
    tr_audit *a;

    c.retention_days = 1;
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    write_aged(a, 20, 1000);
    close_audit(a);
    exec_sql("UPDATE audit SET path='/edited' WHERE seq = 8");

    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(tr_audit_prune(a, INT64_MAX), 0);
    assert_true(wait_pruned(a, 7, 5000));
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.prune_refusals, 1);
    /* Later batches refuse again: retention is stuck at the evidence. */
    assert_int_equal(tr_audit_prune(a, INT64_MAX), 0);
    for (int i = 0; i < 200; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.records_pruned, 7);
    assert_int_equal(s.prune_refusals, 2);
    close_audit(a);
    assert_int_equal(scalar("SELECT min(seq) FROM audit"), 8);
    assert_int_equal(verify_full(NULL).chain.finding, TR_AUDIT_EDITED);
}

/* --- disk full --------------------------------------------------------- */

static void
set_fsize(rlim_t cur)
{
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = cur;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static bool
wait_stats(tr_audit *a, bool want_available, uint64_t min_written,
           uint64_t timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    tr_audit_stats s;

    for (;;) {
        uv_run(&loop, UV_RUN_NOWAIT);
        tr_audit_get_stats(a, &s);
        if (s.available == want_available &&
            s.records_written >= min_written)
            return true;
        if (now_ms() > end)
            return false;
        usleep(2000);
    }
}

/*
 * The file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) stands in for a
 * full disk: writes beyond it fail with EFBIG, which SQLite reports as an
 * I/O error.  Held trailing records survive the outage and are committed
 * when the limit is raised; the chain has no gap.
 */
static void
test_file_size_limit_fails_closed_and_recovers(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    durable_log d = { 0 };
    char big[2048];
    tr_audit_record r = rec_for("alice", "alice", NULL);
    struct rlimit saved;
    tr_audit_stats s;
    tr_audit *a;

    memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    r.path = big;
    c.backlog_max = 100000;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    set_fsize(256 * 1024);
    /* Write until the store reports the outage (about 100 records fit). */
    for (int i = 0; i < 400; i++)
        assert_int_equal(tr_audit_write(a, &r), 0);
    assert_true(wait_stats(a, false, 0, 5000));
    tr_audit_get_stats(a, &s);
    assert_true(s.batch_failures >= 1);
    assert_true(tr_store_is_outage(s.last_error));
    assert_true(s.backlog > 0);
    /* Fail closed: mutations refused, decisions not even queued. */
    assert_int_equal(tr_audit_admit(a, true), TR_STORE_EUNAVAILABLE);
    assert_int_equal(tr_audit_write_decision(a, &r, on_durable, &d),
                     TR_STORE_EUNAVAILABLE);
    assert_false(tr_audit_available(a));

    /* Space comes back: the held records go in, no gap. */
    set_fsize(saved.rlim_cur);
    assert_true(wait_stats(a, true, 400, 15000));
    tr_audit_get_stats(a, &s);
    assert_int_equal(s.backlog, 0);
    assert_int_equal(tr_audit_admit(a, true), 0);
    assert_int_equal(tr_audit_write_decision(a, &r, on_durable, &d), 0);
    assert_true(run_until(&d.calls, 1, 5000));
    assert_int_equal(d.status[0], 0);
    assert_int_equal(d.seq[0], 401);
    close_audit(a);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(verify().finding, TR_CHAIN_OK);
    assert_int_equal(scalar("SELECT count(*) FROM audit"), 401);
}

/* A decision that hits the limit is reported to its waiter at once; with
 * nothing held, the probe notices the space coming back. */
static void
test_failed_decision_reports_error_and_probe_recovers(void **state)
{
    tr_audit_cfg c = cfg_default();
    char err[256];
    durable_log d = { 0 };
    char big[4096];
    tr_audit_record r = rec_for("alice", "alice", NULL);
    struct rlimit saved;
    tr_audit *a;
    int sent = 0;

    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    r.path = big;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    a = tr_audit_open(&loop, dir, &c, err, sizeof(err));
    assert_non_null(a);
    set_fsize(128 * 1024);
    /* One decision at a time until one fails. */
    while (sent < 60) {
        int rc = tr_audit_write_decision(a, &r, on_durable, &d);

        if (rc != 0)
            break;
        sent++;
        assert_true(run_until(&d.calls, sent, 5000));
        if (d.status[sent - 1] != 0)
            break;
    }
    assert_true(sent > 1);
    assert_true(sent < 60);
    assert_true(tr_store_is_outage(d.status[sent - 1]));
    assert_int_equal(d.seq[sent - 1], 0);
    assert_false(tr_audit_available(a));

    set_fsize(saved.rlim_cur);
    assert_true(wait_stats(a, true, 0, 15000));
    assert_int_equal(tr_audit_write_decision(a, &r, on_durable, &d), 0);
    assert_true(run_until(&d.calls, sent + 1, 5000));
    assert_int_equal(d.status[sent], 0);
    /* The failed one took no number. */
    assert_int_equal(d.seq[sent], (uint64_t)sent);
    close_audit(a);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(verify().finding, TR_CHAIN_OK);
}

/* --- kill -9 ------------------------------------------------------------ */

static int ack_fd = -1;

static void
child_ack(void *arg, int status, uint64_t seq)
{
    int *outstanding = arg;

    (*outstanding)--;
    /* "Acknowledged to the client": only after the durable callback. */
    if (status == 0 && write(ack_fd, &seq, sizeof(seq)) != sizeof(seq))
        _exit(3);
}

static void
child_writer(void)
{
    uv_loop_t l;
    tr_audit_cfg c = cfg_default();
    char err[256];
    tr_audit_record r = rec_for("alice", "agent:mailbot",
                                "[\"agent:mailbot\"]");
    tr_audit *a;
    int outstanding = 0;

    uv_loop_init(&l);
    c.flush_ms = 50;
    c.backlog_max = 100000;
    a = tr_audit_open(&l, dir, &c, err, sizeof(err));
    if (!a)
        _exit(2);
    r.method = "POST";
    for (;;) {
        /* 16 concurrent "mutating requests" and some reads. */
        while (outstanding < 16) {
            if (tr_audit_write_decision(a, &r, child_ack, &outstanding))
                _exit(4);
            outstanding++;
            tr_audit_write(a, &r);
        }
        uv_run(&l, UV_RUN_NOWAIT);
    }
}

static void
test_kill_9_loses_no_acknowledged_decision(void **state)
{
    int fds[2], status;
    uint64_t seq, acked[4096];
    size_t n = 0;
    pid_t child;
    sqlite3 *db;
    sqlite3_stmt *st;

    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        ack_fd = fds[1];
        child_writer();
        _exit(0);
    }
    close(fds[1]);
    while (n < 2000 && read(fds[0], &seq, sizeof(seq)) == sizeof(seq))
        acked[n++] = seq;
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    close(fds[0]);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(n, 2000);

    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM audit "
                                        "WHERE seq=? AND kind='decision'",
                                        -1, &st, NULL), SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)acked[i]);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(verify().finding, TR_CHAIN_OK);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_file_is_migrated_to_current_schema),
        T(test_newer_schema_is_refused),
        T(test_records_are_chained_without_gaps_across_restarts),
        T(test_verify_reports_first_edited_and_deleted_record),
        T(test_decision_is_committed_before_its_callback_in_order),
        T(test_trailing_records_are_group_committed),
        T(test_a_transaction_holds_at_most_512_records),
        T(test_decision_flushes_waiting_trailing_records),
        T(test_backlog_over_limit_refuses_and_counts),
        T(test_reads_fail_closed_unless_configured),
        T(test_query_by_principal_and_actor_anywhere_in_chain),
        T(test_refused_tokens_become_one_row_per_source_and_second),
        T(test_refused_token_flood_from_many_sources_is_bounded),
        T(test_disabled_audit_is_a_no_op),
        T(test_file_size_limit_fails_closed_and_recovers),
        T(test_failed_decision_reports_error_and_probe_recovers),
        T(test_kill_9_loses_no_acknowledged_decision),
        T(test_checkpoints_every_n_records_and_at_close_are_signed),
        T(test_checkpoint_file_inside_state_dir_is_refused),
        T(test_tampered_external_checkpoint_is_a_bad_signature),
        T(test_truncated_tail_is_found_by_the_database_own_checkpoint),
        T(test_prune_deletes_old_records_in_batches_and_leaves_an_anchor),
        T(test_prune_keeps_the_newest_record),
        T(test_prune_stops_before_a_record_that_does_not_verify),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
