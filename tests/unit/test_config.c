/* The configuration loader (src/config/): shape, strictness, positions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "config/config_load.h"
#include "core/config.h"
#include "core/route.h"

/* A small valid configuration; tests append to or replace parts of it. */
#define BASE                                                               \
    "state_dir: /tmp/treaty-test\n"                                        \
    "upstreams:\n"                                                         \
    "  api: {url: \"http://127.0.0.1:3000\"}\n"

#define ROUTE_OPEN                                                         \
    "routes:\n"                                                            \
    "  - name: r\n"                                                        \
    "    match: {path: /x}\n"                                              \
    "    upstream: api\n"                                                  \
    "    auth: none\n"

static tr_config_errors errs;

static tr_config *
load(const char *yaml)
{
    tr_config_errors_clear(&errs);
    return tr_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
}

static void
dump_errors(void)
{
    tr_config_errors_print(&errs, stderr);
}

static tr_config *
load_ok(const char *yaml)
{
    tr_config *cfg = load(yaml);
    if (cfg == NULL) {
        dump_errors();
        fail_msg("configuration refused");
    }
    assert_int_equal(errs.n, 0);
    return cfg;
}

/* Finds an error whose key is `key` and whose message holds `part`. */
static const tr_config_error *
find_error(const char *key, const char *part)
{
    for (size_t i = 0; i < errs.n; i++)
        if (strcmp(errs.items[i].key, key) == 0 &&
            strstr(errs.items[i].message, part) != NULL)
            return &errs.items[i];
    return NULL;
}

static const tr_config_error *
expect_error(const char *yaml, const char *key, const char *part)
{
    tr_config *cfg = load(yaml);
    const tr_config_error *e;

    if (cfg != NULL) {
        tr_config_free(cfg);
        fail_msg("configuration accepted; expected %s: %s", key, part);
    }
    e = find_error(key, part);
    if (e == NULL) {
        dump_errors();
        fail_msg("no error '%s' at key '%s'", part, key);
    }
    assert_string_equal(e->file, "t.yaml");
    return e;
}

static void
teardown_errors(void)
{
    tr_config_errors_clear(&errs);
}

static void
example_configuration_loads(void **state)
{
    tr_config_errors e = { NULL, 0 };
    const char *dir = getenv("TREATY_SRC");
    char path[1024];
    tr_config *cfg;

    snprintf(path, sizeof(path), "%s/examples/treaty.yaml",
             dir ? dir : ".");
    cfg = tr_config_load_file(path, &e);
    if (cfg == NULL)
        tr_config_errors_print(&e, stderr);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_upstreams, 1);
    assert_string_equal(cfg->upstreams[0].host, "127.0.0.1");
    assert_int_equal(cfg->upstreams[0].port, 3000);
    assert_int_equal(cfg->identity.n_issuers, 1);
    assert_string_equal(cfg->identity.issuers[0].jwks_file,
                        "examples/dev-keys/jwks.json");
    assert_int_equal(cfg->n_quotas, 1);
    assert_int_equal(cfg->n_tools, 2);
    assert_true(cfg->n_routes >= 4);
    assert_int_equal(strlen(cfg->hash_hex), 64);

    tr_router *r = tr_router_build(cfg, path, sizeof(path));
    assert_non_null(r);
    tr_route_match m;
    assert_int_equal(tr_router_match(r, TR_M_GET, "GET", 3, "/events/7", 9,
                                     &m, NULL), TR_ROUTE_FOUND);
    assert_string_equal(m.route->name, "event");
    tr_router_free(r);
    tr_config_free(cfg);
    tr_config_errors_clear(&e);
}

static void
defaults_are_applied(void **state)
{
    tr_config *cfg = load_ok(BASE ROUTE_OPEN);
    const tr_route_cfg *r = &cfg->routes[0];
    const tr_upstream_cfg *u = &cfg->upstreams[0];

    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_null(cfg->admin_host);
    assert_null(cfg->access_log);
    assert_string_equal(cfg->state_dir, "/tmp/treaty-test");
    assert_string_equal(cfg->file, "t.yaml");

    assert_int_equal(cfg->limits.header_bytes, 16384);
    assert_int_equal(cfg->limits.header_count, 100);
    assert_int_equal(cfg->limits.body_max, 10u << 20);
    assert_int_equal(cfg->limits.max_connections, 10000);
    assert_int_equal(cfg->limits.max_connections_per_client, 256);
    assert_int_equal(cfg->limits.drain_timeout_ms, 10000);

    assert_string_equal(u->name, "api");
    assert_int_equal(u->connect_timeout_ms, 2000);
    assert_int_equal(u->response_timeout_ms, 30000);
    assert_int_equal(u->max_connections, 64);
    assert_int_equal(u->idle_timeout_ms, 4000);
    assert_int_equal(u->authorization, TR_UPSTREAM_AUTH_FORWARD);
    assert_string_equal(u->base_path, "");

    assert_int_equal(r->methods, TR_M_ANY);
    assert_int_equal(r->auth, TR_AUTH_NONE);
    assert_int_equal(r->tool, -1);
    assert_int_equal(r->upstream, 0);
    assert_int_equal(r->idempotency.mode, TR_IDEM_OFF);
    assert_int_equal(r->idempotency.ttl_s, 86400);
    assert_int_equal(r->idempotency.storage_cap, 1u << 20);
    assert_int_equal(r->idempotency.ambiguous, TR_AMBIGUOUS_PIN);
    assert_int_equal(r->idempotency.after_crash, TR_CRASH_UNKNOWN);
    assert_int_equal(r->preconditions, TR_PRECOND_OFF);
    assert_int_equal(r->etags, TR_ETAGS_PASSTHROUGH);
    assert_int_equal(r->etag_body_cap, 1u << 20);
    assert_int_equal(r->lock_timeout_ms, 5000);
    assert_int_equal(r->body_cap, cfg->limits.body_max);
    assert_int_equal(r->mutating, TR_M_MUTATING_DEFAULT);
    assert_false(r->policy.present);
    assert_int_equal(r->policy.max_delegation_depth, -1);
    assert_true(r->policy.humans);

    assert_int_equal(cfg->identity.token_cache_entries, 10000);
    assert_int_equal(cfg->identity.max_token_bytes, 8192);
    assert_int_equal(cfg->budgets.table_capacity, 100000);
    assert_int_equal(cfg->budgets.human.concurrency, 0);
    assert_true(cfg->audit.enabled);
    assert_int_equal(cfg->audit.sync, TR_SYNC_NORMAL);
    assert_string_equal(cfg->propagation.principal_header, "X-Principal");
    assert_string_equal(cfg->propagation.chain_header,
                        "X-Delegation-Chain");
    assert_int_equal(cfg->propagation.txn_token_ttl_s, 300);
    assert_string_equal(cfg->propagation.txn_token_issuer, "treaty");
    assert_int_equal(cfg->propagation.txn_token_key_overlap_s, 86400);
    tr_config_free(cfg);
}

