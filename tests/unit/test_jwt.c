/*
 * Token verification: every algorithm accepted when properly signed, and
 * a negative suite drawn from RFC 8725 and published JWT attacks, each
 * expecting a refusal with a specific reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/identity.h"
#include "core/jwks.h"
#include "core/jwt.h"
#include "core/verifier.h"
#include "token_fixture.h"

static EVP_PKEY *ec1, *ec2, *rsa1, *rsa_weak, *ed1;
static char *jwks_text;

static tr_issuer_cfg issuer;
static tr_identity_cfg cfg;
static tr_verifier *V;

#define H_ES "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"ec1\"}"

static int
group_setup(void **state)
{
    char *j[5];

    ec1 = fx_gen_ec();
    ec2 = fx_gen_ec();
    rsa1 = fx_gen_rsa(2048);
    rsa_weak = fx_gen_rsa(1024);
    ed1 = fx_gen_ed25519();
    j[0] = fx_jwk(ec1, "ec1", "ES256");
    j[1] = fx_jwk(ec2, "ec2", NULL);
    j[2] = fx_jwk(rsa1, "rsa1", NULL);
    j[3] = fx_jwk(rsa_weak, "rsa-weak", NULL);
    j[4] = fx_jwk(ed1, "ed1", "EdDSA");
    jwks_text = malloc(16384);
    snprintf(jwks_text, 16384, "{\"keys\":[%s,%s,%s,%s,%s]}", j[0], j[1],
             j[2], j[3], j[4]);
    for (int i = 0; i < 5; i++)
        free(j[i]);
    return 0;
}

static int
group_teardown(void **state)
{
    EVP_PKEY_free(ec1);
    EVP_PKEY_free(ec2);
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(rsa_weak);
    EVP_PKEY_free(ed1);
    free(jwks_text);
    return 0;
}

/* A verifier for one issuer allowing algs, with the test key set and the
 * HMAC secret when HS256 is allowed. */
