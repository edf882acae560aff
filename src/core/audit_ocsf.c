#include "core/audit_ocsf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/audit_chain.h"

enum {
    ACT_UNKNOWN = 0,
    ACT_CREATE = 1,
    ACT_READ = 2,
    ACT_UPDATE = 3,
    ACT_DELETE = 4,
    ACT_OTHER = 99,
};

static const struct {
    const char *method;
    int activity;
} methods[] = {
    { "POST", ACT_CREATE },      { "MKCOL", ACT_CREATE },
    { "MKCALENDAR", ACT_CREATE }, { "GET", ACT_READ },
    { "HEAD", ACT_READ },        { "PROPFIND", ACT_READ },
    { "REPORT", ACT_READ },      { "PUT", ACT_UPDATE },
    { "PATCH", ACT_UPDATE },     { "PROPPATCH", ACT_UPDATE },
    { "DELETE", ACT_DELETE },
};

int
tr_audit_ocsf_activity(const char *method)
{
    if (!method || !*method)
        return ACT_UNKNOWN;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (!strcmp(method, methods[i].method))
            return methods[i].activity;
    return ACT_OTHER;
}

static const char *
activity_name(int a)
{
    switch (a) {
    case ACT_CREATE:
        return "Create";
    case ACT_READ:
        return "Read";
    case ACT_UPDATE:
        return "Update";
    case ACT_DELETE:
        return "Delete";
    case ACT_OTHER:
        return "Other";
    }
    return "Unknown";
}

