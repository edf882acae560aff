/* The budgets service: the admission core, its queue timer and sweep. */
#ifndef TREATY_NET_STAGE_BUDGET_H
#define TREATY_NET_STAGE_BUDGET_H

#include "net/gateway.h"

typedef struct tr_budget_svc tr_budget_svc;

/* NULL (logged) when the budgets in the configuration are unusable. */
tr_budget_svc *tr_budget_svc_start(tr_server *srv);
void tr_budget_svc_stop(tr_budget_svc *b);

#endif