static void
body_cap_defaults_to_limits_body_max(void **state)
{
    tr_config *cfg = load_ok(BASE "limits: {body_max: 1234}\n" ROUTE_OPEN);
    assert_int_equal(cfg->routes[0].body_cap, 1234);
    tr_config_free(cfg);
}

static void
duplicate_key_is_an_error_at_the_second_occurrence(void **state)
{
    const tr_config_error *e = expect_error(
        BASE ROUTE_OPEN "state_dir: /other\n", "state_dir",
        "duplicate key (first defined at line 1, column 1)");
    assert_int_equal(e->line, 9);
    assert_int_equal(e->column, 1);
}

static void
duplicate_key_in_nested_mapping_names_its_path(void **state)
{
    const tr_config_error *e = expect_error(BASE
                     "routes:\n"
                     "  - name: r\n"
                     "    match: {path: /x, path: /y}\n"
                     "    upstream: api\n"
                     "    auth: none\n",
                     "routes[0].match.path", "duplicate key");
    assert_int_equal(e->line, 6);
    assert_int_equal(e->column, 23);
}

static void
alias_and_anchor_are_errors(void **state)
{
    const char *y = BASE
        "limits: {header_count: &n 50, header_bytes: 2048}\n"
        "budgets: {table_capacity: *n}\n" ROUTE_OPEN;
    expect_error(y, "limits.header_count", "anchors (&n) are not allowed");
    const tr_config_error *e = expect_error(y, "budgets.table_capacity",
                                            "aliases (*n) are not allowed");
    assert_int_equal(e->line, 5);
    assert_int_equal(e->column, 27);
}

static void
merge_key_is_an_unknown_key(void **state)
{
    expect_error(BASE "limits: {<<: {header_count: 5}}\n" ROUTE_OPEN,
                 "limits.<<", "unknown key");
}

static void
explicit_tag_is_an_error(void **state)
{
    expect_error(BASE "limits: {header_count: !!int 50}\n" ROUTE_OPEN,
                 "limits.header_count", "tags");
}

static void
unknown_key_is_an_error_with_a_suggestion(void **state)
{
    const tr_config_error *e = expect_error(
        BASE "limits:\n  header_byts: 100\n" ROUTE_OPEN,
        "limits.header_byts", "did you mean 'header_bytes'?");
    assert_int_equal(e->line, 5);
    assert_int_equal(e->column, 3);
    expect_error(BASE ROUTE_OPEN "    zzz: 1\n", "routes[0].zzz",
                 "unknown key 'zzz'");
}

static void
yes_is_not_a_boolean(void **state)
{
    const tr_config_error *e = expect_error(
        BASE ROUTE_OPEN "audit:\n  enabled: yes\n", "audit.enabled",
        "'yes' is not accepted as a boolean");
    assert_int_equal(e->line, 10);
    assert_int_equal(e->column, 12);
    expect_error(BASE ROUTE_OPEN "audit: {enabled: On}\n", "audit.enabled",
                 "not accepted as a boolean");
    expect_error(BASE ROUTE_OPEN "audit: {enabled: True}\n",
                 "audit.enabled", "not accepted as a boolean");
    expect_error(BASE ROUTE_OPEN "audit: {enabled: \"true\"}\n",
                 "audit.enabled", "not accepted as a boolean");
    expect_error(BASE ROUTE_OPEN "audit: {enabled: 1}\n", "audit.enabled",
                 "expected true or false");
}

static void
true_and_false_are_booleans(void **state)
{
    tr_config *cfg = load_ok(BASE ROUTE_OPEN
                             "audit: {enabled: false, reads_fail_open: "
                             "false}\npropagation: {txn_token: true}\n");
    assert_false(cfg->audit.enabled);
    assert_false(cfg->audit.reads_fail_open);
    assert_true(cfg->propagation.txn_token);
    tr_config_free(cfg);
}

