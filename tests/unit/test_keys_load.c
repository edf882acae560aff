/* Key files: JWKS and HS256 secrets read from disk, dev keys refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/keys_load.h"
#include "token_fixture.h"

static char dir[] = "/tmp/treaty-keys-XXXXXX";
static char path[256];

static const char *
write_file(const char *name, const char *text)
{
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static char *
jwks_with_kid(const char *kid)
{
    EVP_PKEY *k = fx_gen_ec();
    char *j = fx_jwk(k, kid, "ES256"), *doc = malloc(4096);

    snprintf(doc, 4096, "{\"keys\":[%s]}", j);
    free(j);
    EVP_PKEY_free(k);
    return doc;
}

static void
dev_keys_are_refused_without_dev(void **state)
{
    char *doc = jwks_with_kid("treaty-dev-es256"), err[512];
    char *es[] = { "ES256" };
    tr_issuer_cfg ic;
    tr_identity_cfg c;
    tr_verifier *v;

    fx_issuer(&ic, es, 1);
    ic.jwks_file = strdup(write_file("dev.json", doc));
    fx_identity_cfg(&c, &ic, 1);
    v = tr_verifier_new(&c, 1, err, sizeof(err));
    assert_int_equal(tr_keys_load_files(v, &c, false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--dev"));
    assert_false(tr_verifier_ready(v));
    assert_int_equal(tr_keys_load_files(v, &c, true, err, sizeof(err)), 0);
    assert_true(tr_verifier_ready(v));
    assert_true(tr_verifier_has_dev_key(v));
    tr_verifier_free(v);
    free(ic.jwks_file);
    free(doc);
}

static void
hs256_secret_file_drops_one_newline_and_needs_32_bytes(void **state)
{
    char err[256];
    tr_keyset *ks;

    ks = tr_keys_load_hmac_file(write_file("ok.secret",
        "0123456789abcdef0123456789abcdef\n"), err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(tr_keyset_key(ks, 0)->secret_len, 32);
    tr_keyset_unref(ks);
    assert_null(tr_keys_load_hmac_file(write_file("short.secret",
        "0123456789abcdef0123456789abcde\n"), err, sizeof(err)));
    assert_non_null(strstr(err, "32"));
    assert_null(tr_keys_load_hmac_file(write_file("crlf.secret",
        "0123456789abcdef0123456789abcde\r\n"), err, sizeof(err)));
}

static void
unreadable_or_empty_key_files_are_errors(void **state)
{
    char err[256];

    assert_null(tr_keys_load_jwks_file("/nonexistent/jwks.json", err,
                                       sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/jwks.json"));
    assert_null(tr_keys_load_jwks_file(write_file("empty.json",
        "{\"keys\":[]}"), err, sizeof(err)));
    assert_non_null(strstr(err, "no usable key"));
    assert_null(tr_keys_load_jwks_file(write_file("bad.json", "{\"keys\":"),
                                       err, sizeof(err)));
    assert_null(tr_keys_load_jwks_file(dir, err, sizeof(err)));
}

static int
group_setup(void **state)
{
    return mkdtemp(dir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
    const char *names[] = { "dev.json", "ok.secret", "short.secret",
                            "crlf.secret", "empty.json", "bad.json" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dev_keys_are_refused_without_dev),
        cmocka_unit_test(
            hs256_secret_file_drops_one_newline_and_needs_32_bytes),
        cmocka_unit_test(unreadable_or_empty_key_files_are_errors),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
