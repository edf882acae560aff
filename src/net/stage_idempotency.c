/*
 * Idempotency keys at the gateway (SPEC.md §2; pipeline steps 5, 6, 8 and
 * the outcome at the end of step 10).  The decisions are pure and live in
 * src/core (idem_key, fingerprint, idem_state); the records live in
 * src/store/idem_store.c on their own writer thread.  This module wires
 * them into a running request:
 *
 *   step 5   key syntax and presence; a keyed request has its body
 *            buffered (the fingerprint needs it) and runs to completion
 *            upstream even if its client leaves (req->keyed)
 *   step 6   asynchronous lookup: replay, 422, 409, or a bounded wait
 *   step 8   durable claim after admission, a lease renewed on a timer
 *            while the request lives
 *   step 10  the response is captured as it streams; at the end the
 *            outcome is stored, pinned or released
 *
 * Per-request state (struct tr_idem_req) exists only for keyed requests.
 * It is reference counted: the request holds one reference until
 * tr_idem_stage_release, every store job in flight one, the timer handle one
 * until its close callback.  A store callback that finds the request gone
 * only drops its reference, so a tr_request reused for the next request
 * on the connection is never touched by a late callback.
 *
 * The store itself (opened when a route uses keys, reopened in the
 * background when it cannot be opened) and the metrics are per process:
 * treaty runs one server per process.
 *
 * Known shortcoming: a keyed request makes three store round trips
 * (lookup, claim, outcome); keyed POSTs run at about 0.6x plain ones.
 * The lookup and the claim could share one job when admission cannot
 * refuse.
 */
#include <jansson.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fingerprint.h"
#include "core/idem_key.h"
#include "core/idem_state.h"
#include "core/identity_t.h"
#include "net/http_date.h"
#include "net/log.h"
#include "net/services.h"
#include "net/stages.h"
#include "store/idem_store.h"

#define IDEM_DOC "https://treaty.example/docs/idempotency.md"
#define LINK_HDR "Link: <" IDEM_DOC ">; rel=\"describedby\"\r\n"

/* How often a store that could not be opened is tried again. */
#define REOPEN_EVERY_MS 1000

typedef enum {
    PH_KEYED,      /* key valid, body being buffered */
    PH_LOOKUP,     /* a lookup job in flight */
    PH_WAIT,       /* polling while the original is in flight */
    PH_PROCEED,    /* no live record: on to admission */
    PH_CLAIM,      /* a claim job in flight */
    PH_CLAIMED,    /* the key is ours until the outcome is written */
    PH_BYPASS,     /* store down on a fail-open route: no idempotency */
} idem_phase;

struct tr_idem_req {
    tr_request *req;           /* NULL once the request has finished */
    unsigned refs;
    idem_phase phase;
    const tr_idem_cfg *cfg;    /* the route's; the config outlives us */
    tr_idem_key key;
    uint8_t fp[TR_FP_LEN];
    bool fp_ok;
    char derived[65];          /* hex SHA-256 of (scope, key) */
    int64_t first_lookup_ms;
    bool after_claim;          /* deciding on a lost claim's winner */

    uint8_t owner[TR_IDEM_OWNER_LEN];
    uint32_t lease_ms;
    bool renew_pending;
    bool claim_lost;           /* a renewal found the key taken over */
    bool job_pending;          /* lookup or claim in flight */
    bool cancelled;            /* the client left during that job */
    bool forwarded;            /* the request head was built upstream */

    uv_timer_t timer;          /* wait polling, then lease renewal */
    bool timer_inited;

    /* The response as it streams to the client. */
    bool head_seen;
    int status;
    tr_buf headers;            /* tr_idem_headers_encode() form */
    tr_buf body;
    bool body_dropped;         /* over storage_cap or the header cap */

    size_t scope_len;
    uint8_t scope[];           /* principal key or anonymous scope */
};

typedef struct {
    uint64_t claims, claims_lost, replays, conflicts, waits;
    uint64_t mismatches, unknown, not_replayable, stored, pinned;
    uint64_t releases, store_unavailable, fail_open, lease_lost;
} idem_counts;

static struct {
    tr_services *svc;
    tr_idem_store *store;      /* NULL while it cannot be opened */
    uv_timer_t reopen;
    bool reopen_inited;
    bool open_failed_logged;
    int64_t fail_open_logged_ms;
    bool stopping;
    idem_counts n;
} g;

/* ------------------------------------------------------------ helpers */

static void
unref(struct tr_idem_req *st)
{
    if (--st->refs > 0)
        return;
    tr_buf_free(&st->headers);
    tr_buf_free(&st->body);
    free(st);
}

static void
on_timer_closed(uv_handle_t *h)
{
    unref(h->data);
}

