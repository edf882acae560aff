/*
 * The public budget scenarios of ../shared/cases/budgets.md (S1, S2, S4,
 * S5) on a virtual clock: the limiter core as the server drives it, with
 * the responses it would send recorded and checked for conformance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "budgets_fixture.h"

#define IANA "https://iana.org/assignments/http-problem-types#"

static budget_fixture fx;

/* ---- responses as the server would write them ------------------------ */

typedef struct {
    int status;
    uint32_t retry_after;       /* 0 = no field */
    char policy[512];           /* RateLimit-Policy, "" = none */
    char ratelimit[512];        /* RateLimit */
    char body[512];             /* problem+json, "" for 200 */
    int32_t tool;
    tr_caller_class cls;
    char principal[16];
    size_t principal_len;
} response;

static response log_[4096];
static size_t n_log;

static const response *
respond(tr_admission *adm, const tr_admit_request *rq,
        const tr_admit_decision *d)
{
    response *r = &log_[n_log++];
    const char *pol;
    size_t len;

    assert_true(n_log < sizeof(log_) / sizeof(log_[0]));
    memset(r, 0, sizeof(*r));
    r->tool = rq->tool;
    r->cls = rq->cls;
    assert_true(rq->principal_key_len <= sizeof(r->principal));
    memcpy(r->principal, rq->principal_key, rq->principal_key_len);
    r->principal_len = rq->principal_key_len;
    pol = tr_admission_policy(adm, rq->tool, rq->cls, &len);
    if (pol != NULL)
        memcpy(r->policy, pol, len + 1);
    assert_true(tr_ratelimit_format(r->ratelimit, sizeof(r->ratelimit),
                                    d->items, d->n_items) >= 0);
    if (d->outcome != TR_ADMIT_REFUSED) {
        r->status = 200;
        return r;
    }
    const tr_problem_info *pi = tr_problem(d->problem);
    json_t *prob = json_pack("{s:s, s:s, s:i}", "type", pi->type, "title",
                             pi->title, "status", pi->status);
    char *text;

    assert_int_equal(tr_ratelimit_add_violated(prob, d->violated,
                                               d->n_violated),
                     0);
    text = json_dumps(prob, JSON_COMPACT);
    assert_true(strlen(text) < sizeof(r->body));
    memcpy(r->body, text, strlen(text) + 1);
    free(text);
    json_decref(prob);
    r->status = pi->status;
    r->retry_after = d->retry_after_s;
    return r;
}

/* A request the backend answers at once: admit, respond, release. */
static const response *
quick(tr_admission *adm, tr_admit_request rq, uint64_t now)
{
    tr_admit_ticket tk;
    tr_admit_decision d;

    tr_admit_ticket_init(&tk, NULL);
    tr_admit(adm, &tk, &rq, now, &d);
    assert_int_not_equal(d.outcome, TR_ADMIT_QUEUED);
    tr_admit_release(adm, &tk, now);
    return respond(adm, &rq, &d);
}

/* ---- a strict reader for the RFC 9651 lists we send ------------------- */

typedef struct {
    char name[72];
    int n_params;
    char key[6][8];
    bool is_int[6];
    int64_t ival[6];
    char sval[6][40];
} sf_item;

static const char *
sf_string(const char *p, char *out, size_t cap)
{
    size_t n = 0;

    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        if (*p == '\\') {
            p++;
            if (*p != '"' && *p != '\\')
                return NULL;
        }
        if (*p < 0x20 || *p > 0x7e || n + 1 >= cap)
            return NULL;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return p + 1;
}

static const char *
sf_integer(const char *p, int64_t *v)
{
    int digits = 0;
    bool neg = *p == '-';

    if (neg)
        p++;
    *v = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 15)
            return NULL;
        *v = *v * 10 + (*p++ - '0');
    }
    if (digits == 0)
        return NULL;
    if (neg)
        *v = -*v;
    return p;
}

/* Returns the item count, or -1 when the value does not parse. */
static int
sf_list(const char *p, sf_item *items, int max)
{
    int n = 0;

    while (*p != '\0') {
        sf_item *it = &items[n];

        if (n == max)
            return -1;
        memset(it, 0, sizeof(*it));
        if ((p = sf_string(p, it->name, sizeof(it->name))) == NULL)
            return -1;
        while (*p == ';') {
            int k = it->n_params++;
            size_t kl = 0;

            p++;
            if (k >= 6 || !(*p >= 'a' && *p <= 'z'))
                return -1;
            while ((*p >= 'a' && *p <= 'z') || *p == '-') {
                if (kl + 1 >= sizeof(it->key[k]))
                    return -1;
                it->key[k][kl++] = *p++;
            }
            if (*p++ != '=')
                return -1;
            if (*p == '"') {
                p = sf_string(p, it->sval[k], sizeof(it->sval[k]));
            } else {
                it->is_int[k] = true;
                p = sf_integer(p, &it->ival[k]);
            }
            if (p == NULL)
                return -1;
        }
        n++;
        if (*p == '\0')
            break;
        if (*p++ != ',')
            return -1;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return -1;
    }
    return n;
}

