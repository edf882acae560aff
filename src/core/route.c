/*
 * The router (core/route.h).  Routes are few (hundreds at most), so the
 * router is a flat array of compiled templates sorted by precedence: the
 * first entry that matches both path and method is the most specific one.
 * Matching splits the path once into segment offsets on the stack and
 * compares; it never allocates.
 *
 * Known shortcoming: matching is linear in the number of routes.  That is
 * cheap for the tens to hundreds a gateway usually has; a configuration
 * with thousands of routes would want a trie keyed by literal segments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/route.h"
#include "core/target.h"

/* Segment kinds, ordered by precedence; K_END sorts a template that has
 * stopped below any that goes on. */
enum { K_END = 0, K_REST = 1, K_PARAM = 2, K_LIT = 3 };

typedef struct {
    uint8_t kind;
    uint16_t off;      /* literal text or parameter name, in the template */
    uint16_t len;
} tseg;

typedef struct {
    tseg segs[TR_ROUTE_MAX_SEGMENTS];
    unsigned n;
} tshape;

typedef struct {
    const tr_route_cfg *cfg;
    size_t index;
    size_t shape;      /* lowest index of a route with the same shape */
    tshape t;
} entry;

struct tr_router {
    entry *e;
    size_t n;
};

/* A path split into segments: offsets of the first TR_ROUTE_MAX_SEGMENTS
 * and the total count. */
typedef struct {
    size_t off[TR_ROUTE_MAX_SEGMENTS];
    size_t len[TR_ROUTE_MAX_SEGMENTS];
    size_t total;
    size_t end;        /* path length with a trailing slash dropped */
} psplit;

/* snprintf-like appending: counts everything, writes what fits. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
} sink;

static void
put(sink *k, const char *s, size_t n)
{
    if (k->len < k->cap) {
        size_t room = k->cap - 1 - k->len;
        memcpy(k->buf + k->len, s, n < room ? n : room);
        k->buf[k->len + (n < room ? n : room)] = '\0';
    }
    k->len += n;
}

static void
seterr(char *err, size_t errlen, const char *fmt, const char *a,
       const char *b)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, fmt, a, b);
}

static bool
is_name_char(char c, bool first)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')
        return true;
    return !first && c >= '0' && c <= '9';
}

static bool
valid_name(const char *s, size_t n)
{
    if (n == 0 || n > TR_ROUTE_MAX_PARAM_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i], i == 0))
            return false;
    return true;
}

/* A literal segment must be a path segment in normalised form. */
static bool
valid_literal(const char *s, size_t n)
{
    char tmp[TR_ROUTE_MAX_TEMPLATE + 1];

    if (n == 0 || n >= sizeof(tmp) || memchr(s, '{', n) != NULL ||
        memchr(s, '}', n) != NULL)
        return false;
    tmp[0] = '/';
    memcpy(tmp + 1, s, n);
    return tr_target_path_is_normal(tmp, n + 1);
}

/*
 * Compiles a template into *t.  Returns false with a message in err.
 */
static bool
parse_template(const char *tpl, tshape *t, char *err, size_t errlen)
{
    size_t len, i = 1, n_params = 0;

    t->n = 0;
    if (tpl == NULL || tpl[0] != '/') {
        seterr(err, errlen, "template must start with '/'", "", "");
        return false;
    }
    len = strlen(tpl);
    if (len > TR_ROUTE_MAX_TEMPLATE) {
        seterr(err, errlen, "template longer than %s bytes", "1024", "");
        return false;
    }
    if (len == 1)
        return true;
    if (tpl[len - 1] == '/') {
        seterr(err, errlen, "template must not end with '/' (a trailing "
               "slash in a request path is ignored when routing)", "", "");
        return false;
    }

    while (i <= len) {
        size_t j = i;
        while (j < len && tpl[j] != '/')
            j++;
        const char *s = tpl + i;
        size_t n = j - i;
        tseg seg = { K_LIT, (uint16_t)i, (uint16_t)n };

        if (n == 0) {
            seterr(err, errlen, "empty segment ('//') in template", "", "");
            return false;
        }
        if (t->n == TR_ROUTE_MAX_SEGMENTS) {
            seterr(err, errlen, "template has more than %s segments", "32",
                   "");
            return false;
        }
        if (t->n > 0 && t->segs[t->n - 1].kind == K_REST) {
            seterr(err, errlen, "a {name...} parameter must be the last "
                   "segment", "", "");
            return false;
        }
        if (s[0] == '{') {
            if (n < 3 || s[n - 1] != '}') {
                seterr(err, errlen, "a parameter must be a whole segment: "
                       "{name} or {name...}", "", "");
                return false;
            }
            seg.kind = K_PARAM;
            seg.off = (uint16_t)(i + 1);
            seg.len = (uint16_t)(n - 2);
            if (seg.len > 3 && memcmp(s + n - 4, "...", 3) == 0) {
                seg.kind = K_REST;
                seg.len -= 3;
            }
            if (!valid_name(tpl + seg.off, seg.len)) {
                seterr(err, errlen, "parameter name must match "
                       "[A-Za-z_][A-Za-z0-9_]* (at most %s characters)",
                       "64", "");
                return false;
            }
            for (unsigned k = 0; k < t->n; k++)
                if (t->segs[k].kind != K_LIT &&
                    t->segs[k].len == seg.len &&
                    memcmp(tpl + t->segs[k].off, tpl + seg.off,
                           seg.len) == 0) {
                    seterr(err, errlen, "parameter name used twice in the "
                           "template", "", "");
                    return false;
                }
            if (++n_params > TR_MAX_PARAMS) {
                seterr(err, errlen, "template has more than %s parameters",
                       "8", "");
                return false;
            }
        } else if (!valid_literal(s, n)) {
            char lit[64];
            snprintf(lit, sizeof(lit), "%.*s", n > 40 ? 40 : (int)n, s);
            if ((n == 1 && s[0] == '.') || (n == 2 && !memcmp(s, "..", 2)))
                seterr(err, errlen, "dot segment '%s' in template", lit,
                       "");
            else
                seterr(err, errlen, "segment '%s' is not in normalised "
                       "form: braces only around a whole segment, "
                       "upper-case hex, letters, digits and -._~ not "
                       "percent-encoded, no %%2F, %%5C or controls%s", lit,
                       "");
            return false;
        }
        t->segs[t->n++] = seg;
        i = j + 1;
    }
    return true;
}

