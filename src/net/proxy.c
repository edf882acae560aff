/*
 * Forwarding one request over a pooled upstream connection and streaming
 * the response back.
 *
 * Bodies are always re-framed: towards the upstream with the same
 * Content-Length or as chunked without extensions or trailers; towards the
 * client with the upstream's Content-Length, else chunked (HTTP/1.1) or
 * close-delimited (HTTP/1.0).  Request body bytes go upstream without a
 * copy (the client buffer is pinned until the write completes); response
 * bytes are gathered per read into one buffer and written in one call.
 * Backpressure both ways: a slow upstream pauses client reading, a slow
 * client pauses upstream reading.
 */
#include <stdlib.h>
#include <string.h>

#include "net/gateway.h"
#include "net/http_date.h"
#include "net/log.h"

#define CLIENT_HIGH_WATER (1024 * 1024)

typedef struct {
    uv_write_t w;
    tr_upconn *up;
    char framing[24];
} up_write;

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

/* ------------------------------------------------------ request head */

static bool
forwardable(const tr_request *req, const tr_header *h)
{
    static const char *const dropped[] = {
        "host", "content-length", "expect", "x-forwarded-for",
        "x-forwarded-proto", "x-forwarded-host", "forwarded", "via",
        "txn-token", "traceparent",
    };
    if (tr_head_is_hop_by_hop(h->name, h->name_len))
        return false;
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (tr_head_name_is(h, dropped[i]))
            return false;
    if (tr_head_named_in_connection(req->headers, req->n_headers, h->name,
                                    h->name_len))
        return false;
    return !tr_request_header_is_reserved(req, h);
}

static const tr_header *
find_header(const tr_request *req, const char *lower)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (tr_head_name_is(&req->headers[i], lower))
            return &req->headers[i];
    return NULL;
}

#define APPEND(b, s, n)                                                    \
    do {                                                                   \
        if (tr_buf_append((b), (s), (n), SIZE_MAX) != 0)                   \
            return -1;                                                     \
    } while (0)
#define APPEND_STR(b, s) APPEND(b, s, strlen(s))

/*
 * Forwarding metadata, the same on every request treaty sends upstream
 * (forwarded ones and compare-and-swap re-reads): what the client sent is
 * kept only when it came through a trusted proxy; the trace context is
 * always treaty's (req->traceparent: the client's one valid copy or a new
 * trace).
 */
int
tr_proxy_append_forwarding(const tr_request *req, tr_buf *b)
{
    const tr_header *xff = find_header(req, "x-forwarded-for");
    const tr_header *host = find_header(req, "host");
    const tr_header *via = find_header(req, "via");

    APPEND_STR(b, "X-Forwarded-For: ");
    if (req->peer_trusted && xff) {
        APPEND(b, xff->value, xff->value_len);
        APPEND_STR(b, ", ");
    }
    APPEND_STR(b, req->client->peer);
    APPEND_STR(b, "\r\nX-Forwarded-Proto: http\r\n");
    if (host && host->value_len) {
        APPEND_STR(b, "X-Forwarded-Host: ");
        APPEND(b, host->value, host->value_len);
        APPEND_STR(b, "\r\n");
    }
    APPEND_STR(b, "Via: ");
    if (via) {
        APPEND(b, via->value, via->value_len);
        APPEND_STR(b, ", ");
    }
    APPEND_STR(b, req->http11 ? "1.1 treaty\r\n" : "1.0 treaty\r\n");
    APPEND_STR(b, "traceparent: ");
    APPEND_STR(b, req->traceparent);
    APPEND_STR(b, "\r\n");
    return 0;
}

