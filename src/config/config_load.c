/*
 * The configuration loader's driver (config_load.h): read the file, hash
 * it, build the YAML tree, check the top-level keys, then load each
 * section in dependency order (quotas before the tools that charge them,
 * upstreams and tools before the routes that name them).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "core/admission.h"

/* The snapshot and the arena that owns everything in it; tr_config is
 * the first member so tr_config_free() can find the arena. */
typedef struct {
    tr_config cfg;
    tr_arena *arena;
} snapshot;

typedef struct {
    const tr_yaml_node *limits, *upstreams, *identity, *budgets, *quotas,
        *tools, *routes, *audit, *propagation;
} sections;

static void
set_defaults(tr_config *cfg)
{
    tr_limits_cfg *l = &cfg->limits;
    tr_audit_cfg *au = &cfg->audit;
    tr_propagation_cfg *p = &cfg->propagation;
    tr_identity_cfg *id = &cfg->identity;

    cfg->listen_host = "127.0.0.1";
    cfg->listen_port = 8080;

    l->header_bytes = 16384;
    l->header_count = 100;
    l->body_max = 10u << 20;
    l->max_connections = 10000;
    l->max_connections_per_client = 256;
    l->client_header_timeout_ms = 10000;
    l->client_body_timeout_ms = 30000;
    l->client_idle_timeout_ms = 60000;
    l->chunk_ext_max = 256;
    l->drain_timeout_ms = 10000;

    id->token_cache_entries = 10000;
    id->negative_cache_entries = 1024;
    id->negative_cache_s = 10;
    id->cold_verify_per_s = 2000;
    id->max_token_bytes = 8192;

    cfg->budgets.table_capacity = 100000;

    au->enabled = true;
    au->sync = TR_SYNC_NORMAL;
    au->backlog_max = 10000;
    au->reads_fail_open = true;
    au->flush_ms = 200;
    au->checkpoint_every = 1000;
    au->retention_days = 0;

    p->principal_header = "X-Principal";
    p->actor_header = "X-Actor";
    p->chain_header = "X-Delegation-Chain";
    p->class_header = "X-Caller-Class";
    p->txn_token_ttl_s = 300;
    p->txn_token_issuer = "treaty";
    p->txn_token_key_overlap_s = 86400;
}

static void
load_address(tr_cfgx *c, const tr_yaml_node *v, const char *path,
             char **host, uint16_t *port)
{
    char *s, h[256];
    const char *why;

    if (!tr_cfg_str(c, v, path, &s))
        return;
    why = tr_cfg_parse_hostport(s, 0, true, h, sizeof(h), port);
    if (why != NULL) {
        tr_cfg_error(c, v, path, "'%s' is not host:port: %s", s, why);
        return;
    }
    *host = tr_arena_strndup(c->a, h, strlen(h));
}

static void
f_listen(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    load_address(c, v, path, &c->cfg->listen_host, &c->cfg->listen_port);
}

static void
f_admin(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    load_address(c, v, path, &c->cfg->admin_host, &c->cfg->admin_port);
}

static void
f_state_dir(tr_cfgx *c, const tr_yaml_node *v, const char *path, void *obj)
{
    tr_cfg_str(c, v, path, &c->cfg->state_dir);
}

static void
f_access_log(tr_cfgx *c, const tr_yaml_node *v, const char *path,
             void *obj)
{
    tr_cfg_str(c, v, path, &c->cfg->access_log);
}

static void
f_trusted_proxies(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                  void *obj)
{
    tr_config *cfg = c->cfg;
    char ip[TR_CFG_PATH_MAX], hint[64];

    if (!tr_cfg_expect(c, v, path, TR_YAML_SEQ))
        return;
    cfg->trusted_proxies = tr_arena_calloc(c->a, v->n, sizeof(tr_cidr));
    if (cfg->trusted_proxies == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        char *s;
        const char *why;
        tr_cfg_path_index(ip, path, i);
        if (!tr_cfg_str(c, v->items[i], ip, &s))
            continue;
        why = tr_cfg_parse_cidr(s, &cfg->trusted_proxies[
                                       cfg->n_trusted_proxies],
                                hint, sizeof(hint));
        if (why == NULL)
            cfg->n_trusted_proxies++;
        else if (hint[0] != '\0')
            tr_cfg_error(c, v->items[i], ip, "'%s': %s (did you mean "
                         "%s?)", s, why, hint);
        else
            tr_cfg_error(c, v->items[i], ip, "'%s' is not an address or "
                         "CIDR block: %s", s, why);
    }
}

#define SEC(k, m, req) \
    { k, TR_F_NODE, offsetof(sections, m), 0, 0, NULL, NULL, req }

static const tr_field top_fields[] = {
    TR_FIELD_FN("listen", f_listen, false),
    TR_FIELD_FN("admin", f_admin, false),
    TR_FIELD_FN("state_dir", f_state_dir, true),
    TR_FIELD_FN("access_log", f_access_log, false),
    TR_FIELD_FN("trusted_proxies", f_trusted_proxies, false),
    SEC("limits", limits, false),
    SEC("upstreams", upstreams, true),
    SEC("identity", identity, false),
    SEC("budgets", budgets, false),
    SEC("quotas", quotas, false),
    SEC("tools", tools, false),
    SEC("routes", routes, true),
    SEC("audit", audit, false),
    SEC("propagation", propagation, false),
};

