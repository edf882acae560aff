#include "core/audit_checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/audit_chain.h"
#include "core/b64url.h"
#include "core/rfc3339.h"

static const char *const kinds[TR_AUDIT_CP_KIND__COUNT] = {
    [TR_AUDIT_CP_PERIODIC] = "periodic",
    [TR_AUDIT_CP_SHUTDOWN] = "shutdown",
    [TR_AUDIT_CP_ANCHOR] = "anchor",
};

const char *
tr_audit_cp_kind_name(tr_audit_cp_kind kind)
{
    if ((unsigned)kind >= TR_AUDIT_CP_KIND__COUNT)
        return "unknown";
    return kinds[kind];
}

int
tr_audit_cp_kind_parse(const char *name)
{
    for (int i = 0; i < TR_AUDIT_CP_KIND__COUNT; i++)
        if (name && !strcmp(name, kinds[i]))
            return i;
    return -1;
}

const char *
tr_audit_cp_strerror(int status)
{
    switch (status) {
    case TR_AUDIT_CP_OK:
        return "ok";
    case TR_AUDIT_CP_E_ARG:
        return "not an Ed25519 key, or bad input";
    case TR_AUDIT_CP_E_CRYPTO:
        return "signature operation failed";
    case TR_AUDIT_CP_E_UNKNOWN_KID:
        return "signed by a key that is not trusted (unknown kid)";
    case TR_AUDIT_CP_E_SIGNATURE:
        return "signature does not verify";
    case TR_AUDIT_CP_E_FORMAT:
        return "malformed checkpoint";
    case TR_AUDIT_CP_NOT_CHECKPOINT:
        return "not a checkpoint";
    }
    return "unknown";
}

static void
put_be(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * (7 - i)));
}

void
tr_audit_checkpoint_message(const tr_audit_checkpoint *cp,
                            uint8_t out[TR_AUDIT_CP_MSG_LEN])
{
    memcpy(out, "TRC1", 4);
    out[4] = (uint8_t)cp->kind;
    put_be(out + 5, cp->seq);
    memcpy(out + 13, cp->hash, 32);
    put_be(out + 45, (uint64_t)cp->time_ms);
}

int
tr_audit_checkpoint_sign(tr_audit_checkpoint *cp, EVP_PKEY *key,
                         const char *kid)
{
    uint8_t msg[TR_AUDIT_CP_MSG_LEN];
    size_t siglen = sizeof(cp->sig);
    EVP_MD_CTX *md;
    int rc = TR_AUDIT_CP_E_CRYPTO;

    if (!key || !kid || !EVP_PKEY_is_a(key, "ED25519") ||
        strlen(kid) >= sizeof(cp->kid))
        return TR_AUDIT_CP_E_ARG;
    tr_audit_checkpoint_message(cp, msg);
    md = EVP_MD_CTX_new();
    if (!md)
        return TR_AUDIT_CP_E_CRYPTO;
    /* Ed25519 signs the message itself: no separate digest. */
    if (EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestSign(md, cp->sig, &siglen, msg, sizeof(msg)) == 1 &&
        siglen == sizeof(cp->sig)) {
        memcpy(cp->kid, kid, strlen(kid) + 1);
        rc = TR_AUDIT_CP_OK;
    }
    EVP_MD_CTX_free(md);
    return rc;
}

int
tr_audit_checkpoint_verify(const tr_audit_checkpoint *cp,
                           const tr_txn_key *keys, size_t n)
{
    uint8_t msg[TR_AUDIT_CP_MSG_LEN];
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md;
    int rc, ok;

    for (size_t i = 0; i < n && !key; i++)
        if (keys[i].pkey && !strcmp(keys[i].kid, cp->kid))
            key = keys[i].pkey;
    if (!key)
        return TR_AUDIT_CP_E_UNKNOWN_KID;
    if (!EVP_PKEY_is_a(key, "ED25519"))
        return TR_AUDIT_CP_E_ARG;
    tr_audit_checkpoint_message(cp, msg);
    md = EVP_MD_CTX_new();
    if (!md)
        return TR_AUDIT_CP_E_CRYPTO;
    rc = TR_AUDIT_CP_E_CRYPTO;
    if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1) {
        ok = EVP_DigestVerify(md, cp->sig, sizeof(cp->sig), msg,
                              sizeof(msg));
        rc = ok == 1 ? TR_AUDIT_CP_OK : TR_AUDIT_CP_E_SIGNATURE;
    }
    EVP_MD_CTX_free(md);
    return rc;
}

