/*
 * A one-shot HTTP/1.1 exchange with an upstream on its own connection:
 * connect, write one request (complete, with `Connection: close`), parse
 * the response with llhttp, hand the result to a callback, close.
 *
 * The preconditions stage uses it to re-read a resource before a guarded
 * write.  It does not take a pooled connection on purpose: the write that
 * follows needs one from the same pool, and a re-read waiting behind the
 * writes it guards could deadlock a small pool.  The cost is one TCP
 * connect per guarded write (loopback: tens of microseconds).
 *
 * Loop thread only.  The callback runs exactly once, never from inside
 * tr_fetch_start(), unless the fetch was cancelled first; the result and
 * the memory it points to live only for the duration of the callback.
 */
#ifndef TREATY_NET_UPSTREAM_FETCH_H
#define TREATY_NET_UPSTREAM_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef enum {
    TR_FETCH_OK,               /* a complete response */
    TR_FETCH_TOO_LARGE,        /* status and fields valid; body over cap */
    TR_FETCH_CONNECT_FAILED,   /* nothing was sent */
    TR_FETCH_TIMEOUT,          /* connect or response timer ran out */
    TR_FETCH_CLOSED,           /* the connection ended mid-exchange */
    TR_FETCH_MALFORMED,        /* not HTTP/1.1, or a header block too big */
    TR_FETCH_NO_MEMORY
} tr_fetch_error;

typedef struct {
    tr_fetch_error error;
    int status;                /* 0 unless OK or TOO_LARGE */
    const char *content_encoding; /* NULL when absent */
    size_t content_encoding_len;
    const char *body;          /* decoded from chunked framing; OK only */
    size_t body_len;
} tr_fetch_result;

typedef void (*tr_fetch_cb)(void *ctx, const tr_fetch_result *r);

typedef struct {
    uv_loop_t *loop;
    const struct sockaddr *addr;
    const char *request;       /* the bytes to send; copied */
    size_t request_len;
    size_t body_cap;           /* body bytes kept; beyond is TOO_LARGE */
    uint32_t connect_timeout_ms;
    uint32_t response_timeout_ms; /* silence allowed between reads */
} tr_fetch_opts;

typedef struct tr_fetch tr_fetch;

/* Starts the exchange.  NULL when it cannot start at all (memory, no
 * socket handle); there is then no callback. */
tr_fetch *tr_fetch_start(const tr_fetch_opts *o, tr_fetch_cb cb, void *ctx);

/* Drops the exchange: no callback after this, the connection closes and
 * the memory goes in its close callback.  Safe inside the callback. */
void tr_fetch_cancel(tr_fetch *f);

const char *tr_fetch_error_name(tr_fetch_error e);

#endif
