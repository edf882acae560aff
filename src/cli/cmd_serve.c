/* treaty serve -c FILE [--dev]: run the gateway until SIGTERM. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config_load.h"
#include "net/gateway.h"
#include "net/log.h"
#include "net/services.h"

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: treaty serve -c FILE [--dev] [--log-level LEVEL]\n\n"
            "Runs the gateway with the configuration in FILE until SIGTERM\n"
            "or SIGINT, then drains requests in progress and exits 0.\n\n"
            "  -c, --config FILE   configuration (YAML)\n"
            "      --dev           accept the development keys shipped\n"
            "                      under examples/ (never in production)\n"
            "      --log-level L   debug, info (default), warn, error\n");
}

int
tr_cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "dev", no_argument, NULL, 'd' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    bool dev = false;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'd':
            dev = true;
            break;
        case 'l':
            if (!strcmp(optarg, "debug"))
                tr_log_min_level = TR_LOG_DEBUG;
            else if (!strcmp(optarg, "info"))
                tr_log_min_level = TR_LOG_INFO;
            else if (!strcmp(optarg, "warn"))
                tr_log_min_level = TR_LOG_WARN;
            else if (!strcmp(optarg, "error"))
                tr_log_min_level = TR_LOG_ERROR;
            else {
                usage(stderr);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }

    tr_config_errors errs = { 0 };
    tr_config *cfg = tr_config_load_file(path, &errs);
    if (!cfg) {
        tr_config_errors_print(&errs, stderr);
        tr_config_errors_clear(&errs);
        return 1;
    }

    uv_loop_t *loop = uv_default_loop();
    tr_server srv;
    tr_services svc;
    int rc = 1;

    if (tr_server_init(&srv, loop, cfg, dev) != 0)
        goto out_cfg;
    if (tr_services_start(&svc, &srv) != 0)
        goto out_server;
    if (tr_server_listen(&srv) != 0)
        goto out_services;
    uv_run(loop, UV_RUN_DEFAULT);
    rc = srv.exit_code;
    tr_log(TR_LOG_INFO, "stopped", "exit_code=%d", rc);
out_services:
    tr_services_stop(&svc);
out_server:
    tr_server_close(&srv);
out_cfg:
    uv_loop_close(loop);
    tr_config_free(cfg);
    return rc;
}