static void
boolean_looking_string_must_be_quoted(void **state)
{
    expect_error(BASE ROUTE_OPEN "access_log: off\n", "access_log",
                 "quote it");
    tr_config *cfg = load_ok(BASE ROUTE_OPEN "access_log: \"off\"\n");
    assert_string_equal(cfg->access_log, "off");
    tr_config_free(cfg);
}

static void
wrong_types_are_errors(void **state)
{
    expect_error(BASE ROUTE_OPEN "limits: [1, 2]\n", "limits",
                 "expected a mapping, got a list");
    expect_error(BASE ROUTE_OPEN "limits: {header_count: [1]}\n",
                 "limits.header_count", "expected an integer, got a list");
    expect_error(BASE ROUTE_OPEN "limits: {header_count: \"50\"}\n",
                 "limits.header_count", "quoted string");
    expect_error(BASE ROUTE_OPEN "limits: {header_count: }\n",
                 "limits.header_count", "missing value");
    expect_error(BASE "routes: {a: 1}\n", "routes",
                 "expected a list, got a mapping");
}

static void
numbers_out_of_range_or_odd_are_errors(void **state)
{
    expect_error(BASE ROUTE_OPEN "limits: {header_count: 100000}\n",
                 "limits.header_count", "out of range");
    expect_error(BASE ROUTE_OPEN "limits: {header_count: -1}\n",
                 "limits.header_count", "out of range");
    expect_error(BASE ROUTE_OPEN "limits: {header_count: 0x20}\n",
                 "limits.header_count", "decimal integer");
    expect_error(BASE ROUTE_OPEN "limits: {header_count: 012}\n",
                 "limits.header_count", "octal");
    expect_error(BASE ROUTE_OPEN "limits: {header_count: 1_000}\n",
                 "limits.header_count", "decimal integer");
    expect_error(BASE ROUTE_OPEN
                 "limits: {body_max: 99999999999999999999999}\n",
                 "limits.body_max", "decimal integer");
    expect_error(BASE ROUTE_OPEN "budgets: {human: {rate: 1e3}}\n",
                 "budgets.human.rate", "decimal number");
    expect_error(BASE ROUTE_OPEN "budgets: {human: {rate: .5}}\n",
                 "budgets.human.rate", "decimal number");
}

static void
missing_required_keys_are_errors(void **state)
{
    expect_error(BASE ROUTE_OPEN "identity: {issuers: [{name: a}]}\n",
                 "identity.issuers[0].issuer", "missing required key");
    expect_error("upstreams: {api: {url: \"http://h:1\"}}\n" ROUTE_OPEN,
                 "state_dir", "missing required key");
    expect_error(BASE, "routes", "missing required key");
    expect_error(BASE "routes:\n  - name: r\n    upstream: api\n",
                 "routes[0].match", "missing required key");
}

static void
unknown_upstream_is_an_error(void **state)
{
    const tr_config_error *e = expect_error(
        BASE "routes:\n  - name: r\n    match: {path: /x}\n"
             "    upstream: nope\n    auth: none\n",
        "routes[0].upstream", "unknown upstream 'nope' (upstreams: api)");
    assert_int_equal(e->line, 7);
    assert_int_equal(e->column, 15);
}

static void
unknown_tool_and_quota_are_errors(void **state)
{
    expect_error(BASE ROUTE_OPEN "    tool: search\n", "routes[0].tool",
                 "unknown tool 'search'");
    expect_error(BASE ROUTE_OPEN
                 "quotas: {email: {limit: 30, period_s: 60}}\n"
                 "tools: {t: {charges: {sms: 1}}}\n",
                 "tools.t.charges.sms", "unknown quota 'sms' "
                 "(quotas: email)");
}

static void
tools_charge_quotas_by_index(void **state)
{
    tr_config *cfg = load_ok(
        BASE
        "quotas:\n"
        "  sms: {limit: 5, period_s: 60, per: all, shadow: true}\n"
        "  email: {limit: 30, period_s: 60}\n"
        "tools:\n"
        "  search: {}\n"
        "  send_email: {rate_cost: 2, charges: {email: 10, sms: 1}}\n"
        ROUTE_OPEN "    tool: send_email\n");
    assert_int_equal(cfg->n_quotas, 2);
    assert_int_equal(cfg->quotas[0].per, TR_QUOTA_PER_ALL);
    assert_true(cfg->quotas[0].shadow);
    assert_int_equal(cfg->quotas[1].per, TR_QUOTA_PER_PRINCIPAL);
    assert_int_equal(cfg->tools[0].rate_cost, 1);
    assert_int_equal(cfg->tools[0].n_charges, 0);
    assert_int_equal(cfg->tools[1].rate_cost, 2);
    assert_int_equal(cfg->tools[1].n_charges, 2);
    assert_int_equal(cfg->tools[1].charges[0].quota, 1);
    assert_int_equal(cfg->tools[1].charges[0].cost, 10);
    assert_int_equal(cfg->tools[1].charges[1].quota, 0);
    assert_int_equal(cfg->routes[0].tool, 1);
    tr_config_free(cfg);
}

static void
charge_above_quota_limit_is_an_error(void **state)
{
    expect_error(BASE ROUTE_OPEN
                 "quotas: {email: {limit: 5, period_s: 60}}\n"
                 "tools: {t: {charges: {email: 6}}}\n",
                 "tools.t.charges.email", "could never be admitted");
}

static void
what_the_limiter_refuses_is_reported(void **state)
{
    expect_error(BASE ROUTE_OPEN "quotas: {rate: {limit: 5, period_s: 60}}\n",
                 "", "reserved");
}

