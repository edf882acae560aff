#include "net/txn_tokens.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/txn_token.h"
#include "net/log.h"
#include "net/services.h"
#include "store/gateway_keys.h"

/* Eight Ed25519 JWKs of ~170 bytes each fit several times over. */
#define JWKS_CAP 8192

struct tr_txn_tokens {
    tr_gateway_keys keys;      /* keys[0] signs */
    tr_txn_token_opts opts;
    char *jwks;                /* the published document */
    size_t jwks_len;
    uint64_t minted;
    uint64_t failures;
};

static bool
serve_jwks(void *ctx, const char *path, int *status, const char **ctype,
           tr_buf *body)
{
    const tr_txn_tokens *t = ctx;

    if (strcmp(path, TR_TXN_JWKS_PATH) != 0)
        return false;
    *status = 200;
    *ctype = "application/jwk-set+json";
    tr_buf_append(body, t->jwks, t->jwks_len, SIZE_MAX);
    return true;
}

static void
render_metrics(void *ctx, tr_buf *out)
{
    const tr_txn_tokens *t = ctx;
    char text[512];
    int n = snprintf(text, sizeof(text),
                     "# HELP treaty_txn_tokens_minted_total Txn-Tokens sent "
                     "upstream.\n"
                     "# TYPE treaty_txn_tokens_minted_total counter\n"
                     "treaty_txn_tokens_minted_total %llu\n"
                     "# HELP treaty_txn_token_failures_total Requests "
                     "failed because no Txn-Token could be minted.\n"
                     "# TYPE treaty_txn_token_failures_total counter\n"
                     "treaty_txn_token_failures_total %llu\n",
                     (unsigned long long)t->minted,
                     (unsigned long long)t->failures);

    if (n > 0 && (size_t)n < sizeof(text))
        tr_buf_append(out, text, (size_t)n, SIZE_MAX);
}

static int
load_keys(const tr_config *cfg, tr_gateway_keys *keys, char *err,
          size_t errlen)
{
    const tr_propagation_cfg *p = &cfg->propagation;
    char dir[PATH_MAX];
    int n;

    if (p->txn_token_key_file)
        return tr_gateway_keys_load_file(p->txn_token_key_file, keys, err,
                                         errlen);
    if (!cfg->state_dir) {
        snprintf(err, errlen, "propagation.txn_token needs state_dir (for "
                 "txn-keys/) or propagation.txn_token_key_file");
        return -1;
    }
    n = snprintf(dir, sizeof(dir), "%s/%s", cfg->state_dir,
                 TR_GATEWAY_KEYS_DIR);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        snprintf(err, errlen, "state_dir path too long");
        return -1;
    }
    return tr_gateway_keys_load(dir, (int64_t)time(NULL),
                                p->txn_token_key_overlap_s, true, keys, err,
                                errlen);
}

int
tr_txn_tokens_start(tr_server *srv, tr_txn_tokens **out)
{
    const tr_propagation_cfg *p = &srv->cfg->propagation;
    tr_txn_tokens *t;
    char err[512];
    int rc;

    *out = NULL;
    if (!p->txn_token)
        return 0;
    if (!p->txn_token_audience || !*p->txn_token_audience) {
        tr_log(TR_LOG_ERROR, "txn_token_failed", "error=\"propagation."
               "txn_token needs txn_token_audience (the backends' trust "
               "domain)\"");
        return -1;
    }
    t = calloc(1, sizeof(*t));
    if (!t || !(t->jwks = malloc(JWKS_CAP))) {
        free(t);
        return -1;
    }
    if (load_keys(srv->cfg, &t->keys, err, sizeof(err)) != 0) {
        char quoted[600];

        tr_log(TR_LOG_ERROR, "txn_token_failed", "error=%s",
               tr_log_quote(quoted, sizeof(quoted), err, strlen(err)));
        free(t->jwks);
        free(t);
        return -1;
    }
    rc = tr_txn_jwks(t->keys.keys, t->keys.n, t->jwks, JWKS_CAP,
                     &t->jwks_len);
    if (rc != TR_TXN_OK) {
        tr_log(TR_LOG_ERROR, "txn_token_failed", "error=\"cannot build "
               "the JWKS (%d)\"", rc);
        tr_txn_tokens_stop(t);
        return -1;
    }
    t->opts.issuer = p->txn_token_issuer ? p->txn_token_issuer
                                         : TR_TXN_DEFAULT_ISSUER;
    t->opts.audience = p->txn_token_audience;
    t->opts.ttl_s = p->txn_token_ttl_s;
    tr_admin_add_handler(serve_jwks, t);
    tr_metrics_add_renderer(render_metrics, t);
    tr_log(TR_LOG_INFO, "txn_tokens_ready",
           "kid=%s published=%zu next=%zu ttl_s=%u source=%s",
           t->keys.keys[0].kid, t->keys.n, t->keys.n_next,
           p->txn_token_ttl_s ? p->txn_token_ttl_s
                              : TR_TXN_TOKEN_DEFAULT_TTL_S,
           p->txn_token_key_file ? "key_file" : "state_dir");
    if (!srv->cfg->admin_host)
        tr_log(TR_LOG_WARN, "txn_token_jwks_unserved",
               "note=\"no admin listener: backends cannot fetch "
               TR_TXN_JWKS_PATH "\"");
    *out = t;
    return 0;
}

void
tr_txn_tokens_stop(tr_txn_tokens *t)
{
    if (!t)
        return;
    tr_gateway_keys_free(&t->keys);
    free(t->jwks);
    free(t);
}

/* The method as a NUL-terminated name (req->method is a span). */
static const char *
method_name(const tr_request *req, char *buf, size_t cap)
{
    const char *known = tr_method_name(req->method_bit);

    if (known)
        return known;
    if (req->method_len == 0 || req->method_len >= cap)
        return NULL;
    memcpy(buf, req->method, req->method_len);
    buf[req->method_len] = '\0';
    return buf;
}

int
tr_txn_tokens_append(tr_txn_tokens *t, tr_request *req, tr_buf *b)
{
    char tok[TR_TXN_TOKEN_BUF], method[32];
    const tr_route_cfg *route = req->route;
    size_t len = 0;
    int rc;

    if (!t || !req->identity)
        return 0;
    tr_txn_token_req r = {
        .id = req->identity,
        .request_id = req->id,
        .client_addr = req->client_addr[0] ? req->client_addr : NULL,
        .route = route ? route->name : NULL,
        .method = method_name(req, method, sizeof(method)),
        .scopes = route && route->policy.present ? &route->policy.scopes
                                                 : NULL,
        /* iat: when the request arrived; no second clock read. */
        .now = req->start_ms_wall / 1000,
    };
    rc = tr_txn_token_mint(&t->opts, &t->keys.keys[0], &r, tok, sizeof(tok),
                           &len);
    if (rc != TR_TXN_OK) {
        t->failures++;
        tr_log(TR_LOG_WARN, "txn_token_mint_failed", "request_id=%s rc=%d",
               req->id, rc);
        return -1;
    }
    if (tr_buf_append(b, TR_TXN_TOKEN_HEADER ": ",
                      sizeof(TR_TXN_TOKEN_HEADER ": ") - 1, SIZE_MAX) ||
        tr_buf_append(b, tok, len, SIZE_MAX) ||
        tr_buf_append(b, "\r\n", 2, SIZE_MAX))
        return -1;
    t->minted++;
    return 0;
}

int
tr_services_append_txn_token(tr_services *svc, tr_request *req, tr_buf *b)
{
    return tr_txn_tokens_append(svc ? svc->txn : NULL, req, b);
}
