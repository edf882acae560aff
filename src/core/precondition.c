#include "core/precondition.h"

#include <stddef.h>

static bool
present(const tr_etag_list *l)
{
    return l != NULL && l->present;
}

static bool
valid(const tr_etag_list *l)
{
    return !present(l) || l->status == TR_ETAG_LIST_OK;
}

bool
tr_precondition_is_create(uint32_t method_bit)
{
    return (method_bit & (TR_M_POST | TR_M_MKCOL | TR_M_MKCALENDAR)) != 0;
}

tr_pre_action
tr_precondition_decide(const tr_route_cfg *r, const tr_pre_request *q)
{
    bool synth = r->etags == TR_ETAGS_SYNTHESIZE;

    if (!q->mutating) {
        /* Only a GET carries the whole representation to tag; HEAD has
         * no body to hash. */
        if (synth && q->method_bit == TR_M_GET && r->etag_body_cap > 0)
            return TR_PRE_SYNTH_READ;
        return TR_PRE_NONE;
    }
    if (r->preconditions == TR_PRECOND_OFF && !synth)
        return TR_PRE_NONE;    /* the backend's business entirely */
    if (!valid(q->if_match) || !valid(q->if_none_match))
        return TR_PRE_INVALID;

    bool has_im = present(q->if_match);
    bool has_inm = present(q->if_none_match);
    bool inm_any = has_inm && q->if_none_match->any;
    bool required = r->preconditions == TR_PRECOND_REQUIRED ||
                    (r->preconditions == TR_PRECOND_REQUIRED_FOR_AGENTS &&
                     q->agent);

    if (required && !has_im && !inm_any) {
        if (!tr_precondition_is_create(q->method_bit))
            return TR_PRE_MISSING;
        if (r->require_if_none_match_on_create)
            return TR_PRE_MISSING_CREATE;
        if (!has_inm)
            return TR_PRE_EXEMPT;
    }
    /* A condition the backend cannot evaluate is evaluated here, whether
     * or not the route requires one: dropping it would be a blind write
     * the caller did not ask for. */
    if (synth && (has_im || has_inm))
        return TR_PRE_CAS;
    if (has_im || has_inm)
        return TR_PRE_PASS;
    return r->preconditions == TR_PRECOND_OFF ? TR_PRE_NONE : TR_PRE_EXEMPT;
}

tr_reread_class
tr_precondition_reread_class(int status)
{
    if (status >= 200 && status < 300)
        return TR_REREAD_PRESENT;
    if (status == 404 || status == 410)
        return TR_REREAD_ABSENT;
    if (status >= 300 && status < 500)
        return TR_REREAD_REFUSED;
    return TR_REREAD_ERROR;
}

tr_cas_verdict
tr_precondition_cas(const tr_etag_list *if_match,
                    const tr_etag_list *if_none_match, tr_current_state st,
                    const tr_etag *current)
{
    bool exists = st != TR_CUR_ABSENT;

    /* RFC 9110 §13.2.2 step 1: If-Match, strong comparison. */
    if (present(if_match)) {
        if (!valid(if_match) || !exists)
            return TR_CAS_FAILED;
        if (!if_match->any &&
            (st != TR_CUR_PRESENT ||
             !tr_etag_list_match_strong(if_match, current)))
            return TR_CAS_FAILED;
    }
    /* Step 3: If-None-Match, weak comparison; false is 412 for a write. */
    if (present(if_none_match)) {
        if (!valid(if_none_match))
            return TR_CAS_FAILED;
        if (if_none_match->any && exists)
            return TR_CAS_FAILED;
        if (!if_none_match->any && st == TR_CUR_PRESENT &&
            tr_etag_list_match_weak(if_none_match, current))
            return TR_CAS_FAILED;
    }
    return TR_CAS_FORWARD;
}
