/*
 * `treaty analyze`: the pieces shared by src/cli/analyze_*.c.
 *
 *   analyze_input.c     plain or gzip files, line by line, progress bar
 *   analyze_combined.c  nginx `combined` lines (hand-written scanner)
 *   analyze_json.c      treaty's JSON access log and nginx JSON logs
 *   analyze_reorder.c   puts requests back in time order
 *   analyze_report.c    table, JSON and CSV reports
 *   analyze_html.c      the self-contained HTML report
 *   analyze_simulate.c  replays the timeline through src/core's limiter
 *   cmd_analyze.c       the command: options and the passes over input
 */
#ifndef TREATY_CLI_ANALYZE_H
#define TREATY_CLI_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/traffic_stats.h"

/* ------------------------------------------------------------ input -- */

#define TR_LINE_MAX (64 * 1024)       /* longer lines are malformed */

typedef struct tr_line_reader tr_line_reader;

/* "-" reads stdin.  gzip (any number of members) is detected by its
 * magic bytes.  NULL with a message in err when the file cannot be
 * opened. */
tr_line_reader *tr_line_reader_open(const char *path, char *err,
                                    size_t errlen);

/*
 * The next line, without its "\n" (and "\r").  Returns 1 and sets
 * *line and *len (valid until the next call), 0 at the end, or -1 when a
 * line is longer than TR_LINE_MAX (it is skipped; *len is how much was
 * kept).  A read or gzip error ends the input early: 0, and
 * tr_line_reader_error() says what happened.
 */
int tr_line_reader_next(tr_line_reader *r, const char **line, size_t *len);

const char *tr_line_reader_error(const tr_line_reader *r);
bool tr_line_reader_gzip(const tr_line_reader *r);
uint64_t tr_line_reader_offset(const tr_line_reader *r);  /* raw bytes */
uint64_t tr_line_reader_size(const tr_line_reader *r);    /* 0 unknown */
void tr_line_reader_close(tr_line_reader *r);

/* A progress bar on stderr, drawn only when it is a terminal. */
typedef struct {
    bool enabled;
    const char *label;
    uint64_t total_bytes;      /* over every file; 0 unknown */
    uint64_t done_bytes;       /* files already finished */
    uint64_t lines;
    double started, drawn;     /* monotonic seconds */
} tr_progress;

void tr_progress_init(tr_progress *p, bool enabled, const char *label,
                      uint64_t total_bytes);
/* Call often; redraws at most 10 times a second. */
void tr_progress_tick(tr_progress *p, uint64_t file_offset);
void tr_progress_done(tr_progress *p);
double tr_monotonic_s(void);

/* ----------------------------------------------------------- parsing -- */

typedef enum {
    TR_LOG_AUTO = 0,
    TR_LOG_TREATY,
    TR_LOG_COMBINED,
    TR_LOG_NGINX_JSON,
} tr_log_format;

typedef enum {
    TR_PFROM_USER = 0,         /* the log's user / principal field */
    TR_PFROM_HEADER,           /* a logged request header */
    TR_PFROM_JWT,              /* the sub of a logged bearer token */
    TR_PFROM_FIELD,            /* any JSON field */
} tr_pfrom_kind;

typedef struct {
    tr_pfrom_kind kind;
    const char *name;          /* header or field name; NULL default */
} tr_principal_from;

/* nginx JSON field names by role (NULL: the usual names are tried). */
typedef struct {
    const char *time, *duration_s, *duration_ms, *user, *client;
    const char *request, *method, *path, *status, *tool, *cls;
} tr_json_fields;

typedef enum {
    TR_PARSE_OK = 0,
    TR_PARSE_NOT_JSON,         /* not a JSON object */
    TR_PARSE_BAD_TIME,         /* no time, or one that does not parse */
    TR_PARSE_BAD_FIELD,        /* a field is missing or malformed */
    TR_PARSE_TRUNCATED,        /* the line ends early */
    TR_PARSE_TOO_LONG,         /* over TR_LINE_MAX */
    TR_PARSE__COUNT
} tr_parse_status;