static int
timer_start(struct tr_idem_req *st, uv_timer_cb cb, uint64_t ms,
            uint64_t repeat)
{
    if (!st->timer_inited) {
        if (uv_timer_init(st->req->client->srv->loop, &st->timer) != 0)
            return -1;
        st->timer.data = st;
        st->timer_inited = true;
        st->refs++;
    }
    return uv_timer_start(&st->timer, cb, ms, repeat);
}

static const tr_header *
find_header(const tr_request *req, const char *lower, size_t *count)
{
    const tr_header *first = NULL;
    size_t n = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        if (tr_head_name_is(&req->headers[i], lower)) {
            if (first == NULL)
                first = &req->headers[i];
            n++;
        }
    }
    if (count != NULL)
        *count = n;
    return first;
}

/* Every refusal of this module points at the documentation. */
static void
refuse(tr_request *req, tr_problem_kind kind, const char *detail,
       const char *extra)
{
    char hdrs[256];

    snprintf(hdrs, sizeof(hdrs), "%s%s", LINK_HDR, extra ? extra : "");
    tr_respond_problem(req, kind, detail, hdrs);
}

/* The store failed or is down: 503, or on without idempotency where the
 * route fails open.  Returns TR_NEXT (bypass) or TR_STOP (answered). */
static tr_step
store_down(tr_request *req, struct tr_idem_req *st, int status)
{
    g.n.store_unavailable++;
    if (!tr_idem_store_down_refuses(st->cfg)) {
        g.n.fail_open++;
        st->phase = PH_BYPASS;
        req->keyed = false;  /* nothing to store: no need to outlive */
        /* At most one line a second: an outage must not flood the log
         * (the counter has the full number). */
        int64_t now = tr_wall_ms();
        if (now - g.fail_open_logged_ms >= 1000) {
            g.fail_open_logged_ms = now;
            tr_log(TR_LOG_WARN, "idempotency_fail_open",
                   "request_id=%s route=%s status=\"%s\" total=%llu",
                   req->id, req->route->name, tr_store_strerror(status),
                   (unsigned long long)g.n.fail_open);
        }
        return TR_NEXT;
    }
    req->reason = "idempotency_store_unavailable";
    refuse(req, TR_P_IDEM_STORE_UNAVAILABLE,
           "the gateway cannot record idempotency keys right now and "
           "nothing was forwarded; retry later with the same key", NULL);
    return TR_STOP;
}

static tr_idem_store *
store(void)
{
    return g.stopping ? NULL : g.store;
}

/* ------------------------------------------------------------- step 5 */

tr_step
tr_idem_static_checks(tr_request *req)
{
    const tr_route_cfg *route = req->route;
    size_t n_lines = 0;
    const tr_header *h = find_header(req, "idempotency-key", &n_lines);
    tr_idem_key key;
    tr_problem_kind problem = TR_P_INTERNAL;
    tr_idem_key_status why = TR_IDEM_KEY_ABSENT;
    tr_idem_presence pr;
    char detail[256];

    if (route->idempotency.mode == TR_IDEM_OFF)
        return TR_NEXT;
    pr = tr_idem_check_presence(route, req->method_bit, req->is_agent,
                                h ? h->value : NULL, h ? h->value_len : 0,
                                n_lines, &key, &problem, &why);
    if (pr == TR_IDEM_UNKEYED)
        return TR_NEXT;
    if (pr == TR_IDEM_REFUSE) {
        if (problem == TR_P_IDEM_KEY_REQUIRED)
            snprintf(detail, sizeof(detail),
                     "this route requires an Idempotency-Key%s: send "
                     "'Idempotency-Key: \"<a fresh UUIDv4>\"' and reuse "
                     "it for every retry of this same request",
                     route->idempotency.mode == TR_IDEM_REQUIRED
                         ? "" : " from agents");
        else
            snprintf(detail, sizeof(detail),
                     "the Idempotency-Key field is malformed: %s",
                     tr_idem_key_reason(why));
        req->reason = tr_problem(problem)->slug;
        refuse(req, problem, detail, NULL);
        return TR_STOP;
    }

    /* Keyed: the scope is the principal, never the credential. */
    uint8_t anon[TR_IDEM_ANON_SCOPE_MAX];
    const uint8_t *scope;
    size_t scope_len;
    if (req->identity != NULL) {
        scope = (const uint8_t *)req->identity->principal_key;
        scope_len = req->identity->principal_key_len;
    } else {
        scope_len = tr_idem_anon_scope(req->client_addr, anon,
                                       sizeof(anon));
        scope = anon;
    }
    struct tr_idem_req *st = calloc(1, sizeof(*st) + scope_len);
    if (st == NULL || scope_len == 0 ||
        tr_idem_derived_key(scope, scope_len, &key, st->derived) != 0) {
        free(st);
        tr_respond_problem(req, TR_P_INTERNAL,
                           "could not prepare the idempotency key", NULL);
        return TR_STOP;
    }
    st->req = req;
    st->refs = 1;
    st->phase = PH_KEYED;
    st->cfg = &route->idempotency;
    st->key = key;
    memcpy(st->scope, scope, scope_len);
    st->scope_len = scope_len;
    req->idem = st;
    req->keyed = true;
    req->buffer_body = true;
    /* Logs and audit carry a short hash, never the key itself. */
    memcpy(req->idem_key_hash, st->derived, 16);
    req->idem_key_hash[16] = '\0';
    return TR_NEXT;
}