static void
template_tie_is_an_error_naming_both_routes(void **state)
{
    const tr_config_error *e = expect_error(
        BASE
        "routes:\n"
        "  - name: one\n"
        "    match: {methods: [GET, PUT], path: \"/e/{id}\"}\n"
        "    upstream: api\n"
        "    auth: none\n"
        "  - name: two\n"
        "    match: {methods: [PUT], path: \"/e/{key}\"}\n"
        "    upstream: api\n"
        "    auth: none\n",
        "routes[1].match.path", "ties with routes[0] ('one')");
    assert_int_equal(e->line, 10);
    assert_int_equal(e->column, 35);
    assert_non_null(strstr(e->message, "/e/{key}"));
}

static void
same_template_with_disjoint_methods_loads(void **state)
{
    tr_config *cfg = load_ok(
        BASE
        "routes:\n"
        "  - name: one\n"
        "    match: {methods: [GET], path: \"/e/{id}\"}\n"
        "    upstream: api\n"
        "    auth: none\n"
        "  - name: two\n"
        "    match: {methods: [PUT, DELETE], path: \"/e/{key}\"}\n"
        "    upstream: api\n"
        "    auth: none\n");
    assert_int_equal(cfg->n_routes, 2);
    tr_config_free(cfg);
}

static void
invalid_template_is_an_error(void **state)
{
    expect_error(BASE "routes:\n  - name: r\n    match: {path: /a/../b}\n"
                      "    upstream: api\n    auth: none\n",
                 "routes[0].match.path", "dot segment");
    expect_error(BASE "routes:\n  - name: r\n    match: {path: /a/}\n"
                      "    upstream: api\n    auth: none\n",
                 "routes[0].match.path", "must not end with '/'");
}

static void
https_upstream_is_refused(void **state)
{
    expect_error("state_dir: /s\nupstreams:\n  api: {url: "
                 "\"https://h:443\"}\n" ROUTE_OPEN,
                 "upstreams.api.url", "TLS is not in the first release");
    expect_error("state_dir: /s\nupstreams:\n  api: {url: \"ftp://h\"}\n"
                 ROUTE_OPEN, "upstreams.api.url", "http://host:port");
    expect_error("state_dir: /s\nupstreams:\n  api: {url: "
                 "\"http://u:p@h\"}\n" ROUTE_OPEN, "upstreams.api.url",
                 "user information");
    expect_error("state_dir: /s\nupstreams:\n  api: {url: "
                 "\"http://h/a/../b\"}\n" ROUTE_OPEN, "upstreams.api.url",
                 "base path");
}

static void
upstream_url_is_split(void **state)
{
    tr_config *cfg = load_ok("state_dir: /s\nupstreams:\n"
                             "  api: {url: \"http://backend.local/api/v1/\"}\n"
                             "  b: {url: \"http://[::1]:9000\"}\n"
                             ROUTE_OPEN);
    assert_string_equal(cfg->upstreams[0].host, "backend.local");
    assert_int_equal(cfg->upstreams[0].port, 80);
    assert_string_equal(cfg->upstreams[0].base_path, "/api/v1");
    assert_string_equal(cfg->upstreams[0].url,
                        "http://backend.local/api/v1/");
    assert_string_equal(cfg->upstreams[1].host, "::1");
    assert_int_equal(cfg->upstreams[1].port, 9000);
    assert_string_equal(cfg->upstreams[1].base_path, "");
    tr_config_free(cfg);
}

static void
listen_and_admin_are_host_and_port(void **state)
{
    tr_config *cfg = load_ok(BASE ROUTE_OPEN "listen: \"0.0.0.0:80\"\n"
                                             "admin: \"[::1]:9901\"\n");
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 80);
    assert_string_equal(cfg->admin_host, "::1");
    assert_int_equal(cfg->admin_port, 9901);
    tr_config_free(cfg);
    expect_error(BASE ROUTE_OPEN "listen: \"localhost\"\n", "listen",
                 "missing ':port'");
    expect_error(BASE ROUTE_OPEN "listen: \"::1:80\"\n", "listen",
                 "brackets");
    expect_error(BASE ROUTE_OPEN "listen: \"h:70000\"\n", "listen",
                 "port must be");
    expect_error(BASE ROUTE_OPEN "listen: \"h:1\"\nadmin: \"h:1\"\n",
                 "admin", "same address");
}

static void
trusted_proxies_are_cidrs(void **state)
{
    static const uint8_t v4[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
                                    0xff, 10, 1, 0, 0 };
    tr_config *cfg = load_ok(BASE ROUTE_OPEN
                             "trusted_proxies: [10.1.0.0/16, \"fd00::/8\", "
                             "192.0.2.7]\n");
    assert_int_equal(cfg->n_trusted_proxies, 3);
    assert_memory_equal(cfg->trusted_proxies[0].addr, v4, 16);
    assert_int_equal(cfg->trusted_proxies[0].prefix, 96 + 16);
    assert_int_equal(cfg->trusted_proxies[1].addr[0], 0xfd);
    assert_int_equal(cfg->trusted_proxies[1].prefix, 8);
    assert_int_equal(cfg->trusted_proxies[2].prefix, 128);
    tr_config_free(cfg);
    expect_error(BASE ROUTE_OPEN "trusted_proxies: [10.0.0.1/8]\n",
                 "trusted_proxies[0]", "did you mean 10.0.0.0/8?");
    expect_error(BASE ROUTE_OPEN "trusted_proxies: [10.0.0.0/33]\n",
                 "trusted_proxies[0]", "prefix length");
}

