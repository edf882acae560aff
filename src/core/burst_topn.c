#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/burst_topn.h"

#define MAX_SLOTS 65536u
#define MAX_DEPTH 8u

typedef struct {
    uint64_t last_ns;
    uint32_t run;
} cell;

typedef struct {
    uint64_t hash;
    uint64_t requests;
    uint64_t since_ns, last_ns;
    uint64_t n_gaps;
    double gap_mean, gap_m2;
    double peak_score;        /* decayed score as of peak_at */
    uint64_t peak_at;
    size_t key_len;           /* the observed length */
    uint32_t burst_cur, burst_max, burst_error, inflight_peak;
    bool used;
    uint8_t key[TR_BURST_TOPN_KEY_MAX];
} slot;

struct tr_burst_topn {
    tr_burst_topn_params p;
    uint64_t seed;
    cell *sketch;             /* depth rows of width cells */
    slot *slots;
    uint32_t *index;          /* slot + 1, 0 = empty; linear probing */
    uint32_t index_mask;
    uint32_t *free_list;      /* stack of unused slot numbers */
    uint32_t n_free;
    uint64_t observed, admitted, evicted;
    size_t bytes;
};

void
tr_burst_topn_params_default(tr_burst_topn_params *p)
{
    p->slots = 64;
    p->sketch_width = 2048;
    p->sketch_depth = 4;
    p->burst_gap_ns = 1000000000ull;
    p->half_life_ns = 600ull * 1000000000ull;
}

static bool
params_ok(const tr_burst_topn_params *p)
{
    return p && p->slots && p->slots <= MAX_SLOTS && p->sketch_width &&
           !(p->sketch_width & (p->sketch_width - 1)) &&
           p->sketch_width <= (1u << 24) && p->sketch_depth &&
           p->sketch_depth <= MAX_DEPTH && p->burst_gap_ns;
}

static uint32_t
index_size(uint32_t slots)
{
    uint32_t n = 4;
    while (n < slots * 2)
        n *= 2;
    return n;
}

size_t
tr_burst_topn_memory(const tr_burst_topn_params *p)
{
    if (!params_ok(p))
        return 0;
    return sizeof(tr_burst_topn) +
           (size_t)p->sketch_width * p->sketch_depth * sizeof(cell) +
           (size_t)p->slots * (sizeof(slot) + sizeof(uint32_t)) +
           (size_t)index_size(p->slots) * sizeof(uint32_t);
}

tr_burst_topn *
tr_burst_topn_create(const tr_burst_topn_params *p, uint64_t seed)
{
    if (!params_ok(p))
        return NULL;
    tr_burst_topn *tn = calloc(1, sizeof(*tn));
    if (!tn)
        return NULL;
    tn->p = *p;
    tn->seed = seed;
    uint32_t isize = index_size(p->slots);
    tn->sketch = calloc((size_t)p->sketch_width * p->sketch_depth,
                        sizeof(cell));
    tn->slots = calloc(p->slots, sizeof(slot));
    tn->index = calloc(isize, sizeof(uint32_t));
    tn->free_list = calloc(p->slots, sizeof(uint32_t));
    if (!tn->sketch || !tn->slots || !tn->index || !tn->free_list) {
        tr_burst_topn_free(tn);
        return NULL;
    }
    tn->index_mask = isize - 1;
    /* Hand out low slot numbers first. */
    for (uint32_t i = 0; i < p->slots; i++)
        tn->free_list[i] = p->slots - 1 - i;
    tn->n_free = p->slots;
    tn->bytes = tr_burst_topn_memory(p);
    return tn;
}

void
tr_burst_topn_free(tr_burst_topn *tn)
{
    if (!tn)
        return;
    free(tn->sketch);
    free(tn->slots);
    free(tn->index);
    free(tn->free_list);
    free(tn);
}

/* ------------------------------------------------------------ index -- */

static bool
slot_is(const slot *s, uint64_t hash, const void *key, size_t len)
{
    size_t kept = len < TR_BURST_TOPN_KEY_MAX ? len : TR_BURST_TOPN_KEY_MAX;
    /* A longer key is known by its kept prefix, length and hash. */
    return s->used && s->hash == hash && s->key_len == len &&
           !memcmp(s->key, key, kept);
}

static uint32_t *
index_find(tr_burst_topn *tn, uint64_t hash, const void *key, size_t len)
{
    uint32_t i = (uint32_t)hash & tn->index_mask;
    for (; tn->index[i]; i = (i + 1) & tn->index_mask)
        if (slot_is(&tn->slots[tn->index[i] - 1], hash, key, len))
            return &tn->index[i];
    return &tn->index[i];     /* the empty cell where it would go */
}

