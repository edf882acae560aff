/*
 * The report of `treaty analyze` as a table (for people), JSON (for
 * programs; the names are documented in docs/analyze.md) or CSV (one
 * row per principal).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/analyze.h"
#include "core/rfc3339.h"

#define NS 1000000000LL

void
tr_report_time(int64_t ns, char *buf, size_t cap)
{
    if (tr_rfc3339_format(ns / 1000000, buf, cap) != 0)
        snprintf(buf, cap, "?");
}

/* Names come from logs and may hold any byte. */
void
tr_report_printable(const char *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static int
by_requests(const void *a, const void *b, void *ctx)
{
    const tr_traffic *t = ctx;
    const tr_traffic_principal *x = tr_traffic_get(t, *(const uint32_t *)a);
    const tr_traffic_principal *y = tr_traffic_get(t, *(const uint32_t *)b);
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    if (x->other != y->other)
        return x->other ? 1 : -1;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->cls > y->cls) - (x->cls < y->cls);
}

uint32_t *
tr_report_order(const tr_traffic *t, size_t *n)
{
    size_t total = tr_traffic_count(t), k = 0;
    uint32_t *v = malloc((total ? total : 1) * sizeof(*v));
    if (!v) {
        *n = 0;
        return NULL;
    }
    for (uint32_t i = 0; i < total; i++)
        if (tr_traffic_get(t, i)->count)
            v[k++] = i;
    qsort_r(v, k, sizeof(*v), by_requests, (void *)t);
    *n = k;
    return v;
}

static bool
any_duration(const tr_traffic *t)
{
    for (uint32_t i = 0; i < tr_traffic_count(t); i++)
        if (tr_traffic_get(t, i)->with_duration)
            return true;
    return false;
}

static bool
any_unverified(const tr_traffic *t)
{
    for (uint32_t i = 0; i < tr_traffic_count(t); i++)
        if (tr_traffic_get(t, i)->unverified)
            return true;
    return false;
}

size_t
tr_report_notes(const tr_analyze_report *r, const char **notes, size_t max)
{
    size_t n = 0;
    const tr_traffic *t = r->stats;
#define NOTE(s)                                                            \
    do {                                                                   \
        if (n < max)                                                       \
            notes[n++] = (s);                                              \
    } while (0)
    if (tr_traffic_resolution(t) >= (uint64_t)NS)
        NOTE("timestamps have 1 s resolution (nginx combined or "
             "second-level times): peaks, gaps, bursts and caps are "
             "approximate");
    if (r->requests && !any_duration(t))
        NOTE("no request durations are logged: concurrency caps come "
             "from the busiest second, assuming each request finishes "
             "within 1 s");
    if (any_unverified(t))
        NOTE("principal names marked unverified were decoded from bearer "
             "tokens WITHOUT checking their signatures");
    if (tr_traffic_overflow_requests(t))
        NOTE("more principals than the tracking cap: the rest are counted "
             "together as (other); raise --max-principals");
    if (r->late)
        NOTE("some requests arrived later than the reorder window and were "
             "counted at the time already reached");
    NOTE("hours of day are UTC");
#undef NOTE
    return n;
}

static double
span_of(const tr_traffic *t)
{
    return (double)(tr_traffic_last_ns(t) - tr_traffic_first_ns(t)) / 1e9;
}

static const char *
basis_name(tr_traffic_cap_basis b)
{
    switch (b) {
    case TR_CAP_INFLIGHT:
        return "peak-inflight";
    case TR_CAP_BURST:
        return "busiest-second";
    case TR_CAP_NONE:
        break;
    }
    return "none";
}

static const char *
display_class(const tr_traffic_principal *p)
{
    const char *c = tr_traffic_class_name(p->cls);
    return c ? c : "-";
}

/* ------------------------------------------------------------ table -- */

