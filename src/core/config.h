/*
 * The loaded configuration: one immutable snapshot.
 *
 * Every pointer inside a tr_config points into memory owned by the snapshot
 * and freed by tr_config_free() (src/config/config_load.c).  Nothing changes
 * a snapshot after loading, so a later SIGHUP reload can swap snapshots
 * while old requests keep the one they started with.
 *
 * Durations are milliseconds unless the name says otherwise; rates are per
 * second.  A field documented "-1 = off" is an opt-in rule.
 */
#ifndef TREATY_CORE_CONFIG_H
#define TREATY_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Methods as bits so a route's method set is one word. */
enum {
    TR_M_GET = 1u << 0,
    TR_M_HEAD = 1u << 1,
    TR_M_POST = 1u << 2,
    TR_M_PUT = 1u << 3,
    TR_M_PATCH = 1u << 4,
    TR_M_DELETE = 1u << 5,
    TR_M_OPTIONS = 1u << 6,
    TR_M_PROPFIND = 1u << 7,
    TR_M_PROPPATCH = 1u << 8,
    TR_M_MKCOL = 1u << 9,
    TR_M_MKCALENDAR = 1u << 10,
    TR_M_COPY = 1u << 11,
    TR_M_MOVE = 1u << 12,
    TR_M_REPORT = 1u << 13,
    TR_M_LOCK = 1u << 14,
    TR_M_UNLOCK = 1u << 15,
    TR_M_TRACE = 1u << 16,
    TR_M_CONNECT = 1u << 17,
    TR_M_OTHER = 1u << 31, /* any method treaty has no bit for */
};

/* POST, PUT, PATCH, DELETE and the WebDAV writes (SPEC.md "Terms"). */
#define TR_M_MUTATING_DEFAULT                                              \
    (TR_M_POST | TR_M_PUT | TR_M_PATCH | TR_M_DELETE | TR_M_MKCOL |        \
     TR_M_MKCALENDAR | TR_M_PROPPATCH | TR_M_MOVE | TR_M_COPY)

/* Bit for a method name (case-sensitive, as HTTP methods are); TR_M_OTHER
 * for unknown names.  Defined in src/core/method.c. */
uint32_t tr_method_bit(const char *name, size_t len);
const char *tr_method_name(uint32_t bit);

typedef enum { TR_AUTH_REQUIRED, TR_AUTH_OPTIONAL, TR_AUTH_NONE } tr_auth_mode;

typedef enum {
    TR_IDEM_OFF,
    TR_IDEM_OPTIONAL,
    TR_IDEM_REQUIRED_FOR_AGENTS,
    TR_IDEM_REQUIRED
} tr_idem_mode;

typedef enum {
    TR_PRECOND_OFF,
    TR_PRECOND_REQUIRED_FOR_AGENTS,
    TR_PRECOND_REQUIRED
} tr_precond_mode;

typedef enum { TR_ETAGS_PASSTHROUGH, TR_ETAGS_SYNTHESIZE } tr_etags_mode;

typedef enum {
    TR_UPSTREAM_AUTH_FORWARD,
    TR_UPSTREAM_AUTH_STRIP,
    TR_UPSTREAM_AUTH_REPLACE
} tr_upstream_auth;

typedef enum { TR_ACTOR_PROFILE_ACT, TR_ACTOR_PROFILE_CLIENT } tr_actor_profile;

typedef enum { TR_QUOTA_PER_PRINCIPAL, TR_QUOTA_PER_ALL } tr_quota_scope;

typedef enum { TR_SYNC_NORMAL, TR_SYNC_FULL } tr_sync_level;

/* A list of strings owned by the snapshot. */
typedef struct {
    char **items;
    size_t n;
} tr_strlist;

