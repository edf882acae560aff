/* treaty: the command-line entry point; each command lives in cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    { "serve", tr_cmd_serve, "run the gateway" },
    { "check", tr_cmd_check, "validate a configuration file" },
    { "token", tr_cmd_token, "mint development tokens" },
    { "audit", tr_cmd_audit, "read, query and verify the audit trail" },
    { "analyze", tr_cmd_analyze, "time shape of traffic from access logs" },
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: treaty COMMAND [options]   (treaty COMMAND --help)"
                 "\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "treaty: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