static void
load_root(tr_cfgx *c, const tr_yaml_node *root)
{
    sections s = { 0 };
    tr_config *cfg = c->cfg;

    if (root->kind != TR_YAML_MAP) {
        tr_cfg_error(c, root, "", "the configuration must be a mapping of "
                     "sections (listen, upstreams, routes, ...)");
        return;
    }
    tr_cfg_walk(c, root, "", top_fields,
                sizeof(top_fields) / sizeof(top_fields[0]), &s);

    if (cfg->admin_host != NULL && cfg->admin_port != 0 &&
        cfg->admin_port == cfg->listen_port &&
        strcmp(cfg->admin_host, cfg->listen_host) == 0)
        tr_cfg_error(c, root, "admin", "the admin listener must not use "
                     "the same address as listen");

    if (s.limits != NULL)
        tr_cfg_load_limits(c, s.limits);
    if (s.upstreams != NULL)
        tr_cfg_load_upstreams(c, s.upstreams);
    if (s.identity != NULL)
        tr_cfg_load_identity(c, s.identity);
    if (s.budgets != NULL)
        tr_cfg_load_budgets(c, s.budgets);
    if (s.quotas != NULL)
        tr_cfg_load_quotas(c, s.quotas);
    if (s.tools != NULL)
        tr_cfg_load_tools(c, s.tools);
    if (s.routes != NULL)
        tr_cfg_load_routes(c, s.routes);
    if (s.audit != NULL)
        tr_cfg_load_audit(c, s.audit);
    if (s.propagation != NULL)
        tr_cfg_load_propagation(c, s.propagation);

    /* What the limiter would refuse at start-up, `treaty check` reports
     * now.  It assumes a snapshot without the errors above. */
    if (tr_cfg_error_count(c) == 0) {
        const char *why = tr_admission_config_error(cfg);
        const tr_yaml_node *at = s.tools ? s.tools : s.quotas ? s.quotas
                                         : s.budgets ? s.budgets : root;
        if (why != NULL)
            tr_cfg_error(c, at, "", "budgets, quotas and tools: %s", why);
    }
}

static void
yaml_report(void *ud, unsigned line, unsigned column, const char *path,
            const char *message)
{
    tr_cfg_error_at(ud, line, column, path, message);
}

static void
hash_bytes(tr_config *cfg, const char *buf, size_t len)
{
    unsigned int n = 0;

    if (EVP_Digest(buf, len, cfg->hash, &n, EVP_sha256(), NULL) != 1 ||
        n != sizeof(cfg->hash))
        memset(cfg->hash, 0, sizeof(cfg->hash));
    for (size_t i = 0; i < sizeof(cfg->hash); i++)
        snprintf(cfg->hash_hex + 2 * i, 3, "%02x", cfg->hash[i]);
}

tr_config *
tr_config_load_buffer(const char *name, const char *buf, size_t len,
                      tr_config_errors *errs)
{
    snapshot *s = calloc(1, sizeof(*s));
    tr_arena *tree = tr_arena_new();
    tr_cfgx c = { name ? name : "-", errs, errs->n, NULL, NULL };
    const tr_yaml_node *root;

    if (s == NULL || tree == NULL || (s->arena = tr_arena_new()) == NULL) {
        tr_cfg_error(&c, NULL, "", "out of memory");
        goto fail;
    }
    c.a = s->arena;
    c.cfg = &s->cfg;
    set_defaults(&s->cfg);
    s->cfg.file = tr_arena_strndup(s->arena, c.file, strlen(c.file));
    hash_bytes(&s->cfg, buf, len);

    if (len > TR_CONFIG_MAX_BYTES) {
        tr_cfg_error(&c, NULL, "", "file larger than %u bytes",
                     TR_CONFIG_MAX_BYTES);
        goto fail;
    }
    root = tr_yaml_parse(buf, len, tree, yaml_report, &c);
    if (root != NULL)
        load_root(&c, root);
    else if (tr_cfg_error_count(&c) == 0)
        tr_cfg_error_at(&c, 1, 1, "", "the file holds no configuration");
    if (tr_cfg_error_count(&c) > 0)
        goto fail;
    tr_arena_free(tree);
    return &s->cfg;

fail:
    tr_cfg_sort_errors(&c);
    tr_arena_free(tree);
    if (s != NULL)
        tr_arena_free(s->arena);
    free(s);
    return NULL;
}

tr_config *
tr_config_load_file(const char *path, tr_config_errors *errs)
{
    tr_cfgx c = { path, errs, errs->n, NULL, NULL };
    struct stat st;
    tr_config *cfg = NULL;
    char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        tr_cfg_error(&c, NULL, "", "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        tr_cfg_error(&c, NULL, "", "not a regular file");
        goto out;
    }
    if (st.st_size > (off_t)TR_CONFIG_MAX_BYTES) {
        tr_cfg_error(&c, NULL, "", "file larger than %u bytes",
                     TR_CONFIG_MAX_BYTES);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        tr_cfg_error(&c, NULL, "", "out of memory");
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            tr_cfg_error(&c, NULL, "", "cannot read: %s",
                         r < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)r;
    }
    cfg = tr_config_load_buffer(path, buf, got, errs);

out:
    free(buf);
    close(fd);
    return cfg;
}

void
tr_config_free(tr_config *cfg)
{
    snapshot *s = (snapshot *)cfg;

    if (s == NULL)
        return;
    tr_arena_free(s->arena);
    free(s);
}
