#include "store/gateway_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* Key files treaty considers in one directory; more is a mistake. */
#define MAX_FILES 64
/* A PEM Ed25519 key is ~120 bytes; anything this big is not one. */
#define MAX_KEY_FILE 16384

static void
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Never prompt for a passphrase: an encrypted key is simply refused. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int
check_dir(const char *dir, bool create, char *err, size_t errlen)
{
    struct stat st;

    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fail(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0) {
        fail(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fail(err, errlen, "%s: not a directory", dir);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        fail(err, errlen, "%s: owned by another user", dir);
        return -1;
    }
    /* Whoever can write here can plant a signing key. */
    if (st.st_mode & 022) {
        fail(err, errlen, "%s: writable by group or others (chmod 700)",
             dir);
        return -1;
    }
    return 0;
}

static EVP_PKEY *
read_key(const char *path, char *err, size_t errlen)
{
    char buf[MAX_KEY_FILE];
    size_t len = 0;
    struct stat st;
    EVP_PKEY *pkey = NULL;
    BIO *bio;
    int fd;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        fail(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        fail(err, errlen, "%s: owned by another user", path);
        goto out;
    }
    if (st.st_mode & 077) {
        fail(err, errlen, "%s: mode %03o, must be 0600 (chmod 600)", path,
             (unsigned)(st.st_mode & 0777));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf) {
            fail(err, errlen, "%s: too large for a key", path);
            goto out;
        }
    }
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio != NULL) {
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        BIO_free(bio);
    }
    if (pkey == NULL) {
        fail(err, errlen, "%s: not an unencrypted PEM private key", path);
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "ED25519")) {
        fail(err, errlen, "%s: not an Ed25519 key", path);
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

out:
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return pkey;
}

/* key-<digits>.pem, digits a non-negative int64 without sign or
 * leading junk; anything else (temporaries, notes) is not a key file. */