static int
build_request_head(tr_request *req, tr_upconn *up)
{
    const tr_upstream_cfg *u = up->pool->cfg;
    tr_buf *b = &up->whead;
    char line[256];

    b->len = 0;
    APPEND(b, req->method, req->method_len);
    APPEND_STR(b, " ");
    APPEND_STR(b, u->base_path);
    APPEND(b, req->path, req->path_len);
    if (req->query) {
        APPEND_STR(b, "?");
        APPEND(b, req->query, req->query_len);
    }
    int n = snprintf(line, sizeof(line), " HTTP/1.1\r\nHost: %s:%u\r\n",
                     u->host, u->port);
    APPEND(b, line, (size_t)n);

    for (size_t i = 0; i < req->n_headers; i++) {
        const tr_header *h = &req->headers[i];
        if (!forwardable(req, h))
            continue;
        APPEND(b, h->name, h->name_len);
        APPEND_STR(b, ": ");
        APPEND(b, h->value, h->value_len);
        APPEND_STR(b, "\r\n");
    }

    if (tr_proxy_append_forwarding(req, b) != 0)
        return -1;
    if (tr_request_append_upstream_headers(req, u, b) != 0)
        return -1;

    if (req->buffer_body) {
        n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n",
                     req->body.len);
        APPEND(b, line, (size_t)n);
    } else if (req->chunked_in) {
        APPEND_STR(b, "Transfer-Encoding: chunked\r\n");
    } else if (req->has_body || req->had_content_length) {
        n = snprintf(line, sizeof(line), "Content-Length: %llu\r\n",
                     (unsigned long long)req->content_length);
        APPEND(b, line, (size_t)n);
    }
    APPEND_STR(b, "\r\n");
    if (req->buffer_body)
        APPEND(b, req->body.data, req->body.len);
    return 0;
}

/* ------------------------------------------------------- upstream I/O */

static void
on_up_write(uv_write_t *w, int status)
{
    up_write *uw = (up_write *)w;
    tr_upconn *up = uw->up;
    free(uw);
    up->pending_writes--;
    if (up->state == TR_UP_CLOSING)
        return;
    tr_request *req = up->req;
    if (status < 0) {
        if (req) {
            req->upstream_failed = up->any_byte_sent;
            tr_proxy_fail(req, TR_P_UPSTREAM_UNAVAILABLE,
                          "the upstream closed the connection while "
                          "receiving the request");
        }
        return;
    }
    /* Body bytes are pinned in the client buffer until written: with the
     * queue drained, the client side may read and compact again. */
    if (req && req->client && up->pending_writes == 0 && !req->client_gone)
        tr_client_resume_body(req->client);
}

static int
up_write_bufs(tr_upconn *up, uv_buf_t *bufs, unsigned n, up_write *uw)
{
    if (!uw) {
        uw = malloc(sizeof(*uw));
        if (!uw)
            return -1;
    }
    uw->up = up;
    if (uv_write(&uw->w, (uv_stream_t *)&up->tcp, bufs, n, on_up_write)) {
        free(uw);
        return -1;
    }
    up->pending_writes++;
    up->any_byte_sent = true;
    return 0;
}

int
tr_proxy_body_chunk(tr_request *req, const char *p, size_t n)
{
    tr_upconn *up = req->up;
    if (!up || up->state != TR_UP_BUSY || n == 0)
        return 0;  /* the forward already failed; the body is dropped */
    up_write *uw = malloc(sizeof(*uw));
    if (!uw)
        return -1;
    uv_buf_t bufs[3];
    unsigned nb = 0;
    if (req->chunked_in) {
        int fl = snprintf(uw->framing, sizeof(uw->framing), "%zx\r\n", n);
        bufs[nb++] = uv_buf_init(uw->framing, (unsigned)fl);
        bufs[nb++] = uv_buf_init((char *)p, (unsigned)n);
        bufs[nb++] = uv_buf_init("\r\n", 2);
    } else {
        bufs[nb++] = uv_buf_init((char *)p, (unsigned)n);
    }
    return up_write_bufs(up, bufs, nb, uw);
}

void
tr_proxy_body_end(tr_request *req)
{
    tr_upconn *up = req->up;
    if (!up || up->state != TR_UP_BUSY || up->request_sent)
        return;
    if (req->chunked_in) {
        uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
        up_write_bufs(up, &b, 1, NULL);
    }
    up->request_sent = true;
}

static void
up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    tr_upconn *up = h->data;
    if (tr_buf_reserve(&up->rbuf, TR_READ_BUF, 4 * TR_READ_BUF) != 0) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = up->rbuf.data + up->rbuf.len;
    b->len = up->rbuf.cap - up->rbuf.len;
}

static void
response_timeout(uv_timer_t *t)
{
    tr_upconn *up = t->data;
    tr_request *req = up->req;
    if (!req)
        return;
    req->upstream_failed = true;
    tr_log(TR_LOG_WARN, "upstream_timeout", "upstream=%s request_id=%s",
           up->pool->cfg->name, req->id);
    tr_proxy_fail(req, TR_P_UPSTREAM_TIMEOUT,
                  "the upstream did not answer in time");
}

