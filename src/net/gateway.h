/*
 * The daemon's shared types: the server, a client connection, the request
 * being processed on it, and upstream connections.
 *
 * Threads: everything here lives on the one event-loop thread.  Blocking
 * work (SQLite, the access log file, JWKS fetching) runs on dedicated
 * threads owned by src/store and the log writer; results come back through
 * uv_async handles.
 *
 * Ownership: a tr_client owns its buffers and the one tr_request it is
 * processing (HTTP/1.1 answers pipelined requests in order, so one at a
 * time is enough).  A client is freed only from its uv_close callback and
 * only once its request no longer needs it: a keyed request keeps running
 * upstream after its client left so its outcome can be stored.
 */
#ifndef TREATY_NET_GATEWAY_H
#define TREATY_NET_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "llhttp.h"

#include "core/config.h"
#include "core/http_head.h"
#include "core/problem.h"
#include "core/route.h"
#include "net/stage_audit_t.h"
#include "net/stage_budget_t.h"
#include "net/stage_idem_t.h"
#include "net/stage_precond_t.h"

#define TR_MAX_HEADERS_HARD 256
#define TR_READ_BUF (64 * 1024)

typedef struct tr_server tr_server;
typedef struct tr_client tr_client;
typedef struct tr_request tr_request;
typedef struct tr_upconn tr_upconn;
typedef struct tr_pool tr_pool;
struct tr_waiter_bucket;

/* Readiness: every registered check must pass for /readyz. */
typedef bool (*tr_ready_check)(void *ctx, const char **why);

/* Where a request is in the pipeline (SPEC.md "Request pipeline"). */
typedef enum {
    TR_STAGE_IDENTIFY,
    TR_STAGE_ROUTE,
    TR_STAGE_AUTHORIZE,
    TR_STAGE_STATIC_CHECKS,
    TR_STAGE_BUFFER_BODY,
    TR_STAGE_IDEM_LOOKUP,
    TR_STAGE_ADMIT,
    TR_STAGE_CLAIM,
    TR_STAGE_PRECONDITIONS,
    TR_STAGE_RECORD_DECISION,
    TR_STAGE_MINT,
    TR_STAGE_FORWARD,
    TR_STAGE_STREAMING,
    TR_STAGE_DONE
} tr_stage;

/* What a stage returns: go on, wait for a callback, or stop (a response
 * was produced). */
typedef enum { TR_NEXT, TR_AGAIN, TR_STOP } tr_step;

