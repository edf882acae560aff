/*
 * The gateway's Ed25519 signing keys for Transaction Tokens, on disk.
 *
 * Two sources:
 *
 * 1. A key directory, by default STATE_DIR/txn-keys (created 0700).  Each
 *    key is one PKCS#8 PEM file named key-<T>.pem, mode 0600, where T is
 *    the unix time (decimal seconds) from which the key signs.  At load
 *    time `now`:
 *      - the current key is the one with the largest T <= now: it signs;
 *      - keys with T > now are "next": published in the JWKS (so backends
 *        learn them before they appear in tokens) but not used yet;
 *      - an older key stays published for overlap_s after its successor's
 *        T (tokens it signed are still alive, and backends may have cached
 *        the old JWKS), then it is ignored; its file may be deleted.
 *    When no key is current and `create` is set, key-<now>.pem is made.
 *
 *    Rotating, as an operator (no CLI needed):
 *      openssl genpkey -algorithm ed25519 \
 *          -out STATE_DIR/txn-keys/key-$(date +%s).pem
 *      chmod 600 STATE_DIR/txn-keys/key-*.pem
 *    then restart treaty (or let it reload the set).  Better, publish
 *    first and sign later: name the file with a time an hour ahead, so
 *    every backend's JWKS cache has the key before the first token with
 *    its kid.  tr_gateway_keys_rotate() does the same from code.
 *
 * 2. A single key file (propagation.txn_token_key_file), for keys kept in
 *    a secret store: loaded as is, never rotated by treaty.
 *
 * Files must be regular, owned by us and not readable or writable by
 * group or others (0600); anything else is refused rather than used.
 * kid = RFC 7638 thumbprint (tr_txn_key_thumbprint), so it is stable and
 * needs no bookkeeping.
 */
#ifndef TREATY_STORE_GATEWAY_KEYS_H
#define TREATY_STORE_GATEWAY_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/txn_token.h"

#define TR_GATEWAY_KEYS_DIR "txn-keys"
/* Published keys at most: current, next ones, then retired ones newest
 * first; older retired keys beyond this are left out of the JWKS. */
#define TR_GATEWAY_KEYS_MAX 8
#define TR_GATEWAY_KEYS_DEFAULT_OVERLAP_S 86400

typedef struct {
    /* keys[0] is the current signing key; all n are published. */
    tr_txn_key keys[TR_GATEWAY_KEYS_MAX];
    size_t n;
    size_t n_next;        /* how many of keys[1..] are not yet current */
} tr_gateway_keys;

/*
 * Loads the key set from `dir` as of `now` (see above).  With `create`,
 * makes `dir` (0700) and a first key when none is current.  Returns 0, or
 * -1 with a message in err (naming the file) and *out empty.
 */
int tr_gateway_keys_load(const char *dir, int64_t now, uint32_t overlap_s,
                         bool create, tr_gateway_keys *out, char *err,
                         size_t errlen);

/* Loads one key file as the only, current key (created = 0). */
int tr_gateway_keys_load_file(const char *path, tr_gateway_keys *out,
                              char *err, size_t errlen);

/*
 * Writes a fresh key to dir/key-<from>.pem (0600, written to a temporary
 * file first so a crash never leaves half a key).  It signs from `from`
 * on: pass now to rotate at once, a later time to publish it first.
 * Refuses to replace an existing file.  Returns 0 or -1 with err.
 */
int tr_gateway_keys_rotate(const char *dir, int64_t from, char *err,
                           size_t errlen);

/* Frees the keys; *k is left empty.  Safe on an empty set. */
void tr_gateway_keys_free(tr_gateway_keys *k);

#endif
