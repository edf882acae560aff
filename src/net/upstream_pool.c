/*
 * Upstream connection pools: one per configured upstream, keep-alive, a
 * cap on open connections, and an idle timeout set below the backend's
 * own (json-server closes idle sockets after 5 s), so treaty does not
 * send a request on a socket the backend is about to close.
 *
 * When the pool is exhausted, waiters are served round-robin across
 * principals (SPEC.md §1): each principal waits in its own FIFO and a
 * freed connection goes to the next principal in turn, so one principal's
 * burst cannot starve another's request.
 */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "net/gateway.h"
#include "net/log.h"

typedef struct tr_waiter_bucket {
    struct tr_waiter_bucket *next;  /* ring order */
    char key[128];
    size_t key_len;
    tr_request *head, *tail;
} waiter_bucket;

/* The first bucket to serve. */
#define RING(pool) ((pool)->ring)

static void up_on_close(uv_handle_t *h);
static void up_idle_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void pool_serve_waiters(tr_pool *pool);

int
tr_pools_init(tr_server *srv)
{
    const tr_config *cfg = srv->cfg;

    srv->pools = calloc(cfg->n_upstreams ? cfg->n_upstreams : 1,
                        sizeof(tr_pool));
    if (!srv->pools)
        return -1;
    srv->n_pools = cfg->n_upstreams;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        tr_pool *p = &srv->pools[i];
        const tr_upstream_cfg *u = &cfg->upstreams[i];
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
        struct addrinfo *res = NULL;
        char port[8];

        p->srv = srv;
        p->cfg = u;
        p->index = i;
        snprintf(port, sizeof(port), "%u", u->port);
        /* Resolved once at start-up: the loop must never wait on DNS. */
        int rc = getaddrinfo(u->host, port, &hints, &res);
        if (rc != 0 || !res) {
            tr_log(TR_LOG_ERROR, "upstream_resolve_failed",
                   "upstream=%s host=%s error=\"%s\"", u->name, u->host,
                   gai_strerror(rc));
            return -1;
        }
        memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    }
    return 0;
}

static void
upconn_close(tr_upconn *up)
{
    if (up->state == TR_UP_CLOSING)
        return;
    tr_pool *pool = up->pool;
    if (up->state == TR_UP_BUSY || up->state == TR_UP_CONNECTING)
        pool->busy--;
    up->state = TR_UP_CLOSING;
    uv_timer_stop(&up->timer);
    uv_close((uv_handle_t *)&up->timer, up_on_close);
    uv_close((uv_handle_t *)&up->tcp, up_on_close);
}

static void
up_on_close(uv_handle_t *h)
{
    tr_upconn *up = h->data;
    if (--up->handles_open)
        return;
    tr_pool *pool = up->pool;
    pool->total--;
    tr_buf_free(&up->rbuf);
    tr_buf_free(&up->rhead);
    tr_buf_free(&up->out);
    tr_buf_free(&up->whead);
    tr_buf_free(&up->rbody);
    free(up);
    /* A slot opened up: a waiter may now connect. */
    pool_serve_waiters(pool);
}

void
tr_pools_close(tr_server *srv)
{
    for (size_t i = 0; i < srv->n_pools; i++) {
        tr_pool *p = &srv->pools[i];
        while (p->idle) {
            tr_upconn *up = p->idle;
            p->idle = up->next;
            upconn_close(up);
        }
    }
}

static void
idle_timeout(uv_timer_t *t)
{
    tr_upconn *up = t->data;
    tr_pool *pool = up->pool;

    for (tr_upconn **pp = &pool->idle; *pp; pp = &(*pp)->next) {
        if (*pp == up) {
            *pp = up->next;
            break;
        }
    }
    upconn_close(up);
}

static void
idle_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char sink[256];
    b->base = sink;
    b->len = sizeof(sink);
}

/* Anything an idle upstream says (data, EOF, an error) makes it unusable:
 * it is closing or speaking out of turn.  Drop it before it is reused. */
static void
up_idle_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    tr_upconn *up = s->data;
    if (n == 0)
        return;
    if (up->state == TR_UP_IDLE)
        idle_timeout(&up->timer);
}