static void
make_verifier(char **algs, size_t n)
{
    char err[256];
    tr_keyset *ks;

    fx_issuer(&issuer, algs, n);
    fx_identity_cfg(&cfg, &issuer, 1);
    V = tr_verifier_new(&cfg, 42, err, sizeof(err));
    assert_non_null(V);
    ks = tr_keyset_parse(jwks_text, strlen(jwks_text), err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(tr_verifier_set_keys(V, 0, ks), 0);
    tr_keyset_unref(ks);
    if (issuer.hs256_secret_file) {
        ks = tr_keyset_new_hmac((const uint8_t *)FX_HMAC_SECRET,
                                strlen(FX_HMAC_SECRET), err, sizeof(err));
        assert_non_null(ks);
        assert_int_equal(tr_verifier_set_hmac(V, 0, ks), 0);
        tr_keyset_unref(ks);
    }
}

static int
setup(void **state)
{
    make_verifier(fx_algs_all, 5);
    return 0;
}

static int
teardown(void **state)
{
    tr_verifier_free(V);
    V = NULL;
    return 0;
}

static const char *
verify_at(const char *tok, int64_t now)
{
    tr_identity *id = NULL;
    tr_token_status st = tr_verifier_check_token(V, tok, strlen(tok), now,
                                                 0, &id);

    if (st == TR_TOKEN_OK)
        assert_non_null(id);
    else
        assert_null(id);
    tr_identity_unref(id);
    return tr_token_status_name(st);
}

static const char *
verify(const char *tok)
{
    return verify_at(tok, FX_NOW);
}

/* Signs payload_extra under header with key k and checks the reason. */
static void
expect_signed(const char *want, const char *alg, EVP_PKEY *k,
              const char *header, const char *payload_extra)
{
    char *p = fx_payload(payload_extra);
    char *t = fx_sign(alg, k, header, p);

    assert_string_equal(verify(t), want);
    free(p);
    free(t);
}

/* ---- positive: every algorithm ---- */

static void
es256_signed_token_is_accepted(void **state)
{
    expect_signed("ok", "ES256", ec1, H_ES, "");
}

static void
rs256_signed_token_is_accepted(void **state)
{
    expect_signed("ok", "RS256", rsa1,
                  "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "");
}

static void
ps256_signed_token_is_accepted(void **state)
{
    expect_signed("ok", "PS256", rsa1,
                  "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", "");
}

static void
eddsa_signed_token_is_accepted(void **state)
{
    expect_signed("ok", "EdDSA", ed1,
                  "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"typ\":\"JWT\"}", "");
}

static void
hs256_with_the_secret_file_key_is_accepted(void **state)
{
    expect_signed("ok", "HS256", NULL, "{\"alg\":\"HS256\"}", "");
}

static void
typ_variants_are_accepted_case_insensitively(void **state)
{
    const char *typs[] = { "at+jwt", "application/at+jwt", "JWT", "jwt",
                           "AT+JWT", "application/jwt" };
    char h[128];

    for (size_t i = 0; i < sizeof(typs) / sizeof(typs[0]); i++) {
        snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"ec1\","
                 "\"typ\":\"%s\"}", typs[i]);
        expect_signed("ok", "ES256", ec1, h, "");
    }
    expect_signed("ok", "ES256", ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
                  "");
}

static void
aud_array_naming_our_audience_is_accepted(void **state)
{
    char *t = fx_sign("ES256", ec1, H_ES,
                      "{\"iss\":\"" FX_ISS "\",\"aud\":[\"other\",\""
                      FX_AUD "\"],\"sub\":\"alice\",\"exp\":1700000300}");

    assert_string_equal(verify(t), "ok");
    free(t);
}

static void
fractional_exp_is_accepted(void **state)
{
    char *t = fx_sign("ES256", ec1, H_ES,
                      "{\"iss\":\"" FX_ISS "\",\"aud\":\"" FX_AUD "\","
                      "\"sub\":\"alice\",\"exp\":1700000300.5}");

    assert_string_equal(verify(t), "ok");
    free(t);
}

static void
missing_kid_is_refused_when_several_keys_fit(void **state)
{
    /* ec1 and ec2 are both EC keys: no kid means no unambiguous key. */
    expect_signed("unknown_kid", "ES256", ec1, "{\"alg\":\"ES256\"}", "");
}

static void
missing_kid_is_accepted_when_exactly_one_key_fits(void **state)
{
    /* One RSA key of usable size (the 1024-bit one was skipped). */
    expect_signed("ok", "RS256", rsa1, "{\"alg\":\"RS256\"}", "");
    expect_signed("ok", "EdDSA", ed1, "{\"alg\":\"EdDSA\"}", "");
}

static void
identity_carries_issuer_name_and_times(void **state)
{
    char *p = fx_payload(",\"nbf\":1699999000");
    char *t = fx_sign("ES256", ec1, H_ES, p);
    tr_identity *id = NULL;

    assert_int_equal(tr_verifier_check_token(V, t, strlen(t), FX_NOW, 0,
                                             &id), TR_TOKEN_OK);
    assert_string_equal(id->issuer_name, "corp");
    assert_int_equal(id->exp, FX_NOW + 300);
    assert_int_equal(id->nbf, 1699999000);
    tr_identity_unref(id);
    free(p);
    free(t);
}

/* ---- algorithm attacks ---- */

static void
alg_none_in_every_spelling_is_refused(void **state)
{
    const char *spellings[] = { "none", "None", "NONE", "nOnE" };
    char h[64], *p = fx_payload(""), *t;

    for (size_t i = 0; i < 4; i++) {
        snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
                 spellings[i]);
        t = fx_raw(h, p, "");
        assert_string_equal(verify(t), "alg_not_allowed");
        free(t);
        /* ...and with some signature bytes attached. */
        t = fx_raw(h, p, "c2lnbmF0dXJl");
        assert_string_equal(verify(t), "alg_not_allowed");
        free(t);
    }
    free(p);
}

static void
missing_or_non_string_alg_is_refused(void **state)
{
    expect_signed("alg_not_allowed", "ES256", ec1, "{\"kid\":\"ec1\"}", "");
    expect_signed("alg_not_allowed", "ES256", ec1,
                  "{\"alg\":256,\"kid\":\"ec1\"}", "");
    expect_signed("alg_not_allowed", "ES256", ec1,
                  "{\"alg\":\"ES384\",\"kid\":\"ec1\"}", "");
}

