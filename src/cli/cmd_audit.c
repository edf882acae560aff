/*
 * treaty audit: read the audit trail (tail, query), check it (verify, in
 * cmd_audit_verify.c), export and summarise it (cmd_audit_report.c).
 * Opens the database read-only, so it works while the gateway runs.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cmd_audit.h"
#include "cli/commands.h"
#include "config/config_load.h"
#include "core/audit_chain.h"
#include "core/rfc3339.h"
#include "store/audit_query.h"
#include "store/audit_store.h"

enum {
    EXIT_OK = TR_AUDIT_EXIT_OK,
    EXIT_ERROR = TR_AUDIT_EXIT_ERROR,
    EXIT_USAGE = TR_AUDIT_EXIT_USAGE,
};

#define FOLLOW_POLL_US 500000

static void
usage(FILE *out)
{
    fprintf(out,
        "usage: treaty audit COMMAND [-c FILE | --state-dir DIR] [options]"
        "\n\n"
        "The audit database is DIR/audit.db, DIR being --state-dir or the\n"
        "state_dir of the configuration given with -c.\n\n"
        "commands:\n"
        "  tail [-f] [-n N] [--json]\n"
        "      the last N records (default 20), every row as written;\n"
        "      -f keeps printing new ones\n"
        "  query [filters] [--limit N] [--json]\n"
        "      matching records, oldest first, each decision with its\n"
        "      completion's status and timing; filters:\n"
        "        --principal SUB   --issuer NAME   --actor A (current actor\n"
        "        or anywhere in the delegation chain)   --route R\n"
        "        --tool T   --decision allow|deny|error   --reason R\n"
        "        --method M   --kind request|decision|completion|\n"
        "        refused_tokens   --since T   --until T   (RFC 3339, a\n"
        "        date, or 30m, 1h, 2d, 1w back from now)\n"
        "  verify [--checkpoint FILE] [--key PEM]\n"
        "      checks the hash chain and the signed checkpoints (those in\n"
        "      the database and, with --checkpoint, the external file);\n"
        "      --key: the public key to trust (default: the configured\n"
        "      signing key, or DIR/audit-keys); exit 0 intact, 3 edited,\n"
        "      4 deleted, 5 reordered, 6 inserted, 7 truncated, 8 rolled\n"
        "      back (replaced by another or an older copy), 9 bad\n"
        "      checkpoint signature, 1 unreadable, 2 usage\n"
        "  export [--format ocsf|json] [filters] [--limit N]\n"
        "      one JSON object per line: OCSF API Activity events (class\n"
        "      6003; default) or the records as query --json prints them\n"
        "  summary --principal SUB [--since T] [--until T] [filters]\n"
        "      [--json]\n"
        "      what each actor did on the principal's behalf: requests by\n"
        "      route and decision (default --since 1d)\n\n"
        "--json prints one JSON object per line.\n");
}

typedef tr_audit_cli_opts options;

static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
parse_count(const char *s, size_t *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 100000000)
        return false;
    *out = (size_t)v;
    return true;
}

static bool
copy_path(char *dst, size_t cap, const char *src)
{
    int n = snprintf(dst, cap, "%s", src ? src : "");

    return n >= 0 && (size_t)n < cap;
}

/* Finds audit.db (and the key settings) from --state-dir, else from the
 * configuration.  0, -1 (error shown), -2 (neither given). */
static int
locate(const options *o, tr_audit_cli_where *w)
{
    tr_config_errors errs = { 0 };
    tr_config *cfg;
    bool ok;

    memset(w, 0, sizeof(*w));
    if (o->state_dir) {
        ok = copy_path(w->state_dir, sizeof(w->state_dir), o->state_dir);
    } else if (o->config) {
        cfg = tr_config_load_file(o->config, &errs);
        if (!cfg) {
            tr_config_errors_print(&errs, stderr);
            tr_config_errors_clear(&errs);
            return -1;
        }
        if (!cfg->state_dir) {
            fprintf(stderr, "treaty audit: %s sets no state_dir\n",
                    o->config);
            tr_config_free(cfg);
            return -1;
        }
        ok = copy_path(w->state_dir, sizeof(w->state_dir),
                       cfg->state_dir) &&
             copy_path(w->signing_key_file, sizeof(w->signing_key_file),
                       cfg->audit.signing_key_file);
        tr_config_free(cfg);
    } else {
        fprintf(stderr, "treaty audit: give -c FILE or --state-dir DIR\n");
        return -2;
    }
    if (!ok || !tr_audit_db_path(w->state_dir, w->db, sizeof(w->db))) {
        fprintf(stderr, "treaty audit: state_dir path too long\n");
        return -1;
    }
    return 0;
}

