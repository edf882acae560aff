/*
 * treaty analyze: the time shape of traffic from access logs (SPEC.md
 * §7, docs/analyze.md).
 *
 * Input files are read in the order of their first timestamp (so
 * `access.log*` works whatever order the shell lists rotated files in),
 * line by line, through a reorder window into the statistics of
 * src/core/traffic_stats.c.  With --simulate a second pass replays the
 * same requests through the limiter once every principal's class is
 * known; a log read from stdin is simulated in the same pass instead,
 * with classes as logged (human when not logged).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <xxhash.h>

#include "cli/analyze.h"
#include "cli/commands.h"

#define NS 1000000000LL
#define MS 1000000LL
#define REORDER_CAP (1u << 18)
#define SNIFF_LINES 1000

typedef struct {
    const char *format;            /* table, json, csv */
    tr_log_format log_format;
    tr_principal_from pf;
    tr_json_fields fields;
    tr_traffic_params params;
    int64_t reorder_window_ns;
    size_t top;
    bool top_set;
    const char *simulate;
    uint64_t assume_dur_ns;
    const char *html;
    int progress;                  /* -1 auto, 0 off, 1 on */
} options;

typedef struct {
    const char *path;
    int64_t first_ns;              /* first timestamp, for ordering */
    tr_log_format format;
} input;

typedef struct {
    options *o;
    tr_traffic *stats;
    tr_sim *sim;
    tr_reorder *ro;
    bool do_stats, do_sim;
    bool counting;                 /* this pass counts lines and errors */
    int8_t *class_of;              /* budget class per principal */
    size_t n_class_of;
    tr_analyze_report rep;
    tr_progress prog;
} run;

static void
usage(FILE *out)
{
    fprintf(out,
        "usage: treaty analyze [options] FILE...\n"
        "\n"
        "The time shape of traffic per principal, from treaty's JSON\n"
        "access log or nginx logs (combined or JSON), plain or gzip;\n"
        "FILE - reads stdin.  See docs/analyze.md.\n"
        "\n"
        "  --format table|json|csv     report format (default table)\n"
        "  --log-format auto|treaty|combined|nginx-json\n"
        "  --principal-from user|header:NAME|jwt[:FIELD]|field:NAME\n"
        "                              who the principal is (default user:\n"
        "                              treaty's principal, nginx's\n"
        "                              $remote_user); jwt decodes the sub\n"
        "                              WITHOUT verifying the token\n"
        "  --field ROLE=NAME           nginx JSON field names; ROLE is\n"
        "                              time, duration_s, duration_ms, user,\n"
        "                              client, request, method, path,\n"
        "                              status, tool or class\n"
        "  --max-principals N          principals tracked (default 10000);\n"
        "                              the rest are counted as (other)\n"
        "  --burst-gap-ms N            a gap this long ends a burst (1000)\n"
        "  --reorder-window-s N        sort requests within N s of log\n"
        "                              time (default 60)\n"
        "  --top N                     table rows (default 30, 0 = all)\n"
        "  --simulate CONFIG           replay through CONFIG's budgets\n"
        "  --assume-duration-ms N      slot hold when none is logged (0)\n"
        "  --html FILE                 also write an HTML report\n"
        "  --progress, --no-progress   progress bar on stderr (default:\n"
        "                              when stderr is a terminal)\n");
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
parse_pfrom(const char *s, tr_principal_from *pf)
{
    if (!strcmp(s, "user")) {
        pf->kind = TR_PFROM_USER;
    } else if (!strncmp(s, "header:", 7) && s[7]) {
        pf->kind = TR_PFROM_HEADER;
        pf->name = s + 7;
    } else if (!strcmp(s, "jwt")) {
        pf->kind = TR_PFROM_JWT;
    } else if (!strncmp(s, "jwt:", 4) && s[4]) {
        pf->kind = TR_PFROM_JWT;
        pf->name = s + 4;
    } else if (!strncmp(s, "field:", 6) && s[6]) {
        pf->kind = TR_PFROM_FIELD;
        pf->name = s + 6;
    } else {
        return -1;
    }
    return 0;
}

static int
parse_field(const char *s, tr_json_fields *f)
{
    static const struct {
        const char *role;
        size_t off;
    } roles[] = {
        { "time", offsetof(tr_json_fields, time) },
        { "duration_s", offsetof(tr_json_fields, duration_s) },
        { "duration_ms", offsetof(tr_json_fields, duration_ms) },
        { "user", offsetof(tr_json_fields, user) },
        { "client", offsetof(tr_json_fields, client) },
        { "request", offsetof(tr_json_fields, request) },
        { "method", offsetof(tr_json_fields, method) },
        { "path", offsetof(tr_json_fields, path) },
        { "status", offsetof(tr_json_fields, status) },
        { "tool", offsetof(tr_json_fields, tool) },
        { "class", offsetof(tr_json_fields, cls) },
    };
    const char *eq = strchr(s, '=');
    if (!eq || !eq[1])
        return -1;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strlen(roles[i].role) == (size_t)(eq - s) &&
            !memcmp(roles[i].role, s, (size_t)(eq - s))) {
            *(const char **)((char *)f + roles[i].off) = eq + 1;
            return 0;
        }
    return -1;
}

