/*
 * `treaty check -c FILE`: load a configuration the way `treaty serve`
 * would and report.  Every error is printed on its own line as
 * "file:line:col: key: message" (exit 1); a valid file gets a short
 * summary (exit 0).  Usage errors exit 2.
 *
 * Beyond the loader, check opens each issuer's key files the way serve
 * does, so a missing or unusable key file is found here too.  Those
 * errors have no line: the snapshot keeps no positions.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config_load.h"
#include "config/keys_load.h"
#include "core/jwks.h"

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: treaty check -c FILE\n"
            "\n"
            "Validate a configuration file without starting the gateway.\n"
            "Prints every error as file:line:col: key: message and exits 1,\n"
            "or prints a summary and exits 0.\n"
            "\n"
            "  -c, --config FILE   the configuration to check\n"
            "  -h, --help          show this help\n");
}

/* Prints "file: key: message" for each unusable key file; returns the
 * number of problems. */
static int
check_key_files(const tr_config *cfg, const char *file)
{
    int bad = 0;
    char err[256];

    for (size_t i = 0; i < cfg->identity.n_issuers; i++) {
        const tr_issuer_cfg *is = &cfg->identity.issuers[i];
        tr_keyset *ks;
        if (is->jwks_file != NULL) {
            ks = tr_keys_load_jwks_file(is->jwks_file, err, sizeof(err));
            if (ks == NULL) {
                fprintf(stderr, "%s: identity.issuers[%zu].jwks_file: %s\n",
                        file, i, err);
                bad++;
            }
            tr_keyset_unref(ks);
        }
        if (is->hs256_secret_file != NULL) {
            ks = tr_keys_load_hmac_file(is->hs256_secret_file, err,
                                        sizeof(err));
            if (ks == NULL) {
                fprintf(stderr, "%s: identity.issuers[%zu]."
                        "hs256_secret_file: %s\n", file, i, err);
                bad++;
            }
            tr_keyset_unref(ks);
        }
    }
    return bad;
}

int
tr_cmd_check(int argc, char **argv)
{
    const char *file = NULL;
    tr_config_errors errs = { NULL, 0 };
    tr_config *cfg;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "treaty check: %s needs a file name\n", a);
                return 2;
            }
            file = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            file = a + 9;
        } else {
            fprintf(stderr, "treaty check: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (file == NULL || file[0] == '\0') {
        fprintf(stderr, "treaty check: no configuration given (-c FILE)\n");
        usage(stderr);
        return 2;
    }

    cfg = tr_config_load_file(file, &errs);
    if (cfg == NULL) {
        int n = tr_config_errors_print(&errs, stderr);
        tr_config_errors_clear(&errs);
        fprintf(stderr, "treaty check: %s: %d error%s\n", file, n,
                n == 1 ? "" : "s");
        return 1;
    }
    int bad = check_key_files(cfg, file);
    if (bad > 0) {
        fprintf(stderr, "treaty check: %s: %d error%s\n", file, bad,
                bad == 1 ? "" : "s");
        tr_config_free(cfg);
        return 1;
    }
    printf("%s: ok\n", file);
    printf("  listen       %s:%u\n", cfg->listen_host, cfg->listen_port);
    printf("  routes       %zu\n", cfg->n_routes);
    printf("  upstreams    %zu\n", cfg->n_upstreams);
    printf("  issuers      %zu\n", cfg->identity.n_issuers);
    printf("  quotas       %zu\n", cfg->n_quotas);
    printf("  tools        %zu\n", cfg->n_tools);
    printf("  config hash  sha256:%s\n", cfg->hash_hex);
    tr_config_free(cfg);
    return 0;
}
