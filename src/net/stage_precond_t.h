/* Per-request state of the preconditions stage (stage_preconditions.c).
 * Allocated only for guarded writes and synthesized-ETag reads. */
#ifndef TREATY_NET_STAGE_PRECOND_T_H
#define TREATY_NET_STAGE_PRECOND_T_H

struct tr_precond_req;  /* private to stage_preconditions.c */

#endif