/* Whether --principal-from can work on a format; a message if not. */
static const char *
pfrom_error(const tr_principal_from *pf, tr_log_format f)
{
    if (f == TR_LOG_COMBINED) {
        if (pf->kind == TR_PFROM_HEADER &&
            (!strcasecmp(pf->name, "User-Agent") ||
             !strcasecmp(pf->name, "Referer")))
            return NULL;
        if (pf->kind != TR_PFROM_USER)
            return "nginx combined logs only $remote_user, Referer and "
                   "User-Agent";
    }
    if (f == TR_LOG_TREATY &&
        (pf->kind == TR_PFROM_HEADER || pf->kind == TR_PFROM_JWT))
        return "treaty's access log holds no headers or tokens (use user "
               "or field:NAME)";
    return NULL;
}

/* ------------------------------------------------------------ events -- */

static void
on_event(void *ctx, const tr_analyze_event *ev)
{
    run *r = ctx;
    if (r->do_stats)
        tr_traffic_add(r->stats, ev->pidx, ev->t_ns, ev->dur_ns);
    if (r->do_sim) {
        const tr_traffic_principal *p = tr_traffic_get(r->stats, ev->pidx);
        tr_sim_request(r->sim, ev, p->key, p->key_len);
    }
}

static void
malformed(run *r, const input *in, tr_input_stats *is, uint64_t lineno,
          tr_parse_status st)
{
    if (!r->counting)
        return;
    is->malformed++;
    r->rep.malformed++;
    r->rep.by_reason[st]++;
    if (r->rep.n_examples < TR_MALFORMED_EXAMPLES)
        r->rep.examples[r->rep.n_examples++] =
            (tr_malformed_example){ in->path, lineno, st };
}

static bool
blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

static int8_t
sim_class(run *r, const tr_log_record *rec, uint32_t pidx)
{
    if (rec->cls != TR_TRAFFIC_CLASS_UNKNOWN)
        return (int8_t)rec->cls;
    if (r->class_of && pidx < r->n_class_of)
        return r->class_of[pidx];
    return TR_TRAFFIC_CLASS_HUMAN;
}