void
tr_idem_body_buffered(tr_request *req)
{
    struct tr_idem_req *st = req->idem;
    size_t n_ct = 0;
    const tr_header *ct;
    tr_fp_request fr;

    if (st == NULL)
        return;
    ct = find_header(req, "content-type", &n_ct);
    fr.method = req->method;
    fr.method_len = req->method_len;
    fr.path = req->path;
    fr.path_len = req->path_len;
    fr.query = req->query;
    fr.query_len = req->query_len;
    fr.content_type = ct ? ct->value : NULL;
    fr.content_type_len = ct ? ct->value_len : 0;
    st->fp_ok = tr_fingerprint(&fr, req->body.data, req->body.len,
                               st->cfg->canonical_json, st->fp) == 0;
}

/* --------------------------------------------------------- answering */

static void
count_verdict(tr_idem_verdict v)
{
    switch (v) {
    case TR_IDEM_REPLAY: g.n.replays++; break;
    case TR_IDEM_MISMATCH: g.n.mismatches++; break;
    case TR_IDEM_IN_FLIGHT: g.n.conflicts++; break;
    case TR_IDEM_OUTCOME_UNKNOWN: g.n.unknown++; break;
    case TR_IDEM_NOT_REPLAYABLE: g.n.not_replayable++; break;
    default: break;
    }
}

static bool
status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/*
 * Sends the stored response: status, allow-listed headers and body byte
 * for byte, a fresh Date, Idempotent-Replayed: true.  Nothing of the
 * original's Set-Cookie, request ids or Date is kept (the store never had
 * them).  One rate unit is charged first; a refusal there has answered.
 */
static void
replay(tr_request *req, const tr_idem_record *rec)
{
    tr_client *c = req->client;
    tr_buf out = { 0 };
    char line[160];
    size_t off = 0;
    tr_header h;
    int rc, n;

    if (tr_budget_charge_replay(req) == TR_STOP)
        return;
    req->replayed = true;
    req->decision = "allow";
    req->reason = "idempotent_replay";
    n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", rec->status,
                 tr_status_reason(rec->status));
    if (tr_buf_append(&out, line, (size_t)n, SIZE_MAX) != 0)
        goto fail;
    while ((rc = tr_idem_headers_next(rec->headers, rec->headers_len, &off,
                                      &h)) == 1) {
        if (tr_buf_append(&out, h.name, h.name_len, SIZE_MAX) ||
            tr_buf_append(&out, ": ", 2, SIZE_MAX) ||
            tr_buf_append(&out, h.value, h.value_len, SIZE_MAX) ||
            tr_buf_append(&out, "\r\n", 2, SIZE_MAX))
            goto fail;
    }
    if (rc < 0) {
        tr_log(TR_LOG_ERROR, "idempotency_record_damaged",
               "request_id=%s key_hash=%s", req->id, req->idem_key_hash);
        goto fail;
    }
    n = snprintf(line, sizeof(line), "Date: %s\r\n", tr_http_date_now());
    if (tr_buf_append(&out, line, (size_t)n, SIZE_MAX) != 0)
        goto fail;
    if (status_has_body(rec->status)) {
        n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n",
                     rec->body_len);
        if (tr_buf_append(&out, line, (size_t)n, SIZE_MAX) != 0)
            goto fail;
    }
    if (tr_buf_append(&out, "Idempotent-Replayed: true\r\n", 27,
                      SIZE_MAX) != 0 ||
        tr_budget_response_headers(req, &out) != 0)
        goto fail;
    if (!req->keep_alive &&
        tr_buf_append(&out, "Connection: close\r\n", 19, SIZE_MAX) != 0)
        goto fail;
    if (tr_buf_append(&out, "\r\n", 2, SIZE_MAX) != 0)
        goto fail;
    if (status_has_body(rec->status) && rec->body_len > 0 &&
        tr_buf_append(&out, rec->body, rec->body_len, SIZE_MAX) != 0)
        goto fail;

    req->status = rec->status;
    req->head_sent = true;
    if (!req->client_gone) {
        tr_client_write(c, out.data, out.len, true);
        req->bytes_out += status_has_body(rec->status) ? rec->body_len : 0;
    }
    tr_buf_free(&out);
    tr_request_finish(req);
    return;
fail:
    tr_buf_free(&out);
    req->replayed = false;
    req->decision = "error";
    tr_respond_problem(req, TR_P_INTERNAL,
                       "the stored response could not be replayed", NULL);
}