int
tr_audit_checkpoint_to_json(const tr_audit_checkpoint *cp, char *out,
                            size_t cap, size_t *outlen)
{
    char hash[65], t[32], sig[96];
    size_t siglen;
    json_t *o;
    char *text;
    size_t n;
    int rc = TR_AUDIT_CP_E_ARG;

    tr_audit_hex(cp->hash, sizeof(cp->hash), hash);
    if (tr_rfc3339_format(cp->time_ms, t, sizeof(t)) != 0)
        t[0] = '\0';
    if (tr_b64url_encode(cp->sig, sizeof(cp->sig), sig, sizeof(sig),
                         &siglen) != 0)
        return TR_AUDIT_CP_E_ARG;
    o = json_object();
    if (!o)
        return TR_AUDIT_CP_E_ARG;
    json_object_set_new(o, "type", json_string(TR_AUDIT_CP_TYPE));
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "kind",
                        json_string(tr_audit_cp_kind_name(cp->kind)));
    json_object_set_new(o, "seq", json_integer((json_int_t)cp->seq));
    json_object_set_new(o, "hash", json_string(hash));
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "time_ms", json_integer(cp->time_ms));
    json_object_set_new(o, "alg", json_string("EdDSA"));
    /* A kid that is not UTF-8 makes json_string NULL: the line is then
     * refused below rather than written without it. */
    json_object_set_new(o, "kid", json_string(cp->kid));
    json_object_set_new(o, "sig", json_string(sig));
    if (json_object_size(o) != 10) {
        json_decref(o);
        return TR_AUDIT_CP_E_ARG;
    }
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return TR_AUDIT_CP_E_ARG;
    n = strlen(text);
    if (n < cap) {
        memcpy(out, text, n + 1);
        *outlen = n;
        rc = TR_AUDIT_CP_OK;
    }
    free(text);
    return rc;
}

static bool
get_u64(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static const char *
get_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

int
tr_audit_checkpoint_from_json(const char *line, size_t len,
                              tr_audit_checkpoint *out)
{
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type, *kind, *hash, *kid, *sig;
    uint64_t v, seq, t;
    size_t siglen;
    int k, rc = TR_AUDIT_CP_E_FORMAT;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(o)) {
        json_decref(o);
        /* Damaged JSON that names itself a checkpoint is one, damaged. */
        return memmem(line, len, TR_AUDIT_CP_TYPE,
                      strlen(TR_AUDIT_CP_TYPE))
                   ? TR_AUDIT_CP_E_FORMAT : TR_AUDIT_CP_NOT_CHECKPOINT;
    }
    type = get_str(o, "type");
    if (!type || strcmp(type, TR_AUDIT_CP_TYPE) != 0) {
        json_decref(o);
        return TR_AUDIT_CP_NOT_CHECKPOINT;
    }
    kind = get_str(o, "kind");
    hash = get_str(o, "hash");
    kid = get_str(o, "kid");
    sig = get_str(o, "sig");
    k = tr_audit_cp_kind_parse(kind);
    if (!get_u64(o, "v", &v) || v != 1 || k < 0 ||
        !get_u64(o, "seq", &seq) || !get_u64(o, "time_ms", &t) ||
        !hash || !tr_audit_unhex(hash, out->hash, sizeof(out->hash)) ||
        !kid || strlen(kid) >= sizeof(out->kid) || !sig ||
        tr_b64url_decode(sig, strlen(sig), out->sig, sizeof(out->sig),
                         &siglen) != 0 ||
        siglen != sizeof(out->sig))
        goto out;
    out->kind = (tr_audit_cp_kind)k;
    out->seq = seq;
    out->time_ms = (int64_t)t;
    memcpy(out->kid, kid, strlen(kid) + 1);
    rc = TR_AUDIT_CP_OK;
out:
    json_decref(o);
    return rc;
}
