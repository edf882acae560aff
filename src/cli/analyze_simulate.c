/*
 * `treaty analyze --simulate CONFIG`: the log's timeline replayed through
 * the limiter the gateway runs (src/core/admission.c, with its GCRA,
 * concurrency queues and key table), not a copy of it.
 *
 * Each request arrives at its logged start.  Admitted, it holds its slot
 * for its logged duration; queued, it waits in the real FIFO until a slot
 * passes to it (then holds it for its duration) or its deadline expires.
 * The clock is the log's, shifted to start at 1 s.  At one instant,
 * releases come first, then expired deadlines, then arrivals.
 *
 * Known shortcomings, stated in the report:
 *   - without logged durations a request holds its slot for
 *     --assume-duration-ms (default 0), so concurrency rarely binds;
 *   - a logged duration includes any wait treaty's own queue imposed:
 *     when the log says a request waited, the wait simulated here is
 *     taken off its duration, which is exact only when the two waits
 *     agree;
 *   - principals beyond the tracking cap are simulated under their own
 *     budgets (keyed by a hash) but reported together as "(other)".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/analyze.h"
#include "config/config_load.h"
#include "core/admission.h"
#include "core/config.h"
#include "core/ratelimit_headers.h"
#include "core/route.h"
#include "core/target.h"

#define NS 1000000000LL

typedef struct {
    uint64_t requests;
    uint64_t admitted;             /* at once */
    uint64_t queued;               /* entered a queue */
    uint64_t admitted_after_wait;
    uint64_t replays;
    uint64_t refused[TR_ADMIT_REASON__COUNT];
    uint64_t refused_total;
    uint64_t wait_ns_sum, wait_ns_max;
    uint64_t *dim_refused;         /* per dimension: named in refusals */
    uint64_t *dim_shadow;          /* per dimension: shadow verdicts */
} sim_counts;

typedef struct sim_req {
    tr_admit_ticket tk;
    uint64_t arrival;
    uint64_t dur;
    uint32_t who;                  /* principal index in the table */
    int32_t tool;
    uint8_t logged;
    uint8_t pending;               /* timer events still referring to it */
    bool finished;                 /* counted; freed when pending is 0 */
} sim_req;

typedef enum { EV_RELEASE = 0, EV_DEADLINE = 1 } ev_kind;

typedef struct {
    uint64_t at;
    uint64_t seq;                  /* FIFO among equal times and kinds */
    sim_req *req;
    uint8_t kind;
} sim_timer;

struct tr_sim {
    char *config_path;
    tr_config *cfg;
    tr_admission *adm;
    tr_router *router;
    const tr_traffic *stats;

    size_t n_dims;                 /* rate, inflight, then each quota */
    sim_counts total;
    sim_counts *by_principal;
    size_t n_principals;
    sim_counts *by_tool;           /* n_tools + 1: the last is no tool */

    sim_timer *heap;
    size_t n_heap, cap_heap;
    uint64_t seq;

    bool started;
    int64_t origin_ns;
    uint64_t now;
    uint64_t assume_dur_ns;
    uint64_t no_duration;          /* requests that used the assumption */
    uint64_t unknown_tool;         /* logged tools the config lacks */
    uint64_t out_of_memory;        /* requests not simulated */
    uint64_t skipped_before;       /* refused by treaty before admission */

    /* Agreement with what treaty logged, when it logged its limiter. */
    uint64_t agree_admitted, agree_refused;
    uint64_t only_sim_refused, only_log_refused;
};

/* ------------------------------------------------------------ setup -- */

static int
counts_init(sim_counts *c, size_t n_dims)
{
    memset(c, 0, sizeof(*c));
    c->dim_refused = calloc(n_dims, sizeof(uint64_t));
    c->dim_shadow = calloc(n_dims, sizeof(uint64_t));
    return c->dim_refused && c->dim_shadow ? 0 : -1;
}

static void
counts_free(sim_counts *c)
{
    free(c->dim_refused);
    free(c->dim_shadow);
}

