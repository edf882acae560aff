/*
 * Loading the configuration: one YAML file (docs/configuration.md) into an
 * immutable tr_config snapshot (core/config.h).
 *
 * The loader is strict.  Duplicate keys, anchors and aliases, tags,
 * unknown keys, booleans other than exactly true/false, values of the
 * wrong type or out of range, and references to names that do not exist
 * are errors.  It collects every error it can find (up to
 * TR_CONFIG_MAX_ERRORS) rather than stopping at the first; each carries
 * the file, a 1-based line and column, and the key path
 * ("routes[2].policy.max_delegation_depth").
 *
 * Relative file names inside the configuration (jwks_file,
 * authorization_file, ...) are taken relative to the working directory.
 * The only file read during loading, besides the configuration itself,
 * is each upstream's authorization_file; its content is never printed.
 */
#ifndef TREATY_CONFIG_CONFIG_LOAD_H
#define TREATY_CONFIG_CONFIG_LOAD_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

#define TR_CONFIG_MAX_ERRORS 200
#define TR_CONFIG_MAX_BYTES (4u << 20)

typedef struct {
    char *file;
    unsigned line, column;     /* 1-based; 0 when not tied to a place */
    char *key;                 /* key path, "" for the whole file */
    char *message;
} tr_config_error;

typedef struct {
    tr_config_error *items;
    size_t n;
} tr_config_errors;

/*
 * Loads the file at `path`.  Returns the snapshot, or NULL when there was
 * any error; the errors are appended to *errs (which the caller zeroes
 * first and clears with tr_config_errors_clear()).
 */
tr_config *tr_config_load_file(const char *path, tr_config_errors *errs);

/* The same from memory; `name` stands for the file in messages.  Used by
 * tests and the fuzzer. */
tr_config *tr_config_load_buffer(const char *name, const char *buf,
                                 size_t len, tr_config_errors *errs);

/* Frees a snapshot and every string in it.  NULL is fine. */
void tr_config_free(tr_config *cfg);

void tr_config_errors_clear(tr_config_errors *errs);

/* Prints "file:line:col: key: message", one error per line.  Returns the
 * number of errors printed. */
int tr_config_errors_print(const tr_config_errors *errs, FILE *out);

#endif
