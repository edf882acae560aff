/*
 * The HTML report of `treaty analyze --html FILE`: one self-contained
 * file (inline CSS and SVG, no script, nothing fetched) with, per
 * principal, its inter-arrival histogram and its request-rate timeline.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/analyze.h"

#define HTML_MAX_PRINCIPALS 200   /* the busiest; the file stays small */

static void
esc(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            if (c < 0x20 || c == 0x7f || c >= 0x80)
                fprintf(out, "\\x%02x", c);
            else
                fputc(c, out);
        }
    }
}

static void
escs(FILE *out, const char *s)
{
    esc(out, s, strlen(s));
}

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse}td,th{padding:2px 8px;"
    "text-align:right;border-bottom:1px solid #ddd}"
    "td:first-child,th:first-child{text-align:left}"
    ".p{margin:1.5em 0;padding-top:.5em;border-top:2px solid #ccc}"
    ".why{color:#555}.note{color:#a40}svg{margin-right:2em}"
    ".bursty-agent{color:#b00}.steady-agent{color:#a60}"
    ".human-like{color:#060}";

/* Bars of the inter-arrival histogram (log2 bins of ms). */
static void
svg_histogram(FILE *out, const tr_traffic_principal *p)
{
    const int w = 420, h = 140, left = 10, bottom = 20;
    uint32_t max = 1;
    for (int i = 0; i < TR_TRAFFIC_GAP_BINS; i++)
        if (p->gap_hist[i] > max)
            max = p->gap_hist[i];
    double bw = (double)(w - left) / TR_TRAFFIC_GAP_BINS;
    fprintf(out, "<svg width=\"%d\" height=\"%d\" role=\"img\">"
                 "<text x=\"%d\" y=\"12\" font-size=\"11\">inter-arrival "
                 "time (log scale), max bin %u</text>",
            w, h, left, max);
    for (int i = 0; i < TR_TRAFFIC_GAP_BINS; i++) {
        double bh = (double)p->gap_hist[i] / max * (h - bottom - 20);
        uint64_t lo, hi;
        tr_traffic_gap_bin((size_t)i, &lo, &hi);
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                     "height=\"%.1f\" fill=\"#47a\"><title>%" PRIu64,
                left + i * bw, h - bottom - bh, bw - 1, bh, lo);
        if (hi)
            fprintf(out, "..%" PRIu64 " ms", hi);
        else
            fprintf(out, " ms and more");
        fprintf(out, ": %u</title></rect>", p->gap_hist[i]);
    }
    static const struct {
        int bin;
        const char *label;
    } ticks[] = { { 0, "<1ms" }, { 7, "64ms" }, { 11, "1s" },
                  { 17, "1min" }, { 23, "1h" } };
    for (size_t k = 0; k < sizeof(ticks) / sizeof(ticks[0]); k++) {
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">",
                left + ticks[k].bin * bw, h - 5);
        escs(out, ticks[k].label);
        fputs("</text>", out);
    }
    fprintf(out, "</svg>");
}

/* Requests per second over the whole log, on the common bins. */
static void
svg_timeline(FILE *out, const tr_traffic *t, uint32_t idx)
{
    const int w = 520, h = 140, left = 10, bottom = 20;
    uint32_t tl[TR_TRAFFIC_TIMELINE_BINS];
    uint64_t width = tr_traffic_timeline(t, idx, tl);
    double secs = (double)width / 1e9;
    int64_t start = tr_traffic_first_ns(t);
    start -= start % 1000000000LL;
    /* Only the bins the log reaches: widths double, so up to half of
     * them can lie past its end. */
    int bins = (int)((tr_traffic_last_ns(t) - start) / (int64_t)width) + 1;
    if (bins > TR_TRAFFIC_TIMELINE_BINS)
        bins = TR_TRAFFIC_TIMELINE_BINS;
    uint32_t max = 1;
    for (int i = 0; i < bins; i++)
        if (tl[i] > max)
            max = tl[i];
    double bw = (double)(w - left) / bins;
    fprintf(out, "<svg width=\"%d\" height=\"%d\" role=\"img\">"
                 "<text x=\"%d\" y=\"12\" font-size=\"11\">requests/s "
                 "(bins of %g s), peak %.3g/s</text><polyline fill=\"none\" "
                 "stroke=\"#c50\" stroke-width=\"1.5\" points=\"",
            w, h, left, secs, max / secs);
    for (int i = 0; i < bins; i++) {
        double y = h - bottom - (double)tl[i] / max * (h - bottom - 20);
        fprintf(out, "%.1f,%.1f %.1f,%.1f ", left + i * bw, y,
                left + (i + 1) * bw, y);
    }
    char a[40], b[40];
    tr_report_time(start, a, sizeof(a));
    tr_report_time(start + (int64_t)width * bins, b, sizeof(b));
    fprintf(out, "\"/><text x=\"%d\" y=\"%d\" font-size=\"10\">%s</text>"
                 "<text x=\"%d\" y=\"%d\" font-size=\"10\" "
                 "text-anchor=\"end\">%s</text></svg>",
            left, h - 5, a, w, h - 5, b);
}

