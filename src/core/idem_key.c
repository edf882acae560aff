#include "core/idem_key.h"

#include <string.h>

static const char *const reasons[] = {
    [TR_IDEM_KEY_OK] = "the key is valid",
    [TR_IDEM_KEY_ABSENT] = "the Idempotency-Key field is missing",
    [TR_IDEM_KEY_MULTIPLE] =
        "more than one Idempotency-Key field line is not allowed",
    [TR_IDEM_KEY_EMPTY] = "an empty Idempotency-Key is not allowed",
    [TR_IDEM_KEY_TOO_LONG] =
        "an Idempotency-Key longer than 255 bytes is not allowed",
    [TR_IDEM_KEY_BAD_BYTE] = "control characters and non-ASCII bytes "
                             "in an Idempotency-Key are not allowed",
    [TR_IDEM_KEY_PARAMS] =
        "parameters after the Idempotency-Key are not allowed",
    [TR_IDEM_KEY_SYNTAX] = "the Idempotency-Key must be a quoted "
                           "sf-string or visible ASCII without spaces, "
                           "commas or quotes",
};

const char *
tr_idem_key_reason(tr_idem_key_status st)
{
    if ((size_t)st >= sizeof(reasons) / sizeof(reasons[0]))
        return reasons[TR_IDEM_KEY_SYNTAX];
    return reasons[st];
}

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Appends one decoded byte; counts past the cap so the caller can tell
 * "too long" apart from the other errors once the syntax is known. */
static void
put(tr_idem_key *out, size_t *n, char c)
{
    if (*n < TR_IDEM_KEY_MAX)
        out->bytes[*n] = c;
    (*n)++;
}

/* RFC 9651 §4.2.5 sf-string, strictly: printable ASCII, escapes only for
 * DQUOTE and backslash.  v[0] is the opening quote. */
static tr_idem_key_status
parse_quoted(const char *v, size_t len, tr_idem_key *out, size_t *n)
{
    size_t i = 1;

    for (;;) {
        if (i >= len)
            return TR_IDEM_KEY_SYNTAX;           /* unterminated */
        unsigned char c = (unsigned char)v[i++];

        if (c == '"')
            break;
        if (c < 0x20 || c > 0x7e)
            return TR_IDEM_KEY_BAD_BYTE;
        if (c == '\\') {
            if (i >= len)
                return TR_IDEM_KEY_SYNTAX;
            c = (unsigned char)v[i++];
            if (c != '"' && c != '\\')
                return TR_IDEM_KEY_SYNTAX;
        }
        put(out, n, (char)c);
    }

    if (i == len)
        return TR_IDEM_KEY_OK;
    /* Parameters follow the item directly (`"k";a=1`); report them as
     * such even after stray spaces, since that is what the client meant. */
    while (i < len && is_ows(v[i]))
        i++;
    if (i < len && v[i] == ';')
        return TR_IDEM_KEY_PARAMS;
    return TR_IDEM_KEY_SYNTAX;
}

/* Visible ASCII without SP, comma, DQUOTE; a semicolon reads as the start
 * of sf parameters and is refused as such. */
static tr_idem_key_status
parse_bare(const char *v, size_t len, tr_idem_key *out, size_t *n)
{
    tr_idem_key_status st = TR_IDEM_KEY_OK;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];

        if (c < 0x20 || c > 0x7e)
            return TR_IDEM_KEY_BAD_BYTE;
        if (c == ' ' || c == ',' || c == '"')
            st = TR_IDEM_KEY_SYNTAX;
        else if (c == ';' && st == TR_IDEM_KEY_OK)
            st = TR_IDEM_KEY_PARAMS;
        put(out, n, (char)c);
    }
    return st;
}

tr_idem_key_status
tr_idem_key_parse(const char *value, size_t len, size_t n_lines,
                  tr_idem_key *out)
{
    tr_idem_key_status st;
    size_t n = 0;

    out->len = 0;
    out->bytes[0] = '\0';
    if (n_lines == 0)
        return TR_IDEM_KEY_ABSENT;
    if (n_lines > 1)
        return TR_IDEM_KEY_MULTIPLE;
    if (value == NULL)
        len = 0;

    while (len > 0 && is_ows(value[0])) {
        value++;
        len--;
    }
    while (len > 0 && is_ows(value[len - 1]))
        len--;
    if (len == 0)
        return TR_IDEM_KEY_EMPTY;

    if (value[0] == '"')
        st = parse_quoted(value, len, out, &n);
    else
        st = parse_bare(value, len, out, &n);

    if (st == TR_IDEM_KEY_OK && n == 0)
        st = TR_IDEM_KEY_EMPTY;
    if (st == TR_IDEM_KEY_OK && n > TR_IDEM_KEY_MAX)
        st = TR_IDEM_KEY_TOO_LONG;
    if (st != TR_IDEM_KEY_OK) {
        out->len = 0;
        out->bytes[0] = '\0';
        return st;
    }
    out->len = n;
    out->bytes[n] = '\0';
    return TR_IDEM_KEY_OK;
}

bool
tr_idem_key_equal(const tr_idem_key *a, const tr_idem_key *b)
{
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

bool
tr_idem_applies(const tr_route_cfg *route, uint32_t method_bit)
{
    const uint32_t safe = TR_M_GET | TR_M_HEAD | TR_M_OPTIONS;

    if (route->idempotency.mode == TR_IDEM_OFF)
        return false;
    if (method_bit & safe)
        return false;
    return (route->mutating & method_bit) != 0;
}

tr_idem_presence
tr_idem_check_presence(const tr_route_cfg *route, uint32_t method_bit,
                       bool is_agent, const char *value, size_t len,
                       size_t n_lines, tr_idem_key *key,
                       tr_problem_kind *problem, tr_idem_key_status *why)
{
    tr_idem_key_status st;
    tr_idem_mode mode = route->idempotency.mode;

    st = tr_idem_key_parse(value, len, n_lines, key);
    if (why != NULL)
        *why = st;
    if (!tr_idem_applies(route, method_bit))
        return TR_IDEM_UNKEYED;

    if (st == TR_IDEM_KEY_OK)
        return TR_IDEM_KEYED;
    if (st != TR_IDEM_KEY_ABSENT) {
        *problem = TR_P_IDEM_KEY_INVALID;
        return TR_IDEM_REFUSE;
    }
    if (mode == TR_IDEM_REQUIRED ||
        (mode == TR_IDEM_REQUIRED_FOR_AGENTS && is_agent)) {
        *problem = TR_P_IDEM_KEY_REQUIRED;
        return TR_IDEM_REFUSE;
    }
    return TR_IDEM_UNKEYED;
}
