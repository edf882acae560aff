/*
 * Audit store benchmark (bench/audit runs it): how many records per
 * second the writer chains, signs checkpoints for and commits, and what
 * the event loop feels meanwhile.
 *
 *   bench_audit [records] [decision_seconds]
 *
 * Phases, each on a fresh state_dir under /tmp, audit.sync normal:
 *   0. the 1 ms timer alone for decision_seconds, nothing written: the
 *      loop lag the machine itself causes (the baseline for 3);
 *   1. trailing records (reads, refusals) as fast as the loop can submit
 *      them, checkpoint_every 0;
 *   2. the same with checkpoint_every 1000 and an external checkpoint
 *      file (signing, the checkpoint row, the line and its fsync);
 *   3. paced: 20 records every millisecond (20000/s, checkpoints on)
 *      for decision_seconds, the loop otherwise idle as a server's is
 *      between requests: the loop lag that writing adds;
 *   4. forwarded mutations: 64 DECISION records in flight, each followed
 *      by its COMPLETION, for decision_seconds: decisions per second and
 *      the time from submission to the durable callback (what the
 *      durability rule adds to a mutating request).
 * Loop lag: a 1 ms repeating timer on the same loop records how late it
 * fires (interval - 1 ms).  In phases 1 and 2 the producer spins on the
 * loop (64 records per turn) and competes for the two cores with the
 * writer thread, so their lag is mostly CPU contention; phase 3 is the
 * figure for a loop that waits for work.  Printed: p50, p99, max.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "store/audit_store.h"

#define PER_TURN 64
#define IN_FLIGHT 64
#define MAX_SAMPLES (1 << 21)

typedef struct {
    double *v;
    size_t n;
} samples;

static void
add(samples *s, double x)
{
    if (s->n < MAX_SAMPLES)
        s->v[s->n++] = x;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
pct(samples *s, double p)
{
    if (!s->n)
        return 0;
    qsort(s->v, s->n, sizeof(double), cmp);
    return s->v[(size_t)(p * (double)(s->n - 1))];
}

static uv_loop_t loop;
static tr_audit *audit;
static samples lag, commit;
static uint64_t last_tick;
static uint64_t submitted, target;
static uint64_t decisions_done;
static int outstanding;
static bool stop_decisions;

static tr_audit_record
record(void)
{
    tr_audit_record r;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    memset(&r, 0, sizeof(r));
    r.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    r.request_id = "4748792bc4a7ee04000000000000000a";
    r.client_addr = "192.0.2.10";
    r.principal_issuer = "corp";
    r.principal_sub = "alice";
    r.actor = "agent:planner";
    r.delegation_chain = "[\"agent:planner\",\"agent:mailbot\"]";
    r.token_hash = "e71736ebe8d58a284812757b65b00b1a";
    r.has_token_verified = true;
    r.token_verified = true;
    r.route = "mail-read";
    r.method = "GET";
    r.path = "/users/alice/mail/inbox";
    r.decision = TR_AUDIT_ALLOW;
    r.limiter = "admitted";
    r.has_status = true;
    r.status = 200;
    r.has_latency = true;
    r.latency_us = 1800;
    r.has_bytes = true;
    r.bytes = 512;
    r.config_hash =
        "cb4739f98286103a63d2b7c52dbcc4afccdd6321db6cb4af3eadbc4edfd891b5";
    return r;
}

static void
on_tick(uv_timer_t *t)
{
    uint64_t now = uv_hrtime();

    if (last_tick)
        add(&lag, (double)(now - last_tick) / 1e6 - 1.0);
    last_tick = now;
}

static void
on_produce(uv_idle_t *h)
{
    tr_audit_record r = record();

    for (int i = 0; i < PER_TURN && submitted < target; i++) {
        if (tr_audit_write(audit, &r) != 0)
            break;             /* backlog full: the writer is behind */
        submitted++;
    }
    if (submitted >= target)
        uv_idle_stop(h);
}

typedef struct {
    uint64_t t0;
} pending;

static void submit_decision(void);

static void
on_durable(void *arg, int status, uint64_t seq)
{
    pending *p = arg;
    tr_audit_record r = record();

    add(&commit, (double)(uv_hrtime() - p->t0) / 1e6);
    free(p);
    outstanding--;
    if (status == 0) {
        decisions_done++;
        tr_audit_write_completion(audit, seq, r.request_id, r.time_ms, 201,
                                  40000, 77);
    }
    if (!stop_decisions)
        submit_decision();
}

