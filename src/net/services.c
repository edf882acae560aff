#include <openssl/rand.h>
#include <string.h>

#include "config/keys_load.h"
#include "core/verifier.h"
#include "net/log.h"
#include "net/services.h"
#include "net/stage_budget.h"

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

int
tr_services_start(tr_services *svc, tr_server *srv)
{
    memset(svc, 0, sizeof(*svc));
    svc->srv = srv;
    srv->svc = svc;
    if (start_identity(svc) != 0)
        return -1;
    svc->budget = tr_budget_svc_start(srv);
    if (!svc->budget)
        return -1;
    return 0;
}

void
tr_services_stop(tr_services *svc)
{
    tr_budget_svc_stop(svc->budget);
    svc->budget = NULL;
    if (svc->verifier)
        tr_verifier_free(svc->verifier);
    svc->verifier = NULL;
}

void
tr_services_note_refused_token(tr_services *svc, tr_request *req,
                               const char *reason)
{
}

int
tr_services_append_txn_token(tr_services *svc, tr_request *req, tr_buf *b)
{
    return 0;
}
