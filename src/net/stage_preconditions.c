/* Preconditions and compare-and-swap (issue 9): being written. */
#include "net/stages.h"

tr_step tr_precond_static_checks(tr_request *req) { return TR_NEXT; }
tr_step tr_precond_stage(tr_request *req) { return TR_NEXT; }
int tr_precond_response_headers(tr_request *req, tr_buf *b) { return 0; }
void tr_precond_observe_body(tr_request *req, const char *p, size_t n) { }
bool tr_precond_cancel(tr_request *req) { return false; }
void tr_precond_release(tr_request *req) { }
void tr_precond_observe_head(tr_request *req, int status, const tr_header *h, size_t n) { }
bool tr_precond_response_header_replaced(const tr_request *req, const tr_header *h) { return false; }
