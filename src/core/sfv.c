#include "core/sfv.h"

#include <string.h>

static bool
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_lcalpha(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

/* RFC 9110 tchar. */
static bool
is_tchar(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool
tr_sf_string_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

size_t
tr_sf_string_max(size_t len)
{
    return 2 * len + 3;
}

int
tr_sf_string(const char *s, size_t len, char *buf, size_t cap,
             size_t *outlen)
{
    size_t pos = 0;

    if (!tr_sf_string_ok(s, len))
        return TR_SF_INVALID;
    if (cap < 3)
        return TR_SF_NOSPACE;
    buf[pos++] = '"';
    for (size_t i = 0; i < len; i++) {
        bool esc = s[i] == '"' || s[i] == '\\';

        if (pos + (esc ? 2 : 1) + 2 > cap)
            return TR_SF_NOSPACE;
        if (esc)
            buf[pos++] = '\\';
        buf[pos++] = s[i];
    }
    buf[pos++] = '"';
    buf[pos] = '\0';
    *outlen = pos;
    return TR_SF_OK;
}

bool
tr_sf_token_ok(const char *s, size_t len)
{
    if (len == 0 || !(is_alpha((unsigned char)s[0]) || s[0] == '*'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_tchar((unsigned char)s[i]) && s[i] != ':' && s[i] != '/')
            return false;
    return true;
}

int
tr_sf_token(const char *s, size_t len, char *buf, size_t cap,
            size_t *outlen)
{
    if (!tr_sf_token_ok(s, len))
        return TR_SF_INVALID;
    if (cap < len + 1)
        return TR_SF_NOSPACE;
    memcpy(buf, s, len);
    buf[len] = '\0';
    *outlen = len;
    return TR_SF_OK;
}

int
tr_sf_string_list(const char *const *items, size_t n, char *buf,
                  size_t cap, size_t *outlen)
{
    size_t pos = 0, len;
    int rc;

    if (cap < 1)
        return TR_SF_NOSPACE;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            if (pos + 3 > cap)
                return TR_SF_NOSPACE;
            buf[pos++] = ',';
            buf[pos++] = ' ';
        }
        rc = tr_sf_string(items[i], strlen(items[i]), buf + pos, cap - pos,
                          &len);
        if (rc != TR_SF_OK)
            return rc;
        pos += len;
    }
    buf[pos] = '\0';
    *outlen = pos;
    return TR_SF_OK;
}

/* RFC 9651 §4.2.5. */
int
tr_sf_parse_string(const char *in, size_t len, size_t *consumed, char *out,
                   size_t cap, size_t *outlen)
{
    size_t o = 0;

    if (len == 0 || in[0] != '"')
        return TR_SF_INVALID;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == '"') {
            if (out) {
                if (o >= cap)
                    return TR_SF_NOSPACE;
                out[o] = '\0';
            }
            *consumed = i + 1;
            if (outlen)
                *outlen = o;
            return TR_SF_OK;
        }
        if (c == '\\') {
            if (++i == len || (in[i] != '"' && in[i] != '\\'))
                return TR_SF_INVALID;
            c = (unsigned char)in[i];
        } else if (c < 0x20 || c > 0x7e) {
            return TR_SF_INVALID;
        }
        if (out) {
            if (o + 1 >= cap)
                return TR_SF_NOSPACE;
            out[o] = (char)c;
        }
        o++;
    }
    return TR_SF_INVALID; /* no closing quote */
}

/* RFC 9651 §4.2.6. */
int
tr_sf_parse_token(const char *in, size_t len, size_t *consumed)
{
    size_t i = 1;

    if (len == 0 || !(is_alpha((unsigned char)in[0]) || in[0] == '*'))
        return TR_SF_INVALID;
    while (i < len && (is_tchar((unsigned char)in[i]) || in[i] == ':' ||
                       in[i] == '/'))
        i++;
    *consumed = i;
    return TR_SF_OK;
}

/* Integer or Decimal (§4.2.4), only to step over it. */
static int
skip_number(const char *in, size_t len, size_t *pos)
{
    size_t i = *pos, digits = 0, frac = 0;

    if (i < len && in[i] == '-')
        i++;
    while (i < len && is_digit((unsigned char)in[i])) {
        i++;
        digits++;
    }
    if (digits == 0)
        return TR_SF_INVALID;
    if (i < len && in[i] == '.') {
        if (digits > 12)
            return TR_SF_INVALID;
        i++;
        while (i < len && is_digit((unsigned char)in[i])) {
            i++;
            frac++;
        }
        if (frac == 0 || frac > 3)
            return TR_SF_INVALID;
    } else if (digits > 15) {
        return TR_SF_INVALID;
    }
    *pos = i;
    return TR_SF_OK;
}