tr_sim *
tr_sim_create(const char *config_path, FILE *errs)
{
    tr_config_errors ce = { 0 };
    tr_sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->config_path = strdup(config_path);
    s->cfg = tr_config_load_file(config_path, &ce);
    if (!s->cfg) {
        tr_config_errors_print(&ce, errs);
        tr_config_errors_clear(&ce);
        goto fail;
    }
    tr_config_errors_clear(&ce);
    const char *why = tr_admission_config_error(s->cfg);
    if (why) {
        fprintf(errs, "%s: %s\n", config_path, why);
        goto fail;
    }
    /* A fixed seed: the same log and config always give the same
     * report.  The table's hash only spreads keys; it decides nothing. */
    s->adm = tr_admission_create(s->cfg, 0x7472656174795eedull);
    char err[256] = "";
    s->router = tr_router_build(s->cfg, err, sizeof(err));
    if (!s->adm || !s->router) {
        fprintf(errs, "%s: cannot build the limiter: %s\n", config_path,
                err[0] ? err : "out of memory");
        goto fail;
    }
    s->n_dims = 2 + s->cfg->n_quotas;
    s->by_tool = calloc(s->cfg->n_tools + 1, sizeof(*s->by_tool));
    if (!s->by_tool || counts_init(&s->total, s->n_dims))
        goto fail;
    for (size_t i = 0; i <= s->cfg->n_tools; i++)
        if (counts_init(&s->by_tool[i], s->n_dims))
            goto fail;
    return s;

fail:
    tr_sim_free(s);
    return NULL;
}

void
tr_sim_set_assumed_duration(tr_sim *s, uint64_t ns)
{
    s->assume_dur_ns = ns;
}

void
tr_sim_set_stats(tr_sim *s, const tr_traffic *stats)
{
    s->stats = stats;
}

void
tr_sim_free(tr_sim *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_heap; i++) {
        sim_req *r = s->heap[i].req;
        if (r && --r->pending == 0)
            free(r);
    }
    free(s->heap);
    counts_free(&s->total);
    for (size_t i = 0; i < s->n_principals; i++)
        counts_free(&s->by_principal[i]);
    free(s->by_principal);
    if (s->by_tool && s->cfg)
        for (size_t i = 0; i <= s->cfg->n_tools; i++)
            counts_free(&s->by_tool[i]);
    free(s->by_tool);
    tr_router_free(s->router);
    tr_admission_free(s->adm);
    tr_config_free(s->cfg);
    free(s->config_path);
    free(s);
}

int32_t
tr_sim_tool(tr_sim *s, const tr_log_record *rec)
{
    const tr_config *cfg = s->cfg;
    if (rec->tool) {
        for (size_t i = 0; i < cfg->n_tools; i++)
            if (strlen(cfg->tools[i].name) == rec->tool_len &&
                !memcmp(cfg->tools[i].name, rec->tool, rec->tool_len))
                return (int32_t)i;
        s->unknown_tool++;
        return -1;
    }
    if (!rec->path || !rec->path_len || !rec->method)
        return -1;
    char buf[4096];
    tr_target tg;
    uint32_t mbit = tr_method_bit(rec->method, rec->method_len);
    if (rec->path_len > sizeof(buf) ||
        tr_target_normalize(rec->path, rec->path_len, mbit, NULL, 0, buf,
                            sizeof(buf), &tg) != TR_TARGET_OK)
        return -1;
    tr_route_match m;
    if (tr_router_match(s->router, mbit, rec->method, rec->method_len,
                        tg.path, tg.path_len, &m, NULL) != TR_ROUTE_FOUND)
        return -1;
    return m.route->tool;
}

/* ----------------------------------------------------------- timers -- */

static bool
timer_before(const sim_timer *a, const sim_timer *b)
{
    if (a->at != b->at)
        return a->at < b->at;
    if (a->kind != b->kind)
        return a->kind < b->kind;
    return a->seq < b->seq;
}

/*
 * Room for one more timer, taken before each arrival.  An arrival adds at
 * most one timer (its release or its deadline); a release that wakes a
 * waiter pops one and pushes one.  So with this room, pushes never fail.
 */
static int
timer_reserve(tr_sim *s)
{
    if (s->n_heap < s->cap_heap)
        return 0;
    size_t cap = s->cap_heap ? s->cap_heap * 2 : 1024;
    sim_timer *h = realloc(s->heap, cap * sizeof(*h));
    if (!h)
        return -1;
    s->heap = h;
    s->cap_heap = cap;
    return 0;
}

static void
timer_push(tr_sim *s, uint64_t at, ev_kind kind, sim_req *r)
{
    sim_timer t = { at, s->seq++, r, (uint8_t)kind };
    size_t i = s->n_heap++;
    while (i) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(&t, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = t;
    r->pending++;
}

static sim_timer
timer_pop(tr_sim *s)
{
    sim_timer top = s->heap[0];
    sim_timer x = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap)
            break;
        if (c + 1 < s->n_heap && timer_before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!timer_before(&s->heap[c], &x))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap)
        s->heap[i] = x;
    return top;
}

