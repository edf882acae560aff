#include "core/admission.h"

#include <stdlib.h>
#include <string.h>

const uint32_t tr_admit_wait_bounds_ms[TR_ADMIT_WAIT_BUCKETS - 1] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
};

#define DEFAULT_TABLE_CAPACITY 100000
#define RATE_MAX_PER_S 1e9
/* Retry-After estimates for a full queue or a queue timeout are the
 * average slot hold of the key, kept within these bounds. */
#define ESTIMATE_MAX_S 3600
#define POLICY_BUF 2048

/* Table dimensions: the two budget classes, then one per quota. */
#define DIM_QUOTA0 2

typedef struct {
    bool rate_on;
    tr_gcra_params rate;
    uint32_t rate_w;            /* RateLimit-Policy w of the rate */
    uint32_t cap;               /* 0 = unlimited */
    uint32_t queue_max;         /* 0 when queue_timeout_ms is 0 */
    uint64_t queue_timeout_ns;
    bool shadow_rate;
    bool shadow_conc;
} class_rt;

typedef struct {
    tr_gcra_params p;
    uint32_t w;
    bool per_all;
    bool shadow;
    const char *name;
    tr_limiter_entry *all;      /* per: all: the one entry, pinned */
    uint64_t refused;
    uint64_t shadowed;
} quota_rt;

struct tr_admission {
    const tr_config *cfg;
    tr_limiter_table *table;
    class_rt cls[2];
    quota_rt *quotas;
    size_t n_quotas;
    char **policy;              /* [(tool + 1) * 2 + class] */
    size_t *policy_len;
    size_t n_policy;
    tr_admission_stats st;
};

/* ---- configuration ---------------------------------------------------- */

static bool
is_reserved_name(const char *name)
{
    return strcmp(name, TR_POLICY_RATE) == 0 ||
           strcmp(name, TR_POLICY_INFLIGHT) == 0;
}

static const char *
class_error(const tr_budget_class_cfg *b)
{
    tr_gcra_params p;

    if (!(b->rate >= 0.0) || b->rate > RATE_MAX_PER_S)
        return "budget rate must be a number from 0 (unlimited) to 1e9";
    if (b->rate > 0.0 && b->burst == 0)
        return "budget burst must be at least 1 when a rate is set";
    if (b->rate > 0.0 && tr_gcra_params_rate(&p, b->rate, b->burst) != 0)
        return "budget burst / rate is out of range";
    return NULL;
}

static const char *
tool_error(const tr_config *cfg, const tr_tool_cfg *t)
{
    const tr_budget_class_cfg *cls[2] = {&cfg->budgets.human,
                                         &cfg->budgets.agent};
    size_t i, j;

    if (t->n_charges > TR_ADMIT_MAX_CHARGES)
        return "a tool charges more than 8 quotas";
    for (i = 0; i < 2; i++) {
        if (cls[i]->rate > 0.0 && t->rate_cost > cls[i]->burst)
            return "a tool's rate_cost exceeds a budget burst: such a "
                   "request could never pass";
    }
    for (i = 0; i < t->n_charges; i++) {
        if (t->charges[i].quota >= cfg->n_quotas)
            return "a tool charges an unknown quota";
        if (t->charges[i].cost > cfg->quotas[t->charges[i].quota].limit)
            return "a tool's cost exceeds its quota's limit: such a "
                   "request could never pass";
        for (j = 0; j < i; j++) {
            if (t->charges[j].quota == t->charges[i].quota)
                return "a tool charges the same quota twice";
        }
    }
    return NULL;
}

const char *
tr_admission_config_error(const tr_config *cfg)
{
    const char *err;
    tr_gcra_params p;
    size_t i;

    if ((err = class_error(&cfg->budgets.human)) != NULL ||
        (err = class_error(&cfg->budgets.agent)) != NULL)
        return err;
    if (cfg->n_quotas > UINT16_MAX - DIM_QUOTA0)
        return "too many quotas";
    for (i = 0; i < cfg->n_quotas; i++) {
        const tr_quota_cfg *q = &cfg->quotas[i];

        if (!tr_ratelimit_name_ok(q->name))
            return "a quota name must be 1 to 64 printable ASCII "
                   "characters";
        if (is_reserved_name(q->name))
            return "quota names \"rate\" and \"inflight\" are reserved";
        if (tr_gcra_params_quota(&p, q->limit, q->period_s) != 0)
            return "a quota needs a limit and a period_s of at least 1";
    }
    for (i = 0; i < cfg->n_tools; i++) {
        if ((err = tool_error(cfg, &cfg->tools[i])) != NULL)
            return err;
    }
    return NULL;
}

