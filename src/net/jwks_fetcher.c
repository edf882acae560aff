/*
 * JWKS by URL: one fetch thread per issuer, decisions on the loop
 * (src/core/jwks_refresh.c), key sets handed over with a uv_async_t.
 *
 * What crosses threads, all under the source's mutex: `want` and `quit`
 * (loop -> thread), the finished fetch's result (thread -> loop).  The
 * thread never touches the verifier, the server or the log; the loop
 * never blocks on the thread except when stopping.
 */
#include "net/jwks_fetcher.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/jwks.h"
#include "core/jwks_refresh.h"
#include "core/verifier.h"
#include "net/log.h"

#define NS_PER_MS 1000000ull

/* What one fetch produced; ks is NULL on failure, with err. */
typedef struct {
    tr_keyset *ks;
    char err[256];
    long http_status;
    double seconds;
    size_t bytes;
} fetch_result;

/* A request waiting for the fetch in flight.  The pointer is only a
 * candidate: before it is used, the request is found again among the
 * server's live clients by pointer and id (it may have ended meanwhile,
 * e.g. its client went away). */
typedef struct {
    tr_request *req;
    char id[sizeof(((tr_request *)0)->id)];
} held_req;

typedef struct {
    tr_jwks_fetcher *f;
    size_t issuer;
    const tr_issuer_cfg *cfg;
    bool active;               /* the issuer has a jwks_url */

    /* Shared with the thread, under mu. */
    uv_mutex_t mu;
    uv_cond_t cv;
    bool want;
    bool quit;
    bool has_result;
    fetch_result result;
    atomic_bool abort;         /* read by curl's progress callback */
    uv_thread_t thread;
    bool thread_started;

    /* Loop only. */
    tr_jwks_refresh sched;
    uv_timer_t timer;          /* next fetch or withdrawal */
    uv_timer_t hold_timer;     /* held requests give up */
    held_req *held, *spare;
    size_t n_held;
    uint64_t fetch_start_ns;
    bool fetch_is_refetch;
    size_t n_keys;             /* in service */
    uint8_t fingerprint[32];   /* of the set in service, when n_keys */
    uint64_t fetches, failures, refetches, refetches_refused;
    uint64_t held_total, withdrawals;
} jwks_src;

struct tr_jwks_fetcher {
    tr_server *srv;
    struct tr_verifier *v;
    uv_async_t async;
    jwks_src *src;             /* one per issuer, active or not */
    size_t n;
    tr_request *resuming;      /* being verified again: never re-held */
};

/* ------------------------------------------------------ fetch thread */

static size_t
on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    tr_buf *b = ud;
    size_t n = size * nmemb;

    /* Returning less than n makes curl fail the transfer. */
    if (tr_buf_append(b, p, n, TR_JWKS_MAX_BYTES) != 0)
        return 0;
    return n;
}

static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
            curl_off_t ultotal, curl_off_t ulnow)
{
    jwks_src *s = ud;

    return atomic_load(&s->abort) ? 1 : 0;
}

static void
fetch_once(jwks_src *s, CURL *h, fetch_result *r)
{
    /* https only, unless the operator allowed http for this issuer; the
     * same for redirects, so an https URL cannot be sent to http. */
    const char *protos = s->cfg->jwks_insecure_http ? "http,https" : "https";
    char curl_err[CURL_ERROR_SIZE] = "";
    tr_buf body = { 0 };
    CURLcode rc;
    size_t skipped;

    memset(r, 0, sizeof(*r));
    if (!h) {
        snprintf(r->err, sizeof(r->err), "cannot create a curl handle");
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, s->cfg->jwks_url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protos);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protos);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)TR_JWKS_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)TR_JWKS_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)TR_JWKS_MAX_BYTES);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "treaty-jwks");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);

    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->http_status);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &r->seconds);
    r->bytes = body.len;
    if (rc != CURLE_OK) {
        snprintf(r->err, sizeof(r->err), "%s",
                 curl_err[0] ? curl_err : curl_easy_strerror(rc));
    } else if (r->http_status != 200) {
        snprintf(r->err, sizeof(r->err), "HTTP status %ld",
                 r->http_status);
    } else {
        r->ks = tr_keyset_parse(body.data ? body.data : "", body.len,
                                r->err, sizeof(r->err));
        /* An empty answer must not replace working keys: treat it as a
         * failed fetch, so grace applies. */
        if (r->ks && tr_keyset_count(r->ks) == 0) {
            skipped = tr_keyset_skipped(r->ks);
            tr_keyset_unref(r->ks);
            r->ks = NULL;
            snprintf(r->err, sizeof(r->err), "no usable key (%zu skipped)",
                     skipped);
        }
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    tr_buf_free(&body);
}