static bool
key_file_time(const char *name, int64_t *t)
{
    size_t len = strlen(name);
    char digits[24];
    char *end;
    long long v;
    size_t nd;

    if (len < 9 || strncmp(name, "key-", 4) != 0 ||
        strcmp(name + len - 4, ".pem") != 0)
        return false;
    nd = len - 8;
    if (nd == 0 || nd >= sizeof digits)
        return false;
    memcpy(digits, name + 4, nd);
    digits[nd] = '\0';
    for (size_t i = 0; i < nd; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return false;
    }
    errno = 0;
    v = strtoll(digits, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *t = (int64_t)v;
    return true;
}

static int
cmp_time(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int
list_times(const char *dir, int64_t *times, size_t *n, char *err,
           size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    *n = 0;
    if (d == NULL) {
        fail(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        int64_t t;

        if (!key_file_time(e->d_name, &t))
            continue;
        if (*n == MAX_FILES) {
            fail(err, errlen, "%s: more than %d key files; delete retired "
                 "ones", dir, MAX_FILES);
            closedir(d);
            return -1;
        }
        times[(*n)++] = t;
    }
    closedir(d);
    qsort(times, *n, sizeof *times, cmp_time);
    return 0;
}

static int
key_path(char *buf, size_t cap, const char *dir, int64_t t)
{
    int n = snprintf(buf, cap, "%s/key-%lld.pem", dir, (long long)t);

    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int
add_key(tr_gateway_keys *out, const char *dir, int64_t t, char *err,
        size_t errlen)
{
    char path[PATH_MAX];
    tr_txn_key *k = &out->keys[out->n];

    if (key_path(path, sizeof path, dir, t) != 0) {
        fail(err, errlen, "%s: path too long", dir);
        return -1;
    }
    memset(k, 0, sizeof *k);
    k->pkey = read_key(path, err, errlen);
    if (k->pkey == NULL)
        return -1;
    k->created = t;
    if (tr_txn_key_thumbprint(k->pkey, k->kid) != TR_TXN_OK) {
        fail(err, errlen, "%s: cannot compute the key id", path);
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
        return -1;
    }
    for (size_t i = 0; i < out->n; i++) {
        if (strcmp(out->keys[i].kid, k->kid) == 0) {
            fail(err, errlen, "%s: the same key as key-%lld.pem", path,
                 (long long)out->keys[i].created);
            EVP_PKEY_free(k->pkey);
            k->pkey = NULL;
            return -1;
        }
    }
    out->n++;
    return 0;
}

int
tr_gateway_keys_load(const char *dir, int64_t now, uint32_t overlap_s,
                     bool create, tr_gateway_keys *out, char *err,
                     size_t errlen)
{
    int64_t times[MAX_FILES];
    size_t n, cur = 0;
    bool found = false;

    memset(out, 0, sizeof *out);
    if (check_dir(dir, create, err, errlen) != 0)
        return -1;
    if (list_times(dir, times, &n, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n && times[i] <= now; i++) {
        cur = i;
        found = true;
    }
    if (!found) {
        if (!create) {
            fail(err, errlen, "%s: no key-<T>.pem with T <= now", dir);
            return -1;
        }
        if (tr_gateway_keys_rotate(dir, now, err, errlen) != 0 ||
            list_times(dir, times, &n, err, errlen) != 0)
            return -1;
        for (size_t i = 0; i < n && times[i] <= now; i++)
            cur = i;
    }

    /* current, then next keys soonest first, then retired newest first */
    if (add_key(out, dir, times[cur], err, errlen) != 0)
        goto fail;
    for (size_t i = cur + 1; i < n && out->n < TR_GATEWAY_KEYS_MAX; i++) {
        if (add_key(out, dir, times[i], err, errlen) != 0)
            goto fail;
        out->n_next++;
    }
    for (size_t i = cur; i-- > 0 && out->n < TR_GATEWAY_KEYS_MAX;) {
        /* retired when its successor began to sign */
        if (now >= times[i + 1] + (int64_t)overlap_s)
            break;
        if (add_key(out, dir, times[i], err, errlen) != 0)
            goto fail;
    }
    return 0;

fail:
    tr_gateway_keys_free(out);
    return -1;
}

int
tr_gateway_keys_load_file(const char *path, tr_gateway_keys *out,
                          char *err, size_t errlen)
{
    tr_txn_key *k = &out->keys[0];

    memset(out, 0, sizeof *out);
    k->pkey = read_key(path, err, errlen);
    if (k->pkey == NULL)
        return -1;
    if (tr_txn_key_thumbprint(k->pkey, k->kid) != TR_TXN_OK) {
        fail(err, errlen, "%s: cannot compute the key id", path);
        tr_gateway_keys_free(out);
        return -1;
    }
    out->n = 1;
    return 0;
}

static int
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The PEM text of a fresh Ed25519 key in a memory BIO. */
static BIO *
new_key_pem(void)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *bio = pkey ? BIO_new(BIO_s_mem()) : NULL;

    if (bio != NULL &&
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(bio);
        bio = NULL;
    }
    EVP_PKEY_free(pkey);
    return bio;
}

int
tr_gateway_keys_rotate(const char *dir, int64_t from, char *err,
                       size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    BIO *bio = NULL;
    char *pem;
    long pemlen;
    int fd = -1, dfd, rc = -1;
    int n;

    if (from < 0) {
        fail(err, errlen, "%s: key time must not be negative", dir);
        return -1;
    }
    if (check_dir(dir, true, err, errlen) != 0)
        return -1;
    n = snprintf(tmp, sizeof tmp, "%s/.key-%lld.pem.%ld.tmp", dir,
                 (long long)from, (long)getpid());
    if (key_path(path, sizeof path, dir, from) != 0 || n < 0 ||
        (size_t)n >= sizeof tmp) {
        fail(err, errlen, "%s: path too long", dir);
        return -1;
    }
    if (access(path, F_OK) == 0) {
        fail(err, errlen, "%s: exists already", path);
        return -1;
    }
    bio = new_key_pem();
    if (bio == NULL) {
        fail(err, errlen, "%s: cannot generate an Ed25519 key", dir);
        return -1;
    }
    pemlen = BIO_get_mem_data(bio, &pem);

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0) {
        fail(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, pem, (size_t)pemlen) != 0 ||
        fsync(fd) != 0) {
        fail(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    /* link() refuses to replace, so two rotations at the same second
     * cannot overwrite each other's key. */
    if (link(tmp, path) != 0) {
        fail(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;

out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    if (pemlen > 0)
        OPENSSL_cleanse(pem, (size_t)pemlen);
    BIO_free(bio);
    return rc;
}

void
tr_gateway_keys_free(tr_gateway_keys *k)
{
    for (size_t i = 0; i < TR_GATEWAY_KEYS_MAX; i++)
        EVP_PKEY_free(k->keys[i].pkey);
    memset(k, 0, sizeof *k);
}
