/* The audit checkpoint keys on disk (store/audit_keys.h). */
#include "store/audit_keys.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* A PEM Ed25519 key is ~120 bytes; anything this big is not one. */
#define MAX_PEM 16384

static bool
keys_dir(const char *state_dir, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", state_dir, TR_AUDIT_KEYS_DIR);

    return n > 0 && (size_t)n < len;
}

int
tr_audit_keys_load_signing(const char *state_dir, const char *key_file,
                           int64_t now_s, tr_gateway_keys *out, char *err,
                           size_t errlen)
{
    char dir[PATH_MAX];

    if (key_file)
        return tr_gateway_keys_load_file(key_file, out, err, errlen);
    if (!keys_dir(state_dir, dir, sizeof(dir))) {
        snprintf(err, errlen, "audit: state_dir path too long");
        return -1;
    }
    return tr_gateway_keys_load(dir, now_s, 0, true, out, err, errlen);
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* A public or private Ed25519 key from an operator-given PEM file. */
static int
load_pem(const char *path, tr_gateway_keys *out, char *err, size_t errlen)
{
    char buf[MAX_PEM];
    FILE *f = fopen(path, "rb");
    EVP_PKEY *pkey = NULL;
    size_t len;
    BIO *bio;

    memset(out, 0, sizeof(*out));
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (len == sizeof(buf)) {
        snprintf(err, errlen, "%s: too large for a key", path);
        return -1;
    }
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio) {
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
        if (!pkey) {
            (void)BIO_reset(bio);
            pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        }
        BIO_free(bio);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (!pkey || !EVP_PKEY_is_a(pkey, "ED25519")) {
        snprintf(err, errlen, "%s: not a PEM Ed25519 public or private "
                 "key", path);
        EVP_PKEY_free(pkey);
        return -1;
    }
    out->keys[0].pkey = pkey;
    if (tr_txn_key_thumbprint(pkey, out->keys[0].kid) != TR_TXN_OK) {
        snprintf(err, errlen, "%s: cannot compute the key id", path);
        tr_gateway_keys_free(out);
        return -1;
    }
    out->n = 1;
    return 0;
}

int
tr_audit_keys_load_trusted(const char *pem_file, const char *state_dir,
                           const char *key_file, int64_t now_s,
                           tr_gateway_keys *out, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    struct stat st;

    memset(out, 0, sizeof(*out));
    if (pem_file)
        return load_pem(pem_file, out, err, errlen);
    if (key_file)
        return load_pem(key_file, out, err, errlen);
    if (!state_dir)
        return 0;
    if (!keys_dir(state_dir, dir, sizeof(dir))) {
        snprintf(err, errlen, "state_dir path too long");
        return -1;
    }
    if (stat(dir, &st) != 0 && errno == ENOENT)
        return 0;
    /* Retired keys stay trusted: their checkpoints are still on file. */
    return tr_gateway_keys_load(dir, now_s, UINT32_MAX, false, out, err,
                                errlen);
}