static void
class_setup(class_rt *cr, const tr_budget_class_cfg *b)
{
    memset(cr, 0, sizeof(*cr));
    cr->rate_on = b->rate > 0.0;
    if (cr->rate_on) {
        tr_gcra_params_rate(&cr->rate, b->rate, b->burst);
        /* The window over which the burst comes back, in whole
         * seconds: q=20;w=2 for 10/s with burst 20. */
        cr->rate_w = (uint32_t)tr_ns_to_s_ceil(cr->rate.tau_ns);
        if (cr->rate_w == 0)
            cr->rate_w = 1;
    }
    cr->cap = b->concurrency;
    cr->queue_max = b->queue_timeout_ms > 0 ? b->queue : 0;
    cr->queue_timeout_ns = (uint64_t)b->queue_timeout_ms * 1000000u;
    cr->shadow_rate = b->shadow_rate;
    cr->shadow_conc = b->shadow_concurrency;
}

/* The policies of (tool, class), values zeroed: the shape both header
 * fields share. */
static size_t
policy_shape(const tr_admission *adm, int32_t tool, int c,
             tr_ratelimit_item *items)
{
    const class_rt *cr = &adm->cls[c];
    const tr_tool_cfg *t;
    size_t n = 0, i;

    if (cr->rate_on && !cr->shadow_rate) {
        items[n] = (tr_ratelimit_item){TR_POLICY_RATE, cr->rate.burst,
                                       cr->rate_w, false, 0, -1};
        n++;
    }
    if (tool >= 0) {
        t = &adm->cfg->tools[tool];
        for (i = 0; i < t->n_charges; i++) {
            const quota_rt *q = &adm->quotas[t->charges[i].quota];

            if (q->shadow)
                continue;
            items[n] = (tr_ratelimit_item){q->name, q->p.burst, q->w,
                                           false, 0, -1};
            n++;
        }
    }
    if (cr->cap > 0 && !cr->shadow_conc) {
        items[n] = (tr_ratelimit_item){TR_POLICY_INFLIGHT, cr->cap, 0,
                                       true, 0, -1};
        n++;
    }
    return n;
}

static int
policies_build(tr_admission *adm)
{
    tr_ratelimit_item items[TR_ADMIT_MAX_POLICIES];
    char buf[POLICY_BUF];
    size_t slot, n;
    int32_t tool;
    int c, len;

    adm->n_policy = (adm->cfg->n_tools + 1) * 2;
    adm->policy = calloc(adm->n_policy, sizeof(*adm->policy));
    adm->policy_len = calloc(adm->n_policy, sizeof(*adm->policy_len));
    if (adm->policy == NULL || adm->policy_len == NULL)
        return -1;
    for (tool = -1; tool < (int32_t)adm->cfg->n_tools; tool++) {
        for (c = 0; c < 2; c++) {
            slot = (size_t)(tool + 1) * 2 + (size_t)c;
            n = policy_shape(adm, tool, c, items);
            len = tr_ratelimit_policy_format(buf, sizeof(buf), items, n);
            if (len < 0)
                return -1;
            if (len == 0)
                continue;
            adm->policy[slot] = malloc((size_t)len + 1);
            if (adm->policy[slot] == NULL)
                return -1;
            memcpy(adm->policy[slot], buf, (size_t)len + 1);
            adm->policy_len[slot] = (size_t)len;
        }
    }
    return 0;
}

tr_admission *
tr_admission_create(const tr_config *cfg, uint64_t seed)
{
    tr_admission *adm;
    uint32_t cap = cfg->budgets.table_capacity;
    size_t i;

    if (tr_admission_config_error(cfg) != NULL)
        return NULL;
    adm = calloc(1, sizeof(*adm));
    if (adm == NULL)
        return NULL;
    adm->cfg = cfg;
    class_setup(&adm->cls[TR_CLASS_HUMAN], &cfg->budgets.human);
    class_setup(&adm->cls[TR_CLASS_AGENT], &cfg->budgets.agent);
    adm->table = tr_limiter_table_create(
        cap > 0 ? cap : DEFAULT_TABLE_CAPACITY, seed);
    adm->n_quotas = cfg->n_quotas;
    adm->quotas = calloc(cfg->n_quotas + 1, sizeof(*adm->quotas));
    if (adm->table == NULL || adm->quotas == NULL)
        goto fail;
    for (i = 0; i < cfg->n_quotas; i++) {
        quota_rt *q = &adm->quotas[i];

        tr_gcra_params_quota(&q->p, cfg->quotas[i].limit,
                             cfg->quotas[i].period_s);
        q->w = cfg->quotas[i].period_s;
        q->per_all = cfg->quotas[i].per == TR_QUOTA_PER_ALL;
        q->shadow = cfg->quotas[i].shadow;
        q->name = cfg->quotas[i].name;
        if (q->per_all) {
            /* Created now and pinned for good, so a full table can
             * never refuse the shared budget. */
            q->all = tr_limiter_table_get(adm->table,
                                          (uint16_t)(DIM_QUOTA0 + i), "",
                                          0, 0, NULL);
            if (q->all == NULL)
                goto fail;
            q->all->pins++;
        }
    }
    if (policies_build(adm) != 0)
        goto fail;
    return adm;

fail:
    tr_admission_free(adm);
    return NULL;
}

