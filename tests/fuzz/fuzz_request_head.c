/*
 * Fuzz target: the request path from raw bytes to a route, as the server
 * runs it: the hardened header-block check (core/http_head.c), llhttp's
 * parse of the same block, the framing and Host rules over the parsed
 * fields, target normalisation and routing.
 *
 * Invariants: a block the check accepts is one llhttp parses up to the end
 * of its head without error; no accepted head holds a bare CR or LF, an
 * obs-fold, two Host fields, or Content-Length beside Transfer-Encoding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llhttp.h"

#include "config/config_load.h"
#include "core/http_head.h"
#include "core/route.h"
#include "core/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 64

typedef struct {
    tr_header h[MAX_FIELDS];
    size_t n;
    const char *field;
    size_t field_len;
    const char *method, *url;
    size_t method_len, url_len;
    int done;
} parsed;

static int
on_method(llhttp_t *p, const char *at, size_t len)
{
    parsed *ps = p->data;
    ps->method = at;
    ps->method_len = len;
    return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
    parsed *ps = p->data;
    ps->url = at;
    ps->url_len = len;
    return 0;
}

static int
on_field(llhttp_t *p, const char *at, size_t len)
{
    parsed *ps = p->data;
    ps->field = at;
    ps->field_len = len;
    return 0;
}

static int
on_value(llhttp_t *p, const char *at, size_t len)
{
    parsed *ps = p->data;
    if (ps->n >= MAX_FIELDS)
        return -1;
    ps->h[ps->n].name = ps->field;
    ps->h[ps->n].name_len = ps->field_len;
    ps->h[ps->n].value = at;
    ps->h[ps->n].value_len = len;
    ps->n++;
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    ((parsed *)p->data)->done = 1;
    return HPE_PAUSED;
}

static const char yaml[] =
    "state_dir: /tmp/treaty-fuzz\n"
    "upstreams: {api: {url: \"http://127.0.0.1:3000\"}}\n"
    "routes:\n"
    "  - {name: list, match: {methods: [GET, POST], path: /events},\n"
    "     upstream: api, auth: none}\n"
    "  - {name: one, match: {methods: [GET, PUT], path: \"/events/{id}\"},\n"
    "     upstream: api, auth: none}\n"
    "  - {name: rest, match: {path: \"/{rest...}\"}, upstream: api,\n"
    "     auth: none}\n";

static tr_config *cfg;  /* lives for the process: the router points in */
static tr_router *router;
static llhttp_settings_t settings;

static void
setup(void)
{
    tr_config_errors errs = { 0 };
    cfg = tr_config_load_buffer("fuzz.yaml", yaml,
                                           sizeof(yaml) - 1, &errs);
    if (!cfg)
        abort();
    char err[256];
    router = tr_router_build(cfg, err, sizeof(err));
    if (!router)
        abort();
    llhttp_settings_init(&settings);
    settings.on_method = on_method;
    settings.on_url = on_url;
    settings.on_header_field = on_field;
    settings.on_header_value = on_value;
    settings.on_headers_complete = on_headers_complete;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!router)
        setup();
    const char *p = (const char *)data;
    const char *end = memmem(p, size, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t blen = (size_t)(end - p) + 4;
    if (tr_head_check_block(p, blen, MAX_FIELDS) != TR_HEAD_OK)
        return 0;

    /* Nothing the check accepts may hide a bare CR/LF or a fold. */
    for (size_t i = 0; i < blen; i++) {
        if (p[i] == '\r' && (i + 1 >= blen || p[i + 1] != '\n'))
            abort();
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            abort();
        if (p[i] == '\n' && i + 1 < blen && (p[i + 1] == ' ' ||
                                             p[i + 1] == '\t'))
            abort();
    }

    parsed ps = { 0 };
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = &ps;
    llhttp_errno_t err = llhttp_execute(&parser, p, blen);
    if (err != HPE_PAUSED || !ps.done)
        return 0;  /* llhttp refused what our check let by: fine */

    bool http11 = parser.http_major == 1 && parser.http_minor == 1;
    if (tr_head_check_fields(ps.h, ps.n, http11) != TR_HEAD_OK)
        return 0;
    size_t hosts = 0;
    bool cl = false, te = false;
    for (size_t i = 0; i < ps.n; i++) {
        hosts += tr_head_name_is(&ps.h[i], "host");
        cl |= tr_head_name_is(&ps.h[i], "content-length");
        te |= tr_head_name_is(&ps.h[i], "transfer-encoding");
    }
    if (hosts > 1 || (cl && te))
        abort();

    const char *host = NULL;
    size_t host_len = 0;
    for (size_t i = 0; i < ps.n; i++)
        if (tr_head_name_is(&ps.h[i], "host")) {
            host = ps.h[i].value;
            host_len = ps.h[i].value_len;
        }
    uint32_t mbit = tr_method_bit(ps.method, ps.method_len);
    char path[4096];
    tr_target t;
    if (!ps.url || tr_target_normalize(ps.url, ps.url_len, mbit, host,
                                       host_len, path, sizeof(path),
                                       &t) != TR_TARGET_OK)
        return 0;
    tr_route_match m;
    uint32_t allow = 0;
    tr_route_result rr = tr_router_match(router, mbit, ps.method,
                                         ps.method_len, t.path, t.path_len,
                                         &m, &allow);
    if (rr == TR_ROUTE_FOUND)
        for (size_t i = 0; i < m.n_params; i++)
            if (m.params[i].value < t.path ||
                m.params[i].value + m.params[i].value_len >
                    t.path + t.path_len)
                abort();
    return 0;
}
