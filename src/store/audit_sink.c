/* The external checkpoint sink (store/audit_sink.h). */
#include "store/audit_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct tr_audit_sink {
    int fd;
    bool own_fd;
    bool is_file;              /* fsync after each write */
    char *kept;                /* unwritten bytes, oldest first */
    size_t kept_len, kept_cap;
    uint64_t dropped;
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
        return s;
    }
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
    return s;
}

static int
keep(tr_audit_sink *s, const char *data, size_t len)
{
    if (s->kept_len + len > TR_AUDIT_SINK_KEEP) {
        /* Bounded: the oldest unwritten lines go first. */
        s->dropped += s->kept_len;
        s->kept_len = 0;
        if (len > TR_AUDIT_SINK_KEEP) {
            s->dropped += len;
            return -1;
        }
    }
    if (s->kept_len + len > s->kept_cap) {
        size_t cap = s->kept_cap ? s->kept_cap : 4096;
        char *p;

        while (cap < s->kept_len + len)
            cap *= 2;
        p = realloc(s->kept, cap);
        if (!p) {
            s->dropped += len;
            return -1;
        }
        s->kept = p;
        s->kept_cap = cap;
    }
    memcpy(s->kept + s->kept_len, data, len);
    s->kept_len += len;
    return 0;
}

static int
flush(tr_audit_sink *s)
{
    size_t off = 0;

    while (off < s->kept_len) {
        ssize_t n = write(s->fd, s->kept + off, s->kept_len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    memmove(s->kept, s->kept + off, s->kept_len - off);
    s->kept_len -= off;
    if (s->kept_len)
        return -1;
    if (s->is_file && fsync(s->fd) != 0)
        return -1;
    return 0;
}

int
tr_audit_sink_write(tr_audit_sink *s, const char *data, size_t len)
{
    int rc = len ? keep(s, data, len) : 0;

    if (flush(s) != 0)
        rc = -1;
    return rc;
}

uint64_t
tr_audit_sink_dropped(const tr_audit_sink *s)
{
    return s ? s->dropped : 0;
}

void
tr_audit_sink_close(tr_audit_sink *s)
{
    if (!s)
        return;
    if (s->kept_len)
        (void)flush(s);
    if (s->own_fd)
        close(s->fd);
    free(s->kept);
    free(s);
}
