/* The `limits:` section: client-side caps and timeouts. */
#include "config/config_internal.h"

#define U32(k, m, lo, hi) TR_FIELD(k, TR_F_U32, tr_limits_cfg, m, lo, hi)

static const tr_field fields[] = {
    U32("header_bytes", header_bytes, 1024, 1 << 20),
    U32("header_count", header_count, 8, 256),
    TR_FIELD("body_max", TR_F_U64, tr_limits_cfg, body_max, 0,
             (int64_t)1 << 40),
    U32("max_connections", max_connections, 1, 1000000),
    U32("max_connections_per_client", max_connections_per_client, 1,
        1000000),
    U32("client_header_timeout_ms", client_header_timeout_ms, 100,
        3600000),
    U32("client_body_timeout_ms", client_body_timeout_ms, 100, 3600000),
    U32("client_idle_timeout_ms", client_idle_timeout_ms, 100, 3600000),
    U32("chunk_ext_max", chunk_ext_max, 0, 4096),
    U32("drain_timeout_ms", drain_timeout_ms, 0, 3600000),
};

void
tr_cfg_load_limits(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_limits_cfg *l = &c->cfg->limits;

    tr_cfg_walk(c, v, "limits", fields, sizeof(fields) / sizeof(fields[0]),
                l);
    if (l->max_connections_per_client > l->max_connections)
        tr_cfg_error(c, tr_cfg_find(v, "max_connections_per_client") != v
                            ? tr_cfg_find(v, "max_connections_per_client")
                            : tr_cfg_find(v, "max_connections"),
                     "limits.max_connections_per_client",
                     "%u is above limits.max_connections (%u)",
                     l->max_connections_per_client, l->max_connections);
}
