/*
 * JSON access logs for `treaty analyze`: treaty's own (src/net/
 * access_log.c: "time" is the request's start in ms) and nginx logs
 * written with `log_format NAME escape=json '{...}'`, whose field names
 * are the operator's choice (tr_json_fields; the usual ones are tried).
 * nginx stamps a line when the response ends: with a logged duration the
 * start is that time minus the duration.
 *
 * Lines are parsed with jansson: JSON logs are not the fast path.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <xxhash.h>

#include "cli/analyze.h"
#include "core/b64url.h"
#include "core/rfc3339.h"

#define NS 1000000000LL
#define MS 1000000LL
#define JWT_CACHE 64

typedef struct {
    uint64_t hash;             /* of the whole header value; 0 empty */
    size_t len;                /* 0: did not decode */
    char key[TR_TRAFFIC_KEY_MAX];
} jwt_slot;

struct tr_json_parser {
    tr_log_format format;
    tr_principal_from pf;
    tr_json_fields f;
    char header_field[128];    /* "http_x_user" for header:X-User */
    json_t *root;              /* of the last line: out's strings */
    jwt_slot jwt[JWT_CACHE];
};

const char *
tr_parse_status_name(tr_parse_status s)
{
    static const char *names[TR_PARSE__COUNT] = {
        [TR_PARSE_OK] = "ok",
        [TR_PARSE_NOT_JSON] = "not-json",
        [TR_PARSE_BAD_TIME] = "bad-time",
        [TR_PARSE_BAD_FIELD] = "bad-field",
        [TR_PARSE_TRUNCATED] = "truncated",
        [TR_PARSE_TOO_LONG] = "too-long",
    };
    return (unsigned)s < TR_PARSE__COUNT ? names[s] : "?";
}

const char *
tr_log_format_name(tr_log_format f)
{
    switch (f) {
    case TR_LOG_AUTO:
        return "auto";
    case TR_LOG_TREATY:
        return "treaty";
    case TR_LOG_COMBINED:
        return "combined";
    case TR_LOG_NGINX_JSON:
        return "nginx-json";
    }
    return "?";
}

tr_log_format
tr_log_sniff(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len)
        return TR_LOG_AUTO;
    if (line[i] != '{')
        return TR_LOG_COMBINED;
    /* treaty's lines open with "time" and carry a request id and a
     * decision; an nginx format would have to copy both names. */
    if (memmem(line, len, "\"request_id\":", 13) &&
        memmem(line, len, "\"decision\":", 11))
        return TR_LOG_TREATY;
    return TR_LOG_NGINX_JSON;
}

tr_json_parser *
tr_json_parser_create(tr_log_format format, const tr_principal_from *pf,
                      const tr_json_fields *fields)
{
    tr_json_parser *jp = calloc(1, sizeof(*jp));
    if (!jp)
        return NULL;
    jp->format = format;
    jp->pf = *pf;
    if (fields)
        jp->f = *fields;
    if (pf->kind == TR_PFROM_HEADER && pf->name) {
        /* nginx names a header's variable $http_ + lower case, '-' as
         * '_'; log formats usually reuse that as the key. */
        size_t n = strlen(pf->name);
        if (n > sizeof(jp->header_field) - 6)
            n = sizeof(jp->header_field) - 6;
        memcpy(jp->header_field, "http_", 5);
        for (size_t i = 0; i < n; i++) {
            char c = (char)tolower((unsigned char)pf->name[i]);
            jp->header_field[5 + i] = c == '-' ? '_' : c;
        }
        jp->header_field[5 + n] = '\0';
    }
    return jp;
}

void
tr_json_parser_free(tr_json_parser *jp)
{
    if (!jp)
        return;
    json_decref(jp->root);
    free(jp);
}

/* ---------------------------------------------------------- helpers -- */

/* The first of the names present in obj (NULL-terminated list). */
static json_t *
pick(json_t *obj, const char *override, const char *const *names)
{
    if (override)
        return json_object_get(obj, override);
    for (size_t i = 0; names[i]; i++) {
        json_t *v = json_object_get(obj, names[i]);
        if (v)
            return v;
    }
    return NULL;
}

static bool
str_of(json_t *v, const char **s, size_t *n)
{
    if (!json_is_string(v))
        return false;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return true;
}