/* ------------------------------------------------------- accounting -- */

static sim_counts *
principal_counts(tr_sim *s, uint32_t who)
{
    if (who >= s->n_principals) {
        size_t n = who + 1024;
        sim_counts *v = realloc(s->by_principal, n * sizeof(*v));
        if (!v)
            return NULL;
        for (size_t i = s->n_principals; i < n; i++)
            if (counts_init(&v[i], s->n_dims)) {
                s->by_principal = v;
                s->n_principals = i;
                return NULL;
            }
        s->by_principal = v;
        s->n_principals = n;
    }
    return &s->by_principal[who];
}

static size_t
tool_slot(const tr_sim *s, int32_t tool)
{
    return tool >= 0 ? (size_t)tool : s->cfg->n_tools;
}

/* Dimension index of a policy name from a decision. */
static size_t
dim_of(const tr_sim *s, const char *name)
{
    if (!strcmp(name, TR_POLICY_RATE))
        return 0;
    if (!strcmp(name, TR_POLICY_INFLIGHT))
        return 1;
    for (size_t q = 0; q < s->cfg->n_quotas; q++)
        if (!strcmp(name, s->cfg->quotas[q].name))
            return 2 + q;
    return SIZE_MAX;
}

typedef void (*count_fn)(tr_sim *s, sim_counts *c, const void *arg);

/* Applies fn to the totals, the principal's and the tool's counts. */
static void
count_all(tr_sim *s, uint32_t who, int32_t tool, count_fn fn,
          const void *arg)
{
    fn(s, &s->total, arg);
    sim_counts *p = principal_counts(s, who);
    if (p)
        fn(s, p, arg);
    fn(s, &s->by_tool[tool_slot(s, tool)], arg);
}

static void
count_request(tr_sim *s, sim_counts *c, const void *arg)
{
    c->requests++;
}

static void
count_decision(tr_sim *s, sim_counts *c, const void *arg)
{
    const tr_admit_decision *d = arg;
    for (size_t i = 0; i < d->n_shadow; i++) {
        size_t k = dim_of(s, d->shadow[i]);
        if (k != SIZE_MAX)
            c->dim_shadow[k]++;
    }
    switch (d->outcome) {
    case TR_ADMIT_OK:
        c->admitted++;
        break;
    case TR_ADMIT_QUEUED:
        c->queued++;
        break;
    case TR_ADMIT_REFUSED:
        c->refused[d->reason]++;
        c->refused_total++;
        for (size_t i = 0; i < d->n_violated; i++) {
            size_t k = dim_of(s, d->violated[i]);
            if (k != SIZE_MAX)
                c->dim_refused[k]++;
        }
        break;
    }
}

static void
count_wait(tr_sim *s, sim_counts *c, const void *arg)
{
    uint64_t w = *(const uint64_t *)arg;
    c->wait_ns_sum += w;
    if (w > c->wait_ns_max)
        c->wait_ns_max = w;
}

static void
count_woken(tr_sim *s, sim_counts *c, const void *arg)
{
    c->admitted_after_wait++;
    count_wait(s, c, arg);
}

static void
count_replay(tr_sim *s, sim_counts *c, const void *arg)
{
    c->replays++;
}

static void
agreement(tr_sim *s, uint8_t logged, bool refused)
{
    if (logged == TR_LOGGED_ADMITTED || logged == TR_LOGGED_QUEUED ||
        logged == TR_LOGGED_REPLAY) {
        if (refused)
            s->only_sim_refused++;
        else
            s->agree_admitted++;
    } else if (logged == TR_LOGGED_REFUSED) {
        if (refused)
            s->agree_refused++;
        else
            s->only_log_refused++;
    }
}

static void
req_done(sim_req *r)
{
    r->finished = true;
    if (!r->pending)
        free(r);
}

/* ---------------------------------------------------------- the run -- */

static void
start_holding(tr_sim *s, sim_req *r)
{
    timer_push(s, s->now + r->dur, EV_RELEASE, r);
}