static void
alg_outside_the_issuer_allow_list_is_refused(void **state)
{
    char *only_es[] = { "ES256" };

    tr_verifier_free(V);
    make_verifier(only_es, 1);
    expect_signed("alg_not_allowed", "RS256", rsa1,
                  "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "");
    expect_signed("ok", "ES256", ec1, H_ES, "");
}

/* The classic confusion: an HS256 token keyed with the bytes of the
 * RSA public key, hoping the verifier uses them as an HMAC secret. */
static char *
hs256_with_rsa_public_bytes(const char *header)
{
    uint8_t *der = NULL;
    int n = i2d_PUBKEY(rsa1, &der);
    char *p = fx_payload(""), *t;

    assert_true(n > 0);
    t = fx_sign_ex("HS256", NULL, der, (size_t)n, header, p, 0);
    OPENSSL_free(der);
    free(p);
    return t;
}

static void
hs256_keyed_with_rsa_public_key_is_refused_without_hs256(void **state)
{
    char *rs_only[] = { "RS256" };
    char *t;

    tr_verifier_free(V);
    make_verifier(rs_only, 1);
    t = hs256_with_rsa_public_bytes("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}");
    assert_string_equal(verify(t), "alg_not_allowed");
    free(t);
}

static void
hs256_keyed_with_rsa_public_key_is_refused_with_hs256(void **state)
{
    /* HS256 allowed: the secret still comes only from the secret file,
     * never from a JWKS key named by kid. */
    char *t = hs256_with_rsa_public_bytes("{\"alg\":\"HS256\","
                                          "\"kid\":\"rsa1\"}");

    assert_string_equal(verify(t), "unknown_kid");
    free(t);
    t = hs256_with_rsa_public_bytes("{\"alg\":\"HS256\"}");
    assert_string_equal(verify(t), "bad_signature");
    free(t);
}

static void
kid_of_a_key_of_another_type_is_refused(void **state)
{
    /* ES256 signed, but kid names the RSA key. */
    expect_signed("key_mismatch", "ES256", ec1,
                  "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", "");
    /* The JWK says alg ES256 for ec1; ec2 has no alg: a PS256 claim on
     * an EC kid is a mismatch either way. */
    expect_signed("key_mismatch", "PS256", rsa1,
                  "{\"alg\":\"PS256\",\"kid\":\"ec1\"}", "");
}

static void
signature_by_another_key_of_the_same_type_is_refused(void **state)
{
    /* Signed by ec2, claiming to be ec1. */
    expect_signed("bad_signature", "ES256", ec2, H_ES, "");
}

/* ---- kid tricks ---- */

static void
kid_tricks_are_refused(void **state)
{
    const char *kids[] = {
        "unknown", "../../dev/null", "/etc/passwd",
        "x' OR '1'='1", "ec1\\u0000", "EC1", "ec1 ",
    };
    char h[256], *long_kid, *hl;

    for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++) {
        snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\"}",
                 kids[i]);
        /* "ec1\u0000": jansson refuses NUL in strings: malformed. */
        expect_signed(strstr(kids[i], "\\u0000") ? "malformed"
                                                 : "unknown_kid",
                      "ES256", ec1, h, "");
    }
    long_kid = malloc(4001);
    memset(long_kid, 'k', 4000);
    long_kid[4000] = '\0';
    hl = malloc(4100);
    snprintf(hl, 4100, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", long_kid);
    expect_signed("unknown_kid", "ES256", ec1, hl, "");
    free(long_kid);
    free(hl);
    expect_signed("malformed", "ES256", ec1,
                  "{\"alg\":\"ES256\",\"kid\":7}", "");
}

static void
weak_rsa_key_is_never_used(void **state)
{
    expect_signed("unknown_kid", "RS256", rsa_weak,
                  "{\"alg\":\"RS256\",\"kid\":\"rsa-weak\"}", "");
}

/* ---- keys from the token ---- */

static void
embedded_or_remote_keys_are_refused(void **state)
{
    const char *members[] = {
        "\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}",
        "\"jku\":\"https://attacker.example/jwks.json\"",
        "\"x5u\":\"https://attacker.example/cert.pem\"",
        "\"x5c\":[\"MIIB\"]",
    };
    char h[256];

    for (size_t i = 0; i < 4; i++) {
        snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"ec1\",%s}",
                 members[i]);
        /* Properly signed by the real key: still refused. */
        expect_signed("embedded_key", "ES256", ec1, h, "");
    }
}

