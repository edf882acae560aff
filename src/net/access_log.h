/*
 * The JSON access log: one line per request (SPEC.md "Interfaces").
 * Lines are formatted on the loop into a buffer; a dedicated thread
 * writes them out, so a slow disk never stalls requests.  When the
 * buffer is full lines are dropped and counted rather than blocking.
 */
#ifndef TREATY_NET_ACCESS_LOG_H
#define TREATY_NET_ACCESS_LOG_H

#include <stdint.h>

#include "net/gateway.h"

typedef struct tr_access_log tr_access_log;

/* path: a file (appended, created 0600), "-" for stdout, NULL for none. */
tr_access_log *tr_access_log_open(const char *path, char *err,
                                  size_t errlen);
void tr_access_log_request(tr_access_log *log, const tr_request *req);
uint64_t tr_access_log_dropped(const tr_access_log *log);
void tr_access_log_close(tr_access_log *log);

/* Appends s as a JSON string (quoted, escaped) to b; NULL → null. */
int tr_json_append_string(tr_buf *b, const char *s, size_t len);

#endif
