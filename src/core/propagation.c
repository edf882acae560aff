#include "core/propagation.h"

#include <string.h>

#include "core/identity.h"
#include "core/sfv.h"

static const char *const defaults[TR_PROP__COUNT] = {
    [TR_PROP_PRINCIPAL] = TR_PROP_DEFAULT_PRINCIPAL,
    [TR_PROP_ACTOR] = TR_PROP_DEFAULT_ACTOR,
    [TR_PROP_CHAIN] = TR_PROP_DEFAULT_CHAIN,
    [TR_PROP_CLASS] = TR_PROP_DEFAULT_CLASS,
};

const char *
tr_prop_header_name(const tr_propagation_cfg *cfg, tr_prop_field f)
{
    const char *set = NULL;

    if ((unsigned)f >= TR_PROP__COUNT)
        return NULL;
    if (cfg) {
        switch (f) {
        case TR_PROP_PRINCIPAL:
            set = cfg->principal_header;
            break;
        case TR_PROP_ACTOR:
            set = cfg->actor_header;
            break;
        case TR_PROP_CHAIN:
            set = cfg->chain_header;
            break;
        default:
            set = cfg->class_header;
            break;
        }
    }
    return set && *set ? set : defaults[f];
}

/* One header-name byte as the comparison sees it. */
static unsigned char
fold(unsigned char c)
{
    if (c == '_')
        return '-';
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A' + 'a');
    return c;
}

static bool
same_name(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);

    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
            return false;
    return true;
}

bool
tr_prop_is_identity_header(const tr_propagation_cfg *cfg, const char *name,
                           size_t len)
{
    for (int f = 0; f < TR_PROP__COUNT; f++)
        if (same_name(name, len, tr_prop_header_name(cfg, f)))
            return true;
    /* Also the defaults when renamed: a client that spoofs the usual
     * names must not reach a backend that still trusts them. */
    for (int f = 0; f < TR_PROP__COUNT; f++)
        if (same_name(name, len, defaults[f]))
            return true;
    return same_name(name, len, TR_PROP_TXN_TOKEN);
}

size_t
tr_prop_value_max(const tr_identity *id, tr_prop_field f)
{
    size_t n = 0;

    switch (f) {
    case TR_PROP_PRINCIPAL:
        return tr_sf_string_max(strlen(id->sub));
    case TR_PROP_ACTOR:
        return tr_sf_string_max(strlen(id->actor));
    case TR_PROP_CHAIN:
        for (size_t i = 0; i < id->chain_len; i++)
            n += tr_sf_string_max(strlen(id->chain[i])) + 2;
        return n + 1;
    default:
        return sizeof("human");
    }
}

int
tr_prop_format(const tr_identity *id, tr_prop_field f, char *buf,
               size_t cap, size_t *len)
{
    const char *cls;

    switch (f) {
    case TR_PROP_PRINCIPAL:
        return tr_sf_string(id->sub, strlen(id->sub), buf, cap, len);
    case TR_PROP_ACTOR:
        return tr_sf_string(id->actor, strlen(id->actor), buf, cap, len);
    case TR_PROP_CHAIN:
        return tr_sf_string_list((const char *const *)id->chain,
                                 id->chain_len, buf, cap, len);
    case TR_PROP_CLASS:
        cls = tr_caller_class_name(id->cls);
        return tr_sf_token(cls, strlen(cls), buf, cap, len);
    default:
        return TR_SF_INVALID;
    }
}