void
tr_pool_release(tr_upconn *up, bool reusable)
{
    tr_pool *pool = up->pool;

    up->req = NULL;
    if (!reusable || pool->srv->draining || up->state != TR_UP_BUSY) {
        upconn_close(up);
        return;
    }
    pool->busy--;
    up->state = TR_UP_IDLE;
    up->headers_done = up->message_done = false;
    up->request_sent = up->any_byte_sent = false;
    up->rbuf.len = 0;
    up->n_rh = 0;
    up->next = pool->idle;
    pool->idle = up;
    uv_read_stop((uv_stream_t *)&up->tcp);
    uv_read_start((uv_stream_t *)&up->tcp, idle_alloc, up_idle_read);
    uv_timer_start(&up->timer, idle_timeout, pool->cfg->idle_timeout_ms, 0);
    pool_serve_waiters(pool);
}

static void
hand_over(tr_upconn *up, tr_request *req)
{
    up->state = TR_UP_BUSY;
    up->req = req;
    up->pool->busy++;
    req->up = up;
    req->waiting_pool = false;
    tr_proxy_start(req, up);
}

static void
on_connect(uv_connect_t *cr, int status)
{
    tr_upconn *up = cr->data;
    tr_request *req = up->req;

    uv_timer_stop(&up->timer);
    if (up->state == TR_UP_CLOSING)
        return;
    if (status < 0) {
        tr_log(TR_LOG_WARN, "upstream_connect_failed",
               "upstream=%s error=%s", up->pool->cfg->name,
               uv_strerror(status));
        up->req = NULL;
        upconn_close(up);
        if (req) {
            req->up = NULL;
            req->upstream_not_reached = true;
            tr_proxy_fail(req, TR_P_UPSTREAM_UNAVAILABLE,
                          "could not connect to the upstream");
        }
        return;
    }
    uv_tcp_nodelay(&up->tcp, 1);
    up->pool->busy--;  /* hand_over counts it again */
    if (!req) {
        /* Its request went away while connecting: keep the socket. */
        up->state = TR_UP_BUSY;
        up->pool->busy++;
        tr_pool_release(up, true);
        return;
    }
    hand_over(up, req);
}

static void
connect_timeout(uv_timer_t *t)
{
    tr_upconn *up = t->data;
    tr_request *req = up->req;

    tr_log(TR_LOG_WARN, "upstream_connect_timeout", "upstream=%s",
           up->pool->cfg->name);
    up->req = NULL;
    upconn_close(up);
    if (req) {
        req->up = NULL;
        req->upstream_not_reached = true;
        tr_proxy_fail(req, TR_P_UPSTREAM_TIMEOUT,
                      "the upstream did not accept the connection in time");
    }
}

static int
open_connection(tr_pool *pool, tr_request *req)
{
    tr_upconn *up = calloc(1, sizeof(*up));
    if (!up)
        return -1;
    up->pool = pool;
    uv_tcp_init(pool->srv->loop, &up->tcp);
    uv_timer_init(pool->srv->loop, &up->timer);
    up->tcp.data = up->timer.data = up;
    up->handles_open = 2;
    up->connect_req.data = up;
    up->state = TR_UP_CONNECTING;
    up->req = req;
    pool->total++;
    pool->busy++;
    req->up = up;
    int rc = uv_tcp_connect(&up->connect_req, &up->tcp,
                            (const struct sockaddr *)&pool->addr,
                            on_connect);
    if (rc != 0) {
        up->req = NULL;
        req->up = NULL;
        upconn_close(up);
        return -1;
    }
    uv_timer_start(&up->timer, connect_timeout,
                   pool->cfg->connect_timeout_ms, 0);
    return 0;
}

static tr_upconn *
take_idle(tr_pool *pool)
{
    tr_upconn *up = pool->idle;
    if (!up)
        return NULL;
    pool->idle = up->next;
    up->next = NULL;
    uv_timer_stop(&up->timer);
    uv_read_stop((uv_stream_t *)&up->tcp);
    return up;
}

