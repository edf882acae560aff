/* Which issuer lacked the kid of a refused token: the hint the JWKS
 * fetcher needs to refetch the right key set (tr_verifier_unknown_kid_
 * issuer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/identity.h"
#include "core/jwks.h"
#include "core/verifier.h"
#include "token_fixture.h"

#define ISS2 "https://second.example/"

typedef struct {
    EVP_PKEY *k1, *k2;
    tr_issuer_cfg ic[2];
    tr_identity_cfg cfg;
    tr_verifier *v;
} fixture;

static char *es_only[] = { "ES256" };

static tr_keyset *
set_of(EVP_PKEY *k, const char *kid)
{
    char *jwk = fx_jwk(k, kid, NULL), doc[4200], err[256];
    tr_keyset *ks;

    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
    free(jwk);
    ks = tr_keyset_parse(doc, strlen(doc), err, sizeof(err));
    assert_non_null(ks);
    return ks;
}

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char err[256];
    tr_keyset *ks;

    f->k1 = fx_gen_ec();
    f->k2 = fx_gen_ec();
    fx_issuer(&f->ic[0], es_only, 1);
    fx_issuer(&f->ic[1], es_only, 1);
    f->ic[1].name = "second";
    f->ic[1].issuer = ISS2;
    fx_identity_cfg(&f->cfg, f->ic, 2);
    f->v = tr_verifier_new(&f->cfg, 7, err, sizeof(err));
    assert_non_null(f->v);
    ks = set_of(f->k1, "a1");
    tr_verifier_set_keys(f->v, 0, ks);
    tr_keyset_unref(ks);
    ks = set_of(f->k2, "b1");
    tr_verifier_set_keys(f->v, 1, ks);
    tr_keyset_unref(ks);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;

    tr_verifier_free(f->v);
    EVP_PKEY_free(f->k1);
    EVP_PKEY_free(f->k2);
    free(f);
    return 0;
}

static char *
token(EVP_PKEY *k, const char *iss, const char *kid)
{
    char h[96], p[256];

    snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"aud\":\"" FX_AUD "\","
             "\"sub\":\"alice\",\"exp\":%lld}", iss, FX_NOW + 300);
    return fx_sign("ES256", k, h, p);
}

static tr_token_status
check(tr_verifier *v, const char *t)
{
    tr_identity *id = NULL;
    tr_token_status st = tr_verifier_check_token(v, t, strlen(t), FX_NOW,
                                                 1, &id);

    tr_identity_unref(id);
    return st;
}

static void
test_unknown_kid_names_the_issuer_of_the_token(void **state)
{
    fixture *f = *state;
    char *t = token(f->k2, ISS2, "b2");
    size_t issuer = 99;

    assert_int_equal(check(f->v, t), TR_TOKEN_UNKNOWN_KID);
    assert_true(tr_verifier_unknown_kid_issuer(f->v, &issuer));
    assert_int_equal(issuer, 1);
    free(t);

    t = token(f->k1, FX_ISS, "a2");
    assert_int_equal(check(f->v, t), TR_TOKEN_UNKNOWN_KID);
    assert_true(tr_verifier_unknown_kid_issuer(f->v, &issuer));
    assert_int_equal(issuer, 0);
    free(t);
}

static void
test_other_answers_leave_no_hint(void **state)
{
    fixture *f = *state;
    char *bad = token(f->k2, ISS2, "b2");
    char *good = token(f->k2, ISS2, "b1");
    char *stranger = token(f->k1, "https://nobody.example/", "zz");
    tr_identity *id = NULL;
    size_t issuer;

    assert_int_equal(check(f->v, bad), TR_TOKEN_UNKNOWN_KID);
    assert_int_equal(check(f->v, good), TR_TOKEN_OK);
    assert_false(tr_verifier_unknown_kid_issuer(f->v, &issuer));

    assert_int_equal(check(f->v, bad), TR_TOKEN_UNKNOWN_KID);
    assert_int_equal(check(f->v, stranger), TR_TOKEN_UNKNOWN_ISSUER);
    assert_false(tr_verifier_unknown_kid_issuer(f->v, &issuer));

    /* no Authorization at all */
    assert_int_equal(check(f->v, bad), TR_TOKEN_UNKNOWN_KID);
    assert_int_equal(tr_verifier_check(f->v, NULL, 0, FX_NOW, 1, &id),
                     TR_TOKEN_MISSING);
    assert_false(tr_verifier_unknown_kid_issuer(f->v, &issuer));
    free(bad);
    free(good);
    free(stranger);
}

static void
test_a_cached_refusal_gives_no_hint(void **state)
{
    fixture *f = *state;
    char *t = token(f->k1, FX_ISS, "a9");
    size_t issuer;

    assert_int_equal(check(f->v, t), TR_TOKEN_UNKNOWN_KID);
    assert_true(tr_verifier_unknown_kid_issuer(f->v, &issuer));
    /* the same bytes again: the negative cache answers */
    assert_int_equal(check(f->v, t), TR_TOKEN_UNKNOWN_KID);
    assert_false(tr_verifier_unknown_kid_issuer(f->v, &issuer));
    free(t);
}

static void
test_new_keys_let_the_refused_token_through(void **state)
{
    fixture *f = *state;
    EVP_PKEY *k3 = fx_gen_ec();
    char *t = token(k3, FX_ISS, "a3");
    tr_keyset *ks;

    assert_int_equal(check(f->v, t), TR_TOKEN_UNKNOWN_KID);
    /* what a refetch installs: the refusal is not remembered past it */
    ks = set_of(k3, "a3");
    tr_verifier_set_keys(f->v, 0, ks);
    tr_keyset_unref(ks);
    assert_int_equal(check(f->v, t), TR_TOKEN_OK);
    free(t);
    EVP_PKEY_free(k3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_unknown_kid_names_the_issuer_of_the_token, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_other_answers_leave_no_hint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_cached_refusal_gives_no_hint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_new_keys_let_the_refused_token_through, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