#define ISSUER(extra)                                                      \
    "identity:\n"                                                          \
    "  issuers:\n"                                                         \
    "    - name: corp\n"                                                   \
    "      issuer: https://idp.example/\n"                                 \
    "      audiences: [gw]\n" extra

static void
issuer_names_and_values_are_unique(void **state)
{
    const char *two =
        "    - {name: corp, issuer: \"https://idp.example/\", "
        "audiences: [gw], algorithms: [HS256], hs256_secret_file: /k}\n";
    char y[1024];

    snprintf(y, sizeof(y), "%s%s", BASE ROUTE_OPEN
             ISSUER("      algorithms: [HS256]\n"
                    "      hs256_secret_file: /k\n"), two);
    expect_error(y, "identity.issuers[1].name", "already used");
    expect_error(y, "identity.issuers[1].issuer", "already configured");
}

static void
hs256_needs_a_secret_file(void **state)
{
    expect_error(BASE ROUTE_OPEN ISSUER("      algorithms: [HS256]\n"),
                 "identity.issuers[0].hs256_secret_file",
                 "HS256 needs hs256_secret_file");
    tr_config *cfg = load_ok(BASE ROUTE_OPEN
                             ISSUER("      algorithms: [HS256]\n"
                                    "      hs256_secret_file: /k\n"));
    assert_string_equal(cfg->identity.issuers[0].hs256_secret_file, "/k");
    tr_config_free(cfg);
    expect_error(BASE ROUTE_OPEN ISSUER("      algorithms: [ES256]\n"
                                        "      jwks_file: /j\n"
                                        "      hs256_secret_file: /k\n"),
                 "identity.issuers[0].hs256_secret_file",
                 "used only with algorithm HS256");
}

static void
issuer_algorithms_and_keys_are_checked(void **state)
{
    expect_error(BASE ROUTE_OPEN ISSUER("      algorithms: [none]\n"),
                 "identity.issuers[0].algorithms[0]", "never accepted");
    expect_error(BASE ROUTE_OPEN ISSUER("      algorithms: [ES384]\n"),
                 "identity.issuers[0].algorithms[0]", "unknown algorithm");
    expect_error(BASE ROUTE_OPEN ISSUER("      algorithms: [ES256]\n"),
                 "identity.issuers[0].jwks_file", "need jwks_file or "
                 "jwks_url");
    expect_error(BASE ROUTE_OPEN
                 ISSUER("      algorithms: [ES256]\n"
                        "      jwks_url: http://idp/jwks\n"),
                 "identity.issuers[0].jwks_url", "must use https://");
    tr_config *cfg = load_ok(BASE ROUTE_OPEN
                             ISSUER("      algorithms: [ES256, EdDSA]\n"
                                    "      jwks_url: http://idp/jwks\n"
                                    "      jwks_insecure_http: true\n"
                                    "      actor_profile: client\n"));
    const tr_issuer_cfg *is = &cfg->identity.issuers[0];
    assert_int_equal(is->algorithms.n, 2);
    assert_string_equal(is->algorithms.items[1], "EdDSA");
    assert_true(is->jwks_insecure_http);
    assert_int_equal(is->actor_profile, TR_ACTOR_PROFILE_CLIENT);
    assert_int_equal(is->leeway_s, 60);
    assert_int_equal(is->jwks_refresh_s, 300);
    assert_int_equal(is->jwks_grace_s, 3600);
    tr_config_free(cfg);
}

static void
auth_required_needs_an_issuer(void **state)
{
    expect_error(BASE "routes:\n  - name: r\n    match: {path: /x}\n"
                      "    upstream: api\n",
                 "routes[0].auth", "needs an issuer");
    tr_config *cfg = load_ok(BASE "routes:\n  - name: r\n    match: "
                                  "{path: /x}\n    upstream: api\n"
                                  "    auth: optional\n");
    assert_int_equal(cfg->routes[0].auth, TR_AUTH_OPTIONAL);
    tr_config_free(cfg);
}

static char *
write_temp(const char *content)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/treaty-test-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)),
                     (ssize_t)strlen(content));
    close(fd);
    return path;
}

static void
authorization_replace_reads_the_file(void **state)
{
    char yaml[512];
    char *p = write_temp("Bearer s3cret-value\n");

    snprintf(yaml, sizeof(yaml),
             "state_dir: /s\nupstreams:\n  api:\n"
             "    url: \"http://h:1\"\n    authorization: replace\n"
             "    authorization_file: %s\n" ROUTE_OPEN, p);
    tr_config *cfg = load_ok(yaml);
    assert_int_equal(cfg->upstreams[0].authorization,
                     TR_UPSTREAM_AUTH_REPLACE);
    assert_string_equal(cfg->upstreams[0].authorization_value,
                        "Bearer s3cret-value");
    tr_config_free(cfg);
    unlink(p);

    p = write_temp("Bearer one\nsecond-line-secret");
    snprintf(yaml, sizeof(yaml),
             "state_dir: /s\nupstreams:\n  api:\n"
             "    url: \"http://h:1\"\n    authorization: replace\n"
             "    authorization_file: %s\n" ROUTE_OPEN, p);
    expect_error(yaml, "upstreams.api.authorization_file", "line break");
    for (size_t i = 0; i < errs.n; i++)
        assert_null(strstr(errs.items[i].message, "secret"));
    unlink(p);

    expect_error("state_dir: /s\nupstreams:\n  api:\n"
                 "    url: \"http://h:1\"\n    authorization: replace\n"
                 ROUTE_OPEN, "upstreams.api.authorization_file",
                 "needs authorization_file");
    expect_error("state_dir: /s\nupstreams:\n  api:\n"
                 "    url: \"http://h:1\"\n    authorization: replace\n"
                 "    authorization_file: /nonexistent/x\n" ROUTE_OPEN,
                 "upstreams.api.authorization_file", "cannot open");
}

