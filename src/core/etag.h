/*
 * Entity tags (RFC 9110 §8.8.3, §13.1.1, §13.1.2): parsing the If-Match
 * and If-None-Match lists a client sends, the two comparison functions,
 * and the strong ETag treaty synthesizes for backends that have none it
 * can trust (SPEC.md §5).
 *
 * Grammar, as parsed here (field values are untrusted input):
 *
 *   If-Match / If-None-Match = "*" / #entity-tag
 *   entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE     ("W" is upper case)
 *   etagc      = %x21 / %x23-7E / %x80-FF
 *
 * A list is the union of every field line of the same name (RFC 9110
 * §5.3); empty list elements and OWS around commas are accepted, as the
 * #rule asks of recipients.  "*" must stand alone: mixing it with tags,
 * unquoted tags, a lower-case "w/", a missing closing quote or a byte
 * outside etagc makes the whole field invalid.  Parsing never allocates;
 * the parsed tags point into the field values.
 *
 * Synthesized ETags: SHA-256 over
 *
 *   "treaty-etag/1" 0x00 mode content-coding 0x00 bytes
 *
 * where mode is 'J' when the bytes are the canonical JSON form (keys
 * sorted, no whitespace, configured top-level fields removed) and 'R'
 * when they are the body as received; content-coding is the response's
 * Content-Encoding, lower-cased without spaces ("" for none or
 * "identity"), so a gzip and an identity representation of the same data
 * never share a tag.  The digest is written as base64url without padding
 * between double quotes: 45 characters, always strong.
 */
#ifndef TREATY_CORE_ETAG_H
#define TREATY_CORE_ETAG_H

#include <stdbool.h>
#include <stddef.h>

/* Members accepted in one list; more is refused (no client needs it). */
#define TR_ETAG_MAX_TAGS 32

/* Length of a synthesized ETag, quotes included, without the NUL. */
#define TR_ETAG_SYNTH_LEN 45

typedef struct {
    const char *opaque;        /* the opaque-tag, both quotes included */
    size_t len;
    bool weak;                 /* it was written with "W/" */
} tr_etag;

typedef enum {
    TR_ETAG_LIST_OK,
    TR_ETAG_LIST_INVALID,      /* not "*" / #entity-tag */
    TR_ETAG_LIST_TOO_MANY      /* more than TR_ETAG_MAX_TAGS tags */
} tr_etag_list_status;

/* The union of the field lines of one condition header. */
typedef struct {
    bool present;              /* at least one field line was added */
    bool any;                  /* "*" */
    tr_etag_list_status status; /* the first error, sticky */
    size_t n;
    tr_etag tags[TR_ETAG_MAX_TAGS];
} tr_etag_list;

void tr_etag_list_init(tr_etag_list *l);

/*
 * Adds one field line (value without the field name; surrounding OWS is
 * allowed).  Returns the list's status after the line: once invalid or
 * too long, a list stays so and its members must not be used.  The tags
 * point into `value`, which must outlive the list.
 */
tr_etag_list_status tr_etag_list_add(tr_etag_list *l, const char *value,
                                     size_t len);

/* Parses exactly one entity-tag (an ETag field value, OWS around it
 * allowed).  True on success; *out points into p. */
bool tr_etag_parse(const char *p, size_t len, tr_etag *out);

/* RFC 9110 §8.8.3.2: strong comparison needs both tags strong and the
 * opaque-tags equal; weak comparison only the opaque-tags. */
bool tr_etag_strong_eq(const tr_etag *a, const tr_etag *b);
bool tr_etag_weak_eq(const tr_etag *a, const tr_etag *b);

/* Whether a member of l matches `current` (strongly for If-Match, weakly
 * for If-None-Match).  "*" is not a member: callers test l->any. */
bool tr_etag_list_match_strong(const tr_etag_list *l, const tr_etag *current);
bool tr_etag_list_match_weak(const tr_etag_list *l, const tr_etag *current);

typedef struct {
    bool canonical_json;       /* try the canonical JSON form first */
    char *const *ignore_fields; /* top-level members left out (JSON) */
    size_t n_ignore;
    const char *content_coding; /* Content-Encoding value; NULL = none */
    size_t content_coding_len;
} tr_etag_synth_opts;

/*
 * The strong ETag of a representation, NUL-terminated into out.  Canonical
 * JSON is used only when asked for, when there is no content coding, and
 * when the body parses (jansson, duplicate keys refused); otherwise the
 * raw bytes count.  Returns 'J' or 'R' (the mode used), or -1 when
 * libcrypto or memory fails (out is then "").
 */
int tr_etag_synthesize(const void *body, size_t len,
                       const tr_etag_synth_opts *o,
                       char out[TR_ETAG_SYNTH_LEN + 1]);

#endif
