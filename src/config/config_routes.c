/*
 * The `routes:` section: what each route matches, where it goes, and the
 * contract it enforces (auth, tool, idempotency, preconditions, ETags,
 * body cap, policy).  Template ties are errors here, so `treaty check`
 * finds them, and the router is built once to confirm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "core/route.h"

static const tr_cfg_enum auth_names[] = {
    { "required", TR_AUTH_REQUIRED },
    { "optional", TR_AUTH_OPTIONAL },
    { "none", TR_AUTH_NONE },
    { NULL, 0 },
};

static const tr_cfg_enum idem_names[] = {
    { "off", TR_IDEM_OFF },
    { "optional", TR_IDEM_OPTIONAL },
    { "required_for_agents", TR_IDEM_REQUIRED_FOR_AGENTS },
    { "required", TR_IDEM_REQUIRED },
    { NULL, 0 },
};

static const tr_cfg_enum ambiguous_names[] = {
    { "pin", TR_AMBIGUOUS_PIN },
    { "release", TR_AMBIGUOUS_RELEASE },
    { NULL, 0 },
};

static const tr_cfg_enum crash_names[] = {
    { "unknown", TR_CRASH_UNKNOWN },
    { "reexecute", TR_CRASH_REEXECUTE },
    { NULL, 0 },
};

static const tr_cfg_enum precond_names[] = {
    { "off", TR_PRECOND_OFF },
    { "required_for_agents", TR_PRECOND_REQUIRED_FOR_AGENTS },
    { "required", TR_PRECOND_REQUIRED },
    { NULL, 0 },
};

static const tr_cfg_enum etags_names[] = {
    { "passthrough", TR_ETAGS_PASSTHROUGH },
    { "synthesize", TR_ETAGS_SYNTHESIZE },
    { NULL, 0 },
};

#define ONE_MIB (1u << 20)

static bool
is_token(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= 32 &&
           strspn(s, "!#$%&'*+-.^_`|~0123456789"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
               == n;
}

/*
 * A list of method names into bits (and unknown names into `other` when
 * it is not NULL).  Methods are case-sensitive, so a lower-case spelling
 * of a known method is refused rather than taken for an unknown method.
 */
static bool
read_methods(tr_cfgx *c, const tr_yaml_node *v, const char *path,
             uint32_t *bits, tr_strlist *other)
{
    char ip[TR_CFG_PATH_MAX], upper[40];
    tr_strlist names = { NULL, 0 };
    bool ok;

    if (!tr_cfg_strlist(c, v, path, &names))
        return false;
    if (names.n == 0) {
        tr_cfg_error(c, v, path, "list at least one method, or leave the "
                     "key out to match every method");
        return false;
    }
    ok = true;
    *bits = 0;
    if (other != NULL) {
        other->n = 0;
        other->items = tr_arena_calloc(c->a, names.n, sizeof(char *));
        if (other->items == NULL)
            return false;
    }
    for (size_t i = 0; i < names.n; i++) {
        const char *m = names.items[i];
        uint32_t bit = tr_method_bit(m, strlen(m));
        size_t n = strlen(m);

        tr_cfg_path_index(ip, path, i);
        if (!is_token(m)) {
            tr_cfg_error(c, v->items[i], ip, "'%s' is not a method name",
                         m);
            ok = false;
            continue;
        }
        if (bit == TR_M_CONNECT) {
            tr_cfg_error(c, v->items[i], ip, "CONNECT is not supported");
            ok = false;
            continue;
        }
        if (bit == TR_M_OTHER) {
            for (size_t k = 0; k <= n && k < sizeof(upper); k++)
                upper[k] = m[k] >= 'a' && m[k] <= 'z' ? (char)(m[k] - 32)
                                                      : m[k];
            upper[sizeof(upper) - 1] = '\0';
            if (tr_method_bit(upper, strlen(upper)) != TR_M_OTHER) {
                tr_cfg_error(c, v->items[i], ip, "method names are "
                             "case-sensitive: write '%s'", upper);
                ok = false;
                continue;
            }
            if (other == NULL) {
                tr_cfg_error(c, v->items[i], ip, "unknown method '%s'", m);
                ok = false;
                continue;
            }
            other->items[other->n++] = names.items[i];
        }
        *bits |= bit;
    }
    return ok;
}

