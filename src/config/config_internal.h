/*
 * Shared by the configuration loader's files: the loading context, error
 * reporting with key paths, and a table-driven walker over YAML mappings
 * (config_schema.c).  Not part of the public API.
 */
#ifndef TREATY_CONFIG_CONFIG_INTERNAL_H
#define TREATY_CONFIG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config_arena.h"
#include "config/config_load.h"
#include "config/yaml_tree.h"
#include "core/config.h"

#define TR_CFG_PATH_MAX TR_YAML_PATH_MAX
#define TR_CFG_NAME_MAX 64

typedef struct {
    const char *file;
    tr_config_errors *errs;
    size_t errs_at_start;
    tr_arena *a;               /* the snapshot's arena */
    tr_config *cfg;
} tr_cfgx;

/* Records an error at node `at` (its line and column; 0:0 when NULL)
 * under key path `path`. */
void tr_cfg_error(tr_cfgx *c, const tr_yaml_node *at, const char *path,
                  const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds an error with an explicit position (the YAML reader's reports). */
void tr_cfg_error_at(tr_cfgx *c, unsigned line, unsigned column,
                     const char *path, const char *message);

/* Puts this load's errors in file order. */
void tr_cfg_sort_errors(tr_cfgx *c);

/* Errors recorded during this load. */
size_t tr_cfg_error_count(const tr_cfgx *c);

/* "parent.key" and "parent[i]" (just "key" at the top). */
void tr_cfg_path_key(char *out, const char *parent, const char *key);
void tr_cfg_path_index(char *out, const char *parent, size_t i);

/* A printable, shortened copy of a scalar for messages. */
const char *tr_cfg_show(const tr_yaml_node *v, char *buf, size_t cap);

/* Plain "", "~", "null", "Null" or "NULL". */
bool tr_cfg_is_null(const tr_yaml_node *v);

/*
 * Scalar readers.  Each checks the node's type and value, reports a
 * precise error and returns false, or stores the value and returns true.
 * Nodes marked bad return false silently.
 */
bool tr_cfg_str(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                char **out);
bool tr_cfg_bool(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                 bool *out);
bool tr_cfg_int(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                int64_t lo, int64_t hi, int64_t *out);
bool tr_cfg_double(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                   double lo, double hi, double *out);
bool tr_cfg_strlist(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                    tr_strlist *out);

typedef struct {
    const char *name;
    int value;
} tr_cfg_enum;

bool tr_cfg_enum_value(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                       const tr_cfg_enum *names, int *out);

/* A name for an upstream, quota, tool, issuer or route:
 * [A-Za-z0-9_.-]{1,64}. */
bool tr_cfg_name(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                 const char *s);

/* The value under `key` in mapping `map`, for placing errors found after
 * a walk; `map` itself when the key is absent. */
const tr_yaml_node *tr_cfg_find(const tr_yaml_node *map, const char *key);

/* A list or mapping of at most `max` entries; reports an error and
 * returns false beyond it.  Bounds every per-entry check in the loader. */
bool tr_cfg_max_entries(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                        size_t max);

#define TR_CFG_MAX_ROUTES 10000
#define TR_CFG_MAX_NAMED 1000   /* upstreams, quotas, tools, issuers */

bool tr_cfg_expect(tr_cfgx *c, const tr_yaml_node *v, const char *path,
                   tr_yaml_kind kind);

/*
 * Address syntax (config_addr.c).  Each returns NULL on success or a
 * message saying what is wrong.
 *
 * "host:port": host is a DNS name, an IPv4 address or an IPv6 address in
 * brackets (stored without them).  Port 1-65535, or 0 when allow_zero.
 * When the port is missing, default_port is used if it is not 0, else the
 * port is required.
 */
const char *tr_cfg_parse_hostport(const char *s, uint16_t default_port,
                                  bool allow_zero, char *host,
                                  size_t hostcap, uint16_t *port);

/* An IPv4 or IPv6 address with an optional "/prefix"; IPv4 is mapped into
 * ::ffff:0:0/96.  Host bits beyond the prefix are an error. */
const char *tr_cfg_parse_cidr(const char *s, tr_cidr *out, char *hint,
                              size_t hintcap);

/* The table-driven mapping walker. */
typedef enum {
    TR_F_STR,        /* char * */
    TR_F_STRLIST,    /* tr_strlist */
    TR_F_BOOL,       /* bool */
    TR_F_U32,        /* uint32_t in [lo, hi] */
    TR_F_U64,        /* uint64_t in [lo, hi] */
    TR_F_I32,        /* int in [lo, hi] */
    TR_F_F64,        /* double in [lo, hi] */
    TR_F_ENUM,       /* an enum stored as int */
    TR_F_NODE,       /* const tr_yaml_node *, checked later */
    TR_F_FN          /* fn(c, value, path, obj) */
} tr_ftype;

typedef void tr_field_fn(tr_cfgx *c, const tr_yaml_node *v,
                         const char *path, void *obj);

typedef struct {
    const char *key;
    tr_ftype type;
    size_t off;
    int64_t lo, hi;
    const tr_cfg_enum *names;
    tr_field_fn *fn;
    bool required;
} tr_field;

#define TR_FIELD(k, t, T, m, lo, hi) \
    { k, t, offsetof(T, m), lo, hi, NULL, NULL, false }
#define TR_FIELD_REQ(k, t, T, m, lo, hi) \
    { k, t, offsetof(T, m), lo, hi, NULL, NULL, true }
#define TR_FIELD_ENUM(k, T, m, names) \
    { k, TR_F_ENUM, offsetof(T, m), 0, 0, names, NULL, false }
#define TR_FIELD_FN(k, f, req) \
    { k, TR_F_FN, 0, 0, 0, NULL, f, req }

/*
 * Walks mapping `map` at `path` against fields[0..n): unknown keys are
 * errors, each known key is read into obj, missing required keys are
 * errors.  Returns a bit mask of the fields present (bit i = fields[i]),
 * whether or not their values were valid.  n <= 64.
 */
uint64_t tr_cfg_walk(tr_cfgx *c, const tr_yaml_node *map, const char *path,
                     const tr_field *fields, size_t n, void *obj);

/* Sections, each in its own file, in the order the loader runs them. */
void tr_cfg_load_limits(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_upstreams(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_identity(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_budgets(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_quotas(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_tools(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_routes(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_audit(tr_cfgx *c, const tr_yaml_node *v);
void tr_cfg_load_propagation(tr_cfgx *c, const tr_yaml_node *v);

#endif
