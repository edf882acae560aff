/* The generic store worker: queue, thread, group commit, completions
 * (see store/worker.h).  Backend specifics live in *_worker.c files. */
#include "store/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_QUEUE_MAX 65536
#define DEFAULT_RETRY_MS 200
#define DEFAULT_BATCH_MAX 512
#define MAX_RETRY_MS 5000

struct tr_worker {
    uv_loop_t *loop;
    uv_async_t async;
    pthread_t thread;
    const tr_store_backend *be;
    void *db;
    tr_worker_opts opts;
    char name[32];

    /* Guarded by mu: the queue and the thread's schedule. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tr_job *qhead, *qtail;
    size_t qlen;
    size_t sync_queued;        /* TR_JOB_SYNC jobs in the queue */
    uint64_t oldest_ms;        /* when the queue's first job came */
    uint64_t retry_at_ms;      /* next attempt while unavailable */
    uint32_t backoff_ms;
    bool stopping;

    /* Guarded by cmu: finished jobs waiting for the loop. */
    pthread_mutex_t cmu;
    tr_job *chead, *ctail;

    /* Read from any thread. */
    atomic_size_t backlog;     /* accepted, done() not yet called */
    atomic_bool available;
    atomic_int last_error;
    atomic_uint_least64_t jobs_done, jobs_failed, batches, batch_failures;
    atomic_uint_least64_t refused_full;
    atomic_size_t max_batch;
};

const char *
tr_store_strerror(int status)
{
    switch (status) {
    case TR_STORE_OK:
        return "ok";
    case TR_STORE_EFULL:
        return "store full (disk, file size limit or page cap)";
    case TR_STORE_EIO:
        return "store I/O error";
    case TR_STORE_EREADONLY:
        return "store not writable";
    case TR_STORE_EBUSY:
        return "store locked by another writer";
    case TR_STORE_ECORRUPT:
        return "store file damaged or not a database";
    case TR_STORE_EAGAIN:
        return "store queue full";
    case TR_STORE_ESTOPPED:
        return "store stopping";
    case TR_STORE_EUNAVAILABLE:
        return "store unavailable";
    case TR_STORE_EJOB:
        return "store refused this write";
    case TR_STORE_ERROR:
        return "store error";
    }
    return status > 0 ? "job result" : "unknown store error";
}

