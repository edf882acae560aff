#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/access_log.h"

#define LOG_BUF_MAX (4 * 1024 * 1024)

struct tr_access_log {
    int fd;
    bool own_fd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tr_buf pending;      /* filled by the loop */
    tr_buf writing;      /* owned by the writer thread */
    bool stop;
    uint64_t dropped;
};

static void *
writer_main(void *arg)
{
    tr_access_log *log = arg;

    pthread_mutex_lock(&log->mu);
    for (;;) {
        while (!log->pending.len && !log->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&log->cv, &log->mu, &ts);
        }
        if (!log->pending.len && log->stop)
            break;
        /* Swap buffers so the loop can keep appending meanwhile. */
        tr_buf t = log->writing;
        log->writing = log->pending;
        log->pending = t;
        log->pending.len = 0;
        pthread_mutex_unlock(&log->mu);

        size_t off = 0;
        while (off < log->writing.len) {
            ssize_t n = write(log->fd, log->writing.data + off,
                              log->writing.len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;  /* disk trouble: the lines are lost, not the loop */
            off += (size_t)n;
        }
        log->writing.len = 0;
        pthread_mutex_lock(&log->mu);
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

tr_access_log *
tr_access_log_open(const char *path, char *err, size_t errlen)
{
    if (!path)
        return NULL;
    tr_access_log *log = calloc(1, sizeof(*log));
    if (!log) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!strcmp(path, "-")) {
        log->fd = STDOUT_FILENO;
    } else {
        log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                       0600);
        if (log->fd < 0) {
            snprintf(err, errlen, "cannot open access log %s: %s", path,
                     strerror(errno));
            free(log);
            return NULL;
        }
        log->own_fd = true;
    }
    pthread_mutex_init(&log->mu, NULL);
    pthread_cond_init(&log->cv, NULL);
    if (pthread_create(&log->thread, NULL, writer_main, log) != 0) {
        snprintf(err, errlen, "cannot start the access log thread");
        if (log->own_fd)
            close(log->fd);
        free(log);
        return NULL;
    }
    return log;
}

int
tr_json_append_string(tr_buf *b, const char *s, size_t len)
{
    static const char hexd[] = "0123456789abcdef";
    if (!s)
        return tr_buf_append(b, "null", 4, SIZE_MAX);
    if (tr_buf_reserve(b, len * 6 + 2, SIZE_MAX) != 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c == 0x7f || c >= 0x80) {
            /* Bytes, not text: anything outside printable ASCII is
             * escaped so a line stays valid JSON whatever a client sent. */
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hexd[c >> 4];
            *o++ = hexd[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int
field(tr_buf *b, const char *name, const char *v)
{
    if (tr_buf_append(b, ",\"", 2, SIZE_MAX) ||
        tr_buf_append(b, name, strlen(name), SIZE_MAX) ||
        tr_buf_append(b, "\":", 2, SIZE_MAX))
        return -1;
    return tr_json_append_string(b, v, v ? strlen(v) : 0);
}

static int
format_line(tr_buf *b, const tr_request *req)
{
    char num[256];
    int n = snprintf(num, sizeof(num), "{\"time\":%lld,\"request_id\":\"%s\"",
                     (long long)req->start_ms_wall, req->id);
    if (tr_buf_append(b, num, (size_t)n, SIZE_MAX))
        return -1;
    if (field(b, "client", req->client_addr) ||
        field(b, "principal", req->principal) ||
        field(b, "principal_issuer", req->principal_issuer) ||
        field(b, "actor", req->actor) ||
        field(b, "class", req->caller_class) ||
        field(b, "route", req->route ? req->route->name : NULL) ||
        field(b, "tool", req->tool))
        return -1;
    if (tr_buf_append(b, ",\"method\":", 10, SIZE_MAX) ||
        tr_json_append_string(b, req->method, req->method_len))
        return -1;
    if (tr_buf_append(b, ",\"path\":", 8, SIZE_MAX) ||
        tr_json_append_string(b, req->path_len ? req->path : req->target,
                              req->path_len ? req->path_len
                                            : req->target_len))
        return -1;
    n = snprintf(num, sizeof(num),
                 ",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%llu",
                 req->status, req->duration_ms,
                 (unsigned long long)req->bytes_out);
    if (tr_buf_append(b, num, (size_t)n, SIZE_MAX))
        return -1;
    if (field(b, "decision", req->decision) ||
        field(b, "reason", req->reason) ||
        field(b, "policy_rule", req->policy_rule) ||
        field(b, "limiter", req->limiter) ||
        field(b, "idempotency_key_hash",
              req->idem_key_hash[0] ? req->idem_key_hash : NULL))
        return -1;
    n = snprintf(num, sizeof(num), ",\"replayed\":%s",
                 req->replayed ? "true" : "false");
    if (tr_buf_append(b, num, (size_t)n, SIZE_MAX) ||
        field(b, "precondition", req->precondition) ||
        field(b, "traceparent", req->traceparent) ||
        tr_buf_append(b, "}\n", 2, SIZE_MAX))
        return -1;
    return 0;
}

void
tr_access_log_request(tr_access_log *log, const tr_request *req)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->mu);
    size_t mark = log->pending.len;
    if (log->pending.len > LOG_BUF_MAX || format_line(&log->pending, req)) {
        log->pending.len = mark;
        log->dropped++;
    }
    /* Wake the writer only when a good amount is waiting; otherwise its
     * 100 ms tick picks the lines up. */
    if (log->pending.len > 64 * 1024)
        pthread_cond_signal(&log->cv);
    pthread_mutex_unlock(&log->mu);
}

uint64_t
tr_access_log_dropped(const tr_access_log *log)
{
    return log ? log->dropped : 0;
}

void
tr_access_log_close(tr_access_log *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->mu);
    log->stop = true;
    pthread_cond_signal(&log->cv);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->thread, NULL);
    if (log->own_fd)
        close(log->fd);
    tr_buf_free(&log->pending);
    tr_buf_free(&log->writing);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->cv);
    free(log);
}
