/*
 * A store worker: one dedicated thread owning one database connection, fed
 * jobs from the event loop and handing completions back to it.
 *
 * Why a thread of its own per concern (audit, idempotency, ...) and not
 * libuv's shared threadpool: that pool also resolves DNS and has four
 * threads by default, so a slow audit commit could delay a claim or a name
 * lookup.  Here an audit batch never waits behind an idempotency claim and
 * vice versa.
 *
 * Flow.  tr_worker_submit() appends a job to a bounded queue (mutex +
 * condvar) and returns at once; it never touches the database.  The thread
 * takes every queued job, runs them inside ONE transaction (group commit)
 * and commits; finished jobs go on a completion list and one uv_async_t
 * (coalesced wake-ups) makes the loop call each job's done() in the order
 * the jobs finished (submission order, except that fail-fast jobs of a
 * failed batch finish before the held ones).  Callers on the loop never
 * block, except in tr_worker_stop().
 *
 * Batching.  A batch of only TR_JOB_SYNC-less jobs may wait up to flush_ms
 * for company (fewer commits under light load), unless batch_max of them
 * are queued already; a TR_JOB_SYNC job wakes the thread and is committed
 * at once together with whatever is queued before it.  A transaction
 * holds at most batch_max jobs.  Submitting wakes the thread only when
 * that changes what it waits for (a first job, a SYNC job, a full batch),
 * so a steady stream of trailing jobs costs no context switch per job.
 *
 * Failures.  run() returns TR_STORE_OK, a positive job-specific result (the
 * batch goes on), TR_STORE_EJOB (this job alone failed: SQLite undid the
 * failing statement, the batch goes on; a job of several statements that
 * must fail as a whole uses its own SAVEPOINT) or another negative code: the
 * store itself failed (disk full, I/O error, read-only, lock timeout), the
 * whole batch is rolled back and the worker becomes unavailable:
 *   - TR_JOB_FAIL_FAST jobs complete at once with that code (a caller that
 *     waits for durability answers 503 instead of waiting);
 *   - the other jobs stay queued, in order, and the batch is retried after
 *     retry_ms (backing off up to 5 s); they still count in the backlog, so
 *     callers that bound the backlog fail closed;
 *   - while unavailable, tr_worker_submit() refuses TR_JOB_FAIL_FAST jobs
 *     with TR_STORE_EUNAVAILABLE, and ones already queued complete with it
 *     without an attempt;
 *   - with nothing held to retry, the backend's probe (a small committed
 *     write) decides when the store is back.
 * The first batch that commits makes the worker available again.  Because
 * a rolled-back batch is run again, run() must derive everything from the
 * database and from state it restores in batch_end() (see below).
 *
 * Backends.  Job authors write run() against one backend's handle (for
 * SQLite a tr_sqlite *, see store/sqlite_worker.h).  A Redis backend would be
 * another tr_store_backend value: the concern's store module (audit_store.c
 * and friends) gains a second set of run() functions; the server, which
 * only calls the concern's API, is untouched.
 */
#ifndef TREATY_STORE_WORKER_H
#define TREATY_STORE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/config.h"

/* Status codes: 0 ok, > 0 job-specific results, < 0 failures. */
enum {
    TR_STORE_OK = 0,
    TR_STORE_EFULL = -1,        /* disk full, file size limit, page cap */
    TR_STORE_EIO = -2,          /* I/O error */
    TR_STORE_EREADONLY = -3,    /* file or directory not writable */
    TR_STORE_EBUSY = -4,        /* lock not obtained within busy_timeout */
    TR_STORE_ECORRUPT = -5,     /* not a database, or damaged */
    TR_STORE_EAGAIN = -6,       /* submit: queue full; caller fails closed */
    TR_STORE_ESTOPPED = -7,     /* submit after stop began; or dropped */
    TR_STORE_EUNAVAILABLE = -8, /* fail-fast job while the store is down */
    TR_STORE_EJOB = -9,         /* this job failed alone (constraint...) */
    TR_STORE_ERROR = -10,       /* anything else from the backend */
};

/* Short English name of a status code, for logs and messages. */
const char *tr_store_strerror(int status);

/* True for codes that mean "the store is down", as opposed to a job's own
 * failure (TR_STORE_EJOB) or a full queue. */
bool tr_store_is_outage(int status);

typedef struct tr_worker tr_worker;
typedef struct tr_job tr_job;

enum {
    TR_JOB_SYNC = 1u << 0,      /* commit without waiting flush_ms */
    TR_JOB_FAIL_FAST = 1u << 1, /* on an outage complete with the error */
};

