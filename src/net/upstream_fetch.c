/*
 * One-shot upstream exchange (upstream_fetch.h).  Lifetime: the struct
 * owns a TCP handle and a timer; it is freed in the close callback of
 * the last of the two, after libuv has run (or cancelled) the pending
 * connect and write callbacks that point into it.
 *
 * Known shortcoming: every re-read opens its own connection instead of
 * borrowing one from the upstream's pool; that costs a connect per
 * guarded write (docs/performance.md, preconditions).
 */
#include <stdlib.h>
#include <string.h>

#include "llhttp.h"

#include "net/gateway.h"
#include "net/upstream_fetch.h"

#define FETCH_READ_BUF (16 * 1024)
#define FETCH_HEAD_MAX (64 * 1024)
#define FIELD_NAME_MAX 32
#define CODING_MAX 256

struct tr_fetch {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    unsigned handles_open;
    bool closing;
    bool done;                 /* the result is decided */
    bool connected;
    tr_fetch_error sync_error; /* a start failure, reported by the timer */
    tr_fetch_cb cb;
    void *ctx;
    uint32_t response_timeout_ms;

    char *request;
    size_t request_len;

    llhttp_t parser;
    size_t head_bytes;
    bool headers_done;
    bool message_done;
    int status;
    char field[FIELD_NAME_MAX];
    size_t field_len;          /* > FIELD_NAME_MAX: a name we ignore */
    bool in_coding;
    char coding[CODING_MAX];
    size_t coding_len;
    bool has_coding;
    tr_buf body;
    size_t body_cap;
    bool too_large;

    char rbuf[FETCH_READ_BUF];
};

static llhttp_settings_t settings;
static bool settings_ready;

const char *
tr_fetch_error_name(tr_fetch_error e)
{
    switch (e) {
    case TR_FETCH_OK: return "ok";
    case TR_FETCH_TOO_LARGE: return "too_large";
    case TR_FETCH_CONNECT_FAILED: return "connect_failed";
    case TR_FETCH_TIMEOUT: return "timeout";
    case TR_FETCH_CLOSED: return "closed";
    case TR_FETCH_MALFORMED: return "malformed";
    case TR_FETCH_NO_MEMORY: return "no_memory";
    }
    return "unknown";
}

/* ----------------------------------------------------------- teardown */

static void
on_close(uv_handle_t *h)
{
    tr_fetch *f = h->data;
    if (--f->handles_open > 0)
        return;
    tr_buf_free(&f->body);
    free(f->request);
    free(f);
}

static void
shut(tr_fetch *f)
{
    if (f->closing)
        return;
    f->closing = true;
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_close);
    uv_close((uv_handle_t *)&f->tcp, on_close);
}

/* Decides the result once, reports it (unless cancelled), closes. */
static void
finish(tr_fetch *f, tr_fetch_error err)
{
    if (f->done)
        return;
    f->done = true;
    uv_timer_stop(&f->timer);
    if (f->connected)
        uv_read_stop((uv_stream_t *)&f->tcp);

    tr_fetch_result r = { .error = err };
    if (err == TR_FETCH_OK || err == TR_FETCH_TOO_LARGE) {
        r.status = f->status;
        if (f->has_coding) {
            r.content_encoding = f->coding;
            r.content_encoding_len = f->coding_len;
        }
    }
    if (err == TR_FETCH_OK) {
        r.body = f->body.data ? f->body.data : "";
        r.body_len = f->body.len;
    }
    tr_fetch_cb cb = f->cb;
    f->cb = NULL;
    if (cb)
        cb(f->ctx, &r);
    shut(f);
}

void
tr_fetch_cancel(tr_fetch *f)
{
    if (f == NULL)
        return;
    f->cb = NULL;
    f->done = true;
    shut(f);
}