static void
idempotency_takes_a_mode_or_a_mapping(void **state)
{
    tr_config *cfg = load_ok(
        BASE
        "routes:\n"
        "  - name: a\n"
        "    match: {path: /a}\n"
        "    upstream: api\n"
        "    auth: none\n"
        "    idempotency: required_for_agents\n"
        "  - name: b\n"
        "    match: {path: /b}\n"
        "    upstream: api\n"
        "    auth: none\n"
        "    idempotency: {mode: required, wait_ms: 3000, canonical_json: "
        "true, ambiguous: release, after_crash: reexecute, ttl_s: 3600, "
        "storage_cap: 100, fail_open: true, forward_derived_key: true}\n");
    assert_int_equal(cfg->routes[0].idempotency.mode,
                     TR_IDEM_REQUIRED_FOR_AGENTS);
    const tr_idem_cfg *i = &cfg->routes[1].idempotency;
    assert_int_equal(i->mode, TR_IDEM_REQUIRED);
    assert_int_equal(i->wait_ms, 3000);
    assert_true(i->canonical_json);
    assert_int_equal(i->ambiguous, TR_AMBIGUOUS_RELEASE);
    assert_int_equal(i->after_crash, TR_CRASH_REEXECUTE);
    assert_int_equal(i->ttl_s, 3600);
    assert_int_equal(i->storage_cap, 100);
    assert_true(i->fail_open);
    assert_true(i->forward_derived_key);
    tr_config_free(cfg);
    expect_error(BASE ROUTE_OPEN "    idempotency: always\n",
                 "routes[0].idempotency", "must be one of: off, optional");
    expect_error(BASE ROUTE_OPEN "    idempotency: {wait_ms: 5}\n",
                 "routes[0].idempotency.mode", "missing required key");
}

static void
route_contract_keys_are_read(void **state)
{
    tr_config *cfg = load_ok(
        BASE
        "routes:\n"
        "  - name: a\n"
        "    match: {methods: [PUT], path: \"/u/{user}/{rest...}\"}\n"
        "    upstream: api\n"
        "    auth: none\n"
        "    preconditions: required\n"
        "    require_if_none_match_on_create: true\n"
        "    etags: synthesize\n"
        "    etag_body_cap: 2048\n"
        "    etag_ignore_fields: [updatedAt]\n"
        "    lock_timeout_ms: 100\n"
        "    body_cap: 4096\n"
        "    mutating: [PUT, POST]\n"
        "    policy:\n"
        "      actors: [\"agent:*\"]\n"
        "      scopes: [a, b]\n"
        "      max_delegation_depth: 2\n"
        "      owner_param: user\n"
        "      consent_claim: consent_id\n"
        "      humans: false\n"
        "      shadow: true\n");
    const tr_route_cfg *r = &cfg->routes[0];
    assert_int_equal(r->methods, TR_M_PUT);
    assert_int_equal(r->preconditions, TR_PRECOND_REQUIRED);
    assert_true(r->require_if_none_match_on_create);
    assert_int_equal(r->etags, TR_ETAGS_SYNTHESIZE);
    assert_int_equal(r->etag_body_cap, 2048);
    assert_string_equal(r->etag_ignore_fields.items[0], "updatedAt");
    assert_int_equal(r->lock_timeout_ms, 100);
    assert_int_equal(r->body_cap, 4096);
    assert_int_equal(r->mutating, TR_M_PUT | TR_M_POST);
    assert_true(r->policy.present);
    assert_int_equal(r->policy.actors.n, 1);
    assert_int_equal(r->policy.scopes.n, 2);
    assert_int_equal(r->policy.max_delegation_depth, 2);
    assert_string_equal(r->policy.owner_param, "user");
    assert_string_equal(r->policy.consent_claim, "consent_id");
    assert_false(r->policy.humans);
    assert_true(r->policy.shadow);
    tr_config_free(cfg);
}

static void
owner_param_must_be_a_template_parameter(void **state)
{
    expect_error(BASE ROUTE_OPEN "    policy: {owner_param: user}\n",
                 "routes[0].policy.owner_param", "not a parameter");
}

static void
methods_are_case_sensitive_and_get_implies_head(void **state)
{
    tr_config *cfg = load_ok(
        BASE
        "routes:\n"
        "  - name: a\n"
        "    match: {methods: [GET, PURGE, MKCALENDAR], path: /a}\n"
        "    upstream: api\n"
        "    auth: none\n");
    const tr_route_cfg *r = &cfg->routes[0];
    assert_int_equal(r->methods,
                     TR_M_GET | TR_M_HEAD | TR_M_MKCALENDAR | TR_M_OTHER);
    assert_int_equal(r->other_methods.n, 1);
    assert_string_equal(r->other_methods.items[0], "PURGE");
    tr_config_free(cfg);
    expect_error(BASE "routes:\n  - name: a\n    match: {methods: [get], "
                      "path: /a}\n    upstream: api\n    auth: none\n",
                 "routes[0].match.methods[0]", "write 'GET'");
    expect_error(BASE "routes:\n  - name: a\n    match: {methods: "
                      "[CONNECT], path: /a}\n    upstream: api\n"
                      "    auth: none\n",
                 "routes[0].match.methods[0]", "not supported");
    expect_error(BASE "routes:\n  - name: a\n    match: {methods: [], "
                      "path: /a}\n    upstream: api\n    auth: none\n",
                 "routes[0].match.methods", "at least one method");
}