static void start_wait(struct tr_idem_req *st, uint32_t wait_ms);

/*
 * Answers what a lookup (or a lost claim) found.  Consumes `found`.  May
 * finish the request, which may free st: nothing touches st after an
 * answer.
 */
static void
decide(struct tr_idem_req *st, tr_idem_stored *found)
{
    tr_request *req = st->req;
    const tr_idem_record *rec = found ? &found->rec : NULL;
    int64_t now = tr_wall_ms();
    tr_idem_decision d = tr_idem_lookup(
        rec, st->fp, st->cfg,
        tr_idem_wait_deadline(st->cfg, st->first_lookup_ms), now);
    char hdr[64], detail[256];

    count_verdict(d.verdict);
    switch (d.verdict) {
    case TR_IDEM_PROCEED:
    case TR_IDEM_REEXECUTE:
        tr_idem_stored_free(found);
        if (st->after_claim) {
            /* The winner's record vanished between its claim and ours
             * (released or expired): a new attempt may go, later. */
            g.n.conflicts++;
            refuse(req, TR_P_IDEM_KEY_CONFLICT,
                   "another attempt with this key just finished without "
                   "an outcome; retry with the same key",
                   "Retry-After: 1\r\n");
            return;
        }
        st->phase = PH_PROCEED;
        tr_pipeline_continue(req);
        return;
    case TR_IDEM_REPLAY:
        replay(req, rec);
        tr_idem_stored_free(found);
        return;
    case TR_IDEM_WAIT:
        tr_idem_stored_free(found);
        g.n.waits++;
        start_wait(st, d.wait_ms);
        return;
    case TR_IDEM_MISMATCH:
        tr_idem_stored_free(found);
        refuse(req, TR_P_IDEM_KEY_MISMATCH,
               "this Idempotency-Key was already used with a different "
               "method, path, query, content type or body; a new request "
               "needs a new key", NULL);
        return;
    case TR_IDEM_IN_FLIGHT:
        tr_idem_stored_free(found);
        snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n",
                 d.retry_after_s ? d.retry_after_s : 1);
        refuse(req, TR_P_IDEM_KEY_CONFLICT,
               "the first request with this Idempotency-Key is still "
               "running; retry the same request with the same key after "
               "Retry-After seconds", hdr);
        return;
    case TR_IDEM_OUTCOME_UNKNOWN:
        tr_idem_stored_free(found);
        refuse(req, TR_P_IDEM_OUTCOME_UNKNOWN,
               "the attempt with this Idempotency-Key was interrupted and "
               "its outcome is unknown; check the resource before "
               "deciding, and use a new key to run the request again",
               NULL);
        return;
    case TR_IDEM_NOT_REPLAYABLE: {
        json_t *ext = json_pack("{s:i}", "original_status", d.status);
        tr_idem_stored_free(found);
        snprintf(detail, sizeof(detail),
                 "the request with this Idempotency-Key completed with "
                 "status %d, but its response was too large to keep; do "
                 "not retry, fetch the result through the API", d.status);
        tr_respond_problem_ext(req, TR_P_IDEM_NOT_REPLAYABLE, detail,
                               LINK_HDR, ext);
        json_decref(ext);
        return;
    }
    }
    tr_idem_stored_free(found);
    tr_respond_problem(req, TR_P_INTERNAL, "unexpected idempotency state",
                       NULL);
}

/* The client left while a job of ours was in flight: end here, nothing
 * was forwarded. */
static void
finish_abandoned(tr_request *req)
{
    if (!req->status)
        req->status = 499;
    req->reason = "client_closed";
    tr_request_finish(req);
}

/* ------------------------------------------------------------- step 6 */

static int submit_lookup(struct tr_idem_req *st);

static void
on_lookup(void *arg, int status, tr_idem_stored *found)
{
    struct tr_idem_req *st = arg;
    tr_request *req = st->req;

    st->job_pending = false;
    if (req == NULL || g.stopping) {
        tr_idem_stored_free(found);
        unref(st);
        return;
    }
    unref(st);  /* the request's own reference keeps st alive */
    if (st->cancelled || req->client_gone) {
        tr_idem_stored_free(found);
        finish_abandoned(req);
        return;
    }
    if (status < 0) {
        tr_idem_stored_free(found);
        if (store_down(req, st, status) == TR_NEXT)
            tr_pipeline_continue(req);
        return;
    }
    decide(st, found);
}

static int
submit_lookup(struct tr_idem_req *st)
{
    tr_idem_store *s = store();
    int rc;

    if (s == NULL)
        return TR_STORE_EUNAVAILABLE;
    rc = tr_idem_store_lookup(s, st->scope, st->scope_len, &st->key,
                              on_lookup, st);
    if (rc < 0)
        return rc;
    st->refs++;
    st->job_pending = true;
    st->phase = PH_LOOKUP;
    return 0;
}

