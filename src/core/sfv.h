/*
 * Structured Field Values (RFC 9651), the parts treaty needs: serialising
 * sf-strings, sf-tokens and lists of sf-strings into caller buffers, and
 * strict parsers for a string or token Item and a list of strings.
 * Parameters on items are checked for syntax and then ignored, as RFC 9651
 * asks of unknown parameters; inner lists, display strings and anything
 * malformed are refused.  No allocation.
 */
#ifndef TREATY_CORE_SFV_H
#define TREATY_CORE_SFV_H

#include <stdbool.h>
#include <stddef.h>

enum {
    TR_SF_OK = 0,
    TR_SF_INVALID = -1,        /* input cannot be (or is not) an sf value */
    TR_SF_NOSPACE = -2         /* the output buffer is too small */
};

/* Every byte printable ASCII (0x20-0x7E): what an sf-string can carry. */
bool tr_sf_string_ok(const char *s, size_t len);

/* Buffer size that always fits the sf-string of len bytes, NUL included. */
size_t tr_sf_string_max(size_t len);

/* Writes "s" with `"` and `\` escaped, NUL-terminated; *outlen excludes
 * the NUL.  TR_SF_INVALID for a byte outside 0x20-0x7E. */
int tr_sf_string(const char *s, size_t len, char *buf, size_t cap,
                 size_t *outlen);

/* sf-token syntax: (ALPHA / "*") *(tchar / ":" / "/"). */
bool tr_sf_token_ok(const char *s, size_t len);
int tr_sf_token(const char *s, size_t len, char *buf, size_t cap,
                size_t *outlen);

/* A list of sf-strings joined by ", ".  Zero items write "" (an empty
 * list means the field is omitted). */
int tr_sf_string_list(const char *const *items, size_t n, char *buf,
                      size_t cap, size_t *outlen);

/* Parses one sf-string starting at in[0] (which must be `"`); unescaped
 * text goes to out (cap bytes, NUL-terminated).  *consumed is the length
 * of the quoted form. */
int tr_sf_parse_string(const char *in, size_t len, size_t *consumed,
                       char *out, size_t cap, size_t *outlen);

/* Length of the sf-token starting at in[0] in *consumed. */
int tr_sf_parse_token(const char *in, size_t len, size_t *consumed);

/* A whole field value that must be one Item whose bare item is a string
 * (e.g. Idempotency-Key) or a token.  Leading and trailing spaces are
 * allowed, parameters skipped. */
int tr_sf_parse_item_string(const char *field, size_t len, char *out,
                            size_t cap, size_t *outlen);
int tr_sf_parse_item_token(const char *field, size_t len, const char **tok,
                           size_t *tok_len);

/* A whole field value that must be a List of sf-strings.  The strings go
 * to out one after another, each NUL-terminated; starts[i] is the offset
 * of item i.  At most max items. */
int tr_sf_parse_string_list(const char *field, size_t len, char *out,
                            size_t cap, size_t *starts, size_t max,
                            size_t *n);

#endif
