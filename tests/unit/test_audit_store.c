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
#include "store/audit_query.h"
#include "store/audit_store.h"

static char dir[256];
static char db_path[300];
static uv_loop_t loop;

static int
setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/tr_audit_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/%s", dir, TR_AUDIT_DB_FILE);
    assert_int_equal(uv_loop_init(&loop), 0);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[300];
    int closed;

    /* Not UV_RUN_DEFAULT: after a failed assertion a store may still be
     * open and its handle would keep the loop running for ever. */
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    closed = uv_loop_close(&loop);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
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
                            "name IN ('audit','audit_actor')"), 2);
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
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
