/*
 * Gateway signing keys on disk (src/store/gateway_keys.c): creation with
 * safe modes, rotation with overlap, pre-published keys, refusals.  Time
 * is an argument, so rotation is tested on a virtual clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "store/gateway_keys.h"

#define T0 1760000000
#define HOUR 3600

static char dir[256];

static int
setup(void **state)
{
    char tmpl[] = "/tmp/treaty-gwkeys-XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(dir, sizeof dir, "%s/txn-keys", tmpl);
    return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int
teardown(void **state)
{
    char *slash = strrchr(dir, '/');

    *slash = '\0';
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
path_of(char *buf, size_t cap, int64_t t)
{
    snprintf(buf, cap, "%s/key-%lld.pem", dir, (long long)t);
}

static mode_t
mode_of(const char *p)
{
    struct stat st;

    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
}

static void
load_ok(int64_t now, uint32_t overlap, bool create, tr_gateway_keys *k)
{
    char err[256] = "";
    int rc = tr_gateway_keys_load(dir, now, overlap, create, k, err,
                                  sizeof err);

    if (rc != 0)
        print_error("load: %s\n", err);
    assert_int_equal(rc, 0);
}

static void
rotate_ok(int64_t from)
{
    char err[256] = "";

    if (tr_gateway_keys_rotate(dir, from, err, sizeof err) != 0)
        print_error("rotate: %s\n", err);
    assert_string_equal(err, "");
}

static void
first_load_creates_a_private_key_and_keeps_it(void **state)
{
    tr_gateway_keys a, b;
    char p[512];

    load_ok(T0, HOUR, true, &a);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.n_next, 0);
    assert_int_equal(a.keys[0].created, T0);
    assert_int_equal(strlen(a.keys[0].kid), 43);
    assert_true(EVP_PKEY_is_a(a.keys[0].pkey, "ED25519"));
    path_of(p, sizeof p, T0);
    assert_int_equal(mode_of(p), 0600);
    assert_int_equal(mode_of(dir), 0700);

    /* later loads find the same key rather than making another */
    load_ok(T0 + 10 * HOUR, HOUR, true, &b);
    assert_int_equal(b.n, 1);
    assert_string_equal(a.keys[0].kid, b.keys[0].kid);
    tr_gateway_keys_free(&a);
    tr_gateway_keys_free(&b);
}

static void
load_without_create_needs_a_current_key(void **state)
{
    tr_gateway_keys k;
    char err[256] = "";

    assert_int_equal(tr_gateway_keys_load(dir, T0, HOUR, false, &k, err,
                                          sizeof err), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(k.n, 0);
}

static void
rotation_keeps_the_old_key_published_for_the_overlap(void **state)
{
    tr_gateway_keys k;
    char old_kid[TR_TXN_KID_MAX], new_kid[TR_TXN_KID_MAX];

    load_ok(T0, HOUR, true, &k);
    memcpy(old_kid, k.keys[0].kid, sizeof old_kid);
    tr_gateway_keys_free(&k);

    rotate_ok(T0 + 100);
    load_ok(T0 + 100, HOUR, false, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.keys[0].created, T0 + 100);   /* new one signs */
    assert_string_not_equal(k.keys[0].kid, old_kid);
    assert_string_equal(k.keys[1].kid, old_kid);     /* old one shown */
    memcpy(new_kid, k.keys[0].kid, sizeof new_kid);
    tr_gateway_keys_free(&k);

    /* one second before the overlap ends: still published */
    load_ok(T0 + 100 + HOUR - 1, HOUR, false, &k);
    assert_int_equal(k.n, 2);
    tr_gateway_keys_free(&k);
    /* at the end of the overlap: gone */
    load_ok(T0 + 100 + HOUR, HOUR, false, &k);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.keys[0].kid, new_kid);
    tr_gateway_keys_free(&k);
}

static void
future_key_is_published_before_it_signs(void **state)
{
    tr_gateway_keys k;
    char first[TR_TXN_KID_MAX];

    load_ok(T0, HOUR, true, &k);
    memcpy(first, k.keys[0].kid, sizeof first);
    tr_gateway_keys_free(&k);
    rotate_ok(T0 + 2 * HOUR);

    load_ok(T0 + HOUR, HOUR, false, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.n_next, 1);
    assert_string_equal(k.keys[0].kid, first);       /* still signing */
    assert_int_equal(k.keys[1].created, T0 + 2 * HOUR);
    tr_gateway_keys_free(&k);

    load_ok(T0 + 2 * HOUR, HOUR, false, &k);
    assert_int_equal(k.n_next, 0);
    assert_int_equal(k.keys[0].created, T0 + 2 * HOUR);
    assert_string_equal(k.keys[1].kid, first);       /* overlap */
    tr_gateway_keys_free(&k);
}

static void
many_rotations_publish_at_most_the_cap(void **state)
{
    tr_gateway_keys k;

    for (int i = 0; i < TR_GATEWAY_KEYS_MAX + 4; i++)
        rotate_ok(T0 + i);
    load_ok(T0 + TR_GATEWAY_KEYS_MAX + 3, 10 * HOUR, false, &k);
    assert_int_equal(k.n, TR_GATEWAY_KEYS_MAX);
    assert_int_equal(k.keys[0].created, T0 + TR_GATEWAY_KEYS_MAX + 3);
    /* retired ones newest first */
    assert_int_equal(k.keys[1].created, T0 + TR_GATEWAY_KEYS_MAX + 2);
    tr_gateway_keys_free(&k);
}