static void
on_wait_timer(uv_timer_t *t)
{
    struct tr_idem_req *st = t->data;
    tr_request *req = st->req;
    int rc;

    if (req == NULL)
        return;
    rc = submit_lookup(st);
    if (rc >= 0)
        return;
    if (st->after_claim) {
        /* The admission was given back: never forward from here. */
        g.n.store_unavailable++;
        refuse(req, TR_P_IDEM_STORE_UNAVAILABLE,
               "the idempotency store went away while this retry waited "
               "for the first attempt; retry later with the same key",
               NULL);
        return;
    }
    if (store_down(req, st, rc) == TR_NEXT)
        tr_pipeline_continue(req);
}

static void
start_wait(struct tr_idem_req *st, uint32_t wait_ms)
{
    uint32_t ms = wait_ms < TR_IDEM_WAIT_POLL_MS ? wait_ms
                                                 : TR_IDEM_WAIT_POLL_MS;

    st->phase = PH_WAIT;
    if (timer_start(st, on_wait_timer, ms ? ms : 1, 0) != 0)
        tr_respond_problem(st->req, TR_P_INTERNAL,
                           "could not wait for the first attempt", NULL);
}

tr_step
tr_idem_lookup_stage(tr_request *req)
{
    struct tr_idem_req *st = req->idem;
    int rc;

    if (st == NULL || st->phase != PH_KEYED)
        return TR_NEXT;  /* unkeyed, or the lookup already decided */
    if (!st->fp_ok) {
        tr_respond_problem(req, TR_P_INTERNAL,
                           "could not fingerprint the request", NULL);
        return TR_STOP;
    }
    st->first_lookup_ms = tr_wall_ms();
    rc = submit_lookup(st);
    if (rc < 0)
        return store_down(req, st, rc);
    return TR_AGAIN;
}

/* ------------------------------------------------------------- step 8 */

static void
on_renewed(void *arg, int status, bool ok)
{
    struct tr_idem_req *st = arg;

    st->renew_pending = false;
    if (st->req != NULL && status == 0 && !ok && !st->claim_lost) {
        st->claim_lost = true;
        g.n.lease_lost++;
        tr_log(TR_LOG_WARN, "idempotency_claim_lost",
               "request_id=%s key_hash=%s note=\"the outcome will not be "
               "stored\"", st->req->id, st->req->idem_key_hash);
    }
    unref(st);
}

static void
on_renew_timer(uv_timer_t *t)
{
    struct tr_idem_req *st = t->data;
    tr_idem_store *s = store();

    if (st->req == NULL || s == NULL || st->renew_pending || st->claim_lost)
        return;
    /* A missed renewal (store briefly down) is made up by the next. */
    if (tr_idem_store_renew(s, st->scope, st->scope_len, &st->key,
                            st->owner, st->lease_ms, tr_wall_ms(),
                            on_renewed, st) == 0) {
        st->refs++;
        st->renew_pending = true;
    }
}

static void
on_claim(void *arg, int status, bool won, tr_idem_stored *rec)
{
    struct tr_idem_req *st = arg;
    tr_request *req = st->req;

    st->job_pending = false;
    if (req == NULL || g.stopping) {
        /* A won claim nobody will complete: the lease runs out and the
         * key reads "outcome unknown", which is the truth here. */
        tr_idem_stored_free(rec);
        unref(st);
        return;
    }
    unref(st);
    if (status < 0) {
        tr_idem_stored_free(rec);
        tr_budget_refund(req);
        if (st->cancelled || req->client_gone) {
            finish_abandoned(req);
            return;
        }
        if (store_down(req, st, status) == TR_NEXT)
            tr_pipeline_continue(req);
        return;
    }
    if (won) {
        tr_idem_stored_free(rec);
        g.n.claims++;
        st->phase = PH_CLAIMED;
        if (st->cancelled || req->client_gone) {
            /* Nothing was forwarded: tr_idem_stage_release gives it back. */
            finish_abandoned(req);
            return;
        }
        uint32_t every = tr_idem_renew_every_ms(st->lease_ms);
        if (timer_start(st, on_renew_timer, every, every) != 0)
            tr_log(TR_LOG_WARN, "idempotency_no_renewal",
                   "request_id=%s", req->id);
        tr_pipeline_continue(req);
        return;
    }
    /* Another attempt won meanwhile: what we were admitted for does not
     * happen, so the admission is given back, then we answer as the
     * lookup would have. */
    g.n.claims_lost++;
    tr_budget_refund(req);
    if (st->cancelled || req->client_gone) {
        tr_idem_stored_free(rec);
        finish_abandoned(req);
        return;
    }
    st->after_claim = true;
    decide(st, rec);
}

