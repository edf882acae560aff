/*
 * The `propagation:` section: which headers carry the verified identity
 * to the upstream, and the optional Transaction Token.
 */
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

#define P(k, t, m, lo, hi) TR_FIELD(k, t, tr_propagation_cfg, m, lo, hi)

static const tr_field fields[] = {
    P("principal_header", TR_F_STR, principal_header, 0, 0),
    P("actor_header", TR_F_STR, actor_header, 0, 0),
    P("chain_header", TR_F_STR, chain_header, 0, 0),
    P("class_header", TR_F_STR, class_header, 0, 0),
    P("txn_token", TR_F_BOOL, txn_token, 0, 0),
    P("txn_token_ttl_s", TR_F_U32, txn_token_ttl_s, 1, 86400),
    P("txn_token_key_file", TR_F_STR, txn_token_key_file, 0, 0),
    P("txn_token_audience", TR_F_STR, txn_token_audience, 0, 0),
    P("txn_token_issuer", TR_F_STR, txn_token_issuer, 0, 0),
    P("txn_token_key_overlap_s", TR_F_U32, txn_token_key_overlap_s, 0,
      31536000),
};

/* RFC 9110 token characters: a field name must be one. */
static bool
is_field_name(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= 64 &&
           strspn(s, "!#$%&'*+-.^_`|~0123456789"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
               == n;
}

void
tr_cfg_load_propagation(tr_cfgx *c, const tr_yaml_node *v)
{
    tr_propagation_cfg *p = &c->cfg->propagation;
    char kp[TR_CFG_PATH_MAX];

    tr_cfg_walk(c, v, "propagation", fields,
                sizeof(fields) / sizeof(fields[0]), p);

    const struct {
        const char *key;
        const char *value;
    } names[] = {
        { "principal_header", p->principal_header },
        { "actor_header", p->actor_header },
        { "chain_header", p->chain_header },
        { "class_header", p->class_header },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const tr_yaml_node *at = tr_cfg_find(v, names[i].key);
        tr_cfg_path_key(kp, "propagation", names[i].key);
        if (!is_field_name(names[i].value)) {
            tr_cfg_error(c, at, kp, "'%s' is not a header field name",
                         names[i].value);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(names[i].value, names[j].value) == 0)
                tr_cfg_error(c, at, kp, "same header as propagation.%s",
                             names[j].key);
    }
}