void
tr_proxy_start(tr_request *req, tr_upconn *up)
{
    tr_client *c = req->client;

    req->stage = TR_STAGE_STREAMING;
    req->upstream_start_ns = tr_now_ns();
    up->headers_done = up->message_done = false;
    up->request_sent = up->any_byte_sent = false;
    up->n_rh = 0;
    up->rh_last = TR_RH_NONE;
    up->rhead.len = 0;
    up->out.len = 0;
    up->rbuf.len = 0;
    up->chunked_out = up->close_delimited = up->head_only = false;
    up->client_paused = false;

    if (build_request_head(req, up) != 0) {
        tr_proxy_fail(req, TR_P_INTERNAL, "could not build the request");
        return;
    }
    uv_buf_t b = uv_buf_init(up->whead.data, (unsigned)up->whead.len);
    if (up_write_bufs(up, &b, 1, NULL) != 0) {
        req->upstream_not_reached = true;
        tr_proxy_fail(req, TR_P_UPSTREAM_UNAVAILABLE,
                      "could not write to the upstream");
        return;
    }
    llhttp_init(&up->parser, HTTP_RESPONSE, &up->pool->srv->resp_settings);
    up->parser.data = up;
    uv_read_start((uv_stream_t *)&up->tcp, up_alloc, up_read);
    uv_timer_start(&up->timer, response_timeout,
                   up->pool->cfg->response_timeout_ms, 0);

    if (req->has_body && !req->buffer_body) {
        if (req->expect_continue && c && !c->message_complete &&
            !req->client_gone)
            tr_client_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, false);
        if (c && !req->client_gone)
            tr_client_resume_body(c);
    } else {
        up->request_sent = true;
    }
}

/* ------------------------------------------------------ response side */

/*
 * A response head may arrive over several reads (Radicale writes it line
 * by line).  Until the head is complete, rbuf keeps every byte and the
 * callbacks record offsets into it, never pointers: a read may move the
 * buffer.  A name or value split across reads arrives as two spans that
 * are adjacent in rbuf and are merged.  The spans become tr_header
 * pointers only in resp_on_headers_complete, while rbuf holds still.
 */
static int
resp_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    tr_upconn *up = p->data;
    size_t off = (size_t)(at - up->rbuf.data);
    if (up->rh_last == TR_RH_FIELD) {
        up->rh_field_len = off + len - up->rh_field_off;
        return 0;
    }
    up->rh_field_off = off;
    up->rh_field_len = len;
    up->rh_last = TR_RH_FIELD;
    return 0;
}

static int
resp_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    tr_upconn *up = p->data;
    size_t off = (size_t)(at - up->rbuf.data);
    if (up->rh_last == TR_RH_VALUE) {
        tr_rh_span *sp = &up->rh_span[up->n_rh - 1];
        sp->value_len = off + len - sp->value_off;
        return 0;
    }
    if (up->n_rh >= TR_MAX_HEADERS_HARD)
        return -1;
    tr_rh_span *sp = &up->rh_span[up->n_rh++];
    sp->name_off = up->rh_field_off;
    sp->name_len = up->rh_field_len;
    sp->value_off = off;
    sp->value_len = len;
    up->rh_last = TR_RH_VALUE;
    return 0;
}

/* A field with an empty value never calls on_header_value. */
static int
resp_on_header_value_complete(llhttp_t *p)
{
    tr_upconn *up = p->data;
    if (up->rh_last != TR_RH_VALUE) {
        if (up->n_rh >= TR_MAX_HEADERS_HARD)
            return -1;
        tr_rh_span *sp = &up->rh_span[up->n_rh++];
        sp->name_off = up->rh_field_off;
        sp->name_len = up->rh_field_len;
        sp->value_off = up->rh_field_off + up->rh_field_len;
        sp->value_len = 0;
    }
    up->rh_last = TR_RH_NONE;
    return 0;
}

/* Turns the recorded spans into headers pointing into rbuf. */
static void
resolve_response_headers(tr_upconn *up)
{
    for (size_t i = 0; i < up->n_rh; i++) {
        const tr_rh_span *sp = &up->rh_span[i];
        tr_header *h = &up->rh[i];
        h->name = up->rbuf.data + sp->name_off;
        h->name_len = sp->name_len;
        h->value = up->rbuf.data + sp->value_off;
        h->value_len = sp->value_len;
        while (h->value_len && (h->value[h->value_len - 1] == ' ' ||
                                h->value[h->value_len - 1] == '\t'))
            h->value_len--;
    }
}

