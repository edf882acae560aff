#include "core/idem_state.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* ---- lookup ---- */

static const char *const verdict_names[] = {
    [TR_IDEM_PROCEED] = "proceed",
    [TR_IDEM_REPLAY] = "replay",
    [TR_IDEM_MISMATCH] = "mismatch",
    [TR_IDEM_IN_FLIGHT] = "in_flight",
    [TR_IDEM_WAIT] = "wait",
    [TR_IDEM_OUTCOME_UNKNOWN] = "outcome_unknown",
    [TR_IDEM_REEXECUTE] = "reexecute",
    [TR_IDEM_NOT_REPLAYABLE] = "not_replayable",
};

const char *
tr_idem_verdict_name(tr_idem_verdict v)
{
    if ((size_t)v >= sizeof(verdict_names) / sizeof(verdict_names[0]))
        return "invalid";
    return verdict_names[v];
}

static bool
lease_live(const tr_idem_record *rec, int64_t now_ms)
{
    return rec->state == TR_IDEM_REC_IN_FLIGHT &&
           rec->lease_until_ms > now_ms;
}

bool
tr_idem_expired(const tr_idem_record *rec, int64_t now_ms)
{
    if (rec == NULL || rec->state == TR_IDEM_REC_ABSENT)
        return true;
    /* A running lease outlives a short TTL: expiring it would let a
     * second attempt execute next to the first. */
    if (lease_live(rec, now_ms))
        return false;
    return rec->expires_ms <= now_ms;
}

static uint32_t
ceil_seconds(int64_t ms)
{
    int64_t s = (ms + 999) / 1000;

    if (s < 1)
        return 1;
    if (s > UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)s;
}

tr_idem_decision
tr_idem_lookup(const tr_idem_record *rec, const uint8_t fp[TR_FP_LEN],
               const tr_idem_cfg *cfg, int64_t wait_deadline_ms,
               int64_t now_ms)
{
    tr_idem_decision d = { .verdict = TR_IDEM_PROCEED,
                           .problem = TR_P_INTERNAL };

    if (tr_idem_expired(rec, now_ms))
        return d;

    if (memcmp(rec->fingerprint, fp, TR_FP_LEN) != 0) {
        d.verdict = TR_IDEM_MISMATCH;
        d.problem = TR_P_IDEM_KEY_MISMATCH;
        return d;
    }

    if (rec->state == TR_IDEM_REC_COMPLETED) {
        d.status = rec->status;
        if (rec->replayable) {
            d.verdict = TR_IDEM_REPLAY;
        } else {
            d.verdict = TR_IDEM_NOT_REPLAYABLE;
            d.problem = TR_P_IDEM_NOT_REPLAYABLE;
        }
        return d;
    }

    if (lease_live(rec, now_ms)) {
        int64_t left = rec->lease_until_ms - now_ms;

        if (wait_deadline_ms > now_ms) {
            int64_t w = wait_deadline_ms - now_ms;

            d.verdict = TR_IDEM_WAIT;
            d.wait_ms = (uint32_t)(w < left ? w : left);
            return d;
        }
        d.verdict = TR_IDEM_IN_FLIGHT;
        d.problem = TR_P_IDEM_KEY_CONFLICT;
        d.retry_after_s = ceil_seconds(left);
        return d;
    }

    /* In flight, lease over, no outcome: the owner is gone. */
    if (cfg->after_crash == TR_CRASH_REEXECUTE) {
        d.verdict = TR_IDEM_REEXECUTE;
        return d;
    }
    d.verdict = TR_IDEM_OUTCOME_UNKNOWN;
    d.problem = TR_P_IDEM_OUTCOME_UNKNOWN;
    return d;
}

bool
tr_idem_store_down_refuses(const tr_idem_cfg *cfg)
{
    if (cfg->fail_open)
        return false;
    return cfg->mode == TR_IDEM_REQUIRED ||
           cfg->mode == TR_IDEM_REQUIRED_FOR_AGENTS;
}

int64_t
tr_idem_wait_deadline(const tr_idem_cfg *cfg, int64_t first_lookup_ms)
{
    if (cfg->wait_ms == 0)
        return 0;
    return first_lookup_ms + cfg->wait_ms;
}

/* ---- claim ---- */

uint32_t
tr_idem_lease_ms(uint32_t upstream_timeout_ms, uint32_t grace_ms)
{
    if (upstream_timeout_ms > UINT32_MAX - grace_ms)
        return UINT32_MAX;
    return upstream_timeout_ms + grace_ms;
}

