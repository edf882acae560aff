#include <openssl/rand.h>
#include <string.h>

#include "config/keys_load.h"
#include "core/verifier.h"
#include "net/jwks_fetcher.h"
#include "net/log.h"
#include "net/services.h"
#include "net/stage_budget.h"
#include "net/txn_tokens.h"
#include "store/audit_store.h"
#include "store/state_dir.h"

static bool
keys_ready(void *ctx, const char **why)
{
    tr_services *svc = ctx;
    if (svc->verifier && !tr_verifier_ready(svc->verifier)) {
        *why = "signing keys not loaded";
        return false;
    }
    return true;
}

static int
start_identity(tr_services *svc)
{
    const tr_config *cfg = svc->srv->cfg;
    char err[512];
    uint64_t seed;

    if (cfg->identity.n_issuers == 0)
        return 0;
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        return -1;
    svc->verifier = tr_verifier_new(&cfg->identity, seed, err, sizeof(err));
    if (!svc->verifier) {
        tr_log(TR_LOG_ERROR, "identity_failed", "error=\"%s\"", err);
        return -1;
    }
    if (tr_keys_load_files(svc->verifier, &cfg->identity, svc->srv->dev,
                           err, sizeof(err)) != 0) {
        tr_log(TR_LOG_ERROR, "keys_failed", "error=\"%s\"", err);
        return -1;
    }
    if (tr_verifier_has_dev_key(svc->verifier))
        tr_log(TR_LOG_WARN, "dev_keys_in_use",
               "note=\"development keys accepted (--dev); never in "
               "production\"");
    tr_server_add_ready_check(svc->srv, keys_ready, svc);
    return 0;
}

static bool
audit_ready(void *ctx, const char **why)
{
    tr_services *svc = ctx;
    if (svc->audit && !tr_audit_available(svc->audit)) {
        *why = "audit store unavailable";
        return false;
    }
    return true;
}

static void
render_audit_metrics(void *ctx, tr_buf *out)
{
    tr_services *svc = ctx;
    tr_audit_stats s;
    char line[1024];

    tr_audit_get_stats(svc->audit, &s);
    int n = snprintf(line, sizeof(line),
        "# TYPE treaty_audit_records_total counter\n"
        "treaty_audit_records_total %llu\n"
        "# TYPE treaty_audit_batches_total counter\n"
        "treaty_audit_batches_total %llu\n"
        "# TYPE treaty_audit_batch_failures_total counter\n"
        "treaty_audit_batch_failures_total %llu\n"
        "# TYPE treaty_audit_dropped_total counter\n"
        "treaty_audit_dropped_total %llu\n"
        "# TYPE treaty_audit_fail_closed_total counter\n"
        "treaty_audit_fail_closed_total %llu\n"
        "# TYPE treaty_audit_reads_unaudited_total counter\n"
        "treaty_audit_reads_unaudited_total %llu\n"
        "# TYPE treaty_audit_refused_tokens_total counter\n"
        "treaty_audit_refused_tokens_total %llu\n"
        "# TYPE treaty_audit_backlog gauge\n"
        "treaty_audit_backlog %zu\n"
        "# TYPE treaty_audit_available gauge\n"
        "treaty_audit_available %d\n",
        (unsigned long long)s.records_written,
        (unsigned long long)s.batches,
        (unsigned long long)s.batch_failures,
        (unsigned long long)s.records_dropped,
        (unsigned long long)s.admit_refusals,
        (unsigned long long)s.reads_unaudited,
        (unsigned long long)s.refused_tokens, s.backlog,
        s.available ? 1 : 0);
    if (n > 0)
        tr_buf_append(out, line, (size_t)n, SIZE_MAX);
    n = snprintf(line, sizeof(line),
        "# TYPE treaty_audit_checkpoints_total counter\n"
        "treaty_audit_checkpoints_total %llu\n"
        "# TYPE treaty_audit_checkpoint_failures_total counter\n"
        "treaty_audit_checkpoint_failures_total %llu\n"
        "# TYPE treaty_audit_sink_failures_total counter\n"
        "treaty_audit_sink_failures_total %llu\n"
        "# TYPE treaty_audit_sink_dropped_total counter\n"
        "treaty_audit_sink_dropped_total %llu\n"
        "# TYPE treaty_audit_records_pruned_total counter\n"
        "treaty_audit_records_pruned_total %llu\n"
        "# TYPE treaty_audit_prune_refusals_total counter\n"
        "treaty_audit_prune_refusals_total %llu\n",
        (unsigned long long)s.checkpoints,
        (unsigned long long)s.checkpoint_failures,
        (unsigned long long)s.sink_failures,
        (unsigned long long)s.sink_dropped,
        (unsigned long long)s.records_pruned,
        (unsigned long long)s.prune_refusals);
    if (n > 0)
        tr_buf_append(out, line, (size_t)n, SIZE_MAX);
}

