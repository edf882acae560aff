/*
 * Step 7: budgets (SPEC.md §1).  The decision is the pure admission core
 * (src/core/admission.c); this module gives it a clock, a queue timer,
 * the RateLimit fields and problem documents, and releases the slot on
 * every exit path (tr_request_finish calls tr_budget_release once).
 *
 * Queued requests: queue_timeout_ms is the same for every request of a
 * class, so requests queued in arrival order also expire in that order.
 * One list per class in arrival order and one timer armed for the
 * earliest deadline therefore cover every waiter without a timer each.
 */
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/admission.h"
#include "core/burst_topn.h"
#include "core/ratelimit_headers.h"
#include "net/log.h"
#include "net/services.h"
#include "net/stage_budget.h"
#include "net/stages.h"

struct tr_budget_svc {
    tr_server *srv;
    tr_admission *adm;
    tr_burst_topn *topn;        /* the burstiest principals, fixed memory */
    uv_timer_t queue_timer;
    uv_timer_t sweep_timer;
    tr_request *queued_head[2], *queued_tail[2];
};

static tr_admission *
adm_of(const tr_request *req)
{
    const tr_services *svc = req->client->srv->svc;
    return svc && svc->budget ? svc->budget->adm : NULL;
}

static tr_admit_request
admit_request(const tr_request *req)
{
    tr_admit_request rq;
    rq.principal_key = req->fair_key;
    rq.principal_key_len = req->fair_key_len;
    rq.cls = req->is_agent ? TR_CLASS_AGENT : TR_CLASS_HUMAN;
    rq.tool = req->route->tool;
    return rq;
}

/* ------------------------------------------------------------ queue */

static void
queue_unlink(tr_budget_svc *b, tr_request *req)
{
    int cls = req->is_agent;
    tr_budget_req *br = &req->budget;
    if (!br->queued)
        return;
    if (br->qprev)
        br->qprev->budget.qnext = br->qnext;
    else
        b->queued_head[cls] = br->qnext;
    if (br->qnext)
        br->qnext->budget.qprev = br->qprev;
    else
        b->queued_tail[cls] = br->qprev;
    br->qprev = br->qnext = NULL;
    br->queued = false;
}

static void on_queue_timer(uv_timer_t *t);

static void
arm_queue_timer(tr_budget_svc *b)
{
    uint64_t earliest = UINT64_MAX;
    for (int cls = 0; cls < 2; cls++)
        if (b->queued_head[cls] &&
            b->queued_head[cls]->budget.deadline < earliest)
            earliest = b->queued_head[cls]->budget.deadline;
    if (earliest == UINT64_MAX) {
        uv_timer_stop(&b->queue_timer);
        return;
    }
    uint64_t now = tr_now_ns();
    uint64_t ms = earliest > now ? (earliest - now + 999999) / 1000000 : 0;
    uv_timer_start(&b->queue_timer, on_queue_timer, ms, 0);
}

static void
queue_append(tr_budget_svc *b, tr_request *req)
{
    int cls = req->is_agent;
    tr_budget_req *br = &req->budget;
    br->queued = true;
    br->qnext = NULL;
    br->qprev = b->queued_tail[cls];
    if (b->queued_tail[cls])
        b->queued_tail[cls]->budget.qnext = req;
    else
        b->queued_head[cls] = req;
    b->queued_tail[cls] = req;
    arm_queue_timer(b);
}

/* ---------------------------------------------------------- answers */

static void
append_headers_from(const tr_request *req, const tr_admit_decision *d,
                    tr_buf *b)
{
    char val[1024];
    size_t plen = 0;
    if (!d->n_items)
        return;
    /* The policy field is the same for every response of a (tool, class)
     * and was formatted once when the limiter was built. */
    const char *policy = tr_admission_policy(
        adm_of(req), req->route->tool,
        req->is_agent ? TR_CLASS_AGENT : TR_CLASS_HUMAN, &plen);
    if (policy && plen) {
        tr_buf_append(b, "RateLimit-Policy: ", 18, SIZE_MAX);
        tr_buf_append(b, policy, plen, SIZE_MAX);
        tr_buf_append(b, "\r\n", 2, SIZE_MAX);
    }
    int n = tr_ratelimit_format(val, sizeof(val), d->items, d->n_items);
    if (n > 0 && (size_t)n < sizeof(val)) {
        tr_buf_append(b, "RateLimit: ", 11, SIZE_MAX);
        tr_buf_append(b, val, (size_t)n, SIZE_MAX);
        tr_buf_append(b, "\r\n", 2, SIZE_MAX);
    }
}