static void
submit_decision(void)
{
    tr_audit_record r = record();
    pending *p = malloc(sizeof(*p));

    r.method = "POST";
    r.route = "mail-send";
    p->t0 = uv_hrtime();
    if (tr_audit_write_decision(audit, &r, on_durable, p) != 0) {
        free(p);
        return;
    }
    outstanding++;
}

static void
report_lag(const char *what)
{
    printf("  loop lag (1 ms timer) %s: p50 %.3f ms  p99 %.3f ms  "
           "max %.3f ms  (%zu samples)\n", what, pct(&lag, 0.5),
           pct(&lag, 0.99), pct(&lag, 1.0), lag.n);
    lag.n = 0;
    last_tick = 0;
}

static void
run_until_written(uint64_t want)
{
    tr_audit_stats s;

    do {
        uv_run(&loop, UV_RUN_NOWAIT);
        tr_audit_get_stats(audit, &s);
    } while (s.records_written < want);
}

static tr_audit *
open_store(const char *dir, tr_audit_cfg *c, char *err, size_t errlen)
{
    tr_audit *a = tr_audit_open(&loop, dir, c, err, errlen);

    if (!a) {
        fprintf(stderr, "bench_audit: %s\n", err);
        exit(1);
    }
    return a;
}

static void
phase_trailing(const char *dir, const char *cp_file, uint32_t every,
               uint64_t n)
{
    tr_audit_cfg c;
    char err[512];
    uv_idle_t idle;
    uv_timer_t tick;
    tr_audit_stats s0, s;
    uint64_t t0;
    double secs;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.sync = TR_SYNC_NORMAL;
    c.backlog_max = 10000;
    c.flush_ms = 200;
    c.checkpoint_every = every;
    c.checkpoint_file = every ? (char *)cp_file : NULL;
    audit = open_store(dir, &c, err, sizeof(err));
    tr_audit_get_stats(audit, &s0);
    submitted = 0;
    target = n;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 1, 1);
    uv_idle_init(&loop, &idle);
    uv_idle_start(&idle, on_produce);
    t0 = uv_hrtime();
    run_until_written(s0.records_written + n);
    secs = (double)(uv_hrtime() - t0) / 1e9;
    tr_audit_get_stats(audit, &s);
    printf("%s: %llu records in %.2f s = %.0f records/s; %llu "
           "transactions (largest %zu), %llu checkpoints\n",
           every ? "trailing records, checkpoint every 1000"
                 : "trailing records, no checkpoints",
           (unsigned long long)n, secs, (double)n / secs,
           (unsigned long long)(s.batches - s0.batches), s.max_batch,
           (unsigned long long)(s.checkpoints - s0.checkpoints));
    report_lag("while writing");
    uv_timer_stop(&tick);
    uv_idle_stop(&idle);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&idle, NULL);
    tr_audit_close(audit);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static uv_timer_t pace_timer;

static void
on_pace(uv_timer_t *t)
{
    tr_audit_record r = record();

    on_tick(t);
    for (int i = 0; i < 20; i++)
        if (tr_audit_write(audit, &r) == 0)
            submitted++;
}

static void
on_stop_pace(uv_timer_t *t)
{
    uv_timer_stop(&pace_timer);
}

static void
phase_baseline(int seconds)
{
    uv_timer_t stop;

    uv_timer_init(&loop, &pace_timer);
    uv_timer_start(&pace_timer, on_tick, 1, 1);
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop_pace, (uint64_t)seconds * 1000, 0);
    while (uv_is_active((uv_handle_t *)&pace_timer))
        uv_run(&loop, UV_RUN_ONCE);
    printf("baseline, nothing written for %d s:\n", seconds);
    report_lag("of this machine");
    uv_close((uv_handle_t *)&pace_timer, NULL);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static void
