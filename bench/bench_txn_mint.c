/*
 * Txn-Token minting benchmark (not a test): what tr_txn_token_mint costs
 * per request on one core, and how much of it is the Ed25519 signature.
 * bench/txn_token builds and runs it beside the wrk comparison:
 *
 *   cc -std=c17 -D_GNU_SOURCE -O2 -Isrc bench/bench_txn_mint.c \
 *      src/core/txn_token.c src/core/b64url.c -ljansson -lcrypto \
 *      -o build/bench_txn_mint && build/bench_txn_mint [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/txn_token.h"

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    char *scopes[] = { "mail.read", "mail.send" };
    char sub[] = "alice", a1[] = "agent:planner", a2[] = "agent:mailbot";
    char client[] = "planner-app";
    tr_identity id;
    tr_txn_key key = { 0 };
    tr_txn_token_opts opts = { "treaty", "trust.example", 300 };
    tr_txn_token_req rq;
    char tok[TR_TXN_TOKEN_BUF];
    uint8_t sig[64];
    size_t len = 0, siglen;
    uint64_t t0, t1, t2;

    if (n <= 0)
        return 2;
    memset(&id, 0, sizeof(id));
    id.issuer_name = "corp";
    id.sub = sub;
    id.actor = a1;
    id.chain[0] = a1;
    id.chain[1] = a2;
    id.chain_len = 2;
    id.cls = TR_CLASS_AGENT;
    id.client_id = client;
    id.scopes = scopes;
    id.n_scopes = 2;
    key.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!key.pkey || tr_txn_key_thumbprint(key.pkey, key.kid) != TR_TXN_OK)
        return 1;
    memset(&rq, 0, sizeof(rq));
    rq.id = &id;
    rq.request_id = "6e0bbe7a552f3f8a0000000000000002";
    rq.client_addr = "192.0.2.7";
    rq.route = "mail-read";
    rq.method = "GET";
    rq.now = 1760000000;

    t0 = mono_ns();
    for (long i = 0; i < n; i++) {
        if (tr_txn_token_mint(&opts, &key, &rq, tok, sizeof(tok), &len) !=
            TR_TXN_OK)
            return 1;
    }
    t1 = mono_ns();
    /* The signature alone, over an input of the same length. */
    for (long i = 0; i < n; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        siglen = sizeof(sig);
        if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key.pkey) != 1
            || EVP_DigestSign(ctx, sig, &siglen, (uint8_t *)tok,
                              len - 87) != 1)
            return 1;
        EVP_MD_CTX_free(ctx);
    }
    t2 = mono_ns();
    printf("tokens: %ld, token length: %zu bytes\n", n, len);
    printf("mint (JSON + base64url + Ed25519): %.2f us/token "
           "(%.0f tokens/s on one core)\n",
           (double)(t1 - t0) / 1e3 / (double)n,
           (double)n * 1e9 / (double)(t1 - t0));
    printf("of which Ed25519 signing:          %.2f us/token\n",
           (double)(t2 - t1) / 1e3 / (double)n);
    EVP_PKEY_free(key.pkey);
    return 0;
}