static void
class_row(FILE *out, const tr_traffic *t, int cls)
{
    tr_traffic_class_rec c;
    tr_traffic_class_recommend(t, cls, &c);
    if (!c.principals)
        return;
    fprintf(out, "<tr><td>budgets.%s</td><td>%u</td><td>%" PRIu64
                 "</td><td>%u</td><td>%g</td><td>%u</td><td>%u/min: %"
                 PRIu64 "</td></tr>",
            tr_traffic_class_name(cls), c.principals, c.requests,
            c.concurrency, c.rate, c.burst, c.minute_limit,
            c.minute_refused);
}

int
tr_report_html(const tr_analyze_report *r, FILE *out)
{
    const tr_traffic *t = r->stats;
    size_t n;
    uint32_t *order = tr_report_order(t, &n);
    if (!order)
        return -1;
    size_t shown = n < HTML_MAX_PRINCIPALS ? n : HTML_MAX_PRINCIPALS;
    char a[40], b[40];
    tr_report_time(tr_traffic_first_ns(t), a, sizeof(a));
    tr_report_time(tr_traffic_last_ns(t), b, sizeof(b));

    fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
                 "charset=\"utf-8\"><title>treaty analyze</title><style>%s"
                 "</style></head><body>\n<h1>Traffic shape</h1>\n<p>",
            style);
    for (size_t i = 0; i < r->n_inputs; i++) {
        escs(out, r->inputs[i].path);
        fprintf(out, " (%s)%s", tr_log_format_name(r->inputs[i].format),
                i + 1 < r->n_inputs ? ", " : "");
    }
    fprintf(out, ": %" PRIu64 " lines, %" PRIu64 " requests, %" PRIu64
                 " malformed; %s .. %s; %zu principals.</p>\n",
            r->lines, r->requests, r->malformed, a, b, n);
    const char *notes[8];
    size_t nn = tr_report_notes(r, notes, 8);
    for (size_t i = 0; i < nn; i++) {
        fputs("<p class=\"note\">Note: ", out);
        escs(out, notes[i]);
        fputs("</p>\n", out);
    }

    fputs("<h2>Per class</h2><table><tr><th>budget</th><th>principals</th>"
          "<th>requests</th><th>concurrency</th><th>rate/s</th>"
          "<th>burst</th><th>plain per-minute limit refuses</th></tr>",
          out);
    class_row(out, t, TR_TRAFFIC_CLASS_HUMAN);
    class_row(out, t, TR_TRAFFIC_CLASS_AGENT);
    fputs("</table>\n<h2>Principals</h2>", out);
    if (shown < n)
        fprintf(out, "<p>The %zu busiest of %zu.</p>", shown, n);

    for (size_t i = 0; i < shown; i++) {
        const tr_traffic_principal *p = tr_traffic_get(t, order[i]);
        tr_traffic_summary s;
        tr_traffic_summarize(t, order[i], &s);
        const char *shape = tr_traffic_shape_name(s.shape);
        fprintf(out, "<div class=\"p\"><h3>");
        esc(out, p->key, p->key_len);
        if (p->unverified)
            fputs(" <small>(unverified)</small>", out);
        fprintf(out, " <span class=\"%s\">%s</span></h3>"
                     "<p class=\"why\">", shape, shape);
        escs(out, s.reason);
        fprintf(out, "</p><p>%" PRIu64 " requests, mean %.3g/s, peak %u in "
                     "1 s and %u in 10 s, largest burst %u (p95 %u)",
                s.count, s.mean_rate, s.peak_1s, s.peak_10s, s.burst_max,
                s.burst_p95);
        if (s.gap_cv >= 0)
            fprintf(out, ", inter-arrival CV %.2f", s.gap_cv);
        if (s.peak_inflight >= 0)
            fprintf(out, ", peak in flight %lld",
                    (long long)s.peak_inflight);
        if (!p->other)
            fprintf(out, ". Would admit it all: concurrency %u, rate %g/s, "
                         "burst %u",
                    s.concurrency, s.rate, s.burst);
        fputs(".</p>\n", out);
        svg_histogram(out, p);
        svg_timeline(out, t, order[i]);
        fputs("</div>\n", out);
    }
    fputs("</body></html>\n", out);
    free(order);
    return ferror(out) ? -1 : 0;
}