static const int64_t *
param_int(const sf_item *it, const char *key)
{
    int i;

    for (i = 0; i < it->n_params; i++) {
        if (strcmp(it->key[i], key) == 0)
            return it->is_int[i] ? &it->ival[i] : NULL;
    }
    return NULL;
}

static bool
has_param(const sf_item *it, const char *key)
{
    int i;

    for (i = 0; i < it->n_params; i++) {
        if (strcmp(it->key[i], key) == 0)
            return true;
    }
    return false;
}

/* Finds the RateLimit item of a policy in a response. */
static bool
limit_of(const response *r, const char *name, int64_t *rem, int64_t *t)
{
    sf_item items[12];
    int n = sf_list(r->ratelimit, items, 12), i;

    assert_true(n >= 0);
    for (i = 0; i < n; i++) {
        if (strcmp(items[i].name, name) == 0) {
            *rem = *param_int(&items[i], "r");
            *t = param_int(&items[i], "t") ? *param_int(&items[i], "t")
                                            : -1;
            return true;
        }
    }
    return false;
}

/*
 * S5 over every response recorded so far.
 */
static void
check_conformance(void)
{
    sf_item pol[12], lim[12];
    size_t i, j;
    int np, nl, k;

    assert_true(n_log > 0);
    for (i = 0; i < n_log; i++) {
        const response *r = &log_[i];

        np = sf_list(r->policy, pol, 12);
        nl = sf_list(r->ratelimit, lim, 12);
        assert_true(np >= 1);
        /* RateLimit for each policy of the route, in the same order */
        assert_int_equal(nl, np);
        for (k = 0; k < np; k++) {
            const int64_t *q = param_int(&pol[k], "q");
            const int64_t *w = param_int(&pol[k], "w");
            const int64_t *rv = param_int(&lim[k], "r");
            const int64_t *tv = param_int(&lim[k], "t");

            assert_string_equal(lim[k].name, pol[k].name);
            assert_non_null(q);
            assert_true(*q >= 0);
            if (has_param(&pol[k], "w"))
                assert_true(w != NULL && *w >= 1);
            assert_non_null(rv);
            assert_true(*rv >= 0);
            if (has_param(&lim[k], "t"))
                assert_true(tv != NULL && *tv >= 0);
        }
        /* byte-identical policy per route and principal */
        for (j = 0; j < i; j++) {
            if (log_[j].tool == r->tool && log_[j].cls == r->cls &&
                log_[j].principal_len == r->principal_len &&
                memcmp(log_[j].principal, r->principal,
                       r->principal_len) == 0)
                assert_string_equal(log_[j].policy, r->policy);
        }
        if (r->status == 200) {
            assert_int_equal(r->retry_after, 0);
            continue;
        }
        assert_true(r->status == 429 || r->status == 503);
        assert_true(r->retry_after >= 1);
        json_error_t err;
        json_t *body = json_loads(r->body, 0, &err), *vp;
        const char *type = json_string_value(json_object_get(body, "type"));

        assert_non_null(body);
        assert_string_equal(type, r->status == 429
                                      ? IANA "quota-exceeded"
                                      : IANA "temporary-reduced-capacity");
        vp = json_object_get(body, "violated-policies");
        assert_true(json_is_array(vp) && json_array_size(vp) >= 1);
        /* Retry-After never earlier than any violated policy's t */
        for (j = 0; j < json_array_size(vp); j++) {
            int64_t rem, t;
            const char *name = json_string_value(json_array_get(vp, j));

            if (limit_of(r, name, &rem, &t))
                assert_true(t <= (int64_t)r->retry_after);
        }
        json_decref(body);
    }
}

static int
setup_fixture(void **state)
{
    fixture_common(&fx);
    return 0;
}

/* ---- S1 -------------------------------------------------------------- */