/* Sets key to a string, leaving it out for NULL. */
static void
set_str(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

/* A stored JSON array column; the text itself if it does not parse. */
static json_t *
json_col(const char *s)
{
    json_t *v;

    if (!s)
        return NULL;
    v = json_loads(s, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(s);
}

static void
set_new_opt(json_t *o, const char *key, json_t *v)
{
    if (v)
        json_object_set_new(o, key, v);
}

static bool
is_agent(const tr_audit_record *r)
{
    return r->actor && r->principal_sub &&
           strcmp(r->actor, r->principal_sub) != 0;
}

/* 1 Success, 2 Failure, 0 Unknown (see the header). */
static int
status_id(const tr_audit_record *r)
{
    if (r->decision == TR_AUDIT_DENY || r->decision == TR_AUDIT_ERROR)
        return 2;
    if (r->kind == TR_AUDIT_REFUSED_TOKENS)
        return 2;
    if (!r->has_status)
        return 0;
    return r->status < 400 ? 1 : 2;
}

static json_t *
actor_of(const tr_audit_record *r)
{
    json_t *actor = json_object(), *user = json_object();

    if (r->principal_sub) {
        set_str(user, "uid", r->principal_sub);
        set_str(user, "name", r->principal_sub);
        set_str(user, "domain", r->principal_issuer);
    } else {
        /* Refused tokens and requests without one: nobody known. */
        json_object_set_new(user, "name", json_string("unauthenticated"));
        json_object_set_new(user, "type_id", json_integer(0));
    }
    json_object_set_new(actor, "user", user);
    if (r->principal_issuer) {
        json_t *idp = json_object();

        set_str(idp, "name", r->principal_issuer);
        json_object_set_new(actor, "idp", idp);
    }
    if (is_agent(r))
        set_str(actor, "app_name", r->actor);
    set_str(actor, "app_uid", r->client_id);
    if (r->decision != TR_AUDIT_NONE) {
        json_t *auths = json_array(), *a = json_object();

        json_object_set_new(a, "decision", json_string(
                                tr_audit_decision_name(r->decision)));
        if (r->policy_rule) {
            json_t *policy = json_object();

            set_str(policy, "name", r->policy_rule);
            json_object_set_new(a, "policy", policy);
        }
        json_array_append_new(auths, a);
        json_object_set_new(actor, "authorizations", auths);
    }
    return actor;
}

static json_t *
unmapped_of(const tr_audit_record *r, uint64_t completed_by)
{
    json_t *u = json_object();
    char hex[65];

    json_object_set_new(u, "seq", json_integer((json_int_t)r->seq));
    tr_audit_hex(r->hash, 32, hex);
    json_object_set_new(u, "hash", json_string(hex));
    tr_audit_hex(r->prev_hash, 32, hex);
    json_object_set_new(u, "prev_hash", json_string(hex));
    json_object_set_new(u, "kind", json_string(tr_audit_kind_name(r->kind)));
    set_str(u, "principal_issuer", r->principal_issuer);
    set_str(u, "principal_sub", r->principal_sub);
    set_str(u, "actor", r->actor);
    set_new_opt(u, "delegation_chain", json_col(r->delegation_chain));
    if (r->principal_sub)
        json_object_set_new(u, "caller_class",
                            json_string(is_agent(r) ? "agent" : "human"));
    set_str(u, "route", r->route);
    set_str(u, "tool", r->tool);
    set_str(u, "reason", r->reason);
    set_str(u, "policy_rule", r->policy_rule);
    set_str(u, "limiter", r->limiter);
    set_str(u, "idem_key_hash", r->idem_key_hash);
    if (r->has_idem_replay)
        json_object_set_new(u, "idem_replay", json_boolean(r->idem_replay));
    set_str(u, "precondition", r->precondition);
    set_str(u, "token_id", r->token_id);
    set_str(u, "token_hash", r->token_hash);
    if (r->has_token_verified)
        json_object_set_new(u, "token_verified",
                            json_boolean(r->token_verified));
    set_str(u, "config_hash", r->config_hash);
    set_new_opt(u, "stripped_headers", json_col(r->stripped_headers));
    if (completed_by)
        json_object_set_new(u, "completed_by_seq",
                            json_integer((json_int_t)completed_by));
    return u;
}

static json_t *
api_of(const tr_audit_record *r)
{
    json_t *api = json_object(), *req = json_object(), *resp;
    const char *op = r->route ? r->route : r->method;

    if (!op)
        op = r->kind == TR_AUDIT_REFUSED_TOKENS ? "refused_token"
                                                : "unknown";
    json_object_set_new(api, "operation", json_string(op));
    set_str(req, "uid", r->request_id);
    json_object_set_new(api, "request", req);
    if (r->has_status || r->reason) {
        resp = json_object();
        if (r->has_status)
            json_object_set_new(resp, "code", json_integer(r->status));
        set_str(resp, "error", r->reason);
        json_object_set_new(api, "response", resp);
    }
    return api;
}

static json_t *
http_of(const tr_audit_record *r, json_t **response)
{
    json_t *req = json_object(), *url;

    *response = NULL;
    set_str(req, "http_method", r->method);
    if (r->path) {
        url = json_object();
        set_str(url, "path", r->path);
        json_object_set_new(req, "url", url);
    }
    set_str(req, "uid", r->request_id);
    if (r->has_status) {
        *response = json_object();
        json_object_set_new(*response, "code", json_integer(r->status));
        if (r->has_latency)
            json_object_set_new(*response, "latency",
                                json_integer(r->latency_us / 1000));
        if (r->has_bytes)
            json_object_set_new(*response, "length",
                                json_integer(r->bytes));
    }
    return req;
}

static json_t *
metadata_of(const tr_audit_record *r)
{
    json_t *m = json_object(), *product = json_object();
    char uid[24];

    json_object_set_new(product, "name", json_string("treaty"));
    json_object_set_new(product, "vendor_name", json_string("treaty"));
    json_object_set_new(product, "version",
                        json_string(TR_AUDIT_PRODUCT_VERSION));
    json_object_set_new(m, "product", product);
    json_object_set_new(m, "version", json_string(TR_AUDIT_OCSF_VERSION));
    snprintf(uid, sizeof(uid), "%llu", (unsigned long long)r->seq);
    json_object_set_new(m, "uid", json_string(uid));
    set_str(m, "correlation_uid", r->request_id);
    json_object_set_new(m, "log_name", json_string("audit"));
    return m;
}

/* "agent:mailbot for alice@corp: POST /x allow 201" */
static json_t *
message_of(const tr_audit_record *r)
{
    char buf[512], st[16] = "";

    if (r->kind == TR_AUDIT_REFUSED_TOKENS) {
        snprintf(buf, sizeof(buf), "%lld refused token(s) from %s: %s",
                 (long long)(r->has_count ? r->count : 0),
                 r->client_addr ? r->client_addr : "-",
                 r->reason ? r->reason : "-");
        return json_string(buf);
    }
    if (r->has_status)
        snprintf(st, sizeof(st), " %d", (int)r->status);
    snprintf(buf, sizeof(buf), "%s for %s@%s: %s %s %s%s",
             r->actor ? r->actor : "-",
             r->principal_sub ? r->principal_sub : "-",
             r->principal_issuer ? r->principal_issuer : "-",
             r->method ? r->method : "-", r->path ? r->path : "-",
             r->decision == TR_AUDIT_NONE
                 ? "-" : tr_audit_decision_name(r->decision), st);
    /* json_string refuses invalid UTF-8 a cut could leave: then none. */
    return json_string(buf);
}

json_t *
tr_audit_ocsf_event(const tr_audit_record *r, uint64_t completed_by)
{
    json_t *e = json_object(), *resp = NULL, *src;
    int activity = tr_audit_ocsf_activity(r->method);
    int sid = status_id(r);
    char type_name[48], code[16];

    if (!e)
        return NULL;
    json_object_set_new(e, "class_uid",
                        json_integer(TR_AUDIT_OCSF_CLASS_UID));
    json_object_set_new(e, "class_name", json_string("API Activity"));
    json_object_set_new(e, "category_uid",
                        json_integer(TR_AUDIT_OCSF_CATEGORY_UID));
    json_object_set_new(e, "category_name",
                        json_string("Application Activity"));
    json_object_set_new(e, "activity_id", json_integer(activity));
    json_object_set_new(e, "activity_name",
                        json_string(activity_name(activity)));
    json_object_set_new(e, "type_uid",
                        json_integer(TR_AUDIT_OCSF_CLASS_UID * 100 +
                                     activity));
    snprintf(type_name, sizeof(type_name), "API Activity: %s",
             activity_name(activity));
    json_object_set_new(e, "type_name", json_string(type_name));
    json_object_set_new(e, "time", json_integer(r->time_ms));
    json_object_set_new(e, "severity_id",
                        json_integer(r->decision == TR_AUDIT_ALLOW ? 1
                                                                   : 2));
    json_object_set_new(e, "severity",
                        json_string(r->decision == TR_AUDIT_ALLOW
                                        ? "Informational" : "Low"));
    json_object_set_new(e, "status_id", json_integer(sid));
    json_object_set_new(e, "status",
                        json_string(sid == 1 ? "Success"
                                    : sid == 2 ? "Failure" : "Unknown"));
    if (r->has_status) {
        snprintf(code, sizeof(code), "%d", (int)r->status);
        json_object_set_new(e, "status_code", json_string(code));
    }
    set_str(e, "status_detail", r->reason);
    if (r->has_latency)
        json_object_set_new(e, "duration",
                            json_integer(r->latency_us / 1000));
    if (r->has_count)
        json_object_set_new(e, "count", json_integer(r->count));
    set_new_opt(e, "message", message_of(r));
    json_object_set_new(e, "metadata", metadata_of(r));
    json_object_set_new(e, "actor", actor_of(r));
    json_object_set_new(e, "api", api_of(r));
    src = json_object();
    set_str(src, "ip", r->client_addr);
    json_object_set_new(e, "src_endpoint", src);
    json_object_set_new(e, "http_request", http_of(r, &resp));
    set_new_opt(e, "http_response", resp);
    json_object_set_new(e, "unmapped", unmapped_of(r, completed_by));
    return e;
}
