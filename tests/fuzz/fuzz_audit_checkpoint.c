/*
 * libFuzzer target for the external checkpoint line parser
 * (src/core/audit_checkpoint.c): `treaty audit verify --checkpoint` reads
 * files an intruder may have written.
 *
 * Invariants checked on every input:
 *   - the result is OK, NOT_CHECKPOINT or E_FORMAT, nothing else;
 *   - an accepted line has a known kind and a kid that fits;
 *   - writing an accepted checkpoint back and parsing it gives the same
 *     checkpoint, byte for byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit_checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_audit_checkpoint cp, back;
    char line[TR_AUDIT_CP_LINE_MAX];
    size_t n;
    int rc = tr_audit_checkpoint_from_json((const char *)data, size, &cp);

    check(rc == TR_AUDIT_CP_OK || rc == TR_AUDIT_CP_NOT_CHECKPOINT ||
          rc == TR_AUDIT_CP_E_FORMAT);
    if (rc != TR_AUDIT_CP_OK)
        return 0;
    check((unsigned)cp.kind < TR_AUDIT_CP_KIND__COUNT);
    check(memchr(cp.kid, '\0', sizeof(cp.kid)) != NULL);
    check(tr_audit_checkpoint_to_json(&cp, line, sizeof(line), &n) ==
          TR_AUDIT_CP_OK);
    check(tr_audit_checkpoint_from_json(line, n, &back) == TR_AUDIT_CP_OK);
    check(memcmp(&cp, &back, sizeof(cp)) == 0);
    return 0;
}