static void
route_names_are_unique(void **state)
{
    expect_error(BASE
                 "routes:\n"
                 "  - {name: a, match: {path: /a}, upstream: api, "
                 "auth: none}\n"
                 "  - {name: a, match: {path: /b}, upstream: api, "
                 "auth: none}\n",
                 "routes[1].name", "already used by routes[0]");
}

static void
budgets_fill_burst_and_read_shadow(void **state)
{
    tr_config *cfg = load_ok(
        BASE ROUTE_OPEN
        "budgets:\n"
        "  human: {concurrency: 4, queue: 4, queue_timeout_ms: 2000, "
        "rate: 2.5}\n"
        "  agent: {rate: 10, burst: 20, shadow: {rate: true}}\n"
        "  table_capacity: 5000\n");
    assert_int_equal(cfg->budgets.human.concurrency, 4);
    assert_int_equal(cfg->budgets.human.queue_timeout_ms, 2000);
    assert_true(cfg->budgets.human.rate == 2.5);
    assert_int_equal(cfg->budgets.human.burst, 3);
    assert_false(cfg->budgets.human.shadow_rate);
    assert_int_equal(cfg->budgets.agent.burst, 20);
    assert_true(cfg->budgets.agent.shadow_rate);
    assert_false(cfg->budgets.agent.shadow_concurrency);
    assert_int_equal(cfg->budgets.table_capacity, 5000);
    tr_config_free(cfg);

    cfg = load_ok(BASE ROUTE_OPEN "budgets: {human: {shadow: true}}\n");
    assert_true(cfg->budgets.human.shadow_rate);
    assert_true(cfg->budgets.human.shadow_concurrency);
    tr_config_free(cfg);

    expect_error(BASE ROUTE_OPEN "budgets: {human: {burst: 5}}\n",
                 "budgets.human.burst", "needs a rate");
    expect_error(BASE ROUTE_OPEN "budgets: {agent: {queue: 5}}\n",
                 "budgets.agent.queue", "needs a concurrency");
}

static void
every_error_is_collected(void **state)
{
    tr_config *cfg = load("state_dir: /s\n"
                          "bogus: 1\n"
                          "limits: {header_count: yes}\n"
                          "upstreams: {api: {url: \"https://h\"}}\n"
                          "routes:\n"
                          "  - {name: r, match: {path: /x}, upstream: q, "
                          "auth: none}\n");
    assert_null(cfg);
    assert_true(errs.n >= 4);
    assert_non_null(find_error("bogus", "unknown key"));
    assert_non_null(find_error("limits.header_count", "decimal integer"));
    assert_non_null(find_error("upstreams.api.url", "https://"));
    assert_non_null(find_error("routes[0].upstream", "unknown upstream"));
    for (size_t i = 1; i < errs.n; i++)
        assert_true(errs.items[i - 1].line <= errs.items[i].line);
}

static void
errors_print_one_per_line(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f;

    assert_null(load(BASE ROUTE_OPEN "limits: {header_count: 0}\n"
                     "\"bad\\nkey\": 1\n"));
    f = open_memstream(&out, &len);
    assert_int_equal(tr_config_errors_print(&errs, f), (int)errs.n);
    fclose(f);
    assert_non_null(strstr(out, "t.yaml:9:24: limits.header_count: 0 is "
                                "out of range"));
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += out[i] == '\n';
    assert_int_equal(lines, errs.n);
    free(out);
}

static const tr_config_error *
find_message(const char *part)
{
    for (size_t i = 0; i < errs.n; i++)
        if (strstr(errs.items[i].message, part) != NULL)
            return &errs.items[i];
    return NULL;
}

static void
syntax_error_has_a_position(void **state)
{
    const tr_config_error *e;

    assert_null(load(BASE ROUTE_OPEN "limits: {header_count: 5\n"));
    assert_int_equal(errs.n, 1);
    e = find_message("YAML syntax error");
    assert_non_null(e);
    assert_true(e->line >= 9);
    assert_true(e->column >= 1);
}

static void
empty_and_odd_documents_are_errors(void **state)
{
    expect_error("", "", "holds no configuration");
    expect_error("# only a comment\n", "", "holds no configuration");
    expect_error("- a\n- b\n", "", "must be a mapping");
    expect_error(BASE ROUTE_OPEN "---\nx: 1\n", "",
                 "more than one YAML document");
}

static void
nul_and_control_bytes_are_errors_not_crashes(void **state)
{
    static const char y[] = "state_dir: /s\0x\n";
    tr_config_errors_clear(&errs);
    assert_null(tr_config_load_buffer("t.yaml", y, sizeof(y) - 1, &errs));
    assert_true(errs.n >= 1);
    expect_error(BASE ROUTE_OPEN "access_log: \"a\\x01b\"\n", "access_log",
                 "control characters");
}

static void
deep_nesting_is_refused(void **state)
{
    char y[512];
    size_t n = 0;

    n += (size_t)snprintf(y, sizeof(y), "limits: ");
    for (int i = 0; i < 100; i++)
        y[n++] = '[';
    y[n] = '\0';
    tr_config_errors_clear(&errs);
    assert_null(tr_config_load_buffer("t.yaml", y, n, &errs));
    assert_non_null(find_message("nesting deeper than 64 levels"));
}

