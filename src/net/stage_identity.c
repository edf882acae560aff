/*
 * Step 2: who is calling for whom.  The bearer token is verified (cache
 * first, src/core/verifier.c); principal, actor, chain and class come
 * from the verified token only.  Client copies of treaty's identity
 * headers are removed in every spelling, and the gateway's own values are
 * added towards the upstream.  The route's auth mode is enforced right
 * after routing, in tr_stage_enforce_auth: a bad token is 401 even where
 * auth is optional.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/identity.h"
#include "core/propagation.h"
#include "core/verifier.h"
#include "net/jwks_fetcher.h"
#include "net/log.h"
#include "net/services.h"
#include "net/stages.h"

static void
note_stripped(tr_request *req, const tr_header *h)
{
    size_t room = sizeof(req->stripped_headers) - req->stripped_len;
    if (room <= h->name_len + 1)
        return;
    if (req->stripped_len)
        req->stripped_headers[req->stripped_len++] = ',';
    for (size_t i = 0; i < h->name_len; i++) {
        char ch = h->name[i];
        req->stripped_headers[req->stripped_len++] =
            (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    req->stripped_headers[req->stripped_len] = '\0';
}

tr_step
tr_stage_identify(tr_request *req)
{
    tr_server *srv = req->client->srv;
    tr_services *svc = srv->svc;
    const tr_header *authz = NULL;
    size_t n_authz = 0;

    /* This stage runs again after a JWKS refetch: start the list over. */
    req->stripped_len = 0;
    req->stripped_headers[0] = '\0';
    for (size_t i = 0; i < req->n_headers; i++) {
        const tr_header *h = &req->headers[i];
        if (tr_head_name_is(h, "authorization")) {
            authz = h;
            n_authz++;
        } else if (tr_prop_is_identity_header(&srv->cfg->propagation,
                                              h->name, h->name_len)) {
            note_stripped(req, h);
        }
    }

    req->token_status = TR_TOKEN_MISSING;
    if (!svc || !svc->verifier)
        return TR_NEXT;  /* no issuer configured: anonymous only */
    if (n_authz > 1) {
        req->token_status = TR_TOKEN_MALFORMED;
        return TR_NEXT;
    }

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tr_identity *id = NULL;
    req->token_status = tr_verifier_check(
        svc->verifier, authz ? authz->value : NULL,
        authz ? authz->value_len : 0, ts.tv_sec, tr_now_ns(), &id);
    if (req->token_status == TR_TOKEN_UNKNOWN_KID) {
        size_t issuer;

        /* The issuer may have rotated its keys: wait for one refetch
         * (rate-limited), then this stage runs again. */
        if (tr_verifier_unknown_kid_issuer(svc->verifier, &issuer) &&
            tr_jwks_fetcher_unknown_kid(svc->jwks, issuer, req))
            return TR_AGAIN;
    }
    if (req->token_status != TR_TOKEN_OK)
        return TR_NEXT;

    req->identity = id;
    req->principal = id->sub;
    req->principal_issuer = id->issuer_name;
    req->actor = id->actor;
    req->caller_class = tr_caller_class_name(id->cls);
    req->is_agent = id->cls == TR_CLASS_AGENT;
    req->fair_key = id->principal_key;
    req->fair_key_len = id->principal_key_len;
    return TR_NEXT;
}