const char *tr_parse_status_name(tr_parse_status s);

#define TR_RECORD_KEY_MAX (TR_TRAFFIC_KEY_MAX + 64)

/* What treaty's own limiter did with a logged request ("limiter" and
 * "decision" of its access log). */
typedef enum {
    TR_LOGGED_UNKNOWN = 0,     /* not a treaty log, or no budgets ran */
    TR_LOGGED_BEFORE,          /* refused before admission: not replayed */
    TR_LOGGED_ADMITTED,        /* admitted at once */
    TR_LOGGED_QUEUED,          /* admitted after waiting for a slot */
    TR_LOGGED_REFUSED,         /* refused by a budget */
    TR_LOGGED_REPLAY,          /* an idempotent replay: one rate unit */
} tr_logged_admission;

/* One request read from a line.  Pointers are valid until the next
 * parse with the same parser. */
typedef struct {
    int64_t t_ns;              /* when the request started */
    int64_t dur_ns;            /* -1 when not logged */
    uint64_t res_ns;           /* resolution of the timestamp */
    const char *key;           /* principal display name */
    size_t key_len;
    int cls;                   /* TR_TRAFFIC_CLASS_* */
    bool unverified;           /* key decoded from an unverified JWT */
    bool jwt_failed;           /* a token was there but did not decode */
    const char *tool;          /* as logged; NULL */
    size_t tool_len;
    const char *method;
    size_t method_len;
    const char *path;          /* may include a query */
    size_t path_len;
    int status;                /* 0 when not logged */
    tr_logged_admission logged; /* treaty: what its limiter decided */
    char scratch[TR_RECORD_KEY_MAX];
} tr_log_record;

/* The format of a log from one of its lines. */
tr_log_format tr_log_sniff(const char *line, size_t len);
const char *tr_log_format_name(tr_log_format f);

/* nginx combined.  The cache makes repeated timestamps cheap. */
typedef struct {
    char last[32];
    size_t last_len;
    int64_t last_ns;
    char day[12];              /* "10/Oct/2000" */
    int64_t day_s;             /* that day at 00:00 UTC */
} tr_clf_cache;

tr_parse_status tr_combined_parse(const char *line, size_t len,
                                  const tr_principal_from *pf,
                                  tr_clf_cache *cache, tr_log_record *out);

/* "10/Oct/2000:13:55:36 -0700" (26 bytes) into ns since the epoch. */
int tr_clf_time_parse(const char *s, size_t len, tr_clf_cache *cache,
                      int64_t *out_ns);

/* Anonymous requests are grouped by client address: "anon@ADDR". */
size_t tr_anon_key(const char *client, size_t len, char *out, size_t cap);

/* treaty and nginx JSON lines. */
typedef struct tr_json_parser tr_json_parser;

tr_json_parser *tr_json_parser_create(tr_log_format format,
                                      const tr_principal_from *pf,
                                      const tr_json_fields *fields);
void tr_json_parser_free(tr_json_parser *jp);
tr_parse_status tr_json_parse(tr_json_parser *jp, const char *line,
                              size_t len, tr_log_record *out);

/*
 * The sub (and iss) of a JWT, decoded WITHOUT verification, as the
 * principal name "iss:sub" (or "sub").  `value` may start with "Bearer ".
 * Returns the name's length, or 0 when it does not decode.
 */
size_t tr_jwt_principal_unverified(const char *value, size_t len, char *out,
                                   size_t cap);

/* ----------------------------------------------------------- reorder -- */

typedef struct {
    int64_t t_ns;
    int64_t dur_ns;
    uint64_t khash;            /* hash of the principal key (simulation) */
    uint32_t pidx;             /* index in the traffic table */
    int32_t tool;              /* simulation: index into cfg->tools */
    int8_t cls;
    uint8_t logged;            /* tr_logged_admission */
} tr_analyze_event;

