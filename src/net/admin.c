/*
 * The admin listener: /healthz (the process answers), /readyz (it should
 * get traffic: not draining, keys loaded, store up), /metrics
 * (Prometheus).  One request per connection; bounded reads; the same
 * llhttp parser as the data path.
 */
#include <stdlib.h>
#include <string.h>

#include "net/gateway.h"
#include "net/http_date.h"
#include "net/log.h"

#define ADMIN_MAX_REQUEST 8192

typedef struct {
    uv_tcp_t tcp;
    tr_server *srv;
    llhttp_t parser;
    char buf[ADMIN_MAX_REQUEST];
    size_t len;
    char path[256];
    bool done;
    bool is_get;
} admin_conn;

typedef struct {
    uv_write_t w;
    tr_buf body;
} admin_write;

static llhttp_settings_t admin_settings;

static tr_admin_handler extra_handlers[4];
static void *extra_ctx[4];
static size_t n_extra;

void
tr_admin_add_handler(tr_admin_handler fn, void *ctx)
{
    if (n_extra < 4) {
        extra_handlers[n_extra] = fn;
        extra_ctx[n_extra++] = ctx;
    }
}

static void
on_close(uv_handle_t *h)
{
    free(h->data);
}

static void
on_write(uv_write_t *w, int status)
{
    admin_write *aw = (admin_write *)w;
    admin_conn *a = w->data;
    tr_buf_free(&aw->body);
    free(aw);
    uv_close((uv_handle_t *)&a->tcp, on_close);
}

static void
reply(admin_conn *a, int status, const char *ctype, tr_buf *body)
{
    admin_write *aw = calloc(1, sizeof(*aw));
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Cache-Control: no-store\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, tr_status_reason(status), tr_http_date_now(),
                     ctype, body->len);
    a->done = true;
    if (!aw) {
        uv_close((uv_handle_t *)&a->tcp, on_close);
        return;
    }
    tr_buf_append(&aw->body, head, (size_t)n, SIZE_MAX);
    tr_buf_append(&aw->body, body->data, body->len, SIZE_MAX);
    aw->w.data = a;
    uv_buf_t b = uv_buf_init(aw->body.data, (unsigned)aw->body.len);
    if (uv_write(&aw->w, (uv_stream_t *)&a->tcp, &b, 1, on_write) != 0) {
        tr_buf_free(&aw->body);
        free(aw);
        uv_close((uv_handle_t *)&a->tcp, on_close);
    }
}

static void
handle(admin_conn *a)
{
    tr_server *srv = a->srv;
    tr_buf body = { 0 };
    int status = 200;
    const char *ctype = "application/json";

    if (!a->is_get) {
        status = 405;
        tr_buf_append(&body, "{\"error\":\"GET only\"}", 20, SIZE_MAX);
    } else if (!strcmp(a->path, "/healthz")) {
        tr_buf_append(&body, "{\"status\":\"ok\"}", 15, SIZE_MAX);
    } else if (!strcmp(a->path, "/readyz")) {
        const char *why = NULL;
        bool ready = !srv->draining;
        if (!ready)
            why = "draining";
        for (size_t i = 0; ready && i < srv->n_ready; i++)
            ready = srv->ready[i].fn(srv->ready[i].ctx, &why);
        char line[256];
        int n = snprintf(line, sizeof(line),
                         "{\"ready\":%s,\"reason\":\"%s\"}",
                         ready ? "true" : "false", why ? why : "");
        tr_buf_append(&body, line, (size_t)n, SIZE_MAX);
        status = ready ? 200 : 503;
    } else if (!strcmp(a->path, "/metrics")) {
        ctype = "text/plain; version=0.0.4";
        tr_metrics_render(srv, &body);
    } else {
        bool handled = false;
        for (size_t i = 0; !handled && i < n_extra; i++)
            handled = extra_handlers[i](extra_ctx[i], a->path, &status,
                                        &ctype, &body);
        if (!handled) {
            status = 404;
            tr_buf_append(&body, "{\"error\":\"not found\"}", 21,
                          SIZE_MAX);
        }
    }
    reply(a, status, ctype, &body);
    tr_buf_free(&body);
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
    admin_conn *a = p->data;
    size_t have = strlen(a->path);
    if (have + len >= sizeof(a->path))
        return -1;
    memcpy(a->path + have, at, len);
    a->path[have + len] = '\0';
    char *q = strchr(a->path, '?');
    if (q)
        *q = '\0';
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    admin_conn *a = p->data;
    a->is_get = p->method == HTTP_GET;
    return HPE_PAUSED;
}

static void
alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    admin_conn *a = h->data;
    b->base = a->buf + a->len;
    b->len = sizeof(a->buf) - a->len;
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    admin_conn *a = s->data;
    if (a->done)
        return;
    if (n < 0 || (n == 0 && a->len == sizeof(a->buf))) {
        uv_read_stop(s);
        a->done = true;
        uv_close((uv_handle_t *)&a->tcp, on_close);
        return;
    }
    llhttp_errno_t err = llhttp_execute(&a->parser, b->base, (size_t)n);
    a->len += (size_t)n;
    if (err == HPE_PAUSED) {
        uv_read_stop(s);
        handle(a);
    } else if (err != HPE_OK || a->len == sizeof(a->buf)) {
        uv_read_stop(s);
        tr_buf body = { 0 };
        tr_buf_append(&body, "{\"error\":\"bad request\"}", 23, SIZE_MAX);
        reply(a, 400, "application/json", &body);
        tr_buf_free(&body);
    }
}

static void
on_connection(uv_stream_t *listener, int status)
{
    tr_server *srv = listener->data;
    if (status < 0)
        return;
    admin_conn *a = calloc(1, sizeof(*a));
    if (!a)
        return;
    a->srv = srv;
    uv_tcp_init(srv->loop, &a->tcp);
    a->tcp.data = a;
    if (uv_accept(listener, (uv_stream_t *)&a->tcp) != 0) {
        uv_close((uv_handle_t *)&a->tcp, on_close);
        return;
    }
    llhttp_init(&a->parser, HTTP_REQUEST, &admin_settings);
    a->parser.data = a;
    uv_read_start((uv_stream_t *)&a->tcp, alloc_cb, on_read);
}

int
tr_admin_listen(tr_server *srv)
{
    llhttp_settings_init(&admin_settings);
    admin_settings.on_url = on_url;
    admin_settings.on_headers_complete = on_headers_complete;
    return tr_listen_on(srv, &srv->admin, srv->cfg->admin_host,
                        srv->cfg->admin_port, on_connection);
}
