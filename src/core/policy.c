#include "core/policy.h"

#include <jansson.h>
#include <string.h>

#include "core/glob.h"

static const char *const rule_names[TR_PRULE__COUNT] = {
    [TR_PRULE_NONE] = "",
    [TR_PRULE_AUTHENTICATION] = "authentication",
    [TR_PRULE_HUMANS] = "humans",
    [TR_PRULE_ACTORS] = "actors",
    [TR_PRULE_MAX_DEPTH] = "max_delegation_depth",
    [TR_PRULE_SCOPES] = "scopes",
    [TR_PRULE_OWNER_PARAM] = "owner_param",
    [TR_PRULE_CONSENT_CLAIM] = "consent_claim",
};

static const char *const reason_names[TR_PREASON__COUNT] = {
    [TR_PREASON_ALLOWED] = "allowed",
    [TR_PREASON_NO_POLICY] = "no_policy",
    [TR_PREASON_MISSING_TOKEN] = "missing_token",
    [TR_PREASON_HUMANS_NOT_ALLOWED] = "humans_not_allowed",
    [TR_PREASON_NO_ACTOR_RULE] = "no_actor_rule",
    [TR_PREASON_ACTOR_NOT_ALLOWED] = "actor_not_allowed",
    [TR_PREASON_DEPTH_EXCEEDED] = "delegation_depth_exceeded",
    [TR_PREASON_INSUFFICIENT_SCOPE] = "insufficient_scope",
    [TR_PREASON_RESOURCE_MISMATCH] = "principal_resource_mismatch",
    [TR_PREASON_OWNER_PARAM_MISSING] = "owner_param_missing",
    [TR_PREASON_CONSENT_REQUIRED] = "consent_required",
};

static const tr_problem_kind reason_problems[TR_PREASON__COUNT] = {
    [TR_PREASON_ALLOWED] = TR_P_INTERNAL,
    [TR_PREASON_NO_POLICY] = TR_P_INTERNAL,
    [TR_PREASON_MISSING_TOKEN] = TR_P_TOKEN_MISSING,
    [TR_PREASON_HUMANS_NOT_ALLOWED] = TR_P_HUMANS_NOT_ALLOWED,
    [TR_PREASON_NO_ACTOR_RULE] = TR_P_POLICY_DENIED,
    [TR_PREASON_ACTOR_NOT_ALLOWED] = TR_P_ACTOR_NOT_ALLOWED,
    [TR_PREASON_DEPTH_EXCEEDED] = TR_P_DELEGATION_DEPTH,
    [TR_PREASON_INSUFFICIENT_SCOPE] = TR_P_INSUFFICIENT_SCOPE,
    [TR_PREASON_RESOURCE_MISMATCH] = TR_P_RESOURCE_MISMATCH,
    [TR_PREASON_OWNER_PARAM_MISSING] = TR_P_POLICY_DENIED,
    [TR_PREASON_CONSENT_REQUIRED] = TR_P_CONSENT_REQUIRED,
};

const char *
tr_policy_rule_name(tr_policy_rule rule)
{
    if ((unsigned)rule >= TR_PRULE__COUNT)
        return "";
    return rule_names[rule];
}

const char *
tr_policy_reason_name(tr_policy_reason reason)
{
    if ((unsigned)reason >= TR_PREASON__COUNT)
        return "";
    return reason_names[reason];
}

static void
deny(tr_policy_result *r, tr_policy_rule rule, tr_policy_reason reason)
{
    r->deny = true;
    r->enforce = !r->shadow;
    r->rule = rule;
    r->reason = reason;
    r->problem = reason_problems[reason];
}

static bool
actor_allowed(const tr_strlist *globs, const char *actor)
{
    size_t alen = strlen(actor);

    for (size_t i = 0; i < globs->n; i++) {
        const char *g = globs->items[i];

        if (tr_glob_match(g, strlen(g), actor, alen))
            return true;
    }
    return false;
}

static bool
has_scope(const tr_identity *id, const char *scope)
{
    for (size_t i = 0; i < id->n_scopes; i++) {
        if (id->scopes[i] != NULL && strcmp(id->scopes[i], scope) == 0)
            return true;
    }
    return false;
}

/* Bit mask of required scopes the identity lacks; *any is set when one
 * is missing, including past the 64 the mask can hold. */