/* A growable byte buffer with a hard ceiling. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} tr_buf;

int tr_buf_reserve(tr_buf *b, size_t extra, size_t ceiling);
int tr_buf_append(tr_buf *b, const void *p, size_t n, size_t ceiling);
void tr_buf_free(tr_buf *b);

struct tr_request {
    tr_client *client;
    tr_stage stage;
    uint64_t start_ns;          /* monotonic, at headers complete */
    int64_t start_ms_wall;
    char id[33];                /* request id, hex */
    char traceparent[56];
    char client_addr[48];       /* as treaty believes it (trusted XFF) */
    bool counted_inflight;
    double duration_ms;

    /* Parsed head: spans point into client->head. */
    const char *method;
    size_t method_len;
    uint32_t method_bit;
    const char *target;
    size_t target_len;
    size_t n_headers;           /* in headers[], at the end */
    bool http11;
    bool keep_alive;            /* client asked for it and we agree */
    bool expect_continue;
    bool has_body;
    bool chunked_in;
    uint64_t content_length;    /* when !chunked_in */
    uint64_t body_received;

    /* Normalised target (path[] at the end). */
    size_t path_len;
    const char *query;          /* into target, after '?' */
    size_t query_len;

    tr_route_match match;
    const tr_route_cfg *route;
    bool mutating;

    /* Outcome so far. */
    int status;                 /* status sent to the client, 0 = none */
    const char *decision;       /* "allow", "deny", "error" */
    const char *reason;         /* short machine reason */
    tr_problem_kind problem;    /* when treaty answered itself */

    /* Filled by the contract stages, read by the access log and audit;
     * NULL / empty until a stage sets them. */
    struct tr_identity *identity;
    const char *principal;      /* sub */
    const char *principal_issuer;
    const char *actor;
    const char *caller_class;   /* "human", "agent", NULL anonymous */
    const char *tool;
    const char *limiter;        /* admitted, queued, refused:rate, ... */
    char idem_key_hash[17];
    bool replayed;
    const char *precondition;   /* passed, missing, failed, cas_ok ... */
    const char *policy_rule;
    int token_status;           /* tr_token_status */
    bool policy_shadow_deny;    /* shadow policy would have refused */
    bool is_agent;
    char stripped_headers[256]; /* client copies of identity headers */
    size_t stripped_len;

    /* Contract stages' own state (net/stage_*.c); budget at the end. */
    struct tr_idem_req *idem;
    struct tr_precond_req *precond;
    struct tr_audit_req *audit;
    uint64_t audit_seq;          /* the DECISION record, when written */
    bool audit_decision_written;
    bool audit_waiting;          /* for the DECISION to be durable */
    bool token_refused;          /* audited in aggregate, not per request */
    void *txn_job;               /* a Txn-Token being signed */
    void *txn_token;             /* the signed one, appended upstream */
    uint64_t bytes_out;
    bool head_sent;
    bool upstream_done;
    bool client_gone;
    bool finished;

    /* Body handling. */
    bool buffer_body;           /* keep the whole body (fingerprint) */

    /* Upstream. */
    tr_pool *pool;
    tr_upconn *up;
    bool waiting_pool;
    tr_request *pool_next;      /* pool waiter list */
    const char *fair_key;       /* principal key, else client address */
    size_t fair_key_len;
    bool upstream_not_reached;  /* certainly not processed upstream */
    bool upstream_failed;       /* reset/timeout after sending */
    bool peer_trusted;          /* socket peer is a trusted proxy */
    bool had_content_length;
    bool response_has_cl;
    uint64_t response_cl;
    bool keyed;                 /* carries an idempotency key: runs to
                                   completion even if the client leaves */
    size_t buffer_response;     /* >0: hold up to this many body bytes so
                                   fields can depend on the whole body */
    uint64_t upstream_start_ns;

    /* Not cleared between requests (tr_request_reset): large arrays that
     * are written before they are read, and memory kept for reuse.
     * Clearing 14 KiB per request was the largest single cost on the
     * proxy path. */
    tr_header headers[TR_MAX_HEADERS_HARD];
    char path[4096];
    tr_budget_req budget;       /* flags reset by tr_request_reset */
    tr_buf body;                /* when buffer_body; capacity kept */
};

/*
 * Known shortcoming: a client embeds its request, whose header array and
 * path buffer make the struct about 30 KiB; 1000 idle or slow
 * connections hold about 30 MiB.  Allocating the request only when a
 * head arrives would make idle connections cheap.
 */
struct tr_client {
    uv_tcp_t tcp;
    tr_server *srv;
    tr_client *prev, *next;     /* server's list of clients */
    char addr[48];              /* client address as treaty believes it */
    char peer[48];              /* socket peer */
    uint8_t peer_bin[16];       /* v4-mapped */
    uint32_t peer_hash;

    llhttp_t parser;
    tr_buf in;                  /* bytes read, not yet consumed */
    size_t in_off;              /* consumed prefix of in */
    tr_buf head;                /* the current header block, copied */
    bool head_complete;
    bool message_complete;
    bool reading;
    bool closing;
    bool closed;                /* uv_close callback ran */
    bool eof;
    unsigned pending_writes;    /* uv_write requests not yet done */
    size_t queued_bytes;
    unsigned requests;          /* served on this connection */

    uv_timer_t timer;
    unsigned handles_open;      /* tcp + timer; freed when 0 */

    tr_request req;
    bool req_active;
    const char *hdr_field;      /* llhttp span being assembled */
    size_t hdr_field_len;
    bool parse_error;
    bool body_flowing;          /* the pipeline consumes body bytes */
    bool counted;               /* in the per-address table */
    bool close_after_writes;
    bool shutting_down;
    uint32_t chunk_ext_bytes;
    bool chunk_ext_exceeded;
    bool head_deadline_armed;   /* header timeout runs from first byte */
};

