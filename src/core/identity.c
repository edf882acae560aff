#include "core/identity.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/sfv.h"

/* RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E. */
static bool
scope_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static bool
scope_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!scope_char((unsigned char)s[i]))
            return false;
    return true;
}

/* A claim value that will become a header value, a log field and an
 * audit field: printable ASCII only, and not empty. */
static bool
header_safe(json_t *v)
{
    return json_string_length(v) > 0 &&
           tr_sf_string_ok(json_string_value(v), json_string_length(v));
}

static bool
listed(const tr_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i], s))
            return true;
    return false;
}

static void
identity_free(tr_identity *id)
{
    free(id->sub);
    free(id->principal_key);
    for (size_t i = 0; i < id->chain_len; i++)
        free(id->chain[i]);
    free(id->client_id);
    for (size_t i = 0; i < id->n_scopes; i++)
        free(id->scopes[i]);
    free(id->scopes);
    free(id->jti);
    json_decref((json_t *)id->claims);
    free(id);
}

tr_identity *
tr_identity_ref(tr_identity *id)
{
    if (id)
        atomic_fetch_add_explicit(&id->refs, 1, memory_order_relaxed);
    return id;
}

void
tr_identity_unref(tr_identity *id)
{
    if (id &&
        atomic_fetch_sub_explicit(&id->refs, 1, memory_order_acq_rel) == 1)
        identity_free(id);
}

const char *
tr_caller_class_name(tr_caller_class cls)
{
    return cls == TR_CLASS_AGENT ? "agent" : "human";
}

bool
tr_identity_has_scope(const tr_identity *id, const char *scope)
{
    for (size_t i = 0; i < id->n_scopes; i++)
        if (!strcmp(id->scopes[i], scope))
            return true;
    return false;
}

/* Walks act, act.act, ... (RFC 8693 §4.1): the outermost is the current
 * actor.  Only `sub` is read; other members are not validity checks. */
static tr_token_status
derive_chain(tr_identity *id, json_t *act)
{
    while (act) {
        json_t *sub;

        if (!json_is_object(act))
            return TR_TOKEN_BAD_ACT;
        sub = json_object_get(act, "sub");
        if (!json_is_string(sub) || json_string_length(sub) == 0)
            return TR_TOKEN_BAD_ACT;
        if (id->chain_len == TR_MAX_CHAIN)
            return TR_TOKEN_BAD_ACT;
        if (!header_safe(sub))
            return TR_TOKEN_BAD_CLAIM;
        id->chain[id->chain_len] = strdup(json_string_value(sub));
        if (!id->chain[id->chain_len])
            return TR_TOKEN_INTERNAL;
        id->chain_len++;
        act = json_object_get(act, "act");
    }
    return TR_TOKEN_OK;
}

/* Adds scope tokens from a space-separated string. */
static tr_token_status
add_scope_string(tr_identity *id, const char *s, size_t len, size_t cap)
{
    size_t i = 0;

    while (i < len) {
        size_t j = i;

        while (j < len && s[j] != ' ')
            j++;
        if (j > i) {
            if (!scope_ok(s + i, j - i) || id->n_scopes == cap)
                return TR_TOKEN_BAD_CLAIM;
            id->scopes[id->n_scopes] = strndup(s + i, j - i);
            if (!id->scopes[id->n_scopes])
                return TR_TOKEN_INTERNAL;
            id->n_scopes++;
        }
        i = j + 1;
    }
    return TR_TOKEN_OK;
}

/* `scope` (RFC 8693 §4.2, RFC 9068: space-separated string) wins over
 * `scp` (an array, or a string as some providers send it). */
static tr_token_status
derive_scopes(tr_identity *id, json_t *payload)
{
    json_t *v = json_object_get(payload, "scope"), *e;
    size_t cap = 0, i;
    tr_token_status st;

    if (!v)
        v = json_object_get(payload, "scp");
    if (!v)
        return TR_TOKEN_OK;
    if (json_is_string(v)) {
        cap = json_string_length(v) / 2 + 1;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                return TR_TOKEN_BAD_CLAIM;
            cap += json_string_length(e) / 2 + 1;
        }
    } else {
        return TR_TOKEN_BAD_CLAIM;
    }
    id->scopes = calloc(cap, sizeof(char *));
    if (!id->scopes)
        return TR_TOKEN_INTERNAL;
    if (json_is_string(v))
        return add_scope_string(id, json_string_value(v),
                                json_string_length(v), cap);
    json_array_foreach(v, i, e) {
        st = add_scope_string(id, json_string_value(e),
                              json_string_length(e), cap);
        if (st != TR_TOKEN_OK)
            return st;
    }
    return TR_TOKEN_OK;
}