static void
table_inputs(const tr_analyze_report *r, FILE *out)
{
    fprintf(out, "treaty analyze: %zu file%s, %" PRIu64 " lines, %" PRIu64
                 " requests, %" PRIu64 " malformed\n",
            r->n_inputs, r->n_inputs == 1 ? "" : "s", r->lines, r->requests,
            r->malformed);
    for (size_t i = 0; i < r->n_inputs; i++) {
        const tr_input_stats *in = &r->inputs[i];
        fprintf(out, "  %s (%s%s): %" PRIu64 " lines, %" PRIu64
                     " malformed%s%s\n",
                in->path, tr_log_format_name(in->format),
                in->gzip ? ", gzip" : "", in->lines, in->malformed,
                in->error[0] ? "; " : "", in->error);
    }
    if (r->malformed) {
        fprintf(out, "  malformed by reason:");
        for (int k = 1; k < TR_PARSE__COUNT; k++)
            if (r->by_reason[k])
                fprintf(out, " %s %" PRIu64, tr_parse_status_name(k),
                        r->by_reason[k]);
        fprintf(out, "\n  first:");
        for (size_t i = 0; i < r->n_examples && i < 3; i++)
            fprintf(out, " %s:%" PRIu64 " (%s)", r->examples[i].file,
                    r->examples[i].line,
                    tr_parse_status_name(r->examples[i].reason));
        fprintf(out, "\n");
    }
}

static void
table_principal_row(const tr_analyze_report *r, uint32_t idx, FILE *out)
{
    const tr_traffic_principal *p = tr_traffic_get(r->stats, idx);
    tr_traffic_summary s;
    tr_traffic_summarize(r->stats, idx, &s);
    char name[64], cv[32], burst[32], infl[32];
    tr_report_printable(p->key, p->key_len, name, sizeof(name));
    if (p->unverified) {
        size_t l = strlen(name) < 17 ? strlen(name) : 17;
        snprintf(name + l, sizeof(name) - l, " (unverified)");
    }
    if (s.gap_cv >= 0)
        snprintf(cv, sizeof(cv), "%.2f", s.gap_cv);
    else
        snprintf(cv, sizeof(cv), "-");
    snprintf(burst, sizeof(burst), "%u/%u", s.burst_max, s.burst_p95);
    if (s.peak_inflight >= 0)
        snprintf(infl, sizeof(infl), "%s%lld",
                 s.inflight_saturated ? ">=" : "",
                 (long long)s.peak_inflight);
    else
        snprintf(infl, sizeof(infl), "-");
    fprintf(out, "%-30.30s %-5s %9" PRIu64 " %8.3f %7u %8u %7s %13s %9s  "
                 "%s\n",
            name, display_class(p), s.count, s.mean_rate, s.peak_1s,
            s.peak_10s, cv, burst, infl, tr_traffic_shape_name(s.shape));
}

static void
table_class(const tr_analyze_report *r, int cls, FILE *out)
{
    tr_traffic_class_rec c;
    tr_traffic_class_recommend(r->stats, cls, &c);
    if (!c.principals)
        return;
    fprintf(out, "  budgets.%s: concurrency %u, rate %g/s, burst %u"
                 "   (%u principal%s, %" PRIu64 " requests)\n",
            tr_traffic_class_name(cls), c.concurrency, c.rate, c.burst,
            c.principals, c.principals == 1 ? "" : "s", c.requests);
    fprintf(out, "      a plain limit of %u per minute per principal would "
                 "have refused %" PRIu64 " of them\n",
            c.minute_limit, c.minute_refused);
}