static bool
response_header_forwardable(const tr_upconn *up, const tr_header *h)
{
    if (tr_head_is_hop_by_hop(h->name, h->name_len))
        return false;
    if (tr_head_name_is(h, "content-length"))
        return false;  /* written by us from the framing decision */
    return !tr_head_named_in_connection(up->rh, up->n_rh, h->name,
                                        h->name_len);
}

/*
 * Ends the client head: the stages' own fields (RateLimit, ETag,
 * Idempotent-Replayed), the framing, the connection.  body_len is the
 * whole body when it was buffered, else (uint64_t)-1.
 */
static int
finish_client_head(tr_upconn *up, tr_buf *o, uint64_t body_len)
{
    tr_request *req = up->req;
    char line[96];
    int n;

    if (tr_request_append_response_headers(req, o) != 0)
        return -1;
    if (body_len != (uint64_t)-1 && !up->head_only) {
        n = snprintf(line, sizeof(line), "Content-Length: %llu\r\n",
                     (unsigned long long)body_len);
        up->chunked_out = false;
        if (tr_buf_append(o, line, (size_t)n, SIZE_MAX))
            return -1;
    } else if (req->response_has_cl) {
        n = snprintf(line, sizeof(line), "Content-Length: %llu\r\n",
                     (unsigned long long)req->response_cl);
        if (tr_buf_append(o, line, (size_t)n, SIZE_MAX))
            return -1;
    } else if (up->chunked_out) {
        if (tr_buf_append(o, "Transfer-Encoding: chunked\r\n", 28,
                          SIZE_MAX))
            return -1;
    }
    if (!req->keep_alive &&
        tr_buf_append(o, "Connection: close\r\n", 19, SIZE_MAX))
        return -1;
    if (tr_buf_append(o, "\r\n", 2, SIZE_MAX))
        return -1;
    req->head_sent = true;
    return 0;
}

/* Appends body bytes for the client, chunk-framed when re-framing. */
static int
append_client_body(tr_upconn *up, const char *at, size_t len)
{
    tr_buf *o = &up->out;
    if (up->chunked_out) {
        char fl[24];
        int n = snprintf(fl, sizeof(fl), "%zx\r\n", len);
        if (tr_buf_append(o, fl, (size_t)n, SIZE_MAX) ||
            tr_buf_append(o, at, len, SIZE_MAX) ||
            tr_buf_append(o, "\r\n", 2, SIZE_MAX))
            return -1;
        return 0;
    }
    return tr_buf_append(o, at, len, SIZE_MAX) ? -1 : 0;
}

/* A buffered response outgrew its cap: send what we have and stream on. */
static int
flush_buffered(tr_upconn *up)
{
    tr_request *req = up->req;
    up->buffering = false;
    req->buffer_response = 0;
    if (!req->response_has_cl && !up->head_only) {
        if (req->http11)
            up->chunked_out = true;
        else
            req->keep_alive = false;
    }
    if (finish_client_head(up, &up->rhead, (uint64_t)-1) != 0)
        return -1;
    if (tr_buf_append(&up->out, up->rhead.data, up->rhead.len, SIZE_MAX))
        return -1;
    up->rhead.len = 0;
    if (up->rbody.len &&
        append_client_body(up, up->rbody.data, up->rbody.len) != 0)
        return -1;
    up->rbody.len = 0;
    return 0;
}

/*
 * The response head spans point into up->rbuf, which the next read may
 * overwrite: the client head is therefore written at once, in the same
 * callback, into up->out (streaming) or up->rhead (a buffered response
 * whose fields depend on the whole body, such as a synthesized ETag).
 */
