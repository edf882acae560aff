/*
 * The audit record of every decision (SPEC.md §4, pipeline step 11).
 *
 * - A forwarded mutating request: a DECISION record is committed before
 *   anything is sent upstream (so it is durable before the response is
 *   acknowledged), and a COMPLETION record with status and timing follows
 *   when the request ends.
 * - Everything else (reads, refusals, replays): one REQUEST record with
 *   every field, written when the request ends; it trails by at most the
 *   store's flush delay.
 * - Refused tokens: aggregated per client address and reason, so a flood
 *   of garbage tokens cannot fill the disk.
 * When the trail cannot take records (backlog full, disk full), mutating
 * requests are refused with 503 before anything is forwarded; reads
 * follow audit.reads_fail_open.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit_identity.h"
#include "core/audit_record.h"
#include "net/log.h"
#include "net/services.h"
#include "net/stages.h"
#include "store/audit_store.h"

static tr_audit *
audit_of(const tr_request *req)
{
    const tr_services *svc = req->client->srv->svc;
    return svc ? svc->audit : NULL;
}

static tr_audit_decision
decision_of(const tr_request *req)
{
    if (!req->decision)
        return req->status >= 500 ? TR_AUDIT_ERROR : TR_AUDIT_DENY;
    if (!strcmp(req->decision, "allow"))
        return TR_AUDIT_ALLOW;
    if (!strcmp(req->decision, "error"))
        return TR_AUDIT_ERROR;
    return TR_AUDIT_DENY;
}

static char *
stripped_json(const tr_request *req)
{
    if (!req->stripped_len)
        return NULL;
    json_t *arr = json_array();
    const char *p = req->stripped_headers;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        json_array_append_new(arr, json_stringn(p, n));
        p += n + (e ? 1 : 0);
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

/* Fills rec from the request; *chain and *stripped must be freed. */
static void
fill(const tr_request *req, tr_audit_record *rec, char **chain,
     char **stripped, char token_hash[TR_AUDIT_TOKEN_HASH_HEX])
{
    memset(rec, 0, sizeof(*rec));
    rec->time_ms = req->start_ms_wall;
    rec->request_id = req->id;
    rec->client_addr = req->client_addr;
    *chain = NULL;
    if (req->identity)
        tr_audit_set_identity(rec, req->identity, chain, token_hash);
    *stripped = stripped_json(req);
    rec->stripped_headers = *stripped;
    rec->route = req->route ? req->route->name : NULL;
    rec->tool = req->tool;
    static char method[24];
    size_t ml = req->method_len < sizeof(method) - 1 ? req->method_len
                                                     : sizeof(method) - 1;
    if (ml)
        memcpy(method, req->method, ml);
    method[ml] = '\0';
    rec->method = method;
    static char path[4096];
    size_t pl = req->path_len ? req->path_len : req->target_len;
    if (pl > sizeof(path) - 1)
        pl = sizeof(path) - 1;
    if (pl)  /* a head refused before parsing has no target at all */
        memcpy(path, req->path_len ? req->path : req->target, pl);
    path[pl] = '\0';
    rec->path = path;
    rec->decision = decision_of(req);
    rec->reason = req->reason;
    rec->policy_rule = req->policy_rule;
    rec->limiter = req->limiter;
    rec->idem_key_hash = req->idem_key_hash[0] ? req->idem_key_hash : NULL;
    rec->has_idem_replay = req->idem_key_hash[0] != '\0';
    rec->idem_replay = req->replayed;
    rec->precondition = req->precondition;
    rec->config_hash = req->client->srv->cfg->hash_hex;
}

tr_step
tr_audit_admission_check(tr_request *req)
{
    tr_audit *a = audit_of(req);
    if (!a || tr_audit_admit(a, req->mutating) == 0)
        return TR_NEXT;
    req->decision = "error";
    req->reason = "audit_unavailable";
    tr_respond_problem(req, TR_P_AUDIT_UNAVAILABLE,
                       "the audit trail cannot record this request now; "
                       "nothing was forwarded", "Retry-After: 1\r\n");
    return TR_STOP;
}

static void
on_decision_durable(void *arg, int status, uint64_t seq)
{
    tr_request *req = arg;

    req->audit_waiting = false;
    if (status < 0) {
        req->audit_decision_written = false;
        if (req->client_gone) {
            req->status = 499;
            tr_request_finish(req);
            return;
        }
        req->decision = "error";
        req->reason = "audit_unavailable";
        tr_respond_problem(req, TR_P_AUDIT_UNAVAILABLE,
                           "the audit record could not be made durable; "
                           "nothing was forwarded", "Retry-After: 1\r\n");
        return;
    }
    req->audit_seq = seq;
    if (req->client_gone && !req->keyed) {
        /* Recorded as decided; it never went upstream. */
        req->status = 499;
        req->reason = "client_closed";
        tr_request_finish(req);
        return;
    }
    /* Re-enters this stage, which now finds the record durable. */
    tr_pipeline_continue(req);
}

tr_step
tr_audit_record_decision(tr_request *req)
{
    tr_audit *a = audit_of(req);
    if (!a || !req->mutating || req->audit_decision_written)
        return TR_NEXT;

    tr_audit_record rec;
    char *chain, *stripped, th[TR_AUDIT_TOKEN_HASH_HEX];
    req->decision = "allow";
    fill(req, &rec, &chain, &stripped, th);
    rec.kind = TR_AUDIT_DECISION;
    int rc = tr_audit_write_decision(a, &rec, on_decision_durable, req);
    free(chain);
    free(stripped);
    if (rc < 0) {
        req->decision = "error";
        req->reason = "audit_unavailable";
        tr_respond_problem(req, TR_P_AUDIT_UNAVAILABLE,
                           "the audit trail cannot record this request "
                           "now; nothing was forwarded",
                           "Retry-After: 1\r\n");
        return TR_STOP;
    }
    req->audit_decision_written = true;
    req->audit_waiting = true;
    return TR_AGAIN;
}

bool
tr_audit_cancel(tr_request *req)
{
    /* The durability callback finishes the request. */
    return req->audit_waiting;
}

void
tr_audit_complete(tr_request *req)
{
    tr_audit *a = audit_of(req);
    if (!a)
        return;
    int64_t latency_us = (int64_t)(req->duration_ms * 1000.0);

    if (req->audit_decision_written) {
        tr_audit_write_completion(a, req->audit_seq, req->id,
                                  req->start_ms_wall + latency_us / 1000,
                                  req->status, latency_us,
                                  (int64_t)req->bytes_out);
        return;
    }
    if (req->token_refused)
        return;  /* aggregated by tr_services_note_refused_token */

    tr_audit_record rec;
    char *chain, *stripped, th[TR_AUDIT_TOKEN_HASH_HEX];
    fill(req, &rec, &chain, &stripped, th);
    rec.kind = TR_AUDIT_REQUEST;
    rec.has_status = true;
    rec.status = req->status;
    rec.has_latency = true;
    rec.latency_us = latency_us;
    rec.has_bytes = true;
    rec.bytes = (int64_t)req->bytes_out;
    tr_audit_write(a, &rec);
    free(chain);
    free(stripped);
}