int
tr_report_table(const tr_analyze_report *r, FILE *out)
{
    const tr_traffic *t = r->stats;
    char a[40], b[40];
    size_t n;
    uint32_t *order = tr_report_order(t, &n);
    if (!order)
        return -1;

    table_inputs(r, out);
    if (!r->requests) {
        fprintf(out, "no requests\n");
        free(order);
        return 0;
    }
    tr_report_time(tr_traffic_first_ns(t), a, sizeof(a));
    tr_report_time(tr_traffic_last_ns(t), b, sizeof(b));
    fprintf(out, "span %s .. %s (%.0f s), %zu principals\n", a, b,
            span_of(t), n);
    if (r->reordered || r->late)
        fprintf(out, "%" PRIu64 " requests put back in time order, %" PRIu64
                     " late\n", r->reordered, r->late);
    const char *notes[8];
    size_t nn = tr_report_notes(r, notes, 8);
    for (size_t i = 0; i < nn; i++)
        fprintf(out, "note: %s\n", notes[i]);

    size_t shown = r->top && r->top < n ? r->top : n;
    fprintf(out, "\n%-30s %-5s %9s %8s %7s %8s %7s %13s %9s  %s\n",
            "PRINCIPAL", "CLASS", "REQUESTS", "MEAN/S", "PEAK1S", "PEAK10S",
            "CV", "BURST MAX/P95", "IN-FLIGHT", "SHAPE");
    for (size_t i = 0; i < shown; i++)
        table_principal_row(r, order[i], out);
    if (shown < n)
        fprintf(out, "(%zu more principals; --top 0 shows all)\n",
                n - shown);

    fprintf(out, "\nWhy:\n");
    for (size_t i = 0; i < shown; i++) {
        const tr_traffic_principal *p = tr_traffic_get(t, order[i]);
        tr_traffic_summary s;
        char name[64];
        tr_traffic_summarize(t, order[i], &s);
        tr_report_printable(p->key, p->key_len, name, sizeof(name));
        fprintf(out, "  %-30.30s %s: %s\n", name,
                tr_traffic_shape_name(s.shape), s.reason);
    }

    bool header = false;
    for (size_t i = 0; i < n; i++) {
        tr_traffic_summary s;
        tr_traffic_summarize(t, order[i], &s);
        if (s.shape != TR_SHAPE_BURSTY_AGENT &&
            s.shape != TR_SHAPE_STEADY_AGENT)
            continue;
        if (!header) {
            fprintf(out, "\nRecommendations for agents (a rate and burst "
                         "that refuse none of the requests seen):\n"
                         "  %-30s %-26s %8s %7s  %s\n",
                    "PRINCIPAL", "CONCURRENCY", "RATE/S", "BURST",
                    "PLAIN PER-MINUTE LIMIT WOULD REFUSE");
            header = true;
        }
        const tr_traffic_principal *p = tr_traffic_get(t, order[i]);
        char name[64], conc[40];
        tr_report_printable(p->key, p->key_len, name, sizeof(name));
        snprintf(conc, sizeof(conc), "%u (%s)", s.concurrency,
                 basis_name(s.concurrency_basis));
        fprintf(out, "  %-30.30s %-26s %8g %7u  %" PRIu64 " at %u/min "
                     "(%gx its mean)\n",
                name, conc, s.rate, s.burst, s.minute_refused,
                s.minute_limit, r->params->minute_headroom);
    }

    fprintf(out, "\nPer class (one budget admitting every principal of the "
                 "class):\n");
    table_class(r, TR_TRAFFIC_CLASS_HUMAN, out);
    table_class(r, TR_TRAFFIC_CLASS_AGENT, out);
    if (tr_traffic_overflow_requests(t))
        fprintf(out, "  %" PRIu64 " requests of untracked principals are "
                     "in (other), not in these figures\n",
                tr_traffic_overflow_requests(t));

    if (r->sim)
        tr_sim_report_table(r->sim, out);
    free(order);
    return ferror(out) ? -1 : 0;
}

/* ------------------------------------------------------------- JSON -- */