bool
tr_store_is_outage(int status)
{
    switch (status) {
    case TR_STORE_EFULL:
    case TR_STORE_EIO:
    case TR_STORE_EREADONLY:
    case TR_STORE_EBUSY:
    case TR_STORE_ECORRUPT:
    case TR_STORE_EUNAVAILABLE:
    case TR_STORE_ERROR:
        return true;
    default:
        return false;
    }
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits on cv until the monotonic deadline (ms) or a signal. */
static void
wait_until(tr_worker *w, uint64_t deadline_ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(deadline_ms / 1000u);
    ts.tv_nsec = (long)(deadline_ms % 1000u) * 1000000L;
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

/* Hands a finished job to the loop (worker thread). */
static void
complete(tr_worker *w, tr_job *job, int status)
{
    job->status = status;
    job->next = NULL;
    if (status < 0)
        atomic_fetch_add(&w->jobs_failed, 1);
    else
        atomic_fetch_add(&w->jobs_done, 1);
    pthread_mutex_lock(&w->cmu);
    if (w->ctail)
        w->ctail->next = job;
    else
        w->chead = job;
    w->ctail = job;
    pthread_mutex_unlock(&w->cmu);
    uv_async_send(&w->async);
}

/* On the loop: call done() for everything finished so far, in order. */
static void
deliver(tr_worker *w)
{
    tr_job *job, *next;

    pthread_mutex_lock(&w->cmu);
    job = w->chead;
    w->chead = w->ctail = NULL;
    pthread_mutex_unlock(&w->cmu);
    for (; job; job = next) {
        next = job->next;
        atomic_fetch_sub(&w->backlog, 1);
        job->done(job, job->status);
    }
}

static void
on_async(uv_async_t *h)
{
    deliver(h->data);
}

/* Removes the fail-fast jobs from the queue, completing them with status
 * (called with mu held). */
static void
fail_fast_queued(tr_worker *w, int status)
{
    tr_job **pp = &w->qhead, *job;

    w->qtail = NULL;
    while ((job = *pp)) {
        if (job->flags & TR_JOB_FAIL_FAST) {
            *pp = job->next;
            w->qlen--;
            if (job->flags & TR_JOB_SYNC)
                w->sync_queued--;
            complete(w, job, status);
        } else {
            w->qtail = job;
            pp = &job->next;
        }
    }
}

/* Runs one batch in one transaction (worker thread, mu not held).
 * Returns 0 or the outage status that rolled it back. */
static int
run_batch(tr_worker *w, tr_job *batch)
{
    int rc = w->be->begin(w->db);

    for (tr_job *job = batch; rc == 0 && job; job = job->next) {
        int r = job->run(job, w->db);

        if (r < 0 && r != TR_STORE_EJOB)
            rc = r;
        else
            job->status = r;
    }
    if (rc == 0)
        rc = w->be->commit(w->db);
    if (rc != 0)
        w->be->rollback(w->db);
    if (w->opts.batch_end)
        w->opts.batch_end(w->opts.ctx, rc);
    return rc;
}

static void
batch_failed(tr_worker *w, tr_job *batch, int rc)
{
    tr_job *keep = NULL, *keep_tail = NULL, *next;
    size_t n_keep = 0, n_sync = 0;

    atomic_fetch_add(&w->batch_failures, 1);
    atomic_store(&w->last_error, rc);
    atomic_store(&w->available, false);
    for (tr_job *job = batch; job; job = next) {
        next = job->next;
        job->next = NULL;
        if ((job->flags & TR_JOB_FAIL_FAST) || w->stopping) {
            complete(w, job, rc);
            continue;
        }
        if (keep_tail)
            keep_tail->next = job;
        else
            keep = job;
        keep_tail = job;
        n_keep++;
        if (job->flags & TR_JOB_SYNC)
            n_sync++;
    }
    /* The kept jobs go back in front of anything queued meanwhile, so the
     * retry commits them first and in their original order. */
    if (keep) {
        keep_tail->next = w->qhead;
        if (!w->qhead)
            w->qtail = keep_tail;
        w->qhead = keep;
        w->qlen += n_keep;
        w->sync_queued += n_sync;
    }
    fail_fast_queued(w, TR_STORE_EUNAVAILABLE);
    w->retry_at_ms = mono_ms() + w->backoff_ms;
    w->backoff_ms = w->backoff_ms * 2 > MAX_RETRY_MS ? MAX_RETRY_MS
                                                     : w->backoff_ms * 2;
}

/* Hands a whole committed batch to the loop: one lock, one wake-up
 * (worker thread, mu not held). */
static void
batch_committed(tr_worker *w, tr_job *batch, size_t n)
{
    tr_job *tail = batch;

    atomic_fetch_add(&w->batches, 1);
    atomic_store(&w->available, true);
    if (n > atomic_load(&w->max_batch))
        atomic_store(&w->max_batch, n);
    for (tr_job *job = batch; job; job = job->next) {
        if (job->status < 0)
            atomic_fetch_add(&w->jobs_failed, 1);
        else
            atomic_fetch_add(&w->jobs_done, 1);
        tail = job;
    }
    pthread_mutex_lock(&w->cmu);
    if (w->ctail)
        w->ctail->next = batch;
    else
        w->chead = batch;
    w->ctail = tail;
    pthread_mutex_unlock(&w->cmu);
    uv_async_send(&w->async);
}

/* Detaches up to batch_max jobs from the queue head (mu held). */
static tr_job *
take_batch(tr_worker *w, size_t *n_out)
{
    tr_job *batch = w->qhead, *last = NULL, *job = w->qhead;
    size_t n = 0;

    while (job && n < w->opts.batch_max) {
        if (job->flags & TR_JOB_SYNC)
            w->sync_queued--;
        last = job;
        job = job->next;
        n++;
    }
    last->next = NULL;
    w->qhead = job;
    if (!job)
        w->qtail = NULL;
    w->qlen -= n;
    /* What is left has waited already: no second flush delay. */
    w->oldest_ms = 0;
    *n_out = n;
    return batch;
}

static void *
thread_main(void *arg)
{
    tr_worker *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        tr_job *batch;
        size_t n;
        uint64_t now;
        int rc;

        if (!w->qhead && w->stopping)
            break;
        now = mono_ms();
        if (!atomic_load(&w->available) && !w->stopping) {
            if (now < w->retry_at_ms) {
                wait_until(w, w->retry_at_ms);
                continue;
            }
            if (!w->qhead) {
                /* Nothing held to retry: ask the store itself. */
                pthread_mutex_unlock(&w->mu);
                rc = w->be->probe(w->db);
                pthread_mutex_lock(&w->mu);
                if (rc == 0) {
                    atomic_store(&w->available, true);
                    w->backoff_ms = w->opts.retry_ms;
                } else {
                    atomic_store(&w->last_error, rc);
                    w->retry_at_ms = mono_ms() + w->backoff_ms;
                    w->backoff_ms = w->backoff_ms * 2 > MAX_RETRY_MS
                                        ? MAX_RETRY_MS
                                        : w->backoff_ms * 2;
                }
                continue;
            }
        } else if (!w->qhead) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        } else if (!w->stopping && w->sync_queued == 0 &&
                   w->qlen < w->opts.batch_max &&
                   now < w->oldest_ms + w->opts.flush_ms) {
            /* Only trailing jobs, not a full batch yet: give them company
             * for a while. */
            wait_until(w, w->oldest_ms + w->opts.flush_ms);
            continue;
        }
        batch = take_batch(w, &n);
        pthread_mutex_unlock(&w->mu);

        rc = run_batch(w, batch);
        if (rc == 0)
            batch_committed(w, batch, n);

        pthread_mutex_lock(&w->mu);
        if (rc != 0)
            batch_failed(w, batch, rc);
        else
            w->backoff_ms = w->opts.retry_ms;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

tr_worker *
tr_worker_start(uv_loop_t *loop, const tr_worker_opts *opts, char *err,
                size_t errlen)
{
    tr_worker *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;
    int rc;

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->loop = loop;
    w->opts = *opts;
    w->be = opts->backend ? opts->backend : &tr_store_sqlite;
    snprintf(w->name, sizeof(w->name), "%s", opts->name ? opts->name
                                                         : "store");
    w->opts.name = w->name;
    w->opts.db_path = NULL; /* not kept: the caller's string */
    if (!w->opts.queue_max)
        w->opts.queue_max = DEFAULT_QUEUE_MAX;
    if (!w->opts.retry_ms)
        w->opts.retry_ms = DEFAULT_RETRY_MS;
    if (!w->opts.batch_max)
        w->opts.batch_max = DEFAULT_BATCH_MAX;
    w->backoff_ms = w->opts.retry_ms;
    atomic_init(&w->available, true);

    w->db = w->be->open(opts, err, errlen);
    if (!w->db)
        goto fail_mem;
    if (opts->migrate && opts->migrate(w->db, opts->ctx, err, errlen) != 0)
        goto fail_db;

    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->cmu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (uv_async_init(loop, &w->async, on_async) != 0) {
        snprintf(err, errlen, "%s: cannot create the loop wake-up",
                 w->name);
        goto fail_sync;
    }
    w->async.data = w;
    rc = pthread_create(&w->thread, NULL, thread_main, w);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot start thread: %s", w->name,
                 strerror(rc));
        uv_close((uv_handle_t *)&w->async, NULL);
        w->be->close(w->db);
        /* w is leaked on purpose: the closing handle lives inside it and
         * start-up is failing anyway. */
        return NULL;
    }
    pthread_setname_np(w->thread, w->name);
    return w;

fail_sync:
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->cmu);
fail_db:
    w->be->close(w->db);
