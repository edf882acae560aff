/*
 * nginx `combined` access log lines, by a hand-written scanner (no
 * regular expressions: this is the fast path, see bench/bench_analyze.sh):
 *
 *   $remote_addr - $remote_user [$time_local] "$request" $status
 *   $body_bytes_sent "$http_referer" "$http_user_agent"
 *
 * nginx escapes '"', '\' and bytes outside printable ASCII in these
 * variables (as \xHH), so a quoted field ends at the next '"'.  A space
 * is not escaped, so the user name is taken up to " [".  Fields after
 * the user agent (custom formats extending combined) are ignored.
 * $time_local is when the line was written (the request's end) at 1 s
 * resolution, and combined logs no duration: it stands for the arrival.
 */
#include <string.h>
#include <strings.h>

#include "cli/analyze.h"

#define NS 1000000000LL

static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

static int
digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        v = v * 10 + (int)d;
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int
tr_clf_time_parse(const char *s, size_t len, tr_clf_cache *c,
                  int64_t *out_ns)
{
    if (len != 26)
        return -1;
    if (c->last_len == 26 && !memcmp(c->last, s, 26)) {
        *out_ns = c->last_ns;
        return 0;
    }
    if (s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' ||
        s[17] != ':' || s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
        return -1;

    int64_t day_s;
    if (!memcmp(c->day, s, 11)) {
        day_s = c->day_s;
    } else {
        int d = digits(s, 2), y = digits(s + 7, 4);
        const char *m = NULL;
        for (int i = 0; i < 12 && !m; i++)
            if (!memcmp(months + 3 * i, s + 3, 3))
                m = months + 3 * i;
        if (d < 1 || d > 31 || y < 0 || !m)
            return -1;
        unsigned mon = (unsigned)((m - months) / 3 + 1);
        day_s = days_from_civil(y, mon, (unsigned)d) * 86400;
        memcpy(c->day, s, 11);
        c->day_s = day_s;
    }
    int hh = digits(s + 12, 2), mm = digits(s + 15, 2);
    int ss = digits(s + 18, 2);
    int oh = digits(s + 22, 2), om = digits(s + 24, 2);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 ||
        oh < 0 || oh > 23 || om < 0 || om > 59)
        return -1;
    int64_t off = (int64_t)(oh * 3600 + om * 60) * (s[21] == '-' ? -1 : 1);
    int64_t t = day_s + hh * 3600 + mm * 60 + ss - off;
    if (t < 0)
        return -1;
    memcpy(c->last, s, 26);
    c->last_len = 26;
    c->last_ns = t * NS;
    *out_ns = c->last_ns;
    return 0;
}

size_t
tr_anon_key(const char *client, size_t len, char *out, size_t cap)
{
    static const char pre[] = "anon@";
    size_t n = sizeof(pre) - 1;
    if (!client || !len || (len == 1 && client[0] == '-')) {
        memcpy(out, "anon", 4);
        return 4;
    }
    if (len > cap - n)
        len = cap - n;
    memcpy(out, pre, n);
    memcpy(out + n, client, len);
    return n + len;
}

/* A quoted field opening at *p (which must be '"'): its body, and *p set
 * past the closing quote.  0 ok, 1 truncated, -1 malformed. */
static int
quoted(const char **p, const char *end, const char **s, size_t *n)
{
    if (*p >= end)
        return 1;
    if (**p != '"')
        return -1;
    const char *q = memchr(*p + 1, '"', (size_t)(end - *p - 1));
    if (!q)
        return 1;
    *s = *p + 1;
    *n = (size_t)(q - *s);
    *p = q + 1;
    return 0;
}

static tr_parse_status
quoted_status(int rc)
{
    return rc > 0 ? TR_PARSE_TRUNCATED : TR_PARSE_BAD_FIELD;
}

static void
split_request(const char *s, size_t n, tr_log_record *out)
{
    const char *sp = memchr(s, ' ', n);
    if (!sp) {
        out->path = s;
        out->path_len = n;
        return;
    }
    out->method = s;
    out->method_len = (size_t)(sp - s);
    const char *t = sp + 1;
    const char *e = s + n;
    /* The protocol is the last word, when there is one. */
    const char *last = e;
    while (last > t && last[-1] != ' ')
        last--;
    if (last > t && (size_t)(e - last) >= 5 && !memcmp(last, "HTTP/", 5))
        e = last - 1;
    out->path = t;
    out->path_len = (size_t)(e - t);
}

