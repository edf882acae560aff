/* Per-request state of the budgets stage (stage_budget.c). */
#ifndef TREATY_NET_STAGE_BUDGET_T_H
#define TREATY_NET_STAGE_BUDGET_T_H

#include <uv.h>

#include "core/admission.h"

typedef struct {
    tr_admit_ticket ticket;
    tr_admit_decision decision;  /* the last one: headers come from it */
    bool have_decision;
    bool queued;
    bool holds;                  /* admitted: must be released */
    uv_timer_t *queue_timer;     /* shared per server; see stage_budget */
    uint64_t queued_at;
} tr_budget_req;

#endif
