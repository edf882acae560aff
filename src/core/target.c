/*
 * Request-target normalisation (core/target.h; rules in docs/routing.md).
 *
 * One pass over the bytes, left to right; the first violation decides the
 * reason.  The normaliser never reads back what it wrote, so it can also
 * run with no output buffer to check whether a path is already normal.
 *
 * Known shortcoming: a reserved character and its percent-encoding ("@"
 * and "%40", ";" and "%3B") stay two spellings, as RFC 3986 §6.2.2.2
 * requires; a backend that decodes them before routing sees one resource
 * where treaty sees two.
 */
#include <string.h>

#include "core/config.h"
#include "core/target.h"

static const char hexdig[] = "0123456789ABCDEF";

static const char *const reasons[TR_TARGET__COUNT] = {
    [TR_TARGET_OK] = "target accepted",
    [TR_TARGET_EMPTY] = "empty request target",
    [TR_TARGET_BAD_FORM] = "request target is not a path",
    [TR_TARGET_AUTHORITY_FORM] = "CONNECT (authority-form) is not supported",
    [TR_TARGET_ASTERISK] = "'*' target is allowed only with OPTIONS",
    [TR_TARGET_BAD_SCHEME] = "absolute-form target with a scheme other "
                             "than http",
    [TR_TARGET_USERINFO] = "user information in the request target",
    [TR_TARGET_FOREIGN_HOST] = "absolute-form target names a host other "
                               "than the Host field",
    [TR_TARGET_BAD_CHAR] = "character not allowed in the request target",
    [TR_TARGET_BACKSLASH] = "backslash in the path",
    [TR_TARGET_BAD_PERCENT] = "malformed percent-encoding",
    [TR_TARGET_ENCODED_SLASH] = "encoded slash (%2F) in the path",
    [TR_TARGET_ENCODED_BACKSLASH] = "encoded backslash (%5C) in the path",
    [TR_TARGET_ENCODED_NUL] = "encoded NUL (%00) in the path",
    [TR_TARGET_ENCODED_CONTROL] = "encoded control character in the path",
    [TR_TARGET_DOT_SEGMENT] = "dot segment ('.' or '..') in the path",
    [TR_TARGET_EMPTY_SEGMENT] = "empty path segment ('//')",
    [TR_TARGET_FRAGMENT] = "fragment ('#') in the request target",
    [TR_TARGET_TOO_LONG] = "request path too long",
};

