/*
 * The `budgets:` section: the per-(principal, class) concurrency budget
 * and rate (GCRA), for humans and agents separately, and the limiter
 * table's size.
 */
#include <math.h>

#include "config/config_internal.h"

static void
f_shadow(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_budget_class_cfg *b = obj;
    bool all;
    static const tr_field dims[] = {
        TR_FIELD("concurrency", TR_F_BOOL, tr_budget_class_cfg,
                 shadow_concurrency, 0, 0),
        TR_FIELD("rate", TR_F_BOOL, tr_budget_class_cfg, shadow_rate, 0, 0),
    };

    /* `shadow: true` for every dimension, or one flag per dimension. */
    if (v->kind == TR_YAML_MAP) {
        tr_cfg_walk(c, v, path, dims, 2, b);
        return;
    }
    if (tr_cfg_bool(c, v, path, &all))
        b->shadow_concurrency = b->shadow_rate = all;
}

#define B(k, t, m, lo, hi) TR_FIELD(k, t, tr_budget_class_cfg, m, lo, hi)

static const tr_field class_fields[] = {
    B("concurrency", TR_F_U32, concurrency, 0, 1000000),
    B("queue", TR_F_U32, queue, 0, 1000000),
    B("queue_timeout_ms", TR_F_U32, queue_timeout_ms, 0, 600000),
    B("rate", TR_F_F64, rate, 0, 1000000),
    B("burst", TR_F_U32, burst, 0, 10000000),
    TR_FIELD_FN("shadow", f_shadow, false),
};

enum { BIT_QUEUE = 1u << 1, BIT_BURST = 1u << 4 };

static void
load_class(tr_cfgx *c, const tr_yaml_node *v, const char *path,
           tr_budget_class_cfg *b)
{
    char kp[TR_CFG_PATH_MAX];
    uint64_t seen = tr_cfg_walk(c, v, path, class_fields,
                                sizeof(class_fields) /
                                    sizeof(class_fields[0]), b);

    if ((seen & BIT_BURST) && b->burst > 0 && b->rate == 0) {
        tr_cfg_path_key(kp, path, "burst");
        tr_cfg_error(c, tr_cfg_find(v, "burst"), kp, "burst needs a rate");
    }
    if (b->rate > 0 && !(seen & BIT_BURST))
        b->burst = b->rate < 1 ? 1 : (uint32_t)ceil(b->rate);
    if (b->rate > 0 && b->burst == 0) {
        tr_cfg_path_key(kp, path, "burst");
        tr_cfg_error(c, tr_cfg_find(v, "burst"), kp, "burst must be at "
                     "least 1 when a rate is set");
    }
    if ((seen & BIT_QUEUE) && b->queue > 0 && b->concurrency == 0) {
        tr_cfg_path_key(kp, path, "queue");
        tr_cfg_error(c, tr_cfg_find(v, "queue"), kp, "a queue needs a "
                     "concurrency limit");
    }
}

static void
f_human(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    load_class(c, v, path, &c->cfg->budgets.human);
}

static void
f_agent(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    load_class(c, v, path, &c->cfg->budgets.agent);
}

static const tr_field fields[] = {
    TR_FIELD_FN("human", f_human, false),
    TR_FIELD_FN("agent", f_agent, false),
    TR_FIELD("table_capacity", TR_F_U32, tr_budgets_cfg, table_capacity,
             1000, 100000000),
};

void
tr_cfg_load_budgets(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_budgets_cfg *b = &c->cfg->budgets;

    b->human.queue_timeout_ms = 1000;
    b->agent.queue_timeout_ms = 1000;
    tr_cfg_walk(c, v, "budgets", fields, sizeof(fields) / sizeof(fields[0]),
                b);
}