bool
tr_route_template_check(const char *tpl, char *err, size_t errlen)
{
    tshape t;

    return parse_template(tpl, &t, err, errlen);
}

bool
tr_route_template_has_param(const char *tpl, const char *name)
{
    tshape t;
    size_t nl = strlen(name);

    if (!parse_template(tpl, &t, NULL, 0))
        return false;
    for (unsigned k = 0; k < t.n; k++)
        if (t.segs[k].kind != K_LIT && t.segs[k].len == nl &&
            memcmp(tpl + t.segs[k].off, name, nl) == 0)
            return true;
    return false;
}

/*
 * Precedence order: negative when a is more specific than b.  Zero means
 * the same shape: equal kinds everywhere and equal literals.
 */
static int
cmp_shape(const char *ta, const tshape *a, const char *tb, const tshape *b)
{
    unsigned n = a->n > b->n ? a->n : b->n;

    for (unsigned k = 0; k < n; k++) {
        int ka = k < a->n ? a->segs[k].kind : K_END;
        int kb = k < b->n ? b->segs[k].kind : K_END;
        if (ka != kb)
            return kb - ka;
        if (ka == K_LIT) {
            const tseg *sa = &a->segs[k], *sb = &b->segs[k];
            size_t m = sa->len < sb->len ? sa->len : sb->len;
            int c = memcmp(ta + sa->off, tb + sb->off, m);
            if (c != 0)
                return c;
            if (sa->len != sb->len)
                return sa->len < sb->len ? -1 : 1;
        }
    }
    return 0;
}

static bool
has_other_name(const tr_route_cfg *c, const char *m, size_t ml)
{
    for (size_t i = 0; i < c->other_methods.n; i++)
        if (strlen(c->other_methods.items[i]) == ml &&
            memcmp(c->other_methods.items[i], m, ml) == 0)
            return true;
    return false;
}

/* The first method both routes accept, written to buf; false if none. */
static bool
common_method(const tr_route_cfg *a, const tr_route_cfg *b, char *buf,
              size_t cap)
{
    uint32_t both = a->methods & b->methods;

    for (unsigned k = 0; k < 31; k++)
        if (both & (1u << k)) {
            const char *nm = tr_method_name(1u << k);
            snprintf(buf, cap, "%s", nm != NULL ? nm : "?");
            return true;
        }
    if (!(both & TR_M_OTHER))
        return false;
    if (a->other_methods.n == 0 || b->other_methods.n == 0) {
        snprintf(buf, cap, "%s", a->other_methods.n == 0 ?
                 (b->other_methods.n ? b->other_methods.items[0] : "any")
                 : a->other_methods.items[0]);
        return true;
    }
    for (size_t i = 0; i < a->other_methods.n; i++) {
        const char *m = a->other_methods.items[i];
        if (has_other_name(b, m, strlen(m))) {
            snprintf(buf, cap, "%s", m);
            return true;
        }
    }
    return false;
}

