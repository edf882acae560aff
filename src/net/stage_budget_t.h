/* Per-request state of the budgets stage (stage_budget.c). */
#ifndef TREATY_NET_STAGE_BUDGET_T_H
#define TREATY_NET_STAGE_BUDGET_T_H

#include <stdbool.h>
#include <stdint.h>

#include "core/admission.h"

struct tr_request;

typedef struct {
    tr_admit_ticket ticket;
    tr_admit_decision decision;  /* the last one: headers come from it */
    bool have_decision;
    bool active;                 /* admitted or queued: release it */
    bool queued;
    uint64_t deadline;           /* queue deadline, monotonic ns */
    uint64_t queued_at;
    struct tr_request *qprev, *qnext;  /* the class's queue, in order */
} tr_budget_req;

#endif