static void
fire(tr_sim *s, sim_timer t)
{
    sim_req *r = t.req;
    r->pending--;
    s->now = t.at;
    if (t.kind == EV_RELEASE) {
        tr_admit_ticket *woken = tr_admit_release(s->adm, &r->tk, s->now);
        req_done(r);
        if (woken) {
            sim_req *w = woken->wait.owner;
            uint64_t waited = s->now - w->arrival;
            count_all(s, w->who, w->tool, count_woken, &waited);
            agreement(s, w->logged, false);
            /* treaty logged the wait inside the duration: what is left
             * is how long the slot was held. */
            if (w->logged == TR_LOGGED_QUEUED)
                w->dur = w->dur > waited ? w->dur - waited : 0;
            start_holding(s, w);
        }
        return;
    }
    tr_admit_decision d;
    if (tr_admit_timeout(s->adm, &r->tk, s->now, &d)) {
        uint64_t waited = s->now - r->arrival;
        d.outcome = TR_ADMIT_REFUSED;
        count_all(s, r->who, r->tool, count_decision, &d);
        count_all(s, r->who, r->tool, count_wait, &waited);
        agreement(s, r->logged, true);
        req_done(r);
    } else if (r->finished && !r->pending) {
        free(r);
    }
}

static void
advance(tr_sim *s, uint64_t to)
{
    while (s->n_heap && s->heap[0].at <= to)
        fire(s, timer_pop(s));
    if (to > s->now)
        s->now = to;
}

void
tr_sim_request(tr_sim *s, const tr_analyze_event *ev, const char *name,
               size_t name_len)
{
    if (ev->logged == TR_LOGGED_BEFORE) {
        s->skipped_before++;
        return;
    }
    if (!s->started) {
        s->started = true;
        s->origin_ns = ev->t_ns;
    }
    int64_t rel = ev->t_ns - s->origin_ns;
    uint64_t now = (uint64_t)(rel > 0 ? rel : 0) + (uint64_t)NS;
    advance(s, now);

    /* The budget key: the principal's name, or for an untracked one a
     * hash of it, so each still has a budget of its own. */
    char keybuf[1 + sizeof(uint64_t)];
    tr_admit_request rq = { 0 };
    if (ev->pidx) {
        rq.principal_key = name;
        rq.principal_key_len = name_len;
    } else {
        keybuf[0] = '\x01';
        memcpy(keybuf + 1, &ev->khash, sizeof(ev->khash));
        rq.principal_key = keybuf;
        rq.principal_key_len = sizeof(keybuf);
    }
    rq.cls = ev->cls == TR_TRAFFIC_CLASS_AGENT ? TR_CLASS_AGENT
                                               : TR_CLASS_HUMAN;
    rq.tool = ev->tool;
    count_all(s, ev->pidx, ev->tool, count_request, NULL);

    tr_admit_decision d;
    if (ev->logged == TR_LOGGED_REPLAY) {
        tr_admit_replay(s->adm, &rq, s->now, &d);
        count_all(s, ev->pidx, ev->tool, count_replay, NULL);
        count_all(s, ev->pidx, ev->tool, count_decision, &d);
        agreement(s, ev->logged, d.outcome == TR_ADMIT_REFUSED);
        return;
    }

    sim_req *r = calloc(1, sizeof(*r));
    if (!r || timer_reserve(s) != 0) {
        free(r);
        s->out_of_memory++;
        return;
    }
    tr_admit_ticket_init(&r->tk, r);
    r->arrival = s->now;
    r->who = ev->pidx;
    r->tool = ev->tool;
    r->logged = ev->logged;
    if (ev->dur_ns >= 0) {
        r->dur = (uint64_t)ev->dur_ns;
    } else {
        r->dur = s->assume_dur_ns;
        s->no_duration++;
    }

    tr_admit_outcome o = tr_admit(s->adm, &r->tk, &rq, s->now, &d);
    count_all(s, ev->pidx, ev->tool, count_decision, &d);
    switch (o) {
    case TR_ADMIT_OK:
        agreement(s, ev->logged, false);
        start_holding(s, r);
        break;
    case TR_ADMIT_QUEUED:
        timer_push(s, d.queue_deadline, EV_DEADLINE, r);
        break;
    case TR_ADMIT_REFUSED:
        agreement(s, ev->logged, true);
        req_done(r);
        break;
    }
}

void
tr_sim_finish(tr_sim *s)
{
    advance(s, UINT64_MAX);
}

/* ----------------------------------------------------------- report -- */

