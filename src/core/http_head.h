/*
 * Checks on a raw HTTP/1.1 header block that llhttp (8.1, as Debian ships
 * it) lets through but a gateway must not pass on: request smuggling
 * vectors and fields that cannot be forwarded safely (SPEC.md
 * "Hardening").  Pure: bytes in, a verdict out.
 */
#ifndef TREATY_CORE_HTTP_HEAD_H
#define TREATY_CORE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;         /* without surrounding OWS */
    size_t value_len;
} tr_header;

typedef enum {
    TR_HEAD_OK = 0,
    TR_HEAD_BARE_CR,          /* CR not followed by LF */
    TR_HEAD_BARE_LF,          /* LF without CR before it */
    TR_HEAD_OBS_FOLD,         /* field line starting with SP or HT */
    TR_HEAD_BAD_NAME,         /* field name not a token, or empty */
    TR_HEAD_BAD_VALUE,        /* NUL, other CTLs or DEL in a value */
    TR_HEAD_TOO_MANY_FIELDS,
    TR_HEAD_INCOMPLETE,       /* no empty line ends the block */
    TR_HEAD_DUPLICATE_HOST,
    TR_HEAD_MISSING_HOST,     /* HTTP/1.1 requires Host */
    TR_HEAD_CL_AND_TE,
    TR_HEAD_BAD_TE,           /* anything but exactly "chunked" */
    TR_HEAD_BAD_CL,           /* not digits, or differing copies */
    TR_HEAD_BAD_HOST,         /* not uri-host [ ":" port ] */
    TR_HEAD_TE_HTTP10,        /* Transfer-Encoding on HTTP/1.0 */
    TR_HEAD_BAD_START_LINE,   /* control bytes in the request line */
} tr_head_status;

const char *tr_head_status_reason(tr_head_status st);

/*
 * Validates the syntax of a header block: the start line, the field lines
 * and the closing empty line, which must end exactly at p + len.  Refuses
 * bare CR or LF anywhere, obsolete line folding, non-token field names and
 * control characters in values.  At most max_fields field lines.
 */
tr_head_status tr_head_check_block(const char *p, size_t len,
                                   unsigned max_fields);

/*
 * Framing and identity rules over parsed fields: one Host (required when
 * http11), not Content-Length together with Transfer-Encoding, TE only
 * "chunked", Content-Length digits and all copies equal.
 */
tr_head_status tr_head_check_fields(const tr_header *h, size_t n,
                                    bool http11);

/* Whether a Host value is uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986
 * §3.2.2): a reg-name or IPv4 address, or an IP-literal in brackets, and
 * a port of at most 65535.  The empty value is valid. */
bool tr_head_host_valid(const char *v, size_t len);

/* Case-insensitive comparison of a field name with a lower-case name. */
bool tr_head_name_is(const tr_header *h, const char *lower);

/* True for the hop-by-hop fields of RFC 9110 §7.6.1 and their common
 * relatives (Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade,
 * Transfer-Encoding, Connection). */
bool tr_head_is_hop_by_hop(const char *name, size_t len);

/*
 * Whether `name` is listed in any Connection field among h[0..n): those
 * fields are hop-by-hop too and are never forwarded.
 */
bool tr_head_named_in_connection(const tr_header *h, size_t n,
                                 const char *name, size_t len);

/* Token list membership, case-insensitive ("close", "100-continue"). */
bool tr_head_list_has(const char *value, size_t len, const char *lower);

#endif