static void
f_methods(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_route_cfg *r = obj;
    uint32_t bits;

    if (!read_methods(c, v, path, &bits, &r->other_methods))
        return;
    /* A route that serves GET serves HEAD too (RFC 9110 §9.3.2). */
    if (bits & TR_M_GET)
        bits |= TR_M_HEAD;
    r->methods = bits;
}

static void
f_path(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_route_cfg *r = obj;
    char *s, why[256];

    if (!tr_cfg_str(c, v, path, &s))
        return;
    if (!tr_route_template_check(s, why, sizeof(why))) {
        tr_cfg_error(c, v, path, "%s", why);
        return;
    }
    r->path = s;
}

static const tr_field match_fields[] = {
    TR_FIELD_FN("methods", f_methods, false),
    TR_FIELD_FN("path", f_path, true),
};

static void
f_match(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_cfg_walk(c, v, path, match_fields, 2, obj);
}

/* "a, b, c" of up to a few names, for "unknown X" messages. */
static const char *
list_names(char *buf, size_t cap, size_t count, const void *base,
           size_t stride)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < count && n < cap; i++) {
        const char *nm = *(char *const *)((const char *)base + i * stride);
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", nm);
    }
    if (count == 0)
        snprintf(buf, cap, "none defined");
    return buf;
}

static void
f_upstream(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_route_cfg *r = obj;
    const tr_config *cfg = c->cfg;
    char *s, names[256];

    if (!tr_cfg_str(c, v, path, &s))
        return;
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        if (strcmp(cfg->upstreams[i].name, s) == 0) {
            r->upstream = i;
            return;
        }
    tr_cfg_error(c, v, path, "unknown upstream '%s' (upstreams: %s)", s,
                 list_names(names, sizeof(names), cfg->n_upstreams,
                            cfg->upstreams, sizeof(tr_upstream_cfg)));
}

static void
f_tool(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_route_cfg *r = obj;
    const tr_config *cfg = c->cfg;
    char *s, names[256];

    if (!tr_cfg_str(c, v, path, &s))
        return;
    for (size_t i = 0; i < cfg->n_tools; i++)
        if (strcmp(cfg->tools[i].name, s) == 0) {
            r->tool = (int32_t)i;
            return;
        }
    tr_cfg_error(c, v, path, "unknown tool '%s' (tools: %s)", s,
                 list_names(names, sizeof(names), cfg->n_tools, cfg->tools,
                            sizeof(tr_tool_cfg)));
}

#define ID(k, t, m, lo, hi) TR_FIELD(k, t, tr_idem_cfg, m, lo, hi)

static const tr_field idem_fields[] = {
    { "mode", TR_F_ENUM, offsetof(tr_idem_cfg, mode), 0, 0, idem_names,
      NULL, true },
    ID("wait_ms", TR_F_U32, wait_ms, 0, 600000),
    ID("canonical_json", TR_F_BOOL, canonical_json, 0, 0),
    TR_FIELD_ENUM("ambiguous", tr_idem_cfg, ambiguous, ambiguous_names),
    TR_FIELD_ENUM("after_crash", tr_idem_cfg, after_crash, crash_names),
    ID("ttl_s", TR_F_U32, ttl_s, 1, 31536000),
    ID("storage_cap", TR_F_U32, storage_cap, 0, 1u << 30),
    ID("fail_open", TR_F_BOOL, fail_open, 0, 0),
    ID("forward_derived_key", TR_F_BOOL, forward_derived_key, 0, 0),
};

/* `idempotency: MODE`, or a mapping with `mode` and the details. */
static void
f_idempotency(tr_cfgx *c, const tr_yaml_node *v, const char *path,
              void *obj)
{
    tr_route_cfg *r = obj;
    int mode;

    if (v->kind == TR_YAML_MAP) {
        tr_cfg_walk(c, v, path, idem_fields,
                    sizeof(idem_fields) / sizeof(idem_fields[0]),
                    &r->idempotency);
        return;
    }
    if (tr_cfg_enum_value(c, v, path, idem_names, &mode))
        r->idempotency.mode = (tr_idem_mode)mode;
}

static void
f_mutating(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_route_cfg *r = obj;
    uint32_t bits;

    if (read_methods(c, v, path, &bits, NULL))
        r->mutating = bits;
}

