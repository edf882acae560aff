/*
 * Reading logs for `treaty analyze`: plain or gzip, from a file or stdin,
 * streamed through one fixed buffer, so any size fits in constant memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "cli/analyze.h"

#define BUF_SIZE (4u << 20)           /* decoded text */
#define IN_SIZE (256u << 10)          /* compressed input */

struct tr_line_reader {
    int fd;
    bool own_fd;
    bool gzip;
    bool eof;                  /* no more bytes will come */
    bool skipping;             /* inside an over-long line */
    bool stream_done;          /* the last gzip member ended cleanly */
    z_stream z;
    unsigned char *in;
    size_t in_len;             /* raw bytes held before inflating */
    char *buf;
    size_t start, len;         /* unread text: buf[start .. start+len) */
    uint64_t offset;           /* raw bytes read from the fd */
    uint64_t size;
    char error[160];
};

static ssize_t
read_some(tr_line_reader *r, void *dst, size_t cap)
{
    for (;;) {
        ssize_t n = read(r->fd, dst, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            snprintf(r->error, sizeof(r->error), "read error: %s",
                     strerror(errno));
        if (n > 0)
            r->offset += (uint64_t)n;
        return n;
    }
}

tr_line_reader *
tr_line_reader_open(const char *path, char *err, size_t errlen)
{
    tr_line_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!strcmp(path, "-")) {
        r->fd = STDIN_FILENO;
    } else {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(r);
            return NULL;
        }
        r->own_fd = true;
        struct stat st;
        if (fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode))
            r->size = (uint64_t)st.st_size;
    }
    r->buf = malloc(BUF_SIZE);
    r->in = malloc(IN_SIZE);
    if (!r->buf || !r->in) {
        snprintf(err, errlen, "out of memory");
        tr_line_reader_close(r);
        return NULL;
    }
    /* Sniff the gzip magic from the first bytes. */
    while (r->in_len < 2) {
        ssize_t n = read_some(r, r->in + r->in_len, IN_SIZE - r->in_len);
        if (n <= 0)
            break;
        r->in_len += (size_t)n;
    }
    if (r->in_len >= 2 && r->in[0] == 0x1f && r->in[1] == 0x8b) {
        r->gzip = true;
        /* 15 + 32: a gzip or zlib header, detected by zlib. */
        if (inflateInit2(&r->z, 15 + 32) != Z_OK) {
            snprintf(err, errlen, "%s: cannot start gzip decoding", path);
            r->gzip = false;
            tr_line_reader_close(r);
            return NULL;
        }
        r->z.next_in = r->in;
        r->z.avail_in = (uInt)r->in_len;
    } else {
        memcpy(r->buf, r->in, r->in_len);
        r->len = r->in_len;
    }
    return r;
}

/* Appends decoded bytes after the unread text.  Returns how many. */
static size_t
fill(tr_line_reader *r)
{
    if (r->eof)
        return 0;
    if (r->start) {
        memmove(r->buf, r->buf + r->start, r->len);
        r->start = 0;
    }
    size_t room = BUF_SIZE - r->len;
    if (!r->gzip) {
        ssize_t n = read_some(r, r->buf + r->len, room);
        if (n <= 0) {
            r->eof = true;
            return 0;
        }
        r->len += (size_t)n;
        return (size_t)n;
    }

    r->z.next_out = (Bytef *)r->buf + r->len;
    r->z.avail_out = (uInt)room;
    while (r->z.avail_out == room) {
        if (!r->z.avail_in) {
            ssize_t n = read_some(r, r->in, IN_SIZE);
            if (n <= 0) {
                if (!r->stream_done && !r->error[0])
                    snprintf(r->error, sizeof(r->error),
                             "gzip data ends early (truncated file)");
                r->eof = true;
                break;
            }
            r->z.next_in = r->in;
            r->z.avail_in = (uInt)n;
        }
        r->stream_done = false;
        int rc = inflate(&r->z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            /* Members may follow (concatenated gzip files). */
            r->stream_done = true;
            inflateReset(&r->z);
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            snprintf(r->error, sizeof(r->error), "corrupt gzip data: %s",
                     r->z.msg ? r->z.msg : "inflate failed");
            r->eof = true;
            break;
        }
    }
    size_t got = room - r->z.avail_out;
    r->len += got;
    return got;
}