bool
tr_route_conflict(const tr_route_cfg *a, const tr_route_cfg *b)
{
    tshape sa, sb;
    char m[64];

    if (!parse_template(a->path, &sa, NULL, 0) ||
        !parse_template(b->path, &sb, NULL, 0))
        return false;
    return cmp_shape(a->path, &sa, b->path, &sb) == 0 &&
           common_method(a, b, m, sizeof(m));
}

bool
tr_route_methods_overlap(const tr_route_cfg *a, const tr_route_cfg *b)
{
    char m[64];

    return common_method(a, b, m, sizeof(m));
}

size_t
tr_route_template_shape(const char *tpl, char *buf, size_t cap)
{
    sink k = { buf, cap, 0 };
    tshape t;

    if (cap > 0)
        buf[0] = '\0';
    if (!parse_template(tpl, &t, NULL, 0))
        return 0;
    if (t.n == 0)
        put(&k, "/", 1);
    for (unsigned i = 0; i < t.n; i++) {
        put(&k, "/", 1);
        if (t.segs[i].kind == K_LIT)
            put(&k, tpl + t.segs[i].off, t.segs[i].len);
        else if (t.segs[i].kind == K_PARAM)
            put(&k, "{}", 2);
        else
            put(&k, "{...}", 5);
    }
    return k.len;
}

static int
cmp_entry(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    int c = cmp_shape(a->cfg->path, &a->t, b->cfg->path, &b->t);

    if (c != 0)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

static const char *
route_label(const tr_route_cfg *c, size_t index, char *buf, size_t cap)
{
    if (c->name != NULL)
        return c->name;
    snprintf(buf, cap, "#%zu", index);
    return buf;
}

tr_router *
tr_router_build(const tr_config *cfg, char *err, size_t errlen)
{
    tr_router *r = calloc(1, sizeof(*r));
    char msg[256];

    if (r == NULL)
        goto nomem;
    if (cfg->n_routes > 0) {
        r->e = calloc(cfg->n_routes, sizeof(*r->e));
        if (r->e == NULL)
            goto nomem;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        entry *e = &r->e[i];
        char lbl[32];
        e->cfg = &cfg->routes[i];
        e->index = i;
        if (!parse_template(e->cfg->path, &e->t, msg, sizeof(msg))) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "route '%s': %s",
                         route_label(e->cfg, i, lbl, sizeof(lbl)), msg);
            tr_router_free(r);
            return NULL;
        }
    }
    r->n = cfg->n_routes;
    if (r->n > 1)
        qsort(r->e, r->n, sizeof(*r->e), cmp_entry);

    /* Same shapes are now adjacent, lowest index first. */
    for (size_t i = 0; i < r->n; i++) {
        entry *e = &r->e[i];
        size_t g = i;
        while (g > 0 && cmp_shape(r->e[g - 1].cfg->path, &r->e[g - 1].t,
                                  e->cfg->path, &e->t) == 0)
            g--;
        e->shape = r->e[g].index;
        for (size_t j = g; j < i; j++) {
            char m[64], l1[32], l2[32];
            if (!common_method(r->e[j].cfg, e->cfg, m, sizeof(m)))
                continue;
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "routes '%s' and '%s' tie: paths "
                         "'%s' and '%s' have the same shape and both "
                         "accept %s",
                         route_label(r->e[j].cfg, r->e[j].index, l1,
                                     sizeof(l1)),
                         route_label(e->cfg, e->index, l2, sizeof(l2)),
                         r->e[j].cfg->path, e->cfg->path, m);
            tr_router_free(r);
            return NULL;
        }
    }
    return r;

nomem:
    seterr(err, errlen, "out of memory building the router", "", "");
    tr_router_free(r);
    return NULL;
}

void
tr_router_free(tr_router *r)
{
    if (r == NULL)
        return;
    free(r->e);
    free(r);
}

/* Splits a normalised path; false if it is not a path at all. */
static bool
split_path(const char *p, size_t n, psplit *s)
{
    size_t i = 1;

    s->total = 0;
    if (p == NULL || n == 0 || p[0] != '/')
        return false;
    if (n > 1 && p[n - 1] == '/')
        n--;
    s->end = n;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        if (s->total < TR_ROUTE_MAX_SEGMENTS) {
            s->off[s->total] = i;
            s->len[s->total] = j - i;
        }
        s->total++;
        i = j + 1;
    }
    return true;
}