/* Offsets of one response header field in tr_upconn.rbuf. */
typedef struct {
    uint32_t name_off, name_len, value_off, value_len;
} tr_rh_span;

typedef enum { TR_RH_NONE, TR_RH_FIELD, TR_RH_VALUE } tr_rh_last;

typedef enum {
    TR_UP_IDLE,
    TR_UP_CONNECTING,
    TR_UP_BUSY,
    TR_UP_CLOSING
} tr_upconn_state;

struct tr_upconn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_timer_t timer;
    tr_pool *pool;
    tr_upconn *next;            /* idle list */
    tr_upconn_state state;
    unsigned handles_open;
    llhttp_t parser;
    tr_request *req;
    tr_buf rbuf;                /* read buffer */
    bool headers_done;
    bool message_done;
    bool keep_alive;
    bool reading;
    bool request_sent;          /* the whole request went out */
    bool any_byte_sent;
    unsigned pending_writes;
    unsigned requests;
    /* Response head being assembled. */
    tr_buf rhead;
    tr_header rh[TR_MAX_HEADERS_HARD];   /* valid at headers complete */
    tr_rh_span rh_span[TR_MAX_HEADERS_HARD];
    size_t n_rh;
    uint32_t rh_field_off, rh_field_len;
    tr_rh_last rh_last;
    tr_buf out;                 /* bytes for the client, flushed per read */
    tr_buf whead;               /* request head towards the upstream */
    bool chunked_out;           /* re-framed to the client as chunked */
    bool close_delimited;       /* upstream body ends at EOF */
    bool head_only;             /* HEAD, 204, 304: no body */
    bool client_paused;         /* reading stopped: client is slow */
    bool buffering;             /* response held until complete */
    tr_buf rbody;               /* the held response body */
    bool body_to_client;
};

struct tr_pool {
    tr_server *srv;
    const tr_upstream_cfg *cfg;
    size_t index;
    struct sockaddr_storage addr;
    tr_upconn *idle;
    unsigned total;             /* open connections */
    unsigned busy;
    struct tr_waiter_bucket *ring; /* per-principal FIFOs, served in turn */
    unsigned n_waiters;
};

typedef struct {
    uint64_t requests;
    uint64_t *route_status;     /* [(n_routes + 1) * 600] */
    uint64_t connections_open;
    uint64_t connections_refused;
    uint64_t inflight;
    uint64_t upstream_latency_buckets[16];
    uint64_t upstream_latency_count;
    double upstream_latency_sum;
    uint64_t parse_errors;
} tr_metrics;

struct tr_server {
    uv_loop_t *loop;
    struct tr_services *svc;    /* contract components (services.h) */
    const tr_config *cfg;
    tr_router *router;
    uv_tcp_t listener;
    uv_tcp_t admin;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_timer;
    bool draining;
    bool dev;
    tr_client *clients;
    unsigned n_clients;
    tr_pool *pools;
    size_t n_pools;
    tr_metrics metrics;
    struct tr_access_log *access_log;
    uint64_t request_seq;
    uint64_t id_prefix;
    uint64_t trace_state;       /* splitmix64 state for trace ids */
    llhttp_settings_t req_settings;
    llhttp_settings_t resp_settings;
    /* Per-client-address connection counts: a small open table. */
    struct { uint32_t hash; uint8_t addr[16]; uint32_t count; } *addr_counts;
    size_t addr_counts_cap;
    struct { tr_ready_check fn; void *ctx; } ready[8];
    size_t n_ready;
    int exit_code;
    unsigned drain_ticks_left;
};

/* server.c */
int tr_server_init(tr_server *srv, uv_loop_t *loop, const tr_config *cfg,
                   bool dev);
int tr_server_listen(tr_server *srv);
void tr_server_close(tr_server *srv);
uint64_t tr_now_ns(void);
int tr_listen_on(tr_server *srv, uv_tcp_t *tcp, const char *host,
                 uint16_t port, uv_connection_cb cb);