static void
refuse(tr_request *req, const tr_admit_decision *d)
{
    tr_buf hdr = { 0 };
    char ra[48];
    snprintf(ra, sizeof(ra), "Retry-After: %u\r\n",
             d->retry_after_s ? d->retry_after_s : 1);
    tr_buf_append(&hdr, ra, strlen(ra), SIZE_MAX);
    append_headers_from(req, d, &hdr);
    tr_buf_append(&hdr, "", 1, SIZE_MAX);

    json_t *ext = json_object();
    tr_ratelimit_add_violated(ext, d->violated, d->n_violated);
    char detail[256];
    const char *what = tr_admit_reason_name(d->reason);
    snprintf(detail, sizeof(detail),
             "%s budget exhausted (%s); retry after %u s", 
             d->n_violated ? d->violated[0] : "a", what,
             d->retry_after_s ? d->retry_after_s : 1);
    req->decision = "deny";
    req->reason = what;
    req->limiter = what;
    tr_respond_problem_ext(req, d->problem, detail, hdr.data, ext);
    json_decref(ext);
    tr_buf_free(&hdr);
}

/*
 * Feeds the live top-N of bursty principals (issue 10): once per admitted
 * request, with the principal's in-flight count when a concurrency cap
 * reports it (q - r of the "inflight" item), else 0.
 */
static void
observe_burst(tr_request *req, const tr_admit_decision *d)
{
    tr_budget_svc *b = req->client->srv->svc->budget;
    uint32_t inflight = 0;
    for (size_t i = 0; i < d->n_items; i++)
        if (d->items[i].concurrent && d->items[i].q >= d->items[i].r)
            inflight = (uint32_t)(d->items[i].q - d->items[i].r);
    if (b->topn)
        tr_burst_topn_observe(b->topn, req->fair_key, req->fair_key_len,
                              tr_now_ns(), inflight);
}

/* ------------------------------------------------------------- stage */

tr_step
tr_budget_admit(tr_request *req)
{
    tr_admission *adm = adm_of(req);
    tr_budget_req *br = &req->budget;
    if (!adm)
        return TR_NEXT;

    tr_admit_ticket_init(&br->ticket, req);
    tr_admit_request rq = admit_request(req);
    uint64_t now = tr_now_ns();
    tr_admit_outcome o = tr_admit(adm, &br->ticket, &rq, now, &br->decision);
    br->have_decision = true;
    br->active = true;

    switch (o) {
    case TR_ADMIT_OK:
        req->limiter = "admitted";
        observe_burst(req, &br->decision);
        return TR_NEXT;
    case TR_ADMIT_QUEUED:
        req->limiter = "queued";
        br->deadline = br->decision.queue_deadline;
        br->queued_at = now;
        queue_append(req->client->srv->svc->budget, req);
        return TR_AGAIN;
    case TR_ADMIT_REFUSED:
    default:
        br->active = false;
        refuse(req, &br->decision);
        return TR_STOP;
    }
}

static void
wake(tr_budget_svc *b, tr_admit_ticket *tk, uint64_t now)
{
    /* The ticket handed the slot: its request goes on from step 8. */
    if (tk) {
        tr_request *next = tk->wait.owner;
        queue_unlink(b, next);
        tr_admit_describe(b->adm, tk, now, &next->budget.decision);
        next->limiter = "admitted_after_queue";
        observe_burst(next, &next->budget.decision);
        next->stage = TR_STAGE_CLAIM;
        tr_pipeline_continue(next);
    }
    arm_queue_timer(b);
}

static void
on_queue_timer(uv_timer_t *t)
{
    tr_budget_svc *b = t->data;
    uint64_t now = tr_now_ns();

    for (int cls = 0; cls < 2; cls++) {
        while (b->queued_head[cls] &&
               b->queued_head[cls]->budget.deadline <= now) {
            tr_request *req = b->queued_head[cls];
            queue_unlink(b, req);
            tr_admit_decision d;
            if (!tr_admit_timeout(b->adm, &req->budget.ticket, now, &d))
                continue;  /* it holds a slot by now */
            req->budget.active = false;
            req->budget.decision = d;
            refuse(req, &d);
        }
    }
    arm_queue_timer(b);
}

tr_step
tr_budget_charge_replay(tr_request *req)
{
    tr_admission *adm = adm_of(req);
    if (!adm)
        return TR_NEXT;
    tr_admit_request rq = admit_request(req);
    tr_budget_req *br = &req->budget;
    tr_admit_outcome o = tr_admit_replay(adm, &rq, tr_now_ns(),
                                         &br->decision);
    br->have_decision = true;
    if (o == TR_ADMIT_REFUSED) {
        refuse(req, &br->decision);
        return TR_STOP;
    }
    req->limiter = "replay";
    return TR_NEXT;
}