static uint64_t
missing_scopes(const tr_strlist *req, const tr_identity *id, bool *any)
{
    uint64_t mask = 0;

    *any = false;
    for (size_t i = 0; i < req->n; i++) {
        if (has_scope(id, req->items[i]))
            continue;
        *any = true;
        if (i < 64)
            mask |= (uint64_t)1 << i;
    }
    return mask;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Does the percent-encoded v[0..vlen) decode to exactly the string sub?
 * A malformed escape never matches. */
static bool
decoded_equals(const char *v, size_t vlen, const char *sub)
{
    size_t si = 0;

    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= vlen)
                return false;
            hi = hexval(v[i + 1]);
            lo = hexval(v[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (sub[si] == '\0' || (unsigned char)sub[si] != c)
            return false;
        si++;
    }
    return sub[si] == '\0';
}

static const tr_route_param *
find_param(const tr_route_param *params, size_t n, const char *name)
{
    size_t nlen = strlen(name);

    for (size_t i = 0; i < n; i++) {
        if (params[i].name_len == nlen &&
            memcmp(params[i].name, name, nlen) == 0)
            return &params[i];
    }
    return NULL;
}

/* A consent claim counts when it carries something: a non-empty string,
 * any number, true, or a non-empty array or object.  Absent, null, false,
 * "", [] and {} do not. */
static bool
consent_present(const tr_identity *id, const char *claim)
{
    const json_t *v;

    if (id->claims == NULL)
        return false;
    v = json_object_get((const json_t *)id->claims, claim);
    if (v == NULL)
        return false;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
    case JSON_REAL:
    case JSON_TRUE:
        return true;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    default:
        return false;
    }
}

void
tr_policy_eval(const tr_policy_cfg *pol, const tr_identity *id,
               const tr_route_param *params, size_t n_params,
               tr_policy_result *r)
{
    bool agent;

    memset(r, 0, sizeof *r);
    r->rule = TR_PRULE_NONE;
    r->reason = TR_PREASON_ALLOWED;
    r->problem = TR_P_INTERNAL;

    if (!pol->present) {
        r->reason = TR_PREASON_NO_POLICY;
        return;
    }
    r->shadow = pol->shadow;

    if (id == NULL) {
        deny(r, TR_PRULE_AUTHENTICATION, TR_PREASON_MISSING_TOKEN);
        return;
    }

    agent = id->cls == TR_CLASS_AGENT;
    /* A client-as-actor identity may come without a chain; it is still
     * one hop of delegation. */
    r->depth = agent ? (id->chain_len > 0 ? id->chain_len : 1) : 0;

    if (!agent && !pol->humans) {
        deny(r, TR_PRULE_HUMANS, TR_PREASON_HUMANS_NOT_ALLOWED);
        return;
    }

    if (agent) {
        if (pol->actors.n == 0) {
            deny(r, TR_PRULE_ACTORS, TR_PREASON_NO_ACTOR_RULE);
            return;
        }
        if (id->actor == NULL || !actor_allowed(&pol->actors, id->actor)) {
            deny(r, TR_PRULE_ACTORS, TR_PREASON_ACTOR_NOT_ALLOWED);
            return;
        }
        if (pol->max_delegation_depth >= 0 &&
            r->depth > (size_t)pol->max_delegation_depth) {
            deny(r, TR_PRULE_MAX_DEPTH, TR_PREASON_DEPTH_EXCEEDED);
            return;
        }
    }

    if (pol->scopes.n > 0) {
        bool any;
        uint64_t mask = missing_scopes(&pol->scopes, id, &any);

        if (any) {
            deny(r, TR_PRULE_SCOPES, TR_PREASON_INSUFFICIENT_SCOPE);
            r->required_scopes = &pol->scopes;
            r->missing_scopes = mask;
            return;
        }
    }

    if (pol->owner_param != NULL) {
        const tr_route_param *p =
            find_param(params, params ? n_params : 0, pol->owner_param);

        if (p == NULL) {
            deny(r, TR_PRULE_OWNER_PARAM, TR_PREASON_OWNER_PARAM_MISSING);
            return;
        }
        if (id->sub == NULL ||
            !decoded_equals(p->value, p->value_len, id->sub)) {
            deny(r, TR_PRULE_OWNER_PARAM, TR_PREASON_RESOURCE_MISMATCH);
            return;
        }
    }

    if (agent && pol->consent_claim != NULL &&
        !consent_present(id, pol->consent_claim)) {
        deny(r, TR_PRULE_CONSENT_CLAIM, TR_PREASON_CONSENT_REQUIRED);
        return;
    }
}

/* RFC 6750 §3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
static bool
scope_token_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

static bool
append(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (*len + n + 1 > cap)
        return false;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
    return true;
}

int
tr_policy_www_authenticate(const tr_policy_result *r, char *out, size_t cap)
{
    size_t len = 0;

    if (cap > 0)
        out[0] = '\0';
    if (!r->deny)
        return 0;
    if (r->reason == TR_PREASON_MISSING_TOKEN)
        return append(out, cap, &len, "Bearer") ? (int)len : -1;
    if (r->reason != TR_PREASON_INSUFFICIENT_SCOPE ||
        r->required_scopes == NULL)
        return 0;

    if (!append(out, cap, &len,
                "Bearer error=\"insufficient_scope\", scope=\""))
        return -1;
    for (size_t i = 0; i < r->required_scopes->n; i++) {
        const char *s = r->required_scopes->items[i];

        if (!scope_token_ok(s))
            goto fail;
        if ((i > 0 && !append(out, cap, &len, " ")) ||
            !append(out, cap, &len, s))
            goto fail;
    }
    if (!append(out, cap, &len, "\""))
        goto fail;
    return (int)len;

fail:
    if (cap > 0)
        out[0] = '\0';
    return -1;
}
