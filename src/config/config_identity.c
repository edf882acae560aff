/*
 * The `identity:` section: the token issuers treaty trusts (RFC 8725
 * rules: an explicit algorithm list per issuer, keys from a JWKS, HMAC
 * only with a secret file) and the verification caches.
 *
 * The loader checks key file names only (it also runs under the fuzzer);
 * whether jwks_file and hs256_secret_file hold usable keys is checked by
 * keys_load.c, which `treaty check` and `treaty serve` both call.
 */
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

static const tr_cfg_enum profile_names[] = {
    { "act", TR_ACTOR_PROFILE_ACT },
    { "client", TR_ACTOR_PROFILE_CLIENT },
    { NULL, 0 },
};

static const char *const algorithms[] = {
    "ES256", "RS256", "PS256", "EdDSA", "HS256",
};

#define I(k, t, m, lo, hi) TR_FIELD(k, t, tr_issuer_cfg, m, lo, hi)

static const tr_field issuer_fields[] = {
    TR_FIELD_REQ("name", TR_F_STR, tr_issuer_cfg, name, 0, 0),
    TR_FIELD_REQ("issuer", TR_F_STR, tr_issuer_cfg, issuer, 0, 0),
    TR_FIELD_REQ("audiences", TR_F_STRLIST, tr_issuer_cfg, audiences, 0, 0),
    TR_FIELD_REQ("algorithms", TR_F_STRLIST, tr_issuer_cfg, algorithms, 0,
                 0),
    I("jwks_file", TR_F_STR, jwks_file, 0, 0),
    I("jwks_url", TR_F_STR, jwks_url, 0, 0),
    I("jwks_insecure_http", TR_F_BOOL, jwks_insecure_http, 0, 0),
    I("jwks_refresh_s", TR_F_U32, jwks_refresh_s, 1, 86400),
    I("jwks_grace_s", TR_F_U32, jwks_grace_s, 0, 604800),
    I("jwks_min_refetch_s", TR_F_U32, jwks_min_refetch_s, 0, 86400),
    I("hs256_secret_file", TR_F_STR, hs256_secret_file, 0, 0),
    I("leeway_s", TR_F_U32, leeway_s, 0, 600),
    TR_FIELD_ENUM("actor_profile", tr_issuer_cfg, actor_profile,
                  profile_names),
};

/* Checks the algorithm list; returns whether it holds HS256 and whether
 * it holds an algorithm verified with public keys. */
static void
check_algorithms(tr_cfgx *c, const tr_yaml_node *body, const char *kp,
                 const tr_issuer_cfg *is, bool *hs, bool *asym)
{
    const tr_yaml_node *list = tr_cfg_find(body, "algorithms");
    char ap[TR_CFG_PATH_MAX], lp[TR_CFG_PATH_MAX];

    tr_cfg_path_key(lp, kp, "algorithms");
    *hs = *asym = false;
    if (list->kind == TR_YAML_SEQ && list->n == 0)
        tr_cfg_error(c, list, lp, "at least one algorithm is needed");
    for (size_t i = 0; i < is->algorithms.n; i++) {
        const char *a = is->algorithms.items[i];
        const tr_yaml_node *at = list->kind == TR_YAML_SEQ && i < list->n
                                     ? list->items[i] : list;
        size_t k;
        tr_cfg_path_index(ap, lp, i);
        for (k = 0; k < sizeof(algorithms) / sizeof(algorithms[0]); k++)
            if (strcmp(a, algorithms[k]) == 0)
                break;
        if (strcasecmp(a, "none") == 0) {
            tr_cfg_error(c, at, ap, "'none' (unsigned tokens) is never "
                         "accepted");
        } else if (k == sizeof(algorithms) / sizeof(algorithms[0])) {
            tr_cfg_error(c, at, ap, "unknown algorithm '%s': use ES256, "
                         "RS256, PS256, EdDSA or HS256", a);
        } else if (strcmp(a, "HS256") == 0) {
            *hs = true;
        } else {
            *asym = true;
        }
    }
}