void
tr_admission_free(tr_admission *adm)
{
    size_t i;

    if (adm == NULL)
        return;
    if (adm->policy != NULL) {
        for (i = 0; i < adm->n_policy; i++)
            free(adm->policy[i]);
    }
    free(adm->policy);
    free(adm->policy_len);
    free(adm->quotas);
    tr_limiter_table_free(adm->table);
    free(adm);
}

const char *
tr_admission_policy(const tr_admission *adm, int32_t tool,
                    tr_caller_class cls, size_t *len)
{
    size_t slot;

    *len = 0;
    if (tool < -1 || tool >= (int32_t)adm->cfg->n_tools)
        return NULL;
    slot = (size_t)(tool + 1) * 2 + (cls == TR_CLASS_HUMAN ? 0 : 1);
    *len = adm->policy_len[slot];
    return adm->policy[slot];
}

/* ---- decisions -------------------------------------------------------- */

static void
decision_reset(tr_admit_decision *out)
{
    out->outcome = TR_ADMIT_OK;
    out->reason = TR_ADMIT_REASON_NONE;
    out->problem = TR_P_INTERNAL;
    out->retry_after_s = 0;
    out->retry_after_exact = false;
    out->queue_deadline = 0;
    out->n_items = 0;
    out->n_violated = 0;
    out->n_shadow = 0;
}

static int
class_index(tr_caller_class cls)
{
    return cls == TR_CLASS_HUMAN ? 0 : 1;
}

static uint32_t
rate_cost_of(const tr_admission *adm, int32_t tool)
{
    return tool >= 0 ? adm->cfg->tools[tool].rate_cost : 1;
}

/* The entry of quota charge i of `tool` for a principal, without creating
 * it; NULL reads as a full bucket. */
static tr_limiter_entry *
quota_entry_find(tr_admission *adm, size_t quota, const char *key,
                 size_t len)
{
    quota_rt *q = &adm->quotas[quota];

    if (q->per_all)
        return q->all;
    if (key == NULL)
        return NULL;
    return tr_limiter_table_find(adm->table,
                                 (uint16_t)(DIM_QUOTA0 + quota), key, len);
}

/*
 * Fills out->items with r and t for every enforced policy of the route.
 * qe[i] is the entry of charge i when known (i < n_qe); otherwise it is
 * looked up by key, and a missing entry reads as a fresh one.
 */
static void
items_fill(tr_admission *adm, int32_t tool, int c,
           const tr_limiter_entry *budget, tr_limiter_entry *const *qe,
           size_t n_qe, const char *key, size_t key_len, uint64_t now,
           tr_admit_decision *out)
{
    const class_rt *cr = &adm->cls[c];
    const tr_tool_cfg *t = tool >= 0 ? &adm->cfg->tools[tool] : NULL;
    tr_ratelimit_item *it = out->items;
    size_t n = 0, i;

    if (cr->rate_on && !cr->shadow_rate) {
        it[n] = (tr_ratelimit_item){TR_POLICY_RATE, cr->rate.burst,
                                    cr->rate_w, false, cr->rate.burst, -1};
        if (budget != NULL) {
            it[n].r = tr_gcra_remaining(&cr->rate, &budget->gcra, now);
            it[n].t = tr_gcra_reset_s(&cr->rate, &budget->gcra,
                                      rate_cost_of(adm, tool), now);
        }
        n++;
    }
    for (i = 0; t != NULL && i < t->n_charges; i++) {
        const quota_rt *q = &adm->quotas[t->charges[i].quota];
        const tr_limiter_entry *e;

        if (q->shadow)
            continue;
        e = i < n_qe && qe[i] != NULL
                ? qe[i]
                : quota_entry_find(adm, t->charges[i].quota, key, key_len);
        it[n] = (tr_ratelimit_item){q->name, q->p.burst, q->w, false,
                                    q->p.burst, -1};
        if (e != NULL) {
            it[n].r = tr_gcra_remaining(&q->p, &e->gcra, now);
            it[n].t = tr_gcra_reset_s(&q->p, &e->gcra, t->charges[i].cost,
                                      now);
        }
        n++;
    }
    if (cr->cap > 0 && !cr->shadow_conc) {
        it[n] = (tr_ratelimit_item){TR_POLICY_INFLIGHT, cr->cap, 0, true,
                                    cr->cap, -1};
        if (budget != NULL)
            it[n].r = tr_conc_free_slots(&budget->conc, cr->cap);
        n++;
    }
    out->n_items = n;
}

