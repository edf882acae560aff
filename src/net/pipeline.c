/*
 * The request pipeline (SPEC.md "Request pipeline"): one named stage per
 * step, run in a fixed order.  A stage returns TR_NEXT to go on, TR_AGAIN
 * when it waits for a callback (which calls tr_pipeline_continue), or
 * TR_STOP when it produced the response.  Contract features plug in as
 * stages here and as the hooks the proxy calls; none of them changes the
 * order.
 */
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "core/target.h"
#include "net/access_log.h"
#include "net/gateway.h"
#include "net/log.h"
#include "net/stages.h"

/* ------------------------------------------------------------ helpers */

static const tr_header *
find_header(const tr_request *req, const char *lower, size_t *count)
{
    const tr_header *first = NULL;
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (tr_head_name_is(&req->headers[i], lower)) {
            if (!first)
                first = &req->headers[i];
            n++;
        }
    }
    if (count)
        *count = n;
    return first;
}

static void
hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool
is_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

/* W3C Trace Context: "00-" 32 hex "-" 16 hex "-" 2 hex, lower case,
 * version not ff, trace and parent ids not all zero. */
static bool
traceparent_valid(const char *v, size_t n)
{
    if (n != 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    if (!is_hex(v, 2) || !is_hex(v + 3, 32) || !is_hex(v + 36, 16) ||
        !is_hex(v + 53, 2) || !memcmp(v, "ff", 2))
        return false;
    bool zero_trace = true, zero_parent = true;
    for (int i = 0; i < 32; i++)
        zero_trace &= v[3 + i] == '0';
    for (int i = 0; i < 16; i++)
        zero_parent &= v[36 + i] == '0';
    return !zero_trace && !zero_parent;
}

/* splitmix64: trace ids need to be unique and unpredictable enough to
 * not collide, not secret; seeded once from the CSPRNG. */
static uint64_t
next_random(tr_server *srv)
{
    uint64_t z = (srv->trace_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/*
 * Request id and trace context.  Ids come from a per-process random prefix
 * and a counter: unique, cheap, and not guessable across restarts.  A
 * client's traceparent is kept only when it is one valid field; otherwise
 * treaty starts a new trace, and the client's copies are never forwarded
 * (proxy.c writes req->traceparent), so the log and the backend agree.
 */
static void
assign_ids(tr_request *req)
{
    tr_server *srv = req->client->srv;
    uint8_t raw[16];
    uint64_t seq = ++srv->request_seq;

    put_u64(raw, srv->id_prefix);
    put_u64(raw + 8, seq);
    hex(req->id, raw, 16);

    size_t n;
    const tr_header *tp = find_header(req, "traceparent", &n);
    if (n == 1 && traceparent_valid(tp->value, tp->value_len)) {
        memcpy(req->traceparent, tp->value, 55);
        req->traceparent[55] = '\0';
        return;
    }
    uint8_t trace[16], span[8];
    char trace_hex[33], span_hex[17];
    put_u64(trace, next_random(srv));
    put_u64(trace + 8, next_random(srv) | 1);  /* never all zero */
    put_u64(span, next_random(srv) | 1);
    hex(trace_hex, trace, 16);
    hex(span_hex, span, 8);
    snprintf(req->traceparent, sizeof(req->traceparent), "00-%s-%s-01",
             trace_hex, span_hex);
}

static bool
addr_in_cidr(const uint8_t addr[16], const tr_cidr *c)
{
    unsigned bits = c->prefix;
    for (unsigned i = 0; i < 16 && bits; i++) {
        unsigned take = bits >= 8 ? 8 : bits;
        uint8_t mask = (uint8_t)(0xff << (8 - take));
        if ((addr[i] & mask) != (c->addr[i] & mask))
            return false;
        bits -= take;
    }
    return true;
}

/*
 * The client address treaty believes: the socket peer, unless the peer
 * is a trusted proxy, in which case the last address it appended to
 * X-Forwarded-For.
 */
static void
resolve_client_addr(tr_request *req)
{
    tr_client *c = req->client;
    const tr_config *cfg = c->srv->cfg;

    req->peer_trusted = false;
    for (size_t i = 0; i < cfg->n_trusted_proxies; i++)
        if (addr_in_cidr(c->peer_bin, &cfg->trusted_proxies[i]))
            req->peer_trusted = true;
    snprintf(req->client_addr, sizeof(req->client_addr), "%s", c->peer);
    if (!req->peer_trusted)
        return;
    const tr_header *xff = find_header(req, "x-forwarded-for", NULL);
    if (!xff || xff->value_len == 0)
        return;
    const char *end = xff->value + xff->value_len;
    const char *p = end;
    while (p > xff->value && p[-1] != ',')
        p--;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    size_t n = (size_t)(end - p);
    if (n > 0 && n < sizeof(req->client_addr)) {
        bool ok = true;
        for (size_t i = 0; i < n; i++)
            if (!strchr("0123456789abcdefABCDEF.:", p[i]))
                ok = false;
        if (ok) {
            memcpy(req->client_addr, p, n);
            req->client_addr[n] = '\0';
        }
    }
}

/* ------------------------------------------------------------- stages */

/* Step 1 ends here: what the parser let through but treaty must not. */
static tr_step
stage_parse_checks(tr_request *req)
{
    size_t n;

    if (find_header(req, "upgrade", &n) || (req->method_bit == TR_M_CONNECT)) {
        req->keep_alive = false;
        tr_respond_problem(req, TR_P_UPGRADE_NOT_SUPPORTED,
                           "protocol upgrades (WebSocket, h2c) and CONNECT "
                           "are not supported by this gateway", NULL);
        return TR_STOP;
    }
    const tr_header *exp = find_header(req, "expect", &n);
    if (exp) {
        if (n == 1 && exp->value_len == 12 &&
            !strncasecmp(exp->value, "100-continue", 12)) {
            req->expect_continue = req->http11;
        } else {
            tr_respond_problem(req, TR_P_EXPECTATION_FAILED,
                               "only 'Expect: 100-continue' is supported",
                               NULL);
            return TR_STOP;
        }
    }
    req->had_content_length = find_header(req, "content-length", NULL) != 0;
    uint64_t cap = req->client->srv->cfg->limits.body_max;
    if (!req->chunked_in && req->content_length > cap) {
        char detail[128];
        snprintf(detail, sizeof(detail),
                 "the request body exceeds the gateway's limit of %llu "
                 "bytes", (unsigned long long)cap);
        req->keep_alive = false;
        tr_respond_problem(req, TR_P_BODY_TOO_LARGE, detail, NULL);
        return TR_STOP;
    }
    return TR_NEXT;
}

static tr_step
stage_route(tr_request *req)
{
    tr_server *srv = req->client->srv;
    size_t nhost;
    const tr_header *host = find_header(req, "host", &nhost);
    tr_target t;

    tr_target_status ts = tr_target_normalize(
        req->target, req->target_len, req->method_bit,
        host ? host->value : NULL, host ? host->value_len : 0, req->path,
        sizeof(req->path), &t);
    if (ts != TR_TARGET_OK) {
        req->reason = "invalid_target";
        tr_respond_problem(req, TR_P_INVALID_TARGET, tr_target_reason(ts),
                           NULL);
        return TR_STOP;
    }
    if (t.asterisk) {
        /* OPTIONS * asks about the server, not a resource: treaty answers
         * it itself rather than picking an upstream. */
        tr_respond_simple(req, 204, "text/plain",
                          "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, "
                          "OPTIONS\r\n", "", 0);
        return TR_STOP;
    }
    req->path_len = t.path_len;
    if (t.path != req->path) {
        /* Asterisk-form points at a constant. */
        memcpy(req->path, t.path, t.path_len);
    }
    req->query = t.query;
    req->query_len = t.query_len;

    uint32_t allow = 0;
    tr_route_result rr = tr_router_match(
        srv->router, req->method_bit, req->method, req->method_len,
        req->path, req->path_len, &req->match, &allow);
    if (rr == TR_ROUTE_NOT_FOUND) {
        req->reason = "no_route";
        tr_respond_problem(req, TR_P_NOT_FOUND,
                           "no configured route matches this path", NULL);
        return TR_STOP;
    }
    if (rr == TR_ROUTE_METHOD_NOT_ALLOWED) {
        char allow_hdr[512], hdr[600];
        tr_route_format_allow(srv->router, req->path, req->path_len,
                              allow_hdr, sizeof(allow_hdr));
        snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow_hdr);
        req->reason = "method_not_allowed";
        tr_respond_problem(req, TR_P_METHOD_NOT_ALLOWED,
                           "this route does not accept the method", hdr);
        return TR_STOP;
    }
    req->route = req->match.route;
    req->mutating = (req->route->mutating & req->method_bit) != 0;
    if (!req->chunked_in && req->content_length > req->route->body_cap) {
        char detail[160];
        snprintf(detail, sizeof(detail),
                 "the request body exceeds route '%s''s cap of %llu bytes",
                 req->route->name,
                 (unsigned long long)req->route->body_cap);
        req->keep_alive = false;
        tr_respond_problem(req, TR_P_BODY_TOO_LARGE, detail, NULL);
        return TR_STOP;
    }
    return TR_NEXT;
}

static tr_step
stage_forward(tr_request *req)
{
    tr_server *srv = req->client->srv;

    req->decision = "allow";
    req->stage = TR_STAGE_FORWARD;
    tr_pool_acquire(&srv->pools[req->route->upstream], req);
    return TR_AGAIN;
}

/* ------------------------------------------------------------- driver */

/* Time, ids and client address: every request has them, including one
 * refused while its head was being read. */
void
tr_request_stamp(tr_request *req)
{
    req->start_ns = tr_now_ns();
    req->start_ms_wall = tr_wall_ms();
    assign_ids(req);
    resolve_client_addr(req);
}

void
tr_pipeline_start(tr_request *req)
{
    tr_client *c = req->client;

    tr_request_stamp(req);
    c->srv->metrics.inflight++;
    req->counted_inflight = true;
    req->fair_key = req->client_addr;
    req->fair_key_len = strlen(req->client_addr);
    if (c->srv->draining)
        req->keep_alive = false;
    req->stage = TR_STAGE_IDENTIFY;
    if (stage_parse_checks(req) == TR_STOP)
        return;
    tr_pipeline_continue(req);
}

void
tr_pipeline_continue(tr_request *req)
{
    tr_step st = TR_NEXT;

    while (st == TR_NEXT && !req->finished) {
        switch (req->stage) {
        case TR_STAGE_IDENTIFY:
            st = tr_stage_identify(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_ROUTE;
            break;
        case TR_STAGE_ROUTE:
            st = stage_route(req);
            if (st == TR_NEXT)
                st = tr_stage_enforce_auth(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_AUTHORIZE;
            break;
        case TR_STAGE_AUTHORIZE:
            st = tr_stage_authorize(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_STATIC_CHECKS;
            break;
        case TR_STAGE_STATIC_CHECKS:
            st = tr_stage_static_checks(req);
            if (st == TR_NEXT)
                req->stage = req->buffer_body ? TR_STAGE_BUFFER_BODY
                                              : TR_STAGE_IDEM_LOOKUP;
            break;
        case TR_STAGE_BUFFER_BODY:
            /* The body is read in full before anything reaches the
             * backend; 100 Continue is sent now because the
             * fingerprint needs the body before the admission step. */
            if (req->expect_continue && !req->client->message_complete)
                tr_client_write(req->client,
                                "HTTP/1.1 100 Continue\r\n\r\n", 25, false);
            tr_client_resume_body(req->client);
            st = TR_AGAIN;
            break;
        case TR_STAGE_IDEM_LOOKUP:
            st = tr_stage_idem_lookup(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_ADMIT;
            break;
        case TR_STAGE_ADMIT:
            st = tr_stage_admit(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_CLAIM;
            break;
        case TR_STAGE_CLAIM:
            st = tr_stage_claim(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_PRECONDITIONS;
            break;
        case TR_STAGE_PRECONDITIONS:
            st = tr_stage_preconditions(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_RECORD_DECISION;
            break;
        case TR_STAGE_RECORD_DECISION:
            st = tr_stage_record_decision(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_MINT;
            break;
        case TR_STAGE_MINT:
            st = tr_stage_mint(req);
            if (st == TR_NEXT)
                req->stage = TR_STAGE_FORWARD;
            break;
        case TR_STAGE_FORWARD:
            st = stage_forward(req);
            break;
        case TR_STAGE_STREAMING:
        case TR_STAGE_DONE:
            return;
        }
    }
}

/* The whole body is in req->body (buffering stage). */
void
tr_pipeline_body_complete(tr_request *req)
{
    if (req->stage != TR_STAGE_BUFFER_BODY)
        return;
    uv_timer_stop(&req->client->timer);
    req->stage = TR_STAGE_IDEM_LOOKUP;
    tr_stage_body_buffered(req);
    tr_pipeline_continue(req);
}

void
tr_pipeline_client_gone(tr_request *req)
{
    if (req->finished)
        return;
    switch (req->stage) {
    case TR_STAGE_FORWARD:
    case TR_STAGE_STREAMING:
        tr_proxy_client_gone(req);
        return;
    default:
        /* An asynchronous stage (store lookup, admission queue) owns the
         * request: it checks client_gone when its callback runs, and a
         * queued request is never forwarded. */
        if (tr_stage_cancel(req))
            return;
        if (!req->status)
            req->status = 499;
        req->reason = "client_closed";
        tr_request_finish(req);
    }
}

/* --------------------------------------------------------------- hooks */

bool
tr_request_header_is_reserved(const tr_request *req, const tr_header *h)
{
    return tr_identity_header_is_reserved(req, h) ||
           tr_idem_header_is_reserved(req, h) ||
           tr_precond_header_is_reserved(req, h);
}

int
tr_request_append_upstream_headers(tr_request *req, const tr_upstream_cfg *u,
                                   tr_buf *b)
{
    if (tr_identity_append_upstream_headers(req, u, b) != 0)
        return -1;
    return tr_idem_upstream_headers(req, b);
}

int
tr_request_append_response_headers(tr_request *req, tr_buf *b)
{
    return tr_stage_append_response_headers(req, b);
}

void
tr_request_observe_response_body(tr_request *req, const char *p, size_t n)
{
    tr_stage_observe_response_body(req, p, n);
}

/* ------------------------------------------------------------- finish */

/*
 * The single exit of every request, whatever happened: releases what the
 * stages hold, writes the access log line and the metrics, then hands the
 * connection back to the client side.
 */
void
tr_request_finish(tr_request *req)
{
    tr_client *c = req->client;
    tr_server *srv = c->srv;

    if (req->finished)
        return;
    req->finished = true;
    req->stage = TR_STAGE_DONE;
    if (req->waiting_pool && req->pool)
        tr_pool_cancel(req->pool, req);
    if (req->up) {
        tr_upconn *up = req->up;
        req->up = NULL;
        up->req = NULL;
        if (up->state != TR_UP_CONNECTING)
            tr_pool_release(up, false);
    }
    if (req->counted_inflight) {
        srv->metrics.inflight--;
        req->counted_inflight = false;
    }

    uint64_t dur_ns = tr_now_ns() - req->start_ns;
    req->duration_ms = (double)dur_ns / 1e6;
    srv->metrics.requests++;
    tr_metrics_count(&srv->metrics,
                     req->route ? (ssize_t)req->match.route_index : -1,
                     req->status);
    tr_access_log_request(srv->access_log, req);
    tr_stage_record(req);
    /* Last: the identity and stage resources the log lines read. */
    tr_stage_release(req);

    if (req->client_gone || c->closing) {
        c->req_active = false;
        if (!c->closing)
            tr_client_close(c);  /* its close callback frees c */
        else
            tr_client_maybe_free(c);
        return;
    }
    tr_client_request_done(c);
}