static int
process(run *r, input *in, tr_input_stats *is)
{
    char err[512];
    tr_line_reader *lr = tr_line_reader_open(in->path, err, sizeof(err));
    if (!lr) {
        fprintf(stderr, "treaty analyze: %s\n", err);
        return -1;
    }
    tr_json_parser *jp = NULL;
    tr_clf_cache clf = { 0 };
    tr_log_record rec;
    uint64_t lineno = 0;
    const char *line;
    size_t len;
    int rc;

    is->gzip = tr_line_reader_gzip(lr);
    while ((rc = tr_line_reader_next(lr, &line, &len)) != 0) {
        lineno++;
        if (r->counting) {
            is->lines++;
            r->rep.lines++;
        }
        r->prog.lines++;
        if (!(lineno & 4095))
            tr_progress_tick(&r->prog, tr_line_reader_offset(lr));
        if (rc < 0) {
            malformed(r, in, is, lineno, TR_PARSE_TOO_LONG);
            continue;
        }
        if (blank(line, len))
            continue;
        if (in->format == TR_LOG_AUTO) {
            /* Only stdin gets here: files were sniffed up front. */
            in->format = tr_log_sniff(line, len);
            const char *why = pfrom_error(&r->o->pf, in->format);
            if (why) {
                fprintf(stderr, "treaty analyze: %s (%s): "
                                "--principal-from: %s\n", in->path,
                        tr_log_format_name(in->format), why);
                tr_line_reader_close(lr);
                return -1;
            }
        }
        if (in->format != TR_LOG_COMBINED && !jp) {
            jp = tr_json_parser_create(in->format, &r->o->pf,
                                       &r->o->fields);
            if (!jp) {
                tr_line_reader_close(lr);
                return -1;
            }
        }
        tr_parse_status st =
            in->format == TR_LOG_COMBINED
                ? tr_combined_parse(line, len, &r->o->pf, &clf, &rec)
                : tr_json_parse(jp, line, len, &rec);
        if (st != TR_PARSE_OK) {
            malformed(r, in, is, lineno, st);
            continue;
        }

        tr_analyze_event ev;
        ev.pidx = tr_traffic_lookup(r->stats, rec.key, rec.key_len, rec.cls,
                                    rec.unverified);
        if (ev.pidx == UINT32_MAX) {
            fprintf(stderr, "treaty analyze: out of memory\n");
            tr_json_parser_free(jp);
            tr_line_reader_close(lr);
            return -1;
        }
        if (r->counting) {
            is->requests++;
            r->rep.requests++;
            r->rep.jwt_failed += rec.jwt_failed;
            tr_traffic_set_resolution(r->stats, rec.res_ns);
        }
        ev.t_ns = rec.t_ns;
        ev.dur_ns = rec.dur_ns;
        ev.cls = (int8_t)rec.cls;
        ev.logged = (uint8_t)rec.logged;
        ev.tool = -1;
        ev.khash = 0;
        if (r->do_sim) {
            ev.tool = tr_sim_tool(r->sim, &rec);
            ev.khash = XXH3_64bits(rec.key, rec.key_len);
            ev.cls = sim_class(r, &rec, ev.pidx);
        }
        tr_reorder_push(r->ro, &ev);
    }
    const char *e = tr_line_reader_error(lr);
    if (e && r->counting)
        snprintf(is->error, sizeof(is->error), "%s", e);
    is->format = in->format;
    r->prog.done_bytes += tr_line_reader_offset(lr);
    tr_json_parser_free(jp);
    tr_line_reader_close(lr);
    return 0;
}

/* -------------------------------------------------------- the inputs -- */

/* The format and first timestamp of a file, from its first lines. */
static void
sniff(input *in, const options *o)
{
    char err[512];
    in->format = o->log_format;
    in->first_ns = INT64_MAX;
    tr_line_reader *lr = tr_line_reader_open(in->path, err, sizeof(err));
    if (!lr)
        return;
    tr_json_parser *jp = NULL;
    tr_clf_cache clf = { 0 };
    tr_log_record rec;
    const char *line;
    size_t len;
    int rc;
    for (int i = 0; i < SNIFF_LINES &&
                    (rc = tr_line_reader_next(lr, &line, &len)) != 0; i++) {
        if (rc < 0 || blank(line, len))
            continue;
        tr_log_format f = in->format != TR_LOG_AUTO ? in->format
                                                    : tr_log_sniff(line, len);
        if (f != TR_LOG_COMBINED && !jp)
            jp = tr_json_parser_create(f, &o->pf, &o->fields);
        tr_parse_status st =
            f == TR_LOG_COMBINED ? tr_combined_parse(line, len, &o->pf, &clf,
                                                     &rec)
            : jp ? tr_json_parse(jp, line, len, &rec) : TR_PARSE_NOT_JSON;
        if (in->format == TR_LOG_AUTO)
            in->format = f;
        if (st == TR_PARSE_OK) {
            in->first_ns = rec.t_ns;
            break;
        }
    }
    tr_json_parser_free(jp);
    tr_line_reader_close(lr);
}

static int
by_first_time(const void *a, const void *b)
{
    const input *x = a, *y = b;
    return (x->first_ns > y->first_ns) - (x->first_ns < y->first_ns);
}

static uint64_t
total_size(const input *in, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char err[64];
        if (!strcmp(in[i].path, "-"))
            return 0;
        tr_line_reader *lr = tr_line_reader_open(in[i].path, err,
                                                 sizeof(err));
        if (lr) {
            total += tr_line_reader_size(lr);
            tr_line_reader_close(lr);
        }
    }
    return total;
}

static int
pass(run *r, input *in, size_t n, const char *label)
{
    r->ro = tr_reorder_create(r->o->reorder_window_ns, REORDER_CAP, on_event,
                              r);
    if (!r->ro)
        return -1;
    bool show = r->o->progress < 0 ? isatty(STDERR_FILENO) != 0
                                   : r->o->progress > 0;
    tr_progress_init(&r->prog, show, label, total_size(in, n));
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = process(r, &in[i], &r->rep.inputs[i]);
    tr_reorder_flush(r->ro);
    tr_progress_done(&r->prog);
    if (r->counting) {
        r->rep.reordered = tr_reorder_moved(r->ro);
        r->rep.late = tr_reorder_late(r->ro);
    }
    tr_reorder_free(r->ro);
    r->ro = NULL;
    return rc;
}

