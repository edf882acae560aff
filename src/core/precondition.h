/*
 * Write conflicts (SPEC.md §5, RFC 9110 §13, RFC 6585): what the
 * preconditions stage does with a request, and the compare-and-swap
 * verdict on a backend that cannot evaluate If-Match itself.  Pure.
 *
 * The presence rule.  On a route with `preconditions: required` (or
 * `required_for_agents` and an agent caller) a mutating request must be
 * conditional: `If-Match` (an update of what the caller read) or
 * `If-None-Match: *` (a create that must not replace anything).  Without
 * either it gets 428.  Methods that create a new resource (POST, MKCOL,
 * MKCALENDAR) cannot lose an update and are exempt, unless the route sets
 * `require_if_none_match_on_create`, which asks them for
 * `If-None-Match: *`.  A condition treaty cannot parse is a 400 on every
 * route that looks at conditions: a precondition nobody can evaluate
 * must not turn into a blind write.
 *
 * Enforcement.  With `etags: passthrough` the backend evaluates the
 * conditions (and answers 412 itself).  With `etags: synthesize` the
 * backend cannot, so every conditional write, required or not, is a
 * compare-and-swap in treaty: lock the resource, re-read it, compare
 * (RFC 9110 §13.2.2 order: If-Match strongly, then If-None-Match weakly),
 * forward only on success.  The "the change already happened" 2xx
 * allowance of §13.1.1 is not used: treaty cannot know that.
 */
#ifndef TREATY_CORE_PRECONDITION_H
#define TREATY_CORE_PRECONDITION_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/etag.h"

typedef enum {
    TR_PRE_NONE,           /* nothing to check or add */
    TR_PRE_EXEMPT,         /* guarded route, but this request needs no
                              condition (a human under required_for_agents,
                              a create where creates are exempt) */
    TR_PRE_PASS,           /* conditional; the backend evaluates it */
    TR_PRE_MISSING,        /* 428: send If-Match */
    TR_PRE_MISSING_CREATE, /* 428: a create must send If-None-Match: * */
    TR_PRE_INVALID,        /* 400: a condition does not parse */
    TR_PRE_CAS,            /* synthesize: lock, re-read, compare */
    TR_PRE_SYNTH_READ      /* a GET whose response gets a synthesized ETag */
} tr_pre_action;

typedef struct {
    uint32_t method_bit;       /* TR_M_* */
    bool mutating;             /* as the route counts the method */
    bool agent;                /* an agent request (SPEC.md "Terms") */
    const tr_etag_list *if_match;      /* !present when absent */
    const tr_etag_list *if_none_match;
} tr_pre_request;

/* What the stage does with the request on route r. */
tr_pre_action tr_precondition_decide(const tr_route_cfg *r,
                                     const tr_pre_request *q);

/* Methods that make a new resource rather than change one. */
bool tr_precondition_is_create(uint32_t method_bit);

/* What the re-read found, from its status. */
typedef enum {
    TR_REREAD_PRESENT,         /* 2xx: a current representation */
    TR_REREAD_ABSENT,          /* 404, 410: none */
    TR_REREAD_REFUSED,         /* 3xx, other 4xx: the caller cannot read
                                  it, so the condition cannot be checked */
    TR_REREAD_ERROR            /* 5xx or no answer */
} tr_reread_class;

tr_reread_class tr_precondition_reread_class(int status);

typedef enum {
    TR_CUR_ABSENT,             /* no current representation */
    TR_CUR_PRESENT,            /* present, with `current` its ETag */
    TR_CUR_PRESENT_NO_ETAG     /* present, too large to have an ETag */
} tr_current_state;

typedef enum {
    TR_CAS_FORWARD,            /* every condition holds */
    TR_CAS_FAILED              /* 412 */
} tr_cas_verdict;

/*
 * The compare step.  current is used only with TR_CUR_PRESENT.  A client
 * cannot hold the tag of a representation treaty never tagged, so with
 * TR_CUR_PRESENT_NO_ETAG a tag list in If-Match fails and one in
 * If-None-Match holds; "*" only asks whether something is there.
 */
tr_cas_verdict tr_precondition_cas(const tr_etag_list *if_match,
                                   const tr_etag_list *if_none_match,
                                   tr_current_state st,
                                   const tr_etag *current);

#endif