/* Byte Sequence (§4.2.7): ":" base64 ":". */
static int
skip_bytes(const char *in, size_t len, size_t *pos)
{
    size_t i = *pos + 1;

    while (i < len && in[i] != ':') {
        unsigned char c = (unsigned char)in[i];

        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '/' &&
            c != '=')
            return TR_SF_INVALID;
        i++;
    }
    if (i == len)
        return TR_SF_INVALID;
    *pos = i + 1;
    return TR_SF_OK;
}

/* Any bare item except Display String, stepped over. */
static int
skip_bare_item(const char *in, size_t len, size_t *pos)
{
    size_t n;
    unsigned char c;

    if (*pos >= len)
        return TR_SF_INVALID;
    c = (unsigned char)in[*pos];
    if (c == '-' || is_digit(c))
        return skip_number(in, len, pos);
    if (c == '"') {
        if (tr_sf_parse_string(in + *pos, len - *pos, &n, NULL, 0, NULL))
            return TR_SF_INVALID;
        *pos += n;
        return TR_SF_OK;
    }
    if (c == ':')
        return skip_bytes(in, len, pos);
    if (c == '?') {
        if (*pos + 1 >= len || (in[*pos + 1] != '0' && in[*pos + 1] != '1'))
            return TR_SF_INVALID;
        *pos += 2;
        return TR_SF_OK;
    }
    if (c == '@') {
        ++*pos;
        return skip_number(in, len, pos);
    }
    if (tr_sf_parse_token(in + *pos, len - *pos, &n) != TR_SF_OK)
        return TR_SF_INVALID;
    *pos += n;
    return TR_SF_OK;
}

/* Parameters (§4.2.3.2): *( ";" *SP key [ "=" bare-item ] ). */
static int
skip_params(const char *in, size_t len, size_t *pos)
{
    size_t i = *pos;

    while (i < len && in[i] == ';') {
        i++;
        while (i < len && in[i] == ' ')
            i++;
        if (i >= len || !(is_lcalpha((unsigned char)in[i]) || in[i] == '*'))
            return TR_SF_INVALID;
        while (i < len && (is_lcalpha((unsigned char)in[i]) ||
                           is_digit((unsigned char)in[i]) ||
                           (in[i] && strchr("_-.*", in[i]))))
            i++;
        if (i < len && in[i] == '=') {
            i++;
            if (skip_bare_item(in, len, &i) != TR_SF_OK)
                return TR_SF_INVALID;
        }
    }
    *pos = i;
    return TR_SF_OK;
}

static size_t
skip_sp(const char *in, size_t len, size_t i)
{
    while (i < len && in[i] == ' ')
        i++;
    return i;
}

static size_t
skip_ows(const char *in, size_t len, size_t i)
{
    while (i < len && (in[i] == ' ' || in[i] == '\t'))
        i++;
    return i;
}

int
tr_sf_parse_item_string(const char *field, size_t len, char *out,
                        size_t cap, size_t *outlen)
{
    size_t i = skip_sp(field, len, 0), n;
    int rc;

    rc = tr_sf_parse_string(field + i, len - i, &n, out, cap, outlen);
    if (rc != TR_SF_OK)
        return rc;
    i += n;
    if (skip_params(field, len, &i) != TR_SF_OK)
        return TR_SF_INVALID;
    return skip_sp(field, len, i) == len ? TR_SF_OK : TR_SF_INVALID;
}

int
tr_sf_parse_item_token(const char *field, size_t len, const char **tok,
                       size_t *tok_len)
{
    size_t i = skip_sp(field, len, 0), n;

    if (tr_sf_parse_token(field + i, len - i, &n) != TR_SF_OK)
        return TR_SF_INVALID;
    *tok = field + i;
    *tok_len = n;
    i += n;
    if (skip_params(field, len, &i) != TR_SF_OK)
        return TR_SF_INVALID;
    return skip_sp(field, len, i) == len ? TR_SF_OK : TR_SF_INVALID;
}

int
tr_sf_parse_string_list(const char *field, size_t len, char *out,
                        size_t cap, size_t *starts, size_t max, size_t *n)
{
    size_t i = skip_sp(field, len, 0), o = 0, used, slen;
    int rc;

    *n = 0;
    while (i < len) {
        if (*n == max)
            return TR_SF_NOSPACE;
        if (o >= cap)
            return TR_SF_NOSPACE;
        rc = tr_sf_parse_string(field + i, len - i, &used, out + o,
                                cap - o, &slen);
        if (rc != TR_SF_OK)
            return rc;
        starts[(*n)++] = o;
        o += slen + 1;
        i += used;
        if (skip_params(field, len, &i) != TR_SF_OK)
            return TR_SF_INVALID;
        i = skip_ows(field, len, i);
        if (i == len)
            return TR_SF_OK;
        if (field[i] != ',')
            return TR_SF_INVALID;
        i = skip_ows(field, len, i + 1);
        if (i == len)
            return TR_SF_INVALID; /* trailing comma */
    }
    return TR_SF_OK;
}
