#include "core/http_head.h"

#include <string.h>
#include <strings.h>

static const char *const reasons[] = {
    [TR_HEAD_OK] = "ok",
    [TR_HEAD_BARE_CR] = "bare CR in the header block",
    [TR_HEAD_BARE_LF] = "bare LF in the header block",
    [TR_HEAD_OBS_FOLD] = "obsolete line folding",
    [TR_HEAD_BAD_NAME] = "invalid field name",
    [TR_HEAD_BAD_VALUE] = "control character in a field value",
    [TR_HEAD_TOO_MANY_FIELDS] = "too many header fields",
    [TR_HEAD_INCOMPLETE] = "header block not terminated",
    [TR_HEAD_DUPLICATE_HOST] = "more than one Host field",
    [TR_HEAD_MISSING_HOST] = "Host field missing",
    [TR_HEAD_CL_AND_TE] = "Content-Length together with Transfer-Encoding",
    [TR_HEAD_BAD_TE] = "unsupported Transfer-Encoding",
    [TR_HEAD_BAD_CL] = "invalid Content-Length",
    [TR_HEAD_BAD_HOST] = "invalid Host field",
    [TR_HEAD_TE_HTTP10] = "Transfer-Encoding in an HTTP/1.0 request",
    [TR_HEAD_BAD_START_LINE] = "control character in the request line",
};

const char *
tr_head_status_reason(tr_head_status st)
{
    if ((size_t)st >= sizeof(reasons) / sizeof(reasons[0]))
        return "invalid header";
    return reasons[st];
}

/* RFC 9110 tchar. */
static bool
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

tr_head_status
tr_head_check_block(const char *p, size_t len, unsigned max_fields)
{
    size_t i = 0, line_start = 0;
    unsigned fields = 0;
    bool first = true;

    /* One pass over the bytes: every line must end in CRLF, and the block
     * must end with an empty line exactly at len. */
    while (i < len) {
        unsigned char c = (unsigned char)p[i];

        if (c == '\n')
            return TR_HEAD_BARE_LF;
        if (c != '\r') {
            i++;
            continue;
        }
        if (i + 1 >= len || p[i + 1] != '\n')
            return TR_HEAD_BARE_CR;

        /* The line is p[line_start, i). */
        size_t ll = i - line_start;
        const char *line = p + line_start;

        if (ll == 0) {
            if (first)
                return TR_HEAD_INCOMPLETE;
            return i + 2 == len ? TR_HEAD_OK : TR_HEAD_INCOMPLETE;
        }
        if (first) {
            /* The request line: llhttp validates its grammar; here only
             * control characters, which it would otherwise tolerate in
             * some lenient corners. */
            for (size_t k = 0; k < ll; k++) {
                unsigned char b = (unsigned char)line[k];
                if (b < 0x20 || b == 0x7f)
                    return TR_HEAD_BAD_START_LINE;
            }
            first = false;
        } else {
            if (line[0] == ' ' || line[0] == '\t')
                return TR_HEAD_OBS_FOLD;
            if (++fields > max_fields)
                return TR_HEAD_TOO_MANY_FIELDS;
            size_t k = 0;
            while (k < ll && line[k] != ':') {
                if (!is_tchar((unsigned char)line[k]))
                    return TR_HEAD_BAD_NAME;
                k++;
            }
            if (k == 0 || k == ll)
                return TR_HEAD_BAD_NAME;
            for (k++; k < ll; k++) {
                unsigned char b = (unsigned char)line[k];
                if ((b < 0x20 && b != '\t') || b == 0x7f)
                    return TR_HEAD_BAD_VALUE;
            }
        }
        i += 2;
        line_start = i;
    }
    return TR_HEAD_INCOMPLETE;
}

bool
tr_head_name_is(const tr_header *h, const char *lower)
{
    size_t n = strlen(lower);
    return h->name_len == n && strncasecmp(h->name, lower, n) == 0;
}

static bool
value_is(const tr_header *h, const char *lower)
{
    size_t n = strlen(lower);
    return h->value_len == n && strncasecmp(h->value, lower, n) == 0;
}

