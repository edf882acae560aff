/*
 * Policy evaluation cost (issue 7): the delegation.md mail-read policy
 * (actor globs, a scope, owner parameter, depth) evaluated against an
 * agent identity with a two-level chain, allowed and denied, N times.
 *
 *   cc -std=c17 -D_GNU_SOURCE -O2 -Isrc bench/bench_policy.c \
 *      src/core/policy.c src/core/glob.c src/core/identity.c \
 *      src/core/token_status.c src/core/problem.c src/core/sfv.c \
 *      -ljansson -o /tmp/bp
 *   /tmp/bp [iterations]        (bench/policy does this)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/identity.h"
#include "core/policy.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
run(const tr_policy_cfg *pol, const tr_identity *id,
    const tr_route_param *params, size_t n, long iterations, bool *denied)
{
    tr_policy_result r;
    double t0 = now_s();
    unsigned deny = 0;
    for (long i = 0; i < iterations; i++) {
        tr_policy_eval(pol, id, params, n, &r);
        deny += r.deny;
    }
    double dt = now_s() - t0;
    *denied = deny == (unsigned)iterations;
    return dt / (double)iterations * 1e9;
}

int
main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 5000000;
    char *actors[] = { "agent:mailbot", "agent:planner", "agent:cal-*" };
    char *scopes[] = { "mail.read" };
    char *algs[] = { "ES256" };
    char *auds[] = { "treaty-dev" };
    tr_issuer_cfg iss = { .name = "corp", .issuer = "https://idp/",
                          .audiences = { auds, 1 },
                          .algorithms = { algs, 1 } };
    tr_identity_cfg icfg = { .issuers = &iss, .n_issuers = 1 };
    tr_policy_cfg pol = {
        .present = true,
        .actors = { actors, 3 },
        .scopes = { scopes, 1 },
        .max_delegation_depth = 2,
        .owner_param = "user",
        .humans = true,
    };
    json_error_t e;
    json_t *payload = json_loads(
        "{\"sub\":\"alice\",\"scope\":\"mail.read mail.list\","
        "\"act\":{\"sub\":\"agent:planner\",\"act\":{\"sub\":"
        "\"agent:mailbot\"}}}", 0, &e);
    uint8_t hash[32] = { 0 };
    tr_identity *id = NULL;
    if (tr_identity_derive(&icfg, 0, payload, hash, 2000000000, 0, &id) !=
        TR_TOKEN_OK) {
        fprintf(stderr, "identity derivation failed\n");
        return 1;
    }
    tr_route_param own = { "user", 4, "alice", 5 };
    tr_route_param other = { "user", 4, "bob", 3 };
    bool denied;
    double allow_ns = run(&pol, id, &own, 1, iterations, &denied);
    if (denied) {
        fprintf(stderr, "expected allow\n");
        return 1;
    }
    double deny_ns = run(&pol, id, &other, 1, iterations, &denied);
    if (!denied) {
        fprintf(stderr, "expected deny\n");
        return 1;
    }
    printf("policy evaluation, %ld iterations: allow %.1f ns, "
           "deny (owner mismatch, last rule) %.1f ns\n",
           iterations, allow_ns, deny_ns);
    tr_identity_unref(id);
    json_decref(payload);
    return 0;
}
