/*
 * Prometheus text exposition of the gateway's counters.  Counting is a
 * handful of integer increments on the loop; formatting happens only when
 * /metrics is scraped.  Modules add their own families through
 * tr_metrics_add_renderer().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/access_log.h"
#include "net/gateway.h"

#define STATUS_SLOTS 600

/* Upper bounds of the upstream latency histogram, in seconds. */
static const double latency_bounds[] = { 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,   0.025, 0.05,   0.1,
                                         0.25,   0.5,   1,      2.5,
                                         5,      10,    30 };
#define N_BOUNDS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

static size_t n_route_slots;

void
tr_metrics_init(tr_metrics *m, size_t n_routes)
{
    memset(m, 0, sizeof(*m));
    n_route_slots = n_routes + 1;
    m->route_status = calloc(n_route_slots * STATUS_SLOTS, sizeof(uint64_t));
}

void
tr_metrics_free(tr_metrics *m)
{
    free(m->route_status);
    m->route_status = NULL;
}

void
tr_metrics_count(tr_metrics *m, ssize_t route, int status)
{
    if (!m->route_status || status < 0 || status >= STATUS_SLOTS)
        return;
    size_t slot = route < 0 ? n_route_slots - 1 : (size_t)route;
    if (slot >= n_route_slots)
        return;
    m->route_status[slot * STATUS_SLOTS + (size_t)status]++;
}

void
tr_metrics_upstream_latency(tr_metrics *m, double seconds)
{
    size_t i = 0;
    while (i < N_BOUNDS && seconds > latency_bounds[i])
        i++;
    m->upstream_latency_buckets[i]++;
    m->upstream_latency_count++;
    m->upstream_latency_sum += seconds;
}

static int
printf_buf(tr_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
printf_buf(tr_buf *out, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    return tr_buf_append(out, line, (size_t)n, 64 * 1024 * 1024);
}

static tr_metrics_renderer renderers[16];
static void *renderer_ctx[16];
static size_t n_renderers;

void
tr_metrics_add_renderer(tr_metrics_renderer fn, void *ctx)
{
    if (n_renderers < sizeof(renderers) / sizeof(renderers[0])) {
        renderers[n_renderers] = fn;
        renderer_ctx[n_renderers++] = ctx;
    }
}

int
tr_metrics_render(const tr_server *srv, tr_buf *out)
{
    const tr_metrics *m = &srv->metrics;
    const tr_config *cfg = srv->cfg;

    printf_buf(out, "# HELP treaty_requests_total Requests answered, by "
                    "route and status.\n# TYPE treaty_requests_total "
                    "counter\n");
    for (size_t r = 0; r < n_route_slots; r++) {
        const char *name = r < cfg->n_routes ? cfg->routes[r].name
                                             : "(none)";
        for (size_t s = 0; s < STATUS_SLOTS; s++) {
            uint64_t v = m->route_status[r * STATUS_SLOTS + s];
            if (v)
                printf_buf(out,
                           "treaty_requests_total{route=\"%s\","
                           "status=\"%zu\"} %llu\n",
                           name, s, (unsigned long long)v);
        }
    }
    printf_buf(out, "# HELP treaty_inflight_requests Requests being "
                    "processed.\n# TYPE treaty_inflight_requests gauge\n"
                    "treaty_inflight_requests %llu\n",
               (unsigned long long)m->inflight);
    printf_buf(out, "# TYPE treaty_connections_open gauge\n"
                    "treaty_connections_open %llu\n"
                    "# TYPE treaty_connections_refused_total counter\n"
                    "treaty_connections_refused_total %llu\n"
                    "# TYPE treaty_parse_errors_total counter\n"
                    "treaty_parse_errors_total %llu\n"
                    "# TYPE treaty_access_log_dropped_total counter\n"
                    "treaty_access_log_dropped_total %llu\n",
               (unsigned long long)m->connections_open,
               (unsigned long long)m->connections_refused,
               (unsigned long long)m->parse_errors,
               (unsigned long long)tr_access_log_dropped(srv->access_log));

    printf_buf(out, "# HELP treaty_upstream_latency_seconds Time from "
                    "forwarding to the last response byte.\n"
                    "# TYPE treaty_upstream_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BOUNDS; i++) {
        cum += m->upstream_latency_buckets[i];
        printf_buf(out,
                   "treaty_upstream_latency_seconds_bucket{le=\"%g\"} "
                   "%llu\n",
                   latency_bounds[i], (unsigned long long)cum);
    }
    cum += m->upstream_latency_buckets[N_BOUNDS];
    printf_buf(out,
               "treaty_upstream_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
               "treaty_upstream_latency_seconds_sum %.6f\n"
               "treaty_upstream_latency_seconds_count %llu\n",
               (unsigned long long)cum, m->upstream_latency_sum,
               (unsigned long long)m->upstream_latency_count);

    printf_buf(out, "# TYPE treaty_pool_connections gauge\n"
                    "# TYPE treaty_pool_waiters gauge\n");
    for (size_t i = 0; i < srv->n_pools; i++) {
        const tr_pool *p = &srv->pools[i];
        printf_buf(out,
                   "treaty_pool_connections{upstream=\"%s\",state=\"busy\"}"
                   " %u\n"
                   "treaty_pool_connections{upstream=\"%s\",state=\"idle\"}"
                   " %u\n"
                   "treaty_pool_waiters{upstream=\"%s\"} %u\n",
                   p->cfg->name, p->busy, p->cfg->name,
                   p->total - p->busy, p->cfg->name, p->n_waiters);
    }
    for (size_t i = 0; i < n_renderers; i++)
        renderers[i](renderer_ctx[i], out);
    return 0;
}