static void
refuse(tr_admit_decision *out, tr_admit_reason reason,
       tr_problem_kind problem, uint64_t retry_after_s, bool exact)
{
    out->outcome = TR_ADMIT_REFUSED;
    out->reason = reason;
    out->problem = problem;
    if (retry_after_s < 1)
        retry_after_s = 1;
    if (retry_after_s > UINT32_MAX)
        retry_after_s = UINT32_MAX;
    out->retry_after_s = (uint32_t)retry_after_s;
    out->retry_after_exact = exact;
}

/* An estimate of how long until a slot of this key frees up. */
static uint64_t
slot_estimate_s(const tr_limiter_entry *budget)
{
    uint64_t s;

    if (budget == NULL || budget->hold_ms == 0)
        return 1;
    s = (budget->hold_ms + 999u) / 1000u;
    return s > ESTIMATE_MAX_S ? ESTIMATE_MAX_S : s;
}

/* ---- tickets ---------------------------------------------------------- */

void
tr_admit_ticket_init(tr_admit_ticket *tk, void *owner)
{
    memset(tk, 0, sizeof(*tk));
    tk->wait.owner = owner;
    tk->tool = -1;
    tk->state = TR_TICKET_IDLE;
}

static tr_admit_ticket *
ticket_of(tr_wait_node *node)
{
    return (tr_admit_ticket *)((char *)node -
                               offsetof(tr_admit_ticket, wait));
}

static void
unpin(tr_admit_ticket *tk)
{
    size_t i;

    if (tk->budget != NULL)
        tk->budget->pins--;
    for (i = 0; i < tk->n_quota; i++)
        tk->quota[i]->pins--;
    tk->budget = NULL;
    tk->n_quota = 0;
}

/* What to do with the units of every dimension the ticket passed. */
typedef enum { UNITS_RESERVE, UNITS_UNRESERVE, UNITS_CONFIRM,
               UNITS_CHARGE, UNITS_REFUND } units_op;

static void
gcra_apply(const tr_gcra_params *p, tr_gcra *s, uint32_t cost, units_op op,
           uint64_t now)
{
    switch (op) {
    case UNITS_RESERVE:
        tr_gcra_reserve(s, cost);
        break;
    case UNITS_UNRESERVE:
        tr_gcra_unreserve(s, cost);
        break;
    case UNITS_CONFIRM:
        tr_gcra_confirm(p, s, cost, now);
        break;
    case UNITS_CHARGE:
        tr_gcra_charge(p, s, cost, now);
        break;
    case UNITS_REFUND:
        tr_gcra_refund(p, s, cost);
        break;
    }
}

static void
units(tr_admission *adm, tr_admit_ticket *tk, units_op op, uint64_t now)
{
    const tr_tool_cfg *t =
        tk->tool >= 0 ? &adm->cfg->tools[tk->tool] : NULL;
    size_t i;

    if ((tk->charged & 1u) && tk->budget != NULL)
        gcra_apply(&adm->cls[tk->cls].rate, &tk->budget->gcra,
                   rate_cost_of(adm, tk->tool), op, now);
    for (i = 0; t != NULL && i < tk->n_quota; i++) {
        if (tk->charged & (1u << (i + 1)))
            gcra_apply(&adm->quotas[t->charges[i].quota].p,
                       &tk->quota[i]->gcra, t->charges[i].cost, op, now);
    }
}

static void
wait_observe(tr_admission *adm, uint64_t waited_ns)
{
    uint64_t ms = waited_ns / 1000000u;
    size_t b = 0;

    while (b < TR_ADMIT_WAIT_BUCKETS - 1 && ms > tr_admit_wait_bounds_ms[b])
        b++;
    adm->st.wait_hist[b]++;
    adm->st.wait_sum_ns += waited_ns;
    adm->st.wait_count++;
}

/* ---- admission -------------------------------------------------------- */

/* Verdict bookkeeping while checking every dimension. */
typedef struct {
    tr_admit_reason first;     /* reason of the first refusing dimension */
    uint64_t retry_s;          /* largest wait, whole seconds */
    bool exact;
} verdicts;

