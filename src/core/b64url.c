#include "core/b64url.h"

#include <string.h>

#include <openssl/evp.h>

/* Characters per round through OpenSSL's block coder: a multiple of 4 on
 * the text side and of 3 on the byte side, so no padding appears until the
 * last group. */
#define CHUNK_CHARS 256
#define CHUNK_BYTES 192

/* The 6-bit value of a base64url character, -1 for anything else.  Used to
 * validate the alphabet and the unused bits of the last character; the
 * decoding itself is OpenSSL's. */
static int
sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

static char
to_std(char c)
{
    return c == '-' ? '+' : c == '_' ? '/' : c;
}

size_t
tr_b64url_decoded_len(size_t len)
{
    size_t rem = len % 4;

    return len / 4 * 3 + (rem == 2 ? 1 : rem == 3 ? 2 : 0);
}

size_t
tr_b64url_encoded_len(size_t len)
{
    size_t rem = len % 3;

    return len / 3 * 4 + (rem == 1 ? 2 : rem == 2 ? 3 : 0);
}

/* Runs n characters (a multiple of 4, already translated) through
 * EVP_DecodeBlock; returns the byte count it reports. */
static int
decode_block(const char *std, size_t n, uint8_t *out)
{
    return EVP_DecodeBlock(out, (const unsigned char *)std, (int)n);
}

int
tr_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                 size_t *outlen)
{
    size_t rem = len % 4, full = len - rem, want;
    char tmp[CHUNK_CHARS];
    uint8_t last[3];
    size_t done = 0;

    if (rem == 1)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (sextet((unsigned char)in[i]) < 0)
            return -1;
    /* The bits past the last whole byte must be zero (RFC 4648 §3.5). */
    if (rem == 2 && (sextet((unsigned char)in[len - 1]) & 0x0f) != 0)
        return -1;
    if (rem == 3 && (sextet((unsigned char)in[len - 1]) & 0x03) != 0)
        return -1;
    want = tr_b64url_decoded_len(len);
    if (want > cap)
        return -1;

    while (done < full) {
        size_t n = full - done < CHUNK_CHARS ? full - done : CHUNK_CHARS;

        for (size_t i = 0; i < n; i++)
            tmp[i] = to_std(in[done + i]);
        if (decode_block(tmp, n, out + done / 4 * 3) != (int)(n / 4 * 3))
            return -1;
        done += n;
    }
    if (rem != 0) {
        tmp[0] = to_std(in[full]);
        tmp[1] = to_std(in[full + 1]);
        tmp[2] = rem == 3 ? to_std(in[full + 2]) : '=';
        tmp[3] = '=';
        if (decode_block(tmp, 4, last) != 3)
            return -1;
        memcpy(out + full / 4 * 3, last, rem - 1);
    }
    *outlen = want;
    return 0;
}

int
tr_b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
                 size_t *outlen)
{
    size_t want = tr_b64url_encoded_len(len), done = 0, pos = 0;
    unsigned char tmp[CHUNK_CHARS + 1];

    if (cap < want + 1)
        return -1;
    while (done < len) {
        size_t n = len - done < CHUNK_BYTES ? len - done : CHUNK_BYTES;
        int m = EVP_EncodeBlock(tmp, in + done, (int)n);

        for (int i = 0; i < m && tmp[i] != '='; i++) {
            unsigned char c = tmp[i];

            out[pos++] = c == '+' ? '-' : c == '/' ? '_' : (char)c;
        }
        done += n;
    }
    out[pos] = '\0';
    *outlen = pos;
    return 0;
}