static bool
is_unreserved_or_sub_delim(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    return c && strchr("-._~!$&'()*+,;=", c) != NULL;
}

static bool
is_hexdig(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

bool
tr_head_host_valid(const char *v, size_t len)
{
    size_t i = 0;

    if (len == 0)
        return true;
    if (v[0] == '[') {
        /* IP-literal: hex digits, ':' and '.' (IPv6 with an embedded
         * IPv4); the address itself is never resolved from a Host. */
        for (i = 1; i < len && v[i] != ']'; i++)
            if (!is_hexdig((unsigned char)v[i]) && v[i] != ':' &&
                v[i] != '.')
                return false;
        if (i >= len || i == 1)
            return false;
        i++;
    } else {
        for (; i < len && v[i] != ':'; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c == '%') {
                if (i + 2 >= len || !is_hexdig((unsigned char)v[i + 1]) ||
                    !is_hexdig((unsigned char)v[i + 2]))
                    return false;
                i += 2;
            } else if (!is_unreserved_or_sub_delim(c)) {
                return false;
            }
        }
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    if (v[i] != ':')
        return false;
    /* An empty port is allowed by the grammar; a number above 65535 is
     * not a port. */
    unsigned long port = 0;
    size_t digits = 0;
    for (i++; i < len; i++, digits++) {
        if (v[i] < '0' || v[i] > '9' || digits >= 5)
            return false;
        port = port * 10 + (unsigned long)(v[i] - '0');
    }
    return port <= 65535;
}

tr_head_status
tr_head_check_fields(const tr_header *h, size_t n, bool http11)
{
    size_t hosts = 0, te = 0;
    const tr_header *cl = NULL;

    for (size_t i = 0; i < n; i++) {
        if (tr_head_name_is(&h[i], "host")) {
            if (++hosts > 1)
                return TR_HEAD_DUPLICATE_HOST;
            if (!tr_head_host_valid(h[i].value, h[i].value_len))
                return TR_HEAD_BAD_HOST;
        } else if (tr_head_name_is(&h[i], "transfer-encoding")) {
            /* Only a single "chunked": gzip or stacked codings would make
             * treaty and the upstream disagree on where the body ends. */
            if (++te > 1 || !value_is(&h[i], "chunked"))
                return TR_HEAD_BAD_TE;
        } else if (tr_head_name_is(&h[i], "content-length")) {
            if (h[i].value_len == 0 || h[i].value_len > 18)
                return TR_HEAD_BAD_CL;
            for (size_t k = 0; k < h[i].value_len; k++)
                if (h[i].value[k] < '0' || h[i].value[k] > '9')
                    return TR_HEAD_BAD_CL;
            if (cl && (cl->value_len != h[i].value_len ||
                       memcmp(cl->value, h[i].value, cl->value_len)))
                return TR_HEAD_BAD_CL;
            cl = &h[i];
        }
    }
    if (cl && te)
        return TR_HEAD_CL_AND_TE;
    /* RFC 9112 §6.1: chunked framing from an HTTP/1.0 client is faulty
     * (a 1.0 intermediary may not have understood it). */
    if (te && !http11)
        return TR_HEAD_TE_HTTP10;
    if (http11 && hosts == 0)
        return TR_HEAD_MISSING_HOST;
    return TR_HEAD_OK;
}

bool
tr_head_is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-authenticate",
        "proxy-authorization",
    };
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (strlen(hop[i]) == len && !strncasecmp(hop[i], name, len))
            return true;
    return false;
}

/* Walks a comma-separated token list, calling back per trimmed element. */
static bool
list_contains(const char *v, size_t len, const char *name, size_t nlen)
{
    size_t i = 0;

    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == nlen && nlen && !strncasecmp(v + s, name, nlen))
            return true;
    }
    return false;
}

bool
tr_head_named_in_connection(const tr_header *h, size_t n, const char *name,
                            size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (tr_head_name_is(&h[i], "connection") &&
            list_contains(h[i].value, h[i].value_len, name, len))
            return true;
    return false;
}

bool
tr_head_list_has(const char *value, size_t len, const char *lower)
{
    return list_contains(value, len, lower, strlen(lower));
}
