/*
 * libFuzzer target for the Idempotency-Key parser (src/core/idem_key.c).
 *
 * Invariants checked on every input:
 *   - a valid key is 1..255 bytes of printable ASCII, NUL-terminated;
 *   - re-encoding a valid key as an sf-string parses back to the same key;
 *   - a key with no byte that the bare form forbids parses the same bare;
 *   - the same bytes on two field lines are always refused;
 *   - a refused key leaves the output empty.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/idem_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

static bool
bare_safe(const tr_idem_key *k)
{
    for (size_t i = 0; i < k->len; i++) {
        char c = k->bytes[i];

        if (c == ' ' || c == ',' || c == '"' || c == ';')
            return false;
    }
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    char enc[2 * TR_IDEM_KEY_MAX + 3];
    tr_idem_key k, again;
    tr_idem_key_status st;
    size_t n = 0;

    st = tr_idem_key_parse(v, size, 1, &k);
    check(tr_idem_key_parse(v, size, 2, &again) == TR_IDEM_KEY_MULTIPLE);
    check(again.len == 0);
    if (st != TR_IDEM_KEY_OK) {
        check(k.len == 0 && k.bytes[0] == '\0');
        return 0;
    }

    check(k.len >= 1 && k.len <= TR_IDEM_KEY_MAX);
    check(k.bytes[k.len] == '\0');
    for (size_t i = 0; i < k.len; i++)
        check(k.bytes[i] >= 0x20 && k.bytes[i] <= 0x7e);

    enc[n++] = '"';
    for (size_t i = 0; i < k.len; i++) {
        if (k.bytes[i] == '"' || k.bytes[i] == '\\')
            enc[n++] = '\\';
        enc[n++] = k.bytes[i];
    }
    enc[n++] = '"';
    check(tr_idem_key_parse(enc, n, 1, &again) == TR_IDEM_KEY_OK);
    check(tr_idem_key_equal(&k, &again));

    if (bare_safe(&k)) {
        check(tr_idem_key_parse(k.bytes, k.len, 1, &again) ==
              TR_IDEM_KEY_OK);
        check(tr_idem_key_equal(&k, &again));
    }
    return 0;
}
