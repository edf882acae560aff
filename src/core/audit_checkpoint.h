/*
 * Signed checkpoints of the audit trail (SPEC.md §4, tamper evidence):
 * "the chain up to record `seq` ends in `hash`", signed with the
 * gateway's Ed25519 audit key.  Pure: the clock and the key are
 * arguments; no I/O.
 *
 * What is signed (TR_AUDIT_CP_MSG_LEN bytes, documented in docs/audit.md):
 *   "TRC1"                  4 bytes: format and version
 *   kind                    1 byte: 0 periodic, 1 shutdown, 2 anchor
 *   seq                     8 bytes, unsigned big-endian
 *   hash                    32 bytes: the chain hash of record seq
 *   time_ms                 8 bytes, signed big-endian: when it was made
 * The "TRC1" prefix keeps these signatures apart from anything else the
 * same key could ever sign.
 *
 * The external form is one JSON object per line:
 *   {"type":"treaty.audit.checkpoint","v":1,"kind":"periodic",
 *    "seq":1000,"hash":"<64 hex>","time":"2024-05-01T12:00:00.000Z",
 *    "time_ms":1714564800000,"alg":"EdDSA","kid":"<RFC 7638>",
 *    "sig":"<base64url of 64 bytes>"}
 * "time" is for people; the signature covers time_ms.
 *
 * Kinds: PERIODIC every audit.checkpoint_every records; SHUTDOWN covers
 * the head at a clean stop; ANCHOR is written by retention before it
 * deletes records up to seq, so the remaining trail can be verified from
 * seq + 1 on.
 */
#ifndef TREATY_CORE_AUDIT_CHECKPOINT_H
#define TREATY_CORE_AUDIT_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "core/txn_token.h"

#define TR_AUDIT_CP_TYPE "treaty.audit.checkpoint"
#define TR_AUDIT_CP_MSG_LEN (4 + 1 + 8 + 32 + 8)
#define TR_AUDIT_CP_SIG_LEN 64
/* One JSON line is well under this (about 330 bytes). */
#define TR_AUDIT_CP_LINE_MAX 1024

typedef enum {
    TR_AUDIT_CP_PERIODIC = 0,
    TR_AUDIT_CP_SHUTDOWN = 1,
    TR_AUDIT_CP_ANCHOR = 2,
    TR_AUDIT_CP_KIND__COUNT
} tr_audit_cp_kind;

typedef struct {
    tr_audit_cp_kind kind;
    uint64_t seq;
    uint8_t hash[32];
    int64_t time_ms;
    char kid[TR_TXN_KID_MAX];
    uint8_t sig[TR_AUDIT_CP_SIG_LEN];
} tr_audit_checkpoint;

typedef enum {
    TR_AUDIT_CP_OK = 0,
    TR_AUDIT_CP_E_ARG = -1,        /* not an Ed25519 key, bad input */
    TR_AUDIT_CP_E_CRYPTO = -2,     /* OpenSSL failed */
    TR_AUDIT_CP_E_UNKNOWN_KID = -3, /* no trusted key has this kid */
    TR_AUDIT_CP_E_SIGNATURE = -4,  /* the signature does not verify */
    TR_AUDIT_CP_E_FORMAT = -5,     /* a checkpoint line that is malformed */
    TR_AUDIT_CP_NOT_CHECKPOINT = 1 /* a line that is not a checkpoint */
} tr_audit_cp_status;

const char *tr_audit_cp_kind_name(tr_audit_cp_kind kind);
/* -1 when unknown. */
int tr_audit_cp_kind_parse(const char *name);
const char *tr_audit_cp_strerror(int status);

/* The bytes that are signed, into out. */
void tr_audit_checkpoint_message(const tr_audit_checkpoint *cp,
                                 uint8_t out[TR_AUDIT_CP_MSG_LEN]);

/*
 * Signs cp (kind, seq, hash and time_ms set by the caller) with key, an
 * Ed25519 private key whose RFC 7638 thumbprint is kid: fills cp->kid and
 * cp->sig.  TR_AUDIT_CP_OK, _E_ARG or _E_CRYPTO.
 */
int tr_audit_checkpoint_sign(tr_audit_checkpoint *cp, EVP_PKEY *key,
                             const char *kid);

/*
 * Checks cp's signature against the trusted keys (public halves are
 * enough), picking the key by cp->kid.  TR_AUDIT_CP_OK,
 * _E_UNKNOWN_KID, _E_SIGNATURE or _E_CRYPTO.
 */
int tr_audit_checkpoint_verify(const tr_audit_checkpoint *cp,
                               const tr_txn_key *keys, size_t n);

/*
 * The JSON line (no newline) into out.  TR_AUDIT_CP_OK and *outlen, or
 * _E_ARG when it does not fit.
 */
int tr_audit_checkpoint_to_json(const tr_audit_checkpoint *cp, char *out,
                                size_t cap, size_t *outlen);

/*
 * Parses one line.  TR_AUDIT_CP_OK; TR_AUDIT_CP_NOT_CHECKPOINT for a line
 * that is not a JSON object with "type" TR_AUDIT_CP_TYPE (a shared stdout
 * carries other lines: skip it); TR_AUDIT_CP_E_FORMAT for a checkpoint
 * line with a missing or malformed member, or for text that does not
 * parse but names TR_AUDIT_CP_TYPE (a damaged line).  The signature is
 * not checked here.
 */
int tr_audit_checkpoint_from_json(const char *line, size_t len,
                                  tr_audit_checkpoint *out);

#endif