static void
rotate_refuses_to_replace_a_key(void **state)
{
    char err[256] = "";

    rotate_ok(T0);
    assert_int_equal(tr_gateway_keys_rotate(dir, T0, err, sizeof err), -1);
    assert_non_null(strstr(err, "exists"));
}

static void
readable_key_file_is_refused(void **state)
{
    tr_gateway_keys k;
    char p[512], err[256] = "";

    rotate_ok(T0);
    path_of(p, sizeof p, T0);
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(tr_gateway_keys_load(dir, T0, HOUR, false, &k, err,
                                          sizeof err), -1);
    assert_non_null(strstr(err, "0600"));
}

static void
group_writable_directory_is_refused(void **state)
{
    tr_gateway_keys k;
    char err[256] = "";

    rotate_ok(T0);
    assert_int_equal(chmod(dir, 0770), 0);
    assert_int_equal(tr_gateway_keys_load(dir, T0, HOUR, false, &k, err,
                                          sizeof err), -1);
    assert_non_null(strstr(err, "writable"));
}

static void
other_files_are_ignored(void **state)
{
    tr_gateway_keys k;
    char p[512];
    FILE *f;

    rotate_ok(T0);
    snprintf(p, sizeof p, "%s/README", dir);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs("not a key\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/key-12x.pem", dir);
    fclose(fopen(p, "w"));
    snprintf(p, sizeof p, "%s/.key-5.pem.1.tmp", dir);
    fclose(fopen(p, "w"));
    snprintf(p, sizeof p, "%s/key-.pem", dir);
    fclose(fopen(p, "w"));
    load_ok(T0, HOUR, false, &k);
    assert_int_equal(k.n, 1);
    tr_gateway_keys_free(&k);
}

static void
copied_key_is_refused_as_ambiguous(void **state)
{
    tr_gateway_keys k;
    char a[512], b[512], err[256] = "";

    rotate_ok(T0);
    path_of(a, sizeof a, T0);
    path_of(b, sizeof b, T0 + 1);
    assert_int_equal(link(a, b), 0);
    assert_int_equal(tr_gateway_keys_load(dir, T0 + 1, HOUR, false, &k, err,
                                          sizeof err), -1);
    assert_non_null(strstr(err, "same key"));
}

static void
write_pem(const char *p, EVP_PKEY *pkey)
{
    FILE *f;

    umask(077);
    f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL,
                                          NULL), 1);
    fclose(f);
}

static void
single_key_file_loads_and_non_ed25519_is_refused(void **state)
{
    tr_gateway_keys k;
    char p[512], err[256] = "";
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char kid[TR_TXN_KID_MAX];

    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(p, sizeof p, "%s/fixed.pem", dir);
    write_pem(p, ed);
    assert_int_equal(tr_gateway_keys_load_file(p, &k, err, sizeof err), 0);
    assert_int_equal(k.n, 1);
    assert_int_equal(tr_txn_key_thumbprint(ed, kid), TR_TXN_OK);
    assert_string_equal(k.keys[0].kid, kid);
    tr_gateway_keys_free(&k);

    snprintf(p, sizeof p, "%s/ec.pem", dir);
    write_pem(p, ec);
    assert_int_equal(tr_gateway_keys_load_file(p, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "Ed25519"));
    assert_int_equal(k.n, 0);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec);
}

static void
loaded_key_signs_tokens_its_jwks_verifies(void **state)
{
    tr_gateway_keys k;
    tr_identity id;
    tr_txn_token_opts o = { "treaty", "td.example", 0 };
    tr_txn_token_req rq;
    char tok[TR_TXN_TOKEN_BUF], doc[4096];
    size_t len;

    memset(&id, 0, sizeof id);
    id.sub = "alice";
    id.actor = "alice";
    memset(&rq, 0, sizeof rq);
    rq.id = &id;
    rq.request_id = "r";
    rq.now = T0;
    load_ok(T0, HOUR, true, &k);
    assert_int_equal(tr_txn_token_mint(&o, &k.keys[0], &rq, tok, sizeof tok,
                                       &len), TR_TXN_OK);
    assert_int_equal(tr_txn_jwks(k.keys, k.n, doc, sizeof doc, &len),
                     TR_TXN_OK);
    assert_non_null(strstr(doc, k.keys[0].kid));
    tr_gateway_keys_free(&k);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(first_load_creates_a_private_key_and_keeps_it),
        T(load_without_create_needs_a_current_key),
        T(rotation_keeps_the_old_key_published_for_the_overlap),
        T(future_key_is_published_before_it_signs),
        T(many_rotations_publish_at_most_the_cap),
        T(rotate_refuses_to_replace_a_key),
        T(readable_key_file_is_refused),
        T(group_writable_directory_is_refused),
        T(other_files_are_ignored),
        T(copied_key_is_refused_as_ambiguous),
        T(single_key_file_loads_and_non_ed25519_is_refused),
        T(loaded_key_signs_tokens_its_jwks_verifies),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
