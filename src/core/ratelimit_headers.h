/*
 * The RateLimit-Policy and RateLimit response fields
 * (draft-ietf-httpapi-ratelimit-headers-10; -11 renames r and t "available
 * quota" and "effective window" without changing their syntax), and the
 * `violated-policies` member of the quota problems.
 *
 * Both fields are RFC 9651 Lists of Items whose bare item is an sf-string
 * naming the policy:
 *
 *   RateLimit-Policy: "rate";q=20;w=2, "email";q=30;w=60,
 *                     "inflight";q=4;qu="concurrent-requests"
 *   RateLimit: "rate";r=0;t=1, "email";r=30, "inflight";r=3
 *
 * q (quota units a full budget holds) and r (units available now) are
 * sf-integers >= 0; w (window) and t (seconds) are sf-integers; w is
 * written only when >= 1 and t only when >= 0.  The default quota unit
 * is requests; the concurrency budget says qu="concurrent-requests" and
 * has no window.  No pk: the partition is always the authenticated
 * principal (and class) of the request, so a pk would only echo an
 * identifier back.
 *
 * Formatting writes into a caller buffer and never allocates.  The output
 * for a policy list depends only on the items, so the same route and
 * caller class always get byte-identical RateLimit-Policy values.
 */
#ifndef TREATY_CORE_RATELIMIT_HEADERS_H
#define TREATY_CORE_RATELIMIT_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Names of the two built-in policies; quotas use their configured name. */
#define TR_POLICY_RATE "rate"
#define TR_POLICY_INFLIGHT "inflight"

typedef struct {
    const char *name;    /* policy name: printable ASCII */
    uint64_t q;          /* RateLimit-Policy q */
    uint32_t w;          /* RateLimit-Policy w, seconds; 0 = left out */
    bool concurrent;     /* qu="concurrent-requests" */
    uint64_t r;          /* RateLimit r */
    int64_t t;           /* RateLimit t, seconds; -1 = left out */
} tr_ratelimit_item;

/*
 * Whether `name` can be written as an sf-string and a JSON string
 * without escapes doing anything surprising: 1..64 bytes of printable
 * ASCII.  (`"` and `\` are escaped when written.)
 */
bool tr_ratelimit_name_ok(const char *name);

/*
 * Writes the RateLimit-Policy value for `items` into buf (NUL-terminated).
 * Returns the length, 0 when there are no items (send no field), or -1
 * when buf is too small or a name is not acceptable.
 */
int tr_ratelimit_policy_format(char *buf, size_t cap,
                               const tr_ratelimit_item *items, size_t n);

/* The same for the RateLimit value. */
int tr_ratelimit_format(char *buf, size_t cap,
                        const tr_ratelimit_item *items, size_t n);

/*
 * Adds "violated-policies": [names...] to a problem object the caller
 * builds with jansson.  Returns 0, or -1 when out of memory.
 */
int tr_ratelimit_add_violated(json_t *problem, const char *const *names,
                              size_t n);

#endif
