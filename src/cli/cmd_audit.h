/*
 * Pieces shared by the `treaty audit` subcommands: cmd_audit.c (options,
 * tail, query), cmd_audit_verify.c (verify) and cmd_audit_report.c
 * (export, summary).
 */
#ifndef TREATY_CLI_CMD_AUDIT_H
#define TREATY_CLI_CMD_AUDIT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/audit_query.h"

/* Exit codes of every audit subcommand (docs/audit.md). */
enum {
    TR_AUDIT_EXIT_OK = 0,
    TR_AUDIT_EXIT_ERROR = 1,       /* unreadable database or file */
    TR_AUDIT_EXIT_USAGE = 2,
    TR_AUDIT_EXIT_EDITED = 3,
    TR_AUDIT_EXIT_DELETED = 4,
    TR_AUDIT_EXIT_REORDERED = 5,
    TR_AUDIT_EXIT_INSERTED = 6,
    TR_AUDIT_EXIT_TRUNCATED = 7,
    TR_AUDIT_EXIT_ROLLED_BACK = 8,
    TR_AUDIT_EXIT_BAD_SIGNATURE = 9,
};

typedef struct {
    const char *config;
    const char *state_dir;
    bool json;
    bool follow;
    size_t n;
    const char *checkpoint_file;   /* verify --checkpoint */
    const char *key_file;          /* verify --key */
    const char *format;            /* export --format */
    bool has_since;                /* --since given (summary) */
    tr_audit_filter f;
} tr_audit_cli_opts;

/* Where the trail is: from --state-dir or the configuration. */
typedef struct {
    char db[PATH_MAX];
    char state_dir[PATH_MAX];
    char signing_key_file[PATH_MAX]; /* "" when the config sets none */
} tr_audit_cli_where;

int tr_audit_cli_verify(const tr_audit_cli_opts *o,
                        const tr_audit_cli_where *w);
int tr_audit_cli_export(tr_audit_cli_opts *o, const tr_audit_cli_where *w);
int tr_audit_cli_summary(tr_audit_cli_opts *o,
                         const tr_audit_cli_where *w, int64_t now_ms);

/* A record (a decision merged with its completion when c is present) as
 * the JSON object `query --json` prints. */
json_t *tr_audit_cli_record_json(const tr_audit_record *r,
                                 const tr_audit_completion *c);

/* "agent:planner > agent:mailbot" from a chain's JSON text; the actor
 * alone when the chain is empty or missing. */
void tr_audit_cli_chain_text(const char *actor, const char *chain_json,
                             char *buf, size_t len);

#endif