/*
 * Checks one GCRA dimension.  Returns true when it is to be charged if
 * the request is admitted (it passes, enforced or shadow).
 */
static bool
dim_check(const tr_gcra_params *p, const tr_gcra *s,
          uint32_t cost, uint32_t w, bool shadow, const char *name,
          tr_admit_reason reason, uint64_t now, verdicts *v,
          tr_admit_decision *out, uint64_t *shadow_count)
{
    uint64_t wait = 0, secs;
    tr_gcra_verdict gv = tr_gcra_check(p, s, cost, now, &wait);

    if (gv == TR_GCRA_OK)
        return true;
    if (shadow) {
        out->shadow[out->n_shadow++] = name;
        (*shadow_count)++;
        return false;
    }
    if (gv == TR_GCRA_NEVER) {
        reason = TR_ADMIT_REASON_TOO_COSTLY;
        secs = w;
        v->exact = false;
    } else {
        secs = tr_ns_to_s_ceil(wait);
        /* Units held by queued requests may be charged later than now,
         * which can stretch the wait. */
        if (s->reserved != 0)
            v->exact = false;
    }
    if (v->first == TR_ADMIT_REASON_NONE)
        v->first = reason;
    if (secs > v->retry_s)
        v->retry_s = secs;
    out->violated[out->n_violated++] = name;
    return false;
}

static tr_admit_outcome
refuse_table_full(tr_admission *adm, tr_admit_ticket *tk, int c,
                  const char *name, const tr_admit_request *rq,
                  uint64_t now, tr_admit_decision *out)
{
    out->violated[out->n_violated++] = name;
    /* An estimate: fresh entries come back as idle keys refill. */
    refuse(out, TR_ADMIT_REASON_TABLE_FULL, TR_P_REDUCED_CAPACITY, 1,
           false);
    items_fill(adm, tk->tool, c, tk->budget, tk->quota, tk->n_quota,
               rq->principal_key, rq->principal_key_len, now, out);
    adm->st.refused[TR_ADMIT_REASON_TABLE_FULL]++;
    unpin(tk);
    tk->state = TR_TICKET_DONE;
    return TR_ADMIT_REFUSED;
}

static tr_admit_outcome
refuse_internal(tr_admit_decision *out)
{
    out->outcome = TR_ADMIT_REFUSED;
    out->reason = TR_ADMIT_REASON_INTERNAL;
    out->problem = TR_P_INTERNAL;
    return TR_ADMIT_REFUSED;
}

/* Looks up and pins every entry the request touches. */
static bool
pin_entries(tr_admission *adm, tr_admit_ticket *tk,
            const tr_admit_request *rq, uint64_t now, const char **missing)
{
    const class_rt *cr = &adm->cls[tk->cls];
    const tr_tool_cfg *t =
        tk->tool >= 0 ? &adm->cfg->tools[tk->tool] : NULL;
    tr_limiter_entry *e;
    size_t i;

    if (cr->rate_on || cr->cap > 0) {
        e = tr_limiter_table_get(adm->table, (uint16_t)tk->cls,
                                 rq->principal_key, rq->principal_key_len,
                                 now, NULL);
        if (e == NULL) {
            *missing = cr->rate_on ? TR_POLICY_RATE : TR_POLICY_INFLIGHT;
            return false;
        }
        e->pins++;
        tk->budget = e;
    }
    for (i = 0; t != NULL && i < t->n_charges; i++) {
        size_t qi = t->charges[i].quota;
        quota_rt *q = &adm->quotas[qi];

        e = q->per_all ? q->all
                       : tr_limiter_table_get(adm->table,
                                              (uint16_t)(DIM_QUOTA0 + qi),
                                              rq->principal_key,
                                              rq->principal_key_len, now,
                                              NULL);
        if (e == NULL) {
            *missing = q->name;
            return false;
        }
        e->pins++;
        tk->quota[i] = e;
        tk->n_quota = (uint8_t)(i + 1);
    }
    return true;
}