static void
check_keys(tr_cfgx *c, const tr_yaml_node *body, const char *kp,
           const tr_issuer_cfg *is, bool hs, bool asym)
{
    char p[TR_CFG_PATH_MAX];

    tr_cfg_path_key(p, kp, "hs256_secret_file");
    if (hs && is->hs256_secret_file == NULL)
        tr_cfg_error(c, tr_cfg_find(body, "algorithms"), p, "HS256 needs "
                     "hs256_secret_file (a file of at least 32 bytes)");
    if (!hs && is->hs256_secret_file != NULL)
        tr_cfg_error(c, tr_cfg_find(body, "hs256_secret_file"), p,
                     "hs256_secret_file is used only with algorithm "
                     "HS256");

    tr_cfg_path_key(p, kp, "jwks_file");
    if (is->jwks_file != NULL && is->jwks_url != NULL)
        tr_cfg_error(c, tr_cfg_find(body, "jwks_url"), p, "give jwks_file "
                     "or jwks_url, not both");
    else if (asym && is->jwks_file == NULL && is->jwks_url == NULL)
        tr_cfg_error(c, body, p, "public-key algorithms need jwks_file or "
                     "jwks_url");
    else if (!asym && (is->jwks_file != NULL || is->jwks_url != NULL))
        tr_cfg_error(c, body, p, "a JWKS is used only with public-key "
                     "algorithms (ES256, RS256, PS256, EdDSA)");

    tr_cfg_path_key(p, kp, "jwks_url");
    if (is->jwks_url != NULL) {
        const char *u = is->jwks_url;
        const tr_yaml_node *at = tr_cfg_find(body, "jwks_url");
        bool https = strncasecmp(u, "https://", 8) == 0 && u[8] != '\0';
        bool http = strncasecmp(u, "http://", 7) == 0 && u[7] != '\0';
        if (http && !is->jwks_insecure_http)
            tr_cfg_error(c, at, p, "jwks_url must use https:// (set "
                         "jwks_insecure_http: true only for tests)");
        else if (!https && !http)
            tr_cfg_error(c, at, p, "jwks_url must be an https:// URL");
    }
}

static void
load_issuers(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_identity_cfg *id = &c->cfg->identity;
    char kp[TR_CFG_PATH_MAX], np[TR_CFG_PATH_MAX];

    if (!tr_cfg_expect(c, v, "identity.issuers", TR_YAML_SEQ) ||
        !tr_cfg_max_entries(c, v, "identity.issuers", TR_CFG_MAX_NAMED))
        return;
    id->issuers = tr_arena_calloc(c->a, v->n, sizeof(tr_issuer_cfg));
    if (id->issuers == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        const tr_yaml_node *body = v->items[i];
        tr_issuer_cfg *is = &id->issuers[id->n_issuers];
        bool hs, asym;

        tr_cfg_path_index(kp, "identity.issuers", i);
        is->jwks_refresh_s = 300;
        is->jwks_grace_s = 3600;
        is->jwks_min_refetch_s = 30;
        is->leeway_s = 60;
        is->actor_profile = TR_ACTOR_PROFILE_ACT;
        tr_cfg_walk(c, body, kp, issuer_fields,
                    sizeof(issuer_fields) / sizeof(issuer_fields[0]), is);
        if (is->name == NULL)
            continue;
        tr_cfg_path_key(np, kp, "name");
        const tr_yaml_node *nn = tr_cfg_find(body, "name");
        if (!tr_cfg_name(c, nn, np, is->name))
            continue;
        for (size_t j = 0; j < id->n_issuers; j++) {
            if (strcmp(id->issuers[j].name, is->name) == 0)
                tr_cfg_error(c, nn, np, "issuer name '%s' is already used "
                             "by identity.issuers[%zu]", is->name, j);
            /* One iss must map to one issuer, or a token's principal
             * would depend on which entry is tried first. */
            if (is->issuer != NULL && id->issuers[j].issuer != NULL &&
                strcmp(id->issuers[j].issuer, is->issuer) == 0) {
                char ip[TR_CFG_PATH_MAX];
                tr_cfg_path_key(ip, kp, "issuer");
                tr_cfg_error(c, tr_cfg_find(body, "issuer"), ip, "issuer "
                             "'%s' is already configured by "
                             "identity.issuers[%zu]", is->issuer, j);
            }
        }
        if (is->audiences.n == 0 &&
            tr_cfg_find(body, "audiences")->kind == TR_YAML_SEQ) {
            tr_cfg_path_key(np, kp, "audiences");
            tr_cfg_error(c, tr_cfg_find(body, "audiences"), np,
                         "at least one audience is needed");
        }
        check_algorithms(c, body, kp, is, &hs, &asym);
        check_keys(c, body, kp, is, hs, asym);
        id->n_issuers++;
    }
}

static void
f_issuers(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    load_issuers(c, v);
}

#define D(k, t, m, lo, hi) TR_FIELD(k, t, tr_identity_cfg, m, lo, hi)

static const tr_field fields[] = {
    TR_FIELD_FN("issuers", f_issuers, false),
    D("agent_clients", TR_F_STRLIST, agent_clients, 0, 0),
    D("token_cache_entries", TR_F_U32, token_cache_entries, 0, 10000000),
    D("negative_cache_entries", TR_F_U32, negative_cache_entries, 0,
      10000000),
    D("negative_cache_s", TR_F_U32, negative_cache_s, 0, 3600),
    D("cold_verify_per_s", TR_F_U32, cold_verify_per_s, 0, 1000000),
    D("max_token_bytes", TR_F_U32, max_token_bytes, 256, 65536),
};

void
tr_cfg_load_identity(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_cfg_walk(c, v, "identity", fields, sizeof(fields) / sizeof(fields[0]),
                &c->cfg->identity);
}