/* A number, or a string holding one ("0.123", as nginx may log). */
static bool
num_of(json_t *v, double *out, bool *integral)
{
    *integral = false;
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        *integral = true;
        return true;
    }
    if (json_is_real(v)) {
        *out = json_real_value(v);
        return isfinite(*out);
    }
    const char *s;
    size_t n;
    if (!str_of(v, &s, &n) || !n || n > 40)
        return false;
    char tmp[48], *end;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, &end);
    if (end == tmp || *end || !isfinite(*out))
        return false;
    *integral = !memchr(s, '.', n) && !memchr(s, 'e', n);
    return true;
}

/* A value used as a principal name: strings as they are, numbers in
 * decimal; "", "-" and null are nobody. */
static bool
name_of(json_t *v, tr_log_record *out)
{
    const char *s;
    size_t n;
    if (str_of(v, &s, &n)) {
        if (!n || (n == 1 && s[0] == '-'))
            return false;
        out->key = s;
        out->key_len = n;
        return true;
    }
    if (json_is_integer(v)) {
        int k = snprintf(out->scratch, sizeof(out->scratch), "%lld",
                         (long long)json_integer_value(v));
        out->key = out->scratch;
        out->key_len = (size_t)k;
        return true;
    }
    return false;
}

static void
anon(json_t *client, tr_log_record *out)
{
    const char *s = NULL;
    size_t n = 0;
    str_of(client, &s, &n);
    out->key = out->scratch;
    out->key_len = tr_anon_key(s, n, out->scratch, sizeof(out->scratch));
}

/* A time value into ns and its resolution.  Numbers over 1e11 are ms,
 * smaller ones seconds; strings are numbers, CLF or RFC 3339. */
static int
time_of(json_t *v, int64_t *t_ns, uint64_t *res_ns)
{
    double d;
    bool integral;
    if (num_of(v, &d, &integral)) {
        if (d <= 0 || d > 1e15)
            return -1;
        if (d > 1e11) {
            *t_ns = (int64_t)llround(d * 1e6);
            *res_ns = MS;
        } else {
            *t_ns = (int64_t)llround(d * 1e3) * MS;
            *res_ns = integral ? NS : MS;
        }
        return 0;
    }
    const char *s;
    size_t n;
    if (!str_of(v, &s, &n) || n < 10 || n > 64)
        return -1;
    if (n == 26 && s[2] == '/') {
        tr_clf_cache c = { 0 };
        *res_ns = NS;
        return tr_clf_time_parse(s, n, &c, t_ns);
    }
    char tmp[72];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    int64_t ms;
    /* Only the timestamp forms: not "now" nor "1h" ago. */
    if (!isdigit((unsigned char)tmp[0]) || !strchr(tmp, '-') ||
        tr_time_arg_parse(tmp, 0, &ms) != 0 || ms < 0)
        return -1;
    *t_ns = ms * MS;
    *res_ns = strchr(tmp, '.') ? MS : NS;
    return 0;
}

/* ------------------------------------------------------------- JWT -- */

size_t
tr_jwt_principal_unverified(const char *value, size_t len, char *out,
                            size_t cap)
{
    if (len > 7 && !strncasecmp(value, "Bearer ", 7)) {
        value += 7;
        len -= 7;
    }
    while (len && *value == ' ') {
        value++;
        len--;
    }
    const char *dot1 = memchr(value, '.', len);
    if (!dot1)
        return 0;
    const char *pl = dot1 + 1;
    const char *dot2 = memchr(pl, '.', len - (size_t)(pl - value));
    if (!dot2)
        return 0;
    size_t plen = (size_t)(dot2 - pl);
    while (plen && pl[plen - 1] == '=')   /* tolerate padding */
        plen--;
    if (!plen || plen > 16384)
        return 0;

    uint8_t *raw = malloc(tr_b64url_decoded_len(plen) + 1);
    size_t rlen;
    size_t n = 0;
    if (!raw)
        return 0;
    if (tr_b64url_decode(pl, plen, raw, tr_b64url_decoded_len(plen) + 1,
                         &rlen) == 0) {
        /* Not verified: only a name is taken, never trusted. */
        json_t *claims = json_loadb((const char *)raw, rlen, 0, NULL);
        const char *sub = json_string_value(json_object_get(claims, "sub"));
        const char *iss = json_string_value(json_object_get(claims, "iss"));
        if (sub && *sub) {
            int k = iss && *iss ? snprintf(out, cap, "%s:%s", iss, sub)
                                : snprintf(out, cap, "%s", sub);
            n = k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap - 1;
        }
        json_decref(claims);
    }
    free(raw);
    return n;
}