typedef void (*tr_event_fn)(void *ctx, const tr_analyze_event *ev);

typedef struct tr_reorder tr_reorder;

/*
 * Holds requests for `window_ns` of log time (at most `cap` of them) and
 * hands them on in time order.  One that arrives after a later request
 * was already handed on is "late": it is handed on at once, with the
 * time of that later request.
 */
tr_reorder *tr_reorder_create(int64_t window_ns, size_t cap, tr_event_fn fn,
                              void *ctx);
void tr_reorder_push(tr_reorder *r, const tr_analyze_event *ev);
void tr_reorder_flush(tr_reorder *r);
uint64_t tr_reorder_moved(const tr_reorder *r);   /* put back in order */
uint64_t tr_reorder_late(const tr_reorder *r);
void tr_reorder_free(tr_reorder *r);

/* -------------------------------------------------------- simulation -- */

typedef struct tr_sim tr_sim;

/* Loads the configuration and builds the real limiter (admission.h).
 * NULL with the errors printed to `errs` when the file is refused. */
tr_sim *tr_sim_create(const char *config_path, FILE *errs);
void tr_sim_free(tr_sim *s);
/* The table that names principals in the report. */
void tr_sim_set_stats(tr_sim *s, const tr_traffic *stats);
/* How long a request without a logged duration holds its slot. */
void tr_sim_set_assumed_duration(tr_sim *s, uint64_t ns);

/* The tool of a request: by logged name, else by routing method + path
 * through the configuration's routes; -1 when none. */
int32_t tr_sim_tool(tr_sim *s, const tr_log_record *rec);

/* Requests in time order. `name` is the principal's display name. */
void tr_sim_request(tr_sim *s, const tr_analyze_event *ev, const char *name,
                    size_t name_len);
/* Runs the clock to the end: every request finishes. */
void tr_sim_finish(tr_sim *s);

/* ------------------------------------------------------------ report -- */

typedef struct {
    const char *path;
    tr_log_format format;
    bool gzip;
    uint64_t lines, requests, malformed;
    char error[160];           /* read or gzip error, "" if none */
} tr_input_stats;

#define TR_MALFORMED_EXAMPLES 10

typedef struct {
    const char *file;
    uint64_t line;
    tr_parse_status reason;
} tr_malformed_example;

typedef struct {
    const tr_traffic_params *params;
    const tr_traffic *stats;
    tr_input_stats *inputs;
    size_t n_inputs;
    uint64_t lines, requests, malformed;
    uint64_t by_reason[TR_PARSE__COUNT];
    tr_malformed_example examples[TR_MALFORMED_EXAMPLES];
    size_t n_examples;
    uint64_t jwt_failed;       /* tokens that did not decode */
    uint64_t reordered, late;
    int64_t reorder_window_ns;
    size_t top;                /* table rows; 0 = all */
    tr_sim *sim;               /* NULL without --simulate */
    const char *sim_config;
} tr_analyze_report;

/* Principal indices sorted by requests, most first (caller frees). */
uint32_t *tr_report_order(const tr_traffic *t, size_t *n);

int tr_report_table(const tr_analyze_report *r, FILE *out);
int tr_report_json(const tr_analyze_report *r, FILE *out);
int tr_report_csv(const tr_analyze_report *r, FILE *out);
int tr_report_html(const tr_analyze_report *r, FILE *out);

/* Notes about precision, one sentence each; returns how many. */
size_t tr_report_notes(const tr_analyze_report *r, const char **notes,
                       size_t max);

/* The simulation's part of each report. */
void tr_sim_report_table(const tr_sim *s, FILE *out);
void *tr_sim_report_json(const tr_sim *s);   /* a json_t *, new ref */

/* "2024-05-01T12:00:00.123Z" */
void tr_report_time(int64_t ns, char *buf, size_t cap);

/* A name from a log as printable ASCII: other bytes as \xHH. */
void tr_report_printable(const char *s, size_t n, char *out, size_t cap);

#endif