/*
 * A job.  Callers embed it in their own struct (container_of style) and
 * keep that struct alive until done() has been called, which happens
 * exactly once for every job tr_worker_submit() accepted.
 */
struct tr_job {
    tr_job *next;               /* the worker's; do not touch */
    /* On the worker thread, inside the batch transaction.  db is the
     * backend handle (tr_sqlite * for SQLite). */
    int (*run)(tr_job *job, void *db);
    /* On the loop thread, after the batch committed (or failed). */
    void (*done)(tr_job *job, int status);
    int status;                 /* run()'s result, then the final status */
    unsigned flags;             /* TR_JOB_* */
};

typedef struct tr_store_backend tr_store_backend;

/* The embedded default: SQLite in WAL mode (store/sqlite_worker.c). */
extern const tr_store_backend tr_store_sqlite;

typedef struct {
    const tr_store_backend *backend; /* NULL = &tr_store_sqlite */
    const char *name;           /* "audit", "idempotency": thread, errors */
    const char *db_path;        /* file for SQLite (created 0600) */
    tr_sync_level sync;         /* NORMAL: survives kill -9; FULL: power */
    uint32_t busy_timeout_ms;   /* 0 = 5000 */
    /*
     * Brings the schema to the current version; called once on the
     * worker's connection before the thread starts (so a failure refuses
     * start-up with a message).  For SQLite see tr_sqlite_migrate().
     */
    int (*migrate)(void *db, void *ctx, char *err, size_t errlen);
    /*
     * Optional, on the worker thread: after each batch committed
     * (status 0) or rolled back (status < 0).  Lets a store keep derived
     * state (the audit chain's last sequence number and hash) in step
     * with what is really on disk.
     */
    void (*batch_end)(void *ctx, int status);
    void *ctx;                  /* passed to migrate and batch_end */
    size_t queue_max;           /* hard bound; 0 = 65536 */
    uint32_t flush_ms;          /* max wait of a non-SYNC batch; 0 = none */
    /* Jobs per transaction at most, so a SYNC job never waits behind one
     * huge batch; 0 = 512. */
    size_t batch_max;
    uint32_t retry_ms;          /* first retry after an outage; 0 = 200 */
} tr_worker_opts;

/*
 * Opens the store, runs migrate, starts the thread.  NULL on failure with
 * a message in err.  Must be called on the loop thread.
 */
tr_worker *tr_worker_start(uv_loop_t *loop, const tr_worker_opts *opts,
                           char *err, size_t errlen);

/*
 * Queues a job.  TR_STORE_OK, or TR_STORE_EAGAIN (queue_max reached),
 * TR_STORE_EUNAVAILABLE (a TR_JOB_FAIL_FAST job while the store is down)
 * or TR_STORE_ESTOPPED: then done() will NOT be called.  Any thread.
 */
int tr_worker_submit(tr_worker *w, tr_job *job);

/* Jobs accepted and not yet completed (queued, held, or in the batch). */
size_t tr_worker_backlog(const tr_worker *w);

/* False from a failed batch until the next committed one. */
bool tr_worker_available(const tr_worker *w);

typedef struct {
    uint64_t jobs_done;         /* completed with status >= 0 */
    uint64_t jobs_failed;       /* completed with status < 0 */
    uint64_t batches;           /* committed transactions */
    uint64_t batch_failures;    /* rolled-back transactions */
    uint64_t refused_full;      /* submits refused: queue_max */
    size_t backlog;
    size_t max_batch;           /* largest committed batch so far */
    int last_error;             /* TR_STORE_E* of the last failure, or 0 */
    bool available;
} tr_worker_stats;

void tr_worker_get_stats(const tr_worker *w, tr_worker_stats *out);

/*
 * Stops accepting jobs, lets the thread finish every queued job (one last
 * attempt, no retry: jobs still failing complete with their error), joins
 * it, then calls the remaining done() callbacks right here on the loop and
 * closes the async handle; the worker's memory is freed by that handle's
 * close callback, so run the loop once more (uv_run) afterwards.  Blocks
 * the loop for the final commit: meant for shutdown.  NULL is a no-op.
 */
void tr_worker_stop(tr_worker *w);

/*
 * Backend operations, for store/sqlite_worker.c and future backends; job
 * authors and callers never use them directly.
 */
struct tr_store_backend {
    const char *kind;           /* "sqlite" */
    void *(*open)(const tr_worker_opts *opts, char *err, size_t errlen);
    int (*begin)(void *db);
    int (*commit)(void *db);
    void (*rollback)(void *db);
    int (*probe)(void *db);     /* a small committed write; status */
    void (*close)(void *db);
};

#endif
