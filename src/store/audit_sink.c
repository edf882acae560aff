/* The external checkpoint sink (store/audit_sink.h). */
#include "store/audit_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MS 1000
#define FLUSH_WAIT_MS 2000

typedef struct {
    char *data;
    size_t len, cap;
} buf;

struct tr_audit_sink {
    int fd;
    bool own_fd;
    bool is_file;              /* fsync after each write */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* work queued, or stop */
    pthread_cond_t done_cv;    /* something written */
    buf pending;               /* under mu: lines not written yet */
    uint64_t queued, written;  /* under mu: generations, for flush */
    bool stop;
    atomic_uint_least64_t failures, dropped;
};

/* Is path's directory state_dir or below it? */
static int
inside_state_dir(const char *path, const char *state_dir, bool *inside,
                 char *err, size_t errlen)
{
    char copy[PATH_MAX], rdir[PATH_MAX], rstate[PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof(copy)) {
        snprintf(err, errlen, "audit.checkpoint_file: path too long");
        return -1;
    }
    memcpy(copy, path, n + 1);
    if (!realpath(dirname(copy), rdir)) {
        snprintf(err, errlen, "audit.checkpoint_file %s: directory: %s",
                 path, strerror(errno));
        return -1;
    }
    if (!realpath(state_dir, rstate)) {
        snprintf(err, errlen, "%s: %s", state_dir, strerror(errno));
        return -1;
    }
    n = strlen(rstate);
    *inside = !strncmp(rdir, rstate, n) &&
              (rdir[n] == '\0' || rdir[n] == '/' || !strcmp(rstate, "/"));
    return 0;
}

static void
sync_parent(const char *path)
{
    char copy[PATH_MAX];
    size_t n = strlen(path);
    int dfd;

    if (n >= sizeof(copy))
        return;
    memcpy(copy, path, n + 1);
    dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

/* Appends to b, growing it; false when out of memory. */
static bool
buf_add(buf *b, const char *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;

        while (cap < b->len + len)
            cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
            return false;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return true;
}

/* Keeps the pending lines under TR_AUDIT_SINK_KEEP by dropping whole
 * lines from the front (mu held). */
static void
bound(tr_audit_sink *s)
{
    size_t cut = 0;

    while (s->pending.len - cut > TR_AUDIT_SINK_KEEP) {
        char *nl = memchr(s->pending.data + cut, '\n',
                          s->pending.len - cut);

        cut = nl ? (size_t)(nl - s->pending.data) + 1 : s->pending.len;
    }
    if (!cut)
        return;
    atomic_fetch_add(&s->dropped, cut);
    memmove(s->pending.data, s->pending.data + cut, s->pending.len - cut);
    s->pending.len -= cut;
}

/* Writes all of b; returns how much was written. */
static size_t
write_out(tr_audit_sink *s, const buf *b)
{
    size_t off = 0;

    while (off < b->len) {
        ssize_t n = write(s->fd, b->data + off, b->len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    return off;
}

static void
wait_ms(tr_audit_sink *s, long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static void *
sink_main(void *arg)
{
    tr_audit_sink *s = arg;
    buf w = { NULL, 0, 0 };

    pthread_mutex_lock(&s->mu);
    for (;;) {
        uint64_t gen;
        size_t done;
        bool ok;
        buf t;

        while (!s->pending.len && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->pending.len)
            break;
        /* Swap: the writer keeps queueing while this one is written. */
        t = w;
        w = s->pending;
        s->pending = t;
        s->pending.len = 0;
        gen = s->queued;
        pthread_mutex_unlock(&s->mu);

        done = write_out(s, &w);
        ok = done == w.len && (!s->is_file || fsync(s->fd) == 0);

        pthread_mutex_lock(&s->mu);
        if (ok) {
            s->written = gen;
            w.len = 0;
            pthread_cond_broadcast(&s->done_cv);
            continue;
        }
        atomic_fetch_add(&s->failures, 1);
        /* What is left goes back in front of what came meanwhile. */
        memmove(w.data, w.data + done, w.len - done);
        w.len -= done;
        if (buf_add(&w, s->pending.data, s->pending.len)) {
            t = s->pending;
            s->pending = w;
            w = t;
        } else {
            atomic_fetch_add(&s->dropped, w.len);
        }
        w.len = 0;
        bound(s);
        pthread_cond_broadcast(&s->done_cv);
        if (s->stop)
            break;             /* one last attempt was made */
        wait_ms(s, RETRY_MS);
    }
    pthread_mutex_unlock(&s->mu);
    free(w.data);
    return NULL;
}

tr_audit_sink *
tr_audit_sink_open(const char *path, const char *state_dir, char *err,
                   size_t errlen)
{
    tr_audit_sink *s;
    struct stat st;
    bool inside = false, created;

    if (strcmp(path, "-") != 0) {
        if (inside_state_dir(path, state_dir, &inside, err, errlen) != 0)
            return NULL;
        if (inside) {
            snprintf(err, errlen, "audit.checkpoint_file %s is inside "
                     "state_dir %s: put it elsewhere, so that a copy of "
                     "state_dir cannot carry its own checkpoints", path,
                     state_dir);
            return NULL;
        }
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!strcmp(path, "-")) {
        s->fd = STDOUT_FILENO;
    } else {
        created = stat(path, &st) != 0 && errno == ENOENT;
        s->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
                               O_NOFOLLOW, 0600);
        if (s->fd < 0) {
            snprintf(err, errlen, "audit.checkpoint_file %s: %s", path,
                     strerror(errno));
            free(s);
            return NULL;
        }
        s->own_fd = true;
        if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode))
            s->is_file = true;
        if (created)
            sync_parent(path);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (pthread_create(&s->thread, NULL, sink_main, s) != 0) {
        snprintf(err, errlen, "audit.checkpoint_file: cannot start its "
                 "thread");
        if (s->own_fd)
            close(s->fd);
        pthread_cond_destroy(&s->cv);
        pthread_cond_destroy(&s->done_cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    pthread_setname_np(s->thread, "audit-sink");
    return s;
}

int
tr_audit_sink_write(tr_audit_sink *s, const char *data, size_t len)
{
    int rc = 0;
    uint64_t before = atomic_load(&s->dropped);

    pthread_mutex_lock(&s->mu);
    if (!buf_add(&s->pending, data, len))
        atomic_fetch_add(&s->dropped, len);
    bound(s);
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (atomic_load(&s->dropped) != before)
        rc = -1;
    return rc;
}

uint64_t
tr_audit_sink_failures(const tr_audit_sink *s)
{
    return s ? atomic_load(&((tr_audit_sink *)s)->failures) : 0;
}

uint64_t
tr_audit_sink_dropped(const tr_audit_sink *s)
{
    return s ? atomic_load(&((tr_audit_sink *)s)->dropped) : 0;
}

void
tr_audit_sink_flush(tr_audit_sink *s)
{
    struct timespec ts;
    uint64_t want;

    if (!s)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += FLUSH_WAIT_MS / 1000;
    pthread_mutex_lock(&s->mu);
    want = s->queued;
    while (s->written < want &&
           pthread_cond_timedwait(&s->done_cv, &s->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&s->mu);
}

void
tr_audit_sink_close(tr_audit_sink *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->own_fd)
        close(s->fd);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->pending.data);
    free(s);
}