static void
crit_is_refused(void **state)
{
    expect_signed("crit_not_understood", "ES256", ec1,
                  "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":[\"exp\"],"
                  "\"exp\":1}", "");
    expect_signed("crit_not_understood", "ES256", ec1,
                  "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":[\"b64\"],"
                  "\"b64\":false}", "");
    expect_signed("crit_not_understood", "ES256", ec1,
                  "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":[]}", "");
}

static void
typ_confusion_is_refused(void **state)
{
    const char *typs[] = { "\"txntoken+jwt\"", "\"JWS\"", "\"secevent+jwt\"",
                           "\"id_token+jwt\"", "\"\"", "1", "null" };
    char h[128];

    for (size_t i = 0; i < sizeof(typs) / sizeof(typs[0]); i++) {
        snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"ec1\","
                 "\"typ\":%s}", typs[i]);
        expect_signed("typ_not_allowed", "ES256", ec1, h, "");
    }
}

static void
jwe_header_is_refused(void **state)
{
    expect_signed("malformed", "ES256", ec1,
                  "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"enc\":\"A256GCM\"}",
                  "");
}

/* ---- time ---- */

static char *
timed_token(const char *claims)
{
    char p[512];

    snprintf(p, sizeof(p), "{\"iss\":\"" FX_ISS "\",\"aud\":\"" FX_AUD "\","
             "\"sub\":\"alice\",%s}", claims);
    return fx_sign("ES256", ec1, H_ES, p);
}

static void
exp_boundaries_around_the_leeway(void **state)
{
    char *t = timed_token("\"exp\":1700000000");

    assert_string_equal(verify_at(t, FX_NOW - 1), "ok");
    assert_string_equal(verify_at(t, FX_NOW + 59), "ok");   /* leeway-1 */
    assert_string_equal(verify_at(t, FX_NOW + 60), "expired");
    assert_string_equal(verify_at(t, FX_NOW + 61), "expired"); /* leeway+1 */
    free(t);
}

static void
nbf_boundaries_around_the_leeway(void **state)
{
    char *t = timed_token("\"exp\":1700009999,\"nbf\":1700000000");

    assert_string_equal(verify_at(t, FX_NOW - 61), "not_yet_valid");
    assert_string_equal(verify_at(t, FX_NOW - 60), "ok");
    assert_string_equal(verify_at(t, FX_NOW - 59), "ok");
    free(t);
}

static void
exp_is_required_and_numeric(void **state)
{
    const struct {
        const char *claims, *want;
    } cases[] = {
        { "\"iat\":1700000000", "missing_exp" },
        { "\"exp\":\"1700000300\"", "bad_time_claim" },
        { "\"exp\":null", "bad_time_claim" },
        { "\"exp\":true", "bad_time_claim" },
        { "\"exp\":[1700000300]", "bad_time_claim" },
        { "\"exp\":1e300", "bad_time_claim" },
        { "\"exp\":9223372036854775807", "bad_time_claim" },
        { "\"exp\":1700000300,\"nbf\":\"0\"", "bad_time_claim" },
        { "\"exp\":1700000300,\"iat\":\"now\"", "bad_time_claim" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = timed_token(cases[i].claims);

        assert_string_equal(verify(t), cases[i].want);
        free(t);
    }
}

/* ---- iss, aud, sub ---- */

static void
wrong_or_missing_issuer_is_refused(void **state)
{
    const char *payloads[] = {
        "{\"iss\":\"https://evil.example/\",\"aud\":\"" FX_AUD "\","
        "\"sub\":\"a\",\"exp\":1700000300}",
        "{\"iss\":\"https://idp.example.com\",\"aud\":\"" FX_AUD "\","
        "\"sub\":\"a\",\"exp\":1700000300}",
        "{\"aud\":\"" FX_AUD "\",\"sub\":\"a\",\"exp\":1700000300}",
        "{\"iss\":[\"" FX_ISS "\"],\"aud\":\"" FX_AUD "\",\"sub\":\"a\","
        "\"exp\":1700000300}",
    };

    for (size_t i = 0; i < 4; i++) {
        char *t = fx_sign("ES256", ec1, H_ES, payloads[i]);

        assert_string_equal(verify(t), "unknown_issuer");
        free(t);
    }
}

static void
wrong_or_missing_audience_is_refused(void **state)
{
    const char *auds[] = {
        ",\"aud\":\"https://other.example\"",
        ",\"aud\":[\"a\",\"b\"]",
        ",\"aud\":[]",
        ",\"aud\":[\"" FX_AUD "\",7]",
        ",\"aud\":7",
        "",
    };
    char p[256];

    for (size_t i = 0; i < sizeof(auds) / sizeof(auds[0]); i++) {
        char *t;

        snprintf(p, sizeof(p), "{\"iss\":\"" FX_ISS "\",\"sub\":\"a\","
                 "\"exp\":1700000300%s}", auds[i]);
        t = fx_sign("ES256", ec1, H_ES, p);
        assert_string_equal(verify(t), "wrong_audience");
        free(t);
    }
}

static void
sub_missing_empty_or_not_a_string_is_refused(void **state)
{
    const char *subs[] = { "", ",\"sub\":\"\"", ",\"sub\":42",
                           ",\"sub\":null", ",\"sub\":[\"alice\"]" };
    char p[256];

    for (size_t i = 0; i < 5; i++) {
        char *t;

        snprintf(p, sizeof(p), "{\"iss\":\"" FX_ISS "\",\"aud\":\"" FX_AUD
                 "\",\"exp\":1700000300%s}", subs[i]);
        t = fx_sign("ES256", ec1, H_ES, p);
        assert_string_equal(verify(t), "bad_sub");
        free(t);
    }
}

static void
header_unsafe_claim_values_are_refused(void **state)
{
    const char *bad[] = {
        "\"sub\":\"alice\\r\\nX-Principal: root\"",
        "\"sub\":\"alice\\n\"",
        "\"sub\":\"al\\u007fice\"",
        "\"sub\":\"j\\u00fcrgen\"",
        "\"sub\":\"alice\",\"act\":{\"sub\":\"bot\\r\\nX: y\"}",
        "\"sub\":\"alice\",\"client_id\":\"c\\tx\"",
        "\"sub\":\"alice\",\"scope\":\"a\\\"b\"",
    };
    char p[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t;

        snprintf(p, sizeof(p), "{\"iss\":\"" FX_ISS "\",\"aud\":\"" FX_AUD
                 "\",\"exp\":1700000300,%s}", bad[i]);
        t = fx_sign("ES256", ec1, H_ES, p);
        assert_string_equal(verify(t), "bad_claim");
        free(t);
    }
    /* NUL cannot even be parsed. */
    expect_signed("malformed", "ES256", ec1, H_ES, ",\"x\":\"a\\u0000b\"");
}

/* ---- signatures ---- */

static void
zero_length_signature_is_refused(void **state)
{
    char *p = fx_payload(""), *t = fx_raw(H_ES, p, "");

    assert_string_equal(verify(t), "bad_signature");
    free(t);
    t = fx_raw("{\"alg\":\"HS256\"}", p, "");
    assert_string_equal(verify(t), "bad_signature");
    free(t);
    free(p);
}

/* The token with its signature cut to (or padded with zero bytes to)
 * new_len bytes, properly re-encoded. */
static char *
resized_signature(const char *t, size_t new_len)
{
    const char *dot = strrchr(t, '.');
    uint8_t sig[1200] = { 0 };
    size_t n, head = (size_t)(dot - t) + 1;
    char *out = malloc(head + 1700);

    assert_int_equal(tr_b64url_decode(dot + 1, strlen(dot + 1), sig,
                                      sizeof(sig), &n), 0);
    memcpy(out, t, head);
    assert_int_equal(tr_b64url_encode(sig, new_len, out + head, 1700, &n),
                     0);
    return out;
}

static void
truncated_and_extended_signatures_are_refused(void **state)
{
    char *p = fx_payload(""), *t = fx_sign("ES256", ec1, H_ES, p);
    char *cut = resized_signature(t, 63), *ext = resized_signature(t, 65);
    char *same = resized_signature(t, 64);

    assert_string_equal(verify(same), "ok"); /* the helper is faithful */
    assert_string_equal(verify(cut), "bad_signature");
    assert_string_equal(verify(ext), "bad_signature");
    free(cut);
    free(ext);
    free(same);
    free(t);
    free(p);
}

static void
flipped_signature_or_payload_is_refused(void **state)
{
    char *p = fx_payload(""), *t = fx_sign("ES256", ec1, H_ES, p);
    char *dot = strrchr(t, '.');
    char *t2 = strdup(t);
    char *q, *forged;

    /* One signature character changed. */
    t2[dot - t + 5] = t2[dot - t + 5] == 'A' ? 'B' : 'A';
    assert_string_equal(verify(t2), "bad_signature");
    /* The payload swapped for another with the old signature. */
    q = fx_payload(",\"scope\":\"admin\"");
    forged = fx_raw(H_ES, q, dot + 1);
    assert_string_equal(verify(forged), "bad_signature");
    free(forged);
    free(q);
    free(t2);
    free(t);
    free(p);
}

static void
der_encoded_es256_signature_is_refused(void **state)
{
    char *p = fx_payload("");
    char *t = fx_sign_ex("ES256", ec1, NULL, 0, H_ES, p, 1);

    assert_string_equal(verify(t), "bad_signature");
    free(t);
    free(p);
}

static void
rsa_signature_of_wrong_length_is_refused(void **state)
{
    char *p = fx_payload("");
    char *t = fx_sign("RS256", rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
                      p);
    char *cut = resized_signature(t, 255), *ext = resized_signature(t, 257);

    assert_string_equal(verify(cut), "bad_signature");
    assert_string_equal(verify(ext), "bad_signature");
    free(cut);
    free(ext);
    free(t);
    free(p);
}

static void
pkcs1_signature_presented_as_ps256_is_refused(void **state)
{
    char *p = fx_payload("");
    char *t = fx_sign("RS256", rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
                      p);
    char *sig = strrchr(t, '.') + 1;
    char *forged = fx_raw("{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", p, sig);

    assert_string_equal(verify(forged), "bad_signature");
    free(forged);
    free(t);
    free(p);
}

/* ---- duplicates ---- */

static void
duplicate_members_are_refused(void **state)
{
    /* In the header: the second alg would win in a lax parser. */
    expect_signed("duplicate_member", "ES256", ec1,
                  "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"alg\":\"none\"}", "");
    /* In the payload: two subs. */
    expect_signed("duplicate_member", "ES256", ec1, H_ES,
                  ",\"sub\":\"root\"");
    /* Inside act. */
    expect_signed("duplicate_member", "ES256", ec1, H_ES,
                  ",\"act\":{\"sub\":\"a\",\"sub\":\"b\"}");
}

/* ---- act ---- */

static char *
nested_act(int depth)
{
    char *s = malloc(4096);
    size_t pos = 0;

    pos += (size_t)snprintf(s + pos, 4096 - pos, ",\"act\":");
    for (int i = 0; i < depth; i++)
        pos += (size_t)snprintf(s + pos, 4096 - pos, "{\"sub\":\"a%d\"%s",
                                i, i + 1 < depth ? ",\"act\":" : "");
    for (int i = 0; i < depth; i++)
        s[pos++] = '}';
    s[pos] = '\0';
    return s;
}

static void
act_nested_nine_deep_is_refused_eight_accepted(void **state)
{
    char *a8 = nested_act(8), *a9 = nested_act(9), *a50 = nested_act(50);

    expect_signed("ok", "ES256", ec1, H_ES, a8);
    expect_signed("bad_act", "ES256", ec1, H_ES, a9);
    expect_signed("bad_act", "ES256", ec1, H_ES, a50);
    free(a8);
    free(a9);
    free(a50);
}

static void
malformed_act_is_refused(void **state)
{
    const char *acts[] = {
        ",\"act\":\"agent:mailbot\"",
        ",\"act\":[{\"sub\":\"agent:mailbot\"}]",
        ",\"act\":42",
        ",\"act\":null",
        ",\"act\":true",
        ",\"act\":{}",
        ",\"act\":{\"client_id\":\"x\"}",
        ",\"act\":{\"sub\":\"\"}",
        ",\"act\":{\"sub\":7}",
        ",\"act\":{\"sub\":\"a\",\"act\":\"b\"}",
        ",\"act\":{\"sub\":\"a\",\"act\":{\"iss\":\"x\"}}",
    };

    for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
        expect_signed("bad_act", "ES256", ec1, H_ES, acts[i]);
}

/* ---- structure and encoding ---- */

static void
oversized_token_is_refused(void **state)
{
    char *pad = malloc(9000), *p, *t;

    memset(pad, 0, 9000);
    memcpy(pad, ",\"pad\":\"", 8);
    memset(pad + 8, 'x', 7000);
    memcpy(pad + 7008, "\"", 1);
    p = fx_payload(pad);
    t = fx_sign("ES256", ec1, H_ES, p);
    assert_true(strlen(t) > 8192);
    assert_string_equal(verify(t), "token_too_large");
    free(t);
    free(p);
    free(pad);
}

static void
structural_garbage_is_malformed(void **state)
{
    char *p = fx_payload(""), *good = fx_sign("ES256", ec1, H_ES, p);
    char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    char buf[2048];
    const char *plain[] = {
        "", ".", "..", "...", "a.b", "a..c", ".b.c",
        "!!!.???.***", "eyJhbGciOiJFUzI1NiJ9", "not a token",
    };

    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        assert_string_equal(verify(plain[i]), "malformed");

    /* Extra dots: four parts, and five (a JWE). */
    snprintf(buf, sizeof(buf), "%s.", good);
    assert_string_equal(verify(buf), "malformed");
    snprintf(buf, sizeof(buf), "%s.AAAA.BBBB", good);
    assert_string_equal(verify(buf), "malformed");
    /* Empty payload part. */
    snprintf(buf, sizeof(buf), "%.*s..%s", (int)(d1 - good), good, d2 + 1);
    assert_string_equal(verify(buf), "malformed");
    /* Padding on the header. */
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(d1 - good), good, d1);
    assert_string_equal(verify(buf), "malformed");
    /* Standard base64 characters instead of base64url. */
    snprintf(buf, sizeof(buf), "%s", good);
    buf[3] = '+';
    assert_string_equal(verify(buf), "malformed");
    /* Whitespace inside. */
    snprintf(buf, sizeof(buf), "%s", good);
    buf[5] = ' ';
    assert_string_equal(verify(buf), "malformed");
    /* Padding on the signature. */
    snprintf(buf, sizeof(buf), "%s==", good);
    assert_string_equal(verify(buf), "malformed");
    free(good);
    free(p);
}

static void
non_object_parts_are_malformed(void **state)
{
    const char *bodies[] = { "[1,2]", "\"alice\"", "42", "null", "{",
                             "{\"sub\":\"a\"} x", "" };
    char *t;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        t = fx_sign("ES256", ec1, H_ES, bodies[i]);
        assert_string_equal(verify(t), "malformed");
        free(t);
        t = fx_raw(bodies[i], "{}", "AAAA");
        assert_string_equal(verify(t), "malformed");
        free(t);
    }
}