static void
test_s1_burst_cadence_and_window_boundaries(void **state)
{
    tr_admit_request a = who("alice", TR_CLASS_AGENT, TOOL_SEARCH);
    tr_admit_ticket tk[20];
    tr_admit_decision d;
    tr_admission *adm;
    const response *r;
    uint64_t x = 0x51, t;
    int i, ok, refused;

    fx.cfg.budgets.agent.concurrency = 100;
    adm = tr_admission_create(&fx.cfg, 42);
    assert_non_null(adm);

    /* 1. t=0: 20 simultaneous requests, all in flight together. */
    for (i = 0; i < 20; i++) {
        tr_admit_ticket_init(&tk[i], NULL);
        assert_int_equal(tr_admit(adm, &tk[i], &a, 0, &d), TR_ADMIT_OK);
        assert_int_equal(respond(adm, &a, &d)->status, 200);
    }
    for (i = 0; i < 20; i++)
        tr_admit_release(adm, &tk[i], 0);

    /* 2. request 21 at 5 ms: 429, Retry-After 1, "rate";r=0;t=1 */
    r = quick(adm, a, 5 * MS);
    assert_int_equal(r->status, 429);
    assert_int_equal(r->retry_after, 1);
    assert_string_equal(r->ratelimit, "\"rate\";r=0;t=1, \"inflight\";r=100");
    assert_non_null(strstr(r->body, IANA "quota-exceeded"));

    /* 3. t=0.5 s: 5 pass, the 6th is refused */
    for (i = 0; i < 5; i++)
        assert_int_equal(quick(adm, a, 500 * MS)->status, 200);
    assert_int_equal(quick(adm, a, 500 * MS)->status, 429);

    /* 4. from t=1 s: 10/s for 30 s with +-20 ms jitter, never refused */
    ok = refused = 0;
    for (i = 0; i < 300; i++) {
        t = 1 * S + (uint64_t)i * 100 * MS + 20 * MS;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        t -= (x >> 33) % (40 * MS + 1);
        r = quick(adm, a, t);
        ok += r->status == 200;
        refused += r->status == 429;
    }
    assert_int_equal(ok, 300);
    assert_int_equal(refused, 0);

    /* 5. after 10 s idle: 20 just before T, 20 just after */
    t = 31 * S + 10 * S;
    ok = 0;
    for (i = 0; i < 20; i++)
        ok += quick(adm, a, t - 10 * MS)->status == 200;
    assert_int_equal(ok, 20);
    ok = 0;
    for (i = 0; i < 20; i++)
        ok += quick(adm, a, t + 10 * MS)->status == 200;
    assert_true(ok <= 1);

    /* 6. 100 requests within the same millisecond after idle: exactly 20 */
    t = 60 * S;
    ok = 0;
    for (i = 0; i < 100; i++)
        ok += quick(adm, a, t + (uint64_t)i * 10000)->status == 200;
    assert_int_equal(ok, 20);

    tr_admission_free(adm);
}

/* ---- S2 -------------------------------------------------------------- */

typedef struct {
    tr_admit_ticket tk;
    tr_admit_request rq;
    int id;
    bool forwarded;
    uint64_t forwarded_at;
} worker_req;

static int backend_now, backend_peak, backend_hits;

static void
forward(worker_req *w, uint64_t now)
{
    assert_false(w->forwarded);
    w->forwarded = true;
    w->forwarded_at = now;
    backend_hits++;
    if (++backend_now > backend_peak)
        backend_peak = backend_now;
}

static void
backend_done(tr_admission *adm, worker_req *w, uint64_t now)
{
    tr_admit_ticket *woken;
    tr_admit_decision d;

    backend_now--;
    woken = tr_admit_release(adm, &w->tk, now);
    if (woken != NULL) {
        worker_req *next = woken->wait.owner;

        /* the woken request is answered with current values */
        tr_admit_describe(adm, woken, now, &d);
        assert_int_equal(respond(adm, &next->rq, &d)->status, 200);
        forward(next, now);
    }
}