static bool
entry_match(const entry *e, const char *p, const psplit *s,
            tr_route_match *m)
{
    const char *tpl = e->cfg->path;
    unsigned n = e->t.n;
    bool rest = n > 0 && e->t.segs[n - 1].kind == K_REST;
    unsigned fixed = rest ? n - 1 : n;
    size_t np = 0;

    if (rest ? s->total < n : s->total != n)
        return false;
    for (unsigned k = 0; k < fixed; k++) {
        const tseg *g = &e->t.segs[k];
        if (g->kind == K_LIT) {
            if (s->len[k] != g->len ||
                memcmp(p + s->off[k], tpl + g->off, g->len) != 0)
                return false;
        } else if (s->len[k] == 0) {
            return false;
        }
    }
    if (m == NULL)
        return true;

    for (unsigned k = 0; k < n; k++) {
        const tseg *g = &e->t.segs[k];
        if (g->kind == K_LIT)
            continue;
        m->params[np].name = tpl + g->off;
        m->params[np].name_len = g->len;
        m->params[np].value = p + s->off[k];
        m->params[np].value_len = g->kind == K_REST ? s->end - s->off[k]
                                                    : s->len[k];
        np++;
    }
    m->n_params = np;
    m->route_index = e->index;
    m->route = e->cfg;
    m->shape = e->shape;
    return true;
}

static bool
method_ok(const tr_route_cfg *c, uint32_t bit, const char *m, size_t ml)
{
    if (bit == 0 || !(c->methods & bit))
        return false;
    if (bit != TR_M_OTHER || c->other_methods.n == 0)
        return true;
    return m != NULL && has_other_name(c, m, ml);
}

tr_route_result
tr_router_match(const tr_router *r, uint32_t method_bit, const char *method,
                size_t method_len, const char *path, size_t path_len,
                tr_route_match *out, uint32_t *allow)
{
    psplit s;
    uint32_t union_bits = 0;
    bool any = false;

    if (allow != NULL)
        *allow = 0;
    if (!split_path(path, path_len, &s))
        return TR_ROUTE_NOT_FOUND;
    for (size_t i = 0; i < r->n; i++) {
        const entry *e = &r->e[i];
        if (!entry_match(e, path, &s, NULL))
            continue;
        if (method_ok(e->cfg, method_bit, method, method_len)) {
            entry_match(e, path, &s, out);
            return TR_ROUTE_FOUND;
        }
        any = true;
        union_bits |= e->cfg->methods;
    }
    if (!any)
        return TR_ROUTE_NOT_FOUND;
    if (allow != NULL)
        *allow = union_bits;
    return TR_ROUTE_METHOD_NOT_ALLOWED;
}

static void
put_list_item(sink *k, const char *s)
{
    if (k->len > 0)
        put(k, ", ", 2);
    put(k, s, strlen(s));
}

size_t
tr_route_format_allow(const tr_router *r, const char *path, size_t path_len,
                      char *buf, size_t cap)
{
    sink k = { buf, cap, 0 };
    psplit s;
    uint32_t bits = 0;

    if (cap > 0)
        buf[0] = '\0';
    if (!split_path(path, path_len, &s))
        return 0;
    for (size_t i = 0; i < r->n; i++)
        if (entry_match(&r->e[i], path, &s, NULL))
            bits |= r->e[i].cfg->methods;
    for (unsigned b = 0; b < 31; b++) {
        const char *nm = tr_method_name(1u << b);
        if ((bits & (1u << b)) && nm != NULL)
            put_list_item(&k, nm);
    }
    if (!(bits & TR_M_OTHER))
        return k.len;

    /* Unknown methods named by routes, each once, in route order. */
    for (size_t i = 0; i < r->n; i++) {
        const tr_route_cfg *c = r->e[i].cfg;
        if (!(c->methods & TR_M_OTHER) || !entry_match(&r->e[i], path, &s,
                                                      NULL))
            continue;
        for (size_t j = 0; j < c->other_methods.n; j++) {
            const char *m = c->other_methods.items[j];
            bool seen = false;
            for (size_t q = 0; q < i && !seen; q++)
                seen = (r->e[q].cfg->methods & TR_M_OTHER) &&
                       has_other_name(r->e[q].cfg, m, strlen(m)) &&
                       entry_match(&r->e[q], path, &s, NULL);
            for (size_t q = 0; q < j && !seen; q++)
                seen = strcmp(c->other_methods.items[q], m) == 0;
            if (!seen)
                put_list_item(&k, m);
        }
    }
    return k.len;
}

size_t
tr_route_resource_key(const tr_route_match *m, char *buf, size_t cap)
{
    sink k = { buf, cap, 0 };
    char num[32];
    int n;

    if (cap > 0)
        buf[0] = '\0';
    n = snprintf(num, sizeof(num), "s%zu", m->shape);
    put(&k, num, (size_t)n);
    for (size_t i = 0; i < m->n_params; i++) {
        n = snprintf(num, sizeof(num), "|%zu:", m->params[i].value_len);
        put(&k, num, (size_t)n);
        put(&k, m->params[i].value, m->params[i].value_len);
    }
    return k.len;
}