/* ---- the Authorization header ---- */

static void
authorization_header_forms(void **state)
{
    char *p = fx_payload(""), *t = fx_sign("ES256", ec1, H_ES, p);
    char buf[2048];
    tr_identity *id;

    assert_int_equal(tr_verifier_check(V, NULL, 0, FX_NOW, 0, &id),
                     TR_TOKEN_MISSING);
    snprintf(buf, sizeof(buf), "Basic %s", t);
    assert_int_equal(tr_verifier_check(V, buf, strlen(buf), FX_NOW, 0, &id),
                     TR_TOKEN_MISSING);
    snprintf(buf, sizeof(buf), "Bearer%s", t);
    assert_int_equal(tr_verifier_check(V, buf, strlen(buf), FX_NOW, 0, &id),
                     TR_TOKEN_MISSING);
    assert_int_equal(tr_verifier_check(V, "Bearer", 6, FX_NOW, 0, &id),
                     TR_TOKEN_MALFORMED);
    assert_int_equal(tr_verifier_check(V, "Bearer   ", 9, FX_NOW, 0, &id),
                     TR_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "bEARER  %s", t);
    assert_int_equal(tr_verifier_check(V, buf, strlen(buf), FX_NOW, 0, &id),
                     TR_TOKEN_OK);
    assert_string_equal(id->sub, "alice");
    tr_identity_unref(id);
    free(t);
    free(p);
}