/* --- output ------------------------------------------------------------ */

static json_t *
json_text(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *
json_int(bool present, int64_t v)
{
    return present ? json_integer(v) : json_null();
}

/* A stored JSON array column as JSON; the text itself when it does not
 * parse (never expected, but the reader must not hide what is there). */
static json_t *
json_array_col(const char *s)
{
    json_t *v;

    if (!s)
        return json_null();
    v = json_loads(s, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(s);
}

json_t *
tr_audit_cli_record_json(const tr_audit_record *r,
                         const tr_audit_completion *c)
{
    json_t *o = json_object();
    char t[32], hex[65];
    bool st = r->has_status, lat = r->has_latency, by = r->has_bytes;
    int64_t status = r->status, latency = r->latency_us, bytes = r->bytes;

    if (c && c->present) {
        st = c->has_status, status = c->status;
        lat = c->has_latency, latency = c->latency_us;
        by = c->has_bytes, bytes = c->bytes;
    }
    if (tr_rfc3339_format(r->time_ms, t, sizeof(t)) != 0)
        t[0] = '\0';
    json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(o, "kind", json_string(tr_audit_kind_name(r->kind)));
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "time_ms", json_integer(r->time_ms));
    json_object_set_new(o, "request_id", json_text(r->request_id));
    json_object_set_new(o, "client_addr", json_text(r->client_addr));
    json_object_set_new(o, "principal_issuer",
                        json_text(r->principal_issuer));
    json_object_set_new(o, "principal_sub", json_text(r->principal_sub));
    json_object_set_new(o, "actor", json_text(r->actor));
    json_object_set_new(o, "delegation_chain",
                        json_array_col(r->delegation_chain));
    json_object_set_new(o, "client_id", json_text(r->client_id));
    json_object_set_new(o, "token_id", json_text(r->token_id));
    json_object_set_new(o, "token_hash", json_text(r->token_hash));
    json_object_set_new(o, "token_verified",
                        r->has_token_verified
                            ? json_boolean(r->token_verified)
                            : json_null());
    json_object_set_new(o, "route", json_text(r->route));
    json_object_set_new(o, "tool", json_text(r->tool));
    json_object_set_new(o, "method", json_text(r->method));
    json_object_set_new(o, "path", json_text(r->path));
    json_object_set_new(o, "decision",
                        r->decision == TR_AUDIT_NONE
                            ? json_null()
                            : json_string(tr_audit_decision_name(
                                  r->decision)));
    json_object_set_new(o, "reason", json_text(r->reason));
    json_object_set_new(o, "policy_rule", json_text(r->policy_rule));
    json_object_set_new(o, "limiter", json_text(r->limiter));
    json_object_set_new(o, "idem_key_hash", json_text(r->idem_key_hash));
    json_object_set_new(o, "idem_replay",
                        r->has_idem_replay ? json_boolean(r->idem_replay)
                                           : json_null());
    json_object_set_new(o, "precondition", json_text(r->precondition));
    json_object_set_new(o, "status", json_int(st, status));
    json_object_set_new(o, "latency_ms",
                        lat ? json_real((double)latency / 1000.0)
                            : json_null());
    json_object_set_new(o, "bytes", json_int(by, bytes));
    json_object_set_new(o, "config_hash", json_text(r->config_hash));
    json_object_set_new(o, "stripped_headers",
                        json_array_col(r->stripped_headers));
    json_object_set_new(o, "completes_seq",
                        json_int(r->has_completes_seq,
                                 (int64_t)r->completes_seq));
    if (c && c->present)
        json_object_set_new(o, "completed_by_seq",
                            json_integer((json_int_t)c->seq));
    json_object_set_new(o, "count", json_int(r->has_count, r->count));
    tr_audit_hex(r->prev_hash, 32, hex);
    json_object_set_new(o, "prev_hash", json_string(hex));
    tr_audit_hex(r->hash, 32, hex);
    json_object_set_new(o, "hash", json_string(hex));
    return o;
}

static int
print_json(const tr_audit_record *r, const tr_audit_completion *c)
{
    json_t *o = tr_audit_cli_record_json(r, c);
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                       JSON_REAL_PRECISION(10))
                   : NULL;

    json_decref(o);
    if (!line)
        return -1;
    puts(line);
    free(line);
    return 0;
}

