/*
 * Steps 5 to 9 of the pipeline and their bookkeeping.  Each contract
 * feature (idempotency, budgets, preconditions, audit) fills its step
 * here.
 */
#include "core/identity.h"
#include "net/stages.h"

tr_step
tr_stage_static_checks(tr_request *req)
{
    return TR_NEXT;
}

void
tr_stage_body_buffered(tr_request *req)
{
}

tr_step
tr_stage_idem_lookup(tr_request *req)
{
    return TR_NEXT;
}

tr_step
tr_stage_admit(tr_request *req)
{
    return TR_NEXT;
}

tr_step
tr_stage_claim(tr_request *req)
{
    return TR_NEXT;
}

tr_step
tr_stage_preconditions(tr_request *req)
{
    return TR_NEXT;
}

int
tr_stage_append_response_headers(tr_request *req, tr_buf *b)
{
    return 0;
}

void
tr_stage_observe_response_body(tr_request *req, const char *p, size_t n)
{
}

bool
tr_stage_cancel(tr_request *req)
{
    return false;
}

void
tr_stage_release(tr_request *req)
{
    if (req->identity) {
        tr_identity_unref(req->identity);
        req->identity = NULL;
    }
}

void
tr_stage_record(tr_request *req)
{
}