typedef struct {
    char *name;
    char *url;            /* as written, http://host:port[/base] */
    char *host;           /* parsed from url */
    uint16_t port;
    char *base_path;      /* "" or "/prefix" without trailing slash */
    uint32_t connect_timeout_ms;  /* default 2000 */
    uint32_t response_timeout_ms; /* default 30000: first response byte */
    uint32_t max_connections;     /* default 64 */
    uint32_t idle_timeout_ms;     /* default 4000: below json-server's 5 s */
    tr_upstream_auth authorization; /* default forward */
    char *authorization_file; /* replace: file holding the header value */
    char *authorization_value; /* read from authorization_file at load */
} tr_upstream_cfg;

typedef struct {
    char *name;            /* scopes the principal: (name, sub) */
    char *issuer;          /* expected iss */
    tr_strlist audiences;
    tr_strlist algorithms; /* ES256 RS256 PS256 EdDSA HS256 */
    char *jwks_file;
    char *jwks_url;
    bool jwks_insecure_http;    /* allow http:// jwks_url (tests) */
    uint32_t jwks_refresh_s;    /* default 300 */
    uint32_t jwks_grace_s;      /* stale keys served this long; 3600 */
    uint32_t jwks_min_refetch_s; /* unknown-kid refetch at most this often */
    char *hs256_secret_file;
    uint32_t leeway_s;          /* default 60 */
    tr_actor_profile actor_profile; /* default act */
} tr_issuer_cfg;

typedef struct {
    tr_issuer_cfg *issuers;
    size_t n_issuers;
    tr_strlist agent_clients;
    uint32_t token_cache_entries;  /* default 10000 */
    uint32_t negative_cache_entries; /* default 1024 */
    uint32_t negative_cache_s;      /* default 10 */
    uint32_t cold_verify_per_s;     /* default 2000 */
    uint32_t max_token_bytes;       /* default 8192 */
} tr_identity_cfg;

/* One class (human or agent) of the per-principal budget. */
typedef struct {
    uint32_t concurrency;      /* max in flight; 0 = unlimited */
    uint32_t queue;            /* max waiting */
    uint32_t queue_timeout_ms;
    double rate;               /* per second; 0 = unlimited */
    uint32_t burst;
    bool shadow_concurrency;
    bool shadow_rate;
} tr_budget_class_cfg;

typedef struct {
    tr_budget_class_cfg human;
    tr_budget_class_cfg agent;
    uint32_t table_capacity;   /* limiter keys; default 100000 */
} tr_budgets_cfg;

typedef struct {
    char *name;
    uint32_t limit;            /* burst, in units */
    uint32_t period_s;         /* limit units come back over period_s */
    tr_quota_scope per;
    bool shadow;
} tr_quota_cfg;

typedef struct {
    size_t quota;              /* index into tr_config.quotas */
    uint32_t cost;
} tr_tool_charge;

typedef struct {
    char *name;
    uint32_t rate_cost;        /* default 1 */
    tr_tool_charge *charges;
    size_t n_charges;
} tr_tool_cfg;

typedef struct {
    bool present;              /* a policy block was declared */
    tr_strlist actors;         /* globs over the actor id */
    tr_strlist scopes;         /* all required */
    int max_delegation_depth;  /* -1 = off */
    char *owner_param;         /* NULL = off */
    char *consent_claim;       /* NULL = off */
    bool humans;               /* default true */
    bool shadow;
} tr_policy_cfg;

typedef enum { TR_AMBIGUOUS_PIN, TR_AMBIGUOUS_RELEASE } tr_ambiguous_mode;
typedef enum { TR_CRASH_UNKNOWN, TR_CRASH_REEXECUTE } tr_crash_mode;

typedef struct {
    tr_idem_mode mode;
    uint32_t wait_ms;          /* 0 = answer 409 at once */
    bool canonical_json;
    tr_ambiguous_mode ambiguous;
    tr_crash_mode after_crash;
    uint32_t ttl_s;            /* default 86400 */
    uint32_t storage_cap;      /* bytes of body stored; default 1 MiB */
    bool fail_open;
    bool forward_derived_key;
} tr_idem_cfg;

