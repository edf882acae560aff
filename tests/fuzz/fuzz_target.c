/*
 * Fuzz target: request-target normalisation, then routing against a small
 * fixed router.  Invariants checked on every accepted target:
 *   - the normalised path is a fixed point of normalisation;
 *   - it holds no dot segment, no empty segment, no %2F/%5C/%00, no raw
 *     backslash, no lower-case hex and no encoded unreserved character;
 *   - it is no longer than the input, and the query points into the input;
 *   - a routed match has its parameters inside the path, and a 405 has a
 *     non-empty Allow.
 * The first input byte picks the method and the Host value; the rest is
 * the target.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_load.h"
#include "core/config.h"
#include "core/route.h"
#include "core/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] =
    "state_dir: /tmp/treaty-fuzz\n"
    "upstreams: {api: {url: \"http://127.0.0.1:3000\"}}\n"
    "routes:\n"
    "  - {name: root, match: {path: /}, upstream: api, auth: none}\n"
    "  - {name: list, match: {methods: [GET, POST], path: /events},\n"
    "     upstream: api, auth: none}\n"
    "  - {name: one, match: {methods: [GET, PUT], path: \"/events/{id}\"},\n"
    "     upstream: api, auth: none}\n"
    "  - {name: new, match: {methods: [POST], path: /events/new},\n"
    "     upstream: api, auth: none}\n"
    "  - {name: del, match: {methods: [DELETE], path: \"/events/{key}\"},\n"
    "     upstream: api, auth: none}\n"
    "  - {name: mail, match: {methods: [GET, PURGE],\n"
    "     path: \"/users/{user}/mail/{rest...}\"}, upstream: api,\n"
    "     auth: none}\n"
    "  - {name: files, match: {path: \"/f/%3A/{p...}\"}, upstream: api,\n"
    "     auth: none}\n";

static tr_router *router;
static tr_config *cfg;

static const struct {
    const char *name;
    uint32_t bit;
} methods[] = {
    { "GET", TR_M_GET }, { "POST", TR_M_POST }, { "PUT", TR_M_PUT },
    { "DELETE", TR_M_DELETE }, { "OPTIONS", TR_M_OPTIONS },
    { "CONNECT", TR_M_CONNECT }, { "PURGE", TR_M_OTHER },
    { "BREW", TR_M_OTHER },
};

static const char *const hosts[] = { "gw.example", "gw.example:8080",
                                     NULL, "[::1]:80" };

static void
setup(void)
{
    tr_config_errors errs = { NULL, 0 };
    char err[256];

    cfg = tr_config_load_buffer("fuzz", yaml, sizeof(yaml) - 1, &errs);
    if (cfg == NULL)
        abort();
    router = tr_router_build(cfg, err, sizeof(err));
    if (router == NULL)
        abort();
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;  /* lower-case hex is never produced */
}

static void
check_path(const char *p, size_t n)
{
    size_t seg = 1;

    if (n == 0 || p[0] != '/')
        abort();
    for (size_t i = 1; i <= n; i++) {
        if (i < n && p[i] != '/')
            continue;
        size_t len = i - seg;
        if (len == 0 && i < n)
            abort();                          /* "//" */
        if ((len == 1 && p[seg] == '.') ||
            (len == 2 && p[seg] == '.' && p[seg + 1] == '.'))
            abort();                          /* dot segment */
        seg = i + 1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\' || c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            abort();
        if (c != '%')
            continue;
        if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
            abort();
        int v = hexval(p[i + 1]) << 4 | hexval(p[i + 2]);
        if (v == '/' || v == '\\' || v < 0x20 || v == 0x7f)
            abort();
        if ((v >= 'A' && v <= 'Z') || (v >= 'a' && v <= 'z') ||
            (v >= '0' && v <= '9') || v == '-' || v == '.' || v == '_' ||
            v == '~')
            abort();                          /* should have been decoded */
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[4096], again[4096], allow_s[256], key[512];
    tr_target t, t2;
    tr_route_match m;
    uint32_t allow;

    if (router == NULL)
        setup();
    if (size < 1 || size > sizeof(buf))
        return 0;

    unsigned sel = data[0];
    const char *target = (const char *)data + 1;
    size_t len = size - 1;
    const char *method = methods[sel % 8].name;
    uint32_t bit = methods[sel % 8].bit;
    const char *host = hosts[(sel >> 3) % 4];

    if (tr_target_normalize(target, len, bit, host, host ? strlen(host) : 0,
                            buf, sizeof(buf), &t) != TR_TARGET_OK)
        return 0;
    if (t.path != buf || t.path_len > len)
        abort();
    if (t.query != NULL &&
        (t.query < target || t.query + t.query_len != target + len))
        abort();
    if (t.asterisk) {
        if (bit != TR_M_OPTIONS || t.path_len != 1 || buf[0] != '*')
            abort();
        return 0;
    }
    check_path(t.path, t.path_len);
    if (!tr_target_path_is_normal(t.path, t.path_len))
        abort();
    if (tr_target_normalize(t.path, t.path_len, TR_M_GET, NULL, 0, again,
                            sizeof(again), &t2) != TR_TARGET_OK ||
        t2.path_len != t.path_len || memcmp(again, buf, t.path_len) != 0)
        abort();

    switch (tr_router_match(router, bit, method, strlen(method), t.path,
                            t.path_len, &m, &allow)) {
    case TR_ROUTE_FOUND:
        if (m.route_index >= cfg->n_routes ||
            m.route != &cfg->routes[m.route_index])
            abort();
        for (size_t i = 0; i < m.n_params; i++)
            if (m.params[i].value < t.path || m.params[i].value_len == 0 ||
                m.params[i].value + m.params[i].value_len >
                    t.path + t.path_len)
                abort();
        if (tr_route_resource_key(&m, key, sizeof(key)) == 0)
            abort();
        break;
    case TR_ROUTE_METHOD_NOT_ALLOWED:
        if (allow == 0 ||
            tr_route_format_allow(router, t.path, t.path_len, allow_s,
                                  sizeof(allow_s)) == 0)
            abort();
        break;
    case TR_ROUTE_NOT_FOUND:
        break;
    }
    return 0;
}