tr_step
tr_idem_claim_stage(tr_request *req)
{
    struct tr_idem_req *st = req->idem;
    tr_idem_store *s = store();
    int rc;

    if (st == NULL || st->phase != PH_PROCEED)
        return TR_NEXT;  /* unkeyed, bypassed, or already claimed */
    if (RAND_bytes(st->owner, sizeof(st->owner)) != 1) {
        tr_budget_refund(req);
        tr_respond_problem(req, TR_P_INTERNAL,
                           "no randomness for the idempotency claim", NULL);
        return TR_STOP;
    }
    const tr_upstream_cfg *u =
        &req->client->srv->cfg->upstreams[req->route->upstream];
    st->lease_ms = tr_idem_lease_ms(u->response_timeout_ms,
                                    TR_IDEM_LEASE_GRACE_MS);
    rc = s == NULL ? TR_STORE_EUNAVAILABLE
                   : tr_idem_store_claim(s, st->scope, st->scope_len,
                                         &st->key, st->fp, st->owner,
                                         st->lease_ms, st->cfg,
                                         tr_wall_ms(), on_claim, st);
    if (rc < 0) {
        tr_step r = store_down(req, st, rc);
        if (r == TR_STOP)
            tr_budget_refund(req);
        return r;
    }
    st->refs++;
    st->job_pending = true;
    st->phase = PH_CLAIM;
    return TR_AGAIN;
}

/* ------------------------------------------------- forward and stream */

/*
 * The client's key never goes upstream on a keyed request: the backend
 * may see every principal as one account (authorization: strip or
 * replace) and replay one principal's response to another that picked
 * the same key.  Routes that want a key downstream forward the derived
 * one, which no principal can choose.  Unkeyed requests (route off, GET)
 * pass the field through untouched.
 */
bool
tr_idem_header_is_reserved(const tr_request *req, const tr_header *h)
{
    return req->idem != NULL && tr_head_name_is(h, "idempotency-key");
}

int
tr_idem_upstream_headers(tr_request *req, tr_buf *b)
{
    struct tr_idem_req *st = req->idem;

    if (st == NULL)
        return 0;
    st->forwarded = true;
    if (!st->cfg->forward_derived_key)
        return 0;
    if (tr_buf_append(b, "Idempotency-Key: \"", 18, SIZE_MAX) ||
        tr_buf_append(b, st->derived, 64, SIZE_MAX) ||
        tr_buf_append(b, "\"\r\n", 3, SIZE_MAX))
        return -1;
    return 0;
}

void
tr_idem_observe_head(tr_request *req, int status, const tr_header *h,
                     size_t n)
{
    struct tr_idem_req *st = req->idem;
    size_t need;

    if (st == NULL || st->phase != PH_CLAIMED)
        return;
    st->head_seen = true;
    st->status = status;
    st->headers.len = 0;
    need = tr_idem_headers_encode(h, n, NULL, 0);
    if (need > TR_IDEM_HEADERS_MAX) {
        st->body_dropped = true;  /* completed, not replayable */
        return;
    }
    if (need > 0 && tr_buf_reserve(&st->headers, need, need) != 0) {
        st->body_dropped = true;
        return;
    }
    st->headers.len = tr_idem_headers_encode(
        h, n, (uint8_t *)st->headers.data, st->headers.cap);
}

void
tr_idem_observe_body(tr_request *req, const char *p, size_t n)
{
    struct tr_idem_req *st = req->idem;

    if (st == NULL || st->phase != PH_CLAIMED || st->body_dropped)
        return;
    /* Over the cap the client still gets everything; only the copy for
     * retries stops, and the record says "not replayable". */
    if (!tr_idem_body_fits(st->cfg, (uint64_t)st->body.len + n) ||
        tr_buf_append(&st->body, p, n, SIZE_MAX) != 0) {
        st->body_dropped = true;
        tr_buf_free(&st->body);
    }
}

int
tr_idem_response_headers(tr_request *req, tr_buf *b)
{
    struct tr_idem_req *st = req->idem;

    if (st == NULL || st->phase != PH_CLAIMED)
        return 0;
    return tr_buf_append(b, "Idempotent-Replayed: false\r\n", 28, SIZE_MAX)
               ? -1
               : 0;
}

/* ------------------------------------------------------------ the end */

bool
tr_idem_cancel(tr_request *req)
{
    struct tr_idem_req *st = req->idem;

    if (st == NULL || !st->job_pending)
        return false;  /* a wait between polls ends with the request */
    st->cancelled = true;
    return true;
}

static void
on_outcome_written(void *arg, int status, bool ok)
{
    if (status < 0)
        tr_log(TR_LOG_ERROR, "idempotency_outcome_lost",
               "status=\"%s\"", tr_store_strerror(status));
}