#define PO(k, t, m, lo, hi) TR_FIELD(k, t, tr_policy_cfg, m, lo, hi)

static const tr_field policy_fields[] = {
    PO("actors", TR_F_STRLIST, actors, 0, 0),
    PO("scopes", TR_F_STRLIST, scopes, 0, 0),
    PO("max_delegation_depth", TR_F_I32, max_delegation_depth, 0, 32),
    PO("owner_param", TR_F_STR, owner_param, 0, 0),
    PO("consent_claim", TR_F_STR, consent_claim, 0, 0),
    PO("humans", TR_F_BOOL, humans, 0, 0),
    PO("shadow", TR_F_BOOL, shadow, 0, 0),
};

static void
f_policy(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_route_cfg *r = obj;

    if (!tr_cfg_expect(c, v, path, TR_YAML_MAP))
        return;
    r->policy.present = true;
    tr_cfg_walk(c, v, path, policy_fields,
                sizeof(policy_fields) / sizeof(policy_fields[0]),
                &r->policy);
}

#define R(k, t, m, lo, hi) TR_FIELD(k, t, tr_route_cfg, m, lo, hi)

static const tr_field route_fields[] = {
    TR_FIELD_REQ("name", TR_F_STR, tr_route_cfg, name, 0, 0),
    TR_FIELD_FN("match", f_match, true),
    TR_FIELD_FN("upstream", f_upstream, true),
    TR_FIELD_ENUM("auth", tr_route_cfg, auth, auth_names),
    TR_FIELD_FN("tool", f_tool, false),
    TR_FIELD_FN("idempotency", f_idempotency, false),
    TR_FIELD_ENUM("preconditions", tr_route_cfg, preconditions,
                  precond_names),
    R("require_if_none_match_on_create", TR_F_BOOL,
      require_if_none_match_on_create, 0, 0),
    TR_FIELD_ENUM("etags", tr_route_cfg, etags, etags_names),
    R("etag_body_cap", TR_F_U32, etag_body_cap, 0, 1u << 30),
    R("etag_ignore_fields", TR_F_STRLIST, etag_ignore_fields, 0, 0),
    R("lock_timeout_ms", TR_F_U32, lock_timeout_ms, 1, 600000),
    R("body_cap", TR_F_U64, body_cap, 0, (int64_t)1 << 40),
    TR_FIELD_FN("mutating", f_mutating, false),
    TR_FIELD_FN("policy", f_policy, false),
};

static void
set_route_defaults(const tr_config *cfg, tr_route_cfg *r)
{
    r->methods = TR_M_ANY;
    r->auth = TR_AUTH_REQUIRED;
    r->tool = -1;
    r->idempotency.mode = TR_IDEM_OFF;
    r->idempotency.ambiguous = TR_AMBIGUOUS_PIN;
    r->idempotency.after_crash = TR_CRASH_UNKNOWN;
    r->idempotency.ttl_s = 86400;
    r->idempotency.storage_cap = ONE_MIB;
    r->preconditions = TR_PRECOND_OFF;
    r->etags = TR_ETAGS_PASSTHROUGH;
    r->etag_body_cap = ONE_MIB;
    r->lock_timeout_ms = 5000;
    r->body_cap = cfg->limits.body_max;
    r->mutating = TR_M_MUTATING_DEFAULT;
    r->policy.max_delegation_depth = -1;
    r->policy.humans = true;
}

/* Checks that need the whole route. */
static void
check_route(tr_cfgx *c, const tr_yaml_node *body, const char *kp,
            size_t index)
{
    const tr_config *cfg = c->cfg;
    const tr_route_cfg *r = &cfg->routes[index];
    char p[TR_CFG_PATH_MAX];

    if (r->name != NULL) {
        tr_cfg_path_key(p, kp, "name");
        if (tr_cfg_name(c, tr_cfg_find(body, "name"), p, r->name))
            for (size_t j = 0; j < index; j++)
                if (cfg->routes[j].name != NULL &&
                    strcmp(cfg->routes[j].name, r->name) == 0) {
                    tr_cfg_error(c, tr_cfg_find(body, "name"), p, "route "
                                 "name '%s' is already used by "
                                 "routes[%zu]", r->name, j);
                    break;
                }
    }
    if (r->policy.owner_param != NULL && r->path != NULL &&
        !tr_route_template_has_param(r->path, r->policy.owner_param)) {
        const tr_yaml_node *pol = tr_cfg_find(body, "policy");
        tr_cfg_path_key(p, kp, "policy.owner_param");
        tr_cfg_error(c, tr_cfg_find(pol, "owner_param"), p, "'%s' is not "
                     "a parameter of path '%s'", r->policy.owner_param,
                     r->path);
    }
    /* Such a route could never admit anyone. */
    if (r->auth == TR_AUTH_REQUIRED && cfg->identity.n_issuers == 0) {
        tr_cfg_path_key(p, kp, "auth");
        tr_cfg_error(c, tr_cfg_find(body, "auth"), p, "auth: required (the "
                     "default) needs an issuer under identity.issuers; set "
                     "auth: none or optional for open routes");
    }
}

