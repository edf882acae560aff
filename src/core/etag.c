#include "core/etag.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/b64url.h"

#define ETAG_TAG "treaty-etag/1"

/* ------------------------------------------------------------ parsing */

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

/*
 * One entity-tag starting at p[*i]; advances *i past it.  False when the
 * bytes there are not an entity-tag.
 */
static bool
scan_tag(const char *p, size_t len, size_t *i, tr_etag *out)
{
    size_t k = *i;
    bool weak = false;

    if (k + 1 < len && p[k] == 'W' && p[k + 1] == '/') {
        weak = true;
        k += 2;
    }
    if (k >= len || p[k] != '"')
        return false;
    size_t start = k++;
    while (k < len && p[k] != '"') {
        if (!is_etagc((unsigned char)p[k]))
            return false;
        k++;
    }
    if (k >= len)
        return false;          /* no closing quote */
    k++;
    out->opaque = p + start;
    out->len = k - start;
    out->weak = weak;
    *i = k;
    return true;
}

void
tr_etag_list_init(tr_etag_list *l)
{
    memset(l, 0, sizeof(*l));
    l->status = TR_ETAG_LIST_OK;
}

static tr_etag_list_status
fail(tr_etag_list *l, tr_etag_list_status st)
{
    l->status = st;
    l->n = 0;
    l->any = false;
    return st;
}

tr_etag_list_status
tr_etag_list_add(tr_etag_list *l, const char *value, size_t len)
{
    size_t i = 0;

    l->present = true;
    if (l->status != TR_ETAG_LIST_OK)
        return l->status;
    while (len > 0 && is_ows(value[len - 1]))
        len--;
    while (i < len && is_ows(value[i]))
        i++;
    if (len - i == 1 && value[i] == '*') {
        if (l->n > 0)
            return fail(l, TR_ETAG_LIST_INVALID);
        l->any = true;
        return TR_ETAG_LIST_OK;
    }
    /* #entity-tag: elements separated by commas, empty ones skipped. */
    while (i < len) {
        if (value[i] == ',' || is_ows(value[i])) {
            i++;
            continue;
        }
        tr_etag t;
        if (!scan_tag(value, len, &i, &t))
            return fail(l, TR_ETAG_LIST_INVALID);
        while (i < len && is_ows(value[i]))
            i++;
        if (i < len && value[i] != ',')
            return fail(l, TR_ETAG_LIST_INVALID);
        if (l->any)
            return fail(l, TR_ETAG_LIST_INVALID);
        if (l->n == TR_ETAG_MAX_TAGS)
            return fail(l, TR_ETAG_LIST_TOO_MANY);
        l->tags[l->n++] = t;
    }
    return TR_ETAG_LIST_OK;
}

bool
tr_etag_parse(const char *p, size_t len, tr_etag *out)
{
    size_t i = 0;

    while (len > 0 && is_ows(p[len - 1]))
        len--;
    while (i < len && is_ows(p[i]))
        i++;
    if (!scan_tag(p, len, &i, out))
        return false;
    return i == len;
}

bool
tr_etag_weak_eq(const tr_etag *a, const tr_etag *b)
{
    return a->len == b->len && memcmp(a->opaque, b->opaque, a->len) == 0;
}

bool
tr_etag_strong_eq(const tr_etag *a, const tr_etag *b)
{
    return !a->weak && !b->weak && tr_etag_weak_eq(a, b);
}

bool
tr_etag_list_match_strong(const tr_etag_list *l, const tr_etag *current)
{
    if (l->status != TR_ETAG_LIST_OK)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (tr_etag_strong_eq(&l->tags[i], current))
            return true;
    return false;
}

bool
tr_etag_list_match_weak(const tr_etag_list *l, const tr_etag *current)
{
    if (l->status != TR_ETAG_LIST_OK)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (tr_etag_weak_eq(&l->tags[i], current))
            return true;
    return false;
}

/* ------------------------------------------------------- synthesizing */

/* Sorted keys, no whitespace, ignored top-level members dropped; NULL
 * when the body is not plain JSON (or memory ran out). */
static char *
canonical_json(const void *body, size_t len, const tr_etag_synth_opts *o)
{
    json_error_t err;
    json_t *doc = json_loadb(body, len,
                             JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (doc == NULL)
        return NULL;
    if (json_is_object(doc))
        for (size_t i = 0; i < o->n_ignore; i++)
            json_object_del(doc, o->ignore_fields[i]);
    char *s = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT |
                                  JSON_ENCODE_ANY);
    json_decref(doc);
    return s;
}

/*
 * The content coding as hashed: lower case, OWS removed, "identity" the
 * same as none.  Writes up to cap bytes into buf and returns the whole
 * normalised length.
 */
static size_t
norm_coding(const char *v, size_t len, char *buf, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; v != NULL && i < len; i++) {
        char c = v[i];
        if (is_ows(c))
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (n < cap)
            buf[n] = c;
        n++;
    }
    if (n == 8 && memcmp(buf, "identity", 8) == 0)
        n = 0;
    return n;
}

static int
feed_coding(EVP_MD_CTX *md, const char *v, size_t len)
{
    char buf[64];
    size_t n = norm_coding(v, len, buf, sizeof(buf));

    if (n <= sizeof(buf))
        return n == 0 || EVP_DigestUpdate(md, buf, n) == 1 ? 0 : -1;
    /* An absurdly long value: normalised one byte at a time. */
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (is_ows(c))
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (EVP_DigestUpdate(md, &c, 1) != 1)
            return -1;
    }
    return 0;
}

static bool
has_coding(const tr_etag_synth_opts *o)
{
    char buf[64];

    return norm_coding(o->content_coding, o->content_coding_len, buf,
                       sizeof(buf)) > 0;
}

int
tr_etag_synthesize(const void *body, size_t len, const tr_etag_synth_opts *o,
                   char out[TR_ETAG_SYNTH_LEN + 1])
{
    static const tr_etag_synth_opts none = { 0 };
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char *canon = NULL;
    char mode = 'R';
    int rc = -1;

    out[0] = '\0';
    if (o == NULL)
        o = &none;
    if (o->canonical_json && !has_coding(o)) {
        canon = canonical_json(body, len, o);
        if (canon != NULL) {
            body = canon;
            len = strlen(canon);
            mode = 'J';
        }
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        goto out;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, ETAG_TAG, sizeof(ETAG_TAG)) != 1 ||
        EVP_DigestUpdate(md, &mode, 1) != 1 ||
        feed_coding(md, o->content_coding, o->content_coding_len) != 0 ||
        EVP_DigestUpdate(md, "", 1) != 1 ||
        (len > 0 && EVP_DigestUpdate(md, body, len) != 1) ||
        EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32)
        goto out;

    size_t n = 0;
    out[0] = '"';
    if (tr_b64url_encode(digest, dlen, out + 1, TR_ETAG_SYNTH_LEN, &n) != 0 ||
        n != TR_ETAG_SYNTH_LEN - 2) {
        out[0] = '\0';
        goto out;
    }
    out[TR_ETAG_SYNTH_LEN - 1] = '"';
    out[TR_ETAG_SYNTH_LEN] = '\0';
    rc = mode;

out:
    EVP_MD_CTX_free(md);
    free(canon);
    return rc;
}
