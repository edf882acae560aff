/*
 * SHA-256 of a whole presented token: the key of the token cache and the
 * token_hash of an identity (never the token itself in logs or audit).
 */
#ifndef TREATY_CORE_TOKEN_HASH_H
#define TREATY_CORE_TOKEN_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Allocation-free: it runs for every request that presents a token. */
void tr_token_hash(const char *token, size_t len, uint8_t out[32]);

#endif