static bool
is_dash(const char *s, size_t n)
{
    return !n || (n == 1 && s[0] == '-');
}

tr_parse_status
tr_combined_parse(const char *line, size_t len, const tr_principal_from *pf,
                  tr_clf_cache *cache, tr_log_record *out)
{
    const char *p = line, *end = line + len, *sp;
    memset(out, 0, offsetof(tr_log_record, scratch));
    out->dur_ns = -1;
    out->res_ns = NS;
    out->cls = TR_TRAFFIC_CLASS_UNKNOWN;

    /* $remote_addr, then the ident field ("-"). */
    if (!(sp = memchr(p, ' ', len)))
        return TR_PARSE_TRUNCATED;
    const char *addr = p;
    size_t addr_len = (size_t)(sp - p);
    p = sp + 1;
    /* The ident field is always "-" in nginx: anything else is not a
     * combined line, and only a prefix of "- " is one cut short. */
    if (end - p < 2 || p[0] != '-' || p[1] != ' ')
        return (end - p == 0 || (end - p == 1 && p[0] == '-'))
                   ? TR_PARSE_TRUNCATED
                   : TR_PARSE_BAD_FIELD;
    p += 2;

    /* $remote_user, up to " [". */
    const char *br = memchr(p, '[', (size_t)(end - p));
    if (!br)
        return TR_PARSE_TRUNCATED;
    if (br == p || br[-1] != ' ')
        return TR_PARSE_BAD_FIELD;
    const char *user = p;
    size_t user_len = (size_t)(br - 1 - p);
    p = br + 1;

    if (end - p < 27)
        return TR_PARSE_TRUNCATED;
    if (p[26] != ']' || tr_clf_time_parse(p, 26, cache, &out->t_ns) != 0)
        return TR_PARSE_BAD_TIME;
    p += 27;

    const char *req;
    size_t req_len;
    if (p >= end)
        return TR_PARSE_TRUNCATED;
    if (*p++ != ' ')
        return TR_PARSE_BAD_FIELD;
    int rc = quoted(&p, end, &req, &req_len);
    if (rc)
        return quoted_status(rc);

    /* " $status $body_bytes_sent " */
    if (end - p < 5)
        return TR_PARSE_TRUNCATED;
    if (p[0] != ' ' || p[4] != ' ')
        return TR_PARSE_BAD_FIELD;
    int status = digits(p + 1, 3);
    if (status < 100)
        return TR_PARSE_BAD_FIELD;
    p += 5;
    const char *b = p;
    while (p < end && *p != ' ')
        p++;
    if (p >= end)
        return TR_PARSE_TRUNCATED;
    if (p == b || (digits(b, 1) < 0 && !(p - b == 1 && *b == '-')))
        return TR_PARSE_BAD_FIELD;
    p++;

    const char *ref, *ua;
    size_t ref_len, ua_len;
    if ((rc = quoted(&p, end, &ref, &ref_len)))
        return quoted_status(rc);
    if (p >= end)
        return TR_PARSE_TRUNCATED;
    if (*p++ != ' ')
        return TR_PARSE_BAD_FIELD;
    if ((rc = quoted(&p, end, &ua, &ua_len)))
        return quoted_status(rc);

    out->status = status;
    split_request(req, req_len, out);

    const char *who = user;
    size_t who_len = user_len;
    if (pf->kind == TR_PFROM_HEADER) {
        bool is_ua = !strcasecmp(pf->name, "User-Agent");
        who = is_ua ? ua : ref;
        who_len = is_ua ? ua_len : ref_len;
    }
    if (is_dash(who, who_len)) {
        out->key = out->scratch;
        out->key_len = tr_anon_key(addr, addr_len, out->scratch,
                                   sizeof(out->scratch));
    } else {
        out->key = who;
        out->key_len = who_len;
    }
    return TR_PARSE_OK;
}
