/*
 * The audit trail's hash chain (SPEC.md §4, tamper evidence): canonical
 * encoding of a record and the chain hash.  Pure: no I/O, no clock.
 *
 * Canonical encoding, version 1 (documented in docs/audit.md):
 *   "TRA1"                           4 bytes, format and version
 *   seq                              8 bytes, unsigned big-endian
 *   then each field below, in this order, as one of
 *     0x00                           NULL (absent)
 *     0x01 len:u32be bytes[len]      text (UTF-8, no terminator)
 *     0x02 v:i64be                   integer (two's complement)
 *   kind(int) time_ms(int) request_id client_addr principal_issuer
 *   principal_sub actor delegation_chain client_id token_id token_hash
 *   token_verified(int 0/1) route tool method path decision(int, NULL for
 *   TR_AUDIT_NONE) reason policy_rule limiter idem_key_hash
 *   idem_replay(int 0/1) precondition status(int) latency_us(int)
 *   bytes(int) config_hash stripped_headers completes_seq(int) count(int)
 * Length prefixes make the encoding injective: no two different records
 * share an encoding, so moving bytes between fields changes the hash.
 *
 * Chain: hash_n = SHA-256(hash_{n-1} || canonical(record_n)), with 32 zero
 * bytes before the first record; record n stores hash_{n-1} as prev_hash.
 */
#ifndef TREATY_CORE_AUDIT_CHAIN_H
#define TREATY_CORE_AUDIT_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit_record.h"

#define TR_AUDIT_HASH_LEN 32

/* Writes the canonical encoding into buf when it fits in cap; returns its
 * length either way (so a first call with cap 0 sizes the buffer). */
size_t tr_audit_canonical(const tr_audit_record *r, uint8_t *buf,
                          size_t cap);

/* out = SHA-256(prev || canonical(r)).  0, or -1 if libcrypto failed. */
int tr_audit_chain_hash(const uint8_t prev[TR_AUDIT_HASH_LEN],
                        const tr_audit_record *r,
                        uint8_t out[TR_AUDIT_HASH_LEN]);

/*
 * Appends r after the record (last_seq, last_hash): sets r->seq to
 * last_seq + 1, r->prev_hash to last_hash (zeros when last_seq is 0) and
 * r->hash.  0 or -1.
 */
int tr_audit_chain_link(tr_audit_record *r, uint64_t last_seq,
                        const uint8_t last_hash[TR_AUDIT_HASH_LEN]);

typedef enum {
    TR_CHAIN_OK = 0,
    TR_CHAIN_SEQ_GAP,      /* seq != last + 1: deleted, inserted, moved */
    TR_CHAIN_PREV_MISMATCH, /* prev_hash != the previous record's hash */
    TR_CHAIN_HASH_MISMATCH, /* fields do not hash to the stored hash */
    TR_CHAIN_CRYPTO_ERROR,
} tr_chain_check;

/* Checks a stored record against its predecessor (last_seq, last_hash),
 * in the order above: the first finding wins. */
tr_chain_check tr_audit_chain_verify(const tr_audit_record *r,
                                     uint64_t last_seq,
                                     const uint8_t last_hash[32]);

const char *tr_chain_check_name(tr_chain_check c);

/*
 * A compact JSON array of the strings, e.g. ["agent:planner","agent:x"],
 * for delegation_chain and stripped_headers.  malloc'd; NULL when out of
 * memory or a string is not valid UTF-8.
 */
char *tr_audit_json_strings(const char *const *items, size_t n);

/* Lower-case hex of n bytes into out (2n + 1 bytes with the NUL). */
void tr_audit_hex(const uint8_t *bytes, size_t n, char *out);

/* Parses exactly 2n hex digits; false otherwise. */
bool tr_audit_unhex(const char *hex, uint8_t *out, size_t n);

#endif