/* Quotas then rate, charging nothing; sets tk->charged. */
static void
check_all(tr_admission *adm, tr_admit_ticket *tk, uint64_t now,
          verdicts *v, tr_admit_decision *out)
{
    const class_rt *cr = &adm->cls[tk->cls];
    const tr_tool_cfg *t =
        tk->tool >= 0 ? &adm->cfg->tools[tk->tool] : NULL;
    size_t i;

    tk->charged = 0;
    for (i = 0; t != NULL && i < tk->n_quota; i++) {
        quota_rt *q = &adm->quotas[t->charges[i].quota];
        uint64_t before = adm->st.shadow_quota;

        if (dim_check(&q->p, &tk->quota[i]->gcra, t->charges[i].cost,
                      q->w, q->shadow, q->name, TR_ADMIT_REASON_QUOTA, now,
                      v, out, &adm->st.shadow_quota))
            tk->charged |= (uint16_t)(1u << (i + 1));
        else if (adm->st.shadow_quota != before)
            q->shadowed++;
    }
    if (cr->rate_on && tk->budget != NULL &&
        dim_check(&cr->rate, &tk->budget->gcra,
                  rate_cost_of(adm, tk->tool), cr->rate_w, cr->shadow_rate,
                  TR_POLICY_RATE, TR_ADMIT_REASON_RATE, now, v, out,
                  &adm->st.shadow_rate))
        tk->charged |= 1u;
}

static void
count_quota_refusals(tr_admission *adm, const tr_admit_decision *out)
{
    size_t i, q;

    for (i = 0; i < out->n_violated; i++) {
        for (q = 0; q < adm->n_quotas; q++) {
            if (out->violated[i] == adm->quotas[q].name)
                adm->quotas[q].refused++;
        }
    }
}

tr_admit_outcome
tr_admit(tr_admission *adm, tr_admit_ticket *tk, const tr_admit_request *rq,
         uint64_t now, tr_admit_decision *out)
{
    const class_rt *cr;
    const char *missing = NULL;
    verdicts v = {TR_ADMIT_REASON_NONE, 0, true};
    tr_conc_result cres;
    tr_conc *conc;
    int c = class_index(rq->cls);

    decision_reset(out);
    if ((tk->state != TR_TICKET_IDLE && tk->state != TR_TICKET_DONE) ||
        rq->tool < -1 || rq->tool >= (int32_t)adm->cfg->n_tools)
        return refuse_internal(out);
    tk->budget = NULL;
    tk->n_quota = 0;
    tk->charged = 0;
    tk->holds_slot = false;
    tk->tool = rq->tool;
    tk->cls = (uint8_t)c;
    tk->wait.state = TR_WAIT_IDLE;
    cr = &adm->cls[c];

    if (!pin_entries(adm, tk, rq, now, &missing))
        return refuse_table_full(adm, tk, c, missing, rq, now, out);

    check_all(adm, tk, now, &v, out);
    if (out->n_violated > 0) {
        refuse(out, v.first, TR_P_QUOTA_EXCEEDED, v.retry_s, v.exact);
        items_fill(adm, tk->tool, c, tk->budget, tk->quota, tk->n_quota,
                   NULL, 0, now, out);
        adm->st.refused[v.first]++;
        count_quota_refusals(adm, out);
        unpin(tk);
        tk->state = TR_TICKET_DONE;
        return TR_ADMIT_REFUSED;
    }

    if (tk->budget != NULL) {
        conc = &tk->budget->conc;
        if (cr->cap > 0 && cr->shadow_conc) {
            if (conc->inflight >= cr->cap) {
                out->shadow[out->n_shadow++] = TR_POLICY_INFLIGHT;
                adm->st.shadow_concurrency++;
            }
            cres = tr_conc_enter(conc, 0, 0, &tk->wait, 0);
        } else {
            cres = tr_conc_enter(conc, cr->cap, cr->queue_max, &tk->wait,
                                 now + cr->queue_timeout_ns);
        }
        if (cres == TR_CONC_FULL) {
            out->violated[out->n_violated++] = TR_POLICY_INFLIGHT;
            refuse(out, TR_ADMIT_REASON_QUEUE_FULL, TR_P_QUOTA_EXCEEDED,
                   slot_estimate_s(tk->budget), false);
            items_fill(adm, tk->tool, c, tk->budget, tk->quota,
                       tk->n_quota, NULL, 0, now, out);
            adm->st.refused[TR_ADMIT_REASON_QUEUE_FULL]++;
            unpin(tk);
            tk->state = TR_TICKET_DONE;
            return TR_ADMIT_REFUSED;
        }
        if (cres == TR_CONC_QUEUED) {
            units(adm, tk, UNITS_RESERVE, now);
            tk->state = TR_TICKET_QUEUED;
            tk->enqueued_at = now;
            out->outcome = TR_ADMIT_QUEUED;
            out->queue_deadline = tk->wait.deadline;
            items_fill(adm, tk->tool, c, tk->budget, tk->quota,
                       tk->n_quota, NULL, 0, now, out);
            adm->st.queued++;
            adm->st.waiting[c]++;
            return TR_ADMIT_QUEUED;
        }
        tk->holds_slot = true;
    }
    units(adm, tk, UNITS_CHARGE, now);
    tk->state = TR_TICKET_ADMITTED;
    tk->admitted_at = now;
    adm->st.admitted++;
    adm->st.inflight[c]++;
    items_fill(adm, tk->tool, c, tk->budget, tk->quota, tk->n_quota, NULL,
               0, now, out);
    return TR_ADMIT_OK;
}

