/*
 * A client connection: reading, the hardened header-block check, llhttp,
 * body flow towards the pipeline, writes back, timeouts and teardown.
 *
 * The header block is located and checked byte by byte before llhttp sees
 * it (src/core/http_head.c), then copied into c->head so every span of the
 * parsed request stays valid for the request's whole life while c->in is
 * compacted and refilled with body bytes and pipelined requests.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/target.h"
#include "net/gateway.h"
#include "net/log.h"

typedef struct {
    uv_write_t req;
    tr_client *c;
    size_t len;
    char *owned;             /* freed after the write when set */
} client_write;

static void on_close(uv_handle_t *h);
static void process_input(tr_client *c);

/* ---------------------------------------------------------------- timers */

static void
on_timer(uv_timer_t *t)
{
    tr_client *c = t->data;
    tr_request *req = &c->req;

    if (c->closing)
        return;
    if (!c->req_active) {
        if (c->in.len > c->in_off) {
            /* A partial header block that did not finish in time. */
            tr_request_reset(req);
            req->client = c;
            tr_request_stamp(req);
            c->req_active = true;
            req->keep_alive = false;
            tr_respond_problem(req, TR_P_REQUEST_TIMEOUT,
                               "the request header block did not arrive "
                               "within the configured time", NULL);
            return;
        }
        tr_client_close(c);
        return;
    }
    if (req->stage == TR_STAGE_BUFFER_BODY ||
        (req->has_body && !c->message_complete && !req->head_sent &&
         req->stage >= TR_STAGE_FORWARD)) {
        req->keep_alive = false;
        if (req->stage == TR_STAGE_BUFFER_BODY) {
            tr_respond_problem(req, TR_P_REQUEST_TIMEOUT,
                               "the request body stalled", NULL);
        } else {
            tr_proxy_fail(req, TR_P_REQUEST_TIMEOUT,
                          "the request body stalled");
        }
    }
}

static void
arm_timer(tr_client *c)
{
    const tr_limits_cfg *l = &c->srv->cfg->limits;
    uint64_t ms;

    if (c->closing)
        return;
    if (!c->req_active && c->in.len > c->in_off) {
        /* A deadline for the whole header block, not an inactivity
         * timer: a client sending a byte a second must not hold the
         * connection for ever (slowloris). */
        if (c->head_deadline_armed)
            return;
        c->head_deadline_armed = true;
        ms = l->client_header_timeout_ms;
    } else if (!c->req_active)
        ms = l->client_idle_timeout_ms;
    else if (c->req.has_body && !c->message_complete)
        ms = l->client_body_timeout_ms;
    else {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ------------------------------------------------------------ lifecycle */

static bool
addr_count_adjust(tr_server *srv, tr_client *c, int delta)
{
    size_t cap = srv->addr_counts_cap;
    size_t i = c->peer_hash & (cap - 1);
    size_t tomb = cap;

    /* Linear probing over a fixed table sized to max_connections, so it
     * never fills; a zero count marks a free slot that lookups skip. */
    for (size_t probes = 0; probes < cap; probes++, i = (i + 1) & (cap - 1)) {
        if (srv->addr_counts[i].count == 0) {
            if (tomb == cap)
                tomb = i;
            if (srv->addr_counts[i].hash == 0)
                break;
            continue;
        }
        if (srv->addr_counts[i].hash == c->peer_hash &&
            !memcmp(srv->addr_counts[i].addr, c->peer_bin, 16)) {
            if (delta > 0 && srv->addr_counts[i].count >=
                                 srv->cfg->limits.max_connections_per_client)
                return false;
            srv->addr_counts[i].count += (uint32_t)delta;
            return true;
        }
    }
    if (delta < 0 || tomb == cap)
        return delta < 0;
    srv->addr_counts[tomb].hash = c->peer_hash;
    memcpy(srv->addr_counts[tomb].addr, c->peer_bin, 16);
    srv->addr_counts[tomb].count = 1;
    return true;
}

static void
fill_peer(tr_client *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(c->peer_bin, 0, sizeof(c->peer_bin));
    snprintf(c->peer, sizeof(c->peer), "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, c->peer, sizeof(c->peer));
        c->peer_bin[10] = 0xff;
        c->peer_bin[11] = 0xff;
        memcpy(c->peer_bin + 12, &sin->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, c->peer, sizeof(c->peer));
        memcpy(c->peer_bin, &sin6->sin6_addr, 16);
    }
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ c->peer_bin[i]) * 16777619u;
    c->peer_hash = h | 1;  /* never 0: 0 marks a never-used slot */
    memcpy(c->addr, c->peer, sizeof(c->addr));
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    tr_client *c = h->data;
    size_t ceiling = c->srv->cfg->limits.header_bytes + 2 * TR_READ_BUF;

    /* Compact the consumed prefix unless upstream writes still point into
     * it (body bytes are written upstream without a copy). */
    bool pinned = c->req_active && c->req.up && c->req.up->pending_writes;
    if (c->in_off && !pinned) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (tr_buf_reserve(&c->in, 16 * 1024, ceiling) != 0 ||
        c->in.cap - c->in.len < 1024) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = c->in.data + c->in.len;
    buf->len = c->in.cap - c->in.len;
}

static void
stop_reading(tr_client *c)
{
    if (c->reading && !c->closing) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
start_reading(tr_client *c)
{
    if (!c->reading && !c->closing && !c->eof) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) == 0)
            c->reading = true;
    }
}

