/* Per-request state of the idempotency stage (stage_idempotency.c).
 * Allocated only for keyed requests: most requests carry just a NULL. */
#ifndef TREATY_NET_STAGE_IDEM_T_H
#define TREATY_NET_STAGE_IDEM_T_H

struct tr_idem_req;  /* private to stage_idempotency.c */

#endif