const char *
tr_target_reason(tr_target_status st)
{
    if ((unsigned)st >= TR_TARGET__COUNT || reasons[st] == NULL)
        return "invalid request target";
    return reasons[st];
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool
is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
is_unreserved(unsigned char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

static bool
is_sub_delim(unsigned char c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* A raw byte allowed in a path segment (RFC 3986 pchar minus pct). */
static bool
is_pchar(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* The reason a raw byte that is not a pchar is refused. */
static tr_target_status
bad_raw(unsigned char c)
{
    if (c == '\\')
        return TR_TARGET_BACKSLASH;
    if (c == '#')
        return TR_TARGET_FRAGMENT;
    return TR_TARGET_BAD_CHAR;
}

typedef struct {
    char *buf;        /* NULL: check only */
    size_t cap;
    size_t len;
    bool changed;     /* output differs from input */
} out_state;

static bool
emit(out_state *o, char c)
{
    if (o->len >= o->cap)
        return false;
    if (o->buf != NULL)
        o->buf[o->len] = c;
    o->len++;
    return true;
}

/*
 * Normalises the path p[0..n) which starts with '/' and ends before any
 * '?'.  Segment by segment: a segment is refused when it is empty and not
 * the last, or when it decodes to "." or "..".
 */
static tr_target_status
norm_path(const unsigned char *p, size_t n, out_state *o)
{
    size_t seg_len = 0;      /* decoded bytes in the current segment */
    bool seg_dots = true;    /* every decoded byte so far is '.' */
    size_t i = 1;

    if (!emit(o, '/'))
        return TR_TARGET_TOO_LONG;
    for (;;) {
        if (i == n || p[i] == '/') {
            if (seg_dots && seg_len >= 1 && seg_len <= 2)
                return TR_TARGET_DOT_SEGMENT;
            if (i == n)
                return TR_TARGET_OK;
            if (seg_len == 0)
                return TR_TARGET_EMPTY_SEGMENT;
            if (!emit(o, '/'))
                return TR_TARGET_TOO_LONG;
            seg_len = 0;
            seg_dots = true;
            i++;
            continue;
        }

        unsigned char c = p[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(p[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return TR_TARGET_BAD_PERCENT;
            unsigned char v = (unsigned char)(hi << 4 | lo);
            if (v == '/')
                return TR_TARGET_ENCODED_SLASH;
            if (v == '\\')
                return TR_TARGET_ENCODED_BACKSLASH;
            if (v == 0)
                return TR_TARGET_ENCODED_NUL;
            if (v < 0x20 || v == 0x7f)
                return TR_TARGET_ENCODED_CONTROL;
            if (is_unreserved(v)) {
                if (!emit(o, (char)v))
                    return TR_TARGET_TOO_LONG;
                o->changed = true;
            } else {
                if (!emit(o, '%') || !emit(o, hexdig[hi]) ||
                    !emit(o, hexdig[lo]))
                    return TR_TARGET_TOO_LONG;
                if (p[i + 1] != hexdig[hi] || p[i + 2] != hexdig[lo])
                    o->changed = true;
            }
            seg_dots = seg_dots && v == '.';
            seg_len++;
            i += 3;
            continue;
        }
        if (!is_pchar(c))
            return bad_raw(c);
        if (!emit(o, (char)c))
            return TR_TARGET_TOO_LONG;
        seg_dots = seg_dots && c == '.';
        seg_len++;
        i++;
    }
}

/* The query: visible US-ASCII except '#', percent-encodings well formed.
 * Kept byte-exact. */
static tr_target_status
check_query(const unsigned char *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = q[i];
        if (c == '#')
            return TR_TARGET_FRAGMENT;
        if (c <= 0x20 || c >= 0x7f)
            return TR_TARGET_BAD_CHAR;
        if (c == '%') {
            if (i + 2 >= n || hexval(q[i + 1]) < 0 || hexval(q[i + 2]) < 0)
                return TR_TARGET_BAD_PERCENT;
            i += 2;
        }
    }
    return TR_TARGET_OK;
}

static unsigned char
lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Drops a trailing ":80" or ":" (the default port for http). */
static size_t
without_default_port(const char *a, size_t n)
{
    if (n >= 3 && memcmp(a + n - 3, ":80", 3) == 0)
        return n - 3;
    if (n >= 1 && a[n - 1] == ':')
        return n - 1;
    return n;
}

static bool
same_authority(const char *a, size_t an, const char *b, size_t bn)
{
    an = without_default_port(a, an);
    bn = without_default_port(b, bn);
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool
is_authority_char(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '[' ||
           c == ']' || c == '%';
}

/*
 * Splits an absolute-form target "scheme://authority[path][?query]".
 * On success *rest points at the path (or '?', or the end).
 */
static tr_target_status
parse_absolute(const unsigned char *t, size_t len, const char *host,
               size_t host_len, size_t *rest)
{
    size_t i = 0;

    while (i < len && t[i] != ':')
        i++;
    if (i != 4 || lower(t[0]) != 'h' || lower(t[1]) != 't' ||
        lower(t[2]) != 't' || lower(t[3]) != 'p')
        return TR_TARGET_BAD_SCHEME;
    i += 3; /* "://", checked by the caller */

    size_t a0 = i;
    while (i < len && t[i] != '/' && t[i] != '?' && t[i] != '#') {
        if (t[i] == '@')
            return TR_TARGET_USERINFO;
        if (!is_authority_char(t[i]))
            return TR_TARGET_BAD_CHAR;
        i++;
    }
    if (i == a0)
        return TR_TARGET_EMPTY;
    if (host == NULL ||
        !same_authority((const char *)t + a0, i - a0, host, host_len))
        return TR_TARGET_FOREIGN_HOST;
    *rest = i;
    return TR_TARGET_OK;
}

/* "scheme://" at the start: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
static bool
looks_absolute(const unsigned char *t, size_t len)
{
    size_t i = 0;

    if (len == 0 || !is_alpha(t[0]))
        return false;
    while (i < len && (is_alpha(t[i]) || (t[i] >= '0' && t[i] <= '9') ||
                       t[i] == '+' || t[i] == '-' || t[i] == '.'))
        i++;
    return len - i >= 3 && memcmp(t + i, "://", 3) == 0;
}

tr_target_status
tr_target_normalize(const char *target, size_t len, uint32_t method_bit,
                    const char *host, size_t host_len, char *buf,
                    size_t cap, tr_target *out)
{
    const unsigned char *t = (const unsigned char *)target;
    out_state o = { buf, cap, 0, false };
    tr_target_status st;
    size_t start = 0, end;

    memset(out, 0, sizeof(*out));
    if (method_bit == TR_M_CONNECT)
        return TR_TARGET_AUTHORITY_FORM;
    if (target == NULL || len == 0)
        return TR_TARGET_EMPTY;

    if (len == 1 && t[0] == '*') {
        if (method_bit != TR_M_OPTIONS)
            return TR_TARGET_ASTERISK;
        if (cap < 1)
            return TR_TARGET_TOO_LONG;
        buf[0] = '*';
        out->path = buf;
        out->path_len = 1;
        out->asterisk = true;
        return TR_TARGET_OK;
    }

    if (t[0] != '/') {
        if (!looks_absolute(t, len))
            return TR_TARGET_BAD_FORM;
        st = parse_absolute(t, len, host, host_len, &start);
        if (st != TR_TARGET_OK)
            return st;
        out->absolute = true;
    }

    end = start;
    while (end < len && t[end] != '?')
        end++;
    if (end == start) {
        /* absolute-form with an empty path stands for "/" */
        if (!emit(&o, '/'))
            return TR_TARGET_TOO_LONG;
    } else {
        if (t[start] != '/')
            return t[start] == '#' ? TR_TARGET_FRAGMENT : TR_TARGET_BAD_FORM;
        st = norm_path(t + start, end - start, &o);
        if (st != TR_TARGET_OK)
            return st;
    }

    if (end < len) {
        st = check_query(t + end + 1, len - end - 1);
        if (st != TR_TARGET_OK)
            return st;
        out->query = target + end + 1;
        out->query_len = len - end - 1;
    }
    out->path = buf;
    out->path_len = o.len;
    return TR_TARGET_OK;
}

bool
tr_target_path_is_normal(const char *path, size_t len)
{
    out_state o = { NULL, (size_t)-1, 0, false };

    if (path == NULL || len == 0 || path[0] != '/')
        return false;
    if (memchr(path, '?', len) != NULL)
        return false;
    if (norm_path((const unsigned char *)path, len, &o) != TR_TARGET_OK)
        return false;
    return !o.changed && o.len == len;
}