static const char *
dim_name(const tr_sim *s, size_t k, char *buf, size_t cap)
{
    if (k == 0)
        return TR_POLICY_RATE;
    if (k == 1)
        return TR_POLICY_INFLIGHT;
    snprintf(buf, cap, "quota:%s", s->cfg->quotas[k - 2].name);
    return buf;
}

static double
mean_wait_ms(const sim_counts *c)
{
    uint64_t n = c->admitted_after_wait + c->refused[
        TR_ADMIT_REASON_QUEUE_TIMEOUT];
    return n ? (double)c->wait_ns_sum / (double)n / 1e6 : 0;
}

static json_t *
counts_json(const tr_sim *s, const sim_counts *c)
{
    json_t *refused = json_object();
    for (int i = 1; i < TR_ADMIT_REASON__COUNT; i++)
        if (c->refused[i])
            json_object_set_new(refused, tr_admit_reason_name(i),
                                json_integer((json_int_t)c->refused[i]));
    json_t *dims = json_object();
    for (size_t k = 0; k < s->n_dims; k++) {
        char buf[160];
        json_t *d = json_pack("{s:I, s:I}",
                              "refused", (json_int_t)c->dim_refused[k],
                              "shadow", (json_int_t)c->dim_shadow[k]);
        if (k == 1)
            json_object_set_new(d, "queued", json_integer(
                (json_int_t)c->queued));
        json_object_set_new(dims, dim_name(s, k, buf, sizeof(buf)), d);
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:f,"
                     " s:f}",
                     "requests", (json_int_t)c->requests,
                     "admitted", (json_int_t)c->admitted,
                     "queued", (json_int_t)c->queued,
                     "admitted_after_wait",
                     (json_int_t)c->admitted_after_wait,
                     "replays", (json_int_t)c->replays,
                     "refused_total", (json_int_t)c->refused_total,
                     "refused", refused, "dimensions", dims,
                     "added_wait_total_s", (double)c->wait_ns_sum / 1e9,
                     "added_wait_max_s", (double)c->wait_ns_max / 1e9,
                     "added_wait_mean_ms", mean_wait_ms(c));
}

void *
tr_sim_report_json(const tr_sim *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "config", json_string(s->config_path));
    json_object_set_new(o, "assumed_duration_ms", json_real(
        (double)s->assume_dur_ns / 1e6));
    json_object_set_new(o, "requests_without_duration", json_integer(
        (json_int_t)s->no_duration));
    json_object_set_new(o, "requests_with_unknown_tool", json_integer(
        (json_int_t)s->unknown_tool));
    json_object_set_new(o, "requests_not_simulated_out_of_memory",
                        json_integer((json_int_t)s->out_of_memory));
    json_object_set_new(o, "skipped_refused_before_admission",
                        json_integer((json_int_t)s->skipped_before));
    json_object_set_new(o, "total", counts_json(s, &s->total));
    json_object_set_new(o, "agreement", json_pack(
        "{s:I, s:I, s:I, s:I}",
        "both_admitted", (json_int_t)s->agree_admitted,
        "both_refused", (json_int_t)s->agree_refused,
        "only_simulation_refused", (json_int_t)s->only_sim_refused,
        "only_log_refused", (json_int_t)s->only_log_refused));

    json_t *pa = json_array();
    size_t n = 0;
    uint32_t *order = s->stats ? tr_report_order(s->stats, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t who = order[i];
        if (who >= s->n_principals || !s->by_principal[who].requests)
            continue;
        const tr_traffic_principal *p = tr_traffic_get(s->stats, who);
        json_t *c = counts_json(s, &s->by_principal[who]);
        json_t *name = json_stringn(p->key, p->key_len);
        json_object_set_new(c, "principal", name ? name
                                                 : json_string("?"));
        json_array_append_new(pa, c);
    }
    free(order);
    json_object_set_new(o, "principals", pa);

    json_t *ta = json_array();
    for (size_t i = 0; i <= s->cfg->n_tools; i++) {
        if (!s->by_tool[i].requests)
            continue;
        json_t *c = counts_json(s, &s->by_tool[i]);
        json_object_set_new(c, "tool", i < s->cfg->n_tools
                                           ? json_string(s->cfg->tools[i].name)
                                           : json_null());
        json_array_append_new(ta, c);
    }
    json_object_set_new(o, "tools", ta);
    return o;
}

