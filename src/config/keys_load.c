#include "config/keys_load.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define JWKS_MAX (1u << 20)
#define SECRET_MAX 4096u

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Reads a whole regular file of at most max bytes into a fresh buffer. */
static char *
read_file(const char *path, size_t max, size_t *len, char *err,
          size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t got = 0;

    if (fd < 0) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size > max) {
        errf(err, errlen, "%s: not a regular file of at most %zu bytes",
             path, max);
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errf(err, errlen, "%s: read failed", path);
            goto fail;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

tr_keyset *
tr_keys_load_jwks_file(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *buf = read_file(path, JWKS_MAX, &len, err, errlen);
    char msg[256];
    tr_keyset *ks;

    if (!buf)
        return NULL;
    ks = tr_keyset_parse(buf, len, msg, sizeof(msg));
    free(buf);
    if (!ks) {
        errf(err, errlen, "%s: %s", path, msg);
        return NULL;
    }
    if (tr_keyset_count(ks) == 0) {
        errf(err, errlen, "%s: no usable key (%zu skipped: other curves, "
             "RSA under 2048 bits, or not for signatures)", path,
             tr_keyset_skipped(ks));
        tr_keyset_unref(ks);
        return NULL;
    }
    return ks;
}

tr_keyset *
tr_keys_load_hmac_file(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *buf = read_file(path, SECRET_MAX, &len, err, errlen);
    char msg[128];
    tr_keyset *ks;

    if (!buf)
        return NULL;
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    ks = tr_keyset_new_hmac((const uint8_t *)buf, len, msg, sizeof(msg));
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (!ks)
        errf(err, errlen, "%s: %s", path, msg);
    return ks;
}

int
tr_keys_load_files(tr_verifier *v, const tr_identity_cfg *cfg,
                   bool allow_dev, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_issuers; i++) {
        const tr_issuer_cfg *c = &cfg->issuers[i];
        tr_keyset *ks;

        if (c->jwks_file) {
            ks = tr_keys_load_jwks_file(c->jwks_file, err, errlen);
            if (!ks)
                return -1;
            if (tr_keyset_has_dev_key(ks) && !allow_dev) {
                errf(err, errlen, "%s holds development keys (kid %s...), "
                     "which are public: refused without --dev",
                     c->jwks_file, TR_DEV_KID_PREFIX);
                tr_keyset_unref(ks);
                return -1;
            }
            tr_verifier_set_keys(v, i, ks);
            tr_keyset_unref(ks);
        }
        if (c->hs256_secret_file) {
            ks = tr_keys_load_hmac_file(c->hs256_secret_file, err, errlen);
            if (!ks)
                return -1;
            if (tr_verifier_set_hmac(v, i, ks) != 0) {
                errf(err, errlen, "issuer %s: HS256 not in algorithms",
                     c->name);
                tr_keyset_unref(ks);
                return -1;
            }
            tr_keyset_unref(ks);
        }
    }
    return 0;
}
