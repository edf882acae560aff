/*
 * The contract stages of the pipeline, one module each.  pipeline.c calls
 * the tr_stage_* dispatchers (stage_contract.c) in the order SPEC.md
 * fixes; they call the feature modules.  Each returns TR_NEXT, TR_AGAIN
 * (it will call tr_pipeline_continue) or TR_STOP (it answered).
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

/* stage_contract.c: the dispatchers of steps 5 to 11. */
tr_step tr_stage_static_checks(tr_request *req);
void tr_stage_body_buffered(tr_request *req);
tr_step tr_stage_idem_lookup(tr_request *req);
tr_step tr_stage_admit(tr_request *req);
tr_step tr_stage_claim(tr_request *req);
tr_step tr_stage_preconditions(tr_request *req);
tr_step tr_stage_record_decision(tr_request *req);
tr_step tr_stage_mint(tr_request *req);
int tr_stage_append_response_headers(tr_request *req, tr_buf *b);
void tr_stage_observe_response_body(tr_request *req, const char *p,
                                    size_t n);
bool tr_stage_cancel(tr_request *req);
void tr_stage_release(tr_request *req);
void tr_stage_record(tr_request *req);

/* ---- stage_budget.c: step 7 (and the replay charge of step 6). */
tr_step tr_budget_admit(tr_request *req);
/* One rate unit for a replayed outcome; TR_STOP when refused (429). */
tr_step tr_budget_charge_replay(tr_request *req);
/* A lost idempotency claim race: give back exactly what was charged. */
void tr_budget_refund(tr_request *req);
int tr_budget_response_headers(tr_request *req, tr_buf *b);
bool tr_budget_cancel(tr_request *req);
void tr_budget_release(tr_request *req);

/* ---- stage_idempotency.c: steps 5 (key), 6 (lookup), 8 (claim), and
 * storing the outcome when the request ends. */
tr_step tr_idem_static_checks(tr_request *req);   /* may set buffer_body */
void tr_idem_body_buffered(tr_request *req);      /* fingerprint */
tr_step tr_idem_lookup_stage(tr_request *req);
tr_step tr_idem_claim_stage(tr_request *req);
int tr_idem_response_headers(tr_request *req, tr_buf *b);
int tr_idem_upstream_headers(tr_request *req, tr_buf *b);
void tr_idem_observe_body(tr_request *req, const char *p, size_t n);
bool tr_idem_cancel(tr_request *req);
void tr_idem_stage_release(tr_request *req);     /* outcome, free */
bool tr_idem_header_is_reserved(const tr_request *req, const tr_header *h);
void tr_idem_observe_head(tr_request *req, int status, const tr_header *h,
                          size_t n);

/* ---- stage_preconditions.c: steps 5 (presence, 428) and 9. */
tr_step tr_precond_static_checks(tr_request *req);
tr_step tr_precond_stage(tr_request *req);
int tr_precond_response_headers(tr_request *req, tr_buf *b);
void tr_precond_observe_body(tr_request *req, const char *p, size_t n);
void tr_precond_observe_head(tr_request *req, int status,
                             const tr_header *h, size_t n);
bool tr_precond_response_header_replaced(const tr_request *req,
                                         const tr_header *h);
bool tr_precond_cancel(tr_request *req);
void tr_precond_release(tr_request *req);
/* Request fields not forwarded: the conditions treaty evaluated itself on
 * an `etags: synthesize` route (the backend would test them against its
 * own tags).  For tr_request_header_is_reserved() in pipeline.c. */
bool tr_precond_header_is_reserved(const tr_request *req,
                                   const tr_header *h);

/* ---- stage_audit.c: the record written at the decision (durable before
 * forwarding a mutating request) and completed at the end. */
tr_step tr_audit_record_decision(tr_request *req);
bool tr_audit_cancel(tr_request *req);
void tr_audit_complete(tr_request *req);
/* Mutating requests are refused (503) while the trail cannot take
 * records: checked in step 5 so nothing is forwarded unrecorded. */
tr_step tr_audit_admission_check(tr_request *req);

#endif