static void
table_row(const tr_sim *s, const char *name, const sim_counts *c, FILE *out)
{
    fprintf(out, "  %-28.28s %9" PRIu64 " %9" PRIu64 " %7" PRIu64 " %8"
                 PRIu64 "  rate %" PRIu64 ", inflight %" PRIu64,
            name, c->requests, c->admitted + c->admitted_after_wait,
            c->queued, c->refused_total, c->dim_refused[0],
            c->dim_refused[1]);
    for (size_t k = 2; k < s->n_dims; k++)
        if (c->dim_refused[k])
            fprintf(out, ", %s %" PRIu64, s->cfg->quotas[k - 2].name,
                    c->dim_refused[k]);
    fprintf(out, "   wait %.3f s (max %.3f s)\n",
            (double)c->wait_ns_sum / 1e9, (double)c->wait_ns_max / 1e9);
}

void
tr_sim_report_table(const tr_sim *s, FILE *out)
{
    const sim_counts *t = &s->total;
    fprintf(out, "\nSimulation with %s (src/core's limiter, as the gateway "
                 "runs it):\n", s->config_path);
    if (s->no_duration)
        fprintf(out, "  note: %" PRIu64 " requests logged no duration and "
                     "held a slot for %.0f ms (--assume-duration-ms)\n",
                s->no_duration, (double)s->assume_dur_ns / 1e6);
    if (s->skipped_before)
        fprintf(out, "  %" PRIu64 " requests treaty refused before "
                     "admission are not replayed\n", s->skipped_before);
    if (s->out_of_memory)
        fprintf(out, "  %" PRIu64 " requests were not simulated: out of "
                     "memory\n", s->out_of_memory);
    if (s->unknown_tool)
        fprintf(out, "  %" PRIu64 " requests name a tool the configuration "
                     "lacks: they ran as no tool\n", s->unknown_tool);
    fprintf(out, "  %" PRIu64 " requests: %" PRIu64 " admitted at once, %"
                 PRIu64 " queued (%" PRIu64 " then admitted), %" PRIu64
                 " refused\n",
            t->requests, t->admitted, t->queued, t->admitted_after_wait,
            t->refused_total);
    for (int i = 1; i < TR_ADMIT_REASON__COUNT; i++)
        if (t->refused[i])
            fprintf(out, "    refused %-14s %" PRIu64 "\n",
                    tr_admit_reason_name(i), t->refused[i]);
    for (size_t k = 0; k < s->n_dims; k++) {
        char buf[160];
        if (t->dim_shadow[k])
            fprintf(out, "    shadow %s would have refused or queued %"
                         PRIu64 "\n", dim_name(s, k, buf, sizeof(buf)),
                    t->dim_shadow[k]);
    }
    fprintf(out, "  added wait: %.3f s in all, at most %.3f s, %.1f ms on "
                 "average per queued request\n",
            (double)t->wait_ns_sum / 1e9, (double)t->wait_ns_max / 1e9,
            mean_wait_ms(t));
    uint64_t compared = s->agree_admitted + s->agree_refused +
                        s->only_sim_refused + s->only_log_refused;
    if (compared)
        fprintf(out, "  against the log's own limiter: %" PRIu64 " agree (%"
                     PRIu64 " refused by both), %" PRIu64 " refused only "
                     "here, %" PRIu64 " only in the log\n",
                s->agree_admitted + s->agree_refused, s->agree_refused,
                s->only_sim_refused, s->only_log_refused);

    fprintf(out, "\n  %-28s %9s %9s %7s %8s  %s\n", "PRINCIPAL", "REQUESTS",
            "ADMITTED", "QUEUED", "REFUSED", "BY DIMENSION");
    size_t n = 0;
    uint32_t *order = s->stats ? tr_report_order(s->stats, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t who = order[i];
        if (who >= s->n_principals || !s->by_principal[who].requests)
            continue;
        const tr_traffic_principal *p = tr_traffic_get(s->stats, who);
        char name[64];
        tr_report_printable(p->key, p->key_len, name, sizeof(name));
        table_row(s, name, &s->by_principal[who], out);
    }
    free(order);
    fprintf(out, "\n  %-28s %9s %9s %7s %8s  %s\n", "TOOL", "REQUESTS",
            "ADMITTED", "QUEUED", "REFUSED", "BY DIMENSION");
    for (size_t i = 0; i <= s->cfg->n_tools; i++)
        if (s->by_tool[i].requests)
            table_row(s, i < s->cfg->n_tools ? s->cfg->tools[i].name
                                             : "(no tool)",
                      &s->by_tool[i], out);
}