static void
status_names_and_problems_are_stable(void **state)
{
    assert_string_equal(tr_token_status_name(TR_TOKEN_MISSING),
                        "missing_token");
    assert_int_equal(tr_token_status_problem(TR_TOKEN_MISSING),
                     TR_P_TOKEN_MISSING);
    assert_int_equal(tr_token_status_problem(TR_TOKEN_BAD_ACT),
                     TR_P_TOKEN_INVALID);
    assert_int_equal(tr_token_status_problem(TR_TOKEN_BUSY),
                     TR_P_VERIFICATION_BUSY);
    assert_null(tr_token_status_bearer_error(TR_TOKEN_MISSING));
    assert_string_equal(tr_token_status_bearer_error(TR_TOKEN_EXPIRED),
                        "invalid_token");
    for (int s = 0; s < TR_TOKEN__COUNT; s++)
        assert_non_null(tr_token_status_name(s));
}

/* ---- configuration ---- */

static void
verifier_refuses_unsafe_issuer_settings(void **state)
{
    char *bad_alg[] = { "none" }, *hs[] = { "HS256" }, *es[] = { "ES256" };
    tr_issuer_cfg two[2];
    tr_identity_cfg c;
    char err[256];

    fx_issuer(&two[0], bad_alg, 1);
    fx_identity_cfg(&c, two, 1);
    assert_null(tr_verifier_new(&c, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "none"));

    fx_issuer(&two[0], hs, 1);
    two[0].hs256_secret_file = NULL;
    assert_null(tr_verifier_new(&c, 1, err, sizeof(err)));

    fx_issuer(&two[0], es, 1);
    two[0].audiences.n = 0;
    assert_null(tr_verifier_new(&c, 1, err, sizeof(err)));

    fx_issuer(&two[0], es, 1);
    fx_issuer(&two[1], es, 1);
    two[1].name = "other";
    fx_identity_cfg(&c, two, 2);
    assert_null(tr_verifier_new(&c, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "repeats"));
}

