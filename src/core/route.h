/*
 * The router (SPEC.md "Routing"): which configured route a normalised
 * path and method select.  Pure; built once per config snapshot, then
 * read-only and safe to share.  Matching never allocates.
 *
 * Template grammar (docs/routing.md has the full text):
 *   "/" alone, or "/" seg ( "/" seg )* with no trailing slash, where seg is
 *     a literal    pchar characters in normalised form (tr_target.h);
 *     {name}       exactly one non-empty path segment;
 *     {name...}    last only: one or more remaining segments, slashes
 *                  included ("/files/{p...}" does not match "/files").
 *   name = [A-Za-z_][A-Za-z0-9_]*, unique within a template, at most
 *   TR_MAX_PARAMS parameters and TR_ROUTE_MAX_SEGMENTS segments.
 *
 * Matching: one trailing slash of the request path is ignored ("/a/b/"
 * is routed as "/a/b"), so a route also covers the spelling a lenient
 * backend treats as the same resource.  Among the routes whose template
 * matches the path AND whose method set holds the method, the most
 * specific wins: comparing segment by segment from the left, a literal
 * beats a parameter, which beats a rest parameter (so of two templates
 * alike up to a rest parameter, the longer wins).  Two routes with the
 * same template shape (parameter names aside) and a method in common are
 * a tie, refused when the router is built.  If templates match the path
 * but no route takes the method, the result is 405 and Allow is the
 * union of their methods.
 */
#ifndef TREATY_CORE_ROUTE_H
#define TREATY_CORE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define TR_MAX_PARAMS 8
#define TR_ROUTE_MAX_SEGMENTS 32
#define TR_ROUTE_MAX_TEMPLATE 1024
#define TR_ROUTE_MAX_PARAM_NAME 64

/* Every method bit: the method set of a route that names no methods.
 * With TR_M_OTHER set and no other_methods, any unknown method matches. */
#define TR_M_ANY 0xffffffffu

typedef struct tr_router tr_router;

typedef struct {
    const char *name;      /* into the route's template */
    size_t name_len;
    const char *value;     /* into the matched path, still
                            * percent-encoded (normalised form) */
    size_t value_len;
} tr_route_param;

typedef struct {
    size_t route_index;           /* into cfg->routes */
    const tr_route_cfg *route;
    tr_route_param params[TR_MAX_PARAMS];
    size_t n_params;
    size_t shape;                 /* lowest index of a route with the
                                   * same template shape; see
                                   * tr_route_resource_key() */
} tr_route_match;

typedef enum {
    TR_ROUTE_FOUND,
    TR_ROUTE_NOT_FOUND,
    TR_ROUTE_METHOD_NOT_ALLOWED
} tr_route_result;

/*
 * Builds the router over cfg->routes.  The router points into cfg and
 * must be freed before it.  Returns NULL with a message in err (naming
 * the route) when a template is invalid or two routes tie, or when
 * memory runs out.
 */
tr_router *tr_router_build(const tr_config *cfg, char *err, size_t errlen);
void tr_router_free(tr_router *r);

/*
 * Routes a normalised path (no query; see tr_target_normalize()).
 * method_bit is tr_method_bit(method, method_len); the name itself is
 * needed only for TR_M_OTHER.  On TR_ROUTE_FOUND *out is filled and its
 * parameter values point into `path`.  On TR_ROUTE_METHOD_NOT_ALLOWED
 * *allow (when not NULL) receives the union of the method bits of the
 * routes matching the path; tr_route_format_allow() spells the Allow
 * field.  Does not allocate.
 */
tr_route_result tr_router_match(const tr_router *r, uint32_t method_bit,
                                const char *method, size_t method_len,
                                const char *path, size_t path_len,
                                tr_route_match *out, uint32_t *allow);

/*
 * Writes the Allow field value for `path` ("GET, HEAD, POST"; unknown
 * method names listed by routes come last) into buf, NUL-terminated and
 * truncated to cap.  Returns the full length, like snprintf.
 */
size_t tr_route_format_allow(const tr_router *r, const char *path,
                             size_t path_len, char *buf, size_t cap);

/*
 * The identity of the resource a match names, for per-resource locks:
 * the template shape and the parameter values, length-prefixed so no two
 * resources share a key ("s3|2:42").  Routes that split one template by
 * method share the shape, so a PUT route and a DELETE route on
 * /events/{id} lock the same resource.  Writes at most cap bytes,
 * NUL-terminated; returns the full length, like snprintf.
 */
size_t tr_route_resource_key(const tr_route_match *m, char *buf,
                             size_t cap);

/*
 * Checks one template against the grammar above.  Returns true, or false
 * with a message in err.
 */
bool tr_route_template_check(const char *tpl, char *err, size_t errlen);

/* Whether two routes (with valid templates) tie: same shape and a method
 * in common. */
bool tr_route_conflict(const tr_route_cfg *a, const tr_route_cfg *b);

/*
 * The shape of a valid template: parameters written "{}" and a rest
 * parameter "{...}", literals kept ("/events/{}").  Two templates have the
 * same shape exactly when these strings are equal, so a loader can find
 * every tie by sorting.  Returns the length (snprintf-like), 0 for an
 * invalid template.
 */
size_t tr_route_template_shape(const char *tpl, char *buf, size_t cap);

/* Whether two routes' method sets share a method. */
bool tr_route_methods_overlap(const tr_route_cfg *a, const tr_route_cfg *b);

/* Whether a valid template declares parameter `name`. */
bool tr_route_template_has_param(const char *tpl, const char *name);

#endif
