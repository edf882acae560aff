/*
 * Limiter core benchmark (not a test): admission decisions per second on
 * one core, and limiter memory per key.  Build and run: see
 * bench/README-limiter.md.
 *
 *   bench_limiter [principals] [decisions]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/admission.h"

#define S 1000000000ull

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * S + (uint64_t)ts.tv_nsec;
}

static long
max_rss_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void
config(tr_config *cfg, tr_quota_cfg *quota, tr_tool_cfg *tools,
       tr_tool_charge *charge, uint32_t capacity)
{
    tr_budget_class_cfg c = {0};

    memset(cfg, 0, sizeof(*cfg));
    c.concurrency = 4;
    c.queue = 4;
    c.queue_timeout_ms = 2000;
    c.rate = 10.0;
    c.burst = 20;
    cfg->budgets.human = c;
    cfg->budgets.agent = c;
    cfg->budgets.table_capacity = capacity;
    *quota = (tr_quota_cfg){(char *)"email", 30, 60, TR_QUOTA_PER_PRINCIPAL,
                            false};
    cfg->quotas = quota;
    cfg->n_quotas = 1;
    *charge = (tr_tool_charge){0, 10};
    tools[0] = (tr_tool_cfg){(char *)"search", 1, NULL, 0};
    tools[1] = (tr_tool_cfg){(char *)"send_email", 1, charge, 1};
    cfg->tools = tools;
    cfg->n_tools = 2;
}

static size_t
key_of(char *buf, size_t cap, uint64_t i)
{
    return (size_t)snprintf(buf, cap, "corp%cuser-%08llu", 0,
                            (unsigned long long)i);
}

/*
 * Admit + release, as the event loop would for requests that finish at
 * once; optionally also formats the RateLimit field.
 */
static void
bench_decisions(uint32_t principals, uint64_t n, bool headers,
                uint64_t step_ns)
{
    tr_config cfg;
    tr_quota_cfg quota;
    tr_tool_cfg tools[2];
    tr_tool_charge charge;
    tr_admission *adm;
    tr_admit_ticket tk;
    tr_admit_decision d;
    tr_admission_stats st;
    char hdr[512], *keys;
    size_t *lens;
    uint64_t x = 88172645463325252ull, now = S, t0, t1, i, ok = 0;
    volatile size_t sink = 0;

    /* Keys are built beforehand: the loop measures the limiter only. */
    keys = malloc((size_t)principals * 32);
    lens = malloc((size_t)principals * sizeof(*lens));
    if (keys == NULL || lens == NULL)
        exit(1);
    for (i = 0; i < principals; i++)
        lens[i] = key_of(keys + i * 32, 32, i);
    /* (principal, class) budgets for two classes plus one quota */
    config(&cfg, &quota, tools, &charge, principals * 3 + 16);
    adm = tr_admission_create(&cfg, 0xfeed);
    if (adm == NULL) {
        fprintf(stderr, "create failed\n");
        exit(1);
    }
    tr_admit_ticket_init(&tk, NULL);
    t0 = mono_ns();
    for (i = 0; i < n; i++) {
        uint64_t r = rnd(&x);
        tr_admit_request rq;

        rq.principal_key = keys + (r % principals) * 32;
        rq.principal_key_len = lens[r % principals];
        rq.cls = (r >> 32) & 1 ? TR_CLASS_AGENT : TR_CLASS_HUMAN;
        rq.tool = (r >> 33) % 8 == 0 ? 1 : 0;
        now += step_ns; /* virtual time between requests */
        if (tr_admit(adm, &tk, &rq, now, &d) == TR_ADMIT_OK)
            ok++;
        if (headers)
            sink += (size_t)tr_ratelimit_format(hdr, sizeof(hdr), d.items,
                                                d.n_items);
        tr_admit_release(adm, &tk, now);
    }
    t1 = mono_ns();
    tr_admission_stats_get(adm, &st);
    printf("admit+release%s: %llu decisions, %u principals, %llu ns "
           "apart: %.3f s = %.2f M decisions/s (%.0f ns each), %.1f%% "
           "admitted, table %llu keys\n",
           headers ? "+RateLimit" : "", (unsigned long long)n, principals,
           (unsigned long long)step_ns,
           (double)(t1 - t0) / 1e9, (double)n * 1e3 / (double)(t1 - t0),
           (double)(t1 - t0) / (double)n, 100.0 * (double)ok / (double)n,
           (unsigned long long)st.table.used);
    printf("    refused: rate %llu, quota %llu, table full %llu\n",
           (unsigned long long)st.refused[TR_ADMIT_REASON_RATE],
           (unsigned long long)st.refused[TR_ADMIT_REASON_QUOTA],
           (unsigned long long)st.refused[TR_ADMIT_REASON_TABLE_FULL]);
    (void)sink;
    free(keys);
    free(lens);
    tr_admission_free(adm);
}

static void
bench_bytes_per_key(uint32_t keys)
{
    tr_limiter_table *t;
    tr_limiter_table_stats st;
    tr_gcra_params rate;
    tr_limiter_entry *e;
    char key[64];
    long rss0, rss1;
    uint64_t t0, t1;
    uint32_t i;

    tr_gcra_params_rate(&rate, 10.0, 20);
    rss0 = max_rss_kb();
    t = tr_limiter_table_create(keys, 0xabcdef);
    t0 = mono_ns();
    for (i = 0; i < keys; i++) {
        e = tr_limiter_table_get(t, 0, key, key_of(key, sizeof(key), i), 0,
                                 NULL);
        if (e == NULL) {
            fprintf(stderr, "table refused key %u\n", i);
            exit(1);
        }
        tr_gcra_charge(&rate, &e->gcra, 1, 0);
    }
    t1 = mono_ns();
    rss1 = max_rss_kb();
    tr_limiter_table_stats_get(t, &st);
    printf("table: %u keys inserted in %.3f s (%.0f ns each); entry %zu B; "
           "table %.1f MiB = %.1f B per key; resident growth %.1f B per "
           "key\n",
           keys, (double)(t1 - t0) / 1e9, (double)(t1 - t0) / keys,
           sizeof(tr_limiter_entry), (double)st.bytes / 1048576.0,
           (double)st.bytes / keys, (double)(rss1 - rss0) * 1024.0 / keys);
    tr_limiter_table_free(t);
}

int
main(int argc, char **argv)
{
    uint32_t principals = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10)
                                   : 100000;
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 5000000;

    if (principals == 0 || n == 0) {
        fprintf(stderr, "usage: bench_limiter [principals] [decisions]\n");
        return 2;
    }
    /* first, while the process is small, so resident growth is clean */
    bench_bytes_per_key(1000000);
    bench_decisions(principals, n, false, 1000);
    bench_decisions(principals, n, true, 1000);
    bench_decisions(1000, n, false, 1000000);
    bench_decisions(1000, n, true, 1000000);
    return 0;
}