static void
s2_run(uint64_t hold, worker_req *w, int *admitted, int *queued,
       int *refused_429, int *refused_503)
{
    tr_admit_request a = who("A", TR_CLASS_AGENT, TOOL_SEARCH);
    tr_admit_request b = who("B", TR_CLASS_AGENT, TOOL_SEARCH);
    worker_req wb = {0};
    tr_admit_decision d;
    tr_admission *adm;
    const response *r;
    int i;

    adm = tr_admission_create(&fx.cfg, 7);
    assert_non_null(adm);
    backend_now = backend_peak = backend_hits = 0;
    *admitted = *queued = *refused_429 = *refused_503 = 0;

    /* t=0: twelve requests of user A (twelve worker tokens, one
     * principal) */
    for (i = 0; i < 12; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].id = i;
        w[i].rq = a;
        tr_admit_ticket_init(&w[i].tk, &w[i]);
        switch (tr_admit(adm, &w[i].tk, &a, 0, &d)) {
        case TR_ADMIT_OK:
            (*admitted)++;
            assert_int_equal(respond(adm, &a, &d)->status, 200);
            forward(&w[i], 0);
            break;
        case TR_ADMIT_QUEUED:
            (*queued)++;
            assert_int_equal(d.queue_deadline, 2 * S);
            break;
        case TR_ADMIT_REFUSED:
            (*refused_429)++;
            r = respond(adm, &a, &d);
            assert_int_equal(r->status, 429);
            assert_int_equal(r->retry_after, 1);
            assert_non_null(strstr(r->ratelimit, "\"inflight\";r=0"));
            assert_non_null(strstr(
                r->policy, "\"inflight\";q=4;qu=\"concurrent-requests\""));
            assert_non_null(strstr(r->body, "[\"inflight\"]"));
            break;
        }
    }

    /* t=0.1 s: user B is not delayed by A's queue */
    tr_admit_ticket_init(&wb.tk, &wb);
    assert_int_equal(tr_admit(adm, &wb.tk, &b, 100 * MS, &d), TR_ADMIT_OK);
    respond(adm, &b, &d);
    backend_now++;

    if (hold == 1000 * MS) {
        /* t=1.0 s: the first four finish; the queued four go */
        for (i = 0; i < 4; i++)
            backend_done(adm, &w[i], hold);
        backend_now--;
        assert_null(tr_admit_release(adm, &wb.tk, 1100 * MS));
        /* t=2.0 s: their timers fire after they were forwarded */
        for (i = 4; i < 8; i++)
            assert_false(tr_admit_timeout(adm, &w[i].tk, 2 * S, &d));
        for (i = 4; i < 8; i++)
            backend_done(adm, &w[i], 2 * S);
    } else {
        /* t=2.0 s: the queued four time out, never forwarded */
        for (i = 4; i < 8; i++) {
            if (tr_admit_timeout(adm, &w[i].tk, 2 * S, &d)) {
                (*refused_503)++;
                r = respond(adm, &a, &d);
                assert_int_equal(r->status, 503);
                assert_true(r->retry_after >= 1);
                assert_non_null(
                    strstr(r->body, IANA "temporary-reduced-capacity"));
            }
        }
        for (i = 0; i < 4; i++)
            backend_done(adm, &w[i], hold);
        backend_now--;
        assert_null(tr_admit_release(adm, &wb.tk, 100 * MS + hold));
    }
    for (i = 0; i < 12; i++)
        tr_admit_release(adm, &w[i].tk, 10 * S);

    tr_admission_stats st;

    tr_admission_stats_get(adm, &st);
    assert_int_equal(st.inflight[TR_CLASS_AGENT], 0);
    assert_int_equal(st.waiting[TR_CLASS_AGENT], 0);
    tr_admission_free(adm);
}

static void
test_s2_cap_4_queue_4_across_twelve_workers(void **state)
{
    worker_req w[12];
    int admitted, queued, r429, r503, i;

    s2_run(1000 * MS, w, &admitted, &queued, &r429, &r503);
    assert_int_equal(admitted, 4);
    assert_int_equal(queued, 4);
    assert_int_equal(r429, 4);
    assert_int_equal(r503, 0);
    assert_true(backend_peak <= 4 + 1); /* A's four plus B's one */
    assert_int_equal(backend_hits, 8);
    /* the queued four are forwarded at 1.0 s, in arrival order */
    for (i = 4; i < 8; i++) {
        assert_true(w[i].forwarded);
        assert_int_equal(w[i].forwarded_at, 1000 * MS);
    }
    for (i = 8; i < 12; i++)
        assert_false(w[i].forwarded);
}

static void
test_s2_slow_backend_queued_time_out_503_never_forwarded(void **state)
{
    worker_req w[12];
    int admitted, queued, r429, r503, i;

    s2_run(3000 * MS, w, &admitted, &queued, &r429, &r503);
    assert_int_equal(admitted, 4);
    assert_int_equal(queued, 4);
    assert_int_equal(r429, 4);
    assert_int_equal(r503, 4);
    assert_int_equal(backend_hits, 4);
    for (i = 4; i < 12; i++)
        assert_false(w[i].forwarded);
}

/* ---- S4 -------------------------------------------------------------- */