tr_admit_outcome
tr_admit_replay(tr_admission *adm, const tr_admit_request *rq, uint64_t now,
                tr_admit_decision *out)
{
    const class_rt *cr;
    tr_limiter_entry *budget = NULL;
    verdicts v = {TR_ADMIT_REASON_NONE, 0, true};
    int c = class_index(rq->cls);

    decision_reset(out);
    if (rq->tool < -1 || rq->tool >= (int32_t)adm->cfg->n_tools)
        return refuse_internal(out);
    cr = &adm->cls[c];
    if (cr->rate_on) {
        budget = tr_limiter_table_get(adm->table, (uint16_t)c,
                                      rq->principal_key,
                                      rq->principal_key_len, now, NULL);
        if (budget == NULL) {
            out->violated[out->n_violated++] = TR_POLICY_RATE;
            refuse(out, TR_ADMIT_REASON_TABLE_FULL, TR_P_REDUCED_CAPACITY,
                   1, false);
            adm->st.refused[TR_ADMIT_REASON_TABLE_FULL]++;
            items_fill(adm, rq->tool, c, NULL, NULL, 0, rq->principal_key,
                       rq->principal_key_len, now, out);
            return TR_ADMIT_REFUSED;
        }
        if (dim_check(&cr->rate, &budget->gcra, 1, cr->rate_w,
                      cr->shadow_rate, TR_POLICY_RATE, TR_ADMIT_REASON_RATE,
                      now, &v, out, &adm->st.shadow_rate))
            tr_gcra_charge(&cr->rate, &budget->gcra, 1, now);
    }
    if (out->n_violated > 0) {
        refuse(out, v.first, TR_P_QUOTA_EXCEEDED, v.retry_s, v.exact);
        adm->st.refused[v.first]++;
    } else {
        adm->st.replays++;
    }
    items_fill(adm, rq->tool, c, budget, NULL, 0, rq->principal_key,
               rq->principal_key_len, now, out);
    return out->outcome;
}

/* ---- leaving ---------------------------------------------------------- */

/* A queued ticket that will never be forwarded drops its units. */
static void
dequeued_unforwarded(tr_admission *adm, tr_admit_ticket *tk, uint64_t now)
{
    units(adm, tk, UNITS_UNRESERVE, now);
    adm->st.waiting[tk->cls]--;
}

/* Passes the budget entry's freed slot on; returns the ticket woken. */
static tr_admit_ticket *
slot_leave(tr_admission *adm, tr_limiter_entry *budget, uint64_t now)
{
    const class_rt *cr = &adm->cls[budget->dim];
    uint32_t limit = cr->shadow_conc ? 0 : cr->cap;
    tr_wait_list expired;
    tr_wait_node *node, *next;
    tr_admit_ticket *woken = NULL;

    tr_wait_list_init(&expired);
    node = tr_conc_leave(&budget->conc, limit, now, &expired);
    for (next = expired.head; next != NULL;) {
        tr_admit_ticket *gone = ticket_of(next);

        next = next->next;
        dequeued_unforwarded(adm, gone, now);
        gone->state = TR_TICKET_EXPIRED;
    }
    if (node != NULL) {
        woken = ticket_of(node);
        units(adm, woken, UNITS_CONFIRM, now);
        woken->state = TR_TICKET_ADMITTED;
        woken->holds_slot = true;
        woken->admitted_at = now;
        adm->st.admitted_from_queue++;
        adm->st.waiting[woken->cls]--;
        adm->st.inflight[woken->cls]++;
        wait_observe(adm, now - woken->enqueued_at);
    }
    return woken;
}

static void
hold_observe(tr_limiter_entry *budget, uint64_t held_ns)
{
    uint64_t ms = held_ns / 1000000u, avg;

    if (ms == 0)
        ms = 1;
    /* Moving average, weight 1/8 for the newest hold. */
    avg = budget->hold_ms == 0 ? ms : (budget->hold_ms * 7u + ms) / 8u;
    budget->hold_ms = avg > UINT32_MAX ? UINT32_MAX : (uint32_t)avg;
}