static void
client_gone(tr_client *c)
{
    c->eof = true;
    if (c->req_active && !c->req.finished) {
        c->req.client_gone = true;
        c->req.keep_alive = false;
        tr_pipeline_client_gone(&c->req);
    }
    if (!c->req_active)
        tr_client_close(c);
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tr_client *c = s->data;

    if (nread == UV_ENOBUFS || (nread == 0 && buf->base == NULL)) {
        /* The buffer is full of bytes we may not consume yet: wait. */
        stop_reading(c);
        return;
    }
    if (nread < 0) {
        stop_reading(c);
        client_gone(c);
        return;
    }
    if (nread == 0)
        return;
    c->in.len += (size_t)nread;
    process_input(c);
}

void
tr_client_accept(tr_server *srv, uv_stream_t *listener)
{
    tr_client *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    c->handles_open = 1;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->handles_open++;
    uv_tcp_nodelay(&c->tcp, 1);
    fill_peer(c);

    c->next = srv->clients;
    if (srv->clients)
        srv->clients->prev = c;
    srv->clients = c;
    srv->n_clients++;
    srv->metrics.connections_open++;

    const char *refusal = NULL;
    if (srv->draining)
        refusal = "draining";
    else if (srv->n_clients > srv->cfg->limits.max_connections)
        refusal = "total";
    else if (!addr_count_adjust(srv, c, +1))
        refusal = "per_client";
    else
        c->counted = true;  /* undo on close */

    if (refusal) {
        char resp[512];
        const tr_problem_info *pi = tr_problem(TR_P_TOO_MANY_CONNECTIONS);
        char body[256];
        int bl = snprintf(body, sizeof(body),
                          "{\"type\":\"%s\",\"title\":\"%s\","
                          "\"status\":503,\"detail\":\"connection cap "
                          "reached (%s)\"}",
                          pi->type, pi->title, refusal);
        int rl = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 503 Service Unavailable\r\n"
                          "Content-Type: application/problem+json\r\n"
                          "Cache-Control: no-store\r\nRetry-After: 1\r\n"
                          "Connection: close\r\nContent-Length: %d\r\n"
                          "\r\n%s", bl, body);
        srv->metrics.connections_refused++;
        tr_log(TR_LOG_WARN, "connection_refused", "client=%s cap=%s",
               c->peer, refusal);
        if (rl > 0 && (size_t)rl < sizeof(resp))
            tr_client_write(c, resp, (size_t)rl, true);
        tr_client_close_graceful(c);
        return;
    }
    start_reading(c);
    arm_timer(c);
}

