#include <stdio.h>

#include "cli/commands.h"

int
tr_cmd_analyze(int argc, char **argv)
{
    fprintf(stderr, "treaty analyze: not implemented yet (issue 10)\n");
    return 2;
}
