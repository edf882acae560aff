/*
 * Steps 5 and 9 of the pipeline: write preconditions (SPEC.md §5,
 * docs/conflicts.md).  The decisions are src/core/precondition.c; this
 * file does the I/O around them:
 *
 *   step 5   428 for a guarded write without a condition, 400 for a
 *            condition that does not parse (tr_precond_static_checks);
 *   step 9   on `etags: synthesize` routes, a conditional write takes the
 *            resource's lock, re-reads the resource as the same caller
 *            (upstream_fetch.c), compares and forwards or answers 412
 *            (tr_precond_stage); a GET gets its response buffered up to
 *            etag_body_cap so a strong ETag can replace the backend's;
 *   finish   the lock is released exactly once (tr_precond_release), or
 *            as soon as the backend answered the write it guarded.
 *
 * Locks are src/core/resource_lock.c, one table on the loop thread: a
 * holder and a FIFO of waiters per resource key (tr_route_resource_key).
 * A waiter gives up after the route's lock_timeout_ms (503 resource-busy)
 * on one timer armed for the earliest deadline.  Granting a lock never
 * runs the next request's code inside the releasing request's finish:
 * the grant is handed over on a zero-delay timer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <openssl/rand.h>

#include "core/etag.h"
#include "core/precondition.h"
#include "core/resource_lock.h"
#include "net/log.h"
#include "net/stages.h"
#include "net/upstream_fetch.h"

/* Outcomes, as the access log, the audit trail and the metrics see them. */
enum {
    OUT_NOT_REQUIRED,          /* guarded route, no condition needed */
    OUT_PASSED,                /* conditional; the backend evaluated it */
    OUT_FAILED,                /* the backend answered 412 */
    OUT_MISSING,               /* 428 */
    OUT_INVALID,               /* 400 */
    OUT_CAS_OK,                /* treaty compared and forwarded */
    OUT_CAS_FAILED,            /* treaty answered 412 */
    OUT_LOCK_TIMEOUT,          /* 503 resource-busy */
    OUT_REREAD_FAILED,         /* 502/504: the re-read did not work */
    OUT_UNVERIFIABLE,          /* 412: the caller cannot read it */
    OUT__COUNT
};

static const char *const out_names[OUT__COUNT] = {
    "not_required", "passed", "failed", "missing", "invalid", "cas_ok",
    "cas_failed", "lock_timeout", "reread_failed", "unverifiable",
};

typedef enum {
    PS_IDLE,                   /* CAS decided, lock not asked for yet */
    PS_WAIT_LOCK,              /* in the lock's FIFO */
    PS_GRANTED,                /* holds the lock; re-read not started */
    PS_REREAD,                 /* holds the lock; re-read in flight */
    PS_READY,                  /* holds the lock; forwarding */
    PS_DONE                    /* answered or lock let go */
} pstate;

typedef struct tr_precond_req tr_precond_req;

struct tr_precond_req {
    tr_request *req;
    bool synth_read;           /* a GET to tag */
    tr_etag_list im, inm;      /* spans into the client's head block */

    pstate state;
    tr_rlock_waiter lw;        /* its place at the resource's lock */
    tr_precond_req *gnext;     /* the grant list */
    tr_fetch *fetch;
    uint64_t reread_start_ns;

    int resp_status;           /* synth_read: the backend's status */
    char coding[128];          /* its Content-Encoding */
    size_t coding_len;
    bool has_coding;
};

/* Locks exist only while held, so this bounds chains, not locks. */
#define LOCK_BUCKETS 4096

/* Upper bounds of the lock-wait histogram, in seconds. */
static const double wait_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1,
                                      0.25,  0.5,   1,    2.5,  5 };
#define N_WAIT (sizeof(wait_bounds) / sizeof(wait_bounds[0]))

static struct {
    bool ready;
    uv_timer_t deadline_timer; /* the earliest waiter deadline */
    uv_timer_t grant_timer;    /* hands granted locks over */
    tr_rlock_table *locks;
    tr_precond_req *grant_head, *grant_tail;

