#include "core/audit_chain.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

/* The encoder writes to a buffer (when it fits) and/or feeds a digest, so
 * hashing needs no allocation. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    EVP_MD_CTX *md;
    bool failed;
} enc;

static void
put(enc *e, const void *p, size_t n)
{
    if (e->buf && e->len + n <= e->cap)
        memcpy(e->buf + e->len, p, n);
    if (e->md && !e->failed && EVP_DigestUpdate(e->md, p, n) != 1)
        e->failed = true;
    e->len += n;
}

static void
put_be(enc *e, uint64_t v, int nbytes)
{
    uint8_t b[8];

    for (int i = 0; i < nbytes; i++)
        b[i] = (uint8_t)(v >> (8 * (nbytes - 1 - i)));
    put(e, b, (size_t)nbytes);
}

static void
put_null(enc *e)
{
    uint8_t tag = 0x00;

    put(e, &tag, 1);
}

static void
put_text(enc *e, const char *s)
{
    uint8_t tag = 0x01;
    size_t n;

    if (!s) {
        put_null(e);
        return;
    }
    n = strlen(s);
    if (n > UINT32_MAX) {
        /* Records never carry 4 GiB strings; refuse to encode one
         * ambiguously. */
        e->failed = true;
        return;
    }
    put(e, &tag, 1);
    put_be(e, n, 4);
    put(e, s, n);
}

static void
put_int(enc *e, bool present, int64_t v)
{
    uint8_t tag = 0x02;

    if (!present) {
        put_null(e);
        return;
    }
    put(e, &tag, 1);
    put_be(e, (uint64_t)v, 8);
}

static void
encode(enc *e, const tr_audit_record *r)
{
    put(e, "TRA1", 4);
    put_be(e, r->seq, 8);
    put_int(e, true, (int64_t)r->kind);
    put_int(e, true, r->time_ms);
    put_text(e, r->request_id);
    put_text(e, r->client_addr);
    put_text(e, r->principal_issuer);
    put_text(e, r->principal_sub);
    put_text(e, r->actor);
    put_text(e, r->delegation_chain);
    put_text(e, r->client_id);
    put_text(e, r->token_id);
    put_text(e, r->token_hash);
    put_int(e, r->has_token_verified, r->token_verified ? 1 : 0);
    put_text(e, r->route);
    put_text(e, r->tool);
    put_text(e, r->method);
    put_text(e, r->path);
    put_int(e, r->decision != TR_AUDIT_NONE, (int64_t)r->decision);
    put_text(e, r->reason);
    put_text(e, r->policy_rule);
    put_text(e, r->limiter);
    put_text(e, r->idem_key_hash);
    put_int(e, r->has_idem_replay, r->idem_replay ? 1 : 0);
    put_text(e, r->precondition);
    put_int(e, r->has_status, r->status);
    put_int(e, r->has_latency, r->latency_us);
    put_int(e, r->has_bytes, r->bytes);
    put_text(e, r->config_hash);
    put_text(e, r->stripped_headers);
    put_int(e, r->has_completes_seq, (int64_t)r->completes_seq);
    put_int(e, r->has_count, r->count);
}

size_t
tr_audit_canonical(const tr_audit_record *r, uint8_t *buf, size_t cap)
{
    enc e = { NULL, 0, 0, NULL, false };

    /* Size first: a buffer that is too small stays untouched. */
    encode(&e, r);
    if (buf && e.len <= cap) {
        enc w = { buf, cap, 0, NULL, false };

        encode(&w, r);
    }
    return e.len;
}

int
tr_audit_chain_hash(const uint8_t prev[TR_AUDIT_HASH_LEN],
                    const tr_audit_record *r,
                    uint8_t out[TR_AUDIT_HASH_LEN])
{
    enc e = { NULL, 0, 0, NULL, false };
    unsigned int outlen = 0;
    int rc = -1;

    e.md = EVP_MD_CTX_new();
    if (!e.md)
        return -1;
    if (EVP_DigestInit_ex(e.md, EVP_sha256(), NULL) != 1)
        goto done;
    put(&e, prev, TR_AUDIT_HASH_LEN);
    encode(&e, r);
    if (e.failed)
        goto done;
    if (EVP_DigestFinal_ex(e.md, out, &outlen) != 1 ||
        outlen != TR_AUDIT_HASH_LEN)
        goto done;
    rc = 0;
done:
    EVP_MD_CTX_free(e.md);
    return rc;
}

int
tr_audit_chain_link(tr_audit_record *r, uint64_t last_seq,
                    const uint8_t last_hash[TR_AUDIT_HASH_LEN])
{
    r->seq = last_seq + 1;
    if (last_seq == 0)
        memset(r->prev_hash, 0, sizeof(r->prev_hash));
    else
        memcpy(r->prev_hash, last_hash, sizeof(r->prev_hash));
    return tr_audit_chain_hash(r->prev_hash, r, r->hash);
}

tr_chain_check
tr_audit_chain_verify(const tr_audit_record *r, uint64_t last_seq,
                      const uint8_t last_hash[32])
{
    static const uint8_t zeros[TR_AUDIT_HASH_LEN];
    const uint8_t *expect_prev = last_seq == 0 ? zeros : last_hash;
    uint8_t h[TR_AUDIT_HASH_LEN];

    if (r->seq != last_seq + 1)
        return TR_CHAIN_SEQ_GAP;
    if (memcmp(r->prev_hash, expect_prev, TR_AUDIT_HASH_LEN) != 0)
        return TR_CHAIN_PREV_MISMATCH;
    if (tr_audit_chain_hash(r->prev_hash, r, h) != 0)
        return TR_CHAIN_CRYPTO_ERROR;
    if (memcmp(h, r->hash, TR_AUDIT_HASH_LEN) != 0)
        return TR_CHAIN_HASH_MISMATCH;
    return TR_CHAIN_OK;
}

const char *
tr_chain_check_name(tr_chain_check c)
{
    switch (c) {
    case TR_CHAIN_OK:
        return "ok";
    case TR_CHAIN_SEQ_GAP:
        return "sequence gap (record deleted, inserted or moved)";
    case TR_CHAIN_PREV_MISMATCH:
        return "previous hash does not match (record removed or reordered)";
    case TR_CHAIN_HASH_MISMATCH:
        return "hash does not match the fields (record edited)";
    case TR_CHAIN_CRYPTO_ERROR:
        return "hashing failed";
    }
    return "unknown";
}

char *
tr_audit_json_strings(const char *const *items, size_t n)
{
    json_t *arr = json_array();
    char *out = NULL;

    if (!arr)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        /* json_string refuses invalid UTF-8: the caller gets NULL. */
        if (json_array_append_new(arr, json_string(items[i])) != 0)
            goto done;
    }
    out = json_dumps(arr, JSON_COMPACT | JSON_ENSURE_ASCII);
done:
    json_decref(arr);
    return out;
}

void
tr_audit_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool
tr_audit_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}
