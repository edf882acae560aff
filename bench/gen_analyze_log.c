/*
 * Generates an access log for bench/bench_analyze.sh on stdout:
 *
 *   gen_analyze_log LINES PRINCIPALS [combined|treaty] [SEED]
 *
 * LINES requests over one day of log time, from PRINCIPALS principals
 * chosen with a skewed (roughly Zipf) distribution, one in ten anonymous;
 * every 97th principal is a bursty agent that fans out 200 requests at
 * once now and then.  nginx `combined` lines are about 150 bytes, as real
 * ones with a user agent are.  Deterministic for a given SEED.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t state = 88172645463325252ull;

static uint64_t
next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static double
unit(void)
{
    return (double)(next() >> 11) / 9007199254740992.0;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s LINES PRINCIPALS [combined|treaty] "
                        "[SEED]\n", argv[0]);
        return 2;
    }
    uint64_t lines = strtoull(argv[1], NULL, 10);
    uint64_t principals = strtoull(argv[2], NULL, 10);
    int treaty = argc > 3 && !strcmp(argv[3], "treaty");
    if (argc > 4)
        state ^= strtoull(argv[4], NULL, 10) * 0x9e3779b97f4a7c15ull;
    if (!lines || !principals)
        return 2;

    static char out[1 << 20];
    setvbuf(stdout, out, _IOFBF, sizeof(out));
    const int64_t t0 = 1714521600000LL;            /* 2024-05-01 UTC, ms */
    const double step = 86400000.0 / (double)lines; /* ms per line */
    static const char *paths[] = { "/events", "/events/42", "/search",
                                   "/notifications", "/calendars/7/items" };
    static const char *methods[] = { "GET", "GET", "GET", "POST", "PUT" };
    char stamp[40] = "";
    int64_t stamp_s = -1;
    uint64_t fan_left = 0, fan_who = 0;
    double t = (double)t0;

    for (uint64_t i = 0; i < lines; i++) {
        uint64_t who;
        if (fan_left) {
            who = fan_who;
            fan_left--;
        } else {
            /* Skewed: low numbers are much busier. */
            who = (uint64_t)(pow(unit(), 3.0) * (double)principals);
            if (who % 97 == 5 && unit() < 0.01) {
                fan_who = who;
                fan_left = 199;
            }
            t += step * (fan_left ? 0.05 : 1.0);
        }
        if (fan_left)
            t += step * 0.01;
        int64_t ms = (int64_t)t;
        int k = (int)(next() % 5);
        int status = unit() < 0.02 ? 404 : 200;
        if (treaty) {
            printf("{\"time\":%" PRId64 ",\"request_id\":\"r%" PRIu64
                   "\",\"client\":\"10.%d.%d.%d\",\"principal\":\"user%"
                   PRIu64 "\",\"principal_issuer\":\"corp\",\"actor\":"
                   "\"user%" PRIu64 "\",\"class\":\"%s\",\"route\":\"r%d\","
                   "\"tool\":null,\"method\":\"%s\",\"path\":\"%s\","
                   "\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%d,"
                   "\"decision\":\"allow\",\"reason\":null,\"policy_rule\":"
                   "null,\"limiter\":null,\"idempotency_key_hash\":null,"
                   "\"replayed\":false,\"precondition\":null,"
                   "\"traceparent\":null}\n",
                   ms, i, (int)(who >> 16) & 255, (int)(who >> 8) & 255,
                   (int)who & 255, who, who, who % 97 == 5 ? "agent" : "human",
                   k, methods[k], paths[k], status, 5 + unit() * 200,
                   (int)(next() % 20000));
            continue;
        }
        if (ms / 1000 != stamp_s) {
            stamp_s = ms / 1000;
            time_t tt = (time_t)stamp_s;
            struct tm tm;
            gmtime_r(&tt, &tm);
            strftime(stamp, sizeof(stamp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        }
        char user[32];
        if (who % 10 == 9)
            snprintf(user, sizeof(user), "-");
        else
            snprintf(user, sizeof(user), "user%" PRIu64, who);
        printf("10.%d.%d.%d - %s [%s] \"%s %s?page=%d HTTP/1.1\" %d %d "
               "\"https://app.example/home\" \"Mozilla/5.0 (X11; Linux "
               "x86_64) treaty-bench/1.0\"\n",
               (int)(who >> 16) & 255, (int)(who >> 8) & 255, (int)who & 255,
               user, stamp, methods[k], paths[k], (int)(next() % 50), status,
               (int)(next() % 20000));
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
