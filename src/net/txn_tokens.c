#include "net/txn_tokens.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/identity.h"
#include "core/txn_token.h"
#include "net/log.h"
#include "net/services.h"
#include "store/gateway_keys.h"

/* Eight Ed25519 JWKs of ~170 bytes each fit several times over. */
#define JWKS_CAP 8192

/*
 * Known shortcoming: the gateway keys and the served JWKS are read once
 * at start; a rotated key takes effect at the next restart.
 *
 * An Ed25519 signature costs about 45 us: on the loop it would stall every
 * other connection for that long per forwarded request.  Tokens are
 * therefore signed on a thread of their own.  A job carries copies of
 * what the token needs (the identity is reference counted and immutable),
 * so the request may end meanwhile: its job is then orphaned and freed
 * when it comes back.
 */
typedef struct mint_job {
    struct mint_job *next;
    tr_request *req;           /* NULL once the request gave up */
    tr_identity *id;
    char request_id[33];
    char client_addr[48];
    char method[32];
    const char *route;
    const tr_strlist *scopes;
    int64_t now;
    int rc;
    size_t len;
    char token[TR_TXN_TOKEN_BUF];
} mint_job;

struct tr_txn_tokens {
    tr_gateway_keys keys;      /* keys[0] signs; used by the thread only */
    tr_txn_token_opts opts;
    char *jwks;                /* the published document */
    size_t jwks_len;
    uint64_t minted;
    uint64_t failures;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mint_job *todo_head, *todo_tail;  /* loop -> thread */
    mint_job *done;                   /* thread -> loop */
    bool stop;
    uv_async_t async;
    uv_loop_t *loop;
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

static void *
signer_main(void *arg)
{
    tr_txn_tokens *t = arg;

    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->todo_head && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        if (!t->todo_head)
            break;
        mint_job *job = t->todo_head;
        t->todo_head = job->next;
        if (!t->todo_head)
            t->todo_tail = NULL;
        pthread_mutex_unlock(&t->mu);

        tr_txn_token_req r = {
            .id = job->id,
            .request_id = job->request_id,
            .client_addr = job->client_addr[0] ? job->client_addr : NULL,
            .route = job->route,
            .method = job->method[0] ? job->method : NULL,
            .scopes = job->scopes,
            .now = job->now,
        };
        job->rc = tr_txn_token_mint(&t->opts, &t->keys.keys[0], &r,
                                    job->token, sizeof(job->token),
                                    &job->len);

        pthread_mutex_lock(&t->mu);
        job->next = t->done;
        t->done = job;
        uv_async_send(&t->async);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void
free_job(mint_job *job)
{
    tr_identity_unref(job->id);
    free(job);
}

static void
on_minted(uv_async_t *a)
{
    tr_txn_tokens *t = a->data;

    pthread_mutex_lock(&t->mu);
    mint_job *list = t->done;
    t->done = NULL;
    pthread_mutex_unlock(&t->mu);

    while (list) {
        mint_job *job = list;
        list = job->next;
        tr_request *req = job->req;
        if (!req) {
            free_job(job);  /* the request ended while it was signed */
            continue;
        }
        req->txn_job = NULL;
        if (job->rc != TR_TXN_OK) {
            t->failures++;
            tr_log(TR_LOG_WARN, "txn_token_mint_failed",
                   "request_id=%s rc=%d", job->request_id, job->rc);
            free_job(job);
            tr_respond_problem(req, TR_P_INTERNAL,
                               "the transaction token could not be minted",
                               NULL);
            continue;
        }
        t->minted++;
        req->txn_token = job;  /* appended upstream, freed at release */
        tr_pipeline_continue(req);  /* re-enters the stage: TR_NEXT */
    }
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
    t->loop = srv->loop;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    uv_async_init(srv->loop, &t->async, on_minted);
    t->async.data = t;
    if (pthread_create(&t->thread, NULL, signer_main, t) != 0) {
        tr_log(TR_LOG_ERROR, "txn_token_failed",
               "error=\"cannot start the signing thread\"");
        uv_close((uv_handle_t *)&t->async, NULL);
        tr_txn_tokens_stop(t);
        return -1;
    }
    t->thread_started = true;
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
    if (t->thread_started) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
        uv_close((uv_handle_t *)&t->async, NULL);
        uv_run(t->loop, UV_RUN_NOWAIT);
        for (mint_job *j = t->done; j;) {
            mint_job *next = j->next;
            free_job(j);
            j = next;
        }
        for (mint_job *j = t->todo_head; j;) {
            mint_job *next = j->next;
            free_job(j);
            j = next;
        }
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
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

tr_step
tr_txn_tokens_stage(tr_txn_tokens *t, tr_request *req)
{
    if (!t || !req->identity || req->txn_token)
        return TR_NEXT;
    mint_job *job = calloc(1, sizeof(*job));
    if (!job) {
        tr_respond_problem(req, TR_P_INTERNAL, "out of memory", NULL);
        return TR_STOP;
    }
    const tr_route_cfg *route = req->route;
    job->req = req;
    job->id = tr_identity_ref(req->identity);
    snprintf(job->request_id, sizeof(job->request_id), "%s", req->id);
    snprintf(job->client_addr, sizeof(job->client_addr), "%s",
             req->client_addr);
    const char *m = method_name(req, job->method, sizeof(job->method));
    if (m && m != job->method)
        snprintf(job->method, sizeof(job->method), "%s", m);
    job->route = route ? route->name : NULL;
    job->scopes = route && route->policy.present ? &route->policy.scopes
                                                 : NULL;
    /* iat: when the request arrived; no second clock read. */
    job->now = req->start_ms_wall / 1000;
    req->txn_job = job;

    pthread_mutex_lock(&t->mu);
    if (t->todo_tail)
        t->todo_tail->next = job;
    else
        t->todo_head = job;
    t->todo_tail = job;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return TR_AGAIN;
}

void
tr_txn_tokens_release(tr_request *req)
{
    if (req->txn_job) {
        /* Still being signed: the loop frees it when it comes back. */
        ((mint_job *)req->txn_job)->req = NULL;
        req->txn_job = NULL;
    }
    if (req->txn_token) {
        free_job(req->txn_token);
        req->txn_token = NULL;
    }
}

int
tr_txn_tokens_append(tr_txn_tokens *t, tr_request *req, tr_buf *b)
{
    const mint_job *job = req->txn_token;
    if (!t || !job)
        return 0;
    if (tr_buf_append(b, TR_TXN_TOKEN_HEADER ": ",
                      sizeof(TR_TXN_TOKEN_HEADER ": ") - 1, SIZE_MAX) ||
        tr_buf_append(b, job->token, job->len, SIZE_MAX) ||
        tr_buf_append(b, "\r\n", 2, SIZE_MAX))
        return -1;
    return 0;
}

int
tr_services_append_txn_token(tr_services *svc, tr_request *req, tr_buf *b)
{
    return tr_txn_tokens_append(svc ? svc->txn : NULL, req, b);
}
