/*
 * The request target, normalised once (SPEC.md "Routing").  The same
 * normalised path is then routed, authorized, fingerprinted and
 * forwarded, so no later stage can see a different resource than the one
 * that was checked.  The exact rules are in docs/routing.md.
 *
 * Accepted forms (RFC 9112 §3.2):
 *   origin-form    /path[?query]
 *   absolute-form  http://authority[/path][?query], only when the
 *                  authority equals the request's Host (case-insensitive,
 *                  ":80" optional); the path is normalised as above
 *   asterisk-form  "*", only for OPTIONS
 * Refused: authority-form (CONNECT is not supported) and anything else.
 *
 * The path is refused when it holds %2F, %5C, %00 or another encoded
 * control character, a raw backslash, a raw control character, space,
 * DEL, a byte outside US-ASCII or a character RFC 3986 does not allow in
 * a path; a dot segment, raw or encoded; an empty segment ("//"); a
 * malformed percent-encoding; a fragment.  Otherwise the percent-encoding
 * of an unreserved character is replaced by the character, and the hex
 * digits of every other percent-encoding are upper-cased: two spellings
 * of one resource give the same bytes.  Nothing else changes.
 *
 * The query is kept byte-exact (never decoded): it must be visible
 * US-ASCII without '#', with well-formed percent-encodings.
 */
#ifndef TREATY_CORE_TARGET_H
#define TREATY_CORE_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TR_TARGET_OK = 0,
    TR_TARGET_EMPTY,            /* no target, or absolute-form without
                                 * an authority */
    TR_TARGET_BAD_FORM,         /* none of origin/absolute/asterisk */
    TR_TARGET_AUTHORITY_FORM,   /* CONNECT's host:port */
    TR_TARGET_ASTERISK,         /* "*" with a method other than OPTIONS */
    TR_TARGET_BAD_SCHEME,       /* absolute-form other than http:// */
    TR_TARGET_USERINFO,         /* user@ in an absolute-form authority */
    TR_TARGET_FOREIGN_HOST,     /* absolute-form for another authority */
    TR_TARGET_BAD_CHAR,         /* control, space, DEL, non-ASCII, or a
                                 * character not allowed there */
    TR_TARGET_BACKSLASH,        /* raw '\' in the path */
    TR_TARGET_BAD_PERCENT,      /* '%' not followed by two hex digits */
    TR_TARGET_ENCODED_SLASH,    /* %2F */
    TR_TARGET_ENCODED_BACKSLASH, /* %5C */
    TR_TARGET_ENCODED_NUL,      /* %00 */
    TR_TARGET_ENCODED_CONTROL,  /* %01-%1F, %7F */
    TR_TARGET_DOT_SEGMENT,      /* "." or "..", raw or encoded */
    TR_TARGET_EMPTY_SEGMENT,    /* "//" */
    TR_TARGET_FRAGMENT,         /* '#' */
    TR_TARGET_TOO_LONG,         /* normalised path longer than `cap` */
    TR_TARGET__COUNT
} tr_target_status;

typedef struct {
    const char *path;     /* normalised, in the caller's buffer, not
                           * NUL-terminated; "*" for asterisk-form */
    size_t path_len;
    const char *query;    /* after '?', byte-exact, pointing into the
                           * input; NULL when the target has no '?' */
    size_t query_len;
    bool asterisk;        /* OPTIONS * */
    bool absolute;        /* came in absolute-form */
} tr_target;

/*
 * Normalises `target` (len bytes, as received on the request line).
 * method_bit is tr_method_bit() of the request method; host/host_len the
 * value of the request's Host field (NULL when absent), used only for
 * absolute-form.  The normalised path is written to buf (cap bytes; a
 * path never grows, so cap >= len always suffices).
 *
 * @return TR_TARGET_OK and *out filled, or the reason for refusing
 *         (400, problem type invalid-target); *out is then zeroed.
 * Does not allocate.
 */
tr_target_status tr_target_normalize(const char *target, size_t len,
                                     uint32_t method_bit,
                                     const char *host, size_t host_len,
                                     char *buf, size_t cap,
                                     tr_target *out);

/* A phrase for a problem's detail ("encoded slash (%2F) in the path"). */
const char *tr_target_reason(tr_target_status st);

/*
 * True when `path` is an origin-form path without query that
 * tr_target_normalize() accepts and leaves unchanged.  The router uses it
 * to check template literals; the config loader for upstream base paths.
 */
bool tr_target_path_is_normal(const char *path, size_t len);

#endif