static void
second_issuer_is_selected_by_iss(void **state)
{
    char *es[] = { "ES256" };
    tr_issuer_cfg two[2];
    tr_identity_cfg c;
    char err[256], *t;
    tr_keyset *ks;
    tr_verifier *v;
    tr_identity *id;

    fx_issuer(&two[0], es, 1);
    fx_issuer(&two[1], es, 1);
    two[1].name = "partner";
    two[1].issuer = "https://partner.example/";
    fx_identity_cfg(&c, two, 2);
    v = tr_verifier_new(&c, 1, err, sizeof(err));
    assert_non_null(v);
    assert_false(tr_verifier_ready(v));
    ks = tr_keyset_parse(jwks_text, strlen(jwks_text), err, sizeof(err));
    tr_verifier_set_keys(v, 1, ks);
    assert_false(tr_verifier_ready(v));
    tr_verifier_set_keys(v, 0, ks);
    assert_true(tr_verifier_ready(v));
    tr_keyset_unref(ks);
    t = fx_sign("ES256", ec1, H_ES, "{\"iss\":\"https://partner.example/\","
                "\"aud\":\"" FX_AUD "\",\"sub\":\"bob\",\"exp\":1700000300}");
    assert_int_equal(tr_verifier_check_token(v, t, strlen(t), FX_NOW, 0,
                                             &id), TR_TOKEN_OK);
    assert_string_equal(id->issuer_name, "partner");
    assert_int_equal(id->issuer_index, 1);
    assert_memory_equal(id->principal_key, "partner\0bob", 12);
    tr_identity_unref(id);
    tr_verifier_free(v);
    free(t);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(es256_signed_token_is_accepted),
        T(rs256_signed_token_is_accepted),
        T(ps256_signed_token_is_accepted),
        T(eddsa_signed_token_is_accepted),
        T(hs256_with_the_secret_file_key_is_accepted),
        T(typ_variants_are_accepted_case_insensitively),
        T(aud_array_naming_our_audience_is_accepted),
        T(fractional_exp_is_accepted),
        T(missing_kid_is_refused_when_several_keys_fit),
        T(missing_kid_is_accepted_when_exactly_one_key_fits),
        T(identity_carries_issuer_name_and_times),
        T(alg_none_in_every_spelling_is_refused),
        T(missing_or_non_string_alg_is_refused),
        T(alg_outside_the_issuer_allow_list_is_refused),
        T(hs256_keyed_with_rsa_public_key_is_refused_without_hs256),
        T(hs256_keyed_with_rsa_public_key_is_refused_with_hs256),
        T(kid_of_a_key_of_another_type_is_refused),
        T(signature_by_another_key_of_the_same_type_is_refused),
        T(kid_tricks_are_refused),
        T(weak_rsa_key_is_never_used),
        T(embedded_or_remote_keys_are_refused),
        T(crit_is_refused),
        T(typ_confusion_is_refused),
        T(jwe_header_is_refused),
        T(exp_boundaries_around_the_leeway),
        T(nbf_boundaries_around_the_leeway),
        T(exp_is_required_and_numeric),
        T(wrong_or_missing_issuer_is_refused),
        T(wrong_or_missing_audience_is_refused),
        T(sub_missing_empty_or_not_a_string_is_refused),
        T(header_unsafe_claim_values_are_refused),
        T(zero_length_signature_is_refused),
        T(truncated_and_extended_signatures_are_refused),
        T(flipped_signature_or_payload_is_refused),
        T(der_encoded_es256_signature_is_refused),
        T(rsa_signature_of_wrong_length_is_refused),
        T(pkcs1_signature_presented_as_ps256_is_refused),
        T(duplicate_members_are_refused),
        T(act_nested_nine_deep_is_refused_eight_accepted),
        T(malformed_act_is_refused),
        T(oversized_token_is_refused),
        T(structural_garbage_is_malformed),
        T(non_object_parts_are_malformed),
        T(authorization_header_forms),
        T(status_names_and_problems_are_stable),
        T(verifier_refuses_unsafe_issuer_settings),
        T(second_issuer_is_selected_by_iss),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