uint32_t
tr_idem_renew_every_ms(uint32_t lease_ms)
{
    uint32_t every = lease_ms / 3;

    return every < 10 ? 10 : every;
}

bool
tr_idem_claimable(const tr_idem_record *existing,
                  const uint8_t fp[TR_FP_LEN], bool reexecute,
                  int64_t now_ms)
{
    if (tr_idem_expired(existing, now_ms))
        return true;
    if (!reexecute || existing->state != TR_IDEM_REC_IN_FLIGHT)
        return false;
    if (lease_live(existing, now_ms))
        return false;
    return memcmp(existing->fingerprint, fp, TR_FP_LEN) == 0;
}

static int64_t
ttl_ms(const tr_idem_cfg *cfg)
{
    return (int64_t)cfg->ttl_s * 1000;
}

void
tr_idem_claim(tr_idem_record *rec, const uint8_t fp[TR_FP_LEN],
              const uint8_t owner[TR_IDEM_OWNER_LEN], uint32_t lease_ms,
              const tr_idem_cfg *cfg, int64_t now_ms)
{
    memset(rec, 0, sizeof(*rec));
    rec->state = TR_IDEM_REC_IN_FLIGHT;
    memcpy(rec->fingerprint, fp, TR_FP_LEN);
    memcpy(rec->owner, owner, TR_IDEM_OWNER_LEN);
    rec->created_ms = now_ms;
    rec->lease_until_ms = now_ms + lease_ms;
    rec->expires_ms = now_ms + ttl_ms(cfg);
}

static bool
owned_by(const tr_idem_record *rec, const uint8_t owner[TR_IDEM_OWNER_LEN])
{
    return rec->state == TR_IDEM_REC_IN_FLIGHT &&
           memcmp(rec->owner, owner, TR_IDEM_OWNER_LEN) == 0;
}

bool
tr_idem_renew(tr_idem_record *rec, const uint8_t owner[TR_IDEM_OWNER_LEN],
              uint32_t lease_ms, int64_t now_ms)
{
    if (!owned_by(rec, owner))
        return false;
    rec->lease_until_ms = now_ms + lease_ms;
    return true;
}

/* ---- outcome ---- */

tr_idem_outcome
tr_idem_classify(tr_idem_failure failure, int status,
                 tr_ambiguous_mode ambiguous)
{
    tr_idem_outcome amb = ambiguous == TR_AMBIGUOUS_RELEASE
                              ? TR_IDEM_OUT_RELEASE
                              : TR_IDEM_OUT_PIN;

    switch (failure) {
    case TR_IDEM_FAIL_CONNECT:
    case TR_IDEM_FAIL_REFUSED:
        return TR_IDEM_OUT_RELEASE;
    case TR_IDEM_FAIL_RESET:
    case TR_IDEM_FAIL_TIMEOUT:
    case TR_IDEM_FAIL_BAD_RESPONSE:
        return amb;
    case TR_IDEM_FAIL_NONE:
        break;
    }

    switch (status) {
    case 401: /* credentials refused before any work */
    case 403:
    case 407:
    case 408: /* the server gave up reading the request */
    case 409: /* state conflict: nothing was changed */
    case 425: /* too early: refused unprocessed */
    case 429: /* rate limited before processing */
    case 503: /* unavailable: refused unprocessed */
        return TR_IDEM_OUT_RELEASE;
    case 500:
    case 502:
    case 504:
        return amb;
    default:
        break;
    }
    /* Not a final status: the exchange broke off in an unknown state. */
    if (status < 200 || status > 599)
        return amb;
    return TR_IDEM_OUT_STORE;
}

const char *
tr_idem_outcome_name(tr_idem_outcome o)
{
    switch (o) {
    case TR_IDEM_OUT_RELEASE:
        return "release";
    case TR_IDEM_OUT_STORE:
        return "store";
    case TR_IDEM_OUT_PIN:
        return "pin";
    }
    return "invalid";
}

bool
tr_idem_body_fits(const tr_idem_cfg *cfg, uint64_t body_len)
{
    return body_len <= cfg->storage_cap;
}

bool
tr_idem_complete(tr_idem_record *rec,
                 const uint8_t owner[TR_IDEM_OWNER_LEN],
                 const tr_idem_result *res, const tr_idem_cfg *cfg,
                 int64_t now_ms)
{
    bool keep;

    if (!owned_by(rec, owner))
        return false;

    keep = !res->body_dropped && tr_idem_body_fits(cfg, res->body_len) &&
           res->headers_len <= TR_IDEM_HEADERS_MAX;
    rec->state = TR_IDEM_REC_COMPLETED;
    rec->status = res->status;
    rec->pinned = res->pinned;
    rec->replayable = keep;
    rec->headers = keep ? res->headers : NULL;
    rec->headers_len = keep ? res->headers_len : 0;
    rec->body = keep ? res->body : NULL;
    rec->body_len = keep ? res->body_len : 0;
    rec->lease_until_ms = 0;
    rec->expires_ms = now_ms + ttl_ms(cfg);
    return true;
}

