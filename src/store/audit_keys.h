/*
 * The Ed25519 keys of the audit trail's signed checkpoints, on disk.
 *
 * Signing (the gateway): audit.signing_key_file when set (a PKCS#8 PEM
 * private key, mode 0600, owned by us; never created or rotated by
 * treaty), else the key directory STATE_DIR/audit-keys, managed like the
 * Transaction Token keys (store/gateway_keys.h): key-<T>.pem files, 0600,
 * the newest with T <= now signs, and a first key is created when none
 * exists.  Rotating = dropping a new key-<T>.pem there.  kid = RFC 7638
 * thumbprint.
 *
 * Trusting (treaty audit verify): an operator-given PEM file (a public
 * key, or a private key whose public half is used), else the same file
 * or directory as above, every key in it (retired ones too, up to
 * TR_GATEWAY_KEYS_MAX), never creating anything.
 */
#ifndef TREATY_STORE_AUDIT_KEYS_H
#define TREATY_STORE_AUDIT_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "store/gateway_keys.h"

#define TR_AUDIT_KEYS_DIR "audit-keys"

/*
 * The signing key into out->keys[0] (with its kid).  key_file may be
 * NULL.  now_s: Unix seconds (which key of the directory is current, and
 * the name of a created one).  0, or -1 with a message in err.
 */
int tr_audit_keys_load_signing(const char *state_dir, const char *key_file,
                               int64_t now_s, tr_gateway_keys *out,
                               char *err, size_t errlen);

/*
 * The trusted keys: pem_file if given, else key_file, else the key
 * directory of state_dir (state_dir may be NULL).  A missing directory is
 * not an error: out is then empty.  0, or -1 with a message in err.
 */
int tr_audit_keys_load_trusted(const char *pem_file, const char *state_dir,
                               const char *key_file, int64_t now_s,
                               tr_gateway_keys *out, char *err,
                               size_t errlen);

#endif