/* client_id (RFC 9068, RFC 8693) when a string, else azp (OIDC). */
static json_t *
client_claim(json_t *payload)
{
    json_t *c = json_object_get(payload, "client_id");

    return json_is_string(c) ? c : json_object_get(payload, "azp");
}

static tr_token_status
derive(const tr_identity_cfg *cfg, const tr_issuer_cfg *icfg,
       tr_identity *id, json_t *payload)
{
    json_t *sub = json_object_get(payload, "sub"), *act, *client, *jti;
    size_t nlen = strlen(icfg->name), slen;
    tr_token_status st;

    if (!json_is_string(sub) || json_string_length(sub) == 0)
        return TR_TOKEN_BAD_SUB;
    if (!header_safe(sub))
        return TR_TOKEN_BAD_CLAIM;
    slen = json_string_length(sub);
    id->sub = strdup(json_string_value(sub));
    id->principal_key_len = nlen + 1 + slen;
    id->principal_key = malloc(id->principal_key_len + 1);
    if (!id->sub || !id->principal_key)
        return TR_TOKEN_INTERNAL;
    memcpy(id->principal_key, icfg->name, nlen + 1);
    memcpy(id->principal_key + nlen + 1, id->sub, slen + 1);

    client = client_claim(payload);
    if (json_is_string(client)) {
        if (!header_safe(client))
            return TR_TOKEN_BAD_CLAIM;
        if (!(id->client_id = strdup(json_string_value(client))))
            return TR_TOKEN_INTERNAL;
    }

    act = json_object_get(payload, "act");
    if (act) {
        st = derive_chain(id, act);
        if (st != TR_TOKEN_OK)
            return st;
    } else if (id->client_id &&
               (icfg->actor_profile == TR_ACTOR_PROFILE_CLIENT ||
                listed(&cfg->agent_clients, id->client_id))) {
        if (!(id->chain[0] = strdup(id->client_id)))
            return TR_TOKEN_INTERNAL;
        id->chain_len = 1;
    }
    id->actor = id->chain_len ? id->chain[0] : id->sub;
    /* SPEC "Terms": an agent request has an actor other than the
     * principal; an act naming the subject itself stays human. */
    id->cls = strcmp(id->actor, id->sub) ? TR_CLASS_AGENT : TR_CLASS_HUMAN;

    st = derive_scopes(id, payload);
    if (st != TR_TOKEN_OK)
        return st;
    jti = json_object_get(payload, "jti");
    if (json_is_string(jti) && header_safe(jti) &&
        !(id->jti = strdup(json_string_value(jti))))
        return TR_TOKEN_INTERNAL;
    return TR_TOKEN_OK;
}

tr_token_status
tr_identity_derive(const tr_identity_cfg *cfg, size_t issuer_index,
                   json_t *payload, const uint8_t token_hash[32],
                   int64_t exp, int64_t nbf, tr_identity **out)
{
    const tr_issuer_cfg *icfg = &cfg->issuers[issuer_index];
    tr_identity *id = calloc(1, sizeof(*id));
    tr_token_status st;

    *out = NULL;
    if (!id)
        return TR_TOKEN_INTERNAL;
    atomic_init(&id->refs, 1);
    id->issuer_index = issuer_index;
    id->issuer_name = icfg->name;
    memcpy(id->token_hash, token_hash, sizeof(id->token_hash));
    id->exp = exp;
    id->nbf = nbf;
    id->claims = json_incref(payload);
    st = derive(cfg, icfg, id, payload);
    if (st != TR_TOKEN_OK) {
        identity_free(id);
        return st;
    }
    *out = id;
    return TR_TOKEN_OK;
}