void
tr_client_close(tr_client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->reading = false;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_close);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void
on_shutdown(uv_shutdown_t *sd, int status)
{
    tr_client *c = sd->data;
    free(sd);
    tr_client_close(c);
}

/* Closes once every queued write has gone out: uv_close alone would
 * cancel them and cut the response short. */
void
tr_client_close_graceful(tr_client *c)
{
    if (c->closing)
        return;
    stop_reading(c);
    if (c->pending_writes) {
        c->close_after_writes = true;
        return;
    }
    uv_shutdown_t *sd = malloc(sizeof(*sd));
    if (!sd) {
        tr_client_close(c);
        return;
    }
    sd->data = c;
    if (uv_shutdown(sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sd);
        tr_client_close(c);
    }
    c->shutting_down = true;
}

void
tr_client_maybe_free(tr_client *c)
{
    if (c->handles_open || (c->req_active && !c->req.finished))
        return;
    tr_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else if (srv->clients == c)
        srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_clients--;
    srv->metrics.connections_open--;
    if (c->counted)
        addr_count_adjust(srv, c, -1);
    tr_buf_free(&c->in);
    tr_buf_free(&c->head);
    tr_buf_free(&c->req.body);
    free(c);
}

static void
on_close(uv_handle_t *h)
{
    tr_client *c = h->data;
    c->handles_open--;
    if (c->handles_open == 0)
        c->closed = true;
    tr_client_maybe_free(c);
}

/* --------------------------------------------------------------- writes */

static void
on_write(uv_write_t *w, int status)
{
    client_write *cw = (client_write *)w;
    tr_client *c = cw->c;

    c->pending_writes--;
    c->queued_bytes -= cw->len;
    free(cw->owned);
    free(cw);
    if (status < 0 && !c->closing) {
        client_gone(c);
    }
    if (c->req_active && c->req.stage == TR_STAGE_STREAMING &&
        c->queued_bytes < TR_READ_BUF)
        tr_proxy_client_writable(&c->req);
    if (c->close_after_writes && c->pending_writes == 0 && !c->closing) {
        c->close_after_writes = false;
        tr_client_close_graceful(c);
    }
    tr_client_maybe_free(c);
}