void
tr_audit_cli_chain_text(const char *actor, const char *chain_json,
                        char *buf, size_t len)
{
    json_t *arr = chain_json ? json_loads(chain_json, 0, NULL) : NULL;
    size_t i, used = 0;
    json_t *v;

    snprintf(buf, len, "%s", actor ? actor : "-");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        json_decref(arr);
        return;
    }
    buf[0] = '\0';
    json_array_foreach(arr, i, v) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? " > " : "",
                         json_is_string(v) ? json_string_value(v) : "?");

        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    json_decref(arr);
}

static int
print_row(const tr_audit_record *r, const tr_audit_completion *c,
          bool merged)
{
    char t[32], who[160], chain[256], status[16] = "-", lat[24] = "-";
    bool st = r->has_status, has_lat = r->has_latency;
    int64_t code = r->status, latency = r->latency_us;

    if (c && c->present) {
        st = c->has_status, code = c->status;
        has_lat = c->has_latency, latency = c->latency_us;
    }
    if (tr_rfc3339_format(r->time_ms, t, sizeof(t)) != 0)
        snprintf(t, sizeof(t), "%lld", (long long)r->time_ms);
    if (st)
        snprintf(status, sizeof(status), "%lld", (long long)code);
    if (has_lat)
        snprintf(lat, sizeof(lat), "%.1fms", (double)latency / 1000.0);
    if (r->kind == TR_AUDIT_COMPLETION) {
        printf("%-7llu %s completion of #%llu  %s %s %lld bytes\n",
               (unsigned long long)r->seq, t,
               (unsigned long long)r->completes_seq, status, lat,
               (long long)(r->has_bytes ? r->bytes : 0));
        return 0;
    }
    if (r->kind == TR_AUDIT_REFUSED_TOKENS) {
        printf("%-7llu %s refused tokens x%lld from %s: %s\n",
               (unsigned long long)r->seq, t, (long long)r->count,
               r->client_addr ? r->client_addr : "-",
               r->reason ? r->reason : "-");
        return 0;
    }
    if (r->principal_sub)
        snprintf(who, sizeof(who), "%s@%s%s", r->principal_sub,
                 r->principal_issuer ? r->principal_issuer : "?",
                 r->has_token_verified && !r->token_verified
                     ? " (unverified)" : "");
    else
        snprintf(who, sizeof(who), "-");
    tr_audit_cli_chain_text(r->actor, r->delegation_chain, chain,
                            sizeof(chain));
    printf("%-7llu %s %-5s %-3s %8s  %s  by %s  %s %s  route=%s",
           (unsigned long long)r->seq, t,
           r->decision == TR_AUDIT_NONE ? "-"
                                        : tr_audit_decision_name(r->decision),
           status, lat, who, chain, r->method ? r->method : "-",
           r->path ? r->path : "-", r->route ? r->route : "-");
    if (r->reason)
        printf(" reason=%s", r->reason);
    if (merged && r->kind == TR_AUDIT_DECISION && !c->present)
        printf(" (not completed yet)");
    putchar('\n');
    return 0;
}

typedef struct {
    const options *o;
    uint64_t last_seq;
} walk;

static int
on_row(void *arg, const tr_audit_record *r, const tr_audit_completion *c)
{
    walk *w = arg;
    int rc = w->o->json ? print_json(r, c)
                        : print_row(r, c, w->o->f.merge_completions);

    w->last_seq = r->seq;
    if (rc == 0 && ferror(stdout))
        rc = -1;
    return rc;
}

/* --- commands ---------------------------------------------------------- */

typedef enum { SUB_TAIL, SUB_QUERY, SUB_VERIFY, SUB_EXPORT, SUB_SUMMARY } sub;