static json_t *
jstr(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    /* Not UTF-8: spell the bytes out. */
    char buf[TR_TRAFFIC_KEY_MAX * 4 + 8];
    tr_report_printable(s, n, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *
jtime(int64_t ns)
{
    char buf[40];
    tr_report_time(ns, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *
principal_json(const tr_analyze_report *r, uint32_t idx)
{
    const tr_traffic *t = r->stats;
    const tr_traffic_principal *p = tr_traffic_get(t, idx);
    tr_traffic_summary s;
    tr_traffic_summarize(t, idx, &s);
    const char *cls = tr_traffic_class_name(p->cls);
    const char *bcls = tr_traffic_class_name(tr_traffic_budget_class(t, idx));

    json_t *hours = json_array();
    for (int h = 0; h < TR_TRAFFIC_HOURS; h++)
        json_array_append_new(hours, json_integer(p->hours[h]));
    json_t *gaps = json_array();
    for (int i = 0; i < TR_TRAFFIC_GAP_BINS; i++)
        json_array_append_new(gaps, json_integer(p->gap_hist[i]));
    uint32_t tl[TR_TRAFFIC_TIMELINE_BINS];
    tr_traffic_timeline(t, idx, tl);
    json_t *tline = json_array();
    for (int i = 0; i < TR_TRAFFIC_TIMELINE_BINS; i++)
        json_array_append_new(tline, json_integer(tl[i]));

    json_t *rec = json_null();
    if (!p->other)
        rec = json_pack("{s:i, s:s, s:f, s:i, s:i, s:I}",
                        "concurrency", (json_int_t)s.concurrency,
                        "concurrency_basis", basis_name(s.concurrency_basis),
                        "rate", s.rate, "burst", (json_int_t)s.burst,
                        "per_minute_limit", (json_int_t)s.minute_limit,
                        "per_minute_refused", (json_int_t)s.minute_refused);

    json_t *o = json_object();
    json_object_set_new(o, "principal", jstr(p->key, p->key_len));
    json_object_set_new(o, "other", json_boolean(p->other));
    json_object_set_new(o, "class", cls ? json_string(cls) : json_null());
    json_object_set_new(o, "budget_class",
                        bcls ? json_string(bcls) : json_null());
    json_object_set_new(o, "unverified", json_boolean(p->unverified));
    json_object_set_new(o, "requests", json_integer((json_int_t)s.count));
    json_object_set_new(o, "first", jtime(s.first_ns));
    json_object_set_new(o, "last", jtime(s.last_ns));
    json_object_set_new(o, "mean_rate", json_real(s.mean_rate));
    json_object_set_new(o, "active_rate", json_real(s.active_rate));
    json_object_set_new(o, "peak_1s", json_integer(s.peak_1s));
    json_object_set_new(o, "peak_10s", json_integer(s.peak_10s));
    json_object_set_new(o, "interarrival_mean_s",
                        s.gap_mean_s >= 0 ? json_real(s.gap_mean_s)
                                          : json_null());
    json_object_set_new(o, "interarrival_cv",
                        s.gap_cv >= 0 ? json_real(s.gap_cv) : json_null());
    json_object_set_new(o, "bursts", json_integer((json_int_t)s.bursts));
    json_object_set_new(o, "burst_max", json_integer(s.burst_max));
    json_object_set_new(o, "burst_p95", json_integer(s.burst_p95));
    json_object_set_new(o, "peak_inflight",
                        s.peak_inflight >= 0 ? json_integer(s.peak_inflight)
                                             : json_null());
    json_object_set_new(o, "inflight_saturated",
                        json_boolean(s.inflight_saturated));
    json_object_set_new(o, "hours_utc", hours);
    json_object_set_new(o, "hours_active", json_integer(s.hours_active));
    json_object_set_new(o, "late", json_integer((json_int_t)p->late));
    json_object_set_new(o, "shape",
                        json_string(tr_traffic_shape_name(s.shape)));
    json_object_set_new(o, "reason", json_string(s.reason));
    json_object_set_new(o, "recommendation", rec);
    json_object_set_new(o, "interarrival_hist", gaps);
    json_object_set_new(o, "timeline", tline);
    return o;
}

static json_t *
class_json(const tr_traffic *t, int cls)
{
    tr_traffic_class_rec c;
    tr_traffic_class_recommend(t, cls, &c);
    if (!c.principals)
        return json_null();
    return json_pack("{s:i, s:I, s:i, s:f, s:i, s:i, s:I}",
                     "principals", (json_int_t)c.principals,
                     "requests", (json_int_t)c.requests,
                     "concurrency", (json_int_t)c.concurrency,
                     "rate", c.rate, "burst", (json_int_t)c.burst,
                     "per_minute_limit", (json_int_t)c.minute_limit,
                     "per_minute_refused", (json_int_t)c.minute_refused);
}

static json_t *
summary_json(const tr_analyze_report *r)
{
    const tr_traffic *t = r->stats;
    const tr_traffic_params *k = r->params;
    json_t *o = json_object();
    json_object_set_new(o, "version", json_integer(1));

    json_t *inputs = json_array();
    for (size_t i = 0; i < r->n_inputs; i++) {
        const tr_input_stats *in = &r->inputs[i];
        json_array_append_new(inputs, json_pack(
            "{s:s, s:s, s:b, s:I, s:I, s:I, s:s?}", "file", in->path,
            "format", tr_log_format_name(in->format), "gzip", in->gzip,
            "lines", (json_int_t)in->lines,
            "requests", (json_int_t)in->requests,
            "malformed", (json_int_t)in->malformed,
            "error", in->error[0] ? in->error : NULL));
    }
    json_object_set_new(o, "inputs", inputs);
    json_object_set_new(o, "lines", json_integer((json_int_t)r->lines));
    json_object_set_new(o, "requests", json_integer((json_int_t)r->requests));

    json_t *by = json_object();
    for (int i = 1; i < TR_PARSE__COUNT; i++)
        if (r->by_reason[i])
            json_object_set_new(by, tr_parse_status_name(i),
                                json_integer((json_int_t)r->by_reason[i]));
    json_t *ex = json_array();
    for (size_t i = 0; i < r->n_examples; i++)
        json_array_append_new(ex, json_pack(
            "{s:s, s:I, s:s}", "file", r->examples[i].file,
            "line", (json_int_t)r->examples[i].line,
            "reason", tr_parse_status_name(r->examples[i].reason)));
    json_object_set_new(o, "malformed", json_pack(
        "{s:I, s:o, s:o}", "total", (json_int_t)r->malformed,
        "by_reason", by, "examples", ex));
    json_object_set_new(o, "jwt_undecodable",
                        json_integer((json_int_t)r->jwt_failed));

    json_object_set_new(o, "first", r->requests
                                        ? jtime(tr_traffic_first_ns(t))
                                        : json_null());
    json_object_set_new(o, "last", r->requests
                                       ? jtime(tr_traffic_last_ns(t))
                                       : json_null());
    json_object_set_new(o, "span_s", json_real(span_of(t)));
    json_object_set_new(o, "time_resolution_ms", json_real(
        (double)tr_traffic_resolution(t) / 1e6));
    json_object_set_new(o, "approximate", json_boolean(
        tr_traffic_resolution(t) >= (uint64_t)NS));
    const char *notes[8];
    size_t nn = tr_report_notes(r, notes, 8);
    json_t *na = json_array();
    for (size_t i = 0; i < nn; i++)
        json_array_append_new(na, json_string(notes[i]));
    json_object_set_new(o, "notes", na);
    json_object_set_new(o, "reorder", json_pack(
        "{s:f, s:I, s:I}", "window_s", (double)r->reorder_window_ns / 1e9,
        "reordered", (json_int_t)r->reordered, "late", (json_int_t)r->late));
    json_object_set_new(o, "principals_tracked", json_integer(
        (json_int_t)tr_traffic_count(t) - 1));
    json_object_set_new(o, "principal_cap",
                        json_integer(k->max_principals));
    json_object_set_new(o, "overflow_requests", json_integer(
        (json_int_t)tr_traffic_overflow_requests(t)));
    json_object_set_new(o, "thresholds", json_pack(
        "{s:f, s:i, s:i, s:f, s:f, s:i, s:f, s:i, s:f, s:f}",
        "burst_gap_s", (double)k->burst_gap_ns / 1e9,
        "min_requests", (json_int_t)k->min_requests,
        "burst_agent", (json_int_t)k->burst_agent,
        "cv_bursty", k->cv_bursty, "peak_factor", k->peak_factor,
        "peak_min", (json_int_t)k->peak_min, "cv_periodic", k->cv_periodic,
        "periodic_min", (json_int_t)k->periodic_min,
        "rate_headroom", k->rate_headroom,
        "minute_headroom", k->minute_headroom));

    json_t *bins = json_array();
    for (size_t i = 0; i < TR_TRAFFIC_GAP_BINS; i++) {
        uint64_t lo, hi;
        tr_traffic_gap_bin(i, &lo, &hi);
        json_array_append_new(bins, json_pack(
            "[I, o]", (json_int_t)lo, hi ? json_integer((json_int_t)hi)
                                         : json_null()));
    }
    json_object_set_new(o, "interarrival_bins_ms", bins);
    uint32_t tl[TR_TRAFFIC_TIMELINE_BINS];
    uint64_t width = tr_traffic_timeline(t, 0, tl);
    int64_t start = tr_traffic_first_ns(t);
    json_object_set_new(o, "timeline", json_pack(
        "{s:o, s:f, s:i}", "start",
        r->requests ? jtime(start - start % NS) : json_null(),
        "bin_s", (double)width / 1e9, "bins", TR_TRAFFIC_TIMELINE_BINS));
    return o;
}

static int
dump(json_t *v, FILE *out, size_t flags)
{
    int rc = v ? json_dumpf(v, out, flags | JSON_REAL_PRECISION(6)) : -1;
    json_decref(v);
    return rc;
}

int
tr_report_json(const tr_analyze_report *r, FILE *out)
{
    size_t n;
    uint32_t *order = tr_report_order(r->stats, &n);
    if (!order)
        return -1;
    int rc = 0;
    fputs("{\"report\": ", out);
    rc |= dump(summary_json(r), out, JSON_INDENT(2));
    /* One principal at a time: memory stays flat with many of them. */
    fputs(",\n\"principals\": [\n", out);
    for (size_t i = 0; i < n; i++) {
        rc |= dump(principal_json(r, order[i]), out, JSON_COMPACT);
        fputs(i + 1 < n ? ",\n" : "\n", out);
    }
    fputs("],\n\"classes\": ", out);
    json_t *cl = json_object();
    json_object_set_new(cl, "human", class_json(r->stats,
                                                TR_TRAFFIC_CLASS_HUMAN));
    json_object_set_new(cl, "agent", class_json(r->stats,
                                                TR_TRAFFIC_CLASS_AGENT));
    rc |= dump(cl, out, JSON_INDENT(2));
    fputs(",\n\"simulation\": ", out);
    if (r->sim)
        rc |= dump(tr_sim_report_json(r->sim), out, JSON_INDENT(2));
    else
        fputs("null", out);
    fputs("}\n", out);
    free(order);
    return rc || ferror(out) ? -1 : 0;
}

/* -------------------------------------------------------------- CSV -- */

static void
csv_field(FILE *out, const char *s, size_t n)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}

int
tr_report_csv(const tr_analyze_report *r, FILE *out)
{
    size_t n;
    uint32_t *order = tr_report_order(r->stats, &n);
    if (!order)
        return -1;
    fputs("principal,class,budget_class,unverified,requests,mean_rate,"
          "active_rate,peak_1s,peak_10s,interarrival_mean_s,"
          "interarrival_cv,bursts,burst_max,burst_p95,peak_inflight,"
          "hours_active,shape,reason,rec_concurrency,"
          "rec_concurrency_basis,rec_rate,rec_burst,per_minute_limit,"
          "per_minute_refused\n", out);
    for (size_t i = 0; i < n; i++) {
        const tr_traffic_principal *p = tr_traffic_get(r->stats, order[i]);
        tr_traffic_summary s;
        tr_traffic_summarize(r->stats, order[i], &s);
        char name[TR_TRAFFIC_KEY_MAX * 4 + 8];
        tr_report_printable(p->key, p->key_len, name, sizeof(name));
        csv_field(out, name, strlen(name));
        const char *bc = tr_traffic_class_name(
            tr_traffic_budget_class(r->stats, order[i]));
        fprintf(out, ",%s,%s,%s,%" PRIu64 ",%.6g,%.6g,%u,%u,",
                tr_traffic_class_name(p->cls) ? display_class(p) : "",
                bc ? bc : "", p->unverified ? "true" : "false", s.count,
                s.mean_rate, s.active_rate, s.peak_1s, s.peak_10s);
        if (s.gap_mean_s >= 0)
            fprintf(out, "%.6g", s.gap_mean_s);
        fputc(',', out);
        if (s.gap_cv >= 0)
            fprintf(out, "%.6g", s.gap_cv);
        fprintf(out, ",%" PRIu64 ",%u,%u,", s.bursts, s.burst_max,
                s.burst_p95);
        if (s.peak_inflight >= 0)
            fprintf(out, "%lld", (long long)s.peak_inflight);
        fprintf(out, ",%u,%s,", s.hours_active,
                tr_traffic_shape_name(s.shape));
        csv_field(out, s.reason, strlen(s.reason));
        if (p->other)
            fputs(",,,,,,\n", out);
        else
            fprintf(out, ",%u,%s,%g,%u,%u,%" PRIu64 "\n", s.concurrency,
                    basis_name(s.concurrency_basis), s.rate, s.burst,
                    s.minute_limit, s.minute_refused);
    }
    const char *notes[8];
    size_t nn = tr_report_notes(r, notes, 8);
    /* CSV has no comments: notes go to stderr. */
    for (size_t i = 0; i < nn; i++)
        fprintf(stderr, "treaty analyze: note: %s\n", notes[i]);
    free(order);
    return ferror(out) ? -1 : 0;
}