static bool
jwt_name(tr_json_parser *jp, json_t *v, tr_log_record *out)
{
    const char *s;
    size_t n;
    if (!str_of(v, &s, &n) || !n || (n == 1 && s[0] == '-'))
        return false;
    /* Tokens repeat: remember the last few decodings. */
    uint64_t h = XXH3_64bits(s, n) | 1;
    jwt_slot *c = &jp->jwt[h % JWT_CACHE];
    if (c->hash != h) {
        c->hash = h;
        c->len = tr_jwt_principal_unverified(s, n, c->key, sizeof(c->key));
    }
    if (!c->len) {
        out->jwt_failed = true;
        return false;
    }
    memcpy(out->scratch, c->key, c->len);
    out->key = out->scratch;
    out->key_len = c->len;
    out->unverified = true;
    return true;
}

/* ----------------------------------------------------------- treaty -- */

static tr_parse_status
parse_treaty(tr_json_parser *jp, json_t *o, tr_log_record *out)
{
    json_t *t = json_object_get(o, "time");
    if (!json_is_integer(t) || json_integer_value(t) <= 0)
        return TR_PARSE_BAD_TIME;
    out->t_ns = json_integer_value(t) * MS;
    out->res_ns = MS;

    json_t *d = json_object_get(o, "duration_ms");
    if (json_is_number(d) && json_number_value(d) >= 0)
        out->dur_ns = (int64_t)llround(json_number_value(d) * 1e6);

    const char *cls = json_string_value(json_object_get(o, "class"));
    if (cls && !strcmp(cls, "human"))
        out->cls = TR_TRAFFIC_CLASS_HUMAN;
    else if (cls && !strcmp(cls, "agent"))
        out->cls = TR_TRAFFIC_CLASS_AGENT;

    json_t *st = json_object_get(o, "status");
    if (json_is_integer(st))
        out->status = (int)json_integer_value(st);
    str_of(json_object_get(o, "tool"), &out->tool, &out->tool_len);
    str_of(json_object_get(o, "method"), &out->method, &out->method_len);
    str_of(json_object_get(o, "path"), &out->path, &out->path_len);

    /* Requests denied before step 7 (identity, route, policy,
     * idempotency) never met the limiter and are not replayed. */
    const char *lim = json_string_value(json_object_get(o, "limiter"));
    const char *dec = json_string_value(json_object_get(o, "decision"));
    if (lim && !strcmp(lim, "replay"))
        out->logged = TR_LOGGED_REPLAY;
    else if (lim && !strcmp(lim, "admitted"))
        out->logged = TR_LOGGED_ADMITTED;
    else if (lim && (!strcmp(lim, "admitted_after_queue") ||
                     !strcmp(lim, "queued")))
        out->logged = TR_LOGGED_QUEUED;
    else if (lim)
        out->logged = TR_LOGGED_REFUSED;
    else if (dec && !strcmp(dec, "deny"))
        out->logged = TR_LOGGED_BEFORE;

    json_t *client = json_object_get(o, "client");
    if (jp->pf.kind == TR_PFROM_FIELD) {
        if (!name_of(json_object_get(o, jp->pf.name), out))
            anon(client, out);
        return TR_PARSE_OK;
    }
    const char *sub, *iss;
    size_t sub_len, iss_len;
    if (!str_of(json_object_get(o, "principal"), &sub, &sub_len) ||
        !sub_len) {
        anon(client, out);
        return TR_PARSE_OK;
    }
    if (str_of(json_object_get(o, "principal_issuer"), &iss, &iss_len) &&
        iss_len) {
        /* The canonical principal is (issuer name, sub). */
        int k = snprintf(out->scratch, sizeof(out->scratch), "%.*s:%.*s",
                         (int)iss_len, iss, (int)sub_len, sub);
        out->key = out->scratch;
        out->key_len = (size_t)k < sizeof(out->scratch)
                           ? (size_t)k : sizeof(out->scratch) - 1;
    } else {
        out->key = sub;
        out->key_len = sub_len;
    }
    return TR_PARSE_OK;
}

/* ------------------------------------------------------- nginx JSON -- */

static const char *const time_names[] = {
    "msec", "time_iso8601", "time_local", "time", "timestamp", "@timestamp",
    NULL,
};
static const char *const dur_s_names[] = { "request_time", NULL };
static const char *const dur_ms_names[] = { "duration_ms", NULL };
static const char *const user_names[] = { "remote_user", "user", NULL };
static const char *const client_names[] = { "remote_addr", "client", NULL };
static const char *const request_names[] = { "request", NULL };
static const char *const method_names[] = { "request_method", "method",
                                             NULL };
static const char *const path_names[] = { "request_uri", "uri", "path",
                                          NULL };