    uint64_t outcomes[OUT__COUNT];
    uint64_t wait_buckets[N_WAIT + 1];
    uint64_t wait_count;
    double wait_sum;
    uint64_t rereads;
    double reread_sum;
    uint64_t etags_synthesized;
    uint64_t etags_over_cap;
} g;

static void deadline_fire(uv_timer_t *t);
static void grant_fire(uv_timer_t *t);
static void start_reread(tr_precond_req *p);

/* ------------------------------------------------------------ metrics */

static void
buf_printf(tr_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(tr_buf *out, const char *fmt, ...)
{
    char line[1024];           /* every call below stays well under */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        tr_buf_append(out, line,
                      (size_t)n < sizeof(line) ? (size_t)n
                                               : sizeof(line) - 1,
                      64 * 1024 * 1024);
}

static void
render_metrics(void *ctx, tr_buf *out)
{
    buf_printf(out, "# HELP treaty_precondition_outcomes_total Write "
                    "preconditions by outcome.\n"
                    "# TYPE treaty_precondition_outcomes_total counter\n");
    for (size_t i = 0; i < OUT__COUNT; i++)
        buf_printf(out,
                   "treaty_precondition_outcomes_total{outcome=\"%s\"} "
                   "%llu\n",
                   out_names[i], (unsigned long long)g.outcomes[i]);
    buf_printf(out, "# HELP treaty_precondition_lock_wait_seconds Time a "
                    "guarded write waited for its resource lock.\n"
                    "# TYPE treaty_precondition_lock_wait_seconds "
                    "histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < N_WAIT; i++) {
        cum += g.wait_buckets[i];
        buf_printf(out,
                   "treaty_precondition_lock_wait_seconds_bucket"
                   "{le=\"%g\"} %llu\n",
                   wait_bounds[i], (unsigned long long)cum);
    }
    cum += g.wait_buckets[N_WAIT];
    buf_printf(out,
               "treaty_precondition_lock_wait_seconds_bucket{le=\"+Inf\"} "
               "%llu\ntreaty_precondition_lock_wait_seconds_sum %.6f\n"
               "treaty_precondition_lock_wait_seconds_count %llu\n",
               (unsigned long long)cum, g.wait_sum,
               (unsigned long long)g.wait_count);
    buf_printf(out, "# TYPE treaty_precondition_locks_held gauge\n"
                    "treaty_precondition_locks_held %llu\n"
                    "# TYPE treaty_precondition_lock_waiters gauge\n"
                    "treaty_precondition_lock_waiters %llu\n",
               (unsigned long long)(g.locks ? tr_rlock_held(g.locks) : 0),
               (unsigned long long)(g.locks ? tr_rlock_waiting(g.locks)
                                            : 0));
    buf_printf(out, "# HELP treaty_precondition_rereads_total Backend "
                    "re-reads made for compare-and-swap.\n"
                    "# TYPE treaty_precondition_rereads_total counter\n"
                    "treaty_precondition_rereads_total %llu\n"
                    "# HELP treaty_precondition_reread_seconds_total Time "
                    "spent in those re-reads.\n"
                    "# TYPE treaty_precondition_reread_seconds_total "
                    "counter\n"
                    "treaty_precondition_reread_seconds_total %.6f\n",
               (unsigned long long)g.rereads, g.reread_sum);
    buf_printf(out, "# TYPE treaty_etags_synthesized_total counter\n"
                    "treaty_etags_synthesized_total %llu\n"
                    "# HELP treaty_etags_over_cap_total Responses left "
                    "without an ETag: body over etag_body_cap.\n"
                    "# TYPE treaty_etags_over_cap_total counter\n"
                    "treaty_etags_over_cap_total %llu\n",
               (unsigned long long)g.etags_synthesized,
               (unsigned long long)g.etags_over_cap);
}

/* Timers and the metrics family, on first use: stages have no start-up
 * hook, so the family shows up with the first routed request. */
static int
init_once(tr_request *req)
{
    uint64_t seed = 0;

    if (g.ready)
        return 0;
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        seed = tr_now_ns();
    g.locks = tr_rlock_table_new(LOCK_BUCKETS, seed);
    if (!g.locks)
        return -1;
    uv_loop_t *loop = req->client->srv->loop;
    uv_timer_init(loop, &g.deadline_timer);
    uv_timer_init(loop, &g.grant_timer);
    /* Neither keeps the loop alive on its own. */
    uv_unref((uv_handle_t *)&g.deadline_timer);
    uv_unref((uv_handle_t *)&g.grant_timer);
    tr_metrics_add_renderer(render_metrics, NULL);
    g.ready = true;
    return 0;
}

static void
outcome(tr_request *req, int o)
{
    g.outcomes[o]++;
    req->precondition = out_names[o];
}

/* ------------------------------------------------------------- helpers */

static void
collect(const tr_request *req, const char *name, tr_etag_list *l)
{
    tr_etag_list_init(l);
    for (size_t i = 0; i < req->n_headers; i++)
        if (tr_head_name_is(&req->headers[i], name))
            tr_etag_list_add(l, req->headers[i].value,
                             req->headers[i].value_len);
}

static void
add_wait_sample(double s)
{
    size_t i = 0;
    while (i < N_WAIT && s > wait_bounds[i])
        i++;
    g.wait_buckets[i]++;
    g.wait_count++;
    g.wait_sum += s;
}

/* -------------------------------------------------------------- locks */

static void
arm_deadline_timer(void)
{
    uint64_t first = tr_rlock_next_deadline(g.locks);
    if (first == UINT64_MAX) {
        uv_timer_stop(&g.deadline_timer);
        return;
    }
    uint64_t now = tr_now_ns();
    uint64_t ms = first > now ? (first - now + 999999) / 1000000 : 0;
    uv_timer_start(&g.deadline_timer, deadline_fire, ms, 0);
}

static void
grant_unlink(tr_precond_req *p)
{
    tr_precond_req *prev = NULL;
    for (tr_precond_req *w = g.grant_head; w; prev = w, w = w->gnext) {
        if (w != p)
            continue;
        if (prev)
            prev->gnext = w->gnext;
        else
            g.grant_head = w->gnext;
        if (g.grant_tail == w)
            g.grant_tail = prev;
        break;
    }
    p->gnext = NULL;
}

/*
 * Lets go of p's place at its lock, holding or waiting.  A waiter that
 * now holds the lock starts its re-read from the grant timer, never from
 * inside this (often the releasing request's finish).
 */
static void
lock_release(tr_precond_req *p)
{
    tr_rlock_waiter *nw = tr_rlock_release(g.locks, &p->lw);
    if (nw) {
        tr_precond_req *next = nw->owner;
        next->state = PS_GRANTED;
        add_wait_sample((double)(tr_now_ns() - nw->since_ns) / 1e9);
        if (g.grant_tail)
            g.grant_tail->gnext = next;
        else
            g.grant_head = next;
        g.grant_tail = next;
        uv_timer_start(&g.grant_timer, grant_fire, 0, 0);
    }
    arm_deadline_timer();
}

static void
lock_timed_out(tr_precond_req *p)
{
    tr_request *req = p->req;
    char detail[160];

    p->state = PS_DONE;
    add_wait_sample((double)(tr_now_ns() - p->lw.since_ns) / 1e9);
    outcome(req, OUT_LOCK_TIMEOUT);
    snprintf(detail, sizeof(detail),
             "waited %u ms for another write to this resource to finish; "
             "retry shortly", req->route->lock_timeout_ms);
    req->reason = "resource_busy";
    tr_respond_problem(req, TR_P_RESOURCE_LOCK_TIMEOUT, detail,
                       "Retry-After: 1\r\n");
}

static void
deadline_fire(uv_timer_t *t)
{
    uint64_t now = tr_now_ns();
    tr_rlock_waiter *w;

    while ((w = tr_rlock_expire(g.locks, now)) != NULL)
        lock_timed_out(w->owner);
    arm_deadline_timer();
}

static void
grant_fire(uv_timer_t *t)
{
    while (g.grant_head) {
        tr_precond_req *p = g.grant_head;
        g.grant_head = p->gnext;
        if (!g.grant_head)
            g.grant_tail = NULL;
        p->gnext = NULL;
        start_reread(p);
    }
}

/* ------------------------------------------------------------- re-read */

static bool
reread_forwardable(const tr_request *req, const tr_header *h)
{
    static const char *const dropped[] = {
        "host", "expect", "x-forwarded-for", "x-forwarded-proto",
        "x-forwarded-host", "forwarded", "via", "txn-token", "range",
        "traceparent",
        "idempotency-key", "transfer-encoding", "te", "trailer",
    };
    if (tr_head_is_hop_by_hop(h->name, h->name_len))
        return false;
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (tr_head_name_is(h, dropped[i]))
            return false;
    /* The write's body fields and conditions are not the read's. */
    if ((h->name_len > 8 && !strncasecmp(h->name, "content-", 8)) ||
        (h->name_len > 3 && !strncasecmp(h->name, "if-", 3)))
        return false;
    if (tr_head_named_in_connection(req->headers, req->n_headers, h->name,
                                    h->name_len))
        return false;
    return !tr_request_header_is_reserved(req, h);
}

#define PUT(b, s, n)                                                       \
    do {                                                                   \
        if (tr_buf_append((b), (s), (n), SIZE_MAX) != 0)                   \
            return -1;                                                     \
    } while (0)
#define PUTS(b, s) PUT(b, s, strlen(s))

/*
 * GET of the same target, as the same caller: the client's own fields
 * minus the write's (body, conditions, range) and minus what the gateway
 * reserves, then the forwarding metadata and the identity fields the
 * proxy would add.  Accept and Accept-Encoding come along so the backend
 * selects the representation the caller reads.
 */
static int
build_reread(tr_request *req, const tr_upstream_cfg *u, tr_buf *b)
{
    char line[320];

    PUTS(b, "GET ");
    PUTS(b, u->base_path);
    PUT(b, req->path, req->path_len);
    if (req->query) {
        PUTS(b, "?");
        PUT(b, req->query, req->query_len);
    }
    int n = snprintf(line, sizeof(line), " HTTP/1.1\r\nHost: %s:%u\r\n",
                     u->host, u->port);
    PUT(b, line, (size_t)n);
    for (size_t i = 0; i < req->n_headers; i++) {
        const tr_header *h = &req->headers[i];
        if (!reread_forwardable(req, h))
            continue;
        PUT(b, h->name, h->name_len);
        PUTS(b, ": ");
        PUT(b, h->value, h->value_len);
        PUTS(b, "\r\n");
    }
    if (tr_proxy_append_forwarding(req, b) != 0)
        return -1;
    if (tr_identity_append_upstream_headers(req, u, b) != 0)
        return -1;
    PUTS(b, "Connection: close\r\n\r\n");
    return 0;
}

static void
reread_failed(tr_precond_req *p, tr_problem_kind kind, const char *detail)
{
    tr_request *req = p->req;
    p->state = PS_DONE;
    outcome(req, OUT_REREAD_FAILED);
    req->reason = "precondition_reread_failed";
    tr_respond_problem(req, kind, detail, NULL);
}

static void
answer_412(tr_precond_req *p, tr_current_state st, const char *etag)
{
    tr_request *req = p->req;
    char hdr[96] = "";
    const char *detail;

    if (st == TR_CUR_ABSENT)
        detail = "the resource does not exist (any more); If-Match "
                 "cannot hold";
    else if (p->inm.present && p->inm.any)
        detail = "the resource already exists; If-None-Match: * allows "
                 "only a create";
    else if (!p->im.present)
        detail = "the resource's current ETag is one If-None-Match "
                 "excludes";
    else if (st == TR_CUR_PRESENT_NO_ETAG)
        detail = "the resource is larger than this route's etag_body_cap, "
                 "so it has no ETag to compare; only If-Match: * works";
    else
        detail = "the resource changed since you read it: GET it again, "
                 "re-apply your change and send the new ETag (also in "
                 "this response's ETag field) in If-Match";
    json_t *ext = json_object();
    if (st == TR_CUR_PRESENT) {
        snprintf(hdr, sizeof(hdr), "ETag: %s\r\n", etag);
        json_object_set_new(ext, "current_etag", json_string(etag));
    }
    json_object_set_new(ext, "resource_exists",
                        json_boolean(st != TR_CUR_ABSENT));
    p->state = PS_DONE;
    outcome(req, OUT_CAS_FAILED);
    req->reason = "precondition_failed";
    tr_respond_problem_ext(req, TR_P_PRECONDITION_FAILED, detail,
                           hdr[0] ? hdr : NULL, ext);
    json_decref(ext);
}

static void
reread_done(void *ctx, const tr_fetch_result *r)
{
    tr_precond_req *p = ctx;
    tr_request *req = p->req;
    const tr_route_cfg *route = req->route;
    char detail[160];

    p->fetch = NULL;
    g.rereads++;
    g.reread_sum += (double)(tr_now_ns() - p->reread_start_ns) / 1e9;
    if (r->error == TR_FETCH_TIMEOUT) {
        reread_failed(p, TR_P_UPSTREAM_TIMEOUT, "the backend did not answer "
                      "the re-read that checks your precondition");
        return;
    }
    if (r->error != TR_FETCH_OK && r->error != TR_FETCH_TOO_LARGE) {
        snprintf(detail, sizeof(detail), "the re-read that checks your "
                 "precondition failed (%s)", tr_fetch_error_name(r->error));
        reread_failed(p, TR_P_UPSTREAM_UNAVAILABLE, detail);
        return;
    }

    tr_current_state st = TR_CUR_PRESENT;
    char etag[TR_ETAG_SYNTH_LEN + 1] = "";
    tr_etag cur = { 0 };
    switch (tr_precondition_reread_class(r->status)) {
    case TR_REREAD_ERROR:
        snprintf(detail, sizeof(detail), "the backend answered %d to the "
                 "re-read that checks your precondition", r->status);
        reread_failed(p, TR_P_UPSTREAM_UNAVAILABLE, detail);
        return;
    case TR_REREAD_REFUSED:
        p->state = PS_DONE;
        outcome(req, OUT_UNVERIFIABLE);
        snprintf(detail, sizeof(detail), "the backend answered %d when "
                 "treaty read the resource as you, so your precondition "
                 "cannot be checked; GET it to see why", r->status);
        req->reason = "precondition_unverifiable";
        tr_respond_problem(req, TR_P_PRECONDITION_FAILED, detail, NULL);
        return;
    case TR_REREAD_ABSENT:
        st = TR_CUR_ABSENT;
        break;
    case TR_REREAD_PRESENT:
        if (r->error == TR_FETCH_TOO_LARGE) {
            st = TR_CUR_PRESENT_NO_ETAG;
            break;
        }
        tr_etag_synth_opts o = {
            .canonical_json = route->etag_ignore_fields.n > 0,
            .ignore_fields = route->etag_ignore_fields.items,
            .n_ignore = route->etag_ignore_fields.n,
            .content_coding = r->content_encoding,
            .content_coding_len = r->content_encoding_len,
        };
        if (tr_etag_synthesize(r->body, r->body_len, &o, etag) < 0 ||
            !tr_etag_parse(etag, strlen(etag), &cur)) {
            reread_failed(p, TR_P_INTERNAL, "could not compute the ETag");
            return;
        }
        break;
    }
    if (tr_precondition_cas(&p->im, &p->inm, st, &cur) == TR_CAS_FAILED) {
        answer_412(p, st, etag);
        return;
    }
    p->state = PS_READY;
    outcome(req, OUT_CAS_OK);
    tr_pipeline_continue(req);
}

static void
start_reread(tr_precond_req *p)
{
    tr_request *req = p->req;
    tr_server *srv = req->client->srv;
    const tr_route_cfg *route = req->route;
    tr_pool *pool = &srv->pools[route->upstream];
    const tr_upstream_cfg *u = pool->cfg;
    tr_buf b = { 0 };

    p->state = PS_REREAD;
    p->reread_start_ns = tr_now_ns();
    if (build_reread(req, u, &b) != 0) {
        tr_buf_free(&b);
        reread_failed(p, TR_P_INTERNAL, "could not build the re-read");
        return;
    }
    tr_fetch_opts o = {
        .loop = srv->loop,
        .addr = (const struct sockaddr *)&pool->addr,
        .request = b.data,
        .request_len = b.len,
        /* One byte over the cap tells "too large" from "exactly the
         * cap", as the proxy's buffered response does. */
        .body_cap = route->etag_body_cap,
        .connect_timeout_ms = u->connect_timeout_ms,
        .response_timeout_ms = u->response_timeout_ms,
    };
    p->fetch = tr_fetch_start(&o, reread_done, p);
    tr_buf_free(&b);
    if (!p->fetch)
        reread_failed(p, TR_P_UPSTREAM_UNAVAILABLE,
                      "could not open a connection for the re-read");
}

/* ------------------------------------------------------------- stages */

static void
respond_missing(tr_request *req, bool create)
{
    char detail[4600];
    json_t *ext = json_object();

    if (create)
        snprintf(detail, sizeof(detail),
                 "this route requires creates to be conditional: repeat "
                 "the request with If-None-Match: * so it cannot replace "
                 "an existing resource");
    else
        snprintf(detail, sizeof(detail),
                 "this route requires a conditional write: GET %.*s to "
                 "read the current representation and its ETag, then "
                 "repeat this request with If-Match: <that ETag> (or "
                 "If-None-Match: * to create a resource that must not "
                 "exist yet)",
                 (int)req->path_len, req->path);
    json_object_set_new(ext, "required_header",
                        json_string(create ? "If-None-Match"
                                           : "If-Match"));
    outcome(req, OUT_MISSING);
    req->reason = "precondition_required";
    tr_respond_problem_ext(req, TR_P_PRECONDITION_REQUIRED, detail, NULL,
                           ext);
    json_decref(ext);
}

tr_step
tr_precond_static_checks(tr_request *req)
{
    tr_etag_list im, inm;
    const tr_route_cfg *r = req->route;

    if (!r)
        return TR_NEXT;
    if (init_once(req) != 0) {
        tr_respond_problem(req, TR_P_INTERNAL, "out of memory", NULL);
        return TR_STOP;
    }
    if (r->preconditions == TR_PRECOND_OFF &&
        r->etags == TR_ETAGS_PASSTHROUGH)
        return TR_NEXT;        /* the plain proxy path pays nothing more */
    tr_etag_list_init(&im);
    tr_etag_list_init(&inm);
    if (req->mutating) {       /* reads never carry a condition treaty
                                  evaluates */
        collect(req, "if-match", &im);
        collect(req, "if-none-match", &inm);
    }
    tr_pre_request q = {
        .method_bit = req->method_bit,
        .mutating = req->mutating,
        .agent = req->is_agent,
        .if_match = &im,
        .if_none_match = &inm,
    };
    tr_pre_action a = tr_precondition_decide(r, &q);
    switch (a) {
    case TR_PRE_NONE:
        return TR_NEXT;
    case TR_PRE_EXEMPT:
        outcome(req, OUT_NOT_REQUIRED);
        return TR_NEXT;
    case TR_PRE_PASS:
        outcome(req, OUT_PASSED);
        return TR_NEXT;
    case TR_PRE_MISSING:
    case TR_PRE_MISSING_CREATE:
        respond_missing(req, a == TR_PRE_MISSING_CREATE);
        return TR_STOP;
    case TR_PRE_INVALID:
        outcome(req, OUT_INVALID);
        req->reason = "precondition_invalid";
        tr_respond_problem(req, TR_P_MALFORMED_REQUEST,
                           "If-Match / If-None-Match must be \"*\" or a "
                           "list of at most 32 quoted entity-tags (RFC "
                           "9110, section 13.1.1)", NULL);
        return TR_STOP;
    case TR_PRE_CAS:
    case TR_PRE_SYNTH_READ:
        break;
    }
    tr_precond_req *p = calloc(1, sizeof(*p));
    if (!p) {
        tr_respond_problem(req, TR_P_INTERNAL, "out of memory", NULL);
        return TR_STOP;
    }
    p->req = req;
    p->synth_read = a == TR_PRE_SYNTH_READ;
    p->im = im;                /* spans into client->head: they stay */
    p->inm = inm;
    req->precond = p;
    return TR_NEXT;
}

tr_step
tr_precond_stage(tr_request *req)
{
    tr_precond_req *p = req->precond;
    char small[256];
    char *key = small;

    if (!p)
        return TR_NEXT;
    if (p->synth_read) {
        /* Known gap: a GET whose If-None-Match matches is not answered
         * 304 here; it gets the 200 with the same tag. */
        req->buffer_response = req->route->etag_body_cap;
        return TR_NEXT;
    }
    if (p->state == PS_READY)
        return TR_NEXT;        /* back from the re-read */
    if (p->state != PS_IDLE)
        return TR_AGAIN;       /* a callback will continue */

    size_t len = tr_route_resource_key(&req->match, small, sizeof(small));
    if (len >= sizeof(small)) {
        key = malloc(len + 1);
        if (!key) {
            tr_respond_problem(req, TR_P_INTERNAL, "out of memory", NULL);
            return TR_STOP;
        }
        tr_route_resource_key(&req->match, key, len + 1);
    }
    p->lw.owner = p;
    tr_rlock_result got = tr_rlock_acquire(
        g.locks, &p->lw, key, len, tr_now_ns(),
        (uint64_t)req->route->lock_timeout_ms * 1000000);
    if (key != small)
        free(key);
    switch (got) {
    case TR_RLOCK_NOMEM:
        tr_respond_problem(req, TR_P_INTERNAL, "out of memory", NULL);
        return TR_STOP;
    case TR_RLOCK_QUEUED:
        p->state = PS_WAIT_LOCK;
        arm_deadline_timer();
        break;
    case TR_RLOCK_GRANTED:
        add_wait_sample(0);
        start_reread(p);
        break;
    }
    /* Either way a callback continues or has answered already. */
    return TR_AGAIN;
}

/* ------------------------------------------------------ request hooks */

/* Known gap: pipeline.c's tr_request_header_is_reserved() does not call
 * this yet, so until it does the fields still reach the backend. */
bool
tr_precond_header_is_reserved(const tr_request *req, const tr_header *h)
{
    /* Clients on a synthesize route hold treaty's tags, which the backend
     * never issued: a backend that evaluates If-Match (nginx does, even
     * without an ETag of its own) would refuse every write, and
     * If-None-Match could never match.  treaty has decided them. */
    return req->route && req->route->etags == TR_ETAGS_SYNTHESIZE &&
           (tr_head_name_is(h, "if-match") ||
            tr_head_name_is(h, "if-none-match"));
}

/* ------------------------------------------------------ response hooks */

bool
tr_precond_response_header_replaced(const tr_request *req,
                                    const tr_header *h)
{
    /* A synthesize route's backend tags are the ones nobody may use:
     * weak, or not enforced on writes. */
    return req->route && req->route->etags == TR_ETAGS_SYNTHESIZE &&
           tr_head_name_is(h, "etag");
}

void
tr_precond_observe_head(tr_request *req, int status, const tr_header *h,
                        size_t n)
{
    tr_precond_req *p = req->precond;

    if (req->precondition == out_names[OUT_PASSED] && status == 412)
        outcome(req, OUT_FAILED);
    if (!p)
        return;
    if (p->synth_read) {
        p->resp_status = status;
        for (size_t i = 0; i < n; i++) {
            if (!tr_head_name_is(&h[i], "content-encoding"))
                continue;
            size_t room = sizeof(p->coding) - p->coding_len;
            if (p->has_coding && room > 0) {
                p->coding[p->coding_len++] = ',';
                room--;
            }
            size_t k = h[i].value_len < room ? h[i].value_len : room;
            memcpy(p->coding + p->coding_len, h[i].value, k);
            p->coding_len += k;
            p->has_coding = true;
        }
        return;
    }
    /* The backend has answered the write it guarded: the next writer may
     * re-read now rather than after this response reached its client. */
    if (p->state == PS_READY) {
        p->state = PS_DONE;
        lock_release(p);
    }
}

int
tr_precond_response_headers(tr_request *req, tr_buf *b)
{
    tr_precond_req *p = req->precond;
    const tr_route_cfg *route = req->route;
    char etag[TR_ETAG_SYNTH_LEN + 1];

    if (!p || !p->synth_read || p->resp_status != 200)
        return 0;
    /* buffer_response drops to 0 when the body outgrew it; message_done
     * says the held body is whole. */
    tr_upconn *up = req->up;
    if (req->buffer_response == 0 || !up || !up->message_done) {
        g.etags_over_cap++;
        return 0;
    }
    tr_etag_synth_opts o = {
        .canonical_json = route->etag_ignore_fields.n > 0,
        .ignore_fields = route->etag_ignore_fields.items,
        .n_ignore = route->etag_ignore_fields.n,
        .content_coding = p->has_coding ? p->coding : NULL,
        .content_coding_len = p->coding_len,
    };
    if (tr_etag_synthesize(up->rbody.data ? up->rbody.data : "",
                           up->rbody.len, &o, etag) < 0)
        return 0;              /* no tag is safe: writes then need "*" */
    g.etags_synthesized++;
    if (tr_buf_append(b, "ETag: ", 6, SIZE_MAX) ||
        tr_buf_append(b, etag, TR_ETAG_SYNTH_LEN, SIZE_MAX) ||
        tr_buf_append(b, "\r\n", 2, SIZE_MAX))
        return -1;
    return 0;
}

void
tr_precond_observe_body(tr_request *req, const char *p, size_t n)
{
    /* Nothing: the tag is computed from the held body in one go, once
     * it is known to be whole (tr_precond_response_headers). */
}

/* ----------------------------------------------------- cancel, release */

/* Lets go of whatever p waits for or holds. */
static void
drop(tr_precond_req *p)
{
    switch (p->state) {
    case PS_GRANTED:
        grant_unlink(p);
        break;
    case PS_REREAD:
        tr_fetch_cancel(p->fetch);
        p->fetch = NULL;
        break;
    default:
        break;
    }
    p->state = PS_DONE;
    lock_release(p);           /* in line or holding: either way out */
}

bool
tr_precond_cancel(tr_request *req)
{
    tr_precond_req *p = req->precond;

    if (!p || p->synth_read)
        return false;
    if (p->state != PS_WAIT_LOCK && p->state != PS_GRANTED &&
        p->state != PS_REREAD)
        return false;
    /* A keyed request runs to completion even without its client
     * (SPEC.md step 10): it keeps its place and goes on. */
    if (req->keyed)
        return true;
    drop(p);
    return false;
}

/*
 * The single release, from tr_request_finish.  Known limit: when an
 * unkeyed write's client left after the write was forwarded, the request
 * ends (and the lock goes) at once, while the backend may still apply
 * the write; docs/conflicts.md says so and recommends keys.
 */
void
tr_precond_release(tr_request *req)
{
    tr_precond_req *p = req->precond;

    if (!p)
        return;
    drop(p);
    req->precond = NULL;
    free(p);
}