static int
start_state(tr_services *svc)
{
    const tr_config *cfg = svc->srv->cfg;
    char err[512], note[512];

    if (!cfg->state_dir)
        return 0;
    svc->state_dir = tr_state_dir_open(cfg->state_dir, note, sizeof(note),
                                       err, sizeof(err));
    if (!svc->state_dir) {
        tr_log(TR_LOG_ERROR, "state_dir_refused", "error=\"%s\"", err);
        return -1;
    }
    if (note[0])
        tr_log(TR_LOG_WARN, "state_dir_fixed", "note=\"%s\"", note);
    if (!cfg->audit.enabled)
        return 0;
    svc->audit = tr_audit_open(svc->srv->loop, cfg->state_dir, &cfg->audit,
                               err, sizeof(err));
    if (!svc->audit) {
        tr_log(TR_LOG_ERROR, "audit_open_failed", "error=\"%s\"", err);
        return -1;
    }
    tr_server_add_ready_check(svc->srv, audit_ready, svc);
    tr_metrics_add_renderer(render_audit_metrics, svc);
    return 0;
}

int
tr_services_start(tr_services *svc, tr_server *srv)
{
    memset(svc, 0, sizeof(*svc));
    svc->srv = srv;
    srv->svc = svc;
    if (start_state(svc) != 0)
        return -1;
    if (start_identity(svc) != 0)
        return -1;
    if (tr_jwks_fetcher_start(srv, svc->verifier, &svc->jwks) != 0)
        return -1;
    if (tr_txn_tokens_start(srv, &svc->txn) != 0)
        return -1;
    if (tr_idem_service_start(svc) != 0)
        return -1;
    svc->budget = tr_budget_svc_start(srv);
    if (!svc->budget)
        return -1;
    return 0;
}

void
tr_services_stop(tr_services *svc)
{
    tr_jwks_fetcher_stop(svc->jwks);
    svc->jwks = NULL;
    tr_txn_tokens_stop(svc->txn);
    svc->txn = NULL;
    tr_budget_svc_stop(svc->budget);
    svc->budget = NULL;
    tr_idem_service_stop(svc);
    /* The audit store drains and commits what is queued before the
     * state_dir lock goes: nothing acknowledged is lost on SIGTERM. */
    tr_audit_close(svc->audit);
    svc->audit = NULL;
    uv_run(svc->srv->loop, UV_RUN_NOWAIT);
    tr_state_dir_close(svc->state_dir);
    svc->state_dir = NULL;
    if (svc->verifier)
        tr_verifier_free(svc->verifier);
    svc->verifier = NULL;
}

void
tr_services_note_refused_token(tr_services *svc, tr_request *req,
                               const char *reason)
{
    if (svc && svc->audit)
        tr_audit_note_refused_token(svc->audit, tr_wall_ms(),
                                    req->client_addr, reason);
}
