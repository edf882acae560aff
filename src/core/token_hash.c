/*
 * OpenSSL 3.0's EVP digests allocate a provider context at every init,
 * even on a reused EVP_MD_CTX, and so does the SHA256() one-shot; the
 * low-level SHA256_* functions hash on a stack context with no allocation.
 * They are deprecated from the 3.0 API, so this file, and only this file,
 * asks for the 1.1.1 API level where they are plain functions.  If a later
 * OpenSSL drops them, EVP_Q_digest is the drop-in (one allocation per
 * request).
 */
#define OPENSSL_API_COMPAT 10101

#include "core/token_hash.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

void
tr_token_hash(const char *token, size_t len, uint8_t out[32])
{
    SHA256_CTX ctx;

    SHA256_Init(&ctx);
    SHA256_Update(&ctx, token, len);
    SHA256_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof(ctx));
}
