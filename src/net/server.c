/*
 * The server: listeners, the connection caps, signals and draining.
 *
 * SIGTERM (or SIGINT) stops accepting, lets every request in progress
 * finish (idle keep-alive connections are closed at once), and stops the
 * loop when the last client is gone or drain_timeout_ms runs out.
 */
#include <openssl/rand.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/access_log.h"
#include "net/gateway.h"
#include "net/log.h"

void tr_proxy_init_parser_settings(llhttp_settings_t *s);

uint64_t
tr_now_ns(void)
{
    return uv_hrtime();
}

int64_t
tr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tr_server_add_ready_check(tr_server *srv, tr_ready_check fn, void *ctx)
{
    if (srv->n_ready < sizeof(srv->ready) / sizeof(srv->ready[0])) {
        srv->ready[srv->n_ready].fn = fn;
        srv->ready[srv->n_ready++].ctx = ctx;
    }
}

int
tr_server_init(tr_server *srv, uv_loop_t *loop, const tr_config *cfg,
               bool dev)
{
    char err[512];

    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = cfg;
    srv->dev = dev;
    if (RAND_bytes((unsigned char *)&srv->id_prefix,
                   sizeof(srv->id_prefix)) != 1)
        srv->id_prefix = (uint64_t)tr_wall_ms() ^ uv_hrtime();
    if (RAND_bytes((unsigned char *)&srv->trace_state,
                   sizeof(srv->trace_state)) != 1)
        srv->trace_state = srv->id_prefix ^ 0x5bd1e995u;

    srv->router = tr_router_build(cfg, err, sizeof(err));
    if (!srv->router) {
        tr_log(TR_LOG_ERROR, "router_failed", "error=\"%s\"", err);
        return -1;
    }
    tr_client_init_parser_settings(&srv->req_settings);
    tr_proxy_init_parser_settings(&srv->resp_settings);
    tr_metrics_init(&srv->metrics, cfg->n_routes);

    /* A power of two at least twice the connection cap: the per-address
     * table can never fill. */
    size_t cap = 64;
    while (cap < 2 * (size_t)cfg->limits.max_connections + 2)
        cap *= 2;
    srv->addr_counts = calloc(cap, sizeof(*srv->addr_counts));
    srv->addr_counts_cap = cap;
    if (!srv->addr_counts)
        return -1;

    if (tr_pools_init(srv) != 0)
        return -1;
    if (cfg->access_log) {
        srv->access_log = tr_access_log_open(cfg->access_log, err,
                                             sizeof(err));
        if (!srv->access_log) {
            tr_log(TR_LOG_ERROR, "access_log_failed", "error=\"%s\"", err);
            return -1;
        }
    }
    return 0;
}

static void
on_connection(uv_stream_t *listener, int status)
{
    tr_server *srv = listener->data;
    if (status < 0) {
        tr_log(TR_LOG_WARN, "accept_failed", "error=%s",
               uv_strerror(status));
        return;
    }
    tr_client_accept(srv, listener);
}

int
tr_listen_on(tr_server *srv, uv_tcp_t *tcp, const char *host, uint16_t port,
             uv_connection_cb cb)
{
    struct sockaddr_storage ss;

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        tr_log(TR_LOG_ERROR, "listen_failed",
               "address=%s reason=\"not an IP address\"", host);
        return -1;
    }
    uv_tcp_init(srv->loop, tcp);
    tcp->data = srv;
    int rc = uv_tcp_bind(tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, 1024, cb);
    if (rc != 0) {
        tr_log(TR_LOG_ERROR, "listen_failed", "address=%s port=%u error=%s",
               host, port, uv_strerror(rc));
        return -1;
    }
    return 0;
}

static void
drain_check(tr_server *srv)
{
    if (srv->n_clients == 0) {
        uv_timer_stop(&srv->drain_timer);
        uv_stop(srv->loop);
    }
}

static void
drain_tick(uv_timer_t *t)
{
    tr_server *srv = t->data;
    if (--srv->drain_ticks_left == 0) {
        tr_log(TR_LOG_WARN, "drain_timeout", "clients=%u", srv->n_clients);
        srv->exit_code = 0;
        uv_stop(srv->loop);
        return;
    }
    /* Idle keep-alive connections go now; busy ones when done. */
    for (tr_client *c = srv->clients; c; c = c->next)
        if (!c->req_active && !c->closing && c->in.len == c->in_off)
            tr_client_close(c);
    drain_check(srv);
}

static void
on_signal(uv_signal_t *s, int signum)
{
    tr_server *srv = s->data;

    if (srv->draining) {
        tr_log(TR_LOG_WARN, "second_signal", "signal=%d", signum);
        uv_stop(srv->loop);
        return;
    }
    srv->draining = true;
    tr_log(TR_LOG_INFO, "draining", "signal=%d clients=%u", signum,
           srv->n_clients);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    if (srv->admin.data)
        uv_close((uv_handle_t *)&srv->admin, NULL);
    srv->drain_ticks_left = srv->cfg->limits.drain_timeout_ms / 50 + 1;
    uv_timer_start(&srv->drain_timer, drain_tick, 0, 50);
}

int
tr_server_listen(tr_server *srv)
{
    const tr_config *cfg = srv->cfg;

    signal(SIGPIPE, SIG_IGN);
    /* A full file-size limit must surface as a store error (503s, then
     * recovery), not kill the gateway. */
    signal(SIGXFSZ, SIG_IGN);
    if (tr_listen_on(srv, &srv->listener, cfg->listen_host, cfg->listen_port,
                     on_connection) != 0)
        return -1;
    if (cfg->admin_host && tr_admin_listen(srv) != 0)
        return -1;
    uv_timer_init(srv->loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    tr_log(TR_LOG_INFO, "listening", "address=%s port=%u admin=%s:%u "
           "routes=%zu upstreams=%zu config_hash=%.16s",
           cfg->listen_host, cfg->listen_port,
           cfg->admin_host ? cfg->admin_host : "-", cfg->admin_port,
           cfg->n_routes, cfg->n_upstreams, cfg->hash_hex);
    return 0;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/*
 * Tears everything down after the loop stopped.  Handles still open
 * belong to connections that outlived the drain; they are closed without
 * their callbacks' bookkeeping, since the process is about to exit.
 */
void
tr_server_close(tr_server *srv)
{
    tr_pools_close(srv);
    uv_signal_stop(&srv->sigterm);
    uv_signal_stop(&srv->sigint);
    uv_run(srv->loop, UV_RUN_NOWAIT);
    uv_walk(srv->loop, close_walk, NULL);
    uv_run(srv->loop, UV_RUN_DEFAULT);
    tr_access_log_close(srv->access_log);
    srv->access_log = NULL;
    tr_router_free(srv->router);
    tr_metrics_free(&srv->metrics);
    free(srv->addr_counts);
    free(srv->pools);
}