static int
resp_on_headers_complete(llhttp_t *p)
{
    tr_upconn *up = p->data;
    tr_request *req = up->req;
    int status = p->status_code;

    if (status < 200) {
        /* Interim responses (103) are not relayed. */
        up->n_rh = 0;
        up->rh_last = TR_RH_NONE;
        return 0;
    }
    if (!req)
        return -1;
    resolve_response_headers(up);
    up->headers_done = true;
    req->status = status;
    req->response_has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    req->response_cl = p->content_length;

    up->head_only = req->method_bit == TR_M_HEAD || status == 204 ||
                    status == 304;
    bool has_cl = req->response_has_cl;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    if (!up->head_only && !has_cl) {
        if (!chunked)
            up->close_delimited = true;
        if (req->http11)
            up->chunked_out = true;
        else
            req->keep_alive = false;
    }
    tr_stage_observe_response_head(req, status, up->rh, up->n_rh);
    if (req->client_gone)
        return up->head_only ? 1 : 0;

    up->buffering = req->buffer_response > 0 && !up->head_only;
    tr_buf *o = up->buffering ? &up->rhead : &up->out;
    o->len = up->buffering ? 0 : o->len;
    up->rbody.len = 0;
    char line[160];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
                     tr_status_reason(status));
    if (tr_buf_append(o, line, (size_t)n, SIZE_MAX) != 0)
        return -1;
    for (size_t i = 0; i < up->n_rh; i++) {
        const tr_header *h = &up->rh[i];
        if (!response_header_forwardable(up, h) ||
            tr_stage_response_header_replaced(req, h))
            continue;
        if (tr_buf_append(o, h->name, h->name_len, SIZE_MAX) ||
            tr_buf_append(o, ": ", 2, SIZE_MAX) ||
            tr_buf_append(o, h->value, h->value_len, SIZE_MAX) ||
            tr_buf_append(o, "\r\n", 2, SIZE_MAX))
            return -1;
    }
    if (!up->buffering && finish_client_head(up, o, (uint64_t)-1) != 0)
        return -1;
    return up->head_only ? 1 : 0;
}

static int
resp_on_body(llhttp_t *p, const char *at, size_t len)
{
    tr_upconn *up = p->data;
    tr_request *req = up->req;
    if (!req)
        return -1;
    tr_request_observe_response_body(req, at, len);
    if (req->client_gone)
        return 0;
    req->bytes_out += len;
    if (up->buffering) {
        if (up->rbody.len + len <= req->buffer_response)
            return tr_buf_append(&up->rbody, at, len, SIZE_MAX) ? -1 : 0;
        if (flush_buffered(up) != 0)
            return -1;
    }
    return append_client_body(up, at, len);
}

static int
resp_on_message_complete(llhttp_t *p)
{
    tr_upconn *up = p->data;
    if (!up->headers_done)
        return 0;  /* an interim response ended */
    up->message_done = true;
    tr_request *req = up->req;
    if (!req || req->client_gone)
        return HPE_PAUSED;
    if (up->buffering) {
        up->buffering = false;
        if (finish_client_head(up, &up->rhead, up->rbody.len) != 0 ||
            tr_buf_append(&up->out, up->rhead.data, up->rhead.len,
                          SIZE_MAX) ||
            tr_buf_append(&up->out, up->rbody.data, up->rbody.len,
                          SIZE_MAX))
            return -1;
        up->rhead.len = up->rbody.len = 0;
        return HPE_PAUSED;
    }
    if (up->chunked_out && tr_buf_append(&up->out, "0\r\n\r\n", 5,
                                         SIZE_MAX))
        return -1;
    return HPE_PAUSED;
}

void tr_proxy_init_parser_settings(llhttp_settings_t *s);

void
tr_proxy_init_parser_settings(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_header_field = resp_on_header_field;
    s->on_header_value = resp_on_header_value;
    s->on_header_value_complete = resp_on_header_value_complete;
    s->on_headers_complete = resp_on_headers_complete;
    s->on_body = resp_on_body;
    s->on_message_complete = resp_on_message_complete;
}

static void
flush_out(tr_upconn *up)
{
    tr_request *req = up->req;
    if (!up->out.len)
        return;
    if (req && req->client && !req->client_gone) {
        /* Hand the gathered bytes to the write; the buffer is copied once
         * by tr_client_write rather than kept per write. */
        tr_client_write(req->client, up->out.data, up->out.len, true);
    }
    up->out.len = 0;
}

static void
response_complete(tr_upconn *up)
{
    tr_request *req = up->req;
    bool reusable = llhttp_should_keep_alive(&up->parser) &&
                    up->request_sent && !up->close_delimited &&
                    up->pending_writes == 0;
    uv_timer_stop(&up->timer);
    uv_read_stop((uv_stream_t *)&up->tcp);
    double secs = (double)(tr_now_ns() - req->upstream_start_ns) / 1e9;
    tr_metrics_upstream_latency(&up->pool->srv->metrics, secs);
    /* A response that ended before the request body did leaves the
     * connection mid-request on both sides. */
    if (!up->request_sent)
        req->keep_alive = false;
    req->up = NULL;
    req->upstream_done = true;
    tr_pool_release(up, reusable);
    tr_request_finish(req);
}