static void
test_s4_dimensions_without_double_charging(void **state)
{
    tr_admit_request email = who("A", TR_CLASS_AGENT, TOOL_EMAIL);
    tr_admit_request search = who("A", TR_CLASS_AGENT, TOOL_SEARCH);
    tr_admission *adm = tr_admission_create(&fx.cfg, 9);
    const response *r;
    int64_t rate_after_3rd, rate_in_4th, rem, t;
    uint64_t now, first_ok = 0;
    int i;

    /* 1. four back-to-back send_email: 3 x 200, then 429 */
    for (i = 0; i < 3; i++)
        assert_int_equal(quick(adm, email, (uint64_t)i * MS)->status, 200);
    assert_true(limit_of(&log_[n_log - 1], "rate", &rate_after_3rd, &t));
    r = quick(adm, email, 3 * MS);
    assert_int_equal(r->status, 429);
    assert_non_null(strstr(r->body, "\"violated-policies\":[\"email\"]"));
    assert_int_equal(r->retry_after, 20);
    assert_true(limit_of(r, "email", &rem, &t));
    assert_int_equal(rem, 0);
    assert_int_equal(t, 20);
    /* 2. the refused request consumed no rate unit */
    assert_true(limit_of(r, "rate", &rate_in_4th, &t));
    assert_int_equal(rate_in_4th, rate_after_3rd);
    assert_int_equal(rate_in_4th, 17);

    /* 3. fifteen searches pass: email exhaustion blocks only email */
    for (i = 0; i < 15; i++)
        assert_int_equal(quick(adm, search, 4 * MS)->status, 200);

    /* 4. retry storm every 500 ms from the 3rd success: refused until
     * about 20 s, and the refusals never push recovery out */
    for (now = 2 * MS; now < 40 * S; now += 500 * MS) {
        r = quick(adm, email, now);
        if (r->status == 200) {
            first_ok = now;
            break;
        }
        assert_int_equal(r->status, 429);
    }
    assert_true(first_ok >= 19500 * MS && first_ok <= 20500 * MS);
    tr_admission_free(adm);
}

/* ---- S5 -------------------------------------------------------------- */

/*
 * Honesty: after exhausting a budget with random traffic, a client that
 * waits exactly Retry-After and retries alone succeeds; one second less
 * and it is refused.  1000 randomized trials, each on its own principal.
 */
static void
test_s5_retry_after_is_honest_in_1000_trials(void **state)
{
    tr_admission *adm;
    uint64_t x = 2024, now;
    int trial, successes = 0, early_refused = 0;
    char user[16];

    fx.cfg.budgets.table_capacity = 4096;
    adm = tr_admission_create(&fx.cfg, 11);
    assert_non_null(adm);
    for (trial = 0; trial < 1000; trial++) {
        int32_t tool = (x >> 7) % 2 ? TOOL_EMAIL : TOOL_SEARCH;
        tr_admit_request rq;
        const response *r;

        snprintf(user, sizeof(user), "u%d", trial);
        rq = who(user, TR_CLASS_AGENT, tool);
        now = (uint64_t)trial * 1000 * S; /* trials apart in time */
        do {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            now += (x >> 33) % (60 * MS);
            r = quick(adm, rq, now);
        } while (r->status == 200);
        assert_int_equal(r->status, 429);
        n_log = 0; /* keep the log for the scenarios above small */
        early_refused +=
            quick(adm, rq, now + ((uint64_t)r->retry_after - 1) * S)
                ->status == 429;
        successes +=
            quick(adm, rq, now + (uint64_t)r->retry_after * S)->status ==
            200;
        n_log = 0;
    }
    assert_int_equal(successes, 1000);
    assert_int_equal(early_refused, 1000);
    tr_admission_free(adm);
}

static void
test_s5_headers_and_problems_conform_over_s1_s2_s4(void **state)
{
    worker_req w[12];
    int a, q, r4, r5;

    n_log = 0;
    fixture_common(&fx);
    test_s1_burst_cadence_and_window_boundaries(state);
    fixture_common(&fx);
    s2_run(1000 * MS, w, &a, &q, &r4, &r5);
    s2_run(3000 * MS, w, &a, &q, &r4, &r5);
    fixture_common(&fx);
    test_s4_dimensions_without_double_charging(state);
    assert_true(n_log > 400);
    check_conformance();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_s1_burst_cadence_and_window_boundaries,
                               setup_fixture),
        cmocka_unit_test_setup(test_s2_cap_4_queue_4_across_twelve_workers,
                               setup_fixture),
        cmocka_unit_test_setup(
            test_s2_slow_backend_queued_time_out_503_never_forwarded,
            setup_fixture),
        cmocka_unit_test_setup(test_s4_dimensions_without_double_charging,
                               setup_fixture),
        cmocka_unit_test_setup(test_s5_retry_after_is_honest_in_1000_trials,
                               setup_fixture),
        cmocka_unit_test_setup(
            test_s5_headers_and_problems_conform_over_s1_s2_s4,
            setup_fixture),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
