/*
 * Strict base64url (RFC 4648 §5) as JOSE uses it: no padding, no
 * whitespace, only the URL-safe alphabet, and unused trailing bits zero,
 * so every byte string has exactly one accepted encoding.
 */
#ifndef TREATY_CORE_B64URL_H
#define TREATY_CORE_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* Bytes that decoding `len` characters yields (an upper bound when the
 * input is invalid). */
size_t tr_b64url_decoded_len(size_t len);

/* Characters that encoding `len` bytes yields, without the NUL. */
size_t tr_b64url_encoded_len(size_t len);

/* Decodes in[0..len) into out (cap bytes).  Returns 0 and sets *outlen, or
 * -1 when the input is not canonical unpadded base64url or out is too
 * small.  An empty input decodes to zero bytes. */
int tr_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                     size_t *outlen);

/* Encodes in[0..len) into out, NUL-terminated; cap must be at least
 * tr_b64url_encoded_len(len) + 1.  Returns 0 and sets *outlen (without the
 * NUL), or -1 when out is too small. */
int tr_b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
                     size_t *outlen);

#endif