static void
up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    tr_upconn *up = s->data;
    tr_request *req = up->req;

    if (!req || up->state != TR_UP_BUSY)
        return;
    if (n == 0)
        return;
    if (n < 0) {
        if (n == UV_EOF && up->headers_done && up->close_delimited) {
            llhttp_finish(&up->parser);
            flush_out(up);
            up->message_done = true;
            response_complete(up);
            return;
        }
        req->upstream_failed = up->any_byte_sent;
        tr_proxy_fail(req, TR_P_UPSTREAM_UNAVAILABLE,
                      up->headers_done
                          ? "the upstream closed the connection mid-response"
                          : "the upstream closed the connection without "
                            "answering");
        return;
    }
    size_t fresh = up->rbuf.len;
    up->rbuf.len += (size_t)n;
    uv_timer_again(&up->timer);
    if (uv_timer_get_repeat(&up->timer) == 0)
        uv_timer_start(&up->timer, response_timeout,
                       up->pool->cfg->response_timeout_ms, 0);

    llhttp_errno_t err = llhttp_execute(&up->parser, up->rbuf.data + fresh,
                                        (size_t)n);
    if (err != HPE_OK && !(err == HPE_PAUSED && up->message_done)) {
        req->upstream_failed = true;
        tr_log(TR_LOG_WARN, "upstream_bad_response",
               "upstream=%s error=\"%s\"", up->pool->cfg->name,
               llhttp_get_error_reason(&up->parser));
        tr_proxy_fail(req, TR_P_UPSTREAM_UNAVAILABLE,
                      "the upstream sent a malformed response");
        return;
    }
    /* Once the head is done every byte has been copied out; before, the
     * head's spans still point into rbuf. */
    if (up->headers_done)
        up->rbuf.len = 0;
    flush_out(up);
    if (up->message_done) {
        response_complete(up);
        return;
    }
    tr_client *c = req->client;
    if (c && !req->client_gone && c->queued_bytes > CLIENT_HIGH_WATER) {
        uv_read_stop((uv_stream_t *)&up->tcp);
        up->client_paused = true;
    }
}

void
tr_proxy_client_writable(tr_request *req)
{
    tr_upconn *up = req->up;
    if (up && up->client_paused && up->state == TR_UP_BUSY) {
        up->client_paused = false;
        uv_read_start((uv_stream_t *)&up->tcp, up_alloc, up_read);
    }
}

/*
 * Ends a forward that went wrong.  Before the response head went out the
 * client gets a problem; after, the only honest signal left is to close
 * the connection mid-body.
 */
void
tr_proxy_fail(tr_request *req, tr_problem_kind kind, const char *why)
{
    tr_upconn *up = req->up;
    if (req->finished)
        return;
    if (req->waiting_pool && req->pool)
        tr_pool_cancel(req->pool, req);
    if (up) {
        up->req = NULL;
        req->up = NULL;
        if (up->state == TR_UP_CONNECTING)
            ; /* on_connect finds no request and parks the socket */
        else
            tr_pool_release(up, false);
    }
    req->keep_alive = false;
    if (!req->head_sent && !req->client_gone) {
        req->decision = req->decision ? req->decision : "error";
        tr_respond_problem(req, kind, why, NULL);
        return;
    }
    if (!req->status)
        req->status = tr_problem(kind)->status;
    req->reason = why;
    if (req->client && !req->client_gone)
        tr_client_close(req->client);
    tr_request_finish(req);
}

/* The client left while its request was upstream. */
void
tr_proxy_client_gone(tr_request *req)
{
    if (req->finished)
        return;
    if (req->keyed) {
        /* A keyed request runs to completion so a retry finds its
         * outcome; only the client side is gone. */
        return;
    }
    if (req->waiting_pool && req->pool)
        tr_pool_cancel(req->pool, req);
    tr_upconn *up = req->up;
    if (up) {
        up->req = NULL;
        req->up = NULL;
        if (up->state != TR_UP_CONNECTING)
            tr_pool_release(up, false);
    }
    if (!req->status)
        req->status = 499;  /* nginx's "client closed request" */
    req->reason = "client_closed";
    tr_request_finish(req);
}
