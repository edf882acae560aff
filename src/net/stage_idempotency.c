/* Idempotency keys at the gateway (issue 6): being written. */
#include "net/stages.h"

tr_step tr_idem_static_checks(tr_request *req) { return TR_NEXT; }
void tr_idem_body_buffered(tr_request *req) { }
tr_step tr_idem_lookup_stage(tr_request *req) { return TR_NEXT; }
tr_step tr_idem_claim_stage(tr_request *req) { return TR_NEXT; }
int tr_idem_response_headers(tr_request *req, tr_buf *b) { return 0; }
int tr_idem_upstream_headers(tr_request *req, tr_buf *b) { return 0; }
void tr_idem_observe_body(tr_request *req, const char *p, size_t n) { }
bool tr_idem_cancel(tr_request *req) { return false; }
void tr_idem_release(tr_request *req) { }
bool
tr_idem_header_is_reserved(const tr_request *req, const tr_header *h)
{
    return false;
}
void tr_idem_observe_head(tr_request *req, int status, const tr_header *h, size_t n) { }
