/*
 * A YAML document read with libyaml's event API into a small tree that
 * keeps each node's position.  The configuration schema is then checked
 * over the tree (config_schema.c), so every error can name its place.
 *
 * Refused while reading, each reported with its position and key path:
 * anchors, aliases, explicit tags, mapping keys that are not scalars,
 * duplicate keys, more than one document, nesting deeper than
 * TR_YAML_MAX_DEPTH, and YAML syntax errors (which stop the reading).
 */
#ifndef TREATY_CONFIG_YAML_TREE_H
#define TREATY_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config_arena.h"

#define TR_YAML_MAX_DEPTH 64
#define TR_YAML_PATH_MAX 256

typedef enum { TR_YAML_SCALAR, TR_YAML_SEQ, TR_YAML_MAP } tr_yaml_kind;

typedef struct tr_yaml_node tr_yaml_node;
struct tr_yaml_node {
    tr_yaml_kind kind;
    unsigned line, column;     /* 1-based */
    bool plain;                /* scalar: written without quotes or | > */
    bool bad;                  /* already reported; checks skip it */
    const char *value;         /* scalar: NUL-terminated copy; may hold
                                * NUL bytes, so use len */
    size_t len;
    tr_yaml_node **items;      /* seq: n items; map: n pairs, key at
                                * items[2i], value at items[2i + 1] */
    size_t n;
};

/* Receives each problem found while reading. */
typedef void tr_yaml_report(void *ud, unsigned line, unsigned column,
                            const char *path, const char *message);

/*
 * Reads buf[0..len).  Nodes are allocated in `a`.  Returns the root node,
 * or NULL when the text is not YAML (a syntax error was reported) or holds
 * no document (nothing reported: the caller says what it expected).
 * Errors that leave the tree usable (duplicate keys, aliases, ...) are
 * reported and the tree is still returned.
 */
tr_yaml_node *tr_yaml_parse(const char *buf, size_t len, tr_arena *a,
                            tr_yaml_report *report, void *ud);

#endif