typedef struct {
    size_t index;
    char *shape;
} shaped;

static int
cmp_shaped(const void *pa, const void *pb)
{
    const shaped *a = pa, *b = pb;
    int c = strcmp(a->shape, b->shape);

    if (c != 0)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

/*
 * Every tie, reported at the later route's match.path.  Sorting the
 * routes by template shape makes this O(n log n) plus the pairs within
 * one shape.
 */
static void
find_ties(tr_cfgx *c, const tr_yaml_node *list)
{
    const tr_config *cfg = c->cfg;
    shaped *s = tr_arena_calloc(c->a, cfg->n_routes, sizeof(*s));
    size_t n = 0;
    char buf[TR_ROUTE_MAX_TEMPLATE + 8], kp[TR_CFG_PATH_MAX];

    if (s == NULL)
        return;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const char *t = cfg->routes[i].path;
        size_t len = t ? tr_route_template_shape(t, buf, sizeof(buf)) : 0;
        if (len == 0 || len >= sizeof(buf))
            continue;
        s[n].index = i;
        s[n].shape = tr_arena_strndup(c->a, buf, len);
        if (s[n].shape != NULL)
            n++;
    }
    qsort(s, n, sizeof(*s), cmp_shaped);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n && !strcmp(s[i].shape, s[j].shape);
             j++) {
            const tr_route_cfg *a = &cfg->routes[s[i].index];
            const tr_route_cfg *b = &cfg->routes[s[j].index];
            const tr_yaml_node *body = list->items[s[j].index];
            if (!tr_route_methods_overlap(a, b))
                continue;
            tr_cfg_path_index(buf, "routes", s[j].index);
            tr_cfg_path_key(kp, buf, "match.path");
            tr_cfg_error(c, tr_cfg_find(tr_cfg_find(body, "match"), "path"),
                         kp, "ties with routes[%zu] ('%s'): paths '%s' and "
                         "'%s' have the same shape and both routes accept "
                         "a method in common", s[i].index,
                         a->name ? a->name : "?", a->path, b->path);
        }
}

void
tr_cfg_load_routes(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_config *cfg = c->cfg;
    char kp[TR_CFG_PATH_MAX], err[512];
    size_t before = tr_cfg_error_count(c);

    if (!tr_cfg_expect(c, v, "routes", TR_YAML_SEQ))
        return;
    if (!tr_cfg_max_entries(c, v, "routes", TR_CFG_MAX_ROUTES))
        return;
    if (v->n == 0) {
        tr_cfg_error(c, v, "routes", "at least one route is needed");
        return;
    }
    cfg->routes = tr_arena_calloc(c->a, v->n, sizeof(tr_route_cfg));
    if (cfg->routes == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        tr_route_cfg *r = &cfg->routes[i];
        tr_cfg_path_index(kp, "routes", i);
        set_route_defaults(cfg, r);
        tr_cfg_walk(c, v->items[i], kp, route_fields,
                    sizeof(route_fields) / sizeof(route_fields[0]), r);
        cfg->n_routes++;
        if (v->items[i]->kind == TR_YAML_MAP)
            check_route(c, v->items[i], kp, i);
    }
    find_ties(c, v);

    /* The router must build from what was accepted; if anything above
     * failed, the snapshot is refused anyway. */
    if (tr_cfg_error_count(c) == before) {
        tr_router *r = tr_router_build(cfg, err, sizeof(err));
        if (r == NULL)
            tr_cfg_error(c, v, "routes", "%s", err);
        tr_router_free(r);
    }
}
