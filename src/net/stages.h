/*
 * The contract stages of the pipeline, one module each.  pipeline.c calls
 * them in the order SPEC.md fixes; each returns TR_NEXT, TR_AGAIN (it will
 * call tr_pipeline_continue) or TR_STOP (it answered).
 */
#ifndef TREATY_NET_STAGES_H
#define TREATY_NET_STAGES_H

#include "net/gateway.h"

/* stage_identity.c: step 2, and what identity adds downstream. */
tr_step tr_stage_identify(tr_request *req);
tr_step tr_stage_enforce_auth(tr_request *req);
bool tr_identity_header_is_reserved(const tr_request *req,
                                    const tr_header *h);
int tr_identity_append_upstream_headers(tr_request *req,
                                        const tr_upstream_cfg *u,
                                        tr_buf *b);

/* stage_authorize.c: step 4. */
tr_step tr_stage_authorize(tr_request *req);

/* stage_contract.c: steps 5 to 9 and their bookkeeping. */
tr_step tr_stage_static_checks(tr_request *req);
void tr_stage_body_buffered(tr_request *req);
tr_step tr_stage_idem_lookup(tr_request *req);
tr_step tr_stage_admit(tr_request *req);
tr_step tr_stage_claim(tr_request *req);
tr_step tr_stage_preconditions(tr_request *req);
int tr_stage_append_response_headers(tr_request *req, tr_buf *b);
void tr_stage_observe_response_body(tr_request *req, const char *p,
                                    size_t n);
/* The client left during an asynchronous stage; true when the stage
 * took over finishing the request. */
bool tr_stage_cancel(tr_request *req);
/* Gives back whatever the stages hold (slots, locks, claims). */
void tr_stage_release(tr_request *req);
/* Step 11: the audit record. */
void tr_stage_record(tr_request *req);

#endif