static const char *const status_names[] = { "status", NULL };
static const char *const auth_names[] = { "http_authorization",
                                          "authorization", NULL };
static const char *const none[] = { NULL };

static void
split_request_line(const char *s, size_t n, tr_log_record *out)
{
    const char *sp = memchr(s, ' ', n);
    if (!sp) {
        out->path = s;
        out->path_len = n;
        return;
    }
    out->method = s;
    out->method_len = (size_t)(sp - s);
    const char *p = sp + 1, *e = s + n;
    const char *sp2 = memchr(p, ' ', (size_t)(e - p));
    out->path = p;
    out->path_len = (size_t)((sp2 ? sp2 : e) - p);
}

static bool
nginx_principal(tr_json_parser *jp, json_t *o, tr_log_record *out)
{
    switch (jp->pf.kind) {
    case TR_PFROM_USER:
        return name_of(pick(o, jp->f.user, user_names), out);
    case TR_PFROM_FIELD:
        return name_of(json_object_get(o, jp->pf.name), out);
    case TR_PFROM_HEADER: {
        json_t *v = json_object_get(o, jp->header_field);
        if (!v)
            v = json_object_get(o, jp->pf.name);
        if (!v)
            v = json_object_get(o, jp->header_field + 5);
        return name_of(v, out);
    }
    case TR_PFROM_JWT:
        return jwt_name(jp, pick(o, jp->pf.name, auth_names), out);
    }
    return false;
}

static tr_parse_status
parse_nginx(tr_json_parser *jp, json_t *o, tr_log_record *out)
{
    const tr_json_fields *f = &jp->f;
    json_t *tv = pick(o, f->time, time_names);
    if (!tv || time_of(tv, &out->t_ns, &out->res_ns) != 0)
        return TR_PARSE_BAD_TIME;

    double d;
    bool integral;
    json_t *dv = pick(o, f->duration_s, f->duration_ms ? none : dur_s_names);
    if (dv && num_of(dv, &d, &integral) && d >= 0) {
        out->dur_ns = (int64_t)llround(d * 1e9);
    } else {
        dv = pick(o, f->duration_ms, f->duration_s ? none : dur_ms_names);
        if (dv && num_of(dv, &d, &integral) && d >= 0)
            out->dur_ns = (int64_t)llround(d * 1e6);
    }
    /* nginx writes the line at the end of the request. */
    if (out->dur_ns > 0 && out->dur_ns <= out->t_ns)
        out->t_ns -= out->dur_ns;

    json_t *sv = pick(o, f->status, status_names);
    if (sv) {
        if (!num_of(sv, &d, &integral) || d < 100 || d > 999)
            return TR_PARSE_BAD_FIELD;
        out->status = (int)d;
    }

    const char *s;
    size_t n;
    if (str_of(pick(o, f->request, request_names), &s, &n)) {
        split_request_line(s, n, out);
    } else {
        str_of(pick(o, f->method, method_names), &out->method,
               &out->method_len);
        str_of(pick(o, f->path, path_names), &out->path, &out->path_len);
    }
    if (f->tool)
        str_of(json_object_get(o, f->tool), &out->tool, &out->tool_len);
    if (f->cls) {
        const char *c = json_string_value(json_object_get(o, f->cls));
        if (c && !strcmp(c, "human"))
            out->cls = TR_TRAFFIC_CLASS_HUMAN;
        else if (c && !strcmp(c, "agent"))
            out->cls = TR_TRAFFIC_CLASS_AGENT;
    }

    if (!nginx_principal(jp, o, out))
        anon(pick(o, f->client, client_names), out);
    return TR_PARSE_OK;
}

tr_parse_status
tr_json_parse(tr_json_parser *jp, const char *line, size_t len,
              tr_log_record *out)
{
    memset(out, 0, offsetof(tr_log_record, scratch));
    out->dur_ns = -1;
    out->cls = TR_TRAFFIC_CLASS_UNKNOWN;
    json_decref(jp->root);
    jp->root = NULL;

    json_error_t err;
    json_t *o = json_loadb(line, len, 0, &err);
    if (!o) {
        return json_error_code(&err) == json_error_premature_end_of_input
                   ? TR_PARSE_TRUNCATED
                   : TR_PARSE_NOT_JSON;
    }
    jp->root = o;
    if (!json_is_object(o))
        return TR_PARSE_NOT_JSON;
    return jp->format == TR_LOG_TREATY ? parse_treaty(jp, o, out)
                                       : parse_nginx(jp, o, out);
}