enum {
    OPT_STATE_DIR = 256, OPT_JSON, OPT_PRINCIPAL, OPT_ISSUER, OPT_ACTOR,
    OPT_ROUTE, OPT_TOOL, OPT_DECISION, OPT_REASON, OPT_KIND, OPT_METHOD,
    OPT_SINCE, OPT_UNTIL, OPT_LIMIT, OPT_CHECKPOINT, OPT_KEY, OPT_FORMAT,
    OPT_HELP,
};

static const struct option long_opts[] = {
    { "config", required_argument, NULL, 'c' },
    { "state-dir", required_argument, NULL, OPT_STATE_DIR },
    { "json", no_argument, NULL, OPT_JSON },
    { "follow", no_argument, NULL, 'f' },
    { "principal", required_argument, NULL, OPT_PRINCIPAL },
    { "issuer", required_argument, NULL, OPT_ISSUER },
    { "actor", required_argument, NULL, OPT_ACTOR },
    { "route", required_argument, NULL, OPT_ROUTE },
    { "tool", required_argument, NULL, OPT_TOOL },
    { "decision", required_argument, NULL, OPT_DECISION },
    { "reason", required_argument, NULL, OPT_REASON },
    { "kind", required_argument, NULL, OPT_KIND },
    { "method", required_argument, NULL, OPT_METHOD },
    { "since", required_argument, NULL, OPT_SINCE },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "limit", required_argument, NULL, OPT_LIMIT },
    { "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
    { "key", required_argument, NULL, OPT_KEY },
    { "format", required_argument, NULL, OPT_FORMAT },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static bool
has_filters(const options *o)
{
    const tr_audit_filter *f = &o->f;

    return f->principal || f->issuer || f->actor || f->route || f->tool ||
           f->decision || f->reason || f->kind || f->method ||
           f->has_since || f->has_until;
}

/* Options that only some subcommands take: NULL when fine, else the
 * complaint. */
static const char *
misplaced(sub s, const options *o)
{
    if (s != SUB_TAIL && o->follow)
        return "-f is for tail";
    if ((s == SUB_TAIL || s == SUB_VERIFY) && has_filters(o))
        return s == SUB_TAIL ? "tail takes no filters; use query"
                             : "verify checks the whole trail: no filters";
    if (s != SUB_VERIFY && (o->checkpoint_file || o->key_file))
        return "--checkpoint and --key are for verify";
    if (s != SUB_EXPORT && o->format)
        return "--format is for export";
    if ((s == SUB_VERIFY || s == SUB_EXPORT) && o->json)
        return "--json is for tail, query and summary";
    if ((s == SUB_VERIFY || s == SUB_SUMMARY) && o->n)
        return "--limit is for tail, query and export";
    if (s == SUB_SUMMARY && !o->f.principal)
        return "summary needs --principal";
    if (s == SUB_EXPORT && o->format && strcmp(o->format, "ocsf") &&
        strcmp(o->format, "json"))
        return "--format is ocsf or json";
    return NULL;
}

/* Parses the options after the subcommand; 0, 1 (--help shown) or -1. */
static int
parse_options(int argc, char **argv, sub s, int64_t now, options *o)
{
    const char *why;
    int c;

    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, s == SUB_TAIL ? "c:fn:h" : "c:h",
                            long_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case OPT_STATE_DIR:
            o->state_dir = optarg;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case 'f':
            o->follow = true;
            break;
        case 'n':
        case OPT_LIMIT:
            if (!parse_count(optarg, &o->n)) {
                fprintf(stderr, "treaty audit: bad count '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_PRINCIPAL:
            o->f.principal = optarg;
            break;
        case OPT_ISSUER:
            o->f.issuer = optarg;
            break;
        case OPT_ACTOR:
            o->f.actor = optarg;
            break;
        case OPT_ROUTE:
            o->f.route = optarg;
            break;
        case OPT_TOOL:
            o->f.tool = optarg;
            break;
        case OPT_DECISION:
            if (tr_audit_decision_parse(optarg) <= 0) {
                fprintf(stderr, "treaty audit: --decision is allow, deny "
                        "or error\n");
                return -1;
            }
            o->f.decision = optarg;
            break;
        case OPT_REASON:
            o->f.reason = optarg;
            break;
        case OPT_KIND:
            if (tr_audit_kind_parse(optarg) < 0) {
                fprintf(stderr, "treaty audit: unknown --kind '%s'\n",
                        optarg);
                return -1;
            }
            o->f.kind = optarg;
            break;
        case OPT_METHOD:
            o->f.method = optarg;
            break;
        case OPT_SINCE:
        case OPT_UNTIL: {
            int64_t ms;

            if (tr_time_arg_parse(optarg, now, &ms) != 0) {
                fprintf(stderr, "treaty audit: bad time '%s' (RFC 3339, "
                        "a date, or 30m, 1h, 2d, 1w)\n", optarg);
                return -1;
            }
            if (c == OPT_SINCE)
                o->f.has_since = true, o->f.since_ms = ms;
            else
                o->f.has_until = true, o->f.until_ms = ms;
            break;
        }
        case OPT_CHECKPOINT:
            o->checkpoint_file = optarg;
            break;
        case OPT_KEY:
            o->key_file = optarg;
            break;
        case OPT_FORMAT:
            o->format = optarg;
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "treaty audit: unexpected argument '%s'\n",
                argv[optind]);
        return -1;
    }
    o->has_since = o->f.has_since;
    why = misplaced(s, o);
    if (why) {
        fprintf(stderr, "treaty audit: %s\n", why);
        return -1;
    }
    return 0;
}

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    interrupted = 1;
}