/* What happened upstream, as far as the idempotency table cares. */
static tr_idem_failure
failure_of(const tr_request *req, const struct tr_idem_req *st)
{
    if (!st->forwarded)
        return TR_IDEM_FAIL_REFUSED;
    if (req->upstream_not_reached)
        return TR_IDEM_FAIL_CONNECT;
    if (req->upstream_failed)
        return !st->head_seen && req->status == 504 ? TR_IDEM_FAIL_TIMEOUT
                                                    : TR_IDEM_FAIL_RESET;
    if (st->head_seen && req->upstream_done)
        return TR_IDEM_FAIL_NONE;
    /* The proxy flags a failure after the first byte went out as
     * upstream_failed; without it nothing was sent. */
    if (!st->head_seen)
        return TR_IDEM_FAIL_CONNECT;
    return TR_IDEM_FAIL_RESET;
}

/*
 * A pinned outcome without a response from the backend: what the client
 * got was treaty's own 502 or 504 problem, so that is what is kept.
 */
static int
pinned_problem(const tr_request *req, tr_buf *hdrs, tr_buf *body)
{
    tr_problem_kind kind = req->status == 504 ? TR_P_UPSTREAM_TIMEOUT
                                              : TR_P_UPSTREAM_UNAVAILABLE;
    const tr_problem_info *pi = tr_problem(kind);
    static const char ctype[] = "application/problem+json";
    tr_header h = { "Content-Type", 12, ctype, sizeof(ctype) - 1 };
    json_t *doc = json_pack(
        "{s:s, s:s, s:i, s:s}", "type", pi->type, "title", pi->title,
        "status", pi->status, "detail",
        "the upstream failed after the request was sent; whether it "
        "acted is unknown, so this answer is kept for the key");
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    size_t need = tr_idem_headers_encode(&h, 1, NULL, 0);
    int rc = -1;

    json_decref(doc);
    if (text != NULL && tr_buf_reserve(hdrs, need, SIZE_MAX) == 0 &&
        tr_buf_append(body, text, strlen(text), SIZE_MAX) == 0) {
        hdrs->len = tr_idem_headers_encode(&h, 1, (uint8_t *)hdrs->data,
                                           hdrs->cap);
        rc = pi->status;
    }
    free(text);
    return rc;
}

static void
write_outcome(tr_request *req, struct tr_idem_req *st)
{
    tr_idem_store *s = store();
    tr_idem_failure f = failure_of(req, st);
    tr_idem_outcome o = tr_idem_classify(f, st->status,
                                         st->cfg->ambiguous);
    tr_idem_result res = { 0 };
    int rc;

    if (s == NULL)
        return;  /* shutting down: the lease runs out, "unknown" */
    if (o == TR_IDEM_OUT_RELEASE) {
        g.n.releases++;
        rc = tr_idem_store_release(s, st->scope, st->scope_len, &st->key,
                                   st->owner, on_outcome_written, NULL);
    } else {
        res.pinned = o == TR_IDEM_OUT_PIN;
        res.status = st->status;
        if (!st->head_seen) {
            st->headers.len = st->body.len = 0;
            res.status = pinned_problem(req, &st->headers, &st->body);
            if (res.status < 0) {
                res.status = req->status ? req->status : 502;
                st->body_dropped = true;
            }
        } else if (f != TR_IDEM_FAIL_NONE) {
            /* The body was cut off: keep the status, never a
             * truncated body. */
            st->body_dropped = true;
        }
        res.headers = (const uint8_t *)st->headers.data;
        res.headers_len = st->headers.len;
        res.body = (const uint8_t *)st->body.data;
        res.body_len = st->body.len;
        res.body_dropped = st->body_dropped;
        if (res.pinned)
            g.n.pinned++;
        else
            g.n.stored++;
        rc = tr_idem_store_complete(s, st->scope, st->scope_len, &st->key,
                                    st->owner, &res, st->cfg, tr_wall_ms(),
                                    on_outcome_written, NULL);
    }
    if (rc < 0)
        tr_log(TR_LOG_ERROR, "idempotency_outcome_lost",
               "request_id=%s key_hash=%s outcome=%s status=\"%s\"",
               req->id, req->idem_key_hash, tr_idem_outcome_name(o),
               tr_store_strerror(rc));
}

void
tr_idem_stage_release(tr_request *req)
{
    struct tr_idem_req *st = req->idem;

    if (st == NULL)
        return;
    req->idem = NULL;
    if (st->phase == PH_CLAIMED)
        write_outcome(req, st);  /* copies what it keeps */
    st->req = NULL;
    if (st->timer_inited) {
        uv_timer_stop(&st->timer);
        uv_close((uv_handle_t *)&st->timer, on_timer_closed);
    }
    unref(st);
}

/* ------------------------------------------- the store's life, metrics */

static bool
store_ready(void *ctx, const char **why)
{
    if (g.store == NULL || !tr_idem_store_available(g.store)) {
        *why = "idempotency store unavailable";
        return false;
    }
    return true;
}

