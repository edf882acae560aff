/*
 * The dispatchers of steps 5 to 11: they fix the order in which the
 * contract features run; each feature lives in its own stage_*.c.
 */
#include "core/identity.h"
#include "net/services.h"
#include "net/stages.h"
#include "net/txn_tokens.h"

tr_step
tr_stage_static_checks(tr_request *req)
{
    tr_step st = tr_idem_static_checks(req);
    if (st == TR_NEXT)
        st = tr_precond_static_checks(req);
    if (st == TR_NEXT)
        st = tr_audit_admission_check(req);
    return st;
}

void
tr_stage_body_buffered(tr_request *req)
{
    tr_idem_body_buffered(req);
}

tr_step
tr_stage_idem_lookup(tr_request *req)
{
    return tr_idem_lookup_stage(req);
}

tr_step
tr_stage_admit(tr_request *req)
{
    return tr_budget_admit(req);
}

tr_step
tr_stage_claim(tr_request *req)
{
    return tr_idem_claim_stage(req);
}

tr_step
tr_stage_preconditions(tr_request *req)
{
    return tr_precond_stage(req);
}

tr_step
tr_stage_record_decision(tr_request *req)
{
    return tr_audit_record_decision(req);
}

tr_step
tr_stage_mint(tr_request *req)
{
    const tr_services *svc = req->client->srv->svc;
    return tr_txn_tokens_stage(svc ? svc->txn : NULL, req);
}

int
tr_stage_append_response_headers(tr_request *req, tr_buf *b)
{
    if (tr_budget_response_headers(req, b) != 0 ||
        tr_idem_response_headers(req, b) != 0 ||
        tr_precond_response_headers(req, b) != 0)
        return -1;
    return 0;
}

void
tr_stage_observe_response_body(tr_request *req, const char *p, size_t n)
{
    tr_idem_observe_body(req, p, n);
    tr_precond_observe_body(req, p, n);
}

void
tr_stage_observe_response_head(tr_request *req, int status,
                               const tr_header *h, size_t n)
{
    tr_idem_observe_head(req, status, h, n);
    tr_precond_observe_head(req, status, h, n);
}

bool
tr_stage_response_header_replaced(const tr_request *req, const tr_header *h)
{
    return tr_precond_response_header_replaced(req, h);
}

/* The client left while a stage waited; each feature drops its part.
 * True when one of them took over finishing the request. */
bool
tr_stage_cancel(tr_request *req)
{
    bool taken = tr_budget_cancel(req);
    taken = tr_idem_cancel(req) || taken;
    taken = tr_precond_cancel(req) || taken;
    taken = tr_audit_cancel(req) || taken;
    return taken;
}

void
tr_stage_release(tr_request *req)
{
    tr_budget_release(req);
    tr_precond_release(req);
    tr_idem_stage_release(req);
    tr_txn_tokens_release(req);
    if (req->identity) {
        tr_identity_unref(req->identity);
        req->identity = NULL;
    }
}

void
tr_stage_record(tr_request *req)
{
    tr_audit_complete(req);
}