static int
run_walk(const char *path, options *o, bool is_tail)
{
    char err[512];
    tr_audit_reader *r = tr_audit_reader_open(path, err, sizeof(err));
    walk w = { o, 0 };
    int rc;

    if (!r) {
        fprintf(stderr, "treaty audit: %s\n", err);
        return EXIT_ERROR;
    }
    if (is_tail) {
        o->f.last = o->n ? o->n : 20;
        o->f.merge_completions = false;
    } else {
        o->f.last = o->n;
        o->f.merge_completions = true;
    }
    rc = tr_audit_reader_each(r, &o->f, on_row, &w, err, sizeof(err));
    if (o->follow && rc == 0) {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        o->f.last = 0;
        while (rc == 0 && !interrupted) {
            fflush(stdout);
            usleep(FOLLOW_POLL_US);
            o->f.after_seq = w.last_seq;
            rc = tr_audit_reader_each(r, &o->f, on_row, &w, err,
                                      sizeof(err));
        }
    }
    tr_audit_reader_close(r);
    if (rc < 0 && !ferror(stdout)) {
        fprintf(stderr, "treaty audit: %s\n", err);
        return EXIT_ERROR;
    }
    if (fflush(stdout) != 0 || ferror(stdout))
        return EXIT_ERROR;
    return EXIT_OK;
}

static const struct {
    const char *name;
    sub s;
} subs[] = {
    { "tail", SUB_TAIL },       { "query", SUB_QUERY },
    { "verify", SUB_VERIFY },   { "export", SUB_EXPORT },
    { "summary", SUB_SUMMARY },
};

int
tr_cmd_audit(int argc, char **argv)
{
    options o;
    tr_audit_cli_where w;
    int64_t now = wall_ms();
    int rc, found = -1;

    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (!strcmp(argv[1], subs[i].name))
            found = (int)i;
    if (found < 0) {
        fprintf(stderr, "treaty audit: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    memset(&o, 0, sizeof(o));
    rc = parse_options(argc - 1, argv + 1, subs[found].s, now, &o);
    if (rc != 0)
        return rc > 0 ? EXIT_OK : EXIT_USAGE;
    rc = locate(&o, &w);
    if (rc != 0)
        return rc == -2 ? EXIT_USAGE : EXIT_ERROR;
    if (access(w.db, F_OK) != 0) {
        fprintf(stderr, "treaty audit: no audit database at %s\n", w.db);
        return EXIT_ERROR;
    }
    switch (subs[found].s) {
    case SUB_VERIFY:
        return tr_audit_cli_verify(&o, &w);
    case SUB_EXPORT:
        return tr_audit_cli_export(&o, &w);
    case SUB_SUMMARY:
        return tr_audit_cli_summary(&o, &w, now);
    case SUB_TAIL:
        return run_walk(w.db, &o, true);
    case SUB_QUERY:
        break;
    }
    return run_walk(w.db, &o, false);
}
