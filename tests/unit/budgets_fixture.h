/*
 * The common budget configuration of ../shared/cases/budgets.md, as a
 * tr_config the admission tests can change field by field:
 *
 *   both classes: concurrency 4, queue 4, queue_timeout 2 s,
 *                 rate 10/s, burst 20
 *   quota "email": 30 units per 60 s, per principal
 *   tool 0 "search": rate_cost 1, no quota
 *   tool 1 "send_email": rate_cost 1, charges email 10
 */
#ifndef TREATY_TESTS_BUDGETS_FIXTURE_H
#define TREATY_TESTS_BUDGETS_FIXTURE_H

#include <string.h>

#include "core/admission.h"

#define MS 1000000ull
#define S 1000000000ull

enum { TOOL_SEARCH = 0, TOOL_EMAIL = 1 };

typedef struct {
    tr_config cfg;
    tr_quota_cfg quotas[4];
    tr_tool_cfg tools[4];
    tr_tool_charge charges[4][TR_ADMIT_MAX_CHARGES + 2];
} budget_fixture;

static inline void
fixture_class(tr_budget_class_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->concurrency = 4;
    c->queue = 4;
    c->queue_timeout_ms = 2000;
    c->rate = 10.0;
    c->burst = 20;
}

static inline void
fixture_common(budget_fixture *f)
{
    memset(f, 0, sizeof(*f));
    fixture_class(&f->cfg.budgets.human);
    fixture_class(&f->cfg.budgets.agent);
    f->cfg.budgets.table_capacity = 1000;
    f->quotas[0] = (tr_quota_cfg){(char *)"email", 30, 60,
                                  TR_QUOTA_PER_PRINCIPAL, false};
    f->cfg.quotas = f->quotas;
    f->cfg.n_quotas = 1;
    f->tools[TOOL_SEARCH] = (tr_tool_cfg){(char *)"search", 1, NULL, 0};
    f->charges[TOOL_EMAIL][0] = (tr_tool_charge){0, 10};
    f->tools[TOOL_EMAIL] =
        (tr_tool_cfg){(char *)"send_email", 1, f->charges[TOOL_EMAIL], 1};
    f->cfg.tools = f->tools;
    f->cfg.n_tools = 2;
}

static inline tr_admit_request
who(const char *user, tr_caller_class cls, int32_t tool)
{
    /* principal key: issuer name "corp", NUL, sub */
    static char keys[8][64];
    static unsigned next;
    char *k = keys[next++ % 8];
    size_t n = strlen(user);

    memcpy(k, "corp", 5);
    memcpy(k + 5, user, n);
    return (tr_admit_request){k, 5 + n, cls, tool};
}

#endif