static void
render_metrics(void *ctx, tr_buf *out)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
#define C(m, h) { #m, h, offsetof(idem_counts, m) }
        C(claims, "Keys claimed durably before forwarding."),
        C(claims_lost, "Claims lost to a concurrent attempt."),
        C(replays, "Stored responses replayed."),
        C(conflicts, "Retries refused while the original was in flight."),
        C(waits, "Polls of retries waiting for the original."),
        C(mismatches, "Keys reused with a different request (422)."),
        C(unknown, "Retries answered outcome-unknown."),
        C(not_replayable, "Retries of responses too large to keep."),
        C(stored, "Outcomes stored."),
        C(pinned, "Ambiguous outcomes pinned."),
        C(releases, "Claims released for a true retry."),
        C(store_unavailable, "Keyed requests that found the store down."),
        C(fail_open, "Keyed requests forwarded without idempotency."),
        C(lease_lost, "Claims taken over while their request ran."),
#undef C
    };
    char line[256];
    int n;

    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        uint64_t v = *(const uint64_t *)((const char *)&g.n +
                                         counters[i].off);
        n = snprintf(line, sizeof(line),
                     "# HELP treaty_idempotency_%s_total %s\n"
                     "# TYPE treaty_idempotency_%s_total counter\n"
                     "treaty_idempotency_%s_total %llu\n",
                     counters[i].name, counters[i].help, counters[i].name,
                     counters[i].name, (unsigned long long)v);
        if (n > 0 && (size_t)n < sizeof(line))
            tr_buf_append(out, line, (size_t)n, SIZE_MAX);
    }
    tr_idem_store_stats s = { 0 };
    if (g.store != NULL)
        tr_idem_store_get_stats(g.store, &s);
    n = snprintf(line, sizeof(line),
                 "# TYPE treaty_idempotency_store_up gauge\n"
                 "treaty_idempotency_store_up %d\n"
                 "# TYPE treaty_idempotency_store_backlog gauge\n"
                 "treaty_idempotency_store_backlog %zu\n"
                 "# TYPE treaty_idempotency_reaped_total counter\n"
                 "treaty_idempotency_reaped_total %llu\n",
                 g.store != NULL && s.available ? 1 : 0, s.backlog,
                 (unsigned long long)s.reaped);
    if (n > 0 && (size_t)n < sizeof(line))
        tr_buf_append(out, line, (size_t)n, SIZE_MAX);
}

static bool
keys_used(const tr_config *cfg)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].idempotency.mode != TR_IDEM_OFF)
            return true;
    return false;
}

static int
try_open(void)
{
    const tr_config *cfg = g.svc->srv->cfg;
    tr_idem_store_opts o = { .sync = cfg->audit.sync };
    char err[512];

    if (cfg->state_dir == NULL)
        return -1;  /* the loader requires it; nothing to open without */
    g.store = tr_idem_store_open(g.svc->srv->loop, cfg->state_dir, &o, err,
                                 sizeof(err));
    g.svc->idem_store = g.store;
    if (g.store == NULL) {
        if (!g.open_failed_logged)
            tr_log(TR_LOG_ERROR, "idempotency_store_failed",
                   "error=\"%s\" note=\"keyed requests on required routes "
                   "get 503; retrying every %d ms\"", err,
                   REOPEN_EVERY_MS);
        g.open_failed_logged = true;
        return -1;
    }
    if (g.open_failed_logged)
        tr_log(TR_LOG_INFO, "idempotency_store_opened", "state_dir=%s",
               cfg->state_dir);
    g.open_failed_logged = false;
    return 0;
}

static void
on_reopen(uv_timer_t *t)
{
    if (g.stopping || g.store != NULL || try_open() == 0)
        uv_timer_stop(t);
}

int
tr_idem_service_start(tr_services *svc)
{
    const tr_config *cfg = svc->srv->cfg;

    memset(&g, 0, sizeof(g));
    g.svc = svc;
    if (!keys_used(cfg))
        return 0;
    tr_server_add_ready_check(svc->srv, store_ready, NULL);
    tr_metrics_add_renderer(render_metrics, NULL);
    if (try_open() == 0)
        return 0;
    /* Keep serving: required routes answer 503, /readyz says why, and
     * the store is opened as soon as it can be. */
    uv_timer_init(svc->srv->loop, &g.reopen);
    g.reopen_inited = true;
    uv_timer_start(&g.reopen, on_reopen, REOPEN_EVERY_MS, REOPEN_EVERY_MS);
    uv_unref((uv_handle_t *)&g.reopen);
    return 0;
}

void
tr_idem_service_stop(tr_services *svc)
{
    g.stopping = true;
    if (g.reopen_inited) {
        uv_timer_stop(&g.reopen);
        uv_close((uv_handle_t *)&g.reopen, NULL);
        g.reopen_inited = false;
    }
    /* Queued outcomes are written here; callbacks see g.stopping. */
    tr_idem_store_close(g.store);
    g.store = NULL;
    svc->idem_store = NULL;
}