typedef struct {
    char *name;
    uint32_t methods;          /* TR_M_* bits */
    tr_strlist other_methods;  /* names when TR_M_OTHER is set */
    char *path;                /* template */
    size_t upstream;           /* index into tr_config.upstreams */
    tr_auth_mode auth;
    int32_t tool;              /* index into tr_config.tools, -1 = none */
    tr_idem_cfg idempotency;
    tr_precond_mode preconditions;
    bool require_if_none_match_on_create;
    tr_etags_mode etags;
    uint32_t etag_body_cap;    /* default 1 MiB */
    tr_strlist etag_ignore_fields;
    uint32_t lock_timeout_ms;  /* default 5000 */
    uint64_t body_cap;         /* bytes; default limits.body_max */
    uint32_t mutating;         /* methods counted as mutating here */
    tr_policy_cfg policy;
} tr_route_cfg;

typedef struct {
    bool enabled;              /* default true */
    tr_sync_level sync;        /* default normal */
    uint32_t backlog_max;      /* records queued before fail-closed */
    bool reads_fail_open;      /* reads pass while the store is down */
    uint32_t flush_ms;         /* max trailing delay for non-mutating */
    uint32_t checkpoint_every; /* records; 0 = off */
    char *checkpoint_file;     /* external sink; "-" = stdout */
    char *signing_key_file;
    uint32_t retention_days;   /* 0 = keep */
} tr_audit_cfg;

typedef struct {
    char *principal_header;    /* default X-Principal */
    char *actor_header;        /* default X-Actor */
    char *chain_header;        /* default X-Delegation-Chain */
    char *class_header;        /* default X-Caller-Class */
    bool txn_token;
    uint32_t txn_token_ttl_s;  /* default 300 */
    char *txn_token_key_file;
    char *txn_token_audience;
    char *txn_token_issuer;    /* iss and req_wl; default "treaty" */
    uint32_t txn_token_key_overlap_s; /* retired key stays published
                                       * this long; default 86400 */
} tr_propagation_cfg;

typedef struct {
    uint32_t header_bytes;     /* default 16384 */
    uint32_t header_count;     /* default 100 */
    uint64_t body_max;         /* default 10 MiB */
    uint32_t max_connections;  /* default 10000 */
    uint32_t max_connections_per_client; /* default 256 */
    uint32_t client_header_timeout_ms;   /* default 10000 */
    uint32_t client_body_timeout_ms;     /* default 30000 */
    uint32_t client_idle_timeout_ms;     /* default 60000 */
    uint32_t chunk_ext_max;    /* bytes of chunk extension; default 256 */
    uint32_t drain_timeout_ms; /* SIGTERM grace; default 10000 */
} tr_limits_cfg;

typedef struct {
    uint8_t addr[16];          /* IPv4 mapped into ::ffff:0:0/96 */
    uint8_t prefix;            /* over the 128-bit form */
} tr_cidr;

typedef struct {
    char *file;                /* config path, for messages */
    char *listen_host;
    uint16_t listen_port;
    char *admin_host;          /* NULL = no admin listener */
    uint16_t admin_port;
    char *state_dir;
    char *access_log;          /* path, "-" = stdout, NULL = off */
    tr_cidr *trusted_proxies;
    size_t n_trusted_proxies;

    tr_upstream_cfg *upstreams;
    size_t n_upstreams;
    tr_identity_cfg identity;
    tr_budgets_cfg budgets;
    tr_quota_cfg *quotas;
    size_t n_quotas;
    tr_tool_cfg *tools;
    size_t n_tools;
    tr_route_cfg *routes;
    size_t n_routes;
    tr_audit_cfg audit;
    tr_propagation_cfg propagation;
    tr_limits_cfg limits;

    uint8_t hash[32];          /* SHA-256 of the file bytes */
    char hash_hex[65];
} tr_config;

#endif