fail_mem:
    free(w);
    return NULL;
}

int
tr_worker_submit(tr_worker *w, tr_job *job)
{
    bool wake;

    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return TR_STORE_ESTOPPED;
    }
    if ((job->flags & TR_JOB_FAIL_FAST) && !atomic_load(&w->available)) {
        pthread_mutex_unlock(&w->mu);
        return TR_STORE_EUNAVAILABLE;
    }
    if (atomic_load(&w->backlog) >= w->opts.queue_max) {
        pthread_mutex_unlock(&w->mu);
        atomic_fetch_add(&w->refused_full, 1);
        return TR_STORE_EAGAIN;
    }
    job->next = NULL;
    job->status = 0;
    wake = !w->qhead || (job->flags & TR_JOB_SYNC);
    if (w->qtail)
        w->qtail->next = job;
    else {
        w->qhead = job;
        w->oldest_ms = mono_ms();
    }
    w->qtail = job;
    w->qlen++;
    if (job->flags & TR_JOB_SYNC)
        w->sync_queued++;
    atomic_fetch_add(&w->backlog, 1);
    /* A thread waiting for trailing jobs to gather wakes at its deadline
     * anyway: only a first job, a SYNC one or a full batch needs it now.
     * Waking it for every record would cost the loop a context switch
     * per request under load. */
    if (wake || w->qlen >= w->opts.batch_max)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return TR_STORE_OK;
}

size_t
tr_worker_backlog(const tr_worker *w)
{
    return atomic_load(&((tr_worker *)w)->backlog);
}

bool
tr_worker_available(const tr_worker *w)
{
    return atomic_load(&((tr_worker *)w)->available);
}

void
tr_worker_get_stats(const tr_worker *cw, tr_worker_stats *out)
{
    tr_worker *w = (tr_worker *)cw;

    out->jobs_done = atomic_load(&w->jobs_done);
    out->jobs_failed = atomic_load(&w->jobs_failed);
    out->batches = atomic_load(&w->batches);
    out->batch_failures = atomic_load(&w->batch_failures);
    out->refused_full = atomic_load(&w->refused_full);
    out->backlog = atomic_load(&w->backlog);
    out->max_batch = atomic_load(&w->max_batch);
    out->last_error = atomic_load(&w->last_error);
    out->available = atomic_load(&w->available);
}

static void
on_closed(uv_handle_t *h)
{
    tr_worker *w = h->data;

    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->cmu);
    free(w);
}

void
tr_worker_stop(tr_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->be->close(w->db);
    w->db = NULL;
    deliver(w);
    uv_close((uv_handle_t *)&w->async, on_closed);
}
