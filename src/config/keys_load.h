/*
 * Reading verification keys from disk and handing the bytes to the core:
 * an issuer's jwks_file and hs256_secret_file.  (JWKS by URL is fetched
 * elsewhere, off the event loop.)
 */
#ifndef TREATY_CONFIG_KEYS_LOAD_H
#define TREATY_CONFIG_KEYS_LOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/jwks.h"
#include "core/verifier.h"

/* A JWKS file (at most 1 MiB) parsed into a key set; NULL with a message
 * naming the file.  A file with no usable key is an error. */
tr_keyset *tr_keys_load_jwks_file(const char *path, char *err,
                                  size_t errlen);

/* An HS256 secret file: its bytes, less one trailing "\n" or "\r\n" (what
 * an editor or echo leaves); at least 32 bytes must remain. */
tr_keyset *tr_keys_load_hmac_file(const char *path, char *err,
                                  size_t errlen);

/* Loads every issuer's jwks_file and hs256_secret_file into v.  Refuses
 * development keys (kid "treaty-dev-...") unless allow_dev (`treaty serve
 * --dev`).  Issuers with only a jwks_url are left for the fetcher.
 * Returns 0, or -1 with a message. */
int tr_keys_load_files(tr_verifier *v, const tr_identity_cfg *cfg,
                       bool allow_dev, char *err, size_t errlen);

#endif
