/*
 * The `quotas:` and `tools:` sections: named GCRA budgets, and the tools
 * (classes of routes) that charge them.
 */
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

static const tr_cfg_enum per_names[] = {
    { "principal", TR_QUOTA_PER_PRINCIPAL },
    { "all", TR_QUOTA_PER_ALL },
    { NULL, 0 },
};

#define Q(k, t, m, lo, hi) TR_FIELD(k, t, tr_quota_cfg, m, lo, hi)

static const tr_field quota_fields[] = {
    TR_FIELD_REQ("limit", TR_F_U32, tr_quota_cfg, limit, 1, 1000000000),
    TR_FIELD_REQ("period_s", TR_F_U32, tr_quota_cfg, period_s, 1,
                 31536000),
    TR_FIELD_ENUM("per", tr_quota_cfg, per, per_names),
    Q("shadow", TR_F_BOOL, shadow, 0, 0),
};

void
tr_cfg_load_quotas(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_config *cfg = c->cfg;
    char kp[TR_CFG_PATH_MAX];

    if (!tr_cfg_expect(c, v, "quotas", TR_YAML_MAP) ||
        !tr_cfg_max_entries(c, v, "quotas", TR_CFG_MAX_NAMED))
        return;
    cfg->quotas = tr_arena_calloc(c->a, v->n, sizeof(tr_quota_cfg));
    if (cfg->quotas == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        const tr_yaml_node *k = v->items[2 * i], *body = v->items[2 * i + 1];
        tr_quota_cfg *q = &cfg->quotas[cfg->n_quotas];

        if (k->bad || k->kind != TR_YAML_SCALAR)
            continue;
        tr_cfg_path_key(kp, "quotas", k->value);
        if (!tr_cfg_name(c, k, kp, k->value))
            continue;
        q->name = tr_arena_strndup(c->a, k->value, k->len);
        q->per = TR_QUOTA_PER_PRINCIPAL;
        cfg->n_quotas++;
        tr_cfg_walk(c, body, kp, quota_fields,
                    sizeof(quota_fields) / sizeof(quota_fields[0]), q);
    }
}

/* "a, b, c" of the quota names, for "unknown quota" messages. */
static const char *
quota_names(const tr_config *cfg, char *buf, size_t cap)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n_quotas && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
                              cfg->quotas[i].name);
    if (cfg->n_quotas == 0)
        snprintf(buf, cap, "none defined");
    return buf;
}

static void
f_charges(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_tool_cfg *t = obj;
    const tr_config *cfg = c->cfg;
    char kp[TR_CFG_PATH_MAX], names[256];

    if (!tr_cfg_expect(c, v, path, TR_YAML_MAP) ||
        !tr_cfg_max_entries(c, v, path, TR_CFG_MAX_NAMED))
        return;
    t->charges = tr_arena_calloc(c->a, v->n, sizeof(tr_tool_charge));
    if (t->charges == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        const tr_yaml_node *k = v->items[2 * i], *cost = v->items[2 * i + 1];
        int64_t x;
        size_t q;

        if (k->bad || k->kind != TR_YAML_SCALAR)
            continue;
        tr_cfg_path_key(kp, path, k->value);
        for (q = 0; q < cfg->n_quotas; q++)
            if (strlen(cfg->quotas[q].name) == k->len &&
                memcmp(cfg->quotas[q].name, k->value, k->len) == 0)
                break;
        if (q == cfg->n_quotas) {
            char show[64];
            tr_cfg_error(c, k, kp, "unknown quota '%s' (quotas: %s)",
                         tr_cfg_show(k, show, sizeof(show)),
                         quota_names(cfg, names, sizeof(names)));
            continue;
        }
        if (!tr_cfg_int(c, cost, kp, 1, 1000000000, &x))
            continue;
        if ((uint64_t)x > cfg->quotas[q].limit) {
            tr_cfg_error(c, cost, kp, "cost %lld is more than quota '%s' "
                         "allows at once (limit %u): the tool could never "
                         "be admitted", (long long)x, cfg->quotas[q].name,
                         cfg->quotas[q].limit);
            continue;
        }
        t->charges[t->n_charges].quota = q;
        t->charges[t->n_charges].cost = (uint32_t)x;
        t->n_charges++;
    }
}

static const tr_field tool_fields[] = {
    TR_FIELD("rate_cost", TR_F_U32, tr_tool_cfg, rate_cost, 0, 1000000),
    TR_FIELD_FN("charges", f_charges, false),
};

void
tr_cfg_load_tools(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_config *cfg = c->cfg;
    char kp[TR_CFG_PATH_MAX];

    if (!tr_cfg_expect(c, v, "tools", TR_YAML_MAP) ||
        !tr_cfg_max_entries(c, v, "tools", TR_CFG_MAX_NAMED))
        return;
    cfg->tools = tr_arena_calloc(c->a, v->n, sizeof(tr_tool_cfg));
    if (cfg->tools == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        const tr_yaml_node *k = v->items[2 * i], *body = v->items[2 * i + 1];
        tr_tool_cfg *t = &cfg->tools[cfg->n_tools];

        if (k->bad || k->kind != TR_YAML_SCALAR)
            continue;
        tr_cfg_path_key(kp, "tools", k->value);
        if (!tr_cfg_name(c, k, kp, k->value))
            continue;
        t->name = tr_arena_strndup(c->a, k->value, k->len);
        t->rate_cost = 1;
        cfg->n_tools++;
        /* A tool with nothing to configure may be written `name: {}`. */
        tr_cfg_walk(c, body, kp, tool_fields,
                    sizeof(tool_fields) / sizeof(tool_fields[0]), t);
    }
}
