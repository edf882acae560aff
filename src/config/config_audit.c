/* The `audit:` section: the audit trail's durability and checkpoints. */
#include "config/config_internal.h"

static const tr_cfg_enum sync_names[] = {
    { "normal", TR_SYNC_NORMAL },
    { "full", TR_SYNC_FULL },
    { NULL, 0 },
};

#define A(k, t, m, lo, hi) TR_FIELD(k, t, tr_audit_cfg, m, lo, hi)

static const tr_field fields[] = {
    A("enabled", TR_F_BOOL, enabled, 0, 0),
    TR_FIELD_ENUM("sync", tr_audit_cfg, sync, sync_names),
    A("backlog_max", TR_F_U32, backlog_max, 1, 10000000),
    A("reads_fail_open", TR_F_BOOL, reads_fail_open, 0, 0),
    A("flush_ms", TR_F_U32, flush_ms, 0, 60000),
    A("checkpoint_every", TR_F_U32, checkpoint_every, 0, 100000000),
    A("checkpoint_file", TR_F_STR, checkpoint_file, 0, 0),
    A("signing_key_file", TR_F_STR, signing_key_file, 0, 0),
    A("retention_days", TR_F_U32, retention_days, 0, 36500),
};

void
tr_cfg_load_audit(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_cfg_walk(c, v, "audit", fields, sizeof(fields) / sizeof(fields[0]),
                &c->cfg->audit);
}
