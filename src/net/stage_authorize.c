/*
 * Step 4: the route's policy on (actor, principal, action, resource),
 * evaluated by the pure src/core/policy.c.  Every deny names its rule and
 * a reason code in the problem, the access log and the audit record.  In
 * shadow mode the verdict is recorded and nothing is refused.
 */
#include <jansson.h>
#include <stdio.h>

#include "core/policy.h"
#include "net/log.h"
#include "net/stages.h"

tr_step
tr_stage_authorize(tr_request *req)
{
    const tr_route_cfg *route = req->route;
    tr_policy_result r;

    if (!route->policy.present)
        return TR_NEXT;
    tr_policy_eval(&route->policy, req->identity, req->match.params,
                   req->match.n_params, &r);
    if (!r.deny)
        return TR_NEXT;

    const char *rule = tr_policy_rule_name(r.rule);
    const char *reason = tr_policy_reason_name(r.reason);
    req->policy_rule = rule;
    if (!r.enforce) {
        /* Shadow: the request goes on; the record says what would have
         * happened. */
        req->reason = reason;
        req->policy_shadow_deny = true;
        tr_log(TR_LOG_INFO, "policy_shadow_deny",
               "request_id=%s route=%s rule=%s reason=%s", req->id,
               route->name, rule, reason);
        return TR_NEXT;
    }

    char hdr[512] = "", www[400];
    if (tr_policy_www_authenticate(&r, www, sizeof(www)) > 0)
        snprintf(hdr, sizeof(hdr), "WWW-Authenticate: %s\r\n", www);

    char detail[256];
    snprintf(detail, sizeof(detail),
             "route '%s' refused this request: rule %s (%s)", route->name,
             rule, reason);
    json_t *ext = json_object();
    json_object_set_new(ext, "rule", json_string(rule));
    json_object_set_new(ext, "reason", json_string(reason));
    if (r.required_scopes && r.required_scopes->n) {
        json_t *arr = json_array();
        for (size_t i = 0; i < r.required_scopes->n; i++)
            json_array_append_new(arr,
                                  json_string(r.required_scopes->items[i]));
        json_object_set_new(ext, "required_scopes", arr);
    }
    req->decision = "deny";
    req->reason = reason;
    tr_respond_problem_ext(req, r.problem, detail, hdr[0] ? hdr : NULL,
                           ext);
    json_decref(ext);
    return TR_STOP;
}
