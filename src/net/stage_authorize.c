/* Step 4: route policy on (actor, principal, action, resource). */
#include "net/stages.h"

tr_step
tr_stage_authorize(tr_request *req)
{
    return TR_NEXT;
}
