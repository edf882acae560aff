#include "core/fingerprint.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#define FP_TAG "treaty-fp/1"

static void
put_u64(unsigned char b[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static int
feed(EVP_MD_CTX *md, const void *p, size_t len)
{
    if (len == 0)
        return 0;
    return EVP_DigestUpdate(md, p, len) == 1 ? 0 : -1;
}

static int
feed_len(EVP_MD_CTX *md, uint64_t len)
{
    unsigned char b[8];

    put_u64(b, len);
    return feed(md, b, sizeof(b));
}

/* One length-prefixed field; NULL hashes like "". */
static int
feed_field(EVP_MD_CTX *md, const char *p, size_t len)
{
    if (p == NULL)
        len = 0;
    if (feed_len(md, len) != 0)
        return -1;
    return feed(md, p, len);
}

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char
lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The media type is case-insensitive (RFC 9110 §8.3.1); parameters are
 * hashed as sent, because some (multipart boundaries) are not. */
static int
feed_content_type(EVP_MD_CTX *md, const char *v, size_t len)
{
    size_t semi, tlen;
    char buf[64];

    if (v == NULL)
        len = 0;
    while (len > 0 && is_ows(v[0])) {
        v++;
        len--;
    }
    while (len > 0 && is_ows(v[len - 1]))
        len--;
    for (semi = 0; semi < len && v[semi] != ';'; semi++)
        ;
    tlen = semi;
    while (tlen > 0 && is_ows(v[tlen - 1]))
        tlen--;

    if (feed_len(md, tlen + (len - semi)) != 0)
        return -1;
    for (size_t off = 0; off < tlen;) {
        size_t n = tlen - off < sizeof(buf) ? tlen - off : sizeof(buf);

        for (size_t i = 0; i < n; i++)
            buf[i] = lower(v[off + i]);
        if (feed(md, buf, n) != 0)
            return -1;
        off += n;
    }
    return feed(md, v + semi, len - semi);
}

void
tr_fp_abort(tr_fp_ctx *fp)
{
    EVP_MD_CTX_free(fp->head);
    EVP_MD_CTX_free(fp->body);
    fp->head = NULL;
    fp->body = NULL;
}

int
tr_fp_begin(tr_fp_ctx *fp, const tr_fp_request *req)
{
    const EVP_MD *sha = EVP_sha256();

    memset(fp, 0, sizeof(*fp));
    fp->mode = 'R';
    fp->head = EVP_MD_CTX_new();
    fp->body = EVP_MD_CTX_new();
    if (fp->head == NULL || fp->body == NULL)
        goto fail;
    if (EVP_DigestInit_ex(fp->head, sha, NULL) != 1 ||
        EVP_DigestInit_ex(fp->body, sha, NULL) != 1)
        goto fail;

    if (feed_field(fp->head, FP_TAG, strlen(FP_TAG)) != 0 ||
        feed_field(fp->head, req->method, req->method_len) != 0 ||
        feed_field(fp->head, req->path, req->path_len) != 0 ||
        feed_field(fp->head, req->query, req->query_len) != 0 ||
        feed_content_type(fp->head, req->content_type,
                          req->content_type_len) != 0)
        goto fail;
    return 0;

fail:
    tr_fp_abort(fp);
    fp->failed = true;
    return -1;
}

int
tr_fp_update(tr_fp_ctx *fp, const void *data, size_t len)
{
    if (fp->failed || fp->body == NULL || fp->mode != 'R') {
        fp->failed = true;
        return -1;
    }
    fp->body_fed = true;
    if (feed(fp->body, data, len) != 0) {
        fp->failed = true;
        return -1;
    }
    fp->body_len += len;
    return 0;
}

/* Sorted keys, no whitespace; NULL when the body is not plain JSON. */
static char *
canonical_json(const void *body, size_t len, size_t *out_len)
{
    json_error_t err;
    json_t *doc;
    char *s;

    doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                     &err);
    if (doc == NULL)
        return NULL;
    s = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    if (s != NULL)
        *out_len = strlen(s);
    return s;
}

int
tr_fp_body_canonical(tr_fp_ctx *fp, const void *body, size_t len)
{
    size_t clen = 0;
    char *c;
    int rc;

    if (fp->failed || fp->body == NULL || fp->body_fed) {
        fp->failed = true;
        return -1;
    }
    /* jansson reports allocation failure and bad JSON alike; both fall
     * back to the raw bytes, which is always a correct fingerprint. */
    c = canonical_json(body, len, &clen);
    if (c == NULL)
        return tr_fp_update(fp, body, len) == 0 ? 0 : -1;

    rc = tr_fp_update(fp, c, clen);
    free(c);
    if (rc != 0)
        return -1;
    fp->mode = 'J';
    return 1;
}

int
tr_fp_finish(tr_fp_ctx *fp, uint8_t out[TR_FP_LEN])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    int rc = -1;

    memset(out, 0, TR_FP_LEN);
    if (fp->failed || fp->head == NULL || fp->body == NULL)
        goto out;
    if (EVP_DigestFinal_ex(fp->body, digest, &dlen) != 1 ||
        dlen != TR_FP_LEN)
        goto out;
    if (feed_field(fp->head, (const char *)&fp->mode, 1) != 0 ||
        feed_len(fp->head, fp->body_len) != 0 ||
        feed(fp->head, digest, dlen) != 0)
        goto out;
    if (EVP_DigestFinal_ex(fp->head, digest, &dlen) != 1 ||
        dlen != TR_FP_LEN)
        goto out;
    memcpy(out, digest, TR_FP_LEN);
    rc = 0;

out:
    tr_fp_abort(fp);
    fp->failed = true;         /* a finished context takes no more input */
    return rc;
}

int
tr_fingerprint(const tr_fp_request *req, const void *body, size_t len,
               bool canonical, uint8_t out[TR_FP_LEN])
{
    tr_fp_ctx fp;
    int rc;

    if (tr_fp_begin(&fp, req) != 0) {
        memset(out, 0, TR_FP_LEN);
        return -1;
    }
    if (canonical)
        rc = tr_fp_body_canonical(&fp, body, len) < 0 ? -1 : 0;
    else
        rc = tr_fp_update(&fp, body, len);
    if (rc != 0) {
        tr_fp_abort(&fp);
        memset(out, 0, TR_FP_LEN);
        return -1;
    }
    return tr_fp_finish(&fp, out);
}

void
tr_fp_hex(const uint8_t fp[TR_FP_LEN], char out[2 * TR_FP_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < TR_FP_LEN; i++) {
        out[2 * i] = hex[fp[i] >> 4];
        out[2 * i + 1] = hex[fp[i] & 0x0f];
    }
    out[2 * TR_FP_LEN] = '\0';
}
