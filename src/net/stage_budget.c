/* Budgets (issue 5): being written. */
#include "net/stages.h"

tr_step tr_budget_admit(tr_request *req) { return TR_NEXT; }
tr_step tr_budget_charge_replay(tr_request *req) { return TR_NEXT; }
void tr_budget_refund(tr_request *req) { }
int tr_budget_response_headers(tr_request *req, tr_buf *b) { return 0; }
bool tr_budget_cancel(tr_request *req) { return false; }
void tr_budget_release(tr_request *req) { }