/* Removes index cell i, shifting back the run after it (linear probing
 * without tombstones). */
static void
index_remove(tr_burst_topn *tn, uint32_t i)
{
    uint32_t mask = tn->index_mask;
    uint32_t j = i;
    tn->index[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!tn->index[j])
            return;
        uint32_t home = (uint32_t)tn->slots[tn->index[j] - 1].hash & mask;
        /* Move j into the hole at i unless its home lies in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j)
                            : (i < home || home <= j);
        if (stays)
            continue;
        tn->index[i] = tn->index[j];
        tn->index[j] = 0;
        i = j;
    }
}

/* ------------------------------------------------------------ score -- */

static double
decayed(const tr_burst_topn *tn, double v, uint64_t at, uint64_t now)
{
    if (!tn->p.half_life_ns || now <= at)
        return v;
    return v * exp2(-(double)(now - at) / (double)tn->p.half_life_ns);
}

static double
slot_score(const tr_burst_topn *tn, const slot *s, uint64_t now)
{
    return decayed(tn, s->peak_score, s->peak_at, now);
}

static void
score_raise(const tr_burst_topn *tn, slot *s, uint64_t now, uint32_t v)
{
    double cur = slot_score(tn, s, now);
    s->peak_score = (double)v > cur ? (double)v : cur;
    s->peak_at = now > s->peak_at ? now : s->peak_at;
}

/* ----------------------------------------------------------- sketch -- */

static uint32_t
sketch_observe(tr_burst_topn *tn, XXH128_hash_t h, uint64_t now)
{
    uint32_t est = UINT32_MAX;
    uint64_t step = h.high64 | 1;
    for (uint32_t r = 0; r < tn->p.sketch_depth; r++) {
        size_t col = (size_t)((h.low64 + r * step) &
                              (tn->p.sketch_width - 1));
        cell *c = &tn->sketch[(size_t)r * tn->p.sketch_width + col];
        bool joins = c->run && (now <= c->last_ns ||
                                now - c->last_ns < tn->p.burst_gap_ns);
        if (joins) {
            if (c->run < UINT32_MAX)
                c->run++;
        } else {
            c->run = 1;
        }
        if (now > c->last_ns)
            c->last_ns = now;
        if (c->run < est)
            est = c->run;
    }
    return est;
}

/* ---------------------------------------------------------- observe -- */

static void
slot_update(tr_burst_topn *tn, slot *s, uint64_t now, uint32_t inflight)
{
    uint64_t gap = now > s->last_ns ? now - s->last_ns : 0;
    double g = (double)gap / 1e9;
    s->n_gaps++;
    double d = g - s->gap_mean;
    s->gap_mean += d / (double)s->n_gaps;
    s->gap_m2 += d * (g - s->gap_mean);

    if (gap < tn->p.burst_gap_ns) {
        if (s->burst_cur < UINT32_MAX)
            s->burst_cur++;
    } else {
        s->burst_cur = 1;
    }
    if (s->burst_cur > s->burst_max)
        s->burst_max = s->burst_cur;
    if (inflight > s->inflight_peak)
        s->inflight_peak = inflight;
    s->requests++;
    if (now > s->last_ns)
        s->last_ns = now;
    score_raise(tn, s, now, s->burst_cur > inflight ? s->burst_cur
                                                    : inflight);
}

/* The followed slot with the lowest score now, or -1 with none used. */
static int64_t
lowest_slot(const tr_burst_topn *tn, uint64_t now, double *score)
{
    int64_t best = -1;
    for (uint32_t i = 0; i < tn->p.slots; i++) {
        const slot *s = &tn->slots[i];
        if (!s->used)
            continue;
        double v = slot_score(tn, s, now);
        if (best < 0 || v < *score) {
            best = i;
            *score = v;
        }
    }
    return best;
}

void
tr_burst_topn_observe(tr_burst_topn *tn, const void *key, size_t len,
                      uint64_t now_ns, uint32_t inflight)
{
    if (!tn)
        return;
    tn->observed++;
    XXH128_hash_t h = XXH3_128bits_withSeed(key, len, tn->seed);
    uint32_t est = sketch_observe(tn, h, now_ns);

    uint32_t *cellp = index_find(tn, h.low64, key, len);
    if (*cellp) {
        slot_update(tn, &tn->slots[*cellp - 1], now_ns, inflight);
        return;
    }

    uint32_t cand = est > inflight ? est : inflight;
    uint32_t victim;
    if (tn->n_free) {
        victim = tn->free_list[--tn->n_free];
    } else {
        if (cand <= 1)
            return;             /* a lone request evicts nobody */
        double low = 0;
        int64_t v = lowest_slot(tn, now_ns, &low);
        if (v < 0 || (double)cand <= low)
            return;
        victim = (uint32_t)v;
        slot *old = &tn->slots[victim];
        uint32_t *oc = index_find(tn, old->hash, old->key, old->key_len);
        index_remove(tn, (uint32_t)(oc - tn->index));
        tn->evicted++;
        /* The removal may have shifted the cell found for the new key. */
        cellp = index_find(tn, h.low64, key, len);
    }

    slot *s = &tn->slots[victim];
    memset(s, 0, sizeof(*s));
    s->used = true;
    s->hash = h.low64;
    s->key_len = len;
    memcpy(s->key, key,
           len < TR_BURST_TOPN_KEY_MAX ? len : TR_BURST_TOPN_KEY_MAX);
    s->requests = 1;
    s->since_ns = s->last_ns = now_ns;
    s->burst_cur = s->burst_max = est;
    s->burst_error = est - 1;
    s->inflight_peak = inflight;
    s->peak_at = now_ns;
    s->peak_score = (double)cand;
    *cellp = victim + 1;
    tn->admitted++;
}

/* -------------------------------------------------------- iteration -- */

static void
entry_fill(const tr_burst_topn *tn, const slot *s, uint64_t now,
           double score, tr_burst_topn_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->key_len = s->key_len < TR_BURST_TOPN_KEY_MAX ? s->key_len
                                                    : TR_BURST_TOPN_KEY_MAX;
    e->key_truncated = s->key_len > TR_BURST_TOPN_KEY_MAX;
    memcpy(e->key, s->key, e->key_len);
    e->requests = s->requests;
    e->interarrival_mean_s = s->n_gaps ? s->gap_mean : -1;
    e->interarrival_cv = -1;
    if (s->n_gaps >= 2 && s->gap_mean > 0)
        e->interarrival_cv = sqrt(s->gap_m2 / (double)s->n_gaps) /
                             s->gap_mean;
    bool open = now <= s->last_ns || now - s->last_ns < tn->p.burst_gap_ns;
    e->burst_now = open ? s->burst_cur : 0;
    e->burst_max = s->burst_max;
    e->burst_error = s->burst_error;
    e->inflight_peak = s->inflight_peak;
    e->score = score;
    e->since_ns = s->since_ns;
    e->last_ns = s->last_ns;
}

void
tr_burst_topn_iter_init(tr_burst_topn_iter *it, const tr_burst_topn *tn,
                        uint64_t now_ns, size_t n)
{
    memset(it, 0, sizeof(*it));
    it->tn = tn;
    it->now_ns = now_ns;
    it->left = tn ? n : 0;
}

bool
tr_burst_topn_iter_next(tr_burst_topn_iter *it, tr_burst_topn_entry *out)
{
    if (!it->left)
        return false;
    const tr_burst_topn *tn = it->tn;
    int64_t best = -1;
    double best_score = 0;

    /* Order: score descending, then slot number ascending. */
    for (uint32_t i = 0; i < tn->p.slots; i++) {
        const slot *s = &tn->slots[i];
        if (!s->used)
            continue;
        double v = slot_score(tn, s, it->now_ns);
        if (it->started && (v > it->last_score ||
                            (v == it->last_score && i <= it->last_slot)))
            continue;
        if (best < 0 || v > best_score) {
            best = i;
            best_score = v;
        }
    }
    if (best < 0) {
        it->left = 0;
        return false;
    }
    it->started = true;
    it->last_score = best_score;
    it->last_slot = (uint32_t)best;
    it->left--;
    entry_fill(tn, &tn->slots[best], it->now_ns, best_score, out);
    return true;
}

size_t
tr_burst_topn_top(const tr_burst_topn *tn, uint64_t now_ns,
                  tr_burst_topn_entry *out, size_t n)
{
    tr_burst_topn_iter it;
    size_t k = 0;
    tr_burst_topn_iter_init(&it, tn, now_ns, n);
    while (k < n && tr_burst_topn_iter_next(&it, &out[k]))
        k++;
    return k;
}

void
tr_burst_topn_stats_get(const tr_burst_topn *tn, tr_burst_topn_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!tn)
        return;
    out->observed = tn->observed;
    out->admitted = tn->admitted;
    out->evicted = tn->evicted;
    out->followed = tn->p.slots - tn->n_free;
    out->bytes = tn->bytes;
}
