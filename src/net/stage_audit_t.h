/* Per-request state of the audit stage (stage_audit.c). */
#ifndef TREATY_NET_STAGE_AUDIT_T_H
#define TREATY_NET_STAGE_AUDIT_T_H

#include <stdbool.h>
#include <stdint.h>

struct tr_audit_req;  /* private to stage_audit.c */

#endif
