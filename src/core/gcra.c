#include "core/gcra.h"

#include <stddef.h>

static uint64_t
max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static int
params_set(tr_gcra_params *p, uint64_t t_ns, uint32_t burst)
{
    if (t_ns == 0 || burst == 0 || t_ns > TR_GCRA_TAU_MAX / burst)
        return -1;
    p->t_ns = t_ns;
    p->tau_ns = t_ns * burst;
    p->burst = burst;
    return 0;
}

int
tr_gcra_params_rate(tr_gcra_params *p, double per_second, uint32_t burst)
{
    double t;

    /* The negated test also refuses NaN; infinity gives t == 0. */
    if (!(per_second > 0.0))
        return -1;
    t = 1e9 / per_second;
    if (!(t < (double)TR_GCRA_TAU_MAX))
        return -1;
    /* The one rounding step: to the nearest nanosecond, at least 1. */
    return params_set(p, t < 1.0 ? 1 : (uint64_t)(t + 0.5), burst);
}

int
tr_gcra_params_quota(tr_gcra_params *p, uint32_t limit, uint32_t period_s)
{
    if (limit == 0 || period_s == 0)
        return -1;
    return params_set(p, (uint64_t)period_s * TR_NS_PER_S / limit, limit);
}

void
tr_gcra_init(tr_gcra *s)
{
    s->tat = 0;
    s->reserved = 0;
}

/* Nanoseconds of the tolerance in use at `now`: what has not drained yet
 * plus what queued requests hold.  At most tau + a charge while the
 * invariants hold; callers clamp. */
static uint64_t
debt_ns(const tr_gcra_params *p, const tr_gcra *s, uint64_t now)
{
    return max_u64(s->tat, now) - now + (uint64_t)s->reserved * p->t_ns;
}

tr_gcra_verdict
tr_gcra_check(const tr_gcra_params *p, const tr_gcra *s, uint32_t cost,
              uint64_t now, uint64_t *wait_ns)
{
    uint64_t need;

    if (cost == 0)
        return TR_GCRA_OK;
    if (cost > p->burst)
        return TR_GCRA_NEVER;
    need = debt_ns(p, s, now) + (uint64_t)cost * p->t_ns;
    if (need <= p->tau_ns)
        return TR_GCRA_OK;
    if (wait_ns != NULL)
        *wait_ns = need - p->tau_ns;
    return TR_GCRA_LIMITED;
}

void
tr_gcra_charge(const tr_gcra_params *p, tr_gcra *s, uint32_t cost,
               uint64_t now)
{
    if (cost == 0)
        return;
    s->tat = max_u64(s->tat, now) + (uint64_t)cost * p->t_ns;
}

void
tr_gcra_refund(const tr_gcra_params *p, tr_gcra *s, uint32_t cost)
{
    uint64_t back = (uint64_t)cost * p->t_ns;

    s->tat = s->tat > back ? s->tat - back : 0;
}

void
tr_gcra_reserve(tr_gcra *s, uint32_t cost)
{
    s->reserved += cost;
}

void
tr_gcra_unreserve(tr_gcra *s, uint32_t cost)
{
    s->reserved = s->reserved > cost ? s->reserved - cost : 0;
}

void
tr_gcra_confirm(const tr_gcra_params *p, tr_gcra *s, uint32_t cost,
                uint64_t now)
{
    tr_gcra_unreserve(s, cost);
    tr_gcra_charge(p, s, cost, now);
}

/* Nanoseconds of credit available now, 0 .. tau. */
static uint64_t
avail_ns(const tr_gcra_params *p, const tr_gcra *s, uint64_t now)
{
    uint64_t debt = debt_ns(p, s, now);

    return debt >= p->tau_ns ? 0 : p->tau_ns - debt;
}

uint64_t
tr_gcra_remaining(const tr_gcra_params *p, const tr_gcra *s, uint64_t now)
{
    return avail_ns(p, s, now) / p->t_ns;
}

int64_t
tr_gcra_reset_s(const tr_gcra_params *p, const tr_gcra *s, uint32_t cost,
                uint64_t now)
{
    uint64_t avail = avail_ns(p, s, now);
    uint64_t held = (uint64_t)s->reserved * p->t_ns;
    uint64_t ceiling, unit, need;
    uint32_t c = cost == 0 ? 1 : cost;

    if (c > p->burst)
        c = p->burst;
    unit = (uint64_t)c * p->t_ns;
    /* Credit only grows while the TAT drains; reserved units stay
     * taken until their requests leave the queue. */
    ceiling = held >= p->tau_ns ? 0 : p->tau_ns - held;
    need = (avail / unit + 1) * unit;
    if (need > ceiling)
        need = ceiling;
    if (need <= avail)
        return -1;
    return (int64_t)tr_ns_to_s_ceil(need - avail);
}

bool
tr_gcra_is_fresh(const tr_gcra *s, uint64_t now)
{
    return s->tat <= now && s->reserved == 0;
}

uint64_t
tr_ns_to_s_ceil(uint64_t ns)
{
    return ns / TR_NS_PER_S + (ns % TR_NS_PER_S != 0);
}