void
tr_budget_refund(tr_request *req)
{
    tr_admission *adm = adm_of(req);
    tr_budget_req *br = &req->budget;
    if (!adm || !br->active)
        return;
    br->active = false;
    uint64_t now = tr_now_ns();
    wake(req->client->srv->svc->budget,
         tr_admit_refund(adm, &br->ticket, now), now);
}

int
tr_budget_response_headers(tr_request *req, tr_buf *b)
{
    if (req->budget.have_decision)
        append_headers_from(req, &req->budget.decision, b);
    return 0;
}

bool
tr_budget_cancel(tr_request *req)
{
    /* A queued request whose client left is dropped from the queue by
     * the release that tr_request_finish makes: never forwarded. */
    return false;
}

void
tr_budget_release(tr_request *req)
{
    tr_admission *adm = adm_of(req);
    tr_budget_req *br = &req->budget;
    if (!adm)
        return;
    tr_budget_svc *b = req->client->srv->svc->budget;
    queue_unlink(b, req);
    if (!br->active)
        return;
    br->active = false;
    uint64_t now = tr_now_ns();
    wake(b, tr_admit_release(adm, &br->ticket, now), now);
}

/* ------------------------------------------------------------ service */

static void
on_sweep(uv_timer_t *t)
{
    tr_budget_svc *b = t->data;
    tr_admission_sweep(b->adm, tr_now_ns(), 4096);
}

static void
render_metrics(void *ctx, tr_buf *out)
{
    tr_budget_svc *b = ctx;
    tr_admission_stats s;
    char line[512];
    int n;

    tr_admission_stats_get(b->adm, &s);
#define EMIT(...)                                                          \
    do {                                                                   \
        n = snprintf(line, sizeof(line), __VA_ARGS__);                     \
        if (n > 0)                                                         \
            tr_buf_append(out, line, (size_t)n, SIZE_MAX);                 \
    } while (0)
    EMIT("# TYPE treaty_admissions_total counter\n"
         "treaty_admissions_total{how=\"at_once\"} %llu\n"
         "treaty_admissions_total{how=\"from_queue\"} %llu\n"
         "treaty_admissions_total{how=\"replay\"} %llu\n",
         (unsigned long long)s.admitted,
         (unsigned long long)s.admitted_from_queue,
         (unsigned long long)s.replays);
    EMIT("# TYPE treaty_admission_refusals_total counter\n");
    for (int r = 1; r < TR_ADMIT_REASON__COUNT; r++)
        EMIT("treaty_admission_refusals_total{reason=\"%s\"} %llu\n",
             tr_admit_reason_name((tr_admit_reason)r),
             (unsigned long long)s.refused[r]);
    EMIT("# TYPE treaty_admission_shadow_total counter\n"
         "treaty_admission_shadow_total{dimension=\"rate\"} %llu\n"
         "treaty_admission_shadow_total{dimension=\"quota\"} %llu\n"
         "treaty_admission_shadow_total{dimension=\"concurrency\"} %llu\n",
         (unsigned long long)s.shadow_rate,
         (unsigned long long)s.shadow_quota,
         (unsigned long long)s.shadow_concurrency);
    EMIT("# TYPE treaty_queue_cancelled_total counter\n"
         "treaty_queue_cancelled_total %llu\n"
         "# TYPE treaty_claim_refunds_total counter\n"
         "treaty_claim_refunds_total %llu\n",
         (unsigned long long)s.cancelled, (unsigned long long)s.refunds);
    EMIT("# TYPE treaty_budget_inflight gauge\n"
         "treaty_budget_inflight{class=\"human\"} %llu\n"
         "treaty_budget_inflight{class=\"agent\"} %llu\n"
         "# TYPE treaty_budget_waiting gauge\n"
         "treaty_budget_waiting{class=\"human\"} %llu\n"
         "treaty_budget_waiting{class=\"agent\"} %llu\n",
         (unsigned long long)s.inflight[0], (unsigned long long)s.inflight[1],
         (unsigned long long)s.waiting[0], (unsigned long long)s.waiting[1]);
    EMIT("# TYPE treaty_queue_wait_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < TR_ADMIT_WAIT_BUCKETS - 1; i++) {
        cum += s.wait_hist[i];
        EMIT("treaty_queue_wait_seconds_bucket{le=\"%g\"} %llu\n",
             tr_admit_wait_bounds_ms[i] / 1000.0, (unsigned long long)cum);
    }
    cum += s.wait_hist[TR_ADMIT_WAIT_BUCKETS - 1];
    EMIT("treaty_queue_wait_seconds_bucket{le=\"+Inf\"} %llu\n"
         "treaty_queue_wait_seconds_sum %.6f\n"
         "treaty_queue_wait_seconds_count %llu\n",
         (unsigned long long)cum, (double)s.wait_sum_ns / 1e9,
         (unsigned long long)s.wait_count);
    EMIT("# TYPE treaty_limiter_table_entries gauge\n"
         "treaty_limiter_table_entries %llu\n"
         "# TYPE treaty_limiter_table_capacity gauge\n"
         "treaty_limiter_table_capacity %llu\n"
         "# TYPE treaty_limiter_table_evictions_total counter\n"
         "treaty_limiter_table_evictions_total %llu\n"
         "# TYPE treaty_limiter_table_overflow_total counter\n"
         "treaty_limiter_table_overflow_total %llu\n",
         (unsigned long long)s.table.used,
         (unsigned long long)s.table.capacity,
         (unsigned long long)s.table.evictions,
         (unsigned long long)s.table.overflows);
    if (b->topn) {
        tr_burst_topn_iter it;
        tr_burst_topn_entry e;
        uint64_t now = tr_now_ns();
        EMIT("# HELP treaty_bursty_principal_score Live top principals by "
             "burstiness (fixed memory).\n"
             "# TYPE treaty_bursty_principal_score gauge\n"
             "# TYPE treaty_bursty_principal_burst_max gauge\n"
             "# TYPE treaty_bursty_principal_interarrival_cv gauge\n"
             "# TYPE treaty_bursty_principal_inflight_peak gauge\n");
        tr_burst_topn_iter_init(&it, b->topn, now, 10);
        while (tr_burst_topn_iter_next(&it, &e)) {
            char label[3 * TR_BURST_TOPN_KEY_MAX + 8];
            size_t o = 0;
            /* issuer NUL sub -> "issuer:sub", escaped for a label. */
            for (size_t i = 0; i < e.key_len && o + 4 < sizeof(label);
                 i++) {
                unsigned char ch = (unsigned char)e.key[i];
                if (ch == 0)
                    label[o++] = ':';
                else if (ch == '"' || ch == '\\') {
                    label[o++] = '\\';
                    label[o++] = (char)ch;
                } else if (ch < 0x20 || ch >= 0x7f)
                    label[o++] = '?';
                else
                    label[o++] = (char)ch;
            }
            label[o] = '\0';
            EMIT("treaty_bursty_principal_score{principal=\"%s\"} %.3f\n"
                 "treaty_bursty_principal_burst_max{principal=\"%s\"} %u\n"
                 "treaty_bursty_principal_interarrival_cv{principal=\"%s\"}"
                 " %.3f\n"
                 "treaty_bursty_principal_inflight_peak{principal=\"%s\"}"
                 " %u\n",
                 label, e.score, label, e.burst_max, label,
                 e.interarrival_cv < 0 ? 0.0 : e.interarrival_cv, label,
                 e.inflight_peak);
        }
    }
#undef EMIT
}