int
tr_client_write(tr_client *c, const char *p, size_t n, bool copy)
{
    if (c->closing || c->shutting_down || c->eof)
        return -1;
    client_write *cw = malloc(sizeof(*cw) + (copy ? n : 0));
    if (!cw)
        return -1;
    cw->c = c;
    cw->len = n;
    cw->owned = NULL;
    const char *src = p;
    if (copy) {
        memcpy(cw + 1, p, n);
        src = (const char *)(cw + 1);
    }
    uv_buf_t b = uv_buf_init((char *)src, (unsigned)n);
    if (uv_write(&cw->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(cw);
        return -1;
    }
    c->pending_writes++;
    c->queued_bytes += n;
    return 0;
}

/* -------------------------------------------------------------- parsing */

static int
on_method(llhttp_t *p, const char *at, size_t len)
{
    tr_client *c = p->data;
    c->req.method = at;
    c->req.method_len = len;
    return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
    tr_client *c = p->data;
    c->req.target = at;
    c->req.target_len = len;
    return 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
    tr_client *c = p->data;
    c->hdr_field = at;
    c->hdr_field_len = len;
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
    tr_client *c = p->data;
    tr_request *req = &c->req;
    if (req->n_headers >= TR_MAX_HEADERS_HARD)
        return -1;
    tr_header *h = &req->headers[req->n_headers++];
    h->name = c->hdr_field;
    h->name_len = c->hdr_field_len;
    /* llhttp leaves trailing whitespace in the value span. */
    while (len && (at[len - 1] == ' ' || at[len - 1] == '\t'))
        len--;
    h->value = at;
    h->value_len = len;
    return 0;
}

/* A header field with an empty value never calls on_header_value. */
static int
on_header_value_complete(llhttp_t *p)
{
    tr_client *c = p->data;
    tr_request *req = &c->req;
    if (req->n_headers == 0 ||
        req->headers[req->n_headers - 1].name != c->hdr_field) {
        if (req->n_headers >= TR_MAX_HEADERS_HARD)
            return -1;
        tr_header *h = &req->headers[req->n_headers++];
        h->name = c->hdr_field;
        h->name_len = c->hdr_field_len;
        h->value = c->hdr_field + c->hdr_field_len;
        h->value_len = 0;
    }
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    tr_client *c = p->data;
    c->head_complete = true;
    return HPE_PAUSED;
}

static int
on_chunk_ext(llhttp_t *p, const char *at, size_t len)
{
    tr_client *c = p->data;
    (void)at;
    /* Chunk extensions carry nothing treaty forwards; a cap stops a client
     * from streaming unbounded bytes through them. */
    c->chunk_ext_bytes += (uint32_t)len;
    if (c->chunk_ext_bytes > c->srv->cfg->limits.chunk_ext_max) {
        c->chunk_ext_exceeded = true;
        llhttp_set_error_reason(p, "chunk extension over the cap");
        return -1;
    }
    return 0;
}

static int
on_chunk_header(llhttp_t *p)
{
    ((tr_client *)p->data)->chunk_ext_bytes = 0;
    return 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
    tr_client *c = p->data;
    tr_request *req = &c->req;

    req->body_received += len;
    if (req->body_received > (req->route ? req->route->body_cap
                                         : c->srv->cfg->limits.body_max)) {
        llhttp_set_error_reason(p, "body too large");
        return HPE_USER;
    }
    if (req->buffer_body) {
        if (tr_buf_append(&req->body, at, len, req->route->body_cap) != 0)
            return HPE_USER;
        return 0;
    }
    if (tr_proxy_body_chunk(req, at, len) != 0)
        return -1;
    return 0;
}

static int
on_message_complete(llhttp_t *p)
{
    tr_client *c = p->data;
    c->message_complete = true;
    return HPE_PAUSED;
}

void
tr_client_init_parser_settings(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_method = on_method;
    s->on_url = on_url;
    s->on_header_field = on_header_field;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_chunk_extension_name = on_chunk_ext;
    s->on_chunk_extension_value = on_chunk_ext;
    s->on_chunk_header = on_chunk_header;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

static void
refuse_head(tr_client *c, tr_problem_kind kind, const char *detail)
{
    tr_request *req = &c->req;
    req->client = c;
    if (!c->req_active || !req->id[0]) {
        /* Refused before the pipeline began: the log line and the
         * problem still get a time, an id and the client address. */
        if (!c->req_active)
            tr_request_reset(req);
        req->client = c;
        tr_request_stamp(req);
    }
    c->req_active = true;
    req->keep_alive = false;
    req->decision = "deny";
    req->reason = detail;
    c->srv->metrics.parse_errors++;
    tr_log(TR_LOG_INFO, "request_refused", "client=%s reason=\"%s\"",
           c->peer, detail);
    tr_respond_problem(req, kind, detail, NULL);
}

void
tr_request_reset(tr_request *req)
{
    memset(req, 0, offsetof(tr_request, headers));
    req->budget.have_decision = false;
    req->budget.active = false;
    req->budget.queued = false;
    req->budget.qprev = req->budget.qnext = NULL;
    req->body.len = 0;
}

static const char *
find_head_end(const char *p, size_t len)
{
    if (len < 4)
        return NULL;
    const char *m = memmem(p, len, "\r\n\r\n", 4);
    return m ? m + 4 : NULL;
}

static void
begin_request(tr_client *c)
{
    tr_request *req = &c->req;
    const tr_limits_cfg *lim = &c->srv->cfg->limits;
    const char *start = c->in.data + c->in_off;
    size_t avail = c->in.len - c->in_off;

    /* Tolerate empty lines before a request (RFC 9112 §2.2). */
    while (avail >= 2 && start[0] == '\r' && start[1] == '\n') {
        c->in_off += 2;
        start += 2;
        avail -= 2;
    }
    if (avail == 0) {
        arm_timer(c);
        return;
    }

    const char *end = find_head_end(start, avail);
    if (!end) {
        if (avail > lim->header_bytes) {
            refuse_head(c, TR_P_HEADERS_TOO_LARGE,
                        "the request header block exceeds the limit");
            return;
        }
        /* A bare LF or CR is refused as soon as it is seen, not only once
         * the block ends: waiting would let a smuggler hold the line. */
        tr_head_status early = tr_head_check_block(
            start, avail, lim->header_count);
        if (early != TR_HEAD_INCOMPLETE && early != TR_HEAD_OK) {
            refuse_head(c, early == TR_HEAD_TOO_MANY_FIELDS
                               ? TR_P_HEADERS_TOO_LARGE
                               : TR_P_MALFORMED_REQUEST,
                        tr_head_status_reason(early));
            return;
        }
        arm_timer(c);
        return;
    }
    size_t blen = (size_t)(end - start);
    if (blen > lim->header_bytes) {
        refuse_head(c, TR_P_HEADERS_TOO_LARGE,
                    "the request header block exceeds the limit");
        return;
    }
    tr_head_status st = tr_head_check_block(start, blen, lim->header_count);
    if (st != TR_HEAD_OK) {
        refuse_head(c, st == TR_HEAD_TOO_MANY_FIELDS ? TR_P_HEADERS_TOO_LARGE
                                                     : TR_P_MALFORMED_REQUEST,
                    tr_head_status_reason(st));
        return;
    }

    /* Copy the block so its spans outlive buffer compaction. */
    c->head.len = 0;
    if (tr_buf_append(&c->head, start, blen, lim->header_bytes + 1) != 0) {
        refuse_head(c, TR_P_HEADERS_TOO_LARGE, "out of header memory");
        return;
    }
    c->in_off += blen;
    c->head_deadline_armed = false;

    tr_request_reset(req);
    c->body_flowing = false;
    c->chunk_ext_exceeded = false;
    c->chunk_ext_bytes = 0;
    req->client = c;
    req->stage = TR_STAGE_IDENTIFY;
    c->req_active = true;
    c->head_complete = false;
    c->message_complete = false;
    c->requests++;

    llhttp_init(&c->parser, HTTP_REQUEST, &c->srv->req_settings);
    c->parser.data = c;
    llhttp_errno_t err = llhttp_execute(&c->parser, c->head.data,
                                        c->head.len);
    if (err != HPE_PAUSED || !c->head_complete) {
        refuse_head(c, TR_P_MALFORMED_REQUEST,
                    err == HPE_OK ? "incomplete request head"
                                  : llhttp_get_error_reason(&c->parser));
        return;
    }
    if (req->n_headers > lim->header_count) {
        refuse_head(c, TR_P_HEADERS_TOO_LARGE, "too many header fields");
        return;
    }
    if (c->parser.http_major != 1 || c->parser.http_minor > 1) {
        refuse_head(c, TR_P_MALFORMED_REQUEST,
                    "only HTTP/1.0 and HTTP/1.1 are spoken on this port");
        return;
    }
    req->http11 = c->parser.http_minor == 1;
    st = tr_head_check_fields(req->headers, req->n_headers, req->http11);
    if (st != TR_HEAD_OK) {
        refuse_head(c, TR_P_MALFORMED_REQUEST, tr_head_status_reason(st));
        return;
    }
    req->keep_alive = llhttp_should_keep_alive(&c->parser) != 0;
    req->chunked_in = (c->parser.flags & F_CHUNKED) != 0;
    req->content_length = (c->parser.flags & F_CONTENT_LENGTH)
                              ? c->parser.content_length
                              : 0;
    req->has_body = req->chunked_in || req->content_length > 0;
    if (!req->has_body)
        c->message_complete = true;
    req->method_bit = tr_method_bit(req->method, req->method_len);
    tr_pipeline_start(req);
}

/*
 * Feeds body bytes to llhttp while the pipeline wants them.  The parser is
 * paused at the end of the message so pipelined requests wait their turn.
 */
static void
feed_body(tr_client *c)
{
    tr_request *req = &c->req;

    while (!c->message_complete && c->in.len > c->in_off) {
        if (req->up && req->up->pending_writes > 8)
            break;  /* backpressure: the upstream is slower than us */
        const char *p = c->in.data + c->in_off;
        size_t n = c->in.len - c->in_off;
        llhttp_errno_t err = llhttp_execute(&c->parser, p, n);
        if (err == HPE_OK) {
            c->in_off += n;
            continue;
        }
        if (err == HPE_PAUSED && c->message_complete) {
            c->in_off += (size_t)(llhttp_get_error_pos(&c->parser) - p);
            break;
        }
        /* A framing error mid-body: refuse and close. */
        req->keep_alive = false;
        bool too_big = err == HPE_USER && !c->chunk_ext_exceeded;
        const char *why = too_big ? "request body exceeds the route's cap"
                          : c->chunk_ext_exceeded
                              ? "chunk extensions exceed the configured cap"
                              : llhttp_get_error_reason(&c->parser);
        c->srv->metrics.parse_errors++;
        if (req->stage == TR_STAGE_BUFFER_BODY)
            tr_respond_problem(req, too_big ? TR_P_BODY_TOO_LARGE
                                            : TR_P_MALFORMED_REQUEST,
                               why, NULL);
        else
            tr_proxy_fail(req, too_big ? TR_P_BODY_TOO_LARGE
                                       : TR_P_MALFORMED_REQUEST, why);
        return;
    }
    if (c->message_complete) {
        uv_timer_stop(&c->timer);
        if (req->stage == TR_STAGE_BUFFER_BODY)
            tr_pipeline_body_complete(req);
        else
            tr_proxy_body_end(req);
    } else {
        arm_timer(c);
    }
}

/* Called by the pipeline when the body may flow (buffering or forward). */
void
tr_client_resume_body(tr_client *c)
{
    if (!c->req_active || c->closing)
        return;
    if (c->message_complete) {
        if (c->req.stage == TR_STAGE_BUFFER_BODY)
            tr_pipeline_body_complete(&c->req);
        else
            tr_proxy_body_end(&c->req);
        return;
    }
    if (!c->body_flowing) {
        c->body_flowing = true;
        llhttp_resume(&c->parser);
    }
    feed_body(c);
    start_reading(c);
}

static void
process_input(tr_client *c)
{
    if (c->closing)
        return;
    if (!c->req_active) {
        begin_request(c);
        return;
    }
    if (c->body_flowing)
        feed_body(c);
    /* Otherwise bytes wait in c->in: a pipelined request or a body the
     * pipeline has not asked for yet.  Reading goes on (so a client that
     * leaves is noticed) until the buffer is full. */
}

void
tr_client_request_done(tr_client *c)
{
    tr_request *req = &c->req;
    bool keep = req->keep_alive && !c->closing && !c->eof &&
                !c->srv->draining && c->message_complete;

    c->req_active = false;
    if (!keep) {
        tr_client_close_graceful(c);
        tr_client_maybe_free(c);
        return;
    }
    start_reading(c);
    if (c->in.len > c->in_off)
        begin_request(c);
    else
        arm_timer(c);
}