bool
tr_idem_release(tr_idem_record *rec, const uint8_t owner[TR_IDEM_OWNER_LEN])
{
    if (!owned_by(rec, owner))
        return false;
    memset(rec, 0, sizeof(*rec));
    rec->state = TR_IDEM_REC_ABSENT;
    return true;
}

/* ---- stored headers ---- */

static const char *const storable[] = {
    "location", "content-type", "content-encoding", "content-location",
    "etag", "last-modified", "link",
};

bool
tr_idem_header_storable(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(storable) / sizeof(storable[0]); i++) {
        if (strlen(storable[i]) == len &&
            strncasecmp(storable[i], name, len) == 0)
            return true;
    }
    return false;
}

size_t
tr_idem_headers_encode(const tr_header *h, size_t n, uint8_t *out,
                       size_t cap)
{
    size_t need = 0, off = 0;

    for (size_t i = 0; i < n; i++) {
        if (!tr_idem_header_storable(h[i].name, h[i].name_len) ||
            tr_head_named_in_connection(h, n, h[i].name, h[i].name_len))
            continue;
        if (h[i].value_len > UINT32_MAX)
            continue;
        need += 5 + h[i].name_len + h[i].value_len;
    }
    if (out == NULL || cap < need)
        return need;

    for (size_t i = 0; i < n; i++) {
        uint32_t vl = (uint32_t)h[i].value_len;

        if (!tr_idem_header_storable(h[i].name, h[i].name_len) ||
            tr_head_named_in_connection(h, n, h[i].name, h[i].name_len))
            continue;
        if (h[i].value_len > UINT32_MAX)
            continue;
        out[off++] = (uint8_t)h[i].name_len;
        out[off++] = (uint8_t)(vl >> 24);
        out[off++] = (uint8_t)(vl >> 16);
        out[off++] = (uint8_t)(vl >> 8);
        out[off++] = (uint8_t)vl;
        memcpy(out + off, h[i].name, h[i].name_len);
        off += h[i].name_len;
        if (vl > 0)
            memcpy(out + off, h[i].value, vl);
        off += vl;
    }
    return off;
}

int
tr_idem_headers_next(const uint8_t *buf, size_t len, size_t *off,
                     tr_header *h)
{
    size_t o = *off, nl, vl;

    if (o == len)
        return 0;
    if (o > len || len - o < 5)
        return -1;
    nl = buf[o];
    vl = (size_t)buf[o + 1] << 24 | (size_t)buf[o + 2] << 16 |
         (size_t)buf[o + 3] << 8 | (size_t)buf[o + 4];
    o += 5;
    if (nl == 0 || nl > len - o || vl > len - o - nl)
        return -1;
    h->name = (const char *)buf + o;
    h->name_len = nl;
    h->value = (const char *)buf + o + nl;
    h->value_len = vl;
    *off = o + nl + vl;
    return 1;
}

/* ---- scope and derived key ---- */

size_t
tr_idem_anon_scope(const char *client_addr, uint8_t *out, size_t cap)
{
    static const char prefix[] = "\0\0anon:";
    size_t plen = sizeof(prefix) - 1;
    size_t alen = client_addr != NULL ? strlen(client_addr) : 0;

    if (cap < plen + alen)
        return 0;
    memcpy(out, prefix, plen);
    if (alen > 0)
        memcpy(out + plen, client_addr, alen);
    return plen + alen;
}

static void
u64be(unsigned char b[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

int
tr_idem_derived_key(const void *scope, size_t scope_len,
                    const tr_idem_key *key, char out[65])
{
    unsigned char lb[8], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    out[0] = '\0';
    if (ctx == NULL)
        return -1;
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    u64be(lb, scope_len);
    ok = ok && EVP_DigestUpdate(ctx, lb, sizeof(lb)) == 1;
    ok = ok && (scope_len == 0 ||
                EVP_DigestUpdate(ctx, scope, scope_len) == 1);
    u64be(lb, key->len);
    ok = ok && EVP_DigestUpdate(ctx, lb, sizeof(lb)) == 1;
    ok = ok && EVP_DigestUpdate(ctx, key->bytes, key->len) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
         mdlen == TR_FP_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    tr_fp_hex(md, out);
    return 0;
}