int64_t tr_wall_ms(void);

/* Time, ids, trace context and client address (pipeline.c). */
void tr_request_stamp(tr_request *req);

/* Clears a request for the next one on the connection (client_conn.c). */
void tr_request_reset(tr_request *req);

/* client_conn.c */
void tr_client_accept(tr_server *srv, uv_stream_t *listener);
void tr_client_resume_body(tr_client *c);
void tr_client_request_done(tr_client *c);
int tr_client_write(tr_client *c, const char *p, size_t n, bool copy);
void tr_client_close(tr_client *c);
void tr_client_close_graceful(tr_client *c);
void tr_client_init_parser_settings(llhttp_settings_t *s);
void tr_client_maybe_free(tr_client *c);

/* pipeline.c */
void tr_pipeline_start(tr_request *req);
void tr_pipeline_continue(tr_request *req);
void tr_pipeline_body_complete(tr_request *req);
void tr_request_finish(tr_request *req);

/* Pipeline hooks the proxy calls (pipeline.c): what to strip, what to add,
 * what to observe.  Each later contract feature extends these. */
bool tr_request_header_is_reserved(const tr_request *req,
                                   const tr_header *h);
int tr_request_append_upstream_headers(tr_request *req,
                                       const tr_upstream_cfg *u, tr_buf *b);
int tr_request_append_response_headers(tr_request *req, tr_buf *b);
void tr_request_observe_response_body(tr_request *req, const char *p,
                                      size_t n);
void tr_stage_observe_response_head(tr_request *req, int status,
                                    const tr_header *h, size_t n);
/* A backend field a stage replaces with its own (e.g. a weak ETag). */
bool tr_stage_response_header_replaced(const tr_request *req,
                                       const tr_header *h);
void tr_pipeline_client_gone(tr_request *req);

/* respond.c */
void tr_respond_problem(tr_request *req, tr_problem_kind kind,
                        const char *detail, const char *extra_headers);
struct json_t;
void tr_respond_problem_ext(tr_request *req, tr_problem_kind kind,
                            const char *detail, const char *extra_headers,
                            struct json_t *ext);
void tr_respond_simple(tr_request *req, int status, const char *ctype,
                       const char *extra_headers, const char *body,
                       size_t body_len);
const char *tr_status_reason(int status);

/* upstream_pool.c */
int tr_pools_init(tr_server *srv);
void tr_pools_close(tr_server *srv);
void tr_pool_acquire(tr_pool *pool, tr_request *req);
void tr_pool_cancel(tr_pool *pool, tr_request *req);
void tr_pool_release(tr_upconn *up, bool reusable);

/* proxy.c */
void tr_proxy_start(tr_request *req, tr_upconn *up);
void tr_proxy_fail(tr_request *req, tr_problem_kind kind, const char *why);
int tr_proxy_body_chunk(tr_request *req, const char *p, size_t n);
void tr_proxy_body_end(tr_request *req);
void tr_proxy_client_writable(tr_request *req);
void tr_proxy_client_gone(tr_request *req);
int tr_proxy_append_forwarding(const tr_request *req, tr_buf *b);

/* admin.c; extra handlers serve further paths (the Txn-Token JWKS). */
int tr_admin_listen(tr_server *srv);
typedef bool (*tr_admin_handler)(void *ctx, const char *path, int *status,
                                 const char **ctype, tr_buf *body);
void tr_admin_add_handler(tr_admin_handler fn, void *ctx);

/* metrics.c */
void tr_metrics_init(tr_metrics *m, size_t n_routes);
void tr_metrics_free(tr_metrics *m);
void tr_metrics_count(tr_metrics *m, ssize_t route, int status);
void tr_metrics_upstream_latency(tr_metrics *m, double seconds);
int tr_metrics_render(const tr_server *srv, tr_buf *out);
typedef void (*tr_metrics_renderer)(void *ctx, tr_buf *out);
void tr_metrics_add_renderer(tr_metrics_renderer fn, void *ctx);

void tr_server_add_ready_check(tr_server *srv, tr_ready_check fn,
                               void *ctx);

#endif