static void
enqueue(tr_pool *pool, tr_request *req)
{
    waiter_bucket *ring = RING(pool), *b = NULL;
    const char *key = req->fair_key;
    size_t klen = req->fair_key_len < 128 ? req->fair_key_len : 128;

    if (ring) {
        waiter_bucket *it = ring;
        do {
            if (it->key_len == klen && !memcmp(it->key, key, klen)) {
                b = it;
                break;
            }
            it = it->next;
        } while (it != ring);
    }
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b) {
            tr_proxy_fail(req, TR_P_REDUCED_CAPACITY, "out of memory");
            return;
        }
        memcpy(b->key, key, klen);
        b->key_len = klen;
        if (!ring) {
            b->next = b;
            RING(pool) = b;
        } else {
            /* Join just before the current head: served last in turn. */
            waiter_bucket *last = ring;
            while (last->next != ring)
                last = last->next;
            last->next = b;
            b->next = ring;
        }
    }
    req->pool_next = NULL;
    if (b->tail)
        b->tail->pool_next = req;
    else
        b->head = req;
    b->tail = req;
    req->waiting_pool = true;
    pool->n_waiters++;
}

static tr_request *
dequeue(tr_pool *pool)
{
    waiter_bucket *b = RING(pool);
    if (!b)
        return NULL;
    tr_request *req = b->head;
    b->head = req->pool_next;
    if (!b->head)
        b->tail = NULL;
    req->pool_next = NULL;
    req->waiting_pool = false;
    pool->n_waiters--;

    /* Advance the ring; drop the bucket if it is empty. */
    if (!b->head) {
        if (b->next == b) {
            RING(pool) = NULL;
        } else {
            waiter_bucket *prev = b;
            while (prev->next != b)
                prev = prev->next;
            prev->next = b->next;
            RING(pool) = b->next;
        }
        free(b);
    } else {
        RING(pool) = b->next;
    }
    return req;
}

void
tr_pool_cancel(tr_pool *pool, tr_request *req)
{
    waiter_bucket *ring = RING(pool);
    if (!req->waiting_pool || !ring)
        return;
    waiter_bucket *b = ring, *prevb = NULL;
    do {
        tr_request **pp = &b->head, *prev = NULL;
        for (; *pp; prev = *pp, pp = &(*pp)->pool_next) {
            if (*pp != req)
                continue;
            *pp = req->pool_next;
            if (b->tail == req)
                b->tail = prev;
            req->waiting_pool = false;
            pool->n_waiters--;
            if (!b->head) {
                if (b->next == b) {
                    RING(pool) = NULL;
                } else {
                    if (!prevb) {
                        prevb = b;
                        while (prevb->next != b)
                            prevb = prevb->next;
                    }
                    prevb->next = b->next;
                    if (RING(pool) == b)
                        RING(pool) = b->next;
                }
                free(b);
            }
            return;
        }
        prevb = b;
        b = b->next;
    } while (b != ring);
}

static void
pool_serve_waiters(tr_pool *pool)
{
    while (pool->n_waiters) {
        tr_upconn *up = take_idle(pool);
        if (up) {
            hand_over(up, dequeue(pool));
            continue;
        }
        if (pool->total < pool->cfg->max_connections) {
            tr_request *req = dequeue(pool);
            if (open_connection(pool, req) != 0) {
                req->upstream_not_reached = true;
                tr_proxy_fail(req, TR_P_UPSTREAM_UNAVAILABLE,
                              "could not open an upstream connection");
            }
            continue;
        }
        break;
    }
}

void
tr_pool_acquire(tr_pool *pool, tr_request *req)
{
    req->pool = pool;
    if (pool->n_waiters == 0) {
        tr_upconn *up = take_idle(pool);
        if (up) {
            hand_over(up, req);
            return;
        }
        if (pool->total < pool->cfg->max_connections) {
            if (open_connection(pool, req) != 0) {
                req->upstream_not_reached = true;
                tr_proxy_fail(req, TR_P_UPSTREAM_UNAVAILABLE,
                              "could not open an upstream connection");
            }
            return;
        }
    }
    enqueue(pool, req);
}