phase_paced(const char *dir, const char *cp_file, int seconds)
{
    tr_audit_cfg c;
    char err[512];
    uv_timer_t stop;
    tr_audit_stats s;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.sync = TR_SYNC_NORMAL;
    c.backlog_max = 10000;
    c.flush_ms = 200;
    c.checkpoint_every = 1000;
    c.checkpoint_file = (char *)cp_file;
    audit = open_store(dir, &c, err, sizeof(err));
    submitted = 0;
    uv_timer_init(&loop, &pace_timer);
    uv_timer_start(&pace_timer, on_pace, 1, 1);
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop_pace, (uint64_t)seconds * 1000, 0);
    while (uv_is_active((uv_handle_t *)&pace_timer))
        uv_run(&loop, UV_RUN_ONCE);
    tr_audit_get_stats(audit, &s);
    printf("paced, 20 records per ms, checkpoint every 1000: %llu "
           "submitted in %d s, %llu committed, %llu checkpoints\n",
           (unsigned long long)submitted, seconds,
           (unsigned long long)s.records_written,
           (unsigned long long)s.checkpoints);
    report_lag("while writing");
    uv_close((uv_handle_t *)&pace_timer, NULL);
    uv_close((uv_handle_t *)&stop, NULL);
    tr_audit_close(audit);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static void
on_stop_decisions(uv_timer_t *t)
{
    stop_decisions = true;
}

static void
phase_decisions(const char *dir, const char *cp_file, int seconds)
{
    tr_audit_cfg c;
    char err[512];
    uv_timer_t tick, stop;
    tr_audit_stats s0, s;
    uint64_t t0;
    double secs;

    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.sync = TR_SYNC_NORMAL;
    c.backlog_max = 10000;
    c.flush_ms = 200;
    c.checkpoint_every = 1000;
    c.checkpoint_file = (char *)cp_file;
    audit = open_store(dir, &c, err, sizeof(err));
    tr_audit_get_stats(audit, &s0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 1, 1);
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop_decisions, (uint64_t)seconds * 1000, 0);
    t0 = uv_hrtime();
    for (int i = 0; i < IN_FLIGHT; i++)
        submit_decision();
    while (!stop_decisions || outstanding > 0)
        uv_run(&loop, UV_RUN_ONCE);
    secs = (double)(uv_hrtime() - t0) / 1e9;
    tr_audit_get_stats(audit, &s);
    printf("forwarded mutations, %d in flight, checkpoint every 1000: "
           "%llu decisions in %.2f s = %.0f/s (%.0f records/s with their "
           "completions); %llu transactions\n", IN_FLIGHT,
           (unsigned long long)decisions_done, secs,
           (double)decisions_done / secs,
           (double)(s.records_written - s0.records_written) / secs,
           (unsigned long long)(s.batches - s0.batches));
    printf("  decision submitted -> durable callback: p50 %.2f ms  p99 "
           "%.2f ms  max %.2f ms\n", pct(&commit, 0.5),
           pct(&commit, 0.99), pct(&commit, 1.0));
    report_lag("while committing");
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&stop, NULL);
    tr_audit_close(audit);
    uv_run(&loop, UV_RUN_DEFAULT);
}

int
main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 300000;
    int seconds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    char dir1[] = "/tmp/bench_audit_XXXXXX";
    char dir2[] = "/tmp/bench_audit_XXXXXX";
    char dir3[] = "/tmp/bench_audit_XXXXXX", out[] = "/tmp/bench_cp_XXXXXX";
    char dir4[] = "/tmp/bench_audit_XXXXXX";
    char cp_file[64], cmd[320];

    lag.v = malloc(MAX_SAMPLES * sizeof(double));
    commit.v = malloc(MAX_SAMPLES * sizeof(double));
    if (!lag.v || !commit.v || !mkdtemp(dir1) || !mkdtemp(dir2) ||
        !mkdtemp(dir3) || !mkdtemp(dir4) || !mkdtemp(out))
        return 1;
    snprintf(cp_file, sizeof(cp_file), "%s/checkpoints.jsonl", out);
    uv_loop_init(&loop);
    phase_baseline(seconds);
    phase_trailing(dir1, cp_file, 0, n);
    phase_trailing(dir2, cp_file, 1000, n);
    phase_paced(dir4, cp_file, seconds);
    phase_decisions(dir3, cp_file, seconds);
    uv_loop_close(&loop);
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s %s %s %s", dir1, dir2, dir3,
             dir4, out);
    if (system(cmd) != 0)
        return 1;
    free(lag.v);
    free(commit.v);
    return 0;
}
