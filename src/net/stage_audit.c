/* The audit record of every decision (issue 4): being written. */
#include "net/stages.h"

tr_step tr_audit_decision(tr_request *req) { return TR_NEXT; }
bool tr_audit_cancel(tr_request *req) { return false; }
void tr_audit_complete(tr_request *req) { }
tr_step tr_audit_admission_check(tr_request *req) { return TR_NEXT; }