tr_budget_svc *
tr_budget_svc_start(tr_server *srv)
{
    const char *why = tr_admission_config_error(srv->cfg);
    if (why) {
        tr_log(TR_LOG_ERROR, "budgets_invalid", "error=\"%s\"", why);
        return NULL;
    }
    tr_budget_svc *b = calloc(1, sizeof(*b));
    uint64_t seed;
    if (!b || RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1) {
        free(b);
        return NULL;
    }
    b->srv = srv;
    b->adm = tr_admission_create(srv->cfg, seed);
    if (!b->adm) {
        free(b);
        return NULL;
    }
    tr_burst_topn_params tp;
    tr_burst_topn_params_default(&tp);
    b->topn = tr_burst_topn_create(&tp, seed ^ 0x9e3779b97f4a7c15ull);
    uv_timer_init(srv->loop, &b->queue_timer);
    uv_timer_init(srv->loop, &b->sweep_timer);
    b->queue_timer.data = b->sweep_timer.data = b;
    uv_timer_start(&b->sweep_timer, on_sweep, 100, 100);
    uv_unref((uv_handle_t *)&b->sweep_timer);
    tr_metrics_add_renderer(render_metrics, b);
    return b;
}

void
tr_budget_svc_stop(tr_budget_svc *b)
{
    if (!b)
        return;
    uv_timer_stop(&b->queue_timer);
    uv_timer_stop(&b->sweep_timer);
    uv_close((uv_handle_t *)&b->queue_timer, NULL);
    uv_close((uv_handle_t *)&b->sweep_timer, NULL);
    uv_run(b->srv->loop, UV_RUN_NOWAIT);
    tr_admission_free(b->adm);
    tr_burst_topn_free(b->topn);
    free(b);
}
