/* The router (src/core/route.c): grammar, precedence, 404/405, ties. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/route.h"

#define MAXR 16

static tr_route_cfg routes[MAXR];
static tr_config cfg;
static char err[512];
static tr_route_match m;

static void
reset(void)
{
    memset(routes, 0, sizeof(routes));
    memset(&cfg, 0, sizeof(cfg));
    cfg.routes = routes;
    err[0] = '\0';
}

static void
add(const char *name, uint32_t methods, const char *path)
{
    assert_true(cfg.n_routes < MAXR);
    routes[cfg.n_routes].name = (char *)name;
    routes[cfg.n_routes].methods = methods;
    routes[cfg.n_routes].path = (char *)path;
    cfg.n_routes++;
}

static tr_router *
build(void)
{
    tr_router *r = tr_router_build(&cfg, err, sizeof(err));
    if (r == NULL)
        fail_msg("build failed: %s", err);
    return r;
}

static tr_route_result
route(const tr_router *r, const char *method, const char *path)
{
    memset(&m, 0, sizeof(m));
    return tr_router_match(r, tr_method_bit(method, strlen(method)), method,
                           strlen(method), path, strlen(path), &m, NULL);
}

static void
assert_routes_to(const tr_router *r, const char *method, const char *path,
                  const char *want)
{
    tr_route_result res = route(r, method, path);
    if (res != TR_ROUTE_FOUND)
        fail_msg("%s %s: no route (result %d), want %s", method, path,
                 (int)res, want);
    if (strcmp(m.route->name, want) != 0)
        fail_msg("%s %s: routed to %s, want %s", method, path,
                 m.route->name, want);
}

static void
assert_param(size_t i, const char *name, const char *value)
{
    assert_true(i < m.n_params);
    assert_int_equal(m.params[i].name_len, strlen(name));
    assert_memory_equal(m.params[i].name, name, strlen(name));
    assert_int_equal(m.params[i].value_len, strlen(value));
    assert_memory_equal(m.params[i].value, value, strlen(value));
}

static void
literal_segment_beats_parameter(void **state)
{
    reset();
    add("by-id", TR_M_GET, "/events/{id}");
    add("new", TR_M_GET, "/events/new");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/events/new", "new");
    assert_routes_to(r, "GET", "/events/42", "by-id");
    assert_param(0, "id", "42");
    tr_router_free(r);
}

static void
leftmost_literal_decides_precedence(void **state)
{
    reset();
    add("p-l", TR_M_GET, "/{a}/b");
    add("l-p", TR_M_GET, "/a/{b}");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/a/b", "l-p");
    assert_routes_to(r, "GET", "/x/b", "p-l");
    tr_router_free(r);
}

static void
parameter_beats_rest_parameter(void **state)
{
    reset();
    add("rest", TR_M_GET, "/files/{p...}");
    add("one", TR_M_GET, "/files/{name}");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/files/a", "one");
    assert_routes_to(r, "GET", "/files/a/b", "rest");
    assert_param(0, "p", "a/b");
    tr_router_free(r);
}

static void
longer_template_wins_over_shorter_rest(void **state)
{
    reset();
    add("short", TR_M_GET, "/a/{r...}");
    add("long", TR_M_GET, "/a/{x}/{r...}");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/a/1/2/3", "long");
    assert_param(0, "x", "1");
    assert_param(1, "r", "2/3");
    assert_routes_to(r, "GET", "/a/1", "short");
    tr_router_free(r);
}

static void
rest_parameter_needs_at_least_one_segment(void **state)
{
    reset();
    add("files", TR_M_GET, "/files/{p...}");
    tr_router *r = build();
    assert_int_equal(route(r, "GET", "/files"), TR_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/files/"), TR_ROUTE_NOT_FOUND);
    assert_routes_to(r, "GET", "/files/x", "files");
    assert_param(0, "p", "x");
    tr_router_free(r);
}

static void
rest_parameter_takes_more_than_max_segments(void **state)
{
    char path[512];
    size_t n = 0;

    reset();
    add("deep", TR_M_GET, "/d/{p...}");
    tr_router *r = build();
    n += (size_t)snprintf(path, sizeof(path), "/d");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(path + n, sizeof(path) - n, "/s%d", i);
    assert_routes_to(r, "GET", path, "deep");
    assert_int_equal(m.params[0].value_len, n - 3);
    assert_ptr_equal(m.params[0].value, path + 3);
    tr_router_free(r);
}

static void
parameter_matches_exactly_one_segment(void **state)
{
    reset();
    add("one", TR_M_GET, "/u/{id}");
    tr_router *r = build();
    assert_int_equal(route(r, "GET", "/u/a/b"), TR_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/u"), TR_ROUTE_NOT_FOUND);
    assert_routes_to(r, "GET", "/u/a", "one");
    tr_router_free(r);
}

static void
trailing_slash_is_ignored_when_routing(void **state)
{
    reset();
    add("list", TR_M_GET, "/events");
    add("one", TR_M_GET, "/events/{id}");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/events/", "list");
    assert_routes_to(r, "GET", "/events/7/", "one");
    assert_param(0, "id", "7");
    tr_router_free(r);
}

static void
root_template_matches_only_root(void **state)
{
    reset();
    add("root", TR_M_GET, "/");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/", "root");
    assert_int_equal(m.n_params, 0);
    assert_int_equal(route(r, "GET", "/x"), TR_ROUTE_NOT_FOUND);
    tr_router_free(r);
}

static void
unmatched_path_is_not_found(void **state)
{
    reset();
    add("events", TR_M_GET, "/events");
    tr_router *r = build();
    assert_int_equal(route(r, "GET", "/other"), TR_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/eventsx"), TR_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "events"), TR_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", ""), TR_ROUTE_NOT_FOUND);
    tr_router_free(r);
}

static void
wrong_method_is_405_with_union_of_allowed(void **state)
{
    uint32_t allow = 0;
    char a[128];

    reset();
    add("get-one", TR_M_GET | TR_M_HEAD, "/events/{id}");
    add("del-any", TR_M_DELETE, "/{rest...}");
    add("post", TR_M_POST, "/other");
    tr_router *r = build();
    assert_int_equal(tr_router_match(r, TR_M_PUT, "PUT", 3, "/events/5", 9,
                                     &m, &allow),
                     TR_ROUTE_METHOD_NOT_ALLOWED);
    assert_int_equal(allow, TR_M_GET | TR_M_HEAD | TR_M_DELETE);
    assert_int_equal(tr_route_format_allow(r, "/events/5", 9, a, sizeof(a)),
                     strlen("GET, HEAD, DELETE"));
    assert_string_equal(a, "GET, HEAD, DELETE");
    assert_routes_to(r, "DELETE", "/events/5", "del-any");
    tr_router_free(r);
}

static void
allow_is_truncated_like_snprintf(void **state)
{
    char a[6];

    reset();
    add("x", TR_M_GET | TR_M_POST, "/x");
    tr_router *r = build();
    assert_int_equal(tr_route_format_allow(r, "/x", 2, a, sizeof(a)), 9);
    assert_string_equal(a, "GET, ");
    assert_int_equal(tr_route_format_allow(r, "/nope", 5, a, sizeof(a)), 0);
    assert_string_equal(a, "");
    tr_router_free(r);
}

static void
more_specific_route_without_the_method_falls_through(void **state)
{
    reset();
    add("create", TR_M_POST, "/events/new");
    add("read", TR_M_GET, "/events/{id}");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/events/new", "read");
    assert_routes_to(r, "POST", "/events/new", "create");
    assert_int_equal(route(r, "POST", "/events/7"),
                     TR_ROUTE_METHOD_NOT_ALLOWED);
    tr_router_free(r);
}

static void
same_shape_with_disjoint_methods_is_not_a_tie(void **state)
{
    reset();
    add("read", TR_M_GET, "/events/{id}");
    add("remove", TR_M_DELETE, "/events/{key}");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/events/1", "read");
    assert_routes_to(r, "DELETE", "/events/1", "remove");
    assert_param(0, "key", "1");
    assert_false(tr_route_conflict(&routes[0], &routes[1]));
    tr_router_free(r);
}

static void
tie_is_a_build_error_naming_both_routes(void **state)
{
    reset();
    add("first", TR_M_GET | TR_M_PUT, "/events/{id}");
    add("second", TR_M_PUT, "/events/{other}");
    assert_null(tr_router_build(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "'first'"));
    assert_non_null(strstr(err, "'second'"));
    assert_non_null(strstr(err, "PUT"));
    assert_true(tr_route_conflict(&routes[0], &routes[1]));
}

static void
identical_literal_templates_tie(void **state)
{
    reset();
    add("a", TR_M_ANY, "/x/{r...}");
    add("b", TR_M_GET, "/x/{s...}");
    assert_null(tr_router_build(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "tie"));
}

static void
different_literals_do_not_tie(void **state)
{
    reset();
    add("a", TR_M_GET, "/x/{id}");
    add("b", TR_M_GET, "/y/{id}");
    tr_router *r = build();
    assert_false(tr_route_conflict(&routes[0], &routes[1]));
    tr_router_free(r);
}

static void
unknown_methods_match_by_name(void **state)
{
    static char *purge[] = { "PURGE" };
    char a[64];

    reset();
    add("purge", TR_M_OTHER | TR_M_GET, "/cache/{k}");
    routes[0].other_methods.items = purge;
    routes[0].other_methods.n = 1;
    tr_router *r = build();
    assert_routes_to(r, "PURGE", "/cache/1", "purge");
    assert_int_equal(route(r, "BREW", "/cache/1"),
                     TR_ROUTE_METHOD_NOT_ALLOWED);
    assert_int_equal(route(r, "purge", "/cache/1"),
                     TR_ROUTE_METHOD_NOT_ALLOWED);
    tr_route_format_allow(r, "/cache/1", 8, a, sizeof(a));
    assert_string_equal(a, "GET, PURGE");
    tr_router_free(r);
}

static void
route_without_method_list_takes_any_method(void **state)
{
    reset();
    add("all", TR_M_ANY, "/{p...}");
    add("root", TR_M_ANY, "/");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/a/b", "all");
    assert_routes_to(r, "MKCALENDAR", "/cal/x", "all");
    assert_routes_to(r, "WHATEVER", "/cal/x", "all");
    assert_routes_to(r, "POST", "/", "root");
    tr_router_free(r);
}

static void
param_values_point_into_the_path(void **state)
{
    const char *path = "/users/alice/mail/inbox/2024";

    reset();
    add("mail", TR_M_GET, "/users/{user}/mail/{rest...}");
    tr_router *r = build();
    assert_int_equal(tr_router_match(r, TR_M_GET, "GET", 3, path,
                                     strlen(path), &m, NULL),
                     TR_ROUTE_FOUND);
    assert_int_equal(m.n_params, 2);
    assert_ptr_equal(m.params[0].value, path + 7);
    assert_param(0, "user", "alice");
    assert_param(1, "rest", "inbox/2024");
    assert_int_equal(m.route_index, 0);
    assert_ptr_equal(m.route, &routes[0]);
    tr_router_free(r);
}

static void
resource_key_is_shared_by_routes_split_by_method(void **state)
{
    char k1[64], k2[64], k3[64];

    reset();
    add("list", TR_M_GET, "/events");
    add("put", TR_M_PUT, "/events/{id}");
    add("del", TR_M_DELETE, "/events/{id}");
    tr_router *r = build();
    assert_routes_to(r, "PUT", "/events/12", "put");
    tr_route_resource_key(&m, k1, sizeof(k1));
    assert_routes_to(r, "DELETE", "/events/12", "del");
    tr_route_resource_key(&m, k2, sizeof(k2));
    assert_string_equal(k1, k2);
    assert_string_equal(k1, "s1|2:12");
    assert_routes_to(r, "DELETE", "/events/13", "del");
    tr_route_resource_key(&m, k3, sizeof(k3));
    assert_string_not_equal(k1, k3);
    tr_router_free(r);
}

static void
resource_key_is_length_prefixed(void **state)
{
    char k1[64], k2[64];

    reset();
    add("pair", TR_M_GET, "/p/{a}/{b}");
    tr_router *r = build();
    assert_routes_to(r, "GET", "/p/x|1:y/z", "pair");
    tr_route_resource_key(&m, k1, sizeof(k1));
    assert_routes_to(r, "GET", "/p/x/y|1:z", "pair");
    tr_route_resource_key(&m, k2, sizeof(k2));
    assert_string_not_equal(k1, k2);
    assert_int_equal(tr_route_resource_key(&m, k2, 4),
                     strlen("s0|1:x|5:y|1:z"));
    assert_string_equal(k2, "s0|");
    tr_router_free(r);
}

static void
assert_template_refused(const char *tpl, const char *why)
{
    if (tr_route_template_check(tpl, err, sizeof(err)))
        fail_msg("template '%s' accepted", tpl);
    if (strstr(err, why) == NULL)
        fail_msg("template '%s': '%s' lacks '%s'", tpl, err, why);
}

static void
bad_templates_are_refused_with_a_reason(void **state)
{
    assert_template_refused("events", "start with '/'");
    assert_template_refused("", "start with '/'");
    assert_template_refused("/events/", "must not end with '/'");
    assert_template_refused("/a//b", "empty segment");
    assert_template_refused("/{r...}/x", "must be the last");
    assert_template_refused("/{1x}", "parameter name");
    assert_template_refused("/{}", "whole segment");
    assert_template_refused("/{a-b}", "parameter name");
    assert_template_refused("/{a}/{a}", "used twice");
    assert_template_refused("/x{a}", "normalised form");
    assert_template_refused("/{a}x", "whole segment");
    assert_template_refused("/a/../b", "dot segment");
    assert_template_refused("/a/%2e", "normalised form");
    assert_template_refused("/a/%41", "normalised form");
    assert_template_refused("/a/%3a", "normalised form");
    assert_template_refused("/a/%2F", "normalised form");
    assert_template_refused("/a b", "normalised form");
    assert_template_refused("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
                            "more than 8 parameters");
}

static void
good_templates_pass(void **state)
{
    assert_true(tr_route_template_check("/", err, sizeof(err)));
    assert_true(tr_route_template_check("/a/%3A/{b}/{c...}", err,
                                        sizeof(err)));
    assert_true(tr_route_template_check("/v1/{_x9}", err, sizeof(err)));
    assert_true(tr_route_template_has_param("/u/{user}/{r...}", "user"));
    assert_true(tr_route_template_has_param("/u/{user}/{r...}", "r"));
    assert_false(tr_route_template_has_param("/u/{user}/{r...}", "u"));
}

static void
too_many_segments_is_refused(void **state)
{
    char tpl[256];
    size_t n = 0;

    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(tpl + n, sizeof(tpl) - n, "/s");
    assert_template_refused(tpl, "more than 32 segments");
}

static void
invalid_template_fails_the_build(void **state)
{
    reset();
    add("bad", TR_M_GET, "/a/{x");
    assert_null(tr_router_build(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "route 'bad'"));
}

static void
empty_router_finds_nothing(void **state)
{
    reset();
    tr_router *r = build();
    assert_int_equal(route(r, "GET", "/"), TR_ROUTE_NOT_FOUND);
    tr_router_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_segment_beats_parameter),
        cmocka_unit_test(leftmost_literal_decides_precedence),
        cmocka_unit_test(parameter_beats_rest_parameter),
        cmocka_unit_test(longer_template_wins_over_shorter_rest),
        cmocka_unit_test(rest_parameter_needs_at_least_one_segment),
        cmocka_unit_test(rest_parameter_takes_more_than_max_segments),
        cmocka_unit_test(parameter_matches_exactly_one_segment),
        cmocka_unit_test(trailing_slash_is_ignored_when_routing),
        cmocka_unit_test(root_template_matches_only_root),
        cmocka_unit_test(unmatched_path_is_not_found),
        cmocka_unit_test(wrong_method_is_405_with_union_of_allowed),
        cmocka_unit_test(allow_is_truncated_like_snprintf),
        cmocka_unit_test(
            more_specific_route_without_the_method_falls_through),
        cmocka_unit_test(same_shape_with_disjoint_methods_is_not_a_tie),
        cmocka_unit_test(tie_is_a_build_error_naming_both_routes),
        cmocka_unit_test(identical_literal_templates_tie),
        cmocka_unit_test(different_literals_do_not_tie),
        cmocka_unit_test(unknown_methods_match_by_name),
        cmocka_unit_test(route_without_method_list_takes_any_method),
        cmocka_unit_test(param_values_point_into_the_path),
        cmocka_unit_test(resource_key_is_shared_by_routes_split_by_method),
        cmocka_unit_test(resource_key_is_length_prefixed),
        cmocka_unit_test(bad_templates_are_refused_with_a_reason),
        cmocka_unit_test(good_templates_pass),
        cmocka_unit_test(too_many_segments_is_refused),
        cmocka_unit_test(invalid_template_fails_the_build),
        cmocka_unit_test(empty_router_finds_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
