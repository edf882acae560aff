/*
 * The whole token path on arbitrary bytes: Authorization parsing, JWS
 * structure, JSON, key selection, signature, claims, identity, and the
 * downstream header values.  The key set is fixed (the published
 * development key plus an HS256 secret); the clock is fixed after the
 * seed tokens' iat and before their exp.  Caches are off so every input
 * takes the cold path and runs are reproducible.
 *
 * Invariant: an accepted token yields an identity whose header values
 * all serialise as structured fields (no CR, LF, NUL, non-ASCII).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/identity.h"
#include "core/jwks.h"
#include "core/propagation.h"
#include "core/sfv.h"
#include "core/verifier.h"

#define NOW 1800000000LL

static const char dev_jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"treaty-dev-es256\","
    "\"use\":\"sig\",\"alg\":\"ES256\","
    "\"x\":\"DKLBMSoiLPEGznX4NQ5KMtDPp9Xy5l-zMdgzeuQaoQA\","
    "\"y\":\"fuxRU0jtLZRp_5OnoLf7bPc-tKsfqeDxaPbRGKhwjkM\"}]}";
static const char secret[] = "fuzzing-secret-fuzzing-secret-0123456789";

static char *algs[] = { "ES256", "RS256", "PS256", "EdDSA", "HS256" };
static char *auds[] = { "treaty-dev" };
static char *agents[] = { "agent-client" };
static tr_issuer_cfg issuer = {
    .name = "dev",
    .issuer = "https://dev.treaty.example/",
    .audiences = { auds, 1 },
    .algorithms = { algs, 5 },
    .jwks_file = "(built in)",
    .hs256_secret_file = "(built in)",
    .leeway_s = 60,
};
static tr_identity_cfg cfg = {
    .issuers = &issuer,
    .n_issuers = 1,
    .agent_clients = { agents, 1 },
    .max_token_bytes = 8192,
};
static tr_verifier *verifier;

static void
setup(void)
{
    char err[256];
    tr_keyset *ks;

    verifier = tr_verifier_new(&cfg, 1234, err, sizeof(err));
    if (!verifier)
        abort();
    ks = tr_keyset_parse(dev_jwks, strlen(dev_jwks), err, sizeof(err));
    if (!ks || tr_verifier_set_keys(verifier, 0, ks) != 0)
        abort();
    tr_keyset_unref(ks);
    ks = tr_keyset_new_hmac((const uint8_t *)secret, strlen(secret), err,
                            sizeof(err));
    if (!ks || tr_verifier_set_hmac(verifier, 0, ks) != 0)
        abort();
    tr_keyset_unref(ks);
}

static void
check_identity(const tr_identity *id)
{
    char buf[16384];
    size_t len;

    if (!id || !id->sub || !*id->sub || !id->actor ||
        id->chain_len > TR_MAX_CHAIN)
        abort();
    for (int f = 0; f < TR_PROP__COUNT; f++) {
        if (tr_prop_value_max(id, f) > sizeof(buf))
            continue;
        if (tr_prop_format(id, f, buf, sizeof(buf), &len) != TR_SF_OK)
            abort();
        if (memchr(buf, '\r', len) || memchr(buf, '\n', len))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_identity *id = NULL;
    tr_token_status st;

    if (!verifier)
        setup();
    /* The input is the Authorization value; bytes that do not start with
     * "Bearer " exercise the scheme parsing, so also try them bare. */
    st = tr_verifier_check(verifier, (const char *)data, size, NOW, 0, &id);
    if (st == TR_TOKEN_OK)
        check_identity(id);
    else if (id)
        abort();
    tr_identity_unref(id);
    id = NULL;
    st = tr_verifier_check_token(verifier, (const char *)data, size, NOW, 0,
                                 &id);
    if (st == TR_TOKEN_OK)
        check_identity(id);
    else if (id)
        abort();
    tr_identity_unref(id);
    if ((unsigned)st >= TR_TOKEN__COUNT)
        abort();
    return 0;
}