static void
error_count_is_capped(void **state)
{
    size_t cap = 16 + 20 * (TR_CONFIG_MAX_ERRORS + 50);
    char *y = malloc(cap);
    size_t n = 0;

    n += (size_t)snprintf(y, cap, BASE ROUTE_OPEN);
    for (int i = 0; i < TR_CONFIG_MAX_ERRORS + 50; i++)
        n += (size_t)snprintf(y + n, cap - n, "bogus%d: 1\n", i);
    tr_config_errors_clear(&errs);
    assert_null(tr_config_load_buffer("t.yaml", y, n, &errs));
    assert_int_equal(errs.n, TR_CONFIG_MAX_ERRORS + 1);
    assert_non_null(find_error("", "too many errors"));
    free(y);
}

static void
config_hash_is_sha256_of_the_bytes(void **state)
{
    const char *y = BASE ROUTE_OPEN;
    uint8_t want[32];
    unsigned int n;
    char hex[65];

    assert_int_equal(EVP_Digest(y, strlen(y), want, &n, EVP_sha256(), NULL),
                     1);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", want[i]);
    tr_config *a = load_ok(y);
    assert_memory_equal(a->hash, want, 32);
    assert_string_equal(a->hash_hex, hex);
    tr_config *b = load_ok(BASE ROUTE_OPEN "# a comment\n");
    assert_memory_not_equal(a->hash, b->hash, 32);
    tr_config_free(a);
    tr_config_free(b);
}

static void
missing_file_is_reported(void **state)
{
    tr_config_errors_clear(&errs);
    assert_null(tr_config_load_file("/nonexistent/treaty.yaml", &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0].file, "/nonexistent/treaty.yaml");
    assert_int_equal(errs.items[0].line, 0);
    assert_non_null(strstr(errs.items[0].message, "cannot open"));
}

static void
propagation_headers_must_be_field_names(void **state)
{
    expect_error(BASE ROUTE_OPEN "propagation: {actor_header: \"X Actor\"}\n",
                 "propagation.actor_header", "not a header field name");
    expect_error(BASE ROUTE_OPEN "propagation: {actor_header: x-principal}\n",
                 "propagation.actor_header", "same header");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_configuration_loads),
        cmocka_unit_test(defaults_are_applied),
        cmocka_unit_test(body_cap_defaults_to_limits_body_max),
        cmocka_unit_test(duplicate_key_is_an_error_at_the_second_occurrence),
        cmocka_unit_test(duplicate_key_in_nested_mapping_names_its_path),
        cmocka_unit_test(alias_and_anchor_are_errors),
        cmocka_unit_test(merge_key_is_an_unknown_key),
        cmocka_unit_test(explicit_tag_is_an_error),
        cmocka_unit_test(unknown_key_is_an_error_with_a_suggestion),
        cmocka_unit_test(yes_is_not_a_boolean),
        cmocka_unit_test(true_and_false_are_booleans),
        cmocka_unit_test(boolean_looking_string_must_be_quoted),
        cmocka_unit_test(wrong_types_are_errors),
        cmocka_unit_test(numbers_out_of_range_or_odd_are_errors),
        cmocka_unit_test(missing_required_keys_are_errors),
        cmocka_unit_test(unknown_upstream_is_an_error),
        cmocka_unit_test(unknown_tool_and_quota_are_errors),
        cmocka_unit_test(tools_charge_quotas_by_index),
        cmocka_unit_test(charge_above_quota_limit_is_an_error),
        cmocka_unit_test(what_the_limiter_refuses_is_reported),
        cmocka_unit_test(template_tie_is_an_error_naming_both_routes),
        cmocka_unit_test(same_template_with_disjoint_methods_loads),
        cmocka_unit_test(invalid_template_is_an_error),
        cmocka_unit_test(https_upstream_is_refused),
        cmocka_unit_test(upstream_url_is_split),
        cmocka_unit_test(listen_and_admin_are_host_and_port),
        cmocka_unit_test(trusted_proxies_are_cidrs),
        cmocka_unit_test(issuer_names_and_values_are_unique),
        cmocka_unit_test(hs256_needs_a_secret_file),
        cmocka_unit_test(issuer_algorithms_and_keys_are_checked),
        cmocka_unit_test(auth_required_needs_an_issuer),
        cmocka_unit_test(authorization_replace_reads_the_file),
        cmocka_unit_test(idempotency_takes_a_mode_or_a_mapping),
        cmocka_unit_test(route_contract_keys_are_read),
        cmocka_unit_test(owner_param_must_be_a_template_parameter),
        cmocka_unit_test(methods_are_case_sensitive_and_get_implies_head),
        cmocka_unit_test(route_names_are_unique),
        cmocka_unit_test(budgets_fill_burst_and_read_shadow),
        cmocka_unit_test(every_error_is_collected),
        cmocka_unit_test(errors_print_one_per_line),
        cmocka_unit_test(syntax_error_has_a_position),
        cmocka_unit_test(empty_and_odd_documents_are_errors),
        cmocka_unit_test(nul_and_control_bytes_are_errors_not_crashes),
        cmocka_unit_test(deep_nesting_is_refused),
        cmocka_unit_test(error_count_is_capped),
        cmocka_unit_test(config_hash_is_sha256_of_the_bytes),
        cmocka_unit_test(missing_file_is_reported),
        cmocka_unit_test(propagation_headers_must_be_field_names),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    teardown_errors();
    return rc;
}
