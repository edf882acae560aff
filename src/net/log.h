/*
 * Structured logging for the daemon: one line per event on stderr,
 * `ts=... level=... event=... key=value ...`.  The core never logs; the
 * net, store and CLI layers do, through this.  Values that may contain
 * spaces, quotes or claim data go through tr_log_quote().  Secrets and
 * whole tokens are never logged.
 */
#ifndef TREATY_NET_LOG_H
#define TREATY_NET_LOG_H

#include <stddef.h>

typedef enum {
    TR_LOG_DEBUG,
    TR_LOG_INFO,
    TR_LOG_WARN,
    TR_LOG_ERROR
} tr_log_level;

extern tr_log_level tr_log_min_level;

void tr_log(tr_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes `s` as a double-quoted, escaped value into buf (always
 * terminated, truncated with "..." when long); returns buf. */
const char *tr_log_quote(char *buf, size_t cap, const char *s, size_t len);

#endif