/* ------------------------------------------------------------ parsing */

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
    tr_fetch *f = p->data;
    for (size_t i = 0; i < len; i++) {
        if (f->field_len < FIELD_NAME_MAX) {
            char c = at[i];
            f->field[f->field_len] =
                (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        f->field_len++;
    }
    return 0;
}

static int
on_header_field_complete(llhttp_t *p)
{
    tr_fetch *f = p->data;
    f->in_coding = f->field_len == 16 &&
                   memcmp(f->field, "content-encoding", 16) == 0;
    if (f->in_coding && f->has_coding && f->coding_len < CODING_MAX)
        f->coding[f->coding_len++] = ',';  /* a second field line */
    if (f->in_coding)
        f->has_coding = true;
    f->field_len = 0;
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
    tr_fetch *f = p->data;
    if (!f->in_coding)
        return 0;
    /* A coding list this long is not one treaty can tag; it is kept
     * truncated, which at worst changes the tag of a response nobody
     * can match anyway. */
    size_t room = CODING_MAX - f->coding_len;
    size_t n = len < room ? len : room;
    memcpy(f->coding + f->coding_len, at, n);
    f->coding_len += n;
    return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
    tr_fetch *f = p->data;
    f->in_coding = false;
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    tr_fetch *f = p->data;
    f->status = p->status_code;
    if (f->status >= 200)
        f->headers_done = true;
    return 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
    tr_fetch *f = p->data;
    if (f->too_large)
        return 0;
    if (f->body.len + len > f->body_cap) {
        f->too_large = true;
        return -1;             /* stops the parser; reported as such */
    }
    return tr_buf_append(&f->body, at, len, f->body_cap) ? -1 : 0;
}

static int
on_message_complete(llhttp_t *p)
{
    tr_fetch *f = p->data;
    if (!f->headers_done) {
        /* An interim (1xx) response: its fields do not count. */
        f->has_coding = false;
        f->coding_len = 0;
        f->head_bytes = 0;
        return 0;
    }
    f->message_done = true;
    return HPE_PAUSED;
}

static void
init_settings(void)
{
    if (settings_ready)
        return;
    llhttp_settings_init(&settings);
    settings.on_header_field = on_header_field;
    settings.on_header_field_complete = on_header_field_complete;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    settings_ready = true;
}

/* ---------------------------------------------------------------- I/O */

static void
on_timer(uv_timer_t *t)
{
    tr_fetch *f = t->data;
    finish(f, f->sync_error != TR_FETCH_OK ? f->sync_error
                                           : TR_FETCH_TIMEOUT);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    tr_fetch *f = h->data;
    b->base = f->rbuf;
    b->len = sizeof(f->rbuf);
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    tr_fetch *f = s->data;

    if (f->done || n == 0)
        return;
    if (n < 0) {
        /* A close-delimited body ends here. */
        if (n == UV_EOF && f->headers_done && !f->message_done)
            (void)llhttp_finish(&f->parser);
        if (n == UV_EOF && f->message_done) {
            finish(f, TR_FETCH_OK);
            return;
        }
        finish(f, TR_FETCH_CLOSED);
        return;
    }
    uv_timer_start(&f->timer, on_timer, f->response_timeout_ms, 0);
    if (!f->headers_done) {
        f->head_bytes += (size_t)n;
        if (f->head_bytes > FETCH_HEAD_MAX) {
            finish(f, TR_FETCH_MALFORMED);
            return;
        }
    }
    llhttp_errno_t err = llhttp_execute(&f->parser, b->base, (size_t)n);
    if (f->too_large) {
        finish(f, TR_FETCH_TOO_LARGE);
        return;
    }
    if (f->message_done) {
        finish(f, TR_FETCH_OK);
        return;
    }
    if (err != HPE_OK)
        finish(f, err == HPE_USER ? TR_FETCH_NO_MEMORY : TR_FETCH_MALFORMED);
}

static void
on_write(uv_write_t *w, int status)
{
    tr_fetch *f = w->data;
    if (status < 0 && !f->done)
        finish(f, TR_FETCH_CLOSED);
}

static void
on_connect(uv_connect_t *c, int status)
{
    tr_fetch *f = c->data;

    if (f->done)
        return;
    if (status < 0) {
        finish(f, TR_FETCH_CONNECT_FAILED);
        return;
    }
    f->connected = true;
    uv_buf_t b = uv_buf_init(f->request, (unsigned)f->request_len);
    f->write_req.data = f;
    if (uv_write(&f->write_req, (uv_stream_t *)&f->tcp, &b, 1, on_write) ||
        uv_read_start((uv_stream_t *)&f->tcp, on_alloc, on_read)) {
        finish(f, TR_FETCH_CLOSED);
        return;
    }
    uv_timer_start(&f->timer, on_timer, f->response_timeout_ms, 0);
}

tr_fetch *
tr_fetch_start(const tr_fetch_opts *o, tr_fetch_cb cb, void *ctx)
{
    tr_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->request = malloc(o->request_len ? o->request_len : 1);
    if (f->request == NULL) {
        free(f);
        return NULL;
    }
    memcpy(f->request, o->request, o->request_len);
    f->request_len = o->request_len;
    f->cb = cb;
    f->ctx = ctx;
    f->body_cap = o->body_cap;
    f->response_timeout_ms = o->response_timeout_ms;
    init_settings();
    llhttp_init(&f->parser, HTTP_RESPONSE, &settings);
    f->parser.data = f;

    uv_timer_init(o->loop, &f->timer);
    f->timer.data = f;
    f->handles_open = 1;
    if (uv_tcp_init(o->loop, &f->tcp) != 0) {
        /* No socket handle to close: report from the timer, then free
         * from its close callback alone. */
        f->closing = true;
        f->done = true;
        uv_close((uv_handle_t *)&f->timer, on_close);
        free(f->request);
        f->request = NULL;
        return NULL;
    }
    f->tcp.data = f;
    f->handles_open = 2;
    f->connect_req.data = f;
    uv_tcp_nodelay(&f->tcp, 1);
    if (uv_tcp_connect(&f->connect_req, &f->tcp, o->addr, on_connect) != 0) {
        f->sync_error = TR_FETCH_CONNECT_FAILED;
        uv_timer_start(&f->timer, on_timer, 0, 0);
        return f;
    }
    uv_timer_start(&f->timer, on_timer, o->connect_timeout_ms, 0);
    return f;
}
