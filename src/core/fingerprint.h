/*
 * The request fingerprint of an idempotent request (SPEC.md §2): the same
 * key sent with a different request is a mismatch (422).
 *
 * SHA-256 over, in order, each field length-prefixed with a 64-bit
 * big-endian byte count:
 *
 *   "treaty-fp/1" | method | normalised path | query | content type |
 *   mode byte | body length | SHA-256(body)
 *
 * The body goes in through its own digest so it can be fed in chunks
 * before its length is known; its length and digest are fixed-size, so
 * the whole input stays unambiguous.  An absent query or content type
 * hashes like an empty one.  The content type's media type (before the
 * first ';') is compared case-insensitively and without trailing spaces;
 * its parameters byte for byte.
 *
 * Canonical JSON (opt-in per route): the body is parsed with jansson,
 * duplicate keys refused, and dumped with sorted keys and no whitespace,
 * so key order and spacing do not count.  Numbers are compared as jansson
 * reads them: 1 and 1.0 differ, 1.0 and 1.00 do not.  A body that is not
 * JSON (or has duplicate keys, invalid UTF-8, a NUL escape, an integer
 * beyond 64 bits) falls back to its raw bytes; the mode byte keeps the two
 * forms apart.
 */
#ifndef TREATY_CORE_FINGERPRINT_H
#define TREATY_CORE_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TR_FP_LEN 32

struct evp_md_ctx_st;

typedef struct {
    const char *method;
    size_t method_len;
    const char *path;          /* normalised, as routed and forwarded */
    size_t path_len;
    const char *query;         /* without the '?'; NULL = none */
    size_t query_len;
    const char *content_type;  /* field value; NULL = none */
    size_t content_type_len;
} tr_fp_request;

/* One fingerprint in progress.  Owns two digest contexts from
 * tr_fp_begin() until tr_fp_finish() or tr_fp_abort(). */
typedef struct {
    struct evp_md_ctx_st *head;
    struct evp_md_ctx_st *body;
    uint64_t body_len;
    unsigned char mode;        /* 'R' raw body, 'J' canonical JSON */
    bool body_fed;
    bool failed;
} tr_fp_ctx;

/* Starts a fingerprint over the request line fields.  0, or -1 when
 * libcrypto fails (out of memory); the context is then already freed. */
int tr_fp_begin(tr_fp_ctx *fp, const tr_fp_request *req);

/* Adds raw body bytes; any number of calls.  0 or -1. */
int tr_fp_update(tr_fp_ctx *fp, const void *data, size_t len);

/*
 * Adds the whole body at once for a canonical-JSON route; must be the only
 * body call.  1 when the body was canonical JSON, 0 when it fell back to
 * the raw bytes, -1 on failure (out of memory, or body already fed).
 */
int tr_fp_body_canonical(tr_fp_ctx *fp, const void *body, size_t len);

/* Writes the fingerprint and frees the context.  0, or -1 when any step
 * failed (out is then zeroed). */
int tr_fp_finish(tr_fp_ctx *fp, uint8_t out[TR_FP_LEN]);

/* Frees a context without a result; safe after finish or a failure. */
void tr_fp_abort(tr_fp_ctx *fp);

/* All of the above for a buffered body.  0 or -1. */
int tr_fingerprint(const tr_fp_request *req, const void *body, size_t len,
                   bool canonical_json, uint8_t out[TR_FP_LEN]);

/* Lower-case hex, NUL-terminated. */
void tr_fp_hex(const uint8_t fp[TR_FP_LEN], char out[2 * TR_FP_LEN + 1]);

#endif