/* ----------------------------------------------------------- command -- */

static int
parse_options(int argc, char **argv, options *o)
{
    enum {
        O_FORMAT = 1000, O_LOG_FORMAT, O_PFROM, O_FIELD, O_MAXP, O_GAP,
        O_REORDER, O_TOP, O_SIM, O_ASSUME, O_HTML, O_PROGRESS, O_NOPROGRESS,
    };
    static const struct option longs[] = {
        { "format", required_argument, NULL, O_FORMAT },
        { "log-format", required_argument, NULL, O_LOG_FORMAT },
        { "principal-from", required_argument, NULL, O_PFROM },
        { "field", required_argument, NULL, O_FIELD },
        { "max-principals", required_argument, NULL, O_MAXP },
        { "burst-gap-ms", required_argument, NULL, O_GAP },
        { "reorder-window-s", required_argument, NULL, O_REORDER },
        { "top", required_argument, NULL, O_TOP },
        { "simulate", required_argument, NULL, O_SIM },
        { "assume-duration-ms", required_argument, NULL, O_ASSUME },
        { "html", required_argument, NULL, O_HTML },
        { "progress", no_argument, NULL, O_PROGRESS },
        { "no-progress", no_argument, NULL, O_NOPROGRESS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case O_FORMAT:
            if (strcmp(optarg, "table") && strcmp(optarg, "json") &&
                strcmp(optarg, "csv"))
                goto bad;
            o->format = optarg;
            break;
        case O_LOG_FORMAT:
            if (!strcmp(optarg, "auto"))
                o->log_format = TR_LOG_AUTO;
            else if (!strcmp(optarg, "treaty"))
                o->log_format = TR_LOG_TREATY;
            else if (!strcmp(optarg, "combined"))
                o->log_format = TR_LOG_COMBINED;
            else if (!strcmp(optarg, "nginx-json"))
                o->log_format = TR_LOG_NGINX_JSON;
            else
                goto bad;
            break;
        case O_PFROM:
            if (parse_pfrom(optarg, &o->pf))
                goto bad;
            break;
        case O_FIELD:
            if (parse_field(optarg, &o->fields))
                goto bad;
            break;
        case O_MAXP:
            if (parse_u64(optarg, 50000000, &v) || !v)
                goto bad;
            o->params.max_principals = (uint32_t)v;
            break;
        case O_GAP:
            if (parse_u64(optarg, 86400000, &v) || !v)
                goto bad;
            o->params.burst_gap_ns = v * MS;
            break;
        case O_REORDER:
            if (parse_u64(optarg, 86400, &v))
                goto bad;
            o->reorder_window_ns = (int64_t)v * NS;
            break;
        case O_TOP:
            if (parse_u64(optarg, SIZE_MAX / 2, &v))
                goto bad;
            o->top = (size_t)v;
            o->top_set = true;
            break;
        case O_SIM:
            o->simulate = optarg;
            break;
        case O_ASSUME:
            if (parse_u64(optarg, 86400000, &v))
                goto bad;
            o->assume_dur_ns = v * MS;
            break;
        case O_HTML:
            o->html = optarg;
            break;
        case O_PROGRESS:
            o->progress = 1;
            break;
        case O_NOPROGRESS:
            o->progress = 0;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    return 0;

bad:
    fprintf(stderr, "treaty analyze: bad value '%s' for --%s\n", optarg,
            longs[c - O_FORMAT].name);
    return -1;
}

static int
write_html(const char *path, const tr_analyze_report *rep)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "treaty analyze: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = tr_report_html(rep, f);
    if (fclose(f) != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "treaty analyze: cannot write %s\n", path);
    return rc;
}

int
tr_cmd_analyze(int argc, char **argv)
{
    options o = { 0 };
    o.format = "table";
    o.reorder_window_ns = 60 * NS;
    o.progress = -1;
    tr_traffic_params_default(&o.params);

    int prc = parse_options(argc, argv, &o);
    if (prc)
        return prc > 0 ? 0 : 2;
    if (optind >= argc) {
        fprintf(stderr, "treaty analyze: no log files given\n");
        usage(stderr);
        return 2;
    }
    if (!o.top_set)
        o.top = strcmp(o.format, "table") ? 0 : 30;

    size_t n = (size_t)(argc - optind);
    input *in = calloc(n, sizeof(*in));
    tr_input_stats *is = calloc(n, sizeof(*is));
    run r = { 0 };
    int status = 1;
    if (!in || !is)
        goto out;

    bool has_stdin = false;
    for (size_t i = 0; i < n; i++) {
        in[i].path = argv[optind + (int)i];
        if (!strcmp(in[i].path, "-")) {
            if (has_stdin) {
                fprintf(stderr, "treaty analyze: stdin given twice\n");
                status = 2;
                goto out;
            }
            has_stdin = true;
            in[i].format = o.log_format;
            continue;
        }
        if (access(in[i].path, R_OK) != 0) {
            fprintf(stderr, "treaty analyze: %s: %s\n", in[i].path,
                    strerror(errno));
            goto out;
        }
        sniff(&in[i], &o);
        const char *why = pfrom_error(&o.pf, in[i].format);
        if (why) {
            fprintf(stderr, "treaty analyze: %s (%s): --principal-from: "
                            "%s\n", in[i].path,
                    tr_log_format_name(in[i].format), why);
            status = 2;
            goto out;
        }
    }
    /* Rotated logs in time order, whatever order they were named in.
     * stdin cannot be looked at twice: with it, the given order holds. */
    if (!has_stdin)
        qsort(in, n, sizeof(*in), by_first_time);
    for (size_t i = 0; i < n; i++)
        is[i].path = in[i].path;

    /* A secret seed: a log crafted to collide principal names in the
     * table cannot slow the analysis down. */
    if (getentropy(&o.params.seed, sizeof(o.params.seed)) != 0)
        o.params.seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^
                        (uint64_t)(tr_monotonic_s() * 1e9);
    r.o = &o;
    r.stats = tr_traffic_create(&o.params);
    if (!r.stats)
        goto out;
    r.rep.params = &o.params;
    r.rep.stats = r.stats;
    r.rep.inputs = is;
    r.rep.n_inputs = n;
    r.rep.reorder_window_ns = o.reorder_window_ns;
    r.rep.top = o.top;

    if (o.simulate) {
        r.sim = tr_sim_create(o.simulate, stderr);
        if (!r.sim) {
            status = 2;
            goto out;
        }
        tr_sim_set_stats(r.sim, r.stats);
        tr_sim_set_assumed_duration(r.sim, o.assume_dur_ns);
        r.rep.sim = r.sim;
        r.rep.sim_config = o.simulate;
    }

    /* Pass 1: the statistics (and the simulation too, for stdin). */
    r.do_stats = true;
    r.counting = true;
    r.do_sim = r.sim && has_stdin;
    if (pass(&r, in, n, r.do_sim ? "reading+simulating" : "reading"))
        goto out;
    if (r.sim && !has_stdin) {
        /* Pass 2: every principal's class is known now. */
        r.n_class_of = tr_traffic_count(r.stats);
        r.class_of = malloc(r.n_class_of ? r.n_class_of : 1);
        if (!r.class_of)
            goto out;
        for (uint32_t i = 0; i < r.n_class_of; i++) {
            int c = tr_traffic_budget_class(r.stats, i);
            r.class_of[i] = (int8_t)(c == TR_TRAFFIC_CLASS_AGENT
                                         ? TR_TRAFFIC_CLASS_AGENT
                                         : TR_TRAFFIC_CLASS_HUMAN);
        }
        r.do_stats = false;
        r.counting = false;
        r.do_sim = true;
        if (pass(&r, in, n, "simulating"))
            goto out;
    }
    if (r.sim)
        tr_sim_finish(r.sim);

    int rc;
    if (!strcmp(o.format, "json"))
        rc = tr_report_json(&r.rep, stdout);
    else if (!strcmp(o.format, "csv"))
        rc = tr_report_csv(&r.rep, stdout);
    else
        rc = tr_report_table(&r.rep, stdout);
    if (fflush(stdout) != 0)
        rc = -1;
    if (rc) {
        fprintf(stderr, "treaty analyze: cannot write the report\n");
        goto out;
    }
    if (o.html && write_html(o.html, &r.rep))
        goto out;
    status = 0;

out:
    tr_sim_free(r.sim);
    tr_traffic_free(r.stats);
    free(r.class_of);
    free(in);
    free(is);
    return status;
}