static tr_admit_ticket *
finish(tr_admission *adm, tr_admit_ticket *tk, uint64_t now, bool forwarded)
{
    tr_admit_ticket *woken = NULL;

    switch ((tr_ticket_state)tk->state) {
    case TR_TICKET_QUEUED:
        tr_conc_cancel(&tk->budget->conc, &tk->wait);
        dequeued_unforwarded(adm, tk, now);
        adm->st.cancelled++;
        break;
    case TR_TICKET_ADMITTED:
        adm->st.inflight[tk->cls]--;
        if (tk->holds_slot) {
            if (forwarded)
                hold_observe(tk->budget, now - tk->admitted_at);
            tk->holds_slot = false;
            woken = slot_leave(adm, tk->budget, now);
        }
        break;
    case TR_TICKET_IDLE:
    case TR_TICKET_EXPIRED:
    case TR_TICKET_DONE:
        break;
    }
    unpin(tk);
    tk->state = TR_TICKET_DONE;
    return woken;
}

tr_admit_ticket *
tr_admit_release(tr_admission *adm, tr_admit_ticket *tk, uint64_t now)
{
    return finish(adm, tk, now, true);
}

tr_admit_ticket *
tr_admit_refund(tr_admission *adm, tr_admit_ticket *tk, uint64_t now)
{
    if (tk->state != TR_TICKET_ADMITTED)
        return NULL;
    units(adm, tk, UNITS_REFUND, now);
    adm->st.refunds++;
    return finish(adm, tk, now, false);
}

bool
tr_admit_timeout(tr_admission *adm, tr_admit_ticket *tk, uint64_t now,
                 tr_admit_decision *out)
{
    decision_reset(out);
    if (tk->state == TR_TICKET_QUEUED) {
        tr_conc_cancel(&tk->budget->conc, &tk->wait);
        tk->wait.state = TR_WAIT_EXPIRED;
        dequeued_unforwarded(adm, tk, now);
    } else if (tk->state != TR_TICKET_EXPIRED) {
        return false;
    }
    out->violated[out->n_violated++] = TR_POLICY_INFLIGHT;
    refuse(out, TR_ADMIT_REASON_QUEUE_TIMEOUT, TR_P_REDUCED_CAPACITY,
           slot_estimate_s(tk->budget), false);
    items_fill(adm, tk->tool, tk->cls, tk->budget, tk->quota, tk->n_quota,
               NULL, 0, now, out);
    adm->st.refused[TR_ADMIT_REASON_QUEUE_TIMEOUT]++;
    unpin(tk);
    tk->state = TR_TICKET_DONE;
    return true;
}

void
tr_admit_describe(tr_admission *adm, const tr_admit_ticket *tk,
                  uint64_t now, tr_admit_decision *out)
{
    decision_reset(out);
    items_fill(adm, tk->tool, tk->cls, tk->budget, tk->quota, tk->n_quota,
               NULL, 0, now, out);
}

/* ---- upkeep and metrics ----------------------------------------------- */

size_t
tr_admission_sweep(tr_admission *adm, uint64_t now, size_t probes)
{
    return tr_limiter_table_sweep(adm->table, now, probes, probes);
}

void
tr_admission_stats_get(const tr_admission *adm, tr_admission_stats *out)
{
    *out = adm->st;
    tr_limiter_table_stats_get(adm->table, &out->table);
}

void
tr_admission_quota_stats(const tr_admission *adm, size_t quota,
                         uint64_t *refused, uint64_t *shadow)
{
    if (quota >= adm->n_quotas) {
        *refused = 0;
        *shadow = 0;
        return;
    }
    *refused = adm->quotas[quota].refused;
    *shadow = adm->quotas[quota].shadowed;
}

const char *
tr_admit_reason_name(tr_admit_reason reason)
{
    static const char *const names[TR_ADMIT_REASON__COUNT] = {
        [TR_ADMIT_REASON_NONE] = "admitted",
        [TR_ADMIT_REASON_QUOTA] = "quota",
        [TR_ADMIT_REASON_RATE] = "rate",
        [TR_ADMIT_REASON_TOO_COSTLY] = "too_costly",
        [TR_ADMIT_REASON_QUEUE_FULL] = "queue_full",
        [TR_ADMIT_REASON_QUEUE_TIMEOUT] = "queue_timeout",
        [TR_ADMIT_REASON_TABLE_FULL] = "table_full",
        [TR_ADMIT_REASON_INTERNAL] = "internal",
    };

    if ((unsigned)reason >= TR_ADMIT_REASON__COUNT)
        return "internal";
    return names[reason];
}

const char *
tr_admit_outcome_name(tr_admit_outcome outcome)
{
    switch (outcome) {
    case TR_ADMIT_OK:
        return "admitted";
    case TR_ADMIT_QUEUED:
        return "queued";
    case TR_ADMIT_REFUSED:
        return "refused";
    }
    return "refused";
}
