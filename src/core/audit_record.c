#include "core/audit_record.h"

#include <string.h>

static const char *const kinds[TR_AUDIT_KIND__COUNT] = {
    [TR_AUDIT_REQUEST] = "request",
    [TR_AUDIT_DECISION] = "decision",
    [TR_AUDIT_COMPLETION] = "completion",
    [TR_AUDIT_REFUSED_TOKENS] = "refused_tokens",
};

static const char *const decisions[] = {
    [TR_AUDIT_NONE] = "none",
    [TR_AUDIT_ALLOW] = "allow",
    [TR_AUDIT_DENY] = "deny",
    [TR_AUDIT_ERROR] = "error",
};

const char *
tr_audit_kind_name(tr_audit_kind kind)
{
    if ((unsigned)kind >= TR_AUDIT_KIND__COUNT)
        return "unknown";
    return kinds[kind];
}

const char *
tr_audit_decision_name(tr_audit_decision d)
{
    if ((unsigned)d >= sizeof(decisions) / sizeof(decisions[0]))
        return "unknown";
    return decisions[d];
}

int
tr_audit_kind_parse(const char *name)
{
    for (int i = 0; i < TR_AUDIT_KIND__COUNT; i++)
        if (name && !strcmp(name, kinds[i]))
            return i;
    return -1;
}

int
tr_audit_decision_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(decisions) / sizeof(decisions[0]); i++)
        if (name && !strcmp(name, decisions[i]))
            return (int)i;
    return -1;
}
