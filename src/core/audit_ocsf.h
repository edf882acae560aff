/*
 * An audit record as an OCSF API Activity event (class_uid 6003,
 * category_uid 6, OCSF schema TR_AUDIT_OCSF_VERSION), for
 * `treaty audit export --format ocsf`.  Pure: jansson only.
 *
 * The mapping (docs/audit.md "OCSF export" is the user-facing copy):
 *   activity_id      from the method: POST, MKCOL, MKCALENDAR 1 Create;
 *                    GET, HEAD, PROPFIND, REPORT 2 Read; PUT, PATCH,
 *                    PROPPATCH 3 Update; DELETE 4 Delete; other methods
 *                    99 Other; no method (refused-token aggregates) 0
 *   type_uid         600300 + activity_id
 *   time             time_ms (the decision); duration: latency in ms
 *   severity_id      1 Informational for allow, 2 Low otherwise
 *   status_id        1 Success: allowed and status < 400; 2 Failure:
 *                    denied, error, or status >= 400; 0 Unknown: a
 *                    forwarded mutation not completed yet
 *   actor.user       the principal: uid and name = sub, domain = the
 *                    configured issuer name (the pair is the identity)
 *   actor.idp.name   the issuer name
 *   actor.app_name   the current actor (agent requests only)
 *   actor.app_uid    the token's client id
 *   actor.authorizations  [{decision, policy: {name: policy rule}}]
 *   api.operation    the route name (the method when none matched)
 *   api.request.uid  the request id; api.response: code, error (reason)
 *   src_endpoint.ip  the client address treaty believes
 *   http_request     http_method, url.path, uid
 *   http_response    code, latency (ms), length (bytes)
 *   unmapped         delegation_chain (array, current actor first),
 *                    caller_class (agent|human), seq, hash, prev_hash,
 *                    kind, and the fields OCSF has no place for (tool,
 *                    limiter, idempotency, precondition, token ids,
 *                    config hash, stripped headers, ...)
 * metadata: version TR_AUDIT_OCSF_VERSION, product {name "treaty",
 * vendor_name "treaty", version TR_AUDIT_PRODUCT_VERSION}, uid = seq,
 * correlation_uid = request id, log_name "audit".
 */
#ifndef TREATY_CORE_AUDIT_OCSF_H
#define TREATY_CORE_AUDIT_OCSF_H

#include <jansson.h>
#include <stdint.h>

#include "core/audit_record.h"

#define TR_AUDIT_OCSF_VERSION "1.3.0"
#define TR_AUDIT_OCSF_CLASS_UID 6003
#define TR_AUDIT_OCSF_CATEGORY_UID 6
/* treaty has no release number yet; this stands in for one. */
#define TR_AUDIT_PRODUCT_VERSION "0.1.0"

/* OCSF activity_id of an HTTP method (see above). */
int tr_audit_ocsf_activity(const char *method);

/*
 * The event for r.  For a DECISION whose COMPLETION is known, pass the
 * record with status, latency and bytes already taken from the
 * completion, and completed_by its seq (0 when none).  A new reference,
 * or NULL when out of memory.
 */
json_t *tr_audit_ocsf_event(const tr_audit_record *r, uint64_t completed_by);

#endif