int
tr_line_reader_next(tr_line_reader *r, const char **line, size_t *len)
{
    for (;;) {
        char *p = r->buf + r->start;
        char *nl = r->len ? memchr(p, '\n', r->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - p);
            r->start += n + 1;
            r->len -= n + 1;
            if (r->skipping) {
                /* The tail of an over-long line. */
                r->skipping = false;
                continue;
            }
            if (n && p[n - 1] == '\r')
                n--;
            *line = p;
            *len = n;
            return n > TR_LINE_MAX ? -1 : 1;
        }
        if (r->len > TR_LINE_MAX) {
            /* Too long to be a log line: drop what is held and skip to
             * the next newline. */
            bool first = !r->skipping;
            r->skipping = true;
            r->start += r->len;
            r->len = 0;
            if (first) {
                *line = p;
                *len = TR_LINE_MAX;
                return -1;
            }
            continue;
        }
        if (!fill(r)) {
            if (!r->len || r->skipping) {
                r->len = 0;
                return 0;
            }
            /* The last line has no newline. */
            *line = r->buf + r->start;
            *len = r->len;
            r->start += r->len;
            r->len = 0;
            return 1;
        }
    }
}

const char *
tr_line_reader_error(const tr_line_reader *r)
{
    return r->error[0] ? r->error : NULL;
}

bool
tr_line_reader_gzip(const tr_line_reader *r)
{
    return r->gzip;
}

uint64_t
tr_line_reader_offset(const tr_line_reader *r)
{
    return r->offset;
}

uint64_t
tr_line_reader_size(const tr_line_reader *r)
{
    return r->size;
}

void
tr_line_reader_close(tr_line_reader *r)
{
    if (!r)
        return;
    if (r->gzip)
        inflateEnd(&r->z);
    if (r->own_fd)
        close(r->fd);
    free(r->buf);
    free(r->in);
    free(r);
}

/* ---------------------------------------------------------- progress -- */

double
tr_monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
tr_progress_init(tr_progress *p, bool enabled, const char *label,
                 uint64_t total_bytes)
{
    memset(p, 0, sizeof(*p));
    p->enabled = enabled;
    p->label = label;
    p->total_bytes = total_bytes;
    p->started = tr_monotonic_s();
    p->drawn = p->started - 1;      /* the first tick draws */
}

void
tr_progress_tick(tr_progress *p, uint64_t file_offset)
{
    if (!p->enabled)
        return;
    double now = tr_monotonic_s();
    if (now - p->drawn < 0.1)
        return;
    p->drawn = now;
    uint64_t done = p->done_bytes + file_offset;
    double rate = (double)p->lines / (now - p->started + 1e-9);
    if (p->total_bytes) {
        double f = (double)done / (double)p->total_bytes;
        if (f > 1)
            f = 1;
        int w = 30, fill_n = (int)(f * w);
        char bar[32];
        for (int i = 0; i < w; i++)
            bar[i] = i < fill_n ? '#' : '.';
        bar[w] = '\0';
        fprintf(stderr, "\r%s [%s] %3.0f%%  %llu lines  %.0f lines/s ",
                p->label, bar, f * 100, (unsigned long long)p->lines, rate);
    } else {
        fprintf(stderr, "\r%s %llu lines  %.0f lines/s ", p->label,
                (unsigned long long)p->lines, rate);
    }
    fflush(stderr);
}

void
tr_progress_done(tr_progress *p)
{
    if (!p->enabled)
        return;
    /* Clear the line so the report starts clean. */
    fprintf(stderr, "\r%*s\r", 79, "");
    fflush(stderr);
}