static void
fetch_thread(void *arg)
{
    jwks_src *s = arg;
    CURL *h = curl_easy_init();
    fetch_result r;

    uv_mutex_lock(&s->mu);
    for (;;) {
        while (!s->want && !s->quit)
            uv_cond_wait(&s->cv, &s->mu);
        if (s->quit)
            break;
        s->want = false;
        uv_mutex_unlock(&s->mu);

        fetch_once(s, h, &r);

        uv_mutex_lock(&s->mu);
        /* The loop asks for one fetch at a time, so the slot is free. */
        tr_keyset_unref(s->has_result ? s->result.ks : NULL);
        s->result = r;
        s->has_result = true;
        uv_mutex_unlock(&s->mu);
        uv_async_send(&s->f->async);
        uv_mutex_lock(&s->mu);
    }
    uv_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* -------------------------------------------------------------- loop */

static void schedule(jwks_src *s);

static void
begin_fetch(jwks_src *s, bool refetch)
{
    uint64_t now = tr_now_ns();

    tr_jwks_refresh_started(&s->sched, now);
    s->fetch_start_ns = now;
    s->fetch_is_refetch = refetch;
    s->fetches++;
    if (refetch)
        s->refetches++;
    uv_mutex_lock(&s->mu);
    s->want = true;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
}

static void
withdraw(jwks_src *s)
{
    tr_verifier_set_keys(s->f->v, s->issuer, NULL);
    tr_jwks_refresh_withdrawn(&s->sched);
    s->n_keys = 0;
    s->withdrawals++;
    tr_log(TR_LOG_ERROR, "jwks_withdrawn",
           "issuer=%s grace_s=%u note=\"no good fetch within "
           "jwks_refresh_s + jwks_grace_s; tokens of this issuer are "
           "refused until a fetch succeeds\"",
           s->cfg->name, s->cfg->jwks_grace_s);
}

/* Resumes every held request that is still alive, each verified once
 * more with whatever keys are now installed. */
static void
resume_held(jwks_src *s)
{
    tr_jwks_fetcher *f = s->f;
    held_req *list = s->held;
    size_t n = s->n_held;

    uv_timer_stop(&s->hold_timer);
    if (n == 0)
        return;
    /* Requests resumed below may be held again elsewhere: give them a
     * fresh array while this one is walked. */
    s->held = s->spare;
    s->spare = list;
    s->n_held = 0;

    /* Each is looked up right before use: resuming one request may
     * close and free its client, which changes the list.  At most
     * TR_JWKS_MAX_HELD walks, and only when requests were held. */
    for (size_t i = 0; i < n; i++) {
        bool alive = false;

        for (tr_client *c = f->srv->clients; c && !alive; c = c->next)
            alive = c->req_active && &c->req == list[i].req;
        if (!alive)
            continue;
        tr_request *r = list[i].req;
        if (r->finished || r->stage != TR_STAGE_IDENTIFY ||
            strcmp(r->id, list[i].id) != 0)
            continue;
        f->resuming = r;
        tr_pipeline_continue(r);
        f->resuming = NULL;
    }
}

static void
on_hold_timeout(uv_timer_t *t)
{
    resume_held(t->data);
}

static void
log_fetched(jwks_src *s, const fetch_result *r, bool changed)
{
    char kids[512], quoted[600];
    size_t len = 0, n = tr_keyset_count(r->ks);

    kids[0] = '\0';
    for (size_t i = 0; i < n && len + 2 < sizeof(kids); i++) {
        const tr_jwk *k = tr_keyset_key(r->ks, i);
        const char *kid = k->kid ? k->kid : "(none)";
        int w = snprintf(kids + len, sizeof(kids) - len, "%s%s",
                         i ? "," : "", kid);

        if (w < 0)
            break;
        len += (size_t)w < sizeof(kids) - len ? (size_t)w
                                               : sizeof(kids) - len - 1;
    }
    tr_log_quote(quoted, sizeof(quoted), kids, len);
    tr_log(TR_LOG_INFO, "jwks_fetched",
           "issuer=%s keys=%zu skipped=%zu kids=%s changed=%s reason=%s "
           "bytes=%zu ms=%.1f",
           s->cfg->name, n, tr_keyset_skipped(r->ks), quoted,
           changed ? "true" : "false",
           s->fetch_is_refetch ? "unknown_kid" : "refresh", r->bytes,
           r->seconds * 1000.0);
}

static void
handle_result(jwks_src *s, fetch_result *r)
{
    tr_jwks_fetcher *f = s->f;
    uint64_t now = tr_now_ns();
    bool ok = r->ks != NULL;
    char quoted[300];

    if (ok && !f->srv->dev && tr_keyset_has_dev_key(r->ks)) {
        snprintf(r->err, sizeof(r->err), "the key set holds development "
                 "keys (kid " TR_DEV_KID_PREFIX "...), refused without "
                 "--dev");
        tr_keyset_unref(r->ks);
        r->ks = NULL;
        ok = false;
    }
    if (ok) {
        bool changed = s->n_keys == 0 ||
                       memcmp(s->fingerprint, tr_keyset_fingerprint(r->ks),
                              sizeof(s->fingerprint)) != 0;

        tr_verifier_set_keys(f->v, s->issuer, r->ks);
        s->n_keys = tr_keyset_count(r->ks);
        memcpy(s->fingerprint, tr_keyset_fingerprint(r->ks),
               sizeof(s->fingerprint));
        log_fetched(s, r, changed);
        if (tr_keyset_has_dev_key(r->ks))
            tr_log(TR_LOG_WARN, "dev_keys_in_use",
                   "issuer=%s note=\"development keys accepted (--dev); "
                   "never in production\"", s->cfg->name);
        tr_keyset_unref(r->ks);
        r->ks = NULL;
    } else {
        s->failures++;
    }
    tr_jwks_refresh_done(&s->sched, ok, now);
    if (!ok) {
        tr_jwks_key_state st = tr_jwks_refresh_state(&s->sched, now);

        tr_log_quote(quoted, sizeof(quoted), r->err, strlen(r->err));
        tr_log(TR_LOG_WARN, "jwks_fetch_failed",
               "issuer=%s error=%s http_status=%ld reason=%s keys=%s "
               "retry_s=%.0f",
               s->cfg->name, quoted, r->http_status,
               s->fetch_is_refetch ? "unknown_kid" : "refresh",
               st == TR_JWKS_NONE ? "none"
                                  : st == TR_JWKS_STALE ? "stale" : "fresh",
               (double)(s->sched.next_fetch_ns - now) / 1e9);
        if (tr_jwks_refresh_expired(&s->sched, now))
            withdraw(s);
    }
    resume_held(s);
    schedule(s);
}

static void
on_async(uv_async_t *a)
{
    tr_jwks_fetcher *f = a->data;

    for (size_t i = 0; i < f->n; i++) {
        jwks_src *s = &f->src[i];
        fetch_result r;
        bool got;

        if (!s->active)
            continue;
        uv_mutex_lock(&s->mu);
        got = s->has_result;
        if (got) {
            r = s->result;
            s->has_result = false;
            s->result.ks = NULL;
        }
        uv_mutex_unlock(&s->mu);
        if (got)
            handle_result(s, &r);
    }
}

static void
on_timer(uv_timer_t *t)
{
    jwks_src *s = t->data;
    uint64_t now = tr_now_ns();

    if (tr_jwks_refresh_expired(&s->sched, now))
        withdraw(s);
    if (tr_jwks_refresh_due(&s->sched, now))
        begin_fetch(s, false);
    schedule(s);
}

static void
schedule(jwks_src *s)
{
    uint64_t wake = tr_jwks_refresh_next_wake(&s->sched);
    uint64_t now = tr_now_ns(), ms;

    uv_timer_stop(&s->timer);
    if (wake == TR_JWKS_NEVER)
        return;
    /* Rounded up, so the timer never fires just before the moment. */
    ms = wake <= now ? 0 : (wake - now + NS_PER_MS - 1) / NS_PER_MS;
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

bool
tr_jwks_fetcher_unknown_kid(tr_jwks_fetcher *f, size_t issuer,
                            tr_request *req)
{
    jwks_src *s;
    uint64_t now, waited_ms;

    if (!f || issuer >= f->n || !f->src[issuer].active ||
        f->resuming == req)
        return false;
    s = &f->src[issuer];
    now = tr_now_ns();
    switch (tr_jwks_refresh_unknown_kid(&s->sched, now)) {
    case TR_JWKS_KID_REFUSE:
        s->refetches_refused++;
        return false;
    case TR_JWKS_KID_FETCH:
        if (s->n_held == TR_JWKS_MAX_HELD)
            return false;
        begin_fetch(s, true);
        schedule(s);
        break;
    case TR_JWKS_KID_WAIT:
        if (s->n_held == TR_JWKS_MAX_HELD)
            return false;
        break;
    }

    held_req *h = &s->held[s->n_held++];
    h->req = req;
    memcpy(h->id, req->id, sizeof(h->id));
    s->held_total++;
    if (s->n_held == 1) {
        /* begin_fetch read the clock after `now` */
        waited_ms = now > s->fetch_start_ns
                        ? (now - s->fetch_start_ns) / NS_PER_MS : 0;
        uv_timer_start(&s->hold_timer, on_hold_timeout,
                       waited_ms >= TR_JWKS_HOLD_MS
                           ? 0 : TR_JWKS_HOLD_MS - waited_ms, 0);
    }
    return true;
}

/* ----------------------------------------------------------- metrics */

static void
emit(tr_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
emit(tr_buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        tr_buf_append(out, line,
                      (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1,
                      SIZE_MAX);
}

/* One counter family; `offset` locates the uint64_t field in jwks_src,
 * so the six families share this loop. */
static void
render_counter(const tr_jwks_fetcher *f, tr_buf *out, const char *name,
               const char *help, size_t offset)
{
    emit(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (size_t i = 0; i < f->n; i++) {
        const jwks_src *s = &f->src[i];

        if (s->active)
            emit(out, "%s{issuer=\"%s\"} %llu\n", name, s->cfg->name,
                 (unsigned long long)*(const uint64_t *)
                     ((const char *)s + offset));
    }
}

static void
render_metrics(void *ctx, tr_buf *out)
{
    const tr_jwks_fetcher *f = ctx;
    uint64_t now = tr_now_ns();

    render_counter(f, out, "treaty_jwks_fetches_total",
                   "JWKS fetches started (refresh and refetch).",
                   offsetof(jwks_src, fetches));
    render_counter(f, out, "treaty_jwks_fetch_failures_total",
                   "JWKS fetches that brought no usable key set.",
                   offsetof(jwks_src, failures));
    render_counter(f, out, "treaty_jwks_refetches_total",
                   "Refetches started for a token with an unknown kid.",
                   offsetof(jwks_src, refetches));
    render_counter(f, out, "treaty_jwks_refetches_refused_total",
                   "Unknown-kid refetches refused by the rate limit.",
                   offsetof(jwks_src, refetches_refused));
    render_counter(f, out, "treaty_jwks_held_requests_total",
                   "Requests that waited for a refetch.",
                   offsetof(jwks_src, held_total));
    render_counter(f, out, "treaty_jwks_withdrawals_total",
                   "Key sets withdrawn after the grace period.",
                   offsetof(jwks_src, withdrawals));

    emit(out, "# HELP treaty_jwks_keys Keys in service, by issuer.\n"
              "# TYPE treaty_jwks_keys gauge\n");
    for (size_t i = 0; i < f->n; i++)
        if (f->src[i].active)
            emit(out, "treaty_jwks_keys{issuer=\"%s\"} %zu\n",
                 f->src[i].cfg->name, f->src[i].n_keys);
    emit(out, "# HELP treaty_jwks_keys_age_seconds Since the last good "
              "fetch (-1: none in service).\n"
              "# TYPE treaty_jwks_keys_age_seconds gauge\n");
    for (size_t i = 0; i < f->n; i++) {
        const jwks_src *s = &f->src[i];
        double age = -1;

        if (!s->active)
            continue;
        if (s->sched.have_keys)
            age = (double)(now - s->sched.last_ok_ns) / 1e9;
        emit(out, "treaty_jwks_keys_age_seconds{issuer=\"%s\"} %.3f\n",
             s->cfg->name, age);
    }
}

/* ------------------------------------------------------ start / stop */

static int
start_source(tr_jwks_fetcher *f, size_t i)
{
    jwks_src *s = &f->src[i];
    uv_loop_t *loop = f->srv->loop;
    const tr_issuer_cfg *c = s->cfg;
    char url[512];

    s->held = calloc(TR_JWKS_MAX_HELD, sizeof(*s->held));
    s->spare = calloc(TR_JWKS_MAX_HELD, sizeof(*s->spare));
    if (!s->held || !s->spare)
        return -1;
    if (uv_mutex_init(&s->mu) != 0)
        return -1;
    if (uv_cond_init(&s->cv) != 0) {
        uv_mutex_destroy(&s->mu);
        return -1;
    }
    atomic_init(&s->abort, false);
    uv_timer_init(loop, &s->timer);
    uv_timer_init(loop, &s->hold_timer);
    s->timer.data = s->hold_timer.data = s;
    /* Refresh timers must not keep a draining gateway alive. */
    uv_unref((uv_handle_t *)&s->timer);
    uv_unref((uv_handle_t *)&s->hold_timer);
    s->active = true;
    tr_jwks_refresh_init(&s->sched, c->jwks_refresh_s, c->jwks_grace_s,
                         c->jwks_min_refetch_s, tr_now_ns());
    if (uv_thread_create(&s->thread, fetch_thread, s) != 0)
        return -1;
    s->thread_started = true;
    tr_log(TR_LOG_INFO, "jwks_source", "issuer=%s url=%s refresh_s=%u "
           "grace_s=%u min_refetch_s=%u%s", c->name,
           tr_log_quote(url, sizeof(url), c->jwks_url, strlen(c->jwks_url)),
           c->jwks_refresh_s, c->jwks_grace_s, c->jwks_min_refetch_s,
           c->jwks_insecure_http ? " insecure_http=true" : "");
    schedule(s);
    return 0;
}

int
tr_jwks_fetcher_start(tr_server *srv, struct tr_verifier *v,
                      tr_jwks_fetcher **out)
{
    const tr_identity_cfg *id = &srv->cfg->identity;
    static bool curl_ready;
    tr_jwks_fetcher *f;
    size_t n_url = 0;

    *out = NULL;
    for (size_t i = 0; i < id->n_issuers; i++)
        n_url += id->issuers[i].jwks_url != NULL;
    if (n_url == 0 || !v)
        return 0;
    /* Once, before any thread uses libcurl: the global init is not
     * thread-safe. */
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            tr_log(TR_LOG_ERROR, "jwks_failed", "error=\"curl init\"");
            return -1;
        }
        curl_ready = true;
    }
    f = calloc(1, sizeof(*f));
    if (!f || !(f->src = calloc(id->n_issuers, sizeof(*f->src)))) {
        free(f);
        return -1;
    }
    f->srv = srv;
    f->v = v;
    f->n = id->n_issuers;
    if (uv_async_init(srv->loop, &f->async, on_async) != 0) {
        free(f->src);
        free(f);
        return -1;
    }
    f->async.data = f;
    uv_unref((uv_handle_t *)&f->async);
    *out = f;
    for (size_t i = 0; i < f->n; i++) {
        f->src[i].f = f;
        f->src[i].issuer = i;
        f->src[i].cfg = &id->issuers[i];
        if (!id->issuers[i].jwks_url)
            continue;
        if (start_source(f, i) != 0) {
            tr_log(TR_LOG_ERROR, "jwks_failed", "issuer=%s error=\"cannot "
                   "start the fetch thread\"", id->issuers[i].name);
            return -1;
        }
    }
    tr_metrics_add_renderer(render_metrics, f);
    return 0;
}

void
tr_jwks_fetcher_stop(tr_jwks_fetcher *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        jwks_src *s = &f->src[i];

        if (!s->thread_started)
            continue;
        atomic_store(&s->abort, true);
        uv_mutex_lock(&s->mu);
        s->quit = true;
        uv_cond_signal(&s->cv);
        uv_mutex_unlock(&s->mu);
    }
    for (size_t i = 0; i < f->n; i++) {
        jwks_src *s = &f->src[i];

        if (s->thread_started)
            uv_thread_join(&s->thread);
        if (!s->active)
            continue;
        tr_keyset_unref(s->has_result ? s->result.ks : NULL);
        uv_close((uv_handle_t *)&s->timer, NULL);
        uv_close((uv_handle_t *)&s->hold_timer, NULL);
    }
    uv_close((uv_handle_t *)&f->async, NULL);
    uv_run(f->srv->loop, UV_RUN_NOWAIT);
    for (size_t i = 0; i < f->n; i++) {
        jwks_src *s = &f->src[i];

        if (!s->active)
            continue;
        uv_cond_destroy(&s->cv);
        uv_mutex_destroy(&s->mu);
        free(s->held);
        free(s->spare);
    }
    free(f->src);
    free(f);
}