/* Runs once the route is known. */
tr_step
tr_stage_enforce_auth(tr_request *req)
{
    tr_auth_mode mode = req->route->auth;
    tr_token_status st = req->token_status;

    if (mode == TR_AUTH_NONE) {
        /* The route is public: whatever token came is not looked at,
         * and nothing identity-derived goes downstream. */
        if (req->identity) {
            tr_identity_unref(req->identity);
            req->identity = NULL;
            req->principal = req->principal_issuer = req->actor = NULL;
            req->caller_class = NULL;
            req->is_agent = false;
            req->fair_key = req->client_addr;
            req->fair_key_len = strlen(req->client_addr);
        }
        return TR_NEXT;
    }
    if (st == TR_TOKEN_OK || (st == TR_TOKEN_MISSING &&
                              mode == TR_AUTH_OPTIONAL))
        return TR_NEXT;

    tr_problem_kind kind = tr_token_status_problem(st);
    const char *name = tr_token_status_name(st);
    const char *err = tr_token_status_bearer_error(st);
    char hdr[256], detail[160];

    req->decision = "deny";
    req->reason = name;
    if (st != TR_TOKEN_MISSING) {
        req->token_refused = true;
        tr_services_note_refused_token(req->client->srv->svc, req, name);
    }
    if (kind == TR_P_TOKEN_MISSING || kind == TR_P_TOKEN_INVALID) {
        if (err)
            snprintf(hdr, sizeof(hdr),
                     "WWW-Authenticate: Bearer error=\"%s\", "
                     "error_description=\"%s\"\r\n", err, name);
        else
            snprintf(hdr, sizeof(hdr), "WWW-Authenticate: Bearer\r\n");
    } else {
        hdr[0] = '\0';
    }
    if (st == TR_TOKEN_MISSING)
        snprintf(detail, sizeof(detail),
                 "this route requires a bearer token");
    else
        snprintf(detail, sizeof(detail),
                 "the bearer token was refused: %s", name);
    tr_respond_problem(req, kind, detail, hdr[0] ? hdr : NULL);
    return TR_STOP;
}

static bool
same_folded(const tr_header *h, const char *lower)
{
    size_t n = strlen(lower);
    if (h->name_len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = h->name[i];
        if (a == '_')
            a = '-';
        if ((a | 0x20) != lower[i] && a != lower[i])
            return false;
    }
    return true;
}

bool
tr_identity_header_is_reserved(const tr_request *req, const tr_header *h)
{
    const tr_server *srv = req->client->srv;
    if (tr_prop_is_identity_header(&srv->cfg->propagation, h->name,
                                   h->name_len))
        return true;
    if (same_folded(h, "authorization")) {
        const tr_upstream_cfg *u =
            &srv->cfg->upstreams[req->route->upstream];
        return u->authorization != TR_UPSTREAM_AUTH_FORWARD;
    }
    return false;
}

static int
append_field(tr_request *req, tr_buf *b, tr_prop_field f)
{
    const tr_propagation_cfg *p = &req->client->srv->cfg->propagation;
    char val[4096];
    size_t len = 0;

    if (tr_prop_value_max(req->identity, f) > sizeof(val))
        return -1;
    if (tr_prop_format(req->identity, f, val, sizeof(val), &len) != 0)
        return -1;
    if (len == 0)
        return 0;
    const char *name = tr_prop_header_name(p, f);
    if (tr_buf_append(b, name, strlen(name), SIZE_MAX) ||
        tr_buf_append(b, ": ", 2, SIZE_MAX) ||
        tr_buf_append(b, val, len, SIZE_MAX) ||
        tr_buf_append(b, "\r\n", 2, SIZE_MAX))
        return -1;
    return 0;
}

int
tr_identity_append_upstream_headers(tr_request *req,
                                    const tr_upstream_cfg *u, tr_buf *b)
{
    if (u->authorization == TR_UPSTREAM_AUTH_REPLACE &&
        u->authorization_value) {
        if (tr_buf_append(b, "Authorization: ", 15, SIZE_MAX) ||
            tr_buf_append(b, u->authorization_value,
                          strlen(u->authorization_value), SIZE_MAX) ||
            tr_buf_append(b, "\r\n", 2, SIZE_MAX))
            return -1;
    }
    if (!req->identity)
        return 0;
    for (int f = 0; f < TR_PROP__COUNT; f++)
        if (append_field(req, b, (tr_prop_field)f) != 0)
            return -1;
    return tr_services_append_txn_token(req->client->srv->svc, req, b);
}
